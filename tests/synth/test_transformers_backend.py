"""A small run through transformers with the tiny random model: its gibberish must end as failure rows."""

from medreason.synth.run import compose_config, run_pipeline

from .conftest import finemed_texts, mcq, read_jsonl, write_jsonl


def test_finemed_on_the_tiny_model_writes_failure_rows_not_defaults(tmp_path, tiny_model_dir):
    source = write_jsonl(tmp_path / "texts.jsonl", finemed_texts()[:2])
    out = tmp_path / "out"
    overrides = [
        "+pipeline=finemed",
        f"input={source}",
        f"output={out}",
        "backend=transformers",
        f"model={tiny_model_dir}",
        "concurrency=1",
        "batch_size=2",
        "max_attempts=2",
        "progress=false",
        "role_defaults.sampling.max_tokens=12",
    ]
    report = run_pipeline(compose_config(overrides))
    assert report["counts"]["texts_with_questions"] == 0 and report["counts"]["sft"] == 0
    failures = read_jsonl(out / "failures.jsonl")
    assert [(f["stage"], f["id"], f["kind"], f["attempts"]) for f in failures] == [
        ("instructions", "t1", "parse", 2),
        ("instructions", "t2", "parse", 2),
    ]
    assert all(f["error"] for f in failures) and read_jsonl(out / "sft.jsonl") == []
    assert report["steps"]["instructions"]["tokens"] > 0  # the in-process engine reports token ids
    assert (out / "manifest.json").is_file()

    # rerun: every answer comes from the cache
    again = run_pipeline(compose_config(overrides))
    assert (
        again["steps"]["instructions"]["calls_made"] == 0
        and again["steps"]["instructions"]["calls_cached"] == 4
    )


def test_traces_on_the_tiny_model(tmp_path, tiny_model_dir):
    source = write_jsonl(tmp_path / "q.jsonl", [mcq("q1", "")])
    out = tmp_path / "out"
    report = run_pipeline(
        compose_config(
            [
                "+pipeline=ii_medical_traces",
                f"input={source}",
                f"output={out}",
                "backend=transformers",
                f"model={tiny_model_dir}",
                "concurrency=1",
                "progress=false",
                "role_defaults.sampling.max_tokens=8",
                "settings.samples=2",
                "settings.rounds=1",
            ]
        )
    )
    assert report["counts"]["traces_sampled"] == 2
    # gibberish names no option, so nothing is kept (the grader never guesses)
    assert report["counts"]["records"] == len(read_jsonl(out / "traces.jsonl")) == 0
