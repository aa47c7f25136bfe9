"""Every recipe composes, validates and carries its model card's values."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from medreason.config import config_dir
from medreason.recipe import (
    STAGE_KINDS,
    RecipeError,
    merged_trainer_args,
    selected_stages,
    validate_run_config,
)

RECIPES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
DATA_OVERRIDES = {
    "ii_medical_8b": ["stages.sft.data.path=sft.jsonl", "stages.dapo.data.path=mcq.jsonl"],
    "ii_medical_7b_preview": ["stages.sft.data.path=sft.jsonl", "stages.dapo.data.path=mcq.jsonl"],
    "finemedlm_o1": ["finemed_path=finemed.jsonl", "stages.o1_sft.data.path=o1.jsonl", "stages.dpo.data.path=dpo.jsonl"],
}


def load(recipe, *overrides):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=[f"+recipe={recipe}", *DATA_OVERRIDES.get(recipe, []), *overrides])


def test_the_five_model_card_recipes_exist():
    assert RECIPES == ["finemedlm_o1", "ii_medical_7b_preview", "ii_medical_8b", "reasonmed_7b", "tiny"]


@pytest.mark.parametrize(
    ("recipe", "stages"),
    [
        ("finemedlm_o1", ["sft_all", "sft_internal_medicine", "sft_endocrinology", "o1_sft", "dpo", "eval", "eval_ttt"]),
        ("ii_medical_7b_preview", ["sft", "dapo", "eval"]),
        ("ii_medical_8b", ["sft", "dapo", "eval"]),
        ("reasonmed_7b", ["sft", "eval"]),
        ("tiny", ["synth", "curate", "sft_all", "sft_endocrinology", "dpo", "dapo", "eval"]),
    ],
)
def test_stages_run_in_the_documented_order(recipe, stages):
    # The order is the stages mapping's insertion order, which Hydra's defaults list decides.
    assert selected_stages(load(recipe)) == stages


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_stage_of_every_recipe_validates(recipe):
    cfg = load(recipe)
    validate_run_config(cfg)
    for name in selected_stages(cfg):
        staged = load(recipe, f"stage={name}")
        assert staged.stages[name].kind in STAGE_KINDS
        validate_run_config(staged)


@pytest.mark.parametrize(
    ("recipe", "stage", "expected"),
    [
        ("ii_medical_8b", "sft", dict(max_length=16378, global_batch_size=128, learning_rate=5e-5, num_train_epochs=8)),
        ("ii_medical_7b_preview", "sft", dict(max_length=16378, global_batch_size=128, learning_rate=5e-5, num_train_epochs=4)),
        ("reasonmed_7b", "sft", dict(num_train_epochs=3)),
        ("finemedlm_o1", "sft_all", dict(learning_rate=3e-5, num_train_epochs=2, global_batch_size=256)),
        ("finemedlm_o1", "sft_internal_medicine", dict(learning_rate=5e-6, num_train_epochs=2, global_batch_size=128)),
        ("finemedlm_o1", "sft_endocrinology", dict(learning_rate=5e-6, num_train_epochs=1, global_batch_size=128)),
        ("finemedlm_o1", "o1_sft", dict(learning_rate=5e-7, num_train_epochs=2, global_batch_size=64, max_length=8192)),
        ("finemedlm_o1", "dpo", dict(beta=0.1, num_train_epochs=1, learning_rate=5e-7, global_batch_size=64, max_length=8192)),
    ],
)
def test_card_hyperparameters_are_in_the_resolved_config(recipe, stage, expected):
    args = merged_trainer_args(load(recipe), stage)
    assert {key: args[key] for key in expected} == expected


def test_finemedlm_o1_curriculum_matches_the_paper():
    cfg = load("finemedlm_o1")
    assert cfg.model.name_or_path == "meta-llama/Llama-3.1-8B"
    assert cfg.model.config_overrides.attention_dropout == 0.1
    assert (cfg.launch.accelerate_config, cfg.launch.num_processes) == ("zero3_4gpu", 4)
    for name, samples, data_filter in [
        ("sft_all", 200000, None),
        ("sft_internal_medicine", 36000, {"department": "Internal Medicine"}),
        ("sft_endocrinology", 11000, {"subdepartment": "Endocrinology"}),
    ]:
        data, args = cfg.stages[name].data, merged_trainer_args(cfg, name)
        assert data.max_samples == samples and data.eval_fraction == 0.1 and data.path == "finemed.jsonl"
        assert (dict(data.filter) if data.filter else None) == data_filter
        assert (args["max_length"], args["warmup_steps"], args["lr_scheduler_type"]) == (1024, 0.1, "cosine")
        assert (args["weight_decay"], args["bf16"], args["optim"]) == (0.01, True, "adamw_torch")
    assert cfg.stages.o1_sft.data.max_samples == 17000


@pytest.mark.parametrize("recipe", ["ii_medical_7b_preview", "ii_medical_8b"])
def test_dapo_stage_carries_the_ii_medical_rl_card_values(recipe):
    args = merged_trainer_args(load(recipe), "dapo")
    card = dict(
        max_prompt_length=2048, max_completion_length=12288, overlong_buffer_length=4096, overlong_penalty_factor=1.0,
        clip_ratio_low=0.2, clip_ratio_high=0.28, train_prompt_batch_size=512, gen_prompt_batch_size=1536,
        mini_batch_size=32, num_generations=16, temperature=1.0, top_p=1.0, top_k=-1, learning_rate=1e-6,
        warmup_steps=10, weight_decay=0.1, loss_agg_mode="token-mean", max_grad_norm=1.0, entropy_coeff=0.0,
        dynamic_sampling=True, rollout_backend="vllm",
    )
    assert {key: args[key] for key in card} == card


def test_finemedlm_o1_evaluates_with_test_time_training_at_card_values():
    evaluate = load("finemedlm_o1").stages.eval_ttt.evaluate
    ttt = evaluate.ttt
    assert (evaluate.suite, evaluate.backend) == ("finemedlm", "transformers")
    assert (ttt.k, ttt.mode, ttt.encoder) == (1, "full", "BAAI/bge-large-en-v1.5")
    assert (ttt.learning_rate, ttt.epochs, ttt.max_length, ttt.weight_decay) == (5e-7, 2, 8192, 0.01)  # o1 SFT stage
    assert ttt.corpus_path == "o1.jsonl"  # the long-form reasoning subset the o1 SFT stage trains on
    with pytest.raises(RecipeError, match="ttt has unknown keys \\['lr'\\]"):
        validate_run_config(load("finemedlm_o1", "stage=eval_ttt", "+stages.eval_ttt.evaluate.ttt.lr=1"))


def test_card_evaluation_settings():
    for recipe, suite in [("ii_medical_8b", "ii_medical"), ("reasonmed_7b", "reasonmed"), ("finemedlm_o1", "finemedlm")]:
        evaluate = load(recipe).stages.eval.evaluate
        assert (evaluate.suite, evaluate.temperature, evaluate.top_p, evaluate.backend) == (suite, 0.6, 0.9, "vllm")


def test_base_models_of_the_cards():
    assert load("ii_medical_8b").model.name_or_path == "Qwen/Qwen3-8B"
    assert load("ii_medical_7b_preview").model.name_or_path == "Qwen/Qwen2.5-7B-Instruct"
    reasonmed = load("reasonmed_7b")
    assert reasonmed.model.name_or_path == "Qwen/Qwen2.5-7B"
    assert (reasonmed.stages.sft.data.format, reasonmed.stages.sft.data.target) == ("question_cot_response", "think_response")


def test_run_wide_trainer_overrides_reach_every_stage_and_stage_selects_one():
    cfg = load("finemedlm_o1", "trainer.learning_rate=1e-5", "stage=sft_internal_medicine")
    assert {merged_trainer_args(cfg, name)["learning_rate"] for name in ["sft_all", "o1_sft"]} == {1e-5}
    assert selected_stages(cfg) == ["sft_internal_medicine"]
    assert merged_trainer_args(load("tiny", "stages.sft_all.trainer.num_train_epochs=9"), "sft_all")["num_train_epochs"] == 9


def test_run_wide_overrides_reach_only_the_stage_kinds_that_have_the_field():
    cfg = load("ii_medical_8b", "trainer.max_length=8192", "trainer.learning_rate=2e-6")
    validate_run_config(cfg)
    assert merged_trainer_args(cfg, "sft")["max_length"] == 8192
    assert "max_length" not in merged_trainer_args(cfg, "dapo")  # DAPO has max_prompt/completion_length
    assert merged_trainer_args(cfg, "dapo")["learning_rate"] == 2e-6


def test_eval_stages_take_local_benchmark_files():
    cfg = load("ii_medical_8b", "stage=eval", "+stages.eval.evaluate.benchmark_paths.lancet=/data/lancet.jsonl")
    validate_run_config(cfg)


def test_config_errors_name_the_field_and_the_fix():
    with pytest.raises(RecipeError, match="not a stage of this recipe"):
        validate_run_config(load("tiny", "stage=ttt"))
    with pytest.raises(RecipeError, match="learnin_rate is not a field of sft stages. Did you mean \\['learning_rate'"):
        validate_run_config(load("tiny", "+stages.sft_all.trainer.learnin_rate=1"))
    with pytest.raises(RecipeError, match="stages.dpo.trainer.packing is not a field of dpo stages"):
        validate_run_config(load("tiny", "+stages.dpo.trainer.packing=true"))
    with pytest.raises(RecipeError, match="stages.eval.evaluate.temp is not a field of eval stages"):
        validate_run_config(load("tiny", "+stages.eval.evaluate.temp=1"))
    with pytest.raises(RecipeError, match="stages.eval.trainer does not apply to eval stages"):
        validate_run_config(load("tiny", "+stages.eval.trainer.learning_rate=1"))
    with pytest.raises(RecipeError, match="stages.sft.data.path is not set"):
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            validate_run_config(compose("train", overrides=["+recipe=ii_medical_8b", "stage=sft"]))
    with pytest.raises(RecipeError, match="stages.sft_all.data has unknown keys \\['filters'\\]"):
        validate_run_config(load("tiny", "+stages.sft_all.data.filters=1"))
    with pytest.raises(RecipeError, match="kind='grpo' is unknown"):
        validate_run_config(load("tiny", "stages.sft_all.kind=grpo"))
    with pytest.raises(RecipeError, match="The config has no stages"):
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            validate_run_config(compose("train"))


def test_dry_run_prints_the_resolved_config_from_any_directory(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medreason.train", "+recipe=finemedlm_o1", "dry_run=true", "stage=sft_endocrinology",
         "finemed_path=/data/finemed.jsonl", f"output_dir={tmp_path / 'out'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "path: /data/finemed.jsonl" in result.stdout  # interpolation resolved
    assert "# stages to run: sft_endocrinology (sft)" in result.stdout
    assert "# config is valid" in result.stdout
    assert not (tmp_path / "out" / "sft_endocrinology").exists()


def test_shipped_config_paths_resolve():
    assert (config_dir() / "recipe" / "tiny.yaml").is_file()
    for name in ["ddp_8gpu", "zero3_8gpu", "zero3_4gpu", "fsdp2_8gpu", "multinode_zero3"]:
        assert (config_dir() / "accelerate" / f"{name}.yaml").is_file(), name
    out = subprocess.run([sys.executable, "-m", "medreason.config", "accelerate/zero3_8gpu.yaml"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) == config_dir() / "accelerate" / "zero3_8gpu.yaml"
