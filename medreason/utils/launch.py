"""How this process was launched (``accelerate launch`` writes it to the environment), and what that asks of a run.

One ``accelerate launch`` runs every stage of a recipe. Each stage builds its own ``TrainingArguments``
(and so its own accelerate state) from the same environment, so the launch is read here, once per
question, rather than from an ``Accelerator`` that a stage may not have built yet.

Three things the launch asks of a run that accelerate does not do by itself:

* **DeepSpeed without a GPU.** accelerate starts DeepSpeed only when ``cpu=False``, and on a machine with no
  accelerator it finds no process-group backend of its own (so every rank would believe it runs alone).
  :func:`trainer_settings_for_launch` turns a training stage's ``use_cpu=True`` into ``use_cpu=False,
  ddp_backend="gloo"`` under a DeepSpeed launch on such a machine: DeepSpeed's CPU accelerator then runs
  ZeRO over gloo (``conf/accelerate/zero3_2cpu.yaml``). On GPUs nothing changes.
* **Rank-local model loading under ZeRO-3.** Once a ``TrainingArguments`` of a ZeRO-3 launch exists,
  transformers builds every model inside ``deepspeed.zero.Init``, which partitions each parameter
  across the ranks as it is created: a collective. Work that runs on the main process alone (synthesis,
  curation, evaluation, test-time training, building the tiny base model) would wait forever for the
  other ranks; :func:`rank_local_model_loading` loads whole models there instead.
* **FSDP without a GPU.** accelerate turns a launch into FSDP only when the process group's type is in its
  multi-accelerator family (``AcceleratorState``: ``MULTI_GPU``, ``MULTI_XPU``, ...); CPU ranks over gloo are
  ``MULTI_CPU``, so the same launch would silently train plain data parallel. FSDP2 itself runs on CPU tensors
  over gloo. :func:`trainer_settings_for_launch` starts the gloo group once, declares it ``MULTI_GPU``, and has
  every stage's ``TrainingArguments`` keep that state (``use_configured_state``) instead of rebuilding it as
  ``MULTI_CPU``; the first stage's ``Accelerator`` then picks FSDP with the launch's plugin
  (``conf/accelerate/fsdp2_2cpu.yaml``). The device stays the CPU: accelerate chose it when the group started.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accelerate import PartialState

LAUNCHES = ("single", "ddp", "fsdp", "deepspeed")


def launch_kind() -> str:
    """``"deepspeed"``, ``"fsdp"``, ``"ddp"`` (several processes, plain data parallel) or ``"single"``."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return "deepspeed"
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "fsdp"
    return "ddp" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "single"


def deepspeed_zero_stage() -> int | None:
    """The ZeRO stage of a DeepSpeed launch (``zero_stage`` in the accelerate config), else ``None``."""
    if launch_kind() != "deepspeed":
        return None
    return int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2"))


def has_accelerator() -> bool:
    """Whether torch sees a GPU (or another accelerator) to run on."""
    import torch

    return torch.accelerator.is_available()


def launch_state() -> PartialState:
    """accelerate's process state, over gloo when there is no GPU: the CPU launches
    (``conf/accelerate/*_2cpu.yaml``) start their ranks as GPU launches do, and a plain ``PartialState()``
    would find no backend there and take each rank for a single process."""
    from accelerate import PartialState

    return PartialState(cpu=not has_accelerator())


def trainer_settings_for_launch(settings: dict[str, Any]) -> dict[str, Any]:
    """A training stage's settings, adjusted to this launch (see the module docstring); a new dict.

    Under FSDP on CPU this also configures accelerate's shared state (once), which the settings then reuse.
    """
    if launch_kind() == "deepspeed" and not has_accelerator():
        return {**settings, "use_cpu": False, "ddp_backend": settings.get("ddp_backend") or "gloo"}
    if launch_kind() == "fsdp" and not has_accelerator():
        _declare_fsdp_capable_group()
        given = settings.get("accelerator_config") or {}
        if dataclasses.is_dataclass(given):  # an AcceleratorConfig of arguments being rebuilt
            given = dataclasses.asdict(given)
        accelerator_config = {**given, "use_configured_state": True}
        return {**settings, "use_cpu": True, "ddp_backend": "gloo", "accelerator_config": accelerator_config}
    return dict(settings)


def launch_problem(kind: str, settings: dict[str, Any]) -> str | None:
    """Why a stage of ``kind`` with these settings cannot run under this launch, with the fix; ``None`` if it can.

    Checked when the recipe is validated, before any stage runs.
    """
    launch = launch_kind()
    if launch == "deepspeed" and kind == "dapo":
        if deepspeed_zero_stage() == 3 and float(settings.get("kl_coef") or 0.0) > 0:
            return ("kl_coef > 0 copies the policy as the reference model, which ZeRO-3 has partitioned across the "
                    "ranks. Set kl_coef=0 (the card's value), or launch the dapo stage with "
                    "accelerate/fsdp2_8gpu.yaml (fsdp_cpu_ram_efficient_loading: false).")
    return None


@contextmanager
def rank_local_model_loading() -> Iterator[None]:
    """Models built inside load whole on this rank, even under a ZeRO-3 launch (see the module docstring).

    A no-op outside ZeRO-3. Restores transformers' DeepSpeed config on exit, so later stages of the run
    partition their models again.
    """
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref  # transformers keeps no public getter for it
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def forget_previous_stage_state() -> None:
    """Drop the accelerate state the previous stage built, keeping the process group, under DeepSpeed.

    Each stage's trainer builds its own ``Accelerator``; under DeepSpeed accelerate refuses a second one
    that brings a DeepSpeed plugin ("You cannot pass in a `deepspeed_plugin` when creating a second
    `Accelerator`"), though each stage's engine, batch sizes and clipping differ. Other launches keep the state.
    """
    if launch_kind() != "deepspeed":
        return
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # accelerate's own reset, as TrainingArguments' device set-up calls it


def accelerate_distributed_type() -> str:
    """The distributed type accelerate's shared state runs under now (``"FSDP"``, ``"DEEPSPEED"``, ...), for logs."""
    from accelerate.state import AcceleratorState, PartialState

    for state in (AcceleratorState, PartialState):
        if state._shared_state:  # accelerate has no public "is it built" test for either
            return state().distributed_type.value
    return "NO"


def _declare_fsdp_capable_group() -> None:
    """Start this rank's gloo group and mark it ``MULTI_GPU``, so that the next ``AcceleratorState`` picks FSDP.

    Our own few lines because accelerate has no switch for FSDP on CPU (the type test in
    ``AcceleratorState.__init__``); once a stage's ``Accelerator`` has picked FSDP the state is kept.
    """
    from accelerate import DistributedType, PartialState

    several = int(os.environ.get("WORLD_SIZE", "1")) > 1  # one process has no group to start
    state = PartialState(cpu=True, **({"backend": "gloo"} if several else {}))
    if state.distributed_type == DistributedType.MULTI_CPU:
        state.distributed_type = DistributedType.MULTI_GPU
