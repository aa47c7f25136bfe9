import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from medreason.testing import build_tiny_model_dir, tiny_preference_records
from medreason.trainers import DPOConfig, DPOTrainer
from medreason.utils.jsonl import RecordError

CPU = dict(use_cpu=True, bf16=False, report_to="none", disable_tqdm=True, activation_checkpointing=False, seed=3)


def make_trainer(tmp_path, model_dir, records, ref_model=None, **kwargs):
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), **{**CPU, "max_length": 512, **kwargs})
    return DPOTrainer(
        AutoModelForCausalLM.from_pretrained(model_dir), ref_model=ref_model, args=args,
        train_dataset=records, processing_class=AutoTokenizer.from_pretrained(model_dir),
    )


def summed_completion_logps(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    token_logps = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return (token_logps * batch["completion_mask"][:, 1:]).sum(-1)


def test_loss_equals_the_dpo_formula_on_summed_response_logprobs(tmp_path, tiny_model_dir):
    reference = AutoModelForCausalLM.from_pretrained(build_tiny_model_dir(tmp_path / "ref", seed=1))
    trainer = make_trainer(tmp_path, tiny_model_dir, tiny_preference_records(2), ref_model=reference, beta=0.1)
    batch = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in range(2)]))
    loss = trainer.compute_loss(trainer.model, batch)

    with torch.no_grad():
        policy_c, policy_r = summed_completion_logps(trainer.model, batch).chunk(2)
        ref_c, ref_r = summed_completion_logps(reference, batch).chunk(2)
    expected = -F.logsigmoid(0.1 * ((policy_c - ref_c) - (policy_r - ref_r))).mean()
    assert abs((policy_c - ref_c) - (policy_r - ref_r)).max() > 1e-3  # a non-trivial margin
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)


def test_chosen_rejected_margin_grows_with_training(tmp_path, tiny_model_dir):
    trainer = make_trainer(
        tmp_path, tiny_model_dir, tiny_preference_records(16), per_device_train_batch_size=4,
        learning_rate=2e-3, max_steps=8, logging_steps=1, lr_scheduler_type="constant",
    )
    trainer.train()
    margins = [entry["rewards/margins"] for entry in trainer.state.log_history if "rewards/margins" in entry]
    assert margins[0] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    assert margins[-1] > 1.0 and margins[-1] > max(margins[:3])
    assert "memory/peak_rss_gib" in trainer.state.log_history[0]


@pytest.mark.parametrize(
    ("record", "field", "fragment"),
    [
        ({"prompt": "Q", "chosen": "", "rejected": "B"}, "chosen", "non-empty"),
        ({"question": "Q", "chosen": "A", "rejected": None}, "rejected", "got missing"),
        ({"prompt": "Q", "chosen": " same ", "rejected": "same"}, "rejected", "identical to 'chosen'"),
        ({"chosen": "A", "rejected": "B"}, "prompt", "needs one of"),
        ({"prompt": [], "chosen": "A", "rejected": "B"}, "prompt", "non-empty"),
        ({"prompt": [{"role": "doctor", "content": "Q"}], "chosen": "A", "rejected": "B"}, "prompt", "role 'doctor'"),
    ],
)
def test_bad_preference_records_name_the_record_and_field(tmp_path, tiny_model_dir, record, field, fragment):
    records = [*tiny_preference_records(2), record]
    with pytest.raises(RecordError) as error:
        make_trainer(tmp_path, tiny_model_dir, records)
    assert str(error.value).startswith(f"train_dataset, index 2, field {field!r}")
    assert fragment in str(error.value)


def test_overlength_pairs_follow_the_policy(tmp_path, tiny_model_dir, caplog):
    records = tiny_preference_records(4)
    records[1] = {**records[1], "chosen": records[1]["chosen"] + " more words" * 200}
    with pytest.raises(ValueError, match="1 of 4 pairs exceed max_length=300 \\(first: index 1\\)"):
        make_trainer(tmp_path, tiny_model_dir, records, max_length=300, overlength_policy="error")
    dropped = make_trainer(tmp_path, tiny_model_dir, records, max_length=300, overlength_policy="drop")
    assert len(dropped.train_dataset) == 3 and 1 not in dropped.train_dataset["record_index"]
    with caplog.at_level("WARNING", logger="medreason"):
        kept = make_trainer(tmp_path, tiny_model_dir, records, max_length=300)
    assert len(kept.train_dataset) == 4 and "training on their first 300 tokens" in caplog.text
    with pytest.raises(ValueError, match="overlength_policy='cut'"):
        DPOConfig(output_dir=str(tmp_path), overlength_policy="cut", **CPU)


def test_precomputed_reference_logprobs_and_lora_reference(tmp_path, tiny_model_dir):
    from peft import LoraConfig

    precomputed = make_trainer(tmp_path, tiny_model_dir, tiny_preference_records(4), precompute_ref_log_probs=True,
                               per_device_train_batch_size=2, max_steps=1)
    assert "ref_chosen_logps" in precomputed.train_dataset.column_names
    assert precomputed.train().global_step == 1

    args = DPOConfig(output_dir=str(tmp_path / "lora"), **CPU, max_length=512, max_steps=2, learning_rate=1e-2,
                     per_device_train_batch_size=2)
    lora = DPOTrainer(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args, train_dataset=tiny_preference_records(4),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
        peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"]),
    )
    assert lora.ref_model is None  # the PEFT base (adapters disabled) is the reference
    lora.train()
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in lora.model.named_parameters())


def test_global_batch_size_derives_accumulation(tmp_path):
    assert DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, global_batch_size=8, **CPU).gradient_accumulation_steps == 4
    with pytest.raises(ValueError, match="global_batch_size=5 is not a multiple"):
        DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, global_batch_size=5, **CPU)
