import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medreason.eval import extract_choice, grade

OPTIONS = {"A": "Asthma", "B": "COPD", "C": "Croup", "D": "Pulmonary fibrosis"}
PUBMEDQA = {"A": "yes", "B": "no", "C": "maybe"}
MMLU_PRO = {letter: f"choice {letter.lower()}{letter.lower()}" for letter in "ABCDEFGHIJ"}
LONG_REASONING = "Let me weigh each option. Option A is possible, B less so. " * 200

CASES = [
    # \boxed{} in its common spellings
    (r"\boxed{C}", OPTIONS, "C"),
    (r"\boxed{\text{C}}", OPTIONS, "C"),
    (r"\boxed{\textbf{C}}", OPTIONS, "C"),
    (r"$\boxed{B}$", OPTIONS, "B"),
    (r"\( \boxed{D} \)", OPTIONS, "D"),
    (r"\boxed{(A)}", OPTIONS, "A"),
    (r"\boxed{ c }", OPTIONS, "C"),
    (r"\boxed{C. Croup}", OPTIONS, "C"),
    (r"\boxed{C: Croup}", OPTIONS, "C"),
    (r"\boxed{Croup}", OPTIONS, "C"),
    (r"\boxed{\text{Pulmonary fibrosis}}", OPTIONS, "D"),
    (r"\boxed {B}", OPTIONS, "B"),
    (r"The final answer is \boxed{B}.", OPTIONS, "B"),
    (r"The answer is \boxed{D}", OPTIONS, "D"),
    (r"**Final Answer**\n\boxed{A}", OPTIONS, "A"),
    # answer phrases
    ("The answer is (B)", OPTIONS, "B"),
    ("The answer is B.", OPTIONS, "B"),
    ("the answer is b", OPTIONS, "B"),
    ("**Answer: D**", OPTIONS, "D"),
    ("**Answer:** D", OPTIONS, "D"),
    ("**Answer**: (c)", OPTIONS, "C"),
    ("Answer: **A**", OPTIONS, "A"),
    ("Answer - C", OPTIONS, "C"),
    ("Final answer: c", OPTIONS, "C"),
    ("Final Answer: (d)", OPTIONS, "D"),
    ("The correct answer is option C.", OPTIONS, "C"),
    ("The correct option is D.", OPTIONS, "D"),
    ("The best choice would be A", OPTIONS, "A"),
    ("So the answer would be (b).", OPTIONS, "B"),
    ("The answer is: **B. COPD**", OPTIONS, "B"),
    ("Answer: [C]", OPTIONS, "C"),
    ("answer: a", OPTIONS, "A"),
    ("answer is a.", OPTIONS, "A"),
    ("ANSWER: C", OPTIONS, "C"),
    ("Therefore, the answer is C) Croup", OPTIONS, "C"),
    ("The answer is $\\boxed{\\textbf{(B)}}$", OPTIONS, "B"),
    # option text instead of the letter
    ("Final answer: Croup.", OPTIONS, "C"),
    ("So the answer is pulmonary fibrosis.", OPTIONS, "D"),
    ("The answer is **COPD**", OPTIONS, "B"),
    ("Answer: maybe", PUBMEDQA, "C"),
    ("Answer: yes", PUBMEDQA, "A"),
    ("The answer is option: Croup", OPTIONS, "C"),
    (r"\boxed{no}", PUBMEDQA, "B"),
    # several candidates: the last one decides
    (r"\boxed{A} Wait, that ignores the stridor. \boxed{C}", OPTIONS, "C"),
    ("The answer is A. On reflection, the answer is D.", OPTIONS, "D"),
    ("Answer: B\n\nHmm, reconsidering.\n\nFinal answer: C", OPTIONS, "C"),
    (r"The answer is A... no. \boxed{B}", OPTIONS, "B"),
    ("The answer is B. The answer is unclear from the stem though.", OPTIONS, "B"),
    # two different options in the final answer: wrong
    ("The answer is A or C.", OPTIONS, None),
    (r"\boxed{A, C}", OPTIONS, None),
    (r"\boxed{A and D}", OPTIONS, None),
    ("Answer: A and D", OPTIONS, None),
    ("Final answer: B/D", OPTIONS, None),
    ("The answer is (A) or (B)", OPTIONS, None),
    ("The answer is A, A.", OPTIONS, "A"),
    # <think> reasoning is excluded where an answer follows it
    ("<think>The answer is A</think>The answer is B", OPTIONS, "B"),
    ("<think>\nclearly \\boxed{A}\n</think>\n\n\\boxed{D}", OPTIONS, "D"),
    ("<think>The answer is A.</think>\n\nI am not sure.", OPTIONS, None),
    ("<think>The answer is A.</think>", OPTIONS, "A"),
    ("<think>The answer is A.</think>\n\n", OPTIONS, "A"),
    ("<think>still thinking, maybe the answer is C", OPTIONS, "C"),
    # bare answers on the last line
    ("B", OPTIONS, "B"),
    ("(B)", OPTIONS, "B"),
    ("**C.**", OPTIONS, "C"),
    ("The stridor points to the upper airway.\nC. Croup", OPTIONS, "C"),
    ("After weighing it up:\nCroup", OPTIONS, "C"),
    ("J", MMLU_PRO, "J"),
    # nothing, or not an option: no answer
    ("", OPTIONS, None),
    ("nothing here", OPTIONS, None),
    ("The answer is a benign tumour.", OPTIONS, None),
    ("Answer: B12 deficiency", OPTIONS, None),
    ("The answer is E.", OPTIONS, None),
    (r"\boxed{E}", OPTIONS, None),
    (r"\boxed{}", OPTIONS, None),
    ("I would need more information.", OPTIONS, None),
    ("a", OPTIONS, None),
    ("The answer is Both.", OPTIONS, None),
    ("The answer is \\boxed{", OPTIONS, None),
    # long responses: the answer is found at the end, or before the tail when it is not there
    (LONG_REASONING + r"\boxed{D}", OPTIONS, "D"),
    ("The answer is C.\n" + "Some afterthoughts without a verdict. " * 200, OPTIONS, "C"),
    ("<think>" + LONG_REASONING + "</think>\n\n**Answer: B**", OPTIONS, "B"),
    # up to ten options (MMLU-Pro)
    (r"\boxed{I}", MMLU_PRO, "I"),
    ("The answer is (H).", MMLU_PRO, "H"),
    ("Answer: choice gg", MMLU_PRO, "G"),
]

