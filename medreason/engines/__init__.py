"""Generation engines behind one interface (:class:`GenerationEngine`), built by name with :func:`build_engine`.

The backends load on first use (``TransformersEngine`` imports transformers, ``VLLMEngine`` vLLM), so
importing this package, and the CLIs' ``--help``, stay fast.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from medreason.data.chat_templates import Message, Prompt
from medreason.engines.base import Completion, GenerationEngine, SamplingParams
from medreason.utils.config_errors import FieldError

if TYPE_CHECKING:
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

BACKEND_PACKAGES = {"vllm": ("vllm", "pip install 'medreason[vllm]' on a GPU machine")}
"""Backends whose package is an optional extra: module to find, and how to install it."""


def __getattr__(name: str) -> Any:
    if name == "TransformersEngine":  # lazy for import speed: it imports transformers
        from medreason.engines.transformers_engine import TransformersEngine

        return TransformersEngine
    raise AttributeError(f"module 'medreason.engines' has no attribute {name!r}")


def check_backend_installed(backend: str, key: str) -> None:
    """Raise when ``backend`` needs a package this machine does not have (checked before any work starts).

    Raises:
        FieldError: naming ``key``, with how to install the package or which backend to use instead.
    """
    if backend in BACKEND_PACKAGES:
        module, install = BACKEND_PACKAGES[backend]
        if importlib.util.find_spec(module) is None:
            raise FieldError(
                key, backend, f"{module} is not installed here: {install}, or use the openai backend with a served model."
            )


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
        from medreason.engines.transformers_engine import TransformersEngine

        return TransformersEngine(**kwargs)
    if backend == "openai":
        from medreason.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(**kwargs)
    if backend == "vllm":
        from medreason.engines.vllm_engine import VLLMEngine

        return VLLMEngine(**kwargs)
    raise ValueError(f"Unknown engine backend {backend!r}; choose one of {', '.join(ENGINE_BACKENDS)}.")
