"""Trainers: configs and trainers for every training stage."""

from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig, SFTStage
from medreason.trainers.curriculum_sft_trainer import CurriculumSFTTrainer, StageResult

__all__ = ["CurriculumSFTConfig", "CurriculumSFTTrainer", "SFTStage", "StageResult"]
