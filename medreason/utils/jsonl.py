"""JSON Lines reading and writing with errors that name the file and line.

Input files are read as bytes and decoded line by line, so a byte that is not UTF-8 is reported
as a :class:`RecordError` naming its file, line and column, like any other malformed record
(:func:`read_jsonl`, :func:`iter_jsonl_lines`). Append-only caches that a kill may leave with a
torn last line go through :class:`JsonlLog`.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from medreason.utils.logging import get_logger

logger = get_logger(__name__)

T = TypeVar("T")


class RecordError(ValueError):
    """A malformed input record. The message names the source, the record's position and the field.

    Args:
        source: File path or dataset id the record came from.
        position: ``"line N"`` for JSONL files, ``"index N"`` for datasets and Parquet files; ``None``
            when the problem is the whole source (an empty file).
        field: The offending field, or ``None`` when the whole record is bad.
        problem: What is wrong and how to fix it.

    >>> str(RecordError("data.jsonl", "line 2", "question", "must be a string."))
    "data.jsonl, line 2, field 'question': must be a string."
    >>> str(RecordError("empty.jsonl", None, None, "the file holds no records."))
    'empty.jsonl: the file holds no records.'
    """

    def __init__(self, source: str, position: str | None, field: str | None, problem: str):
        self.source, self.position, self.field, self.problem = source, position, field, problem
        where = source + (f", {position}" if position else "") + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {problem}")


def describe_value(value: Any) -> str:
    """A field's value as error messages show it: ``missing``, or its type and the start of its text.

    >>> describe_value(None), describe_value(42), describe_value("")
    ('missing', "int '42'", "str ''")
    """
    return "missing" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"


def decode_utf8(data: bytes, source: str, first_line: int = 1) -> str:
    """``data`` decoded as UTF-8; ``first_line`` is the line number ``data`` starts at in ``source``.

    Raises:
        RecordError: a byte sequence that is not UTF-8, naming its line and column.

    >>> decode_utf8(b'{"q": "ok"}\\n{"q": "caf\\xe9"}', "notes.jsonl")
    Traceback (most recent call last):
    ...
    medreason.utils.jsonl.RecordError: notes.jsonl, line 2: byte 0xe9 at column 11 is not UTF-8 (invalid continuation byte); save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line = first_line + data.count(b"\n", 0, error.start)
        raise RecordError(
            source, f"line {line}", None,
            f"byte 0x{data[error.start]:02x} at column {error.start - line_start + 1} is not UTF-8 ({error.reason}); "
            "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).",
        ) from None


def parse_jsonl_line(raw: bytes, source: str, line_number: int) -> dict[str, Any]:
    """One JSONL line as a dict.

    Raises:
        RecordError: the line is not UTF-8, not valid JSON, or not a JSON object.
    """
    try:
        record = json.loads(decode_utf8(raw, source, line_number))
    except json.JSONDecodeError as error:
        cut = "; the line ends without a newline, as an interrupted write leaves it" if not raw.endswith(b"\n") else ""
        raise RecordError(
            source, f"line {line_number}", None, f"invalid JSON at column {error.colno} ({error.msg}){cut}."
        ) from None
    if not isinstance(record, dict):
        raise RecordError(source, f"line {line_number}", None, f"expected a JSON object, got {type(record).__name__}.")
    return record


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open a file for reading bytes, decompressing it when its name ends in ``.gz``."""
    path = Path(path)
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


def iter_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw bytes)`` for each non-blank line of ``path`` (1-based line numbers).

    A name ending in ``.gz`` (``medqa.jsonl.gz``) is read through gzip.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RecordError: the file has no non-blank line (an empty input is a mistake, not an empty dataset).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such JSONL file: {path}")
    empty = True
    with open_binary(path) as handle:
        for line_number, raw in enumerate(handle, start=1):
            if raw.strip():
                empty = False
                yield line_number, raw
    if empty:
        raise RecordError(str(path), None, None, "the file holds no records (it is empty); write one JSON object per line.")


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line of ``path`` (1-based line numbers).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RecordError: the file is empty, or a line is not UTF-8, not valid JSON or not a JSON object.
    """
    for line_number, raw in iter_jsonl_lines(path):
        yield line_number, parse_jsonl_line(raw, str(path), line_number)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write ``records`` to ``path`` one per line, flushing each; return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        handle.flush()
    return count


class JsonlLog:
    """An append-only JSONL file that a killed process may leave with a torn last line: the caches'
    storage (evaluation generations, synthesis calls, curation domain votes).

    Reading skips (and logs) every line that is not whole, valid JSON of the expected shape; appending
    first ends a torn last line with a newline, so the fragment stays alone on its line and the new
    entry is whole. Appends from the threads of one process are serialised.

    Args:
        path: The file (created with its folder on the first append).
        fsync: Also ``fsync`` after each append, which survives a power cut and not only a killed
            process; costs a disk sync per append.

    >>> import tempfile
    >>> log = JsonlLog(Path(tempfile.mkdtemp()) / "calls.jsonl")
    >>> log.append([{"key": "a"}])
    >>> with log.path.open("a") as handle:               # a kill mid-write leaves a torn line
    ...     _ = handle.write('{"key": "b", "tor')
    >>> log.append([{"key": "c"}])
    >>> [entry["key"] for entry in log.read(dict)]
    ['a', 'c']
    """

    def __init__(self, path: str | os.PathLike, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()

    def read(self, parse: Callable[[Any], T]) -> Iterator[T]:
        """Yield ``parse(entry)`` for each line; a line that is torn, not JSON, or that ``parse`` rejects
        (``KeyError``, ``TypeError``, ``ValueError``) is logged and skipped. Nothing when the file is missing."""
        if not self.path.is_file():
            return
        with self.path.open("rb") as handle:
            for line_number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    value = parse(json.loads(raw.decode("utf-8")))
                except (KeyError, TypeError, ValueError):  # JSON and UTF-8 errors are ValueErrors
                    logger.warning(
                        "Skipping unreadable line %s:%d (a write cut short by a kill?); its entry will be made again.",
                        self.path, line_number,
                    )
                    continue
                yield value

    def append(self, entries: Iterable[dict[str, Any]]) -> None:
        """Append ``entries``, one line each, and flush (and ``fsync`` when asked)."""
        text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries).encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as handle:
                if handle.tell() > 0:  # "a+" opens at the end; a torn last line lacks its newline
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        text = b"\n" + text
                handle.write(text)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
