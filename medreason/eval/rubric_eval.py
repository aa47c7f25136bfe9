"""Rubric benchmarks (HealthBench): generate answers, grade each criterion with a judge model, score.

The registry holds HealthBench's three files (``all``, ``hard``, ``consensus``) as the suites
``healthbench``, ``healthbench_hard`` and ``healthbench_consensus``; ``tiny_rubric`` is the CPU demo's
set (:mod:`medreason.testing.tiny_rubric`). :func:`evaluate_rubric` generates ``sampling.n``
responses per conversation (cached like every generation, :class:`~medreason.eval.cache.GenerationCache`),
asks the judge about every (response, criterion) pair in concurrent batches (cached verdicts:
:class:`~medreason.rewards.judging.JudgeCalls`, so a killed run resumes without repeating a judge
call), and scores with HealthBench's rule (:mod:`medreason.tasks.rubric_scoring`). Each response's
verdicts, the judge's explanations and raw answers go to ``<model>/<benchmark>.judged.jsonl`` for audit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from medreason.engines import Completion, GenerationEngine, SamplingParams, build_engine
from medreason.eval.cache import GenerationCache, model_slug
from medreason.eval.results import BenchmarkResult, EvalResults
from medreason.rewards.judging import JUDGE_SAMPLING, JudgeCalls, build_judge_engine, grade_rubrics
from medreason.tasks.rubric import RubricBenchmark, RubricRecord, load_rubric_records
from medreason.tasks.rubric_scoring import example_metrics, summarize
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

__all__ = ["RUBRIC_BENCHMARKS", "RUBRIC_SAMPLING", "evaluate_rubric", "get_rubric_benchmark", "register_rubric_benchmark"]

_HEALTHBENCH_NOTE = (
    "Download HealthBench's files from OpenAI's simple-evals (openaipublic.blob.core.windows.net/simple-evals/"
    "healthbench/: 2025-05-07-06-14-12_oss_eval.jsonl, hard_2025-05-08-21-00-10.jsonl, "
    "consensus_2025-05-09-20-00-46.jsonl) into data_dir; see docs/reproductions.md."
)

RUBRIC_BENCHMARKS: dict[str, RubricBenchmark] = {}
"""Every registered rubric benchmark by name; each is also a suite of that name (``suite=healthbench``)."""


def register_rubric_benchmark(benchmark: RubricBenchmark, overwrite: bool = False) -> None:
    """Add ``benchmark`` to :data:`RUBRIC_BENCHMARKS`; a second one with the same name is an error unless ``overwrite``."""
    if benchmark.name in RUBRIC_BENCHMARKS and not overwrite:
        raise ValueError(f"A rubric benchmark named {benchmark.name!r} is already registered; pass overwrite=True.")
    RUBRIC_BENCHMARKS[benchmark.name] = benchmark


def get_rubric_benchmark(name: str) -> RubricBenchmark:
    """The registered rubric benchmark ``name``; an unknown name lists the valid ones."""
    if name not in RUBRIC_BENCHMARKS:
        raise ValueError(f"Unknown rubric benchmark {name!r}; registered: {', '.join(sorted(RUBRIC_BENCHMARKS))}.")
    return RUBRIC_BENCHMARKS[name]


for _benchmark in (
    RubricBenchmark("healthbench", "HealthBench", path="healthbench/2025-05-07-06-14-12_oss_eval.jsonl", note=_HEALTHBENCH_NOTE),
    RubricBenchmark("healthbench_hard", "HealthBench Hard", path="healthbench/hard_2025-05-08-21-00-10.jsonl", note=_HEALTHBENCH_NOTE),
    RubricBenchmark(
        "healthbench_consensus", "HealthBench Consensus", path="healthbench/consensus_2025-05-09-20-00-46.jsonl",
        note=_HEALTHBENCH_NOTE,
    ),
):
    register_rubric_benchmark(_benchmark)

RUBRIC_SAMPLING = SamplingParams(n=1, temperature=0.6, top_p=0.9, max_tokens=16384, seed=0)
"""II-Medical-8B's recommended sampling (the card does not say how its HealthBench answers were sampled)."""


def _generate(
    engine: GenerationEngine,
    records: list[RubricRecord],
    sampling: SamplingParams,
    cache: GenerationCache,
    chunk_size: int,
) -> dict[str, list[Completion]]:
    answers = {r.id: found for r in records if (found := cache.get(r.id, sampling, r.prompt)) is not None}
    todo = [r for r in records if r.id not in answers]
    if answers:
        logger.info("%s: %d of %d conversations answered in the cache.", cache.benchmark, len(answers), len(records))
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        outputs = engine.generate([r.prompt for r in chunk], sampling)
        cache.put([(r.id, r.prompt, completions) for r, completions in zip(chunk, outputs, strict=True)], sampling)
        answers.update({r.id: completions for r, completions in zip(chunk, outputs, strict=True)})
    return answers


