"""Evaluation results: per-benchmark accuracy with a standard error, model-card tables and bar charts."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medreason.eval.benchmarks import SUITES
from medreason.eval.published import PublishedTable, published_table

__all__ = ["BenchmarkResult", "EvalResults", "mean_and_stderr"]


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(N)).

    For one sample per item this is the binomial ``sqrt(p(1-p)/(N-1))``, which is how ReasonMed's ±
    reads (MedQA: 1273 items at 66.9% gives ±1.3). With ``n`` samples per item, pass per-item mean
    accuracies: items are the independent units.

    >>> mean_and_stderr([1, 0, 1, 1])
    (0.75, 0.25)
    """
    if not values:
        raise ValueError("mean_and_stderr needs at least one value.")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


@dataclass(frozen=True)
class BenchmarkResult:
    """The score of one model on one benchmark.

    Args:
        name: Benchmark name.
        title: Column label for ad-hoc tables.
        accuracy: Mean accuracy over items and samples, in [0, 1].
        stderr: Standard error of ``accuracy`` over items.
        num_items: Items evaluated.
        num_samples: Completions per item.
        no_answer_rate: Share of completions with no extractable answer.
        truncated_rate: Share of completions that hit ``max_tokens``.
        predictions_path: The per-item predictions file, for error analysis.
    """

    name: str
    title: str
    accuracy: float
    stderr: float
    num_items: int
    num_samples: int
    no_answer_rate: float = 0.0
    truncated_rate: float = 0.0
    predictions_path: str | None = None


