"""HealthBench's scoring rule on hand-made rubrics, against values worked out by hand."""

import gzip
import json

import numpy as np
import pytest

from medreason.tasks.rubric import RubricBenchmark, RubricItem, RubricRecord, load_rubric_records
from medreason.tasks.rubric_scoring import example_metrics, rubric_score, summarize
from medreason.utils.jsonl import RecordError

USER = [{"role": "user", "content": "My child has a barking cough."}]


def record(items, example_tags=(), id="r"):
    return RubricRecord(id, USER, tuple(items), tuple(example_tags))


def test_score_is_met_points_over_positive_points_with_negative_points_subtracted():
    items = [RubricItem("a", 10), RubricItem("b", 5), RubricItem("c", -3), RubricItem("d", -8)]
    # positive total 15; met a (10) and c (-3): 7 / 15
    assert rubric_score(items, [True, False, True, False]) == pytest.approx(7 / 15)
    # everything met: (10 + 5 - 3 - 8) / 15 = 4 / 15
    assert rubric_score(items, [True] * 4) == pytest.approx(4 / 15)
    # only the penalties met: -11 / 15, not clipped per example
    assert rubric_score(items, [False, False, True, True]) == pytest.approx(-11 / 15)
    assert rubric_score(items, [False] * 4) == 0.0


def test_all_negative_rubric_has_no_score():
    assert rubric_score([RubricItem("rude", -5), RubricItem("wrong", -2)], [True, False]) is None


def test_overall_mean_is_clipped_to_zero_and_one():
    # examples -11/15 and 4/15: mean -7/30 clips to 0
    assert summarize([{"overall_score": -11 / 15}, {"overall_score": 4 / 15}]).score == 0.0
    # 1.5 and 0.9 (a rubric whose met points exceed its positive total cannot happen, but the clip is the rule)
    assert summarize([{"overall_score": 1.5}, {"overall_score": 0.9}]).score == 1.0
    # inside [0, 1] the mean is untouched: (0.2 + 0.5 + 0.8) / 3
    assert summarize([{"overall_score": v} for v in (0.2, 0.5, 0.8)]).score == pytest.approx(0.5)


def test_axis_and_theme_breakdowns():
    first = record(
        [
            RubricItem("advises ER", 8, ("axis:completeness", "level:cluster")),
            RubricItem("accurate dose", 4, ("axis:accuracy",)),
            RubricItem("alarmist", -4, ("axis:communication",)),  # a tag with only negative points: no score
        ],
        ["theme:emergency_referrals"],
    )
    metrics = example_metrics(first, [True, False, True])
    # overall (8 - 4) / 12 = 1/3; completeness 8/8; accuracy 0/4; communication has no positive points
    assert metrics == pytest.approx(
        {"overall_score": 1 / 3, "theme:emergency_referrals": 1 / 3, "axis:completeness": 1.0,
         "level:cluster": 1.0, "axis:accuracy": 0.0}
    )
    second = record([RubricItem("accurate dose", 6, ("axis:accuracy",)), RubricItem("hedges", 2, ())], ["theme:hedging"])
    metrics2 = example_metrics(second, [True, False])  # 6 / 8
    summary = summarize([metrics, metrics2])
    assert summary.score == pytest.approx((1 / 3 + 0.75) / 2)
    assert summary.n == 2 and summary.failed == 0
    # axis:accuracy: examples 0.0 and 1.0 -> 0.5 over 2; completeness only in the first example
    assert summary.axes()["axis:accuracy"]["score"] == pytest.approx(0.5)
    assert summary.axes()["axis:accuracy"]["n"] == 2
    assert summary.axes()["axis:completeness"] == pytest.approx({"score": 1.0, "stderr": 0.0, "n": 1}, abs=1e-12)
    assert "axis:communication" not in summary.breakdown
    assert set(summary.themes()) == {"theme:emergency_referrals", "theme:hedging"}
    assert summary.themes()["theme:hedging"]["score"] == pytest.approx(0.75)


def test_bootstrap_stderr_matches_the_clipped_mean_spread_and_is_reproducible():
    values = [0.0, 0.25, 0.5, 1.0, -0.5, 0.75]
    one, two = summarize([{"overall_score": v} for v in values]), summarize([{"overall_score": v} for v in values])
    assert one.stderr == two.stderr
    rng = np.random.default_rng(1)
    means = np.clip(rng.choice(values, size=(4000, len(values))).mean(axis=1), 0, 1)
    assert one.stderr == pytest.approx(means.std(), rel=0.1)
    assert summarize([{"overall_score": 0.4}] * 5).stderr == pytest.approx(0.0, abs=1e-12)


def test_judge_failures_are_counted_not_scored_zero():
    summary = summarize([{"overall_score": 0.8}, None, None])
    assert (summary.score, summary.n, summary.failed) == (0.8, 1, 2)
    assert summarize([None]).score is None


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


GOOD = {"prompt_id": "p1", "prompt": USER, "rubrics": [{"criterion": "Advises ER", "points": 5, "tags": ["axis:accuracy"]}],
        "example_tags": ["theme:emergency_referrals"], "ideal_completions_data": None}


def test_loads_healthbench_fields_from_jsonl_gz_and_parquet(tmp_path):
    gz = tmp_path / "hb.jsonl.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(json.dumps(GOOD) + "\n")
    (loaded,) = load_rubric_records(RubricBenchmark("hb", "HB", path=str(gz)))
    assert loaded.id == "p1" and loaded.rubrics == (RubricItem("Advises ER", 5.0, ("axis:accuracy",)),)
    assert loaded.example_tags == ("theme:emergency_referrals",)
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "hb.parquet"
    pq.write_table(pa.Table.from_pylist([{**GOOD, "ideal_completions_data": {"ideal_completion": "Go to the ER."}}]), parquet)
    (from_parquet,) = load_rubric_records(RubricBenchmark("hb", "HB", path=str(parquet)))
    assert from_parquet.rubrics == loaded.rubrics and from_parquet.ideal_completion == "Go to the ER."


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"rubrics": []}, "rubrics", "non-empty list"),
        ({"rubrics": [{"criterion": "Is rude", "points": -3}]}, "rubrics", "no criterion has positive points"),
        ({"rubrics": [{"criterion": "Advises ER", "points": "five"}]}, "rubrics[0].points", "finite number"),
        ({"rubrics": [{"criterion": "Advises ER", "points": True}]}, "rubrics[0].points", "finite number"),
        ({"rubrics": [{"criterion": "", "points": 1}]}, "rubrics[0].criterion", "non-empty string"),
        ({"prompt": []}, "prompt", "chat messages"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path, change, field, problem):
    path = _write(tmp_path / "bad.jsonl", [GOOD | {"prompt_id": "ok"}, GOOD | change])
    with pytest.raises(RecordError) as error:
        load_rubric_records(RubricBenchmark("bad", "Bad", path=str(path)))
    assert (error.value.source, error.value.position, error.value.field) == (str(path), "line 2", field)
    assert problem in str(error.value)


def test_duplicate_ids_and_missing_file(tmp_path):
    path = _write(tmp_path / "dup.jsonl", [GOOD, GOOD])
    with pytest.raises(RecordError, match="line 2, field 'prompt_id': duplicate id 'p1'"):
        load_rubric_records(RubricBenchmark("dup", "Dup", path=str(path)))
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_rubric_records(RubricBenchmark("missing", "M", path=str(tmp_path / "missing.jsonl")))
