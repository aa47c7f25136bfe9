"""What a launch asks of a run: the launch read from accelerate's environment, CPU DeepSpeed and FSDP settings,
refusals at config time, and whole-model loading on one rank under ZeRO-3."""

import pytest
from hydra import compose, initialize_config_dir
from transformers.integrations import deepspeed as hf_deepspeed
from transformers.trainer_pt_utils import AcceleratorConfig

from medreason.config import config_dir
from medreason.recipe import validate_run_config
from medreason.utils import launch
from medreason.utils.launch import (
    launch_kind,
    launch_problem,
    rank_local_model_loading,
    trainer_settings_for_launch,
)

LAUNCH_ENV = ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP", "ACCELERATE_DEEPSPEED_ZERO_STAGE", "WORLD_SIZE")


@pytest.fixture
def env(monkeypatch):
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("variables", "kind"), [
    ({}, "single"),
    ({"WORLD_SIZE": "2"}, "ddp"),
    ({"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true"}, "fsdp"),
    ({"WORLD_SIZE": "2", "ACCELERATE_USE_DEEPSPEED": "true"}, "deepspeed"),
])
def test_launch_kind_comes_from_accelerates_environment(env, variables, kind):
    for name, value in variables.items():
        env.setenv(name, value)
    assert launch_kind() == kind


def test_deepspeed_without_a_gpu_trains_with_gloo_and_use_cpu_off(env):
    env.setattr(launch, "has_accelerator", lambda: False)
    settings = {"use_cpu": True, "learning_rate": 1e-3}
    assert trainer_settings_for_launch(settings) == settings  # no launch: unchanged
    env.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert trainer_settings_for_launch(settings) == {"use_cpu": False, "ddp_backend": "gloo", "learning_rate": 1e-3}
    env.setattr(launch, "has_accelerator", lambda: True)
    assert trainer_settings_for_launch(settings) == settings  # on GPUs accelerate starts DeepSpeed itself


def test_zero3_refuses_a_dapo_reference_model(env):
    env.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    env.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert "kl_coef=0" in launch_problem("dapo", {"kl_coef": 0.01})
    assert launch_problem("dapo", {"kl_coef": 0.0}) is None
    assert launch_problem("sft", {}) is None
    env.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    assert launch_problem("dapo", {"kl_coef": 0.01}) is None


def test_fsdp_without_a_gpu_trains_with_gloo_on_one_configured_state(env):
    """Every stage's arguments (also ones rebuilt from an earlier ``AcceleratorConfig``) keep the state the launch
    declared, instead of rebuilding accelerate's as plain CPU data parallel (tests/test_train_launch.py runs it)."""
    env.setattr(launch, "has_accelerator", lambda: False)
    env.setenv("ACCELERATE_USE_FSDP", "true")
    settings = trainer_settings_for_launch({"learning_rate": 1e-3, "accelerator_config": {"even_batches": False}})
    assert settings == {"learning_rate": 1e-3, "use_cpu": True, "ddp_backend": "gloo",
                        "accelerator_config": {"even_batches": False, "use_configured_state": True}}
    rebuilt = trainer_settings_for_launch({"accelerator_config": AcceleratorConfig(even_batches=False)})
    assert rebuilt["accelerator_config"]["use_configured_state"] and not rebuilt["accelerator_config"]["even_batches"]
    env.setattr(launch, "has_accelerator", lambda: True)
    assert trainer_settings_for_launch({"learning_rate": 1e-3}) == {"learning_rate": 1e-3}  # accelerate's own FSDP


def test_an_fsdp_launch_without_a_gpu_validates_every_tiny_stage(env, tmp_path):
    env.setattr(launch, "has_accelerator", lambda: False)
    env.setenv("ACCELERATE_USE_FSDP", "true")
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["+recipe=tiny", f"output_dir={tmp_path}"])
    configs = validate_run_config(cfg, check_hardware=True)
    assert configs["dapo"].ddp_backend == "gloo" and configs["dpo"].use_cpu
    assert not any(tmp_path.iterdir())


class _Zero3Config:
    def is_zero3(self) -> bool:
        return True


def test_rank_local_model_loading_suspends_zero3_init_and_restores_it():
    config = _Zero3Config()
    hf_deepspeed.set_hf_deepspeed_config(config)
    try:
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
        with rank_local_model_loading():
            assert not hf_deepspeed.is_deepspeed_zero3_enabled()
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()
