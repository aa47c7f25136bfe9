"""Cached, bounded-concurrency LLM calls for the synthesis pipelines, with strict parsing and failure rows.

A pipeline step hands :meth:`SynthRunner.run` a list of :class:`Call` objects, a :class:`Role` (which
engine, sampling settings and concurrency) and a parser ``parse(completions, call) -> value`` that
raises :class:`~medreason.synth.parsing.ParseError` on a malformed answer. For each call the runner:

1. looks up attempt 0, 1, … in the step's :class:`~medreason.synth.cache.CallCache` and parses the
   cached answers, so a rerun repeats no completed call;
2. sends the calls still missing to the engine in chunks of ``batch_size`` prompts, at most
   ``concurrency`` chunks in flight (HTTP: ``batch_size=1`` and many in flight; in-process engines:
   big batches, one at a time); each answer is appended to the cache as soon as it arrives;
3. retries an answer that fails to parse as a new call (attempt ``k`` uses seed ``seed + k``), up to
   ``max_attempts`` calls, then records a :class:`Failure` row. An engine that gives up (its own
   retries on 429/5xx/timeouts exhausted) also gives a failure row; nothing is cached for it, so the
   next run tries again. No error stops the run and no failed parse becomes a default value.

A tqdm bar per step shows items done, calls made and reused, calls/s, generated tokens (where the
backend reports token ids; HTTP servers do not) and characters, and failures.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from medreason.engines import build_engine
from medreason.engines.base import Completion, GenerationEngine, Prompt, SamplingParams
from medreason.synth.cache import CallCache, call_key
from medreason.synth.parsing import ParseError
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

__all__ = ["Call", "EnginePool", "Failure", "Role", "StageStats", "SynthRunner", "build_role"]

T = TypeVar("T")
_RAW_CHARS = 2000  # raw answer kept in a failure row


@dataclass(frozen=True)
class Call:
    """One LLM call a step wants answered.

    Args:
        id: Unique within the step (it names the item in failure rows and results).
        prompt: Text or chat messages.
        sampling: Overrides the role's sampling settings for this call (ReasonMed's temperatures).
    """

    id: str
    prompt: Prompt
    sampling: SamplingParams | None = None


@dataclass
class Role:
    """A model playing one part in a pipeline (generator, judge, verifier, …).

    Args:
        name: The role's config name (``common``, ``complex``, ``verifier``, …).
        model_name: The model's name as the engine reports it (part of every cache key).
        backend: The engine's backend name (part of every cache key).
        sampling: Default sampling settings of its calls.
        connect: Returns the engine, building it on first use (see :class:`EnginePool`).
        concurrency: Chunks of prompts in flight at once.
        batch_size: Prompts per engine call.
    """

    name: str
    model_name: str
    backend: str
    sampling: SamplingParams
    connect: Callable[[], GenerationEngine]
    concurrency: int = 1
    batch_size: int = 1

    @classmethod
    def for_engine(
        cls,
        name: str,
        engine: GenerationEngine,
        backend: str,
        sampling: SamplingParams,
        concurrency: int = 1,
        batch_size: int = 1,
    ) -> Role:
        """A role answered by an engine you built yourself."""
        return cls(name, engine.model_name, backend, sampling, lambda: engine, concurrency, batch_size)


@dataclass
class Failure:
    """An item a step could not produce, written to ``failures.jsonl``.

    Args:
        stage: The step.
        id: The item.
        kind: ``"parse"`` (every attempt answered in the wrong format) or ``"engine"`` (the backend
            gave up; the next run tries again).
        error: The last error.
        attempts: Calls made (or found in the cache) for the item.
        raw: The last raw answer, cut to 2,000 characters.
    """

    stage: str
    id: str
    kind: str
    error: str
    attempts: int
    raw: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The row written to ``failures.jsonl``."""
        return {
            "stage": self.stage,
            "id": self.id,
            "kind": self.kind,
            "error": self.error,
            "attempts": self.attempts,
            "raw": self.raw,
        }


@dataclass
class StageStats:
    """Counts of one step, as shown in the report."""

    items: int = 0
    done: int = 0
    failed: int = 0
    calls_made: int = 0
    calls_cached: int = 0
    parse_retries: int = 0
    tokens: int = 0
    characters: int = 0
    seconds: float = 0.0


@dataclass
class _Pending:
    call: Call
    sampling: SamplingParams
    attempt: int
    last_error: str = ""
    last_raw: str | None = None


