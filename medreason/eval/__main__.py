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
from medreason.engines import check_backend_installed
from medreason.eval.config import EvalConfig
from medreason.utils.cli import force_add_overrides, reported_user_errors
from medreason.utils.config_errors import check_model_reference
from medreason.utils.logging import configure_logging, get_logger
from medreason.utils.run_files import run_lock

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
        check_model_reference(str(cfg.model.name_or_path), "model")
        return str(cfg.model.name_or_path)
    if cfg.model.get("tiny_family"):
        from medreason.testing import build_tiny_model_dir

        path = Path(cfg.output_dir) / f"tiny-{cfg.model.tiny_family}"
        logger.warning(
            "No model given: evaluating a random tiny %s model built at %s.", cfg.model.tiny_family, path
        )
        return str(build_tiny_model_dir(path, cfg.model.tiny_family))
    raise ValueError("model.name_or_path is not set: pass model=PATH_OR_HUB_ID.")


CLI_KEYS = ("model", "output_dir", "log_level", "hydra")
"""Keys of ``conf/eval.yaml`` that are not :class:`~medreason.eval.EvalConfig` fields."""


@hydra.main(config_path=str(config_dir()), config_name="eval", version_base="1.3")
@reported_user_errors("medreason.eval")
def _main(cfg: DictConfig) -> None:
    """Evaluate ``cfg.model`` on ``cfg.suite``/``cfg.benchmarks`` and print the model-card table."""
    # imported here, so that --help does not load torch and transformers
    from medreason.eval.report import evaluate_and_report

    configure_logging(cfg.log_level)
    settings = OmegaConf.to_container(cfg, resolve=True)
    config = EvalConfig(**{key: value for key, value in settings.items() if key not in CLI_KEYS})
    check_backend_installed(config.engine.backend, "engine.backend")
    with run_lock(cfg.output_dir):
        results, table, _ = evaluate_and_report(
            _model_path(cfg), config.suite, config.ttt, **config.evaluate_kwargs(cfg.output_dir)
        )
    logger.info("Wrote results.png, results.md and results.json to %s.", results.output_dir)
    sys.stdout.write(table + "\n")


def main() -> None:
    """``python -m medreason.eval``: a model path or hub id may be given as ``model=VALUE``."""
    sys.argv = force_add_overrides(model_override(sys.argv, config_dir()), ("sampling", "prompt", "engine", "ttt", "judge"))
    _main()


if __name__ == "__main__":
    main()
