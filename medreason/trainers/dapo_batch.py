"""DAPO training examples: one response as a :class:`TrainingSequence`, and micro-batch tensors.

Two layouts. :func:`collate` pads: left-padded prompts and right-padded completions, so every response
starts at the same column and the loss reads the last ``completion`` columns of the logits.
:func:`collate_packed` is padding-free: all sequences back to back in one row, ``position_ids``
restarting at each, which transformers turns into a block-diagonal causal mask (varlen kernels under
flash-attention); it also names the logit positions that predict completion tokens and where each
lands on the ``[sequence, completion]`` grid the loss works on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TrainingSequence:
    """One response as a training example (token ids as int32 CPU tensors, as rollouts keep them)."""

    prompt_ids: torch.Tensor
    completion_ids: torch.Tensor
    advantage: float
    weight: float = 1.0  # 0 for a stand-in that only keeps data-parallel ranks in step
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None

    @classmethod
    def padding(cls, pad_token_id: int) -> TrainingSequence:
        """A one-token stand-in that contributes nothing (weight 0) but keeps a rank's passes in step."""
        pad = torch.tensor([pad_token_id], dtype=torch.int32)
        return cls(pad, pad, 0.0, weight=0.0, old_logprobs=torch.zeros(1), ref_logprobs=torch.zeros(1))


def collate(sequences: list[TrainingSequence], pad_token_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask``, ``position_ids``, ``completion_mask`` (the weights) and ``advantages``.

    >>> seqs = [TrainingSequence(torch.tensor([1, 2]), torch.tensor([3]), 1.0),
    ...         TrainingSequence(torch.tensor([4]), torch.tensor([5, 6]), -1.0)]
    >>> collate(seqs, pad_token_id=0)["input_ids"].tolist()
    [[1, 2, 3, 0], [0, 4, 5, 6]]
    """
    width_p = max(len(s.prompt_ids) for s in sequences)
    width_c = max(len(s.completion_ids) for s in sequences)
    input_ids = torch.full((len(sequences), width_p + width_c), pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    completion_mask = torch.zeros(len(sequences), width_c)
    for row, seq in enumerate(sequences):
        p, c = len(seq.prompt_ids), len(seq.completion_ids)
        input_ids[row, width_p - p : width_p + c] = torch.cat([seq.prompt_ids, seq.completion_ids])
        attention[row, width_p - p : width_p + c] = 1
        completion_mask[row, :c] = seq.weight
    return {
        "input_ids": input_ids, "attention_mask": attention, "completion_mask": completion_mask,
        "position_ids": (attention.cumsum(-1) - 1).clamp(min=0),
        "advantages": torch.tensor([s.advantage for s in sequences]),
    }


def collate_packed(sequences: list[TrainingSequence]) -> dict[str, torch.Tensor]:
    """Padding-free ``input_ids``/``position_ids`` (one row), plus ``logit_positions`` and ``grid_index``.

    ``logit_positions[k]`` is the position whose logits predict the ``k``-th completion token overall, and
    ``grid_index`` holds its ``(row, column)`` on the ``completion_mask`` grid.

    >>> seqs = [TrainingSequence(torch.tensor([1, 2]), torch.tensor([3]), 1.0),
    ...         TrainingSequence(torch.tensor([4]), torch.tensor([5, 6]), -1.0)]
    >>> batch = collate_packed(seqs)
    >>> batch["input_ids"].tolist(), batch["position_ids"].tolist(), batch["logit_positions"].tolist()
    ([[1, 2, 3, 4, 5, 6]], [[0, 1, 2, 0, 1, 2]], [1, 3, 4])
    """
    width_c = max(len(s.completion_ids) for s in sequences)
    completion_mask = torch.zeros(len(sequences), width_c)
    ids, positions, logit_positions, rows, columns = [], [], [], [], []
    offset = 0
    for row, seq in enumerate(sequences):
        p, c = len(seq.prompt_ids), len(seq.completion_ids)
        if p == 0:  # the first completion token is predicted by the prompt's last position
            raise ValueError(f"Sequence {row} of the micro-batch has an empty prompt; every prompt needs >= 1 token.")
        ids.append(torch.cat([seq.prompt_ids, seq.completion_ids]))
        positions.append(torch.arange(p + c))
        logit_positions.append(torch.arange(offset + p - 1, offset + p + c - 1))
        rows.append(torch.full((c,), row))
        columns.append(torch.arange(c))
        completion_mask[row, :c] = seq.weight
        offset += p + c
    return {
        "input_ids": torch.cat(ids).long()[None], "position_ids": torch.cat(positions)[None],
        "logit_positions": torch.cat(logit_positions), "grid_index": torch.stack([torch.cat(rows), torch.cat(columns)]),
        "completion_mask": completion_mask, "advantages": torch.tensor([s.advantage for s in sequences]),
    }


def completion_grid(rows: list[torch.Tensor], completion_mask: torch.Tensor) -> torch.Tensor:
    """Right-pad per-sequence values (log-probs) to the micro-batch's ``[batch, completion]`` grid."""
    grid = torch.zeros_like(completion_mask)
    for row, values in enumerate(rows):
        grid[row, : len(values)] = values.to(grid.device)
    return grid
