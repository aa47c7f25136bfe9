"""Every recipe composes, validates and carries its model card's values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from card_values import CARDS
from hydra import compose, initialize_config_dir

from medreason.config import config_dir
from medreason.recipe import (
    STAGE_KINDS,
    RecipeError,
    UnsetValuesError,
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
    assert RECIPES == ["finemedlm_o1", "ii_medical_7b_preview", "ii_medical_8b", "reasonmed_7b", "tiny", "tiny_lora"]


@pytest.mark.parametrize(
    ("recipe", "stages"),
    [
        ("finemedlm_o1", ["sft_all", "sft_internal_medicine", "sft_endocrinology", "o1_sft", "dpo", "eval", "eval_ttt"]),
        ("ii_medical_7b_preview", ["sft", "dapo", "eval"]),
        ("ii_medical_8b", ["sft", "dapo", "eval"]),
        ("reasonmed_7b", ["sft", "eval"]),
        ("tiny", ["synth", "curate", "sft_all", "sft_endocrinology", "dpo", "dapo", "eval", "eval_rubric"]),
        ("tiny_lora", ["sft", "dpo", "dapo"]),
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


def value_at(obj, path):
    """``obj.a.b`` / ``obj["a"]["b"]`` for ``path="a.b"``; ``curriculum`` is an SFT config's one curriculum stage."""
    for key in path.split("."):
        if key == "curriculum":
            (obj,) = obj.stages
        else:
            obj = obj[key] if isinstance(obj, dict) or hasattr(obj, "keys") else getattr(obj, key)
    return obj.value if hasattr(obj, "value") and not isinstance(obj, (int, float, str)) else obj


@pytest.mark.parametrize(("recipe", "stage"), [(r, s) for r, stages in CARDS.items() for s in stages if s != "model"])
def test_card_values_reach_the_built_stage_config(recipe, stage):
    config = validate_run_config(load(recipe))[stage]
    expected = CARDS[recipe][stage]
    assert {key: value_at(config, key) for key in expected} == expected


@pytest.mark.parametrize("recipe", list(CARDS))
def test_card_base_models(recipe):
    model = load(recipe).model
    expected = CARDS[recipe]["model"]
    assert {key: value_at(model, key) for key in expected} == expected


def test_finemedlm_o1_launch_and_ttt_corpus():
    cfg = load("finemedlm_o1")
    assert (cfg.launch.accelerate_config, cfg.launch.num_processes) == ("zero3_4gpu", 4)
    assert cfg.stages.sft_all.data.path == "finemed.jsonl"
    # TTT retrieves from the long-form reasoning subset the o1 SFT stage trains on.
    assert validate_run_config(load("finemedlm_o1"))["eval_ttt"].ttt["corpus_path"] == "o1.jsonl"


def test_run_wide_trainer_overrides_reach_every_stage_and_stage_selects_one():
    cfg = load("finemedlm_o1", "trainer.learning_rate=1e-5")
    configs = validate_run_config(cfg)
    assert {configs[name].learning_rate for name in ["sft_all", "o1_sft", "dpo"]} == {1e-5}
    assert list(validate_run_config(load("finemedlm_o1", "stage=sft_internal_medicine"))) == ["sft_internal_medicine"]
    assert validate_run_config(load("tiny", "stages.sft_all.trainer.num_train_epochs=9"))["sft_all"].num_train_epochs == 9


