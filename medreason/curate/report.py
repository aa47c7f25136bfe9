"""The dataset card: a markdown page with counts per step, drop reasons and counts per source."""

from __future__ import annotations

from medreason.curate.summary import StepSummary


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def render_card(title: str, summaries: list[StepSummary], final_by_source: dict[str, int]) -> str:
    """Markdown for ``dataset_card.md``.

    Args:
        title: The card's heading.
        summaries: One per step, in order.
        final_by_source: Records in the curated output per source.

    >>> card = render_card("Demo", [StepSummary("load", "f", kept=3, added=3)], {"demo": 3})
    >>> "| load | 0 | 3 | 3 | 0 | 0 |" in card
    True
    """
    total = sum(final_by_source.values())
    lines = [
        f"# {title}",
        "",
        f"{total:,} records after {len(summaries)} curation steps.",
        "",
        "## Steps",
        "",
    ]
    lines += _table(
        ["step", "in", "added", "kept", "dropped", "rejected (malformed)"],
        [[s.name, s.input, s.added, s.kept, sum(s.dropped.values()), s.rejected] for s in summaries],
    )
    reasons = [[s.name, reason, count] for s in summaries for reason, count in s.dropped.items()]
    if reasons:
        lines += ["", "## Why records were dropped", ""] + _table(["step", "reason", "records"], reasons)
    lines += ["", "## Records per source", ""]
    sources = sorted({source for s in summaries for source in s.by_source} | set(final_by_source))
    header = ["source"] + [s.name for s in summaries] + ["final"]
    rows = [
        [source]
        + [s.by_source.get(source, {}).get("kept", 0) for s in summaries]
        + [final_by_source.get(source, 0)]
        for source in sources
    ]
    lines += _table(header, rows)
    lines += ["", "Per-step columns count the records of each source that the step kept."]
    extras = [(s.name, s.extra) for s in summaries if s.extra]
    for name, extra in extras:
        lines += ["", f"### {name}", ""] + [f"- {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"
