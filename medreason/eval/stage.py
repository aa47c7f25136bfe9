"""The ``eval`` stage kind of a recipe: evaluate the model the previous stage produced.

The stage writes ``results.json`` (per benchmark, with every prediction under ``predictions/``),
``results.md`` (the model-card table beside the published numbers; with ``ttt`` set, rows without
and with test-time training) and ``results.png``, and hands the evaluated model on unchanged.

Under a launch of several processes, a plain evaluation with the transformers engine is data-parallel
(:mod:`medreason.eval.data_parallel`): every rank loads the whole model and generates its shard, the
main process grades and writes the one table. The main process alone evaluates, the others waiting, with
vLLM or an HTTP server (they parallelise generation themselves), rubric suites (the judge is a server)
and test-time training (kept on one process for now: its per-question adaptation could run per rank,
but its comparison runs two evaluations and a TTT pass that are not sharded yet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medreason.eval.config import EvalConfig
from medreason.eval.data_parallel import process_shard, wait_for_all_ranks
from medreason.eval.report import evaluate_and_report
from medreason.stage_context import StageContext, StageSpec, mark_stage_complete, run_on_main_process
from medreason.utils.launch import rank_local_model_loading


def eval_stage_config(spec: StageSpec) -> EvalConfig:
    """The stage's :class:`EvalConfig`, from its ``evaluate`` block."""
    return EvalConfig(**spec.settings)


def runs_data_parallel(config: EvalConfig) -> bool:
    """Whether the stage shards generation over the launch's processes (transformers, no TTT, no judge)."""
    return config.engine.backend == "transformers" and not config.ttt and not config.rubric_suite


def run_eval_stage(context: StageContext) -> Path:
    """Evaluate ``context.model_path`` (data-parallel where it can, see the module); return it as the
    model the next stage starts from."""
    config: EvalConfig = context.config
    shard = process_shard()
    data_parallel = shard is not None and runs_data_parallel(config)

    def work() -> dict[str, Any]:
        extra = {"data_parallel": True} if data_parallel else {}
        results, _, metrics = evaluate_and_report(
            context.model_path, config.suite, config.ttt, context.output_dir,
            **config.evaluate_kwargs(context.output_dir), **extra,
        )
        return {**metrics, "accuracies": results.accuracies, "average": results.average, "results": results.output_dir}

    if not data_parallel:
        return run_on_main_process(context, work)
    context.output_dir.mkdir(parents=True, exist_ok=True)
    with rank_local_model_loading():  # each rank loads the whole model, even under ZeRO-3
        metrics = work()
    if shard.rank == 0:
        mark_stage_complete(context, metrics, final_dir=Path(context.model_path))
    wait_for_all_ranks()
    return Path(context.model_path)