class EnginePool:
    """Builds engines on first use, one per distinct backend/model/settings, shared by the roles naming it.

    Args:
        one_local_model: Keep at most one in-process (``vllm``/``transformers``) engine alive: building
            another closes the previous one, so roles on different local models take turns on the GPU.
    """

    LOCAL_BACKENDS = ("vllm", "transformers")

    def __init__(self, one_local_model: bool = True) -> None:
        self.one_local_model = one_local_model
        self._engines: dict[str, tuple[str, GenerationEngine]] = {}
        self._lock = threading.Lock()

    def get(
        self, backend: str, model: str, base_url: str | None, options: Mapping[str, Any]
    ) -> GenerationEngine:
        """The engine for these settings, built now if it is not alive."""
        key = repr((backend, model, base_url, sorted(options.items())))
        with self._lock:
            if key not in self._engines:
                if self.one_local_model and backend in self.LOCAL_BACKENDS:
                    for other in [k for k, (b, _) in self._engines.items() if b in self.LOCAL_BACKENDS]:
                        logger.info("Closing the %s engine to free its memory for %s.", other, model)
                        self._engines.pop(other)[1].close()
                kwargs = dict(options)
                if backend == "openai":
                    kwargs.setdefault("base_url", base_url)
                self._engines[key] = (backend, build_engine(backend, model=model, **kwargs))
            return self._engines[key][1]

    def close(self) -> None:
        """Close every engine built here."""
        with self._lock:
            for _, engine in self._engines.values():
                engine.close()
            self._engines.clear()


_ROLE_KEYS = ("backend", "model", "base_url", "engine", "sampling", "concurrency", "batch_size")


def build_role(name: str, settings: Mapping[str, Any], pool: EnginePool) -> Role:
    """Build the role ``name`` from its config block (``roles.<name>`` in the pipeline config).

    ``settings`` holds ``backend``, ``model``, ``base_url`` (HTTP only), ``engine`` (extra engine
    constructor arguments), ``sampling`` (:class:`SamplingParams` fields), ``concurrency`` and ``batch_size``.

    Raises:
        ValueError: an unknown key, a missing model, or a bad sampling setting (the message names the field).
    """
    unknown = sorted(set(settings) - set(_ROLE_KEYS))
    if unknown:
        raise ValueError(f"roles.{name}: unknown settings {unknown}; valid ones are {list(_ROLE_KEYS)}.")
    model = settings.get("model")
    if not model or model == "???":
        raise ValueError(
            f"roles.{name}.model is not set: pass model=NAME (all roles) or roles.{name}.model=NAME."
        )
    sampling_settings = dict(settings.get("sampling") or {})
    if "stop" in sampling_settings:
        sampling_settings["stop"] = tuple(sampling_settings["stop"] or ())
    try:
        sampling = SamplingParams(**sampling_settings)
    except (TypeError, ValueError) as error:
        raise ValueError(f"roles.{name}.sampling: {error}") from None
    concurrency, batch_size = int(settings.get("concurrency", 1)), int(settings.get("batch_size", 1))
    if concurrency < 1 or batch_size < 1:
        raise ValueError(
            f"roles.{name}: concurrency and batch_size must be >= 1, got {concurrency} and {batch_size}."
        )
    backend = str(settings.get("backend", "openai"))
    base_url, options = settings.get("base_url"), dict(settings.get("engine") or {})
    # cache keys use the name the engine will report: its model_name option, else the model
    model_name = str(options.get("model_name") or model)
    return Role(
        name,
        model_name,
        backend,
        sampling,
        lambda: pool.get(backend, str(model), base_url, options),
        concurrency,
        batch_size,
    )


def _attempt_sampling(sampling: SamplingParams, attempt: int) -> SamplingParams:
    if attempt == 0 or sampling.seed is None:
        return sampling
    return replace(sampling, seed=sampling.seed + attempt)


