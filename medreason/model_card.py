"""Model cards: a ``README.md`` in every training stage's ``final/``, saying how that model was made.

The card opens with Hugging Face YAML metadata (``base_model``, ``datasets`` with content hashes,
``library_name``, ``tags`` and a ``model-index`` holding the results of the run's eval stages that
evaluated this model), then gives the recipe and the stage's resolved hyper-parameters, the data
manifest, the decontamination summary of the run's curation stages, and each evaluation table beside
the model card's published numbers. Everything is read from the run's files (``summary.json``, the
stages' completion markers, ``results.md``, the curation ``report.json``), so the cards can be
written again at any time after a run: :func:`write_model_cards`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from medreason.eval.rubric_eval import RUBRIC_BENCHMARKS
from medreason.run_summary import read_summary
from medreason.stage_context import TRAINING_KINDS, read_completion_marker

CARD_FILE = "README.md"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_MCQ_TASK = ({"type": "multiple-choice", "name": "Medical multiple-choice QA"}, "accuracy")
_RUBRIC_TASK = ({"type": "text-generation", "name": "Open-ended medical conversations graded by rubric"}, "rubric_score")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_manifest(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a stage's ``data`` block read: its source, the selection applied and the file's SHA-256.

    >>> data_manifest({"builtin": "tiny", "max_samples": None})
    {'source': 'builtin:tiny', 'sha256': None, 'selection': {}}
    """
    if not data:
        return None
    source = f"builtin:{data['builtin']}" if data.get("builtin") else str(data.get("path"))
    path = Path(source)
    digest = file_sha256(path) if not data.get("builtin") and path.is_file() else None
    selection = {key: data[key] for key in ("split", "filter", "max_samples", "eval_fraction") if data.get(key) is not None}
    return {"source": source, "sha256": digest, "selection": selection}


