"""The rubric task: open-ended conversations graded against physician-written criteria (HealthBench).

A record uses HealthBench's own field names, so the public files load unchanged::

    {"prompt_id": "...", "prompt": [{"role": "user", "content": "..."}],
     "rubrics": [{"criterion": "Advises calling emergency services", "points": 10,
                  "tags": ["axis:completeness", "level:example"]}, ...],
     "example_tags": ["theme:emergency_referrals"], "ideal_completions_data": {...} | null}

A :class:`RubricBenchmark` names a local record file (JSONL, JSON, either gzipped, or Parquet) or a
``datasets`` id/path; :func:`load_rubric_records` validates every record into a :class:`RubricRecord`
and fails on the first bad one with a :class:`~medreason.utils.jsonl.RecordError` naming file, line
and field (an empty rubric, a rubric without positive points, points that are not numbers).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medreason.utils.jsonl import RecordError, describe_value
from medreason.utils.record_files import dataset_rows, read_records

__all__ = ["RubricBenchmark", "RubricItem", "RubricRecord", "load_rubric_records", "to_rubric_record"]


@dataclass(frozen=True)
class RubricItem:
    """One rubric criterion.

    Args:
        criterion: What the response must (positive points) or must not (negative points) do.
        points: Points added to the response's score when the criterion is met; may be negative.
        tags: HealthBench tags such as ``axis:accuracy`` or ``level:cluster``.

    >>> str(RubricItem("Recommends urgent evaluation", 7.0))
    '[7.0] Recommends urgent evaluation'
    """

    criterion: str
    points: float
    tags: tuple[str, ...] = ()

    def __str__(self) -> str:
        # the judge sees "[points] criterion", as in HealthBench's grader, so it knows the sign
        return f"[{self.points}] {self.criterion}"

    def to_json(self) -> dict[str, Any]:
        """The item in HealthBench's field names."""
        return {"criterion": self.criterion, "points": self.points, "tags": list(self.tags)}


@dataclass(frozen=True)
class RubricRecord:
    """One validated rubric-graded conversation.

    Args:
        id: ``prompt_id``; unique within its benchmark (it keys the caches).
        prompt: The conversation so far, as chat messages; the model writes the next assistant turn.
        rubrics: The criteria the response is graded against (at least one with positive points).
        example_tags: Tags of the whole example, e.g. ``theme:emergency_referrals``.
        ideal_completion: A physician-written answer, where the source has one.
    """

    id: str
    prompt: list[dict[str, str]]
    rubrics: tuple[RubricItem, ...]
    example_tags: tuple[str, ...] = ()
    ideal_completion: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record in HealthBench's field names (what :func:`to_rubric_record` reads back)."""
        return {
            "prompt_id": self.id,
            "prompt": self.prompt,
            "rubrics": [item.to_json() for item in self.rubrics],
            "example_tags": list(self.example_tags),
            "ideal_completions_data": (
                None if self.ideal_completion is None else {"ideal_completion": self.ideal_completion}
            ),
        }


@dataclass(frozen=True)
class RubricBenchmark:
    """Where a rubric benchmark's records come from.

    Args:
        name: Registry key, e.g. ``"healthbench_hard"``.
        title: Column label in tables.
        path: Local record file; relative paths resolve against the run's ``data_dir``.
        dataset: A ``datasets`` hub id or local dataset path, used when ``path`` is not set.
        split: The dataset split to load.
        note: How to obtain the data (shown when it is missing).
    """

    name: str
    title: str
    path: str | None = None
    dataset: str | None = None
    split: str = "test"
    note: str = ""

    def __post_init__(self) -> None:
        if (self.path is None) == (self.dataset is None):
            raise ValueError(
                f"RubricBenchmark {self.name!r}: set exactly one of path= (a local file) or dataset= (a datasets id/path)."
            )

    def source(self, data_dir: str | os.PathLike | None = None) -> str:
        """The file path or dataset id records are read from."""
        if self.path is None:
            return f"{self.dataset}:{self.split}"
        path = Path(self.path).expanduser()
        if not path.is_absolute() and data_dir is not None:
            path = Path(data_dir).expanduser() / path
        gzipped = path.with_name(path.name + ".gz")
        return str(gzipped if not path.exists() and gzipped.is_file() else path)


def _messages(value: Any, fail: Any) -> list[dict[str, str]]:
    if isinstance(value, str) and value.strip():
        return [{"role": "user", "content": value}]
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise fail("prompt", f"must be a non-empty list of chat messages, got {describe_value(value)}.")
    messages = []
    for turn, message in enumerate(value):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str) or not isinstance(
            message.get("content"), str
        ):
            raise fail("prompt", f"message {turn} must be {{'role': str, 'content': str}}, got {describe_value(message)}.")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _tags(value: Any, fail: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(t, str) for t in value):
        raise fail(where, f"tags must be a list of strings, got {describe_value(value)}.")
    return tuple(value)


