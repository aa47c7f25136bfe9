import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from medreason.testing import TINY_FAMILIES, build_tiny_model_dir, tiny_records


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_each_family_saves_and_reloads_with_from_pretrained(tmp_path, family):
    path = build_tiny_model_dir(tmp_path / family, family)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) < 200_000
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Low TSH?"}], add_generation_prompt=True, tokenize=False)
    with torch.no_grad():
        logits = model(**tokenizer(text, return_tensors="pt")).logits
    assert logits.shape[-1] == len(tokenizer)


def test_same_seed_gives_the_same_weights(tmp_path):
    first = AutoModelForCausalLM.from_pretrained(build_tiny_model_dir(tmp_path / "a", seed=3))
    second = AutoModelForCausalLM.from_pretrained(build_tiny_model_dir(tmp_path / "b", seed=3))
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_tokenizer_keeps_think_tags_whole(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    pieces = tokenizer.tokenize("<think>reason</think>answer")
    assert pieces[0] == "<think>" and "</think>" in pieces


def test_chat_template_renders_reasoning_before_the_answer(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "B", "reasoning_content": "why"}],
        tokenize=False,
    )
    assert text.endswith("<|im_start|>assistant\n<think>\nwhy\n</think>\n\nB<|im_end|>\n")


def test_tiny_records_are_deterministic_and_labelled():
    assert tiny_records(10, seed=1) == tiny_records(10, seed=1)
    records = tiny_records(96)
    assert {r["subdepartment"] for r in records} >= {"Endocrinology", "Cardiology"}
    for record in records:
        assert record["options"][record["answer"]] in record["cot"]