def _evaluations(output_dir: Path, kinds: dict[str, str], final_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """(eval stage, its completion marker) for every finished eval stage that evaluated ``final_dir``."""
    summary = read_summary(output_dir)
    found = []
    for name, kind in kinds.items():
        marker = read_completion_marker(output_dir / name)
        started = summary.get(name, {}).get("started_from")
        if kind == "eval" and marker is not None and started and Path(started).resolve() == final_dir.resolve():
            found.append((name, marker))
    return found


def _benchmark_titles(results_dir: str | None) -> dict[str, str]:
    """Benchmark name -> title, from an eval stage's ``results.json`` (ad-hoc benchmarks are not registered)."""
    path = Path(results_dir) / "results.json" if results_dir else None
    if path is None or not path.is_file():
        return {}
    return {b["name"]: b["title"] for b in json.loads(path.read_text(encoding="utf-8"))["benchmarks"]}


def _decontamination(output_dir: Path, kinds: dict[str, str]) -> list[str]:
    lines = []
    for name, kind in kinds.items():
        report = output_dir / name / "report.json"
        if kind != "curate" or not report.is_file():
            continue
        for step in json.loads(report.read_text(encoding="utf-8")).get("steps", []):
            if step["name"] == "decontaminate":
                dropped = sum(step["dropped"].values())
                extra = ", ".join(f"{k}: {v}" for k, v in step.get("extra", {}).items())
                lines.append(f"- stage `{name}`: {dropped} of {step['input']} records removed as benchmark copies "
                             f"({extra}); details in `{name}/dataset_card.md`.")
    return lines


def render_model_card(
    run_cfg: DictConfig, stage: str, output_dir: Path, kinds: dict[str, str], config: Any | None = None
) -> str:
    """The ``README.md`` of stage ``stage``'s ``final/`` (see the module docstring).

    Args:
        run_cfg: The run's resolved config (``run_name``, ``model``, ``stages``).
        stage: A training stage of the run that has finished.
        output_dir: The run's directory.
        kinds: Every stage of the recipe, in order, to its kind.
        config: The stage's validated trainer config (``DAPOConfig``, ...) when this run built it: its
            every resolved argument, library defaults included, goes into a collapsed section.
    """
    stage_cfg = OmegaConf.to_container(run_cfg.stages[stage], resolve=True)
    marker = read_completion_marker(output_dir / stage) or {}
    final_dir = Path(marker.get("final_dir", output_dir / stage / "final"))
    started_from = read_summary(output_dir).get(stage, {}).get("started_from") or str(run_cfg.model.name_or_path)
    manifest = data_manifest(stage_cfg.get("data"))
    evaluations = _evaluations(output_dir, kinds, final_dir)
    model_name = f"{run_cfg.run_name}-{stage}"

    results = []
    for name, eval_marker in evaluations:
        metrics = eval_marker.get("metrics", {})
        titles = _benchmark_titles(metrics.get("results"))
        runs = [("accuracies", f"accuracy ({name})")]
        if "accuracies_without_ttt" in metrics:  # the stage measured with and without test-time training
            runs = [("accuracies_without_ttt", f"accuracy ({name})"), ("accuracies", f"accuracy with TTT ({name})")]
        for benchmark in metrics.get("accuracies", {}):
            # A rubric benchmark's "accuracy" is its HealthBench-style score: met points over positive points.
            task, metric = _RUBRIC_TASK if benchmark in RUBRIC_BENCHMARKS else _MCQ_TASK
            results.append({
                "task": task,
                "dataset": {"name": titles.get(benchmark, benchmark), "type": benchmark},
                "metrics": [{"type": metric, "value": round(100 * metrics[key][benchmark], 2),
                             "name": label.replace("accuracy", metric.replace("_", " "))}
                            for key, label in runs if benchmark in metrics.get(key, {})],
            })
    base_model = str(run_cfg.model.name_or_path)
    metadata: dict[str, Any] = {
        # The Hub rejects a card whose base_model is not a Hub model id (a local path, the tiny random model).
        **({"base_model": base_model} if _HUB_ID.fullmatch(base_model) and not Path(base_model).exists() else {}),
        "library_name": "transformers",
        "tags": ["medreason", "medical", "reasoning", kinds[stage]],
        "datasets": [manifest["source"]] if manifest else [],
        "dataset_hashes": {manifest["source"]: manifest["sha256"]} if manifest else {},
        "model-index": [{"name": model_name, "results": results}],
    }
    lines = [
        "---", yaml.safe_dump(metadata, sort_keys=False).strip(), "---", "",
        f"# {model_name}", "",
        f"Stage `{stage}` ({kinds[stage]}) of the medreason recipe `{run_cfg.run_name}`, trained from `{started_from}`.",
        "Reproduce with the whole recipe (this model is its stage's `final/`; the run's `overrides.yaml` lists any overrides):",
        "", "```bash", f"python -m medreason.train +recipe={run_cfg.run_name}", "```", "",
        "## Recipe and hyper-parameters", "",
        "The stage's resolved config block (the run's `config.yaml` holds every stage):", "",
        "```yaml", yaml.safe_dump(stage_cfg, sort_keys=False).strip(), "```", "",
    ]
    if config is not None and hasattr(config, "to_dict"):
        resolved = json.loads(json.dumps(config.to_dict(), default=str))  # enums and paths as text
        lines += [f"<details><summary>Every resolved argument of {type(config).__name__}</summary>", "",
                  "```yaml", yaml.safe_dump(resolved, sort_keys=True).strip(), "```", "", "</details>", ""]
    lines += [
        "## Data", "",
    ]
    if manifest:
        lines += [f"- source: `{manifest['source']}`",
                  f"- sha256: `{manifest['sha256']}`" if manifest["sha256"] else "- sha256: none (generated in memory)",
                  f"- selection: `{json.dumps(manifest['selection'])}`"]
        counts = {k: v for k, v in marker.get("metrics", {}).items() if k.startswith("num_") and isinstance(v, int)}
        lines += [f"- {key.removeprefix('num_').replace('_', ' ')}: {value}" for key, value in counts.items()]
    else:
        lines.append("This stage reads no data block.")
    decontamination = _decontamination(output_dir, kinds)
    lines += ["", "## Decontamination", ""]
    lines += decontamination or ["This run has no curation stage: the training data was not decontaminated by medreason."]
    lines += ["", "## Evaluation", ""]
    if not evaluations:
        lines.append("No eval stage of this run evaluated this model.")
    for name, _ in evaluations:
        table = output_dir / name / "results.md"
        lines += [f"Eval stage `{name}` (accuracy %; a suite with a model card lists its published rows first):", "",
                  table.read_text(encoding="utf-8").strip() if table.is_file() else "(results.md missing)", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_model_cards(
    run_cfg: DictConfig, output_dir: Path, kinds: dict[str, str], configs: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``README.md`` into the ``final/`` of every finished training stage; return the files written.

    ``configs`` maps the stages this run validated to their config objects (see :func:`render_model_card`).
    """
    written = []
    for stage, kind in kinds.items():
        marker = read_completion_marker(output_dir / stage)
        if kind not in TRAINING_KINDS or marker is None or not Path(marker["final_dir"]).is_dir():
            continue
        path = Path(marker["final_dir"]) / CARD_FILE
        path.write_text(render_model_card(run_cfg, stage, output_dir, kinds, (configs or {}).get(stage)),
                        encoding="utf-8")
        written.append(path)
    return written
