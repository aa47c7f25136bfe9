"""The DAPO objective as plain tensor functions: advantages and the clipped loss.

DAPO (Yu et al., 2025, https://arxiv.org/abs/2503.14476) maximises, for a prompt ``q`` with a group of
``G`` sampled responses ``o_1..o_G`` and rewards ``R_1..R_G``:

.. math::

    J(\\theta) = \\frac{1}{\\sum_i |o_i|} \\sum_{i=1}^{G} \\sum_{t=1}^{|o_i|}
        \\min\\big(r_{i,t}\\hat A_{i,t},\\ \\mathrm{clip}(r_{i,t}, 1-\\varepsilon_{low}, 1+\\varepsilon_{high})\\hat A_{i,t}\\big),
    \\qquad r_{i,t} = \\frac{\\pi_\\theta(o_{i,t} | q, o_{i,<t})}{\\pi_{\\theta_{old}}(o_{i,t} | q, o_{i,<t})},
    \\qquad \\hat A_{i,t} = \\frac{R_i - \\mathrm{mean}(R_{1..G})}{\\mathrm{std}(R_{1..G})}

* **Clip-higher**: ``ε_low`` = 0.2 and ``ε_high`` = 0.28 (II-Medical-7B card, DAPO paper §3.1) let
  low-probability tokens with positive advantage grow further before clipping, against entropy collapse.
* **Token-level loss** (``token-mean``): every response token of the mini-batch weighs the same, so long
  responses are not down-weighted as in GRPO's per-sequence mean (paper §3.3). The denominator is the
  token count of the *whole mini-batch*; pass it as ``normalizer`` when the mini-batch is split into
  micro-batches or data-parallel ranks (see :func:`aggregate_loss`).
* **Overlong shaping** (paper §3.4, Eq. 13) shapes the reward, so it lives with the rewards:
  :func:`medreason.rewards.overlong_penalty`.
* **Dual-clip** (Ye et al., 2020, https://arxiv.org/abs/1912.09729) optionally bounds the loss of
  negative-advantage tokens whose ratio explodes: ``max(·, ...)`` is capped by ``-A · c`` for ``A < 0``.

The names and defaults follow verl's DAPO recipe (``clip_ratio_low/high/c``, ``loss_agg_mode``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")

# log(ratio) is clamped before exp so one wildly off-policy token cannot overflow to inf (verl does the same).
_LOG_RATIO_LIMIT = 20.0


def _check_agg_mode(loss_agg_mode: str) -> None:
    if loss_agg_mode not in LOSS_AGG_MODES:
        raise ValueError(f"loss_agg_mode must be one of {', '.join(LOSS_AGG_MODES)}, got {loss_agg_mode!r}.")


def aggregation_count(response_mask: torch.Tensor, loss_agg_mode: str) -> torch.Tensor:
    """What ``loss_agg_mode`` divides by, for this batch: response tokens or non-empty sequences.

    Sum it over the micro-batches of a mini-batch (and all-reduce it over ranks) to get the
    ``normalizer`` that makes the accumulated loss the exact mean over the whole mini-batch.
    """
    _check_agg_mode(loss_agg_mode)
    mask = response_mask.to(torch.float32)
    if loss_agg_mode == "token-mean":
        return mask.sum()
    return (mask.sum(dim=-1) > 0).to(torch.float32).sum()


def aggregate_loss(
    loss_matrix: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    normalizer: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a ``[batch, tokens]`` per-token loss to a scalar.

    * ``token-mean``: ``Σ_{i,t} m_{i,t} ℓ_{i,t} / N_tokens``.
    * ``seq-mean-token-sum``: ``Σ_i (Σ_t m_{i,t} ℓ_{i,t}) / N_seqs`` (Dr. GRPO-style sum per sequence).
    * ``seq-mean-token-mean``: ``Σ_i (Σ_t m_{i,t} ℓ_{i,t} / Σ_t m_{i,t}) / N_seqs`` (GRPO's original).

    Args:
        loss_matrix: Per-token losses, ``[batch, tokens]``.
        response_mask: 1 for response tokens that count, 0 for padding and masked responses.
        loss_agg_mode: One of :data:`LOSS_AGG_MODES`.
        normalizer: ``N_tokens`` or ``N_seqs`` of the whole mini-batch when this batch is one of several
            micro-batches/ranks (from :func:`aggregation_count`); default: this batch's own count. With it,
            summing the per-micro-batch losses gives exactly the loss of the full mini-batch, and so do the
            gradients: ``Σ_k Σ_{i,t∈k} ℓ/N = Σ_{i,t} ℓ/N``. A mean of micro-batch means would not.

    Sequences with no counted token are left out of ``N_seqs``. A zero normalizer gives a zero loss
    (a mini-batch whose responses are all masked), still connected to the graph.
    """
    _check_agg_mode(loss_agg_mode)
    mask = response_mask.to(loss_matrix.dtype)
    if normalizer is None:
        normalizer = aggregation_count(response_mask, loss_agg_mode)
    normalizer = torch.as_tensor(normalizer, dtype=loss_matrix.dtype, device=loss_matrix.device).clamp(min=1.0)
    if loss_agg_mode == "token-mean":
        return (loss_matrix * mask).sum() / normalizer
    per_sequence = (loss_matrix * mask).sum(dim=-1)
    if loss_agg_mode == "seq-mean-token-mean":
        per_sequence = per_sequence / mask.sum(dim=-1).clamp(min=1.0)
    return per_sequence.sum() / normalizer


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def dapo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.28,
    loss_agg_mode: str = "token-mean",
    clip_ratio_c: float | None = None,
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate loss with decoupled clip ranges (clip-higher), to minimise.

    Per token: ``ℓ = max(-A·r, -A·clip(r, 1-ε_low, 1+ε_high))`` with ``r = exp(logp - logp_old)``;
    with dual-clip (``clip_ratio_c`` = c > 1) negative-advantage tokens get ``min(ℓ, -A·c)``.

    Args:
        logprobs: Log-probabilities of the sampled tokens under the current policy, ``[batch, tokens]``.
        old_logprobs: The same under the rollout-time policy (no gradient), ``[batch, tokens]``.
        advantages: ``[batch]`` (one per response, broadcast over tokens) or ``[batch, tokens]``.
        response_mask: 1 for response tokens that count in the loss, ``[batch, tokens]``.
        clip_ratio_low: ``ε_low``; the ratio is clipped below at ``1 - ε_low`` (card: 0.2).
        clip_ratio_high: ``ε_high``; the ratio is clipped above at ``1 + ε_high`` (card: 0.28).
        loss_agg_mode: See :func:`aggregate_loss` (card: ``token-mean``).
        clip_ratio_c: Dual-clip constant ``c`` (> 1, verl uses 3.0), or ``None`` to disable.
        normalizer: The mini-batch's token (or sequence) count when this is one micro-batch of it.

    Returns:
        ``(loss, metrics)``: the scalar loss and detached token-means over ``response_mask``:
        ``clip_fraction_low`` (tokens with ``A < 0`` clipped at ``1 - ε_low``), ``clip_fraction_high``
        (``A > 0`` clipped at ``1 + ε_high``), ``clip_fraction_dual``, ``ratio_mean`` and ``approx_kl``
        (``mean(logp_old - logp)``, the k1 estimate of KL(old‖new)).

    >>> logp = torch.log(torch.tensor([[1.25, 0.75]]))
    >>> loss, m = dapo_policy_loss(logp, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]), torch.ones(1, 2))
    >>> round(loss.item(), 4), m["clip_fraction_high"].item(), m["clip_fraction_low"].item()
    (-0.225, 0.0, 0.5)
    """
    if logprobs.shape != old_logprobs.shape or logprobs.shape != response_mask.shape:
        raise ValueError(
            "dapo_policy_loss needs logprobs, old_logprobs and response_mask of the same [batch, tokens] shape, got "
            f"{tuple(logprobs.shape)}, {tuple(old_logprobs.shape)} and {tuple(response_mask.shape)}."
        )
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    if advantages.shape[0] != logprobs.shape[0]:
        raise ValueError(
            f"advantages must be [batch] or [batch, tokens] with batch={logprobs.shape[0]}, got {tuple(advantages.shape)}."
        )
    if not (0 <= clip_ratio_low < 1 and clip_ratio_high >= 0):
        raise ValueError(
            f"Need 0 <= clip_ratio_low < 1 and clip_ratio_high >= 0, got {clip_ratio_low} and {clip_ratio_high}."
        )
    if clip_ratio_c is not None and clip_ratio_c <= 1:
        raise ValueError(f"clip_ratio_c (dual-clip) must be > 1.0 or None, got {clip_ratio_c}.")

    advantages = advantages.to(logprobs.dtype).expand_as(logprobs)
    log_ratio = (logprobs - old_logprobs).clamp(-_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    per_token = torch.maximum(unclipped, clipped)
    dual_clipped = torch.zeros_like(per_token, dtype=torch.bool)
    if clip_ratio_c is not None:
        cap = -advantages * clip_ratio_c
        dual_clipped = (advantages < 0) & (per_token > cap)
        per_token = torch.where(dual_clipped, cap, per_token)
    loss = aggregate_loss(per_token, response_mask, loss_agg_mode, normalizer)

    with torch.no_grad():
        metrics = {
            "clip_fraction_low": _masked_mean(((ratio < 1.0 - clip_ratio_low) & (advantages < 0)).float(), response_mask),
            "clip_fraction_high": _masked_mean(((ratio > 1.0 + clip_ratio_high) & (advantages > 0)).float(), response_mask),
            "clip_fraction_dual": _masked_mean(dual_clipped.float(), response_mask),
            "ratio_mean": _masked_mean(ratio, response_mask),
            "approx_kl": _masked_mean(-log_ratio, response_mask),
        }
    return loss, metrics


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 ("low-variance") estimate of KL(π_θ‖π_ref): ``e^{d} - d - 1`` with ``d = logp_ref - logp``.

    Unbiased and always >= 0 (Schulman, http://joschu.net/blog/kl-approx.html); clamped to [-10, 10] like verl.
    DAPO drops the KL term (coefficient 0); it is here for runs that want one.
    """
    delta = (ref_logprobs - logprobs).clamp(-_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
    return (torch.exp(delta) - delta - 1.0).clamp(-10.0, 10.0)


def group_advantages(rewards: torch.Tensor | Sequence[float], group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO/DAPO advantages: each reward standardised within its prompt's group of ``group_size``.

    ``A_i = (R_i - mean_g) / (std_g + eps)`` with the unbiased (``n - 1``) standard deviation, as
    ``torch.std`` and verl compute it. Responses of one prompt must be contiguous:
    ``rewards[k * group_size : (k + 1) * group_size]`` is prompt ``k``.

    A ``NaN`` reward marks a skipped response (every reward function returned ``None``): it is left out
    of its group's mean and std and gets advantage 0. A group with fewer than two scored responses has
    no spread to learn from and gets advantage 0 throughout.

    >>> group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), group_size=4)
    tensor([ 1.5000, -0.5000, -0.5000, -0.5000])
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 to compare responses of a prompt, got {group_size}.")
    if rewards.dim() != 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"rewards must be a 1-D tensor whose length divides by group_size={group_size}, got shape {tuple(rewards.shape)}."
        )
    grouped = rewards.view(-1, group_size)
    valid = ~torch.isnan(grouped)
    filled = torch.where(valid, grouped, torch.zeros_like(grouped))
    count = valid.sum(dim=-1, keepdim=True).to(rewards.dtype)
    mean = filled.sum(dim=-1, keepdim=True) / count.clamp(min=1.0)
    squared = torch.where(valid, (grouped - mean) ** 2, torch.zeros_like(grouped))
    std = (squared.sum(dim=-1, keepdim=True) / (count - 1.0).clamp(min=1.0)).sqrt()
    advantages = (filled - mean) / (std + eps)
    advantages = torch.where(valid & (count >= 2), advantages, torch.zeros_like(advantages))
    return advantages.view(-1)


