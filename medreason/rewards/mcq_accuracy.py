"""Multiple-choice accuracy: 1.0 when the response chooses the right option, else 0.0.

The answer is read by :func:`medreason.tasks.grading.extract_choice`, the grader evaluation uses, so
the RL reward and the benchmark numbers can never disagree about a response. A response that names
two options (``\\boxed{A, C}``) or none scores 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medreason.rewards.registry import register_reward
from medreason.tasks.grading import extract_choice


@register_reward("mcq_accuracy")
def mcq_accuracy_reward(
    completions: list[str], *, answer: list[str | None], options: list[Mapping[str, str]], **kwargs: Any
) -> list[float | None]:
    """1.0 if a completion chooses ``answer`` among ``options``, else 0.0; ``None`` for a record without an answer.

    >>> options = {"A": "asthma", "B": "croup"}
    >>> mcq_accuracy_reward(["<think>...</think>\\\\boxed{B}", "\\\\boxed{A, B}", "no idea"],
    ...                     answer=["B", "B", None], options=[options] * 3)
    [1.0, 0.0, None]
    """
    scores: list[float | None] = []
    for text, truth, choices in zip(completions, answer, options, strict=True):
        if not truth or not isinstance(choices, Mapping):
            scores.append(None)  # nothing to grade against: skip rather than punish
        else:
            scores.append(1.0 if extract_choice(text, choices) == truth else 0.0)
    return scores
