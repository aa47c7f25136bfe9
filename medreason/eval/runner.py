"""Run benchmarks through a generation engine: validate, generate what is not cached, grade, report."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from medreason.engines import GenerationEngine, SamplingParams, build_engine
from medreason.eval.benchmarks import resolve_benchmarks
from medreason.eval.cache import GenerationCache, model_slug
from medreason.eval.data_parallel import (
    Shard,
    engine_kwargs_for_rank,
    process_shard,
    shard_chunks,
    wait_for_all_ranks,
)
from medreason.eval.results import BenchmarkResult, EvalResults, mean_and_stderr
from medreason.tasks.grading import extract_choice
from medreason.tasks.mcq import Benchmark, EvalRecord, load_records
from medreason.tasks.prompts import PromptTemplate
from medreason.utils.jsonl import write_jsonl
from medreason.utils.logging import get_logger, is_main_process

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = get_logger(__name__)

__all__ = ["CARD_SAMPLING", "evaluate"]

CARD_SAMPLING = SamplingParams(temperature=0.6, top_p=0.9, max_tokens=16384, seed=0)
"""II-Medical-8B card: "Recommended Sampling Parameters: temperature = 0.6, top_p = 0.9"; 16384 new
tokens leaves room for the cards' 16k-token reasoning traces (SFT max length 16378)."""


