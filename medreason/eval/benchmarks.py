"""The benchmark registry: where each multiple-choice set lives and how its records are read.

A :class:`Benchmark` loads from a local JSONL or Parquet file in the shared schema
``{"id", "question", "options": {"A": ...}, "answer": "<letter>", ...}`` or from a ``datasets`` id/path
with a column mapping. Relative file paths resolve against a data directory (``data_dir``), so one
setting points every built-in benchmark at a folder of files. Every record is validated before any
generation; a bad record raises :class:`~medreason.utils.jsonl.RecordError` naming file, line and field.

Register your own set in a few lines:

>>> register_benchmark(Benchmark(name="my_cardiology", title="Cardio", path="/data/cardiology.jsonl"))
>>> get_benchmark("my_cardiology").title
'Cardio'
>>> _ = BENCHMARKS.pop("my_cardiology")
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medreason.utils.jsonl import RecordError, read_jsonl

__all__ = [
    "BENCHMARKS",
    "SUITES",
    "Benchmark",
    "EvalRecord",
    "get_benchmark",
    "load_records",
    "register_benchmark",
    "resolve_benchmarks",
]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class EvalRecord:
    """One validated multiple-choice item.

    Args:
        id: Unique within its benchmark (it keys the generation cache).
        question: The stem, without the options.
        options: Option letter → option text, in display order.
        answer: The correct option letter.
        meta: Anything else the source carried (subject, split, ...).
    """

    id: str
    question: str
    options: dict[str, str]
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Benchmark:
    """Where a benchmark's records come from.

    Args:
        name: Registry key, e.g. ``"medqa"``.
        title: Column label in ad-hoc tables (suites use their model card's labels).
        path: Local ``.jsonl``/``.parquet`` file; relative paths resolve against the run's ``data_dir``.
        dataset: A ``datasets`` hub id or local dataset path, used when ``path`` is not set.
        subset: The dataset configuration name (``"anatomy"`` for ``cais/mmlu``).
        split: The dataset split to load.
        columns: Our field → the source's column, for sources not in the shared schema, e.g.
            ``{"options": "choices", "answer": "answer_index"}``. ``options`` may be a mapping or a
            list (lettered A, B, ...); ``answer`` a letter or a 0-based index.
        where: Keep only rows whose column equals the value, e.g. ``{"category": "health"}``.
        note: How to obtain the data when it is not public or not bundled (shown in errors).
    """

    name: str
    title: str
    path: str | None = None
    dataset: str | None = None
    subset: str | None = None
    split: str = "test"
    columns: Mapping[str, str] = field(default_factory=dict)
    where: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Benchmark.name must be a non-empty string.")
        if (self.path is None) == (self.dataset is None):
            raise ValueError(
                f"Benchmark {self.name!r}: set exactly one of path= (a local file) or dataset= (a datasets id/path)."
            )

    def source(self, data_dir: str | os.PathLike | None = None) -> str:
        """The file path or dataset id records are read from."""
        if self.path is None:
            return f"{self.dataset}" + (f"[{self.subset}]" if self.subset else "") + f":{self.split}"
        path = Path(self.path).expanduser()
        if not path.is_absolute() and data_dir is not None:
            path = Path(data_dir).expanduser() / path
        return str(path)


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


def _rows(benchmark: Benchmark, source: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(position, raw row)`` from the benchmark's file or dataset."""
    if benchmark.path is not None:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"Benchmark {benchmark.name!r} expects its data at {path}, which does not exist. {benchmark.note} "
                "Set data_dir (or $MEDREASON_EVAL_DATA) to the folder holding the benchmark files, or point at "
                f"the file with +benchmark_paths.{benchmark.name}=FILE (CLI) / benchmark_paths={{{benchmark.name!r}: FILE}} "
                "(evaluate); skip_missing=true evaluates the rest of the suite."
            )
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            for index, row in enumerate(pq.read_table(path).to_pylist()):
                yield f"index {index}", row
        elif path.suffix in (".jsonl", ".json"):
            for line, row in read_jsonl(path):
                yield f"line {line}", row
        else:
            raise ValueError(f"Benchmark {benchmark.name!r}: {path} must be a .jsonl or .parquet file.")
        return
    import datasets

    try:
        rows = datasets.load_dataset(benchmark.dataset, benchmark.subset, split=benchmark.split)
    except Exception as error:  # hub/network/format errors all mean "cannot read this source"
        raise FileNotFoundError(
            f"Benchmark {benchmark.name!r}: could not load dataset {source} ({type(error).__name__}: {error}). "
            f"Download it, or set benchmark_paths.{benchmark.name}=FILE to a local JSONL/Parquet copy."
        ) from error
    for index, row in enumerate(rows):
        yield f"index {index}", row


