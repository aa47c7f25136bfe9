"""Training curves: one PNG per stage with a panel per logged series group, drawn when a stage ends.

The series are whatever the trainer logged: HF ``Trainer.state.log_history`` for SFT and DPO,
``metrics.jsonl`` for DAPO. A panel is drawn only when at least one of its series was logged, so one
function serves every stage kind; in-training benchmark accuracies (``benchmark/<name>``) get a
panel of their own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CURVES_FILE = "curves.png"

PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("loss", "eval_loss")),
    ("learning rate", ("learning_rate",)),
    ("grad norm", ("grad_norm",)),
    ("reward", ("reward_mean", "reward_std")),
    ("response length (tokens)", ("completion_length_mean", "completion_length_max")),
    ("clipped / truncated fraction", ("clip_fraction_low", "clip_fraction_high", "truncation_rate")),
    ("entropy", ("entropy",)),
    ("token accuracy", ("mean_token_accuracy", "eval_mean_token_accuracy")),
    ("kept-group ratio (dynamic sampling)", ("kept_group_ratio",)),
    ("DPO reward margin", ("rewards/margins", "eval_rewards/margins")),
    ("DPO preference accuracy", ("rewards/accuracies", "eval_rewards/accuracies")),
)
"""Panel title and the series it draws, in reading order."""

BENCHMARK_PREFIX = "benchmark/"
"""Logged keys ``benchmark/<name>`` are in-training benchmark accuracies, drawn in one panel."""


def series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """The steps and finite values at which ``key`` was logged.

    >>> series([{"step": 1, "loss": 2.0}, {"step": 2}, {"step": 3, "loss": 1.0}], "loss")
    ([1.0, 3.0], [2.0, 1.0])
    """
    steps, values = [], []
    for entry in history:
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and "step" in entry:
            steps.append(float(entry["step"]))
            values.append(float(value))
    return steps, values


def plot_training_curves(
    history: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str
) -> Path | None:
    """Draw every panel of :data:`PANELS` (and benchmark accuracy) that has data; return the PNG, or ``None``
    when nothing plottable was logged (nothing is written then).

    Args:
        history: Logged entries, each with a ``step``.
        path: The PNG to write.
        title: The figure's title (the stage's name and kind).
    """
    benchmarks = sorted({key for entry in history for key in entry if key.startswith(BENCHMARK_PREFIX)})
    panels = [(name, keys) for name, keys in PANELS if any(series(history, key)[0] for key in keys)]
    if benchmarks:
        panels.append(("benchmark accuracy (in training)", tuple(benchmarks)))
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
    for axis, (name, keys) in zip(axes.flat, panels, strict=False):
        for key in keys:
            steps, values = series(history, key)
            if steps:
                axis.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3,
                          label=key.removeprefix(BENCHMARK_PREFIX))
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("step", fontsize=8)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
        if len(keys) > 1:
            axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
