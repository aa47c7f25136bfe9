"""Validate a composed run config and plan its stages, before anything trains.

Every check here runs at config time (and under ``dry_run=true``), so a typo in the last stage of a
five-stage recipe fails in seconds rather than after days of training.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

from medreason.curate.stage import CurateConfig, curate_stage_config, run_curate_stage
from medreason.engines import check_backend_installed
from medreason.eval.stage import EvalConfig, eval_stage_config, run_eval_stage
from medreason.hub import hub_targets
from medreason.stage_context import StageContext, StageSpec
from medreason.synth.stage import SynthStageConfig, run_synth_stage, synth_stage_config
from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_stage import dapo_stage_config, run_dapo_stage
from medreason.trainers.dpo_config import DPOConfig
from medreason.trainers.dpo_stage import dpo_stage_config, run_dpo_stage
from medreason.trainers.sft_stage import run_sft_stage, sft_stage_config
from medreason.utils.config_errors import ConfigError, FieldError, check_model_reference
from medreason.utils.launch import launch_kind, launch_problem, trainer_settings_for_launch
from medreason.utils.run_files import check_safe_name


@dataclass(frozen=True)
class StageKind:
    """A kind of stage: its config class, how a recipe stage becomes one, and the function that runs it.

    Args:
        config_class: The kind's one config object; its init fields are the valid keys of ``block``.
        build_config: Builds (and so checks) the config object from a :class:`StageSpec`.
        run: Takes a :class:`StageContext` carrying that object and returns the model the next stage starts from.
        block: The stage key holding its settings: ``trainer`` for training stages, ``evaluate`` for eval.

    Adding a stage kind: write ``<kind>_stage_config(spec)`` and ``run_<kind>_stage(context)`` in the
    package the kind belongs to, and add one entry to :data:`STAGE_KINDS` (docs/recipes.md).
    """

    config_class: type
    build_config: Callable[[StageSpec], Any]
    run: Callable[[StageContext], Path]
    block: str = "trainer"

    def fields(self) -> set[str]:
        """The keys a stage's settings block may hold."""
        return {f.name for f in dataclasses.fields(self.config_class) if f.init}


STAGE_KINDS: dict[str, StageKind] = {
    "sft": StageKind(CurriculumSFTConfig, sft_stage_config, run_sft_stage),
    "dpo": StageKind(DPOConfig, dpo_stage_config, run_dpo_stage),
    "dapo": StageKind(DAPOConfig, dapo_stage_config, run_dapo_stage),
    "eval": StageKind(EvalConfig, eval_stage_config, run_eval_stage, "evaluate"),
    "curate": StageKind(CurateConfig, curate_stage_config, run_curate_stage, "curate"),
    "synth": StageKind(SynthStageConfig, synth_stage_config, run_synth_stage, "synth"),
}
"""The stage kinds this version can run."""


INTERPOLATED_ROOT = re.compile(r"\$\{(\w+)")
"""The top-level key an interpolation such as ``${finemed_path}`` or ``${output_dir}/curate`` reads."""

DATA_FIELDS = (
    "path", "builtin", "split", "format", "target", "system_prompt", "filter", "max_samples", "eval_fraction",
    "column_map",
)
SETTINGS_BLOCKS = tuple(sorted({kind.block for kind in STAGE_KINDS.values()}))
"""Stage keys that hold a kind's settings (each kind uses one of them)."""
STAGE_FIELDS = ("kind", "data", "init_from", "reference_from", "hub", *SETTINGS_BLOCKS)


RUN_KEYS = (
    "run_name", "output_dir", "seed", "stage", "resume", "overwrite", "dry_run", "log_level", "trainer", "stages",
    "launch", "model", "hub",
)
"""The top-level settings of ``conf/train.yaml``; a recipe may add values its stages interpolate."""


class RecipeError(ConfigError):
    """A run config that cannot run; the message names the field and the fix."""


def stage_names(cfg: DictConfig) -> list[str]:
    """The stages in recipe order."""
    return [name for name in cfg.stages if not str(name).startswith("_")]


def selected_stages(cfg: DictConfig) -> list[str]:
    """The stages this run will train: all of them, or only ``cfg.stage``."""
    names = stage_names(cfg)
    if cfg.stage is None:
        return names
    if cfg.stage not in names:
        raise RecipeError(f"stage={cfg.stage!r} is not a stage of this recipe; its stages are {names}.")
    return [cfg.stage]


