"""Evaluate, with or without test-time training, and write the report: ``results.md`` and ``results.png``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medreason.eval.results import EvalResults
from medreason.eval.runner import evaluate
from medreason.eval.ttt_comparison import evaluate_from_config, side_by_side_table
from medreason.utils.logging import is_main_process

__all__ = ["evaluate_and_report"]


def evaluate_and_report(
    model: str | os.PathLike,
    suite: str | None,
    ttt: Mapping[str, Any] | None,
    report_dir: str | os.PathLike | None = None,
    **evaluate_kwargs: Any,
) -> tuple[EvalResults, str, dict[str, Any]]:
    """:func:`evaluate` (or, with ``ttt`` settings, without and with test-time training), then write
    ``results.md`` (the model-card table; with TTT both rows and their difference) and ``results.png``
    to ``report_dir`` (default: the results' own directory). Returns the results (with TTT: the TTT
    run), the table and extra metrics."""
    metrics: dict[str, Any] = {}
    also: list[EvalResults] = []  # other measured rows of the plot
    if "judge" in evaluate_kwargs:  # a rubric suite (EvalConfig.evaluate_kwargs adds its judge)
        from medreason.eval.rubric_eval import evaluate_rubric_suite

        results = evaluate_rubric_suite(model, str(suite), **evaluate_kwargs)
        table = results.table()
    elif ttt:
        without, results = evaluate_from_config(model, suite, dict(ttt), **evaluate_kwargs)
        table = side_by_side_table(without, results)
        metrics = {"accuracies_without_ttt": without.accuracies, "average_without_ttt": without.average}
        also = [without]
    else:
        results = evaluate(model, suite=suite, **evaluate_kwargs)
        table = results.table()
    if evaluate_kwargs.get("data_parallel") and not is_main_process():
        return results, table, metrics  # every rank evaluated; the main process writes the report
    report_dir = Path(report_dir or results.output_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "results.md").write_text(table + "\n", encoding="utf-8")
    results.plot(report_dir / "results.png", also=also)
    return results, table, metrics
