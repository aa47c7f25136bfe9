"""Answer-extraction throughput of ``medreason.eval.extract_choice`` on long reasoning responses.

    python benchmarks/eval_extract_throughput.py            # ~20 s, pinned to one CPU core
    python benchmarks/eval_extract_throughput.py --seconds 5

Responses are built from the real HuatuoGPT-o1 chains of thought in ``../shared/data/train``
(median ~2.2k characters) in the layouts the II-Medical prompt produces: ``<think>`` reasoning,
a prose answer, then ``\\boxed{X}`` / ``**Answer: X**`` / "The answer is (X)", plus 20% with no
marker at all (the slowest path: the whole text is searched). A "long" set concatenates six chains
(~15k characters, about the cards' 4k-token median response). Both are timed against a named baseline
measured in the same run: ``naive_regex``, one case-insensitive regex over the whole text taking the
last match (no ``<think>`` handling, no option texts, no two-answer check), what many eval scripts do.
The issue's target is >= 10,000 long responses/s on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from medreason.eval import extract_choice

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "train" / "huatuo_o1_demo_sft.jsonl"
_NAIVE = re.compile(
    r"answer is:?\s*\(?([A-J])\)?|answer:\s*\**\s*\(?([A-J])\)?|\\boxed\{(?:\\text\{)?([A-J])", re.IGNORECASE
)


def naive_regex(text: str, options: Mapping[str, str]) -> str | None:
    """Baseline: the last match of one regex over the whole response."""
    matches = _NAIVE.findall(text)
    if not matches:
        return None
    letter = next(group for group in matches[-1] if group).upper()
    return letter if letter in options else None


def build_responses(rows: list[dict], chains_per_response: int, seed: int) -> list[tuple[str, dict, str]]:
    rng = random.Random(seed)
    layouts = [
        "<think>\n{cot}\n</think>\n\n{response}\n\nThe final answer is \\boxed{{{letter}}}.",
        "<think>\n{cot}\n</think>\n\n{response}\n\n**Answer: {letter}**",
        "{cot}\n\n{response}\n\nThe answer is ({letter}).",
        "<think>\n{cot}\n</think>\n\n{response}\n\n$\\boxed{{\\text{{{letter}}}}}$",
        "<think>\n{cot}\n</think>\n\n{response}",  # no marker: full search, usually no answer
    ]
    responses = []
    for row in rows:
        cot = (
            "\n\n".join(rng.choice(rows)["cot"] for _ in range(chains_per_response - 1)) + "\n\n" + row["cot"]
        )
        mcq = row["mcq"]
        for layout in layouts:
            responses.append(
                (
                    layout.format(cot=cot, response=row["response"], letter=mcq["answer"]),
                    mcq["options"],
                    mcq["answer"],
                )
            )
    rng.shuffle(responses)
    return responses


def rate(extract: Callable[[str, Mapping[str, str]], str | None], responses: list, seconds: float) -> float:
    """Responses per second, best of three timed passes of at least ``seconds`` / 3 each."""
    best = 0.0
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            for text, options, _ in responses:
                extract(text, options)
            done += len(responses)
        best = max(best, done / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per extractor and set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target states
    if not DATA.is_file():
        raise SystemExit(f"Benchmark data not found: {DATA}")
    rows = [row for row in map(json.loads, DATA.read_text(encoding="utf-8").splitlines()) if row.get("mcq")]

    print(f"{len(rows)} real chains of thought from {DATA.name}; one core; best of 3 passes\n")
    print(
        "| set | responses | mean chars | extract_choice resp/s | naive_regex resp/s | ratio | extract_choice correct | naive correct |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, chains in (("median", 1), ("long", 6)):
        responses = build_responses(rows, chains, args.seed)
        ours, naive = (
            rate(extract_choice, responses, args.seconds),
            rate(naive_regex, responses, args.seconds),
        )
        correct = sum(extract_choice(t, o) == a for t, o, a in responses) / len(responses)
        naive_correct = sum(naive_regex(t, o) == a for t, o, a in responses) / len(responses)
        chars = statistics.mean(len(t) for t, _, _ in responses)
        print(
            f"| {name} | {len(responses)} | {chars:,.0f} | {ours:,.0f} | {naive:,.0f} | {ours / naive:.2f}x | {correct:.1%} | {naive_correct:.1%} |"
        )


if __name__ == "__main__":
    main()
