"""Helpers shared by the training benchmarks: random models of named shapes, variants in subprocesses."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Qwen3Config

from medreason.testing import build_tiny_tokenizer

# Shapes of random Qwen3 models: "tiny" is the test model; "head" one small layer; "mid" a ~20M-parameter
# model that is still quick on CPU; "qwen3-0.6b" the shape of Qwen3-0.6B (for GPUs).
SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16),
    # A one-layer body under the LM head, for benchmarks where the head and its logits are what is measured.
    "head": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=16),
    "mid": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=8,
                num_key_value_heads=4, head_dim=64),
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128),
}


def shared_data_dir() -> Path:
    """The real benchmark data: ``$MEDREASON_SHARED_DATA`` (the GPU kit points it at ``.whl/data``), else
    ``../shared/data`` beside the checkout."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("MEDREASON_SHARED_DATA", default))


def build_random_model(shape: str, output_dir: Path, max_positions: int, vocab_size: int | None = None) -> Path:
    """Save a random Qwen3 of ``shape`` with the locally trained tokenizer to ``output_dir``; return its folder.

    ``vocab_size`` (Qwen3: 151,936) sizes the embeddings and output projection like the real model's, which
    dominate logits memory and add ~0.16B parameters at 0.6B; the tokenizer only ever emits its own few ids.
    With ``$MEDREASON_BENCH_MODEL_CACHE`` set (the GPU kit sets it), a model of the same shape, vocabulary
    and positions is built once there and its folder returned: a 0.6B model takes seconds to build and save.
    """
    tokenizer = build_tiny_tokenizer()
    vocab_size = max(vocab_size or 0, len(tokenizer))
    cache = os.environ.get("MEDREASON_BENCH_MODEL_CACHE")
    if cache:
        cached = Path(cache) / f"{shape}-vocab{vocab_size}-pos{max_positions}"
        if (cached / "config.json").is_file():
            return cached
        output_dir = Path(cache) / f".{cached.name}.{os.getpid()}"  # renamed once complete
    config = Qwen3Config(vocab_size=vocab_size, max_position_embeddings=max_positions, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **SHAPES[shape])
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    if cache:
        output_dir.rename(cached)
        return cached
    return output_dir


def flops_per_token(config: Qwen3Config, seq_len: int) -> float:
    """Model FLOPs of one trained token (forward + backward): ``6 N + 12 L H d T`` (PaLM, arXiv:2204.02311,
    appendix B).

    ``N`` counts every parameter (the tied embedding once: it is the output projection's matmul), ``L`` layers,
    ``H`` query heads of ``d`` dimensions, ``T`` the (packed) sequence length: the attention term counts
    the full ``T x T`` score matrix, as PaLM does, although causal kernels skip half of it. Activation
    recomputation is not counted (*model* FLOPs, not hardware FLOPs).
    """
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads, kv_heads, head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads) + 2 * head_dim  # q, k, v, o and the q/k norms
    per_layer = attention + 3 * hidden * inter + 2 * hidden  # SwiGLU MLP and two RMSNorms
    params = config.vocab_size * hidden + layers * per_layer + hidden
    return 6 * params + 12 * layers * heads * head_dim * seq_len


def spread(values: list[float]) -> dict[str, float]:
    """``{"min", "median", "max"}`` of repeated measurements: on a shared machine one figure is not enough."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run_variant(script: str, variant: str, args: list[str]) -> dict:
    """Run ``script --variant VARIANT ARGS`` in a fresh process (its own peak memory); return its JSON line."""
    out = subprocess.run([sys.executable, script, "--variant", variant, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_memory_gib(device: str) -> float:
    """Peak GPU memory allocated, or the process's peak resident set size on CPU, in GiB."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def add_model_arguments(parser: argparse.ArgumentParser, batch: int, steps: int) -> None:
    """The model, sequence and device options every training benchmark takes."""
    parser.add_argument("--shape", default="mid", choices=sorted(SHAPES))
    parser.add_argument("--vocab-size", type=int, default=None, help="embedding rows (Qwen3: 151936)")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; the median is reported")


def alternating_runs(script: str, variants: tuple[str, ...], argv: list[str], repeats: int) -> dict[str, list[dict]]:
    """Run the variants in turns, ``repeats`` rounds; return every run of each variant, in round order.

    Alternating means a busy machine slows every variant alike; the first variant changes every round,
    so neither always runs first (first runs pay cold file caches).
    """
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    for round_index in range(repeats):
        for variant in variants[round_index % 2 :] + variants[: round_index % 2]:
            runs[variant].append(run_variant(script, variant, argv))
    return runs


def median_runs(script: str, variants: tuple[str, ...], argv: list[str], repeats: int, key: str) -> list[dict]:
    """Run the variants alternately ``repeats`` times each; return each one's median run by ``key``."""
    runs = alternating_runs(script, variants, argv, repeats)
    return [sorted(found, key=lambda row: row[key])[len(found) // 2] for found in runs.values()]
