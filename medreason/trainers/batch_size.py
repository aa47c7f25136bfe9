"""The global batch size the model cards print, turned into gradient accumulation."""

from __future__ import annotations


def accumulation_steps(global_batch_size: int, per_device_batch_size: int, world_size: int, where: str) -> int:
    """``gradient_accumulation_steps`` so that ``per_device × world_size × steps == global_batch_size``.

    Raises:
        ValueError: ``global_batch_size`` is not a multiple of ``per_device × world_size``; ``where``
            names the config in the message.

    >>> accumulation_steps(128, 2, 8, "stage 'sft'")
    8
    """
    per_step = per_device_batch_size * world_size
    if global_batch_size < 1 or global_batch_size % per_step:
        raise ValueError(
            f"{where}: global_batch_size={global_batch_size} is not a multiple of per_device_train_batch_size "
            f"({per_device_batch_size}) x world size ({world_size}). Change per_device_train_batch_size or the "
            "number of processes."
        )
    return global_batch_size // per_step
