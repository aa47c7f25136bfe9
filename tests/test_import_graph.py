"""The import graph of ``medreason`` has no cycles, and every unit stays on its layer.

Every import statement of every module under ``medreason/`` counts: at module level, inside
functions and under ``if TYPE_CHECKING:`` (a function-level import still runs, and a type-only one
still ties the two modules together). Importing ``a.b.c`` also runs ``a/b/__init__.py``, so that is
an edge too, unless the importer is inside ``a.b`` already. Package ``__init__`` facades are modules
like any other.

Two graphs must be acyclic: the one between modules, and the one between *units*: the
subpackages (``medreason.eval``) and top-level modules (``medreason.recipe``) of ``medreason``, with
``medreason/__init__.py`` as the unit ``medreason``.

The units are layered: each imports only units listed before it in :data:`LAYERS` (lowest first).

- ``utils``: logging, JSONL files, encoders, memory, fused LM-head log-probs (DAPO and TTT); imports no
  other unit.
- ``config``: where ``conf/`` lives.
- ``data``: training-record shapes, chat templates and the ``Prompt`` type.
- ``tasks``: the multiple-choice task (record schema, prompt template, grader) that evaluation,
  the RL rewards, the DAPO stage, synthesis and curation share.
- ``engines``: the generation interface and its backends.
- ``testing``: tiny models and data, for the tests and for the ``builtin: tiny`` stage inputs.
- ``stage_context``: what a stage receives (``StageSpec``, ``StageContext``) and its completion markers.
- ``run_summary``: the stage table a run ends with.
- ``rewards``: the RL rewards.
- ``ttt``: test-time training, itself a generation engine.
- ``eval``: benchmark registry, runner, reports and the with/without-TTT comparison.
- ``synth``, ``curate``: the data pipelines; ``curate`` decontaminates against ``eval``'s suites.
- ``trainers``: SFT, DPO and DAPO, and their stages.
- ``hub``: which stages a run pushes to the Hugging Face Hub (checked with the recipe) and the upload.
- ``recipe``: the stage kinds (each kind's config class, builder and runner, imported normally) and
  validation of a run config; it sits above every stage kind.
- ``model_card``, ``run_report``: the ``README.md`` of every trained model and the run's ``report.md``,
  read from the finished run's files.
- ``train``: the Hydra entry point.
- ``medreason``: the top-level facade (lazy, for import speed).
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medreason"

LAYERS = (
    "utils",
    "config",
    "data",
    "tasks",
    "engines",
    "testing",
    "stage_context",
    "run_summary",
    "rewards",
    "ttt",
    "eval",
    "synth",
    "curate",
    "trainers",
    "hub",
    "recipe",
    "model_card",
    "run_report",
    "train",
    "medreason",
)
"""The units of ``medreason``, lowest first: a unit may import only the units before it."""

Edges = dict[str, dict[str, str]]
"""Importer → {imported module: where the import is, ``path:line``}."""


def module_names(package: Path) -> dict[str, Path]:
    """Dotted name → file, for every module of the package rooted at ``package``."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imported(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: set[str]) -> list[str]:
    """The modules of ``modules`` that one import statement imports, by dotted name."""
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = importer.split(".") if is_package else importer.split(".")[:-1]
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
    found = []
    for name in candidates:
        while name and name not in modules:  # `from a.b import f`: the module is a.b
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def import_graph(package: Path) -> Edges:
    """Every import between the modules of the package rooted at ``package``."""
    files = module_names(package)
    edges: Edges = {name: {} for name in files}
    for importer, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        inside = {importer, *_ancestors(importer)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            where = f"{path.relative_to(package.parent)}:{node.lineno}"
            for target in _imported(node, importer, path.name == "__init__.py", set(files)):
                implied = [package for package in _ancestors(target) if package not in inside]
                for module in [target, *implied]:
                    if module != importer:
                        edges[importer].setdefault(module, where)
    return edges


def unit(module: str) -> str:
    """The unit a module belongs to: ``medreason.eval.runner`` → ``eval``; the facade → ``medreason``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def unit_graph(edges: Edges) -> Edges:
    """Importing unit → {imported unit: one module-level import that makes the edge}."""
    units: Edges = {}
    for importer, targets in edges.items():
        imported = units.setdefault(unit(importer), {})
        for target, where in targets.items():
            if unit(target) != unit(importer):
                imported.setdefault(unit(target), f"{importer} -> {target} ({where})")
    return units


def find_cycle(edges: Edges) -> list[str] | None:
    """One cycle of ``edges`` as ``[a, b, ..., a]``, or ``None`` when the graph is acyclic."""
    state: dict[str, str] = {}  # "open" while on the DFS stack, then "done"
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def describe(cycle: list[str], edges: Edges) -> str:
    """One line per hop of ``cycle``, with the import that makes it."""
    return "\n".join(f"  {a} -> {b}: {edges[a][b]}" for a, b in itertools.pairwise(cycle))


@pytest.fixture(scope="module")
def edges() -> Edges:
    return import_graph(PACKAGE)


def test_no_cycle_between_modules(edges):
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle between modules:\n" + describe(cycle, edges)


def test_no_cycle_between_units(edges):
    units = unit_graph(edges)
    cycle = find_cycle(units)
    assert cycle is None, "import cycle between medreason units:\n" + describe(cycle, units)


def test_every_unit_has_a_layer(edges):
    units = {unit(module) for module in edges}
    assert units - set(LAYERS) == set(), "place these units in LAYERS (and say why in the docstring)"
    assert set(LAYERS) - units == set(), "these LAYERS entries no longer exist: remove them"


def test_units_import_only_lower_layers(edges):
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [
        f"  {importer} imports {target}, which is above it: {where}"
        for importer, targets in unit_graph(edges).items()
        for target, where in targets.items()
        if rank.get(target, -1) > rank.get(importer, len(LAYERS))
    ]
    assert not upward, "imports against the layering of LAYERS:\n" + "\n".join(upward)


def test_graph_counts_function_level_type_checking_and_package_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("from pkg.low.a import f\n")
    (package / "low" / "a.py").write_text("def f():\n    from pkg.high import g\n")
    (package / "high.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .low.a import f\ndef g(): ...\n"
    )
    edges = import_graph(package)
    assert edges["pkg.high"] == {"pkg.low.a": "pkg/high.py:3", "pkg.low": "pkg/high.py:3"}
    assert find_cycle(edges) == ["pkg.high", "pkg.low", "pkg.low.a", "pkg.high"]
    assert find_cycle(unit_graph(edges)) == ["high", "low", "high"]


def test_top_level_facade_resolves_every_name():
    """``from medreason import X`` gives the subpackage's own object for every name it lists."""
    import medreason
    from medreason import trainers, ttt

    for name in set(medreason.__all__) - {"__version__"}:
        owner = ttt if name in ttt.__all__ else trainers
        assert getattr(medreason, name) is getattr(owner, name), name