def evaluate_rubric(
    model: str | os.PathLike | None = None,
    suite: str | RubricBenchmark = "healthbench",
    judge: GenerationEngine | Mapping[str, Any] | None = None,
    engine: GenerationEngine | None = None,
    *,
    backend: str = "transformers",
    engine_kwargs: Mapping[str, Any] | None = None,
    sampling: SamplingParams = RUBRIC_SAMPLING,
    n: int | None = None,
    data_dir: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
    limit: int | None = None,
    output_dir: str | os.PathLike = "eval_results",
    chunk_size: int = 64,
    judge_sampling: SamplingParams | None = None,
    judge_max_attempts: int = 3,
    judge_chunk_size: int = 256,
) -> EvalResults:
    """Score a model on a rubric benchmark with a judge model.

    Args:
        model: A path or hub id to build an engine from (or pass ``engine``).
        suite: A registered rubric benchmark name (``healthbench``, ``healthbench_hard``,
            ``healthbench_consensus``) or a :class:`RubricBenchmark`.
        judge: The judge engine, or its settings ``{"backend": "openai", "model": ..., "base_url": ...}``.
        engine: A ready engine for the evaluated model (the caller keeps ownership).
        backend, engine_kwargs: How to build the evaluated model's engine from ``model``.
        sampling: How responses are sampled; ``n`` responses per conversation (each scored; HealthBench's ``n_repeats``).
        n: Overrides ``sampling.n``.
        data_dir: Folder that the benchmark's relative path resolves against (``$MEDREASON_EVAL_DATA``).
        path: A local file replacing the benchmark's registered source.
        limit: Only the first ``limit`` conversations.
        output_dir: Where caches, the judged audit file and ``results.json`` go.
        chunk_size: Conversations per generation call (and per cache flush).
        judge_sampling: The judge's sampling settings (default greedy).
        judge_max_attempts: Judge tries per criterion while its answer is unparsable.
        judge_chunk_size: Judge prompts per judge engine call; verdicts are cached after each, so a
            killed run loses at most the chunk in flight.

    Returns:
        :class:`EvalResults` with one :class:`BenchmarkResult` (score ± bootstrap error in ``[0, 1]``);
        ``results.json`` beside it also holds the axis/theme breakdown, judge failures and judge calls.

    Raises:
        ValueError: no judge, or an unknown benchmark.
        FileNotFoundError, RecordError: the benchmark's data is missing or malformed (checked before generating).
    """
    if (model is None) == (engine is None):
        raise TypeError("evaluate_rubric() needs exactly one of model= (to build an engine) or engine= (a ready one).")
    if judge is None:
        raise ValueError("A rubric benchmark needs a judge: pass judge.model=NAME judge.base_url=URL (HealthBench: gpt-4.1).")
    benchmark = suite if isinstance(suite, RubricBenchmark) else get_rubric_benchmark(suite)
    if path is not None:
        benchmark = replace(benchmark, path=os.fspath(path), dataset=None)
    if data_dir is None:
        data_dir = os.environ.get("MEDREASON_EVAL_DATA")
    if n is not None:
        sampling = replace(sampling, n=n)
    records = load_rubric_records(benchmark, data_dir, limit)  # validated before any model is loaded
    judge_engine = build_judge_engine(judge)
    owns_engine = engine is None
    if engine is None:
        engine = build_engine(backend, model=model, **dict(engine_kwargs or {}))
    output_dir = Path(output_dir)
    model_dir = output_dir / model_slug(engine.model_name)
    try:
        cache = GenerationCache(output_dir / "generations", engine.model_name, benchmark.name)
        answers = _generate(engine, records, sampling, cache, chunk_size)
    finally:
        if owns_engine:
            engine.close()
    calls = JudgeCalls(
        judge_engine,
        output_dir / "judgements" / model_slug(judge_engine.model_name) / f"{benchmark.name}.jsonl",
        judge_sampling or JUDGE_SAMPLING,
        max_attempts=judge_max_attempts,
        chunk_size=judge_chunk_size,
    )
    pairs = [(record, completion) for record in records for completion in answers[record.id]]
    try:
        grades = grade_rubrics(calls, [(r.prompt, c.text, r.rubrics) for r, c in pairs])
    finally:
        if not isinstance(judge, GenerationEngine):
            judge_engine.close()
    graded = [None if grade.failed else example_metrics(r, [bool(m) for m in grade.met]) for (r, _), grade in zip(pairs, grades, strict=True)]
    summary = summarize(graded)
    if summary.score is None:
        raise RuntimeError(
            f"{benchmark.name}: the judge {judge_engine.model_name} gave no verdict for any of {len(pairs)} responses "
            f"(last error: {next((o.error for g in grades for o in g.outcomes if o.error), '?')}); no score to report."
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    audit = model_dir / f"{benchmark.name}.judged.jsonl"
    with audit.open("w", encoding="utf-8") as handle:
        for (record, completion), grade, metrics in zip(pairs, grades, graded, strict=True):
            items = [
                {**item.to_json(), "criteria_met": met, "explanation": o.verdict.explanation if o.verdict else None,
                 "judge_raw": o.raw, "judge_error": o.error}
                for item, met, o in zip(record.rubrics, grade.met, grade.outcomes, strict=True)
            ]
            row = {"prompt_id": record.id, "response": completion.text, "metrics": metrics, "rubric_items": items}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    if summary.failed:
        logger.warning(
            "%s: the judge gave no verdict on some criteria of %d of %d responses; they are left out of the score "
            "(see judge_error in %s). Rerun to ask again.", benchmark.name, summary.failed, len(pairs), audit,
        )
    result = BenchmarkResult(
        name=benchmark.name,
        title=benchmark.title,
        accuracy=summary.score,
        stderr=summary.stderr or 0.0,
        num_items=len(records),
        num_samples=sampling.n,
        predictions_path=str(audit),
    )
    run = EvalResults(
        model=engine.model_name, benchmarks=[result], suite=benchmark.name, sampling=asdict(sampling), output_dir=str(model_dir)
    )
    run.save(model_dir / "results.json")
    details = {
        "benchmark": benchmark.name, "judge": judge_engine.model_name, "score": summary.score, "stderr": summary.stderr,
        "n": summary.n, "judge_failures": summary.failed, "judge_calls": calls.calls, "breakdown": summary.breakdown,
    }
    (model_dir / f"{benchmark.name}.rubric.json").write_text(json.dumps(details, indent=2) + "\n", encoding="utf-8")
    return run


register_rubric_benchmark(
    RubricBenchmark("tiny_rubric", "Tiny rubric", path="tiny_rubric.jsonl", note="The CPU demo's set: written on the fly.")
)

JUDGE_KEYS = ("backend", "model", "base_url", "builtin", "kwargs")
BUILTIN_JUDGES = ("keyword",)
"""Judges served on the loopback address for the CPU demo and tests (:mod:`medreason.testing.tiny_rubric`)."""


def check_judge_settings(judge: Mapping[str, Any] | None, key: str = "judge") -> None:
    """Raise before any work when a rubric suite's judge settings cannot work.

    Raises:
        FieldError: no judge model (and no builtin judge), or an unknown builtin judge.
    """
    from medreason.utils.config_errors import FieldError

    settings = dict(judge or {})
    unknown = sorted(set(settings) - set(JUDGE_KEYS))
    if unknown:
        raise FieldError(f"{key}.{unknown[0]}", settings[unknown[0]], f"is not a judge setting; valid ones are {JUDGE_KEYS}.")
    builtin = settings.get("builtin")
    if builtin is not None:
        if builtin not in BUILTIN_JUDGES:
            raise FieldError(f"{key}.builtin", builtin, f"must be null or one of {BUILTIN_JUDGES}.")
        return
    if not settings.get("model") or settings.get("model") == "???":
        raise FieldError(
            f"{key}.model", settings.get("model"),
            "a rubric suite needs a judge model: judge.model=NAME judge.base_url=URL (HealthBench's grader: gpt-4.1).",
        )


def evaluate_rubric_suite(model: str | os.PathLike, suite: str, judge: Mapping[str, Any], **kwargs: Any) -> EvalResults:
    """:func:`evaluate_rubric` from an evaluation config's settings (the CLI and the ``eval`` stage).

    ``judge`` is ``{"backend", "model", "base_url", "kwargs"}``, or ``{"builtin": "keyword"}`` for the
    deterministic keyword judge served on the loopback address while the evaluation runs.
    ``suite="tiny_rubric"`` writes the CPU demo's set into ``output_dir`` first.
    """
    from medreason.testing.openai_server import FakeLLMServer
    from medreason.testing.tiny_rubric import keyword_judge, write_tiny_rubric_benchmark

    check_judge_settings(judge)
    settings = dict(judge)
    output_dir = Path(kwargs.get("output_dir", "eval_results"))
    if suite == "tiny_rubric" and kwargs.get("path") is None:
        output_dir.mkdir(parents=True, exist_ok=True)
        kwargs["path"] = write_tiny_rubric_benchmark(output_dir).resolve()
    if settings.get("builtin") is None:
        engine_settings = {"backend": settings.get("backend", "openai"), "model": settings["model"], **dict(settings.get("kwargs") or {})}
        if settings.get("base_url"):
            engine_settings["base_url"] = settings["base_url"]
        return evaluate_rubric(model, suite, engine_settings, **kwargs)
    with FakeLLMServer(keyword_judge(), max_requests=10**7) as server:
        return evaluate_rubric(model, suite, {"model": "keyword-judge", "base_url": server.base_url, "max_concurrency": 16}, **kwargs)
