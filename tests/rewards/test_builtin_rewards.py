"""Built-in rewards: values on typical responses, and no exceptions on arbitrary text."""

import random
import string

import pytest
import torch

from medreason.rewards import format_reward, mcq_accuracy_reward, overlong_penalty, overlong_reward

OPTIONS = {"A": "asthma", "B": "COPD", "C": "croup", "D": "pneumothorax"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>Reversible wheeze.</think>The answer is \\boxed{A}", 1.0),
        ("<think>Maybe B.</think>\\boxed{B}", 0.0),
        ("\\boxed{A, C}", 0.0),  # naming several options scores 0
        ("The answer is A or C.", 0.0),
        ("no answer at all", 0.0),
        ("", 0.0),
    ],
)
def test_mcq_accuracy(text, expected):
    assert mcq_accuracy_reward([text], answer=["A"], options=[OPTIONS]) == [expected]


def test_mcq_accuracy_skips_records_without_answer():
    assert mcq_accuracy_reward(["\\boxed{A}", "\\boxed{A}"], answer=[None, "A"], options=[OPTIONS, None]) == [None, None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>reason</think>\n\nSo \\boxed{C}", 1.0),
        ("reason</think>\\boxed{C}", 1.0),  # the template opened <think> in the prompt
        ("\\boxed{C}", 0.0),  # no reasoning block
        ("<think>reason \\boxed{C}</think>", 0.0),  # answer inside the reasoning
        ("<think>a</think>\\boxed{C}</think>", 0.0),
        ("<think>a</think><think>b \\boxed{C}", 0.0),
    ],
)
def test_format(text, expected):
    assert format_reward([text]) == [expected]


def test_overlong_penalty_card_values():
    penalty = overlong_penalty([0, 8192, 9216, 10240, 12288], max_response_length=12288, buffer_length=4096,
                               penalty_factor=1.0)
    torch.testing.assert_close(penalty, torch.tensor([0.0, 0.0, -0.25, -0.5, -1.0]))
    half = overlong_penalty([12288], 12288, 4096, penalty_factor=0.5)
    assert half.item() == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="overlong_buffer_length=0"):
        overlong_penalty([1], 100, 0)


def test_overlong_reward_uses_token_counts():
    scores = overlong_reward(["x"] * 3, completion_ids=[[0] * 8192, [0] * 10240, [0] * 12288],
                             max_completion_length=12288, overlong_buffer_length=4096, overlong_penalty_factor=1.0)
    assert scores == pytest.approx([0.0, -0.5, -1.0])


def test_rewards_never_raise_on_arbitrary_text():
    rng = random.Random(0)
    alphabet = string.printable + "{}\\<>/αβ東\u0000"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(200)]
    texts += ["\\boxed{", "\\boxed{}}}", "</think>" * 3, "<think>" * 5, "\\boxed{\\boxed{A}}"]
    n = len(texts)
    for scores in (
        mcq_accuracy_reward(texts, answer=["A"] * n, options=[OPTIONS] * n),
        format_reward(texts),
        overlong_reward(texts, completion_ids=[[0] * len(t) for t in texts], max_completion_length=400,
                        overlong_buffer_length=100),
    ):
        assert len(scores) == n and all(s is None or isinstance(s, float) for s in scores)
