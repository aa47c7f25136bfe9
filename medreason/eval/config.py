"""The settings of one evaluation: an eval stage's ``evaluate`` block and ``python -m medreason.eval``.

Both build the same :class:`EvalConfig` from the same keys (``conf/evaluate/default.yaml``), so a
setting cannot drift between the CLI and a recipe stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medreason.engines import ENGINE_BACKENDS, SamplingParams
from medreason.eval.runner import CARD_SAMPLING
from medreason.tasks.mcq import Benchmark
from medreason.tasks.prompts import PromptTemplate
from medreason.testing.tiny_data import write_tiny_benchmark
from medreason.utils.config_errors import FieldError, build_checked, check_field_types, check_ranges

BUILTIN_BENCHMARKS = ("tiny",)


@dataclass
class EngineSettings:
    """Which engine generates the answers.

    Args:
        backend: ``transformers`` (CPU, tests), ``vllm`` (offline, tensor parallel) or ``openai`` (a
            running OpenAI-compatible server).
        kwargs: Constructor arguments of that engine (vllm: ``tensor_parallel_size``; openai:
            ``base_url``; transformers: ``batch_size``, ``device``).
    """

    backend: str = "transformers"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalConfig:
    """Settings of one evaluation (arguments of :func:`medreason.eval.evaluate`).

    Args:
        suite: ``ii_medical``, ``reasonmed`` or ``finemedlm`` (the card whose table to use), or ``None``.
        benchmarks: Further registered benchmark names.
        builtin: ``"tiny"`` adds the built-in synthetic benchmark (``medreason.testing``).
        data_dir: Folder of the benchmark files (``None``: ``$MEDREASON_EVAL_DATA``).
        benchmark_paths: Benchmark name → a local file (Lancet, NEJM, GPQA-medical, MedBullets-5 and
            MedXpertQA are not public downloads).
        limit: Items per benchmark (all when ``None``).
        skip_missing: Leave out benchmarks whose data is missing instead of failing.
        greedy: Temperature 0 instead of ``sampling.temperature``.
        sampling: :class:`~medreason.engines.SamplingParams` (or a mapping of its fields); default the
            II-Medical cards' temperature 0.6, top-p 0.9.
        prompt: :class:`~medreason.eval.PromptTemplate` (or a mapping of its fields).
        engine: :class:`EngineSettings` (or a mapping of its fields).
        chunk_size: Prompts per engine call (and per cache flush).
        ttt: Test-time training settings (``corpus_path`` + :class:`medreason.ttt.TTTConfig` fields,
            ``conf/ttt/*.yaml``): evaluate without and with TTT and report both (FineMedLM-o1).
        judge: The judge of rubric suites (``healthbench``, ``healthbench_hard``, ``healthbench_consensus``,
            ``tiny_rubric``): ``backend``, ``model``, ``base_url``, ``kwargs`` (engine arguments), or
            ``builtin: keyword`` (the deterministic loopback judge of the CPU demo).

    >>> EvalConfig(suite="reasonmed", sampling={"temperature": 0.0, "max_tokens": 64}).sampling.max_tokens
    64
    >>> EvalConfig(sampling={"temprature": 0.0})
    Traceback (most recent call last):
    ...
    medreason.utils.config_errors.FieldError: sampling.temprature=0.0: is not a field of sampling; did you mean ['temperature']?
    """

    suite: str | None = None
    benchmarks: list[str] = field(default_factory=list)
    builtin: str | None = None
    data_dir: str | None = None
    benchmark_paths: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    skip_missing: bool = False
    greedy: bool = False
    sampling: SamplingParams = CARD_SAMPLING
    prompt: PromptTemplate = field(default_factory=PromptTemplate)
    engine: EngineSettings = field(default_factory=EngineSettings)
    chunk_size: int = 64
    ttt: dict[str, Any] | None = None
    judge: dict[str, Any] | None = None

    @property
    def rubric_suite(self) -> bool:
        """Whether :attr:`suite` is a rubric benchmark (graded by :attr:`judge`)."""
        from medreason.eval.rubric_eval import RUBRIC_BENCHMARKS

        return self.suite in RUBRIC_BENCHMARKS

    def __post_init__(self) -> None:
        self.sampling = build_checked(SamplingParams, self.sampling, "sampling")
        self.prompt = build_checked(PromptTemplate, self.prompt, "prompt")
        self.engine = build_checked(EngineSettings, self.engine, "engine")
        check_field_types(self)
        check_ranges(self, {"limit": 1, "chunk_size": 1})
        if self.engine.backend not in ENGINE_BACKENDS:
            raise FieldError("engine.backend", self.engine.backend, f"must be one of {ENGINE_BACKENDS}.")
        if self.builtin not in (None, *BUILTIN_BENCHMARKS):
            raise FieldError("builtin", self.builtin, f"must be null or one of {BUILTIN_BENCHMARKS}.")
        if self.rubric_suite:
            from medreason.eval.rubric_eval import check_judge_settings

            check_judge_settings(self.judge)
            for name in ("benchmarks", "builtin", "ttt"):
                if getattr(self, name):
                    raise FieldError(name, getattr(self, name), f"is not supported with the rubric suite {self.suite!r}; evaluate it in a run of its own.")
        if self.ttt:
            # imported here for speed: medreason.ttt loads torch and peft
            from medreason.ttt.config import TTTConfig

            settings = {k: v for k, v in self.ttt.items() if k != "corpus_path"}
            build_checked(TTTConfig, settings, "ttt")
            if self.engine.backend != "transformers":
                raise FieldError(
                    "engine.backend", self.engine.backend,
                    "ttt needs engine.backend=transformers (it trains the model in memory).",
                )

    def evaluate_kwargs(self, output_dir: str | Path) -> dict[str, Any]:
        """Keyword arguments of :func:`medreason.eval.evaluate` (and ``evaluate_and_report``) writing to ``output_dir``.

        With ``builtin="tiny"`` the built-in benchmark is written into ``output_dir`` first.
        """
        if self.rubric_suite:
            sampling = replace(self.sampling, temperature=0.0) if self.greedy else self.sampling
            return dict(
                judge=dict(self.judge or {}), backend=self.engine.backend, engine_kwargs=dict(self.engine.kwargs),
                sampling=sampling, data_dir=self.data_dir, path=self.benchmark_paths.get(str(self.suite)), limit=self.limit,
                output_dir=output_dir, chunk_size=self.chunk_size,
            )
        benchmarks: list[str | Benchmark] = list(self.benchmarks)
        if self.builtin == "tiny":
            path = write_tiny_benchmark(Path(output_dir))
            benchmarks.append(Benchmark(name="tiny_mcq", title="Tiny MCQ", path=str(path)))
        return dict(
            benchmarks=benchmarks or None,
            backend=self.engine.backend,
            engine_kwargs=dict(self.engine.kwargs),
            sampling=self.sampling,
            greedy=self.greedy,
            template=self.prompt,
            data_dir=self.data_dir,
            benchmark_paths=dict(self.benchmark_paths),
            limit=self.limit,
            skip_missing=self.skip_missing,
            output_dir=output_dir,
            chunk_size=self.chunk_size,
        )

