"""Peak memory of one DAPO update at long response lengths: fused log-probs vs dense logits vs TRL.

Model: a random Qwen3 with the real 151,936-token vocabulary (Qwen3 / II-Medical) and a minimal body
(``--shape head``: hidden 32, one layer), so on CPU the LM head and the logits are what grows, as they do on
GPUs at the card's 12k-token responses. Data: one prompt of ``--prompt-tokens`` tokens and a group of two
fixed random responses (advantages +1/-1), one of N tokens and one of ``SHORT_RESPONSE_TOKENS``; every
forward/backward pass holds one response (the token budget is one sequence), so "response tokens" is the
length scored by the pass that sets the peak. All three columns get this same model and data.

Where the time goes (cProfile of the fused column at 2,048 tokens, ``tiny`` shape, two full-length
responses: 24 s): all of it in the ``[tokens x 151,936]`` work of the head, the matmuls (~45%) and the
vocabulary-wide ``logsumexp``/``softmax`` (~40%); attention, the body and AdamW under 2%. Per head pass that
work is fixed by tokens x vocabulary, so this benchmark keeps only what the memory comparison needs: the
second response of the group is short (it only makes the advantages non-zero; it sets no peak), which halves
the head passes, and the body is one layer of hidden 32 (the head's matmuls scale with the hidden size; the
logits, which are what differs between the columns, do not).

Columns, each run in a fresh subprocess per length (its own peak):

* ``fused``: :class:`~medreason.trainers.DAPOTrainer` with ``fused_logprobs=True`` (the default): one training
  step (old log-probs pass + one optimizer update), generation replaced by a stand-in engine that returns
  the fixed responses.
* ``dense``: the same step with ``fused_logprobs=False``: ``[tokens x vocab]`` logits, as before this change.
* ``trl``: ``trl.GRPOTrainer(loss_type="dapo")`` on the same model and responses: its ``compute_loss`` and
  backward on each response, then one AdamW step. Its generation is bypassed the same way, by handing
  ``compute_loss`` the tokenised prompt + response directly (TRL's rollout is not what is measured here).
  TRL 1.16 patches the model with its own fused LM head (``trl.trainer.utils.add_fused_lm_head``), so this
  column is a fused path too.

All three run float32 with activation checkpointing on. How memory is measured (CPU): the subprocess's
peak resident set (``getrusage(RUSAGE_SELF).ru_maxrss``) after the update, minus the same reading taken once
the model, optimizer and trainer exist; ``MALLOC_MMAP_THRESHOLD_=65536`` makes large tensors ``mmap``-ed so the
reading follows live tensors, not allocator reuse. ``tracemalloc`` cannot be used: it only sees Python's own
allocator, not torch's. On CUDA (``--device cuda``) the peak is ``torch.cuda.max_memory_allocated`` minus the
allocation after setup. A dense or TRL run predicted (from the previous length's peak, scaled by length) to
exceed ``--memory-limit-gb`` is skipped and reported as ``null``, so the benchmark cannot take a shared
machine's memory.

    # CPU, the table in docs/dapo.md (15 minutes on a shared 2-core machine with other jobs running;
    # the head passes over 16k tokens x 152k vocabulary dominate):
    OMP_NUM_THREADS=1 python benchmarks/dapo_memory.py --json
    # a few minutes:
    OMP_NUM_THREADS=1 python benchmarks/dapo_memory.py --response-tokens 256 1024
    # GPU, a Qwen3-0.6B-shaped model in bf16:
    python benchmarks/dapo_memory.py --device cuda --shape qwen3-0.6b --bf16 --response-tokens 4096 8192 16384
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from common import SHAPES

VARIANTS = ("fused", "dense", "trl")
QWEN3_VOCAB = 151_936
SHORT_RESPONSE_TOKENS = 16
"""Length of the group's second response: it gives the advantages +1/-1 and adds no head pass of note."""


def _model(shape: str, positions: int, device: str) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, Qwen3Config

    config = Qwen3Config(vocab_size=QWEN3_VOCAB, max_position_embeddings=positions, tie_word_embeddings=True,
                         pad_token_id=0, eos_token_id=1, **SHAPES[shape])
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(device)


