"""FineMedLM-o1 data synthesis: medical texts → scored instructions → SFT, long-form SFT and DPO data.

Source: Yu et al. 2025, "FineMedLM-o1" (arXiv:2501.09213), Section 2.1-2.2, Appendices A, B and D.
Steps and LLM calls per input text (``R`` = retries of unparseable answers, 0 when all parse):

==============  ======================  =========================================================
step            role (paper's model)    calls
==============  ======================  =========================================================
instructions    ``generator`` (Qwen)    1 per text → two questions
score           ``judge`` (Qwen)        1 per question (2 per text)
select          —                       Algorithm 1 keeps at most one question per text
answers         ``common`` (Qwen)       1 per kept question → two answers in different styles
reward          reward model            2 forward passes per kept question → the better answer
long_form       ``complex`` (QwQ)       1 per complex question (complexity ≥ 8) → Thought + Summary
department      ``classifier`` (Qwen)   1 per SFT record → one of 6 departments
subdepartment   ``classifier`` (Qwen)   1 per SFT record → one of its sub-departments or None
==============  ======================  =========================================================

so ``3 + 3k + ck`` calls per text, where ``k`` ≤ 1 is the share of texts that keep a question and
``c`` the share of kept questions that are complex. Outputs in ``output/``:

- ``sft.jsonl``: common questions with the reward model's pick, ``{id, instruction, response,
  department, subdepartment, ...scores}`` (the curriculum stages filter on the last two fields);
- ``sft_long_form.jsonl``: complex questions with long-form reasoning, ``{id, question, cot, response,
  department, subdepartment}``;
- ``dpo.jsonl``: ``{id, prompt, chosen, rejected}``, chosen = ``<think>cot</think>summary`` from the
  complex role, rejected = the common role's answer;
- ``instructions.jsonl``: every scored question with its scores and what Algorithm 1 decided.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medreason.data.chat_templates import format_reasoning
from medreason.synth.cache import CallCache
from medreason.synth.parsing import (
    parse_answer_pair,
    parse_instruction_pair,
    parse_instruction_scores,
    parse_label,
    parse_long_form,
)
from medreason.synth.prompts import load_template
from medreason.synth.reward import RewardModel
from medreason.synth.runner import Call, Role, SynthRunner
from medreason.synth.selection import (
    COMPLEXITY_THRESHOLD,
    InstructionScores,
    compare_instruction_scores,
    is_complex,
)
from medreason.synth.taxonomy import DEPARTMENTS, PRIMARY_DESCRIPTIONS
from medreason.utils.jsonl import RecordError, describe_value, read_jsonl, write_jsonl
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

__all__ = ["FINEMED_ROLES", "FineMedSettings", "load_texts", "run_finemed"]

FINEMED_ROLES = ("generator", "judge", "common", "complex", "classifier")
DEFAULT_TEMPLATES = {
    "instructions": "finemed_instructions.j2",
    "score": "finemed_score.j2",
    "answers": "finemed_answers.j2",
    "long_form": "finemed_long_form.j2",
    "department": "finemed_department.j2",
}


@dataclass
class FineMedSettings:
    """Settings of the FineMedLM-o1 pipeline beyond the roles.

    Args:
        complexity_threshold: Complexity at or above which a question is complex (paper: 8).
        reward_model: Sequence-classification checkpoint choosing between the two common answers
            (paper: sfairXC/FsfairX-LLaMA3-RM-v0.1); ``None`` keeps ``answer1`` and says so in each record.
        reward_batch_size: Pairs per reward-model forward pass.
        reward_max_length: Tokens per scored pair.
        classify: Run the two-level department classification.
        seed: Seeds Algorithm 1's final coin flip (per text, so reruns decide the same way).
        templates: Step → template file name or path (see :data:`DEFAULT_TEMPLATES`).
        departments: Department → {sub-department: description}.
        department_descriptions: Department → description, for the first-level prompt.
    """

    complexity_threshold: int = COMPLEXITY_THRESHOLD
    reward_model: str | None = None
    reward_batch_size: int = 8
    reward_max_length: int = 4096
    classify: bool = True
    seed: int = 0
    templates: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    departments: dict[str, dict[str, str]] = field(default_factory=lambda: DEPARTMENTS)
    department_descriptions: dict[str, str] = field(default_factory=lambda: PRIMARY_DESCRIPTIONS)

    def __post_init__(self) -> None:
        if not 1 <= self.complexity_threshold <= 10:
            raise ValueError(f"complexity_threshold must be from 1 to 10, got {self.complexity_threshold}.")
        unknown = sorted(set(self.templates) - set(DEFAULT_TEMPLATES))
        if unknown:
            raise ValueError(f"templates: unknown steps {unknown}; the steps are {list(DEFAULT_TEMPLATES)}.")
        self.templates = {**DEFAULT_TEMPLATES, **self.templates}
        missing = sorted(set(self.departments) - set(self.department_descriptions))
        if missing:
            raise ValueError(
                f"department_descriptions lacks {missing}: describe every department in departments."
            )


def load_texts(path: str | Path, text_field: str = "text", limit: int | None = None) -> list[tuple[str, str]]:
    """``(id, text)`` of each record of a JSONL file (``id`` defaults to ``line<N>``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RecordError: an empty file, a line that is not UTF-8 JSON, a record without a non-empty string in
            ``text_field``, or a repeated id.
    """
    texts: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line, record in read_jsonl(path):
        text = record.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise RecordError(
                str(path), f"line {line}", text_field,
                f"needs a non-empty string (the medical text), got {describe_value(text)}.",
            )
        text_id = str(record.get("id", f"line{line}"))
        if text_id in seen:
            raise RecordError(
                str(path), f"line {line}", "id", f"duplicate id {text_id!r}; ids key the outputs."
            )
        seen.add(text_id)
        texts.append((text_id, text))
        if limit is not None and len(texts) >= limit:
            break
    return texts


def _scores_record(scores: InstructionScores) -> dict[str, Any]:
    return {
        "quality": scores.quality,
        "complexity": scores.complexity,
        "relevance": scores.relevance,
        "mentions_specific_details": scores.mentions_specific_details,
    }


def _classify(
    runner: SynthRunner, role: Role, settings: FineMedSettings, dialogues: Mapping[str, tuple[str, str]]
) -> dict[str, tuple[str | None, str | None]]:
    """Two-level department of each ``id → (instruction, response)``; ``(None, None)`` when unclassified."""
    template = load_template(settings.templates["department"])
    labels = list(settings.department_descriptions)
    primary = runner.run(
        "department",
        role,
        [
            Call(
                i,
                template.messages(
                    instruction=q,
                    response=r,
                    departments=settings.department_descriptions,
                    parent=None,
                    allow_none=False,
                ),
            )
            for i, (q, r) in dialogues.items()
        ],
        lambda completions, call: parse_label(completions[0], labels),
    )
    calls = []
    for item_id, department in primary.items():
        q, r = dialogues[item_id]
        calls.append(
            Call(
                item_id,
                template.messages(
                    instruction=q,
                    response=r,
                    departments=settings.departments[department],
                    parent=department,
                    allow_none=True,
                ),
            )
        )
    secondary = runner.run(
        "subdepartment",
        role,
        calls,
        lambda completions, call: parse_label(
            completions[0], list(settings.departments[primary[call.id]]), allow_none=True
        ),
    )
    return {item_id: (primary.get(item_id), secondary.get(item_id)) for item_id in dialogues}


def run_finemed(
    texts: list[tuple[str, str]],
    roles: Mapping[str, Role],
    runner: SynthRunner,
    settings: FineMedSettings,
) -> dict[str, Any]:
    """Run the pipeline on ``(id, text)`` pairs; write the outputs into ``runner.output_dir``.

    Returns the counts and score lists the report is drawn from.
    """
    missing = [name for name in FINEMED_ROLES if name not in roles]
    if missing:
        raise ValueError(f"FineMed needs the roles {list(FINEMED_ROLES)}; missing {missing}.")
    templates = {step: load_template(spec) for step, spec in settings.templates.items()}
    output = runner.output_dir
    text_of = dict(texts)

    pairs = runner.run(
        "instructions",
        roles["generator"],
        [Call(text_id, templates["instructions"].messages(text=text)) for text_id, text in texts],
        lambda completions, call: parse_instruction_pair(completions[0]),
    )
    questions = {f"{text_id}#{k + 1}": pair[k] for text_id, pair in pairs.items() for k in (0, 1)}
    scores = runner.run(
        "score",
        roles["judge"],
        [Call(qid, templates["score"].messages(instruction=q)) for qid, q in questions.items()],
        lambda completions, call: parse_instruction_scores(completions[0]),
    )

    selected: dict[str, str] = {}  # question id → "common" | "complex"
    outcome: dict[str, str] = {}
    for text_id in pairs:
        first, second = f"{text_id}#1", f"{text_id}#2"
        if first not in scores or second not in scores:
            outcome[text_id] = "unscored"
            continue
        rng = random.Random(f"{settings.seed}:{text_id}")
        winner = compare_instruction_scores(first, second, scores[first], scores[second], rng)
        if winner is None:
            outcome[text_id] = "both_mention_details"
            continue
        selected[winner] = (
            "complex" if is_complex(scores[winner], settings.complexity_threshold) else "common"
        )
        outcome[text_id] = "kept"
    write_jsonl(
        output / "instructions.jsonl",
        (
            {
                "id": qid,
                "text_id": qid.rsplit("#", 1)[0],
                "instruction": q,
                **_scores_record(scores[qid]),
                "selected": qid in selected,
                "kind": selected.get(qid),
            }
            for qid, q in questions.items()
            if qid in scores
        ),
    )

    def instruction_calls(template: str, ids: Iterable[str]) -> list[Call]:
        """One call per instruction id, showing the instruction with the text it was written from."""
        return [
            Call(qid, templates[template].messages(instruction=questions[qid], text=text_of[qid.rsplit("#", 1)[0]]))
            for qid in ids
        ]

    answers = runner.run(
        "answers",
        roles["common"],
        instruction_calls("answers", selected),
        lambda completions, call: parse_answer_pair(completions[0]),
    )
    chosen = _choose_answers(runner, settings, questions, answers)
    complex_ids = [qid for qid, kind in selected.items() if kind == "complex"]
    long_form = runner.run(
        "long_form",
        roles["complex"],
        instruction_calls("long_form", complex_ids),
        lambda completions, call: parse_long_form(completions[0]),
    )

    common_ids = [qid for qid, kind in selected.items() if kind == "common" and qid in chosen]
    dialogues = {qid: (questions[qid], chosen[qid][0]) for qid in common_ids}
    dialogues.update({qid: (questions[qid], long_form[qid][1]) for qid in complex_ids if qid in long_form})
    departments = _classify(runner, roles["classifier"], settings, dialogues) if settings.classify else {}

    def labels(qid: str) -> dict[str, str | None]:
        department, subdepartment = departments.get(qid, (None, None))
        return {"department": department, "subdepartment": subdepartment}

    sft = [
        {
            "id": qid,
            "instruction": questions[qid],
            "response": chosen[qid][0],
            **labels(qid),
            "chosen_by": chosen[qid][1],
            **_scores_record(scores[qid]),
        }
        for qid in common_ids
    ]
    long_form_records = [
        {
            "id": qid,
            "question": questions[qid],
            "cot": long_form[qid][0],
            "response": long_form[qid][1],
            **labels(qid),
            **_scores_record(scores[qid]),
        }
        for qid in complex_ids
        if qid in long_form
    ]
    dpo = [
        {
            "id": qid,
            "prompt": questions[qid],
            "chosen": format_reasoning(*long_form[qid]),
            "rejected": chosen[qid][0],
        }
        for qid in complex_ids
        if qid in long_form and qid in chosen
    ]
    write_jsonl(output / "sft.jsonl", sft)
    write_jsonl(output / "sft_long_form.jsonl", long_form_records)
    write_jsonl(output / "dpo.jsonl", dpo)

    counts = {
        "texts": len(texts),
        "texts_with_questions": len(pairs),
        "questions_scored": len(scores),
        "kept": len(selected),
        "dropped_both_mention_details": sum(v == "both_mention_details" for v in outcome.values()),
        "dropped_unscored": sum(v == "unscored" for v in outcome.values()),
        "common": sum(kind == "common" for kind in selected.values()),
        "complex": len(complex_ids),
        "sft": len(sft),
        "sft_long_form": len(long_form_records),
        "dpo": len(dpo),
        "classified": sum(1 for d, _ in departments.values() if d is not None),
    }
    by_department: dict[str, int] = {}
    for department, subdepartment in departments.values():
        if department is not None:
            key = f"{department} / {subdepartment or '-'}"
            by_department[key] = by_department.get(key, 0) + 1
    return {
        "counts": counts,
        "departments": dict(sorted(by_department.items())),
        "histograms": {
            "quality (1-10)": [s.quality for s in scores.values()],
            "complexity (1-10)": [s.complexity for s in scores.values()],
            "medical relevance (1-6)": [s.relevance for s in scores.values()],
        },
        "files": ["instructions.jsonl", "sft.jsonl", "sft_long_form.jsonl", "dpo.jsonl"],
    }


def _choose_answers(
    runner: SynthRunner,
    settings: FineMedSettings,
    questions: Mapping[str, str],
    answers: Mapping[str, tuple[str, str]],
) -> dict[str, tuple[str, str]]:
    """Question id → (the chosen answer, how it was chosen)."""
    ids = list(answers)
    if settings.reward_model is None:
        if ids:
            logger.warning("No reward model configured (reward_model=null): keeping answer1 of each pair.")
        return {qid: (answers[qid][0], "answer1") for qid in ids}
    scorer = RewardModel(settings.reward_model, settings.reward_batch_size, settings.reward_max_length)
    cache = CallCache(runner.output_dir / "cache" / "reward.jsonl", fsync=runner.fsync)
    picks = scorer.choose([(questions[qid], *answers[qid]) for qid in ids], cache)
    return {
        qid: (answers[qid][pick], f"reward_model:answer{pick + 1}")
        for qid, pick in zip(ids, picks, strict=True)
    }
