"""The GPU proof kit (benchmarks/gpu): its wheel pins, environment check, process caps, report, and the
kit itself in CPU smoke mode, so it cannot rot between GPU loans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks" / "gpu"), str(ROOT / "benchmarks")]

from common import SHAPES, flops_per_token  # noqa: E402
from kit import run_one  # noqa: E402
from kit_environment import check_environment, pinned_wheels, project_requirements  # noqa: E402
from kit_plan import Run, build_plan  # noqa: E402
from kit_report import write_report  # noqa: E402

# What the GPU machine lacks (issue 19), each of which our pyproject needs.
MISSING_ON_GPU = ("trl", "datasets", "hydra-core", "omegaconf", "antlr4-python3-runtime", "rapidfuzz", "dill",
                  "multiprocess", "transformers", "sentence-transformers")


def run_all(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OUT=str(tmp_path / "report"), OMP_NUM_THREADS="1")
    return subprocess.run(["bash", str(ROOT / "benchmarks/gpu/run_all.sh"), "--device", "cpu", "--smoke",
                           "--no-wheels", *args], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_wheels_pin_what_the_gpu_machine_lacks_within_our_bounds():
    pins = pinned_wheels()
    bounds = {canonicalize_name(r.name): r for r in project_requirements()}
    for name in map(canonicalize_name, MISSING_ON_GPU):
        assert name in pins, f"wheels.txt does not carry {name}"
        if name in bounds:
            assert bounds[name].specifier.contains(pins[name]), f"{name}=={pins[name]} breaks pyproject's {bounds[name]}"


def test_a_wheel_line_without_an_exact_pin_is_named(tmp_path):
    wheels = tmp_path / "wheels.txt"
    wheels.write_text("# comment\ntrl==1.16.0\ndatasets>=5\n")
    with pytest.raises(ValueError, match=r"wheels.txt:3: 'datasets>=5' is not NAME==VERSION"):
        pinned_wheels(wheels)


def test_environment_check_names_a_shadowed_pin_and_a_missing_package(tmp_path):
    wheels = tmp_path / "wheels.txt"
    wheels.write_text("trl==0.0.1\nno-such-package-medreason==1.0\n")
    facts, problems = check_environment(expect_pins=True, wheels=wheels)
    assert any(p.startswith("trl: wheels.txt pins 0.0.1, but") for p in problems), problems
    assert "no-such-package-medreason==1.0 (wheels.txt) is not installed" in problems
    assert facts["versions"]["trl"] and facts["python"]
    assert check_environment(expect_pins=False, wheels=wheels)[1] == [
        "no-such-package-medreason==1.0 (wheels.txt) is not installed"]


def test_unmet_requirement_is_named():
    from kit_environment import unmet

    assert unmet([Requirement("torch>=999")], "medreason")[0].startswith("medreason needs torch>=999: found torch ")
    assert unmet([Requirement("torch>=1; python_version < '3'")], "x") == []  # marker not for this Python


@pytest.mark.parametrize("smoke", [True, False])
def test_plan_names_existing_scripts_with_baselines_in_the_same_section(smoke):
    plan = build_plan("cpu" if smoke else "cuda", smoke, peak_tflops=989.0)
    labels = {(run.section, run.label) for run in plan}
    assert len(labels) == len(plan)
    assert {run.section for run in plan} == {"grading", "eval", "ttt", "sft", "dpo", "dapo"}
    for run in plan:
        assert (ROOT / "benchmarks" / run.script).is_file()
        assert run.compare_to is None or (run.section, run.compare_to) in labels
    assert [run.section for run in plan][-1] == "dapo"  # the longest last: a spent budget cuts only it
    sft_lengths = sorted({run.argv[run.argv.index("--seq-len") + 1] for run in plan if run.section == "sft"})
    assert sft_lengths == (["128"] if smoke else ["16384", "4096", "8192"])
    assert smoke or all("--bf16" in run.argv for run in plan if run.section in ("sft", "dpo", "dapo"))


def test_flops_per_token_counts_the_model_parameters():
    from transformers import AutoModelForCausalLM, Qwen3Config

    config = Qwen3Config(vocab_size=300, tie_word_embeddings=True, **SHAPES["tiny"])
    params = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    attention = 12 * config.num_hidden_layers * config.num_attention_heads * config.head_dim
    assert flops_per_token(config, 0) == 6 * params
    assert flops_per_token(config, 1000) == 6 * params + attention * 1000


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)  # absolute: run_one joins it to benchmarks/ and keeps it


def test_run_one_reports_ok_failed_and_timeout_and_kills_the_process_group(tmp_path):
    env = dict(os.environ)
    ok = run_one(Run("s", "ok", script(tmp_path, "ok.py", 'print("noise")\nprint(\'{"x": 1}\')\n'), (), 30), 30, env)
    assert ok["status"] == "ok" and ok["figures"] == {"x": 1}
    bad = run_one(Run("s", "bad", script(tmp_path, "bad.py", "raise SystemExit('broken input')\n"), (), 30), 30, env)
    assert bad["status"] == "failed" and "broken input" in bad["stderr_tail"]
    child_pid = tmp_path / "child.pid"
    hang = script(tmp_path, "hang.py", f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        open({str(child_pid)!r}, "w").write(str(child.pid))
        time.sleep(300)
    """)
    start = time.perf_counter()
    slow = run_one(Run("s", "hang", hang, (), 2), 2, env)
    assert slow["status"] == "timeout" and time.perf_counter() - start < 30
    pid = int(child_pid.read_text())
    time.sleep(0.2)
    state = Path(f"/proc/{pid}/stat")
    assert not state.exists() or state.read_text().split()[2] == "Z"  # the grandchild died with its group


