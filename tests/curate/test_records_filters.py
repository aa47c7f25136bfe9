"""Trace-record shapes and the card's filters at their exact boundaries."""

from __future__ import annotations

import json

import pytest

from medreason.curate.filters import FILTERS, build_filters, first_failure, register_filter
from medreason.curate.records import Rejects, TraceRecord, parse_trace, read_traces
from medreason.utils.jsonl import RecordError

from .helpers import trace, write_lines


def parse(record: dict) -> TraceRecord:
    return parse_trace(record, uid=0, source="data/raw.jsonl", position="line 7")


def make(
    prompt: str = "What causes scurvy in adults?",
    reasoning: str | None = "Vitamin C.",
    answer: str = "Vitamin C deficiency.",
    complete: bool = True,
) -> TraceRecord:
    return TraceRecord(0, "r", "test", prompt, reasoning, answer, complete)


def test_fields_shape() -> None:
    record = parse(trace("Q?", cot="think", response="B", id="x1", source="huatuo", answer="B"))
    assert (record.prompt, record.reasoning, record.answer, record.complete) == ("Q?", "think", "B", True)
    assert (record.id, record.source, record.extra) == ("x1", "huatuo", {"answer": "B"})


def test_think_shape_and_missing_open_tag() -> None:
    record = parse({"prompt": "Q?", "response": "<think>\nstep\n</think>\n\nFinal: B"})
    assert (record.reasoning, record.answer, record.complete) == ("step", "Final: B", True)
    record = parse({"prompt": "Q?", "response": "step one</think>B"})
    assert (record.reasoning, record.answer, record.complete) == ("step one", "B", True)
    record = parse({"prompt": "Q?", "response": "<think>step one, then"})
    assert record.complete is False and record.reasoning == "step one, then"


def test_messages_shape() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "B", "reasoning_content": "why"},
    ]
    record = parse({"messages": messages})
    assert (record.prompt, record.reasoning, record.answer, record.complete) == ("Q?", "why", "B", True)
    messages[-1] = {"role": "assistant", "content": "<think>why</think>"}
    assert parse({"messages": messages}).complete is False  # no answer after the reasoning


def test_finish_reason_length_is_incomplete() -> None:
    assert parse(trace("Q?", finish_reason="length")).complete is False


def test_output_formats_round_trip() -> None:
    record = parse(trace("Q?", cot="why", response="B", id="x"))
    assert record.to_output("fields")["cot"] == "why"
    assistant = record.to_output("messages")["messages"][1]
    assert assistant == {"role": "assistant", "content": "B", "reasoning_content": "why"}
    assert TraceRecord.from_json(record.to_json()) == record
    with pytest.raises(ValueError, match="output_format"):
        record.to_output("parquet")


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"cot": "x"}, "question"),
        ({"question": 3}, "question"),
        ({"messages": [{"role": "user", "content": "Q"}]}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages[0]"),
        ({"messages": [{"role": "doctor", "content": "Q"}, {"role": "assistant", "content": "B"}]}, "messages[0].role"),
    ],
)
def test_errors_name_file_line_field(record: dict, field: str | None) -> None:
    with pytest.raises(RecordError) as caught:
        parse(record)
    assert caught.value.field == field
    assert "data/raw.jsonl, line 7" in str(caught.value)


def test_read_traces_skip_writes_rejects(tmp_path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [trace("Good question here?"), "{not json", trace(""), trace("Last one?")])
    with path.open("ab") as handle:  # saved as Latin-1: 0xe9 is not UTF-8
        handle.write('{"question": "Café?", "cot": "Why.", "response": "B"}\n'.encode("latin-1"))
    rejects = Rejects("skip", tmp_path / "rejects.jsonl")
    records = [record for _, record in read_traces(path, rejects)]
    assert [r.prompt for r in records] == ["Good question here?", "Last one?"]  # the run goes on past bad lines
    rows = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert rejects.count == 3 and [(r["position"], r["field"]) for r in rows] == [
        ("line 2", None), ("line 3", "question"), ("line 5", None)
    ]
    assert "is not UTF-8" in rows[2]["problem"] and "Caf\ufffd?" in rows[2]["raw"]
    with pytest.raises(RecordError, match="line 2"):
        list(read_traces(path, Rejects("raise")))


def test_read_traces_refuses_an_empty_file_even_when_skipping(tmp_path) -> None:
    path = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(RecordError, match="empty.jsonl: the file holds no records"):
        list(read_traces(path, Rejects("skip", tmp_path / "rejects.jsonl")))


@pytest.mark.parametrize(("waits", "kept"), [(47, True), (48, False)])
def test_max_wait_boundary(waits: int, kept: bool) -> None:
    # "Waiting" does not count; "Wait-listed" does (a hyphen ends a word): ``waits`` in all.
    record = make(reasoning=" ".join(["Wait, check again."] * (waits - 1) + ["Waiting on Wait-listed data."]))
    assert (FILTERS["max_wait"](record) is None) is kept


@pytest.mark.parametrize(("words", "kept"), [(3, False), (4, True)])
def test_min_prompt_words_boundary(words: int, kept: bool) -> None:
    assert (FILTERS["min_prompt_words"](make(prompt=" ".join(["word"] * words))) is None) is kept


@pytest.mark.parametrize(("words", "kept"), [(7142, True), (7143, False)])
def test_max_trace_words_boundary(words: int, kept: bool) -> None:
    assert (FILTERS["max_trace_words"](make(reasoning=" ".join(["w"] * words))) is None) is kept


def test_complete_generation() -> None:
    assert FILTERS["complete_generation"](make()) is None
    assert "never closes" in FILTERS["complete_generation"](make(complete=False))
    assert FILTERS["complete_generation"](make(reasoning=None)) == "no reasoning trace"


def test_build_filters_and_registry_errors() -> None:
    filters = build_filters([{"name": "max_wait", "max_count": 0}, {"name": "min_prompt_words"}])
    assert first_failure(make(reasoning="Wait."), filters)[0] == "max_wait"
    with pytest.raises(ValueError, match="Registered filters: .*max_wait"):
        build_filters([{"name": "max_waits"}])
    with pytest.raises(ValueError, match="max_counts"):
        build_filters([{"name": "max_wait", "max_counts": 3}])
    with pytest.raises(ValueError, match="already registered"):
        register_filter("max_wait")(lambda record: None)


def test_custom_filter_by_dotted_path(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_filters.py").write_text(
        "def no_vitamins(record):\n    return 'mentions vitamins' if 'Vitamin' in (record.reasoning or '') else None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (bound,) = build_filters([{"name": "my_filters.no_vitamins"}])
    assert bound(make()) == "mentions vitamins"
