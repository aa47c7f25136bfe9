"""DAPO's soft overlong punishment as a reward (paper §3.4; verl applies it in its DAPO reward manager).

Add it to the reward list next to accuracy (``rewards: [mcq_accuracy, overlong]``): it is 0 for
responses up to ``max_completion_length - overlong_buffer_length`` tokens, then falls linearly to
``-overlong_penalty_factor`` at ``max_completion_length``. The trainer passes the three settings from
:class:`~medreason.trainers.DAPOConfig` and the generated token ids to every reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from medreason.rewards.registry import register_reward


def overlong_penalty(
    response_lengths: torch.Tensor | Sequence[int],
    max_response_length: int,
    buffer_length: int,
    penalty_factor: float = 1.0,
) -> torch.Tensor:
    """DAPO's soft overlong punishment (paper Eq. 13): 0 up to ``L_max - L_cache``, then linear to ``-factor``.

    ``R(y) = 0`` if ``|y| <= L_max - L_cache``; ``((L_max - L_cache) - |y|) / L_cache · factor`` while
    ``|y| <= L_max``; ``-factor`` beyond. Card: ``L_max`` 12,288, ``L_cache`` 4,096, factor 1.0, so a
    10,240-token response gets -0.5 and a truncated one -1.0.

    >>> overlong_penalty([8192, 10240, 12288], max_response_length=12288, buffer_length=4096)
    tensor([ 0.0000, -0.5000, -1.0000])
    """
    if buffer_length <= 0 or buffer_length > max_response_length:
        raise ValueError(
            f"buffer_length must be in (0, max_response_length={max_response_length}], got {buffer_length}; "
            "set overlong_buffer_length=0 in the config to turn overlong shaping off instead."
        )
    lengths = torch.as_tensor(response_lengths, dtype=torch.float32)
    expected = max_response_length - buffer_length
    penalty = (expected - lengths) / buffer_length * penalty_factor
    return penalty.clamp(min=-penalty_factor, max=0.0)


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
