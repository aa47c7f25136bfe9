"""The ``curate`` stage kind of a recipe: curate and decontaminate data for the stages after it.

The stage writes ``curated.jsonl`` (and the pipeline's card, report, rejects and per-step outputs)
into its directory; later stages read it through their ``data.path``, e.g.
``${output_dir}/curate/curated.jsonl``. It trains nothing and hands its input model on unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from medreason.curate.commands import curate
from medreason.stage_context import StageContext, run_on_main_process
from medreason.testing.tiny_data import tiny_records, write_tiny_benchmark
from medreason.utils.jsonl import write_jsonl


@dataclass
class CurateStageConfig:
    """The ``curate`` block of a ``curate`` stage: the keys of ``conf/curate.yaml`` (see docs/curation.md).

    ``builtin: tiny`` curates the built-in synthetic corpus against the built-in benchmark (the
    ``tiny`` recipe), writing both into the stage directory, instead of ``input``/``benchmarks``.
    """

    input: Any = None
    benchmarks: Any = None
    builtin: str | None = None
    benchmark_data_dir: str | None = None
    steps: list[str] = field(default_factory=lambda: ["filter", "dedupe", "decontaminate"])
    filters: list[dict[str, Any]] | None = None
    domain: dict[str, Any] = field(default_factory=dict)
    mix: list[dict[str, Any]] = field(default_factory=list)
    dedupe: dict[str, Any] = field(default_factory=dict)
    decontaminate: dict[str, Any] = field(default_factory=dict)
    on_error: str = "raise"
    resume: bool = True
    progress: bool = True
    seed: int = 0
    output_format: str = "fields"
    title: str = "Curated reasoning dataset"


def run_curate_stage(context: StageContext) -> Path:
    """Curate into ``context.output_dir`` on the main process; return the model the stage was given."""
    config = CurateStageConfig(**OmegaConf.to_container(context.cfg.curate, resolve=True))

    def work() -> dict[str, Any]:
        if config.builtin == "tiny":
            fields = ("id", "question", "cot", "response", "department", "subdepartment")
            config.input = str(context.output_dir / "raw.jsonl")
            write_jsonl(config.input, [{k: r[k] for k in fields} for r in tiny_records()])
            config.benchmarks = str(write_tiny_benchmark(context.output_dir))
        settings = {k: v for k, v in asdict(config).items() if k != "builtin" and v is not None}
        summaries = curate({**settings, "output": str(context.output_dir)})
        return {
            "curated": str(context.output_dir / "curated.jsonl"),
            "steps": {s.name: {"input": s.input, "kept": s.kept, "dropped": s.dropped} for s in summaries},
        }

    return run_on_main_process(context, work)
