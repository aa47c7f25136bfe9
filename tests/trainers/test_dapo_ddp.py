"""Two data-parallel CPU ranks (gloo) make exactly the update one process makes on the same batch.

The test runs this file under ``torchrun --nproc_per_node 2``; each rank samples half of the prompts
from an engine whose responses depend only on the prompt, so both runs train on the same groups. With
the mini-batch's token count all-reduced over ranks, the loss, the gradient norm and the updated
weights match the single-process run.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medreason.engines.base import Completion, GenerationEngine
from medreason.engines.transformers_engine import encode_prompt
from medreason.testing import tiny_records
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import DAPOTrainer


class _PromptSeededEngine(GenerationEngine):
    """Random responses that depend only on the prompt's token ids (not on the rank or step)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

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


def _distinct_token_reward(completions, *, completion_ids, **kwargs):
    return [len(set(ids)) / len(ids) + 0.1 * (ids[0] % 3) for ids in completion_ids]


def _train(model_dir: str, output_dir: str) -> DAPOTrainer:
    from transformers import AutoTokenizer

    args = DAPOConfig(
        output_dir=output_dir, use_cpu=True, bf16=False, seed=0, max_steps=1, num_generations=4,
        train_prompt_batch_size=4, gen_prompt_batch_size=4, mini_batch_size=4, max_completion_length=12,
        overlong_buffer_length=0, rewards=["format"], dynamic_sampling=False, learning_rate=1e-4, warmup_steps=0,
        save_steps=1000, micro_batch_token_budget=120,  # several micro-batches per rank, of unequal sizes
    )
    data = [{"prompt": [{"role": "user", "content": r["question"]}]} for r in tiny_records(4)]
    engine = _PromptSeededEngine(AutoTokenizer.from_pretrained(model_dir))
    trainer = DAPOTrainer(model_dir, args, data, reward_funcs=[_distinct_token_reward], engine=engine)
    trainer.train()
    return trainer


def test_two_ranks_match_one_process(tiny_model_dir, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _train(str(tiny_model_dir), str(tmp_path / "single"))
    finally:
        torch.set_num_threads(threads)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:  # a free port, so parallel test runs do not collide
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               __file__, str(tiny_model_dir), str(tmp_path / "ddp")]
    subprocess.run(command, check=True, env=env, timeout=300)
    ddp = json.loads((tmp_path / "ddp" / "result.json").read_text())
    metrics = single.log_history[-1]
    assert ddp["loss"] == pytest.approx(metrics["loss"], rel=1e-5, abs=1e-7)
    assert ddp["grad_norm"] == pytest.approx(metrics["grad_norm"], rel=1e-5)
    params = torch.load(tmp_path / "ddp" / "params.pt")
    for name, value in single.policy.state_dict().items():
        torch.testing.assert_close(params[name], value, rtol=1e-5, atol=1e-7)


if __name__ == "__main__":
    torch.set_num_threads(1)
    trainer = _train(sys.argv[1], sys.argv[2])
    if trainer.accelerator.is_main_process:
        metrics = trainer.log_history[-1]
        Path(sys.argv[2], "result.json").write_text(json.dumps({"loss": metrics["loss"], "grad_norm": metrics["grad_norm"]}))
        torch.save(trainer.policy.state_dict(), Path(sys.argv[2], "params.pt"))
