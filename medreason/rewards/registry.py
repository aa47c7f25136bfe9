"""Reward functions: the one signature, a registry of names, and async scoring with timeouts.

A reward scores a batch of completions of one kind (TRL's signature)::

    def my_reward(completions: list[str], *, answer: list[str], **kwargs) -> list[float | None]: ...

``completions`` are the generated texts (reasoning included); every dataset column arrives as a
keyword list aligned with ``completions`` (``answer``, ``options``, ...), plus what the trainer knows:
``prompts``, ``completion_ids``, ``truncated``, ``max_completion_length``, ``overlong_buffer_length``,
``overlong_penalty_factor``. Always accept ``**kwargs``. ``None`` means "this reward does not apply to
this sample": it is left out of the weighted sum, and a sample that every reward skips is skipped
by the trainer (no loss, not counted in its group's statistics). Rewards must not raise on any text.

Register one with :func:`register_reward` and name it in a recipe (``rewards: [mcq_accuracy, format]``)
or give a dotted path (``my_pkg.rewards.my_reward``). Subclass :class:`Reward` for rewards with
settings, or :class:`AsyncReward` for slow per-sample scorers such as LLM judges.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from medreason.utils.futures import call_now
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

RewardFunc = Callable[..., list[float | None]]

_REGISTRY: dict[str, RewardFunc] = {}

# AsyncReward's event loops, one per submission in flight (a trainer overlaps a round or two)
_ASYNC_REWARD_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="async-reward")


def register_reward(name: str) -> Callable[[RewardFunc], RewardFunc]:
    """Register a reward (function or :class:`Reward` instance/class) under ``name``.

    Raises:
        ValueError: ``name`` is already registered (two rewards must not share a name).

    >>> @register_reward("doc_length_example")
    ... def length_reward(completions, **kwargs):
    ...     return [min(len(text) / 100, 1.0) for text in completions]
    >>> get_reward("doc_length_example") is length_reward
    True
    """

    def decorator(reward: RewardFunc) -> RewardFunc:
        if name in _REGISTRY:
            raise ValueError(
                f"A reward named {name!r} is already registered ({_describe(_REGISTRY[name])}); "
                "pick another name for the new one."
            )
        _REGISTRY[name] = reward
        return reward

    return decorator


def _describe(reward: Any) -> str:
    return f"{getattr(reward, '__module__', '?')}.{getattr(reward, '__qualname__', type(reward).__qualname__)}"


def available_rewards() -> list[str]:
    """The registered reward names, sorted."""
    return sorted(_REGISTRY)


def get_reward(reward: str | RewardFunc, settings: Mapping[str, Any] | None = None) -> RewardFunc:
    """Resolve a registered name or a dotted path (``pkg.module.func``) to a callable reward.

    A :class:`Reward` subclass (rather than an instance) is instantiated with ``settings`` as keyword
    arguments (a recipe's ``reward_kwargs.<name>``); callables are returned as they are.

    Raises:
        ValueError: ``reward`` is neither a registered name nor an importable dotted path, or
            ``settings`` are given for a reward that takes none (a function or an instance).
    """
    if settings and not (isinstance(reward, type) or isinstance(reward, str)):
        raise ValueError(f"Reward {_describe(reward)} takes no settings, got {sorted(settings)}.")
    if callable(reward) and not isinstance(reward, type):
        return reward
    if isinstance(reward, type) and issubclass(reward, Reward):
        try:
            return reward(**dict(settings or {}))
        except TypeError as error:
            raise ValueError(f"Bad settings for reward {reward.__name__}: {error}.") from None
    if not isinstance(reward, str):
        raise TypeError(f"A reward must be a name, a dotted path or a callable, got {type(reward).__name__}.")
    if reward in _REGISTRY:
        return get_reward(_REGISTRY[reward], settings)
    module_name, _, attribute = reward.rpartition(".")
    if module_name:
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"Could not import reward {reward!r}: {error}.") from error
        return get_reward(found, settings)
    raise ValueError(
        f"Unknown reward {reward!r}. Registered rewards: {', '.join(available_rewards())}; "
        "or give a dotted path to a function such as my_pkg.rewards.my_reward."
    )


def reward_name(reward: RewardFunc) -> str:
    """A short name for metrics: the registered name, else the function or class name."""
    for name, registered in _REGISTRY.items():
        if registered is reward or (isinstance(registered, type) and isinstance(reward, registered)):
            return name
    return getattr(reward, "__name__", type(reward).__name__)


class Reward(ABC):
    """Base class for rewards with settings: implement :meth:`__call__` with the reward signature.

    Trainers call :meth:`submit` (and :meth:`begin_step` before each optimizer step): a reward that waits
    on a server (an LLM judge) overrides it to return at once, so the trainer generates its next round
    while the reward is in flight and reads the scores when it needs them.
    """

    @abstractmethod
    def __call__(self, completions: list[str], **kwargs: Any) -> list[float | None]:
        """One score (or ``None`` to skip) per completion."""

    def submit(self, completions: list[str], **kwargs: Any) -> Future[list[float | None]]:
        """Start scoring and return the scores' future; by default scores now (a finished future)."""
        return call_now(self, completions, **kwargs)

    def begin_step(self) -> None:
        """Called by trainers before each optimizer step's first generation round (per-step state, e.g. a budget)."""
        return None  # most rewards keep no per-step state


class AsyncReward(Reward):
    """A reward scored one completion at a time by a coroutine, concurrently, with a timeout.

    Implement :meth:`score`. Each call gets at most ``timeout`` seconds; a timeout or an exception
    gives ``None`` (skip, logged with a count) instead of failing or hanging the training step.
    Runs in its own thread and event loop, so it also works where a loop already runs (notebooks).

    Args:
        max_concurrency: Scoring calls in flight at once (an LLM judge's rate limit).
        timeout: Seconds allowed per completion.

    >>> class Length(AsyncReward):
    ...     async def score(self, completion, **sample):
    ...         return float(len(completion))
    >>> Length()(["ab", "abc"])
    [2.0, 3.0]
    """

    def __init__(self, max_concurrency: int = 16, timeout: float = 60.0):
        if max_concurrency < 1 or timeout <= 0:
            raise ValueError(f"Need max_concurrency >= 1 and timeout > 0, got {max_concurrency} and {timeout}.")
        self.max_concurrency = max_concurrency
        self.timeout = timeout

    @abstractmethod
    async def score(self, completion: str, **sample: Any) -> float | None:
        """Score one completion; ``sample`` holds that completion's dataset columns and trainer fields."""

    def __call__(self, completions: list[str], **kwargs: Any) -> list[float | None]:
        return self.submit(completions, **kwargs).result()

    def submit(self, completions: list[str], **kwargs: Any) -> Future[list[float | None]]:
        """Score in a background thread with its own event loop; return at once."""
        return _ASYNC_REWARD_THREADS.submit(asyncio.run, self._score_all(completions, kwargs))

    async def _score_all(self, completions: list[str], columns: dict[str, Any]) -> list[float | None]:
        semaphore = asyncio.Semaphore(self.max_concurrency)
        failures: list[str] = []

        async def one(index: int) -> float | None:
            sample = {
                key: value[index] if isinstance(value, Sequence) and not isinstance(value, str) else value
                for key, value in columns.items()
            }
            async with semaphore:
                try:
                    return await asyncio.wait_for(self.score(completions[index], **sample), self.timeout)
                except Exception as error:  # a judge failing on one sample must not stop training
                    failures.append(type(error).__name__)
                    return None

        scores = await asyncio.gather(*(one(index) for index in range(len(completions))))
        if failures:
            logger.warning(
                "%s skipped %d of %d completions (timeouts/errors: %s).",
                type(self).__name__, len(failures), len(completions), ", ".join(sorted(set(failures))),
            )
        return list(scores)


def combine_rewards(
    scores: Sequence[Sequence[float | None]], weights: Sequence[float], num_completions: int
) -> torch.Tensor:
    """Weighted sum over reward functions per completion; ``NaN`` where every function returned ``None``.

    Args:
        scores: ``scores[f][i]``: reward function ``f``'s score of completion ``i``.
        weights: One weight per reward function.
        num_completions: Expected length of every ``scores[f]``.

    Raises:
        ValueError: a reward returned the wrong number of scores, or a non-finite / non-number score.

    >>> combine_rewards([[1.0, None, None], [0.5, 0.5, None]], [1.0, 2.0], 3)
    tensor([2., 1., nan])
    """
    total = torch.zeros(num_completions, dtype=torch.float64)
    scored = torch.zeros(num_completions, dtype=torch.bool)
    for f, (function_scores, weight) in enumerate(zip(scores, weights, strict=True)):
        if len(function_scores) != num_completions:
            raise ValueError(
                f"Reward function #{f} returned {len(function_scores)} scores for {num_completions} completions; "
                "return exactly one float (or None) per completion."
            )
        for i, score in enumerate(function_scores):
            if score is None:
                continue
            if not isinstance(score, numbers.Real) or not math.isfinite(score):
                raise ValueError(f"Reward function #{f} returned {score!r} for completion {i}; return a finite float or None.")
            total[i] += weight * float(score)
            scored[i] = True
    total[~scored] = torch.nan
    return total.to(torch.float32)
