"""Trainers: configs and trainers for every training stage."""

from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig, SFTStage
from medreason.trainers.curriculum_sft_trainer import CurriculumSFTTrainer, StageResult
from medreason.trainers.dpo_config import DPOConfig
from medreason.trainers.dpo_trainer import DPOTrainer

__all__ = ["CurriculumSFTConfig", "CurriculumSFTTrainer", "DPOConfig", "DPOTrainer", "SFTStage", "StageResult"]
