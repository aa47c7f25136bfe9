"""medreason: train medical reasoning LLMs end to end.

Synthesis → curation/decontamination → curriculum SFT → DPO → DAPO → test-time training → evaluation,
each a trainer or pipeline usable from Python and from a Hydra recipe
(``python -m medreason.train +recipe=tiny``).

Trainers (and the test-time trainer) are imported on first use, so ``import medreason`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "CurriculumSFTConfig": "medreason.trainers",
    "CurriculumSFTTrainer": "medreason.trainers",
    "DAPOConfig": "medreason.trainers",
    "DAPOTrainer": "medreason.trainers",
    "DPOConfig": "medreason.trainers",
    "DPOTrainer": "medreason.trainers",
    "SFTStage": "medreason.trainers",
    "TTTConfig": "medreason.ttt",
    "TestTimeTrainer": "medreason.ttt",
}

__all__ = [
    "CurriculumSFTConfig",
    "CurriculumSFTTrainer",
    "DAPOConfig",
    "DAPOTrainer",
    "DPOConfig",
    "DPOTrainer",
    "SFTStage",
    "TTTConfig",
    "TestTimeTrainer",
    "__version__",
]

if TYPE_CHECKING:
    from medreason.trainers import (
        CurriculumSFTConfig,
        CurriculumSFTTrainer,
        DAPOConfig,
        DAPOTrainer,
        DPOConfig,
        DPOTrainer,
        SFTStage,
    )
    from medreason.ttt import TestTimeTrainer, TTTConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medreason' has no attribute {name!r}")
