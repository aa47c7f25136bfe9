"""Adapt a model to a few examples and put it back exactly: the "adapt" and "restore" of TTT.

Two modes, one guarantee: after the ``with`` block of :func:`adapted` every parameter and buffer is
bit-identical to before, also when training or generation inside the block raised.

- ``full`` (FineMedLM-o1): :class:`WeightSnapshot` clones every parameter and buffer on the model's
  own device, training updates the live tensors, and the snapshot is copied back in place
  (``Tensor.copy_`` is exact). Cost: one extra copy of the weights plus AdamW's two moments.
- ``lora``: a fresh PEFT LoRA adapter per call, removed with ``unload()``, which drops the injected
  layers and leaves the base weights untouched (``merge_and_unload()`` would round them). The base
  weights never change, so no snapshot is taken; ``requires_grad`` flags and train/eval mode are put back.

The training loop is a plain torch loop, not a Trainer per question: for 2 steps on one example an
HF/TRL Trainer would rebuild datasets, collators, accelerator state, schedulers and callbacks per
question (hundreds of milliseconds of Python before the first forward), and its cosine schedule with
10% warm-up rounds to one warm-up step at learning rate 0 out of 2. Here: a fresh AdamW per question
(its moments are local, so optimizer state never leaks between questions), constant learning rate,
decoupled weight decay on matrices only (as HF Trainer, which exempts biases and norms), gradient
clipping, and the loss on answer tokens only, averaged over tokens (TRL's ``completion_only_loss``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from medreason.data.chat_templates import CHATML_THINK
from medreason.engines.transformers_engine import encode_prompt
from medreason.ttt.config import TTTConfig
from medreason.utils.fused_logprobs import causal_lm_token_logprobs, has_fusable_head

if TYPE_CHECKING:
    from peft import PeftModel

__all__ = ["EncodedExample", "WeightSnapshot", "adapted", "answer_loss", "encode_example", "restored"]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    """A tokenized training example: the prompt's labels are ``-100`` so only the answer is learned.

    Args:
        input_ids: Prompt then answer token ids.
        labels: ``-100`` over the prompt, the token ids over the answer.
    """

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def num_answer_tokens(self) -> int:
        """Tokens the loss is computed on."""
        return sum(label != IGNORE_INDEX for label in self.labels)


def encode_example(
    tokenizer: PreTrainedTokenizerBase, example: Mapping[str, list[dict[str, str]]], max_length: int
) -> EncodedExample | None:
    """Tokenize a ``{"prompt": [...], "completion": [...]}`` example as generation will see it.

    The prompt is encoded exactly like a generation prompt (:func:`encode_prompt`), the answer is the
    rest of the chat-template rendering (so it ends with the template's end-of-turn token). The
    sequence is cut to ``max_length`` from the right. Returns ``None`` when no answer token is left.

    >>> from medreason.testing import build_tiny_tokenizer
    >>> example = {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}]}
    >>> encoded = encode_example(build_tiny_tokenizer(), example, max_length=64)
    >>> encoded.labels.count(-100) == len(encoded.input_ids) - encoded.num_answer_tokens
    True
    """
    prompt_ids = encode_prompt(tokenizer, example["prompt"])
    template = None if tokenizer.chat_template else CHATML_THINK
    prompt_text = tokenizer.apply_chat_template(
        example["prompt"], chat_template=template, add_generation_prompt=True, tokenize=False
    )
    full_text = tokenizer.apply_chat_template(
        [*example["prompt"], *example["completion"]], chat_template=template, tokenize=False
    )
    if full_text.startswith(prompt_text):
        answer_text = full_text[len(prompt_text) :]
    else:  # templates that re-render earlier turns: fall back to the answer plus end-of-sequence
        answer_text = example["completion"][-1]["content"] + (tokenizer.eos_token or "")
    answer_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
    input_ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_length]
    if len(prompt_ids) >= max_length:
        return None
    return EncodedExample(tuple(input_ids), tuple(labels))


def answer_loss(model: PreTrainedModel, batch: Sequence[EncodedExample]) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens of ``batch`` (right-padded, one forward pass).

    The answer tokens' log-probs come from the last hidden states and the LM head a chunk of positions at
    a time (:func:`~medreason.utils.fused_logprobs.causal_lm_token_logprobs`, logits recomputed in the
    backward pass), and only positions from the batch's first answer token on reach the head: at the
    card's 8,192-token examples and Qwen3's 151,936-token vocabulary the model's own loss would hold 5 GB
    of float32 logits per example, and as much again for their gradient. The value and gradients equal
    ``model(..., labels=labels).loss`` (``tests/ttt/test_adapt.py``). A head the fused path cannot run
    (a LoRA adapter on ``lm_head``) takes that dense path.
    """
    width = max(len(example.input_ids) for example in batch)
    input_ids = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        input_ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        labels[row, : len(example.labels)] = torch.tensor(example.labels)
        attention_mask[row, : len(example.input_ids)] = 1
    device = next(model.parameters()).device
    input_ids, labels, attention_mask = input_ids.to(device), labels.to(device), attention_mask.to(device)
    if not has_fusable_head(model):
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    # Position t predicts token t + 1, so the first label (position 0) is never a target, as in the dense loss.
    answer_columns = (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero()
    if answer_columns.numel() == 0:
        raise ValueError("answer_loss got a batch without answer tokens (every label is -100 after the first).")
    first = int(answer_columns[0]) + 1
    targets = labels[:, first:]
    mask = targets != IGNORE_INDEX
    logprobs, _ = causal_lm_token_logprobs(
        model, targets.clamp(min=0), input_ids=input_ids, attention_mask=attention_mask,
        logits_to_keep=torch.arange(first - 1, width - 1, device=device),
    )
    return -(logprobs * mask).sum() / mask.sum()


class WeightSnapshot:
    """An exact copy of a model's parameters and buffers on its own device, restored in place.

    Also saved and put back: which tensor object fills each parameter/buffer slot (so a module that
    re-assigns a buffer is undone too), ``.grad`` of every parameter, ``requires_grad`` flags and
    train/eval mode. Tied weights are copied once.

    >>> model = torch.nn.Linear(2, 2)
    >>> snapshot = WeightSnapshot(model)
    >>> with torch.no_grad():
    ...     _ = model.weight.add_(1.0)
    >>> snapshot.restore()
    >>> bool((model.weight == snapshot.saved(model.weight)).all())
    True
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.training = model.training
        self._slots: list[tuple[torch.nn.Module, str, torch.Tensor]] = []
        self._copies: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        with torch.no_grad():
            for module in model.modules():
                named = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
                for name, tensor in named:
                    self._slots.append((module, name, tensor))
                    if id(tensor) not in self._copies:
                        self._copies[id(tensor)] = (tensor, tensor.detach().clone())
        parameters = list(model.parameters())
        self._grads = [(p, p.grad) for p in parameters]
        self._requires_grad = [(p, p.requires_grad) for p in parameters]

    def saved(self, tensor: torch.Tensor) -> torch.Tensor:
        """The saved copy of ``tensor`` (a parameter or buffer of the model)."""
        return self._copies[id(tensor)][1]

    def restore(self) -> None:
        """Put every slot, value, gradient, flag and the train/eval mode back. Safe to call twice."""
        for module, name, tensor in self._slots:
            if module._parameters.get(name, module._buffers.get(name)) is not tensor:
                setattr(module, name, tensor)
        with torch.no_grad():
            for live, copy in self._copies.values():
                live.copy_(copy)
        for parameter, grad in self._grads:
            parameter.grad = grad
        for parameter, flag in self._requires_grad:
            parameter.requires_grad_(flag)
        self.model.train(self.training)


@contextmanager
def restored(model: torch.nn.Module) -> Iterator[WeightSnapshot]:
    """Snapshot ``model`` on entry and restore it exactly on exit, exception or not."""
    snapshot = WeightSnapshot(model)
    try:
        yield snapshot
    finally:
        snapshot.restore()


def _train(
    model: torch.nn.Module,
    parameters: list[torch.nn.Parameter],
    examples: Sequence[EncodedExample],
    config: TTTConfig,
) -> list[float]:
    """Fine-tune ``parameters`` on ``examples``; return the loss of every step."""
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=config.active_learning_rate,
    )
    batches = [examples[i : i + config.batch_size] for i in range(0, len(examples), config.batch_size)]
    steps = config.steps if config.steps is not None else config.epochs * len(batches)
    training = model.training
    model.train()
    losses = []
    with torch.enable_grad():
        for step in range(steps):
            loss = answer_loss(model, batches[step % len(batches)])
            loss.backward()
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    model.train(training)
    return losses


@contextmanager
def _lora(model: PreTrainedModel, config: TTTConfig) -> Iterator[PeftModel]:
    """Inject a freshly initialised LoRA adapter; yield the PEFT wrapper; ``unload()`` it on exit."""
    from peft import LoraConfig, get_peft_model

    flags = [(p, p.requires_grad) for p in model.parameters()]
    training = model.training
    target = config.lora_target_modules
    lora_config = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target if isinstance(target, str) else list(target),
        task_type="CAUSAL_LM",
    )
    device = next(model.parameters()).device
    try:
        # The same seed per question: every adapter starts from the same initialisation (so questions
        # that retrieved the same examples get the same adapter) and the caller's RNG is not consumed.
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)
            peft_model = get_peft_model(model, lora_config)
        try:
            yield peft_model
        finally:
            peft_model.unload()
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        model.train(training)


@contextmanager
def adapted(
    model: PreTrainedModel,
    examples: Sequence[EncodedExample],
    config: TTTConfig,
    save_adapter: str | os.PathLike | None = None,
) -> Iterator[list[float]]:
    """Train ``model`` on ``examples`` as ``config`` says; inside the block it is adapted, after it exact.

    Yields the training loss of every optimizer step. In ``full`` mode every parameter trains
    (``requires_grad`` is switched on for the block); in ``lora`` mode only the adapter does, and
    ``save_adapter`` writes it as a PEFT adapter folder (what vLLM's ``LoRARequest`` loads).

    >>> import tempfile
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> from medreason.testing import build_tiny_model_dir
    >>> path = build_tiny_model_dir(tempfile.mkdtemp())
    >>> model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    >>> example = encode_example(tokenizer, {"prompt": [{"role": "user", "content": "TSH low?"}],
    ...                                      "completion": [{"role": "assistant", "content": "Hyperthyroid"}]}, 64)
    >>> before = model.lm_head.weight.clone()
    >>> with adapted(model, [example], TTTConfig(learning_rate=1e-2)) as losses:
    ...     changed = not torch.equal(model.lm_head.weight, before)
    >>> changed, len(losses), torch.equal(model.lm_head.weight, before)
    (True, 2, True)
    """
    if not examples:
        raise ValueError("adapted() needs at least one example to train on.")
    if save_adapter is not None and config.mode != "lora":
        raise ValueError(
            f"save_adapter={os.fspath(save_adapter)!r} needs TTTConfig(mode='lora'): full mode trains the "
            "weights themselves and produces no adapter."
        )
    if config.mode == "full":
        with restored(model):
            parameters = list(model.parameters())
            for parameter in parameters:
                parameter.grad = None
                parameter.requires_grad_(True)
            yield _train(model, parameters, examples, config)
    else:
        with _lora(model, config) as peft_model:
            losses = _train(model, [p for p in peft_model.parameters() if p.requires_grad], examples, config)
            if save_adapter is not None:
                peft_model.save_pretrained(save_adapter)
            yield losses
