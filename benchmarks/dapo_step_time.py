"""Step-time breakdown of DAPO training steps: generate / old log-probs / reference / train.

Runs a few steps on a random model with the transformers engine and prints the median time of each
phase, so changes to the loop can be compared as ratios against a recorded baseline (docs/dapo.md).

    # CPU, the tiny Qwen3 (~107k parameters), 4 prompts x 8 responses x 32 tokens:
    OMP_NUM_THREADS=1 python benchmarks/dapo_step_time.py
    # with a KL reference model (exercises the reference forward pass):
    OMP_NUM_THREADS=1 python benchmarks/dapo_step_time.py --kl-coef 0.01
    # GPU: a random Qwen3-0.6B-shaped model, 16 responses of up to 4k tokens, peak memory per
    # generation batch size (memory must stay flat: micro-batches are bounded by the token budget):
    python benchmarks/dapo_step_time.py --shape qwen3-0.6b --num-generations 16 --max-tokens 4096 \\
        --gen-prompts 2 4 8 --steps 3 --bf16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM

from medreason.testing import build_tiny_model_dir, tiny_records
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import DAPOTrainer

# Qwen3-0.6B's architecture (config.json of Qwen/Qwen3-0.6B) with random weights. Its 151,936-token
# vocabulary is restored by resizing the embeddings (the logits dominate memory at long lengths); the tiny
# tokenizer only emits the first 512 ids, which does not change the cost.
SHAPES = {
    "tiny": ({}, None),
    "qwen3-0.6b": (dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                        num_key_value_heads=8, head_dim=128, max_position_embeddings=40960), 151936),
}
PHASES = ("time/generate", "time/old_logprob", "time/reference", "time/train", "time/step")


def varied_length_reward(completions, *, completion_ids, **kwargs):
    """A reward that differs within almost every group, so dynamic sampling keeps one round per step."""
    return [len(set(ids)) / max(len(ids), 1) for ids in completion_ids]


def run(args: argparse.Namespace, gen_prompts: int, model_dir: str) -> dict[str, float]:
    config = DAPOConfig(
        output_dir=tempfile.mkdtemp(), use_cpu=not torch.cuda.is_available(), bf16=args.bf16, seed=0,
        max_steps=args.steps + 1, num_generations=args.num_generations, train_prompt_batch_size=gen_prompts,
        gen_prompt_batch_size=gen_prompts, mini_batch_size=max(gen_prompts // 2, 1), max_completion_length=args.max_tokens,
        overlong_buffer_length=0, rewards=["format"], learning_rate=1e-5, warmup_steps=0, save_steps=10**6,
        logging_steps=10**6, kl_coef=args.kl_coef, micro_batch_token_budget=args.token_budget,
        transformers_generation_batch_size=args.generation_batch_size, truncation_warning_threshold=1.0,
    )
    data = [{"prompt": [{"role": "user", "content": r["question"]}]} for r in tiny_records(64)]
    trainer = DAPOTrainer(model_dir, config, data, reward_funcs=[varied_length_reward])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    steps = trainer.log_history[1:]  # the first step pays one-off warm-up costs
    result = {phase: statistics.median(m[phase] for m in steps) for phase in PHASES}
    result["tokens_per_step"] = statistics.median(m["completion_length_mean"] for m in steps) * gen_prompts * args.num_generations
    if torch.cuda.is_available():
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="Random model architecture.")
    parser.add_argument("--steps", type=int, default=5, help="Timed steps (after one warm-up step).")
    parser.add_argument("--gen-prompts", type=int, nargs="+", default=[4], help="Prompts per step; several = a sweep.")
    parser.add_argument("--num-generations", type=int, default=8, help="Responses per prompt.")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_completion_length.")
    parser.add_argument("--token-budget", type=int, default=16384, help="micro_batch_token_budget.")
    parser.add_argument("--generation-batch-size", type=int, default=64, help="Sequences per generate() call.")
    parser.add_argument("--kl-coef", type=float, default=0.0, help="> 0 adds the reference model's forward pass.")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU).")
    args = parser.parse_args()

    dims, vocab_size = SHAPES[args.shape]
    model_dir = str(build_tiny_model_dir(tempfile.mkdtemp(), "qwen3", **dims))
    if vocab_size is not None:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        model.resize_token_embeddings(vocab_size)
        model.save_pretrained(model_dir)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"# DAPO step time: shape={args.shape}, {device}, {args.num_generations} responses/prompt, "
          f"max_tokens={args.max_tokens}, median of {args.steps} steps")
    header = ["prompts", *[p.split("/")[1] + "_s" for p in PHASES], "tokens/step", "peak_GiB"]
    print(" | ".join(header))
    for gen_prompts in args.gen_prompts:
        started = time.perf_counter()
        result = run(args, gen_prompts, model_dir)
        row = [str(gen_prompts), *[f"{result[p]:.3f}" for p in PHASES], f"{result['tokens_per_step']:.0f}",
               f"{result['peak_memory_gib']:.2f}" if "peak_memory_gib" in result else "n/a"]
        print(" | ".join(row), f"  (total {time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()
