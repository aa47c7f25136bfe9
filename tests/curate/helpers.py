"""Test doubles for curation: a scripted LLM engine, a keyword embedding encoder, record builders."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medreason.engines.base import Completion, GenerationEngine, Prompt, SamplingParams

EVAL_DIR_NAME = "eval"


class ScriptedEngine(GenerationEngine):
    """Answers a classification prompt with the domain of the first keyword it contains; counts calls."""

    model_name = "scripted"

    def __init__(self, answers: dict[str, str], default: str = "Other"):
        self.answers, self.default = answers, default
        self.calls = 0
        self.prompts: list[str] = []

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        self.calls += 1
        replies = []
        for prompt in prompts:
            text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
            self.prompts.append(text)
            question = text.split("Question:", 1)[-1]
            answer = next((domain for key, domain in self.answers.items() if key in question), self.default)
            replies.append([Completion(f"The domain is {answer}.")] * sampling.n)
        return replies


class KeywordEncoder:
    """Embeds a text near a fixed direction per topic keyword (plus a little hash noise); counts texts."""

    def __init__(self, topics: Sequence[str], dim: int = 16):
        self.topics, self.dim = list(topics), dim
        self.calls = 0
        self.texts = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        vectors = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            topic = next((i for i, t in enumerate(self.topics) if t in text.lower()), len(self.topics))
            vectors[row, topic] = 1.0
            seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")
            vectors[row] += 0.01 * np.random.default_rng(seed).standard_normal(self.dim)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def trace(
    question: str,
    cot: str = "Reasoning about the case step by step.",
    response: str = "The answer is B.",
    **extra: Any,
) -> dict[str, Any]:
    """A record in the HuatuoGPT ``{question, cot, response}`` shape."""
    return {"question": question, "cot": cot, "response": response, **extra}


def write_lines(path: Path, rows: Sequence[dict[str, Any] | str]) -> Path:
    """Write JSON objects (or raw strings, for malformed lines) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file into a list."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
