"""Rewards for RL: the registry and the built-in scorers (one per module).

Importing the package registers the built-ins: ``mcq_accuracy``, ``format``, ``overlong`` and the
judge rewards ``rubric_judge`` and ``llm_judge`` (settings in ``reward_kwargs``; see docs/dapo.md).
"""

from medreason.rewards.format import format_reward
from medreason.rewards.llm_judge import LLMJudgeReward
from medreason.rewards.mcq_accuracy import mcq_accuracy_reward
from medreason.rewards.overlong import overlong_penalty, overlong_reward
from medreason.rewards.registry import (
    AsyncReward,
    Reward,
    RewardFunc,
    available_rewards,
    combine_rewards,
    get_reward,
    register_reward,
    reward_name,
)
from medreason.rewards.rubric_judge import RubricJudgeReward

__all__ = [
    "AsyncReward",
    "LLMJudgeReward",
    "Reward",
    "RewardFunc",
    "RubricJudgeReward",
    "available_rewards",
    "combine_rewards",
    "format_reward",
    "get_reward",
    "mcq_accuracy_reward",
    "overlong_penalty",
    "overlong_reward",
    "register_reward",
    "reward_name",
]
