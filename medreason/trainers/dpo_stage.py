"""The ``dpo`` stage kind of a recipe: DPO from the previous stage's model, which is also the reference."""

from __future__ import annotations

from pathlib import Path

import datasets
from transformers import AutoModelForCausalLM

from medreason.data.preferences import to_preference_pair
from medreason.eval.in_training import accuracies_by_step
from medreason.stage_context import StageContext, StageSpec
from medreason.testing.tiny_data import tiny_preference_records
from medreason.trainers.dpo_config import DPOConfig
from medreason.trainers.dpo_trainer import DPOTrainer
from medreason.trainers.peft_adapters import peft_settings, quantization_kwargs
from medreason.trainers.stage_io import (
    best_checkpoint_args,
    load_tokenizer,
    model_init_kwargs,
    resume_checkpoint,
    save_stage_result,
    selected_records,
    split_for_validation,
)


def dpo_stage_config(spec: StageSpec) -> DPOConfig:
    """The stage's :class:`DPOConfig`; with a validation split it ends on the best checkpoint."""
    validate = bool(spec.data is not None and spec.data.get("eval_fraction"))
    return DPOConfig(
        output_dir=str(spec.output_dir), run_name=f"{spec.run_cfg.run_name}/{spec.name}", seed=spec.run_cfg.seed,
        **best_checkpoint_args(spec.settings, validate, spec.settings.get("best_checkpoint_benchmark")),
    )


def run_dpo_stage(context: StageContext) -> Path:
    """Train DPO from ``context.model_path`` against ``context.reference_path``; return the final model dir.

    The reference is the model the stage starts from (FineMedLM-o1: the long-form SFT model), held
    as a frozen copy of the policy, unless the stage's ``reference_from`` names a different model.
    """
    data = context.cfg.data
    record_set = selected_records(context, builtin={"tiny": tiny_preference_records})
    for record, position in zip(record_set.records, record_set.positions, strict=True):
        to_preference_pair(record, record_set.source, position)  # fail here naming file and line
    fields = ("prompt", "question", "instruction", "chosen", "rejected")
    pairs = datasets.Dataset.from_list([{k: r[k] for k in fields if k in r} for r in record_set.records])
    train_set, eval_set = split_for_validation(pairs, data.eval_fraction, context.seed, context.name)

    args = context.config
    init_kwargs = model_init_kwargs(context.run_cfg.model)
    model = AutoModelForCausalLM.from_pretrained(context.model_path, **init_kwargs,
                                                 **quantization_kwargs(peft_settings(args.peft)))
    reference = None
    if context.reference_path and context.reference_path != context.model_path:
        reference = AutoModelForCausalLM.from_pretrained(context.reference_path, **init_kwargs)
    tokenizer = load_tokenizer(context.model_path, context.run_cfg.model.chat_template)
    trainer = DPOTrainer(model, reference, args, train_set, eval_set, processing_class=tokenizer)
    output = trainer.train(resume_from_checkpoint=resume_checkpoint(context.output_dir, context.resume))

    logged = [entry for entry in trainer.state.log_history if "rewards/margins" in entry]
    metrics = {
        "stage": context.name,
        "num_train_pairs": len(trainer.train_dataset),
        "num_eval_pairs": len(trainer.eval_dataset or []),
        "beta": args.beta,
        "loss_type": args.loss_type,
        "learning_rate": args.learning_rate,
        "global_steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "reward_margins": [entry["rewards/margins"] for entry in logged],
        "peak_memory": {k: v for entry in logged for k, v in entry.items() if k.startswith("memory/")},
        "reference": context.reference_path,
        "benchmark_accuracies": accuracies_by_step(trainer.state.log_history),
        **output.metrics,
    }
    return save_stage_result(trainer, context.output_dir, context.name, "dpo", metrics, tokenizer)
