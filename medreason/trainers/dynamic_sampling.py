"""Which prompts are sampled, and which prompt groups are trained on (DAPO dynamic sampling).

A prompt whose ``G`` responses all get the same reward (all right or all wrong) has zero advantage
for every response (:func:`~medreason.trainers.dapo_loss.group_advantages`), so it only dilutes the
batch. DAPO (paper §3.2) generates from ``gen_prompt_batch_size`` prompts at a time (card: 1,536),
drops zero-variance groups, and keeps generating until ``train_prompt_batch_size`` groups (card: 512)
are collected. Extra kept groups of the last generation batch are discarded (verl does the same):
carrying them over would train on rollouts of an older policy next step.

:class:`PromptStream` hands out prompts across epochs and records its position for resuming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


@dataclass
class Rollout:
    """One prompt group: the prompt, its ``G`` responses and their scores."""

    prompt_index: int
    prompt_ids: torch.Tensor  # int32
    completion_ids: list[torch.Tensor]  # int32, one per response
    truncated: list[bool]
    rewards: list[float]  # NaN where every reward function skipped the response
    filter_values: list[float]  # what dynamic sampling looks at (the reward or one reward function)


class DynamicSamplingError(RuntimeError):
    """Too many generation batches were needed to fill one training batch."""


def nonconstant_groups(values: torch.Tensor | Sequence[float], group_size: int) -> torch.Tensor:
    """Which groups of ``group_size`` consecutive values are not all equal (``NaN`` = skipped, ignored).

    A group needs at least two scored values that differ; ``std > 0`` in verl's words.

    >>> nonconstant_groups(torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0]), group_size=3)
    tensor([ True, False])
    """
    values = torch.as_tensor(values, dtype=torch.float32)
    if values.dim() != 1 or values.numel() % group_size != 0:
        raise ValueError(f"Expected a 1-D tensor whose length divides by group_size={group_size}, got {tuple(values.shape)}.")
    grouped = values.view(-1, group_size)
    valid = ~torch.isnan(grouped)
    high = torch.where(valid, grouped, torch.full_like(grouped, -torch.inf)).amax(dim=-1)
    low = torch.where(valid, grouped, torch.full_like(grouped, torch.inf)).amin(dim=-1)
    return (valid.sum(dim=-1) >= 2) & (high > low)


@dataclass
class SamplingStats:
    """What it took to fill the last training batch (logged every step)."""

    generation_batches: int = 0
    generated_groups: int = 0
    kept_groups: int = 0

    @property
    def kept_group_ratio(self) -> float:
        """Kept / generated groups: low values mean most prompts are too easy or too hard."""
        return self.kept_groups / max(self.generated_groups, 1)


def rollout_metrics(
    generated: Sequence[tuple[list[list[float | None]], list[int], list[bool]]],
    reward_names: Sequence[str],
    batch: Sequence[Rollout],
    stats: SamplingStats,
) -> dict[str, float]:
    """A step's rollout metrics.

    ``rewards/<name>`` (each reward's mean, e.g. accuracy), ``completion_length_mean/max`` and
    ``truncation_rate`` cover every generated response (``generated``: per round, each reward function's
    scores, the response lengths and truncation flags); ``reward_mean``, ``reward_std`` and ``skipped_fraction``
    cover the kept training ``batch``; ``kept_group_ratio`` and ``generation_rounds`` come from ``stats``.
    """
    metrics: dict[str, float] = {}
    for f, name in enumerate(reward_names):
        scores = [s for per_function, _, _ in generated for s in per_function[f] if s is not None]
        metrics[f"rewards/{name}"] = sum(scores) / len(scores) if scores else math.nan
    lengths = [length for _, round_lengths, _ in generated for length in round_lengths]
    truncated = [flag for _, _, flags in generated for flag in flags]
    rewards = torch.tensor([r for group in batch for r in group.rewards])
    scored = rewards[~torch.isnan(rewards)]
    metrics.update({
        "reward_mean": scored.mean().item() if scored.numel() else math.nan,
        "reward_std": scored.std().item() if scored.numel() > 1 else math.nan,
        "skipped_fraction": 1.0 - scored.numel() / max(rewards.numel(), 1),
        "completion_length_mean": sum(lengths) / max(len(lengths), 1),
        "completion_length_max": float(max(lengths, default=0)),
        "truncation_rate": sum(truncated) / max(len(truncated), 1),
        "kept_group_ratio": stats.kept_group_ratio,
        "kept_groups": float(stats.kept_groups),
        "generated_groups": float(stats.generated_groups),
        "generated_tokens": float(sum(lengths)),
        "generation_rounds": float(stats.generation_batches),
    })
    return metrics


class GroupFilter(Generic[T]):
    """Collects prompt groups across generation batches until a training batch is full.

    Args:
        target_groups: Groups in one training batch (``train_prompt_batch_size``).
        max_num_gen_batches: Generation batches allowed per training batch (>= 1); ``None`` means no limit.
        enabled: With ``False`` every group is kept (plain GRPO batching), which needs
            generation batches at least as large as the training batch.

    >>> groups = GroupFilter(target_groups=2, max_num_gen_batches=3)
    >>> groups.add(["p0", "p1"], keep=torch.tensor([True, False]))
    >>> groups.full
    False
    >>> groups.add(["p2", "p3"], keep=torch.tensor([True, True]))
    >>> groups.pop_batch(), groups.stats.kept_group_ratio
    (['p0', 'p2'], 0.75)
    """

    def __init__(self, target_groups: int, max_num_gen_batches: int | None = None, enabled: bool = True):
        if target_groups < 1:
            raise ValueError(f"target_groups must be >= 1, got {target_groups}.")
        if max_num_gen_batches is not None and max_num_gen_batches < 1:
            raise ValueError(f"max_num_gen_batches must be >= 1 (None = no limit), got {max_num_gen_batches}.")
        self.target_groups = target_groups
        self.max_num_gen_batches = max_num_gen_batches
        self.enabled = enabled
        self._kept: list[T] = []
        self.stats = SamplingStats()

    @property
    def full(self) -> bool:
        """Whether enough groups are collected for a training batch."""
        return len(self._kept) >= self.target_groups

    def needs_another_round(self, incoming: int) -> bool:
        """Whether one more generation batch is certain to be needed after one of ``incoming`` groups arrives.

        True when even keeping all ``incoming`` groups cannot fill the batch and ``max_num_gen_batches``
        allows another batch: the trainer may then generate it while the incoming batch is being scored.

        >>> groups = GroupFilter(target_groups=4, max_num_gen_batches=3)
        >>> groups.needs_another_round(2), groups.needs_another_round(4)
        (True, False)
        """
        limit = self.max_num_gen_batches
        allowed = limit is None or self.stats.generation_batches + 2 <= limit
        return allowed and len(self._kept) + incoming < self.target_groups

    def add(self, groups: Sequence[T], keep: torch.Tensor) -> None:
        """Add one generation batch's groups; ``keep[k]`` says whether group ``k`` has reward variance.

        Raises:
            DynamicSamplingError: the batch is still not full after ``max_num_gen_batches`` batches.
        """
        if len(groups) != len(keep):
            raise ValueError(f"Got {len(groups)} groups but {len(keep)} keep flags.")
        kept = [group for group, flag in zip(groups, keep.tolist(), strict=True) if flag or not self.enabled]
        self._kept.extend(kept)
        self.stats.generation_batches += 1
        self.stats.generated_groups += len(groups)
        self.stats.kept_groups += len(kept)
        limit = self.max_num_gen_batches
        if not self.full and limit is not None and self.stats.generation_batches >= limit:
            raise DynamicSamplingError(
                f"Dynamic sampling kept {len(self._kept)} of {self.stats.generated_groups} prompt groups after "
                f"{self.stats.generation_batches} generation batches (max_num_gen_batches={self.max_num_gen_batches}) "
                f"but the training batch needs {self.target_groups}: almost every prompt gets the same reward for all "
                "its responses (too easy or too hard for the model, or a reward function that returns a constant). "
                "Check the rewards on a few samples, use harder/easier prompts, raise gen_prompt_batch_size or "
                "max_num_gen_batches, or lower train_prompt_batch_size."
            )

    def pop_batch(self) -> list[T]:
        """The first ``target_groups`` kept groups; the rest are discarded and the counters reset."""
        if not self.full:
            raise RuntimeError(f"pop_batch() called with {len(self._kept)} of {self.target_groups} groups collected.")
        batch = self._kept[: self.target_groups]
        self._kept = []
        return batch

    def reset_stats(self) -> None:
        """Start counting for the next training batch."""
        self.stats = SamplingStats()


@dataclass
class PromptStream:
    """An endless stream of prompt indices, reshuffled every epoch; its position is saved in checkpoints.

    Each generation round takes the next ``gen_prompt_batch_size`` indices, across epoch boundaries, so
    training never stops early at the end of an epoch, and a run resumed at an epoch boundary goes on
    with the next epoch (the order of epoch ``e`` is a permutation seeded with ``seed + e``).

    >>> stream = PromptStream(size=3, seed=0)
    >>> len(stream.take(5)), stream.state_dict(), round(stream.epochs_done, 2)
    (5, {'epoch': 1, 'position': 2}, 1.67)
    """

    size: int
    seed: int
    epoch: int = 0
    position: int = 0
    _order: list[int] = field(default_factory=list, repr=False)

    def take(self, count: int) -> list[int]:
        """The next ``count`` prompt indices."""
        taken: list[int] = []
        while len(taken) < count:
            if not self._order:
                generator = torch.Generator().manual_seed(self.seed + self.epoch)
                self._order = torch.randperm(self.size, generator=generator).tolist()
            chunk = self._order[self.position : self.position + count - len(taken)]
            taken.extend(chunk)
            self.position += len(chunk)
            if self.position == self.size:
                self.epoch, self.position, self._order = self.epoch + 1, 0, []
        return taken

    @property
    def epochs_done(self) -> float:
        """Epochs of prompts taken so far, fractional."""
        return self.epoch + self.position / self.size

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._order = state["epoch"], state["position"], []
