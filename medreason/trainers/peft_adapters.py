"""LoRA and QLoRA for the training stages: the ``peft`` block of a stage's ``trainer`` settings.

A recipe turns an adapter on for any training stage (``sft``, ``dpo``, ``dapo``) with::

    stages:
      dapo:
        trainer:
          peft: {r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: all-linear}

:class:`PeftSettings` checks the block when the stage's config is built (a dry run catches a typo or a
QLoRA request on a machine without bitsandbytes and a GPU), :func:`lora_config` turns it into a
``peft.LoraConfig`` for TRL's trainers and :class:`~medreason.trainers.DAPOTrainer`, and
:func:`save_adapter_and_merged` writes a stage's ``final/``: the merged model at the top (any
``from_pretrained`` and the next stage load it) and the adapter alone in ``final/adapter``.
:class:`MergedLoraWeights` gives a rollout engine the merged weights under the base model's names without
touching the trained model (merging in place and unmerging would move the base weights by rounding).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from medreason.utils.config_errors import FieldError, build_checked

ADAPTER_DIR = "adapter"
"""Where in a stage's ``final/`` the adapter alone is saved (the merged model is ``final/`` itself)."""


@dataclass(frozen=True)
class PeftSettings:
    """A LoRA adapter for a training stage (the ``peft`` block under ``trainer``).

    Args:
        r: LoRA rank.
        lora_alpha: Scale numerator; the update is ``(alpha / r) · B A`` (usually ``alpha = 2 · r``).
        lora_dropout: Dropout on the adapter's input.
        target_modules: Module names (``[q_proj, v_proj]``) or ``"all-linear"`` (every linear layer but the LM head).
        use_dora: Weight-decomposed LoRA (DoRA, Liu et al., 2024).
        load_in_4bit: QLoRA: load the frozen base in 4-bit NF4 with bitsandbytes (CUDA only).

    >>> PeftSettings.from_block({"r": 8, "lora_alpha": 16}).r
    8
    >>> PeftSettings.from_block({"alpha": 16})
    Traceback (most recent call last):
    ...
    medreason.utils.config_errors.FieldError: peft.alpha=16: is not a field of peft; did you mean ['lora_alpha']?
    """

    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
    use_dora: bool = False
    load_in_4bit: bool = False

    @classmethod
    def from_block(cls, block: Mapping[str, Any], name: str = "peft") -> PeftSettings:
        """Build and check the settings of a ``peft`` block; errors name ``peft.<key>``.

        Raises:
            FieldError: an unknown key, a value of the wrong type or range, or ``load_in_4bit`` where
                QLoRA cannot run (bitsandbytes missing or no CUDA GPU).
        """
        settings = build_checked(cls, dict(block), name)
        if settings.r < 1:
            raise FieldError(f"{name}.r", settings.r, "must be >= 1 (the adapter's rank; 8-64 are usual).")
        if settings.lora_alpha <= 0:
            raise FieldError(f"{name}.lora_alpha", settings.lora_alpha, "must be > 0 (usually 2 x r).")
        if not 0 <= settings.lora_dropout < 1:
            raise FieldError(f"{name}.lora_dropout", settings.lora_dropout, "must be in [0, 1).")
        if not settings.target_modules:
            raise FieldError(f"{name}.target_modules", settings.target_modules, "name at least one module, or 'all-linear'.")
        if settings.load_in_4bit:
            missing = [what for what, ok in (("the bitsandbytes package", importlib.util.find_spec("bitsandbytes") is not None),
                                             ("a CUDA GPU", torch.cuda.is_available())) if not ok]
            if missing:
                raise FieldError(f"{name}.load_in_4bit", True,
                                 f"QLoRA loads the base model in 4-bit with bitsandbytes on CUDA, and this machine lacks "
                                 f"{' and '.join(missing)}. Run on a GPU machine with `pip install bitsandbytes`, or set "
                                 f"{name}.load_in_4bit=false to train the same LoRA adapter on full-precision weights.")
        return settings


