"""A small synthetic medical reasoning corpus, written for this repository.

The ``tiny`` recipe and the tests need data that ships with the package (the real samples in
``shared/data`` may not be redistributed). Each record is a short multiple-choice vignette with a
reasoning trace, an answer and the FineMed-style department labels the curriculum filters on.
The facts are simplified textbook associations, good enough to give a tiny model something learnable.
"""

from __future__ import annotations

import random
from typing import Any

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
