"""DAPOConfig: card defaults, the Hydra trainer block and fix-it validation errors."""

from pathlib import Path

import pytest
from card_values import II_MEDICAL_RL
from omegaconf import OmegaConf

from medreason.trainers.dapo_config import DAPOConfig
from medreason.utils.config_errors import FieldError

CARD_YAML = Path(__file__).resolve().parents[2] / "conf" / "trainer" / "dapo.yaml"


def test_defaults_are_the_card(tmp_path):
    config = DAPOConfig(output_dir=str(tmp_path), use_cpu=True)
    assert {key: getattr(config, key) for key in II_MEDICAL_RL if key != "rollout_backend"} == {
        key: value for key, value in II_MEDICAL_RL.items() if key != "rollout_backend"
    }


def test_yaml_block_sets_only_how_the_card_is_launched(tmp_path):
    block = OmegaConf.to_container(OmegaConf.load(CARD_YAML))
    defaults = DAPOConfig(output_dir=str(tmp_path), use_cpu=True)
    assert not [key for key in block if key in II_MEDICAL_RL and key != "rollout_backend"]  # no restated card value
    config = DAPOConfig(**{**block, "output_dir": str(tmp_path), "use_cpu": True, "bf16": False})
    assert {key: getattr(config, key) for key in II_MEDICAL_RL} == II_MEDICAL_RL
    assert config.filter_groups_metric == "mcq_accuracy" and defaults.filter_groups_metric == "reward"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_generations": 1}, "num_generations"),
        ({"train_prompt_batch_size": 10, "mini_batch_size": 4}, "multiple of mini_batch_size"),
        ({"dynamic_sampling": False, "gen_prompt_batch_size": 8, "train_prompt_batch_size": 16, "mini_batch_size": 4},
         "dynamic_sampling=False"),
        ({"gradient_accumulation_steps": 4}, "gradient_accumulation_steps"),
        ({"optim": "adafactor"}, "optim='adafactor': DAPOConfig does not use this field; DAPO always uses torch AdamW"),
        ({"eval_strategy": "steps"}, "eval_strategy='steps': DAPOConfig does not use this field; evaluate with an eval"),
        ({"push_to_hub": True}, "push_to_hub=True: DAPOConfig does not use this field"),
        ({"use_liger_kernel": True}, "use_liger_kernel=True: DAPOConfig does not use this field"),
        ({"per_device_train_batch_size": 4}, "set train_prompt_batch_size, mini_batch_size"),
        ({"learning_rate": "fast"}, "learning_rate='fast': expected a number"),
        ({"max_num_gen_batches": -1}, "max_num_gen_batches=-1: must be >= 1"),
        ({"max_num_gen_batches": 0}, r"max_num_gen_batches=0: must be >= 1 \(card: 10\); null means no limit"),
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


def test_max_num_gen_batches_is_unlimited_only_when_null(tmp_path):
    assert DAPOConfig(output_dir=str(tmp_path), use_cpu=True, max_num_gen_batches=None).max_num_gen_batches is None
    with pytest.raises(FieldError) as error:
        DAPOConfig(output_dir=str(tmp_path), use_cpu=True, max_num_gen_batches=0)
    assert error.value.field == "max_num_gen_batches"
