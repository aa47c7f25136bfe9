"""Decontamination: normalisation, 10-gram and fuzzy hits, and false removals on real benchmarks."""

from __future__ import annotations

import random

import pytest
from rapidfuzz import fuzz, process

from medreason.curate.benchmarks import BenchmarkItem, load_benchmarks, read_benchmark_file
from medreason.curate.decontaminate import (
    DecontamConfig,
    Decontaminator,
    literal_words,
    match_records,
    normalise,
)
from medreason.curate.records import TraceRecord

VIGNETTE = (
    "A 34-year-old woman comes to the emergency department because of sudden shortness of breath and "
    "pleuritic chest pain that began two hours after a long-haul flight from Singapore. Her temperature is "
    "37.2 C, pulse is 118/min, and oxygen saturation is 91% on room air. Which of the following is the most "
    "appropriate next step in management?"
)
SHORT = "Drug of choice for the treatment of absence seizures in children is:"
ITEMS = [BenchmarkItem("medqa", "v1", VIGNETTE), BenchmarkItem("medmcqa", "s1", SHORT)]


def test_normalise_rule() -> None:
    assert normalise("Oxygen  saturation: 98%\u00a0on ROOM-air.") == "oxygen saturation 98 on room air"
    assert normalise("ﬁbrosis") == "fibrosis"  # NFKC folds the ligature


def test_exact_and_case_punctuation_copies() -> None:
    decon = Decontaminator(ITEMS)
    edited = VIGNETTE.upper().replace(",", "").replace(".", " ;")
    results = decon.match_texts([VIGNETTE, edited, SHORT.lower().rstrip(":") + "?"])
    assert [r.method for r in results] == ["exact", "exact", "exact"]
    assert results[0].benchmark_id == "v1" and results[2].benchmark_id == "s1"


def test_ten_gram_hit_inside_a_longer_prompt() -> None:
    decon = Decontaminator(ITEMS)
    prompt = (
        "Please answer the USMLE question below.\n\n"
        + VIGNETTE
        + "\nA. CT angiography\nB. D-dimer\nC. Heparin"
    )
    (result,) = decon.match_texts([prompt])
    assert result.method == "ngram" and result.benchmark_id == "v1" and result.score > 0.9
    assert len(result.evidence.split()) == 10 and result.evidence in normalise(VIGNETTE)


def test_fuzzy_hit_for_a_word_or_two_changed() -> None:
    decon = Decontaminator(ITEMS)
    edited_short = "Drug of choice for treatment of absence seizure in children is"
    edited_vignette = (
        VIGNETTE.replace("34-year-old", "35-year-old").replace("sudden", "acute").replace("two", "2")
    )
    results = decon.match_texts([edited_short, edited_vignette])
    assert results[0].method == "fuzzy" and results[0].benchmark_id == "s1" and results[0].score >= 90
    assert results[1].benchmark_id == "v1" and results[1].method in ("ngram", "fuzzy")


def test_short_stems_without_rare_words_are_scanned() -> None:
    """A stem made only of words too common to block on is still compared, by the length-bounded scan."""
    stems = [
        "Which of the following statements is not true?",
        "Which of the following statements about the kidney is true?",
        "Which of the following is not true about the liver?",
    ]
    items = [BenchmarkItem("b", str(i), q) for i, q in enumerate(stems)]
    edited = "Which of the following statements is not patient?"
    (found,) = Decontaminator(items, DecontamConfig(block_max_df=1)).match_texts([edited])
    assert found.method == "fuzzy" and found.benchmark_id == "0"
    assert Decontaminator(items, DecontamConfig(block_max_df=1, scan_max_words=0)).match_texts([edited]) == [
        None
    ]


def test_boilerplate_alone_is_not_a_hit_by_default_but_is_in_literal_mode() -> None:
    questions = [
        f"A {age}-year-old man has {finding}. Which of the following is the most appropriate next step in "
        "management of this patient?"
        for age, finding in [
            (30 + i, f) for i, f in enumerate(["fever", "cough", "rash", "syncope", "ascites", "jaundice"])
        ]
    ]
    items = [BenchmarkItem("bench", str(i), q) for i, q in enumerate(questions)]
    clean = (
        "A 71-year-old woman has had progressive dysphagia to solids for three months with weight loss. "
        "Which of the following is the most appropriate next step in management of this patient?"
    )
    assert Decontaminator(items).match_texts([clean]) == [None]
    literal = Decontaminator(items, DecontamConfig(mode="literal", fuzzy=False)).match_texts([clean])[0]
    assert literal.method == "ngram" and "most appropriate next step" in literal.evidence


