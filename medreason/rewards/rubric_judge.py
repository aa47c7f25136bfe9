"""``rubric_judge``: HealthBench's rubric score of a completion, graded by a judge model, as an RL reward.

For a record carrying ``rubrics`` (HealthBench's field: ``[{"criterion", "points", "tags"}, ...]``)
the reward is the example score evaluation reports (:func:`~medreason.tasks.rubric_scoring.rubric_score`:
points of the met criteria over the positive points; negative when undesirable criteria are met),
from the same judge prompt and the same verdict cache (:mod:`medreason.rewards.judging`), so the
reward and the benchmark never disagree about a response. A record without rubrics, a malformed
rubric, or a completion the judge failed on (or that the per-step budget left out) gets ``None``:
the reward does not apply, and other rewards (``mcq_accuracy`` on a mixed dataset) still do.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from medreason.rewards.judging import JudgedReward, JudgeOutcome, rubric_grades, rubric_prompts
from medreason.rewards.registry import register_reward
from medreason.tasks.judge_prompts import parse_rubric_verdict
from medreason.tasks.rubric import RubricItem
from medreason.tasks.rubric_scoring import rubric_score
from medreason.utils.futures import call_now, then

__all__ = ["RubricJudgeReward", "as_conversation", "rubric_items"]


def rubric_items(rubrics: Any) -> tuple[RubricItem, ...] | None:
    """The rubric items of a record's ``rubrics`` value, or ``None`` when there are none or they are malformed.

    >>> rubric_items([{"criterion": "Advises rest", "points": 3, "tags": ["axis:completeness"]}])
    (RubricItem(criterion='Advises rest', points=3.0, tags=('axis:completeness',)),)
    >>> rubric_items([{"criterion": "Is rude", "points": -2}]) is None  # no positive points: no score
    True
    """
    if not isinstance(rubrics, Sequence) or isinstance(rubrics, str) or not rubrics:
        return None
    items = []
    for raw in rubrics:
        if isinstance(raw, RubricItem):
            items.append(raw)
            continue
        if not isinstance(raw, Mapping):
            return None
        criterion, points, tags = raw.get("criterion"), raw.get("points"), raw.get("tags") or ()
        if not isinstance(criterion, str) or not criterion.strip():
            return None
        if isinstance(points, bool) or not isinstance(points, numbers.Real) or not math.isfinite(points):
            return None
        items.append(RubricItem(criterion.strip(), float(points), tuple(str(tag) for tag in tags)))
    return tuple(items) if any(item.points > 0 for item in items) else None


def as_conversation(prompt: Any) -> list[dict[str, str]]:
    """A prompt (text or chat messages) as chat messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


class RubricJudgeReward(JudgedReward):
    """The rubric score of each completion of a record with ``rubrics``; ``None`` for other records.

    Settings are :class:`~medreason.rewards.judging.JudgedReward`'s (in a recipe: ``reward_kwargs.rubric_judge``).

    >>> from medreason.testing.openai_server import FakeLLMServer
    >>> from medreason.testing.tiny_rubric import keyword_judge
    >>> rubric = [{"criterion": 'Mentions "croup"', "points": 5}, {"criterion": 'Mentions "doctor"', "points": 5}]
    >>> with FakeLLMServer(keyword_judge()) as server:
    ...     reward = RubricJudgeReward(judge={"model": "judge", "base_url": server.base_url})
    ...     reward(["<think>hmm</think>Croup. See a doctor.", "Croup.", "B"], prompts=["Barking cough?"] * 3,
    ...            rubrics=[rubric, rubric, None])
    [1.0, 0.5, None]
    """

    cache_name = "rubric_judge"

    def submit(self, completions: list[str], **kwargs: Any) -> Future[list[float | None]]:
        count = len(completions)
        rubrics = kwargs.get("rubrics") or [None] * count
        prompts = kwargs.get("prompts") or [""] * count
        chosen, requests = [], []
        for index, (text, prompt, raw) in enumerate(zip(completions, prompts, rubrics, strict=True)):
            items = rubric_items(raw)
            if items is not None:
                chosen.append((index, items))
                requests.append((as_conversation(prompt), text, items))
        if not requests:
            return call_now(list, [None] * count)
        prompts, spans = rubric_prompts(requests)

        def scored(outcomes: list[JudgeOutcome]) -> list[float | None]:
            scores: list[float | None] = [None] * count
            for (index, items), grade in zip(chosen, rubric_grades(outcomes, spans), strict=True):
                if not grade.failed:
                    scores[index] = rubric_score(items, [bool(met) for met in grade.met])
            return scores

        return then(self._judge(prompts, parse_rubric_verdict), scored)


register_reward("rubric_judge")(RubricJudgeReward)
