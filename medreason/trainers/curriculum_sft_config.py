"""Configuration of :class:`~medreason.trainers.CurriculumSFTTrainer`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trl import SFTConfig

from medreason.data.records import FORMATS, TARGETS
from medreason.eval.in_training import BenchmarkEvalArguments
from medreason.trainers.config_checks import check_training_config
from medreason.trainers.peft_adapters import peft_settings
from medreason.utils.config_errors import FieldError

# SFTConfig fields a stage may set directly; anything else goes in SFTStage.args.
_STAGE_TRAINING_FIELDS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "warmup_steps",
    "lr_scheduler_type",
    "weight_decay",
)


@dataclass
class SFTStage:
    """One stage of a supervised fine-tuning curriculum.

    Unset (``None``) training fields inherit the :class:`CurriculumSFTConfig` value.

    Args:
        name: Stage name; its checkpoints go to ``<output_dir>/<name>/``.
        filter: Keep records whose fields match, e.g. ``{"department": "Internal Medicine"}``; a list
            value accepts any of its items.
        max_samples: Seeded random subset size after filtering (FineMedLM-o1: 200k, 36k, 11k).
        eval_fraction: Held-out validation fraction; when > 0 the stage keeps the checkpoint with the
            lowest validation loss (FineMedLM-o1: 0.1).
        global_batch_size: Sequences per optimizer step across all devices; sets
            ``gradient_accumulation_steps`` from the per-device batch and world size.
        args: Any other ``SFTConfig`` fields for this stage only.

    >>> SFTStage("internal_medicine", filter={"department": "Internal Medicine"}, learning_rate=5e-6).name
    'internal_medicine'
    """

    name: str
    filter: dict[str, Any] | None = None
    max_samples: int | None = None
    eval_fraction: float = 0.0
    global_batch_size: int | None = None
    learning_rate: float | None = None
    num_train_epochs: float | None = None
    max_steps: int | None = None
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    max_length: int | None = None
    warmup_steps: float | None = None
    lr_scheduler_type: str | None = None
    weight_decay: float | None = None
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"SFTStage.name must be a non-empty name without '/', got {self.name!r}.")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(
                f"stage {self.name!r}: eval_fraction must be in [0, 1), got {self.eval_fraction} "
                "(FineMedLM-o1 holds out 0.1)."
            )
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"stage {self.name!r}: max_samples must be >= 1 or null, got {self.max_samples}.")
        if self.global_batch_size is not None and self.global_batch_size < 1:
            raise ValueError(f"stage {self.name!r}: global_batch_size must be >= 1, got {self.global_batch_size}.")
        if self.filter is not None and not isinstance(self.filter, dict):
            raise TypeError(f"stage {self.name!r}: filter must map field -> value(s), got {self.filter!r}.")

    def training_overrides(self) -> dict[str, Any]:
        """The ``SFTConfig`` fields this stage sets, ``args`` included."""
        overrides = {name: getattr(self, name) for name in _STAGE_TRAINING_FIELDS if getattr(self, name) is not None}
        return {**overrides, **self.args}


@dataclass
class CurriculumSFTConfig(BenchmarkEvalArguments, SFTConfig):
    """``trl.SFTConfig`` plus an ordered list of curriculum stages.

    Every ``SFTConfig`` field is the default for all stages; each :class:`SFTStage` overrides what
    differs (FineMedLM-o1: 3e-5 for all data, then 5e-6 for Internal Medicine and Endocrinology).
    Loss is computed on the assistant answer only (prompt/completion records).

    > Parameters that control the curriculum

    Args:
        stages: The stages in training order, as :class:`SFTStage` objects or dicts of their fields.
            Empty means one stage named ``sft`` on all the data.
        global_batch_size: Default sequences per optimizer step across all devices (the number the
            model cards print: 128 for II-Medical, 256 then 128 for FineMedLM).
        data_format: Record shape, ``"auto"`` or one of ``medreason.data.records.FORMATS``.
        data_target: For ``question_cot_response`` records: ``think_response``, ``cot`` or ``response``.
        system_prompt: Optional system message prepended to every prompt.
        peft: A LoRA (QLoRA with ``load_in_4bit``) adapter to train instead of all weights, as the fields of
            :class:`~medreason.trainers.peft_adapters.PeftSettings`; ``final/`` then holds the merged model and
            ``final/adapter`` the adapter.

    In-training benchmark evaluation: :class:`~medreason.eval.in_training.BenchmarkEvalArguments`.
    """

    # TRL defaults gradient_checkpointing=True through the deprecated name, which warns on every
    # config; same default, new name.
    gradient_checkpointing: bool | None = field(default=None, metadata={"help": "Deprecated alias of activation_checkpointing."})
    activation_checkpointing: bool | None = field(
        default=True, metadata={"help": "Recompute activations in the backward pass to save memory (~20% slower)."}
    )
    stages: list[Any] = field(
        default_factory=list,
        metadata={"help": "Curriculum stages in order (SFTStage or dict). Empty: one stage on all data."},
    )
    global_batch_size: int | None = field(
        default=None,
        metadata={"help": "Sequences per optimizer step across all devices; derives gradient_accumulation_steps."},
    )
    data_format: str = field(default="auto", metadata={"help": f"Record shape: 'auto' or one of {FORMATS}."})
    data_target: str = field(
        default="think_response", metadata={"help": f"Target for question/cot/response records: one of {TARGETS}."}
    )
    system_prompt: str | None = field(default=None, metadata={"help": "System message prepended to every prompt."})
    peft: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "A LoRA/QLoRA adapter: {r, lora_alpha, lora_dropout, target_modules, use_dora, load_in_4bit} "
                          "(medreason.trainers.peft_adapters.PeftSettings); null trains all weights."},
    )

    def __post_init__(self) -> None:
        check_training_config(self)
        self.check_benchmark_eval()
        peft_settings(self.peft)
        if self.data_format not in ("auto", *FORMATS):
            raise FieldError("data_format", self.data_format, f"must be 'auto' or one of {FORMATS}.")
        if self.data_target not in TARGETS:
            raise FieldError("data_target", self.data_target, f"must be one of {TARGETS}.")
        if self.completion_only_loss is False:
            raise FieldError(
                "completion_only_loss", False, "curriculum SFT always trains on the answer only; remove the setting."
            )
        super().__post_init__()
        self.stages = [stage if isinstance(stage, SFTStage) else SFTStage(**stage) for stage in self.stages]
        if not self.stages:
            self.stages = [SFTStage("sft")]
        names = [stage.name for stage in self.stages]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"CurriculumSFTConfig.stages has duplicate names {duplicates}; stage names must be unique.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stages as dicts), used when HF logs the config."""
        result = super().to_dict()
        result["stages"] = [asdict(stage) for stage in self.stages]
        return result
