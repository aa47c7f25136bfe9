"""The GPU kit's report: ``gpu_report.json`` (everything) and ``gpu_report.md`` (one table per section).

Both are rewritten after every run, so a call killed at its time limit still leaves what it measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SECTION_TITLES = {
    "grading": "Answer grading (responses/s, CPU)",
    "eval": "Evaluation: MedQA through evaluate() and TransformersEngine",
    "ttt": "Test-time training per question (seconds)",
    "sft": "SFT: medreason curriculum SFT vs plain TRL SFTTrainer, packed",
    "dpo": "DPO: live reference model vs precomputed reference log-probs",
    "dapo": "DAPO step: medreason DAPOTrainer vs TRL GRPOTrainer(loss_type=dapo), transformers rollouts",
}


def rows_of(result: dict) -> list[dict[str, Any]]:
    """A run's figures as table rows: its JSON object, or each object of its JSON list."""
    figures = result.get("figures")
    if figures is None:
        return [{"error": result.get("error", "")}]
    return figures if isinstance(figures, list) else [figures]


def add_ratios(results: list[dict]) -> None:
    """Give each run with a baseline ``ratio_<key>`` = its figure / the baseline's (both must have succeeded)."""
    by_label = {(r["section"], r["label"]): r for r in results}
    for result in results:
        base = by_label.get((result["section"], result.get("compare_to")))
        if base is None or result["status"] != "ok" or base["status"] != "ok":
            continue
        ours, theirs = result["figures"], base["figures"]
        for key in result["ratio_keys"]:
            if ours.get(key) is not None and theirs.get(key):
                ours[f"ratio_{key}"] = ours[key] / theirs[key]


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


def markdown(report: dict) -> str:
    """The report as Markdown: the environment, then one table per section, run by run."""
    env = report["environment"]
    lines = [f"# medreason GPU kit report ({report['mode']})", "",
             f"- date: {report['started']} (UTC), {report['elapsed_s']:.0f} s of a {report['budget_s']:.0f} s budget",
             f"- device: {env.get('device')}" + (f", {env['gpu_memory_gib']} GiB" if env.get("gpu_memory_gib") else ""),
             f"- python {env.get('python')}, CUDA {env.get('cuda')}; "
             + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
             f"- medreason commit: {env.get('medreason_commit')}",
             f"- command: `{report['command']}`", ""]
    if report["problems"]:
        lines += ["## Environment problems (nothing was measured)", ""] + [f"- {p}" for p in report["problems"]] + [""]
    sections = dict.fromkeys(r["section"] for r in report["runs"])
    for section in sections:
        results = [r for r in report["runs"] if r["section"] == section]
        columns = list(dict.fromkeys(key for r in results for row in rows_of(r) for key in row))
        lines += [f"## {SECTION_TITLES.get(section, section)}", "",
                  "| kit run | status | s | " + " | ".join(columns) + " |",
                  "|---|---|---|" + "---|" * len(columns)]
        for result in results:
            for row in rows_of(result):
                lines.append(f"| {result['label']} | {result['status']} | {result['seconds']:.0f} | "
                             + " | ".join(cell(row.get(key)) for key in columns) + " |")
        lines.append("")
    return "\n".join(lines)


def write_report(report: dict, out: Path) -> str:
    """Write ``gpu_report.json`` and ``gpu_report.md`` into ``out`` (each replaced whole); return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    add_ratios(report["runs"])
    text = markdown(report)
    for name, content in (("gpu_report.json", json.dumps(report, indent=1)), ("gpu_report.md", text)):
        partial = out / f".{name}.partial"
        partial.write_text(content)
        partial.replace(out / name)  # a kill mid-write leaves the previous complete file
    return text
