"""DAPO training steps: time per phase (generate / old log-probs / reference / train) and peak memory.

Each generation batch size runs in a fresh process, so its peak memory is its own (GPU: peak allocated;
CPU: peak resident set, with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors go back to the OS and
the peak follows live memory rather than the allocator's fragmentation). Memory must stay flat as the generation batch grows, because every
forward/backward pass takes one micro-batch of at most ``--token-budget`` tokens; ``--unbounded`` also
runs every size with an unbounded budget (our own trainer with one pass per mini-batch, as a loop
without token-budget micro-batches would do), and prints how much each one's peak grows from the
smallest batch to the largest.

Baseline, ``--baseline``: TRL's ``GRPOTrainer(loss_type="dapo")`` on the same model, prompts, reward,
responses per prompt, response length and clip range, one generation batch and one optimizer update
per step (``--mini-batch-size`` defaults to the prompts per step here, so ours also updates once). Its
step is split into generation (with scoring, TRL's ``_generate_and_score_completions``) and the rest
(``train``). TRL has no dynamic sampling, so the reward varies within every group and ours keeps one
round per step. With transformers rollouts no weights are synced (the policy generates): ``train``
includes the sync a vLLM engine would need.

    # CPU, the tiny Qwen3 (~107k parameters), 4 prompts x 8 responses x 32 tokens:
    OMP_NUM_THREADS=1 python benchmarks/dapo_step_time.py --shape tiny
    # with a KL reference model (exercises the reference forward pass):
    OMP_NUM_THREADS=1 python benchmarks/dapo_step_time.py --shape tiny --kl-coef 0.01 --gen-prompts 2 4 8
    # CPU memory sweep on the ~20M-parameter shape, bounded vs unbounded micro-batches:
    python benchmarks/dapo_step_time.py --shape mid --max-tokens 128 --gen-prompts 2 4 8 16 --steps 1 \\
        --token-budget 4096 --unbounded
    # against TRL's GRPOTrainer(loss_type="dapo") on the same inputs:
    OMP_NUM_THREADS=1 python benchmarks/dapo_step_time.py --shape tiny --gen-prompts 4 --steps 3 --baseline
    # padding-free micro-batches (on GPUs with flash_attention_2 in the model config):
    OMP_NUM_THREADS=1 python benchmarks/dapo_step_time.py --shape tiny --gen-prompts 8 --padding-free
    # GPU: a random Qwen3-0.6B-shaped model with its 151,936-token vocabulary, 16 responses of up to 4k tokens:
    python benchmarks/dapo_step_time.py --shape qwen3-0.6b --vocab-size 151936 --num-generations 16 \\
        --max-tokens 4096 --gen-prompts 2 4 8 --steps 3 --bf16 --device cuda --unbounded --baseline
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import SHAPES, build_random_model, peak_memory_gib, run_variant

from medreason.testing import tiny_records
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import DAPOTrainer

PHASES = ("time/generate", "time/old_logprob", "time/reference", "time/train", "time/step")
TRL_PHASES = ("time/generate", "time/train", "time/step")
UNBOUNDED = 10**9


def varied_length_reward(completions, *, completion_ids, **kwargs):
    """A reward that differs within almost every group, so dynamic sampling keeps one round per step."""
    return [len(set(ids)) / max(len(ids), 1) for ids in completion_ids]


def random_model(args: argparse.Namespace) -> Path:
    return build_random_model(args.shape, Path(tempfile.mkdtemp()), args.max_tokens + 512, args.vocab_size)


def prompts() -> list[dict]:
    return [{"prompt": [{"role": "user", "content": r["question"]}]} for r in tiny_records(64)]


def mini_batch_size(args: argparse.Namespace, gen_prompts: int) -> int:
    return args.mini_batch_size or max(gen_prompts // 2, 1)


def run(args: argparse.Namespace, gen_prompts: int, token_budget: int) -> dict[str, float]:
    """``args.steps`` timed steps (after ``args.warmup_steps``) of our trainer with ``gen_prompts`` prompts per step."""
    config = DAPOConfig(
        output_dir=tempfile.mkdtemp(), use_cpu=args.device == "cpu", bf16=args.bf16, seed=0,
        max_steps=args.warmup_steps + args.steps, num_generations=args.num_generations,
        train_prompt_batch_size=gen_prompts, gen_prompt_batch_size=gen_prompts,
        mini_batch_size=mini_batch_size(args, gen_prompts), max_completion_length=args.max_tokens,
        overlong_buffer_length=0, rewards=["format"], learning_rate=1e-5, warmup_steps=0, save_steps=10**6,
        logging_steps=10**6, kl_coef=args.kl_coef, micro_batch_token_budget=token_budget,
        transformers_generation_batch_size=args.generation_batch_size, truncation_warning_threshold=1.0,
        activation_checkpointing=args.activation_checkpointing, padding_free=args.padding_free,
    )
    model_dir = random_model(args)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = DAPOTrainer(str(model_dir), config, prompts(), reward_funcs=[varied_length_reward])
    trainer.train()
    steps = trainer.log_history[args.warmup_steps :]  # warm-up steps pay one-off costs (allocator, kernels)
    result = {phase: statistics.median(m[phase] for m in steps) for phase in PHASES}
    result["tokens_per_step"] = statistics.median(m["completion_length_mean"] for m in steps) * gen_prompts * args.num_generations
    result["peak_memory_gib"] = peak_memory_gib(args.device)
    # The log-prob path the config selects (the figures depend on it).
    result["padding_free"], result["micro_batch_token_budget"] = config.padding_free, config.micro_batch_token_budget
    return result


def run_trl(args: argparse.Namespace, gen_prompts: int) -> dict[str, float]:
    """The baseline: TRL's ``GRPOTrainer(loss_type="dapo")`` on the same inputs, timed like :func:`run`."""
    import datasets
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        """Times TRL's generation-and-scoring hook, which TRL reports only to W&B, MLflow or Trackio."""

        generate_seconds: list[float] = []

        def _generate_and_score_completions(self, inputs):
            start = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            self.generate_seconds.append(time.perf_counter() - start)
            return out

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.seconds: list[float] = []

        def on_step_begin(self, *_, **__):
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            self.seconds.append(time.perf_counter() - self.start)

    sequences = gen_prompts * args.num_generations
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(), use_cpu=args.device == "cpu", bf16=args.bf16, seed=0,
        max_steps=args.warmup_steps + args.steps, num_generations=args.num_generations, loss_type="dapo",
        per_device_train_batch_size=sequences, gradient_accumulation_steps=1, steps_per_generation=1,
        max_completion_length=args.max_tokens, beta=args.kl_coef, epsilon=0.2, epsilon_high=0.28,
        temperature=1.0, learning_rate=1e-5, warmup_steps=0, save_strategy="no", logging_steps=10**6,
        report_to="none", disable_tqdm=True, activation_checkpointing=args.activation_checkpointing,
    )
    model_dir = random_model(args)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps = StepTimes()
    trainer = TimedGRPOTrainer(model=str(model_dir), reward_funcs=[varied_length_reward], args=config,
                               train_dataset=datasets.Dataset.from_list(prompts()), callbacks=[steps])
    trainer.generate_seconds = []
    trainer.train()
    generate, step = trainer.generate_seconds[args.warmup_steps :], steps.seconds[args.warmup_steps :]
    result = {"time/generate": statistics.median(generate), "time/step": statistics.median(step),
              "time/train": statistics.median(s - g for s, g in zip(step, generate, strict=True))}
    lengths = [m["completions/mean_length"] for m in trainer.state.log_history if "completions/mean_length" in m]
    result["tokens_per_step"] = statistics.median(lengths[args.warmup_steps :] or lengths) * sequences
    result["peak_memory_gib"] = peak_memory_gib(args.device)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="Random Qwen3 architecture.")
    parser.add_argument("--vocab-size", type=int, default=None, help="Resize the embeddings to this vocabulary.")
    parser.add_argument("--steps", type=int, default=5, help="Timed steps (after the warm-up steps).")
    parser.add_argument("--warmup-steps", type=int, default=1, help="Untimed first steps (one-off costs).")
    parser.add_argument("--gen-prompts", type=int, nargs="+", default=[4], help="Prompts per step; several = a sweep.")
    parser.add_argument("--num-generations", type=int, default=8, help="Responses per prompt.")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_completion_length.")
    parser.add_argument("--token-budget", type=int, default=16384, help="micro_batch_token_budget.")
    parser.add_argument("--unbounded", action="store_true", help="Also run every size with an unbounded token budget.")
    parser.add_argument("--baseline", action="store_true", help="Also run TRL's GRPOTrainer(loss_type='dapo').")
    parser.add_argument("--mini-batch-size", type=int, default=None,
                        help="Prompts per optimizer update (default: half the prompts per step; with --baseline all).")
    parser.add_argument("--generation-batch-size", type=int, default=64, help="Sequences per generate() call.")
    parser.add_argument("--kl-coef", type=float, default=0.0, help="> 0 adds the reference model's forward pass.")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU).")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--padding-free", action="store_true", help="Pack micro-batches without padding.")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # "PROMPTS:BUDGET" or "trl:PROMPTS", one run here
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.variant:
        if args.variant.startswith("trl:"):
            print(json.dumps(run_trl(args, int(args.variant[4:]))))
        else:
            gen_prompts, budget = map(int, args.variant.split(":"))
            print(json.dumps(run(args, gen_prompts, budget)))
        return
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# DAPO step time: shape={args.shape}, {device}, {args.num_generations} responses/prompt, "
          f"max_tokens={args.max_tokens}, median of {args.steps} steps")
    print(" | ".join(["trainer", "budget", "prompts", *[p.split("/")[1] + "_s" for p in PHASES], "tokens/step", "peak_GiB"]))
    if args.device == "cpu":
        os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")  # inherited by every variant's process
    forwarded = [a for a in sys.argv[1:] if a not in ("--baseline", "--unbounded")]

    def argv(gen_prompts: int) -> list[str]:
        if args.baseline and args.mini_batch_size is None:  # TRL updates once per generation batch: so do we
            return [*forwarded, "--mini-batch-size", str(gen_prompts)]
        return forwarded

    budgets = [args.token_budget, UNBOUNDED] if args.unbounded else [args.token_budget]
    ours: dict[int, dict] = {}
    for budget in budgets:
        peaks = []
        for gen_prompts in args.gen_prompts:
            result = run_variant(__file__, f"{gen_prompts}:{budget}", argv(gen_prompts))
            ours.setdefault(gen_prompts, result)
            peaks.append(result["peak_memory_gib"])
            row = ["medreason", "unbounded" if budget == UNBOUNDED else str(budget), str(gen_prompts),
                   *[f"{result[p]:.3f}" for p in PHASES], f"{result['tokens_per_step']:.0f}", f"{result['peak_memory_gib']:.3f}"]
            print(" | ".join(row), flush=True)
        if len(peaks) > 1:
            print(f"# budget {row[1]}: peak memory x{peaks[-1] / peaks[0]:.2f} from {args.gen_prompts[0]} to "
                  f"{args.gen_prompts[-1]} prompts per step", flush=True)
    for gen_prompts in args.gen_prompts if args.baseline else []:
        trl = run_variant(__file__, f"trl:{gen_prompts}", argv(gen_prompts))
        print(" | ".join(["trl GRPOTrainer(loss_type=dapo)", "-", str(gen_prompts),
                          *[f"{trl[p]:.3f}" if p in trl else "-" for p in PHASES],
                          f"{trl['tokens_per_step']:.0f}", f"{trl['peak_memory_gib']:.3f}"]), flush=True)
        mine = ours[gen_prompts]
        print(f"# {gen_prompts} prompts: step time medreason / TRL {mine['time/step'] / trl['time/step']:.3f}, "
              f"tokens/s medreason / TRL {mine['tokens_per_step'] / mine['time/step'] / (trl['tokens_per_step'] / trl['time/step']):.3f}, "
              f"peak memory medreason / TRL {mine['peak_memory_gib'] / trl['peak_memory_gib']:.3f}", flush=True)


if __name__ == "__main__":
    main()
