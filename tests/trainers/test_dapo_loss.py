"""The DAPO loss pieces against values worked out by hand."""

import math

import pytest
import torch

from medreason.trainers.dapo_loss import (
    aggregate_loss,
    aggregation_count,
    dapo_policy_loss,
    group_advantages,
    kl_penalty,
    pack_by_token_budget,
    selective_log_softmax,
    token_entropy,
)


def _ratios(*ratios: float) -> tuple[torch.Tensor, torch.Tensor]:
    """logprobs/old_logprobs giving the ratios r = exp(logp - old)."""
    return torch.log(torch.tensor([list(ratios)])), torch.zeros(1, len(ratios))


@pytest.mark.parametrize(
    ("ratio", "advantage", "expected_loss", "clipped"),
    [
        # A > 0: clipped above at 1 + 0.28. r = 1.25 is inside the DAPO range but outside a symmetric 0.2 one.
        (1.25, 1.0, -1.25, False),
        (1.30, 1.0, -1.28, True),
        # A > 0, r < 1 - 0.2: the unclipped term is the pessimistic one, so nothing is clipped.
        (0.50, 1.0, -0.50, False),
        # A < 0: clipped below at 1 - 0.2 = 0.8 ...
        (0.75, -1.0, 0.80, True),
        (0.85, -1.0, 0.85, False),
        # ... and never above: a large ratio keeps its full (positive) loss.
        (1.50, -2.0, 3.00, False),
    ],
)
def test_clip_higher_per_token_values(ratio, advantage, expected_loss, clipped):
    logprobs, old = _ratios(ratio)
    logprobs.requires_grad_(True)
    loss, _ = dapo_policy_loss(logprobs, old, torch.tensor([advantage]), torch.ones(1, 1), 0.2, 0.28)
    loss.backward()
    assert loss.item() == pytest.approx(expected_loss, abs=1e-6)
    # A clipped token contributes no gradient; an unclipped one has d(-A r)/d logp = -A r.
    expected_grad = 0.0 if clipped else -advantage * ratio
    assert logprobs.grad.item() == pytest.approx(expected_grad, abs=1e-6)


def test_clip_higher_is_asymmetric():
    logprobs, old = _ratios(1.25)
    advantages, mask = torch.tensor([1.0]), torch.ones(1, 1)
    symmetric, sym_metrics = dapo_policy_loss(logprobs, old, advantages, mask, 0.2, 0.2)
    decoupled, dec_metrics = dapo_policy_loss(logprobs, old, advantages, mask, 0.2, 0.28)
    assert symmetric.item() == pytest.approx(-1.2)
    assert decoupled.item() == pytest.approx(-1.25)
    assert sym_metrics["clip_fraction_high"].item() == 1.0 and dec_metrics["clip_fraction_high"].item() == 0.0


def test_token_mean_over_two_tokens_and_clip_fractions():
    logprobs, old = _ratios(1.25, 0.75, 1.5, 1.0)
    advantages = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    loss, metrics = dapo_policy_loss(logprobs, old, advantages, torch.ones(1, 4))
    # per token: -1.25, 0.8 (clipped low), -1.28 (clipped high), 1.0
    assert loss.item() == pytest.approx((-1.25 + 0.8 - 1.28 + 1.0) / 4)
    assert metrics["clip_fraction_low"].item() == pytest.approx(0.25)
    assert metrics["clip_fraction_high"].item() == pytest.approx(0.25)


def test_dual_clip_caps_negative_advantage_loss():
    logprobs, old = _ratios(5.0)
    plain, _ = dapo_policy_loss(logprobs, old, torch.tensor([-1.0]), torch.ones(1, 1))
    dual, metrics = dapo_policy_loss(logprobs, old, torch.tensor([-1.0]), torch.ones(1, 1), clip_ratio_c=3.0)
    assert plain.item() == pytest.approx(5.0)
    assert dual.item() == pytest.approx(3.0)
    assert metrics["clip_fraction_dual"].item() == 1.0
    positive, _ = dapo_policy_loss(logprobs, old, torch.tensor([1.0]), torch.ones(1, 1), clip_ratio_c=3.0)
    assert positive.item() == pytest.approx(-1.28)  # dual-clip leaves positive advantages alone


