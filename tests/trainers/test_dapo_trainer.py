"""DAPOTrainer end to end on the tiny model: learning, exact accumulation, resume, engine contract, edge cases."""

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate import DistributedType
from transformers import AutoModelForCausalLM

import medreason.trainers.dapo_trainer as dapo_trainer
from medreason.engines.base import Completion, GenerationEngine, SamplingParams
from medreason.testing import build_tiny_tokenizer, tiny_records
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import METRICS_FILE, DAPOTrainer
from medreason.trainers.dynamic_sampling import DynamicSamplingError

_TOKENIZER = build_tiny_tokenizer()
# ~11% of the tiny vocabulary decodes to text containing "a": a dense, learnable target.
_A_TOKENS = {i for i in range(len(_TOKENIZER)) if "a" in _TOKENIZER.decode([i])}


def letter_a_reward(completions, *, completion_ids, **kwargs):
    """The fraction of generated tokens that contain the letter "a"."""
    return [sum(t in _A_TOKENS for t in ids) / max(len(ids), 1) for ids in completion_ids]


def constant_reward(completions, **kwargs):
    return [1.0] * len(completions)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def model_dir(tiny_model_dir) -> Path:
    return tiny_model_dir


def _data(n: int = 16) -> list[dict]:
    return [
        {"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"], "options": r["options"]}
        for r in tiny_records(n)
    ]


def _args(output_dir: Path, **overrides) -> DAPOConfig:
    settings = dict(
        output_dir=str(output_dir), use_cpu=True, bf16=False, seed=0, max_steps=2, num_generations=4,
        train_prompt_batch_size=4, gen_prompt_batch_size=4, mini_batch_size=2, max_completion_length=8,
        overlong_buffer_length=0, rewards=["format"], learning_rate=1e-2, warmup_steps=0, save_steps=1000,
        logging_steps=1000,
    )
    settings.update(overrides)
    return DAPOConfig(**settings)


def _params(trainer: DAPOTrainer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in trainer.policy.named_parameters()}


def test_learning_rewarded_behaviour_rises(model_dir, tmp_path):
    args = _args(tmp_path, max_steps=14, num_generations=8)
    trainer = DAPOTrainer(model_dir, args, _data(), reward_funcs=[letter_a_reward])
    before = _params(trainer)
    trainer.train()
    curve = [m["rewards/letter_a_reward"] for m in trainer.log_history]
    start, end = sum(curve[:3]) / 3, sum(curve[-3:]) / 3
    assert end > start + 0.25, f"reward did not rise: {curve}"
    assert all(not torch.equal(before[n], p) for n, p in _params(trainer).items()), "some parameters never changed"
    lines = (tmp_path / METRICS_FILE).read_text().splitlines()
    assert len(lines) == 14
    for key in ("reward_mean", "reward_std", "entropy", "clip_fraction_low", "clip_fraction_high", "truncation_rate",
                "kept_group_ratio", "completion_length_mean", "completion_length_max", "time/generate", "time/train"):
        assert key in trainer.log_history[-1], key
    assert trainer.log_history[-1]["optimizer_updates"] == 2  # 4 prompt groups / mini-batches of 2


