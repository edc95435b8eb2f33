"""The options every ``perturbsim`` command takes, and how a sub-command is added with them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._errors import PerturbsimError


def common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """A parent parser of the options every command takes, before or after its name.

    With ``suppress`` (the sub-commands' copy) the options have no defaults, so that one
    given before the command's name is not reset by the sub-command's default.
    """
    common = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else False
    common.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log progress (INFO)"
    )
    common.add_argument(
        "--no-progress", action="store_true", default=default, help="hide progress bars"
    )
    return common


def add_command(
    commands: argparse._SubParsersAction, name: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """``commands.add_parser(name, **kwargs)`` with the :func:`common_options`."""
    return commands.add_parser(name, parents=[common_options(suppress=True)], **kwargs)


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--overwrite``: replace ``what`` (the command's ``--out``) when it exists."""
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what}")


def refuse_existing(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``--out`` unless ``--overwrite`` (before any work)."""
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise PerturbsimError(f"{str(out)!r} already exists; pass --overwrite to replace it")


COUNTS: dict[str, str] = {
    "epochs": "--epochs",
    "n_models": "--n-models",
    "seeds": "--seeds",
    "gi_k": "--gi-k",
    "n_cells": "--n-cells",
    "budget": "--budget",
}
"""Options that count something (argparse name -> flag): each must be at least 1."""


def check_counts(args: argparse.Namespace) -> None:
    """Refuse a count option (:data:`COUNTS`) below 1, naming it and its value.

    Raises
    ------
    PerturbsimError
        One line, e.g. ``--epochs must be at least 1, got 0``.
    """
    for dest, flag in COUNTS.items():
        value = getattr(args, dest, None)
        if value is not None and value < 1:
            raise PerturbsimError(f"{flag} must be at least 1, got {value}")
