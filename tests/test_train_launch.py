"""One ``accelerate launch`` runs the whole tiny recipe on two CPU processes, and trains as one process does.

synth -> curate -> SFT x2 -> DPO -> DAPO -> eval (with test-time training) in one launch with
``conf/accelerate/zero3_2cpu.yaml``; that launch is killed once the first SFT stage has finished and
relaunched with ``resume=true``, which skips the finished stages and completes the rest. The same recipe
under one process, under DDP (``ddp_2cpu.yaml``) and under FSDP2 (``fsdp2_2cpu.yaml``, which needs no
DeepSpeed) gives the same losses and weights up to float reduction order (:data:`TOLERANCES`). Minutes on two
cores, so ``slow``; ``.ci/deepspeed`` runs the whole file, so the FSDP2 and ZeRO-3 tests share the baselines.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from medreason.config import config_dir
from medreason.recipe import stage_names
from medreason.testing import build_tiny_model_dir
from medreason.testing.distributed import free_port

pytestmark = pytest.mark.slow

# Global batches fixed as the cards fix them, so every launch takes the same optimizer steps over the same
# sequences (the tiny recipe's per-device batches would double with two processes), and each dividing its
# stage's records: accelerate fills a short last batch on some ranks with repeated records, which one
# process does not see. sft_all: 36 records = 3 x 12; sft_endocrinology: 16 of its 17 = 2 x 8; dpo: 64 = 8 x 8.
SAME_STEPS = (
    "stages.sft_all.trainer.per_device_train_batch_size=6", "stages.sft_all.trainer.global_batch_size=12",
    "stages.sft_endocrinology.data.max_samples=16", "stages.sft_endocrinology.trainer.per_device_train_batch_size=4",
    "stages.sft_endocrinology.trainer.global_batch_size=8", "stages.dpo.trainer.global_batch_size=8",
)
TOLERANCES = {"loss_rel": 1e-5, "weights_atol": 1e-4, "dapo_weights_atol": 2 * 1e-4 * 3}
"""What the launches may differ by: float32 reduction order (DDP all-reduce, ZeRO-3 reduce-scatter,
accumulation over two micro-batches instead of two ranks). Measured on this machine: losses <= 4e-7
relative, SFT/DPO weights <= 3e-6; DAPO weights <= 1.3e-4, because Adam moves a weight by up to the
learning rate (1e-4) per step whatever the size of its gradient, so float noise in a near-zero gradient
can flip a step: the bound is 2 x lr x 3 steps. docs/distributed.md has the table."""


def _command(launch: str | None, output_dir: Path, launcher_args: tuple[str, ...] = (),
             overrides: tuple[str, ...] = SAME_STEPS) -> list[str]:
    train = ["-m", "medreason.train", "+recipe=tiny", f"output_dir={output_dir}", "resume=true", *overrides]
    if launch is None:
        return [sys.executable, *train]
    launcher_args = launcher_args or ("--main_process_port", str(free_port()))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(config_dir() / "accelerate" / f"{launch}.yaml"), *launcher_args, *train]


def _start(launch: str | None, output_dir: Path, log: Path, **command: tuple[str, ...]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as handle:  # the child keeps its own descriptor
        return subprocess.Popen(_command(launch, output_dir, **command), stdout=handle, stderr=subprocess.STDOUT, env=env)


def _kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the launcher and every rank at once, as a preempted job dies (torchrun starts each rank in a
    session of its own, so killing the launcher's process group would leave the ranks running)."""
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for member in tree:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:  # ended on its own meanwhile
            pass
    process.wait()


def _finish(process: subprocess.Popen, log: Path, timeout: float = 1500) -> None:
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        raise
    assert code == 0, log.read_text()[-6000:]


@pytest.fixture(scope="module")
def zero3_killed_and_resumed(tmp_path_factory):
    """The tiny recipe under ZeRO-3, killed after ``sft_all`` and resumed; its output dir and the markers that
    existed at the kill (name -> mtime)."""
    pytest.importorskip("deepspeed", reason="ZeRO-3 needs deepspeed: DS_BUILD_OPS=0 pip install 'deepspeed>=0.17'")
    root = tmp_path_factory.mktemp("zero3")
    out = root / "run"
    first = _start("zero3_2cpu", out, root / "first.log")
    marker = out / "sft_all" / "stage_complete.json"
    deadline = time.monotonic() + 1500
    while not marker.is_file():
        assert first.poll() is None, (root / "first.log").read_text()[-6000:]
        assert time.monotonic() < deadline, "sft_all did not finish in 25 minutes"
        time.sleep(0.5)
    _kill_tree(first)
    finished = {path.parent.name: path.stat().st_mtime_ns for path in out.glob("*/stage_complete.json")}
    _finish(_start("zero3_2cpu", out, root / "second.log"), root / "second.log")
    return out, finished


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """The same recipe under one process and under DDP on two: launch name -> output dir."""
    root = tmp_path_factory.mktemp("baselines")
    runs = {}
    for launch in (None, "ddp_2cpu"):
        name = launch or "single"
        _finish(_start(launch, root / name, root / f"{name}.log"), root / f"{name}.log")
        runs[name] = root / name
    return runs


