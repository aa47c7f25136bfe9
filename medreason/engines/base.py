"""The one generation interface shared by evaluation, RL rollouts, synthesis, curation and TTT.

Every backend (transformers ``generate`` on CPU, an OpenAI-compatible HTTP server, in-process vLLM)
implements :class:`GenerationEngine`. Callers pass prompts as plain text or as chat messages and get
``n`` :class:`Completion` objects back per prompt, in prompt order.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from medreason.data.chat_templates import Prompt


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings understood by every engine (vLLM's names and meanings).

    Args:
        n: Completions per prompt (DAPO: 16 responses per prompt).
        temperature: 0 means greedy.
        top_p: Nucleus sampling mass; 1.0 disables it.
        top_k: Top-k cut-off; -1 disables it.
        max_tokens: Most new tokens per completion.
        stop: Strings that end a completion (not included in the text).
        seed: Seed for reproducible sampling where the backend supports it.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}.")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}.")
        if self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens must be >= 1, got {self.max_tokens}.")

    def cache_key(self) -> str:
        """A stable string that identifies these settings in on-disk caches."""
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class Completion:
    """One generated completion.

    Args:
        text: The generated text (special tokens removed).
        token_ids: The generated token ids, where the backend reports them (RL needs them).
        finish_reason: ``"stop"`` (EOS or a stop string) or ``"length"`` (hit ``max_tokens``).
    """

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str = "stop"

    @property
    def truncated(self) -> bool:
        """Whether generation stopped at ``max_tokens`` rather than by itself."""
        return self.finish_reason == "length"

    def to_json(self) -> dict[str, Any]:
        """What the on-disk caches store: the text, the finish reason and the token count (not the ids)."""
        return {"text": self.text, "finish_reason": self.finish_reason, "num_tokens": len(self.token_ids)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Completion:
        """A completion read back from :meth:`to_json` (without token ids).

        >>> Completion.from_json(Completion("B", [7, 8], "length").to_json())
        Completion(text='B', token_ids=[], finish_reason='length')
        """
        return cls(data["text"], finish_reason=data["finish_reason"])


class GenerationEngine(ABC):
    """A text generator: subclass it to add a backend.

    Subclasses set :attr:`model_name` (it keys caches) and implement :meth:`generate`.
    """

    model_name: str = "unknown"

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """Return ``sampling.n`` completions for each prompt, in prompt order."""

    def close(self) -> None:  # noqa: B027 - optional hook: backends without resources keep the no-op
        """Release the backend's resources (GPU memory, HTTP sessions). Safe to call twice."""

    def __enter__(self) -> GenerationEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