def _responses(prompt_tokens: int, response_tokens: int) -> tuple[list[int], list[list[int]]]:
    """The prompt and the group: one response of ``response_tokens`` and one of ``SHORT_RESPONSE_TOKENS``."""
    generator = torch.Generator().manual_seed(0)
    # Ids >= 2 avoid the pad (0) and EOS (1) tokens, so every response is exactly as long as asked.
    prompt = torch.randint(2, QWEN3_VOCAB, (prompt_tokens,), generator=generator).tolist()
    lengths = (response_tokens, min(SHORT_RESPONSE_TOKENS, response_tokens))
    return prompt, [torch.randint(2, QWEN3_VOCAB, (n,), generator=generator).tolist() for n in lengths]


class FixedResponses:
    """A stand-in rollout engine: every prompt gets the same fixed responses (generation is not measured)."""

    def __init__(self, prompt_ids: list[int], responses: list[list[int]]):
        self.prompt_ids, self.responses = prompt_ids, responses

    def encode_prompt(self, prompt: object) -> list[int]:
        return self.prompt_ids

    def generate(self, prompts: list[object], sampling: object) -> list[list[object]]:
        from medreason.engines.base import Completion

        return [[Completion("", ids, "length") for ids in self.responses] for _ in prompts]


def first_response_reward(completions, **kwargs) -> list[float]:
    """+1 for the first response of the group, 0 for the second: advantages +1/-1 (a non-zero gradient)."""
    return [float(i % 2 == 0) for i in range(len(completions))]


def _allocated(device: str) -> float:
    """Bytes in use now (CUDA) or the peak resident set so far (CPU: ru_maxrss is in KiB on Linux)."""
    if device == "cuda":
        return float(torch.cuda.memory_allocated())
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def _peak(device: str) -> float:
    if device == "cuda":
        return float(torch.cuda.max_memory_allocated())
    return _allocated(device)


def _medreason_update(args: argparse.Namespace, tokens: int, fused: bool) -> tuple[float, float]:
    """(setup bytes, seconds) around one DAPOTrainer step; the peak is read by the caller."""
    import tempfile

    from medreason.trainers.dapo_config import DAPOConfig
    from medreason.trainers.dapo_trainer import DAPOTrainer

    prompt, responses = _responses(args.prompt_tokens, tokens)
    model = _model(args.shape, args.prompt_tokens + tokens + 8, args.device)
    config = DAPOConfig(
        output_dir=tempfile.mkdtemp(), use_cpu=args.device == "cpu", bf16=args.bf16, max_steps=1, num_generations=2,
        train_prompt_batch_size=1, gen_prompt_batch_size=1, mini_batch_size=1, max_completion_length=tokens,
        max_prompt_length=args.prompt_tokens, overlong_buffer_length=0, dynamic_sampling=False,
        micro_batch_token_budget=args.prompt_tokens + tokens, fused_logprobs=fused, learning_rate=1e-5,
        warmup_steps=0, save_steps=10**6, truncation_warning_threshold=1.0, report_to="none",
    )
    from medreason.testing import build_tiny_tokenizer

    trainer = DAPOTrainer(model, config, [{"prompt": "fixed"}], processing_class=build_tiny_tokenizer(),
                          reward_funcs=[first_response_reward], engine=FixedResponses(prompt, responses))
    setup = _allocated(args.device)
    start = time.perf_counter()
    trainer.training_step()
    return setup, time.perf_counter() - start


def _trl_update(args: argparse.Namespace, tokens: int) -> tuple[float, float]:
    """(setup bytes, seconds) around TRL GRPOTrainer(loss_type="dapo"): loss + backward per response, one step."""
    import tempfile

    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from medreason.testing import build_tiny_tokenizer

    prompt, responses = _responses(args.prompt_tokens, tokens)
    model = _model(args.shape, args.prompt_tokens + tokens + 8, args.device)
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(), use_cpu=args.device == "cpu", bf16=args.bf16, loss_type="dapo",
        num_generations=2, per_device_train_batch_size=2, max_completion_length=tokens, learning_rate=1e-5,
        gradient_checkpointing=True, report_to="none", beta=0.0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=first_response_reward, args=config, processing_class=build_tiny_tokenizer(),
                          train_dataset=datasets.Dataset.from_list([{"prompt": "fixed"}] * 2))
    trainer.create_optimizer()
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by HF Trainer's loop, which is bypassed here
    device = trainer.accelerator.device
    setup = _allocated(args.device)
    start = time.perf_counter()
    for advantage, response in zip((1.0, -1.0), responses, strict=True):
        inputs = {
            "prompt_ids": torch.tensor([prompt], device=device), "prompt_mask": torch.ones(1, len(prompt), device=device),
            "completion_ids": torch.tensor([response], device=device),
            "completion_mask": torch.ones(1, len(response), device=device),
            "advantages": torch.tensor([advantage], device=device),
            # The group's token count: the token-mean over both responses, as one DAPO update.
            "num_items_in_batch": torch.tensor(float(sum(map(len, responses))), device=device),
        }
        with trainer.accelerator.autocast():
            loss = trainer.compute_loss(trainer.model, inputs)
        trainer.accelerator.backward(loss)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return setup, time.perf_counter() - start


