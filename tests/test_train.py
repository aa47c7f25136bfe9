"""The recipe runner end to end on the tiny recipe."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from medreason.config import config_dir
from medreason.recipe import RecipeError
from medreason.stage_context import StageStateError
from medreason.train import run

FAST = ["trainer.max_steps=3", "trainer.logging_steps=1"]


def tiny_cfg(output_dir, *overrides):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=["+recipe=tiny", f"output_dir={output_dir}", *FAST, *overrides])


def test_tiny_recipe_command_runs_every_stage(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medreason.train", "+recipe=tiny", f"output_dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == ["synth", "curate", "sft_all", "sft_endocrinology", "dpo", "dapo", "eval", "eval_rubric"]
    synthesis = summary["synth"]["metrics"]["counts"]
    # the tiny teacher boxes the right letter in one of its two traces per question: half are kept
    assert synthesis["questions"] == 16 and synthesis["traces_sampled"] == 32 and synthesis["records"] == 16
    assert summary["synth"]["final_dir"] == str(tmp_path / "base_model")
    by_source = json.loads((tmp_path / "curate" / "report.json").read_text())["by_source"]
    assert by_source["traces"] > 0  # synthesised records reach the curated corpus
    curation = summary["curate"]["metrics"]["steps"]["decontaminate"]
    assert curation["dropped"] and curation["kept"] < curation["input"]  # benchmark copies removed
    sft_all = summary["sft_all"]["metrics"]
    assert sft_all["num_eval_records"] + sft_all["num_train_records"] == curation["kept"]
    assert len(sft_all["eval_losses"]) == 40
    assert sft_all["eval_losses"][-1] < sft_all["eval_losses"][0]
    assert 0 < summary["sft_endocrinology"]["metrics"]["num_train_records"] < curation["kept"]
    assert summary["dpo"]["started_from"] == str(tmp_path / "sft_endocrinology" / "final")
    margins = summary["dpo"]["metrics"]["reward_margins"]
    assert margins[-1] > margins[0] + 1.0
    dapo = summary["dapo"]["metrics"]
    assert summary["dapo"]["started_from"] == str(tmp_path / "dpo" / "final")
    assert dapo["global_step"] == 3 and "truncation_rate" in dapo and "kept_group_ratio" in dapo
    evaluation = summary["eval"]
    assert evaluation["final_dir"] == str(tmp_path / "dapo" / "final")  # measured, handed on unchanged
    assert 0.0 <= evaluation["metrics"]["accuracies"]["tiny_mcq"] <= 100.0
    assert "tiny_mcq" in evaluation["metrics"]["accuracies_without_ttt"]
    table = (tmp_path / "eval" / "results.md").read_text()
    assert "Tiny MCQ" in table and "+ttt-full-" in table and "Δ TTT (points)" in table
    assert (tmp_path / "eval" / "results.png").stat().st_size > 0
    assert "learning_rate: 0.01" in (tmp_path / "config.yaml").read_text()
    assert "output_dir=" in (tmp_path / "overrides.yaml").read_text()
    assert "Stage 'eval' done" in (tmp_path / "train.log").read_text()
    rubric = summary["eval_rubric"]
    assert rubric["final_dir"] == str(tmp_path / "dapo" / "final")
    assert 0.0 <= rubric["metrics"]["accuracies"]["tiny_rubric"] <= 1.0
    assert "Tiny rubric" in (tmp_path / "eval_rubric" / "results.md").read_text()
    assert not (tmp_path / "hydra").exists()
    # what a reader opens: completions, curves, model cards with the eval results, the run report
    assert sorted(p.name for p in (tmp_path / "dapo" / "completions").iterdir()) == [f"step-{n}.jsonl" for n in (1, 2, 3)]
    for name in ("sft_all", "sft_endocrinology", "dpo", "dapo"):
        assert (tmp_path / name / "curves.png").read_bytes()[:4] == b"\x89PNG"
        card = (tmp_path / name / "final" / "README.md").read_text()
        assert yaml.safe_load(card.split("---\n")[1])["library_name"] == "transformers"
    dapo_card = yaml.safe_load((tmp_path / "dapo" / "final" / "README.md").read_text().split("---\n")[1])
    accuracy, rubric_score = dapo_card["model-index"][0]["results"]
    assert accuracy["dataset"]["type"] == "tiny_mcq" and len(accuracy["metrics"]) == 2  # without and with TTT
    assert rubric_score["dataset"]["type"] == "tiny_rubric" and rubric_score["metrics"][0]["type"] == "rubric_score"
    report = (tmp_path / "report.md").read_text()
    assert "![dapo training curves](dapo/curves.png)" in report and "[model card](dapo/final/README.md)" in report
    assert "Tiny MCQ" in report and "![eval results](eval/results.png)" in report


def test_stages_chain_and_resume_skips_finished_stages(tmp_path):
    finals = run(tiny_cfg(tmp_path))
    assert list(finals) == ["synth", "curate", "sft_all", "sft_endocrinology", "dpo", "dapo", "eval", "eval_rubric"]
    first = load_file(str(finals["dapo"] / "model.safetensors"))

    # a finished run invoked again hands back its results and trains nothing
    assert run(tiny_cfg(tmp_path)) == finals
    assert run(tiny_cfg(tmp_path, "resume=true")) == finals
    again = load_file(str(finals["dapo"] / "model.safetensors"))
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_a_run_whose_stages_partly_finished_asks_for_resume_or_overwrite(tmp_path, capsys):
    run(tiny_cfg(tmp_path, "stage=synth"))
    assert "| synth | synth | finished |" in capsys.readouterr().out
    with pytest.raises(StageStateError, match="already finished .* Pass resume=true"):
        run(tiny_cfg(tmp_path))


def test_a_finished_run_prints_its_summary_again(tmp_path, capsys):
    run(tiny_cfg(tmp_path, "stage=synth"))
    first = capsys.readouterr().out
    assert run(tiny_cfg(tmp_path, "stage=synth")) == {"synth": tmp_path / "base_model"}
    again = capsys.readouterr().out
    assert again == first and "| synth | synth | finished |" in again and "| sft_all | sft | not run | – |" in again
    assert f"Report: {tmp_path / 'synth' / 'report.json'}" in again


def test_single_stage_starts_from_the_previous_final_model(tmp_path):
    with pytest.raises(RecipeError, match=r"Run stage=sft_all first, or start from a model: \+\+stages.sft_endocrinology.init_from"):
        run(tiny_cfg(tmp_path, "stage=sft_endocrinology"))
    run(tiny_cfg(tmp_path, "stage=synth"))
    run(tiny_cfg(tmp_path, "stage=curate"))
    run(tiny_cfg(tmp_path, "stage=sft_all"))
    assert not (tmp_path / "sft_endocrinology").exists()
    finals = run(tiny_cfg(tmp_path, "stage=sft_endocrinology", "trainer.learning_rate=5e-4"))
    marker = json.loads((tmp_path / "sft_endocrinology" / "stage_complete.json").read_text())
    assert marker["metrics"]["learning_rate"] == 5e-4
    assert finals["sft_endocrinology"] == tmp_path / "sft_endocrinology" / "final"
    # overwrite retrains a finished stage from scratch
    run(tiny_cfg(tmp_path, "stage=sft_endocrinology", "overwrite=true", "trainer.max_steps=1"))
    marker = json.loads((tmp_path / "sft_endocrinology" / "stage_complete.json").read_text())
    assert marker["metrics"]["global_steps"] == 1


def test_init_from_overrides_the_previous_stage(tmp_path, tiny_model_dir):
    finals = run(tiny_cfg(
        tmp_path, "stage=sft_endocrinology", f"+stages.sft_endocrinology.init_from={tiny_model_dir}",
        "stages.sft_endocrinology.data.path=null", "stages.sft_endocrinology.data.builtin=tiny",
    ))
    assert (finals["sft_endocrinology"] / "model.safetensors").is_file()


def test_an_unfinished_stage_is_not_trained_over_without_resume_or_overwrite(tmp_path):
    (tmp_path / "synth" / "checkpoint-4").mkdir(parents=True)
    with pytest.raises(StageStateError, match="checkpoints of an unfinished run .* Pass resume=true"):
        run(tiny_cfg(tmp_path, "stage=synth"))


def test_a_failing_main_process_stage_leaves_a_note_for_the_other_ranks(tmp_path):
    from medreason.stage_context import FAILED_NOTE, StageContext, run_on_main_process

    context = StageContext("eval", "eval", None, "model", "model", tmp_path / "eval", False, 0, None, None)

    def broken():
        raise OSError("disk full")

    with pytest.raises(OSError):
        run_on_main_process(context, broken)
    assert (tmp_path / "eval" / FAILED_NOTE).read_text() == "OSError: disk full"
    assert run_on_main_process(context, lambda: {"ok": 1}) == Path("model")
    assert json.loads((tmp_path / "eval" / "stage_complete.json").read_text())["final_dir"] == "model"


@pytest.mark.slow  # three training stages, ~45 s on 2 CPU cores
def test_lora_recipe_trains_an_adapter_in_every_stage(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["+recipe=tiny_lora", f"output_dir={tmp_path}"])
    finals = run(cfg)
    assert list(finals) == ["sft", "dpo", "dapo"]
    ids = torch.tensor([[5, 40, 77, 120, 9, 301]])
    previous = None
    for name, final in finals.items():
        # final/ is the merged model; final/adapter the adapter on the model the stage started from.
        adapter_config = json.loads((final / "adapter" / "adapter_config.json").read_text())
        assert adapter_config["r"] == 8 and adapter_config["peft_type"] == "LORA"
        base_path = adapter_config["base_model_name_or_path"]
        if previous is not None:
            assert base_path == str(previous)
        with torch.no_grad():
            merged = AutoModelForCausalLM.from_pretrained(final)(input_ids=ids).logits
            base = AutoModelForCausalLM.from_pretrained(base_path)
            base_logits = base(input_ids=ids).logits
            adapted = PeftModel.from_pretrained(base, final / "adapter")(input_ids=ids).logits
        torch.testing.assert_close(adapted, merged, rtol=0, atol=1e-5)
        assert not torch.allclose(merged, base_logits, atol=1e-4), f"stage {name} did not move the model"
        previous = final
