"""Run a synthesis pipeline from its config: the shared entry of the CLI and of Python callers.

    >>> from medreason.synth.run import compose_config, run_pipeline            # doctest: +SKIP
    >>> cfg = compose_config(["+pipeline=finemed", "input=texts.jsonl", "output=out/",
    ...                       "base_url=http://127.0.0.1:8000/v1", "model=Qwen/Qwen2.5-72B-Instruct"])
    >>> run_pipeline(cfg)["counts"]                                            # doctest: +SKIP

The config root is ``conf/synth/``: ``synth.yaml`` plus one file of its ``pipeline`` group
(``conf/synth/pipeline/``), apart from the curation pipelines in ``conf/pipeline/`` and from the training
``model`` group (so ``model=NAME`` is a plain value). Every role starts from ``role_defaults`` and
overrides what it needs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from medreason.config import config_dir
from medreason.synth.cache import clear_manifest, write_manifest
from medreason.synth.finemed import FineMedSettings, load_texts, run_finemed
from medreason.synth.mcq import load_mcq
from medreason.synth.reasonmed import ReasonMedSettings, run_reasonmed
from medreason.synth.report import write_report
from medreason.synth.runner import EnginePool, Role, SynthRunner, build_role
from medreason.synth.traces import TraceSettings, run_traces
from medreason.utils.config_errors import ConfigError, FieldError
from medreason.utils.logging import get_logger
from medreason.utils.run_files import redact_secrets

logger = get_logger(__name__)

__all__ = ["PIPELINES", "SynthPlan", "compose_config", "plan_pipeline", "run_pipeline", "synth_config_dir"]

PIPELINES = ("finemed", "reasonmed", "ii_medical_traces")


def synth_config_dir() -> Path:
    """The config root of ``python -m medreason.synth`` (``conf/synth``), as an absolute path."""
    return config_dir() / "synth"


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The synthesis config with command-line style ``overrides``, composed without running Hydra's app.

    Works inside another Hydra app too (a recipe's ``synth`` stage under ``medreason.train``): the
    running app's global Hydra state is set aside while composing and put back afterwards.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    running = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(synth_config_dir()), version_base="1.3"):
            return compose(config_name="synth", overrides=list(overrides))
    finally:
        if running is not None:
            GlobalHydra.instance().clear()
            GlobalHydra.instance().initialize(running)


def _merge_role(defaults: Mapping[str, Any], role: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in (role or {}).items():
        if key in ("sampling", "engine") and isinstance(value, Mapping):
            merged[key] = {**(defaults.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


def _required(data: Mapping[str, Any], key: str, example: str) -> Any:
    value = data.get(key)
    if value in (None, "", "???"):
        raise FieldError(key, value, f"is not set: e.g. python -m medreason.synth {example}")
    return value


SETTINGS_CLASSES: dict[str, type] = {
    "finemed": FineMedSettings, "reasonmed": ReasonMedSettings, "ii_medical_traces": TraceSettings,
}
"""Each pipeline's ``settings`` class."""


@dataclass
class SynthPlan:
    """A checked synthesis run: everything :func:`run_pipeline` needs, validated before any engine starts.

    Args:
        pipeline: One of :data:`PIPELINES`.
        source: The pipeline's input file(s).
        output: The output folder.
        data: The resolved config.
        settings: The pipeline's settings object (:data:`SETTINGS_CLASSES`).
        roles: Each role's settings, merged over ``role_defaults``.
    """

    pipeline: str
    source: Any
    output: Path
    data: dict[str, Any]
    settings: Any
    roles: dict[str, dict[str, Any]]


def plan_pipeline(cfg: DictConfig | Mapping[str, Any]) -> SynthPlan:
    """Check a synthesis config without starting anything: pipeline, input, output, settings and every role.

    Raises:
        ConfigError: no or an unknown pipeline, a missing ``input``/``output``/model, or bad settings
            (the message names the key).
    """
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    data.pop("hydra", None)
    pipeline = data.get("synth_pipeline")
    if pipeline not in PIPELINES:
        raise FieldError("synth_pipeline", pipeline, f"choose a pipeline with +pipeline=NAME, one of {list(PIPELINES)}.")
    example = f"+pipeline={pipeline} input=in.jsonl output=out/ model=NAME"
    source, output = _required(data, "input", example), Path(_required(data, "output", example))
    settings = _settings(SETTINGS_CLASSES[pipeline], dict(data.get("settings") or {}))
    roles = {
        name: _merge_role(data.get("role_defaults") or {}, role) for name, role in (data.get("roles") or {}).items()
    }
    unused_pool = EnginePool()  # roles build engines on first use only: this checks their settings
    for name, role in roles.items():
        try:
            build_role(name, role, unused_pool)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return SynthPlan(pipeline, source, output, data, settings, roles)


def run_pipeline(cfg: SynthPlan | DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Run the pipeline ``cfg`` names; return its report (also written to ``output/report.json``).

    Raises:
        ConfigError: see :func:`plan_pipeline`.
    """
    plan = cfg if isinstance(cfg, SynthPlan) else plan_pipeline(cfg)
    data, output = plan.data, plan.output
    inputs = _load_inputs(plan)  # a bad input fails here, before the output folder is touched
    output.mkdir(parents=True, exist_ok=True)
    clear_manifest(output)
    runner = SynthRunner(
        output, data.get("max_attempts", 3), data.get("progress", True), data.get("fsync", False)
    )
    pool = EnginePool(one_local_model=data.get("one_local_model", True))
    started = time.time()
    try:
        roles = {name: build_role(name, role, pool) for name, role in plan.roles.items()}
        summary = _dispatch(plan, inputs, roles, runner)
    finally:
        pool.close()
    report = write_report(runner, plan.pipeline, summary)
    write_manifest(
        output,
        {
            "pipeline": plan.pipeline,
            "completed": True,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.time() - started, 3),
            "counts": report["counts"],
            "failures": len(runner.failures),
            "files": report["files"],
            "roles": {
                name: {"backend": role.backend, "model": role.model_name} for name, role in roles.items()
            },
            "config": redact_secrets(data),
        },
    )
    logger.info("%s finished: %s (outputs in %s)", plan.pipeline, report["counts"], output)
    return report


def _settings(cls: type, settings: Mapping[str, Any]) -> Any:
    """``cls(**settings)`` with an error that lists the valid setting names."""
    valid = sorted(cls.__dataclass_fields__)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise FieldError(f"settings.{unknown[0]}", settings[unknown[0]], f"is not a {cls.__name__} field; valid keys are {valid}.")
    try:
        return cls(**settings)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"settings: {error}") from None


def _load_inputs(plan: SynthPlan) -> list[Any]:
    """The pipeline's inputs, every record checked: texts (finemed) or multiple-choice questions."""
    data, limit = plan.data, plan.data.get("limit")
    if plan.pipeline == "finemed":
        return load_texts(plan.source, data.get("text_field", "text"), limit)
    return load_mcq(plan.source, data.get("columns"), limit, data.get("split", "train"))


def _dispatch(plan: SynthPlan, inputs: list[Any], roles: dict[str, Role], runner: SynthRunner) -> dict[str, Any]:
    """Run the pipeline on its loaded inputs; engines start on first use."""
    if plan.pipeline == "finemed":
        return run_finemed(inputs, roles, runner, plan.settings)
    if plan.pipeline == "reasonmed":
        return run_reasonmed(inputs, roles, runner, plan.settings)
    return run_traces(inputs, roles, runner, plan.settings)
