"""ReasonMed multi-agent chain-of-thought synthesis for multiple-choice medical questions.

Source: Sun et al. 2025, "ReasonMed: A 370K Multi-Agent Generated Dataset" (arXiv:2506.09513),
dataset card "Data Generation & Curation Pipeline". Per question:

===========  =====================  ==========================================================
step         role (paper's model)   calls
===========  =====================  ==========================================================
generate     3 ``generators``       3 generators × temperatures {0.7, 0.9, 1.0} = 9 chains
verify       ``verifier``           9: each chain Correct or Error (with a reason) vs the reference
rank         ``ranker``             1 for Easy (0-4 errors: keep the best 2 correct chains) and
                                    Medium (5-7 errors: pick the best 2 of all 9)
refine       ``refiner``            2 for Medium: repair the 2 picked chains using the verifier's notes
regenerate   ``strong``             1 for Difficult (8-9 errors): a fresh chain with a 6-step template;
                                    kept only if the shared grader finds the reference answer in it
summarize    ``summarizer``         1 per kept chain → the short response
===========  =====================  ==========================================================

Easy costs 21 calls, Medium 23, Difficult 20 (plus parse retries). The output ``reasonmed.jsonl``
holds ``{id, question, cot, response, answer, tier, origin}``; the SFT trainer's ``target`` selects the
dataset variant: ``think_response`` = ReasonMed (``<think>cot</think>response``), ``cot`` = CoTMed,
``response`` = ResponseMed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any

from medreason.synth.mcq import format_mcq
from medreason.synth.parsing import Verdict, parse_ranking, parse_text, parse_verdict
from medreason.synth.prompts import load_template
from medreason.synth.runner import Call, Role, SynthRunner
from medreason.tasks.grading import grade
from medreason.tasks.mcq import EvalRecord
from medreason.utils.jsonl import write_jsonl

__all__ = ["REASONMED_ROLES", "ReasonMedSettings", "run_reasonmed"]

REASONMED_ROLES = ("verifier", "ranker", "refiner", "strong", "summarizer")
DEFAULT_TEMPLATES = {
    "generate": "reasonmed_generate.j2",
    "verify": "reasonmed_verify.j2",
    "rank": "reasonmed_rank.j2",
    "refine": "reasonmed_refine.j2",
    "regenerate": "reasonmed_regenerate.j2",
    "summarize": "reasonmed_summarize.j2",
}


@dataclass
class ReasonMedSettings:
    """Settings of the ReasonMed pipeline beyond the roles.

    Args:
        generators: Role names of the chain generators (paper: Qwen-2.5-72B, DeepSeek-R1-Distill-Llama-70B,
            HuatuoGPT-o1-70B).
        temperatures: Each generator samples one chain per temperature (paper: 0.7, 0.9, 1.0).
        easy_max_errors: Most Error verdicts of an Easy question (paper: 4 of 9).
        medium_max_errors: Most Error verdicts of a Medium question (paper: 7 of 9); more is Difficult.
        keep: Chains kept per Easy/Medium question (paper: 2).
        check_regenerated: Keep a regenerated Difficult chain only if its answer matches the reference.
        templates: Step → template file name or path.
    """

    generators: list[str] = field(default_factory=lambda: ["generator_1", "generator_2", "generator_3"])
    temperatures: list[float] = field(default_factory=lambda: [0.7, 0.9, 1.0])
    easy_max_errors: int = 4
    medium_max_errors: int = 7
    keep: int = 2
    check_regenerated: bool = True
    templates: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))

    def __post_init__(self) -> None:
        if not self.generators or not self.temperatures:
            raise ValueError("generators and temperatures must each name at least one entry.")
        if not 0 <= self.easy_max_errors <= self.medium_max_errors:
            raise ValueError(
                f"need 0 <= easy_max_errors <= medium_max_errors, got {self.easy_max_errors} and "
                f"{self.medium_max_errors}."
            )
        unknown = sorted(set(self.templates) - set(DEFAULT_TEMPLATES))
        if unknown:
            raise ValueError(f"templates: unknown steps {unknown}; the steps are {list(DEFAULT_TEMPLATES)}.")
        self.templates = {**DEFAULT_TEMPLATES, **self.templates}

    def tier(self, errors: int) -> str:
        """``"easy"``, ``"medium"`` or ``"difficult"`` for a question with ``errors`` Error verdicts.

        >>> [ReasonMedSettings().tier(e) for e in (0, 4, 5, 7, 8, 9)]
        ['easy', 'easy', 'medium', 'medium', 'difficult', 'difficult']
        """
        if errors <= self.easy_max_errors:
            return "easy"
        return "medium" if errors <= self.medium_max_errors else "difficult"


@dataclass(frozen=True)
class _Chain:
    id: str
    origin: str
    cot: str
    verdict: Verdict | None = None


def run_reasonmed(
    questions: list[EvalRecord],
    roles: Mapping[str, Role],
    runner: SynthRunner,
    settings: ReasonMedSettings,
) -> dict[str, Any]:
    """Run the pipeline on validated MCQ records; write ``reasonmed.jsonl`` into ``runner.output_dir``."""
    missing = [name for name in (*settings.generators, *REASONMED_ROLES) if name not in roles]
    if missing:
        raise ValueError(
            f"ReasonMed needs the roles {[*settings.generators, *REASONMED_ROLES]}; missing {missing}."
        )
    templates = {step: load_template(spec) for step, spec in settings.templates.items()}
    by_id = {q.id: q for q in questions}

    def fields(q: EvalRecord) -> dict[str, Any]:
        return {"question": q.question, "options": q.options, "answer": q.answer}

    chains: dict[str, list[_Chain]] = {q.id: [] for q in questions}
    questions_ids = [q.id for q in questions]
    for generator in settings.generators:
        role = roles[generator]
        calls = [
            Call(
                f"{q.id}|{generator}|t{temperature}",
                templates["generate"].messages(**fields(q)),
                replace(role.sampling, temperature=temperature),
            )
            for q in questions
            for temperature in settings.temperatures
        ]
        cots = runner.run(
            f"generate_{generator}", role, calls, lambda completions, call: parse_text(completions[0])
        )
        for (qid, _), call in zip(product(questions_ids, settings.temperatures), calls, strict=True):
            if call.id in cots:
                chains[qid].append(_Chain(call.id, generator, cots[call.id]))

    verdicts = runner.run(
        "verify",
        roles["verifier"],
        [
            Call(chain.id, templates["verify"].messages(**fields(by_id[qid]), cot=chain.cot))
            for qid, items in chains.items()
            for chain in items
        ],
        lambda completions, call: parse_verdict(completions[0]),
    )
    paths = len(settings.generators) * len(settings.temperatures)
    tiers: dict[str, str] = {}
    errors: dict[str, int] = {}
    for qid, items in chains.items():
        items[:] = [replace(chain, verdict=verdicts[chain.id]) for chain in items if chain.id in verdicts]
        if len(items) == paths:  # a question with a missing chain or verdict cannot be tiered
            errors[qid] = sum(not chain.verdict.correct for chain in items)
            tiers[qid] = settings.tier(errors[qid])

    candidates = {
        qid: [c for c in chains[qid] if c.verdict.correct] if tier == "easy" else chains[qid]
        for qid, tier in tiers.items()
        if tier != "difficult"
    }
    ranked = runner.run(
        "rank",
        roles["ranker"],
        [
            Call(
                qid,
                templates["rank"].messages(
                    **fields(by_id[qid]),
                    candidates=[
                        {
                            "cot": c.cot,
                            "verdict": "Correct" if c.verdict.correct else "Error",
                            "reason": c.verdict.reason,
                        }
                        for c in items
                    ],
                ),
            )
            for qid, items in candidates.items()
        ],
        lambda completions, call: parse_ranking(
            completions[0], len(candidates[call.id]), min(settings.keep, len(candidates[call.id]))
        ),
    )
    final: dict[str, list[_Chain]] = {
        qid: [candidates[qid][i] for i in picks] for qid, picks in ranked.items() if tiers[qid] == "easy"
    }
    to_refine = {
        f"{qid}|refine{k}": (qid, candidates[qid][i])
        for qid, picks in ranked.items()
        if tiers[qid] == "medium"
        for k, i in enumerate(picks)
    }
    refined = runner.run(
        "refine",
        roles["refiner"],
        [
            Call(
                rid,
                templates["refine"].messages(
                    **fields(by_id[qid]), cot=chain.cot, reason=chain.verdict.reason
                ),
            )
            for rid, (qid, chain) in to_refine.items()
        ],
        lambda completions, call: parse_text(completions[0]),
    )
    for rid, (qid, chain) in to_refine.items():
        if rid in refined:
            final.setdefault(qid, []).append(_Chain(rid, f"{chain.origin}+refiner", refined[rid]))

    difficult = [qid for qid, tier in tiers.items() if tier == "difficult"]
    regenerated = runner.run(
        "regenerate",
        roles["strong"],
        [
            Call(f"{qid}|regenerate", templates["regenerate"].messages(**fields(by_id[qid])))
            for qid in difficult
        ],
        lambda completions, call: parse_text(completions[0]),
    )
    rejected_regenerations = 0
    for qid in difficult:
        cot = regenerated.get(f"{qid}|regenerate")
        if cot is None:
            continue
        if settings.check_regenerated and not grade(cot, by_id[qid].options, by_id[qid].answer):
            rejected_regenerations += 1
            continue
        final[qid] = [_Chain(f"{qid}|regenerate", "strong", cot)]

    kept = [(qid, chain) for qid, items in final.items() for chain in items]
    summaries = runner.run(
        "summarize",
        roles["summarizer"],
        [
            Call(chain.id, templates["summarize"].messages(**fields(by_id[qid]), cot=chain.cot))
            for qid, chain in kept
        ],
        lambda completions, call: parse_text(completions[0]),
    )
    records = [
        {
            "id": chain.id,
            "question": format_mcq(by_id[qid]),
            "cot": chain.cot,
            "response": summaries[chain.id],
            "answer": by_id[qid].answer,
            "tier": tiers[qid],
            "origin": chain.origin,
        }
        for qid, chain in kept
        if chain.id in summaries
    ]
    write_jsonl(runner.output_dir / "reasonmed.jsonl", records)
    tier_counts = Counter(tiers.values())
    return {
        "counts": {
            "questions": len(questions),
            "chains": sum(len(items) for items in chains.values()),
            "verified": len(verdicts),
            "tiered": len(tiers),
            "easy": tier_counts["easy"],
            "medium": tier_counts["medium"],
            "difficult": tier_counts["difficult"],
            "refined": len(refined),
            "regenerated": len(regenerated),
            "regenerated_wrong_answer": rejected_regenerations,
            "records": len(records),
        },
        "histograms": {f"Error verdicts per question (of {paths})": list(errors.values())},
        "files": ["reasonmed.jsonl"],
    }
