"""Command line: ``python -m medreason.curate [curate|decontaminate] key=value ...`` (Hydra).

    python -m medreason.curate +pipeline=ii_medical input=raw.jsonl output=curated/
    python -m medreason.curate decontaminate input=train.jsonl benchmarks=../shared/data/eval output=clean.jsonl

The optional leading word is shorthand for ``command=<word>`` (it is rewritten before Hydra parses
the overrides); the config is ``conf/curate.yaml`` plus the ``pipeline`` group.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from medreason.config import config_dir
from medreason.curate.commands import build_pipeline, decontaminate_file
from medreason.curate.config import COMMANDS, CurateConfig
from medreason.engines import check_backend_installed
from medreason.utils.cli import force_add_overrides, reported_user_errors
from medreason.utils.config_errors import FieldError
from medreason.utils.logging import configure_logging, get_logger
from medreason.utils.run_files import run_lock

SECTIONS = ("domain", "dedupe", "decontaminate")
"""Sections whose keys default to their settings class: ``decontaminate.mode=literal`` adds the key."""
logger = get_logger("medreason.curate")


def _rewrite_command(argv: list[str]) -> list[str]:
    """Turn a leading ``decontaminate``/``curate`` word into a ``command=`` override."""
    if len(argv) > 1 and argv[1] in COMMANDS:
        return [argv[0], f"command={argv[1]}", *argv[2:]]
    return argv


@reported_user_errors("medreason.curate")
def run(cfg: DictConfig) -> None:
    """Build the :class:`~medreason.curate.config.CurateConfig` from ``cfg`` and run ``cfg.command``.

    Raises:
        FieldError: a bad setting or a missing ``input``/``output``/``benchmarks``.
    """
    configure_logging()
    config = CurateConfig(**OmegaConf.to_container(cfg, resolve=True))
    if config.command == "curate" and "domain" in config.steps:
        check_backend_installed(config.domain_settings().engine.get("backend", ""), "domain.engine.backend")
    if config.command == "curate":
        pipeline = build_pipeline(config)
        with run_lock(pipeline.output_dir):
            summaries = pipeline.run()
        for summary in summaries:
            logger.info(
                "%-14s in %8d  kept %8d  dropped %s", summary.name, summary.input, summary.kept, summary.dropped
            )
        return
    for key in ("input", "output", "benchmarks"):
        if getattr(config, key) in (None, "", "???"):
            raise FieldError(
                key, getattr(config, key), "decontaminate needs it: e.g. python -m medreason.curate decontaminate "
                "input=train.jsonl benchmarks=../shared/data/eval output=clean.jsonl",
            )
    with run_lock(Path(config.output).parent):
        decontaminate_file(
            config.input, config.benchmarks, config.output, config.decontam_config(), on_error=config.on_error,
            data_dir=config.benchmark_data_dir, progress=config.progress,
        )


def main() -> None:
    """Entry point: rewrite the command word, then hand over to Hydra."""
    sys.argv = force_add_overrides(_rewrite_command(sys.argv), SECTIONS)
    hydra.main(config_path=str(config_dir()), config_name="curate", version_base="1.3")(run)()


if __name__ == "__main__":
    main()