def run_variant(args: argparse.Namespace) -> dict[str, float]:
    """One configuration in this process: the update's peak memory above setup, in MB, and its time."""
    torch.set_num_threads(args.threads)
    tokens = args.tokens
    if args.variant == "trl":
        setup, seconds = _trl_update(args, tokens)
    else:
        setup, seconds = _medreason_update(args, tokens, fused=args.variant == "fused")
    return {"peak_mb": (_peak(args.device) - setup) / 2**20, "seconds": seconds}


def _subprocess(args: argparse.Namespace, variant: str, tokens: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--variant", variant, "--tokens", str(tokens), "--shape", args.shape,
               "--prompt-tokens", str(args.prompt_tokens), "--device", args.device, "--threads", str(args.threads)]
    if args.bf16:
        command.append("--bf16")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{variant} at {tokens} tokens failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--response-tokens", type=int, nargs="+", default=[1024, 4096, 8192, 16384])
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="head", help="Body of the random Qwen3.")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (float32 master weights).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per subprocess (shared CPUs: 1).")
    parser.add_argument("--memory-limit-gb", type=float, default=10.0,
                        help="Skip a dense/TRL run whose predicted peak exceeds this (a shared machine's share).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of a table.")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args)))
        return

    lengths = sorted(args.response_tokens)
    results: dict[str, list[dict[str, float] | None]] = {variant: [] for variant in VARIANTS}
    for variant in VARIANTS:
        previous: tuple[int, float] | None = None
        for tokens in lengths:
            predicted = previous[1] * tokens / previous[0] if previous else 0.0
            if variant != "fused" and predicted > args.memory_limit_gb * 1024:
                print(f"skipping {variant} at {tokens} tokens: predicted {predicted / 1024:.1f} GB from the "
                      f"{previous[0]}-token run exceeds --memory-limit-gb {args.memory_limit_gb}", file=sys.stderr)
                results[variant].append(None)
                continue
            result = _subprocess(args, variant, tokens)
            results[variant].append(result)
            previous = (tokens, result["peak_mb"])
            print(f"{variant:>5} {tokens:>6} tokens: {result['peak_mb']:9.1f} MB  {result['seconds']:7.1f} s", file=sys.stderr)

    def column(variant: str, key: str) -> list[float | None]:
        return [None if r is None else round(r[key], 1) for r in results[variant]]

    report = {"response_tokens": lengths, "vocab_size": QWEN3_VOCAB, "shape": args.shape, "device": args.device,
              "bf16": args.bf16, **{f"peak_mb_{v}": column(v, "peak_mb") for v in VARIANTS},
              **{f"seconds_{v}": column(v, "seconds") for v in VARIANTS}}
    if args.json:
        print(json.dumps(report))
        return
    print(f"{'response tokens':>15} | {'fused MB':>9} | {'dense MB':>9} | {'TRL MB':>9} | dense/fused | TRL/fused")
    for i, tokens in enumerate(lengths):
        fused, dense, trl = (report[f"peak_mb_{v}"][i] for v in VARIANTS)

        def show(value: float | None) -> str:
            return "skipped" if value is None else f"{value:.0f}"

        def ratio(value: float | None, base: float | None = fused) -> str:
            return "-" if value is None or not base else f"{value / base:.1f}x"

        print(f"{tokens:>15} | {show(fused):>9} | {show(dense):>9} | {show(trl):>9} | {ratio(dense):>11} | {ratio(trl):>9}")


if __name__ == "__main__":
    main()
