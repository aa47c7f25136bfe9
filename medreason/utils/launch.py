"""How this process was launched (``accelerate launch`` writes it to the environment), and what that asks of a run.

One ``accelerate launch`` runs every stage of a recipe. Each stage builds its own ``TrainingArguments``
(and so its own accelerate state) from the same environment, so the launch is read here, once per
question, rather than from an ``Accelerator`` that a stage may not have built yet.

Two things the launch asks of a run that accelerate does not do by itself:

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
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


def trainer_settings_for_launch(settings: dict[str, Any]) -> dict[str, Any]:
    """A training stage's settings, adjusted to this launch (see the module docstring); a new dict."""
    if launch_kind() == "deepspeed" and not has_accelerator():
        return {**settings, "use_cpu": False, "ddp_backend": settings.get("ddp_backend") or "gloo"}
    return dict(settings)


def launch_problem(kind: str, settings: dict[str, Any]) -> str | None:
    """Why a stage of ``kind`` with these settings cannot run under this launch, with the fix; ``None`` if it can.

    Checked when the recipe is validated, before any stage runs.
    """
    launch = launch_kind()
    if launch == "fsdp" and not has_accelerator():
        # accelerate builds FSDP on accelerators only: on CPU the same launch silently trains plain DDP.
        return ("this is an FSDP launch on a machine without a GPU, where accelerate runs FSDP as plain data parallel. "
                "On CPU launch with DeepSpeed instead: --config_file $(python -m medreason.config accelerate/zero3_2cpu.yaml) "
                "(DS_BUILD_OPS=0 pip install 'deepspeed>=0.17').")
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
