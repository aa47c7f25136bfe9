"""Decontamination: normalisation, 10-gram and fuzzy hits, and false removals on real benchmarks."""

from __future__ import annotations

import random

import pytest
from rapidfuzz import fuzz, process

from medreason.curate.benchmarks import BenchmarkItem, load_benchmarks, read_benchmark_file
from medreason.curate.decontaminate import DecontamConfig, Decontaminator, match_records, normalise
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
    assert literal.method == "ngram" and "next step in management" in literal.evidence


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
    """Against every other benchmark: the literal rule removes ~47% of MedQA, the default < 1%.

    The few default-mode hits are MedBullets items rewritten from MedQA questions (true overlaps).
    """
    prompts = [item.question for item in read_benchmark_file(eval_dir / "medqa.jsonl")]
    items = [item for item in load_benchmarks(eval_dir) if item.benchmark != "medqa"]
    default = Decontaminator(items).match_texts(prompts)
    literal = Decontaminator(items, DecontamConfig(mode="literal")).match_texts(prompts)
    assert sum(m is not None for m in default) / len(prompts) < 0.01
    assert sum(m is not None for m in literal) / len(prompts) > 0.3
    assert {m.benchmark for m in default if m is not None} <= {"medbullets_op4"}


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
