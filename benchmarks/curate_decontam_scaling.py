"""Decontamination throughput on synthetic corpora of growing size, against the real benchmark suite.

Each synthetic record has a vignette-like prompt of ~80 words (drawn from the benchmarks' own
vocabulary, with their boilerplate sentences mixed in, so lookups behave as on real data) and,
when responses are checked, a ~1,500-word trace. 0.5% of prompts are planted copies of benchmark
questions (verbatim or with a word or two changed, re-cased, punctuation stripped) to report recall.

Baselines, each on the same prompts:

- the open-r1 n-gram scan users would pick (``scripts/decontaminate.py`` of open-r1: lower-case, collapse
  whitespace, word 8-grams of every benchmark question in a Python set, a prompt removed when any of its
  8-grams is in it), on every size: records/s, how many it removes (its removal rate) and planted copies
  found. It has no boilerplate rule, so shared stems ("Which of the following is the most likely
  diagnosis?") make it remove clean prompts;
- brute-force fuzzy matching (``rapidfuzz.process.extractOne`` of each prompt against every benchmark
  question, ``fuzz.ratio`` >= 90) on a slice, extrapolated per record.

Peak memory: the process's peak resident set after each row (it only grows), and each method's own
peak Python allocation (``tracemalloc``: index build + scan, on ``--memory-slice`` prompts, untimed).

    OMP_NUM_THREADS=1 python benchmarks/curate_decontam_scaling.py     # 100k, 200k, 500k prompts
    OMP_NUM_THREADS=1 python benchmarks/curate_decontam_scaling.py --quick   # 20k, 50k
    python benchmarks/curate_decontam_scaling.py --sizes 100000 --response-size 5000 --mode literal
"""

from __future__ import annotations

import argparse
import random
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz, process

from medreason.curate.benchmarks import load_benchmarks
from medreason.curate.decontaminate import DecontamConfig, Decontaminator, normalise

DEFAULT_EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval"
BOILERPLATE = [
    "Which of the following is the most appropriate next step in management?",
    "Which of the following is the most likely diagnosis?",
    "Her temperature is 37.0 C, pulse is 88/min, and blood pressure is 120/80 mm Hg.",
    "Oxygen saturation is 98% on room air.",
    "Physical examination shows no other abnormalities.",
]


