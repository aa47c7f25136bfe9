"""JSON Lines reading and writing with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


class RecordError(ValueError):
    """A malformed input record. The message names the source, the record's position and the field.

    Args:
        source: File path or dataset id the record came from.
        position: ``"line N"`` for JSONL files, ``"index N"`` for datasets and Parquet files.
        field: The offending field, or ``None`` when the whole record is bad.
        problem: What is wrong and how to fix it.
    """

    def __init__(self, source: str, position: str, field: str | None, problem: str):
        self.source, self.position, self.field, self.problem = source, position, field, problem
        where = f"{source}, {position}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {problem}")


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a UTF-8 text file for reading, decompressing it when its name ends in ``.gz``."""
    path = Path(path)
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line of ``path`` (1-based line numbers).

    A name ending in ``.gz`` (``medqa.jsonl.gz``) is read through gzip.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RecordError: a line is not valid JSON or not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such JSONL file: {path}")
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RecordError(str(path), f"line {line_number}", None, f"invalid JSON ({error.msg}).") from None
            if not isinstance(record, dict):
                raise RecordError(
                    str(path), f"line {line_number}", None, f"expected a JSON object, got {type(record).__name__}."
                )
            yield line_number, record


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]], append: bool = False) -> int:
    """Write ``records`` to ``path`` one per line, flushing each; return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("a" if append else "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        handle.flush()
    return count
