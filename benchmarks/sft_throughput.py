"""SFT throughput: medreason's curriculum SFT stage against a plain TRL ``SFTTrainer`` run.

Both train the same random model on the same records for the same steps, each in its own process.
medreason adds orchestration around TRL (record conversion, stage arguments, best checkpoints), so
the ratio should stay near 1.0; this script is how we check that it does.

    python benchmarks/sft_throughput.py                                   # CPU, mid-size model, 512 tokens
    python benchmarks/sft_throughput.py --shape tiny --steps 5            # quick
    python benchmarks/sft_throughput.py --device cuda --shape qwen3-0.6b --seq-len 8192 --packing \\
        --batch 8 --bf16 --activation-checkpointing --peak-tflops 989    # H100: tokens/s, memory, MFU
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from common import add_model_arguments, build_random_model, median_runs, peak_memory_gib

WORDS = "patient presents with fever cough dyspnea chest pain elevated troponin thyroid insulin renal".split()


def long_records(count: int, words: int, seed: int = 0) -> list[dict]:
    """Reasoning records of about ``words`` words each (the tokenizer splits them into more tokens)."""
    rng = random.Random(seed)
    return [
        {"question": " ".join(rng.choices(WORDS, k=40)), "cot": " ".join(rng.choices(WORDS, k=words)),
         "response": "The answer is B."}
        for _ in range(count)
    ]


def train_once(variant: str, options: argparse.Namespace) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from medreason.data.records import RecordConverter
    from medreason.trainers import CurriculumSFTConfig, CurriculumSFTTrainer

    work = Path(tempfile.mkdtemp())
    model_dir = build_random_model(options.shape, work / "model", options.seq_len)
    records = long_records(options.batch * options.steps, options.seq_len // 2)
    common = dict(
        output_dir=str(work / "out"), max_steps=options.steps, per_device_train_batch_size=options.batch,
        max_length=options.seq_len, packing=options.packing, bf16=options.bf16, use_cpu=options.device == "cpu",
        activation_checkpointing=options.activation_checkpointing, report_to="none", disable_tqdm=True,
        logging_steps=1, save_strategy="no", learning_rate=1e-5,
    )
    # Both variants get a model object loaded the same way, and are timed around train() alone.
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if options.bf16 else torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if variant == "medreason":
        trainer = CurriculumSFTTrainer(model, CurriculumSFTConfig(**common), records, processing_class=tokenizer)
        start = time.perf_counter()
        (result,) = trainer.train()
        seconds = time.perf_counter() - start
        tokens = result.metrics["num_tokens"]
    else:
        pairs = datasets.Dataset.from_list([RecordConverter()(r, "bench", f"index {i}") for i, r in enumerate(records)])
        trainer = SFTTrainer(model, args=SFTConfig(**common), train_dataset=pairs, processing_class=tokenizer)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        tokens = max(entry.get("num_tokens", 0) for entry in trainer.state.log_history)
    params = sum(p.numel() for p in trainer.model.parameters())
    tokens_per_s = tokens / seconds
    row = {"variant": variant, "seconds": round(seconds, 2), "tokens": int(tokens), "tokens_per_s": round(tokens_per_s, 1),
           "peak_memory_gib": round(peak_memory_gib(options.device), 3), "params": params}
    if options.peak_tflops:
        row["mfu"] = round(6 * params * tokens_per_s / (options.peak_tflops * 1e12), 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, batch=4, steps=10)
    parser.add_argument("--packing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (H100 bf16 dense: 989)")
    parser.add_argument("--variant", choices=["medreason", "trl"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.variant:
        print(json.dumps(train_once(options.variant, options)))
        return
    rows = median_runs(__file__, ("trl", "medreason"), sys.argv[1:], options.repeats, key="tokens_per_s")
    print(f"{'variant':<10} {'seconds':>8} {'tokens':>8} {'tokens/s':>10} {'peak GiB':>9}" + ("  MFU" if options.peak_tflops else ""))
    for row in rows:
        print(f"{row['variant']:<10} {row['seconds']:>8} {row['tokens']:>8} {row['tokens_per_s']:>10} {row['peak_memory_gib']:>9}"
              + (f"  {row['mfu']}" if "mfu" in row else ""))
    print(f"medreason / plain TRL tokens/s (median of {options.repeats}): "
          f"{rows[1]['tokens_per_s'] / rows[0]['tokens_per_s']:.3f}")


if __name__ == "__main__":
    main()
