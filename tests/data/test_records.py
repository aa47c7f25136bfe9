import json

import pytest

from medreason.data.loading import from_memory, load_records, select_records
from medreason.data.records import RecordConverter, detect_format
from medreason.utils.jsonl import RecordError


def convert(record, **kwargs):
    return RecordConverter(**kwargs)(record, source="train.jsonl", position="line 7")


def test_question_cot_response_renders_the_three_reasonmed_variants():
    record = {"question": "Q?", "cot": "step 1", "response": "Answer B"}
    assert convert(record)["completion"][0]["content"] == "<think>\nstep 1\n</think>\n\nAnswer B"
    assert convert(record, target="cot")["completion"][0]["content"] == "step 1"
    assert convert(record, target="response")["completion"][0]["content"] == "Answer B"
    assert convert(record)["prompt"] == [{"role": "user", "content": "Q?"}]


def test_messages_use_the_last_assistant_turn_as_completion_with_its_reasoning():
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2", "reasoning_content": "think"},
        ]
    }
    pair = convert(record)
    assert [m["content"] for m in pair["prompt"]] == ["Be brief.", "Q1", "A1", "Q2"]
    assert pair["completion"] == [{"role": "assistant", "content": "<think>\nthink\n</think>\n\nA2"}]


def test_instruction_response_appends_input_and_system_prompt_is_prepended():
    pair = convert({"instruction": "Explain.", "input": "TSH 0.1", "response": "Low."}, system_prompt="You are a doctor.")
    assert pair["prompt"] == [
        {"role": "system", "content": "You are a doctor."},
        {"role": "user", "content": "Explain.\n\nTSH 0.1"},
    ]


def test_prompt_completion_strings_become_messages():
    pair = convert({"prompt": "Q", "completion": "A"})
    assert pair == {"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}]}


@pytest.mark.parametrize(
    ("record", "field", "fragment"),
    [
        ({"question": "Q", "cot": "", "response": "A"}, "cot", "non-empty string"),
        ({"question": 3, "cot": "c", "response": "A"}, "question", "int"),
        ({"messages": []}, "messages", "non-empty list"),
        ({"messages": [{"role": "user", "content": "Q"}]}, "messages[0].role", "last message"),
        ({"messages": [{"role": "doctor", "content": "Q"}]}, "messages[0].role", "must be one of"),
        ({"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "A"}]}, "messages[0].content", "string"),
        ({"messages": [{"role": "assistant", "content": "A"}]}, "messages", "before the assistant"),
        ({"instruction": "I", "response": "  "}, "response", "non-empty"),
        ({"prompt": "Q", "completion": [{"role": "x"}]}, "completion", "list of"),
    ],
)
def test_bad_records_name_source_position_and_field(record, field, fragment):
    with pytest.raises(RecordError) as error:
        convert(record)
    assert error.value.field == field
    message = str(error.value)
    assert message.startswith(f"train.jsonl, line 7, field {field!r}: ")
    assert fragment in message


def test_unrecognised_record_lists_the_accepted_shapes():
    with pytest.raises(RecordError, match="unrecognised record with keys \\['text'\\]"):
        convert({"text": "hello"})
    assert detect_format({"text": "hello"}) is None


def test_unknown_format_or_target_is_rejected():
    with pytest.raises(ValueError, match="data.format='csv'"):
        RecordConverter(fmt="csv")
    with pytest.raises(ValueError, match="data.target='answer'"):
        RecordConverter(target="answer")


def test_jsonl_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    good = json.dumps({"question": "Q", "cot": "c", "response": "A"})
    path.write_text(f"{good}\n\n{json.dumps({'question': 'Q', 'cot': 'c', 'response': ''})}\n")
    record_set = load_records(str(path))
    assert record_set.positions == ["line 1", "line 3"]
    with pytest.raises(RecordError, match=f"{path}, line 3, field 'response'"):
        record_set.convert(RecordConverter())
    path.write_text(f"{good}\n{{not json\n")
    with pytest.raises(RecordError, match="line 2: invalid JSON"):
        load_records(str(path))
    path.write_text("[1, 2]\n")
    with pytest.raises(RecordError, match="line 1: expected a JSON object, got list"):
        load_records(str(path))


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such JSONL file"):
        load_records(str(tmp_path / "absent.jsonl"))
    with pytest.raises(FileNotFoundError, match="No such Parquet file"):
        load_records(str(tmp_path / "absent.parquet"))
    with pytest.raises(FileNotFoundError, match="No such dataset directory"):
        load_records(str(tmp_path / "absent_dir"))


def test_parquet_and_datasets_directories_load_with_index_positions(tmp_path):
    import datasets

    rows = [{"instruction": f"I{i}", "output": f"O{i}"} for i in range(3)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "data.parquet"))
    record_set = load_records(str(tmp_path / "data.parquet"), column_map={"output": "response"})
    assert record_set.positions == ["index 0", "index 1", "index 2"]
    assert record_set.records[2] == {"instruction": "I2", "response": "O2"}
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    assert len(load_records(str(tmp_path / "saved"))) == 3


def test_select_filters_then_samples_and_logs_what_it_dropped(caplog):
    records = from_memory([{"department": d, "question": "q", "response": "r"} for d in ["A", "B", "A", "C"] * 5])
    with caplog.at_level("INFO", logger="medreason"):
        kept = select_records(records, {"department": ["A", "C"]}, max_samples=7, seed=1, stage="s1")
    assert len(kept) == 7 and {r["department"] for r in kept.records} <= {"A", "C"}
    assert "kept 15 of 20 records (dropped 5, 0 of them without the field)" in caplog.text
    assert "random subset of 7 records (dropped 8, seed 1)" in caplog.text
    assert select_records(records, {"department": "A"}, 3, seed=1).positions == select_records(
        records, {"department": "A"}, 3, seed=1
    ).positions


def test_select_skips_unlabelled_records_and_names_a_field_no_record_has(caplog):
    records = from_memory([{"department": "A"}, {"question": "q"}, {"department": "B"}])
    with caplog.at_level("INFO", logger="medreason"):
        assert select_records(records, {"department": "A"}).records == [{"department": "A"}]
    assert "kept 1 of 3 records (dropped 2, 1 of them without the field)" in caplog.text
    with pytest.raises(RecordError, match="train_dataset, index 0, field 'departmnet': no record has this field"):
        select_records(records, {"departmnet": "A"})
    with pytest.raises(ValueError, match="no records left"):
        select_records(from_memory([{"department": "A"}]), {"department": "Z"})


def test_real_huatuo_sft_records_convert(shared_data):
    record_set = load_records(str(shared_data / "train" / "huatuo_o1_demo_sft.jsonl"))
    pairs = record_set.convert(RecordConverter())
    assert len(pairs) == 198
    assert all(p["completion"][0]["content"].startswith("<think>\n") for p in pairs)


def test_json_array_files_load_with_index_positions(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"question": "Q", "cot": "c", "response": "A"}, {"instruction": "I", "response": "R"}]))
    record_set = load_records(str(path))
    assert record_set.positions == ["index 0", "index 1"] and len(record_set.convert(RecordConverter())) == 2
    path.write_text("[1]")
    with pytest.raises(RecordError, match="index 0: expected a JSON object, got int"):
        load_records(str(path))
