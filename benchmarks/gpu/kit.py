"""GPU proof kit: measure every stage in one command, each run capped, the report rewritten after each.

Started by ``run_all.sh`` (which installs the carried wheels first); see docs/benchmarks.md.

    python benchmarks/gpu/kit.py --out gpu_report                    # on a GPU
    python benchmarks/gpu/kit.py --device cpu --smoke --out /tmp/r   # tiny shapes, the test suite's check

Every run is one process of an existing benchmark script (its own peak memory, killed with its whole
process group at its cap). The kit stops starting runs when its overall budget is spent and marks the
rest ``skipped``; ``gpu_report.json`` and ``gpu_report.md`` in ``--out`` always hold what was measured.
The Markdown report is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from kit_environment import ROOT, check_environment, peak_tflops
from kit_plan import Run, build_plan
from kit_report import write_report

BENCHMARKS = ROOT / "benchmarks"
MIN_RUN_S = 20  # a run with less time left than this is skipped, not started and killed


def run_one(run: Run, timeout: float, env: dict[str, str]) -> dict:
    """Run one benchmark process; return its record (status ``ok``, ``failed`` or ``timeout``)."""
    record = {"section": run.section, "label": run.label, "compare_to": run.compare_to,
              "ratio_keys": list(run.ratio_keys), "command": " ".join(["python", f"benchmarks/{run.script}", *run.argv])}
    start = time.perf_counter()
    # Its own session, so a timeout kills the script and anything it started (no orphan holding the GPU).
    process = subprocess.Popen([sys.executable, str(BENCHMARKS / run.script), *run.argv], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        record.update(status="timeout", error=f"killed after {timeout:.0f} s", stderr_tail=stderr[-2000:])
    else:
        if process.returncode != 0:
            record.update(status="failed", error=f"exit status {process.returncode}", stderr_tail=stderr[-3000:])
        else:
            try:
                record.update(status="ok", figures=json.loads(stdout.strip().splitlines()[-1]))
            except (IndexError, json.JSONDecodeError):
                record.update(status="failed", error="no JSON line at the end of its output", stdout_tail=stdout[-2000:])
    record["seconds"] = time.perf_counter() - start
    return record


def child_environment(device: str, scratch: Path) -> dict[str, str]:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               MEDREASON_BENCH_MODEL_CACHE=str(scratch / "models"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if device == "cpu":
        env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")  # pinned: CPU timings are noisy enough
    carried = ROOT / ".whl" / "data"
    if "MEDREASON_SHARED_DATA" not in env and carried.is_dir():
        env["MEDREASON_SHARED_DATA"] = str(carried)  # the copy fetch_wheels.sh put in the carried folder
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and lengths: every path in seconds")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_report", help="report folder (default $OUT)")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="no run starts after this many seconds (default 7.5 min, inside the 8-minute goal)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device bf16 peak for MFU (default by name)")
    parser.add_argument("--only", nargs="+", default=None, help="sections to run (default all)")
    parser.add_argument("--expect-pins", action="store_true", help="carried wheels installed: check their versions")
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)  # run_all.sh's own command line
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    facts, problems = check_environment(args.expect_pins)
    if args.device == "cuda" and facts["gpu_memory_gib"] is None:
        problems.append("--device cuda, but torch sees no GPU (use --device cpu --smoke on a CPU machine)")
    report = {"mode": f"{args.device}{', smoke' if args.smoke else ''}", "started": started.isoformat(timespec="seconds"),
              "budget_s": args.budget_s, "elapsed_s": 0.0, "environment": facts, "problems": problems,
              "command": args.command or " ".join([sys.executable, *sys.argv]), "runs": []}
    out = Path(args.out)
    peak = args.peak_tflops or (peak_tflops(facts["device"]) if args.device == "cuda" else None)
    plan = [run for run in build_plan(args.device, args.smoke, peak) if args.only is None or run.section in args.only]
    with tempfile.TemporaryDirectory(prefix="medreason-kit-") as scratch:
        env = child_environment(args.device, Path(scratch))
        for run in [] if problems else plan:
            left = args.budget_s - (time.perf_counter() - clock)
            if left < MIN_RUN_S:
                record = {"section": run.section, "label": run.label, "status": "skipped", "seconds": 0.0,
                          "error": f"kit budget of {args.budget_s:.0f} s spent", "compare_to": run.compare_to,
                          "ratio_keys": list(run.ratio_keys)}
            else:
                print(f"[kit] {run.section}: {run.label} (cap {min(run.cap_s, left):.0f} s)", file=sys.stderr, flush=True)
                record = run_one(run, min(run.cap_s, left), env)
                print(f"[kit]   {record['status']} in {record['seconds']:.1f} s" + (f": {record['error']}" if "error" in record else ""),
                      file=sys.stderr, flush=True)
            report["runs"].append(record)
            report["elapsed_s"] = time.perf_counter() - clock
            write_report(report, out)
    report["elapsed_s"] = time.perf_counter() - clock
    print(write_report(report, out))
    return 1 if problems or any(r["status"] in ("failed", "timeout") for r in report["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
