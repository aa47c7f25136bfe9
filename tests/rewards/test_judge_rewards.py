"""Judge answers parsed robustly, judge calls retried/cached/budgeted, and the judge rewards in DAPO."""

import json
import threading
import time

import pytest

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

pytestmark = pytest.mark.usefixtures("one_torch_thread")

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


class GatedJudge(ScriptedJudge):
    """A scripted judge that answers nothing until ``gate`` is set."""

    def __init__(self, answers):
        super().__init__(answers)
        self.gate = threading.Event()

    def generate(self, prompts, sampling):
        assert self.gate.wait(timeout=30)
        return super().generate(prompts, sampling)


def test_overlapping_submissions_share_prompts_in_flight_and_take_the_budget_in_order():
    judge = GatedJudge(lambda key: ['{"criteria_met": true}'])
    calls = JudgeCalls(judge, chunk_size=1)
    first = calls.submit([_prompt("a"), _prompt("b")], parse_rubric_verdict)
    second = calls.submit([_prompt("b"), _prompt("c"), _prompt("d")], parse_rubric_verdict, budget=1)
    # decided at submission: "b" is already on its way (free), "c" takes the budget, "d" is over it
    assert (first.sent, second.sent) == (2, 1) and not first.outcomes.done()
    judge.gate.set()
    b, c, d = second.outcomes.result(timeout=30)
    assert b.verdict.value is True and c.verdict.value is True and d.error == "judge budget spent"
    assert [o.verdict.value for o in first.outcomes.result(timeout=30)] == [True, True]
    assert sorted(judge.sent) == ["a", "b", "c"] and calls.calls == 3


def test_judge_budget_is_per_step_over_all_rounds_not_per_call():
    judge = ScriptedJudge(lambda key: ['{"criteria_met": true}'])
    rubric = [{"criterion": "Is kind", "points": 1}, {"criterion": "Is brief", "points": 1}]
    reward = RubricJudgeReward(judge=judge, max_calls_per_step=3)
    reward.begin_step()
    # round 1 of the step: 2 completions x 2 criteria = 4 judge prompts, 3 allowed: the second completion is skipped
    assert reward(["one", "two"], prompts=[USER] * 2, rubrics=[rubric] * 2) == [1.0, None]
    # round 2 of the same step: the budget is spent (a per-round budget would judge these)
    assert reward(["three"], prompts=[USER], rubrics=[rubric]) == [None] and len(judge.sent) == 3
    reward.begin_step()
    assert reward(["three"], prompts=[USER], rubrics=[rubric]) == [1.0] and len(judge.sent) == 5


def _overlap_run(model_dir, output_dir, overlap, latency=0.4):
    """Two DAPO steps of two or more generation rounds each, judged by a slow loopback judge; events are timestamped."""
    data = [{"prompt": [{"role": "user", "content": f"Case {k}: {r['question']}"}], "rubrics": _a_rubric()}
            for k, r in enumerate(tiny_records(16))]
    answered = []  # (time the judge answered, judge prompt)

    def judge(body, index):
        answered.append((time.monotonic(), prompt_of(body)))
        return keyword_judge()(body, index)

    with FakeLLMServer(judge, latency=latency, max_requests=10**6) as server:
        args = _dapo_args(
            output_dir, max_steps=2, num_generations=4, gen_prompt_batch_size=2, train_prompt_batch_size=4,
            mini_batch_size=2, rewards=["rubric_judge"], overlap_rewards=overlap,
            reward_kwargs={"rubric_judge": {"judge": {"model": "keyword-judge", "base_url": server.base_url}}},
        )
        trainer = DAPOTrainer(model_dir, args, data)
        sampled = []  # (round's step, round index, time its generation started, its records' prompts)
        sample_round = trainer.sample_round

        def timed_sample_round(round_index):
            started = time.monotonic()
            pending = sample_round(round_index)
            sampled.append((trainer.global_step, round_index, started, [r["prompt"][0]["content"] for r in pending.records]))
            return pending

        trainer.sample_round = timed_sample_round
        trainer.train()
    return trainer, sampled, answered


def test_judge_requests_overlap_the_next_rounds_generation_with_the_same_results(tiny_model_dir, tmp_path):
    runs = {overlap: _overlap_run(tiny_model_dir, tmp_path / str(overlap), overlap) for overlap in (True, False)}
    for overlap, (_, sampled, answered) in runs.items():
        for step in (0, 1):
            # 2 prompts a round, 4 groups a step: round 1 is always needed, so with overlap it starts at once
            (_, _, _, first_prompts), (_, _, next_started, _) = [s for s in sampled if s[0] == step][:2]
            first_answers = [t for t, prompt in answered if any(p in prompt for p in first_prompts)]
            assert first_answers
            if overlap:  # the next round was generating before the judge answered any of this round's requests
                assert next_started < min(first_answers), (step, next_started, first_answers)
            else:
                assert next_started > max(first_answers), (step, next_started, first_answers)
    (fast, _, fast_answers), (slow, _, slow_answers) = runs[True], runs[False]
    untimed = [[{k: v for k, v in m.items() if not k.startswith("time/")} for m in t.log_history] for t in (fast, slow)]
    assert untimed[0] == untimed[1]  # same rollouts, rewards, budget use, losses
    assert sorted(p for _, p in fast_answers) == sorted(p for _, p in slow_answers)
    assert [s[:2] for s in runs[True][1]] == [s[:2] for s in runs[False][1]]  # the same rounds, in the same order
    assert all(m["time/reward_wait"] > 0 for m in fast.log_history)  # logged: how long each step waited on the judge
