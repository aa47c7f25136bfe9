"""One ``accelerate launch`` runs the whole tiny recipe on two CPU processes under DeepSpeed ZeRO-3.

synth -> curate -> SFT x2 -> DPO -> DAPO -> eval (with test-time training) in one launch with
``conf/accelerate/zero3_2cpu.yaml``; the launch is killed once the first SFT stage has finished and
relaunched with ``resume=true``, which skips the finished stages and completes the rest. Minutes on two
cores, so ``slow``; ``.ci/deepspeed`` runs it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medreason.config import config_dir
from medreason.recipe import stage_names
from medreason.testing.distributed import free_port

pytestmark = pytest.mark.slow


def _launch(config: str, output_dir: Path, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_dir() / "accelerate" / config),
        "--main_process_port", str(free_port()), "-m", "medreason.train", "+recipe=tiny",
        f"output_dir={output_dir}", "resume=true",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as handle:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait(process: subprocess.Popen, log: Path, timeout: float) -> None:
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert code == 0, log.read_text()[-6000:]


@pytest.mark.timeout(2400)
def test_zero3_launch_runs_every_stage_and_resumes_after_a_kill(tmp_path):
    pytest.importorskip("deepspeed", reason="ZeRO-3 needs deepspeed: DS_BUILD_OPS=0 pip install 'deepspeed>=0.17'")
    out = tmp_path / "run"
    first = _launch("zero3_2cpu.yaml", out, tmp_path / "first.log")
    marker = out / "sft_all" / "stage_complete.json"
    deadline = time.monotonic() + 1200
    while not marker.is_file():
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-6000:]
        assert time.monotonic() < deadline, "sft_all did not finish in 20 minutes"
        time.sleep(1)
    os.killpg(first.pid, signal.SIGKILL)  # every rank and the launcher, as a preempted job dies
    first.wait()
    finished_before = {path.parent.name: path.stat().st_mtime_ns for path in out.glob("*/stage_complete.json")}
    assert {"synth", "curate", "sft_all"} <= set(finished_before)

    second = _launch("zero3_2cpu.yaml", out, tmp_path / "second.log")
    _wait(second, tmp_path / "second.log", timeout=1200)

    summary = json.loads((out / "summary.json").read_text())
    from omegaconf import OmegaConf

    names = stage_names(OmegaConf.load(out / "config.yaml"))
    assert list(summary) == names
    assert all(summary[name].get("stage") == name for name in names), summary  # every stage marked complete
    # The resumed launch skipped what had finished and ran the rest.
    for name, mtime in finished_before.items():
        assert (out / name / "stage_complete.json").stat().st_mtime_ns == mtime, name
    dapo = [json.loads(line) for line in (out / "dapo" / "metrics.jsonl").read_text().splitlines()]
    assert dapo[-1]["step"] == 3 and all(entry["optimizer_updates"] >= 1 for entry in dapo)
    assert (out / "eval" / "results.md").is_file()
