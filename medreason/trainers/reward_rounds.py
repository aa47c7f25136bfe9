"""A generation round whose rewards may still be in flight, and the rule for overlapping rounds.

DAPO scores each generation round before dynamic sampling decides whether another round is needed.
With judge rewards the scoring waits on a server (HealthBench-style rubrics: one judge request per
criterion per response), so the trainer splits a round in two: :func:`submit_rewards` starts every
reward (a :class:`~medreason.rewards.Reward` returns a future at once via ``submit``; plain functions
score on the spot) and :func:`resolve_rewards` waits for the scores where the group filter needs them.
In between, the trainer generates the next round when it is certain to be needed
(:meth:`~medreason.trainers.dynamic_sampling.GroupFilter.needs_another_round`): rounds are sampled in
the same order with the same seeds, and judge budgets are taken at submission in that order, so the
run equals the one-round-at-a-time run; only the waiting overlaps.

The loop of rounds is ours (see :mod:`~medreason.trainers.dapo_trainer` for why DAPO does not subclass
TRL's GRPOTrainer), so is its overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from medreason.rewards import Reward, RewardFunc
from medreason.utils.futures import call_now

__all__ = ["PendingRound", "begin_step", "resolve_rewards", "submit_rewards"]


@dataclass
class PendingRound:
    """One sampled generation round (this rank's share) whose rewards are being scored.

    Args:
        index: The round's number within its step.
        prompt_indices: The records' indices in the training set.
        records: The records sampled.
        texts: Each response's text (``num_generations`` per record, in order).
        completion_ids: Each response's token ids.
        truncated: Whether each response hit ``max_completion_length``.
        scores: Per reward function, the future of its scores.
    """

    index: int
    prompt_indices: list[int]
    records: list[dict[str, Any]]
    texts: list[str]
    completion_ids: list[list[int]]
    truncated: list[bool]
    scores: list[Future[list[float | None]]]


def begin_step(rewards: Sequence[RewardFunc]) -> None:
    """Tell every :class:`Reward` a new optimizer step starts (a judge's per-step budget is whole again)."""
    for reward in rewards:
        if isinstance(reward, Reward):
            reward.begin_step()


def submit_rewards(
    rewards: Sequence[RewardFunc], completions: list[str], **kwargs: Any
) -> list[Future[list[float | None]]]:
    """Start every reward on these completions: a :class:`Reward` through ``submit``, a function at once."""
    futures = []
    for reward in rewards:
        if isinstance(reward, Reward):
            futures.append(_submit(reward, completions, kwargs))
        else:
            futures.append(call_now(reward, completions, **kwargs))
    return futures


def _submit(reward: Reward, completions: list[str], kwargs: dict[str, Any]) -> Future[list[float | None]]:
    try:
        return reward.submit(completions, **kwargs)
    except Exception as error:  # noqa: BLE001 - raised where the scores are read, naming the reward
        failed: Future[list[float | None]] = Future()
        failed.set_exception(error)
        return failed


def resolve_rewards(
    names: Sequence[str], futures: Sequence[Future[list[float | None]]], count: int
) -> list[list[float | None]]:
    """Every reward's scores, waiting for those still in flight.

    Raises:
        RuntimeError: a reward raised; rewards must return ``None`` for samples they cannot score.
    """
    per_function = []
    for name, future in zip(names, futures, strict=True):
        try:
            per_function.append(list(future.result()))
        except Exception as error:
            raise RuntimeError(f"Reward {name!r} raised on a batch of {count} completions: {error!r}. "
                               "Rewards must return None for samples they cannot score, not raise.") from error
    return per_function
