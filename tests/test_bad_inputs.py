"""The bad-input corpus (``tests/data/bad/``) through every entry point that reads records.

Each entry point (SFT, DPO, DAPO, evaluation, curation, FineMed and multiple-choice synthesis) gets
each bad file that its record shape can get wrong, from Python and from its command line. Every case
asserts that:

- the error is a :class:`RecordError` whose message names the file, the line and the field (a file
  with no records, or a line that is not UTF-8 JSON, has no field to name);
- a CLI exits with status 2 and reports it in one line, ``medreason.X: error: FILE, line N, field F: ...``;
- nothing was loaded or generated first: the model is an empty directory and every ``from_pretrained``
  fails the test;
- nothing claims success: no completion marker, manifest, results, curated output or final model.

The CLIs run in-process (``sys.argv`` + ``main()``), not as subprocesses, to keep the module fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import transformers
from hydra import compose, initialize_config_dir

from medreason import train
from medreason.config import config_dir
from medreason.curate import __main__ as curate_cli
from medreason.curate.commands import curate
from medreason.data.loading import load_records
from medreason.eval import Benchmark, evaluate
from medreason.eval import __main__ as eval_cli
from medreason.synth import __main__ as synth_cli
from medreason.synth.run import compose_config, run_pipeline
from medreason.trainers import CurriculumSFTConfig, CurriculumSFTTrainer, DPOConfig, DPOTrainer
from medreason.utils.jsonl import RecordError

BAD = Path(__file__).resolve().parent / "data" / "bad"
CPU = {"use_cpu": True, "bf16": False, "report_to": "none"}
SUCCESS_CLAIMS = {"stage_complete.json", "manifest.json", "results.json", "summary.json", "report.json",
                  "curated.jsonl", "done.json"}
"""Files whose presence says a run, stage or step finished."""


@dataclass(frozen=True)
class Expect:
    """What the error must say: ``FILE[, position][, field F]: ...problem...``."""

    position: str | None
    field: str | None
    problem: str

    def location(self, path: Path) -> str:
        return str(path) + (f", {self.position}" if self.position else "") + (f", field {self.field!r}" if self.field else "")


GENERIC = {
    "empty.jsonl": Expect(None, None, "the file holds no records"),
    "not_json.jsonl": Expect("line 2", None, "invalid JSON at column 1"),
    "invalid_utf8.jsonl": Expect("line 2", None, "byte 0xe9 at column 47 is not UTF-8"),
    "truncated.jsonl": Expect("line 2", None, "the line ends without a newline"),
}
MCQ = {
    **GENERIC,
    "wrong_types.jsonl": Expect("line 2", "question", "must be a non-empty string, got int '42'"),
    "empty_question.jsonl": Expect("line 2", "question", "must be a non-empty string, got str ' '"),
    "missing_fields.jsonl": Expect("line 2", "options", "expected at least two options as {'A': text, ...} or a list, got missing"),
    "missing_options.jsonl": Expect("line 2", "options", "expected at least two options as {'A': text, ...} or a list, got missing"),
    "answer_not_option.jsonl": Expect("line 2", "answer", "answer 'E' is not one of the options ['A', 'B']"),
}
EXPECTED: dict[str, dict[str, Expect]] = {
    "sft": {
        **GENERIC,
        "wrong_types.jsonl": Expect("line 2", "question", "must be a non-empty string, got int '42'"),
        "empty_question.jsonl": Expect("line 2", "question", "must be a non-empty string, got str ' '"),
        "missing_fields.jsonl": Expect("line 2", "response", "must be a non-empty string, got missing"),
        "wrong_roles.jsonl": Expect("line 2", "messages[0].role", "got 'doctor'"),
    },
    "dpo": {
        **GENERIC,
        "wrong_types.jsonl": Expect("line 2", "question", "got int '42'"),
        "empty_question.jsonl": Expect("line 2", "question", "got str ' '"),
        "missing_fields.jsonl": Expect("line 2", "rejected", "got missing"),
        "wrong_roles.jsonl": Expect("line 2", "prompt", "message role 'doctor' is not one of"),
        "empty_pair.jsonl": Expect("line 2", "chosen", "must be a non-empty string or list of messages, got str ''"),
        "identical_pair.jsonl": Expect("line 2", "rejected", "identical to 'chosen'"),
    },
    "dapo": MCQ,
    "eval": MCQ,
    "curate": {
        **GENERIC,
        "wrong_types.jsonl": Expect("line 2", "question", "must be a string, got int '42'"),
        "empty_question.jsonl": Expect("line 2", "question", "the prompt is empty"),
        "missing_prompt.jsonl": Expect("line 2", "question", "missing: a record needs a prompt"),
        "wrong_roles.jsonl": Expect("line 2", "messages[0].role", "got 'doctor'"),
    },
    "synth_finemed": {
        **GENERIC,
        "wrong_types.jsonl": Expect("line 2", "text", "got int '42'"),
        "empty_question.jsonl": Expect("line 2", "text", "got str ' '"),
        "missing_fields.jsonl": Expect("line 2", "text", "got missing"),
    },
    "synth_mcq": MCQ,
}
CASES = [(entry, name) for entry, files in EXPECTED.items() for name in files]


@pytest.fixture
def run_dirs(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """``(model, output)``: an empty model directory (loading it would fail) and a fresh output directory."""
    model, output = tmp_path / "model", tmp_path / "out"
    model.mkdir()
    monkeypatch.chdir(tmp_path)
    return model, output


@pytest.fixture(autouse=True)
def forbid_loading(monkeypatch) -> None:
    """Loading a model or tokenizer fails the test: records must be checked first."""

    def fail(*args: Any, **kwargs: Any) -> None:
        pytest.fail(f"from_pretrained{args} was called before the bad record was reported")

    for auto_class in ("AutoModelForCausalLM", "AutoTokenizer", "AutoModelForSequenceClassification"):
        monkeypatch.setattr(getattr(transformers, auto_class), "from_pretrained", fail)


def train_overrides(stage: str, path: Path, model: Path, output: Path) -> list[str]:
    """A tiny-recipe run of one stage reading ``path``, starting from ``model``."""
    return [
        "+recipe=tiny", f"output_dir={output}", f"stage={stage}", "model.tiny_family=null",
        f"model.name_or_path={model}", f"++stages.{stage}.init_from={model}",
        f"++stages.{stage}.data.path={path}", f"++stages.{stage}.data.builtin=null",
    ]


TRAIN_STAGES = {"sft": "sft_all", "dpo": "dpo", "dapo": "dapo"}


def synth_overrides(pipeline: str, path: Path, model: Path, output: Path) -> list[str]:
    return [f"+pipeline={pipeline}", f"input={path}", f"output={output}", f"model={model}", "backend=transformers"]


def run_python(entry: str, path: Path, model: Path, output: Path) -> None:
    """Feed ``path`` to ``entry``'s Python API."""
    if entry == "sft":
        args = CurriculumSFTConfig(output_dir=str(output), **CPU)
        CurriculumSFTTrainer(str(model), args, load_records(str(path)))
    elif entry == "dpo":
        DPOTrainer(str(model), args=DPOConfig(output_dir=str(output), **CPU), train_dataset=load_records(str(path)))
    elif entry == "dapo":
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose("train", overrides=train_overrides("dapo", path, model, output))
        train.run(cfg)
    elif entry == "eval":
        evaluate(model=str(model), benchmarks=[Benchmark("bad", "Bad", path=str(path))], output_dir=output,
                 progress=False)
    elif entry == "curate":
        curate({"input": str(path), "output": str(output), "steps": ["filter"], "progress": False})
    else:
        pipeline = "finemed" if entry == "synth_finemed" else "ii_medical_traces"
        run_pipeline(compose_config(synth_overrides(pipeline, path, model, output)))


