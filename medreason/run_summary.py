"""The short account a recipe run ends with: each stage's status and time, the model-card tables, where things are.

``python -m medreason.train`` prints it at the end of every run (and when a finished run is invoked
again); ``<output_dir>/summary.json`` holds the same facts for scripts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medreason.stage_context import read_completion_marker

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
"""The run report (:mod:`medreason.run_report`): every stage's curves, model card and reports on one page."""
REPORT_FILES = ("results.md", "results.png", "dataset_card.md", "report.json", "metrics.json")
"""Files a stage may leave that a reader looks at first, in this order."""


def write_summary(output_dir: Path, names: list[str], started_from: dict[str, str], seconds: dict[str, float]) -> None:
    """Write ``summary.json``: per stage, where it started, its time and its completion marker.

    A stage skipped in this run (already finished) keeps the time an earlier run recorded.
    """
    earlier = read_summary(output_dir)
    summary = {}
    for name in names:
        before = earlier.get(name, {})
        summary[name] = {
            "started_from": started_from.get(name, before.get("started_from")),
            "seconds": seconds.get(name, before.get("seconds")),
            **(read_completion_marker(output_dir / name) or {}),
        }
    (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))


def read_summary(output_dir: Path) -> dict[str, Any]:
    """The run's ``summary.json``, or an empty mapping before the first run finished a stage."""
    path = output_dir / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def render_summary(output_dir: Path, kinds: dict[str, str]) -> str:
    """The stage table, every eval stage's model-card table, and where the reports and plots are.

    Args:
        output_dir: The run's directory.
        kinds: Stage name -> kind, in recipe order.
    """
    summary = read_summary(output_dir)
    lines = [f"medreason run in {output_dir}", "", "| stage | kind | status | seconds |", "|---|---|---|---|"]
    for name, kind in kinds.items():
        finished = read_completion_marker(output_dir / name) is not None
        seconds = summary.get(name, {}).get("seconds")
        shown = f"{seconds:.1f}" if isinstance(seconds, int | float) else "–"
        lines.append(f"| {name} | {kind} | {'finished' if finished else 'not run'} | {shown} |")
    for name, kind in kinds.items():
        table = output_dir / name / "results.md"
        if kind == "eval" and table.is_file():
            lines += ["", f"{name}: model-card table", "", table.read_text(encoding="utf-8").strip()]
    reports = [str(output_dir / name / file) for name in kinds for file in REPORT_FILES
               if (output_dir / name / file).is_file()]
    if (output_dir / REPORT_FILE).is_file():
        reports.insert(0, str(output_dir / REPORT_FILE))
    lines += ["", f"Summary: {output_dir / SUMMARY_FILE}"] + [f"Report: {path}" for path in reports]
    return "\n".join(lines)
