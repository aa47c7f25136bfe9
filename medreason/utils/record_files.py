"""Read record files: JSON Lines or JSON (each optionally gzip-compressed) and Parquet.

Evaluation, decontamination and the training-data loader read local files through
:func:`read_records`, so a ``.jsonl.gz`` copy of a benchmark loads exactly like the ``.jsonl`` it
was made from, and a file that cannot be read is an error naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medreason.utils.jsonl import RecordError, decode_utf8, open_binary, read_jsonl

__all__ = ["RECORD_FILE_SUFFIXES", "read_records", "record_file_stem", "record_file_suffix"]

RECORD_FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
"""The names :func:`read_records` reads (case-insensitive). A ``.json`` file holds JSON Lines or one
array of records."""

_KINDS = {".jsonl": "JSONL", ".jsonl.gz": "JSONL", ".json": "JSON", ".json.gz": "JSON", ".parquet": "Parquet"}


def record_file_suffix(path: str | os.PathLike) -> str | None:
    """The suffix of :data:`RECORD_FILE_SUFFIXES` that ``path`` ends with, or ``None``.

    >>> record_file_suffix("eval/medqa.JSONL.gz"), record_file_suffix("eval/README.md")
    ('.jsonl.gz', None)
    """
    name = Path(path).name.lower()
    return next((suffix for suffix in RECORD_FILE_SUFFIXES if name.endswith(suffix)), None)


def record_file_stem(path: str | os.PathLike) -> str:
    """The file name without its record-file suffix.

    >>> record_file_stem("eval/medqa.jsonl.gz")
    'medqa'
    """
    name, suffix = Path(path).name, record_file_suffix(path)
    return name[: len(name) - len(suffix)] if suffix else Path(path).stem


def read_records(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(position, record)`` for every record of a record file.

    Positions are ``"line N"`` in JSON Lines (1-based, blank lines skipped) and ``"index N"`` in a
    JSON array or a Parquet file (0-based), as error messages quote them.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not named like a record file, or cannot be read as one (not gzip,
            not Parquet); the message names the file.
        RecordError: the file is empty, or a line or element is not UTF-8, not valid JSON or not a JSON object.
    """
    path = Path(path)
    suffix = record_file_suffix(path)
    if suffix is None:
        raise ValueError(
            f"{path} is not a record file: its name must end in {', '.join(RECORD_FILE_SUFFIXES)}. "
            "Convert it to one of these or point at the file that holds the records."
        )
    if not path.is_file():
        raise FileNotFoundError(f"No such {_KINDS[suffix]} file: {path}")
    try:
        if suffix == ".parquet":
            yield from _parquet_records(path)
        elif suffix in (".json", ".json.gz") and _starts_an_array(path):
            yield from _json_array_records(path)
        else:
            for line, record in read_jsonl(path):
                yield f"line {line}", record
    except (OSError, EOFError) as error:  # a bad gzip stream (bytes that are not UTF-8 are RecordErrors)
        raise ValueError(
            f"{path} cannot be read as a {suffix} file ({type(error).__name__}: {error}). "
            "Check that the file is complete and that its name matches its format."
        ) from error


def _starts_an_array(path: Path) -> bool:
    """Whether a JSON file's first character that is not whitespace opens an array."""
    with open_binary(path) as handle:
        while chunk := handle.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped.startswith(b"[")
    return False


def _json_array_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open_binary(path) as handle:
        text = decode_utf8(handle.read(), str(path))
    try:
        records = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError(
            str(path), f"line {error.lineno}", None, f"invalid JSON at column {error.colno} ({error.msg})."
        ) from None
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RecordError(
                str(path), f"index {index}", None, f"expected a JSON object, got {type(record).__name__}."
            )
        yield f"index {index}", record


def _parquet_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except pyarrow.ArrowException as error:
        raise ValueError(f"{path} cannot be read as a Parquet file ({error}).") from error
    for index, row in enumerate(rows):
        yield f"index {index}", row


def dataset_rows(label: str, dataset: str, *config: str | None, split: str, hint: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(position, row)`` of ``datasets.load_dataset(dataset, *config, split=split)``, positions ``"index N"``.

    Any failure to load (Hub, network, format) becomes a ``FileNotFoundError`` naming ``label`` and the
    dataset, followed by ``hint`` (what to download or set instead).
    """
    import datasets

    try:
        rows = datasets.load_dataset(dataset, *config, split=split)
    except Exception as error:  # hub/network/format errors all mean "cannot read this source"
        raise FileNotFoundError(f"{label}: could not load dataset {dataset} ({type(error).__name__}: {error}). {hint}") from error
    for index, row in enumerate(rows):
        yield f"index {index}", row
