import json
import math

import pytest

from medreason.engines import SamplingParams, TransformersEngine
from medreason.eval import Benchmark, PromptTemplate, evaluate, format_question, get_benchmark, load_records
from medreason.utils.jsonl import RecordError

FAST = SamplingParams(temperature=0.6, top_p=0.9, max_tokens=6, seed=0)


def position_of(prompt, records):
    """Which record a chat prompt was rendered from."""
    return next(i for i, r in enumerate(records) if prompt[-1]["content"].startswith(format_question(r)))


def test_tiny_model_end_to_end_on_real_benchmarks(tiny_model_dir, data_dir, tmp_path):
    engine = TransformersEngine(tiny_model_dir, batch_size=4)
    results = evaluate(
        engine=engine,
        benchmarks=["medqa", "mmlu_pro_medical"],
        data_dir=data_dir,
        limit=3,
        sampling=FAST,
        output_dir=tmp_path,
        progress=False,
    )
    assert [b.name for b in results.benchmarks] == ["medqa", "mmlu_pro_medical"]
    for b in results.benchmarks:
        rows = [json.loads(line) for line in open(b.predictions_path)]
        assert [r["id"] for r in rows] == [
            r.id for r in load_records(get_benchmark(b.name), data_dir, limit=3)
        ]
        assert b.accuracy == sum(r["accuracy"] for r in rows) / 3
        assert all(len(r["responses"]) == 1 and r["prompt"][-1]["role"] == "user" for r in rows)
    saved = json.loads((tmp_path / results.output_dir.split("/")[-1] / "results.json").read_text())
    assert saved["model"] == str(tiny_model_dir) and saved["sampling"]["temperature"] == 0.6


def test_accuracy_and_stderr_with_n_samples(data_dir, tmp_path, scripted_engine):
    records = load_records(get_benchmark("medqa"), data_dir, limit=6)

    # Sample 0 is right on every item, sample 1 only on the first three: per-item accuracy 1 or 0.5.
    def reply(prompt, index):
        position = position_of(prompt, records)
        right = index == 0 or position < 3
        return (
            f"<think>...</think>The answer is \\boxed{{{records[position].answer}}}."
            if right
            else "I cannot tell."
        )

    results = evaluate(
        engine=scripted_engine(reply),
        benchmarks=["medqa"],
        data_dir=data_dir,
        limit=6,
        n=2,
        output_dir=tmp_path,
        progress=False,
    )
    (medqa,) = results.benchmarks
    assert medqa.accuracy == 0.75 and medqa.num_samples == 2
    assert medqa.stderr == pytest.approx(math.sqrt(0.075 / 6))  # per-item values 1,1,1,.5,.5,.5: var 0.075
    assert medqa.no_answer_rate == 0.25
    assert "75.00 ± " in results.table()


def test_greedy_and_prompt_template_reach_the_engine(data_dir, tmp_path, scripted_engine):
    engine = scripted_engine(lambda prompt, index: "B")
    template = PromptTemplate(instruction="Answer with a letter.", system="You are a physician.")
    evaluate(
        engine=engine,
        benchmarks=["medbullets_op4"],
        data_dir=data_dir,
        limit=2,
        greedy=True,
        template=template,
        output_dir=tmp_path,
        progress=False,
    )
    system, user = engine.prompts[0]
    assert system == {"role": "system", "content": "You are a physician."}
    assert user["content"].endswith(
        "\nD. "
        + load_records(get_benchmark("medbullets_op4"), data_dir, 1)[0].options["D"]
        + "\n\nAnswer with a letter."
    )


def test_rerun_generates_only_what_is_missing(data_dir, tmp_path, scripted_engine):
    def run(limit, sampling=FAST, engine=None):
        engine = engine or scripted_engine(lambda prompt, index: "\\boxed{A}")
        results = evaluate(
            engine=engine,
            benchmarks=["medqa", "pubmedqa"],
            data_dir=data_dir,
            limit=limit,
            sampling=sampling,
            output_dir=tmp_path,
            chunk_size=2,
            progress=False,
        )
        return engine, results

    first, results = run(3)
    assert len(first.prompts) == 6
    again, rerun = run(3)
    assert again.prompts == [] and rerun.accuracies == results.accuracies
    more, _ = run(5)
    assert len(more.prompts) == 4  # two new items per benchmark
    other, _ = run(3, SamplingParams(temperature=0.6, top_p=0.9, max_tokens=6, seed=1))
    assert len(other.prompts) == 6  # different sampling parameters: a separate cache entry


