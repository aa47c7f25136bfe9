"""Every Python block and shell command of README.md and docs/*.md runs here, or is marked as needing
what a CPU test machine lacks, so the docs cannot drift from the code.

The HTML comment on the line right above a block's opening fence decides (docs/getting_started.md,
"Tested docs"):

- none: the block runs as written. The ``python`` blocks of one file run in order in one namespace,
  like a notebook; each command of a ``bash``/``sh`` block must exit 0; each ``$ command`` of a
  ``console`` block must print the lines shown under it.
- ``<!-- docs-test: dry-run -->``: the same, with ``dry_run=true`` added to ``medreason.train``
  commands (a real run takes minutes; ``tests/test_train.py`` runs the tiny recipe for real).
- ``<!-- docs-test: skip, REASON -->``: not run. REASON is one of :data:`SKIP_REASONS`, or
  ``runs in PATH`` where PATH is a file of the repository that runs it (``.ci/run``, a test).

The switch, :data:`STAND_INS`: every hub model and user file a runnable block names gets a tiny
stand-in at that path in the block's fresh working directory (the tiny random model, tiny records),
so the blocks keep exactly what a user would type. Commands run as ``python -m`` would run them, but
inside this process (``runpy``), so torch and transformers are imported once.
"""

from __future__ import annotations

import logging
import re
import runpy
import shlex
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from medreason.testing import tiny_benchmark_records, tiny_records
from medreason.utils.jsonl import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = ("bash", "sh", "console")
SKIP_REASONS = ("needs a GPU", "needs the Hub", "needs your data", "needs the network", "is a benchmark")
MARKER = re.compile(r"<!-- docs-test: (?:(?P<dry_run>dry-run)|skip, (?P<reason>[^>]+?)) -->")

STAND_INS = {
    # hub models and the user's checkpoints -> the tiny random Qwen3 (medreason.testing.build_tiny_model_dir)
    "meta-llama/Llama-3.1-8B": "model",
    "out/o1_sft/final": "model",
    "outputs/medreason/sft/final": "model",
    # the user's records -> medreason.testing.tiny_records (question, cot, response, department, ...)
    "finemed.jsonl": "records",
    "train.jsonl": "records",
    # evaluation data folders -> medqa.jsonl and pubmedqa.jsonl of medreason.testing.tiny_benchmark_records
    "data/eval": "benchmarks",
    "../shared/data/eval": "benchmarks",
}
"""The one switch: a name the docs use (a path relative to the block's working directory) -> its stand-in."""


@dataclass(frozen=True)
class Block:
    """A fenced block of a markdown file: where it opens, its language, its text and its marker."""

    path: Path
    line: int
    language: str
    text: str
    marker: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def dry_run(self) -> bool:
        return self.marker == "<!-- docs-test: dry-run -->"

    @property
    def skipped(self) -> bool:
        return self.marker is not None and self.marker.startswith("<!-- docs-test: skip")


def read_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, with the ``<!-- docs-test ... -->`` line right above it, if any."""
    lines, blocks, index = path.read_text().splitlines(), [], 0
    while index < len(lines):
        opening = re.fullmatch(r"```(\w*)", lines[index].strip())
        if opening is None:
            index += 1
            continue
        end = next((i for i in range(index + 1, len(lines)) if lines[i].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{path}:{index + 1}: the block opened here is never closed")
        above = lines[index - 1].strip() if index else ""
        marker = above if above.startswith("<!-- docs-test") else None
        blocks.append(Block(path, index + 1, opening[1], "\n".join(lines[index + 1 : end]), marker))
        index = end + 1
    return blocks


BLOCKS = [block for path in MARKDOWN_FILES for block in read_blocks(path)]
RUN_PYTHON = sorted({b.path for b in BLOCKS if b.language == "python" and not b.skipped})
RUN_SHELL = [b for b in BLOCKS if b.language in SHELLS and not b.skipped]


def marker_problem(block: Block) -> str | None:
    """Why ``block``'s marker is wrong, or None when it is fine (or absent)."""
    if block.marker is None:
        return None
    match = MARKER.fullmatch(block.marker)
    if match is None:
        return "write <!-- docs-test: skip, REASON --> or <!-- docs-test: dry-run -->"
    if block.language not in ("python", *SHELLS):
        return f"only python and {'/'.join(SHELLS)} blocks run; a {block.language or 'plain'} block needs no marker"
    if match["dry_run"]:
        return None if block.language in SHELLS else "dry-run marks shell blocks only"
    reason = match["reason"]
    if reason.startswith("runs in "):
        missing = [p for p in reason.removeprefix("runs in ").split(" and ") if not (ROOT / p).is_file()]
        return f"no such file: {missing}" if missing else None
    return None if reason in SKIP_REASONS else f"unknown reason {reason!r}: use one of {SKIP_REASONS} or 'runs in PATH'"


