"""Benchmark questions to decontaminate against: files, directories or a suite name.

Files are record files (:func:`~medreason.utils.record_files.read_records`: ``.jsonl``,
``.jsonl.gz``, ``.json``, ``.json.gz``, ``.parquet``) in the shared evaluation schema
``{"id", "question", "options", "answer", "source", "meta"}`` (only ``question`` is required;
``id`` defaults to ``"<file stem>:<line>"``, ``source`` to the file stem, ``medqa`` for
``medqa.jsonl.gz``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medreason.eval.benchmarks import SUITES, get_benchmark, resolve_benchmarks
from medreason.tasks.mcq import load_records
from medreason.utils.jsonl import RecordError
from medreason.utils.logging import get_logger
from medreason.utils.record_files import (
    RECORD_FILE_SUFFIXES,
    read_records,
    record_file_stem,
    record_file_suffix,
)

logger = get_logger(__name__)


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark question.

    Args:
        benchmark: Benchmark name (the record's ``source``).
        id: The item's id within its benchmark.
        question: The question text (options are not part of it).
    """

    benchmark: str
    id: str
    question: str


def read_benchmark_file(path: str | os.PathLike) -> list[BenchmarkItem]:
    """Read one benchmark file (any record file: JSONL, JSON, either gzipped, or Parquet).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a record file or cannot be read (the message names it).
        RecordError: a record is not JSON, or its ``question`` is missing or not a string.
    """
    path, stem = Path(path), record_file_stem(path)
    items = []
    for position, record in read_records(path):
        question = record.get("question")
        if not isinstance(question, str) or not question.strip():
            raise RecordError(
                str(path), position, "question", "every benchmark item needs a non-empty string."
            )
        source = record.get("source") if isinstance(record.get("source"), str) else stem
        number = position.split()[-1]
        items.append(BenchmarkItem(source, str(record.get("id", f"{stem}:{number}")), question))
    return items


def benchmark_files(directory: Path) -> list[Path]:
    """The benchmark files of ``directory``, sorted; hidden entries (``.git``, ``.DS_Store``) are ignored.

    Raises:
        ValueError: an entry is not a record file, or the directory holds none; every benchmark file
            must be read, so nothing is skipped silently.
    """
    entries = sorted(entry for entry in directory.iterdir() if not entry.name.startswith("."))
    others = [entry.name for entry in entries if not entry.is_file() or record_file_suffix(entry) is None]
    if others:
        raise ValueError(
            f"Benchmark directory {directory} holds {others}, which are not benchmark files (names ending in "
            f"{', '.join(RECORD_FILE_SUFFIXES)}). Move them out of the directory, or convert them, so that no "
            "benchmark is left out of decontamination."
        )
    if not entries:
        raise ValueError(
            f"Benchmark directory {directory} holds no benchmark files ({', '.join(RECORD_FILE_SUFFIXES)})."
        )
    return entries


def _from_registry(name: str, data_dir: str | os.PathLike | None) -> list[BenchmarkItem]:
    """Items of a suite (``ii_medical``) or registered benchmark, via :mod:`medreason.eval.benchmarks`.

    Benchmarks whose data is not available here (private sets such as NEJM) are skipped with a warning.
    """
    if name in SUITES:
        chosen = resolve_benchmarks(suite=name)
    else:
        try:
            chosen = [get_benchmark(name)]
        except ValueError:
            raise ValueError(
                f"benchmarks={name!r} is not an existing file or directory, a suite ({sorted(SUITES)}) "
                "or a registered benchmark name."
            ) from None
    data_dir = data_dir if data_dir is not None else os.environ.get("MEDREASON_EVAL_DATA")
    items, missing = [], []
    for benchmark in chosen:
        try:
            records = load_records(benchmark, data_dir)
        except FileNotFoundError:
            missing.append(benchmark.name)
            continue
        items.extend(BenchmarkItem(benchmark.name, record.id, record.question) for record in records)
    if missing:
        logger.warning(
            "Decontaminating without %s: no data for them under data_dir=%s (set "
            "benchmark_data_dir or MEDREASON_EVAL_DATA).",
            ", ".join(missing),
            data_dir,
        )
    return items


def load_benchmarks(
    spec: str | os.PathLike | Sequence[str | os.PathLike], data_dir: str | os.PathLike | None = None
) -> list[BenchmarkItem]:
    """Load benchmark questions from a benchmark file, a directory of them, a list of these, or names.

    A name is a suite (``ii_medical``) or a registered benchmark (``medqa``) of :mod:`medreason.eval`;
    its relative files resolve against ``data_dir`` (default: ``$MEDREASON_EVAL_DATA``).

    Raises:
        ValueError: ``spec`` names nothing that exists and is not a known suite, or holds no questions;
            a directory holds something that is not a benchmark file, or a file cannot be read.
    """
    specs = [spec] if isinstance(spec, str | os.PathLike) else list(spec)
    files: list[Path] = []
    items: list[BenchmarkItem] = []
    for entry in specs:
        path = Path(entry)
        if path.is_dir():
            files.extend(benchmark_files(path))
        elif path.is_file():
            files.append(path)
        else:
            items.extend(_from_registry(str(entry), data_dir))
    items.extend(item for file in files for item in read_benchmark_file(file))
    if not items:
        raise ValueError(f"No benchmark questions found in {specs}.")
    return items
