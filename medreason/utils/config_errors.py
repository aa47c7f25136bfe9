"""Config errors that name the key, the bad value and the fix, and the checks that raise them.

Every settings class of the library (the trainer configs, :class:`~medreason.eval.EvalConfig`,
the curation and synthesis configs) checks its own values with :func:`check_field_types` and
:func:`check_ranges` when it is built, so a recipe's dry run, a CLI and a notebook all get the
same message. Hugging Face's ``TrainingArguments`` checks no types: ``learning_rate="fast"`` would
otherwise reach torch's Adam and fail there, naming no field.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting that cannot run. The message names the key, the bad value and the fix."""


class FieldError(ConfigError):
    """One field of a settings class holds a bad value.

    Args:
        field: The field's name (callers that know the full key path prefix it, e.g. ``stages.dapo.trainer``).
        value: The bad value.
        rule: What the value must be, and how to fix it.
    """

    def __init__(self, field: str, value: Any, rule: str):
        self.field, self.value, self.rule = field, value, rule
        super().__init__(f"{field}={value!r}: {rule}")

    def at(self, prefix: str) -> FieldError:
        """The same error with ``prefix.`` before the field name (the key path the user typed)."""
        return FieldError(f"{prefix}.{self.field}", self.value, self.rule)


def check_field_types(config: Any, names: Iterable[str] | None = None) -> None:
    """Check that each dataclass field of ``config`` (or only ``names``) holds a value of its annotated type.

    Ints are accepted for floats, not bools for numbers; enums accept their values; types this check
    cannot read (classes of other libraries) are accepted.

    Raises:
        FieldError: the first field whose value does not fit its annotation.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Example:
    ...     rate: float = 1e-5
    >>> check_field_types(Example(rate="fast"))
    Traceback (most recent call last):
    ...
    medreason.utils.config_errors.FieldError: rate='fast': expected a number (float), e.g. rate=1e-05.
    """
    hints = typing.get_type_hints(type(config))
    fields = {f.name: f for f in dataclasses.fields(config)}
    for name in fields if names is None else names:
        value = getattr(config, name)
        if not _fits(value, hints[name]):
            default = fields[name].default
            example = f", e.g. {name}={default!r}" if default not in (None, dataclasses.MISSING) else ""
            raise FieldError(name, value, f"expected {_describe(hints[name])}{example}.")


def build_checked(cls: type, values: Any, name: str) -> Any:
    """``cls(**values)`` for a dataclass ``cls``, checking keys and value types first; an instance passes through.

    Raises:
        FieldError: ``values`` is not a mapping, has a key ``cls`` lacks (``name.key``, with close
            matches), or a value of the wrong type.
    """
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise FieldError(name, values, f"expected a mapping of {cls.__name__} fields.")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    for key, value in values.items():
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            raise FieldError(f"{name}.{key}", value, f"is not a field of {name}" + (f"; did you mean {close}?" if close else f"; valid: {valid}."))
        if not _fits(value, hints[key]):
            raise FieldError(f"{name}.{key}", value, f"expected {_describe(hints[key])}.")
    return cls(**values)


def check_ranges(config: Any, minimum: Mapping[str, float], exclusive: Iterable[str] = ()) -> None:
    """Check ``getattr(config, name) >= minimum[name]`` (``>`` for names in ``exclusive``); ``None`` passes.

    Raises:
        FieldError: the first field out of range.
    """
    exclusive = set(exclusive)
    for name, low in minimum.items():
        value = getattr(config, name)
        if value is None:
            continue
        if value < low or (name in exclusive and value == low):
            bound = f"> {low}" if name in exclusive else f">= {low}"
            raise FieldError(name, value, f"must be {bound}.")


def check_model_reference(value: str, key: str) -> None:
    """Check that a model given as a local path exists; a hub id (``Qwen/Qwen3-8B``) passes.

    A value is taken as a local path when it starts with ``/``, ``.`` or ``~`` or has more than one ``/``.

    Raises:
        FieldError: a local path that does not exist.

    >>> check_model_reference("Qwen/Qwen3-8B", "model")
    >>> check_model_reference("./outputs/nowhere/final", "model")
    Traceback (most recent call last):
    ...
    medreason.utils.config_errors.FieldError: model='./outputs/nowhere/final': no such directory; give a local model directory or a hub id such as Qwen/Qwen3-8B.
    """
    if Path(value).expanduser().exists():
        return
    if value.startswith(("/", ".", "~")) or value.count("/") > 1:
        raise FieldError(key, value, "no such directory; give a local model directory or a hub id such as Qwen/Qwen3-8B.")


def _fits(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is object:
        return True
    if annotation is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, member) for member in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return isinstance(value, annotation) or value in {member.value for member in annotation}
    if origin in (list, tuple, set, typing.Sequence) or annotation in (list, tuple):
        if not isinstance(value, list | tuple | set):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return len(args) != 1 or all(_fits(item, args[0]) for item in value)
    if origin in (dict, Mapping, typing.Mapping) or annotation is dict:
        return isinstance(value, Mapping)
    return True  # a class of another library: its own code checks it


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [_describe(m) for m in typing.get_args(annotation) if m is not type(None)]
        optional = type(None) in typing.get_args(annotation)
        return " or ".join(members) + (" or null" if optional else "")
    names = {bool: "true or false", int: "a whole number (int)", float: "a number (float)", str: "a string"}
    if annotation in names:
        return names[annotation]
    if origin in (list, tuple, set) or annotation in (list, tuple):
        return "a list"
    if origin in (dict, Mapping) or annotation is dict:
        return "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(repr(member.value) for member in annotation)
    return getattr(annotation, "__name__", str(annotation))
