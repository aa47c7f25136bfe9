"""Trainers: configs and trainers for every training stage, and the DAPO loss pieces.

The package imports every trainer: they share TRL's import, most of the ~5 s it takes, so resolving
names lazily would save about a second for the first trainer used.
"""

from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig, SFTStage
from medreason.trainers.curriculum_sft_trainer import CurriculumSFTTrainer, StageResult
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_loss import dapo_policy_loss, group_advantages
from medreason.trainers.dapo_trainer import DAPOTrainer
from medreason.trainers.dpo_config import DPOConfig
from medreason.trainers.dpo_trainer import DPOTrainer

__all__ = [
    "CurriculumSFTConfig",
    "CurriculumSFTTrainer",
    "DAPOConfig",
    "DAPOTrainer",
    "DPOConfig",
    "DPOTrainer",
    "SFTStage",
    "StageResult",
    "dapo_policy_loss",
    "group_advantages",
]
