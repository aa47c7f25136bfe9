"""How many clean questions each decontamination mode removes: one benchmark checked against others.

    python benchmarks/curate_literal_false_removals.py      # MedQA vs MedBullets-4 + MMLU-Pro, ~20 s
    python benchmarks/curate_literal_false_removals.py --records medmcqa --against medqa pubmedqa
    python benchmarks/curate_literal_false_removals.py --show   # also print the default mode's hits

The ``--records`` benchmark's questions (default MedQA's 1,273) are checked as if they were training
prompts against the ``--against`` benchmarks' questions (default ``medbullets_op4`` and
``mmlu_pro_medical``) in ``../shared/data/eval``. Different benchmarks, so almost every removal is a
false one. The last two columns count the removals beyond the default mode's hits, taking those as
the true overlaps: for MedQA against MedBullets-4 + MMLU-Pro each was read (``--show`` prints them),
and all 7 are MedBullets items rewritten from MedQA questions.

Rows: ``literal`` (open-r1's rule: lower-case, whitespace split, punctuation kept, any shared n-gram)
at the card's n=10 and open-r1's default n=8; the default ``overlap`` mode; each with and without the
fuzzy step. Last, the previous ``literal`` mode, reimplemented here for comparison: an exact check,
then 10-grams, both on text normalised by :func:`~medreason.curate.decontaminate.normalise`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medreason.curate.benchmarks import read_benchmark_file
from medreason.curate.decontaminate import DecontamConfig, Decontaminator, normalise

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval"


def punctuation_stripped_literal(records: list[str], questions: list[str], n: int) -> list[bool]:
    """The previous ``literal`` mode: the exact check, then any shared word n-gram, both on normalised
    (punctuation-free) text."""

    def ngrams(words: list[str]) -> set[tuple[str, ...]]:
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    exact = {normalise(question) for question in questions}
    lookup = set().union(*(ngrams(question.split()) for question in exact))
    return [normalise(r) in exact or not ngrams(normalise(r).split()).isdisjoint(lookup) for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--eval-dir", type=Path, default=EVAL)
    parser.add_argument("--records", default="medqa", help="benchmark whose questions are checked")
    parser.add_argument("--against", nargs="+", default=["medbullets_op4", "mmlu_pro_medical"])
    parser.add_argument("--show", action="store_true", help="print the default mode's hits")
    args = parser.parse_args()
    records = [item.question for item in read_benchmark_file(args.eval_dir / f"{args.records}.jsonl")]
    items = [item for name in args.against for item in read_benchmark_file(args.eval_dir / f"{name}.jsonl")]
    print(f"{len(records)} {args.records} questions against {len(items)} of {' + '.join(args.against)}\n")
    default = Decontaminator(items).match_texts(records)  # overlap + fuzzy: its hits were read, true ones
    true_hits = {index for index, match in enumerate(default) if match is not None}
    print("| mode | n | fuzzy | removed | rate | false removals (beyond the default's hits) | false rate |")
    print("|---|---|---|---|---|---|---|")
    rows = [
        (f"{mode} | {n} | {'yes' if fuzzy else 'no'}", DecontamConfig(mode=mode, ngram=n, fuzzy=fuzzy))
        for mode, n in (("literal", 10), ("literal", 8), ("overlap", 10))
        for fuzzy in (False, True)
    ]
    for label, config in rows:
        hits = {
            index for index, match in enumerate(Decontaminator(items, config).match_texts(records)) if match
        }
        print(_row(label, hits, true_hits, len(records)))
    previous = punctuation_stripped_literal(records, [item.question for item in items], 10)
    hits = {index for index, removed in enumerate(previous) if removed}
    print(_row("previous literal (punctuation stripped) | 10 | no", hits, true_hits, len(records)))
    if args.show:
        for index in sorted(true_hits):
            match = default[index]
            print(
                f"\n{match.method} {match.score:.2f} {match.benchmark}/{match.benchmark_id}\n  {records[index][:160]}"
            )


def _row(label: str, hits: set[int], true_hits: set[int], total: int) -> str:
    false = len(hits - true_hits)
    return f"| {label} | {len(hits)} | {len(hits) / total:.2%} | {false} | {false / total:.2%} |"


if __name__ == "__main__":
    main()
