import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, TrainerCallback

from medreason.stage_context import StageStateError
from medreason.testing import tiny_records
from medreason.trainers import CurriculumSFTConfig, CurriculumSFTTrainer, SFTStage
from medreason.utils.jsonl import RecordError

CPU = dict(use_cpu=True, bf16=False, report_to="none", disable_tqdm=True, activation_checkpointing=False, seed=7)


def make_config(tmp_path, **kwargs):
    return CurriculumSFTConfig(output_dir=str(tmp_path / "run"), **{**CPU, **kwargs})


def weights(path):
    return load_file(str(path / "model.safetensors"))


def test_each_stage_trains_its_filtered_subset_with_its_own_hyperparameters(tmp_path, tiny_model_dir):
    config = make_config(
        tmp_path,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        num_train_epochs=1,
        logging_steps=1,
        stages=[
            {"name": "all", "learning_rate": 3e-3, "num_train_epochs": 2},
            {"name": "endocrinology", "filter": {"subdepartment": "Endocrinology"}, "max_samples": 12},
        ],
    )
    trainer = CurriculumSFTTrainer(str(tiny_model_dir), config, train_dataset=tiny_records(48))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    first, second = trainer.train()

    assert first.metrics["num_train_records"] == 48
    assert first.metrics["learning_rate"] == 3e-3 and first.metrics["num_train_epochs"] == 2
    assert first.metrics["global_steps"] == 2 * math.ceil(48 / 8)
    assert second.metrics["num_train_records"] == 12
    assert second.metrics["learning_rate"] == 1e-3 and second.metrics["global_steps"] == math.ceil(12 / 8)
    assert (tmp_path / "run" / "endocrinology" / "metrics.json").is_file()

    after_first, after_second = weights(first.final_dir), weights(second.final_dir)
    changed = [k for k in after_first if not torch.equal(after_first[k], before[k])]
    assert len(changed) == len(after_first), "every parameter should move in stage 1"
    assert any(not torch.equal(after_first[k], after_second[k]) for k in after_first)
    reloaded = AutoModelForCausalLM.from_pretrained(second.final_dir)
    assert torch.equal(reloaded.state_dict()["lm_head.weight"], trainer.model.state_dict()["lm_head.weight"])


def test_best_checkpoint_is_the_one_with_the_lowest_validation_loss(tmp_path, tiny_model_dir):
    # Warm up to a learning rate far too high: epoch 1 is fine, later epochs diverge, so the best
    # checkpoint is not the last one.
    config = make_config(
        tmp_path,
        per_device_train_batch_size=8,
        learning_rate=1.0,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=0.7,
        num_train_epochs=6,
        save_total_limit=None,
        stages=[{"name": "all", "eval_fraction": 0.25}],
    )
    (result,) = CurriculumSFTTrainer(str(tiny_model_dir), config, train_dataset=tiny_records(32)).train()

    losses = result.metrics["eval_losses"]
    assert len(losses) == 6
    best_epoch = losses.index(min(losses))
    assert best_epoch < len(losses) - 1, f"scenario should overfit, got {losses}"
    best = tmp_path / "run" / "all" / f"checkpoint-{3 * (best_epoch + 1)}"
    assert result.metrics["best_checkpoint"] == str(best)
    assert result.metrics["best_eval_loss"] == min(losses)
    final, best_weights = weights(result.final_dir), weights(best)
    last = weights(tmp_path / "run" / "all" / "checkpoint-18")
    assert all(torch.equal(final[k], best_weights[k]) for k in final)
    assert any(not torch.equal(final[k], last[k]) for k in final)


def test_loss_is_masked_to_the_assistant_answer(tmp_path, tiny_model_dir):
    config = make_config(tmp_path, per_device_train_batch_size=2, stages=[{"name": "all"}])
    trainer = CurriculumSFTTrainer(str(tiny_model_dir), config, train_dataset=tiny_records(4))
    sft = trainer.build_stage_trainer(config.stages[0])
    example = sft.train_dataset[0]
    batch = sft.data_collator([example])
    labels, input_ids = batch["labels"][0], batch["input_ids"][0]
    trained = input_ids[labels != -100]
    tokenizer = trainer.processing_class
    record = tiny_records(4)[0]
    assert tokenizer.decode(trained).startswith("<think>\nThe key finding is")
    assert tokenizer.decode(trained).endswith(f"\\boxed{{{record['answer']}}}<|im_end|>\n")
    prompt = tokenizer.decode(input_ids[labels == -100])
    assert record["question"] in prompt and "<|im_start|>assistant\n" in prompt and "<think>" not in prompt


class CrashAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated crash at step {self.step}")


