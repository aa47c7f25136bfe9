"""Rubric evaluation end to end: hand-worked scores, the audit file, resume without repeated judge calls, config checks."""

import json

import pytest

from medreason.engines.base import Completion, GenerationEngine
from medreason.eval.config import EvalConfig
from medreason.eval.rubric_eval import evaluate_rubric
from medreason.tasks.rubric import RubricBenchmark
from medreason.testing.tiny_rubric import keyword_judge, tiny_rubric_records, write_tiny_rubric_benchmark
from medreason.utils.config_errors import FieldError


class Answers(GenerationEngine):
    """The evaluated model: names the diagnosis and the first distractor (rubric: +6 and -4 of 9 positive points)."""

    model_name = "answers"

    def __init__(self):
        self.by_question = {r["prompt"][0]["content"]: r for r in tiny_rubric_records()}
        self.calls = 0

    def generate(self, prompts, sampling):
        self.calls += 1
        out = []
        for prompt in prompts:
            rubric = self.by_question[prompt[-1]["content"]]["rubrics"]
            truth, distractor = rubric[0]["criterion"].split('"')[1], rubric[2]["criterion"].split('"')[1]
            out.append([Completion(f"<think>thinking</think>Either {truth} or {distractor}.")] * sampling.n)
        return out


class KeywordJudge(GenerationEngine):
    """The keyword judge in process; raises KeyboardInterrupt (a kill) on call number ``kill_at``."""

    model_name = "keyword-judge"

    def __init__(self, kill_at=None):
        self.judge, self.kill_at, self.calls, self.sent = keyword_judge(), kill_at, 0, []

    def generate(self, prompts, sampling):
        self.calls += 1
        if self.calls == self.kill_at:
            raise KeyboardInterrupt
        self.sent.extend(prompt[-1]["content"] for prompt in prompts)
        return [[Completion(self.judge({"messages": prompt}, 0))] for prompt in prompts]


def test_scores_match_healthbench_rule_worked_by_hand(tmp_path):
    path = write_tiny_rubric_benchmark(tmp_path, num_records=10)
    results = evaluate_rubric(
        engine=Answers(), suite=RubricBenchmark("tiny_rubric", "Tiny rubric", path=str(path)), judge=KeywordJudge(),
        n=2, output_dir=tmp_path / "out",
    )
    (result,) = results.benchmarks
    # every response meets +6 (diagnosis) and -4 (distractor), not +3 (doctor): (6 - 4) / 9
    assert result.accuracy == pytest.approx(2 / 9) and result.stderr == pytest.approx(0.0, abs=1e-12)
    assert (result.num_items, result.num_samples) == (10, 2)
    details = json.loads((tmp_path / "out" / "answers" / "tiny_rubric.rubric.json").read_text())
    # the two samples of a conversation are the same text here: the judge is asked once per (text, criterion)
    assert details["n"] == 20 and details["judge_failures"] == 0 and details["judge_calls"] == 10 * 3
    # axis:accuracy holds +6 and -4: (6 - 4) / 6; axis:completeness holds only the missed +3
    assert details["breakdown"]["axis:accuracy"]["score"] == pytest.approx(1 / 3)
    assert details["breakdown"]["axis:completeness"]["score"] == 0.0
    # records 0-7 are internal medicine, 8-9 surgery (tiny_data's facts), two samples each
    assert details["breakdown"]["theme:internal_medicine"]["n"] == 16 and details["breakdown"]["theme:surgery"]["n"] == 4
    audit = [json.loads(line) for line in (tmp_path / "out" / "answers" / "tiny_rubric.judged.jsonl").read_text().splitlines()]
    assert len(audit) == 20
    item = audit[0]["rubric_items"][0]
    assert item["criteria_met"] is True and item["judge_raw"] and "mentions" in item["explanation"]


def test_a_killed_judged_evaluation_resumes_without_repeating_a_judge_call(tmp_path):
    path = write_tiny_rubric_benchmark(tmp_path, num_records=8)
    benchmark = RubricBenchmark("tiny_rubric", "Tiny rubric", path=str(path))
    model, first = Answers(), KeywordJudge(kill_at=3)
    evaluate = dict(engine=model, suite=benchmark, output_dir=tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        # 8 responses x 3 criteria = 24 judge prompts in chunks of 5: killed during the third chunk
        evaluate_rubric(judge=first, judge_chunk_size=5, **evaluate)
    assert len(first.sent) == 10
    second = KeywordJudge()
    resumed = evaluate_rubric(judge=second, judge_chunk_size=5, **evaluate)
    assert len(second.sent) == 24 - 10 and not set(first.sent) & set(second.sent)
    assert model.calls == 1  # the generations were cached too
    fresh = evaluate_rubric(judge=KeywordJudge(), output_dir=tmp_path / "fresh", engine=Answers(), suite=benchmark)
    assert resumed.benchmarks[0].accuracy == fresh.benchmarks[0].accuracy


def test_rubric_suite_config_is_checked_before_anything_runs():
    with pytest.raises(FieldError, match="judge.model"):
        EvalConfig(suite="healthbench", judge={"backend": "openai", "model": None})
    with pytest.raises(FieldError, match="judge.modle"):
        EvalConfig(suite="healthbench", judge={"modle": "gpt-4.1"})
    with pytest.raises(FieldError, match="judge.builtin"):
        EvalConfig(suite="tiny_rubric", judge={"builtin": "oracle"})
    with pytest.raises(FieldError, match="benchmarks"):
        EvalConfig(suite="healthbench", judge={"model": "gpt-4.1"}, benchmarks=["medqa"])
    kwargs = EvalConfig(suite="healthbench_hard", judge={"model": "gpt-4.1", "base_url": "http://x/v1"}).evaluate_kwargs("out")
    assert kwargs["judge"]["model"] == "gpt-4.1" and kwargs["path"] is None


def test_missing_healthbench_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="simple-evals"):
        evaluate_rubric(engine=Answers(), suite="healthbench", judge=KeywordJudge(), data_dir=tmp_path, output_dir=tmp_path)
