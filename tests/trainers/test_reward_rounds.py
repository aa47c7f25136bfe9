"""Rewards started for a round and read later: in order, with a reward that raises named where it is read."""

from concurrent.futures import Future

import pytest

from medreason.rewards import Reward
from medreason.trainers.reward_rounds import resolve_rewards, submit_rewards


class Later(Reward):
    """Scores that arrive when the test says so."""

    def __init__(self):
        self.future: Future = Future()

    def __call__(self, completions, **kwargs):
        return self.submit(completions, **kwargs).result()

    def submit(self, completions, **kwargs):
        return self.future


class BrokenSubmit(Reward):
    def __call__(self, completions, **kwargs):
        return [1.0] * len(completions)

    def submit(self, completions, **kwargs):
        raise ConnectionError("judge unreachable")


def length(completions, **kwargs):
    return [float(len(text)) for text in completions]


def broken(completions, **kwargs):
    raise KeyError("answer")


def test_scores_are_read_in_reward_order_whenever_they_arrive():
    later = Later()
    futures = submit_rewards([later, length], ["ab", "c"])
    assert futures[1].done() and not futures[0].done()  # a plain function scored at once; the slow one is pending
    later.future.set_result([0.5, None])
    assert resolve_rewards(["later", "length"], futures, 2) == [[0.5, None], [2.0, 1.0]]


@pytest.mark.parametrize(("reward", "name", "error"), [(broken, "broken", "KeyError"), (BrokenSubmit(), "judge", "ConnectionError")])
def test_a_reward_that_raises_is_named_where_its_scores_are_read(reward, name, error):
    futures = submit_rewards([length, reward], ["ab"])  # submitting never raises: the trainer generates on
    with pytest.raises(RuntimeError, match=f"Reward '{name}' raised on a batch of 1 completions: {error}"):
        resolve_rewards(["length", name], futures, 1)
