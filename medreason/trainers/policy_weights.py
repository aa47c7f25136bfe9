"""The full weights of a policy that may be sharded (FSDP2, ZeRO-3), on every rank, in bounded buckets.

Why not ``accelerator.get_state_dict``: under FSDP2 (and ZeRO-3) it gathers the full state dict on
rank 0 only, offloaded to CPU, so colocated rollout engines on the other ranks would keep sampling from
stale weights, and the whole model sits in host memory at once. Here every parameter is gathered on
every rank (``DTensor.full_tensor()``, an all-gather), a bucket of at most ``bucket_bytes`` at a time, so
each engine loads the new weights while peak memory grows by one bucket, not by one model. Under
DeepSpeed ZeRO-3 a bucket's parameters are gathered together (``deepspeed.zero.GatheredParameters``, an
all-gather of their partitions) and copied out before they are partitioned again.

Every function here is collective under FSDP2 and ZeRO-3: all ranks must call it, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

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


def is_zero3_partitioned(tensor: torch.Tensor) -> bool:
    """True for a parameter DeepSpeed ZeRO-3 has partitioned across the ranks (it carries a ``ds_id``)."""
    return hasattr(tensor, "ds_id")  # DeepSpeed marks its parameters with attributes, not a type


def is_sharded(model: torch.nn.Module) -> bool:
    """True when any parameter of ``model`` is a ``DTensor`` (FSDP2 / tensor parallel) or ZeRO-3 partitioned."""
    return any(isinstance(parameter, DTensor) or is_zero3_partitioned(parameter) for parameter in model.parameters())


def _full(tensor: torch.Tensor) -> torch.Tensor:
    if isinstance(tensor, DTensor):
        return tensor.full_tensor()
    # Gathered ZeRO-3 data is freed when the bucket is partitioned again: copy it out.
    return tensor.detach().clone() if is_zero3_partitioned(tensor) else tensor.detach()


def _full_nbytes(tensor: torch.Tensor) -> int:
    """Bytes of the full tensor, also for a DTensor shard or a ZeRO-3 partition (whose own numel is 0)."""
    numel = tensor.ds_numel if is_zero3_partitioned(tensor) else tensor.numel()
    return numel * tensor.element_size()


def _gathered(tensors: list[torch.Tensor]) -> AbstractContextManager:
    """All-gather the ZeRO-3 partitioned ones among ``tensors`` for the duration of the context."""
    partitioned = list({id(tensor): tensor for tensor in tensors if is_zero3_partitioned(tensor)}.values())  # tied once
    if not partitioned:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None)


def _named_tensors(model: torch.nn.Module, parameters_only: bool) -> list[tuple[str, torch.Tensor]]:
    """``model``'s parameters (each tied one once), or its state dict with ZeRO-3 entries as their parameters.

    Under ZeRO-3 ``state_dict()`` holds empty partitions; the parameters themselves can be gathered.
    """
    if parameters_only:
        return list(model.named_parameters())
    parameters = dict(model.named_parameters(remove_duplicate=False))
    return [(name, parameters.get(name, tensor)) for name, tensor in model.state_dict().items()]


def iter_weight_buckets(
    model: torch.nn.Module, bucket_bytes: int = DEFAULT_BUCKET_BYTES, parameters_only: bool = False
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Yield the state dict of ``model`` as lists of ``(HF name, full tensor)``, each at most ``bucket_bytes``.

    ``parameters_only``: the parameters alone, each tied one once (what an inference engine loads; a tied
    embedding is gathered once, not twice). A single tensor larger than ``bucket_bytes`` makes a bucket
    of its own. Tensors of an unsharded model are the live ones (detached), not copies: consume each
    bucket before the next update. Collective under FSDP2 and ZeRO-3: every rank consumes every bucket.

    >>> model = torch.nn.Linear(4, 2)
    >>> [[name for name, _ in bucket] for bucket in iter_weight_buckets(model, bucket_bytes=16)]
    [['weight'], ['bias']]
    """
    if bucket_bytes < 1:
        raise ValueError(f"bucket_bytes must be >= 1, got {bucket_bytes}.")
    buckets: list[list[tuple[str, torch.Tensor]]] = [[]]
    size = 0
    for name, tensor in _named_tensors(model, parameters_only):
        nbytes = _full_nbytes(tensor)
        if buckets[-1] and size + nbytes > bucket_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append((name, tensor))
        size += nbytes
    for bucket in buckets:
        if bucket:
            with _gathered([tensor for _, tensor in bucket]):
                full = [(hf_name(name), _full(tensor)) for name, tensor in bucket]
            yield full


def full_state_dict(model: torch.nn.Module, keep: bool = True) -> dict[str, torch.Tensor]:
    """The full state dict on CPU where ``keep`` (e.g. the main process, to save it); ``{}`` elsewhere.

    Collective under FSDP2 and ZeRO-3: ranks with ``keep=False`` still take part in every gather.
    """
    state: dict[str, torch.Tensor] = {}
    for bucket in iter_weight_buckets(model):
        if keep:
            state.update((name, tensor.cpu()) for name, tensor in bucket)
    return state
