"""Generation engines behind one interface (:class:`GenerationEngine`), built by name with :func:`build_engine`."""

from __future__ import annotations

from typing import Any

from medreason.data.chat_templates import Message, Prompt
from medreason.engines.base import Completion, GenerationEngine, SamplingParams
from medreason.engines.transformers_engine import TransformersEngine

__all__ = [
    "ENGINE_BACKENDS",
    "Completion",
    "GenerationEngine",
    "Message",
    "Prompt",
    "SamplingParams",
    "TransformersEngine",
    "build_engine",
]

ENGINE_BACKENDS = ("transformers", "openai", "vllm")


def build_engine(backend: str, **kwargs: Any) -> GenerationEngine:
    """Build the engine named ``backend`` with ``kwargs`` passed to its constructor.

    ``"transformers"`` → :class:`TransformersEngine`, ``"openai"`` → :class:`OpenAIEngine`
    (an OpenAI-compatible server), ``"vllm"`` → :class:`VLLMEngine` (in-process, needs ``vllm``).

    >>> build_engine("tgi")
    Traceback (most recent call last):
    ...
    ValueError: Unknown engine backend 'tgi'; choose one of transformers, openai, vllm.
    """
    if backend == "transformers":
        return TransformersEngine(**kwargs)
    if backend == "openai":
        from medreason.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(**kwargs)
    if backend == "vllm":
        from medreason.engines.vllm_engine import VLLMEngine

        return VLLMEngine(**kwargs)
    raise ValueError(f"Unknown engine backend {backend!r}; choose one of {', '.join(ENGINE_BACKENDS)}.")
