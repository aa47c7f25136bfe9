"""End-to-end evaluation throughput on CPU: the tiny model through TransformersEngine on real MedQA items.

    python benchmarks/eval_end_to_end.py                 # 24 items, 32 new tokens, ~1 min on 2 cores
    python benchmarks/eval_end_to_end.py --items 64 --max-tokens 64 --batch-size 16

Measures items/s of :func:`medreason.eval.evaluate` (validation, prompting with the chat template,
batched left-padded generation, caching, grading, predictions file) from an empty cache, against the
baseline ``batch_size=1`` (one prompt per ``generate`` call) measured in the same run, and the items/s
of a rerun served entirely from the generation cache. The tiny random model (~107k parameters)
makes this a measure of the harness's overhead and batching, not of a real model's speed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from medreason.engines import SamplingParams, TransformersEngine
from medreason.eval import evaluate
from medreason.testing import build_tiny_model_dir

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "eval"


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
    args = parser.parse_args()
    if not (DATA / "medqa.jsonl").is_file():
        raise SystemExit(f"Benchmark data not found: {DATA}")
    sampling = SamplingParams(temperature=0, max_tokens=args.max_tokens)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = build_tiny_model_dir(Path(scratch) / "model")
        rows = []
        for name, batch_size in (
            ("baseline batch_size=1", 1),
            (f"batch_size={args.batch_size}", args.batch_size),
        ):
            engine = TransformersEngine(model_dir, batch_size=batch_size)
            seconds, _ = timed_run(engine, args.items, sampling, Path(scratch) / name.replace(" ", "_"))
            rows.append((name, seconds))
        cached_seconds, _ = timed_run(engine, args.items, sampling, Path(scratch) / name.replace(" ", "_"))

    print(
        f"MedQA, {args.items} items, {args.max_tokens} new tokens each, greedy, torch threads {torch.get_num_threads()}\n"
    )
    print("| run | seconds | items/s | ratio vs baseline |")
    print("|---|---|---|---|")
    base = rows[0][1]
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {args.items / seconds:.2f} | {base / seconds:.2f}x |")
    print(
        f"| rerun from cache | {cached_seconds:.2f} | {args.items / cached_seconds:.1f} | {base / cached_seconds:.1f}x |"
    )


if __name__ == "__main__":
    main()
