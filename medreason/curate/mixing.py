"""Mixing in other sources at fixed counts, and exact deduplication across sources.

The card adds 15,000 light-r1 math traces to the medical data "to enhance general reasoning".
:func:`sample_fixed` draws such a fixed count reproducibly; :func:`dedupe_key` defines what counts as
an exact duplicate.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from medreason.curate.records import TraceRecord

T = TypeVar("T")
DEDUPE_BY = ("prompt_response", "prompt")


@dataclass(frozen=True)
class MixSource:
    """A source added at a fixed count.

    Args:
        path: JSONL file of reasoning records (any shape :func:`~medreason.curate.records.parse_trace` reads).
        count: Records to draw (after the pipeline's filters); all of them when the file holds fewer.
        name: Source name written on its records; ``None`` keeps each record's own ``source``.
    """

    path: str
    count: int
    name: str | None = None

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"mix source {self.path}: count must be >= 0, got {self.count}.")


def sample_fixed(items: Sequence[T], count: int, seed: int) -> list[T]:
    """``count`` items drawn without replacement, in their original order; the same for the same seed.

    >>> sample_fixed(list(range(10)), 3, seed=0)
    [0, 6, 9]
    """
    if count >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), count))
    return [items[index] for index in chosen]


def dedupe_key(record: TraceRecord, by: str = "prompt_response") -> str:
    """The exact-duplicate key: SHA-1 of the whitespace-stripped prompt (and response).

    Raises:
        ValueError: ``by`` is not one of :data:`DEDUPE_BY`.
    """
    if by == "prompt":
        material = record.prompt.strip()
    elif by == "prompt_response":
        material = record.prompt.strip() + "\x00" + record.response.strip()
    else:
        raise ValueError(f"dedupe.by must be one of {list(DEDUPE_BY)}, got {by!r}.")
    return hashlib.sha1(material.encode("utf-8")).hexdigest()
