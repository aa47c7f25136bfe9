"""The reward registry, combining rewards with None, and async rewards that time out instead of hanging."""

import asyncio
import math
import threading

import pytest
import torch

from medreason.rewards import (
    AsyncReward,
    Reward,
    available_rewards,
    combine_rewards,
    get_reward,
    mcq_accuracy_reward,
    register_reward,
    reward_name,
)


def test_builtins_are_registered():
    assert {"mcq_accuracy", "format", "overlong"} <= set(available_rewards())
    assert get_reward("mcq_accuracy") is mcq_accuracy_reward
    assert reward_name(mcq_accuracy_reward) == "mcq_accuracy"


def test_duplicate_names_are_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_reward("mcq_accuracy")(lambda completions, **kwargs: [0.0] * len(completions))


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValueError, match="mcq_accuracy"):
        get_reward("no_such_reward")


def test_dotted_path_and_callables():
    assert get_reward("medreason.rewards.format.format_reward")(["</think>\\boxed{A}"]) == [1.0]
    with pytest.raises(ValueError, match="Could not import"):
        get_reward("medreason.rewards.format.missing")

    def custom(completions, **kwargs):
        return [1.0] * len(completions)

    assert get_reward(custom) is custom


def test_reward_subclass_is_instantiated():
    class Constant(Reward):
        def __call__(self, completions, **kwargs):
            return [0.5] * len(completions)

    assert get_reward(Constant)(["a", "b"]) == [0.5, 0.5]


def test_combine_rewards_weights_and_skips():
    total = combine_rewards([[1.0, None, 0.0], [-0.5, None, None]], [2.0, 1.0], 3)
    assert total[0].item() == pytest.approx(1.5)
    assert math.isnan(total[1].item())
    assert total[2].item() == 0.0
    with pytest.raises(ValueError, match="returned 1 scores"):
        combine_rewards([[1.0]], [1.0], 2)
    with pytest.raises(ValueError, match="finite"):
        combine_rewards([[math.inf]], [1.0], 1)
    assert combine_rewards([[torch.tensor(1.0).item()]], [1.0], 1).item() == 1.0


class _SlowJudge(AsyncReward):
    async def score(self, completion, **sample):
        if completion == "hang":
            await asyncio.sleep(3600)
        if completion == "boom":
            raise ConnectionError("judge unreachable")
        return float(sample["answer"] == "A")


def test_async_reward_times_out_and_survives_errors():
    judge = _SlowJudge(max_concurrency=2, timeout=0.2)
    scores = judge(["ok", "hang", "boom", "ok"], answer=["A", "A", "A", "B"])
    assert scores == [1.0, None, None, 0.0]


def test_async_reward_works_inside_a_running_event_loop():
    async def notebook_cell():
        return _SlowJudge(timeout=1.0)(["x"], answer=["A"])

    assert asyncio.run(notebook_cell()) == [1.0]


def test_async_reward_submit_returns_before_its_scores_and_trainers_get_them_later():
    gate = threading.Event()

    class Gated(AsyncReward):
        async def score(self, completion, **sample):
            await asyncio.to_thread(gate.wait, 30)
            return float(len(completion))

    future = Gated().submit(["a", "bc"])
    assert not future.done()  # the caller (a trainer generating its next round) is not held up
    gate.set()
    assert future.result(timeout=30) == [1.0, 2.0]
