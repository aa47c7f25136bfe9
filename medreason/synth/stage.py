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

from omegaconf import DictConfig

from medreason.stage_context import StageContext, StageSpec, run_on_main_process
from medreason.synth.run import PIPELINES, compose_config, plan_pipeline, run_pipeline
from medreason.testing.openai_server import FakeLLMServer
from medreason.testing.tiny_data import tiny_records, tiny_teacher
from medreason.utils.config_errors import ConfigError, FieldError, check_field_types
from medreason.utils.jsonl import write_jsonl
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

MODEL_PLACEHOLDER = "<the model the synth stage starts from>"
"""Every role's model while the recipe is validated: the stage learns its model only when it runs."""


@dataclass
class SynthStageConfig:
    """The ``synth`` block of a ``synth`` stage.

    Args:
        pipeline: ``finemed``, ``reasonmed`` or ``ii_medical_traces``.
        input: The pipeline's input file(s); unset with ``builtin``.
        builtin: ``"tiny"``: the built-in multiple-choice questions as input (ii_medical_traces).
        backend: Engine of every role; ``transformers`` generates with the stage's model in process.
        teacher: ``"tiny"``: every role asks a deterministic teacher on a loopback OpenAI-compatible
            server (:func:`medreason.testing.tiny_teacher`, for the built-in questions) instead of the
            stage's model, so the demo shows traces sampled, graded and kept; needs ``builtin: tiny``
            and ``backend: openai``.
        overrides: Further ``python -m medreason.synth`` overrides, e.g. ``["settings.samples=2"]``.

    :func:`synth_stage_config` composes the pipeline's config from these once, when the recipe is
    validated, and checks it (:func:`~medreason.synth.run.plan_pipeline`); the stage runs that config.
    """

    pipeline: str = "ii_medical_traces"
    input: str | list[str] | None = None
    builtin: str | None = None
    backend: str = "transformers"
    teacher: str | None = None
    overrides: list[str] = field(default_factory=list)
    pipeline_config: DictConfig | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.pipeline not in PIPELINES:
            raise FieldError("pipeline", self.pipeline, f"must be one of {list(PIPELINES)}.")
        if self.builtin not in (None, "tiny"):
            raise FieldError("builtin", self.builtin, "must be null or 'tiny'.")
        if (self.input is None) == (self.builtin is None):
            raise FieldError("input", self.input, "set exactly one of input (the pipeline's input files) or builtin: tiny.")
        if self.teacher not in (None, "tiny"):
            raise FieldError("teacher", self.teacher, "must be null or 'tiny'.")
        if self.teacher and (self.builtin != "tiny" or self.backend != "openai"):
            raise FieldError("teacher", self.teacher, "the tiny teacher answers the built-in questions over HTTP: "
                             "set builtin: tiny and backend: openai.")

    def for_model(self, model: str, output_dir: Path, base_url: str | None = None) -> DictConfig:
        """The pipeline's config with ``model`` (at ``base_url``, for HTTP backends) as every role's model,
        writing into ``output_dir``."""
        if self.pipeline_config is None:
            raise ConfigError("SynthStageConfig.pipeline_config is unset: build the config with synth_stage_config.")
        cfg = self.pipeline_config.copy()
        cfg.model, cfg.output = model, str(output_dir)
        if base_url is not None:
            cfg.base_url = base_url
        if self.builtin == "tiny":
            cfg.input = str(output_dir / "questions.jsonl")
        return cfg


def synth_stage_config(spec: StageSpec) -> SynthStageConfig:
    """The stage's :class:`SynthStageConfig`, with its pipeline config composed and checked."""
    config = SynthStageConfig(**spec.settings)
    inputs = config.input if isinstance(config.input, str | None) else "[" + ",".join(config.input) + "]"
    try:
        config.pipeline_config = compose_config([
            f"+pipeline={config.pipeline}", f"input={inputs}", f"backend={config.backend}", *config.overrides,
        ])
    except Exception as error:  # Hydra's override and composition errors  # noqa: BLE001
        raise FieldError("overrides", config.overrides, f"{type(error).__name__}: {error}") from None
    plan_pipeline(config.for_model(MODEL_PLACEHOLDER, spec.output_dir))
    return config


def run_synth_stage(context: StageContext) -> Path:
    """Run the pipeline into ``context.output_dir`` with ``context.model_path`` as every role's model."""
    config: SynthStageConfig = context.config

    def work() -> dict[str, Any]:
        questions = tiny_records(16, seed=2)
        if config.teacher == "tiny":
            with FakeLLMServer(tiny_teacher(questions)) as server:
                report = _run(config.for_model("tiny-teacher", context.output_dir, server.base_url), questions)
        else:
            report = _run(config.for_model(context.model_path, context.output_dir), questions)
        records = report["counts"].get("records")
        if records == 0:
            logger.warning("Stage %r wrote no records (%s); the stages after it read none of its output.",
                           context.name, report["counts"])
        return {"counts": report["counts"], "files": report["files"]}

    def _run(cfg: DictConfig, questions: list[dict[str, Any]]) -> dict[str, Any]:
        if config.builtin == "tiny":
            fields = ("id", "question", "options", "answer")
            write_jsonl(cfg.input, [{k: r[k] for k in fields} for r in questions])
        return run_pipeline(cfg)

    return run_on_main_process(context, work)
