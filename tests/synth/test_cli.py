"""The command line: kill a running job and rerun it (no call is repeated), and the config groups."""

import json
import signal
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from medreason.config import config_dir
from medreason.synth.run import compose_config
from medreason.testing.openai_server import FakeLLMServer

from .conftest import read_jsonl, write_jsonl
from .fake_llm import FakeLLM

TEXTS = [{"id": f"t{i}", "text": f"TAG=topic{i} S1=8,{5 + i % 5},6,0 S2=6,5,4,0 Text {i}."} for i in range(8)]


def synth_command(server, source, out):
    return [
        sys.executable,
        "-m",
        "medreason.synth",
        "+pipeline=finemed",
        f"input={source}",
        f"output={out}",
        f"base_url={server.base_url}",
        "model=qwen",
        "concurrency=2",
        "progress=false",
        "engine={timeout: 60, max_retries: 2, backoff_base: 0.01}",
    ]


def wait_for(condition, what, limit=120.0):
    """Poll ``condition`` (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_kill_and_resume_repeats_no_completed_call(tmp_path):
    source = write_jsonl(tmp_path / "texts.jsonl", TEXTS)
    out = tmp_path / "out"
    llm = FakeLLM()
    # let 11 requests through (8 instructions + 3 scores), then park the rest until the job is killed
    with FakeLLMServer(llm, hold_after=11) as server:
        job = subprocess.Popen(
            synth_command(server, source, out), cwd=tmp_path, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for(lambda: server.held >= 1 and server.answered == 11, "11 answers and a parked request")
            cached = lambda: sum(1 for p in (out / "cache").glob("*.jsonl") for _ in p.open())  # noqa: E731
            wait_for(lambda: cached() == 11, "11 cached calls")
            job.send_signal(signal.SIGKILL)
            job.wait()
        finally:
            if job.poll() is None:
                job.kill()
        answered_before = {key: hits for key, hits in llm.hits.items()}
        assert not (out / "manifest.json").exists()
        server.release()  # parked requests now finish, into closed sockets

        done = subprocess.run(
            synth_command(server, source, out), cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]

    repeated = {key: llm.hits[key] for key, hits in answered_before.items() if llm.hits[key] != hits}
    assert repeated == {}, "a call answered before the kill was made again"
    assert (out / "manifest.json").is_file()
    records = read_jsonl(out / "sft.jsonl") + read_jsonl(out / "sft_long_form.jsonl")
    assert sorted(r["id"] for r in records) == sorted(f"t{i}#1" for i in range(8))
    long_form = {r["id"] for r in read_jsonl(out / "sft_long_form.jsonl")}
    assert long_form == {f"t{i}#1" for i in range(8) if 5 + i % 5 >= 8}


def test_both_pipeline_groups_compose_without_collision(tmp_path):
    cfg = compose_config(
        ["+pipeline=finemed", "input=a.jsonl", "output=out", "model=Qwen/Qwen2.5-72B-Instruct"]
    )
    assert cfg.synth_pipeline == "finemed" and cfg.roles.complex.model == "Qwen/Qwen2.5-72B-Instruct"
    for name in ("reasonmed", "ii_medical_traces"):
        assert compose_config([f"+pipeline={name}", "input=a", "output=o", "model=m"]).synth_pipeline == name
    with pytest.raises(ConfigCompositionException):
        compose_config(["+pipeline=ii_medical", "input=a", "output=o", "model=m"])  # curation's, not ours
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        curate = compose(config_name="curate", overrides=["+pipeline=ii_medical", "input=a", "output=o"])
    assert "domain" in curate.steps and "synth_pipeline" not in curate


def test_cli_errors_say_how_to_fix(tmp_path):
    from medreason.synth.run import run_pipeline

    with pytest.raises(ValueError, match=r"choose a pipeline with \+pipeline=NAME"):
        run_pipeline(compose_config(["input=a", "output=o", "model=m"]))
    with pytest.raises(ValueError, match=r"settings.complexity=.*is not a .* field; valid keys"):
        run_pipeline(
            compose_config(
                [
                    "+pipeline=finemed",
                    f"input={tmp_path}/a",
                    f"output={tmp_path}/o",
                    "model=m",
                    "+settings.complexity=3",
                ]
            )
        )


def test_role_defaults_sampling_reaches_the_single_role_of_ii_medical_traces():
    from medreason.synth.run import plan_pipeline

    cfg = compose_config(["+pipeline=ii_medical_traces", "input=q.jsonl", "output=o", "model=m",
                          "role_defaults.sampling.max_tokens=77"])
    sampling = plan_pipeline(cfg).roles["generator"]["sampling"]
    assert sampling["max_tokens"] == 77 and (sampling["temperature"], sampling["top_p"]) == (0.6, 0.9)


def test_a_bad_input_leaves_an_earlier_runs_manifest_alone(tmp_path):
    from medreason.synth.run import run_pipeline
    from medreason.testing.openai_server import FakeLLMServer
    from medreason.utils.jsonl import RecordError

    good, bad, output = tmp_path / "good.jsonl", tmp_path / "bad.jsonl", tmp_path / "out"
    good.write_text('{"id": "1", "question": "Which gland?", "options": {"A": "Thyroid", "B": "Adrenal"}, "answer": "A"}\n')
    bad.write_text("")
    with FakeLLMServer(lambda body, index: "<think>TSH</think>\\boxed{A}") as server:
        common = ["+pipeline=ii_medical_traces", f"output={output}", "model=m", f"base_url={server.base_url}",
                  "progress=false"]
        run_pipeline(compose_config([f"input={good}", *common]))
        with pytest.raises(RecordError, match="the file holds no records"):
            run_pipeline(compose_config([f"input={bad}", *common]))
    assert json.loads((output / "manifest.json").read_text())["completed"] is True
