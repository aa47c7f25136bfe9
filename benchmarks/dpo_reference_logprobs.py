"""DPO throughput and peak memory with a live reference model vs precomputed reference log-probs.

Each variant trains the same random model on the same long pairs for the same steps in its own
process. ``precomputed`` pays one reference pass over the data before training (``setup_s``) and
then skips the reference forward at every step.

    python benchmarks/dpo_reference_logprobs.py                           # CPU, mid-size model
    python benchmarks/dpo_reference_logprobs.py --shape tiny --steps 4    # quick
    python benchmarks/dpo_reference_logprobs.py --device cuda --shape qwen3-0.6b --seq-len 8192 --bf16 \\
        --activation-checkpointing                                        # the FineMedLM-o1 pair length
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import add_model_arguments, build_random_model, median_runs, peak_memory_gib
from sft_throughput import long_records

from medreason.testing import preference_pairs


def train_once(variant: str, options: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medreason.trainers import DPOConfig, DPOTrainer

    work = Path(tempfile.mkdtemp())
    model_dir = build_random_model(options.shape, work / "model", options.seq_len, options.vocab_size)
    records = long_records(options.batch * options.steps, options.seq_len // 2)
    for record in records:
        record["options"], record["answer"] = {"A": "", "B": ""}, "B"
    args = DPOConfig(
        output_dir=str(work / "out"), max_steps=options.steps, per_device_train_batch_size=options.batch,
        max_length=options.seq_len, bf16=options.bf16, use_cpu=options.device == "cpu", report_to="none",
        activation_checkpointing=options.activation_checkpointing, disable_tqdm=True, logging_steps=1,
        save_strategy="no", precompute_ref_log_probs=variant == "precomputed",
    )
    dtype = torch.bfloat16 if options.bf16 else torch.float32
    if options.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer = DPOTrainer(
        AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype), args=args,
        train_dataset=preference_pairs(records), processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    setup = time.perf_counter() - start
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    tokens = max(entry.get("num_tokens", 0) for entry in trainer.state.log_history)
    return {"variant": variant, "setup_s": round(setup, 2), "train_s": round(seconds, 2), "tokens": int(tokens),
            "tokens_per_s": round(tokens / seconds, 1), "peak_memory_gib": round(peak_memory_gib(options.device), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, batch=2, steps=6)
    parser.add_argument("--variant", choices=["live_reference", "precomputed"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.variant:
        print(json.dumps(train_once(options.variant, options)))
        return
    rows = median_runs(__file__, ("live_reference", "precomputed"), sys.argv[1:], options.repeats, key="tokens_per_s")
    print(f"{'variant':<15} {'setup s':>8} {'train s':>8} {'tokens':>8} {'tokens/s':>10} {'peak GiB':>9}")
    for row in rows:
        print(f"{row['variant']:<15} {row['setup_s']:>8} {row['train_s']:>8} {row['tokens']:>8} "
              f"{row['tokens_per_s']:>10} {row['peak_memory_gib']:>9}")
    print(f"precomputed / live reference training tokens/s (median of {options.repeats}): "
          f"{rows[1]['tokens_per_s'] / rows[0]['tokens_per_s']:.3f}")


if __name__ == "__main__":
    main()
