"""Tiny random models, a locally trained tokenizer and a synthetic corpus for tests and the CPU demo."""

from medreason.testing.tiny_data import (
    preference_pairs,
    tiny_benchmark_records,
    tiny_preference_records,
    tiny_records,
)
from medreason.testing.tiny_model import (
    TINY_FAMILIES,
    build_tiny_model_dir,
    build_tiny_tokenizer,
    tiny_config,
)

__all__ = [
    "TINY_FAMILIES",
    "build_tiny_model_dir",
    "build_tiny_tokenizer",
    "preference_pairs",
    "tiny_benchmark_records",
    "tiny_config",
    "tiny_preference_records",
    "tiny_records",
]
