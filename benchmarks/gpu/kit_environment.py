"""What the GPU kit checks before it measures anything: device, versions, and that every requirement holds.

A bare GPU machine gets our packages as carried wheels (``wheels.txt``) installed over what it has; a
version that does not fit shows up here, named, in seconds, instead of as an import error minutes into
a ten-minute call.
"""

from __future__ import annotations

import importlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
WHEELS = Path(__file__).resolve().parent / "wheels.txt"
# Imported (not only looked up) so a broken binary wheel fails here, not in the first benchmark.
MODULES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "hydra", "omegaconf",
           "sentence_transformers", "rapidfuzz", "medreason.trainers", "medreason.eval", "medreason.ttt")
# Peak dense bf16 tensor throughput (TFLOP/s) from NVIDIA's datasheets (SXM parts), for MFU.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def pinned_wheels(path: Path = WHEELS) -> dict[str, str]:
    """``{canonical name: version}`` of ``wheels.txt`` (``name==version`` lines; ``#`` starts a comment)."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        name, sep, version = spec.partition("==")
        if not sep or not version:
            raise ValueError(f"{path}:{number}: {spec!r} is not NAME==VERSION; pin every carried wheel exactly.")
        pins[canonicalize_name(name)] = version.strip()
    return pins


def project_requirements() -> list[Requirement]:
    """medreason's own dependencies, from ``pyproject.toml``."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return [Requirement(spec) for spec in tomllib.load(handle)["project"]["dependencies"]]


def unmet(requirements: list[Requirement], needed_by: str) -> list[str]:
    """The requirements (markers evaluated, extras ignored) that the running environment does not meet."""
    problems = []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        found = installed_version(requirement.name)
        if found is None:
            problems.append(f"{needed_by} needs {requirement}: {requirement.name} is not installed")
            continue
        if not requirement.specifier.contains(found, prereleases=True):
            problems.append(f"{needed_by} needs {requirement}: found {requirement.name} {found}")
    return problems


def check_environment(expect_pins: bool, wheels: Path = WHEELS) -> tuple[dict, list[str]]:
    """``(facts, problems)``: device and versions, and every unmet requirement of medreason and the carried
    wheels; with ``expect_pins`` also every carried package whose running version is not its pin (a
    pre-installed copy shadowing the carried one)."""
    pins = pinned_wheels(wheels)
    problems = unmet(project_requirements(), "medreason")
    for name, pin in pins.items():
        found = installed_version(name)
        if found is None:
            problems.append(f"{name}=={pin} (wheels.txt) is not installed")
            continue
        if expect_pins and found != pin:
            problems.append(f"{name}: wheels.txt pins {pin}, but {found} is the one imported (is SITE first on PYTHONPATH?)")
        requires = [Requirement(spec) for spec in metadata.requires(name) or []]
        problems += unmet([r for r in requires if "extra" not in str(r.marker or "")], f"{name} {found}")
    for module in MODULES:
        try:
            importlib.import_module(module)
        except Exception as error:  # any failure to import is the finding to report
            problems.append(f"import {module} failed: {type(error).__name__}: {error}")
    import torch

    facts = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})",
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if torch.cuda.is_available() else None,
        "versions": {name: installed_version(name) for name in ("torch", "transformers", "trl", "peft", "accelerate",
                                                                "datasets", "sentence-transformers", "tokenizers")},
        "medreason_commit": git_commit(),
        "executable": sys.executable,
    }
    return facts, problems


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The checkout's commit (a device copy of the working tree keeps ``.git``), ``+dirty`` with changes."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def peak_tflops(device: str) -> float | None:
    """The bf16 peak of a known GPU by name, for MFU; ``None`` for others (pass ``--peak-tflops``)."""
    return next((peak for name, peak in PEAK_BF16_TFLOPS.items() if name in device), None)
