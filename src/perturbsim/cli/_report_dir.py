"""The folder a command writes its report into: refused when it holds anything else.

A report written over another would keep the files the new one does not write (another
model's tables and plots), read as the new run's; so a previous report is replaced whole,
and only a folder that holds nothing but a report's files (``report.md`` among them) is.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import PerturbsimError

if TYPE_CHECKING:
    from ..tl import EvaluationResult

REPORT_FILE = "report.md"
"""The file every report folder holds."""


def check_report_dir(out: Path, *, overwrite: bool, keep: Sequence[Path] = ()) -> None:
    """Refuse ``out`` unless it is new, empty, or (with ``overwrite``) a previous report.

    A previous report is a folder of plain files, :data:`REPORT_FILE` among them, that is
    not the working folder nor above it and holds none of ``keep`` (e.g. the screen read).

    Raises
    ------
    PerturbsimError
        One line naming the folder, and what in it is not a report's.
    """
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise PerturbsimError(f"--out {str(out)!r} is a file or a link, not a report folder")
    entries = sorted(out.iterdir())
    if not entries:
        return
    if not overwrite:
        raise PerturbsimError(f"{str(out)!r} already exists; pass --overwrite to replace it")
    where, here = out.resolve(), Path.cwd().resolve()
    if where == here or where in here.parents:
        raise PerturbsimError(
            f"--overwrite replaces a report folder, never the working folder or one above it "
            f"({str(out)!r})"
        )
    foreign = [e for e in entries if e.is_symlink() or not e.is_file()]
    foreign += [p for p in keep if p.resolve().parent == where]
    if not (out / REPORT_FILE).is_file() or foreign:
        what = f"it holds {foreign[0].name!r}" if foreign else f"it has no {REPORT_FILE}"
        raise PerturbsimError(
            f"--overwrite replaces a previous report only, and {str(out)!r} is not one: {what}"
        )


def write_report_dir(result: EvaluationResult, out: Path, *, title: str) -> None:
    """:func:`~perturbsim.io.write_report` into a new folder, then put it in ``out``'s place.

    ``out`` was checked by :func:`check_report_dir`: the files of a previous report there
    are removed only once the new report is complete, and a failed write leaves it as it was.
    """
    from ..io import write_report

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_report(result, staging, title=title)
        if out.exists():
            for entry in out.iterdir():  # plain files only (check_report_dir)
                entry.unlink()
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # the folder this function made
        raise
