"""The full weights of a policy that may be sharded (FSDP2), on every rank, in bounded buckets.

Why not ``accelerator.get_state_dict``: under FSDP2 (and ZeRO-3) it gathers the full state dict on
rank 0 only, offloaded to CPU, so colocated rollout engines on the other ranks would keep sampling from
stale weights, and the whole model sits in host memory at once. Here every parameter is gathered on
every rank (``DTensor.full_tensor()``, an all-gather), a bucket of at most ``bucket_bytes`` at a time, so
each engine loads the new weights while peak memory grows by one bucket, not by one model.

Every function here is collective under FSDP2: all ranks must call it, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.distributed.tensor import DTensor

# Wrapper modules insert these into parameter names (activation checkpointing, torch.compile).
_WRAPPER_PREFIXES = ("_checkpoint_wrapped_module.", "_orig_mod.")
DEFAULT_BUCKET_BYTES = 1 << 30


def hf_name(name: str) -> str:
    """The Hugging Face parameter name of ``name``, without the prefixes wrapper modules add."""
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def is_sharded(model: torch.nn.Module) -> bool:
    """True when any parameter of ``model`` is a ``DTensor`` (FSDP2 / tensor parallel)."""
    return any(isinstance(parameter, DTensor) for parameter in model.parameters())


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor.detach()


def iter_weight_buckets(
    model: torch.nn.Module, bucket_bytes: int = DEFAULT_BUCKET_BYTES, parameters_only: bool = False
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Yield the state dict of ``model`` as lists of ``(HF name, full tensor)``, each at most ``bucket_bytes``.

    ``parameters_only``: the parameters alone, each tied one once (what an inference engine loads; a tied
    embedding is gathered once, not twice). A single tensor larger than ``bucket_bytes`` makes a bucket
    of its own. Tensors of an unsharded model are the live ones (detached), not copies: consume each
    bucket before the next update.

    >>> model = torch.nn.Linear(4, 2)
    >>> [[name for name, _ in bucket] for bucket in iter_weight_buckets(model, bucket_bytes=16)]
    [['weight'], ['bias']]
    """
    if bucket_bytes < 1:
        raise ValueError(f"bucket_bytes must be >= 1, got {bucket_bytes}.")
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    tensors = model.named_parameters() if parameters_only else model.state_dict().items()
    for name, tensor in tensors:
        nbytes = tensor.numel() * tensor.element_size()  # of the full tensor, also for a DTensor shard
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((hf_name(name), _full(tensor)))
        size += nbytes
    if bucket:
        yield bucket


def full_state_dict(model: torch.nn.Module, keep: bool = True) -> dict[str, torch.Tensor]:
    """The full state dict on CPU where ``keep`` (e.g. the main process, to save it); ``{}`` elsewhere.

    Collective under FSDP2: ranks with ``keep=False`` still take part in every gather.
    """
    state: dict[str, torch.Tensor] = {}
    for bucket in iter_weight_buckets(model):
        if keep:
            state.update((name, tensor.cpu()) for name, tensor in bucket)
    return state
