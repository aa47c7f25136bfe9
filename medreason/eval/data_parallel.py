"""Data-parallel evaluation: which items each rank of a multi-process launch generates.

Under ``accelerate launch``/``torchrun`` with N processes, :func:`~medreason.eval.evaluate` with
``data_parallel=True`` runs on every rank; each loads the whole model into a transformers engine on its
own device and generates its share of every benchmark. The share is made of whole chunks of
``chunk_size`` items: chunk k (items ``k*chunk_size … (k+1)*chunk_size - 1``) belongs to rank
``k % N``. Because the transformers engine seeds each ``generate`` call (not each item), a fresh run
then makes exactly the engine calls one process makes, with the same prompts in the same batches, so
even sampled completions, and the table, equal one process's. (A resumed run, in one process or many,
batches what is left differently, as a resumed one-process run always has.)

vLLM and HTTP engines are not data-parallel here: vLLM shards the model over GPUs itself and a server
batches requests from one client, so those evaluations run on the main process while the others wait.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from medreason.engines import GenerationEngine
from medreason.utils.launch import launch_state

__all__ = ["Shard", "engine_kwargs_for_rank", "process_shard", "shard_chunks", "wait_for_all_ranks"]


@dataclass(frozen=True)
class Shard:
    """This process's place in a data-parallel evaluation.

    Args:
        rank: The global rank.
        world_size: How many processes evaluate (more than one).
    """

    rank: int
    world_size: int


def process_shard() -> Shard | None:
    """This process's :class:`Shard` under a launch of several processes; ``None`` in one process."""
    state = launch_state()
    return Shard(state.process_index, state.num_processes) if state.num_processes > 1 else None


def shard_chunks(num_items: int, missing: Collection[int], chunk_size: int, shard: Shard | None) -> list[list[int]]:
    """The engine calls to make: lists of item indices, each at most ``chunk_size`` long.

    One process (``shard=None``) chunks the ``missing`` items in order. A rank takes the chunks
    ``k % world_size == rank`` of all ``num_items`` items and keeps their missing ones, so the shards do
    not depend on what the other ranks have cached.

    >>> shard_chunks(7, {0, 1, 2, 3, 4, 5, 6}, 2, Shard(1, 2))
    [[2, 3], [6]]
    >>> shard_chunks(7, {1, 2, 5}, 2, None)
    [[1, 2], [5]]
    """
    if shard is None:
        ordered = sorted(missing)
        return [ordered[start : start + chunk_size] for start in range(0, len(ordered), chunk_size)]
    owned = (
        range(start, min(start + chunk_size, num_items))
        for start in range(shard.rank * chunk_size, num_items, shard.world_size * chunk_size)
    )
    return [chunk for chunk in ([i for i in items if i in missing] for items in owned) if chunk]


def engine_kwargs_for_rank(backend: str, engine: GenerationEngine | None, engine_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``engine_kwargs`` with this rank's device (``cuda:<local rank>`` on GPUs) unless one is set.

    Raises:
        ValueError: a ready ``engine`` was passed, or ``backend`` is not ``transformers``.
    """
    if engine is not None or backend != "transformers":
        raise ValueError(
            f"data_parallel=True needs backend='transformers' and no ready engine (got backend={backend!r}, "
            f"engine={type(engine).__name__ if engine is not None else None}): each rank builds its own engine. "
            "vLLM and OpenAI-compatible servers parallelise generation themselves; evaluate on one process."
        )
    return {"device": launch_state().device, **engine_kwargs}


def wait_for_all_ranks() -> None:
    """Block until every rank has written its shard.

    A collective barrier: the shards are equal in size, so ranks arrive close together, but a rank that
    runs far behind (long reasoning traces) must arrive within the process group's timeout (torch's
    default 30 minutes, which accelerate keeps; the first stage's ``Accelerator`` may set another).
    """
    launch_state().wait_for_everyone()
