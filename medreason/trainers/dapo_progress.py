"""DAPO's progress on the main process: a bar over training steps with an ETA, and one line per logged step.

The line is what to watch in a terminal: ``step 12/100 | reward 0.412 ± 0.31 | kept 8/24 groups |
response 1843 tokens (3% truncated) | 5120 tok/s | 41.2 s = generate 30.1 + train 10.3 + sync 0.8``.
"""

from __future__ import annotations

import math

from tqdm.auto import tqdm


def step_line(metrics: dict[str, float], total_steps: int) -> str:
    """The one-line summary of a step's metrics (see the module docstring).

    >>> print(step_line({"step": 2, "reward_mean": 0.5, "reward_std": 0.25, "kept_groups": 4, "generated_groups": 8,
    ...                  "completion_length_mean": 120.0, "truncation_rate": 0.0, "generated_tokens": 960,
    ...                  "time/generate": 2.0, "time/train": 1.0, "time/sync": 0.5, "time/step": 4.0}, 10))
    step 2/10 | reward 0.500 ± 0.25 | kept 4/8 groups | response 120 tokens (0% truncated) | 480 tok/s | 4.0 s = generate 2.0 + train 1.5 + sync 0.5
    """
    def get(key: str) -> float:
        return float(metrics.get(key, math.nan))

    generate = get("time/generate")
    # "train" here is everything between the rollouts and the weight sync: old/ref log-probs and the updates.
    train = get("time/step") - generate - get("time/sync")
    tokens_per_second = get("generated_tokens") / generate if generate > 0 else math.nan
    return (
        f"step {int(metrics.get('step', 0))}/{total_steps} | reward {get('reward_mean'):.3f} ± {get('reward_std'):.2f} | "
        f"kept {get('kept_groups'):.0f}/{get('generated_groups'):.0f} groups | "
        f"response {get('completion_length_mean'):.0f} tokens ({100 * get('truncation_rate'):.0f}% truncated) | "
        f"{tokens_per_second:.0f} tok/s | {get('time/step'):.1f} s = generate {generate:.1f} + train {train:.1f} + "
        f"sync {get('time/sync'):.1f}"
    )


def step_bar(total_steps: int, done: int, enabled: bool) -> tqdm:
    """A bar over training steps with an ETA (main process only: ``enabled``)."""
    return tqdm(total=total_steps, initial=done, desc="DAPO steps", unit="step", disable=not enabled)