def test_run_wide_overrides_reach_only_the_stage_kinds_that_have_the_field():
    configs = validate_run_config(load("ii_medical_8b", "trainer.max_length=8192", "trainer.learning_rate=2e-6"))
    assert configs["sft"].max_length == 8192
    assert not hasattr(configs["dapo"], "max_length")  # DAPO has max_prompt/completion_length
    assert configs["dapo"].learning_rate == 2e-6


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
    with pytest.raises(UnsetValuesError, match=r"1 value to set before the run can start: stages.sft.data.path=\.\.\."):
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            validate_run_config(compose("train", overrides=["+recipe=ii_medical_8b", "stage=sft"]))
    with pytest.raises(RecipeError, match="stages.sft_all.data has unknown keys \\['filters'\\]"):
        validate_run_config(load("tiny", "+stages.sft_all.data.filters=1"))
    with pytest.raises(RecipeError, match="kind='grpo' is unknown"):
        validate_run_config(load("tiny", "stages.sft_all.kind=grpo"))
    with pytest.raises(RecipeError, match="The config has no stages"):
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            validate_run_config(compose("train"))
    with pytest.raises(RecipeError, match=r"stages.eval_ttt.evaluate.ttt.lr=1: is not a field of ttt"):
        validate_run_config(load("finemedlm_o1", "stage=eval_ttt", "+stages.eval_ttt.evaluate.ttt.lr=1"))


# Each case a user met on main before stage configs were built at validation: every one must now fail
# in the dry run, naming the key path the user typed.
BAD_OVERRIDES = [
    ("trainer.learning_rate=fast", "trainer.learning_rate='fast': expected a number (float)"),
    ("stages.dapo.trainer.learning_rate=fast", "stages.dapo.trainer.learning_rate='fast': expected a number"),
    ("trainer.per_device_train_batch_size=-1", "trainer.per_device_train_batch_size=-1: must be >= 1."),
    ("stages.dapo.trainer.train_prompt_batch_size=-2", "stages.dapo.trainer.train_prompt_batch_size=-2: must be >= 1."),
    ("trainer.global_batch_size=-8", "trainer.global_batch_size=-8: must be >= 1."),
    ("trainer.learnin_rate=1e-3", "trainer.learnin_rate=0.001 is not a field of any trainer (sft, dpo, dapo). "
                                  "Did you mean ['learning_rate']?"),
    ("stages.dapo.trainer.optim=adafactor", "stages.dapo.trainer.optim='adafactor': DAPOConfig does not use this field"),
    ("stages.daop.trainer.max_steps=1", "stages.daop is not a stage of this recipe (it has no kind). Did you mean ['dapo']?"),
    ("stages.eval.evaluate.sampling.temprature=1", "stages.eval.evaluate.sampling.temprature=1: is not a field of sampling"),
    ("stages.curate.curate.steps=[filter,dedup]", "stages.curate.curate.steps=['filter', 'dedup']: unknown step 'dedup'"),
    ("stages.synth.synth.pipeline=finemedd", "stages.synth.synth.pipeline='finemedd': must be one of"),
    ("+trainer.learnin_rate=1e-5", "trainer.learnin_rate=1e-05 is not a field of any trainer"),
    ("+api_key=sk-planted", "api_key is not a setting of medreason.train, and nothing in the recipe uses it."),
    ("+run_nam=x", "run_nam is not a setting of medreason.train, and nothing in the recipe uses it. Did you mean"),
]


@pytest.mark.parametrize(("override", "message"), BAD_OVERRIDES)
def test_the_dry_run_rejects_each_bad_override_in_one_line(override, message, tmp_path, monkeypatch, capsys):
    from medreason import train

    monkeypatch.setattr(sys, "argv", ["medreason.train", "+recipe=tiny", override, "dry_run=true",
                                      f"output_dir={tmp_path}"])
    with pytest.raises(SystemExit) as exit_info:
        train.main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert err[-1].startswith("medreason.train: error: ") and message in err[-1], err[-1]
    assert not any(tmp_path.glob("*/stage_complete.json")) and not (tmp_path / "base_model").exists()


