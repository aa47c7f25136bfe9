"""The ``sft`` stage kind of a recipe: one curriculum stage run by :class:`CurriculumSFTTrainer`."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from medreason.recipe import merged_trainer_args
from medreason.stage_context import StageContext
from medreason.testing.tiny_data import tiny_records
from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig, SFTStage
from medreason.trainers.curriculum_sft_trainer import CurriculumSFTTrainer
from medreason.trainers.stage_io import load_tokenizer, model_init_kwargs, stage_records


def run_sft_stage(context: StageContext) -> Path:
    """Train one SFT stage from ``context.model_path`` and return its final model directory."""
    data = context.cfg.data
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
        **merged_trainer_args(context.run_cfg, context.name),
    )
    tokenizer = load_tokenizer(context.model_path, context.run_cfg.model.chat_template)
    records = stage_records(data, builtin={"tiny": tiny_records})
    trainer = CurriculumSFTTrainer(context.model_path, args, records, processing_class=tokenizer)
    (result,) = trainer.train(resume_from_checkpoint=context.resume)
    return result.final_dir
