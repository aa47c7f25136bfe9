"""Multiple-choice inputs of the ReasonMed and II-Medical trace pipelines.

Records are read and validated by the shared multiple-choice loaders (:mod:`medreason.tasks.mcq`), so the
input schema is the shared one, ``{"id", "question", "options": {"A": …}, "answer": "<letter>"}``, or
any file/dataset mapped onto it with ``columns`` (e.g. ``{"options": "choices", "answer": "cop"}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medreason.tasks.mcq import Benchmark, EvalRecord, load_records

__all__ = ["format_mcq", "load_mcq"]


def load_mcq(
    inputs: str | Sequence[str],
    columns: Mapping[str, str] | None = None,
    limit: int | None = None,
    split: str = "train",
) -> list[EvalRecord]:
    """Validated MCQ records from JSONL/Parquet files or ``datasets`` ids.

    With several inputs, ids are prefixed with the file stem (``medqa/…``) so they stay unique.
    ``limit`` applies per input.

    Raises:
        FileNotFoundError, RecordError: as :func:`medreason.tasks.mcq.load_records`.
    """
    sources = [inputs] if isinstance(inputs, str) else list(inputs)
    if not sources:
        raise ValueError("input is empty: pass input=questions.jsonl or input=[a.jsonl,b.jsonl].")
    records: list[EvalRecord] = []
    for source in sources:
        path = Path(source).expanduser()
        location: dict[str, Any] = (
            {"path": str(path.resolve())} if path.exists() else {"dataset": source, "split": split}
        )
        benchmark = Benchmark(name=path.stem, title=path.stem, columns=dict(columns or {}), **location)
        loaded = load_records(benchmark, limit=limit)
        if len(sources) > 1:
            loaded = [
                EvalRecord(f"{path.stem}/{r.id}", r.question, r.options, r.answer, r.meta) for r in loaded
            ]
        records.extend(loaded)
    return records


def format_mcq(record: EvalRecord) -> str:
    """The question with its lettered options, as written into training records.

    >>> format_mcq(EvalRecord("1", "Which vitamin?", {"A": "C", "B": "D"}, "B"))
    'Which vitamin?\\n\\nA. C\\nB. D'
    """
    return record.question + "\n\n" + "\n".join(f"{key}. {text}" for key, text in record.options.items())
