import pytest

from medreason.synth.prompts import TEMPLATE_DIR, PromptTemplate, load_template
from medreason.synth.taxonomy import DEPARTMENTS, PRIMARY_DESCRIPTIONS

OPTIONS = {"A": "Asthma", "B": "COPD"}
VARIABLES = {
    "finemed_instructions.j2": dict(text="TSH is low."),
    "finemed_score.j2": dict(instruction="Why is TSH low?"),
    "finemed_answers.j2": dict(instruction="Why?", text="TSH."),
    "finemed_long_form.j2": dict(instruction="Why?", text="TSH."),
    "finemed_department.j2": dict(
        instruction="Q", response="R", departments=PRIMARY_DESCRIPTIONS, parent=None, allow_none=False
    ),
    "reasonmed_generate.j2": dict(question="Q?", options=OPTIONS, answer="A"),
    "reasonmed_verify.j2": dict(question="Q?", options=OPTIONS, answer="A", cot="c"),
    "reasonmed_rank.j2": dict(
        question="Q?",
        options=OPTIONS,
        answer="A",
        candidates=[{"cot": "c1", "verdict": "Correct", "reason": ""}],
    ),
    "reasonmed_refine.j2": dict(question="Q?", options=OPTIONS, answer="A", cot="c", reason="r"),
    "reasonmed_regenerate.j2": dict(question="Q?", options=OPTIONS, answer="A"),
    "reasonmed_summarize.j2": dict(question="Q?", options=OPTIONS, answer="A", cot="c"),
    "ii_medical_trace.j2": dict(question="Q?", options=OPTIONS),
}


def test_every_shipped_template_renders_with_its_documented_variables():
    assert sorted(p.name for p in TEMPLATE_DIR.glob("*.j2")) == sorted(VARIABLES)
    for name, variables in VARIABLES.items():
        text = load_template(name).render(**variables)
        assert text and "{{" not in text and "{%" not in text, name


def test_department_prompt_lists_the_choices_of_its_level():
    template = load_template("finemed_department.j2")
    text = template.render(
        instruction="Q",
        response="R",
        departments=DEPARTMENTS["Internal Medicine"],
        parent="Internal Medicine",
        allow_none=True,
    )
    assert (
        "sub-specialty of Internal Medicine" in text and "- Endocrinology:" in text and "answer None" in text
    )
    assert "Surgery:" not in text


def test_missing_variables_and_unknown_templates_are_errors(tmp_path):
    with pytest.raises(ValueError, match="'instruction' is undefined; this step passes \\['text'\\]"):
        load_template("finemed_score.j2").render(text="x")
    with pytest.raises(FileNotFoundError, match="shipped templates \\(finemed_answers.j2"):
        load_template("nope.j2")
    with pytest.raises(ValueError, match="line 1: invalid Jinja template"):
        PromptTemplate("{% if %}", "inline")
    custom = tmp_path / "mine.j2"
    custom.write_text("Rate: {{ instruction }}")
    assert load_template(str(custom)).render(instruction="Why?") == "Rate: Why?"
