"""Generation with transformers ``generate``: the CPU/test backend and the RL trainer's in-process one.

The engine accepts a model directory or hub id (it loads model and tokenizer) or a live
``PreTrainedModel`` (the DAPO trainer passes its policy to sample rollouts without copying weights).
Prompts are tokenized the way vLLM does it: chat messages go through the tokenizer's chat template
with ``add_generation_prompt=True`` and no extra special tokens; raw text gets the tokenizer's
special tokens (a BOS for Llama-style tokenizers). Batches are left-padded by hand, so the caller's
tokenizer keeps its own ``padding_side``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from medreason.data.chat_templates import CHATML_THINK, THINK_CLOSE, THINK_OPEN
from medreason.engines.base import Completion, GenerationEngine, Prompt, SamplingParams


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> list[int]:
    """Token ids of ``prompt`` as vLLM builds them, shared by the transformers and vLLM engines.

    Chat messages are rendered with the tokenizer's chat template (ChatML with ``<think>`` when it
    has none) and ``add_generation_prompt=True``, then tokenized without extra special tokens (the
    template has them); raw text gets the tokenizer's usual special tokens.
    """
    if isinstance(prompt, str):
        return tokenizer(prompt)["input_ids"]
    template = None if tokenizer.chat_template else CHATML_THINK
    text = tokenizer.apply_chat_template(
        list(prompt), chat_template=template, add_generation_prompt=True, tokenize=False
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class _StopStringCriteria(StoppingCriteria):
    """Marks a row finished once its generated text contains one of ``stop`` (vLLM semantics).

    Only the last few tokens are decoded per step: a stop string of ``k`` characters is always
    contained in the decoding of the last ``k`` tokens (each token decodes to at least one byte),
    plus a margin of 2 for byte-level pieces that split a character.
    """

    def __init__(self, stop: Sequence[str], tokenizer: PreTrainedTokenizerBase, prompt_length: int):
        self.stop = tuple(stop)
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.window = max(len(s) for s in self.stop) + 2

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        tails = input_ids[:, max(self.prompt_length, input_ids.shape[1] - self.window) :].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return torch.tensor([any(s in text for s in self.stop) for text in texts], device=input_ids.device)


class TransformersEngine(GenerationEngine):
    """A :class:`GenerationEngine` backed by ``model.generate`` (left-padded batches, no server).

    Args:
        model: A loaded causal LM (used as is, e.g. the live RL policy) or a path/hub id to load.
        tokenizer: Required with an in-memory model; loaded from ``model`` when it is a path.
        batch_size: Sequences per ``generate`` call (``n`` samples of a prompt count separately).
        device: Where to run; default the model's device (in-memory) or CUDA when available (path).
        model_name: Name used to key caches; default the path or ``config.name_or_path``.
        synced_gpus: Keep stepping until every rank's batch is done (``generate(synced_gpus=True)``), for a
            model sharded over ranks (FSDP2), where each forward is collective. Every rank must then
            call :meth:`generate` as often and with as many prompts. ``None`` lets transformers decide
            (on under ZeRO-3 and FSDP models it recognises).

    The model is put in eval mode for generation and its previous mode restored afterwards.
    ``Completion.token_ids`` holds the generated ids only, without padding, up to and including EOS.

    >>> import tempfile
    >>> from medreason.testing import build_tiny_model_dir
    >>> engine = TransformersEngine(build_tiny_model_dir(tempfile.mkdtemp()), batch_size=2)
    >>> out = engine.generate(["Hello", [{"role": "user", "content": "Hi"}]], SamplingParams(temperature=0, max_tokens=4))
    >>> [len(completions) for completions in out]
    [1, 1]
    """

    def __init__(
        self,
        model: PreTrainedModel | str | os.PathLike,
        tokenizer: PreTrainedTokenizerBase | None = None,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        model_name: str | None = None,
        synced_gpus: bool | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"TransformersEngine batch_size must be >= 1, got {batch_size}.")
        if isinstance(model, (str, os.PathLike)):
            path = os.fspath(model)
            self.model = AutoModelForCausalLM.from_pretrained(path)
            self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
            device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
            self.model.to(device)
            self.model_name = model_name or path
        elif isinstance(model, torch.nn.Module):
            if tokenizer is None:
                raise TypeError(
                    "TransformersEngine got an in-memory model but no tokenizer: pass tokenizer=..., "
                    "or pass the model's path to load both."
                )
            self.model = model
            self.tokenizer = tokenizer
            if device is not None:
                self.model.to(device)
            self.model_name = model_name or getattr(model.config, "name_or_path", "") or "in-memory-model"
        else:
            raise TypeError(
                f"TransformersEngine model must be a PreTrainedModel or a path, got {type(model).__name__}."
            )
        self.batch_size = batch_size
        self.synced_gpus = synced_gpus
        self.eos_token_ids = self._eos_token_ids()
        self.pad_token_id = self.tokenizer.pad_token_id
        if self.pad_token_id is None:
            self.pad_token_id = self.eos_token_ids[0]
        # Ids dropped from decoded text: specials except the think tags, which grading needs to see.
        keep = {self.tokenizer.convert_tokens_to_ids(tag) for tag in (THINK_OPEN, THINK_CLOSE)}
        self._skip_ids = set(self.tokenizer.all_special_ids) - keep

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.model.parameters()).device

    def _eos_token_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ValueError(
                f"Neither the generation config nor the tokenizer of {self.model_name!r} defines an EOS token; "
                "set model.generation_config.eos_token_id."
            )
        return [eos] if isinstance(eos, int) else list(eos)

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """The token ids the model sees for ``prompt`` (see :func:`encode_prompt`)."""
        return encode_prompt(self.tokenizer, prompt)

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """Return ``sampling.n`` completions per prompt, in prompt order."""
        encoded = [self.encode_prompt(prompt) for prompt in prompts]
        # One row per (prompt, sample); rows sorted by length so batches carry little padding.
        rows = [(index, ids) for index, ids in enumerate(encoded) for _ in range(sampling.n)]
        order = sorted(range(len(rows)), key=lambda r: len(rows[r][1]))
        outputs: dict[int, Completion] = {}
        was_training, model_defaults = self.model.training, self.model.generation_config
        # Only ``sampling`` decides how to sample (vLLM semantics): a model's own defaults, e.g. Qwen3's
        # top_k=20 or a repetition penalty, would otherwise fill in whatever is not passed explicitly.
        self.model.generation_config = GenerationConfig(
            bos_token_id=model_defaults.bos_token_id,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
        )
        self.model.eval()
        try:
            # A seed gives reproducible samples without disturbing the caller's RNG; without one,
            # the global RNG advances as usual, so repeated calls (RL rollouts) draw new samples.
            seeded = (
                torch.random.fork_rng(devices=self._rng_devices())
                if sampling.seed is not None
                else nullcontext()
            )
            with seeded, torch.no_grad():
                if sampling.seed is not None:
                    torch.manual_seed(sampling.seed)
                for start in range(0, len(order), self.batch_size):
                    batch = order[start : start + self.batch_size]
                    completions = self._generate_batch([rows[r][1] for r in batch], sampling)
                    outputs.update(zip(batch, completions, strict=True))
        finally:
            self.model.train(was_training)
            self.model.generation_config = model_defaults
        results: list[list[Completion]] = [[] for _ in prompts]
        for r, (index, _) in enumerate(rows):
            results[index].append(outputs[r])
        return results

    def _rng_devices(self) -> list[int]:
        device = self.device
        return [device.index or 0] if device.type == "cuda" else []

    def _generate_batch(self, batch: list[list[int]], sampling: SamplingParams) -> list[Completion]:
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        if sampling.temperature == 0:
            decoding = {"do_sample": False}
        else:  # transformers disables top-k with 0 where vLLM uses -1
            top_k = 0 if sampling.top_k == -1 else sampling.top_k
            decoding = {
                "do_sample": True,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "top_k": top_k,
            }
        stopping = (
            StoppingCriteriaList([_StopStringCriteria(sampling.stop, self.tokenizer, width)])
            if sampling.stop
            else None
        )
        generated = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            max_new_tokens=sampling.max_tokens,
            stopping_criteria=stopping,
            use_cache=True,
            synced_gpus=self.synced_gpus,
            **decoding,
        )[:, width:].tolist()
        return [self._to_completion(ids, sampling) for ids in generated]

    def _to_completion(self, ids: list[int], sampling: SamplingParams) -> Completion:
        # A row stops at EOS, at a stop string (then the batch right-fills it with padding) or at
        # max_tokens; an unfinished row keeps generating, so "no EOS, no stop string" means "length".
        eos_at = next((i for i, token in enumerate(ids) if token in self.eos_token_ids), None)
        if eos_at is not None:
            ids = ids[: eos_at + 1]
        text = self.tokenizer.decode([t for t in ids if t not in self._skip_ids], skip_special_tokens=False)
        finish_reason = "stop" if eos_at is not None else "length"
        cut = min((text.index(stop) for stop in sampling.stop if stop in text), default=None)
        if cut is not None:
            text, finish_reason = text[:cut], "stop"
            if eos_at is None:
                while ids and ids[-1] == self.pad_token_id:
                    ids.pop()
        return Completion(text=text, token_ids=ids, finish_reason=finish_reason)
