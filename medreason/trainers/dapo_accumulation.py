"""How a DAPO update accumulates its micro-batches under each launch: DDP, FSDP2 and DeepSpeed ZeRO.

A DAPO mini-batch has as many micro-batches as its token budget makes: evened out across ranks by the
trainer, but different from one update to the next. Each launch accumulates them its own way:

* **DDP** all-reduces once, in the last micro-batch's backward (``no_sync`` before it).
* **FSDP2** reduce-scatters in every backward: skipping it would accumulate unsharded gradients, a full
  model's worth per rank.
* **DeepSpeed** owns the optimizer step. ``engine.backward`` reduces (ZeRO-2/3 reduce-scatter every
  backward) and ``engine.step`` updates at a *gradient accumulation boundary*, which by default comes every
  ``gradient_accumulation_steps`` micro-batches, a number fixed in its config. Why that is no obstacle:
  the engine also takes the boundary from the caller (``engine.set_gradient_accumulation_boundary``), and
  accelerate's DeepSpeed wrapper sets it from ``accelerator.sync_gradients`` in every ``backward``, stepping
  the engine on a boundary only. So the config says ``gradient_accumulation_steps: 1`` (DeepSpeed then
  leaves the loss unscaled: it is already divided by the mini-batch's global token count) and each
  micro-batch declares whether it is the update's last. Clipping moves into the engine
  (``gradient_clipping: max_grad_norm``), which clips at the boundary before it steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from accelerate import Accelerator, DistributedType
from torch.distributed.tensor import DTensor

from medreason.utils.logging import get_logger

logger = get_logger(__name__)


def configure_deepspeed(accelerator: Accelerator, max_grad_norm: float) -> None:
    """Fill the DeepSpeed config values DAPO decides, before ``accelerator.prepare`` (see the module docstring).

    ``train_micro_batch_size_per_gpu`` only feeds DeepSpeed's throughput log here: DAPO's micro-batches
    hold as many sequences as fit the token budget.
    """
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    config.update(train_micro_batch_size_per_gpu=1, gradient_accumulation_steps=1, gradient_clipping=max_grad_norm)
    config.pop("train_batch_size", None)  # recomputed by DeepSpeed as micro x accumulation x ranks


@contextmanager
def micro_batch_backward(accelerator: Accelerator, model: torch.nn.Module, is_last: bool, sharded: bool) -> Iterator[None]:
    """The context one micro-batch's forward and backward run in: reduce (and, for DeepSpeed, step) on the last."""
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        accelerator.sync_gradients = is_last  # becomes the engine's accumulation boundary in accelerator.backward
        try:
            yield
        finally:
            accelerator.sync_gradients = True
        return
    with nullcontext() if sharded or is_last else accelerator.no_sync(model):
        yield


def finish_update(
    accelerator: Accelerator, model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_grad_norm: float
) -> tuple[torch.Tensor, bool]:
    """Clip and step after the last micro-batch; return the gradient norm and whether the update was skipped.

    DDP/FSDP2 skip an update whose gradient norm is not finite. Under DeepSpeed the engine stepped in the
    last backward already (skipping overflowing fp16 steps itself); its norm is reported, and a non-finite
    one is only warned about.
    """
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        grad_norm = torch.tensor(math.nan if grad_norm is None else float(grad_norm))
        if not torch.isfinite(grad_norm):
            logger.warning("DeepSpeed stepped with a gradient norm of %s (it skips only overflowing fp16 steps).",
                           grad_norm.item())
        return grad_norm, False
    if isinstance(grad_norm, DTensor):  # FSDP2: the norm is a replicated DTensor
        grad_norm = grad_norm.full_tensor()
    skipped = not bool(torch.isfinite(grad_norm))
    if skipped:
        logger.warning("Skipped an optimizer update: the gradient norm is %s.", grad_norm.item())
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, skipped