def _literal(questions: list[str], n: int = 10) -> Decontaminator:
    items = [BenchmarkItem("bench", str(i), q) for i, q in enumerate(questions)]
    return Decontaminator(items, DecontamConfig(mode="literal", ngram=n, fuzzy=False))


def test_literal_words_keep_punctuation() -> None:
    assert literal_words(" Fever,  cough\tand RASH. ") == ["fever,", "cough", "and", "rash."]
    assert literal_words("") == []


@pytest.mark.parametrize(
    ("record", "question", "n", "literal_hit", "overlap_hit"),
    [
        # the same words with punctuation moved: every 10-gram differs, so open-r1 keeps the record
        (
            "the patient has fever cough and rash for two days",
            "The patient has fever, cough, and rash for two days.",
            10,
            False,
            True,
        ),
        # case and spacing do not matter, punctuation that stays put matches
        (
            "THE  PATIENT has fever,\ncough, and rash for two days.",
            "The patient has fever, cough, and rash for two days.",
            10,
            True,
            True,
        ),
        # a hyphen joins two words into one: "room-air." is not "room air."
        (
            "saturation is 91% on room air. Which drug is best?",
            "Saturation is 91% on room-air. Which drug is best?",
            8,
            False,
            True,
        ),
        # a question pasted into a longer prompt: one shared 8-gram (punctuation included) is enough
        (
            "Unrelated stem. saturation is 91% on room-air. Which drug is best? More text here.",
            "Saturation is 91% on room-air. Which drug is best?",
            8,
            True,
            True,
        ),
        # texts shorter than n words never match, even when identical
        ("Drug of choice for absence seizures?", "Drug of choice for absence seizures?", 10, False, True),
        (
            "Drug of choice for absence seizures in children?",
            "Drug of choice for absence seizures in children?",
            8,
            True,
            True,
        ),
    ],
)
def test_literal_is_open_r1s_rule_where_punctuation_decides(
    record, question, n, literal_hit, overlap_hit
) -> None:
    assert (_literal([question], n).match_texts([record])[0] is not None) == literal_hit
    overlap = Decontaminator([BenchmarkItem("bench", "0", question)], DecontamConfig(ngram=n))
    assert (overlap.match_texts([record])[0] is not None) == overlap_hit


def test_literal_evidence_and_score() -> None:
    question = "Saturation is 91% on room-air. Which drug is best?"
    (match,) = _literal([question], 8).match_texts(
        ["saturation is 91% on room-air. which drug is best? thanks"]
    )
    assert match.method == "ngram" and match.benchmark_id == "0"
    assert match.evidence in " ".join(literal_words(question)) and len(match.evidence.split()) == 8
    assert match.score == pytest.approx(2 / 3)  # 2 of the record's 3 eight-grams are the question's


def test_response_check_is_optional() -> None:
    record = TraceRecord(
        0, "r", "src", "Explain pulmonary embolism risk factors.", "Recall: " + VIGNETTE, "Heparin.", True
    )
    decon = Decontaminator(ITEMS)
    assert match_records(decon, [record]) == [None]
    (result,) = match_records(decon, [record], check_response=True)
    assert result[0] == "response" and result[1].benchmark_id == "v1"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="overlap"):
        DecontamConfig(mode="strict")
    with pytest.raises(ValueError, match="percentage"):
        DecontamConfig(fuzzy_threshold=0)
    with pytest.raises(ValueError, match="at least one"):
        Decontaminator([])


# ---- real benchmarks (../shared/data/eval) ------------------------------------------------------


@pytest.fixture(scope="module")
def eval_dir(shared_data):
    return shared_data / "eval"


def _edit(question: str, rng: random.Random, words: int) -> str:
    tokens = question.split()
    for _ in range(words):
        tokens[rng.randrange(len(tokens))] = rng.choice(["patient", "severe", "chronic", "acute"])
    text = " ".join(tokens)
    return (text.upper() if rng.random() < 0.5 else text.lower()).replace(",", "").replace(".", ";")


