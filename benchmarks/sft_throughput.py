"""SFT throughput: medreason's curriculum SFT stage against a plain TRL ``SFTTrainer`` run.

Both train the same random model on the same records for the same steps, each in its own process,
and both are timed over the same span: from the records in memory (the model already loaded) to the
trained model saved, i.e. record conversion, tokenising (and packing), the training loop and saving.
``train_runtime`` is HF ``Trainer``'s own figure for the training loop alone, given beside it.
medreason adds orchestration around TRL (record conversion, stage arguments, best checkpoints), so
the ratio should stay near 1.0; this script is how we check that it does. The variants alternate
(``--repeats`` rounds, the first variant swapping each round) and every figure is min / median / max,
the ratio taken round by round.

    OMP_NUM_THREADS=1 python benchmarks/sft_throughput.py                       # CPU, mid-size model, 512 tokens
    OMP_NUM_THREADS=1 python benchmarks/sft_throughput.py --shape tiny --steps 5  # quick
    python benchmarks/sft_throughput.py --device cuda --shape qwen3-0.6b --vocab-size 151936 --seq-len 8192 \\
        --packing --batch 1 --bf16 --activation-checkpointing --peak-tflops 989  # H100/H200: tokens/s, memory, MFU
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from common import (
    add_model_arguments,
    alternating_runs,
    build_random_model,
    flops_per_token,
    peak_memory_gib,
    spread,
)

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
    model_dir = build_random_model(options.shape, work / "model", options.seq_len, options.vocab_size)
    records = long_records(options.batch * options.steps, options.seq_len // 2)
    common = dict(
        output_dir=str(work / "out"), max_steps=options.steps, per_device_train_batch_size=options.batch,
        max_length=options.seq_len, packing=options.packing, bf16=options.bf16, use_cpu=options.device == "cpu",
        activation_checkpointing=options.activation_checkpointing, report_to="none", disable_tqdm=True,
        logging_steps=1, save_strategy="no", learning_rate=1e-5,
    )
    # Both variants get a model object loaded the same way; the timed span starts at the records in memory.
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if options.bf16 else torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if options.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if variant == "medreason":
        trainer = CurriculumSFTTrainer(model, CurriculumSFTConfig(**common), records, processing_class=tokenizer)
        (result,) = trainer.train()  # converts, tokenises, trains and saves the stage's final model
        seconds = time.perf_counter() - start
        tokens, loop_seconds = result.metrics["num_tokens"], result.metrics["train_runtime"]
        model = trainer.model
    else:
        pairs = datasets.Dataset.from_list([RecordConverter()(r, "bench", f"index {i}") for i, r in enumerate(records)])
        trainer = SFTTrainer(model, args=SFTConfig(**common), train_dataset=pairs, processing_class=tokenizer)
        loop_seconds = trainer.train().metrics["train_runtime"]
        trainer.save_model(str(work / "out" / "final"))
        seconds = time.perf_counter() - start
        tokens = max(entry.get("num_tokens", 0) for entry in trainer.state.log_history)
        model = trainer.model
    row = {"variant": variant, "seconds": round(seconds, 3), "train_runtime": round(loop_seconds, 3),
           "tokens": int(tokens), "tokens_per_s": round(tokens / seconds, 1),
           "train_tokens_per_s": round(tokens / loop_seconds, 1),
           "peak_memory_gib": round(peak_memory_gib(options.device), 3),
           "params": sum(p.numel() for p in model.parameters())}
    if options.peak_tflops:  # MFU of the training loop: model FLOPs per second over the device's peak
        row["mfu"] = round(flops_per_token(model.config, options.seq_len) * tokens / loop_seconds
                           / (options.peak_tflops * 1e12), 4)
    return row


def summary(runs: dict[str, list[dict]]) -> dict:
    """min / median / max of every figure per variant, and of the medreason / TRL ratios round by round."""
    figures = ("seconds", "train_runtime", "tokens_per_s", "train_tokens_per_s", "peak_memory_gib", "mfu")
    out: dict = {variant: {key: spread([row[key] for row in rows]) for key in figures if key in rows[0]}
                 for variant, rows in runs.items()}
    for key in ("tokens_per_s", "train_tokens_per_s"):
        ratios = [ours[key] / trl[key] for ours, trl in zip(runs["medreason"], runs["trl"], strict=True)]
        out[f"ratio_{key}"] = spread(ratios)
    out["tokens"] = runs["trl"][0]["tokens"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, batch=4, steps=10)
    parser.add_argument("--packing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (H100/H200 bf16 dense: 989)")
    parser.add_argument("--variant", choices=["medreason", "trl"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.variant:
        print(json.dumps(train_once(options.variant, options)))
        return
    result = summary(alternating_runs(__file__, ("trl", "medreason"), sys.argv[1:], options.repeats))
    print(f"# SFT, shape {options.shape}, {options.seq_len} tokens, {result['tokens']} tokens trained; "
          f"min / median / max of {options.repeats} alternating runs")
    print("| variant | seconds (records to saved model) | tokens/s | training loop s | loop tokens/s | peak GiB |"
          + (" MFU |" if options.peak_tflops else ""))
    print("|---|---|---|---|---|---|" + ("---|" if options.peak_tflops else ""))
    keys = ("seconds", "tokens_per_s", "train_runtime", "train_tokens_per_s", "peak_memory_gib")
    for variant in ("trl", "medreason"):
        cells = [" / ".join(f"{result[variant][key][s]:g}" for s in ("min", "median", "max"))
                 for key in keys + (("mfu",) if options.peak_tflops else ())]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    for key, label in (("tokens_per_s", "records to saved model"), ("train_tokens_per_s", "training loop")):
        ratio = result[f"ratio_{key}"]
        print(f"medreason / plain TRL tokens/s, {label}: {ratio['median']:.3f} "
              f"(min {ratio['min']:.3f}, max {ratio['max']:.3f})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
