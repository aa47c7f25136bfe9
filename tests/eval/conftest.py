from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from medreason.engines import Completion, GenerationEngine, Prompt, SamplingParams

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "eval"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark files (never copied into the repository)."""
    if not (DATA_DIR / "medqa.jsonl").is_file():
        pytest.skip(f"shared benchmark data not found at {DATA_DIR.resolve()}")
    return DATA_DIR



class ScriptedEngine(GenerationEngine):
    """Answers with ``reply(prompt, sample_index)`` and records every prompt it was asked for."""

    model_name = "scripted"

    def __init__(self, reply: Callable[[Prompt, int], str]):
        self.reply = reply
        self.prompts: list[Prompt] = []
        self.calls = 0

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        self.calls += 1
        self.prompts.extend(prompts)
        return [[Completion(self.reply(p, i), [1, 2], "stop") for i in range(sampling.n)] for p in prompts]


@pytest.fixture
def scripted_engine() -> type[ScriptedEngine]:
    """The :class:`ScriptedEngine` class: ``scripted_engine(reply)`` builds one."""
    return ScriptedEngine
