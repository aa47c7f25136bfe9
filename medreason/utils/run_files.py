"""What every run does to the folder it writes: one run at a time, safe names, no secrets on disk.

* :func:`run_lock` takes an exclusive lock on a run's output folder (``train``, ``eval``, ``curate``,
  ``synth``), so a second run into the same folder fails at once, naming the first one's PID, instead
  of interleaving with it.
* :func:`check_safe_name` keeps a name that becomes a path component (a stage, a benchmark) inside
  the folder it names a child of.
* :func:`redact_secrets` blanks API keys and tokens in any config before it is saved or logged.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medreason.utils.config_errors import ConfigError, FieldError

LOCK_FILE = ".medreason.lock"
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SECRET_KEY = re.compile(r"(^|_)(api_key|apikey|token|password|secret|authorization)$", re.IGNORECASE)
SECRET_IN_TEXT = re.compile(
    r"((?:api_?key|token|password|secret|authorization)['\"]?\s*[:=]\s*)['\"]?[^\s,}\]'\"]+", re.IGNORECASE
)
"""A secret written inside a string: ``engine.api_key=sk-1``, ``engine={api_key: sk-1}``."""
REDACTED = "<redacted>"


class RunLockedError(ConfigError):
    """Another medreason run holds the output folder."""


@contextmanager
def run_lock(directory: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (created if missing) while the block runs.

    The lock is the operating system's (``flock``): it ends with the process, so a killed run never
    leaves a stale lock behind.

    Raises:
        RunLockedError: another process holds it; the message names that process's PID.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunLockedError(
                f"{directory} is in use by another medreason run (PID {holder}); wait for it to finish, or "
                "write to another folder."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing the file releases the lock


def check_safe_name(name: str, key: str) -> None:
    """Check that ``name`` can be a single path component: letters, digits, ``_``, ``-`` and ``.``, not
    starting with ``.`` (so no ``..``, no ``/``, no hidden files).

    Raises:
        FieldError: naming ``key``.

    >>> check_safe_name("sft_endocrinology", "stages")
    >>> check_safe_name("../victim", "stages")
    Traceback (most recent call last):
    ...
    medreason.utils.config_errors.FieldError: stages='../victim': must be a plain name (letters, digits, _, - and ., not starting with .): it becomes a folder name.
    """
    if not SAFE_NAME.match(str(name)):
        raise FieldError(
            key, name, "must be a plain name (letters, digits, _, - and ., not starting with .): it becomes a folder name."
        )


def check_inside(path: Path, root: Path) -> None:
    """Refuse to touch ``path`` unless it lies inside ``root`` (checked on resolved paths).

    Raises:
        ConfigError: ``path`` is outside ``root``.
    """
    if not path.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"refusing to write or delete {path}: it is outside the run's folder {root}.")


def redact_secrets(value: Any) -> Any:
    """A copy of ``value`` (nested dicts and lists) with every API key or token replaced by ``<redacted>``.

    Keys named like ``api_key``, ``token``, ``hub_token``, ``password`` or ``secret`` are blanked, and so
    are such keys' values inside strings (command-line overrides).

    >>> redact_secrets({"roles": {"a": {"api_key": "sk-1", "model": "m"}},
    ...                 "overrides": ["engine.api_key=sk-2", "engine={api_key: sk-3, timeout: 5}"]})
    {'roles': {'a': {'api_key': '<redacted>', 'model': 'm'}}, 'overrides': ['engine.api_key=<redacted>', 'engine={api_key: <redacted>, timeout: 5}']}
    """
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) and v else redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_secrets(item) for item in value]
    if isinstance(value, str):
        return SECRET_IN_TEXT.sub(rf"\1{REDACTED}", value)
    return value