def test_report_keeps_partial_results_and_divides_by_the_baseline(tmp_path):
    runs = [
        {"section": "sft", "label": "trl 4096", "status": "ok", "seconds": 10.0, "compare_to": None, "ratio_keys": [],
         "figures": {"tokens_per_s": 200.0}},
        {"section": "sft", "label": "ours 4096", "status": "ok", "seconds": 11.0, "compare_to": "trl 4096",
         "ratio_keys": ["tokens_per_s"], "figures": {"tokens_per_s": 190.0}},
        {"section": "dapo", "label": "ours 8192", "status": "timeout", "seconds": 200.0, "compare_to": None,
         "ratio_keys": [], "error": "killed after 200 s"},
    ]
    report = {"mode": "cuda", "started": "2026-12-02T16:00:00+00:00", "budget_s": 450.0, "elapsed_s": 221.0,
              "environment": {"device": "NVIDIA H200", "versions": {"torch": "2.11"}}, "problems": [],
              "command": "bash benchmarks/gpu/run_all.sh", "runs": runs}
    text = write_report(report, tmp_path)
    saved = json.loads((tmp_path / "gpu_report.json").read_text())
    assert saved["runs"][1]["figures"]["ratio_tokens_per_s"] == pytest.approx(0.95)
    assert (tmp_path / "gpu_report.md").read_text() == text
    assert "| ours 4096 | ok | 11 | 190 | 0.95 |" in text
    assert "| ours 8192 | timeout | 200 | killed after 200 s |" in text
    assert not list(tmp_path.glob(".*partial"))


def test_whl_folder_is_git_ignored():
    out = subprocess.run(["git", "-C", str(ROOT), "check-ignore", ".whl/trl-1.16.0-py3-none-any.whl"],
                         capture_output=True, text=True)
    assert out.returncode == 0, "the carried wheels must stay out of git"


def test_run_all_smoke_writes_the_report_and_prints_it_last(tmp_path, shared_data):
    out = run_all(tmp_path, "--only", "grading")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "gpu_report.json").read_text())
    assert report["problems"] == [] and [r["status"] for r in report["runs"]] == ["ok"]
    assert report["command"] == "bash benchmarks/gpu/run_all.sh --device cpu --smoke --no-wheels --only grading"
    kinds = {row["kind"] for row in report["runs"][0]["figures"]}
    assert kinds == {"with </think>", "no think tags"}
    assert out.stdout == (tmp_path / "report" / "gpu_report.md").read_text() + "\n"  # the report, printed last
    assert out.stdout.rstrip().splitlines()[-1].startswith("| extract_choice vs rfind_boxed | ok |")


@pytest.mark.slow
def test_run_all_smoke_measures_every_stage(tmp_path, shared_data):
    out = run_all(tmp_path)
    report = json.loads((tmp_path / "report" / "gpu_report.json").read_text())
    failed = {r["label"]: r.get("stderr_tail", r.get("error")) for r in report["runs"] if r["status"] != "ok"}
    assert out.returncode == 0 and not failed, failed
    assert {r["section"] for r in report["runs"]} == {"grading", "eval", "ttt", "sft", "dpo", "dapo"}
    for run in report["runs"]:
        for key in run["ratio_keys"]:
            assert run["figures"][f"ratio_{key}"] > 0, (run["label"], key)
    ttt_modes = {row["mode"]: row for row in next(r for r in report["runs"] if r["section"] == "ttt")["figures"]}
    assert ttt_modes["lora"]["adapt_s"] > 0 and ttt_modes["full"]["adapt_s"] > 0
