"""Per-token log-probs and entropies from the last hidden states and the LM head, without full logits.

A DAPO step on the II-Medical card's shapes (16 responses of up to 12,288 tokens, a 151,936-token
vocabulary) would hold ``tokens x vocab`` logits for every micro-batch: 24k response tokens are 7 GB in
bf16 before autograd's float32 copies, and as much again for their gradient. The loss needs two numbers
per position, ``log p(sampled token)`` and (for logging or a bonus) the entropy, so
:class:`FusedTokenLogprobs` computes them ``chunk_size`` positions at a time from the hidden states and the
head's weight, keeps only the hidden states, and recomputes each chunk's logits in the backward pass. Its
memory grows with ``chunk_size x vocab``, not with ``response tokens x vocab``; it costs one extra
``hidden x vocab`` matmul per position in the backward pass.

Why our own ``autograd.Function``: Liger's fused linear losses (``LigerFusedLinearGRPOLoss``) fuse the
head with *their* GRPO/DAPO loss, not with ours (exact mini-batch token-mean over micro-batches and ranks,
dual-clip, optional KL and entropy terms), and are not installed here. TRL 1.16's
``trl.trainer.utils.add_fused_lm_head`` computes the same two outputs, but it replaces the model's
``forward`` for good (the model we also generate with, sync and save), runs the head over every position
of the sequence (prompt included) except on Triton devices, and its kernel is a private helper of TRL's
trainers. The recompute trick in ~60 lines of pure torch runs on every device and is tested against the
dense path here. ``benchmarks/dapo_memory.py`` measures TRL's trainer beside ours.

Used by DAPO (policy loss, old and reference log-probs) and by test-time training's answer loss
(:func:`medreason.ttt.answer_loss`); it sits in ``utils`` so that both layers can import it.
:func:`causal_lm_token_logprobs` runs a Hugging Face causal LM with its output
embedding's forward replaced for one call, so the whole model forward still runs through its wrappers
(DDP, FSDP2's root hooks, PEFT) and the head's weight is the one that forward sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

DEFAULT_CHUNK_SIZE = 1024
"""Positions per chunk: 1024 x 151,936 float32 logits are 0.6 GB, each temporary of the chunk as much."""


class FusedTokenLogprobs(torch.autograd.Function):
    """``(log softmax(h W^T / T)[target], entropy)`` per row of ``h``, ``chunk_size`` rows at a time.

    ``hidden`` ``[N, H]``, ``weight`` ``[V, H]`` (the LM head, no bias), ``targets`` ``[N]``. Logits are formed
    in the dtype autocast gives the matmul (as the model's own ``lm_head`` would), then upcast to float32 for
    ``logsumexp`` and the softmax. The backward pass recomputes each chunk's logits and uses

    * ``∂ log p_y / ∂z = onehot(y) - p``
    * ``∂ H / ∂z = -p ⊙ (z - Σ_k p_k z_k)`` with ``H = logsumexp(z) - Σ_k p_k z_k``,

    each scaled by ``1/T`` for ``z = h W^T / T``. Use :func:`fused_token_logprobs` rather than ``apply``.
    """

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int,
                temperature: float, with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        device_type = hidden.device.type
        ctx.autocast = (device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        ctx.chunk_size, ctx.temperature, ctx.with_entropy = chunk_size, temperature, with_entropy
        logprobs = hidden.new_empty(hidden.shape[0], dtype=torch.float32)
        entropy = hidden.new_zeros(hidden.shape[0] if with_entropy else 0, dtype=torch.float32)
        ctx.set_materialize_grads(False)  # an unused output (entropy logged only) gets None, not a zeros tensor
        for start in range(0, hidden.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            logits = _chunk_logits(hidden[rows], weight, temperature)
            normaliser = torch.logsumexp(logits, dim=-1)
            logprobs[rows] = logits.gather(-1, targets[rows].unsqueeze(-1)).squeeze(-1) - normaliser
            if with_entropy:
                entropy[rows] = normaliser - _row_dot(torch.softmax(logits, dim=-1), logits)
            del logits
        ctx.save_for_backward(hidden, weight, targets)
        return logprobs, entropy

    @staticmethod
    def backward(ctx: Any, grad_logprobs: torch.Tensor | None, grad_entropy: torch.Tensor | None):
        hidden, weight, targets = ctx.saved_tensors
        device_type, autocast_enabled, autocast_dtype = ctx.autocast
        use_entropy = ctx.with_entropy and grad_entropy is not None
        grad_hidden = torch.zeros_like(hidden, dtype=torch.float32) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        weight32 = weight.float()
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_enabled):
            for start in range(0, hidden.shape[0], ctx.chunk_size):
                rows = slice(start, start + ctx.chunk_size)
                chunk = hidden[rows]
                # Two [chunk x vocab] float32 buffers at most: the logits and the softmax, which becomes the
                # logits' gradient in place.
                logits = _chunk_logits(chunk, weight, ctx.temperature)
                grad_logits = torch.softmax(logits, dim=-1)
                if use_entropy:  # -g_H * p * (z - E_p[z]), built in the logits' buffer
                    entropy_term = logits.sub_(_row_dot(grad_logits, logits).unsqueeze(-1))
                    entropy_term.mul_(grad_logits).mul_(-grad_entropy[rows].float().unsqueeze(-1))
                if grad_logprobs is not None:  # g_logp * (onehot - p)
                    grad_out = grad_logprobs[rows].float().unsqueeze(-1)
                    grad_logits.mul_(-grad_out).scatter_add_(-1, targets[rows].unsqueeze(-1), grad_out)
                else:
                    grad_logits.zero_()
                if use_entropy:
                    grad_logits.add_(entropy_term)
                del logits
                if ctx.temperature != 1.0:
                    grad_logits.div_(ctx.temperature)
                # The gradient matmuls run in float32, whatever the forward's autocast dtype.
                if grad_hidden is not None:
                    grad_hidden[rows] = grad_logits @ weight32
                if grad_weight is not None:
                    grad_weight.addmm_(grad_logits.t(), chunk.float())
                del grad_logits
        return (
            None if grad_hidden is None else grad_hidden.to(hidden.dtype),
            None if grad_weight is None else grad_weight.to(weight.dtype),
            None, None, None, None,
        )


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum(-1)`` without the ``[rows x vocab]`` product: one batched dot per row."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = torch.nn.functional.linear(hidden, weight).float()
    return logits / temperature if temperature != 1.0 else logits


def fused_token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``targets`` (and the entropies) under ``softmax(hidden @ weight.T / temperature)``.

    Args:
        hidden: Last hidden states (after the final norm), ``[..., H]``.
        weight: The LM head's weight ``[V, H]``.
        targets: Token ids, ``hidden.shape[:-1]``.
        chunk_size: Positions whose ``chunk_size x V`` float32 logits exist at once, forward and backward.
        temperature: Sampling temperature the log-probs are taken at.
        with_entropy: Also return the entropy of each position's distribution (differentiable).

    Returns:
        ``(logprobs, entropy)`` shaped like ``targets`` in float32; ``entropy`` is ``None`` unless asked for.

    >>> h, w = torch.randn(2, 3, 4), torch.randn(10, 4)
    >>> logp, _ = fused_token_logprobs(h, w, torch.tensor([[1, 2, 3], [4, 5, 6]]), chunk_size=2)
    >>> torch.allclose(logp, torch.log_softmax(h @ w.T, -1).gather(-1, torch.tensor([[1, 2, 3], [4, 5, 6]])[..., None])[..., 0])
    True
    """
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(f"targets must have the shape of hidden without its last dim, {tuple(hidden.shape[:-1])}, "
                         f"got {tuple(targets.shape)}.")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight must be [vocab, {hidden.shape[-1]}], got {tuple(weight.shape)}.")
    if chunk_size < 1 or temperature <= 0:
        raise ValueError(f"Need chunk_size >= 1 and temperature > 0, got {chunk_size} and {temperature}.")
    logprobs, entropy = FusedTokenLogprobs.apply(
        hidden.reshape(-1, hidden.shape[-1]), weight, targets.reshape(-1).long(), chunk_size, temperature, with_entropy,
    )
    logprobs = logprobs.view(targets.shape)
    return logprobs, entropy.view(targets.shape) if with_entropy else None


def has_fusable_head(model: torch.nn.Module) -> bool:
    """Whether :func:`causal_lm_token_logprobs` can run ``model``: its output embedding is a bias-free ``nn.Linear``.

    Not so when, say, a LoRA adapter targets the head (PEFT wraps it in its own module); callers then take
    the dense path.

    >>> from transformers import Qwen3Config, Qwen3ForCausalLM
    >>> has_fusable_head(Qwen3ForCausalLM(Qwen3Config(vocab_size=10, hidden_size=8, intermediate_size=8,
    ...     num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1, head_dim=8)))
    True
    """
    unwrapped = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    head = unwrapped.get_output_embeddings()
    return isinstance(head, torch.nn.Linear) and head.bias is None


@contextmanager
def _head_computes_logprobs(model: torch.nn.Module, targets: torch.Tensor, chunk_size: int, temperature: float,
                            with_entropy: bool) -> Iterator[dict[str, torch.Tensor | None]]:
    """Make ``model``'s output embedding return nothing and store fused log-probs in the yielded dict instead."""
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):
        raise TypeError(f"Fused log-probs need the model's output embedding to be an nn.Linear, got "
                        f"{type(head).__name__}; use the dense path (DAPO: set fused_logprobs=False).")
    if head.bias is not None:
        raise ValueError("Fused log-probs support an LM head without bias (as in Qwen, Llama); use the dense path "
                         "(DAPO: set fused_logprobs=False).")
    result: dict[str, torch.Tensor | None] = {}

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        result["logprobs"], result["entropy"] = fused_token_logprobs(
            hidden, head.weight, targets, chunk_size, temperature, with_entropy)
        return hidden.new_empty(0)  # the model's `logits`; nothing reads them

    head.forward = forward  # an instance attribute shadows the class's forward for this call only
    try:
        yield result
    finally:
        del head.forward