def cli_call(entry: str, path: Path, model: Path, output: Path) -> tuple[str, Callable[[], None], list[str]]:
    """``(program, main, argv)`` of ``entry``'s command line reading ``path``."""
    if entry in TRAIN_STAGES:
        return "medreason.train", train.main, train_overrides(TRAIN_STAGES[entry], path, model, output)
    if entry == "eval":
        argv = [f"model={model}", "suite=null", "benchmarks=[medqa]", f"+benchmark_paths.medqa={path}",
                f"output_dir={output}"]
        return "medreason.eval", eval_cli.main, argv
    if entry == "curate":
        return "medreason.curate", curate_cli.main, [f"input={path}", f"output={output}", "steps=[filter]", "progress=false"]
    pipeline = "finemed" if entry == "synth_finemed" else "ii_medical_traces"
    return "medreason.synth", synth_cli.main, synth_overrides(pipeline, path, model, output)


def success_claims(root: Path) -> list[Path]:
    """Files under ``root`` that would say something finished, and ``final`` model directories."""
    return [p for p in root.rglob("*") if p.name in SUCCESS_CLAIMS or (p.is_dir() and p.name == "final")]


@pytest.mark.parametrize(("entry", "name"), CASES)
def test_python_entry_points_report_file_line_and_field(entry, name, run_dirs):
    model, output = run_dirs
    path, expect = BAD / name, EXPECTED[entry][name]
    with pytest.raises(RecordError) as error:
        run_python(entry, path, model, output)
    message = str(error.value)
    assert message.startswith(expect.location(path) + ": ") and expect.problem in message, message
    assert success_claims(output.parent) == []


@pytest.mark.parametrize(("entry", "name"), CASES)
def test_cli_entry_points_exit_2_with_one_line(entry, name, run_dirs, monkeypatch, capsys):
    model, output = run_dirs
    path, expect = BAD / name, EXPECTED[entry][name]
    program, main, argv = cli_call(entry, path, model, output)
    monkeypatch.setattr(sys, "argv", [program, *argv])
    monkeypatch.delenv("MEDREASON_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    reports = [line for line in err.splitlines() if line.startswith(f"{program}: error: ")]
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert len(reports) == 1 and reports[0] == err.rstrip("\n").splitlines()[-1], err[-2000:]
    assert reports[0].startswith(f"{program}: error: {expect.location(path)}: ") and expect.problem in reports[0]
    assert success_claims(output.parent) == []


@pytest.mark.parametrize("name", [name for name in EXPECTED["curate"] if name != "empty.jsonl"])
def test_curation_with_on_error_skip_rejects_the_bad_line_and_goes_on(name, run_dirs):
    _, output = run_dirs
    summaries = curate({"input": str(BAD / name), "output": str(output), "steps": ["filter"], "progress": False,
                        "on_error": "skip", "filters": []})
    assert summaries[0].kept == 1 and summaries[0].rejected == 1  # line 1 kept, line 2 rejected
    rejected = (output / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rejected) == 1 and '"position": "line 2"' in rejected[0]
    assert (output / "manifest.json").is_file()
