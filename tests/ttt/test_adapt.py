"""Adaptation: exact restore in both modes (also after a failure), no optimizer-state leaks, answer-only labels."""

import pytest
import torch

from medreason.data.records import RecordConverter
from medreason.testing import tiny_records
from medreason.ttt import (
    EncodedExample,
    TTTConfig,
    WeightSnapshot,
    adapted,
    answer_loss,
    encode_example,
    restored,
)

from .helpers import load_tiny, max_abs_diff, state

MODES = {
    "full": TTTConfig(mode="full", learning_rate=1e-2, max_length=256),
    "lora": TTTConfig(mode="lora", lora_learning_rate=1e-2, lora_rank=4, lora_alpha=8, max_length=256),
}


@pytest.fixture
def model_and_example(tiny_model_dir):
    model, tokenizer = load_tiny(tiny_model_dir)
    record = RecordConverter()(tiny_records(1)[0], source="tiny", position="index 0")
    return model, encode_example(tokenizer, record, max_length=256)


def module_types(model):
    return [type(module) for module in model.modules()]


def flags(model):
    return [p.requires_grad for p in model.parameters()]


@pytest.mark.parametrize("mode", MODES)
def test_weights_change_inside_and_are_bit_identical_after(model_and_example, mode):
    model, example = model_and_example
    before, types = state(model), module_types(model)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([example.input_ids])).logits
    with adapted(model, [example], MODES[mode]) as losses:
        with torch.no_grad():
            changed = model(torch.tensor([example.input_ids])).logits
        assert not torch.equal(changed, logits)
        assert len(losses) == 2  # card: 2 epochs over one example
    assert max_abs_diff(model, before) == 0.0
    assert module_types(model) == types and all(flags(model)) and not model.training
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(model(torch.tensor([example.input_ids])).logits, logits)


@pytest.mark.parametrize("mode", MODES)
def test_restore_is_exact_after_a_failure_mid_training(model_and_example, mode, monkeypatch):
    model, example = model_and_example
    before, types, requires = state(model), module_types(model), flags(model)
    real_step, calls = torch.optim.AdamW.step, []

    def failing_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected failure in the second optimizer step")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", failing_step)
    with pytest.raises(RuntimeError, match="injected failure"):
        with adapted(model, [example], MODES[mode]):
            pass
    assert len(calls) == 2  # the first step did update the weights
    assert max_abs_diff(model, before) == 0.0
    assert module_types(model) == types and flags(model) == requires


@pytest.mark.parametrize("mode", MODES)
def test_restore_is_exact_after_a_failure_in_the_answer_step(model_and_example, mode):
    model, example = model_and_example
    before, types = state(model), module_types(model)
    with pytest.raises(KeyError):
        with adapted(model, [example], MODES[mode]):
            raise KeyError("generation failed")
    assert max_abs_diff(model, before) == 0.0 and module_types(model) == types


@pytest.mark.parametrize("mode", MODES)
def test_optimizer_state_does_not_leak_between_questions(model_and_example, mode):
    model, example = model_and_example
    adapted_weights = []
    for _ in range(2):  # identical start, identical data: identical result only with a fresh optimizer
        with adapted(model, [example], MODES[mode]) as losses:
            adapted_weights.append((state(model), losses))
    (first, first_losses), (second, second_losses) = adapted_weights
    assert first_losses == second_losses
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_snapshot_restores_reassigned_buffers_and_gradients(model_and_example):
    model, example = model_and_example
    rotary = model.model.rotary_emb
    original, before = rotary.inv_freq, state(model)
    answer_loss(model, [example]).backward()
    grads = [p.grad for p in model.parameters()]
    with restored(model):
        rotary.inv_freq = torch.zeros_like(original)  # a module re-registering its buffer
        for parameter in model.parameters():
            parameter.grad = None
            parameter.requires_grad_(False)
        model.train()
    assert rotary.inv_freq is original and max_abs_diff(model, before) == 0.0
    assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True)) and all(flags(model))


def test_tied_weights_are_copied_once(model_and_example):
    model, _ = model_and_example
    assert model.lm_head.weight is model.model.embed_tokens.weight
    snapshot = WeightSnapshot(model)
    assert len(snapshot._copies) == len(list(model.parameters())) + len(list(model.buffers()))