def validate_run_config(cfg: DictConfig, check_hardware: bool = False) -> dict[str, Any]:
    """Check the whole run config and build the config object of every selected stage.

    Every type, range and cross-field check of every selected stage runs here, before any model,
    data or server is touched.

    Args:
        cfg: The composed run config.
        check_hardware: Also check that this machine can run the settings (``bf16`` needs a GPU). Off
            for dry runs, so a GPU recipe validates on a CPU login node.

    Returns:
        Stage name -> its kind's config object (:attr:`StageKind.config_class`).

    Raises:
        RecipeError: naming the full key path of the first problem, the bad value and the fix.
    """
    names = stage_names(cfg)
    if not names:
        raise RecipeError("The config has no stages. Pick a recipe: python -m medreason.train +recipe=tiny")
    selected = selected_stages(cfg)
    for name in names:
        stage = cfg.stages[name]
        try:
            check_safe_name(name, "stage name")
        except FieldError as error:
            raise RecipeError(f"stages: {error}") from error
        kind = stage.get("kind")
        if kind is None:
            known = [n for n in names if cfg.stages[n].get("kind") is not None]
            raise RecipeError(f"stages.{name} is not a stage of this recipe (it has no kind).{_did_you_mean(name, known)}")
        unknown = set(stage) - set(STAGE_FIELDS)
        if unknown:
            raise RecipeError(f"stages.{name} has unknown keys {sorted(unknown)}; valid keys are {STAGE_FIELDS}.")
        if kind not in STAGE_KINDS:
            raise RecipeError(f"stages.{name}.kind={kind!r} is unknown; choose one of {sorted(STAGE_KINDS)}.")
    _validate_root_keys(cfg)
    _validate_run_wide_trainer(cfg)
    hub_targets(cfg, {name: cfg.stages[name].kind for name in names})  # a push without a token fails here
    unset = unset_values(cfg)
    if unset and check_hardware:
        raise UnsetValuesError(unset)
    configs = {}
    for name in selected:
        try:
            configs[name] = build_stage_config(cfg, name, check_hardware)
        except (MissingMandatoryValue, InterpolationToMissingValueError):
            if not unset:
                raise
            # a setting that interpolates a value still to set: that value is listed in `unset`
    if unset:
        raise UnsetValuesError(unset)
    if check_hardware:
        _check_run_can_start(cfg, configs)
    return configs


def unset_values(cfg: DictConfig) -> list[str]:
    """The key paths the user must still set for the selected stages: ``???`` values and data paths.

    >>> unset_values(OmegaConf.create({"model": {"name_or_path": None, "tiny_family": None}, "stage": None,
    ...     "stages": {"sft": {"kind": "sft", "data": {"path": "???", "builtin": None}}}}))
    ['model.name_or_path', 'stages.sft.data.path']
    """
    selected = set(selected_stages(cfg))
    reads = {name: set(INTERPOLATED_ROOT.findall(OmegaConf.to_yaml(cfg.stages[name]))) for name in stage_names(cfg)}
    unset = []
    for key in _missing_keys(cfg, ""):
        parts = key.split(".")
        if parts[0] == "stages":
            needed = parts[1] in selected
        else:  # a top-level value: needed unless only stages that do not run read it
            readers = {name for name, keys in reads.items() if parts[0] in keys}
            needed = not readers or bool(readers & selected)
        if needed:
            unset.append(key)
    for name in selected_stages(cfg):
        data = cfg.stages[name].get("data")
        key = f"stages.{name}.data.path"
        if data and data.get("builtin") is None and _is_unset(data, "path") and key not in unset:
            if not _interpolates_missing(data, "path"):
                unset.append(key)
    if cfg.model.name_or_path is None and cfg.model.tiny_family is None:
        unset.insert(0, "model.name_or_path")
    return unset


class UnsetValuesError(RecipeError):
    """Values the user must still set before the run can start, all of them at once.

    Args:
        keys: Their key paths, e.g. ``stages.sft.data.path``.
    """

    def __init__(self, keys: list[str]):
        self.keys = keys
        listed = "; ".join(f"{key}=..." for key in keys)
        super().__init__(
            f"{len(keys)} value{'s' if len(keys) > 1 else ''} to set before the run can start: {listed} "
            "(data paths take JSONL, Parquet or a datasets id; model.name_or_path a hub id or local directory)."
        )


def build_stage_config(cfg: DictConfig, name: str, check_hardware: bool = True) -> Any:
    """Check stage ``name``'s keys and data block, then build its kind's config object.

    Raises:
        RecipeError: naming the full key path, the bad value and the fix.
    """
    stage = cfg.stages[name]
    kind = STAGE_KINDS[stage.kind]
    _validate_data(name, stage.get("data") or {})
    for block in set(SETTINGS_BLOCKS) - {kind.block}:
        if stage.get(block):
            raise RecipeError(f"stages.{name}.{block} does not apply to {stage.kind} stages; use stages.{name}.{kind.block}.")
    own = OmegaConf.to_container(stage.get(kind.block) or {}, resolve=True)
    valid = kind.fields()
    for key in own:
        if key not in valid:
            raise RecipeError(
                f"stages.{name}.{kind.block}.{key} is not a field of {stage.kind} stages.{_did_you_mean(key, valid)}"
            )
    run_wide = _run_wide_overrides(cfg, valid) if kind.block == "trainer" else {}
    settings = {**own, **run_wide}
    if kind.block == "trainer" and not check_hardware and not torch.cuda.is_available():
        settings["use_cpu"] = True  # bf16 and friends are checked against the GPU when the run starts
    if check_hardware:
        problem = launch_problem(stage.kind, settings)
        if problem:
            raise RecipeError(f"stages.{name} ({stage.kind}) cannot run under this {launch_kind()} launch: {problem}")
        if kind.block == "trainer":
            settings = trainer_settings_for_launch(settings)
    spec = StageSpec(name, settings, stage.get("data"), Path(cfg.output_dir) / name, cfg)
    try:
        return kind.build_config(spec)
    except FieldError as error:
        field = error.field.split(".")[0]
        prefix = "trainer" if field in run_wide else f"stages.{name}.{kind.block}"
        raise RecipeError(str(error.at(prefix))) from error
    except (TypeError, ValueError) as error:
        raise RecipeError(f"stages.{name}.{kind.block}: {error}") from error


