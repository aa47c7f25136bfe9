import json
from dataclasses import replace

import pytest

from medreason.eval import (
    BENCHMARKS,
    SUITES,
    Benchmark,
    get_benchmark,
    load_records,
    register_benchmark,
    resolve_benchmarks,
)
from medreason.utils.jsonl import RecordError

GOOD = {
    "id": "q1",
    "question": "Which gland?",
    "options": {"A": "Thyroid", "B": "Adrenal"},
    "answer": "A",
    "source": "t",
}


def write(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("name", ["medqa", "medmcqa", "pubmedqa", "mmlu_pro_medical", "medbullets_op4"])
def test_shared_benchmarks_load_and_validate(data_dir, name):
    records = load_records(get_benchmark(name), data_dir, limit=5)
    assert len(records) == 5
    for record in records:
        assert record.question and record.answer in record.options and len(record.options) >= 3


def test_pubmedqa_keeps_meta_and_full_files_validate(data_dir):
    records = load_records(get_benchmark("pubmedqa"), data_dir)
    assert len(records) == 1000
    assert records[0].options == {"A": "yes", "B": "no", "C": "maybe"}
    assert sum(r.meta["official_test"] for r in records) == 500


def test_suites_have_the_model_cards_benchmarks():
    assert len(SUITES["ii_medical"]) == 10 and len(SUITES["reasonmed"]) == 9 and len(SUITES["finemedlm"]) == 2
    assert all(name in BENCHMARKS for suite in SUITES.values() for name in suite)


@pytest.mark.parametrize("name", ["lancet", "nejm", "gpqa_medical", "medxpertqa", "medbullets_op5"])
def test_missing_private_benchmark_names_the_expected_path_and_option(tmp_path, name):
    with pytest.raises(FileNotFoundError) as error:
        load_records(get_benchmark(name), tmp_path)
    message = str(error.value)
    assert str(tmp_path / f"{name}.jsonl") in message
    assert f"benchmark_paths.{name}=FILE" in message and "data_dir" in message


def test_benchmark_paths_replace_a_source(data_dir):
    (lancet,) = resolve_benchmarks(benchmarks=["lancet"], paths={"lancet": str(data_dir / "medqa.jsonl")})
    assert load_records(lancet, limit=2)[0].id == "medqa-test-00000"
    with pytest.raises(ValueError, match="not being evaluated"):
        resolve_benchmarks("finemedlm", paths={"lancet": "x.jsonl"})


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="registered benchmarks: .*medqa"):
        get_benchmark("medqaa")
    with pytest.raises(ValueError, match="choose one of ii_medical, reasonmed, finemedlm"):
        resolve_benchmarks("ii-medical")
    with pytest.raises(ValueError, match="Nothing to evaluate"):
        resolve_benchmarks()


def test_register_rejects_duplicates_unless_overwrite():
    custom = Benchmark("test_custom", "Custom", path="custom.jsonl")
    register_benchmark(custom)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_benchmark(custom)
        register_benchmark(replace(custom, title="Custom 2"), overwrite=True)
        assert get_benchmark("test_custom").title == "Custom 2"
    finally:
        BENCHMARKS.pop("test_custom")
    with pytest.raises(ValueError, match="exactly one of path"):
        Benchmark("x", "X")


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({**GOOD, "options": None}, "options", "at least two options"),
        ({k: v for k, v in GOOD.items() if k != "options"}, "options", "at least two options"),
        ({**GOOD, "options": {"A": "Thyroid"}}, "options", "at least two options"),
        ({**GOOD, "options": {"A": "Thyroid", "B": ""}}, "options", "option 'B' has no text"),
        ({**GOOD, "answer": "E"}, "answer", "'E' is not one of the options ['A', 'B']"),
        ({**GOOD, "answer": None}, "answer", "is not one of the options"),
        ({**GOOD, "question": "  "}, "question", "must be a non-empty string"),
        ({k: v for k, v in GOOD.items() if k != "question"}, "question", "must be a non-empty string"),
        ({**GOOD, "id": ["x"]}, "id", "string or integer id"),
        ({**GOOD, "id": "q0"}, "id", "duplicate id 'q0'"),
    ],
)
def test_malformed_records_name_file_line_and_field(tmp_path, row, field, problem):
    path = write(tmp_path / "bad.jsonl", [{**GOOD, "id": "q0"}, "", row])
    with pytest.raises(RecordError) as error:
        load_records(Benchmark("bad", "Bad", path=str(path)))
    assert (error.value.source, error.value.position, error.value.field) == (str(path), "line 3", field)
    assert problem in str(error.value) and f"{path}, line 3, field {field!r}" in str(error.value)


