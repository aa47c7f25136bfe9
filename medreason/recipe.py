"""Validate a composed run config and plan its stages, before anything trains.

Every check here runs at config time (and under ``dry_run=true``), so a typo in the last stage of a
five-stage recipe fails in seconds rather than after days of training.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

from medreason.stage_context import StageContext


@dataclass(frozen=True)
class StageKind:
    """A kind of stage: the function that runs it and the config class of its settings block.

    Args:
        runner: ``"module:function"`` taking a :class:`StageContext` and returning the final model dir.
        config_class: ``"module:Class"`` whose dataclass fields are the valid keys of ``block``.
        block: The stage key holding its settings: ``trainer`` for training stages, ``evaluate`` for eval.
    """

    runner: str
    config_class: str
    block: str = "trainer"

    def load_runner(self) -> Callable[[StageContext], Path]:
        module, name = self.runner.split(":")
        return getattr(importlib.import_module(module), name)

    def load_config_class(self) -> type:
        module, name = self.config_class.split(":")
        return getattr(importlib.import_module(module), name)

    def fields(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.load_config_class()) if f.init}


STAGE_KINDS: dict[str, StageKind] = {
    "sft": StageKind("medreason.trainers.sft_stage:run_sft_stage", "medreason.trainers:CurriculumSFTConfig"),
    "dpo": StageKind("medreason.trainers.dpo_stage:run_dpo_stage", "medreason.trainers:DPOConfig"),
    "dapo": StageKind("medreason.trainers.dapo_stage:run_dapo_stage", "medreason.trainers:DAPOConfig"),
    "eval": StageKind("medreason.eval.stage:run_eval_stage", "medreason.eval.stage:EvalStageConfig", "evaluate"),
    "curate": StageKind("medreason.curate.stage:run_curate_stage", "medreason.curate.stage:CurateStageConfig", "curate"),
    "synth": StageKind("medreason.synth.stage:run_synth_stage", "medreason.synth.stage:SynthStageConfig", "synth"),
}
"""The stage kinds this version can run."""


DATA_FIELDS = (
    "path", "builtin", "split", "format", "target", "system_prompt", "filter", "max_samples", "eval_fraction",
    "column_map",
)
SETTINGS_BLOCKS = tuple(sorted({kind.block for kind in STAGE_KINDS.values()}))
"""Stage keys that hold a kind's settings (each kind uses one of them)."""
STAGE_FIELDS = ("kind", "data", "init_from", "reference_from", *SETTINGS_BLOCKS)


class RecipeError(ValueError):
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


def validate_run_config(cfg: DictConfig) -> None:
    """Check the whole run config; raise :class:`RecipeError` naming the first problem and its fix."""
    names = stage_names(cfg)
    if not names:
        raise RecipeError("The config has no stages. Pick a recipe: python -m medreason.train +recipe=tiny")
    selected = selected_stages(cfg)
    for name in names:
        stage = cfg.stages[name]
        unknown = set(stage) - set(STAGE_FIELDS)
        if unknown:
            raise RecipeError(f"stages.{name} has unknown keys {sorted(unknown)}; valid keys are {STAGE_FIELDS}.")
        kind = stage.get("kind")
        if kind not in STAGE_KINDS:
            raise RecipeError(f"stages.{name}.kind={kind!r} is unknown; choose one of {sorted(STAGE_KINDS)}.")
    for name in selected:
        _validate_stage(cfg, name, cfg.stages[name])
    if cfg.model.name_or_path is None and cfg.model.tiny_family is None:
        raise RecipeError("model.name_or_path is not set: give a hub id or local directory (or model=tiny).")


def _validate_stage(cfg: DictConfig, name: str, stage: DictConfig) -> None:
    data = stage.get("data") or {}
    unknown = set(data) - set(DATA_FIELDS)
    if unknown:
        raise RecipeError(f"stages.{name}.data has unknown keys {sorted(unknown)}; valid keys are {DATA_FIELDS}.")
    if data and data.get("builtin") is None and _is_unset(data, "path"):
        raise RecipeError(
            f"stages.{name}.data.path is not set. Point it at your training data, e.g. "
            f"stages.{name}.data.path=/data/train.jsonl (JSONL, Parquet, or a datasets id)."
        )
    if data.get("builtin") not in (None, "tiny"):
        raise RecipeError(f"stages.{name}.data.builtin={data.builtin!r} is unknown; the built-in dataset is 'tiny'.")
    kind = STAGE_KINDS[stage.kind]
    for block in set(SETTINGS_BLOCKS) - {kind.block}:
        if stage.get(block):
            raise RecipeError(f"stages.{name}.{block} does not apply to {stage.kind} stages; use stages.{name}.{kind.block}.")
    settings = merged_trainer_args(cfg, name) if kind.block == "trainer" else stage.get(kind.block) or {}
    valid = kind.fields()
    for key in settings:
        if key not in valid:
            close = difflib.get_close_matches(key, sorted(valid), n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise RecipeError(f"stages.{name}.{kind.block}.{key} is not a field of {stage.kind} stages.{hint}")
    if kind.block != "trainer":  # plain settings dataclasses: build them to run their own checks
        try:
            kind.load_config_class()(**OmegaConf.to_container(settings, resolve=True))
        except (TypeError, ValueError) as error:
            raise RecipeError(f"stages.{name}.{kind.block}: {error}") from error


def _is_unset(node: DictConfig, key: str) -> bool:
    """Whether ``node[key]`` is ``???`` or interpolates to a ``???`` value."""
    try:
        node[key]
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        return True
    return False


def merged_trainer_args(cfg: DictConfig, name: str) -> dict[str, Any]:
    """A stage's trainer arguments: its own block, then the run-wide non-null ``trainer`` overrides
    that the stage's kind has (``trainer.max_length`` reaches SFT and DPO stages, not DAPO's)."""
    own = OmegaConf.to_container(cfg.stages[name].get("trainer") or {}, resolve=True)
    valid = STAGE_KINDS[cfg.stages[name].kind].fields()
    overrides = {
        k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if v is not None and k in valid
    }
    return {**own, **overrides}
