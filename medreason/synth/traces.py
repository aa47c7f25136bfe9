"""II-Medical rejection-sampled reasoning traces for multiple-choice sets.

Source: II-Medical-7B-Preview model card, "Dataset Curation" 2: QwQ traces generated for MedMCQA
(183k), MedQA (10k) and MedReason (32.7k) questions. A trace is kept only when its final answer, as
read by the shared grader (:func:`medreason.tasks.grading.grade`, the one evaluation and RL
rewards use), is the reference option.

Calls per question: one call asking for ``samples`` completions per round, for at most ``rounds``
rounds; a question leaves the loop as soon as ``keep`` correct traces are in hand. Output
``traces.jsonl``: ``{id, question, cot, response, answer}`` where ``cot`` is the ``<think>`` block and
``response`` the text after it (a trace without a block: ``cot`` is everything before its last
paragraph, ``response`` that paragraph).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from medreason.engines.base import Completion
from medreason.synth.mcq import format_mcq
from medreason.synth.parsing import split_reasoning
from medreason.synth.prompts import load_template
from medreason.synth.runner import Call, Role, SynthRunner
from medreason.tasks.grading import grade
from medreason.tasks.mcq import EvalRecord
from medreason.utils.jsonl import write_jsonl

__all__ = ["TraceSettings", "run_traces", "split_trace"]

_ROUND_SEED_STRIDE = 1_000_003  # rounds get distinct seeds (and cache keys) far from parse-retry seeds


@dataclass
class TraceSettings:
    """Settings of the II-Medical trace pipeline.

    Args:
        samples: Completions requested per question and round (``n``).
        rounds: Most rounds of sampling for a question without enough correct traces.
        keep: Correct traces kept per question.
        template: Template file name or path (variables: question, options).
    """

    samples: int = 4
    rounds: int = 2
    keep: int = 1
    template: str = "ii_medical_trace.j2"

    def __post_init__(self) -> None:
        if self.samples < 1 or self.rounds < 1 or self.keep < 1:
            raise ValueError(
                f"samples, rounds and keep must be >= 1, got {self.samples}, {self.rounds} and {self.keep}."
            )


def split_trace(text: str) -> tuple[str, str]:
    """``(cot, response)`` of a trace.

    >>> split_trace("<think>Low TSH.</think>The answer is \\\\boxed{B}.")
    ('Low TSH.', 'The answer is \\\\boxed{B}.')
    >>> split_trace("Step 1.\\n\\nStep 2.\\n\\nSo \\\\boxed{A}.")
    ('Step 1.\\n\\nStep 2.', 'So \\\\boxed{A}.')
    """
    reasoning, answer = split_reasoning(text)
    if reasoning:
        return reasoning, answer
    head, _, tail = text.strip().rpartition("\n\n")
    return head.strip(), tail.strip()


def run_traces(
    questions: list[EvalRecord],
    roles: dict[str, Role],
    runner: SynthRunner,
    settings: TraceSettings,
) -> dict[str, Any]:
    """Sample, grade and keep traces; write ``traces.jsonl`` into ``runner.output_dir``."""
    if "generator" not in roles:
        raise ValueError("The II-Medical trace pipeline needs the role 'generator' (the paper's QwQ-32B).")
    role = roles["generator"]
    template = load_template(settings.template)
    by_id = {q.id: q for q in questions}
    kept: dict[str, list[str]] = {q.id: [] for q in questions}
    correct_per_question: dict[str, int] = {q.id: 0 for q in questions}
    sampled = 0

    def grade_all(completions: list[Completion], call: Call) -> list[tuple[str, bool]]:
        record = by_id[call.id.rsplit("@", 1)[0]]
        return [
            (c.text, not c.truncated and grade(c.text, record.options, record.answer)) for c in completions
        ]

    for round_index in range(settings.rounds):
        pending = [q for q in questions if len(kept[q.id]) < settings.keep]
        if not pending:
            break
        seed = (role.sampling.seed or 0) + round_index * _ROUND_SEED_STRIDE
        sampling = replace(
            role.sampling, n=settings.samples, seed=seed if round_index else role.sampling.seed
        )
        graded = runner.run(
            "traces",
            role,
            [
                Call(
                    f"{q.id}@{round_index}",
                    template.messages(question=q.question, options=q.options),
                    sampling,
                )
                for q in pending
            ],
            grade_all,
        )
        for call_id, results in graded.items():
            qid = call_id.rsplit("@", 1)[0]
            for text, correct in results:
                sampled += 1
                correct_per_question[qid] += correct
                if correct and len(kept[qid]) < settings.keep:
                    kept[qid].append(text)

    records = []
    for qid, texts in kept.items():
        for k, text in enumerate(texts):
            cot, response = split_trace(text)
            records.append(
                {
                    "id": f"{qid}#{k}",
                    "question": format_mcq(by_id[qid]),
                    "cot": cot,
                    "response": response,
                    "answer": by_id[qid].answer,
                }
            )
    write_jsonl(runner.output_dir / "traces.jsonl", records)
    return {
        "counts": {
            "questions": len(questions),
            "traces_sampled": sampled,
            "traces_correct": sum(correct_per_question.values()),
            "questions_with_trace": sum(bool(texts) for texts in kept.values()),
            "records": len(records),
        },
        "histograms": {"Correct traces per question": list(correct_per_question.values())},
        "files": ["traces.jsonl"],
    }
