"""Two CPU ranks (gloo), under DDP, FSDP2 and DeepSpeed ZeRO-2/3, train exactly as one process does.

The test runs this file under ``torchrun --nproc_per_node 2``. Each rank samples half of the prompts
from an engine whose responses depend only on the prompt, so every run trains on the same groups; with
the mini-batch's token count all-reduced over ranks, the losses, gradient norms and weights match the
single-process run. The same runs check what only shows with several ranks: micro-batch counts that
differ between ranks (FSDP2 hangs unless they are evened out), the full weights reaching the rollout
engine of *every* rank after each step, ``save_model`` after ``train``, resume, and (FSDP2) generation
with the transformers engine on a sharded policy.

accelerate runs FSDP on accelerators only; :func:`_declare_fsdp2_on_cpu` declares an FSDP2 launch on
CPU, so ``accelerator.prepare`` applies the real ``fully_shard`` over gloo. The ZeRO modes set the
environment ``accelerate launch --config_file accelerate/zero3_2cpu.yaml`` sets, and the trainer settings
:func:`~medreason.utils.launch.trainer_settings_for_launch` gives such a launch without a GPU.
"""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import medreason.trainers.dapo_trainer as dapo_trainer
from medreason.engines.base import Completion, GenerationEngine
from medreason.engines.transformers_engine import encode_prompt
from medreason.testing import tiny_records
from medreason.testing.distributed import torchrun
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import DAPOTrainer
from medreason.utils.launch import trainer_settings_for_launch