@pytest.mark.timeout(3600)
def test_zero3_launch_runs_every_stage_and_resumes_after_a_kill(zero3_killed_and_resumed):
    out, finished = zero3_killed_and_resumed
    assert {"synth", "curate", "sft_all"} <= set(finished)
    _assert_every_stage_complete(out)
    for name, mtime in finished.items():  # the resumed launch skipped what had finished
        assert (out / name / "stage_complete.json").stat().st_mtime_ns == mtime, name
    dapo = [json.loads(line) for line in (out / "dapo" / "metrics.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in dapo] == [1, 2, 3]


def _losses(out: Path) -> dict[str, float]:
    """The train loss of the stages whose loss is a token mean over the same batches under every launch.

    Not eval_loss nor sft_endocrinology's train_loss: HF's Trainer reports those as means over batches,
    which depend on how the records split over ranks, while the weights (compared too) do not.
    """
    return {f"{stage} train_loss": json.loads((out / stage / "metrics.json").read_text())["train_loss"]
            for stage in ("sft_all", "dpo")}


def _max_weight_difference(first: Path, second: Path) -> float:
    a = AutoModelForCausalLM.from_pretrained(first).state_dict()
    b = AutoModelForCausalLM.from_pretrained(second).state_dict()
    assert set(a) == set(b)
    return max((a[key] - b[key]).abs().max().item() for key in a)


def _measured_against_baselines(runs: dict[str, Path], launch: str) -> dict[str, float]:
    """How far ``launch`` trained from one process (SFT/DPO losses and weights) and, for a sharded launch,
    from DDP on as many ranks (DAPO: two ranks sample their halves of each round with their own seeds, the
    same rollouts under every two-rank launch, other ones in one process; tests/trainers/test_dapo_distributed.py
    compares those with a prompt-seeded engine)."""
    measured = {}
    for key, value in _losses(runs[launch]).items():
        expected = _losses(runs["single"])[key]
        measured[f"{launch} vs single: {key} (rel)"] = abs(value - expected) / abs(expected)
    for stage in ("sft_all", "sft_endocrinology", "dpo"):
        measured[f"{launch} vs single: {stage}/final weights (max abs)"] = _max_weight_difference(
            runs[launch] / stage / "final", runs["single"] / stage / "final")
    if launch == "ddp_2cpu":
        return measured
    dapo = {name: [json.loads(line) for line in (runs[name] / "dapo" / "metrics.jsonl").read_text().splitlines()]
            for name in ("ddp_2cpu", launch)}
    for step, (ddp, sharded) in enumerate(zip(dapo["ddp_2cpu"], dapo[launch], strict=True), start=1):
        measured[f"{launch} vs ddp_2cpu: dapo step {step} loss (abs)"] = abs(ddp["loss"] - sharded["loss"])
    measured[f"{launch} vs ddp_2cpu: dapo/final weights (max abs)"] = _max_weight_difference(
        runs["ddp_2cpu"] / "dapo" / "final", runs[launch] / "dapo" / "final")
    return measured


def _assert_within_tolerances(measured: dict[str, float]) -> None:
    print("\n".join(f"{key}: {value:.3g}" for key, value in measured.items()))  # noqa: T201 - the tolerance table
    for key, value in measured.items():
        limit = TOLERANCES["loss_rel"] if "(rel)" in key else TOLERANCES["weights_atol"]
        if "dapo/final" in key:
            limit = TOLERANCES["dapo_weights_atol"]
        assert value <= limit, f"{key}: {value:.3g} > {limit:g}"
    assert torch.isfinite(torch.tensor(list(measured.values()))).all()


def _assert_every_stage_complete(out: Path) -> None:
    summary = json.loads((out / "summary.json").read_text())
    names = stage_names(OmegaConf.load(out / "config.yaml"))
    assert list(summary) == names
    assert all(summary[name].get("stage") == name for name in names), summary
    assert (out / "eval" / "results.md").is_file()


@pytest.mark.timeout(3600)
def test_launches_train_alike(zero3_killed_and_resumed, baselines):
    runs = {**baselines, "zero3": zero3_killed_and_resumed[0]}
    assert (runs["single"] / "curate" / "curated.jsonl").read_text() == (runs["zero3"] / "curate" / "curated.jsonl").read_text()
    _assert_within_tolerances({**_measured_against_baselines(runs, "ddp_2cpu"), **_measured_against_baselines(runs, "zero3")})


@pytest.mark.timeout(3600)
def test_fsdp2_launch_runs_every_stage_and_trains_alike(baselines, tmp_path):
    """``fsdp2_2cpu.yaml``: every tiny stage in one launch, the training stages under accelerate's FSDP (not
    the plain data parallel it would fall back to on CPU), as one process and DDP train."""
    out = tmp_path / "fsdp2"
    _finish(_start("fsdp2_2cpu", out, tmp_path / "fsdp2.log"), tmp_path / "fsdp2.log")
    _assert_every_stage_complete(out)
    log = (out / "train.log").read_text()
    for stage in ("sft_all", "sft_endocrinology", "dpo", "dapo"):
        assert f"Stage '{stage}' done in" in log and re.search(rf"Stage '{stage}' done in [\d.]+ s \(accelerate: FSDP\)", log), stage
    assert (out / "curate" / "curated.jsonl").read_text() == (baselines["single"] / "curate" / "curated.jsonl").read_text()
    _assert_within_tolerances(_measured_against_baselines({**baselines, "fsdp2": out}, "fsdp2"))


@pytest.mark.timeout(1800)
def test_two_nodes_on_the_loopback_run_the_recipe(tmp_path):
    """``--num_machines 2``: two launches, one rank each, meeting at 127.0.0.1 as two Slurm nodes would."""
    out, port = tmp_path / "run", str(free_port())
    nodes = [
        _start("ddp_2cpu", out, tmp_path / f"node{rank}.log", overrides=("stages.sft_all.trainer.num_train_epochs=4",),
               launcher_args=("--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
                              "--main_process_ip", "127.0.0.1", "--main_process_port", port))
        for rank in (0, 1)
    ]
    for rank, node in enumerate(nodes):
        _finish(node, tmp_path / f"node{rank}.log")
    summary = json.loads((out / "summary.json").read_text())
    assert all(entry.get("stage") == name for name, entry in summary.items()) and "eval" in summary, summary
    assert "epochs 4, 16 sequences per step" in (out / "train.log").read_text()  # 8 per rank x 2 ranks


@pytest.mark.timeout(1800)
def test_eval_under_two_ranks_gives_the_one_process_table(baselines, tmp_path):
    """The one-process run with its eval stage removed, resumed under DDP: the main process evaluates the
    same model while the other rank waits, and writes the same model-card table."""
    import shutil

    single = baselines["single"]
    copy = tmp_path / "run"
    shutil.copytree(single, copy)
    shutil.rmtree(copy / "eval")
    _finish(_start("ddp_2cpu", copy, tmp_path / "eval.log"), tmp_path / "eval.log")
    table = (copy / "eval" / "results.md").read_text()
    assert table == (single / "eval" / "results.md").read_text() and "Δ TTT" in table


def test_eval_stage_is_data_parallel_under_ddp_and_gives_the_one_process_table(tmp_path):
    """An eval stage without TTT under DDP: each rank generates its chunks (8 items each) into its own cache
    file, and the main process writes the table and predictions one process writes."""
    model = build_tiny_model_dir(tmp_path / "model")
    overrides = ("stage=eval", f"++stages.eval.init_from={model}", "stages.eval.evaluate.ttt=null",
                 "stages.eval.evaluate.chunk_size=8")
    runs = {}
    for launch in (None, "ddp_2cpu"):
        runs[launch] = tmp_path / (launch or "single")
        _finish(_start(launch, runs[launch], tmp_path / f"{launch}.log", overrides=overrides), tmp_path / f"{launch}.log")
    single, ddp = runs[None] / "eval", runs["ddp_2cpu"] / "eval"
    assert (ddp / "results.md").read_text() == (single / "results.md").read_text()
    [cache] = (ddp / "generations").iterdir()
    assert sorted(path.name for path in cache.iterdir()) == ["tiny_mcq.rank0.jsonl", "tiny_mcq.rank1.jsonl"]
    [predictions] = single.glob("*/tiny_mcq.predictions.jsonl")
    assert (ddp / predictions.relative_to(single)).read_text() == predictions.read_text()
