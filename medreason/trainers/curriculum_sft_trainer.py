"""Multi-stage supervised fine-tuning on top of ``trl.SFTTrainer``.

Why not one ``SFTTrainer``: a curriculum changes the data, learning rate, schedule, epochs and batch
size between stages (FineMedLM-o1: all data at 3e-5 → Internal Medicine at 5e-6 → Endocrinology at
5e-6), and each stage keeps its best checkpoint by validation loss. Each stage therefore gets its own
``SFTTrainer`` (fresh optimizer and schedule, HF's best-checkpoint logic), and this class carries the
model and tokenizer from one stage to the next, writing each stage's checkpoint and metrics.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from peft import AutoPeftModelForCausalLM, PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
)
from trl import SFTConfig, SFTTrainer

from medreason.data.chat_templates import ensure_chat_template
from medreason.data.loading import RecordSet, from_memory, select_records
from medreason.data.records import RecordConverter
from medreason.eval.in_training import accuracies_by_step
from medreason.stage_context import finished_stage
from medreason.trainers.batch_size import accumulation_steps
from medreason.trainers.benchmark_eval import add_benchmark_eval
from medreason.trainers.curriculum_sft_config import CurriculumSFTConfig, SFTStage
from medreason.trainers.peft_adapters import (
    ADAPTER_DIR,
    PeftSettings,
    lora_config,
    peft_settings,
    quantization_kwargs,
)
from medreason.trainers.stage_io import (
    best_checkpoint_args,
    resume_checkpoint,
    save_stage_result,
    split_for_validation,
)
from medreason.utils.launch import trainer_settings_for_launch
from medreason.utils.logging import get_logger
from medreason.utils.memory import peak_memory_metrics

logger = get_logger(__name__)


@dataclass
class StageResult:
    """What one curriculum stage produced.

    Args:
        name: Stage name.
        final_dir: Directory of the stage's model and tokenizer (its best checkpoint when validated).
        metrics: Training and validation metrics, record counts and the effective hyper-parameters.
    """

    name: str
    final_dir: Path
    metrics: dict[str, Any]


class CurriculumSFTTrainer:
    """Runs the stages of a :class:`CurriculumSFTConfig` in order, each on its own ``trl.SFTTrainer``.

    Args:
        model: A causal LM, or a hub id / local path loaded with ``args.model_init_kwargs``.
        args: The curriculum configuration.
        train_dataset: Records in any shape of :mod:`medreason.data.records` (``datasets.Dataset``,
            a list of dicts, or a :class:`~medreason.data.loading.RecordSet`); stage filters select from it.
        processing_class: Tokenizer; loaded from ``model`` when it is a path. A tokenizer without a chat
            template gets ChatML with ``<think>`` reasoning.
        peft_config: Optional ``peft`` config; the adapter is created in the first stage and trained on.
        callbacks: Extra ``transformers.TrainerCallback`` objects for every stage.

    Raises:
        RecordError: a record any stage selects is malformed, or there are no records; raised before
            ``model`` is loaded.
        ConfigError: a stage's filter leaves no records.

    >>> import tempfile
    >>> from medreason.testing import build_tiny_model_dir, tiny_records
    >>> model_dir = build_tiny_model_dir(tempfile.mkdtemp())
    >>> args = CurriculumSFTConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, bf16=False, max_steps=1,
    ...     per_device_train_batch_size=2, report_to="none", stages=[
    ...         {"name": "all"}, {"name": "endocrinology", "filter": {"subdepartment": "Endocrinology"}}])
    >>> results = CurriculumSFTTrainer(str(model_dir), args, train_dataset=tiny_records(16)).train()
    {'train_runtime': ...}
    {'train_runtime': ...}
    >>> [result.name for result in results]
    ['all', 'endocrinology']
    """

    def __init__(
        self,
        model: str | PreTrainedModel,
        args: CurriculumSFTConfig,
        train_dataset: Any,
        processing_class: PreTrainedTokenizerBase | None = None,
        peft_config: Any | None = None,
        callbacks: list[TrainerCallback] | None = None,
    ):
        # Every stage's records are selected, converted and split before the model loads, so a bad record or
        # filter fails in seconds rather than after minutes of loading an 8B model.
        if peft_config is None and args.peft is not None:  # the recipe's peft block
            peft_config = lora_config(PeftSettings.from_block(args.peft))
        self.args, self.peft_config, self.callbacks = args, peft_config, callbacks or []
        converter = RecordConverter(args.data_format, args.data_target, args.system_prompt)
        records = from_memory(train_dataset)
        self.stage_data = {stage.name: self._stage_data(records, converter, stage) for stage in args.stages}
        if isinstance(model, str | Path):
            model_id = str(model)
            model = AutoModelForCausalLM.from_pretrained(
                model_id, **(args.model_init_kwargs or {}), **quantization_kwargs(peft_settings(args.peft)))
            processing_class = processing_class or AutoTokenizer.from_pretrained(model_id)
        if processing_class is None:
            raise ValueError("processing_class is required when model is a model object; pass its tokenizer.")
        ensure_chat_template(processing_class)
        self.model, self.processing_class = model, processing_class

    def _stage_data(
        self, records: RecordSet, converter: RecordConverter, stage: SFTStage
    ) -> tuple[datasets.Dataset, datasets.Dataset | None]:
        """A stage's training and validation pairs: its records selected, converted and split."""
        selected = select_records(records, stage.filter, stage.max_samples, seed=self.args.seed, stage=stage.name)
        pairs = datasets.Dataset.from_list(selected.convert(converter))
        return split_for_validation(pairs, stage.eval_fraction, self.args.seed, stage.name)

    def train(self, resume_from_checkpoint: bool = False) -> list[StageResult]:
        """Train every stage in order and return their results.

        Args:
            resume_from_checkpoint: Skip stages that already finished (loading their result) and
                continue an interrupted stage from its last checkpoint.

        Raises:
            StageStateError: a stage already finished (or left checkpoints) in ``output_dir`` and
                ``resume_from_checkpoint`` is False; the same rule as a recipe's stages.
        """
        results = []
        for index, stage in enumerate(self.args.stages):
            stage_dir = Path(self.args.output_dir) / stage.name
            marker = finished_stage(stage_dir, stage.name, resume_from_checkpoint)
            if marker is not None:
                logger.info("Stage %r already finished; loading its result from %s", stage.name, stage_dir / "final")
                self.model = self._load_stage_model(stage_dir / "final")
                results.append(StageResult(stage.name, stage_dir / "final", marker["metrics"]))
                continue
            results.append(self._train_stage(stage, stage_dir, resume_from_checkpoint, first=index == 0))
        return results

    def build_stage_trainer(self, stage: SFTStage, first: bool = True) -> SFTTrainer:
        """The ``SFTTrainer`` for one stage, on its records (selected, converted and split when this
        trainer was built) with its arguments set.

        Useful on its own to inspect a stage's tokenized data or collator before training.
        """
        train_set, eval_set = self.stage_data[stage.name]
        stage_args = self._stage_args(stage, Path(self.args.output_dir) / stage.name, validate=eval_set is not None)
        logger.info(
            "Stage %r: %d train / %d validation records, lr %g, epochs %g, %d sequences per step",
            stage.name, len(train_set), len(eval_set or []), stage_args.learning_rate, stage_args.num_train_epochs,
            stage_args.per_device_train_batch_size * stage_args.gradient_accumulation_steps * stage_args.world_size,
        )
        trainer = SFTTrainer(
            model=self.model,
            args=stage_args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=self.processing_class,
            peft_config=self.peft_config if first else None,
            callbacks=self.callbacks,
        )
        add_benchmark_eval(trainer, self.args, Path(stage_args.output_dir), validate=eval_set is not None)
        return trainer

    def _train_stage(self, stage: SFTStage, stage_dir: Path, resume: bool, first: bool) -> StageResult:
        trainer = self.build_stage_trainer(stage, first)
        train_output = trainer.train(resume_from_checkpoint=resume_checkpoint(stage_dir, resume))
        metrics = self._stage_metrics(
            stage, trainer, train_output.metrics, len(trainer.train_dataset), len(trainer.eval_dataset or [])
        )
        final_dir = save_stage_result(trainer, stage_dir, stage.name, "sft", metrics, self.processing_class)
        # Under DeepSpeed or FSDP (from the trainer arguments or the accelerate launch config) the trained
        # model is sharded: reload the saved result so the next stage starts from a plain, full model.
        sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled
        self.model = self._load_stage_model(final_dir) if sharded else trainer.model
        return StageResult(stage.name, final_dir, metrics)

    def _stage_args(self, stage: SFTStage, stage_dir: Path, validate: bool) -> SFTConfig:
        """A plain ``SFTConfig`` for one stage: the curriculum defaults with the stage's overrides."""
        base = {f.name: getattr(self.args, f.name) for f in dataclasses.fields(SFTConfig) if f.init}
        base.update(stage.training_overrides())
        base["output_dir"] = str(stage_dir)
        base["run_name"] = f"{self.args.run_name or Path(self.args.output_dir).name}/{stage.name}"
        base["completion_only_loss"] = True
        base["model_init_kwargs"] = None  # the model is already loaded
        base = best_checkpoint_args(base, validate, self.args.best_checkpoint_benchmark)
        global_batch = stage.global_batch_size or self.args.global_batch_size
        if global_batch is not None:
            base["gradient_accumulation_steps"] = accumulation_steps(
                global_batch, base["per_device_train_batch_size"], self.args.world_size, f"stage {stage.name!r}"
            )
        # Rebuilt arguments set up accelerate's state again: keep what this launch asks (FSDP on CPU).
        return SFTConfig(**trainer_settings_for_launch(base))

    def _stage_metrics(self, stage, trainer, train_metrics, num_train, num_eval) -> dict[str, Any]:
        state, args = trainer.state, trainer.args
        eval_losses = [entry["eval_loss"] for entry in state.log_history if "eval_loss" in entry]
        return {
            "stage": stage.name,
            "num_train_records": num_train,
            "num_eval_records": num_eval,
            "learning_rate": args.learning_rate,
            "num_train_epochs": args.num_train_epochs,
            "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
            "global_steps": state.global_step,
            "best_checkpoint": state.best_model_checkpoint,
            "best_eval_loss": min(eval_losses) if eval_losses else None,
            "eval_losses": eval_losses,
            "benchmark_accuracies": accuracies_by_step(state.log_history),
            "num_tokens": max((entry.get("num_tokens", 0) for entry in state.log_history), default=0),
            **peak_memory_metrics(trainer.accelerator.device),
            **train_metrics,
        }

    def _load_stage_model(self, final_dir: Path) -> PreTrainedModel:
        init_kwargs = self.args.model_init_kwargs or {}
        if self.peft_config is not None or isinstance(self.model, PeftModel):  # final/adapter holds the adapter
            adapter = final_dir / ADAPTER_DIR if (final_dir / ADAPTER_DIR).is_dir() else final_dir
            return AutoPeftModelForCausalLM.from_pretrained(adapter, is_trainable=True, **init_kwargs)
        return AutoModelForCausalLM.from_pretrained(final_dir, **init_kwargs)
