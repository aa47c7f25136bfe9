"""What one curation step did: the record the pipeline stores in ``done.json`` and the card reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepSummary"]


@dataclass
class StepSummary:
    """What one step did, as stored in its ``done.json``.

    Args:
        name: Step name.
        fingerprint: Hash of this step's settings and all earlier fingerprints.
        input: Records the step received.
        kept: Records it passed on (including any it added).
        added: Records it added (``load``, ``mix``).
        dropped: Dropped records per reason.
        rejected: Malformed input lines written to its rejects file.
        seconds: Wall time.
        by_source: ``{source: {"kept": n, "dropped": n}}``.
        extra: Step-specific figures (clusters voted, match methods, …).
    """

    name: str
    fingerprint: str
    input: int = 0
    kept: int = 0
    added: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    seconds: float = 0.0
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