def test_false_removal_rate_medqa_against_medmcqa(eval_dir) -> None:
    """Clean MedQA vignettes checked against MedMCQA: the default mode removes (almost) none."""
    prompts = [item.question for item in read_benchmark_file(eval_dir / "medqa.jsonl")]
    items = read_benchmark_file(eval_dir / "medmcqa.jsonl")
    default = sum(m is not None for m in Decontaminator(items).match_texts(prompts)) / len(prompts)
    literal_decon = Decontaminator(items, DecontamConfig(mode="literal"))
    literal = sum(m is not None for m in literal_decon.match_texts(prompts)) / len(prompts)
    assert default <= 0.002
    assert literal > default  # the literal rule removes clean vignettes on shared boilerplate


def test_false_removal_rate_medqa_against_the_rest_of_the_suite(eval_dir) -> None:
    """Against every other benchmark: the literal rule removes ~34% of MedQA, the default < 1%.

    The few default-mode hits are MedBullets items rewritten from MedQA questions (true overlaps).
    """
    prompts = [item.question for item in read_benchmark_file(eval_dir / "medqa.jsonl")]
    items = [item for item in load_benchmarks(eval_dir) if item.benchmark != "medqa"]
    default = Decontaminator(items).match_texts(prompts)
    literal = Decontaminator(items, DecontamConfig(mode="literal")).match_texts(prompts)
    assert sum(m is not None for m in default) / len(prompts) < 0.01
    assert sum(m is not None for m in literal) / len(prompts) > 0.3
    assert {m.benchmark for m in default if m is not None} <= {"medbullets_op4"}


def _open_r1_contaminated(records: list[str], questions: list[str], n: int) -> list[bool]:
    """open-r1's scripts/decontaminate.py, reimplemented: normalize_string, word_ngrams, any()."""

    def ngrams(text: str) -> set[str]:
        words = " ".join(text.lower().strip().split()).split()
        return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}

    lookup = set().union(*(ngrams(question) for question in questions))
    return [any(gram in lookup for gram in ngrams(record)) for record in records]


@pytest.mark.parametrize("n", [8, 10])
def test_literal_matches_open_r1_on_real_questions(eval_dir, n) -> None:
    """300 MedQA stems (and 100 with punctuation dropped or moved) against MedBullets-4 and MMLU-Pro."""
    rng = random.Random(n)
    medqa = [item.question for item in read_benchmark_file(eval_dir / "medqa.jsonl")]
    records = rng.sample(medqa, 300)
    records += [q.replace(", ", " , ") if i % 2 else q.replace(".", "") for i, q in enumerate(records[:100])]
    questions = [
        item.question
        for name in ("medbullets_op4", "mmlu_pro_medical")
        for item in read_benchmark_file(eval_dir / f"{name}.jsonl")
    ]
    expected = _open_r1_contaminated(records, questions, n)
    found = [match is not None for match in _literal(questions, n).match_texts(records)]
    assert found == expected
    assert 50 < sum(expected) < len(records) - 50  # both outcomes are well represented


@pytest.mark.parametrize("name", ["medqa", "medmcqa"])
def test_edited_copies_are_caught_and_blocking_loses_nothing(eval_dir, name) -> None:
    """Copies with case, punctuation and 1-2 words changed: every pair a brute-force
    ``fuzz.ratio >= 90`` scan over all questions finds is also found through the blocked index."""
    rng = random.Random(0)
    items = read_benchmark_file(eval_dir / f"{name}.jsonl")
    sample = rng.sample(items, 60)
    edited = [_edit(item.question, rng, words) for item in sample for words in (1, 2)]
    decon = Decontaminator(items)
    results = decon.match_texts(edited)
    brute = [
        process.extractOne(normalise(text), decon.texts, scorer=fuzz.ratio, score_cutoff=90)
        for text in edited
    ]
    assert all(found is not None for found, wanted in zip(results, brute, strict=True) if wanted is not None)
    if name == "medqa":  # long vignettes: nearly every edited copy is caught
        assert sum(r is not None for r in results) >= 0.98 * len(edited)
