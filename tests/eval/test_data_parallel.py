"""Data-parallel evaluation on two CPU ranks (gloo) gives one process's table, sampled completions included.

The test runs this file under ``torchrun --nproc_per_node 2`` (:func:`medreason.testing.distributed.torchrun`);
each rank evaluates with ``data_parallel=True`` and writes the table it returns. The test then evaluates in
one process and compares, reads which items each rank's cache file holds, and resumes a run whose last
generation was lost in one process.
"""

import json
import sys
from pathlib import Path

import pytest

from medreason.engines import SamplingParams
from medreason.eval import Benchmark, evaluate
from medreason.eval.data_parallel import Shard, shard_chunks
from medreason.testing.distributed import torchrun
from medreason.testing.tiny_data import write_tiny_benchmark

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SAMPLING = SamplingParams(temperature=0.6, top_p=0.9, max_tokens=6, seed=0)
ITEMS, CHUNK = 7, 2  # chunks [0 1] [2 3] [4 5] [6]: rank 0 owns the first and third, rank 1 the others


def _evaluate(model_dir: Path, output_dir: Path, data_parallel: bool):
    benchmark = Benchmark(name="tiny_mcq", title="Tiny MCQ", path=str(write_tiny_benchmark(output_dir)))
    return evaluate(
        str(model_dir), benchmarks=[benchmark], limit=ITEMS, sampling=SAMPLING, chunk_size=CHUNK,
        engine_kwargs={"batch_size": CHUNK}, output_dir=output_dir, progress=False, data_parallel=data_parallel,
    )


def _cached_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def _predictions(results) -> str:
    return Path(results.benchmarks[0].predictions_path).read_text()


def test_two_ranks_give_the_one_process_table_and_each_generates_its_shard(tiny_model_dir, tmp_path):
    two = tmp_path / "two"
    torchrun(__file__, str(tiny_model_dir), str(two), timeout=240)
    single = _evaluate(tiny_model_dir, tmp_path / "one", data_parallel=False)

    tables = [(two / f"table.rank{rank}.md").read_text() for rank in (0, 1)]
    assert tables == [single.table(), single.table()]
    predictions = (two / Path(single.output_dir).name / "tiny_mcq.predictions.jsonl").read_text()
    assert predictions == _predictions(single)  # the sampled responses themselves, not only the accuracy
    ids = [row["id"] for row in map(json.loads, predictions.splitlines())]
    cache_dir = two / "generations" / Path(single.output_dir).name
    assert sorted(p.name for p in cache_dir.iterdir()) == ["tiny_mcq.rank0.jsonl", "tiny_mcq.rank1.jsonl"]
    for rank in (0, 1):
        mine = [i for chunk in shard_chunks(ITEMS, set(range(ITEMS)), CHUNK, Shard(rank, 2)) for i in chunk]
        assert _cached_ids(cache_dir / f"tiny_mcq.rank{rank}.jsonl") == [ids[i] for i in mine]

    # A run killed before rank 1 wrote its last chunk resumes (here in one process) generating only that item.
    rank1 = cache_dir / "tiny_mcq.rank1.jsonl"
    rank1.write_text("".join(rank1.read_text().splitlines(keepends=True)[:-1]))
    resumed = _evaluate(tiny_model_dir, two, data_parallel=False)
    assert _cached_ids(cache_dir / "tiny_mcq.jsonl") == [ids[6]]
    assert resumed.table() == single.table() and _predictions(resumed) == _predictions(single)


def test_data_parallel_is_a_no_op_in_one_process(tiny_model_dir, tmp_path):
    results = _evaluate(tiny_model_dir, tmp_path, data_parallel=True)
    cache_dir = tmp_path / "generations" / Path(results.output_dir).name
    assert [p.name for p in cache_dir.iterdir()] == ["tiny_mcq.jsonl"]


def test_data_parallel_refuses_engines_that_parallelise_themselves(tmp_path):
    with pytest.raises(ValueError, match="data_parallel=True needs backend='transformers'"):
        evaluate("any-model", benchmarks=[Benchmark(name="tiny_mcq", title="Tiny MCQ", path=str(write_tiny_benchmark(tmp_path)))],
                 backend="openai", output_dir=tmp_path, data_parallel=True)


if __name__ == "__main__":  # one rank of the two-rank run
    import torch
    from accelerate import PartialState

    torch.set_num_threads(1)
    model_dir, output_dir = map(Path, sys.argv[1:])
    table = _evaluate(model_dir, output_dir, data_parallel=True).table()
    (output_dir / f"table.rank{PartialState().process_index}.md").write_text(table)
