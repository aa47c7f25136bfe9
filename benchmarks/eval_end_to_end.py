"""End-to-end evaluation throughput: a random model through TransformersEngine on real MedQA items.

    OMP_NUM_THREADS=1 python benchmarks/eval_end_to_end.py   # 24 items, 32 new tokens, ~1 min on 2 cores
    python benchmarks/eval_end_to_end.py --items 64 --max-tokens 64 --batch-size 16
    python benchmarks/eval_end_to_end.py --shape qwen3-0.6b --vocab-size 151936 --device cuda --items 300 \
        --batch-size 100 --baseline-items 20                     # GPU: the baseline on a slice

Measures items/s of :func:`medreason.eval.evaluate` (validation, prompting with the chat template,
batched left-padded generation, caching, grading, predictions file) from an empty cache, against the
baseline ``batch_size=1`` (one prompt per ``generate`` call) measured in the same run, and the items/s
of a rerun served entirely from the generation cache. The tiny random model (~107k parameters, the
default ``--shape tiny``) makes this a measure of the harness's overhead and batching, not of a real
model's speed; ``--baseline-items`` times the baseline on the first items only (items/s compared).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import SHAPES, build_random_model, shared_data_dir

from medreason.engines import SamplingParams, TransformersEngine
from medreason.eval import evaluate

DATA = shared_data_dir() / "eval"


def timed_run(
    engine: TransformersEngine, items: int, sampling: SamplingParams, output_dir: Path
) -> tuple[float, float]:
    start = time.perf_counter()
    results = evaluate(
        engine=engine,
        benchmarks=["medqa"],
        data_dir=DATA,
        limit=items,
        sampling=sampling,
        output_dir=output_dir,
        progress=False,
    )
    return time.perf_counter() - start, results.benchmarks[0].accuracy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=24, help="MedQA items")
    parser.add_argument(
        "--max-tokens", type=int, default=32, help="new tokens per item (greedy, no EOS stop in practice)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--baseline-items", type=int, default=None, help="items for the baseline (default all)")
    parser.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--vocab-size", type=int, default=None, help="embedding rows (Qwen3: 151936)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    if not (DATA / "medqa.jsonl").is_file():
        raise SystemExit(f"Benchmark data not found: {DATA}")
    sampling = SamplingParams(temperature=0, max_tokens=args.max_tokens)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = build_random_model(args.shape, Path(scratch) / "model", 4096, args.vocab_size)
        rows = []
        for name, batch_size, items in (
            ("baseline batch_size=1", 1, args.baseline_items or args.items),
            (f"batch_size={args.batch_size}", args.batch_size, args.items),
        ):
            engine = TransformersEngine(model_dir, batch_size=batch_size, device=args.device)
            seconds, accuracy = timed_run(engine, items, sampling, Path(scratch) / name.replace(" ", "_"))
            rows.append((name, items, seconds))
        cached_seconds, _ = timed_run(engine, args.items, sampling, Path(scratch) / name.replace(" ", "_"))

    print(
        f"MedQA, {args.items} items, {args.max_tokens} new tokens each, greedy, torch threads {torch.get_num_threads()}\n"
    )
    print("| run | items | seconds | items/s | ratio vs baseline |")
    print("|---|---|---|---|---|")
    base = rows[0][1] / rows[0][2]  # items/s
    rows.append(("rerun from cache", args.items, cached_seconds))
    for name, items, seconds in rows:
        print(f"| {name} | {items} | {seconds:.2f} | {items / seconds:.2f} | {items / seconds / base:.2f}x |")
    print(json.dumps([{"run": name, "items": items, "seconds": round(seconds, 3), "items_per_s": items / seconds,
                       "ratio_vs_batch_size_1": items / seconds / base} for name, items, seconds in rows]
                     + [{"run": "accuracy (random model)", "accuracy": accuracy}]))


if __name__ == "__main__":
    main()