def to_rubric_record(row: Mapping[str, Any], source: str, position: str, index: int, name: str) -> RubricRecord:
    """Validate a raw HealthBench-style row into a :class:`RubricRecord`.

    Raises:
        RecordError: naming ``source``, ``position`` and the field (``prompt``, ``rubrics[i].points``, ...).

    >>> to_rubric_record({"prompt": "hi", "rubrics": [{"criterion": "Is rude", "points": -5}]}, "x.jsonl", "line 3", 2, "b")
    Traceback (most recent call last):
    ...
    medreason.utils.jsonl.RecordError: x.jsonl, line 3, field 'rubrics': no criterion has positive points, so the score (met points / positive points) is undefined; add at least one criterion with points > 0.
    """

    def fail(key: str, problem: str) -> RecordError:
        return RecordError(source, position, key, problem)

    prompt = _messages(row.get("prompt"), fail)
    rubrics = row.get("rubrics")
    if not isinstance(rubrics, Sequence) or isinstance(rubrics, str) or not rubrics:
        raise fail("rubrics", f"must be a non-empty list of criteria, got {describe_value(rubrics)}.")
    items = []
    for i, raw in enumerate(rubrics):
        where = f"rubrics[{i}]"
        if not isinstance(raw, Mapping):
            raise fail(where, f"must be {{'criterion', 'points', 'tags'}}, got {describe_value(raw)}.")
        criterion, points = raw.get("criterion"), raw.get("points")
        if not isinstance(criterion, str) or not criterion.strip():
            raise fail(f"{where}.criterion", f"must be a non-empty string, got {describe_value(criterion)}.")
        if isinstance(points, bool) or not isinstance(points, numbers.Real) or not math.isfinite(points):
            raise fail(f"{where}.points", f"must be a finite number (negative for undesirable criteria), got {describe_value(points)}.")
        items.append(RubricItem(criterion.strip(), float(points), _tags(raw.get("tags"), fail, f"{where}.tags")))
    if not any(item.points > 0 for item in items):
        raise fail(
            "rubrics",
            "no criterion has positive points, so the score (met points / positive points) is undefined; "
            "add at least one criterion with points > 0.",
        )
    item_id = row.get("prompt_id", row.get("id", f"{name}-{index:05d}"))
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or str(item_id) == "":
        raise fail("prompt_id", f"expected a string or integer id, got {describe_value(item_id)}.")
    ideal = row.get("ideal_completions_data")
    ideal_text = ideal.get("ideal_completion") if isinstance(ideal, Mapping) else None
    return RubricRecord(
        str(item_id),
        prompt,
        tuple(items),
        _tags(row.get("example_tags"), fail, "example_tags"),
        ideal_text if isinstance(ideal_text, str) else None,
    )


def _rows(benchmark: RubricBenchmark, source: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if benchmark.path is not None:
        if not Path(source).is_file():
            raise FileNotFoundError(
                f"Rubric benchmark {benchmark.name!r} expects its data at {source}, which does not exist. "
                f"{benchmark.note} Set data_dir to the folder holding it, or point at the file with "
                f"+benchmark_paths.{benchmark.name}=FILE."
            )
        yield from read_records(source)
        return
    yield from dataset_rows(f"Rubric benchmark {benchmark.name!r}", benchmark.dataset, split=benchmark.split,
                            hint=benchmark.note)


def load_rubric_records(
    benchmark: RubricBenchmark, data_dir: str | os.PathLike | None = None, limit: int | None = None
) -> list[RubricRecord]:
    """Read and validate all of ``benchmark``'s records; return the first ``limit``.

    Raises:
        FileNotFoundError: the file or dataset is missing.
        RecordError: a bad record (see :func:`to_rubric_record`), a repeated ``prompt_id``, or no records.
    """
    source = benchmark.source(data_dir)
    records: list[RubricRecord] = []
    seen: set[str] = set()
    for index, (position, row) in enumerate(_rows(benchmark, source)):
        record = to_rubric_record(row, source, position, index, benchmark.name)
        if record.id in seen:
            raise RecordError(source, position, "prompt_id", f"duplicate id {record.id!r}; ids key the judge cache.")
        seen.add(record.id)
        records.append(record)
    if not records:
        raise RecordError(source, None, None, f"rubric benchmark {benchmark.name!r}: the source holds no records.")
    return records[:limit] if limit is not None else records
