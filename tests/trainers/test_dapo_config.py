"""DAPOConfig: card defaults, the Hydra trainer block and fix-it validation errors."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from medreason.trainers.dapo_config import DAPOConfig

CARD_YAML = Path(__file__).resolve().parents[2] / "conf" / "trainer" / "dapo.yaml"

# The II-Medical-7B-Preview card's RL stage.
CARD = {
    "max_prompt_length": 2048, "max_completion_length": 12288, "overlong_buffer_length": 4096,
    "overlong_penalty_factor": 1.0, "clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "train_prompt_batch_size": 512,
    "gen_prompt_batch_size": 1536, "mini_batch_size": 32, "num_generations": 16, "temperature": 1.0, "top_p": 1.0,
    "top_k": -1, "learning_rate": 1e-6, "warmup_steps": 10, "weight_decay": 0.1, "loss_agg_mode": "token-mean",
    "max_grad_norm": 1.0, "entropy_coeff": 0.0, "kl_coef": 0.0,
}


def test_defaults_are_the_card(tmp_path):
    config = DAPOConfig(output_dir=str(tmp_path), use_cpu=True)
    assert {key: getattr(config, key) for key in CARD} == CARD


def test_yaml_block_builds_a_config_with_every_card_value(tmp_path):
    block = OmegaConf.to_container(OmegaConf.load(CARD_YAML))
    block.update(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    config = DAPOConfig(**block)
    assert {key: getattr(config, key) for key in CARD} == CARD
    assert config.rewards == ["mcq_accuracy", "overlong"] and config.filter_groups_metric == "mcq_accuracy"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_generations": 1}, "num_generations"),
        ({"train_prompt_batch_size": 10, "mini_batch_size": 4}, "multiple of mini_batch_size"),
        ({"dynamic_sampling": False, "gen_prompt_batch_size": 8, "train_prompt_batch_size": 16, "mini_batch_size": 4},
         "dynamic_sampling=False"),
        ({"gradient_accumulation_steps": 4}, "gradient_accumulation_steps"),
        ({"loss_agg_mode": "mean"}, "loss_agg_mode"),
        ({"clip_ratio_c": 1.0}, "clip_ratio_c"),
        ({"overlong_buffer_length": 12288}, "overlong_buffer_length"),
        ({"reward_weights": [1.0]}, "one weight per reward"),
        ({"rewards": []}, "rewards is empty"),
        ({"rollout_backend": "sglang"}, "rollout_backend"),
        ({"save_steps": 0.5}, "save_steps"),
        ({"weight_sync_bucket_mb": 0}, "weight_sync_bucket_mb"),
    ],
)
def test_invalid_settings_name_the_field(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        DAPOConfig(output_dir=str(tmp_path), use_cpu=True, **overrides)
