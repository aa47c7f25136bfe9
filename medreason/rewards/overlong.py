"""DAPO's soft overlong punishment as a reward (paper §3.4; verl applies it in its DAPO reward manager).

Add it to the reward list next to accuracy (``rewards: [mcq_accuracy, overlong]``): it is 0 for
responses up to ``max_completion_length - overlong_buffer_length`` tokens, then falls linearly to
``-overlong_penalty_factor`` at ``max_completion_length``. The trainer passes the three settings from
:class:`~medreason.trainers.DAPOConfig` and the generated token ids to every reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medreason.rewards.registry import register_reward
from medreason.trainers.dapo_loss import overlong_penalty


@register_reward("overlong")
def overlong_reward(
    completions: list[str],
    *,
    completion_ids: list[Sequence[int]],
    max_completion_length: int,
    overlong_buffer_length: int,
    overlong_penalty_factor: float = 1.0,
    **kwargs: Any,
) -> list[float | None]:
    """The overlong penalty of each completion from its token count (see :func:`overlong_penalty`).

    >>> overlong_reward(["a", "b"], completion_ids=[[1] * 6, [1] * 10], max_completion_length=10,
    ...                 overlong_buffer_length=4)
    [0.0, -1.0]
    """
    lengths = [len(ids) for ids in completion_ids]
    penalties = overlong_penalty(lengths, max_completion_length, overlong_buffer_length, overlong_penalty_factor)
    return [float(p) for p in penalties.tolist()]
