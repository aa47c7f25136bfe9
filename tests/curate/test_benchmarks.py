"""Benchmark files for decontamination: every record-file kind loads, nothing in a directory is skipped."""

from __future__ import annotations

import gzip
import json

import pytest

from medreason.curate.benchmarks import load_benchmarks, read_benchmark_file
from medreason.curate.commands import decontaminate_file

NAMES = ("medqa", "medbullets_op4", "mmlu_pro_medical", "pubmedqa")


@pytest.fixture
def compressed_dir(tmp_path, shared_data, record_file_copies):
    """The shared benchmarks, one per compressed or alternative kind of record file."""
    directory = tmp_path / "benchmarks"
    directory.mkdir()
    for name, suffix in zip(NAMES, (".jsonl.gz", ".json.gz", ".parquet", ".json"), strict=True):
        rows = [
            json.loads(line) for line in (shared_data / "eval" / f"{name}.jsonl").read_text().splitlines()
        ]
        for other, path in record_file_copies(tmp_path, name, rows).items():
            if other == suffix:
                path.rename(directory / path.name)
    return directory


def test_a_directory_of_compressed_files_loads_like_the_jsonl_originals(compressed_dir, shared_data):
    originals = [
        item for name in NAMES for item in read_benchmark_file(shared_data / "eval" / f"{name}.jsonl")
    ]
    assert sorted(load_benchmarks(compressed_dir), key=str) == sorted(originals, key=str)
    assert {item.benchmark for item in load_benchmarks(compressed_dir / "medqa.jsonl.gz")} == {"medqa"}


def test_copies_of_a_gzipped_benchmark_are_removed(tmp_path, compressed_dir, shared_data):
    question = read_benchmark_file(shared_data / "eval" / "medqa.jsonl")[7].question
    train = tmp_path / "train.jsonl"
    lines = [
        {"question": question, "cot": "c", "response": "A"},
        {"question": "Unrelated?", "cot": "c", "response": "B"},
    ]
    train.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = decontaminate_file(train, str(compressed_dir), tmp_path / "clean.jsonl", progress=False)
    assert (summary["kept"], summary["removed"]) == (1, 1)
    report = json.loads((tmp_path / "clean.report.json").read_text())
    assert report["removed"][0]["benchmark"] == "medqa"


def test_a_file_that_is_not_a_benchmark_file_is_an_error_naming_it(compressed_dir):
    (compressed_dir / ".DS_Store").write_text("ignored: hidden")
    assert load_benchmarks(compressed_dir)
    (compressed_dir / "nejm.csv").write_text("question\nWhich drug?\n")
    with pytest.raises(ValueError, match=r"holds \['nejm.csv'\], which are not benchmark files"):
        load_benchmarks(compressed_dir)


def test_an_unreadable_file_in_a_directory_is_an_error_naming_it(tmp_path):
    (tmp_path / "good.jsonl").write_text(json.dumps({"question": "Which gland?"}) + "\n")
    (tmp_path / "lancet.jsonl.gz").write_bytes(gzip.compress(b'{"question": "Which drug?"}\n')[:-12])
    with pytest.raises(ValueError, match=r"lancet.jsonl.gz cannot be read as a .jsonl.gz file \(EOFError"):
        load_benchmarks(tmp_path)


def test_an_empty_directory_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="holds no benchmark files"):
        load_benchmarks(tmp_path)
