"""A small synthetic medical reasoning corpus, written for this repository.

The ``tiny`` recipe and the tests need data that ships with the package (the real samples in
``shared/data`` may not be redistributed). Each record is a short multiple-choice vignette with a
reasoning trace, an answer and the FineMed-style department labels the curriculum filters on.
The facts are simplified textbook associations, good enough to give a tiny model something learnable.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medreason.data.chat_templates import format_reasoning
from medreason.testing.openai_server import prompt_of
from medreason.utils.jsonl import write_jsonl

# (primary department, secondary department, finding, diagnosis or drug, distractors, explanation)
_FACTS: tuple[tuple[str, str, str, str, tuple[str, str, str], str], ...] = (
    ("Internal Medicine", "Endocrinology", "a low TSH with a high free T4", "hyperthyroidism",
     ("hypothyroidism", "Addison disease", "Cushing syndrome"),
     "TSH falls when thyroid hormone is in excess, so low TSH with high T4 points to a primary overactive gland."),
    ("Internal Medicine", "Endocrinology", "polyuria, polydipsia and a fasting glucose of 140 mg/dL", "diabetes mellitus",
     ("diabetes insipidus", "hypercalcaemia", "psychogenic polydipsia"),
     "A fasting glucose of 126 mg/dL or more on this background meets the threshold for diabetes mellitus."),
    ("Internal Medicine", "Endocrinology", "hyperpigmentation, hyponatraemia and hyperkalaemia", "Addison disease",
     ("Conn syndrome", "hyperthyroidism", "SIADH"),
     "Loss of adrenal cortisol and aldosterone raises ACTH (pigment) and potassium while sodium is lost."),
    ("Internal Medicine", "Endocrinology", "central obesity, purple striae and high late-night cortisol", "Cushing syndrome",
     ("Addison disease", "hypothyroidism", "acromegaly"),
     "Chronic cortisol excess redistributes fat centrally and thins the skin, leaving wide purple striae."),
    ("Internal Medicine", "Cardiology", "crushing chest pain with ST elevation in leads II, III and aVF", "inferior myocardial infarction",
     ("anterior myocardial infarction", "pericarditis", "aortic dissection"),
     "Leads II, III and aVF face the inferior wall, usually supplied by the right coronary artery."),
    ("Internal Medicine", "Cardiology", "an irregularly irregular pulse with no P waves", "atrial fibrillation",
     ("atrial flutter", "sinus arrhythmia", "ventricular tachycardia"),
     "Chaotic atrial activity replaces P waves and conducts irregularly to the ventricles."),
    ("Internal Medicine", "Respiratory Medicine", "wheeze that reverses after a bronchodilator", "asthma",
     ("COPD", "pulmonary fibrosis", "pneumothorax"),
     "Reversible airflow obstruction is the hallmark of asthma rather than fixed COPD."),
    ("Internal Medicine", "Gastroenterology", "epigastric pain relieved by meals and a positive urea breath test", "duodenal ulcer",
     ("gastric cancer", "cholecystitis", "pancreatitis"),
     "Helicobacter pylori drives duodenal ulcers, whose pain typically eases with food."),
    ("Surgery", "General Surgery", "periumbilical pain moving to the right iliac fossa", "acute appendicitis",
     ("diverticulitis", "ovarian torsion", "renal colic"),
     "Visceral pain from the appendix starts centrally, then localises as the parietal peritoneum is irritated."),
    ("Surgery", "Orthopedics", "a shortened, externally rotated leg after a fall", "neck of femur fracture",
     ("hip dislocation", "pelvic fracture", "knee effusion"),
     "The pull of the iliopsoas and gluteal muscles shortens and externally rotates the leg after the fracture."),
    ("Pediatrics", "Pediatric Internal Medicine", "a barking cough and inspiratory stridor in a toddler", "croup",
     ("epiglottitis", "bronchiolitis", "foreign body"),
     "Parainfluenza swells the subglottic airway, which gives the barking cough and stridor."),
    ("Obstetrics and Gynecology", "Obstetrics", "hypertension and proteinuria after 20 weeks of pregnancy", "pre-eclampsia",
     ("gestational hypertension", "HELLP syndrome", "chronic hypertension"),
     "New hypertension with proteinuria after 20 weeks defines pre-eclampsia."),
)

_STEMS = (
    "A {age}-year-old patient presents with {finding}. What is the most likely diagnosis?",
    "Which diagnosis best explains {finding} in a {age}-year-old?",
    "A clinician sees a {age}-year-old with {finding}. Which condition is most likely?",
)

_LETTERS = ("A", "B", "C", "D")


def tiny_records(num_records: int = 96, seed: int = 0) -> list[dict[str, Any]]:
    """Return ``num_records`` synthetic reasoning records, the same for the same ``seed``.

    Each record has the ReasonMed/HuatuoGPT shape ``{question, cot, response}`` plus ``id``,
    ``answer`` (a letter), ``options``, ``department`` and ``subdepartment``.

    >>> records = tiny_records(4)
    >>> sorted(records[0])
    ['answer', 'cot', 'department', 'id', 'options', 'question', 'response', 'subdepartment']
    """
    rng = random.Random(seed)
    records = []
    for index in range(num_records):
        department, subdepartment, finding, truth, distractors, why = _FACTS[index % len(_FACTS)]
        choices = [truth, *distractors]
        rng.shuffle(choices)
        options = dict(zip(_LETTERS, choices, strict=True))
        answer = _LETTERS[choices.index(truth)]
        stem = rng.choice(_STEMS).format(age=rng.randint(18, 80) if department != "Pediatrics" else 3, finding=finding)
        question = stem + "\n" + "\n".join(f"{letter}. {text}" for letter, text in options.items())
        records.append(
            {
                "id": f"tiny-{index:05d}",
                "question": question,
                "cot": f"The key finding is {finding}. {why} The other options do not fit as well, so the answer is {truth}.",
                "response": f"The most likely answer is {answer}. {truth}.\n\\boxed{{{answer}}}",
                "answer": answer,
                "options": options,
                "department": department,
                "subdepartment": subdepartment,
            }
        )
    return records


def preference_pairs(records: list[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """DPO pairs from reasoning records: the real answer chosen over a degraded one.

    ``chosen`` is ``<think>{cot}</think>{response}``; ``rejected`` keeps only the first sentence of the
    reasoning and boxes a wrong option. Works on :func:`tiny_records` and on HuatuoGPT-o1-style
    records whose options sit under ``mcq.options`` (the shared real training samples).

    >>> pair = preference_pairs(tiny_records(1))[0]
    >>> pair["chosen"].startswith("<think>") and pair["rejected"] != pair["chosen"]
    True
    """
    rng = random.Random(seed)
    pairs = []
    for record in records:
        options = record.get("options") or record.get("mcq", {}).get("options") or {"A": "", "B": "", "C": "", "D": ""}
        answer = record.get("answer") or record.get("mcq", {}).get("answer")
        wrong = rng.choice(sorted(letter for letter in options if letter != answer))
        first_sentence = record["cot"].split(". ")[0].rstrip(".") + "."
        pairs.append(
            {
                "id": record.get("id"),
                "prompt": record["question"],
                "chosen": format_reasoning(record["cot"], record["response"]),
                "rejected": format_reasoning(first_sentence, f"The answer is {wrong}.\n\\boxed{{{wrong}}}"),
            }
        )
    return pairs


def tiny_preference_records(num_records: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """:func:`preference_pairs` of :func:`tiny_records`: the built-in DPO data of the ``tiny`` recipe."""
    return preference_pairs(tiny_records(num_records, seed), seed)


def tiny_benchmark_records(num_records: int = 24, seed: int = 1) -> list[dict[str, Any]]:
    """Multiple-choice items in the evaluation schema (``id, question, options, answer, source``).

    The ``tiny`` recipe's built-in benchmark: the same facts as :func:`tiny_records`, drawn with
    another seed, with the stem alone as ``question`` (the evaluation prompt lists the options).
    """
    return [
        {
            "id": f"tiny-mcq-{index:04d}",
            "question": record["question"].split("\n")[0],
            "options": record["options"],
            "answer": record["answer"],
            "source": "tiny_mcq",
        }
        for index, record in enumerate(tiny_records(num_records, seed))
    ]


def write_tiny_benchmark(directory: Path) -> Path:
    """Write :func:`tiny_benchmark_records` to ``directory/tiny_mcq.jsonl`` and return the path.

    Written beside and renamed into place, so the ranks of a data-parallel evaluation, which all write
    it, never read a file another rank is truncating.
    """
    path = Path(directory) / "tiny_mcq.jsonl"
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    write_jsonl(partial, tiny_benchmark_records())
    os.replace(partial, path)
    return path


def tiny_teacher(records: list[dict[str, Any]]) -> Callable[[dict[str, Any], int], str]:
    """A deterministic stand-in for the teacher model of synthesis (QwQ-32B in the II-Medical card).

    Serve it with :class:`~medreason.testing.openai_server.FakeLLMServer`: for a prompt holding one of
    ``records``' questions, choice 0 of every request is the record's reasoning trace with the right
    boxed letter and every later choice boxes a wrong one, so rejection sampling has something to
    keep and something to drop. A prompt about none of the records gets an answer without a box.

    >>> records = tiny_records(2)
    >>> teacher = tiny_teacher(records)
    >>> body = {"messages": [{"role": "user", "content": records[0]["question"]}]}
    >>> teacher(body, 0).endswith("\\\\boxed{" + records[0]["answer"] + "}")
    True
    >>> teacher(body, 1).endswith("\\\\boxed{" + records[0]["answer"] + "}")
    False
    """
    by_stem = {record["question"].split("\n")[0]: record for record in records}

    def answer(body: dict[str, Any], choice: int) -> str:
        prompt = prompt_of(body)
        record = next((r for stem, r in by_stem.items() if stem in prompt), None)
        if record is None:
            return "I cannot tell which question this is."
        if choice == 0:
            return format_reasoning(record["cot"], record["response"])
        wrong = next(letter for letter in record["options"] if letter != record["answer"])
        return format_reasoning(record["cot"], f"The answer is {wrong}.\n\\boxed{{{wrong}}}")

    return answer
