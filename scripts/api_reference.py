"""Write docs/api.md: every public name of perturbsim, by namespace, with its summary line.

Run from the repository root after changing a public name or its docstring's first
paragraph: ``python scripts/api_reference.py``. ``tests/test_docs.py`` checks the page is
current. The names are each namespace's ``__all__``; a function's or class's summary is its
docstring's first paragraph, a constant's the docstring under its assignment in the source.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from itertools import pairwise
from pathlib import Path

import perturbsim

NAMESPACES = (
    "perturbsim",
    "perturbsim.pp",
    "perturbsim.tl",
    "perturbsim.pl",
    "perturbsim.ds",
    "perturbsim.io",
    "perturbsim.graphs",
    "perturbsim.models",
)
"""The public namespaces, in the order of the data flow (docs/architecture.md)."""
PAGE = Path("docs/api.md")
"""The page written, relative to the repository root."""
HEADER = """# API reference

Every public name of perturbsim, by namespace, with the first paragraph of its docstring
(`help(name)` in Python gives the whole of it, with parameters and examples). Written by
`python scripts/api_reference.py`; a test checks it is current. The command line is
described by `perturbsim --help` and each command's `--help`.
"""


ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")
"""A reStructuredText role (``:func:`~perturbsim.tl.evaluate```), written as Markdown code."""


def _markdown(match: re.Match[str]) -> str:
    """A role as Markdown code: its target, its last part only after ``~``."""
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _one_line(text: str) -> str:
    """The first paragraph of ``text`` on one line, in Markdown, its table bars escaped."""
    first = " ".join(inspect.cleandoc(text).split("\n\n")[0].split())
    return ROLE.sub(_markdown, first).replace("``", "`").replace("|", "\\|")


def _constant_docs() -> dict[tuple[str, str], str]:
    """Docstrings under module-level assignments in the package's source, by (module, name)."""
    root = Path(perturbsim.__file__).parent
    docs: dict[tuple[str, str], str] = {}
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("perturbsim", *path.relative_to(root).with_suffix("").parts))
        body = ast.parse(path.read_text(encoding="utf-8")).body
        for node, after in pairwise(body):
            targets = (
                node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            )
            text = getattr(getattr(after, "value", None), "value", None)
            if isinstance(after, ast.Expr) and isinstance(text, str):
                for target in targets:
                    if isinstance(target, ast.Name):
                        docs[(module.removesuffix(".__init__"), target.id)] = text
    return docs


def _summary(name: str, obj: object, constants: dict[tuple[str, str], str]) -> tuple[str, str]:
    """How ``name`` is shown (``name()`` if called) and its summary line.

    A function's, class's or module's own docstring (not one it inherits); a constant's, the
    docstring under its assignment in the module whose ``name`` is that very object.
    """
    if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
        shown = name if inspect.ismodule(obj) else f"{name}()"
        return shown, _one_line(obj.__doc__ or "")
    for (module, assigned), text in constants.items():
        if assigned == name and getattr(importlib.import_module(module), name, None) is obj:
            return name, _one_line(text)
    return name, ""


def api_text() -> str:
    """The page's text."""
    constants = _constant_docs()
    lines = [HEADER]
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        lines += [f"## `{namespace}`", "", _one_line(module.__doc__ or ""), ""]
        lines += ["| name | what it is |", "| --- | --- |"]
        for name in module.__all__:
            shown, summary = _summary(name, getattr(module, name), constants)
            lines.append(f"| `{shown}` | {summary} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Write :data:`PAGE`."""
    PAGE.write_text(api_text(), encoding="utf-8")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
