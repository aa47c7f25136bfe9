"""A deterministic toy encoder and small models/corpora for the TTT tests."""

from __future__ import annotations

import hashlib
import re

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


class HashEncoder:
    """Bag of words hashed into ``dim`` buckets: texts sharing words are similar; counts its calls.

    Deterministic across processes (md5, not Python's salted ``hash``).
    """

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.calls = 0
        self.texts_encoded = 0

    def encode(self, sentences, **kwargs):
        self.calls += 1
        self.texts_encoded += len(sentences)
        vectors = torch.zeros(len(sentences), self.dim)
        for row, text in enumerate(sentences):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        return vectors


class FixedEncoder:
    """Maps each known text to a given vector (for exact nearest-neighbour checks)."""

    def __init__(self, vectors: dict[str, torch.Tensor]):
        self.vectors = vectors

    def encode(self, sentences, **kwargs):
        return torch.stack([self.vectors[text] for text in sentences])


def load_tiny(path):
    """A fresh float32 copy of the tiny model and its tokenizer."""
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Clones of every parameter and buffer (persistent or not), by name."""
    named = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {name: tensor.detach().clone() for name, tensor in named.items()}


def max_abs_diff(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between ``model`` now and ``before``; names must match exactly."""
    now = state(model)
    if set(now) != set(before):
        raise AssertionError(f"parameter/buffer names changed: {sorted(set(now) ^ set(before))[:5]}")
    return max((now[name].float() - before[name].float()).abs().max().item() for name in before)
