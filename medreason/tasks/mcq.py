"""The multiple-choice task: the record schema, where a set of records lives, and reading them.

Evaluation, the DAPO stage, the trace synthesis pipelines and the RL rewards all read multiple-choice
items the same way. A :class:`Benchmark` names a local record file (JSONL, JSON, either gzipped, or
Parquet; :func:`~medreason.utils.record_files.read_records`) in the shared schema
``{"id", "question", "options": {"A": ...}, "answer": "<letter>", ...}`` or a ``datasets`` id/path with a
column mapping; relative file paths resolve against a data directory (``data_dir``). Every record is
validated into an :class:`EvalRecord`; a bad record raises :class:`~medreason.utils.jsonl.RecordError`
naming file, line and field. The registry of named benchmarks and suites is evaluation's
(:mod:`medreason.eval.benchmarks`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medreason.utils.jsonl import RecordError, describe_value
from medreason.utils.record_files import dataset_rows, read_records

__all__ = ["Benchmark", "EvalRecord", "load_records", "to_eval_record"]

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
        path: Local ``.jsonl``, ``.jsonl.gz``, ``.json``, ``.json.gz`` or ``.parquet`` file; relative paths
            resolve against the run's ``data_dir``. When the file is missing but a gzipped copy
            (``medqa.jsonl.gz`` for ``medqa.jsonl``) is there, the copy is read.
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
        gzipped = path.with_name(path.name + ".gz")
        return str(gzipped if not path.exists() and gzipped.is_file() else path)


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
        yield from read_records(path)
        return
    yield from dataset_rows(
        f"Benchmark {benchmark.name!r}", benchmark.dataset, benchmark.subset, split=benchmark.split,
        hint=f"Download it, or set benchmark_paths.{benchmark.name}=FILE to a local JSONL/Parquet copy.",
    )


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
        raise fail("question", f"must be a non-empty string, got {describe_value(question)}.")
    options = row.get(column["options"])
    if isinstance(options, (list, tuple)):
        if len(options) > len(_LETTERS):
            raise fail("options", f"{len(options)} options is more than the {len(_LETTERS)} letters A-Z.")
        options = dict(zip(_LETTERS, options, strict=False))
    if not isinstance(options, Mapping) or len(options) < 2:
        raise fail(
            "options", f"expected at least two options as {{'A': text, ...}} or a list, got {describe_value(options)}."
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
        RecordError: the source holds no records, or a record lacks a question, has fewer than two options,
            an answer that is not an option, or an id seen before; the message names the file, line (or
            index) and field.
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
        matching = f" matching {dict(benchmark.where)}" if benchmark.where else ""
        raise RecordError(source, None, None, f"benchmark {benchmark.name!r}: the source holds no records{matching}.")
    return records[:limit] if limit is not None else records
