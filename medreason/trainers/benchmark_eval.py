"""In-training benchmark evaluation hooked into the trainers (the harness itself: :mod:`medreason.eval.in_training`).

SFT and DPO run on HF ``Trainer``: :class:`BenchmarkEvalCallback` evaluates at every HF evaluation
(``eval_strategy``/``eval_steps``, next to the validation loss), logs ``benchmark/<name>`` to the trackers
and the log history, and adds ``eval_benchmark/<name>`` to the evaluation metrics, which is where HF's
best-checkpoint logic reads ``metric_for_best_model`` from (:func:`best_checkpoint_args`). DAPO calls
:func:`evaluate_benchmarks` with its rollout engine every ``eval_steps``.

The main process generates; the other ranks wait for its accuracies, so that every rank logs and
selects the same checkpoint. Under sharded training (ZeRO-3, FSDP) generation on one rank would wait
forever for the others' weight shards, so these hooks refuse it.
"""

from __future__ import annotations

from pathlib import Path

from accelerate.utils import broadcast_object_list
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from medreason.engines.base import GenerationEngine
from medreason.engines.transformers_engine import TransformersEngine
from medreason.eval.in_training import BenchmarkEvalArguments, InTrainingEvaluator
from medreason.utils.config_errors import ConfigError


def evaluate_benchmarks(evaluator: InTrainingEvaluator, engine: GenerationEngine, step: int, is_main: bool,
                        distributed: bool) -> dict[str, float]:
    """``{"benchmark/<name>": accuracy}`` measured on the main process, the same dict on every rank."""
    accuracies = evaluator(engine, step) if is_main else {}
    return broadcast_object_list([accuracies])[0] if distributed else accuracies


class BenchmarkEvalCallback(TrainerCallback):
    """Evaluate benchmarks whenever an HF ``Trainer`` evaluates; see the module docstring.

    Args:
        trainer: The trainer it is added to (it logs through ``trainer.log``).
        evaluator: What to evaluate, and where predictions go.
    """

    def __init__(self, trainer: Trainer, evaluator: InTrainingEvaluator):
        self.trainer = trainer
        self.evaluator = evaluator

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, **kwargs: object) -> None:
        trainer = self.trainer
        engine = None
        if state.is_world_process_zero:
            model = trainer.accelerator.unwrap_model(trainer.model)
            engine = TransformersEngine(model, trainer.processing_class, batch_size=args.per_device_eval_batch_size,
                                        model_name=f"{args.run_name or 'model'}-step-{state.global_step}")
        accuracies = evaluate_benchmarks(self.evaluator, engine, state.global_step, state.is_world_process_zero,
                                         args.world_size > 1)
        if metrics is not None:  # HF reads metric_for_best_model from this dict after the callbacks ran
            metrics.update({f"eval_{key}": value for key, value in accuracies.items()})
        trainer.log(accuracies)


def dapo_benchmark_evaluator(args: BenchmarkEvalArguments, output_dir: str, sharded: bool) -> InTrainingEvaluator | None:
    """DAPO's evaluator (``None`` without ``eval_benchmarks``).

    Raises:
        ConfigError: under FSDP2, where generation on the main process alone would wait for the other shards.
    """
    if not args.eval_benchmarks:
        return None
    if sharded:
        raise ConfigError("eval_benchmarks generates on the main process only, which FSDP2 cannot do: evaluate "
                          "with an eval stage after the dapo stage, or launch with DDP.")
    return InTrainingEvaluator(args, output_dir)


def add_benchmark_eval(trainer: Trainer, args: BenchmarkEvalArguments, stage_dir: Path, validate: bool) -> None:
    """Add a :class:`BenchmarkEvalCallback` to ``trainer`` when ``args.eval_benchmarks`` is set.

    Raises:
        ConfigError: benchmarks are asked for without a validation split (HF evaluates only with one),
            or under sharded training.
    """
    if not args.eval_benchmarks:
        return
    if not validate:
        raise ConfigError(f"eval_benchmarks={args.eval_benchmarks} is evaluated at each validation (eval_strategy / "
                          "eval_steps), and this stage has no validation split: set data.eval_fraction (e.g. 0.05).")
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        raise ConfigError("eval_benchmarks generates on the main process only, which sharded training (DeepSpeed, "
                          "FSDP) cannot do: evaluate with an eval stage after this one, or train without sharding.")
    trainer.add_callback(BenchmarkEvalCallback(trainer, InTrainingEvaluator(args, stage_dir)))
