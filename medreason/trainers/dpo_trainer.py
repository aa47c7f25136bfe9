"""DPO on medical preference pairs, on top of ``trl.DPOTrainer``.

TRL's trainer does the loss, the reference model (separate, the PEFT base with adapters disabled,
or precomputed log-probabilities) and the tokenization. What it lacks for our data, and what this
subclass adds: validation of each pair with errors naming the record (empty or identical
answers), an explicit policy for pairs longer than ``max_length`` instead of silent truncation or
dropping, and peak memory in the training logs (FineMedLM-o1's long-form pairs run to 8k tokens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from trl import DPOTrainer as TRLDPOTrainer

from medreason.data.chat_templates import ensure_chat_template
from medreason.data.loading import RecordSet, from_memory
from medreason.data.preferences import to_preference_pair
from medreason.trainers.benchmark_eval import add_benchmark_eval
from medreason.trainers.dpo_config import DPOConfig
from medreason.trainers.peft_adapters import PeftSettings, lora_config
from medreason.utils.jsonl import RecordError
from medreason.utils.logging import get_logger
from medreason.utils.memory import peak_memory_metrics

logger = get_logger(__name__)

_RECORD_INDEX = "record_index"


class DPOTrainer(TRLDPOTrainer):
    """``trl.DPOTrainer`` that validates preference records and handles over-length pairs explicitly.

    Args:
        model: The policy (a model, or a hub id / path).
        ref_model: The reference model; ``None`` uses a frozen copy of the policy (or, for a PEFT
            policy, the base model with adapters disabled). With ``args.precompute_ref_log_probs`` the
            reference log-probs are computed once before training and the reference is not kept busy.
        args: :class:`DPOConfig`.
        train_dataset: Preference records (``prompt``/``question``/``instruction`` + ``chosen`` +
            ``rejected``; strings or messages) as a ``datasets.Dataset``, list of dicts or ``RecordSet``.
        eval_dataset: Optional held-out records of the same shape.
        processing_class: Tokenizer; one without a chat template gets ChatML with ``<think>``.
        peft_config: Optional ``peft`` config to train an adapter.
        callbacks: Extra ``TrainerCallback`` objects.

    >>> import tempfile
    >>> from medreason.testing import build_tiny_model_dir, tiny_preference_records
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> path = build_tiny_model_dir(tempfile.mkdtemp())
    >>> args = DPOConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, bf16=False, max_steps=1, report_to="none",
    ...                  per_device_train_batch_size=2, max_length=256, disable_tqdm=True)
    >>> trainer = DPOTrainer(AutoModelForCausalLM.from_pretrained(path), args=args,
    ...     train_dataset=tiny_preference_records(4), processing_class=AutoTokenizer.from_pretrained(path))
    >>> trainer.train().global_step
    {'train_runtime': ...}
    1
    """

    def __init__(
        self,
        model: PreTrainedModel | str,
        ref_model: PreTrainedModel | str | None = None,
        args: DPOConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        peft_config: Any | None = None,
        callbacks: list[TrainerCallback] | None = None,
    ):
        if args is None or not isinstance(args, DPOConfig):
            raise TypeError("args must be a medreason.trainers.DPOConfig (it adds overlength_policy to TRL's).")
        if processing_class is not None:
            ensure_chat_template(processing_class)
        self._sources: dict[str, RecordSet] = {}
        if peft_config is None and args.peft is not None:  # the recipe's peft block
            peft_config = lora_config(PeftSettings.from_block(args.peft))
        super().__init__(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=self._validated(train_dataset, "train"),
            eval_dataset=self._validated(eval_dataset, "eval") if eval_dataset is not None else None,
            processing_class=processing_class,
            peft_config=peft_config,
            callbacks=callbacks,
        )
        add_benchmark_eval(self, args, Path(args.output_dir), validate=eval_dataset is not None)

    def _validated(self, data: Any, name: str) -> datasets.Dataset:
        """Convert every record to a conversational pair, failing on the first bad one with its position."""
        record_set = from_memory(data, source=f"{name}_dataset")
        self._sources[name] = record_set
        pairs = [
            {**to_preference_pair(record, record_set.source, position), _RECORD_INDEX: index}
            for index, (record, position) in enumerate(zip(record_set.records, record_set.positions, strict=True))
        ]
        if not pairs:
            raise RecordError(record_set.source, None, None, "holds no records: DPO needs at least one preference pair.")
        return datasets.Dataset.from_list(pairs)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        before = len(dataset)
        kept_before = set(dataset[_RECORD_INDEX])
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        source = self._sources.get(dataset_name)
        if source is None or args.max_length is None:
            return dataset
        dropped_by_trl = sorted(kept_before - set(dataset[_RECORD_INDEX]))
        if dropped_by_trl:
            logger.warning(
                "%s: dropped %d of %d pairs whose prompt alone fills max_length=%d (first: %s)",
                source.source, len(dropped_by_trl), before, args.max_length,
                ", ".join(source.positions[i] for i in dropped_by_trl[:5]),
            )
        if len(dataset) == 0:
            raise ValueError(
                f"{source.source}: no preference pairs left: every prompt fills max_length={args.max_length}. "
                "Raise max_length."
            )
        lengths = [
            len(p) + max(len(c), len(r))
            for p, c, r in zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"], strict=True)
        ]
        too_long = [i for i, length in enumerate(lengths) if length > args.max_length]
        if not too_long:
            return dataset
        positions = ", ".join(source.positions[dataset[i][_RECORD_INDEX]] for i in too_long[:5])
        summary = f"{source.source}: {len(too_long)} of {len(dataset)} pairs exceed max_length={args.max_length} (first: {positions})"
        if args.overlength_policy == "error":
            raise ValueError(f"{summary}. Raise max_length, shorten them, or set overlength_policy=truncate|drop.")
        if args.overlength_policy == "drop":
            logger.warning("%s; dropping them (overlength_policy=drop)", summary)
            too_long_set = set(too_long)
            return dataset.select([i for i in range(len(dataset)) if i not in too_long_set])
        logger.warning("%s; training on their first %d tokens (overlength_policy=truncate)", summary, args.max_length)
        return dataset

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add peak memory to every training log."""
        if "loss" in logs:
            logs.update(peak_memory_metrics(self.accelerator.device))
        super().log(logs, start_time)
