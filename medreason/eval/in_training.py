"""Benchmark accuracy while training: the evaluation harness on a capped sample, every few steps.

The trainers' configs take :class:`BenchmarkEvalArguments` (``eval_benchmarks``, ``eval_benchmark_limit``,
``eval_benchmark_max_tokens``, ``best_checkpoint_benchmark``). :class:`InTrainingEvaluator` runs
:func:`~medreason.eval.evaluate` with the eval stage's prompt template and grader on the first
``eval_benchmark_limit`` items of each benchmark, greedily, through the engine it is given (DAPO's rollout
engine, colocated vLLM included; for SFT and DPO a transformers engine on the live model), and returns
``benchmark/<name>`` accuracies, which the trainers log to their trackers and metrics files.
For SFT and DPO the accuracies are added to HF's evaluation metrics as ``eval_benchmark/<name>``, so
``best_checkpoint_benchmark=<name>`` selects the best checkpoint by that accuracy rather than by
validation loss (:class:`BenchmarkEvalCallback`).

Generations are cached per step (``<output_dir>/benchmark_eval/step-<N>/``): the model changes between
steps, and the cache key is the engine's model name, which a colocated engine keeps while its weights change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medreason.engines import GenerationEngine, SamplingParams
from medreason.eval.benchmarks import BENCHMARKS
from medreason.eval.runner import evaluate
from medreason.tasks.mcq import Benchmark
from medreason.testing.tiny_data import write_tiny_benchmark
from medreason.utils.config_errors import FieldError
from medreason.utils.training_curves import BENCHMARK_PREFIX

TINY_BENCHMARK = "tiny_mcq"
"""The built-in synthetic benchmark (the tiny recipe's eval stage scores it); written into the stage folder."""


@dataclass
class BenchmarkEvalArguments:
    """The in-training benchmark evaluation fields every trainer config shares.

    Parameters:
        eval_benchmarks (`list[str]`, defaults to `[]`): Registered benchmark names (``medqa``, ...) or
            ``tiny_mcq``; empty turns in-training benchmark evaluation off.
        eval_benchmark_limit (`int`, defaults to `64`): Items per benchmark (the first ones), so an evaluation
            takes minutes, not hours; the eval stage scores the full sets.
        eval_benchmark_max_tokens (`int`, defaults to `4096`): New tokens per answer (the card's eval: 16384).
        eval_benchmark_data_dir (`str`, *optional*): Folder of the benchmark files (``$MEDREASON_EVAL_DATA``).
        best_checkpoint_benchmark (`str`, *optional*): End on the checkpoint with the best accuracy on this
            one of ``eval_benchmarks`` instead of the lowest validation loss (SFT and DPO).
    """

    eval_benchmarks: list[str] = field(
        default_factory=list, metadata={"help": "Benchmarks evaluated during training (empty: none)."}
    )
    eval_benchmark_limit: int = field(default=64, metadata={"help": "Items per benchmark in each evaluation."})
    eval_benchmark_max_tokens: int = field(default=4096, metadata={"help": "New tokens per benchmark answer."})
    eval_benchmark_data_dir: str | None = field(default=None, metadata={"help": "Folder of the benchmark files."})
    best_checkpoint_benchmark: str | None = field(
        default=None, metadata={"help": "Select the best checkpoint by this benchmark's accuracy."}
    )

    def check_benchmark_eval(self) -> None:
        """Raise :class:`FieldError` for an unknown benchmark, a bad cap or a selection benchmark not evaluated."""
        for name in self.eval_benchmarks:
            if name != TINY_BENCHMARK and name not in BENCHMARKS:
                raise FieldError("eval_benchmarks", name, f"is not a benchmark; choose from {sorted(BENCHMARKS)} or "
                                 f"{TINY_BENCHMARK!r}.")
        for name in ("eval_benchmark_limit", "eval_benchmark_max_tokens"):
            if getattr(self, name) < 1:
                raise FieldError(name, getattr(self, name), "must be >= 1.")
        if self.best_checkpoint_benchmark is not None and self.best_checkpoint_benchmark not in self.eval_benchmarks:
            raise FieldError("best_checkpoint_benchmark", self.best_checkpoint_benchmark,
                             f"must be one of eval_benchmarks={self.eval_benchmarks}: only those are evaluated.")


class InTrainingEvaluator:
    """Run the evaluation harness on a capped sample of benchmarks through a given engine.

    Args:
        args: The trainer config's benchmark fields.
        output_dir: The stage directory; predictions go to ``output_dir/benchmark_eval/step-<N>/``.

    >>> import tempfile
    >>> from medreason.engines import TransformersEngine
    >>> from medreason.testing import build_tiny_model_dir
    >>> args = BenchmarkEvalArguments(eval_benchmarks=["tiny_mcq"], eval_benchmark_limit=2, eval_benchmark_max_tokens=4)
    >>> evaluator = InTrainingEvaluator(args, tempfile.mkdtemp())
    >>> accuracies = evaluator(TransformersEngine(build_tiny_model_dir(tempfile.mkdtemp())), step=5)
    >>> sorted(accuracies)
    ['benchmark/tiny_mcq']
    """

    def __init__(self, args: BenchmarkEvalArguments, output_dir: str | os.PathLike):
        self.output_dir = Path(output_dir) / "benchmark_eval"
        self.limit = args.eval_benchmark_limit
        self.data_dir = args.eval_benchmark_data_dir
        # Greedy: one sample per item makes the accuracy of a capped sample as steady as it can be.
        self.sampling = SamplingParams(temperature=0.0, max_tokens=args.eval_benchmark_max_tokens, seed=0)
        self.names = list(args.eval_benchmarks)

    def _benchmarks(self) -> list[str | Benchmark]:
        return [Benchmark(name=TINY_BENCHMARK, title="Tiny MCQ", path=str(write_tiny_benchmark(self.output_dir)))
                if name == TINY_BENCHMARK else name for name in self.names]

    def __call__(self, engine: GenerationEngine, step: int) -> dict[str, float]:
        """Evaluate what ``engine`` generates now; return ``{"benchmark/<name>": accuracy}``."""
        results = evaluate(engine=engine, benchmarks=self._benchmarks(), sampling=self.sampling, limit=self.limit,
                           data_dir=self.data_dir, output_dir=self.output_dir / f"step-{step}", progress=False)
        return {f"{BENCHMARK_PREFIX}{b.name}": b.accuracy for b in results.benchmarks}


def accuracies_by_step(history: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{step: {benchmark: accuracy}}`` from logged entries (what a stage's ``metrics.json`` records).

    >>> accuracies_by_step([{"step": 2, "benchmark/medqa": 0.5}, {"step": 3, "loss": 1.0}])
    {'2': {'medqa': 0.5}}
    """
    table: dict[str, dict[str, float]] = {}
    for entry in history:
        found = {k.removeprefix(BENCHMARK_PREFIX): v for k, v in entry.items() if k.startswith(BENCHMARK_PREFIX)}
        if found:
            table.setdefault(str(entry["step"]), {}).update(found)
    return table