class SynthRunner:
    """Runs the LLM steps of a pipeline against the cache in ``output_dir/cache``.

    Args:
        output_dir: The run's output folder.
        max_attempts: Calls per item before an unparseable answer becomes a failure row.
        progress: Show a tqdm bar per step.
        fsync: ``fsync`` the cache after every record (survives power loss, costs a disk sync per call).

    >>> import tempfile
    >>> from medreason.engines import build_engine
    >>> from medreason.testing.openai_server import FakeLLMServer
    >>> from medreason.synth.parsing import parse_text
    >>> with FakeLLMServer(lambda body, index: "Graves disease") as server:
    ...     engine = build_engine("openai", model="fake", base_url=server.base_url)
    ...     role = Role.for_engine("generator", engine, "openai", SamplingParams(temperature=0.7), concurrency=8)
    ...     runner = SynthRunner(tempfile.mkdtemp(), progress=False)
    ...     runner.run("demo", role, [Call("q1", "Low TSH, high T4?")], lambda cs, call: parse_text(cs[0]))
    {'q1': 'Graves disease'}
    """

    def __init__(
        self, output_dir: str | Path, max_attempts: int = 3, progress: bool = True, fsync: bool = False
    ):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}.")
        self.output_dir = Path(output_dir)
        self.max_attempts = max_attempts
        self.progress = progress
        self.fsync = fsync
        self.failures: list[Failure] = []
        self.stats: dict[str, StageStats] = {}
        self._lock = threading.Lock()  # worker threads share the cache, results and counters

    def run(
        self,
        stage: str,
        role: Role,
        calls: Sequence[Call],
        parse: Callable[[list[Completion], Call], T],
    ) -> dict[str, T]:
        """Answer and parse ``calls``; return ``{call id: parsed value}`` for those that succeeded.

        Failures are appended to :attr:`failures`; counts go to ``stats[stage]``.
        """
        stats = self.stats.setdefault(stage, StageStats())
        stats.items += len(calls)
        started = time.perf_counter()
        cache = CallCache(self.output_dir / "cache" / f"{stage}.jsonl", fsync=self.fsync)
        results: dict[str, T] = {}
        todo: list[_Pending] = []
        for call in calls:
            pending = _Pending(call, call.sampling or role.sampling, 0)
            while pending.attempt < self.max_attempts:
                completions = cache.get(self._key(role, pending))
                if completions is None:
                    todo.append(pending)
                    break
                stats.calls_cached += 1
                if self._accept(pending, completions, parse, results, stats):
                    break
            else:
                self._fail(stage, pending, "parse", stats)
        bar = tqdm(
            total=len(calls),
            initial=len(calls) - len(todo),
            desc=stage,
            disable=not self.progress,
            unit="item",
        )
        try:
            self._send(stage, role, todo, parse, cache, results, stats, bar, started)
        finally:
            bar.close()
            stats.done += len(results)
            stats.seconds += time.perf_counter() - started
        return results

    @staticmethod
    def _key(role: Role, pending: _Pending) -> str:
        sampling = _attempt_sampling(pending.sampling, pending.attempt)
        return call_key(role.backend, role.model_name, pending.call.prompt, sampling, pending.attempt)

    def _accept(
        self,
        pending: _Pending,
        completions: list[Completion],
        parse: Callable[[list[Completion], Call], T],
        results: dict[str, T],
        stats: StageStats,
    ) -> bool:
        """Parse one answer; on failure remember why and move to the next attempt."""
        try:
            results[pending.call.id] = parse(completions, pending.call)
            return True
        except ParseError as error:
            pending.last_error = str(error)
            pending.last_raw = "\n---\n".join(c.text for c in completions)[:_RAW_CHARS]
            pending.attempt += 1
            if pending.attempt < self.max_attempts:
                stats.parse_retries += 1
            return False

    def _fail(self, stage: str, pending: _Pending, kind: str, stats: StageStats) -> None:
        stats.failed += 1
        attempts = pending.attempt + (kind == "engine")
        self.failures.append(
            Failure(stage, pending.call.id, kind, pending.last_error, attempts, pending.last_raw)
        )

    def _send(
        self,
        stage: str,
        role: Role,
        todo: list[_Pending],
        parse: Callable[[list[Completion], Call], T],
        cache: CallCache,
        results: dict[str, T],
        stats: StageStats,
        bar: tqdm,
        started: float,
    ) -> None:
        groups: dict[tuple[str, int], list[_Pending]] = defaultdict(list)
        for pending in todo:
            groups[(pending.sampling.cache_key(), pending.attempt)].append(pending)
        chunks = [
            group[i : i + role.batch_size]
            for group in groups.values()
            for i in range(0, len(group), role.batch_size)
        ]
        if not chunks:
            return
        engine = role.connect()

        def work(chunk: list[_Pending]) -> list[tuple[_Pending, bool]]:
            """Call the engine for ``chunk`` until each item parses or runs out of attempts."""
            outcomes: list[tuple[_Pending, bool]] = []
            while chunk:
                sampling = _attempt_sampling(chunk[0].sampling, chunk[0].attempt)
                try:
                    answers = engine.generate([p.call.prompt for p in chunk], sampling)
                except Exception as error:  # noqa: BLE001 - any backend error becomes a failure row
                    for pending in chunk:
                        pending.last_error = f"{type(error).__name__}: {error}"
                    return outcomes + [(pending, False) for pending in chunk]
                retry = []
                for pending, completions in zip(chunk, answers, strict=True):
                    with self._lock:
                        cache.put(
                            self._key(role, pending),
                            completions,
                            meta={
                                "stage": stage,
                                "id": pending.call.id,
                                "model": role.model_name,
                                "attempt": pending.attempt,
                            },
                        )
                        stats.calls_made += 1
                        stats.tokens += sum(len(c.token_ids) for c in completions)
                        stats.characters += sum(len(c.text) for c in completions)
                        accepted = self._accept(pending, completions, parse, results, stats)
                    if not accepted and pending.attempt < self.max_attempts:
                        retry.append(pending)
                    else:
                        outcomes.append((pending, True))  # answered: parsed, or a parse failure row
                chunk = retry
            return outcomes

        executor = ThreadPoolExecutor(max_workers=role.concurrency, thread_name_prefix=f"synth-{stage}")
        try:
            futures: set[Future] = {executor.submit(work, chunk) for chunk in chunks}
            while futures:
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    for pending, answered in future.result():
                        if pending.call.id not in results:
                            self._fail(stage, pending, "parse" if answered else "engine", stats)
                        bar.update(1)
                elapsed = max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(
                    calls=stats.calls_made,
                    cached=stats.calls_cached,
                    calls_s=f"{stats.calls_made / elapsed:.1f}",
                    tokens=stats.tokens,
                    chars=stats.characters,
                    failed=stats.failed,
                    refresh=False,
                )
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
