"""The fused, chunked log-probs and entropies equal the dense full-logits path: values and gradients."""

from __future__ import annotations

import pytest
import torch

from medreason.trainers.dapo_loss import selective_log_softmax, token_entropy
from medreason.utils.fused_logprobs import causal_lm_token_logprobs, fused_token_logprobs

VOCAB, HIDDEN = 97, 12


def _inputs(seed: int, rows: int = 3, positions: int = 11) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, positions, HIDDEN, generator=generator, dtype=torch.float64).float().requires_grad_()
    weight = torch.randn(VOCAB, HIDDEN, generator=generator).mul(0.5).requires_grad_()
    targets = torch.randint(0, VOCAB, (rows, positions), generator=generator)
    return hidden, weight, targets


def _dense(hidden, weight, targets, temperature):
    logits = hidden @ weight.T / temperature
    return selective_log_softmax(logits, targets), token_entropy(logits)


@pytest.mark.parametrize(("chunk_size", "temperature"), [(1, 1.0), (4, 1.0), (7, 0.7), (1000, 1.3)])
def test_values_and_gradients_match_the_dense_path(chunk_size, temperature):
    hidden, weight, targets = _inputs(seed=chunk_size)
    # Random per-position weights on both outputs, so every gradient term (log-prob and entropy) is exercised.
    g_logp, g_ent = torch.randn(targets.shape), torch.randn(targets.shape)

    dense_logp, dense_ent = _dense(hidden, weight, targets, temperature)
    dense_grads = torch.autograd.grad((dense_logp * g_logp).sum() + (dense_ent * g_ent).sum(), (hidden, weight))
    fused_logp, fused_ent = fused_token_logprobs(hidden, weight, targets, chunk_size, temperature, with_entropy=True)
    fused_grads = torch.autograd.grad((fused_logp * g_logp).sum() + (fused_ent * g_ent).sum(), (hidden, weight))

    torch.testing.assert_close(fused_logp, dense_logp, rtol=0, atol=1e-5)
    torch.testing.assert_close(fused_ent, dense_ent, rtol=0, atol=1e-5)
    for fused, dense in zip(fused_grads, dense_grads, strict=True):
        torch.testing.assert_close(fused, dense, rtol=1e-5, atol=1e-5)


def test_log_prob_gradient_alone_and_entropy_off():
    hidden, weight, targets = _inputs(seed=3)
    dense_logp, _ = _dense(hidden, weight, targets, 1.0)
    dense_grads = torch.autograd.grad(dense_logp.sum(), (hidden, weight))
    fused_logp, entropy = fused_token_logprobs(hidden, weight, targets, chunk_size=5)
    assert entropy is None
    fused_grads = torch.autograd.grad(fused_logp.sum(), (hidden, weight))
    for fused, dense in zip(fused_grads, dense_grads, strict=True):
        torch.testing.assert_close(fused, dense, rtol=1e-5, atol=1e-5)
    # The gradient of a log-prob w.r.t. the weight is not zero: the test would notice a dropped term.
    assert fused_grads[1].abs().sum() > 0


def test_bf16_autocast_matches_the_dense_bf16_head():
    hidden, weight, targets = _inputs(seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dense = selective_log_softmax(torch.nn.functional.linear(hidden, weight), targets)
        fused, _ = fused_token_logprobs(hidden, weight, targets, chunk_size=4)
    torch.testing.assert_close(fused, dense, rtol=0, atol=1e-6)


def test_causal_lm_wrapper_matches_model_logits(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.randint(0, model.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(3, 8)  # the hidden states that predict tokens 4..8
    logp, entropy = causal_lm_token_logprobs(model, ids[:, 4:], chunk_size=3, with_entropy=True, input_ids=ids,
                                             logits_to_keep=positions)
    logits = model(input_ids=ids).logits[:, 3:8]
    torch.testing.assert_close(logp, selective_log_softmax(logits, ids[:, 4:]), rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy, token_entropy(logits), rtol=0, atol=1e-5)
    assert "forward" not in vars(model.get_output_embeddings())  # the head is restored


def test_bad_shapes_are_refused():
    hidden, weight, targets = _inputs(seed=1)
    with pytest.raises(ValueError, match="targets must have the shape"):
        fused_token_logprobs(hidden, weight, targets[:, :-1])
    with pytest.raises(ValueError, match="weight must be"):
        fused_token_logprobs(hidden, weight.T, targets)
