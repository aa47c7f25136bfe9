"""II-Medical rejection-sampled traces against the loopback server, graded by the shared grader."""

import pytest

from .conftest import SHARED_EVAL, mcq, read_jsonl, run_synth, write_jsonl


def test_traces_keep_only_answers_matching_the_reference(fake_llm, tmp_path):
    server, _ = fake_llm
    source = write_jsonl(
        tmp_path / "q.jsonl",
        [mcq("q1", "", key="B"), mcq("q2", "NEVER", key="A"), mcq("q3", "RATE_LIMIT", key="C")],
    )
    out = tmp_path / "out"
    report = run_synth(
        server, "ii_medical_traces", source, out, "settings.samples=4", "settings.keep=2", "settings.rounds=2"
    )
    records = read_jsonl(out / "traces.jsonl")
    # the fake model answers correctly on odd samples: 2 of 4 per round; q2 is never right
    assert [r["id"] for r in records] == ["q1#0", "q1#1", "q3#0", "q3#1"]
    assert (
        records[0]["cot"] == "Sample 1: thinking about it."
        and records[0]["response"] == "The answer is \\boxed{B}."
    )
    assert {r["answer"] for r in records} == {"B", "C"}
    counts = report["counts"]
    # q1 and q3 are done after round 1; q2 gets a second round (4 + 4 + 8 samples)
    assert counts["traces_sampled"] == 16 and counts["questions_with_trace"] == 2
    bodies = [b for b in server.requests if "NEVER" in b["messages"][0]["content"]]
    assert [b["n"] for b in bodies] == [4, 4] and bodies[0]["seed"] != bodies[1]["seed"]
    assert report["histograms"]["Correct traces per question"] == {0: 1, 2: 2}


def test_traces_on_shared_medqa_records(fake_llm, tmp_path):
    if not (SHARED_EVAL / "medqa.jsonl").is_file():
        pytest.skip(f"shared eval data not found at {SHARED_EVAL}")
    server, _ = fake_llm
    out = tmp_path / "out"
    report = run_synth(
        server, "ii_medical_traces", SHARED_EVAL / "medqa.jsonl", out, "limit=3", "settings.rounds=1"
    )
    # the fake model knows no answers (it says A or B): only traces naming the reference survive
    assert report["counts"]["questions"] == 3
    records = read_jsonl(out / "traces.jsonl")
    assert records and report["counts"]["traces_sampled"] == 12
    for record in records:
        assert f"\\boxed{{{record['answer']}}}" in record["response"]
