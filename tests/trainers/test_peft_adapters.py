"""The peft block of the training stages: checked at config time, merged weights without touching the model."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from hydra import compose, initialize_config_dir
from transformers import Qwen3Config, Qwen3ForCausalLM

from medreason.config import config_dir
from medreason.recipe import RecipeError, validate_run_config
from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dpo_config import DPOConfig
from medreason.trainers.peft_adapters import MergedLoraWeights, add_adapter
from medreason.utils.config_errors import FieldError

CONFIGS = (CurriculumSFTConfig, DPOConfig, DAPOConfig)
QLORA_RUNS_HERE = importlib.util.find_spec("bitsandbytes") is not None and torch.cuda.is_available()


@pytest.mark.skipif(QLORA_RUNS_HERE, reason="bitsandbytes and a GPU are present: QLoRA is allowed")
@pytest.mark.parametrize("config_class", CONFIGS)
def test_qlora_is_refused_at_config_time_without_bitsandbytes_and_a_gpu(config_class, tmp_path):
    with pytest.raises(FieldError, match=r"peft.load_in_4bit=True: QLoRA .* set peft.load_in_4bit=false"):
        config_class(output_dir=str(tmp_path), use_cpu=True, bf16=False, peft={"r": 8, "load_in_4bit": True})


@pytest.mark.skipif(QLORA_RUNS_HERE, reason="bitsandbytes and a GPU are present: QLoRA is allowed")
def test_a_qlora_recipe_fails_its_dry_run_naming_the_key():
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["+recipe=tiny_lora", "stages.dapo.trainer.peft.load_in_4bit=true"])
    with pytest.raises(RecipeError, match=r"stages\.dapo\.trainer\.peft\.load_in_4bit=True: QLoRA"):
        validate_run_config(cfg)


@pytest.mark.parametrize(("block", "message"), [
    ({"alpha": 16}, r"peft.alpha=16: is not a field of peft; did you mean \['lora_alpha'\]"),
    ({"rank": 8}, r"peft.rank=8: is not a field of peft; valid: \['r', "),
    ({"r": 0}, r"peft.r=0: must be >= 1"),
    ({"lora_dropout": 1.5}, r"peft.lora_dropout=1.5: must be in \[0, 1\)"),
    ({"target_modules": 3}, r"peft.target_modules=3: expected a list or a string"),
])
def test_bad_peft_blocks_name_the_key(block, message, tmp_path):
    with pytest.raises(FieldError, match=message):
        DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, peft=block)


def test_dora_with_a_weight_syncing_engine_is_refused(tmp_path):
    with pytest.raises(FieldError, match="peft.use_dora=True: rollout_backend='vllm'"):
        DAPOConfig(output_dir=str(tmp_path), use_cpu=True, rollout_backend="vllm", peft={"use_dora": True})


def test_merged_weights_equal_merge_and_unload_and_leave_the_model_alone():
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1, head_dim=8, tie_word_embeddings=True))
    policy = add_adapter(model, {"r": 4, "lora_dropout": 0.0})
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # B starts at zero: give the adapter an effect
    before = {name: p.clone() for name, p in policy.named_parameters()}
    merged = dict(MergedLoraWeights(policy).named_parameters())
    expected = dict(copy.deepcopy(policy).merge_and_unload().named_parameters())
    assert set(merged) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(merged[name], value, rtol=0, atol=1e-6, msg=name)
    assert not torch.allclose(merged["model.layers.0.self_attn.q_proj.weight"],
                              before["base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"])
    assert all(torch.equal(before[name], p) for name, p in policy.named_parameters())
