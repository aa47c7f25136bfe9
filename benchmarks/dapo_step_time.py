"""DAPO training steps: time per phase (generate / old log-probs / reference / train) and peak memory.

Each generation batch size runs in a fresh process, so its peak memory is its own (GPU: peak allocated;
CPU: peak resident set, with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors go back to the OS and
the peak follows live memory rather than the allocator's fragmentation). Memory must stay flat as the generation batch grows, because every
forward/backward pass takes one micro-batch of at most ``--token-budget`` tokens; ``--baseline`` also
runs every size with an unbounded budget (one pass per mini-batch, as a loop without token-budget
micro-batches would do), and prints how much each one's peak grows from the smallest batch to the largest.

    # CPU, the tiny Qwen3 (~107k parameters), 4 prompts x 8 responses x 32 tokens:
    OMP_NUM_THREADS=1 python benchmarks/dapo_step_time.py --shape tiny
    # with a KL reference model (exercises the reference forward pass):
    OMP_NUM_THREADS=1 python benchmarks/dapo_step_time.py --shape tiny --kl-coef 0.01 --gen-prompts 2 4 8
    # CPU memory sweep on the ~20M-parameter shape, bounded vs unbounded micro-batches:
    python benchmarks/dapo_step_time.py --shape mid --max-tokens 128 --gen-prompts 2 4 8 16 --steps 1 \\
        --token-budget 4096 --baseline
    # padding-free micro-batches (on GPUs with flash_attention_2 in the model config):
    OMP_NUM_THREADS=1 python benchmarks/dapo_step_time.py --shape tiny --gen-prompts 8 --padding-free
    # GPU: a random Qwen3-0.6B-shaped model with its 151,936-token vocabulary, 16 responses of up to 4k tokens:
    python benchmarks/dapo_step_time.py --shape qwen3-0.6b --vocab-size 151936 --num-generations 16 \\
        --max-tokens 4096 --gen-prompts 2 4 8 --steps 3 --bf16 --device cuda --baseline
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from common import SHAPES, build_random_model, peak_memory_gib, run_variant
from transformers import AutoModelForCausalLM

from medreason.testing import tiny_records
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import DAPOTrainer

PHASES = ("time/generate", "time/old_logprob", "time/reference", "time/train", "time/step")
UNBOUNDED = 10**9


def varied_length_reward(completions, *, completion_ids, **kwargs):
    """A reward that differs within almost every group, so dynamic sampling keeps one round per step."""
    return [len(set(ids)) / max(len(ids), 1) for ids in completion_ids]


def run(args: argparse.Namespace, gen_prompts: int, token_budget: int) -> dict[str, float]:
    """``args.steps`` timed steps (after one warm-up step) with ``gen_prompts`` prompts per step."""
    model_dir = build_random_model(args.shape, Path(tempfile.mkdtemp()), args.max_tokens + 512)
    if args.vocab_size is not None:  # the logits dominate memory at long lengths
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        model.resize_token_embeddings(args.vocab_size)
        model.save_pretrained(model_dir)
    config = DAPOConfig(
        output_dir=tempfile.mkdtemp(), use_cpu=args.device == "cpu", bf16=args.bf16, seed=0,
        max_steps=args.steps + 1, num_generations=args.num_generations, train_prompt_batch_size=gen_prompts,
        gen_prompt_batch_size=gen_prompts, mini_batch_size=max(gen_prompts // 2, 1), max_completion_length=args.max_tokens,
        overlong_buffer_length=0, rewards=["format"], learning_rate=1e-5, warmup_steps=0, save_steps=10**6,
        logging_steps=10**6, kl_coef=args.kl_coef, micro_batch_token_budget=token_budget,
        transformers_generation_batch_size=args.generation_batch_size, truncation_warning_threshold=1.0,
        activation_checkpointing=args.activation_checkpointing, padding_free=args.padding_free,
    )
    data = [{"prompt": [{"role": "user", "content": r["question"]}]} for r in tiny_records(64)]
    trainer = DAPOTrainer(str(model_dir), config, data, reward_funcs=[varied_length_reward])
    trainer.train()
    steps = trainer.log_history[1:]  # the first step pays one-off warm-up costs
    result = {phase: statistics.median(m[phase] for m in steps) for phase in PHASES}
    result["tokens_per_step"] = statistics.median(m["completion_length_mean"] for m in steps) * gen_prompts * args.num_generations
    result["peak_memory_gib"] = peak_memory_gib(args.device)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="Random Qwen3 architecture.")
    parser.add_argument("--vocab-size", type=int, default=None, help="Resize the embeddings to this vocabulary.")
    parser.add_argument("--steps", type=int, default=5, help="Timed steps (after one warm-up step).")
    parser.add_argument("--gen-prompts", type=int, nargs="+", default=[4], help="Prompts per step; several = a sweep.")
    parser.add_argument("--num-generations", type=int, default=8, help="Responses per prompt.")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_completion_length.")
    parser.add_argument("--token-budget", type=int, default=16384, help="micro_batch_token_budget.")
    parser.add_argument("--baseline", action="store_true", help="Also run every size with an unbounded token budget.")
    parser.add_argument("--generation-batch-size", type=int, default=64, help="Sequences per generate() call.")
    parser.add_argument("--kl-coef", type=float, default=0.0, help="> 0 adds the reference model's forward pass.")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU).")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--padding-free", action="store_true", help="Pack micro-batches without padding.")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # "PROMPTS:BUDGET", one run in this process
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.variant:
        gen_prompts, budget = map(int, args.variant.split(":"))
        print(json.dumps(run(args, gen_prompts, budget)))
        return
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# DAPO step time: shape={args.shape}, {device}, {args.num_generations} responses/prompt, "
          f"max_tokens={args.max_tokens}, median of {args.steps} steps")
    print(" | ".join(["budget", "prompts", *[p.split("/")[1] + "_s" for p in PHASES], "tokens/step", "peak_GiB"]))
    if args.device == "cpu":
        os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")  # inherited by every variant's process
    forwarded = [a for a in sys.argv[1:] if a != "--baseline"]
    budgets = [args.token_budget, UNBOUNDED] if args.baseline else [args.token_budget]
    for budget in budgets:
        peaks = []
        for gen_prompts in args.gen_prompts:
            result = run_variant(__file__, f"{gen_prompts}:{budget}", forwarded)
            peaks.append(result["peak_memory_gib"])
            row = ["unbounded" if budget == UNBOUNDED else str(budget), str(gen_prompts),
                   *[f"{result[p]:.3f}" for p in PHASES], f"{result['tokens_per_step']:.0f}", f"{result['peak_memory_gib']:.3f}"]
            print(" | ".join(row), flush=True)
        if len(peaks) > 1:
            print(f"# budget {row[0]}: peak memory x{peaks[-1] / peaks[0]:.2f} from {args.gen_prompts[0]} to "
                  f"{args.gen_prompts[-1]} prompts per step", flush=True)


if __name__ == "__main__":
    main()
