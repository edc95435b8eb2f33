"""The options every ``perturbsim`` command takes, and how a sub-command is added with them."""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py

from .._atomic import check_writable_place
from .._checks import check_file
from .._errors import PerturbsimError, os_reason
from .._keys import PRED_MODEL, UNS
from ..models._store import CONFIG_FILE, WEIGHTS_FILE


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


def read_list(
    path: Path, flag: str, what: str, *, allow_empty: bool = False, joiners: str = ""
) -> list[str]:
    """The items of a text file given as ``flag``, one a line.

    Blank lines and text after ``#`` are ignored; a UTF-8 byte-order mark (as spreadsheet
    programs write) is dropped. With ``allow_empty`` a file of no item is an empty list
    (e.g. ``--measured``: nothing measured yet). A line holding one of ``joiners``
    (characters no item holds, e.g. ``", "`` for genes; a condition label may hold white
    space in its separator) holds several items.

    A pipe is read as a file is (a shell's ``<(cat genes.txt)``).

    Raises
    ------
    PerturbsimError
        One line naming the file: missing, a folder or another non-regular file (a device),
        not UTF-8 text (or holding NUL bytes: a binary file), holding no item, or several
        items on one line.
    """
    try:
        if not _is_pipe(path):
            check_file(path, f"{what} file")
    except PerturbsimError as error:
        raise PerturbsimError(f"{flag}: {error}") from None
    text, reason = "", ""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        reason = "it is not UTF-8 text"
    except OSError as error:
        reason = os_reason(error)
    if "\x00" in text:
        reason = "it holds NUL bytes: a binary file"
    if reason:
        raise PerturbsimError(
            f"{flag}: cannot read {str(path)!r} as a list of {what}, one a line ({reason})"
        )
    items = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    items = [item for item in items if item]
    for item in items:
        joiner = next((c for c in item if c in joiners), None)
        if joiner is not None:
            raise PerturbsimError(
                f"{flag}: the line {item!r} of {str(path)!r} holds several {what} joined by "
                f"{joiner!r}: give one a line"
            )
    if not items and not allow_empty:
        raise PerturbsimError(
            f"{flag}: no {what} in {str(path)!r} (one a line, # starts a comment)"
        )
    return items


def _is_pipe(path: Path) -> bool:
    """Whether ``path`` is a pipe (a FIFO; a shell's process substitution gives one)."""
    try:
        return stat.S_ISFIFO(path.stat().st_mode)
    except OSError:
        return False  # missing or unreachable: check_file names why


FIGURE_DPI = 110
"""Resolution of the figures the commands write (GI maps, fitness plots)."""


def path_argument(text: str) -> Path:
    """A path given on the command line, refused when empty (``Path("")`` is ``.``).

    Examples
    --------
    >>> path_argument("model")
    PosixPath('model')
    """
    if not text:
        raise argparse.ArgumentTypeError("an empty path: give a name")
    return Path(text)


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--overwrite``: replace ``what`` (the command's ``--out``) when it exists."""
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what}")


WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
"""Permission bits of a file anyone may write (none set: read-only, never replaced)."""


