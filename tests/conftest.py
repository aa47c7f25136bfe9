"""Shared fixtures: the tiny random model (built once per session) and the real data in shared/."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDREASON_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for a module: the tiny model is ~10x faster on one thread than on two contended ones
    (shared CI machines). Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen3 and its locally trained tokenizer, saved with ``save_pretrained``."""
    from medreason.testing import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny_qwen3"), "qwen3")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (real medical samples); tests skip without it."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MEDREASON_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def record_file_copies() -> Callable[[Path, str, list[dict]], dict[str, Path]]:
    """Write records as every compressed or alternative kind of record file medreason reads.

    ``write(directory, stem, records)`` returns ``{suffix: path}`` for ``.jsonl.gz`` (JSON Lines),
    ``.json.gz`` (one JSON array), ``.json`` (JSON Lines) and ``.parquet``.
    """

    def write(directory: Path, stem: str, records: list[dict]) -> dict[str, Path]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        lines = "".join(json.dumps(record) + "\n" for record in records)
        paths = {
            suffix: directory / f"{stem}{suffix}" for suffix in (".jsonl.gz", ".json.gz", ".json", ".parquet")
        }
        paths[".jsonl.gz"].write_bytes(gzip.compress(lines.encode()))
        paths[".json.gz"].write_bytes(gzip.compress(json.dumps(records, indent=1).encode()))
        paths[".json"].write_text(lines)
        pq.write_table(pa.Table.from_pylist(records), paths[".parquet"])
        return paths

    return write
