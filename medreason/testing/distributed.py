"""Run a test script on several CPU processes (gloo), as ``torchrun`` would on GPUs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A free TCP port on 127.0.0.1, so concurrent test runs do not share a rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(script: str | Path, *args: str, nproc: int = 2, timeout: float = 300) -> None:
    """Run ``script args`` on ``nproc`` ranks with ``torch.distributed.run``, one thread each.

    Raises:
        subprocess.CalledProcessError: a rank failed.
        subprocess.TimeoutExpired: the ranks did not finish in ``timeout`` seconds (e.g. a collective hung).
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(script), *map(str, args)]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=timeout)
