"""HealthBench's scoring rule: per-example rubric scores, clipped means, tag breakdowns, bootstrap error.

The rule, as in OpenAI's simple-evals ``healthbench_eval.py``:

- An example's score is the sum of the points of the criteria the response meets (negative points
  included) divided by the sum of the positive points. It is *not* clipped: it can be negative, or,
  never in practice, above 1.
- A rubric tag (``axis:accuracy``, ``level:cluster``) scores each example the same way over the
  criteria carrying that tag; an example whose tagged criteria have no positive points has no score
  for that tag. An example tag (``theme:emergency_referrals``) takes the example's overall score.
- Each reported figure is the mean over the examples that have it, clipped to ``[0, 1]``; its
  standard error is the standard deviation of that clipped mean over 1000 bootstrap resamples.

An example whose judge failed on any criterion has no score (it is counted as a failure, never as 0).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medreason.tasks.rubric import RubricItem, RubricRecord

__all__ = ["RubricSummary", "example_metrics", "rubric_score", "summarize"]

OVERALL = "overall_score"
BOOTSTRAP_RESAMPLES = 1000  # HealthBench's _compute_clipped_stats


def rubric_score(items: Sequence[RubricItem], met: Sequence[bool]) -> float | None:
    """Points of the met criteria over the positive points; ``None`` when no criterion is positive.

    >>> items = [RubricItem("a", 5), RubricItem("b", 5), RubricItem("c", -4)]
    >>> rubric_score(items, [True, False, True])
    0.1
    """
    if len(items) != len(met):
        raise ValueError(f"{len(met)} verdicts for {len(items)} rubric items; give one per item.")
    possible = sum(item.points for item in items if item.points > 0)
    if possible <= 0:
        return None
    return sum(item.points for item, ok in zip(items, met, strict=True) if ok) / possible


def example_metrics(record: RubricRecord, met: Sequence[bool]) -> dict[str, float]:
    """``overall_score``, one entry per example tag (same value) and one per rubric tag with positive points.

    >>> record = RubricRecord("1", [{"role": "user", "content": "?"}],
    ...     (RubricItem("x", 4, ("axis:accuracy",)), RubricItem("y", 6, ("axis:completeness",)),
    ...      RubricItem("z", -2, ("axis:completeness",))), ("theme:hedging",))
    >>> example_metrics(record, [True, False, True])
    {'overall_score': 0.2, 'theme:hedging': 0.2, 'axis:accuracy': 1.0, 'axis:completeness': -0.3333333333333333}
    """
    overall = rubric_score(record.rubrics, met)
    if overall is None:  # load_rubric_records rejects such records; hand-built ones may not be
        raise ValueError(f"Rubric record {record.id!r} has no criterion with positive points.")
    metrics = {OVERALL: overall}
    metrics.update(dict.fromkeys(record.example_tags, overall))
    by_tag: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(record.rubrics):
        for tag in dict.fromkeys(item.tags):
            by_tag[tag].append(index)
    for tag, indices in by_tag.items():
        score = rubric_score([record.rubrics[i] for i in indices], [met[i] for i in indices])
        if score is not None:
            metrics[tag] = score
    return metrics


@dataclass(frozen=True)
class RubricSummary:
    """A rubric benchmark's figures.

    Args:
        score: The clipped mean overall score in ``[0, 1]`` (``None`` when no example was graded).
        stderr: Bootstrap standard deviation of ``score``.
        n: Graded examples (prompts × samples per prompt).
        failed: Examples left ungraded because the judge failed on one of their criteria.
        breakdown: Tag → ``{"score", "stderr", "n"}`` for every example or rubric tag (``axis:*``, ``theme:*``, ...).
    """

    score: float | None
    stderr: float | None
    n: int
    failed: int
    breakdown: dict[str, dict[str, float]]

    def axes(self) -> dict[str, dict[str, float]]:
        """The ``axis:*`` part of :attr:`breakdown`."""
        return {tag: value for tag, value in self.breakdown.items() if tag.startswith("axis:")}

    def themes(self) -> dict[str, dict[str, float]]:
        """The ``theme:*`` part of :attr:`breakdown`."""
        return {tag: value for tag, value in self.breakdown.items() if tag.startswith("theme:")}


def _clipped_mean(values: np.ndarray) -> float:
    return float(np.clip(values.mean(), 0.0, 1.0))


def _bootstrap_std(values: np.ndarray, rng: np.random.Generator) -> float:
    samples = rng.choice(values, size=(BOOTSTRAP_RESAMPLES, len(values)), replace=True)
    return float(np.clip(samples.mean(axis=1), 0.0, 1.0).std())


def summarize(graded: Iterable[Mapping[str, float] | None], seed: int = 0) -> RubricSummary:
    """Aggregate per-example metrics (:func:`example_metrics`; ``None`` = judge failure) as HealthBench does.

    ``seed`` fixes the bootstrap resamples, so a rerun reports the same standard error.

    >>> summary = summarize([{"overall_score": 1.2}, {"overall_score": 0.4}, None])
    >>> summary.score, summary.n, summary.failed
    (0.8, 2, 1)
    >>> summarize([{"overall_score": -0.5}, {"overall_score": 0.3}]).score
    0.0
    """
    values: dict[str, list[float]] = defaultdict(list)
    failed = 0
    for metrics in graded:
        if metrics is None:
            failed += 1
            continue
        for name, value in metrics.items():
            values[name].append(float(value))
    rng = np.random.default_rng(seed)
    stats = {
        name: {"score": _clipped_mean(np.asarray(v)), "stderr": _bootstrap_std(np.asarray(v), rng), "n": len(v)}
        for name, v in sorted(values.items(), key=lambda kv: (kv[0] != OVERALL, kv[0]))
    }
    overall = stats.pop(OVERALL, None)
    return RubricSummary(
        score=None if overall is None else overall["score"],
        stderr=None if overall is None else overall["stderr"],
        n=0 if overall is None else int(overall["n"]),
        failed=failed,
        breakdown=stats,
    )