def test_encode_example_learns_only_the_answer(tiny_model_dir):
    _, tokenizer = load_tiny(tiny_model_dir)
    record = RecordConverter()(tiny_records(1)[0], source="tiny", position="index 0")
    example = encode_example(tokenizer, record, max_length=4096)
    answer = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != -100]
    assert tokenizer.decode(answer) == record["completion"][0]["content"] + "<|im_end|>\n"
    prompt_length = len(example.input_ids) - example.num_answer_tokens
    assert example.labels[:prompt_length] == (-100,) * prompt_length
    short = encode_example(tokenizer, record, max_length=prompt_length + 3)
    assert len(short.input_ids) == prompt_length + 3 and short.num_answer_tokens == 3
    assert encode_example(tokenizer, record, max_length=prompt_length) is None


def test_lora_adapter_is_saved_for_serving_elsewhere(model_and_example, tiny_model_dir, tmp_path):
    from peft import PeftModel

    model, example = model_and_example
    model.eval()
    inputs = torch.tensor([example.input_ids])
    with adapted(model, [example], MODES["lora"], save_adapter=tmp_path / "adapter"):
        with torch.no_grad():
            expected = model(inputs).logits
    served, _ = load_tiny(tiny_model_dir)  # what vLLM's LoRARequest does: base weights + the saved adapter
    served = PeftModel.from_pretrained(served, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(served(inputs).logits, expected, atol=1e-5)
    with pytest.raises(ValueError, match="needs TTTConfig\\(mode='lora'\\)"):
        with adapted(model, [example], MODES["full"], save_adapter=tmp_path / "full"):
            pass


def _dense_answer_loss(model, batch):
    """The model's own loss over full-vocabulary logits: what answer_loss computed before the fused path."""
    width = max(len(example.input_ids) for example in batch)
    input_ids = torch.tensor([list(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch])
    labels = torch.tensor([list(e.labels) + [-100] * (width - len(e.labels)) for e in batch])
    attention_mask = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch])
    return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss


@pytest.mark.parametrize("lora_on_head", [False, True])
def test_answer_loss_and_gradients_equal_the_dense_loss(tiny_model_dir, lora_on_head):
    model, tokenizer = load_tiny(tiny_model_dir)
    records = [RecordConverter()(record, source="tiny", position=f"index {i}") for i, record in enumerate(tiny_records(2))]
    # Two answers of different lengths starting at different positions: padding and the kept positions both matter.
    full = encode_example(tokenizer, records[1], max_length=256)
    prompt_length = len(full.input_ids) - full.num_answer_tokens
    batch = [encode_example(tokenizer, records[0], max_length=256),
             encode_example(tokenizer, records[1], max_length=prompt_length + 3)]
    assert len(batch[0].input_ids) != len(batch[1].input_ids) and batch[1].num_answer_tokens > 0
    if lora_on_head:  # PEFT wraps the head: answer_loss must take the dense path, with the same result
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "lm_head"], task_type="CAUSAL_LM"))
    parameters = [p for p in model.parameters() if p.requires_grad]
    dense = _dense_answer_loss(model, batch)
    dense_grads = torch.autograd.grad(dense, parameters)
    fused = answer_loss(model, batch)
    fused_grads = torch.autograd.grad(fused, parameters)
    torch.testing.assert_close(fused, dense, rtol=0, atol=1e-5)
    for name, f, d in zip([n for n, p in model.named_parameters() if p.requires_grad], fused_grads, dense_grads,
                          strict=True):
        torch.testing.assert_close(f, d, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
    assert sum(g.abs().sum() for g in fused_grads) > 0


def test_answer_loss_uses_the_fused_head(model_and_example):
    """No [tokens x vocab] logits: the LM head is called once and returns nothing on the default path."""
    model, example = model_and_example
    outputs = []
    model.lm_head.register_forward_hook(lambda module, args, output: outputs.append(output.numel()))
    answer_loss(model, [example]).backward()
    assert outputs == [0]


def test_answer_loss_refuses_a_batch_without_answer_tokens(model_and_example):
    model, _ = model_and_example
    with pytest.raises(ValueError, match="without answer tokens"):
        answer_loss(model, [EncodedExample((5, 6, 7), (-100, -100, -100))])
