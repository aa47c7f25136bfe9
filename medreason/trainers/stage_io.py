"""What every recipe stage does around its trainer: load the model inputs, resume, save the result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
from omegaconf import DictConfig, OmegaConf
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Trainer
from transformers.trainer_utils import get_last_checkpoint

from medreason.data.chat_templates import ensure_chat_template
from medreason.data.loading import RecordSet, from_memory, load_records, select_records
from medreason.stage_context import StageContext, write_completion_marker
from medreason.trainers.peft_adapters import is_peft_model, save_adapter_and_merged
from medreason.utils.logging import get_logger
from medreason.utils.training_curves import CURVES_FILE, plot_training_curves

logger = get_logger(__name__)


def model_init_kwargs(model_cfg: DictConfig) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments from a run's ``model`` block."""
    kwargs: dict[str, Any] = {"dtype": model_cfg.dtype}
    if model_cfg.attn_implementation:
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    kwargs.update(OmegaConf.to_container(model_cfg.config_overrides, resolve=True))
    return kwargs


def load_tokenizer(model_path: str, chat_template: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer saved with ``model_path``, with a chat template that renders ``<think>`` reasoning."""
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    ensure_chat_template(tokenizer, chat_template)
    return tokenizer


def stage_records(data_cfg: DictConfig, builtin: dict[str, Any]) -> RecordSet:
    """The raw records a stage's ``data`` block points at; ``builtin`` maps built-in names to factories."""
    if data_cfg.builtin is not None:
        return from_memory(builtin[data_cfg.builtin](), source=f"builtin:{data_cfg.builtin}")
    return load_records(data_cfg.path, split=data_cfg.split, column_map=dict(data_cfg.column_map or {}))


def selected_records(context: StageContext, builtin: dict[str, Any]) -> RecordSet:
    """The records of a stage's ``data`` block after its ``filter`` and ``max_samples`` (seeded)."""
    data = context.cfg.data
    return select_records(
        stage_records(data, builtin),
        OmegaConf.to_container(data.filter, resolve=True) if data.get("filter") else None,
        data.get("max_samples"),
        seed=context.seed,
        stage=context.name,
    )


def resume_checkpoint(stage_dir: Path, resume: bool) -> str | None:
    """The last checkpoint in ``stage_dir`` when resuming, else ``None``."""
    checkpoint = get_last_checkpoint(str(stage_dir)) if resume and stage_dir.is_dir() else None
    if checkpoint:
        logger.info("Resuming %s from %s", stage_dir.name, checkpoint)
    return checkpoint


def save_stage_result(
    trainer: Trainer, stage_dir: Path, name: str, kind: str, metrics: dict[str, Any],
    tokenizer: PreTrainedTokenizerBase,
) -> Path:
    """Save the stage's model and tokenizer to ``stage_dir/final``, its ``metrics.json`` and training curves
    (``curves.png``), then the marker."""
    final_dir = stage_dir / "final"
    if is_peft_model(trainer.model) and not (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled):
        if trainer.is_world_process_zero():  # the merged model (what the next stage loads) and final/adapter
            save_adapter_and_merged(trainer.model, final_dir)
    else:
        trainer.save_model(str(final_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(final_dir)
        (stage_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        plot_training_curves(trainer.state.log_history, stage_dir / CURVES_FILE, f"{name} ({kind})")
        write_completion_marker(stage_dir, name, kind, metrics)
    trainer.accelerator.wait_for_everyone()
    return final_dir


def split_for_validation(
    dataset: datasets.Dataset, fraction: float, seed: int, stage: str
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """Hold out a seeded ``fraction`` of ``dataset`` (at least one record); ``(dataset, None)`` for 0."""
    if fraction <= 0:
        return dataset, None
    eval_size = max(1, round(len(dataset) * fraction))
    if eval_size >= len(dataset):
        raise ValueError(
            f"stage {stage!r}: {len(dataset)} records are too few to hold out eval_fraction={fraction}; "
            "add data or set eval_fraction=0."
        )
    split = dataset.train_test_split(test_size=eval_size, seed=seed)
    return split["train"], split["test"]


def best_checkpoint_args(args: dict[str, Any], validate: bool, benchmark: str | None = None) -> dict[str, Any]:
    """Trainer arguments that evaluate on the held-out set and end on the lowest-validation-loss checkpoint,
    or with ``benchmark`` on the one with the highest in-training accuracy on it
    (:mod:`~medreason.trainers.benchmark_eval` adds it to the evaluation metrics).

    Evaluation and saving happen every epoch unless ``args`` already chose an ``eval_strategy``.
    """
    args = dict(args)
    if not validate:
        return {**args, "eval_strategy": "no", "load_best_model_at_end": False}
    if args.get("eval_strategy", "no") == "no":
        args["eval_strategy"] = args["save_strategy"] = "epoch"
    if benchmark is not None:
        return {**args, "load_best_model_at_end": True, "metric_for_best_model": f"benchmark/{benchmark}",
                "greater_is_better": True}
    return {**args, "load_best_model_at_end": True, "metric_for_best_model": "eval_loss", "greater_is_better": False}