class _PromptSeededEngine(GenerationEngine):
    """Random responses that depend only on the prompt's token ids; records the weights pushed to it."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.received: dict[str, torch.Tensor] = {}
        self.buckets = 0

    def encode_prompt(self, prompt):
        return encode_prompt(self.tokenizer, prompt)

    def generate(self, prompts, sampling):
        out = []
        for prompt in prompts:
            ids = self.encode_prompt(prompt)
            generator = torch.Generator().manual_seed(sum(i * (k + 1) for k, i in enumerate(ids)) % 2**31)
            group = []
            for _ in range(sampling.n):
                length = int(torch.randint(1, sampling.max_tokens + 1, (1,), generator=generator))
                tokens = torch.randint(len(self.tokenizer), (length,), generator=generator).tolist()
                group.append(Completion(self.tokenizer.decode(tokens), tokens, "stop"))
            out.append(group)
        return out

    def load_weights(self, weights):
        self.received.update((name, tensor.detach().clone()) for name, tensor in weights)
        self.buckets += 1


def _distinct_token_reward(completions, *, completion_ids, **kwargs):
    return [len(set(ids)) / len(ids) + 0.1 * (ids[0] % 3) for ids in completion_ids]


def _train(model_dir: str, output_dir: Path, max_steps: int = 2, resume: bool = False, seeded: bool = True,
           fsdp2: bool = False, padding_free: bool = False, deepspeed: bool = False, fused: bool = True) -> DAPOTrainer:
    """``seeded=False``: the trainer's own transformers engine samples from the (possibly sharded) policy."""
    args = DAPOConfig(
        output_dir=str(output_dir), bf16=False, seed=0, max_steps=max_steps, num_generations=4,
        train_prompt_batch_size=4, gen_prompt_batch_size=4, mini_batch_size=4, max_completion_length=12,
        overlong_buffer_length=0, rewards=["format"], dynamic_sampling=False, learning_rate=1e-4, warmup_steps=0,
        save_steps=1, micro_batch_token_budget=200,  # 1-2 sequences per micro-batch: the ranks get different counts
        weight_sync_bucket_mb=0.02,  # ~20 KB: the tiny model's weights arrive in several buckets
        padding_free=padding_free, fused_logprobs=fused,
        # DeepSpeed on CPU: use_cpu=False, ddp_backend="gloo", as the recipe runner sets them under that launch
        **(trainer_settings_for_launch({"use_cpu": True}) if deepspeed else {"use_cpu": True}),
    )
    data = [{"prompt": [{"role": "user", "content": r["question"]}]} for r in tiny_records(4)]
    engine = _PromptSeededEngine(AutoTokenizer.from_pretrained(model_dir)) if seeded else None
    if fsdp2:  # after DAPOConfig, whose device set-up resets accelerate's state
        _declare_fsdp2_on_cpu()
    trainer = DAPOTrainer(model_dir, args, data, reward_funcs=[_distinct_token_reward], engine=engine)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def _final_weights(directory: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(directory).state_dict()


@pytest.fixture(scope="module")
def single(tiny_model_dir, tmp_path_factory):
    """The single-process run of each layout (padded, padding-free; fused or dense log-probs), trained on first use."""
    runs: dict[tuple[bool, bool], DAPOTrainer] = {}

    def run(padding_free: bool, fused: bool = True) -> DAPOTrainer:
        if (padding_free, fused) not in runs:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                runs[padding_free, fused] = _train(str(tiny_model_dir), tmp_path_factory.mktemp("single"),
                                                   padding_free=padding_free, fused=fused)
            finally:
                torch.set_num_threads(threads)
        return runs[padding_free, fused]

    return run


@pytest.mark.parametrize("mode", ["ddp", "fsdp2", "fsdp2-padding-free", "zero2", "zero3"])
def test_two_ranks_match_one_process(mode, single, tiny_model_dir, tmp_path):
    if mode.startswith("zero"):
        pytest.importorskip("deepspeed", reason="ZeRO needs deepspeed: DS_BUILD_OPS=0 pip install 'deepspeed>=0.17'")
    torchrun(__file__, mode, tiny_model_dir, tmp_path)
    # ZeRO-3 falls back to the dense log-prob path (DAPOTrainer.fused_logprobs), so its reference is dense.
    reference = single("padding-free" in mode, fused=mode != "zero3")

    result = json.loads((tmp_path / "result.json").read_text())
    metrics = reference.log_history[-1]
    assert result["loss"] == pytest.approx(metrics["loss"], rel=1e-5, abs=1e-7)
    assert result["grad_norm"] == pytest.approx(metrics["grad_norm"], rel=1e-5)
    assert set(result["sharded"]) == {mode not in ("ddp", "zero2")}  # every run; ZeRO-2 keeps whole parameters
    # The token budget gave the ranks different numbers of micro-batches at least once.
    assert result["micro_batch_counts"][0] != result["micro_batch_counts"][1]

    state, parameters = reference.policy.state_dict(), dict(reference.policy.named_parameters())
    # Packed rows of other sequences round differently, and Adam turns that float noise in a near-zero
    # gradient into up to +-lr; padded layouts match to float precision.
    atol = 1e-5 if "padding-free" in mode else 1e-7
    for name, weights, expected in [
        ("saved", _final_weights(tmp_path / "final"), state),
        ("resumed", _final_weights(tmp_path / "resumed_final"), state),
        # Engines get the parameters, each tied one once (what vLLM loads).
        *[(f"engine of rank {rank}", torch.load(tmp_path / f"synced_{rank}.pt"), parameters) for rank in (0, 1)],
    ]:
        assert set(weights) == set(expected), name
        for key, value in expected.items():
            torch.testing.assert_close(weights[key], value, rtol=1e-5, atol=atol, msg=lambda m, where=f"{name}: {key}": f"{where}: {m}")
    assert result["buckets_per_sync"] > 1
    if mode == "fsdp2":  # the default engine sampled from the sharded policy (synced_gpus) without hanging,
        assert result["transformers_engine_steps"] == 1
        # although one rank's responses ended before the other's
        assert result["longest_response_per_rank"][0] != result["longest_response_per_rank"][1]


def _declare_fsdp2_on_cpu() -> None:
    """Make the next ``Accelerator()`` an FSDP2 one on CPU (accelerate picks FSDP on accelerators only)."""
    from accelerate import Accelerator, DistributedType, PartialState
    from accelerate.state import AcceleratorState
    from accelerate.utils import FullyShardedDataParallelPlugin

    os.environ.update(ACCELERATE_USE_FSDP="true", FSDP_VERSION="2", FSDP_AUTO_WRAP_POLICY="TRANSFORMER_BASED_WRAP",
                      FSDP_TRANSFORMER_CLS_TO_WRAP="Qwen3DecoderLayer", FSDP_RESHARD_AFTER_FORWARD="true")
    Accelerator(cpu=True)  # initialises the shared state (and the gloo process group)
    # Every Accelerator() copies PartialState's fields into AcceleratorState: set the type on both.
    PartialState().distributed_type = DistributedType.FSDP
    state = AcceleratorState()
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin()


def _run_rank(mode: str, model_dir: str, out: Path) -> None:
    torch.set_num_threads(1)
    fsdp2, padding_free, deepspeed = mode.startswith("fsdp2"), "padding-free" in mode, mode.startswith("zero")
    if deepspeed:  # what accelerate launch --config_file accelerate/zero3_2cpu.yaml sets (zero_stage: 2 for ZeRO-2)
        os.environ.update(ACCELERATE_USE_DEEPSPEED="true", ACCELERATE_DEEPSPEED_ZERO_STAGE=mode.removeprefix("zero"))
    counts: list[int] = []
    pack = dapo_trainer.pack_by_token_budget

    def counting_pack(lengths, budget, **kwargs):
        batches = pack(lengths, budget, **kwargs)
        counts.append(len(batches))
        return batches

    dapo_trainer.pack_by_token_budget = counting_pack
    trainer = _train(model_dir, out / "run", fsdp2=fsdp2, padding_free=padding_free, deepspeed=deepspeed)
    trainer.save_model(out / "final")
    rank = trainer.accelerator.process_index
    torch.save(trainer.engine.received, out / f"synced_{rank}.pt")
    all_counts = [None, None]
    torch.distributed.all_gather_object(all_counts, counts)
    dapo_trainer.pack_by_token_budget = pack

    _train(model_dir, out / "resumed", max_steps=1, fsdp2=fsdp2, padding_free=padding_free, deepspeed=deepspeed)  # "killed" after step 1
    resumed = _train(model_dir, out / "resumed", max_steps=2, resume=True, fsdp2=fsdp2, padding_free=padding_free, deepspeed=deepspeed)
    resumed.save_model(out / "resumed_final")
    result = {"loss": trainer.log_history[-1]["loss"], "grad_norm": trainer.log_history[-1]["grad_norm"],
              "sharded": [trainer.sharded, resumed.sharded], "micro_batch_counts": all_counts,
              "buckets_per_sync": trainer.engine.buckets // trainer.global_step}
    if mode == "fsdp2":
        # A third of the vocabulary ends a response, so the ranks finish generating at different steps.
        if rank == 0:
            model = AutoModelForCausalLM.from_pretrained(model_dir)
            model.generation_config.eos_token_id = list(range(0, model.config.vocab_size, 3))
            model.save_pretrained(out / "eos_model")
            AutoTokenizer.from_pretrained(model_dir).save_pretrained(out / "eos_model")
        torch.distributed.barrier()
        sampled = _train(str(out / "eos_model"), out / "generate", max_steps=1, seeded=False, fsdp2=True)
        longest = [None, None]
        torch.distributed.all_gather_object(longest, max(n for _, lengths, _ in sampled._round_scores for n in lengths))
        result.update(transformers_engine_steps=sampled.global_step, longest_response_per_rank=longest)
        result["sharded"].append(sampled.sharded)
    if rank == 0:
        (out / "result.json").write_text(json.dumps(result))
    torch.distributed.barrier()  # every rank is done with every collective
    # Leave without interpreter teardown: under load, gloo's groups from fully_shard's device mesh
    # occasionally abort the process in their destructors ("terminate called without an active
    # exception") after all work is done and written, which would fail the run for nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    _run_rank(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