def refuse_existing(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``--out`` unless ``--overwrite``, and a read-only one always.

    A write replaces a file by renaming a new one over it, which its own permissions do not
    stop (its folder's do): a file no one may write is refused here instead, before any work.
    A symbolic link is replaced itself, never what it points to, so it is not checked.
    """
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise PerturbsimError(f"{str(out)!r} already exists; pass --overwrite to replace it")
    if _plain_file(out) and not out.stat().st_mode & WRITE_BITS:
        raise PerturbsimError(
            f"{str(out)!r} is read-only, which perturbsim never replaces: choose another --out"
        )


def _plain_file(path: Path) -> bool:
    """Whether ``path`` is a file itself (not a link to one)."""
    return path.is_file() and not path.is_symlink()


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
"""The bytes an HDF5 file starts with (after a user block of 512 x 2^k bytes, if any)."""


def _holds_hdf5(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file (its signature at 0 or at 512, 1024, ... bytes)."""
    with path.open("rb") as file:
        size, offset = path.stat().st_size, 0
        while offset + len(HDF5_SIGNATURE) <= size:
            file.seek(offset)
            if file.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
            offset = max(512, 2 * offset)
    return False


def _refuse_other_h5ad(out: Path) -> None:
    """Refuse to replace an HDF5 file that is not a prediction (a screen, say).

    A file that is no HDF5 holds nothing of a screen, and is replaced; one that cannot be
    read to tell (unreadable, locked by another program) is refused.
    """
    try:
        if not _holds_hdf5(out):
            return
        with h5py.File(out, "r") as stored:
            prediction = f"uns/{UNS}/{PRED_MODEL}" in stored
    except OSError as err:
        raise PerturbsimError(
            f"cannot read {str(out)!r} to check that it is a prediction before replacing it "
            f"({os_reason(err)}): choose another --out"
        ) from err
    if not prediction:
        raise PerturbsimError(
            f"{str(out)!r} is an h5ad file of no perturbsim prediction (a screen?): --overwrite "
            "replaces only a prediction; choose another --out"
        )


def output_file(text: str, suffixes: Sequence[str]) -> Path:
    """The path of a ``--out FILE`` option given as text, refused unless it ends in ``suffixes``.

    ``Path("out/")`` is ``Path("out")``: without the check a folder meant by the slash
    would be written as a file of that name. The suffix says the format written (CSV text
    in a file named ``.h5ad`` would be read as neither); case does not matter.
    """
    if text.endswith(("/", os.sep)):
        raise PerturbsimError(f"--out {text!r} ends in a separator; give a file name")
    out = Path(text)
    if out.suffix.lower() not in suffixes:
        raise PerturbsimError(
            f"--out must be a file name ending in {' or '.join(suffixes)}, got {text!r}"
        )
    return out


def _refuse_reading(out: Path, targets: set[Path], inputs: Sequence[Path]) -> None:
    """Refuse ``--out`` ``out`` if writing ``targets`` would replace or enter an input."""
    where = out.resolve()
    for read in (p.resolve() for p in inputs if p.exists()):
        if read in targets or (read.is_dir() and (read == where or read in where.parents)):
            raise PerturbsimError(
                f"--out {str(out)!r} would write over or into {str(read)!r}, which this "
                "command reads: choose another --out"
            )


def refuse_output_file(out: Path, overwrite: bool, *, inputs: Sequence[Path] = ()) -> None:
    """Refuse a ``--out`` file that is a folder, replaces one of ``inputs`` or enters one.

    An existing file is refused unless ``--overwrite``; a folder, a path that is or lies
    inside one of ``inputs`` (what the command reads), a file beside a saved model, a
    read-only file, or an h5ad file other than a prediction, always, before any work.
    """
    if out.is_dir():
        raise PerturbsimError(f"--out {str(out)!r} is a folder; give a file name")
    check_writable_place(out, "--out")
    _refuse_reading(out, {out.resolve()}, inputs)
    refuse_model_folder(out.parent)
    refuse_existing(out, overwrite)
    if _plain_file(out) and out.suffix.lower() == ".h5ad":
        _refuse_other_h5ad(out)


def holds_saved_model(folder: Path) -> bool:
    """Whether ``folder`` holds a saved model: its config and weights."""
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def refuse_model_folder(folder: Path) -> None:
    """Refuse to write into a folder holding a saved model, or into a folder inside one."""
    for place in (folder, *folder.resolve().parents):
        if holds_saved_model(place):
            raise PerturbsimError(
                f"{str(place)!r} holds a saved model ({CONFIG_FILE}): write --out outside it "
                "(files beside a model's, or in folders beside them, would stop it being "
                "replaced by a new training)"
            )


def refuse_outputs(
    folder: Path,
    names: Sequence[str],
    overwrite: bool,
    *,
    inputs: Sequence[Path] = (),
) -> None:
    """Refuse to write files ``names`` into ``--out`` ``folder`` where they would replace one.

    An existing file is refused unless ``--overwrite``; one of ``inputs`` (what the command
    reads: the screen, a list, the model's folder) always, before any work; so is a folder
    holding a saved model.
    """
    if folder.exists() and not folder.is_dir():
        raise PerturbsimError(f"--out {str(folder)!r} is a file, not a folder")
    check_writable_place(folder / names[0] if names else folder, "--out")
    _refuse_reading(folder, {(folder / name).resolve() for name in names}, inputs)
    refuse_model_folder(folder)
    for name in names:
        refuse_existing(folder / name, overwrite)


COUNTS: dict[str, str] = {
    "epochs": "--epochs",
    "n_models": "--n-models",
    "seeds": "--seeds",
    "gi_k": "--gi-k",
    "n_cells": "--n-cells",
    "budget": "--budget",
    "min_cells": "--min-cells",
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