def _validate_data(name: str, data: DictConfig | dict) -> None:
    unknown = set(data) - set(DATA_FIELDS)
    if unknown:
        raise RecipeError(f"stages.{name}.data has unknown keys {sorted(unknown)}; valid keys are {DATA_FIELDS}.")
    if data.get("builtin") not in (None, "tiny"):
        raise RecipeError(f"stages.{name}.data.builtin={data.builtin!r} is unknown; the built-in dataset is 'tiny'.")


def _check_run_can_start(cfg: DictConfig, configs: dict[str, Any]) -> None:
    """What only the machine that runs can check: the models given as local paths exist, and the
    generation backends the stages name are installed (a dry run may validate elsewhere)."""
    references = {"model.name_or_path": cfg.model.name_or_path}
    backends = {}
    for name, config in configs.items():
        for key in ("init_from", "reference_from"):
            references[f"stages.{name}.{key}"] = cfg.stages[name].get(key)
        if isinstance(config, EvalConfig):
            backends[f"stages.{name}.evaluate.engine.backend"] = config.engine.backend
        if isinstance(config, DAPOConfig):
            backends[f"stages.{name}.trainer.rollout_backend"] = config.rollout_backend
    try:
        for key, value in references.items():
            if value:
                check_model_reference(str(value), key)
        for key, backend in backends.items():
            check_backend_installed(backend, key)
    except FieldError as error:
        raise RecipeError(str(error)) from error


def _validate_root_keys(cfg: DictConfig) -> None:
    """A top-level key must be a run setting, a value the config interpolates (``finemed_path``), or a
    recipe's private ``_name`` (a YAML anchor holder)."""
    referenced = set(INTERPOLATED_ROOT.findall(OmegaConf.to_yaml(cfg)))
    for key in cfg:
        if key not in RUN_KEYS and key not in referenced and not str(key).startswith("_"):
            raise RecipeError(
                f"{key} is not a setting of medreason.train, and nothing in the recipe uses it.{_did_you_mean(key, RUN_KEYS)}"
            )


def _validate_run_wide_trainer(cfg: DictConfig) -> None:
    """Every run-wide ``trainer.KEY`` must be a field of at least one training stage kind."""
    fields = set().union(*(kind.fields() for kind in STAGE_KINDS.values() if kind.block == "trainer"))
    for key, value in OmegaConf.to_container(cfg.trainer, resolve=True).items():
        if value is not None and key not in fields:
            raise RecipeError(
                f"trainer.{key}={value!r} is not a field of any trainer (sft, dpo, dapo).{_did_you_mean(key, fields)}"
            )


def _did_you_mean(key: str, valid: set[str] | list[str]) -> str:
    close = difflib.get_close_matches(key, sorted(valid), n=3)
    return f" Did you mean {close}?" if close else ""


def _missing_keys(node: Any, prefix: str) -> list[str]:
    """Key paths of ``???`` values under ``node`` (interpolations are reported where they point)."""
    found = []
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        path = f"{prefix}{key}"
        if OmegaConf.is_interpolation(node, key):
            continue
        if OmegaConf.is_missing(node, key):
            found.append(path)
        elif isinstance(node._get_node(key), DictConfig | ListConfig):
            found.extend(_missing_keys(node._get_node(key), f"{path}."))
    return found


def _interpolates_missing(node: DictConfig, key: str) -> bool:
    """Whether ``node[key]`` interpolates to a ``???`` value (listed under that value's own key)."""
    try:
        node.get(key)
    except InterpolationToMissingValueError:
        return True
    except MissingMandatoryValue:
        return False
    return False


def _is_unset(node: DictConfig, key: str) -> bool:
    """Whether ``node[key]`` is missing, null, ``???`` or interpolates to a ``???`` value."""
    try:
        return node.get(key) in (None, "")
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        return True


def _run_wide_overrides(cfg: DictConfig, valid: set[str]) -> dict[str, Any]:
    """The run-wide non-null ``trainer`` overrides whose key is in ``valid``."""
    return {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if v is not None and k in valid}

