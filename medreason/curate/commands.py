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
from medreason.curate.config import CurateConfig
from medreason.curate.decontaminate import DecontamConfig, Decontaminator, iter_matches
from medreason.curate.embed import Encoder
from medreason.curate.filters import build_filters
from medreason.curate.pipeline import CurationPipeline
from medreason.curate.records import Rejects, read_traces
from medreason.curate.steps import (
    DecontaminateStep,
    DedupeStep,
    DomainStep,
    FilterStep,
    LoadStep,
    MixStep,
)
from medreason.curate.summary import StepSummary
from medreason.engines.base import GenerationEngine
from medreason.utils.config_errors import FieldError, build_checked
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

def _paths(value: Any, key: str) -> list[str]:
    if isinstance(value, str | os.PathLike):
        return [str(value)]
    if isinstance(value, Sequence) and value and all(isinstance(v, str | os.PathLike) for v in value):
        return [str(v) for v in value]
    raise FieldError(key, value, "must be a path or a list of paths.")


def _benchmarks(config: CurateConfig) -> list[str]:
    if config.benchmarks in (None, "", "???"):
        raise FieldError(
            "benchmarks", config.benchmarks, "decontamination needs benchmarks=PATH_OR_SUITE: a JSONL file, a "
            "directory of them (e.g. ../shared/data/eval) or a suite name."
        )
    return _paths(config.benchmarks, "benchmarks")


def build_pipeline(
    config: CurateConfig | Mapping[str, Any], *, engine: GenerationEngine | None = None, encoder: Encoder | None = None
) -> CurationPipeline:
    """Build the pipeline a :class:`CurateConfig` (or a mapping of its fields) describes.

    Args:
        config: ``input``, ``output``, ``steps`` and each step's section; a missing ``filters`` means the
            card's four filters, a missing section its defaults.
        engine: Domain-vote backend; built from ``domain.engine`` with ``build_engine`` when ``None``.
        encoder: Embedding function for the domain step (default: sentence-transformers).

    Raises:
        FieldError: an unknown step or key, a missing ``input``/``output``/``benchmarks``.
    """
    if not isinstance(config, CurateConfig):
        config = build_checked(CurateConfig, config, "curate")
    if config.output in (None, "", "???"):
        raise FieldError("output", config.output, "set output=DIR: where the curated data, step outputs and the manifest go.")
    filters = build_filters(config.filter_specs())
    steps: list[Any] = [LoadStep(_paths(config.input, "input"))]
    for name in config.steps:
        if name == "filter":
            steps.append(FilterStep(filters))
        elif name == "domain":
            steps.append(DomainStep(config.domain_settings(), engine, encoder))
        elif name == "mix":
            steps.append(MixStep(config.mix_sources(), filters, seed=config.seed))
        elif name == "dedupe":
            steps.append(DedupeStep(**config.dedupe))
        else:
            steps.append(DecontaminateStep(_benchmarks(config), config.decontam_config(), config.benchmark_data_dir))
    return CurationPipeline(
        steps, config.output, on_error=config.on_error, resume=config.resume, progress=config.progress,
        output_format=config.output_format, title=config.title,
    )


def curate(config: CurateConfig | Mapping[str, Any], **kwargs: Any) -> list[StepSummary]:
    """Build and run the whole pipeline; ``kwargs`` go to :func:`build_pipeline`."""
    return build_pipeline(config, **kwargs).run()


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
