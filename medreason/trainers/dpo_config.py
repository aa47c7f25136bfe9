"""Configuration of :class:`~medreason.trainers.DPOTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import DPOConfig as TRLDPOConfig

from medreason.eval.in_training import BenchmarkEvalArguments
from medreason.trainers.batch_size import accumulation_steps
from medreason.trainers.config_checks import check_training_config
from medreason.trainers.peft_adapters import peft_settings
from medreason.utils.config_errors import FieldError

OVERLENGTH_POLICIES = ("truncate", "drop", "error")


@dataclass
class DPOConfig(BenchmarkEvalArguments, TRLDPOConfig):
    """``trl.DPOConfig`` plus what long medical preference pairs need.

    The loss is TRL's (``loss_type`` defaults to ``"sigmoid"``, the DPO paper's
    ``-log σ(β·((log π_c − log ref_c) − (log π_r − log ref_r)))`` on summed response log-probs;
    every other TRL loss type passes through). FineMedLM-o1 uses β = 0.1 for one epoch.

    > Parameters that control long pairs

    Args:
        overlength_policy: What to do with a pair longer than ``max_length`` after tokenization:
            ``"truncate"`` (train on its first ``max_length`` tokens, count logged), ``"drop"`` (remove
            it, count and record positions logged) or ``"error"`` (stop, naming the records).
        global_batch_size: Pairs per optimizer step across all devices; derives
            ``gradient_accumulation_steps`` (FineMedLM-o1: 64).
        peft: A LoRA (QLoRA with ``load_in_4bit``) adapter to train instead of all weights, as the fields of
            :class:`~medreason.trainers.peft_adapters.PeftSettings`; ``final/`` then holds the merged model and
            ``final/adapter`` the adapter.
    """

    # TRL defaults gradient_checkpointing=True through the deprecated name, which warns on every
    # config; same default, new name.
    gradient_checkpointing: bool | None = field(default=None, metadata={"help": "Deprecated alias of activation_checkpointing."})
    activation_checkpointing: bool | None = field(
        default=True, metadata={"help": "Recompute activations in the backward pass to save memory (~20% slower)."}
    )
    overlength_policy: str = field(
        default="truncate",
        metadata={"help": f"Pairs longer than max_length: one of {OVERLENGTH_POLICIES}."},
    )
    global_batch_size: int | None = field(
        default=None,
        metadata={"help": "Pairs per optimizer step across all devices; derives gradient_accumulation_steps."},
    )

    peft: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "A LoRA/QLoRA adapter: {r, lora_alpha, lora_dropout, target_modules, use_dora, load_in_4bit} "
                          "(medreason.trainers.peft_adapters.PeftSettings); null trains all weights."},
    )

    def __post_init__(self) -> None:
        check_training_config(self)
        self.check_benchmark_eval()
        peft_settings(self.peft)
        if self.overlength_policy not in OVERLENGTH_POLICIES:
            raise FieldError("overlength_policy", self.overlength_policy, f"must be one of {OVERLENGTH_POLICIES}.")
        super().__post_init__()
        if self.global_batch_size is not None:
            self.gradient_accumulation_steps = accumulation_steps(
                self.global_batch_size, self.per_device_train_batch_size, self.world_size, "DPOConfig"
            )
