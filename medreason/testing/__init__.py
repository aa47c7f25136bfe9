"""Tiny random models, a locally trained tokenizer and a synthetic corpus for tests and the CPU demo.

The tiny-model helpers load on first use (they import transformers), so reading the corpus stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medreason.testing.tiny_data import (
    preference_pairs,
    tiny_benchmark_records,
    tiny_preference_records,
    tiny_records,
    tiny_teacher,
)

if TYPE_CHECKING:
    from medreason.testing.tiny_model import (
        TINY_FAMILIES,
        build_tiny_model_dir,
        build_tiny_tokenizer,
        tiny_config,
    )

_TINY_MODEL = ("TINY_FAMILIES", "build_tiny_model_dir", "build_tiny_tokenizer", "tiny_config")

__all__ = [
    "TINY_FAMILIES",
    "build_tiny_model_dir",
    "build_tiny_tokenizer",
    "preference_pairs",
    "tiny_benchmark_records",
    "tiny_config",
    "tiny_preference_records",
    "tiny_records",
    "tiny_teacher",
]


def __getattr__(name: str) -> Any:
    if name in _TINY_MODEL:  # lazy for import speed: tiny_model imports transformers
        from medreason.testing import tiny_model

        return getattr(tiny_model, name)
    raise AttributeError(f"module 'medreason.testing' has no attribute {name!r}")
