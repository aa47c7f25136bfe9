"""What the recipe runner hands to each stage, and what every stage hands back.

A recipe is an ordered list of stages (``sft → dapo``, ``sft_all → … → dpo``). The runner in
:mod:`medreason.train` resolves where each stage starts from and where it writes, then calls the
stage kind's ``run_<kind>_stage(context)``. Every stage writes its result model (and tokenizer) to
``context.final_dir`` and a ``stage_complete.json`` marker last, so a rerun with ``resume=true`` skips
finished stages and the next stage starts from ``final_dir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

COMPLETE_MARKER = "stage_complete.json"


@dataclass
class StageContext:
    """Everything a stage needs to run.

    Args:
        name: The stage's name in the recipe (``sft_internal_medicine``).
        kind: Which trainer runs it (``sft``, ``dpo``, ``dapo``, ``ttt``, ``eval``).
        cfg: The stage's own config block, with the run-wide ``trainer`` defaults merged under it.
        model_path: Hub id or local directory the stage starts from (the previous stage's ``final_dir``).
        reference_path: The model a stage compares against (DPO's reference); ``None`` for most stages.
        output_dir: The stage's directory: checkpoints, metrics and ``final/`` go here.
        resume: Continue from the last checkpoint in ``output_dir`` when there is one.
        seed: Run-wide seed.
        run_cfg: The whole resolved run config (model loading options, report_to, …).
    """

    name: str
    kind: str
    cfg: DictConfig
    model_path: str
    reference_path: str | None
    output_dir: Path
    resume: bool
    seed: int
    run_cfg: DictConfig

    @property
    def final_dir(self) -> Path:
        """Where the stage saves the model the next stage starts from."""
        return self.output_dir / "final"


def write_completion_marker(
    output_dir: Path, name: str, kind: str, metrics: dict[str, Any], final_dir: Path | None = None
) -> None:
    """Write ``output_dir/stage_complete.json`` (last, so its presence means the stage finished).

    ``final_dir`` is the model the next stage starts from: ``output_dir/final`` for stages that
    train, the evaluated model for stages that only measure.
    """
    final_dir = final_dir or output_dir / "final"
    marker = {"stage": name, "kind": kind, "final_dir": str(final_dir), "metrics": metrics}
    (output_dir / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2, default=str))


def mark_stage_complete(context: StageContext, metrics: dict[str, Any], final_dir: Path | None = None) -> None:
    """Write the completion marker of ``context``'s stage (``final_dir`` defaults to ``context.final_dir``)."""
    write_completion_marker(context.output_dir, context.name, context.kind, metrics, final_dir)


def read_completion_marker(output_dir: Path) -> dict[str, Any] | None:
    """The marker a finished stage wrote to ``output_dir``, or ``None`` if it has not finished."""
    path = output_dir / COMPLETE_MARKER
    return json.loads(path.read_text()) if path.is_file() else None
