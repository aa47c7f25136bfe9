"""DAPO checkpoints: ``accelerate`` state plus the trainer state, written last, and their rotation.

A checkpoint directory ``output_dir/checkpoint-<step>/`` holds what ``Accelerator.save_state`` writes
(policy, optimizer, scheduler, RNG states of every rank; under FSDP2 sharded or full, as the accelerate
config's ``fsdp_state_dict_type`` says) and ``trainer_state.json``
(step and data position). The trainer state is written after everything else, so a directory without
it was interrupted mid-save and is never resumed from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

TRAINER_STATE_NAME = "trainer_state.json"


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """The complete ``checkpoint-<step>`` directories of ``output_dir``, oldest first."""
    complete = [p for p in Path(output_dir).glob("checkpoint-*") if (p / TRAINER_STATE_NAME).is_file()]
    return sorted(complete, key=lambda path: int(path.name.split("-")[-1]))


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | Path, step: int, trainer_state: dict[str, Any], keep: int | None
) -> Path:
    """Write ``checkpoint-<step>``; then delete all but the newest ``keep`` complete ones (``None``: keep all)."""
    directory = Path(output_dir) / f"checkpoint-{step}"
    accelerator.save_state(str(directory))
    if accelerator.is_main_process:
        (directory / TRAINER_STATE_NAME).write_text(json.dumps(trainer_state, indent=2))
        if keep:
            for old in complete_checkpoints(output_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return directory


def load_checkpoint(accelerator: Accelerator, directory: str | Path) -> dict[str, Any]:
    """Restore the ``accelerate`` state saved in ``directory`` and return its trainer state.

    Raises:
        FileNotFoundError: ``directory`` is not a complete checkpoint.
    """
    state_file = Path(directory) / TRAINER_STATE_NAME
    if not state_file.is_file():
        raise FileNotFoundError(f"{directory} is not a complete DAPO checkpoint (no {TRAINER_STATE_NAME}).")
    accelerator.load_state(str(directory))
    return json.loads(state_file.read_text())
