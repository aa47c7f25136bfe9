"""In-training benchmark evaluation: metrics at the stated steps, best checkpoint by accuracy, clear refusals."""

import json

import pytest
import torch
from safetensors.torch import load_file

from medreason.eval.in_training import InTrainingEvaluator
from medreason.testing import tiny_records
from medreason.trainers import CurriculumSFTConfig, CurriculumSFTTrainer
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import METRICS_FILE, DAPOTrainer
from medreason.utils.config_errors import ConfigError, FieldError

CPU = dict(use_cpu=True, bf16=False, report_to="none", disable_tqdm=True, activation_checkpointing=False, seed=7)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_dapo_logs_benchmark_accuracy_at_eval_steps(tiny_model_dir, tmp_path):
    args = DAPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, seed=0, max_steps=4, num_generations=2,
        train_prompt_batch_size=2, gen_prompt_batch_size=2, mini_batch_size=1, max_completion_length=8,
        overlong_buffer_length=0, rewards=["format"], dynamic_sampling=False, warmup_steps=0, save_steps=1000,
        log_completions_steps=0, eval_benchmarks=["tiny_mcq"], eval_steps=2, eval_benchmark_limit=3,
        eval_benchmark_max_tokens=8,
    )
    data = [{"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"], "options": r["options"]}
            for r in tiny_records(4)]
    DAPOTrainer(tiny_model_dir, args, data).train()
    lines = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [line["step"] for line in lines if "benchmark/tiny_mcq" in line] == [2, 4]
    assert all(0.0 <= line["benchmark/tiny_mcq"] <= 1.0 for line in lines if "benchmark/tiny_mcq" in line)
    # the harness's predictions: 3 items of the built-in benchmark, per evaluated step
    for step in (2, 4):
        (predictions,) = (tmp_path / "benchmark_eval" / f"step-{step}").rglob("tiny_mcq.predictions.jsonl")
        assert len(predictions.read_text().splitlines()) == 3
    assert not (tmp_path / "benchmark_eval" / "step-1").exists()


def test_sft_selects_the_best_checkpoint_by_benchmark_accuracy(tiny_model_dir, tmp_path, monkeypatch):
    # Scripted accuracies that fall while the validation loss falls: by loss the last checkpoint would win.
    scripted = {2: 0.75, 4: 0.25, 6: 0.5}
    calls = []

    def scripted_accuracy(self, engine, step):
        calls.append((engine.model_name, step))
        return {"benchmark/tiny_mcq": scripted[step]}

    monkeypatch.setattr(InTrainingEvaluator, "__call__", scripted_accuracy)
    config = CurriculumSFTConfig(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=8, learning_rate=1e-3, num_train_epochs=3,
        save_total_limit=None, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
        eval_benchmarks=["tiny_mcq"], best_checkpoint_benchmark="tiny_mcq", stages=[{"name": "all", "eval_fraction": 0.25}],
        **CPU,
    )
    (result,) = CurriculumSFTTrainer(str(tiny_model_dir), config, train_dataset=tiny_records(21)).train()
    assert [step for _, step in calls] == [2, 4, 6] and calls[0][0].endswith("-step-2")
    assert result.metrics["eval_losses"][0] > result.metrics["eval_losses"][-1]
    assert result.metrics["best_checkpoint"] == str(tmp_path / "run" / "all" / "checkpoint-2")
    saved = json.loads((tmp_path / "run" / "all" / "metrics.json").read_text())
    assert saved["benchmark_accuracies"] == {"2": {"tiny_mcq": 0.75}, "4": {"tiny_mcq": 0.25}, "6": {"tiny_mcq": 0.5}}
    final, best = (load_file(str(p / "model.safetensors")) for p in (result.final_dir, tmp_path / "run" / "all" / "checkpoint-2"))
    assert all(torch.equal(final[k], best[k]) for k in final)


def test_refusals_name_the_field(tiny_model_dir, tmp_path):
    with pytest.raises(FieldError, match="best_checkpoint_benchmark.*must be one of eval_benchmarks"):
        CurriculumSFTConfig(output_dir=str(tmp_path), best_checkpoint_benchmark="medqa", **CPU)
    with pytest.raises(FieldError, match="eval_steps"):
        DAPOConfig(output_dir=str(tmp_path), use_cpu=True, eval_benchmarks=["tiny_mcq"], train_prompt_batch_size=2,
                   gen_prompt_batch_size=2, mini_batch_size=1, num_generations=2)
    config = CurriculumSFTConfig(output_dir=str(tmp_path / "run"), eval_benchmarks=["tiny_mcq"], **CPU)
    with pytest.raises(ConfigError, match="no validation split: set data.eval_fraction"):
        CurriculumSFTTrainer(str(tiny_model_dir), config, train_dataset=tiny_records(8)).train()


def test_dpo_logs_benchmark_accuracy_at_each_evaluation(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medreason.testing import tiny_preference_records
    from medreason.trainers.dpo_config import DPOConfig
    from medreason.trainers.dpo_trainer import DPOTrainer

    def args(**extra):
        return DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, per_device_eval_batch_size=2,
                         max_steps=2, max_length=256, eval_benchmarks=["tiny_mcq"], eval_benchmark_limit=2,
                         eval_benchmark_max_tokens=4, **CPU, **extra)

    pairs = tiny_preference_records(6)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(ConfigError, match="no validation split"):
        DPOTrainer(model, None, args(), pairs, processing_class=tokenizer)
    trainer = DPOTrainer(model, None, args(eval_strategy="steps", eval_steps=1), pairs[:4], pairs[4:],
                         processing_class=tokenizer)
    trainer.train()
    assert [e["step"] for e in trainer.state.log_history if "benchmark/tiny_mcq" in e] == [1, 2]
    assert all("eval_loss" in e for e in trainer.state.log_history if e.get("step") in (1, 2) and "eval_runtime" in e)
