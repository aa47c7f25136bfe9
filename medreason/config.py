"""Where the Hydra configs live, in a source checkout and in an installed wheel.

A checkout keeps ``conf/`` (config groups) and ``recipes/`` (one YAML per model card) at the top
level; ``conf/recipe`` links to ``recipes/`` so Hydra sees recipes as the ``recipe`` group. A wheel
ships the same tree as ``medreason/conf`` (see ``[tool.setuptools]`` in pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The directory holding ``train.yaml`` and the config groups, as an absolute path.

    Raises:
        FileNotFoundError: neither an installed ``medreason/conf`` nor a checkout's ``conf/`` exists.
    """
    for candidate in (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"medreason's configs were not found next to {_PACKAGE_DIR}: reinstall the package "
        "(pip install medreason) or run from a source checkout that has conf/train.yaml."
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m medreason.config [RELATIVE_PATH]``: print the absolute path of a shipped config.

    For launch lines: ``accelerate launch --config_file $(python -m medreason.config accelerate/ddp_8gpu.yaml)``.
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = config_dir() / args[0] if args else config_dir()
    if not path.exists():
        raise SystemExit(f"{path} does not exist; shipped configs are under {config_dir()}")
    print(path)  # noqa: T201 - the command's output is the path


if __name__ == "__main__":
    main()
