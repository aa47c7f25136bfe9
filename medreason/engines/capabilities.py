"""Optional capabilities of a :class:`~medreason.engines.base.GenerationEngine` that RL training uses.

The DAPO trainer checks for each with ``isinstance`` (``runtime_checkable`` protocols), so an engine
needs no base class beyond :class:`GenerationEngine` to gain them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from medreason.engines.base import Prompt

if TYPE_CHECKING:
    import torch


@runtime_checkable
class PromptEncoder(Protocol):
    """An engine that says which token ids it feeds the model for a prompt (the loss needs the same ids)."""

    def encode_prompt(self, prompt: Prompt) -> list[int]: ...


@runtime_checkable
class WeightSyncEngine(Protocol):
    """An engine holding its own copy of the weights (vLLM): the trainer pushes new weights after each step.

    ``load_weights`` is called on every rank with one bucket of ``(HF name, full tensor)`` pairs at a time;
    the tensors may be the policy's own, so copy what must outlive the call.
    """

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None: ...


@runtime_checkable
class SleepableEngine(Protocol):
    """An engine that frees its memory while the policy trains (vLLM colocate ``sleep``/``wake_up``)."""

    def sleep(self) -> None: ...

    def wake_up(self) -> None: ...