def peft_settings(block: Mapping[str, Any] | None) -> PeftSettings | None:
    """:class:`PeftSettings` from a config's ``peft`` field, or ``None`` when there is no adapter."""
    return None if block is None else PeftSettings.from_block(block)


def lora_config(settings: PeftSettings) -> Any:
    """The ``peft.LoraConfig`` of a causal LM for ``settings``."""
    from peft import LoraConfig, TaskType

    values = asdict(settings)
    values.pop("load_in_4bit")
    return LoraConfig(task_type=TaskType.CAUSAL_LM, **values)


def quantization_kwargs(settings: PeftSettings | None) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments that load the frozen base in 4-bit NF4 for QLoRA; ``{}`` otherwise.

    NF4 with double quantisation and bf16 compute, the QLoRA paper's recipe (Dettmers et al., 2023).
    """
    if settings is None or not settings.load_in_4bit:
        return {}
    from transformers import BitsAndBytesConfig

    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16,
    )}


def is_peft_model(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` (an adapter on a frozen base)."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


class MergedLoraWeights:
    """The weights of a LoRA model as an engine without adapter support loads them: base names, adapter merged.

    ``named_parameters()`` yields ``(name, W + ΔW)`` for every adapted layer (a new tensor) and the base's
    other parameters as they are, under the names of the model without adapters (``...q_proj.weight``, not
    ``...q_proj.base_layer.weight``). The model itself is not changed. It stands in for the model in
    :func:`~medreason.trainers.policy_weights.iter_weight_buckets` (``parameters_only=True``), so the merged
    weights reach the engine a bucket at a time, each delta computed as its bucket is filled.

    Raises:
        ValueError: for DoRA adapters, whose merged weight is not ``W + ΔW`` (sample from the live policy
            with ``rollout_backend: transformers``, or set ``use_dora: false``).
    """

    def __init__(self, model: torch.nn.Module):
        from peft.tuners.lora import LoraLayer

        self.base = model.get_base_model()
        self.adapter = model.active_adapter
        self.layers = {name: module for name, module in self.base.named_modules() if isinstance(module, LoraLayer)}
        if any(module.use_dora.get(self.adapter, False) for module in self.layers.values()):
            raise ValueError("Pushing merged weights of a DoRA adapter to a rollout engine is not supported: set "
                             "peft.use_dora=false, or rollout_backend=transformers to sample from the live policy.")

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``(base-model name, merged tensor)`` for every parameter of the model without its adapter."""
        for name, parameter in self.base.named_parameters():
            if any(part.startswith("lora_") for part in name.split(".")):
                continue
            layer_name, _, leaf = name.rpartition(".base_layer.")
            if layer_name in self.layers and leaf == "weight":
                with torch.no_grad():
                    yield f"{layer_name}.weight", parameter + self.layers[layer_name].get_delta_weight(self.adapter)
            else:
                yield name.replace(".base_layer.", "."), parameter


def save_adapter_and_merged(model: torch.nn.Module, final_dir: str | Path, tokenizer: Any | None = None) -> Path:
    """Save a LoRA model's adapter to ``final_dir/adapter`` and the merged model (plus tokenizer) to ``final_dir``.

    The trained model is left as it is (no in-place merge). Returns ``final_dir``.
    """
    final_dir = Path(final_dir)
    model.save_pretrained(final_dir / ADAPTER_DIR)
    merged = {name: tensor.detach().cpu() for name, tensor in MergedLoraWeights(model).named_parameters()}
    base = model.get_base_model()
    base.save_pretrained(final_dir, state_dict=merged)
    if tokenizer is not None:
        tokenizer.save_pretrained(final_dir)
        tokenizer.save_pretrained(final_dir / ADAPTER_DIR)
    return final_dir


def add_adapter(model: torch.nn.Module, block: Mapping[str, Any]) -> torch.nn.Module:
    """``model`` with a new trainable LoRA adapter from a ``peft`` block; every base weight is frozen.

    A 4-bit base (QLoRA, loaded with :func:`quantization_kwargs`) is first prepared as peft prescribes
    (layer norms in float32, input gradients on for activation checkpointing).
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, lora_config(PeftSettings.from_block(block)))
