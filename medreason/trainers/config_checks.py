"""Checks every trainer config runs when it is built: types, ranges and the fields a trainer ignores.

``TrainingArguments`` checks neither types nor most ranges (``per_device_train_batch_size=-1`` and
``learning_rate="fast"`` build fine and fail deep inside the training loop), so the configs of
:mod:`medreason.trainers` call :func:`check_training_config` before their parent's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from medreason.utils.config_errors import FieldError, check_field_types, check_ranges

TRAINING_MINIMUMS: dict[str, float] = {
    "learning_rate": 0.0,
    "num_train_epochs": 0.0,
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "global_batch_size": 1,
    "warmup_steps": 0.0,
    "weight_decay": 0.0,
    "max_grad_norm": 0.0,
    "max_length": 1,
}
"""Lower bounds of the fields every trainer config shares (those a config has are checked)."""


def check_training_config(config: Any, minimums: Mapping[str, float] | None = None, exclusive: Iterable[str] = ()) -> None:
    """Check the types of all of ``config``'s fields, then :data:`TRAINING_MINIMUMS` and ``minimums``.

    Raises:
        FieldError: naming the first bad field, its value and the rule.
    """
    check_field_types(config)
    names = {f.name for f in dataclasses.fields(config)}
    bounds = {k: v for k, v in {**TRAINING_MINIMUMS, **(minimums or {})}.items() if k in names}
    check_ranges(config, bounds, exclusive)


def reject_ignored_fields(config: Any, base: type, used: Iterable[str], hints: Mapping[str, str]) -> None:
    """Raise for any field inherited from ``base`` that ``config`` sets away from its default but never reads.

    Args:
        config: The config being built (before ``base.__post_init__`` rewrites values).
        base: The inherited dataclass, e.g. ``transformers.TrainingArguments``.
        used: The inherited fields the trainer reads.
        hints: What to use instead, per field; others get a generic message.

    Raises:
        FieldError: the first ignored field that was set.
    """
    used = set(used)
    for field in dataclasses.fields(base):
        if not field.init or field.name in used:
            continue
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        value = getattr(config, field.name)
        if value != default:
            hint = hints.get(field.name, "remove it")
            raise FieldError(field.name, value, f"{type(config).__name__} does not use this field; {hint}.")
