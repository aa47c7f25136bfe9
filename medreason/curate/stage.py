"""The ``curate`` stage kind of a recipe: curate and decontaminate data for the stages after it.

The stage writes ``curated.jsonl`` (and the pipeline's card, report, rejects and per-step outputs)
into its directory; later stages read it through their ``data.path``, e.g.
``${output_dir}/curate/curated.jsonl``. It trains nothing and hands its input model on unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from medreason.curate.commands import curate
from medreason.curate.config import CurateConfig
from medreason.stage_context import StageContext, StageSpec, run_on_main_process
from medreason.testing.tiny_data import tiny_records, write_tiny_benchmark
from medreason.utils.config_errors import FieldError
from medreason.utils.jsonl import write_jsonl


def curate_stage_config(spec: StageSpec) -> CurateConfig:
    """The stage's :class:`CurateConfig`, writing into the stage directory.

    Raises:
        FieldError: the block sets ``output`` (a stage always writes into its own directory) or ``command``.
    """
    for key in ("output", "command"):
        if key in spec.settings:
            raise FieldError(key, spec.settings[key], "a curate stage runs the pipeline into its own directory; remove it.")
    return CurateConfig(**spec.settings, output=str(spec.output_dir))


def run_curate_stage(context: StageContext) -> Path:
    """Curate into ``context.output_dir`` on the main process; return the model the stage was given."""
    config: CurateConfig = context.config

    def work() -> dict[str, Any]:
        run = config
        if config.builtin == "tiny":
            fields = ("id", "question", "cot", "response", "department", "subdepartment")
            source = context.output_dir / "raw.jsonl"
            write_jsonl(source, [{k: r[k] for k in fields} for r in tiny_records()])
            extra = [] if config.input is None else [config.input] if isinstance(config.input, str) else list(config.input)
            run = replace(config, input=[str(source), *extra], benchmarks=str(write_tiny_benchmark(context.output_dir)))
        summaries = curate(run)  # warns when no record is left
        return {
            "curated": str(context.output_dir / "curated.jsonl"),
            "steps": {s.name: {"input": s.input, "kept": s.kept, "dropped": s.dropped} for s in summaries},
        }

    return run_on_main_process(context, work)
