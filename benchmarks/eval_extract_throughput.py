"""Answer-extraction throughput of ``medreason.eval.extract_choice`` against a plain ``rfind`` extractor.

    python benchmarks/eval_extract_throughput.py            # ~1 min, pinned to one CPU core
    python benchmarks/eval_extract_throughput.py --seconds 1

Responses are ~8k characters (~2k tokens) built from the real HuatuoGPT-o1 chains of thought in
``../shared/data/train``: chains joined until the reasoning holds ``--chars`` characters (its end is
kept), then the prose answer, then one of five endings: ``The final answer is \\boxed{X}.``,
``$\\boxed{\\text{X}}$``, ``**Answer: X**``, ``The answer is (X).`` or none (the prose alone, the
slowest path: every rule runs over the whole text). Two kinds are timed, each in the same run as the
baseline: the reasoning inside ``<think>...</think>``, and the same text without think tags.

Baseline: ``rfind_boxed``, the last ``\\boxed{`` found with ``str.rfind`` and the letter inside it,
what a "last boxed answer" grader does with nothing else (no cues, no option texts, no think tags).
Ratios are ``extract_choice`` responses/s divided by the baseline's, per ending and over all five.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Mapping

from common import shared_data_dir

from medreason.eval import extract_choice

DATA = shared_data_dir() / "train" / "huatuo_o1_demo_sft.jsonl"
ENDINGS = {
    "boxed": "\n\nThe final answer is \\boxed{{{letter}}}.",
    "boxed text": "\n\n$\\boxed{{\\text{{{letter}}}}}$",
    "Answer:": "\n\n**Answer: {letter}**",
    "answer is": "\n\nThe answer is ({letter}).",
    "no cue": "",
}
KINDS = {
    "with </think>": "<think>\n{reasoning}\n</think>\n\n{response}",
    "no think tags": "{reasoning}\n\n{response}",
}
Response = tuple[str, Mapping[str, str], str]


def rfind_boxed(text: str, options: Mapping[str, str]) -> str | None:
    """Baseline: the letter in the last ``\\boxed{...}``, found with ``str.rfind``."""
    start = text.rfind("\\boxed{")
    if start == -1:
        return None
    end = text.find("}", start)
    letter = text[start + len("\\boxed{") : end].strip()
    return letter if letter in options else None


def build_responses(rows: list[dict], chars: int, seed: int) -> dict[tuple[str, str], list[Response]]:
    """``{(kind, ending): [(text, options, answer), ...]}``, the same reasoning in every kind and ending."""
    rng = random.Random(seed)
    built: dict[tuple[str, str], list[Response]] = {(k, e): [] for k in KINDS for e in ENDINGS}
    for row in rows:
        chains = [row["cot"]]
        while sum(map(len, chains)) < chars:
            chains.insert(0, rng.choice(rows)["cot"])
        reasoning, mcq = "\n\n".join(chains)[-chars:], row["mcq"]
        for kind, layout in KINDS.items():
            for ending, answer in ENDINGS.items():
                text = layout.format(reasoning=reasoning, response=row["response"]) + answer.format(
                    letter=mcq["answer"]
                )
                built[kind, ending].append((text, mcq["options"], mcq["answer"]))
    return built


def rates(
    extractors: dict[str, Callable[[str, Mapping[str, str]], str | None]],
    responses: list[Response],
    seconds: float,
) -> dict[str, float]:
    """Responses per second of each extractor: the best of five passes, taken in turns (load hits all alike)."""
    best = dict.fromkeys(extractors, 0.0)
    for _ in range(5):
        for name, extract in extractors.items():
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / 5:
                for text, options, _ in responses:
                    extract(text, options)
                done += len(responses)
            best[name] = max(best[name], done / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="timing budget per extractor, kind and ending"
    )
    parser.add_argument("--chars", type=int, default=7400, help="characters of reasoning before the answer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    if not DATA.is_file():
        raise SystemExit(f"Benchmark data not found: {DATA}")
    rows = [row for row in map(json.loads, DATA.read_text(encoding="utf-8").splitlines()) if row.get("mcq")]
    built = build_responses(rows, args.chars, args.seed)
    extractors = {"extract_choice": extract_choice, "rfind_boxed": rfind_boxed}

    print(f"{len(rows)} responses per row from {DATA.name}; one core; best of 5 alternating passes\n")
    print(
        "| kind | ending | mean chars | extract_choice resp/s | rfind_boxed resp/s | ratio | extract_choice correct | rfind_boxed correct |"
    )
    print("|---|---|---|---|---|---|---|---|")
    overall = []
    for kind in KINDS:
        seconds_per_response = dict.fromkeys(extractors, 0.0)
        correct = dict.fromkeys(extractors, 0)
        for ending in ENDINGS:
            responses = built[kind, ending]
            found = rates(extractors, responses, args.seconds)
            right = {
                name: sum(extract(t, o) == a for t, o, a in responses) for name, extract in extractors.items()
            }
            for name in extractors:
                seconds_per_response[name] += len(responses) / found[name]
                correct[name] += right[name]
            chars = statistics.mean(len(t) for t, _, _ in responses)
            print(
                f"| {kind} | {ending} | {chars:,.0f} | {found['extract_choice']:,.0f} | {found['rfind_boxed']:,.0f} | "
                f"{found['extract_choice'] / found['rfind_boxed']:.2f}x | {right['extract_choice'] / len(responses):.0%} | "
                f"{right['rfind_boxed'] / len(responses):.0%} |"
            )
        total = len(ENDINGS) * len(rows)
        ours, base = (total / seconds_per_response[name] for name in extractors)
        print(
            f"| **{kind}** | **all five** | | **{ours:,.0f}** | **{base:,.0f}** | **{ours / base:.2f}x** | "
            f"{correct['extract_choice'] / total:.0%} | {correct['rfind_boxed'] / total:.0%} |"
        )
        overall.append({"kind": kind, "extract_choice_per_s": ours, "rfind_boxed_per_s": base, "ratio": ours / base,
                        "extract_choice_correct": correct["extract_choice"] / total,
                        "rfind_boxed_correct": correct["rfind_boxed"] / total})
    print(json.dumps(overall))


if __name__ == "__main__":
    main()
