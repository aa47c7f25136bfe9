"""The run report: counts per step, failures and score histograms (``report.json``, ``histograms.png``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medreason.synth.runner import SynthRunner

__all__ = ["plot_histograms", "write_report"]


def plot_histograms(histograms: Mapping[str, Sequence[int]], path: str | Path) -> Path | None:
    """Draw one bar chart of integer-valued scores per entry into a PNG; ``None`` when there is nothing to draw."""
    histograms = {name: values for name, values in histograms.items() if values}
    if not histograms:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(histograms), figsize=(4.5 * len(histograms), 3.5), squeeze=False)
    for axis, (name, values) in zip(axes[0], histograms.items(), strict=True):
        counts = Counter(values)
        xs = list(range(min(counts), max(counts) + 1))
        axis.bar(xs, [counts.get(x, 0) for x in xs], color="#4c72b0")
        axis.set_title(name, fontsize=10)
        axis.set_xticks(xs)
        axis.set_ylabel("count")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def write_report(runner: SynthRunner, pipeline: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``failures.jsonl``, ``report.json`` and ``histograms.png`` into the run's output folder."""
    output = runner.output_dir
    with (output / "failures.jsonl").open("w", encoding="utf-8") as handle:
        for failure in runner.failures:
            handle.write(json.dumps(failure.to_record(), ensure_ascii=False) + "\n")
    plot = plot_histograms(summary.get("histograms", {}), output / "histograms.png")
    report = {
        "pipeline": pipeline,
        "counts": dict(summary["counts"]),
        "steps": {name: asdict(stats) for name, stats in runner.stats.items()},
        "failures": dict(Counter(f"{f.stage}:{f.kind}" for f in runner.failures)),
        **({"departments": summary["departments"]} if "departments" in summary else {}),
        "histograms": {
            name: dict(sorted(Counter(values).items()))
            for name, values in summary.get("histograms", {}).items()
        },
        "files": [
            *summary.get("files", []),
            "failures.jsonl",
            "report.json",
            *(["histograms.png"] if plot else []),
        ],
    }
    (output / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return report