def test_micro_batch_layouts_give_the_same_update(model_dir, tmp_path, monkeypatch):
    layouts = {
        "one padded micro-batch per mini-batch": dict(micro_batch_token_budget=10**6),
        "one or two sequences per micro-batch": dict(micro_batch_token_budget=100),
        "padding-free, all in one row": dict(micro_batch_token_budget=10**6, padding_free=True),
        "padding-free, two or three per row": dict(micro_batch_token_budget=150, padding_free=True),
        # The reference layouts use fused log-probs (the default); the dense [tokens x vocab] path must agree.
        "dense logits, one or two sequences per micro-batch": dict(micro_batch_token_budget=100, fused_logprobs=False),
    }
    pack, counts = dapo_trainer.pack_by_token_budget, []

    def counting_pack(lengths, budget, **kwargs):
        counts.append(len(pack(lengths, budget, **kwargs)))
        return pack(lengths, budget, **kwargs)

    monkeypatch.setattr(dapo_trainer, "pack_by_token_budget", counting_pack)
    results = {}
    lengths = []
    for name, layout in layouts.items():
        counts.clear()
        # Two updates per step: the second one's ratios differ from 1, so clipping and KL are exercised too.
        args = _args(tmp_path / name.replace(" ", "_"), max_steps=1, mini_batch_size=2, learning_rate=1e-4, **layout)
        # Responses of 1 to 8 tokens (the same ones in every layout): micro-batches then hold different
        # token counts, so a mean of per-micro-batch means (verl's legacy inexactness) would differ.
        trainer = DAPOTrainer(model_dir, args, _data(), reward_funcs=[letter_a_reward], engine=_FakeVLLM(_TOKENIZER))
        trainer.train()
        metrics = trainer.log_history[-1]
        results[name] = (metrics, _params(trainer), max(counts))
        lengths.append((metrics["completion_length_mean"], metrics["completion_length_max"]))
    (reference, params_reference, _), *others = results.values()
    assert len(set(lengths)) == 1 and lengths[0][0] < lengths[0][1]  # the same responses, of unequal lengths
    assert abs(reference["approx_kl"]) > 1e-6  # the policy moved between the two updates
    for name, (metrics, params, most_micro_batches) in zip(list(results)[1:], others, strict=True):
        assert (most_micro_batches > 1) == ("all in one row" not in name), name
        for key in ("loss", "grad_norm", "entropy", "ratio_mean", "approx_kl", "clip_fraction_low", "clip_fraction_high"):
            assert metrics[key] == pytest.approx(reference[key], rel=1e-4, abs=1e-6), (name, key)
        for param in params_reference:  # atol lr/10: Adam turns float noise in a near-zero gradient into +-lr
            torch.testing.assert_close(params[param], params_reference[param], rtol=1e-5, atol=1e-5, msg=lambda m, where=f"{name}: {param}": f"{where}: {m}")


def test_resume_reproduces_the_uninterrupted_run(model_dir, tmp_path):
    straight = DAPOTrainer(model_dir, _args(tmp_path / "straight", max_steps=4, save_steps=2), _data(),
                           reward_funcs=[letter_a_reward])
    straight.train()

    resumed = DAPOTrainer(model_dir, _args(tmp_path / "resumed", max_steps=4), _data(), reward_funcs=[letter_a_reward])
    resumed.train(resume_from_checkpoint=tmp_path / "straight" / "checkpoint-2")
    assert resumed.global_step == 4 and len(resumed.log_history) == 2
    assert resumed.stream.state_dict() == straight.stream.state_dict()
    for name, value in _params(straight).items():
        torch.testing.assert_close(_params(resumed)[name], value, rtol=1e-5, atol=1e-6)
    assert resumed.log_history[-1]["reward_mean"] == pytest.approx(straight.log_history[-1]["reward_mean"])


def test_resume_at_an_epoch_boundary_trains_the_next_epoch(model_dir, tmp_path):
    # 4 prompts, 4 per generation round, no filtering: one training step is exactly one epoch.
    settings = dict(max_steps=-1, dynamic_sampling=False, save_steps=1)
    first = DAPOTrainer(model_dir, _args(tmp_path, num_train_epochs=1, **settings), _data(4),
                        reward_funcs=[letter_a_reward])
    first.train()
    assert first.global_step == 1 and first.stream.state_dict() == {"epoch": 1, "position": 0}

    second = DAPOTrainer(model_dir, _args(tmp_path, num_train_epochs=2, **settings), _data(4),
                         reward_funcs=[letter_a_reward])
    second.train(resume_from_checkpoint=True)
    assert second.global_step == 2 and len(second.log_history) == 1
    assert second.stream.state_dict() == {"epoch": 2, "position": 0}


