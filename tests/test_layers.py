"""Modules import only from the layers above them, as docs/architecture.md draws them.

Only imports run when a module is loaded count (those at its top level); an import inside a
function is how a reader calls a later layer on purpose, and hints under ``TYPE_CHECKING``
never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "perturbsim"
LAYERS = ["ds", "labels", "pp", "graphs", "module", "train", "models", "tl", "pl", "io", "cli"]
"""The layers of docs/architecture.md's diagram, top to bottom (below the helpers)."""
LABELS = {"pp._labels", "pp._setup", "pp._validate", "pp._label_hint", "pp._writes"}
"""``pp``'s modules in the labels layer, below ``ds`` (read)."""
EXCEPTIONS = {("ds", "pp._setup"), ("ds", "pp._labels")}
"""The diagram's one exception: ``ds``'s readers end in ``pp.setup`` and read labels."""


def layer(module: str) -> int:
    """The layer of a module named from the package root (``"pp._de"``); helpers are 0."""
    top = module.split(".")[0]
    if top.startswith("_"):
        return 0
    name = "labels" if ".".join(module.split(".")[:2]) in LABELS else top
    return 1 + LAYERS.index(name)


def top_level_imports(path: Path) -> list[str]:
    """The package modules ``path`` imports at its top level, named from the package root."""
    here = list(path.relative_to(PACKAGE).parent.parts)
    imported = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not (isinstance(node, ast.ImportFrom) and node.level):
            continue
        base = here[: len(here) - node.level + 1]
        if node.module:
            imported.append(".".join([*base, *node.module.split(".")]))
        else:
            imported += [".".join([*base, alias.name]) for alias in node.names]
    return imported


def package_modules() -> list[tuple[str, Path]]:
    """Every module below the package root's own files, named from the package root."""
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if len(parts) > 1:
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules.append((name, path))
    return modules


def test_layer_names_modules_as_the_diagram_does():
    assert layer("_keys") == 0
    assert layer("ds._stores") < layer("pp._validate") < layer("pp._pseudobulk")
    assert layer("models._stacked") < layer("tl._evaluate") < layer("cli._main")
    assert top_level_imports(PACKAGE / "ds" / "_stores.py")  # the parser sees its imports


@pytest.mark.parametrize(("module", "path"), package_modules(), ids=lambda v: str(v))
def test_imports_come_from_layers_above(module, path):
    below = [
        target
        for target in top_level_imports(path)
        if layer(target) > layer(module) and (module.split(".")[0], target) not in EXCEPTIONS
    ]
    assert not below, f"{module} imports from a later layer: {below} (docs/architecture.md)"
