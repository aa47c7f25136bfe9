"""Judge answers parsed robustly, judge calls retried/cached/budgeted, and the judge rewards in DAPO."""

import json

import pytest
import torch

from medreason.engines.base import Completion, GenerationEngine
from medreason.rewards import LLMJudgeReward, RubricJudgeReward, get_reward
from medreason.rewards.judging import JudgeCalls, grade_rubrics
from medreason.tasks.judge_prompts import parse_rubric_verdict, parse_score_verdict
from medreason.tasks.rubric import RubricItem
from medreason.testing import tiny_records
from medreason.testing.openai_server import FakeLLMServer, Fault, prompt_of
from medreason.testing.tiny_rubric import keyword_judge
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import DAPOTrainer

USER = [{"role": "user", "content": "My toddler has a barking cough."}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"explanation": "ok", "criteria_met": true}', True),
        ('```json\n{\n  "explanation": "no ER advice",\n  "criteria_met": false\n}\n```', False),
        ('Here is my grade:\n{"explanation": "uses {braces} and \\"quotes\\"", "criteria_met": true}\nDone.', True),
        ('<think>Maybe {"criteria_met": false}? No.</think>{"criteria_met": true}', True),
        ('{"criteria_met": "False"}', False),
        ('{"criteria_met": false} then again {"criteria_met": true}', True),  # the last object is the answer
        ('{"explanation": "cut off mid-way", "criteria_met": tr', None),
        ('{"explanation": "no verdict field"}', None),
        ('{"criteria_met": "yes"}', None),
        ('{"criteria_met": 1}', None),
        ("The response meets the criterion.", None),
        ("", None),
        ("[true]", None),
    ],
)
def test_rubric_verdicts_from_malformed_judge_answers(text, expected):
    verdict = parse_rubric_verdict(text)
    assert (None if verdict is None else verdict.value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [('{"score": 1}', 1.0), ('```\n{"score": "0.25"}\n```', 0.25), ('{"score": 1.5}', None), ('{"score": -0.1}', None),
     ('{"score": NaN}', None), ('{"score": true}', None), ("score: 0.5", None)],
)
def test_score_verdicts(text, expected):
    verdict = parse_score_verdict(text)
    assert (None if verdict is None else verdict.value) == expected


class ScriptedJudge(GenerationEngine):
    """A judge answering from a list of texts per prompt (one per attempt), recording every prompt it is sent."""

    model_name = "scripted-judge"

    def __init__(self, answers):
        self.answers, self.sent = answers, []

    def generate(self, prompts, sampling):
        out = []
        for prompt in prompts:
            key = prompt[-1]["content"]
            attempt = sum(sent == key for sent in self.sent)
            self.sent.append(key)
            script = self.answers(key)
            out.append([Completion(script[min(attempt, len(script) - 1)])])
        return out


def _prompt(text):
    return [{"role": "user", "content": text}]


def test_unparsable_answers_are_retried_boundedly_then_recorded_as_failures_and_not_cached(tmp_path):
    scripts = {"good": ['{"criteria_met": true}'], "late": ["hmm", "```json\n{\"criteria_met\": false}\n```"],
               "never": ["no idea", "still none", "nope", "unused"]}
    judge = ScriptedJudge(lambda key: scripts[key])
    calls = JudgeCalls(judge, tmp_path / "cache.jsonl", max_attempts=3)
    good, late, never = calls.run([_prompt("good"), _prompt("late"), _prompt("never")], parse_rubric_verdict)
    assert good.verdict.value is True and late.verdict.value is False and never.verdict is None
    assert late.raw == ["hmm", '```json\n{"criteria_met": false}\n```']
    assert never.raw == ["no idea", "still none", "nope"] and "no verdict in 3 judge answer(s)" in never.error
    assert calls.calls == 1 + 2 + 3
    # a fresh process reads the cache: only the failed prompt is asked again
    again = JudgeCalls(judge, tmp_path / "cache.jsonl", max_attempts=3)
    results = again.run([_prompt("good"), _prompt("late"), _prompt("never")], parse_rubric_verdict)
    assert [r.cached for r in results] == [True, True, False] and again.calls == 3
    cached = [json.loads(line) for line in (tmp_path / "cache.jsonl").read_text().splitlines()]
    assert {entry["raw"][-1] for entry in cached} == {'{"criteria_met": true}', '```json\n{"criteria_met": false}\n```'}


def test_budget_and_identical_prompts():
    judge = ScriptedJudge(lambda key: ['{"criteria_met": true}'])
    calls = JudgeCalls(judge)
    out = calls.run([_prompt("a"), _prompt("a"), _prompt("b"), _prompt("c")], parse_rubric_verdict, budget=2)
    assert [o.verdict is not None for o in out] == [True, True, True, False]
    assert out[3].error == "judge budget spent" and calls.calls == 2