# Issue 18: the classes where the published evaluators (m1, MedReason, HuatuoGPT-o1, II-Medical,
# verl's DAPO graders) agree with each other, with our own examples.
INFECTIONS = {
    "A": "A viral infection",
    "B": "A bacterial infection",
    "C": "An autoimmune disorder",
    "D": "A defect in collagen synthesis",
}
MULTILINE = {
    "A": "Step 1: aspirin\nStep 2: clopidogrel",
    "B": "Step 1: heparin\nStep 2:  warfarin",
    "C": "| drug | dose |\n| alteplase | 0.9 mg/kg |\n",
    "D": "Observation\n",
}
CELLS = {"A": "T cells", "B": "Macrophages", "C": "Neutrophils", "D": "Eosinophils"}
ISSUE_CASES = [
    # 1. the option's text instead of its letter, without any cue, possibly inside a sentence
    ("Stridor and a barking cough in a toddler.\n\nMost likely diagnosis: croup.", OPTIONS, "C"),
    ("Given the spirometry and smoking history, I would start treatment for copd.", OPTIONS, "B"),
    ("Reticular opacities and clubbing.\nPULMONARY FIBROSIS", OPTIONS, "D"),
    ("The episodic wheeze that reverses with salbutamol fits asthma best", OPTIONS, "A"),
    ("Overall, the trial supports it: yes.", PUBMEDQA, "A"),
    ("Reviewed the history.\nClearly not asthma.", OPTIONS, None),
    # 2. "Option X is correct" / "X is preferred" as the concluding statement
    ("After weighing the options, option C is correct.", OPTIONS, "C"),
    ("B is preferred.", OPTIONS, "B"),
    ("Initially I leaned towards A.\nOn balance, D is the correct answer.", OPTIONS, "D"),
    ("The answer is A.\n\nOn reflection, option C is correct.", OPTIONS, "C"),
    ("Option B is incorrect.", OPTIONS, None),
    ("The answer is B.\nOption A is correct only in adults, not here.", OPTIONS, "B"),
    # 3. "Answer:" followed by words, the letter later in the sentence
    ("Answer: Based on the guidelines, C is preferred.", OPTIONS, "C"),
    ("**Answer:** Given the barking cough, option C.", OPTIONS, "C"),
    ("Answer: Taking everything into account, (B). A would need wheeze.", OPTIONS, "B"),
    ("Answer: Bronchiolitis is the likely cause.", OPTIONS, None),
    ("Answer: I think D is right.", OPTIONS, "D"),
    # 4. two option texts: the last one in the concluding sentence; a final answer naming two is wrong
    ("It could be asthma, but the barking cough and inspiratory stridor mean croup.", OPTIONS, "C"),
    ("Asthma was my first thought.\nHowever, the honeycombing points to pulmonary fibrosis.", OPTIONS, "D"),
    ("Croup is far more likely than asthma here.", OPTIONS, "C"),
    ("The answer is asthma or croup.", OPTIONS, None),
    ("Final answer: asthma and COPD", OPTIONS, None),
    ("It is either asthma or croup.", OPTIONS, None),
    # 5. \boxed{x = B}: the right-hand side; a box cut off at the end of a truncated response
    (r"\boxed{x = B}", OPTIONS, "B"),
    (r"The option is $\boxed{\text{ans} = \text{C}}$.", OPTIONS, "C"),
    ("So the final answer is \\boxed{D", OPTIONS, "D"),
    ("<think>long reasoning</think>\n\nThe answer is \\boxed{\\text{Croup", OPTIONS, "C"),
    ("\\boxed{B\n\nbut then the text goes on without closing it", OPTIONS, None),
    # 6. Chinese answer cues
    ("因此，答案是C。", OPTIONS, "C"),
    ("分析如上。\n答案：B", OPTIONS, "B"),
    ("正确答案为D", OPTIONS, "D"),
    ("综上所述，正确答案是 b。", OPTIONS, "B"),
    ("答案是B选项", OPTIONS, "B"),
    # 7. a \boxed{} answer is final: prose after it does not override it
    (r"\boxed{B}. In adults, though, the answer is C.", OPTIONS, "B"),
    (
        "The final answer is \\boxed{A}.\n\nNote: option D is correct only if the film shows honeycombing.",
        OPTIONS,
        "A",
    ),
    ("<think>...</think>\\boxed{C}\n\nAnswer: A", OPTIONS, "C"),
    # 8. an option text beginning with "A " is that option, not the letter A
    (r"\boxed{A bacterial infection}", INFECTIONS, "B"),
    ("The answer is a defect in collagen synthesis.", INFECTIONS, "D"),
    ("The answer is A viral infection.", INFECTIONS, "A"),
    ("The answer is A bacterial process.", INFECTIONS, None),
    ("The answer is A because of the wheeze.", OPTIONS, "A"),
    ("The answer is B cells.", CELLS, None),
    # 9. options spanning several lines match with whitespace normalised
    ("The answer is Step 1: heparin Step 2: warfarin.", MULTILINE, "B"),
    ("Final answer:\nStep 1: heparin\nStep 2:   warfarin\n", MULTILINE, "B"),
    (r"\boxed{| drug | dose | | alteplase | 0.9 mg/kg |}", MULTILINE, "C"),
    ("The answer is observation.", MULTILINE, "D"),
]


