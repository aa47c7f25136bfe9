from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from medreason.testing.openai_server import FakeLLMServer

from .fake_llm import FakeLLM

# Engine settings that keep the tests fast: short timeout (the SLOW fault hangs 1.5 s), quick back-off.
FAST_ENGINE = "engine={timeout: 0.5, max_retries: 3, backoff_base: 0.01, backoff_max: 0.05}"


@pytest.fixture
def fake_llm() -> Iterator[tuple[FakeLLMServer, FakeLLM]]:
    """A loopback OpenAI-compatible server answering our templates deterministically."""
    llm = FakeLLM()
    with FakeLLMServer(llm, max_requests=2000) as server:
        yield server, llm


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def finemed_texts() -> list[dict]:
    """Texts whose markers script the fake judge (scores per question) and the faults."""
    return [
        # complex winner (#1: 8+9+6=23 > 7+5+5=17, complexity 9 >= 8)
        {"id": "t1", "text": "TAG=thyroid S1=8,9,6,0 S2=7,5,5,0 Graves disease and TSH."},
        # #1 mentions details, #2 does not -> #2 (common)
        {"id": "t2", "text": "TAG=insulin S1=9,9,6,1 S2=6,4,5,0 Insulin and RATE_LIMIT."},
        # both mention details -> dropped
        {"id": "t3", "text": "TAG=case S1=9,9,6,1 S2=9,9,6,1 A case report."},
        # first instruction attempt malformed, retried with seed 1; common winner #2 (tie 20, q+c 15 vs 14)
        {"id": "t4", "text": "TAG=kidney S1=5,9,6,0 S2=8,7,5,0 MALFORMED nephritis SLOW."},
        # the generator never answers in format -> failure row
        {"id": "t5", "text": "TAG=bad S1=5,5,5,0 S2=5,5,5,0 ALWAYS_BAD."},
        # the judge gives an out-of-range score for #2 -> failure row, text dropped as unscored
        {"id": "t6", "text": "TAG=BADSCORE S1=5,5,5,0 S2=5,5,5,0 Out-of-range scores."},
    ]


def mcq(qid: str, marker: str, key: str = "B") -> dict:
    return {
        "id": qid,
        "question": f"{marker} A 30-year-old has weight loss and tremor (key: {key}). Most likely diagnosis?",
        "options": {
            "A": "Hypothyroidism",
            "B": "Graves disease",
            "C": "Cushing syndrome",
            "D": "Addison disease",
        },
        "answer": key,
    }


def run_synth(server, pipeline: str, source: Path, output: Path, *overrides: str) -> dict:
    """Compose ``+pipeline=NAME`` with the test server and run it in-process; return the report."""
    from medreason.synth.run import compose_config, run_pipeline

    cfg = compose_config(
        [
            f"+pipeline={pipeline}",
            f"input={source}",
            f"output={output}",
            f"base_url={server.base_url}",
            "model=qwen",
            FAST_ENGINE,
            "concurrency=4",
            "progress=false",
            *overrides,
        ]
    )
    return run_pipeline(cfg)


SHARED_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "eval"
