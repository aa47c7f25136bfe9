"""Format: the reasoning is closed (``</think>``) before a ``\\boxed{}`` final answer.

Pays for the layout the II-Medical cards ask for (think, then answer in ``\\boxed{}``), not for
correctness. Texts may or may not contain the opening ``<think>``: chat templates such as Qwen3's
put it in the prompt.
"""

from __future__ import annotations

from typing import Any

from medreason.data.chat_templates import THINK_CLOSE, THINK_OPEN
from medreason.rewards.registry import register_reward

_BOXED = "\\boxed{"


@register_reward("format")
def format_reward(completions: list[str], **kwargs: Any) -> list[float | None]:
    """1.0 when exactly one ``</think>`` is followed by a ``\\boxed{`` answer and no new ``<think>``, else 0.0.

    >>> format_reward(["<think>x</think>The answer is \\\\boxed{A}", "\\\\boxed{A}</think>", "<think>x"])
    [1.0, 0.0, 0.0]
    """
    scores: list[float | None] = []
    for text in completions:
        if not isinstance(text, str) or text.count(THINK_CLOSE) != 1:
            scores.append(0.0)
            continue
        reasoning, answer = text.split(THINK_CLOSE)
        well_formed = reasoning.count(THINK_OPEN) <= 1 and THINK_OPEN not in answer and _BOXED in answer
        scores.append(1.0 if well_formed else 0.0)
    return scores
