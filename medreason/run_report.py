"""``<output_dir>/report.md``: one page linking every stage's curves, model card, completions and reports.

Written at the end of every run next to ``summary.json``; links are relative, so the report reads the
same in a file browser, on GitHub or after the run folder is copied elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from medreason.model_card import CARD_FILE
from medreason.run_summary import REPORT_FILE, read_summary
from medreason.stage_context import TRAINING_KINDS, read_completion_marker
from medreason.utils.training_curves import CURVES_FILE


def _link(output_dir: Path, path: Path, label: str) -> str | None:
    return f"[{label}]({path.relative_to(output_dir).as_posix()})" if path.exists() else None


def render_report(output_dir: Path, run_name: str, kinds: dict[str, str]) -> str:
    """The run report in Markdown.

    Args:
        output_dir: The run's directory.
        run_name: The recipe run's name (the title).
        kinds: Every stage of the recipe, in order, to its kind.
    """
    summary = read_summary(output_dir)
    lines = [f"# medreason run `{run_name}`", "", f"Folder: `{output_dir}`; resolved config: `config.yaml`.", "",
             "| stage | kind | status | seconds | started from |", "|---|---|---|---|---|"]
    for name, kind in kinds.items():
        finished = read_completion_marker(output_dir / name) is not None
        entry = summary.get(name, {})
        seconds = entry.get("seconds")
        started = entry.get("started_from") or "–"
        shown = f"{seconds:.1f}" if isinstance(seconds, int | float) else "–"
        lines.append(f"| [{name}](#{name}) | {kind} | {'finished' if finished else 'not run'} | {shown} | `{started}` |")
    for name, kind in kinds.items():
        stage_dir = output_dir / name
        if not stage_dir.is_dir():
            continue
        lines += ["", f"## {name}", "", f"Kind: {kind}."]
        links = [
            _link(output_dir, stage_dir / "final" / CARD_FILE, "model card") if kind in TRAINING_KINDS else None,
            _link(output_dir, stage_dir / "metrics.json", "metrics.json"),
            _link(output_dir, stage_dir / "metrics.jsonl", "metrics per step"),
            _link(output_dir, stage_dir / "completions", "sampled completions"),
            _link(output_dir, stage_dir / "dataset_card.md", "dataset card (decontamination report)"),
            _link(output_dir, stage_dir / "report.json", "report.json"),
            _link(output_dir, stage_dir / "results.json", "results.json"),
        ]
        shown_links = [link for link in links if link]
        if shown_links:
            lines += ["", " · ".join(shown_links)]
        curves = stage_dir / CURVES_FILE
        if curves.is_file():
            lines += ["", f"![{name} training curves]({curves.relative_to(output_dir).as_posix()})"]
        table = stage_dir / "results.md"
        if table.is_file():
            lines += ["", "Model-card table (accuracy %):", "", table.read_text(encoding="utf-8").strip()]
        plot = stage_dir / "results.png"
        if plot.is_file():
            lines += ["", f"![{name} results]({plot.relative_to(output_dir).as_posix()})"]
    return "\n".join(lines) + "\n"


def write_report(output_dir: Path, run_name: str, kinds: dict[str, str]) -> Path:
    """Write :func:`render_report` to ``<output_dir>/report.md`` and return its path."""
    path = output_dir / REPORT_FILE
    path.write_text(render_report(output_dir, run_name, kinds), encoding="utf-8")
    return path
