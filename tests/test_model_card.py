"""Model cards and the run report, rendered from a run folder laid out as a recipe run leaves it."""

import json
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from medreason.eval.results import BenchmarkResult, EvalResults
from medreason.model_card import file_sha256, write_model_cards
from medreason.run_report import write_report
from medreason.run_summary import write_summary
from medreason.stage_context import write_completion_marker
from medreason.trainers.dapo_config import DAPOConfig
from medreason.utils.training_curves import plot_training_curves

KINDS = {"curate": "curate", "sft": "sft", "dapo": "dapo", "eval": "eval"}


def _run(tmp_path: Path) -> tuple[object, Path]:
    """A finished curate -> sft -> dapo -> eval run, with the files each stage writes."""
    out = tmp_path / "run"
    data = tmp_path / "train.jsonl"
    data.write_text('{"question": "q", "answer": "A"}\n')
    cfg = OmegaConf.create({
        "run_name": "tiny", "model": {"name_or_path": "Qwen/Qwen3-8B"},
        "stages": {
            "curate": {"kind": "curate"},
            "sft": {"kind": "sft", "data": {"path": str(data), "max_samples": 10, "eval_fraction": 0.2},
                    "trainer": {"learning_rate": 1e-5, "num_train_epochs": 2}},
            "dapo": {"kind": "dapo", "data": {"builtin": "tiny"}, "trainer": {"learning_rate": 1e-6}},
            "eval": {"kind": "eval"},
        },
    })
    for name in KINDS:
        (out / name).mkdir(parents=True)
    (out / "curate" / "report.json").write_text(json.dumps({"steps": [
        {"name": "decontaminate", "input": 112, "dropped": {"contaminated (ngram)": 67}, "extra": {"mode": "overlap"}}]}))
    write_completion_marker(out / "curate", "curate", "curate", {}, final_dir=Path("Qwen/Qwen3-8B"))
    for name in ("sft", "dapo"):
        (out / name / "final").mkdir()
        write_completion_marker(out / name, name, KINDS[name], {"num_train_records": 8})
        plot_training_curves([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}], out / name / "curves.png", name)
    EvalResults("tiny", [BenchmarkResult("tiny_mcq", "Tiny MCQ", 0.25, 0.1, 24, 1)]).save(out / "eval" / "m" / "results.json")
    (out / "eval" / "results.md").write_text("| Model | Tiny MCQ | Avg |\n|---|---|---|\n| **tiny** | 25.00 | 25.00 |\n")
    write_completion_marker(out / "eval", "eval", "eval", {"accuracies": {"tiny_mcq": 0.25}, "results": str(out / "eval" / "m")},
                            final_dir=out / "dapo" / "final")
    write_summary(out, list(KINDS), {"sft": "Qwen/Qwen3-8B", "dapo": str(out / "sft" / "final"),
                                     "eval": str(out / "dapo" / "final")}, {"sft": 1.5, "dapo": 2.5, "eval": 0.5})
    return cfg, out


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_cards_carry_metadata_data_hashes_and_the_eval_results(tmp_path):
    cfg, out = _run(tmp_path)
    dapo_config = DAPOConfig(output_dir=str(out / "dapo"), use_cpu=True, train_prompt_batch_size=2,
                             gen_prompt_batch_size=2, mini_batch_size=1, num_generations=2)
    written = write_model_cards(cfg, out, KINDS, {"dapo": dapo_config})
    assert written == [out / "sft" / "final" / "README.md", out / "dapo" / "final" / "README.md"]
    sft_card, dapo_card = (path.read_text() for path in written)
    sft = _front_matter(sft_card)
    assert sft["base_model"] == "Qwen/Qwen3-8B" and sft["library_name"] == "transformers"
    assert "sft" in sft["tags"]
    data = str(tmp_path / "train.jsonl")
    assert sft["datasets"] == [data] and sft["dataset_hashes"] == {data: file_sha256(tmp_path / "train.jsonl")}
    assert sft["model-index"] == [{"name": "tiny-sft", "results": []}]  # the eval stage measured the dapo model
    assert "learning_rate: 1.0e-05" in sft_card and '"max_samples": 10' in sft_card
    assert "67 of 112 records removed as benchmark copies" in sft_card
    assert "No eval stage of this run evaluated this model." in sft_card
    dapo = _front_matter(dapo_card)
    (result,) = dapo["model-index"][0]["results"]
    assert result["dataset"] == {"name": "Tiny MCQ", "type": "tiny_mcq"}
    assert result["metrics"][0]["type"] == "accuracy" and result["metrics"][0]["value"] == 25.0
    assert "| **tiny** | 25.00 | 25.00 |" in dapo_card and "trained from `" + str(out / "sft" / "final") in dapo_card
    assert "Every resolved argument of DAPOConfig" in dapo_card and "clip_ratio_high: 0.28" in dapo_card
    assert "Every resolved argument" not in sft_card  # no config object was given for it
    assert "- source: `builtin:tiny`" in dapo_card and "sha256: none (generated in memory)" in dapo_card
    cfg.model.name_or_path = str(tmp_path)  # a local model (the tiny demo's): no base_model, which the Hub would refuse
    (local,) = (_front_matter(p.read_text()) for p in write_model_cards(cfg, out, KINDS)[:1])
    assert "base_model" not in local and local["library_name"] == "transformers"


def test_run_report_links_stages_curves_cards_and_tables(tmp_path):
    cfg, out = _run(tmp_path)
    write_model_cards(cfg, out, KINDS)
    report = write_report(out, "tiny", KINDS).read_text()
    assert "| [sft](#sft) | sft | finished | 1.5 |" in report
    assert "![sft training curves](sft/curves.png)" in report and "![dapo training curves](dapo/curves.png)" in report
    assert "[model card](sft/final/README.md)" in report and "[model card](dapo/final/README.md)" in report
    assert "| **tiny** | 25.00 | 25.00 |" in report
    for link in ("sft/curves.png", "sft/final/README.md", "dapo/final/README.md"):
        assert (out / link).is_file()
