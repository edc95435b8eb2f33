"""Modules import only from the layers above them, as docs/architecture.md draws them.

The helpers (the package root's own modules) import only one another. The imports read are
the statements of a module's top level: an import inside a function is how a reader calls a
later layer on purpose, and hints under ``if TYPE_CHECKING:`` never run (the package has no
other top-level ``if`` or ``try`` block holding imports, which would not be read).
"""

from __future__ import annotations

import ast
import sys
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


def _from_root(name: str) -> str | None:
    """``perturbsim.pp._de`` -> ``pp._de``; ``None`` for another package or the root itself."""
    top, _, rest = name.partition(".")
    return rest or None if top == PACKAGE.name else None


def top_level_imports(path: Path) -> list[str]:
    """The package modules ``path`` imports at its top level, named from the package root.

    Relative (``from ..pp import x``) and absolute (``from perturbsim.pp import x``,
    ``import perturbsim.pp``) imports alike.
    """
    here = list(path.relative_to(PACKAGE).parent.parts)
    imported = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            imported += [_from_root(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            imported.append(_from_root(node.module or ""))
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1]
            if node.module:
                imported.append(".".join([*base, *node.module.split(".")]))
            else:
                imported += [".".join([*base, alias.name]) for alias in node.names]
    return [name for name in imported if name]


def package_modules() -> list[tuple[str, Path]]:
    """Every module of the package but its own ``__init__`` and ``__main__``, from its root."""
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts not in (("__init__",), ("__main__",)):
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules.append((name, path))
    return modules


def test_layer_names_modules_as_the_diagram_does(tmp_path, monkeypatch):
    assert layer("_keys") == 0
    assert layer("ds._stores") < layer("pp._validate") < layer("pp._pseudobulk")
    assert layer("models._stacked") < layer("tl._evaluate") < layer("cli._main")
    # every form of import is read, hints and imports inside functions are not
    module = tmp_path / "perturbsim" / "ds" / "_example.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from typing import TYPE_CHECKING\nimport numpy\nimport perturbsim.tl\n"
        "from perturbsim.pl import plots\nfrom ..models import Stacked\nfrom . import _read\n"
        "if TYPE_CHECKING:\n    from ..cli import main\n"
        "def f():\n    from ..io import write\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "perturbsim")
    assert top_level_imports(module) == ["tl", "pl", "models", "ds._read"]


@pytest.mark.parametrize(("module", "path"), package_modules(), ids=lambda v: str(v))
def test_imports_come_from_layers_above(module, path):
    below = [
        target
        for target in top_level_imports(path)
        if layer(target) > layer(module) and (module.split(".")[0], target) not in EXCEPTIONS
    ]
    assert not below, f"{module} imports from a later layer: {below} (docs/architecture.md)"