def test_engine_failure_is_a_judge_failure_not_a_verdict():
    with FakeLLMServer(lambda body, index: Fault(status=400)) as server:
        reward = RubricJudgeReward(judge={"model": "judge", "base_url": server.base_url, "max_retries": 0})
        assert reward(["Croup."], prompts=[USER], rubrics=[[{"criterion": 'Mentions "croup"', "points": 1}]]) == [None]


def test_grade_rubrics_shows_the_judge_the_final_answer_only():
    judge = ScriptedJudge(lambda key: ['{"criteria_met": true}'])
    grade_rubrics(JudgeCalls(judge), [(USER, "<think>secret plan</think>Croup, see a doctor.", [RubricItem("x", 1)])])
    assert "secret plan" not in judge.sent[0] and "assistant: Croup, see a doctor." in judge.sent[0]


def test_judge_rewards_need_a_judge_model_before_training():
    with pytest.raises(ValueError, match="needs a judge model"):
        get_reward("rubric_judge")
    with pytest.raises(ValueError, match="judge.model is not set"):
        get_reward("rubric_judge", {"judge": {"base_url": "http://127.0.0.1:1/v1"}})
    with pytest.raises(ValueError, match="no \\{reference\\} field"):
        LLMJudgeReward(judge={"model": "j"}, template="Grade {question} {response}")
    with pytest.raises(ValueError, match="takes no settings"):
        get_reward("mcq_accuracy", {"judge": {}})
    with pytest.raises(ValueError, match="reward_kwargs"):
        DAPOConfig(output_dir="/tmp/x", use_cpu=True, rewards=["format"], reward_kwargs={"rubric_judge": {}},
                   max_completion_length=8, overlong_buffer_length=0)


def _a_rubric(levels=4):
    """Rubric items the keyword judge grades by how often the response holds the letter "a" (a learnable target)."""
    return [{"criterion": f'Mentions "a" at least {k} times', "points": 1, "tags": ["axis:accuracy"]} for k in range(1, levels + 1)]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _dapo_args(output_dir, **overrides):
    settings = dict(
        output_dir=str(output_dir), use_cpu=True, bf16=False, seed=0, max_steps=2, num_generations=4,
        train_prompt_batch_size=4, gen_prompt_batch_size=4, mini_batch_size=2, max_completion_length=8,
        overlong_buffer_length=0, learning_rate=1e-2, warmup_steps=0, save_steps=1000, logging_steps=1000,
    )
    settings.update(overrides)
    return DAPOConfig(**settings)


def test_dapo_with_rubric_judge_against_the_loopback_judge_raises_the_reward(tiny_model_dir, tmp_path):
    data = [{"prompt": [{"role": "user", "content": r["question"]}], "rubrics": _a_rubric()} for r in tiny_records(16)]
    with FakeLLMServer(keyword_judge(fenced=True), max_requests=10**6) as server:
        args = _dapo_args(
            tmp_path, max_steps=14, num_generations=8, rewards=["rubric_judge"], dynamic_sampling=False,
            reward_kwargs={"rubric_judge": {"judge": {"model": "keyword-judge", "base_url": server.base_url},
                                            "cache_dir": str(tmp_path / "judge")}},
        )
        trainer = DAPOTrainer(tiny_model_dir, args, data)
        trainer.train()
        asked = len(server.requests)
    curve = [m["rewards/rubric_judge"] for m in trainer.log_history]
    start, end = sum(curve[:3]) / 3, sum(curve[-3:]) / 3
    assert end > start + 0.2, f"rubric reward did not rise: {curve}"
    assert asked > 0 and (tmp_path / "judge" / "rubric_judge.jsonl").is_file()


def test_mixed_dataset_each_record_gets_the_rewards_that_apply(tiny_model_dir, tmp_path):
    mcq = [{"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"], "options": r["options"]}
           for r in tiny_records(2)]
    rubric = [{"prompt": [{"role": "user", "content": r["question"]}], "rubrics": _a_rubric(2)} for r in tiny_records(2, seed=3)]
    with FakeLLMServer(keyword_judge(), max_requests=10**6) as server:
        args = _dapo_args(
            tmp_path, max_steps=1, rewards=["rubric_judge", "mcq_accuracy"], dynamic_sampling=False,
            reward_kwargs={"rubric_judge": {"judge": {"model": "keyword-judge", "base_url": server.base_url}}},
        )
        trainer = DAPOTrainer(tiny_model_dir, args, [mcq[0], rubric[0], mcq[1], rubric[1]])
        trainer.train()
        judged = "\n".join(prompt_of(body) for body in server.requests)
    # the judge saw the rubric records' conversations and none of the multiple-choice ones
    assert all(r["prompt"][0]["content"] in judged for r in rubric)
    assert not any(m["prompt"][0]["content"] in judged for m in mcq)
    metrics = trainer.log_history[-1]
    assert 0.0 <= metrics["rewards/rubric_judge"] <= 1.0 and 0.0 <= metrics["rewards/mcq_accuracy"] <= 1.0
