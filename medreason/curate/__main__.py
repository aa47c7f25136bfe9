"""Command line: ``python -m medreason.curate [curate|decontaminate] key=value ...`` (Hydra).

    python -m medreason.curate +pipeline=ii_medical input=raw.jsonl output=curated/
    python -m medreason.curate decontaminate input=train.jsonl benchmarks=../shared/data/eval output=clean.jsonl

The optional leading word is shorthand for ``command=<word>`` (it is rewritten before Hydra parses
the overrides); the config is ``conf/curate.yaml`` plus the ``pipeline`` group.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from medreason.config import config_dir
from medreason.curate.commands import curate, decontaminate_file
from medreason.curate.decontaminate import DecontamConfig
from medreason.curate.steps import settings_from
from medreason.utils.logging import configure_logging, get_logger

COMMANDS = ("curate", "decontaminate")
logger = get_logger("medreason.curate")


def _rewrite_command(argv: list[str]) -> list[str]:
    """Turn a leading ``decontaminate``/``curate`` word into a ``command=`` override."""
    if len(argv) > 1 and argv[1] in COMMANDS:
        return [argv[0], f"command={argv[1]}", *argv[2:]]
    return argv


def run(cfg: DictConfig) -> None:
    """Dispatch on ``cfg.command``.

    Raises:
        ValueError: an unknown command or missing required settings.
    """
    configure_logging()
    data = OmegaConf.to_container(cfg, resolve=True)
    if data["command"] == "decontaminate":
        for key in ("input", "output", "benchmarks"):
            if data.get(key) in (None, "", "???"):
                raise ValueError(
                    f"decontaminate needs {key}=...: e.g. python -m medreason.curate decontaminate "
                    "input=train.jsonl benchmarks=../shared/data/eval output=clean.jsonl"
                )
        config = settings_from(DecontamConfig, data.get("decontaminate"), "decontaminate")
        decontaminate_file(
            data["input"],
            data["benchmarks"],
            data["output"],
            config,
            on_error=data["on_error"],
            data_dir=data.get("benchmark_data_dir"),
            progress=data["progress"],
        )
    elif data["command"] == "curate":
        for summary in curate(data):
            logger.info(
                "%-14s in %8d  kept %8d  dropped %s",
                summary.name,
                summary.input,
                summary.kept,
                summary.dropped,
            )
    else:
        raise ValueError(f"Unknown command {data['command']!r}; valid commands: {list(COMMANDS)}.")


def main() -> None:
    """Entry point: rewrite the command word, then hand over to Hydra."""
    sys.argv = _rewrite_command(sys.argv)
    hydra.main(config_path=str(config_dir()), config_name="curate", version_base="1.3")(run)()


if __name__ == "__main__":
    main()
