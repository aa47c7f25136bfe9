"""The ``sft`` stage kind of a recipe: one curriculum stage run by :class:`CurriculumSFTTrainer`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from transformers import AutoTokenizer

from medreason.data.chat_templates import ensure_chat_template
from medreason.data.loading import RecordSet, from_memory, load_records
from medreason.recipe import merged_trainer_args
from medreason.stage_context import StageContext
from medreason.testing.tiny_data import tiny_records
from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig, SFTStage
from medreason.trainers.curriculum_sft_trainer import CurriculumSFTTrainer


def model_init_kwargs(model_cfg: DictConfig) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments from a run's ``model`` block."""
    kwargs: dict[str, Any] = {"dtype": model_cfg.dtype}
    if model_cfg.attn_implementation:
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    kwargs.update(OmegaConf.to_container(model_cfg.config_overrides, resolve=True))
    return kwargs


def stage_records(data_cfg: DictConfig) -> RecordSet:
    """The raw records a stage's ``data`` block points at."""
    if data_cfg.builtin == "tiny":
        return from_memory(tiny_records(), source="builtin:tiny")
    return load_records(data_cfg.path, split=data_cfg.split, column_map=dict(data_cfg.column_map or {}))


def run_sft_stage(context: StageContext) -> Path:
    """Train one SFT stage from ``context.model_path`` and return its final model directory."""
    data = context.cfg.data
    trainer_args = merged_trainer_args(context.run_cfg, context.name)
    args = CurriculumSFTConfig(
        output_dir=str(context.output_dir.parent),
        run_name=context.run_cfg.run_name,
        seed=context.seed,
        model_init_kwargs=model_init_kwargs(context.run_cfg.model),
        data_format=data.format,
        data_target=data.target,
        system_prompt=data.system_prompt,
        stages=[
            SFTStage(
                name=context.name,
                filter=OmegaConf.to_container(data.filter, resolve=True) if data.filter else None,
                max_samples=data.max_samples,
                eval_fraction=data.eval_fraction,
            )
        ],
        **trainer_args,
    )
    tokenizer = AutoTokenizer.from_pretrained(context.model_path)
    ensure_chat_template(tokenizer, context.run_cfg.model.chat_template)
    trainer = CurriculumSFTTrainer(context.model_path, args, stage_records(data), processing_class=tokenizer)
    (result,) = trainer.train(resume_from_checkpoint=context.resume)
    return result.final_dir
