"""The ``sft`` stage kind of a recipe: one curriculum stage run by :class:`CurriculumSFTTrainer`."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from medreason.data.chat_templates import ensure_chat_template
from medreason.stage_context import StageContext, StageSpec
from medreason.testing.tiny_data import tiny_records
from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig, SFTStage
from medreason.trainers.curriculum_sft_trainer import CurriculumSFTTrainer
from medreason.trainers.stage_io import model_init_kwargs, stage_records


def sft_stage_config(spec: StageSpec) -> CurriculumSFTConfig:
    """The stage's :class:`CurriculumSFTConfig`: one curriculum stage named after the recipe stage."""
    data = spec.data
    return CurriculumSFTConfig(
        output_dir=str(spec.output_dir.parent),
        run_name=spec.run_cfg.run_name,
        seed=spec.run_cfg.seed,
        model_init_kwargs=model_init_kwargs(spec.run_cfg.model),
        data_format=data.format,
        data_target=data.target,
        system_prompt=data.system_prompt,
        stages=[
            SFTStage(
                name=spec.name,
                filter=OmegaConf.to_container(data.filter, resolve=True) if data.filter else None,
                max_samples=data.max_samples,
                eval_fraction=data.eval_fraction,
            )
        ],
        **spec.settings,
    )


def run_sft_stage(context: StageContext) -> Path:
    """Train one SFT stage from ``context.model_path`` and return its final model directory.

    The records are read, and checked by the trainer, before the tokenizer and the model load.
    """
    records = stage_records(context.cfg.data, builtin={"tiny": tiny_records})
    trainer = CurriculumSFTTrainer(context.model_path, context.config, records)
    ensure_chat_template(trainer.processing_class, context.run_cfg.model.chat_template)  # the model block's, if set
    (result,) = trainer.train(resume_from_checkpoint=context.resume)
    return result.final_dir
