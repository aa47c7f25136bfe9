"""The published results tables of the model cards, shipped as package data (``published.json``).

Sources: the II-Medical-8B and II-Medical-7B-Preview model cards (evaluation results), the ReasonMed
README's evaluation table (accuracy ± standard error) and Table 2 of the FineMedLM-o1 paper
(MMLU-Pro biology and health). Scores are percentages, copied as printed (two printed averages
disagree with their rows; those rows carry a ``note``); a table's columns follow
the order of the matching suite in :data:`~medreason.eval.benchmarks.SUITES`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["PublishedRow", "PublishedTable", "published_table"]


@dataclass(frozen=True)
class PublishedRow:
    """One model's published scores.

    Args:
        model: The model's name as printed.
        scores: One score (percent) per column.
        average: The card's average column.
        stderr: The ± of each score, where the card prints one.
        source: Where the numbers come from.
        note: Remarks on the source, e.g. an average that does not match its row as printed.
    """

    model: str
    scores: tuple[float, ...]
    average: float
    stderr: tuple[float | None, ...] | None = None
    source: str = ""
    note: str = ""


@dataclass(frozen=True)
class PublishedTable:
    """A model card's results table.

    Args:
        suite: The suite the columns belong to.
        title: What the table is.
        columns: Column labels, in the suite's benchmark order.
        average: The label of the average column ("Avg", "Total Acc", "Average").
        stderr: Whether the card prints "score ± standard error".
        digits: Decimals the card prints.
        rows: The published models.
        card_models: The models whose card this suite reproduces (the rows a results plot shows beside ours).
    """

    suite: str
    title: str
    columns: tuple[str, ...]
    average: str
    stderr: bool
    digits: int
    rows: tuple[PublishedRow, ...]
    card_models: tuple[str, ...] = ()


@cache
def _load() -> dict[str, dict]:
    return json.loads(
        resources.files("medreason.eval").joinpath("published.json").read_text(encoding="utf-8")
    )


def published_table(suite: str) -> PublishedTable | None:
    """The published table of ``suite``, or ``None`` for a suite without one.

    >>> published_table("ii_medical").rows[-1].model
    'II-Medical-7B-Preview'
    """
    table = _load().get(suite)
    if table is None:
        return None
    rows = tuple(
        PublishedRow(
            model=row["model"],
            scores=tuple(row["scores"]),
            average=row["average"],
            stderr=tuple(row["stderr"]) if row.get("stderr") else None,
            source=row.get("source", ""),
            note=row.get("note", ""),
        )
        for row in table["rows"]
    )
    return PublishedTable(
        suite=suite,
        title=table["title"],
        columns=tuple(table["columns"]),
        average=table["average"],
        stderr=table["stderr"],
        digits=table["digits"],
        rows=rows,
        card_models=tuple(table.get("card_models", ())),
    )
