"""What the recipe runner hands to each stage, and what every stage hands back.

A recipe is an ordered list of stages (``sft → dapo``, ``sft_all → … → dpo``). The runner in
:mod:`medreason.train` resolves where each stage starts from and where it writes, then calls the
stage kind's ``run_<kind>_stage(context)``. Training stages write their model (and tokenizer) to
``context.final_dir``; data and evaluation stages write their outputs and hand on the model they were
given. Each stage kind builds its one config object from a :class:`StageSpec` when the recipe is
validated, before anything runs; the context carries that object to the stage. Every stage writes a ``stage_complete.json`` marker last, naming the model the next stage
starts from, so a rerun with ``resume=true`` skips finished stages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from medreason.utils.config_errors import ConfigError
from medreason.utils.launch import rank_local_model_loading

COMPLETE_MARKER = "stage_complete.json"
FAILED_NOTE = "stage_failed.txt"
TRAINING_KINDS = ("sft", "dpo", "dapo")
"""Stage kinds that write a model of their own to ``final/``."""


@dataclass(frozen=True)
class StageSpec:
    """A stage as the recipe declares it: what a stage kind's config builder reads.

    Args:
        name: The stage's name in the recipe.
        settings: The kind's settings block (``trainer``, ``evaluate``, ``curate`` or ``synth``) as a
            plain dict; for training stages the run-wide ``trainer`` overrides are merged in.
        data: The stage's ``data`` block, or ``None``.
        output_dir: The stage's directory.
        run_cfg: The whole run config (``run_name``, ``seed``, the ``model`` block).
    """

    name: str
    settings: dict[str, Any]
    data: DictConfig | None
    output_dir: Path
    run_cfg: DictConfig


@dataclass
class StageContext:
    """Everything a stage needs to run.

    Args:
        name: The stage's name in the recipe (``sft_internal_medicine``).
        kind: What runs it (``sft``, ``dpo``, ``dapo``, ``eval``, ``curate``, ``synth``).
        cfg: The stage's own config block as the recipe wrote it (its ``data`` block is read from here).
        model_path: Hub id or local directory the stage starts from (the model the previous stage handed on).
        reference_path: The model a stage compares against (DPO's reference): the stage's
            ``reference_from`` key, else ``model_path``.
        output_dir: The stage's directory: checkpoints, metrics and ``final/`` go here.
        resume: Continue from the last checkpoint in ``output_dir`` when there is one.
        seed: Run-wide seed.
        run_cfg: The whole resolved run config (model loading options, report_to, …).
        config: The stage kind's config object, built and checked when the recipe was validated
            (``CurriculumSFTConfig``, ``DPOConfig``, ``DAPOConfig``, ``EvalConfig``, ``CurateConfig``, ``SynthStageConfig``).
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
    config: Any

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


class StageStateError(ConfigError):
    """A stage directory already holds a run, and neither resume nor overwrite says what to do with it."""


def finished_stage(output_dir: Path, name: str, resume: bool, overwrite: bool = False) -> dict[str, Any] | None:
    """Decide what to do with stage ``name`` in ``output_dir``: the one rule every curriculum follows, a
    recipe's stage list and a :class:`~medreason.trainers.CurriculumSFTTrainer`'s stages alike.

    Returns:
        The completion marker of a finished stage to skip (``resume``), or ``None`` to train the stage
        (from its last checkpoint when ``resume``; from scratch with ``overwrite``, the caller clears the directory).

    Raises:
        StageStateError: the stage finished, or left checkpoints, and neither ``resume`` nor ``overwrite`` is set.
    """
    marker = read_completion_marker(output_dir)
    if overwrite:
        return None
    if marker is not None:
        if not resume:
            raise StageStateError(
                f"Stage {name!r} already finished in {output_dir}. Pass resume=true (resume_from_checkpoint=True "
                "from Python) to skip it, overwrite=true to train it again, or choose another output_dir."
            )
        return marker
    if any(output_dir.glob("checkpoint-*")) and not resume:
        raise StageStateError(
            f"Stage {name!r} has checkpoints of an unfinished run in {output_dir}. Pass resume=true to continue "
            "it, overwrite=true to start over, or choose another output_dir."
        )
    return None


def run_on_main_process(context: StageContext, work: Callable[[], dict[str, Any]], poll_seconds: float = 2.0) -> Path:
    """Run ``work`` on the main process only, mark the stage complete, and hand on ``context.model_path``.

    For stages that measure or make data (eval, curate, synth): one process drives the engine (vLLM
    shards the model itself). The other ranks do not sit in an NCCL barrier, whose timeout would kill
    an evaluation that runs for hours: they poll for the completion marker (or a failure note) in the
    stage directory, which must be on storage every node sees, like the rest of ``output_dir``.

    Raises:
        RuntimeError: on the other ranks, when the main process failed.
    """
    from accelerate import PartialState

    failed = context.output_dir / FAILED_NOTE  # the runner removes a stale one before the stage starts
    if PartialState().is_main_process:
        context.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            with rank_local_model_loading():  # under ZeRO-3, a model partitioned over ranks that wait would hang
                metrics = work()
        except BaseException as error:
            failed.write_text(f"{type(error).__name__}: {error}")
            raise
        mark_stage_complete(context, metrics, final_dir=Path(context.model_path))
    else:
        while read_completion_marker(context.output_dir) is None:
            if failed.is_file():
                raise RuntimeError(f"stage {context.name!r} failed on the main process: {failed.read_text()}")
            time.sleep(poll_seconds)
    return Path(context.model_path)
