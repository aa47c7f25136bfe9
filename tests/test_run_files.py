"""What a run does to its folder: one run at a time, names that stay inside it, no secrets on disk.

Select these with ``pytest -k "secret or traversal or run_lock"``.
"""

import os
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from medreason import train
from medreason.config import config_dir
from medreason.recipe import RecipeError, validate_run_config
from medreason.synth import __main__ as synth_cli
from medreason.testing.openai_server import FakeLLMServer
from medreason.utils.config_errors import ConfigError
from medreason.utils.run_files import run_lock

PLANTED = "sk-planted-0123456789"


def run_train(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["medreason.train", "+recipe=tiny", *argv])
    train.main()


def every_file_text(root):
    for path in root.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes().decode("utf-8", errors="replace")


def test_a_planted_secret_reaches_no_output_or_log(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    # the synthesis roles get the key as an engine argument, as a user passes one to a hosted API
    run_train(monkeypatch, f"output_dir={out}", "stage=synth",
              "stages.synth.synth.overrides=['settings.samples=2','settings.rounds=1','progress=false',"
              f"'role_defaults.sampling.max_tokens=64','engine={{api_key: {PLANTED}}}']")
    printed = capsys.readouterr()
    assert (out / "synth" / "stage_complete.json").is_file()
    leaks = [str(path) for path, text in every_file_text(out) if PLANTED in text]
    assert not leaks and PLANTED not in printed.out + printed.err
    assert "<redacted>" in (out / "config.yaml").read_text()


def test_a_planted_secret_stays_out_of_the_synthesis_manifest(tmp_path, monkeypatch):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "1", "question": "Which gland?", "options": {"A": "Thyroid", "B": "Adrenal"}, "answer": "A"}\n')
    with FakeLLMServer(lambda body, index: "<think>TSH</think>\\boxed{A}") as server:
        monkeypatch.setattr(sys, "argv", [
            "medreason.synth", "+pipeline=ii_medical_traces", f"input={questions}", f"output={tmp_path / 'out'}",
            "model=m", f"base_url={server.base_url}", f"engine={{api_key: {PLANTED}}}", "progress=false",
        ])
        synth_cli.main()
    assert not [str(path) for path, text in every_file_text(tmp_path / "out") if PLANTED in text]


def test_traversal_stage_names_are_refused_before_anything_runs(tmp_path):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["+recipe=tiny", f"output_dir={tmp_path / 'run'}"])
    with open_dict(cfg):
        cfg.stages["../victim"] = OmegaConf.create({"kind": "curate", "curate": {"builtin": "tiny"}})
    with pytest.raises(RecipeError, match=r"stage name='../victim': must be a plain name"):
        validate_run_config(cfg)


def test_traversal_overwrite_never_deletes_outside_the_run(tmp_path, monkeypatch, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / "synth").symlink_to(victim)  # a stage folder that resolves outside the run
    with pytest.raises(SystemExit) as exit_info:
        run_train(monkeypatch, f"output_dir={out}", "stage=synth", "overwrite=true")
    assert exit_info.value.code == 2
    assert "it is outside the run's folder" in capsys.readouterr().err
    assert (victim / "keep.txt").read_text() == "precious"


def test_run_lock_refuses_a_second_run_naming_the_first(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    with run_lock(out):
        with pytest.raises(ConfigError, match=rf"in use by another medreason run \(PID {os.getpid()}\)"):
            with run_lock(out):
                pass
        with pytest.raises(SystemExit):
            run_train(monkeypatch, f"output_dir={out}", "stage=synth")
    assert f"(PID {os.getpid()})" in capsys.readouterr().err.splitlines()[-1]
    assert not (out / "synth").exists()
    with run_lock(out):  # released when the holder's block ends
        pass