def causal_lm_token_logprobs(
    model: torch.nn.Module,
    targets: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    temperature: float = 1.0,
    with_entropy: bool = False,
    **forward_kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run a Hugging Face causal LM and return fused log-probs of ``targets`` instead of its logits.

    ``forward_kwargs`` go to ``model(...)``; pass ``logits_to_keep`` (a tensor of positions) so the hidden
    states reaching the head are the ones predicting ``targets``: ``targets.shape`` must equal their
    ``[batch, kept positions]``. ``model`` may be wrapped (DDP, FSDP2, PEFT): its whole forward runs.

    >>> from transformers import Qwen3Config, Qwen3ForCausalLM
    >>> model = Qwen3ForCausalLM(Qwen3Config(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
    ...                                      num_attention_heads=2, num_key_value_heads=1, head_dim=8))
    >>> ids = torch.randint(0, 100, (1, 6))
    >>> logp, _ = causal_lm_token_logprobs(model, ids[:, 1:], input_ids=ids, logits_to_keep=torch.arange(5))
    >>> dense = torch.log_softmax(model(input_ids=ids).logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
    >>> torch.allclose(logp, dense, atol=1e-5)
    True
    """
    unwrapped = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    with _head_computes_logprobs(unwrapped, targets, chunk_size, temperature, with_entropy) as result:
        model(**forward_kwargs)
    if "logprobs" not in result:
        raise RuntimeError(f"{type(unwrapped).__name__}'s forward never called its output embedding.")
    return result["logprobs"], result["entropy"]
