"""The pipeline end to end: step counts, resume after a crash, rejects, config and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from medreason.config import config_dir
from medreason.curate import commands
from medreason.curate.decontaminate import Decontaminator
from medreason.curate.filters import FILTERS, register_filter
from medreason.utils.jsonl import RecordError

from .helpers import KeywordEncoder, ScriptedEngine, read_lines, trace, write_lines

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_QUESTION = (
    "A 62-year-old man with a history of smoking presents with painless hematuria and a bladder mass "
    "on cystoscopy. Which of the following is the most likely cause of his condition?"
)
FILTER_CALLS = {"count": 0}


if "counting_filter" not in FILTERS:

    @register_filter("counting_filter")
    def counting_filter(record) -> str | None:
        """Keeps everything, counting calls (to check a resumed run does not refilter)."""
        FILTER_CALLS["count"] += 1
        return None


def corpus(tmp_path: Path) -> tuple[Path, Path]:
    medical = [
        trace(
            f"A {20 + i}-year-old patient has fever and a productive cough for {i + 2} days. Diagnosis?",
            id=f"med{i}",
            source="r1",
        )
        for i in range(8)
    ]
    math = [
        trace(f"Compute the integral of x^{i} over the unit interval exactly.", id=f"math{i}", source="r1")
        for i in range(6)
    ]
    rows = [
        *medical,
        *math,
        trace("Too short?", id="short", source="r1"),
        trace("A patient with cough asks what to do next?", cot="Wait. " * 48, id="waity", source="r1"),
        {
            "prompt": "A patient has a cough and fever today?",
            "response": "<think>cut off",
            "id": "cut",
            "source": "r1",
        },
        trace("Patient case: " + BENCH_QUESTION + " A. Smoking B. Dyes", id="leak", source="r1"),
        dict(medical[0], id="dup"),
        "{broken json",
        {"question": 42, "id": "bad-type"},
    ]
    data = write_lines(tmp_path / "raw.jsonl", rows)
    bench = write_lines(
        tmp_path / "bench" / "medqa.jsonl", [{"id": "b1", "question": BENCH_QUESTION, "source": "medqa"}]
    )
    return data, bench.parent


def config(tmp_path: Path, data: Path, bench: Path, **overrides) -> dict:
    cfg = {
        "input": str(data),
        "output": str(tmp_path / "out"),
        "benchmarks": str(bench),
        "on_error": "skip",
        "progress": False,
        "steps": ["filter", "domain", "mix", "dedupe", "decontaminate"],
        "filters": [
            {"name": "counting_filter"},
            {"name": "complete_generation"},
            {"name": "min_prompt_words"},
            {"name": "max_trace_words"},
            {"name": "max_wait"},
        ],
        "domain": {
            "clusters": 2,
            "per_cluster": 3,
            "iterations": 20,
            "batch_size": 32,
            "kmeans_backend": "torch",
        },
        "mix": [],
        "dedupe": {"by": "prompt_response"},
        "decontaminate": {"mode": "overlap"},
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def doubles():
    return ScriptedEngine({"integral": "Mathematics", "patient": "Medical"}), KeywordEncoder(
        ["patient", "integral"]
    )


def test_full_pipeline_counts_reasons_and_outputs(tmp_path, doubles) -> None:
    engine, encoder = doubles
    data, bench = corpus(tmp_path)
    summaries = commands.curate(config(tmp_path, data, bench), engine=engine, encoder=encoder)
    by_name = {s.name: s for s in summaries}
    assert by_name["load"].added == 19 and by_name["load"].rejected == 2
    assert by_name["filter"].dropped == {"complete_generation": 1, "max_wait": 1, "min_prompt_words": 1}
    assert by_name["domain"].dropped == {"domain Mathematics": 6}
    assert by_name["dedupe"].dropped == {"duplicate": 1}
    assert by_name["decontaminate"].dropped == {"contaminated (ngram)": 1}
    out = tmp_path / "out"
    curated = read_lines(out / "curated.jsonl")
    assert sorted(r["id"] for r in curated) == [f"med{i}" for i in range(8)]
    assert set(curated[0]) >= {"id", "source", "question", "cot", "response"}
    dropped = read_lines(next(out.glob("steps/*_decontaminate/dropped.jsonl")))
    assert dropped[0]["id"] == "leak" and dropped[0]["detail"]["benchmark_id"] == "b1"
    rejects = read_lines(out / "rejects.jsonl")
    assert [(r["position"], r["field"]) for r in rejects] == [("line 20", None), ("line 21", "question")]
    card = (out / "dataset_card.md").read_text()
    assert "| decontaminate | 9 | 0 | 8 | 1 | 0 |" in card and "domain Mathematics" in card
    assert json.loads((out / "manifest.json").read_text())["records"] == 8


def test_resume_after_a_crash_recomputes_nothing_finished(tmp_path, doubles, monkeypatch) -> None:
    engine, encoder = doubles
    data, bench = corpus(tmp_path)
    cfg = config(tmp_path, data, bench)

    def crash(self, texts, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(Decontaminator, "match_texts", crash)
    FILTER_CALLS["count"] = 0
    with pytest.raises(RuntimeError, match="injected"):
        commands.curate(cfg, engine=engine, encoder=encoder)
    out = tmp_path / "out"
    assert not (out / "manifest.json").exists()
    assert not next(out.glob("steps/*_decontaminate")).joinpath("done.json").exists()
    calls = (FILTER_CALLS["count"], engine.calls, encoder.calls)
    assert calls == (19, 1, 1)

    monkeypatch.undo()
    summaries = commands.curate(cfg, engine=engine, encoder=encoder)
    assert (FILTER_CALLS["count"], engine.calls, encoder.calls) == calls  # load, filter, domain were reused
    assert summaries[-1].name == "decontaminate" and summaries[-1].kept == 8
    assert (out / "manifest.json").is_file()

    changed = config(tmp_path, data, bench, decontaminate={"mode": "literal"})
    commands.curate(changed, engine=engine, encoder=encoder)
    assert (FILTER_CALLS["count"], engine.calls, encoder.calls) == calls  # only decontaminate reran

    commands.curate(dict(changed, resume=False), engine=engine, encoder=encoder)
    assert FILTER_CALLS["count"] == 2 * 19 and engine.calls == 1  # recomputed; LLM votes come from the cache


def test_on_error_raise_names_file_line_field(tmp_path, doubles) -> None:
    data, bench = corpus(tmp_path)
    with pytest.raises(RecordError, match=r"raw.jsonl, line 20"):
        commands.curate(config(tmp_path, data, bench, on_error="raise", steps=["filter"]))


def test_filters_that_drop_everything_warn_naming_the_step(tmp_path, caplog) -> None:
    data, bench = corpus(tmp_path)
    strict = [{"name": "min_prompt_words", "more_than": 10_000}]
    summaries = commands.curate(config(tmp_path, data, bench, steps=["filter", "dedupe"], filters=strict))
    assert summaries[-1].kept == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "kept no records" in r.getMessage()]
    assert len(warnings) == 1 and "step 'filter' dropped all" in warnings[0]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["records"] == 0  # done, and says 0


def test_mix_adds_fixed_counts_deterministically(tmp_path, doubles) -> None:
    data, bench = corpus(tmp_path)
    extra = write_lines(
        tmp_path / "light_r1.jsonl",
        [trace(f"Solve the equation number {i} for x please.", id=f"m{i}") for i in range(30)],
    )
    mix = [{"path": str(extra), "count": 5, "name": "light-r1"}]
    cfg = config(tmp_path, data, bench, steps=["filter", "mix", "dedupe"], mix=mix)
    first = commands.curate(cfg)
    ids = [r["id"] for r in read_lines(tmp_path / "out" / "curated.jsonl") if r["source"] == "light-r1"]
    assert first[2].added == 5 and len(ids) == 5
    commands.curate(dict(cfg, resume=False))
    assert [
        r["id"] for r in read_lines(tmp_path / "out" / "curated.jsonl") if r["source"] == "light-r1"
    ] == ids


def test_unknown_step_and_keys_list_valid_ones(tmp_path) -> None:
    data, bench = corpus(tmp_path)
    with pytest.raises(ValueError, match="valid steps: .*decontaminate"):
        commands.build_pipeline(config(tmp_path, data, bench, steps=["filtre"]))
    with pytest.raises(ValueError, match="valid keys: .*clusters"):
        commands.build_pipeline(config(tmp_path, data, bench, domain={"clusterz": 3}))
    with pytest.raises(ValueError, match="benchmarks=PATH_OR_SUITE"):
        commands.build_pipeline(config(tmp_path, data, bench, benchmarks=None))


def test_configs_compose_and_build(tmp_path) -> None:
    data, bench = corpus(tmp_path)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "curate",
            overrides=[
                "+pipeline=ii_medical",
                f"input={data}",
                f"output={tmp_path / 'o'}",
                f"benchmarks={bench}",
            ],
        )
    from omegaconf import OmegaConf

    from medreason.curate import CurateConfig

    config = CurateConfig(**OmegaConf.to_container(cfg, resolve=True))
    assert config.steps == ["filter", "domain", "mix", "dedupe", "decontaminate"]
    # the card's values come from the steps' settings classes, not restated in the YAML
    assert config.domain_settings().clusters == 50000 and config.decontam_config().fuzzy_threshold == 90.0
    assert config.domain_settings().keep == ["Medical", "Biology"] and config.decontam_config().ngram == 10
    assert [f["name"] for f in config.filter_specs()] == [
        "complete_generation",
        "min_prompt_words",
        "max_trace_words",
        "max_wait",
    ]
    pipeline = commands.build_pipeline(config)
    assert [step.name for step in pipeline.steps] == [
        "load",
        "filter",
        "domain",
        "mix",
        "dedupe",
        "decontaminate",
    ]


def test_cli_decontaminate_and_curate(tmp_path) -> None:
    data, bench = corpus(tmp_path)
    clean = tmp_path / "train.jsonl"
    clean.write_text("".join(data.read_text().splitlines(keepends=True)[:19]))  # the well-formed lines
    run = [sys.executable, "-m", "medreason.curate"]
    subprocess.run(
        [
            *run,
            "decontaminate",
            f"input={clean}",
            f"benchmarks={bench}",
            f"output={tmp_path / 'clean.jsonl'}",
            "progress=false",
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        env=_env(),
    )
    report = json.loads((tmp_path / "clean.report.json").read_text())
    assert report["summary"]["removed"] == 1 and report["removed"][0]["record_id"] == "leak"
    assert report["removed"][0]["benchmark"] == "medqa" and report["removed"][0]["method"] == "ngram"
    assert len(read_lines(tmp_path / "clean.jsonl")) == 18
    result = subprocess.run(
        [
            *run,
            f"input={data}",
            f"output={tmp_path / 'cli_out'}",
            f"benchmarks={bench}",
            "on_error=skip",
            "progress=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "cli_out" / "manifest.json").is_file()
    assert not list(tmp_path.glob("outputs"))  # Hydra writes no run folders


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
