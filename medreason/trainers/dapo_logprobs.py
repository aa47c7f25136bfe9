"""Per-token log-probabilities (and entropies) of a DAPO batch's completion tokens under a causal LM.

Both batch layouts of :mod:`medreason.trainers.dapo_batch` (padded, padding-free) come back as
``[sequence, completion]`` grids.
"""

from __future__ import annotations

import torch

from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_loss import selective_log_softmax, token_entropy
from medreason.utils.fused_logprobs import causal_lm_token_logprobs


def completion_logprobs(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], args: DAPOConfig, fused: bool, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs of the completion tokens (and their entropies) at the sampling temperature.

    Both come as ``[sequence, completion]`` grids, in either layout; entries outside the completion mask
    carry no meaning (the loss masks them). ``fused``: through :func:`causal_lm_token_logprobs` (no
    ``[tokens x vocab]`` logits); otherwise the dense path.
    """
    mask = batch["completion_mask"]
    if "logit_positions" in batch:  # padding-free: one row, logits only where they predict a completion token
        positions = batch["logit_positions"]
        inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    else:  # the last mask.shape[1] + 1 positions, less the last one, predict the completion tokens
        length = batch["input_ids"].shape[1]
        positions = torch.arange(length - mask.shape[1] - 1, length - 1, device=mask.device)
        inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "position_ids")}
    targets = batch["input_ids"][:, positions + 1]
    entropy_grad = torch.is_grad_enabled() and args.entropy_coeff > 0
    if fused:
        logprobs, entropy = causal_lm_token_logprobs(model, targets, args.logprob_chunk_size, args.temperature,
                                                     with_entropy, logits_to_keep=positions, use_cache=False, **inputs)
        if entropy is not None and not entropy_grad:
            entropy = entropy.detach()
    else:  # the dense path: [tokens x vocab] logits (kept for comparison, benchmarks/dapo_memory.py)
        logits = model(**inputs, logits_to_keep=positions, use_cache=False).logits
        if args.temperature != 1.0:  # the card samples at 1.0: skip a full copy of the logits
            logits = logits / args.temperature
        logprobs = selective_log_softmax(logits, targets, args.logprob_chunk_size)
        entropy = None
        if with_entropy:
            with torch.set_grad_enabled(entropy_grad):
                entropy = token_entropy(logits, args.logprob_chunk_size)
    return on_grid(logprobs, batch), None if entropy is None else on_grid(entropy, batch)


def on_grid(values: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Padding-free values ``[1, tokens]`` scattered onto the ``[sequence, completion]`` grid; padded ones as is."""
    if "grid_index" not in batch:
        return values
    rows, columns = batch["grid_index"]
    grid = values.new_zeros(batch["completion_mask"].shape)
    return grid.index_put((rows, columns), values[0])
