"""Peak-memory readings for training logs."""

from __future__ import annotations

import resource
import sys

import torch


def peak_memory_metrics(device: torch.device) -> dict[str, float]:
    """Peak memory since the last call (CUDA) or since the process started (CPU), in GiB.

    On CUDA the peak counter is reset, so each logged value is the peak of one logging window.
    On CPU the peak resident set size is all the OS offers.
    """
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
        return {"memory/peak_allocated_gib": round(peak, 3)}
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    scale = 2**30 if sys.platform == "darwin" else 2**20
    return {"memory/peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, 3)}