def _fmt(value: float | None, digits: int, stderr: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" + (f" ± {stderr:.{digits}f}" if stderr is not None else "")


@dataclass
class EvalResults:
    """What :func:`~medreason.eval.evaluate` returns.

    Args:
        model: The evaluated model's name.
        benchmarks: One result per benchmark, in evaluation order.
        suite: The suite evaluated, which selects the published table to compare with.
        sampling: The sampling parameters used.
        output_dir: Where predictions and caches were written.

    >>> r = EvalResults("tiny", [BenchmarkResult("medqa", "MedQA", 0.5, 0.1, 10, 1)])
    >>> print(r.table())
    | Model | MedQA | Avg |
    |---|---|---|
    | **tiny** | 50.00 | 50.00 |
    """

    model: str
    benchmarks: list[BenchmarkResult]
    suite: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    output_dir: str | None = None

    @property
    def accuracies(self) -> dict[str, float]:
        """Benchmark name → accuracy in [0, 1]."""
        return {b.name: b.accuracy for b in self.benchmarks}

    @property
    def average(self) -> float:
        """The macro average over benchmarks (how the cards' average columns are computed)."""
        return sum(b.accuracy for b in self.benchmarks) / len(self.benchmarks)

    def _layout(self) -> tuple[PublishedTable | None, list[str], list[BenchmarkResult | None]]:
        """The published table, column labels and our result per column (None where not evaluated)."""
        published = published_table(self.suite) if self.suite else None
        ours = {b.name: b for b in self.benchmarks}
        if published is None:
            return None, [b.title for b in self.benchmarks], list(self.benchmarks)
        names = list(SUITES[self.suite]) if self.suite in SUITES else [self.suite]  # a rubric suite is one benchmark
        extra = [b for b in self.benchmarks if b.name not in names]
        return (
            published,
            [*published.columns, *(b.title for b in extra)],
            [ours.get(n) for n in names] + extra,
        )

    def table(self, published: bool = True, stderr: bool | None = None) -> str:
        """A markdown table in the suite's model-card layout, with the published rows above ours.

        Args:
            published: Include the model card's published rows.
            stderr: Print "score ± standard error"; default as the card does, or when ``n > 1``.
        """
        card, columns, cells = self._layout()
        digits = card.digits if card else 2
        average_label = card.average if card else "Avg"
        if stderr is None:
            stderr = (card.stderr if card else False) or any(b.num_samples > 1 for b in self.benchmarks)
        lines = [
            "| Model | " + " | ".join([*columns, average_label]) + " |",
            "|" + "---|" * (len(columns) + 2),
        ]
        if published and card is not None:
            for row in card.rows:
                errors = row.stderr if stderr and row.stderr else (None,) * len(row.scores)
                scores = [_fmt(s, digits, e) for s, e in zip(row.scores, errors, strict=True)]
                scores += ["–"] * (len(columns) - len(scores))
                lines.append(f"| {row.model} | " + " | ".join([*scores, _fmt(row.average, digits)]) + " |")
        ours = [
            _fmt(
                None if c is None else 100 * c.accuracy,
                digits,
                100 * c.stderr if c is not None and stderr else None,
            )
            for c in cells
        ]
        lines.append(f"| **{self.model}** | " + " | ".join([*ours, _fmt(100 * self.average, digits)]) + " |")
        return "\n".join(lines)

    def plot_series(
        self, published: bool = True, models: Sequence[str] | None = None, also: Sequence[EvalResults] = ()
    ) -> tuple[list[str], list[tuple[str, list[float]]]]:
        """What :meth:`plot` draws: the benchmark labels (average last) and (name, percent per label) per
        model: ours first, then ``also`` (other measured runs on the same benchmarks, e.g. without
        test-time training), then the published models; ``NaN`` where a model has no score.

        >>> r = EvalResults("mine", [BenchmarkResult("medqa", "MedQA", 0.5, 0.1, 10, 1)])
        >>> r.plot_series()
        (['MedQA', 'Avg'], [('mine', [50.0, 50.0])])
        """
        card, columns, cells = self._layout()
        labels = [*columns, card.average if card else "Avg"]
        series: list[tuple[str, list[float]]] = [
            (self.model, [*(math.nan if c is None else 100 * c.accuracy for c in cells), 100 * self.average])
        ]
        for other in also:
            other_labels, (measured, *_) = other.plot_series(published=False)
            if other_labels[:-1] != labels[:-1]:
                raise ValueError(f"{other.model} was evaluated on {other_labels[:-1]}, not on {labels[:-1]}.")
            series.append(measured)
        if published and card is not None:
            chosen = card.card_models if models is None else models
            unknown = sorted(set(chosen) - {row.model for row in card.rows})
            if unknown:
                raise ValueError(f"models={unknown} are not in the {card.suite} table; choose from "
                                 f"{[row.model for row in card.rows]}.")
            for row in card.rows:
                if row.model in chosen:
                    padded = list(row.scores) + [math.nan] * (len(columns) - len(row.scores))
                    series.append((f"{row.model} (published)", [*padded, row.average]))
        return labels, series

    def plot(
        self,
        path: str | os.PathLike | None = None,
        published: bool = True,
        models: Sequence[str] | None = None,
        also: Sequence[EvalResults] = (),
    ) -> Path:
        """Save a PNG of our accuracy per benchmark beside the card's published model(s), values labelled.

        One horizontal group per benchmark (and the average), our model first and outlined, at ~800 px
        wide so it reads on a laptop screen. The full comparison with every published model is
        :meth:`table` (``results.md``): a dozen models in one chart hide the one that was measured.

        Args:
            path: Output file; default ``<output_dir>/results.png`` (or ``./results.png``).
            published: Include published models.
            models: The published models to show; default the ones whose card the suite reproduces
                (``PublishedTable.card_models``, e.g. II-Medical-8B and II-Medical-7B-Preview).
            also: Other measured runs drawn after ours (the eval stage passes the run without test-time training).

        Returns:
            The path written.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels, series = self.plot_series(published, models, also)
        measured = 1 + len(also)
        bar = 0.8 / len(series)
        figure, axes = plt.subplots(figsize=(8.0, 1.4 + 0.22 * len(labels) * len(series)))
        colours = ["#1f4e79", "#6fa8dc", "#9fc5e8"][:measured] + ["#bdbdbd", "#e6a96b", "#9fc5a8", "#d5a6bd"]
        for index, (name, values) in enumerate(series):
            positions = [y + (index - (len(series) - 1) / 2) * bar for y in range(len(labels))]
            label = name if len(name) <= 48 else "…" + name[-47:]  # checkpoint paths are long
            bars = axes.barh(positions, [0.0 if math.isnan(v) else v for v in values], bar, label=label,
                             color=colours[index % len(colours)], edgecolor="black" if index == 0 else "none")
            for rectangle, value in zip(bars, values, strict=True):
                text = "not run" if math.isnan(value) else f"{value:.1f}"
                axes.text(rectangle.get_width() + 0.8, rectangle.get_y() + rectangle.get_height() / 2, text,
                          va="center", fontsize=7, fontweight="bold" if index < measured else "normal")
        axes.set_yticks(range(len(labels)), labels, fontsize=9)
        axes.invert_yaxis()  # first benchmark on top, the average last
        axes.set_xlim(0, 110)
        axes.set_xlabel("accuracy (%)")
        axes.grid(axis="x", alpha=0.3)
        published_shown = len(series) > measured
        axes.set_title("accuracy per benchmark" + (": measured vs the published card" if published_shown else ""),
                       fontsize=10, pad=12 + 12 * math.ceil(len(series) / 2))
        axes.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
        figure.tight_layout()
        path = Path(path) if path is not None else Path(self.output_dir or ".") / "results.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (what :meth:`save` writes)."""
        return {**asdict(self), "average": self.average}

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` and return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> EvalResults:
        """Read results written by :meth:`save`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data.pop("average", None)
        data["benchmarks"] = [BenchmarkResult(**b) for b in data["benchmarks"]]
        return cls(**data)
