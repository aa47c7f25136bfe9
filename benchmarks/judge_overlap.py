"""Seconds per DAPO step with a slow judge: judge requests overlapped with the next round's generation, or not.

The tiny model trains with ``rubric_judge`` against the loopback judge (:func:`~medreason.testing.tiny_rubric.keyword_judge`
served by :class:`~medreason.testing.openai_server.FakeLLMServer`, every answer delayed by ``--latency``
seconds), with ``gen_prompt_batch_size`` a quarter of ``train_prompt_batch_size``, so each step takes four
or more generation rounds and every round but the last is certainly followed by another. The baseline,
run in the same process with the same seed, is ``overlap_rewards=False`` (each round waits for its judge
answers before the next is generated). Reported: median seconds per step, ``time/reward_wait`` per step
(time spent waiting on the judge after generating), and the ratio of step times; the two runs' rewards
are checked to be equal. On a real setup the gain is at most the generation time of the overlapped
rounds (or the judge time, whichever is shorter).

    python benchmarks/judge_overlap.py
    python benchmarks/judge_overlap.py --latency 1.0 --steps 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from medreason.testing import build_tiny_model_dir, tiny_records
from medreason.testing.openai_server import FakeLLMServer
from medreason.testing.tiny_rubric import keyword_judge
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import DAPOTrainer


def run(model_dir: Path, output_dir: Path, overlap: bool, args: argparse.Namespace) -> list[dict[str, float]]:
    """Train ``args.steps`` steps; return the metrics of each."""
    rubric = [{"criterion": f'Mentions "a" at least {k} times', "points": 1} for k in (1, 2, 3, 4)]
    data = [{"prompt": [{"role": "user", "content": f"Case {k}: {r['question']}"}], "rubrics": rubric}
            for k, r in enumerate(tiny_records(64))]
    with FakeLLMServer(keyword_judge(), latency=args.latency, max_requests=10**7) as server:
        config = DAPOConfig(
            output_dir=str(output_dir), use_cpu=True, bf16=False, seed=0, max_steps=args.steps, num_generations=4,
            train_prompt_batch_size=8, gen_prompt_batch_size=2, mini_batch_size=4, max_completion_length=args.tokens,
            overlong_buffer_length=0, learning_rate=1e-2, warmup_steps=0, save_steps=10**6, logging_steps=10**6,
            rewards=["rubric_judge"], overlap_rewards=overlap, max_num_gen_batches=None,
            reward_kwargs={"rubric_judge": {"judge": {"model": "keyword-judge", "base_url": server.base_url}}},
        )
        trainer = DAPOTrainer(str(model_dir), config, data)
        trainer.train()
    return trainer.log_history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.5, help="seconds the judge takes per request")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32, help="max_completion_length (generation time per round)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model_dir(Path(tmp) / "model")
        runs = {overlap: run(model_dir, Path(tmp) / f"overlap_{overlap}", overlap, args) for overlap in (False, True)}
    untimed = {overlap: [{k: v for k, v in m.items() if not k.startswith("time/")} for m in history]
               for overlap, history in runs.items()}
    if untimed[True] != untimed[False]:
        raise SystemExit("overlap_rewards changed the run's metrics: the two runs must be equal.")
    rows = []
    for overlap, history in runs.items():
        rows.append({
            "overlap_rewards": overlap,
            "step_s": round(statistics.median(m["time/step"] for m in history), 3),
            "generate_s": round(statistics.median(m["time/generate"] for m in history), 3),
            "reward_wait_s": round(statistics.median(m["time/reward_wait"] for m in history), 3),
            "rounds_per_step": statistics.mean(m["generation_rounds"] for m in history),
        })
    baseline = rows[0]["step_s"]
    for row in rows:
        row["step_vs_no_overlap"] = round(row["step_s"] / baseline, 3)
    print(f"judge latency {args.latency}s, {args.steps} steps, max_completion_length {args.tokens}; medians per step")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
