"""Command line evaluation: ``python -m medreason.eval model=PATH_OR_HUB_ID suite=ii_medical``.

Composes ``conf/eval.yaml`` with Hydra, runs :func:`medreason.eval.evaluate`, writes
``results.md`` (the model-card table) and ``results.png`` (bar chart) next to ``results.json``
and prints the table. Examples are at the top of ``conf/eval.yaml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from medreason.config import config_dir
from medreason.engines import SamplingParams
from medreason.eval.report import evaluate_and_report
from medreason.tasks.prompts import PromptTemplate
from medreason.utils.logging import configure_logging, get_logger

logger = get_logger(__name__)


def model_override(argv: list[str], config_root: Path) -> list[str]:
    """Rewrite ``model=VALUE`` to ``model.name_or_path=VALUE`` unless ``conf/model/VALUE.yaml`` exists.

    ``model`` is a config group shared with training, so Hydra alone would reject a path or hub id.

    >>> model_override(["x", "model=Qwen/Qwen3-8B", "suite=reasonmed"], Path("/nonexistent"))
    ['x', 'model.name_or_path=Qwen/Qwen3-8B', 'suite=reasonmed']
    """
    rewritten = []
    for arg in argv:
        if (
            arg.startswith("model=")
            and not (config_root / "model" / f"{arg[len('model=') :]}.yaml").is_file()
        ):
            arg = "model.name_or_path=" + arg[len("model=") :]
        rewritten.append(arg)
    return rewritten


def _model_path(cfg: DictConfig) -> str:
    if cfg.model.name_or_path:
        return str(cfg.model.name_or_path)
    if cfg.model.get("tiny_family"):
        from medreason.testing import build_tiny_model_dir

        path = Path(cfg.output_dir) / f"tiny-{cfg.model.tiny_family}"
        logger.warning(
            "No model given: evaluating a random tiny %s model built at %s.", cfg.model.tiny_family, path
        )
        return str(build_tiny_model_dir(path, cfg.model.tiny_family))
    raise ValueError("model.name_or_path is not set: pass model=PATH_OR_HUB_ID.")


@hydra.main(config_path=str(config_dir()), config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Evaluate ``cfg.model`` on ``cfg.suite``/``cfg.benchmarks`` and print the model-card table."""
    configure_logging(cfg.log_level)
    common = dict(
        benchmarks=list(cfg.benchmarks) or None,
        backend=cfg.engine.backend,
        engine_kwargs=OmegaConf.to_container(cfg.engine.kwargs, resolve=True),
        sampling=SamplingParams(**OmegaConf.to_container(cfg.sampling, resolve=True)),
        greedy=cfg.greedy,
        template=PromptTemplate(**OmegaConf.to_container(cfg.prompt, resolve=True)),
        data_dir=cfg.data_dir,
        benchmark_paths=OmegaConf.to_container(cfg.benchmark_paths, resolve=True),
        limit=cfg.limit,
        skip_missing=cfg.skip_missing,
        output_dir=cfg.output_dir,
        chunk_size=cfg.chunk_size,
    )
    ttt = OmegaConf.to_container(cfg.ttt, resolve=True) if cfg.get("ttt") else None
    results, table, _ = evaluate_and_report(_model_path(cfg), cfg.suite, ttt, **common)
    logger.info("Wrote results.png, results.md and results.json to %s.", results.output_dir)
    sys.stdout.write(table + "\n")


if __name__ == "__main__":
    sys.argv = model_override(sys.argv, config_dir())
    main()
