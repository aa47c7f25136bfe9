"""What watching and publishing a run costs: the files of docs/observing.md against the training they describe.

    python benchmarks/observe_overhead.py                      # runs the tiny recipe first (~30 s idle)
    python benchmarks/observe_overhead.py --run outputs/tiny   # a finished run

Two ratios, each against a baseline measured in the same invocation:

1. End-of-stage and end-of-run writers (every training stage's ``curves.png``, the model cards,
   ``report.md``), timed again on the finished run, against the run's own stage seconds
   (``summary.json``), which is the tiny demo's training time.
2. DAPO's completions log: the same DAPO run on the tiny model with ``log_completions_steps=1`` against
   ``log_completions_steps=0``, alternated ``--repeats`` times (median wall time of ``train()``, which
   includes writing the files; ``time/step`` would not).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from medreason.model_card import write_model_cards
from medreason.run_report import write_report
from medreason.stage_context import TRAINING_KINDS
from medreason.utils.training_curves import plot_training_curves


def _history(stage_dir: Path, kind: str) -> list[dict]:
    if kind == "dapo":
        return [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    states = sorted(stage_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    return json.loads(states[-1].read_text())["log_history"]


def writers_ratio(finished: Path) -> None:
    run = Path(tempfile.mkdtemp()) / "run"
    shutil.copytree(finished, run, symlinks=True)  # the writers run on a copy: the run's own cards stay as written
    cfg = OmegaConf.load(run / "config.yaml")
    summary = json.loads((run / "summary.json").read_text())
    kinds = {name: cfg.stages[name].kind for name in cfg.stages}
    seconds = {}
    started = time.perf_counter()
    for name, kind in kinds.items():
        if kind in TRAINING_KINDS:
            plot_training_curves(_history(run / name, kind), Path(tempfile.mkdtemp()) / "curves.png", name)
    seconds["curves (all training stages)"] = time.perf_counter() - started
    started = time.perf_counter()
    write_model_cards(cfg, run, kinds)
    seconds["model cards"] = time.perf_counter() - started
    started = time.perf_counter()
    write_report(run, cfg.run_name, kinds)
    seconds["report.md"] = time.perf_counter() - started
    stages = sum(entry["seconds"] for entry in summary.values() if entry.get("seconds") is not None)
    print(f"baseline: the run's stage seconds (summary.json): {stages:.1f} s")
    for what, value in seconds.items():
        print(f"  {what:<32} {value:6.2f} s  = {value / stages:.3f} x baseline")
    total = sum(seconds.values())
    print(f"  {'all writers':<32} {total:6.2f} s  = {total / stages:.3f} x baseline")


def _dapo_seconds(log_completions_steps: int, steps: int, model: str, out: str) -> float:
    from medreason.testing import tiny_records
    from medreason.trainers import DAPOConfig, DAPOTrainer

    data = [{"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"], "options": r["options"]}
            for r in tiny_records(16)]
    args = DAPOConfig(output_dir=out, use_cpu=True, max_steps=steps, num_generations=4, train_prompt_batch_size=4,
                      gen_prompt_batch_size=4, mini_batch_size=2, max_completion_length=128, overlong_buffer_length=32,
                      rewards=["mcq_accuracy", "format", "overlong"], dynamic_sampling=False, save_steps=1000,
                      logging_steps=1000, log_completions_steps=log_completions_steps, log_completions_groups=4,
                      truncation_warning_threshold=1.0)
    trainer = DAPOTrainer(model, args, data)
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def completions_ratio(repeats: int, steps: int) -> None:
    from medreason.testing import build_tiny_model_dir

    model = str(build_tiny_model_dir(tempfile.mkdtemp()))
    _dapo_seconds(0, 1, model, tempfile.mkdtemp())  # warm-up: first-call costs go to neither variant
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(repeats):  # alternated, so load on a shared machine hits both alike
        for every in (0, 1):
            times[every].append(_dapo_seconds(every, steps, model, tempfile.mkdtemp()))
    off, on = statistics.median(times[0]), statistics.median(times[1])
    print(f"baseline: DAPO train() of {steps} steps without the completions log, median {off:.2f} s of {repeats}")
    print(f"  with log_completions_steps=1 (4 groups): median {on:.2f} s = {on / off:.3f} x baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished recipe run (default: run the tiny recipe now)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    run = args.run
    if run is None:
        run = Path(tempfile.mkdtemp()) / "run"
        subprocess.run([sys.executable, "-m", "medreason.train", "+recipe=tiny", f"output_dir={run}"], check=True,
                       capture_output=True, text=True)
    writers_ratio(run)
    completions_ratio(args.repeats, args.steps)


if __name__ == "__main__":
    main()
