"""The two things ``python -m medreason.curate`` does, callable from Python with a config mapping.

* :func:`build_pipeline` / :func:`curate`: the full pipeline (``command=curate``, the default).
* :func:`decontaminate_file`: decontaminate one JSONL file on its own (``command=decontaminate``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from medreason.curate.benchmarks import load_benchmarks
from medreason.curate.decontaminate import DecontamConfig, Decontaminator, iter_matches
from medreason.curate.embed import Encoder
from medreason.curate.filters import CARD_FILTERS, build_filters
from medreason.curate.mixing import MixSource
from medreason.curate.pipeline import CurationPipeline
from medreason.curate.records import Rejects, read_traces
from medreason.curate.steps import (
    DecontaminateStep,
    DedupeStep,
    DomainSettings,
    DomainStep,
    FilterStep,
    LoadStep,
    MixStep,
    settings_from,
)
from medreason.curate.summary import StepSummary
from medreason.engines.base import GenerationEngine
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

STEP_NAMES = ("filter", "domain", "mix", "dedupe", "decontaminate")


def _paths(value: Any, key: str) -> list[str]:
    if isinstance(value, str | os.PathLike):
        return [str(value)]
    if isinstance(value, Sequence) and value and all(isinstance(v, str | os.PathLike) for v in value):
        return [str(v) for v in value]
    raise ValueError(f"{key} must be a path or a list of paths, got {value!r}.")


def _benchmarks(cfg: Mapping[str, Any]) -> list[str]:
    if cfg.get("benchmarks") in (None, "", "???"):
        raise ValueError(
            "Decontamination needs benchmarks=PATH_OR_SUITE: a JSONL file, a directory of them "
            "(e.g. ../shared/data/eval) or a suite name."
        )
    return _paths(cfg["benchmarks"], "benchmarks")


def build_pipeline(
    cfg: Mapping[str, Any], *, engine: GenerationEngine | None = None, encoder: Encoder | None = None
) -> CurationPipeline:
    """Build the pipeline a ``conf/curate.yaml``-shaped mapping describes.

    Args:
        cfg: ``input``, ``output``, ``steps`` and each step's section (plain dict or ``DictConfig``);
            a missing ``filters`` means the card's four filters, a missing section its defaults.
        engine: Domain-vote backend; built from ``domain.engine`` with ``build_engine`` when ``None``.
        encoder: Embedding function for the domain step (default: sentence-transformers).

    Raises:
        ValueError: an unknown step or key, a missing ``input``/``output``/``benchmarks``.
    """
    if cfg.get("output") in (None, "", "???"):
        raise ValueError("Set output=DIR: where the curated data, step outputs and the manifest go.")
    specs = cfg.get("filters")
    filters = build_filters(list(CARD_FILTERS if specs is None else specs))
    steps: list[Any] = [LoadStep(_paths(cfg.get("input"), "input"))]
    for name in cfg.get("steps") or []:
        if name == "filter":
            steps.append(FilterStep(filters))
        elif name == "domain":
            steps.append(
                DomainStep(settings_from(DomainSettings, cfg.get("domain"), "domain"), engine, encoder)
            )
        elif name == "mix":
            sources = [settings_from(MixSource, s, f"mix[{i}]") for i, s in enumerate(cfg.get("mix") or [])]
            steps.append(MixStep(sources, filters, seed=int(cfg.get("seed", 0))))
        elif name == "dedupe":
            steps.append(DedupeStep(**(cfg.get("dedupe") or {})))
        elif name == "decontaminate":
            config = settings_from(DecontamConfig, cfg.get("decontaminate"), "decontaminate")
            steps.append(DecontaminateStep(_benchmarks(cfg), config, cfg.get("benchmark_data_dir")))
        else:
            raise ValueError(f"Unknown curation step {name!r} in steps; valid steps: {list(STEP_NAMES)}.")
    return CurationPipeline(
        steps,
        cfg["output"],
        on_error=cfg.get("on_error", "raise"),
        resume=bool(cfg.get("resume", True)),
        progress=bool(cfg.get("progress", True)),
        output_format=cfg.get("output_format", "fields"),
        title=cfg.get("title", "Curated reasoning dataset"),
    )


def curate(cfg: Mapping[str, Any], **kwargs: Any) -> list[StepSummary]:
    """Build and run the whole pipeline; ``kwargs`` go to :func:`build_pipeline`."""
    return build_pipeline(cfg, **kwargs).run()


def decontaminate_file(
    input_path: str | os.PathLike,
    benchmarks: str | Sequence[str],
    output: str | os.PathLike,
    config: DecontamConfig | None = None,
    *,
    on_error: str = "raise",
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the records of ``input_path`` that match no benchmark question to ``output``, unchanged.

    Next to ``output`` go ``<stem>.report.json`` (a summary plus every removed record with the
    benchmark item it matched: benchmark, id, method, score, evidence) and, with ``on_error="skip"``,
    ``<stem>.rejects.jsonl``. Returns the summary. ``data_dir`` locates a suite's files.

    Raises:
        FileNotFoundError: ``input_path`` does not exist.
        RecordError: a malformed input record when ``on_error="raise"``.
    """
    config = config or DecontamConfig()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    stem = output.name.removesuffix(".jsonl")
    report_path = output.with_name(stem + ".report.json")
    rejects = Rejects(on_error, output.with_name(stem + ".rejects.jsonl") if on_error == "skip" else None)
    decontaminator = Decontaminator(load_benchmarks(benchmarks, data_dir), config)
    removed: list[dict[str, Any]] = []
    kept = 0
    records = tqdm(read_traces(input_path, rejects), desc="decontaminate", unit="rec", disable=not progress)
    with output.open("w", encoding="utf-8") as handle:
        for raw, trace, result in iter_matches(decontaminator, records):
            if result is None:
                handle.write(json.dumps(raw, ensure_ascii=False) + "\n")
                kept += 1
            else:
                where, match = result
                removed.append(
                    {"record_id": trace.id, "source": trace.source, "field": where, **match.to_json()}
                )
    summary = {
        "input": str(input_path),
        "kept": kept,
        "removed": len(removed),
        "rejected": rejects.count,
        "mode": config.mode,
        "by_method": dict(Counter(r["method"] for r in removed)),
        "by_benchmark": dict(Counter(r["benchmark"] for r in removed)),
    }
    report_path.write_text(json.dumps({"summary": summary, "removed": removed}, indent=2, ensure_ascii=False))
    logger.info(
        "Decontamination: kept %d, removed %d (%s); report: %s",
        kept,
        len(removed),
        summary["by_method"],
        report_path,
    )
    return summary