def evaluate(
    model: str | os.PathLike | PreTrainedModel | None = None,
    suite: str | None = None,
    benchmarks: Sequence[str | Benchmark] | None = None,
    engine: GenerationEngine | None = None,
    *,
    backend: str = "transformers",
    engine_kwargs: Mapping[str, Any] | None = None,
    sampling: SamplingParams = CARD_SAMPLING,
    greedy: bool = False,
    n: int | None = None,
    template: PromptTemplate | None = None,
    data_dir: str | os.PathLike | None = None,
    benchmark_paths: Mapping[str, str] | None = None,
    limit: int | None = None,
    skip_missing: bool = False,
    output_dir: str | os.PathLike = "eval_results",
    chunk_size: int = 64,
    progress: bool = True,
    data_parallel: bool = False,
) -> EvalResults:
    """Evaluate a model on a suite and/or a list of benchmarks.

    Every record of every benchmark is validated before the engine is built or anything generated.
    Generations are cached under ``output_dir/generations`` keyed by model, benchmark, item,
    sampling parameters and prompt, so an interrupted run resumes where it stopped; per-item
    predictions go to ``output_dir/<model>/<benchmark>.predictions.jsonl``.

    Args:
        model: A path or hub id (or, for ``backend="transformers"``, a loaded model: then pass
            ``engine_kwargs={"tokenizer": ..., "model_name": ...}``). Leave unset when passing ``engine``.
            Caches are keyed by the engine's ``model_name``: give each checkpoint of a model that
            changes in memory (e.g. during training) its own name, or stale generations are reused.
        suite: ``"ii_medical"``, ``"reasonmed"`` or ``"finemedlm"`` (see ``SUITES``).
        benchmarks: Further benchmark names or :class:`Benchmark` objects.
        engine: A ready engine; the caller keeps ownership (it is not closed).
        backend: Engine to build from ``model``: ``"transformers"``, ``"openai"`` or ``"vllm"``.
        engine_kwargs: Extra constructor arguments of that engine.
        sampling: Sampling parameters; default the II-Medical card's (temperature 0.6, top-p 0.9).
        greedy: Use temperature 0 instead.
        n: Completions per item (mean accuracy ± standard error over items); overrides ``sampling.n``.
        template: How records become prompts; default the II-Medical ``\\boxed{}`` instruction.
        data_dir: Folder that relative benchmark paths resolve against (``$MEDREASON_EVAL_DATA``).
        benchmark_paths: Benchmark name → local file replacing its registered source.
        limit: Evaluate only the first ``limit`` items of each benchmark.
        skip_missing: Leave out benchmarks whose data is missing (with a warning) instead of failing;
            the table shows "–" for them.
        output_dir: Where caches, predictions and ``results.json`` go.
        chunk_size: Prompts per engine call (and per cache flush).
        progress: Show a progress bar (main process only).
        data_parallel: Under a launch of N > 1 processes, every process calls this function: each builds
            its own transformers engine on its device (the whole model), generates its shard (see
            :func:`~medreason.eval.data_parallel.shard_chunks`) into a cache file of its own, waits for the
            others, and grades every item from all ranks' caches; only the main process writes predictions and
            ``results.json``. Every rank returns the same results, equal to one process's. In one process it only
            checks that the backend is transformers and no ready engine was passed.

    Example (a notebook)::

        results = evaluate("Intelligent-Internet/II-Medical-8B", suite="ii_medical", backend="vllm",
                           engine_kwargs={"tensor_parallel_size": 8}, data_dir="data/eval")
        print(results.table())
        results.plot("ii_medical.png")
    """
    if (model is None) == (engine is None):
        raise TypeError(
            "evaluate() needs exactly one of model= (to build an engine) or engine= (a ready one)."
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    if data_dir is None:
        data_dir = os.environ.get("MEDREASON_EVAL_DATA")
    if greedy:
        sampling = replace(sampling, temperature=0.0)
    if n is not None:
        sampling = replace(sampling, n=n)
    template = template or PromptTemplate()

    resolved = resolve_benchmarks(suite, benchmarks, benchmark_paths)
    relative = [b.name for b in resolved if b.path is not None and not Path(b.path).expanduser().is_absolute()]
    if relative and data_dir is not None and not Path(data_dir).expanduser().is_dir() and not skip_missing:
        raise FileNotFoundError(
            f"data_dir={os.fspath(data_dir)} is not a directory, and {', '.join(relative)} read their files from it: "
            "set data_dir (or $MEDREASON_EVAL_DATA) to the folder holding the benchmark files, "
            "e.g. data_dir=../shared/data/eval."
        )
    records: dict[str, list[EvalRecord]] = {}
    missing: list[str] = []
    for benchmark in resolved:  # every record is validated before anything is generated
        try:
            records[benchmark.name] = load_records(benchmark, data_dir, limit)
        except FileNotFoundError as error:
            missing.append(str(error))
    if missing and not skip_missing:
        raise FileNotFoundError(f"{len(missing)} benchmark(s) have no data:\n" + "\n".join(missing))
    for message in missing:
        logger.warning("Skipped: %s", message)
    if not records:
        raise FileNotFoundError("None of the requested benchmarks' data was found (see the warnings above).")
    chosen = [b for b in resolved if b.name in records]

    engine_kwargs = dict(engine_kwargs or {})
    shard = None
    if data_parallel:
        engine_kwargs = engine_kwargs_for_rank(backend, engine, engine_kwargs)
        shard = process_shard()
    owns_engine = engine is None
    if engine is None:
        engine = build_engine(backend, model=model, **engine_kwargs)
    output_dir = Path(output_dir)
    try:
        results = [
            _run_benchmark(b, records[b.name], engine, sampling, template, output_dir, chunk_size, progress, shard)
            for b in chosen
        ]
    finally:
        if owns_engine:
            engine.close()
    run = EvalResults(
        model=engine.model_name,
        benchmarks=results,
        suite=suite,
        sampling=asdict(sampling),
        output_dir=str(output_dir / model_slug(engine.model_name)),
    )
    if shard is None or shard.rank == 0:
        run.save(Path(run.output_dir) / "results.json")
    return run


def _run_benchmark(
    benchmark: Benchmark,
    records: list[EvalRecord],
    engine: GenerationEngine,
    sampling: SamplingParams,
    template: PromptTemplate,
    output_dir: Path,
    chunk_size: int,
    progress: bool,
    shard: Shard | None = None,
) -> BenchmarkResult:
    cache_root = output_dir / "generations"
    cache = GenerationCache(cache_root, engine.model_name, benchmark.name, None if shard is None else shard.rank)
    prompts = [template(record) for record in records]
    missing = {
        i
        for i, (r, p) in enumerate(zip(records, prompts, strict=True))
        if cache.get(r.id, sampling, p) is None
    }
    chunks = shard_chunks(len(records), missing, chunk_size, shard)
    to_generate = sum(map(len, chunks))
    logger.info(
        "%s: %d items, %d cached, %d to generate%s.",
        benchmark.name,
        len(records),
        len(records) - len(missing),
        to_generate,
        "" if shard is None else f" on rank {shard.rank} of {shard.world_size}",
        extra={"all_ranks": shard is not None},
    )
    with tqdm(
        total=len(records),
        initial=len(records) - to_generate,
        desc=benchmark.name,
        unit="item",
        disable=not progress or not is_main_process(),
    ) as bar:
        for chunk in chunks:
            outputs = engine.generate([prompts[i] for i in chunk], sampling)
            if len(outputs) != len(chunk) or any(len(o) != sampling.n for o in outputs):
                raise RuntimeError(
                    f"{type(engine).__name__}.generate returned {[len(o) for o in outputs]} completions for "
                    f"{len(chunk)} prompts; expected {sampling.n} per prompt."
                )
            cache.put(
                [(records[i].id, prompts[i], out) for i, out in zip(chunk, outputs, strict=True)], sampling
            )
            bar.update(len(chunk))
    if shard is not None:  # grade from every rank's cache once all have written their shard
        wait_for_all_ranks()
        cache = GenerationCache(cache_root, engine.model_name, benchmark.name)

    rows, item_accuracy, unanswered, truncated = [], [], 0, 0
    for record, prompt in zip(records, prompts, strict=True):
        completions = cache.get(record.id, sampling, prompt)
        if completions is None:  # only under data parallelism, were a rank's cache file lost
            raise RuntimeError(
                f"{benchmark.name}: item {record.id!r} has no generation in {cache_root}; rerun to generate it."
            )
        predictions = [extract_choice(c.text, record.options) for c in completions]
        correct = [p == record.answer for p in predictions]
        item_accuracy.append(sum(correct) / len(correct))
        unanswered += predictions.count(None)
        truncated += sum(c.truncated for c in completions)
        rows.append(
            {
                "id": record.id,
                "answer": record.answer,
                "predictions": predictions,
                "correct": correct,
                "accuracy": item_accuracy[-1],
                "finish_reasons": [c.finish_reason for c in completions],
                "responses": [c.text for c in completions],
                "prompt": prompt,
            }
        )
    predictions_path = output_dir / model_slug(engine.model_name) / f"{benchmark.name}.predictions.jsonl"
    if shard is None or shard.rank == 0:
        write_jsonl(predictions_path, rows)
    accuracy, stderr = mean_and_stderr(item_accuracy)
    total = len(records) * sampling.n
    logger.info(
        "%s: accuracy %.2f%% ± %.2f (%d items).", benchmark.name, 100 * accuracy, 100 * stderr, len(records)
    )
    return BenchmarkResult(
        name=benchmark.name,
        title=benchmark.title,
        accuracy=accuracy,
        stderr=stderr,
        num_items=len(records),
        num_samples=sampling.n,
        no_answer_rate=unanswered / total,
        truncated_rate=truncated / total,
        predictions_path=str(predictions_path),
    )