def shell_commands(block: Block) -> list[tuple[list[str], list[str]]]:
    """The commands of a shell block as argv lists, each with the output lines shown under it (console)."""
    commands: list[tuple[list[str], list[str]]] = []
    for line in block.text.replace("\\\n", " ").splitlines():
        if block.language == "console" and not line.startswith("$ "):
            if line.strip():
                commands[-1][1].append(line.strip())
            continue
        argv = shlex.split(line.removeprefix("$ "), comments=True)
        if argv:
            commands.append((argv, []))
    return commands


@contextmanager
def restored_logging() -> Iterator[None]:
    """Undo what an entry point does to logging (Hydra's handlers, ``train.log``), for the next tests."""
    loggers = [logging.getLogger(), logging.getLogger("medreason")]
    saved = [(logger, logger.level, list(logger.handlers)) for logger in loggers]
    try:
        yield
    finally:
        for logger, level, handlers in saved:
            for handler in set(logger.handlers) - set(handlers):
                handler.close()
            logger.setLevel(level)
            logger.handlers[:] = handlers


def run_command(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``python -m medreason.X ARGS`` in this process as the interpreter would; return its exit status."""
    monkeypatch.setattr(sys, "argv", ["python", *argv[3:]])
    with restored_logging(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is already imported
        try:
            runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
        except SystemExit as exit_:
            if exit_.code is None or isinstance(exit_.code, int):
                return exit_.code or 0
            sys.stderr.write(f"{exit_.code}\n")
            return 1
    return 0


@pytest.fixture
def workdir(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working directory holding every :data:`STAND_INS` name: the current directory of the test."""
    work = tmp_path / "work"
    for name, kind in STAND_INS.items():
        target = work / name
        if kind == "model":
            shutil.copytree(tiny_model_dir, target)  # a copy: a block may write next to its model
        elif kind == "records":
            write_jsonl(target, tiny_records(8))
        elif kind == "benchmarks":
            for benchmark in ("medqa", "pubmedqa"):
                write_jsonl(target / f"{benchmark}.jsonl", tiny_benchmark_records())
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path))  # caches under ~ (TTT embeddings) stay in the test's folder
    monkeypatch.delenv("MEDREASON_EVAL_DATA", raising=False)
    # one thread runs the tiny model fastest; two spin against each other on a busy machine (~30x slower)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield work
    torch.set_num_threads(threads)


def test_markdown_markers_are_known_and_sit_right_above_a_block():
    problems = [f"{b.name}: {problem}" for b in BLOCKS if (problem := marker_problem(b))]
    lines = [line.strip() for path in MARKDOWN_FILES for line in path.read_text().splitlines()]
    markers = sum(line.startswith("<!-- docs-test") for line in lines)
    assert not problems, problems
    assert markers == sum(b.marker is not None for b in BLOCKS), "a docs-test marker is not right above a fence"


@pytest.mark.parametrize("path", RUN_PYTHON, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_python_blocks_run(path: Path, workdir: Path):
    namespace: dict = {"__name__": "__main__"}
    for block in BLOCKS:
        if block.path == path and block.language == "python" and not block.skipped:
            # padded so that a traceback's line numbers are the markdown file's
            code = compile("\n" * block.line + block.text, str(path), "exec")
            with restored_logging():
                exec(code, namespace)


@pytest.mark.parametrize("block", RUN_SHELL, ids=lambda b: b.name)
def test_markdown_commands_run(block: Block, workdir: Path, monkeypatch: pytest.MonkeyPatch, capfd):
    for argv, shown in shell_commands(block):
        if argv[:2] != ["python", "-m"] or not argv[2].startswith("medreason"):
            pytest.fail(f"{block.name}: `{shlex.join(argv)}` is not a medreason command the test can run: "
                        "mark the block <!-- docs-test: skip, REASON -->")
        if block.dry_run and argv[2] == "medreason.train" and "dry_run=true" not in argv:
            argv = [*argv[:3], "dry_run=true", *argv[3:]]  # before any --flag, where Hydra takes overrides
        status = run_command(argv, monkeypatch)
        output = "".join(capfd.readouterr())
        # a console block shows the output to expect (an error, its exit status); other blocks must succeed
        assert status == 0 or block.language == "console", f"{shlex.join(argv)} exited {status}:\n{output[-3000:]}"
        missing = [line for line in shown if line not in output]
        assert not missing, f"{shlex.join(argv)} did not print {missing}:\n{output[-3000:]}"