def test_resume_after_a_crash_reproduces_the_uninterrupted_weights(tmp_path, tiny_model_dir):
    common = dict(per_device_train_batch_size=4, learning_rate=3e-3, num_train_epochs=2, save_steps=2, save_strategy="steps")
    stages = [{"name": "all", "max_samples": 24}, {"name": "endo", "filter": {"subdepartment": "Endocrinology"}}]
    records = tiny_records(48)

    reference = CurriculumSFTTrainer(
        str(tiny_model_dir), make_config(tmp_path / "a", stages=stages, **common), train_dataset=records
    ).train()

    crashing = CurriculumSFTTrainer(
        str(tiny_model_dir), make_config(tmp_path / "b", stages=stages, **common), records, callbacks=[CrashAt(5)]
    )
    with pytest.raises(KeyboardInterrupt):
        crashing.train()  # stage "all" has 12 steps; crash after checkpoint-4
    assert (tmp_path / "b" / "run" / "all" / "checkpoint-4").is_dir()
    resumed = CurriculumSFTTrainer(
        str(tiny_model_dir), make_config(tmp_path / "b", stages=stages, **common), train_dataset=records
    ).train(resume_from_checkpoint=True)

    for ref, res in zip(reference, resumed, strict=True):
        expected, got = weights(ref.final_dir), weights(res.final_dir)
        assert all(torch.equal(expected[k], got[k]) for k in expected), ref.name
    assert resumed[0].metrics["global_steps"] == 12


def test_finished_stages_are_skipped_on_resume_and_protected_otherwise(tmp_path, tiny_model_dir):
    config = make_config(tmp_path, per_device_train_batch_size=8, max_steps=1, stages=[{"name": "all"}])
    (first,) = CurriculumSFTTrainer(str(tiny_model_dir), config, tiny_records(8)).train()
    with pytest.raises(StageStateError, match="already finished"):
        CurriculumSFTTrainer(str(tiny_model_dir), config, tiny_records(8)).train()
    again = CurriculumSFTTrainer(str(tiny_model_dir), config, tiny_records(8))
    (skipped,) = again.train(resume_from_checkpoint=True)
    assert skipped.metrics == first.metrics
    expected = weights(first.final_dir)
    assert all(torch.equal(expected[k], v) for k, v in again.model.state_dict().items() if k in expected)


def test_global_batch_size_sets_gradient_accumulation(tmp_path, tiny_model_dir):
    config = make_config(tmp_path, per_device_train_batch_size=2, global_batch_size=8, stages=[{"name": "a"}])
    trainer = CurriculumSFTTrainer(str(tiny_model_dir), config, tiny_records(8))
    assert trainer.build_stage_trainer(config.stages[0]).args.gradient_accumulation_steps == 4
    config.stages[0].global_batch_size = 7
    with pytest.raises(ValueError, match="stage .a.: global_batch_size=7 is not a multiple"):
        trainer.build_stage_trainer(config.stages[0])


def test_every_stages_records_are_checked_before_the_model_loads(tmp_path):
    good = {"question": "TSH low, T4 high?", "cot": "Excess hormone.", "response": "Hyperthyroidism"}
    records = [{**good, "department": "A"}] * 3 + [{**good, "department": "B", "response": ""}]
    config = make_config(tmp_path, stages=[{"name": "a", "filter": {"department": "A"}},
                                           {"name": "b", "filter": {"department": "B"}}])
    unloadable = tmp_path / "not_a_model"  # from_pretrained would fail here, after minutes on a real model
    unloadable.mkdir()
    with pytest.raises(RecordError, match=r"train_dataset, index 3, field 'response': must be a non-empty string"):
        CurriculumSFTTrainer(str(unloadable), config, train_dataset=records)


def test_lora_curriculum_trains_the_adapter_only(tmp_path, tiny_model_dir):
    config = make_config(  # the peft block a recipe's trainer settings carry
        tmp_path, per_device_train_batch_size=8, learning_rate=1e-2, max_steps=2,
        stages=[{"name": "all"}, {"name": "endo", "filter": {"subdepartment": "Endocrinology"}}],
        peft={"r": 4, "target_modules": ["q_proj", "v_proj"]},
    )
    trainer = CurriculumSFTTrainer(str(tiny_model_dir), config, tiny_records(32))
    base_before = trainer.model.state_dict()["model.layers.0.self_attn.q_proj.weight"].clone()
    results = trainer.train()
    # final/ holds the merged model (a plain from_pretrained directory), final/adapter the adapter alone.
    assert (results[1].final_dir / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(results[1].final_dir).state_dict()["model.layers.0.self_attn.q_proj.weight"]
    assert not torch.equal(merged, base_before)
    state = trainer.model.state_dict()
    assert torch.equal(state["base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"], base_before)
    assert state["base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"].abs().sum() > 0


def test_config_validation_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="duplicate names \\['a'\\]"):
        make_config(tmp_path, stages=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValueError, match="eval_fraction must be in \\[0, 1\\)"):
        SFTStage("a", eval_fraction=1.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'learnin_rate'"):
        make_config(tmp_path, stages=[{"name": "a", "learnin_rate": 1.0}])
    assert [s.name for s in make_config(tmp_path).stages] == ["sft"]


def test_packed_stage_trains_and_logs_to_tensorboard(tmp_path, tiny_model_dir):
    config = make_config(
        tmp_path, per_device_train_batch_size=2, max_length=512, packing=True, max_steps=2, logging_steps=1,
        report_to="tensorboard", stages=[{"name": "all"}],
    )
    trainer = CurriculumSFTTrainer(str(tiny_model_dir), config, tiny_records(16))
    sft = trainer.build_stage_trainer(config.stages[0])
    assert len(sft.train_dataset) < 16  # several records per packed sequence
    batch = sft.data_collator([sft.train_dataset[0]])
    assert batch["input_ids"].shape[0] == 1 and "position_ids" in batch
    (result,) = trainer.train()
    assert result.metrics["global_steps"] == 2
    assert list((tmp_path / "run" / "all" / "runs").rglob("events.out.tfevents.*"))