def test_interrupted_run_resumes_and_torn_lines_are_regenerated(data_dir, tmp_path, scripted_engine):
    class Crash(RuntimeError):
        pass

    def crash_on_second_call(prompt, index):
        if engine.calls == 2:
            raise Crash
        return "\\boxed{B}"

    engine = scripted_engine(crash_on_second_call)
    run = dict(benchmarks=["medqa"], data_dir=data_dir, limit=5, sampling=FAST, output_dir=tmp_path, chunk_size=2,
               progress=False)
    with pytest.raises(Crash):
        evaluate(engine=engine, **run)
    cache_file = tmp_path / "generations" / "scripted" / "medqa.jsonl"
    assert len(cache_file.read_text().splitlines()) == 2  # the first chunk survived the crash
    torn = '{"model": "scripted", "benchmark": "medqa", "id": "medqa-test-0000'
    with cache_file.open("a") as handle:
        handle.write(torn)  # a kill mid-write: no newline
    resumed = scripted_engine(lambda prompt, index: "\\boxed{B}")
    evaluate(engine=resumed, **run)
    assert len(resumed.prompts) == 3
    assert cache_file.read_text().splitlines()[2] == torn  # the next entry starts on a line of its own
    again = scripted_engine(lambda prompt, index: "\\boxed{B}")
    evaluate(engine=again, **run)
    assert again.prompts == []  # nothing regenerated: every item is cached


def test_editing_the_prompt_regenerates(data_dir, tmp_path, scripted_engine):
    for instruction, expected in (("First.", 2), ("First.", 0), ("Second.", 2)):
        engine = scripted_engine(lambda prompt, index: "A")
        evaluate(
            engine=engine,
            benchmarks=["medqa"],
            data_dir=data_dir,
            limit=2,
            template=PromptTemplate(instruction),
            output_dir=tmp_path,
            progress=False,
        )
        assert len(engine.prompts) == expected


def test_malformed_record_stops_the_run_before_generating(data_dir, tmp_path, scripted_engine):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"id": "x", "question": "Q?", "options": {"A": "a", "B": "b"}, "answer": "C"}) + "\n"
    )
    engine = scripted_engine(lambda prompt, index: "A")
    with pytest.raises(RecordError, match=rf"{bad}, line 1, field 'answer'"):
        evaluate(
            engine=engine,
            benchmarks=["medqa", Benchmark("bad", "Bad", path=str(bad))],
            data_dir=data_dir,
            output_dir=tmp_path,
            progress=False,
        )
    assert engine.calls == 0


def test_missing_benchmarks_fail_or_are_skipped(data_dir, tmp_path, scripted_engine):
    engine = scripted_engine(lambda prompt, index: "A")
    with pytest.raises(FileNotFoundError, match="5 benchmark") as error:
        evaluate(
            engine=engine, suite="ii_medical", data_dir=data_dir, limit=1, output_dir=tmp_path, progress=False
        )
    for name in ("gpqa_medical", "lancet", "medbullets_op5", "medxpertqa", "nejm"):
        assert f"{name}.jsonl" in str(error.value)
    assert engine.calls == 0
    results = evaluate(
        engine=engine,
        suite="ii_medical",
        data_dir=data_dir,
        limit=1,
        skip_missing=True,
        output_dir=tmp_path,
        progress=False,
    )
    assert [b.name for b in results.benchmarks] == [
        "medmcqa",
        "medqa",
        "pubmedqa",
        "mmlu_pro_medical",
        "medbullets_op4",
    ]
    assert "| **scripted** |" in results.table() and " – | – |" in results.table()


def test_engine_contract_is_checked(data_dir, tmp_path, scripted_engine):
    class Short(scripted_engine):
        def generate(self, prompts, sampling):
            return super().generate(prompts, sampling)[:-1]

    with pytest.raises(RuntimeError, match="expected 1 per prompt"):
        evaluate(
            engine=Short(lambda p, i: "A"),
            benchmarks=["medqa"],
            data_dir=data_dir,
            limit=2,
            output_dir=tmp_path,
            progress=False,
        )
    with pytest.raises(TypeError, match="exactly one of model"):
        evaluate(benchmarks=["medqa"], data_dir=data_dir)