def test_a_dry_run_lists_every_value_to_set_and_a_real_run_refuses_them_all(tmp_path, monkeypatch, capsys):
    from medreason import train

    monkeypatch.setattr(sys, "argv", ["medreason.train", "+recipe=finemedlm_o1", "dry_run=true", f"output_dir={tmp_path}"])
    train.main()  # exits 0
    out = capsys.readouterr().out.splitlines()
    assert out[-4:] == ["# to set: stages.o1_sft.data.path=...", "# to set: stages.dpo.data.path=...",
                        "# to set: finemed_path=...", "# 3 values to set: the config is valid otherwise"]
    # finemed_path feeds the SFT stages only: a run of the DPO stage alone does not ask for it
    monkeypatch.setattr(sys, "argv", ["medreason.train", "+recipe=finemedlm_o1", "dry_run=true", "stage=dpo",
                                      f"output_dir={tmp_path}"])
    train.main()
    assert capsys.readouterr().out.splitlines()[-2:] == ["# to set: stages.dpo.data.path=...",
                                                         "# 1 value to set: the config is valid otherwise"]
    # DPO with neither built-in data nor a path: named before anything runs
    monkeypatch.setattr(sys, "argv", ["medreason.train", "+recipe=tiny", "stages.dpo.data.builtin=null",
                                      f"output_dir={tmp_path}"])
    with pytest.raises(SystemExit):
        train.main()
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "medreason.train: error: 1 value to set before the run can start: stages.dpo.data.path=..."
    )
    assert not (tmp_path / "base_model").exists()


def test_a_dry_run_writes_nothing(tmp_path, monkeypatch, capsys):
    from medreason import train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["medreason.train", "+recipe=tiny", "dry_run=true"])
    train.main()
    assert "# config is valid" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_the_cli_error_is_one_line_and_medreason_debug_shows_the_traceback(tmp_path):
    command = [sys.executable, "-m", "medreason.train", "+recipe=tiny", "trainer.learning_rate=fast", "dry_run=true",
               f"output_dir={tmp_path}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "medreason.train: error: trainer.learning_rate='fast': expected a number (float), e.g. learning_rate=2e-05."
    )
    assert "Traceback" not in result.stderr
    debug = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "MEDREASON_DEBUG": "1", "HYDRA_FULL_ERROR": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "RecipeError" in debug.stderr


def test_the_init_from_fix_the_error_names_works_as_written(tmp_path, tiny_model_dir):
    cfg = load("tiny", "stage=sft_endocrinology", f"output_dir={tmp_path}")
    from medreason.train import run

    with pytest.raises(RecipeError, match=r"\+\+stages.sft_endocrinology.init_from=PATH_OR_HUB_ID"):
        run(cfg)
    fixed = load("tiny", "stage=sft_endocrinology", f"output_dir={tmp_path}",
                 f"++stages.sft_endocrinology.init_from={tiny_model_dir}")
    assert fixed.stages.sft_endocrinology.init_from == str(tiny_model_dir)
    validate_run_config(fixed)


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


def test_run_keys_are_the_settings_of_train_yaml():
    from omegaconf import OmegaConf

    from medreason.recipe import RUN_KEYS

    train_yaml = OmegaConf.load(config_dir() / "train.yaml")
    assert sorted(k for k in train_yaml if k not in ("defaults", "hydra")) == sorted(set(RUN_KEYS) - {"model"})


def test_every_accelerate_config_loads_in_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    for path in sorted((config_dir() / "accelerate").glob("*.yaml")):
        config = load_config_from_file(str(path))  # unknown keys or values raise here
        assert config.num_processes >= 2 and config.mixed_precision in ("no", "bf16"), path.name


def test_shipped_config_paths_resolve():
    assert (config_dir() / "recipe" / "tiny.yaml").is_file()
    for name in ["ddp_8gpu", "zero3_8gpu", "zero3_4gpu", "fsdp2_8gpu", "multinode_zero3", "ddp_2cpu", "zero3_2cpu", "fsdp2_2cpu"]:
        assert (config_dir() / "accelerate" / f"{name}.yaml").is_file(), name
    out = subprocess.run([sys.executable, "-m", "medreason.config", "accelerate/zero3_8gpu.yaml"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) == config_dir() / "accelerate" / "zero3_8gpu.yaml"