def synthetic_prompts(
    count: int, questions: list[str], rng: np.random.Generator, words: int = 80
) -> tuple[list[str], dict[int, int]]:
    """``count`` prompts of about ``words`` words, and ``{index: words changed}`` for the planted copies."""
    vocab = np.array(sorted({w for q in questions for w in q.split()}))
    body = rng.integers(0, len(vocab), size=(count, words - 12))
    prompts = [" ".join(vocab[row]) + " " + BOILERPLATE[i % len(BOILERPLATE)] for i, row in enumerate(body)]
    planted = dict.fromkeys(rng.choice(count, size=max(1, count // 200), replace=False).tolist(), 0)
    edit = random.Random(0)
    for index in planted:
        tokens = questions[edit.randrange(len(questions))].split()
        planted[index] = edit.choice([0, 1, 2])
        for _ in range(planted[index]):
            tokens[edit.randrange(len(tokens))] = edit.choice(["patient", "severe", "chronic"])
        text = " ".join(tokens)
        prompts[index] = (text.upper() if edit.random() < 0.5 else text).replace(",", "")
    return prompts, planted


def synthetic_traces(
    count: int, questions: list[str], rng: np.random.Generator, words: int = 1500
) -> list[str]:
    """``count`` reasoning traces of about ``words`` words from the benchmark vocabulary."""
    vocab = np.array(sorted({w for q in questions for w in q.split()} | {"Wait,", "So", "Hmm,", "therefore"}))
    return [" ".join(vocab[row]) for row in rng.integers(0, len(vocab), size=(count, words))]


def timed(fn, *args, **kwargs):
    """``(result, wall seconds, CPU seconds of this process)``; CPU time is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def openr1_ngrams(text: str, n: int) -> set[str]:
    """open-r1's normalisation and n-grams: lower-case, whitespace collapsed, word n-grams joined by spaces."""
    words = text.lower().split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def openr1_scan(prompts: list[str], questions: list[str], n: int = 8) -> list[bool]:
    """The open-r1 baseline: every n-gram of every question in one set; a prompt is contaminated when it
    shares any n-gram with it (open-r1 keeps a set of document ids per n-gram; only membership is used)."""
    lookup = set().union(*(openr1_ngrams(q, n) for q in questions))
    return [not lookup.isdisjoint(openr1_ngrams(p, n)) for p in prompts]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def traced_peak_mib(fn, *args, **kwargs) -> float:
    """Peak Python allocation of ``fn(*args)`` in MiB (tracemalloc: slow, so never timed)."""
    tracemalloc.start()
    fn(*args, **kwargs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def brute_force(prompts: list[str], decontaminator: Decontaminator, threshold: float) -> list[object]:
    """The baseline: every prompt scored against every benchmark question."""
    texts = decontaminator.texts
    return [
        process.extractOne(normalise(p), texts, scorer=fuzz.ratio, score_cutoff=threshold) for p in prompts
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--eval-dir", default=str(DEFAULT_EVAL), help="benchmark JSONL files to decontaminate against"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100_000, 200_000, 500_000], help="corpus sizes"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 20k and 50k, baseline on 200 prompts")
    parser.add_argument("--mode", default="overlap", choices=["overlap", "literal"], help="n-gram mode")
    parser.add_argument(
        "--baseline-slice", type=int, default=1000, help="prompts scored by the brute-force baseline"
    )
    parser.add_argument(
        "--response-size",
        type=int,
        default=0,
        help="also time prompt+response checks on this many records with ~1,500-word traces",
    )
    parser.add_argument("--memory-slice", type=int, default=20_000, help="prompts for the tracemalloc peaks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes, baseline_slice = ([20_000, 50_000], 200) if args.quick else (args.sizes, args.baseline_slice)

    items = load_benchmarks(args.eval_dir)
    config = DecontamConfig(mode=args.mode)
    decontaminator, build, _ = timed(Decontaminator, items, config)
    questions = [item.question for item in items]
    print(
        f"benchmarks: {len(items)} questions ({len(decontaminator.texts)} distinct) from {args.eval_dir}; "
        f"index built in {build:.2f}s; mode={args.mode}, fuzzy>={config.fuzzy_threshold}"
    )
    rng = np.random.default_rng(args.seed)
    print(
        f"{'method':<14} {'records':>9} {'wall s':>7} {'cpu s':>7} {'rec/s wall':>11} {'rec/s cpu':>10} {'removed':>8} "
        f"{'removed %':>9} {'planted verbatim found':>23} {'planted edited found':>21} {'peak RSS GiB':>12}"
    )
    for size in sizes:
        prompts, planted = synthetic_prompts(size, questions, rng)
        verbatim = {i for i, words in planted.items() if words == 0}
        edited = set(planted) - verbatim
        results, wall, cpu = timed(decontaminator.match_texts, prompts)
        removed = {i for i, r in enumerate(results) if r is not None}
        flags, base_wall, base_cpu = timed(openr1_scan, prompts, questions)
        base_removed = {i for i, flag in enumerate(flags) if flag}
        for name, found, w, c in (("medreason", removed, wall, cpu), ("open-r1 8-gram", base_removed, base_wall, base_cpu)):
            print(
                f"{name:<14} {size:>9} {w:>7.1f} {c:>7.1f} {size / w:>11.0f} {size / c:>10.0f} {len(found):>8} "
                f"{len(found) / size:>9.2%} {len(found & verbatim):>15}/{len(verbatim):<7} "
                f"{len(found & edited):>13}/{len(edited):<7} {peak_rss_gib():>12.2f}", flush=True
            )
        print(f"{'':<14} records/s CPU medreason / open-r1: {base_cpu / cpu:.2f}; removed by open-r1 only: "
              f"{len(base_removed - removed)}, by medreason only: {len(removed - base_removed)}", flush=True)
    edited_ids = sorted(edited)
    found = brute_force([prompts[i] for i in edited_ids], decontaminator, config.fuzzy_threshold)
    brute = {i for i, hit in zip(edited_ids, found, strict=True) if hit is not None}
    print(
        f"edited copies at fuzz.ratio >= {config.fuzzy_threshold} by brute force: {len(brute)}/{len(edited)}; "
        f"found by the index: {len(brute & removed)}/{len(brute)}"
    )
    sample = prompts[:baseline_slice]
    _, base_wall, base_cpu = timed(brute_force, sample, decontaminator, config.fuzzy_threshold)
    _, ours_wall, ours_cpu = timed(decontaminator.match_texts, sample)
    print(
        f"baseline brute-force fuzzy (rapidfuzz extractOne over all questions) on the same {baseline_slice} prompts: "
        f"{base_cpu / len(sample) * 1e3:.2f} ms/record CPU (~{base_cpu / len(sample) * sizes[-1] / 60:.0f} min "
        f"for {sizes[-1]}); indexed: {ours_cpu / len(sample) * 1e3:.3f} ms/record CPU -> "
        f"{base_cpu / ours_cpu:.0f}x faster (wall {base_wall / ours_wall:.0f}x)"
    )
    sample = prompts[: args.memory_slice]
    print(
        f"peak Python allocation, index build + scan of {len(sample)} prompts (tracemalloc): medreason "
        f"{traced_peak_mib(lambda: Decontaminator(items, config).match_texts(sample)):.0f} MiB, open-r1 8-gram "
        f"{traced_peak_mib(openr1_scan, sample, questions):.0f} MiB"
    )
    if args.response_size:
        prompts, _ = synthetic_prompts(args.response_size, questions, rng)
        traces = synthetic_traces(args.response_size, questions, rng)
        _, wall_p, cpu_p = timed(decontaminator.match_texts, prompts)
        _, wall_r, cpu_r = timed(decontaminator.match_texts, traces, fuzzy=False)
        print(
            f"prompt+response ({args.response_size} records, ~1,500-word traces): {wall_p + wall_r:.1f}s wall, "
            f"{cpu_p + cpu_r:.1f}s CPU, {args.response_size / (cpu_p + cpu_r):.0f} rec/s CPU"
        )


if __name__ == "__main__":
    main()
