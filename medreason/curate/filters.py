"""Preprocessing filters: the II-Medical card's four rules, plus a registry for your own.

A filter is a function ``fn(record, **params) -> str | None`` that returns ``None`` to keep a
:class:`~medreason.curate.records.TraceRecord` or a short reason to drop it. Register one with
:func:`register_filter` and name it in the pipeline config:

>>> @register_filter("has_boxed_answer")
... def has_boxed_answer(record, *, marker="\\\\boxed{"):
...     return None if marker in record.answer else "no boxed answer"
>>> build_filters([{"name": "max_wait", "max_count": 47}])[0].name
'max_wait'

Defaults are the card's ("Preprocessing Data", II-Medical-7B-Preview): complete generations only,
prompts of more than 3 words, traces of fewer than 7,143 words, at most 47 "Wait" (its 97th
percentile). Words are whitespace-separated tokens.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from medreason.curate.records import TraceRecord

FilterFn = Callable[..., str | None]
FILTERS: dict[str, FilterFn] = {}
CARD_FILTERS: tuple[dict[str, Any], ...] = (
    {"name": "complete_generation"},
    {"name": "min_prompt_words", "more_than": 3},
    {"name": "max_trace_words", "less_than": 7143},
    {"name": "max_wait", "max_count": 47},
)
"""The II-Medical card's preprocessing, the default when a config names no filters."""


def register_filter(name: str) -> Callable[[FilterFn], FilterFn]:
    """Add a filter function to :data:`FILTERS` under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def decorator(fn: FilterFn) -> FilterFn:
        if name in FILTERS:
            raise ValueError(
                f"A curation filter named {name!r} is already registered ({FILTERS[name].__module__})."
            )
        FILTERS[name] = fn
        return fn

    return decorator


@dataclass(frozen=True)
class BoundFilter:
    """A filter with its parameters bound, as the pipeline applies it.

    Args:
        name: The registry key (or dotted path) it was built from.
        fn: The filter function.
        params: Keyword arguments passed on every call.
    """

    name: str
    fn: FilterFn
    params: Mapping[str, Any]

    def __call__(self, record: TraceRecord) -> str | None:
        return self.fn(record, **self.params)


def _resolve(name: str) -> FilterFn:
    if name in FILTERS:
        return FILTERS[name]
    if "." in name:
        module_name, _, attribute = name.rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"Cannot import curation filter {name!r}: {error}.") from None
    raise ValueError(
        f"Unknown curation filter {name!r}. Registered filters: {sorted(FILTERS)}; "
        "a dotted path such as 'my_package.filters.my_filter' also works."
    )


def build_filters(specs: list[Mapping[str, Any]]) -> list[BoundFilter]:
    """Build filters from config entries ``{name: ..., <param>: ...}``, checking the parameters now.

    Raises:
        ValueError: an entry has no ``name``, names an unknown filter, or passes unknown parameters.
    """
    filters = []
    for index, spec in enumerate(specs):
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise ValueError(f"filters[{index}] needs a 'name' (one of {sorted(FILTERS)}), got {dict(spec)}.")
        fn = _resolve(name)
        try:
            inspect.signature(fn).bind(None, **params)
        except TypeError as error:
            raise ValueError(
                f"filters[{index}] ({name}): {error}. Parameters of {name}: "
                f"{list(inspect.signature(fn).parameters)[1:]}."
            ) from None
        filters.append(BoundFilter(name, fn, params))
    return filters


def first_failure(record: TraceRecord, filters: list[BoundFilter]) -> tuple[str, str] | None:
    """``(filter name, reason)`` of the first filter that drops ``record``, or ``None`` to keep it."""
    for bound in filters:
        reason = bound(record)
        if reason is not None:
            return bound.name, reason
    return None


def word_count(text: str) -> int:
    """Whitespace-separated words, the card's length unit."""
    return len(text.split())


@register_filter("complete_generation")
def complete_generation(record: TraceRecord) -> str | None:
    """Keep traces whose reasoning closes and is followed by a final answer."""
    if record.reasoning is None:
        return "no reasoning trace"
    return None if record.complete else "reasoning never closes or no final answer follows"


@register_filter("min_prompt_words")
def min_prompt_words(record: TraceRecord, *, more_than: int = 3) -> str | None:
    """Keep prompts with more than ``more_than`` words (card: more than 3)."""
    words = word_count(record.prompt)
    return None if words > more_than else f"prompt has {words} words (needs more than {more_than})"


@register_filter("max_trace_words")
def max_trace_words(record: TraceRecord, *, less_than: int = 7143) -> str | None:
    """Keep reasoning traces with fewer than ``less_than`` words (card: less than 7,143)."""
    words = word_count(record.reasoning or "")
    return None if words < less_than else f"trace has {words} words (needs fewer than {less_than})"


@register_filter("max_wait")
def max_wait(
    record: TraceRecord, *, max_count: int = 47, word: str = "Wait", ignore_case: bool = False
) -> str | None:
    """Drop traces that say ``word`` more than ``max_count`` times (card: more than 47 "Wait").

    Counts whole words, case-sensitively by default ("Wait," counts, "Waiting" does not).
    """
    pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE if ignore_case else 0)
    count = len(pattern.findall(record.reasoning or ""))
    return None if count <= max_count else f"{count} x {word!r} (at most {max_count})"