def pack_by_token_budget(lengths: Sequence[tuple[int, int]], budget: int, padded: bool = True) -> list[list[int]]:
    """Group sequences into micro-batches of at most ``budget`` tokens per forward/backward pass.

    The size of a micro-batch is its padded size ``rows x (max prompt + max response)``, or with
    ``padded=False`` (padding-free batches) its total ``Σ (prompt + response)``. Sequences are sorted by
    response length and packed greedily, so padding stays small and the memory of one pass is bounded by
    ``budget`` tokens however large the mini-batch (a sequence longer than the budget gets a micro-batch of
    its own). Returns indices into ``lengths``.

    >>> pack_by_token_budget([(2, 8), (2, 2), (2, 3), (1, 9)], budget=22)
    [[1, 2], [0, 3]]
    >>> pack_by_token_budget([(2, 8), (2, 2), (2, 3), (1, 9)], budget=22, padded=False)
    [[1, 2, 0], [3]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i][1], lengths[i][0]))
    batches: list[list[int]] = []
    current: list[int] = []
    width_p = width_c = 0
    total = 0
    for index in order:
        prompt, response = lengths[index]
        p, c = max(width_p, prompt), max(width_c, response)
        size = (len(current) + 1) * (p + c) if padded else total + prompt + response
        if current and size > budget:
            batches.append(current)
            current, p, c, total = [], prompt, response, 0
        current.append(index)
        width_p, width_c, total = p, c, total + prompt + response
    if current:
        batches.append(current)
    return batches


def selective_log_softmax(logits: torch.Tensor, token_ids: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """``log softmax(logits)[token_ids]`` per position without materialising the full log-softmax.

    ``logits`` ``[batch, tokens, vocab]``, ``token_ids`` ``[batch, tokens]``. The float32 ``logsumexp`` (bf16
    loses precision over a 150k vocabulary) runs ``chunk_size`` positions at a time, so without gradients its
    temporaries stay at ``chunk_size x vocab``; with gradients autograd keeps each chunk's float32 copy.
    """
    rows = []
    for row_logits, row_ids in zip(logits, token_ids, strict=True):
        chunks = []
        for chunk, ids in zip(row_logits.split(chunk_size), row_ids.split(chunk_size), strict=True):
            chunk = chunk.float()
            chunks.append(chunk.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(chunk, dim=-1))
        rows.append(torch.cat(chunks))
    return torch.stack(rows)


def token_entropy(logits: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """Entropy of the next-token distribution at every position: ``logsumexp(z) - Σ softmax(z)·z``.

    Computed ``chunk_size`` positions at a time in float32, so the temporaries stay at ``chunk_size x vocab``
    (0.6 GB for Qwen's 152k vocabulary) however long the responses.
    """
    rows = []
    for row_logits in logits:
        chunks = []
        for chunk in row_logits.split(chunk_size):
            chunk = chunk.float()
            chunks.append(torch.logsumexp(chunk, dim=-1) - (torch.softmax(chunk, dim=-1) * chunk).sum(dim=-1))
        rows.append(torch.cat(chunks))
    return torch.stack(rows)
