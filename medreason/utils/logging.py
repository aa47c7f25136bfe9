"""Rank-aware logging: library messages come from the main process only.

``accelerate.logging.get_logger`` refuses to log before an ``Accelerator`` exists, which rules it
out for evaluation and data pipelines used from a notebook; this reads the rank from the launcher's
environment instead. Pass ``extra={"all_ranks": True}`` to log from every process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager


def process_rank() -> int:
    """The global rank set by ``torchrun``/``accelerate launch``/Slurm, or 0 in a single process."""
    for variable in ("RANK", "SLURM_PROCID"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


def is_main_process() -> bool:
    """Whether this process is global rank 0."""
    return process_rank() == 0


class _MainProcessFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "all_ranks", False) or is_main_process()


def get_logger(name: str) -> logging.Logger:
    """A ``logging.Logger`` that only emits on rank 0 (unless a record sets ``all_ranks``)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _MainProcessFilter) for f in logger.filters):
        logger.addFilter(_MainProcessFilter())
    return logger


def configure_logging(level: int | str = logging.INFO) -> None:
    """Send medreason's log records to stderr with a timestamp (entry points call this once)."""
    root = logging.getLogger("medreason")
    root.setLevel(level)
    # Under Hydra the root logger already has handlers; adding ours would print every line twice.
    if not root.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s %(name)s] %(message)s", "%H:%M:%S"))
        root.addHandler(handler)


@contextmanager
def logging_to_file(path: str | os.PathLike) -> Iterator[None]:
    """Also append every log record (the library's and its dependencies') to ``path`` while the block runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
