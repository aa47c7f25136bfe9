"""The ``synth`` stage kind of a recipe: run a synthesis pipeline with the current model as a local backend.

The pipeline's outputs (``report.json``, the generated records, failure rows, the call cache) go
into the stage directory, where later stages can read them by path. The stage trains nothing and
hands its input model on unchanged. Bigger jobs against served models run as
``python -m medreason.synth`` (docs/synthesis.md); this stage is for recipes and the ``tiny`` demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from medreason.stage_context import StageContext, run_on_main_process
from medreason.synth.run import PIPELINES, compose_config, run_pipeline
from medreason.testing.tiny_data import tiny_records
from medreason.utils.jsonl import write_jsonl


@dataclass
class SynthStageConfig:
    """The ``synth`` block of a ``synth`` stage.

    Args:
        pipeline: ``finemed``, ``reasonmed`` or ``ii_medical_traces``.
        input: The pipeline's input file(s); unset with ``builtin``.
        builtin: ``"tiny"``: the built-in multiple-choice questions as input (ii_medical_traces).
        backend: Engine of every role; ``transformers`` generates with the stage's model in process.
        overrides: Further ``python -m medreason.synth`` overrides, e.g. ``["settings.samples=2"]``.
    """

    pipeline: str = "ii_medical_traces"
    input: str | list[str] | None = None
    builtin: str | None = None
    backend: str = "transformers"
    overrides: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline={self.pipeline!r} is not one of {list(PIPELINES)}.")
        if (self.input is None) == (self.builtin is None):
            raise ValueError("set exactly one of input (the pipeline's input files) or builtin: tiny.")


def run_synth_stage(context: StageContext) -> Path:
    """Run the pipeline into ``context.output_dir`` with ``context.model_path`` as every role's model."""
    config = SynthStageConfig(**OmegaConf.to_container(context.cfg.synth, resolve=True))

    def work() -> dict[str, Any]:
        source = config.input
        if config.builtin == "tiny":
            source = str(context.output_dir / "questions.jsonl")
            fields = ("id", "question", "options", "answer")
            write_jsonl(source, [{k: r[k] for k in fields} for r in tiny_records(16, seed=2)])
        inputs = source if isinstance(source, str) else "[" + ",".join(source) + "]"
        cfg = compose_config([
            f"+pipeline={config.pipeline}", f"input={inputs}", f"output={context.output_dir}",
            f"model={context.model_path}", f"backend={config.backend}", *config.overrides,
        ])
        report = run_pipeline(cfg)
        return {"counts": report["counts"], "files": report["files"]}

    return run_on_main_process(context, work)