@pytest.mark.parametrize(("text", "options", "expected"), CASES + ISSUE_CASES)
def test_extract_choice(text, options, expected):
    assert extract_choice(text, options) == expected


def test_the_case_table_is_large():
    assert len(CASES) >= 60


def test_grade_compares_with_the_reference():
    assert grade("The answer is (B).", OPTIONS, "B")
    assert not grade("The answer is (B).", OPTIONS, "C")
    assert not grade("The answer is B or C.", OPTIONS, "B")


def test_unicode_that_changes_length_when_lower_cased():
    # "İ".lower() is two characters, so anchor positions would be shifted: the regex scan takes over.
    assert extract_choice("İİİ The answer is (C). İ", OPTIONS) == "C"


def test_non_string_input_gives_no_answer():
    assert extract_choice(None, OPTIONS) is None  # type: ignore[arg-type]
    assert extract_choice("The answer is A", {}) is None


FRAGMENTS = [
    r"\boxed{",
    "}",
    r"\text{",
    "The answer is",
    "answer:",
    "**",
    "(",
    ")",
    "<think>",
    "</think>",
    "A",
    "b",
    "C",
    " or ",
    " and ",
    ",",
    "\n",
    "Croup",
    "$",
    "\\",
    "option ",
    "Final answer",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=40))
def test_never_raises_and_returns_an_option_key(pieces):
    result = extract_choice("".join(pieces), OPTIONS)
    assert result is None or result in OPTIONS


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000), st.sampled_from(sorted(OPTIONS)))
def test_a_trailing_boxed_letter_wins_over_any_prefix(prefix, letter):
    # Whatever came before (possibly an unclosed \boxed{ or </think>), a final box decides.
    assert extract_choice(prefix + "\n\nThe final answer is \\boxed{" + letter + "}", OPTIONS) in (
        letter,
        None,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from("ABCDEFGHIJ"), st.text(max_size=15), min_size=1), st.text(max_size=200)
)
def test_arbitrary_options_never_raise(options, text):
    result = extract_choice(text, options)
    assert result is None or result in options


def test_seeded_fuzz_of_random_bytes():
    rng = random.Random(0)
    alphabet = string.printable + "{}\\<>/éü→∴"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        result = extract_choice(text, MMLU_PRO)
        assert result is None or result in MMLU_PRO


def test_tiny_corpus_responses_grade_as_their_answers():
    from medreason.testing import tiny_records

    for record in tiny_records(24):
        assert grade(record["response"], record["options"], record["answer"])
