"""Every entry point reports a bad setting in one line on stderr and exits with status 2."""

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