class _FakeVLLM(GenerationEngine):
    """Stands in for a vLLM engine: its own sampler, and records sleep/wake and weight pushes."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls: list[str] = []
        self.weights: dict[str, torch.Tensor] = {}

    def encode_prompt(self, prompt):
        text = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, prompts, sampling: SamplingParams):
        self.calls.append("generate")
        generator = torch.Generator().manual_seed(sampling.seed)
        out = []
        for _ in prompts:
            group = []
            for _ in range(sampling.n):
                length = int(torch.randint(1, sampling.max_tokens + 1, (1,), generator=generator))
                ids = torch.randint(len(self.tokenizer), (length,), generator=generator).tolist()
                group.append(Completion(self.tokenizer.decode(ids), ids, "length" if length == sampling.max_tokens else "stop"))
            out.append(group)
        return out

    def load_weights(self, weights):
        self.calls.append("load_weights")
        self.weights.update((name, tensor.detach().clone()) for name, tensor in weights)

    def sleep(self):
        self.calls.append("sleep")

    def wake_up(self):
        self.calls.append("wake_up")


def test_engine_contract_weight_sync_and_sleep(model_dir, tmp_path):
    engine = _FakeVLLM(_TOKENIZER)
    trainer = DAPOTrainer(model_dir, _args(tmp_path, max_steps=2), _data(), reward_funcs=[letter_a_reward],
                          engine=engine)
    trainer.train()
    # Sleep once the batch is collected; wake and take the new weights after the updates.
    rounds = [int(m["generation_rounds"]) for m in trainer.log_history]
    expected = [call for r in rounds for call in ["generate"] * r + ["sleep", "wake_up", "load_weights"]]
    assert engine.calls == expected
    parameters = dict(trainer.policy.named_parameters())  # each tied weight once, as vLLM loads them
    assert set(engine.weights) == set(parameters)
    for name, value in parameters.items():
        assert torch.equal(engine.weights[name], value), name


def test_constant_reward_fails_dynamic_sampling_with_a_clear_error(model_dir, tmp_path):
    trainer = DAPOTrainer(model_dir, _args(tmp_path, max_num_gen_batches=2), _data(), reward_funcs=[constant_reward])
    with pytest.raises(DynamicSamplingError, match="max_num_gen_batches=2"):
        trainer.train()


def test_masked_truncated_responses_do_not_train(model_dir, tmp_path):
    # Every response hits max_completion_length=8 with a random tiny model, so all are masked.
    trainer = DAPOTrainer(model_dir, _args(tmp_path, max_steps=1, mask_truncated_completions=True, dynamic_sampling=False),
                          _data(), reward_funcs=[letter_a_reward])
    before = _params(trainer)
    trainer.train()
    assert trainer.log_history[0]["truncation_rate"] == 1.0
    assert trainer.log_history[0]["optimizer_updates"] == 0
    assert all(torch.equal(before[n], p) for n, p in _params(trainer).items())


def test_inconsistent_settings_fail_at_construction(model_dir, tmp_path):
    with pytest.raises(ValueError, match="filter_groups_metric"):
        DAPOTrainer(model_dir, _args(tmp_path, filter_groups_metric="mcq_accuracy"), _data(4))
    with pytest.raises(ValueError, match="overlong_buffer_length > 0"):
        DAPOTrainer(model_dir, _args(tmp_path, rewards=["overlong"]), _data(4))
    with pytest.raises(ValueError, match="rollout_engine"):
        DAPOTrainer(model_dir, _args(tmp_path, rollout_backend="vllm"), _data(4))
    config = AutoModelForCausalLM.from_pretrained(model_dir).config
    with torch.device("meta"):  # as FSDP's cpu_ram_efficient_loading leaves ranks other than 0
        on_meta = AutoModelForCausalLM.from_config(config)
    with pytest.raises(ValueError, match="fsdp_cpu_ram_efficient_loading"):
        DAPOTrainer(on_meta, _args(tmp_path, kl_coef=0.1), _data(4), processing_class=_TOKENIZER)


def test_kl_penalty_runs_against_a_frozen_reference(model_dir, tmp_path):
    # One update per step, so step 1's update starts exactly at the reference.
    trainer = DAPOTrainer(model_dir, _args(tmp_path, max_steps=2, kl_coef=0.1, mini_batch_size=4), _data(),
                          reward_funcs=[letter_a_reward])
    trainer.train()
    assert trainer.log_history[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy starts at the reference
    assert trainer.log_history[-1]["kl"] > 0.0
    reference = AutoModelForCausalLM.from_pretrained(model_dir)
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(trainer.ref_model.state_dict()[name], value)


def test_checkpoint_rotation_keeps_the_newest(model_dir, tmp_path):
    trainer = DAPOTrainer(model_dir, _args(tmp_path, max_steps=3, save_steps=1, save_total_limit=2), _data(),
                          reward_funcs=[letter_a_reward])
    trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert trainer.latest_checkpoint() == tmp_path / "checkpoint-3"


def test_fsdp1_fails_with_the_config_to_use():
    launch = SimpleNamespace(accelerator=SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=False))
    with pytest.raises(ValueError, match="FSDP2 only.*fsdp_version: 2"):
        DAPOTrainer._check_distributed_type(launch)
    for distributed_type, fsdp2 in [(DistributedType.FSDP, True), (DistributedType.DEEPSPEED, False)]:  # these pass
        DAPOTrainer._check_distributed_type(SimpleNamespace(accelerator=SimpleNamespace(
            distributed_type=distributed_type, is_fsdp2=fsdp2)))


_LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}


def test_lora_raises_the_reward_and_leaves_the_base_weights_untouched(tmp_path):
    from medreason.testing import build_tiny_model_dir

    # With the frozen head and final norm of the default tiny model (embeddings of std 0.02) logits span ~±1,
    # too little for any adapter to move the sampled tokens; embeddings of std 0.1 leave it room (as real models have).
    model_dir = build_tiny_model_dir(tmp_path / "model", initializer_range=0.1)
    args = _args(tmp_path / "run", max_steps=14, num_generations=8, peft=_LORA, learning_rate=3e-2)
    trainer = DAPOTrainer(model_dir, args, _data(), reward_funcs=[letter_a_reward])
    before = _params(trainer)
    trainer.train()
    curve = [m["rewards/letter_a_reward"] for m in trainer.log_history]
    assert sum(curve[-3:]) / 3 > sum(curve[:3]) / 3 + 0.1, f"reward did not rise: {curve}"
    after = _params(trainer)
    adapter = [name for name in after if "lora_" in name]
    assert adapter and all(not torch.equal(before[n], after[n]) for n in adapter if "lora_B" in n)
    assert all(torch.equal(before[n], after[n]) for n in after if "lora_" not in n), "a base weight moved"
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for n, p in trainer.policy.named_parameters() if "lora_" in n}


def test_lora_reference_is_the_base_with_the_adapter_off(model_dir, tmp_path):
    trainer = DAPOTrainer(model_dir, _args(tmp_path, max_steps=2, kl_coef=0.1, mini_batch_size=4, peft=_LORA,
                                           learning_rate=3e-2), _data(), reward_funcs=[letter_a_reward])
    assert trainer.ref_model is None  # no second copy of the model
    trainer.train()
    assert trainer.log_history[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # LoRA B starts at zero: policy == base
    assert trainer.log_history[-1]["kl"] > 0.0


def test_lora_pushes_merged_weights_and_saves_adapter_and_merged_model(model_dir, tmp_path):
    from peft import PeftModel

    engine = _FakeVLLM(_TOKENIZER)
    trainer = DAPOTrainer(model_dir, _args(tmp_path, max_steps=1, peft=_LORA, learning_rate=3e-2), _data(),
                          reward_funcs=[letter_a_reward], engine=engine)
    trainer.train()
    merged = copy.deepcopy(trainer.policy).merge_and_unload()
    expected = dict(merged.named_parameters())
    assert set(engine.weights) == set(expected)  # the base model's names, no lora_ or base_layer
    for name, value in expected.items():
        torch.testing.assert_close(engine.weights[name], value, rtol=0, atol=1e-6, msg=name)

    trainer.save_model(tmp_path / "final")
    ids = torch.tensor([[3, 17, 42, 9, 120]])
    with torch.no_grad():
        live = trainer.policy(input_ids=ids).logits
        saved = AutoModelForCausalLM.from_pretrained(tmp_path / "final")(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        adapted = PeftModel.from_pretrained(base, tmp_path / "final" / "adapter")(input_ids=ids).logits
    torch.testing.assert_close(saved, live, rtol=0, atol=1e-5)
    torch.testing.assert_close(adapted, live, rtol=0, atol=1e-5)
    assert not torch.allclose(saved, AutoModelForCausalLM.from_pretrained(model_dir)(input_ids=ids).logits)
