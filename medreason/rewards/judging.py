"""Judge-model calls shared by rubric evaluation and the judge rewards: batched, cached, retried, audited.

:class:`JudgeCalls` sends judge prompts through any :class:`~medreason.engines.GenerationEngine`
(an OpenAI-compatible server, vLLM, transformers) in chunks of ``chunk_size`` prompts per
``generate`` call (the engine runs a chunk's requests concurrently), parses each answer, and retries
an unparsable one up to ``max_attempts`` times in all (with a new seed, and at temperature 1.0 when
the first try was greedy, since a greedy judge would only repeat itself). A judge that still gives no
verdict, or whose engine fails, yields a :class:`JudgeOutcome` with ``verdict=None`` and the reason:
the caller records it as a failure, never as "not met".

Parsed verdicts are appended to a JSONL cache (flushed and synced per chunk, keyed by judge model,
prompt and sampling settings) with the judge's raw answers, so a killed run repeats no judge call
that had finished, and every verdict can be audited. Failures are not cached: a rerun asks again.

:meth:`JudgeCalls.submit` sends prompts in the background and returns a future, so a trainer generates
its next round while the judge answers this one; what each submission asks (cache hits, prompts already
in flight, the budget) is decided when it is submitted, in order, so overlapping changes no result.

:func:`grade_rubrics` is HealthBench's grading (one call per criterion) on top of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from medreason.engines import GenerationEngine, SamplingParams, build_engine
from medreason.rewards.registry import Reward
from medreason.tasks.judge_prompts import JudgeVerdict, parse_rubric_verdict, rubric_judge_prompt
from medreason.tasks.rubric import RubricItem
from medreason.utils.futures import gather, then
from medreason.utils.jsonl import JsonlLog
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

__all__ = [
    "JudgeCalls",
    "JudgeOutcome",
    "JudgedReward",
    "RubricGrade",
    "SubmittedJudging",
    "build_judge_engine",
    "final_answer",
    "grade_rubrics",
    "rubric_grades",
    "rubric_prompts",
]

Messages = list[dict[str, str]]
Parser = Callable[[str], JudgeVerdict | None]

JUDGE_SAMPLING = SamplingParams(temperature=0.0, max_tokens=1024, seed=0)
"""Greedy judging: the same answer always gets the same verdict (HealthBench's GPT-4.1 grader is
sampled at the API default; pass ``sampling=`` to match that)."""


def final_answer(text: str) -> str:
    """The part of a response after its reasoning (``</think>``), which is what judges grade.

    >>> final_answer("<think>\\nmaybe croup\\n</think>\\n\\nSee a doctor today.")
    'See a doctor today.'
    """
    return text.rsplit("</think>", 1)[1].strip() if "</think>" in text else text.strip()


def build_judge_engine(settings: GenerationEngine | Mapping[str, Any], key: str = "judge") -> GenerationEngine:
    """An engine from ``{"backend": "openai", "model": ..., "base_url": ..., **engine kwargs}`` (or the engine itself).

    Raises:
        ValueError: no ``model``, naming ``key``.
    """
    if isinstance(settings, GenerationEngine):
        return settings
    options = dict(settings)
    backend = str(options.pop("backend", "openai"))
    model = options.pop("model", None)
    if not model or model == "???":
        raise ValueError(
            f"{key}.model is not set: name the judge model, e.g. {key}.model=gpt-4.1 {key}.base_url=https://api.openai.com/v1."
        )
    return build_engine(backend, model=str(model), **options)


@dataclass
class JudgeOutcome:
    """One judge prompt's result.

    Args:
        verdict: The parsed verdict, or ``None`` when the judge failed.
        raw: Every answer the judge gave (one per attempt), for audit.
        cached: Whether the verdict came from the cache (no call made).
        error: Why there is no verdict (unparsable answers, engine error, budget spent).
    """

    verdict: JudgeVerdict | None
    raw: list[str] = field(default_factory=list)
    cached: bool = False
    error: str | None = None


@dataclass
class SubmittedJudging:
    """Judge prompts on their way: the outcomes to come, and how many new requests were sent for them.

    Args:
        outcomes: One :class:`JudgeOutcome` per submitted prompt, in order, once the judge has answered.
        sent: New judge prompts this submission sent (cache hits, shared in-flight prompts and prompts
            over the budget not counted): what it takes from a budget.
    """

    outcomes: Future[list[JudgeOutcome]]
    sent: int


class JudgeCalls:
    """Batched, cached, retried calls to a judge model.

    Args:
        engine: The judge.
        cache_path: JSONL file holding parsed verdicts (``None``: no cache).
        sampling: Judge sampling settings (``n`` is forced to 1).
        max_attempts: Tries per prompt while the answer is unparsable (>= 1).
        chunk_size: Prompts per ``engine.generate`` call; the cache is written after each.

    >>> from medreason.tasks.judge_prompts import parse_score_verdict
    >>> from medreason.testing.openai_server import FakeLLMServer
    >>> with FakeLLMServer(lambda body, index: '{"score": 0.5}') as server:
    ...     judge = JudgeCalls(build_judge_engine({"model": "judge", "base_url": server.base_url}))
    ...     [outcome.verdict.value for outcome in judge.run([[{"role": "user", "content": "?"}]], parse_score_verdict)]
    [0.5]
    """

    def __init__(
        self,
        engine: GenerationEngine,
        cache_path: str | os.PathLike | None = None,
        sampling: SamplingParams = JUDGE_SAMPLING,
        max_attempts: int = 3,
        chunk_size: int = 256,
    ):
        if max_attempts < 1 or chunk_size < 1:
            raise ValueError(f"JudgeCalls needs max_attempts >= 1 and chunk_size >= 1, got {max_attempts} and {chunk_size}.")
        self.engine = engine
        self.sampling = replace(sampling, n=1)
        self.max_attempts = max_attempts
        self.chunk_size = chunk_size
        self.calls = 0
        """Judge requests sent so far (cache hits not counted)."""
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future[dict[str, JudgeOutcome]]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._log = JsonlLog(Path(cache_path), fsync=True) if cache_path is not None else None
        self._cache: dict[str, dict[str, Any]] = {}
        if self._log is not None:
            for entry in self._log.read(lambda entry: entry):
                if isinstance(entry, dict) and "key" in entry and "value" in entry:
                    self._cache[entry["key"]] = entry

    def _key(self, prompt: Messages, kind: str) -> str:
        text = json.dumps([self.engine.model_name, kind, prompt, self.sampling.cache_key()], sort_keys=True, ensure_ascii=False)
        return hashlib.sha1(text.encode()).hexdigest()

    def _attempt_sampling(self, attempt: int) -> SamplingParams:
        if attempt == 0:
            return self.sampling
        seed = (self.sampling.seed or 0) + attempt
        return replace(self.sampling, seed=seed, temperature=self.sampling.temperature or 1.0)

    def run(self, prompts: Sequence[Messages], parse: Parser, budget: int | None = None) -> list[JudgeOutcome]:
        """One outcome per prompt, in order; identical prompts are asked once.

        Args:
            prompts: Judge prompts as chat messages.
            parse: Reads a verdict from an answer (``None`` = unparsable, ask again).
            budget: Most new judge prompts to send in this call (cache hits are free); the rest get
                ``verdict=None`` with ``error="judge budget spent"``.
        """
        # on this thread, as before submit existed: Ctrl-C stops the run between chunks, not after all of them
        return self.submit(prompts, parse, budget, background=False).outcomes.result()

    def submit(
        self, prompts: Sequence[Messages], parse: Parser, budget: int | None = None, background: bool = True
    ) -> SubmittedJudging:
        """Send the judge prompts in the background and return at once (``background=False``: ask them first).

        Which prompts are cache hits, which are already in flight (asked by an earlier submission whose
        answers have not come yet: their outcome is shared, not asked again) and which the budget leaves
        out is decided here, on the caller's thread, in submission order, so overlapping submissions
        send exactly the requests that one-after-another calls would.
        """
        kind = getattr(parse, "__name__", "parse")
        keys = [self._key(list(prompt), kind) for prompt in prompts]
        known: dict[str, JudgeOutcome | Future[dict[str, JudgeOutcome]]] = {}
        todo: dict[str, Messages] = {}
        with self._lock:
            for key, prompt in zip(keys, prompts, strict=True):
                if key in known or key in todo:
                    continue
                entry = self._cache.get(key)
                if entry is not None:
                    known[key] = JudgeOutcome(JudgeVerdict(entry["value"], entry.get("explanation", "")), entry.get("raw", []), True)
                elif key in self._in_flight:
                    known[key] = self._in_flight[key]
                elif budget is not None and len(todo) >= budget:
                    known[key] = JudgeOutcome(None, error="judge budget spent")
                else:
                    todo[key] = list(prompt)
            asked: Future[dict[str, JudgeOutcome]] = Future()
            for key in todo:
                self._in_flight[key] = known[key] = asked
        if todo:
            work = partial(self._ask, asked, list(todo), list(todo.values()), parse)
            if background:
                self._executor().submit(work)
            else:
                work()
        waits = list(dict.fromkeys(value for value in known.values() if isinstance(value, Future)))

        def collect(answered: list[dict[str, JudgeOutcome]]) -> list[JudgeOutcome]:
            found = {key: value for key, value in known.items() if isinstance(value, JudgeOutcome)}
            for results in answered:
                found.update((key, outcome) for key, outcome in results.items() if key in known)
            return [found[key] for key in keys]

        return SubmittedJudging(then(gather(waits), collect), len(todo))

    def _executor(self) -> ThreadPoolExecutor:
        # one thread per submission in flight (a trainer overlaps a round or two); within a submission the
        # chunks go one after another, each chunk's requests concurrently on the engine's own loop
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="judge")
        return self._pool

    def _ask(self, answered: Future[dict[str, JudgeOutcome]], keys: list[str], prompts: list[Messages], parse: Parser) -> None:
        try:  # chunk after chunk, each cached as soon as it is answered: a killed run loses one chunk at most
            results: dict[str, JudgeOutcome] = {}
            for start in range(0, len(keys), self.chunk_size):
                end = start + self.chunk_size
                results.update(self._ask_chunk(keys[start:end], prompts[start:end], parse))
            answered.set_result(results)
        except BaseException as error:  # KeyboardInterrupt too: whoever waits on these prompts must not hang
            answered.set_exception(error)
            raise
        finally:  # answered (and cached) or failed (not cached: a later submission asks again)
            with self._lock:
                for key in keys:
                    self._in_flight.pop(key, None)

    def _ask_chunk(self, keys: list[str], prompts: list[Messages], parse: Parser) -> dict[str, JudgeOutcome]:
        results = {key: JudgeOutcome(None) for key in keys}
        waiting = list(range(len(keys)))
        for attempt in range(self.max_attempts):
            if not waiting:
                break
            try:
                answers = self.engine.generate([prompts[i] for i in waiting], self._attempt_sampling(attempt))
            except Exception as error:  # noqa: BLE001 - any backend error is a judge failure of these prompts
                for i in waiting:
                    results[keys[i]].error = f"judge engine failed: {type(error).__name__}: {error}"
                break
            with self._lock:
                self.calls += len(waiting)
            still = []
            for i, completions in zip(waiting, answers, strict=True):
                text = completions[0].text if completions else ""
                outcome = results[keys[i]]
                outcome.raw.append(text)
                verdict = parse(text)
                if verdict is None:
                    outcome.error = f"no verdict in {len(outcome.raw)} judge answer(s); last: {text[:200]!r}"
                    still.append(i)
                else:
                    outcome.verdict, outcome.error = verdict, None
            waiting = still
        self._store(results)
        return results

    def _store(self, results: dict[str, JudgeOutcome]) -> None:
        entries = [
            {"key": key, "model": self.engine.model_name, "value": o.verdict.value, "explanation": o.verdict.explanation, "raw": o.raw}
            for key, o in results.items()
            if o.verdict is not None
        ]
        with self._lock:
            for entry in entries:
                self._cache[entry["key"]] = entry
            if self._log is not None and entries:
                self._log.append(entries)


@dataclass
class RubricGrade:
    """The judge's verdict on each rubric item for one response.

    Args:
        met: Per item: met, not met, or ``None`` when the judge failed on it.
        outcomes: Per item: the judge outcome (raw answers, explanation, error).
    """

    met: list[bool | None]
    outcomes: list[JudgeOutcome]

    @property
    def failed(self) -> bool:
        """Whether the judge failed on any item (then the response has no score)."""
        return any(verdict is None for verdict in self.met)


def rubric_prompts(
    requests: Sequence[tuple[Sequence[Mapping[str, str]], str, Sequence[RubricItem]]],
) -> tuple[list[Messages], list[tuple[int, int]]]:
    """The judge prompts of each ``(conversation, response, rubric items)`` (one per item) and each request's span.

    ``response`` is graded as its :func:`final_answer` (the reasoning is not shown to the judge).
    """
    prompts, spans = [], []
    for conversation, response, items in requests:
        start = len(prompts)
        answer = final_answer(response)
        prompts.extend(rubric_judge_prompt(conversation, answer, item) for item in items)
        spans.append((start, len(prompts)))
    return prompts, spans


def rubric_grades(outcomes: Sequence[JudgeOutcome], spans: Sequence[tuple[int, int]]) -> list[RubricGrade]:
    """Each request's :class:`RubricGrade` from the outcomes of :func:`rubric_prompts`' prompts."""
    grades = []
    for start, end in spans:
        chosen = list(outcomes[start:end])
        met = [None if o.verdict is None else bool(o.verdict.value) for o in chosen]
        grades.append(RubricGrade(met, chosen))
    return grades


def grade_rubrics(
    judge: JudgeCalls,
    requests: Sequence[tuple[Sequence[Mapping[str, str]], str, Sequence[RubricItem]]],
    budget: int | None = None,
) -> list[RubricGrade]:
    """Grade each ``(conversation, response, rubric items)`` with one judge call per item, all batched together.

    ``response`` is graded as its :func:`final_answer` (the reasoning is not shown to the judge).
    """
    prompts, spans = rubric_prompts(requests)
    return rubric_grades(judge.run(prompts, parse_rubric_verdict, budget=budget), spans)


class JudgedReward(Reward):
    """Base of the judge rewards: the judge's settings, its cache and a per-step budget.

    Subclasses implement :meth:`submit`: build the judge prompts on the caller's thread, send them with
    :meth:`_judge` (it returns at once) and turn the outcomes into scores when they come. A trainer
    that calls :meth:`submit` generates its next round while the judge answers this one.

    Args:
        judge: The judge: an engine, or its settings ``{"backend": "openai", "model": ..., "base_url": ...,
            **engine kwargs}`` (the engine is built on first use, so a config error shows before training).
        cache_dir: Folder for the verdict cache (``<cache_dir>/<reward name>.jsonl``, ``….rank<N>.jsonl``
            per rank under a multi-process launch); ``None``: no cache.
        max_calls_per_step: Most new judge requests per optimizer step, over all its generation rounds
            (cache hits are free): the trainer calls :meth:`begin_step` before each step's first round.
            Completions beyond it are skipped (``None``) with a warning. Used outside a trainer, the count
            runs from the reward's creation or the last :meth:`begin_step`. ``None``: no limit.
        max_attempts: Tries per judge prompt while its answer is unparsable.
        sampling: Judge sampling settings (:class:`SamplingParams` or its fields); default greedy.
        chunk_size: Judge prompts per engine call.
    """

    cache_name = "judge"

    def __init__(
        self,
        judge: GenerationEngine | Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
        max_calls_per_step: int | None = None,
        max_attempts: int = 3,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        chunk_size: int = 256,
    ):
        key = f"reward_kwargs.{self.cache_name}.judge"
        if judge is None:
            raise ValueError(
                f"The {self.cache_name} reward needs a judge model: set {key}={{backend: openai, model: NAME, base_url: URL}}."
            )
        if not isinstance(judge, GenerationEngine):
            model = dict(judge).get("model")
            if not model or model == "???":
                raise ValueError(f"{key}.model is not set: name the judge model (and {key}.base_url for a server).")
        if max_calls_per_step is not None and max_calls_per_step < 1:
            raise ValueError(f"max_calls_per_step must be >= 1 or null, got {max_calls_per_step}.")
        self._judge_settings = judge
        # one file per rank under a multi-process launch: ranks judge different prompts and must not
        # interleave appends to one file (a resumed run has the same ranks, so each finds its own verdicts)
        rank = f".rank{os.environ['RANK']}" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
        self._cache_path = None if cache_dir is None else Path(cache_dir) / f"{self.cache_name}{rank}.jsonl"
        self._sampling = SamplingParams(**sampling) if isinstance(sampling, Mapping) else (sampling or JUDGE_SAMPLING)
        self._max_attempts, self._chunk_size = max_attempts, chunk_size
        self.max_calls_per_step = max_calls_per_step
        self.step_calls = 0
        """New judge requests sent since the last :meth:`begin_step` (what the budget counts)."""
        self._calls: JudgeCalls | None = None

    def begin_step(self) -> None:
        """Start a new optimizer step: the judge budget (``max_calls_per_step``) is whole again."""
        self.step_calls = 0

    def __call__(self, completions: list[str], **kwargs: Any) -> list[float | None]:
        return self.submit(completions, **kwargs).result()

    @abstractmethod
    def submit(self, completions: list[str], **kwargs: Any) -> Future[list[float | None]]:
        """Send the judge requests of these completions and return at once; the scores come in the future."""

    def _judge(self, prompts: Sequence[Messages], parse: Parser) -> Future[list[JudgeOutcome]]:
        """Submit judge prompts within what is left of this step's budget; failures are logged when they come."""
        budget = None if self.max_calls_per_step is None else max(self.max_calls_per_step - self.step_calls, 0)
        submitted = self.judge.submit(prompts, parse, budget)
        self.step_calls += submitted.sent

        def reported(outcomes: list[JudgeOutcome]) -> list[JudgeOutcome]:
            self._report(outcomes)
            return outcomes

        return then(submitted.outcomes, reported)

    @property
    def judge(self) -> JudgeCalls:
        """The judge calls (the engine is built on first use)."""
        if self._calls is None:
            self._calls = JudgeCalls(
                build_judge_engine(self._judge_settings, f"reward_kwargs.{self.cache_name}.judge"),
                self._cache_path, self._sampling, self._max_attempts, self._chunk_size,
            )
        return self._calls

    def _report(self, outcomes: Sequence[JudgeOutcome]) -> None:
        errors = sorted({o.error.split(":")[0] for o in outcomes if o.verdict is None and o.error})
        if errors:
            failed = sum(o.verdict is None for o in outcomes)
            logger.warning(
                "%s: %d of %d judge prompts gave no verdict (%s); their completions are skipped.",
                self.cache_name, failed, len(outcomes), "; ".join(errors),
            )
