"""Every entry point reports a bad setting in one line on stderr and exits with status 2."""

import importlib.util
import subprocess
import sys

import pytest

from medreason.curate import __main__ as curate_cli
from medreason.eval import __main__ as eval_cli
from medreason.synth import __main__ as synth_cli

CASES = [
    (eval_cli.main, ["sampling.temprature=1"],
     "medreason.eval: error: sampling.temprature=1: is not a field of sampling; did you mean ['temperature']?"),
    (eval_cli.main, ["engine.backend=tgi"],
     "medreason.eval: error: engine.backend='tgi': must be one of ('transformers', 'openai', 'vllm')."),
    (eval_cli.main, ["chunk_size=0"], "medreason.eval: error: chunk_size=0: must be >= 1."),
    (curate_cli.main, ["input=a.jsonl", "output=out", "on_error=ignore"],
     "medreason.curate: error: on_error='ignore': must be one of ['raise', 'skip']."),
    (curate_cli.main, ["input=a.jsonl", "output=out", "decontaminate.mod=literal"],
     "medreason.curate: error: decontaminate={'mod': 'literal'}: Unknown key(s) ['mod'] in decontaminate"),
    (curate_cli.main, ["decontaminate", "input=a.jsonl", "output=out.jsonl"],
     "medreason.curate: error: benchmarks=None: decontaminate needs it"),
    (synth_cli.main, ["+pipeline=finemed", "input=a.jsonl", "output=out", "model=m", "+settings.complexity=1"],
     "medreason.synth: error: settings.complexity=1: is not a FineMedSettings field"),
    (eval_cli.main, ["model=/nonexistent/checkpoint", "suite=reasonmed"],
     "medreason.eval: error: model='/nonexistent/checkpoint': no such directory; give a local model directory or a hub id"),
    (eval_cli.main, ["suite=reasonmed", "data_dir=/nonexistent/eval"],
     "medreason.eval: error: data_dir=/nonexistent/eval is not a directory, and medqa, medmcqa, pubmedqa"),
]


@pytest.mark.parametrize(("main", "argv", "message"), CASES)
def test_cli_errors_are_one_line_naming_the_key(main, argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["prog", *argv, *([f"output_dir={tmp_path}"] if main is eval_cli.main else [])])
    with pytest.raises(SystemExit) as exit_info:
        main()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2
    assert last.startswith(message), last


def test_curate_cli_adds_step_settings_the_yaml_leaves_to_their_defaults(tmp_path, monkeypatch):
    # decontaminate.mode is not in conf/curate.yaml (DecontamConfig holds the default): it is added, not refused
    monkeypatch.setattr(sys, "argv", ["prog", "decontaminate.mode=literal", "input=a", "output=o"])
    from omegaconf import OmegaConf

    seen = {}
    monkeypatch.setattr(curate_cli, "run", lambda cfg: seen.update(OmegaConf.to_container(cfg)))
    curate_cli.main()
    assert seen["decontaminate"] == {"mode": "literal"}


@pytest.mark.parametrize(
    ("main", "usage", "absent"),
    [
        (eval_cli.main, "Usage: python -m medreason.eval model=PATH_OR_HUB_ID", "recipe"),
        (curate_cli.main, "python -m medreason.curate decontaminate input=train.jsonl", "accelerate"),
        (synth_cli.main, "+pipeline=ii_medical_traces", "trainer"),
    ],
)
def test_each_cli_help_shows_its_own_usage(main, usage, absent, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["prog", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert usage in help_text and f"{absent}:" not in help_text and "Configuration groups" not in help_text


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_a_missing_backend_package_stops_the_cli_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["prog", "+pipeline=ii_medical", "input=a.jsonl", "output=out"])
    with pytest.raises(SystemExit):
        curate_cli.main()
    assert capsys.readouterr().err.strip() == (
        "medreason.curate: error: domain.engine.backend='vllm': vllm is not installed here: pip install "
        "'medreason[vllm]' on a GPU machine, or use the openai backend with a served model."
    )
    assert not (tmp_path / "out").exists()


def test_the_evaluation_package_and_help_do_not_import_torch():
    code = "import sys, medreason.eval, medreason.tasks; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    help_run = [sys.executable, "-X", "importtime", "-m", "medreason.eval", "--help"]
    imported = subprocess.run(help_run, capture_output=True, text=True, check=True).stderr
    assert " torch\n" not in imported and "transformers" not in imported