def test_aggregation_modes_by_hand():
    losses = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0], [7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    assert aggregate_loss(losses, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate_loss(losses, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate_loss(losses, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert aggregation_count(mask, "token-mean").item() == 4
    assert aggregation_count(mask, "seq-mean-token-mean").item() == 2
    with pytest.raises(ValueError, match="loss_agg_mode"):
        aggregate_loss(losses, mask, "mean")


def _policy_batch(seed: int = 0):
    torch.manual_seed(seed)
    vocab, batch, length = 11, 8, 6
    weight = torch.randn(5, vocab, requires_grad=True)
    features = torch.randn(batch, length, 5)
    tokens = torch.randint(vocab, (batch, length))
    lengths = torch.tensor([6, 1, 3, 5, 2, 6, 4, 1])
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    old = selective_log_softmax(features @ weight.detach() + 0.3 * torch.randn(batch, length, vocab), tokens)
    advantages = torch.randn(batch)
    return weight, features, tokens, mask, old, advantages


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_four_accumulated_micro_batches_equal_one_batch(mode):
    weight, features, tokens, mask, old, advantages = _policy_batch()

    def loss_of(rows, normalizer=None):
        logprobs = selective_log_softmax(features[rows] @ weight, tokens[rows])
        return dapo_policy_loss(logprobs, old[rows], advantages[rows], mask[rows], loss_agg_mode=mode,
                                normalizer=normalizer)[0]

    full = loss_of(slice(None))
    full.backward()
    full_grad = weight.grad.clone()

    weight.grad = None
    parts = [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    normalizer = sum(aggregation_count(mask[p], mode) for p in parts)
    accumulated = 0.0
    for part in parts:
        loss = loss_of(part, normalizer)
        loss.backward()
        accumulated += loss.item()
    assert accumulated == pytest.approx(full.item(), abs=1e-6)
    torch.testing.assert_close(weight.grad, full_grad, rtol=1e-5, atol=1e-7)

    if mode != "token-mean":
        return  # equal-sized micro-batches of non-empty sequences: a mean of means is exact for seq-mean modes
    # For token-mean, the naive mean of micro-batch means is a different objective (what this test guards against).
    weight.grad = None
    sum(loss_of(part) / len(parts) for part in parts).backward()
    assert not torch.allclose(weight.grad, full_grad, rtol=1e-3, atol=1e-5)


def test_group_advantages_by_hand():
    advantages = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]), 4)
    # group 1: mean 0.25, unbiased std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5
    # group 2: mean 0.5, std sqrt(4 * 0.25 / 3) = 0.57735; group 3: constant -> 0
    expected = [1.5, -0.5, -0.5, -0.5, 0.866025, 0.866025, -0.866025, -0.866025, 0, 0, 0, 0]
    torch.testing.assert_close(advantages, torch.tensor(expected), atol=1e-5, rtol=0)


def test_group_advantages_skip_nan_rewards():
    advantages = group_advantages(torch.tensor([1.0, math.nan, 0.0, 0.0, 5.0, math.nan, math.nan, math.nan]), 4)
    # scored: 1, 0, 0 -> mean 1/3, std sqrt((4/9 + 1/9 + 1/9) / 2) = sqrt(1/3); lone scored response -> 0
    third = 1 / 3
    expected = [(1 - third) / math.sqrt(third), 0.0, -third / math.sqrt(third), -third / math.sqrt(third), 0, 0, 0, 0]
    torch.testing.assert_close(advantages, torch.tensor(expected), atol=1e-5, rtol=0)


def test_group_advantages_rejects_bad_shapes():
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.ones(6), 4)
    with pytest.raises(ValueError, match=">= 2"):
        group_advantages(torch.ones(4), 1)


def test_kl_penalty_and_entropy():
    logprobs = torch.log(torch.tensor([[0.5, 0.25]]))
    assert kl_penalty(logprobs, logprobs).abs().max().item() == 0.0
    # d = log(0.25 / 0.5) = -log 2: e^d - d - 1 = 0.5 + log 2 - 1
    value = kl_penalty(logprobs[:, :1], torch.log(torch.tensor([[0.25]])))
    assert value.item() == pytest.approx(0.5 + math.log(2) - 1, abs=1e-6)
    uniform = torch.zeros(1, 2, 4)
    torch.testing.assert_close(token_entropy(uniform), torch.full((1, 2), math.log(4)))
    logits = torch.randn(2, 5, 7)  # chunked over positions == all at once
    expected = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
    torch.testing.assert_close(token_entropy(logits, chunk_size=2), expected)
    ids = torch.randint(7, (2, 5))
    picked = logits.log_softmax(-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(selective_log_softmax(logits, ids, chunk_size=2), picked)


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same"):
        dapo_policy_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="clip_ratio_c"):
        dapo_policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.ones(1, 1), clip_ratio_c=0.5)


def test_micro_batches_respect_the_token_budget():
    lengths = [(40, 10), (30, 30), (45, 5), (20, 60), (90, 30), (10, 200)]
    batches = pack_by_token_budget(lengths, budget=200)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i][0] for i in batch) + max(lengths[i][1] for i in batch)
        assert len(batch) == 1 or len(batch) * width <= 200  # an over-long sequence gets a batch of its own
    assert [5] in batches and len(batches) < len(lengths)
