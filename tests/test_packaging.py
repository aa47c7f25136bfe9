"""The wheel ships every package and the configs."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_python_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "medreason").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), "add these packages to [tool.setuptools] packages"
    assert "medreason.conf" in listed


def test_recipes_are_reachable_as_the_recipe_config_group():
    link = ROOT / "conf" / "recipe"
    assert link.is_symlink() and link.resolve() == (ROOT / "recipes").resolve()
