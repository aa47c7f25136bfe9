"""The ``eval`` stage kind of a recipe: evaluate the model the previous stage produced.

The stage writes ``results.json`` (per benchmark, with every prediction under ``predictions/``),
``results.md`` (the model-card table beside the published numbers; with ``ttt`` set, rows without
and with test-time training) and ``results.png``, and hands the evaluated model on unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from medreason.engines import SamplingParams
from medreason.eval.report import evaluate_and_report
from medreason.stage_context import StageContext, run_on_main_process
from medreason.tasks.mcq import Benchmark
from medreason.testing.tiny_data import write_tiny_benchmark
from medreason.ttt.config import TTTConfig


@dataclass
class EvalStageConfig:
    """The ``evaluate`` block of an ``eval`` stage (arguments of :func:`medreason.eval.evaluate`).

    Args:
        suite: ``ii_medical``, ``reasonmed`` or ``finemedlm``.
        benchmarks: Further registered benchmark names.
        builtin: ``"tiny"`` adds the built-in synthetic benchmark (``medreason.testing``).
        data_dir: Folder of the benchmark files (or ``$MEDREASON_EVAL_DATA``).
        limit: Items per benchmark (all when unset).
        skip_missing: Leave out benchmarks whose data is missing instead of failing.
        backend: ``transformers``, ``vllm`` or ``openai``; ``engine_kwargs`` go to its constructor.
        temperature / top_p / max_tokens / n / seed: Sampling (default: the II-Medical cards' 0.6 / 0.9).
        greedy: Temperature 0 instead.
        benchmark_paths: Benchmark name → a local file (Lancet, NEJM, GPQA-medical, MedBullets-5 and
            MedXpertQA are not public downloads).
        ttt: Test-time training settings (``corpus_path`` + :class:`medreason.ttt.TTTConfig` fields,
            ``conf/ttt/*.yaml``): evaluate without and with TTT and report both (FineMedLM-o1).
    """

    suite: str | None = None
    benchmarks: list[str] = field(default_factory=list)
    builtin: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    skip_missing: bool = False
    backend: str = "transformers"
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    temperature: float = 0.6
    top_p: float = 0.9
    max_tokens: int = 16384
    n: int = 1
    seed: int = 0
    greedy: bool = False
    ttt: dict[str, Any] | None = None
    benchmark_paths: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ttt:
            unknown = set(self.ttt) - {"corpus_path"} - {f.name for f in dataclasses.fields(TTTConfig)}
            if unknown:
                raise ValueError(f"ttt has unknown keys {sorted(unknown)}; valid: corpus_path and TTTConfig's fields.")
            if self.backend != "transformers":
                raise ValueError(f"ttt needs backend=transformers (it trains the model in memory), got {self.backend!r}.")


def run_eval_stage(context: StageContext) -> Path:
    """Evaluate ``context.model_path`` on the main process; return it as the model the next stage starts from."""
    config = EvalStageConfig(**OmegaConf.to_container(context.cfg.evaluate, resolve=True))

    def work() -> dict[str, Any]:
        benchmarks: list[str | Benchmark] = list(config.benchmarks)
        if config.builtin == "tiny":
            benchmarks.append(
                Benchmark(name="tiny_mcq", title="Tiny MCQ", path=str(write_tiny_benchmark(context.output_dir)))
            )
        common = dict(
            benchmarks=benchmarks,
            backend=config.backend,
            engine_kwargs=config.engine_kwargs,
            sampling=SamplingParams(temperature=config.temperature, top_p=config.top_p,
                                    max_tokens=config.max_tokens, n=config.n, seed=config.seed),
            greedy=config.greedy,
            data_dir=config.data_dir,
            benchmark_paths=config.benchmark_paths,
            limit=config.limit,
            skip_missing=config.skip_missing,
            output_dir=context.output_dir,
        )
        results, _, metrics = evaluate_and_report(
            context.model_path, config.suite, config.ttt, context.output_dir, **common
        )
        return {**metrics, "accuracies": results.accuracies, "average": results.average, "results": results.output_dir}

    return run_on_main_process(context, work)
