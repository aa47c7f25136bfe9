"""The ``eval`` stage kind of a recipe: evaluate the model the previous stage produced.

The stage writes ``results.json`` (per benchmark, with every prediction under ``predictions/``),
``results.md`` (the model-card table beside the published numbers; with ``ttt`` set, rows without
and with test-time training) and ``results.png``, and hands the evaluated model on unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medreason.eval.config import EvalConfig
from medreason.eval.report import evaluate_and_report
from medreason.stage_context import StageContext, StageSpec, run_on_main_process


def eval_stage_config(spec: StageSpec) -> EvalConfig:
    """The stage's :class:`EvalConfig`, from its ``evaluate`` block."""
    return EvalConfig(**spec.settings)


def run_eval_stage(context: StageContext) -> Path:
    """Evaluate ``context.model_path`` on the main process; return it as the model the next stage starts from."""
    config: EvalConfig = context.config

    def work() -> dict[str, Any]:
        results, _, metrics = evaluate_and_report(
            context.model_path, config.suite, config.ttt, context.output_dir,
            **config.evaluate_kwargs(context.output_dir),
        )
        return {**metrics, "accuracies": results.accuracies, "average": results.average, "results": results.output_dir}

    return run_on_main_process(context, work)