def to_eval_record(
    row: Mapping[str, Any], benchmark: Benchmark, source: str, position: str, index: int
) -> EvalRecord:
    """Map a raw row to an :class:`EvalRecord` through ``benchmark.columns``, raising :class:`RecordError`
    (naming ``source``, ``position`` and the column) on any problem. Options may be a mapping or a list
    (lettered A, B, ...); the answer a letter or a 0-based index."""
    column = {key: benchmark.columns.get(key, key) for key in ("id", "question", "options", "answer")}

    def fail(key: str, problem: str) -> RecordError:
        return RecordError(source, position, column[key], problem)

    question = row.get(column["question"])
    if not isinstance(question, str) or not question.strip():
        raise fail("question", "the question is missing or empty.")
    options = row.get(column["options"])
    if isinstance(options, (list, tuple)):
        if len(options) > len(_LETTERS):
            raise fail("options", f"{len(options)} options is more than the {len(_LETTERS)} letters A-Z.")
        options = dict(zip(_LETTERS, options, strict=False))
    if not isinstance(options, Mapping) or len(options) < 2:
        raise fail(
            "options", f"expected at least two options as {{'A': text, ...}} or a list, got {options!r:.80}."
        )
    options = {str(key): value for key, value in options.items() if value is not None}
    for key, text in options.items():
        if not isinstance(text, str) or not text.strip():
            raise fail("options", f"option {key!r} has no text.")
    answer = row.get(column["answer"])
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(options):
        answer = list(options)[answer]
    if not isinstance(answer, str) or answer not in options:
        raise fail("answer", f"answer {answer!r} is not one of the options {sorted(options)}.")
    item_id = row.get(column["id"], f"{benchmark.name}-{index:05d}")
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or str(item_id) == "":
        raise fail("id", f"expected a string or integer id, got {item_id!r}.")
    if isinstance(row.get("meta"), Mapping):
        meta = dict(row["meta"])
    else:  # sources outside the shared schema: keep their other scalar columns (category, subject, ...)
        used = set(column.values()) | {"source"}
        meta = {k: v for k, v in row.items() if k not in used and isinstance(v, (str, int, float, bool))}
    return EvalRecord(str(item_id), question.strip(), options, answer, meta)


def load_records(
    benchmark: Benchmark, data_dir: str | os.PathLike | None = None, limit: int | None = None
) -> list[EvalRecord]:
    """Read, filter and validate all of ``benchmark``'s records; return the first ``limit``.

    Raises:
        FileNotFoundError: the file or dataset is missing (the message says what to set).
        RecordError: a record lacks a question, has fewer than two options, an answer that is not an
            option, or an id seen before; the message names the file, line (or index) and field.
    """
    source = benchmark.source(data_dir)
    records: list[EvalRecord] = []
    seen: set[str] = set()
    for index, (position, row) in enumerate(_rows(benchmark, source)):
        if any(row.get(key) != value for key, value in benchmark.where.items()):
            continue
        record = to_eval_record(row, benchmark, source, position, index)
        if record.id in seen:
            raise RecordError(
                source,
                position,
                benchmark.columns.get("id", "id"),
                f"duplicate id {record.id!r}; ids key the cache.",
            )
        seen.add(record.id)
        records.append(record)
    if not records:
        raise ValueError(
            f"Benchmark {benchmark.name!r}: {source} holds no records"
            + (f" matching {dict(benchmark.where)}." if benchmark.where else ".")
        )
    return records[:limit] if limit is not None else records
