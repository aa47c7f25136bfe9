"""The benchmark registry: the named multiple-choice sets and the model cards' suites.

Each entry is a :class:`~medreason.tasks.mcq.Benchmark` (where the set lives and how its records map
onto the shared schema); :func:`~medreason.tasks.mcq.load_records` reads and validates them. Register
your own set in a few lines:

>>> register_benchmark(Benchmark(name="my_cardiology", title="Cardio", path="/data/cardiology.jsonl"))
>>> get_benchmark("my_cardiology").title
'Cardio'
>>> _ = BENCHMARKS.pop("my_cardiology")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from medreason.tasks.mcq import Benchmark

__all__ = [
    "BENCHMARKS",
    "SUITES",
    "get_benchmark",
    "register_benchmark",
    "resolve_benchmarks",
]


BENCHMARKS: dict[str, Benchmark] = {}
"""Every registered benchmark by name."""


def register_benchmark(benchmark: Benchmark, overwrite: bool = False) -> None:
    """Add ``benchmark`` to :data:`BENCHMARKS`; a second one with the same name is an error unless ``overwrite``."""
    if benchmark.name in BENCHMARKS and not overwrite:
        raise ValueError(
            f"A benchmark named {benchmark.name!r} is already registered; pass overwrite=True to replace it."
        )
    BENCHMARKS[benchmark.name] = benchmark


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark ``name``; an unknown name lists the valid ones."""
    if name not in BENCHMARKS:
        raise ValueError(
            f"Unknown benchmark {name!r}; registered benchmarks: {', '.join(sorted(BENCHMARKS))}."
        )
    return BENCHMARKS[name]


_PRIVATE = "It is not a public download, so medreason cannot fetch it: obtain it and convert it to the shared schema."
_MMLU = {"options": "choices", "answer": "answer"}
_MMLU_PRO = {"id": "question_id", "options": "options", "answer": "answer"}

for _benchmark in (
    # II-Medical suite (II-Medical-7B-Preview / II-Medical-8B model cards), files as in shared/data/eval.
    Benchmark("medmcqa", "MedMCQA", path="medmcqa.jsonl", note="MedMCQA validation set."),
    Benchmark("medqa", "MedQA", path="medqa.jsonl", note="MedQA-USMLE 4-option test set."),
    Benchmark("pubmedqa", "PubMedQA", path="pubmedqa.jsonl", note="PubMedQA PQA-L, A=yes B=no C=maybe."),
    Benchmark(
        "mmlu_pro_medical", "MMLU-Pro (med)", path="mmlu_pro_medical.jsonl", note="MMLU-Pro health/biology."
    ),
    Benchmark(
        "gpqa_medical",
        "GPQA (med)",
        path="gpqa_medical.jsonl",
        note="GPQA's medical questions (gated). " + _PRIVATE,
    ),
    Benchmark("lancet", "Lancet", path="lancet.jsonl", note="QA items from The Lancet. " + _PRIVATE),
    Benchmark("medbullets_op4", "MedBullets-4", path="medbullets_op4.jsonl", note="MedBullets, 4 options."),
    Benchmark(
        "medbullets_op5",
        "MedBullets-5",
        path="medbullets_op5.jsonl",
        note="MedBullets, 5 options: not bundled, convert the MedBullets release's op5 split to the shared schema.",
    ),
    Benchmark(
        "medxpertqa",
        "MedXpertQA",
        path="medxpertqa.jsonl",
        note="MedXpertQA Text (TsinghuaC3I/MedXpertQA): not bundled, convert its test split to the shared schema.",
    ),
    Benchmark("nejm", "NEJM", path="nejm.jsonl", note="QA items from NEJM. " + _PRIVATE),
    # ReasonMed suite: the six MMLU medical subsets, from the hub (test splits).
    *(
        Benchmark(f"mmlu_{subset}", title, dataset="cais/mmlu", subset=subset, columns=_MMLU)
        for subset, title in (
            ("anatomy", "MMLU Anatomy"),
            ("clinical_knowledge", "MMLU Clinical Knowledge"),
            ("college_biology", "MMLU College Biology"),
            ("college_medicine", "MMLU College Medicine"),
            ("medical_genetics", "MMLU Medical Genetics"),
            ("professional_medicine", "MMLU Professional Medicine"),
        )
    ),
    # FineMedLM-o1 Table 2: the biology and health categories of MMLU-Pro.
    *(
        Benchmark(
            f"mmlu_pro_{category}",
            f"MMLU-Pro {category.title()}",
            dataset="TIGER-Lab/MMLU-Pro",
            columns=_MMLU_PRO,
            where={"category": category},
        )
        for category in ("biology", "health")
    ),
):
    register_benchmark(_benchmark)

SUITES: dict[str, tuple[str, ...]] = {
    # Column order of the model cards' tables.
    "ii_medical": (
        "medmcqa",
        "medqa",
        "pubmedqa",
        "mmlu_pro_medical",
        "gpqa_medical",
        "lancet",
        "medbullets_op4",
        "medbullets_op5",
        "medxpertqa",
        "nejm",
    ),
    "reasonmed": (
        "medqa",
        "medmcqa",
        "pubmedqa",
        "mmlu_anatomy",
        "mmlu_clinical_knowledge",
        "mmlu_college_biology",
        "mmlu_college_medicine",
        "mmlu_medical_genetics",
        "mmlu_professional_medicine",
    ),
    "finemedlm": ("mmlu_pro_biology", "mmlu_pro_health"),
}
"""Benchmark names of each model card's evaluation suite, in the card's column order."""


def resolve_benchmarks(
    suite: str | None = None,
    benchmarks: Sequence[str | Benchmark] | None = None,
    paths: Mapping[str, str] | None = None,
) -> list[Benchmark]:
    """The benchmarks of ``suite`` followed by ``benchmarks`` (names or objects), without repeats.

    ``paths`` maps a benchmark name to a local file in the shared schema that replaces its
    registered source (column mapping and row filter included).
    """
    if suite is not None and suite not in SUITES:
        raise ValueError(
            f"Unknown suite {suite!r}; choose one of {', '.join(SUITES)} or list benchmarks explicitly."
        )
    chosen = [*(SUITES[suite] if suite else ()), *(benchmarks or ())]
    if not chosen:
        raise ValueError(
            "Nothing to evaluate: pass suite= (" + ", ".join(SUITES) + ") and/or benchmarks=[...]."
        )
    paths = dict(paths or {})
    resolved: dict[str, Benchmark] = {}
    for item in chosen:
        benchmark = item if isinstance(item, Benchmark) else get_benchmark(item)
        resolved.setdefault(benchmark.name, benchmark)
    unknown = set(paths) - set(resolved)
    if unknown:
        raise ValueError(
            f"benchmark_paths names {sorted(unknown)}, which are not being evaluated ({', '.join(resolved)})."
        )
    return [
        replace(b, path=paths[b.name], dataset=None, subset=None, columns={}, where={})
        if b.name in paths
        else b
        for b in resolved.values()
    ]
