"""Atomic writes of files and of folders of results: a crash mid-write leaves what was there."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ._errors import PerturbsimError


def new_file_mode() -> int:
    """The permissions of a new file: ``0o666`` less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``.

    Parameters
    ----------
    path
        Destination; its folder is created if absent.
    write
        Writes the content to the path it is given.

    Returns
    -------
    ``path``, with the usual permissions of a new file (``0o666`` less the umask).
    """
    return atomic_write_all({path: write})[0]


def atomic_write_all(writes: Mapping[str | Path, Callable[[Path], object]]) -> list[Path]:
    """Write files that belong together: each to a temporary file, then all renamed into place.

    No destination is replaced before every file is written, so a failure while writing
    (a full disk) leaves them all as they were, never a new one beside an old one; its
    :class:`OSError` names the destination being written.

    Parameters
    ----------
    writes
        Destination -> the function writing its content to the path it is given; each
        destination's folder is created if absent.

    Returns
    -------
    The destinations, in order, with the usual permissions of a new file.
    """
    temporary: dict[Path, Path] = {}
    try:
        for destination, write in writes.items():
            path = Path(destination)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent
                )
                os.close(fd)
                temporary[path] = Path(tmp)
                write(Path(tmp))
                os.chmod(tmp, new_file_mode())
            except OSError as err:  # named by the destination, not the temporary file
                if err.errno is None:
                    raise
                raise OSError(err.errno, err.strerror, str(path)) from err
        for path, tmp in temporary.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)
        raise
    return list(temporary)


RESULTS_MARKER = "settings.json"
"""The file every folder of evaluation results holds (tables, reports)."""
RESULT_FILE = re.compile(r"^(settings\.json|report\.md|report\.html|[^/]+\.csv|[^/]+\.png)$")
"""Names of the files a folder of results holds: what an earlier run may have written."""
STAGING_PREFIX = ".perturbsim-staging-"
"""Prefix of the folder inside ``out`` that new results are written into first."""


def check_results_dir(out: Path, *, overwrite: bool, keep: Sequence[Path] = ()) -> None:
    """Refuse ``out`` unless it is new, empty, or (with ``overwrite``) earlier results.

    Earlier results are plain files named as results are (:data:`RESULT_FILE`: tables,
    plots, reports), :data:`RESULTS_MARKER` among them, in a folder that is not the working
    folder nor above it and holds none of ``keep`` (e.g. the screen read). Anything else is
    never replaced: results written among other files would be mixed with them, and over
    earlier results would keep the files the new ones do not write (another model's
    tables and plots), read as the new run's.

    Raises
    ------
    PerturbsimError
        One line naming the folder, and what in it is not a result's.
    """
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise PerturbsimError(f"{str(out)!r} is a file or a link, not a folder of results")
    entries = sorted(e for e in out.iterdir() if not e.name.startswith(STAGING_PREFIX))
    if not entries:
        return
    where, here = out.resolve(), Path.cwd().resolve()
    if where == here or where in here.parents:  # never worth suggesting overwrite=True
        raise PerturbsimError(
            f"{str(out)!r} holds files: results are written into a new folder or replace a "
            "folder of results, never the working folder or one above it"
        )
    if not overwrite:
        raise PerturbsimError(f"{str(out)!r} already exists; pass overwrite=True to replace it")
    foreign = [
        e for e in entries if e.is_symlink() or not e.is_file() or not RESULT_FILE.match(e.name)
    ]
    foreign += [p for p in keep if p.resolve().parent == where]
    if not (out / RESULTS_MARKER).is_file() or foreign:
        what = (
            f"it holds {foreign[0].name!r}"
            if foreign
            else f"it has no {RESULTS_MARKER} (results of an older version kept none: remove "
            "the folder or choose another)"
        )
        raise PerturbsimError(
            f"overwrite=True replaces earlier results only, and {str(out)!r} is not: {what}"
        )


def write_results_dir(
    out: str | Path, write: Callable[[Path], dict[str, Path]], *, overwrite: bool = False
) -> dict[str, Path]:
    """Write a folder of results: all files first, then each into place, then the old removed.

    ``out`` is checked first (:func:`check_results_dir`). The new files are written into a
    hidden folder inside ``out`` (so ``out`` itself, its permissions and its parent are left
    alone), then each is renamed over its name in ``out``; the earlier results it did not
    rewrite are removed last. A failure while writing leaves the earlier results as they were.

    Parameters
    ----------
    out
        The folder, created if absent.
    write
        Writes the files into the folder it is given; returns file name -> path.
    overwrite
        Replace earlier results in ``out``.

    Returns
    -------
    File name -> path in ``out`` of every file ``write`` wrote.
    """
    out = Path(out)
    check_results_dir(out, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(f"{STAGING_PREFIX}*"):  # of a run that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    earlier = list(out.iterdir())  # plain result files (check_results_dir)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        written = {name: Path(path).name for name, path in write(staging).items()}
        for file in written.values():
            os.replace(staging / file, out / file)
        for entry in earlier:
            if entry.name not in set(written.values()):
                entry.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: out / file for name, file in written.items()}
