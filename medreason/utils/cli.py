"""How every entry point reports a user's mistake: one line, no traceback, a non-zero exit.

``MEDREASON_DEBUG=1`` in the environment re-raises instead, so the traceback shows.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from medreason.utils.config_errors import ConfigError
from medreason.utils.jsonl import RecordError

USER_ERRORS = (ConfigError, RecordError, FileNotFoundError)
"""Errors in what the user gave (settings, records, paths): their message says what to change."""

EXIT_USER_ERROR = 2

F = TypeVar("F", bound=Callable[..., Any])


def reported_user_errors(program: str) -> Callable[[F], F]:
    """Decorate an entry point so that a :data:`USER_ERRORS` exception prints ``program: error: MESSAGE``
    on stderr and exits with status 2 (unless ``MEDREASON_DEBUG`` is set).

    Put it under ``@hydra.main``: Hydra would otherwise print a trimmed traceback.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except USER_ERRORS as error:
                if os.environ.get("MEDREASON_DEBUG", "") not in ("", "0"):
                    raise
                message = " ".join(str(error).split())
                sys.stderr.write(f"{program}: error: {message}\n")
                sys.exit(EXIT_USER_ERROR)

        return wrapper  # type: ignore[return-value]

    return decorate


def force_add_overrides(argv: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """Turn plain ``PREFIX.key=value`` overrides into Hydra's ``++PREFIX.key=value`` (add or override).

    Hydra rejects a key its composed config lacks with a bare "Key 'x' is not in struct". Adding it
    instead lets the library's own validation answer, naming the full key path and close matches
    (``trainer.learnin_rate`` -> "Did you mean ['learning_rate']?"). Group choices
    (``a/b@c=...``), deletions (``~``) and explicit ``+``/``++`` overrides pass unchanged.

    >>> force_add_overrides(["prog", "trainer.learnin_rate=1e-3", "+x.y=1", "stage=sft"], ("trainer", "stages"))
    ['prog', '++trainer.learnin_rate=1e-3', '+x.y=1', 'stage=sft']
    """
    pattern = re.compile(rf"^(?:{'|'.join(map(re.escape, prefixes))})\.[\w.]+=")
    return [argv[0], *(f"++{arg}" if pattern.match(arg) else arg for arg in argv[1:])]