def test_invalid_json_and_empty_files(tmp_path):
    with pytest.raises(RecordError, match="line 2: invalid JSON"):
        load_records(Benchmark("bad", "Bad", path=str(write(tmp_path / "bad.jsonl", [GOOD, "{oops"]))))
    with pytest.raises(ValueError, match="holds no records"):
        load_records(Benchmark("empty", "Empty", path=str(write(tmp_path / "empty.jsonl", []))))
    with pytest.raises(
        ValueError, match=r"x.csv is not a record file: its name must end in .jsonl, .jsonl.gz"
    ):
        load_records(Benchmark("csv", "Csv", path=str(write(tmp_path / "x.csv", [GOOD]))))


def test_compressed_and_other_record_files_load_like_jsonl(tmp_path, data_dir, record_file_copies):
    rows = [json.loads(line) for line in (data_dir / "medbullets_op4.jsonl").read_text().splitlines()]
    reference = load_records(get_benchmark("medbullets_op4"), data_dir)
    for suffix, path in record_file_copies(tmp_path, "medbullets_op4", rows).items():
        assert load_records(Benchmark("copy", "Copy", path=path.name), tmp_path) == reference, suffix
    # a registered benchmark's medbullets_op4.jsonl is found gzipped, as medbullets_op4.jsonl.gz
    assert load_records(get_benchmark("medbullets_op4"), tmp_path) == reference
    assert get_benchmark("medbullets_op4").source(tmp_path) == str(tmp_path / "medbullets_op4.jsonl.gz")


def test_unreadable_record_files_are_errors_naming_the_file(tmp_path):
    not_gzip = tmp_path / "set.jsonl.gz"
    not_gzip.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(ValueError, match=f"{not_gzip} cannot be read as a .jsonl.gz file \\(BadGzipFile"):
        load_records(Benchmark("bad", "Bad", path=str(not_gzip)))
    latin1 = tmp_path / "set.jsonl"
    latin1.write_bytes(json.dumps({**GOOD, "question": "Ménière?"}, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(ValueError, match=f"{latin1}, line 1: byte 0xe9 at column 28 is not UTF-8"):
        load_records(Benchmark("bad", "Bad", path=str(latin1)))
    not_parquet = tmp_path / "set.parquet"
    not_parquet.write_text("nope")
    with pytest.raises(ValueError, match=f"{not_parquet} cannot be read as a Parquet file"):
        load_records(Benchmark("bad", "Bad", path=str(not_parquet)))


def test_validation_covers_records_beyond_the_limit(tmp_path):
    path = write(tmp_path / "bad.jsonl", [GOOD, {**GOOD, "id": "q2", "answer": "Z"}])
    with pytest.raises(RecordError, match="line 2"):
        load_records(Benchmark("bad", "Bad", path=str(path)), limit=1)


def test_parquet_with_column_mapping(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"qid": 7, "stem": "Which gland?", "choices": ["Thyroid", "Adrenal", "Pituitary"], "label": 2}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "set.parquet")
    benchmark = Benchmark(
        "pq",
        "PQ",
        path="set.parquet",
        columns={"id": "qid", "question": "stem", "options": "choices", "answer": "label"},
    )
    (record,) = load_records(benchmark, tmp_path)
    assert (record.id, record.answer, record.options["C"]) == ("7", "C", "Pituitary")
    bad = pa.Table.from_pylist([{**rows[0], "label": 5}])
    pq.write_table(bad, tmp_path / "set.parquet")
    with pytest.raises(RecordError, match=r"index 0, field 'label'"):
        load_records(benchmark, tmp_path)


def test_registered_hub_benchmarks_map_their_columns(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    # Local stand-ins with the hub datasets' columns: TIGER-Lab/MMLU-Pro and cais/mmlu.
    pro = tmp_path / "mmlu_pro"
    pro.mkdir()
    write(
        pro / "test.jsonl",
        [
            {
                "question_id": 70,
                "question": "Q bio",
                "options": ["a", "b", "c"],
                "answer": "B",
                "answer_index": 1,
                "category": "biology",
            },
            {
                "question_id": 71,
                "question": "Q health",
                "options": ["a", "b", "c", "d"],
                "answer": "D",
                "answer_index": 3,
                "category": "health",
            },
        ],
    )
    health = replace(get_benchmark("mmlu_pro_health"), dataset=str(pro))
    (record,) = load_records(health)
    assert (record.id, record.question, record.answer, len(record.options)) == ("71", "Q health", "D", 4)
    assert record.meta == {"answer_index": 3, "category": "health"}

    mmlu = tmp_path / "mmlu"
    mmlu.mkdir()
    write(
        mmlu / "test.jsonl",
        [{"question": "Q anatomy", "subject": "anatomy", "choices": ["w", "x", "y", "z"], "answer": 2}],
    )
    anatomy = replace(get_benchmark("mmlu_anatomy"), dataset=str(mmlu), subset=None)
    (record,) = load_records(anatomy)
    assert (record.id, record.answer, record.options["C"]) == ("mmlu_anatomy-00000", "C", "y")


def test_unreachable_dataset_says_what_to_set(tmp_path):
    missing = replace(get_benchmark("mmlu_anatomy"), dataset=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="benchmark_paths.mmlu_anatomy=FILE"):
        load_records(missing)
