"""Atomic writes of files and of folders of results: a failure mid-write leaves what was there.

A file is replaced by one rename, so even a killed process leaves the old file or the new
one. Files that belong together are renamed in one after the other, each over its old file:
an error on the way puts the old ones back, but a process killed during those renames (a
moment, after everything was written) can leave some files new and some old.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ._checks import as_path, check_flag
from ._errors import PerturbsimError, error_reason, os_reason

logger = logging.getLogger(__name__)


def new_file_mode() -> int:
    """The permissions of a new file: ``0o666`` less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _on_read_only_file_system(path: Path) -> bool:
    """Whether ``path`` lies on a file system mounted read-only (never, where unknown)."""
    statvfs = getattr(os, "statvfs", None)  # POSIX only
    try:
        return bool(statvfs is not None and statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:  # a file system that cannot say: the write itself will tell
        return False


def check_writable_place(path: Path, what: str, *, folder: bool = False) -> None:
    """Refuse ``path`` where nothing can be written: a file on its way, a folder not writable.

    Checked before any work, so that a long run does not end in the error. The nearest
    folder of ``path`` that exists (``path`` itself too, with ``folder``: a folder that
    files are written into) must be a folder this process may write into, on a file system
    that is not read-only; the folders below it are created when the file is written.

    Raises
    ------
    PerturbsimError
        ``"cannot write {what} {path}: ..."`` naming the file on the way or the folder.
    """
    places = (path, *path.parents) if folder else (path.parent, *path.parent.parents)
    above = next(place for place in places if place.exists())
    if not above.is_dir():
        raise PerturbsimError(
            f"cannot write {what} {str(path)!r}: {str(above)!r} is a file, not a folder"
        )
    if _on_read_only_file_system(above):
        raise PerturbsimError(
            f"cannot write {what} {str(path)!r}: {str(above)!r} is on a read-only file system"
        )
    if not os.access(above, os.W_OK | os.X_OK):
        raise PerturbsimError(
            f"cannot write {what} {str(path)!r}: no permission to write into {str(above)!r}"
        )


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
    :class:`OSError` names the destination being written. A failure while renaming (a
    destination that is a folder) puts back the files already replaced.

    Parameters
    ----------
    writes
        Destination -> the function writing its content to the path it is given (a path
        with the destination's name, not yet created); each destination's folder is created
        if absent.

    Returns
    -------
    The destinations, in order, with the usual permissions of a new file.

    Raises
    ------
    PerturbsimError
        If two destinations are the same file, a function writes nothing to its path, or
        raises a :class:`RuntimeError` (h5py's, when the disk fills), named by its
        destination.
    """
    paths = [Path(destination) for destination in writes]
    resolved: set[Path] = set()
    for path in paths:
        if path.resolve() in resolved:
            raise PerturbsimError(f"{str(path)!r} is to be written twice in one set of files")
        resolved.add(path.resolve())
    folders: list[Path] = []
    staged: dict[Path, Path] = {}
    try:
        for path, write in zip(paths, writes.values(), strict=True):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                folders.append(Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)))
                staged[path] = folders[-1] / path.name
                write(staged[path])
                if not staged[path].is_file():
                    raise PerturbsimError(f"nothing was written for {str(path)!r}")
                _sync(staged[path])
            except OSError as err:  # named by the destination, not the temporary file
                if err.errno is None:
                    raise
                raise OSError(err.errno, err.strerror, str(path)) from err
            except RuntimeError as err:  # h5py's, when the disk fills mid-write
                raise PerturbsimError(f"cannot write {str(path)!r}: {error_reason(err)}") from None
        replace_together(
            staged, {path: new.parent / f".{path.name}.old" for path, new in staged.items()}
        )
    finally:
        for folder in folders:
            discard(folder)
    return paths


def _sync(path: Path) -> None:
    """Flush a written file to the disk, so that a crash after its rename finds it whole."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_together(new_files: Mapping[Path, Path], backups: Mapping[Path, Path]) -> None:
    """Rename each new file over its destination; on a failure, put back those replaced.

    Each destination's old file (or link) is first linked to its backup path, which must
    lie on its file system, so that every rename stays atomic and the old file can be put
    back; where hard links are refused it is moved there instead (the destination is then
    absent until its new file is renamed in). The backups are removed once every file is in
    place; one that could not be put back is left where it is, and logged.

    Parameters
    ----------
    new_files
        Destination -> the new file to rename over it.
    backups
        Destination -> where to keep its old file while the others are renamed.
    """
    replaced: list[tuple[Path, Path, Path | None]] = []
    try:
        for path, new in new_files.items():
            old = None
            if os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
                old = backups[path]
                _keep_aside(path, old)
            replaced.append((path, new, old))  # before the rename: a failure puts it back
            try:
                os.replace(new, path)
            except OSError as err:  # named by the destination, not the temporary file
                if err.errno is None:
                    raise
                raise OSError(err.errno, err.strerror, str(path)) from err
    except BaseException:
        _put_back(replaced)
        raise
    for _, _, old in replaced:
        if old is not None:
            old.unlink(missing_ok=True)


def _keep_aside(path: Path, old: Path) -> None:
    """Link ``path`` (a file or a link, not followed) to ``old``; move it there if refused."""
    try:
        os.link(path, old, follow_symlinks=False)
    except OSError:  # no hard links on this file system, or not allowed
        os.replace(path, old)


def _put_back(replaced: Sequence[tuple[Path, Path, Path | None]]) -> None:
    """Undo :func:`replace_together`'s renames, last first; log what cannot be undone."""
    for path, new, old in reversed(replaced):
        try:
            if os.path.lexists(new):  # never renamed into place
                if old is not None and not os.path.lexists(path):  # moved aside
                    os.replace(old, path)
                elif old is not None:
                    old.unlink()
            elif old is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(old, path)
        except OSError as err:
            logger.error("could not put back %s (its former content: %s): %s", path, old, err)


def discard(folder: Path) -> None:
    """Remove a temporary folder, unless it keeps a file that could not be put back."""
    if not any(p.name.startswith(".") and p.name.endswith(".old") for p in folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)


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
        One line naming the folder, and what in it is not a result's (whatever
        ``overwrite``: it would not replace it), or that it holds earlier results and
        ``overwrite`` is not given.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise PerturbsimError(f"{str(out)!r} is a file or a link, not a folder of results")
    check_writable_place(out, "results to", folder=True)
    if not out.exists():
        return
    entries = sorted(e for e in out.iterdir() if not e.name.startswith(STAGING_PREFIX))
    if not entries:
        return
    where, here = out.resolve(), Path.cwd().resolve()
    if where == here or where in here.parents:  # never worth suggesting overwrite=True
        raise PerturbsimError(
            f"{str(out)!r} holds files: results are written into a new folder or replace a "
            "folder of results, never the working folder or one above it"
        )
    foreign = [
        e for e in entries if e.is_symlink() or not e.is_file() or not RESULT_FILE.match(e.name)
    ]
    foreign += [p for p in keep if p.resolve().parent == where]
    if not (out / RESULTS_MARKER).is_file() or foreign:
        what = (
            f"it holds {foreign[0].name!r}: choose another folder"
            if foreign
            else f"it has no {RESULTS_MARKER} (results of an older version kept none: remove "
            "the folder or choose another)"
        )
        raise PerturbsimError(
            f"{str(out)!r} is not a folder of earlier results, which alone are replaced: {what}"
        )
    if not overwrite:
        raise PerturbsimError(f"{str(out)!r} already exists; pass overwrite=True to replace it")


def write_results_dir(
    out: str | Path, write: Callable[[Path], dict[str, Path]], *, overwrite: bool = False
) -> dict[str, Path]:
    """Write a folder of results: all files first, then each into place, then the old removed.

    ``out`` is checked first (:func:`check_results_dir`). The new files are written into a
    hidden folder inside ``out`` (so ``out`` itself, its permissions and its parent are left
    alone), then each is renamed over its name in ``out``; the earlier results it did not
    rewrite are removed last. A failure while writing, or an error while renaming, leaves
    the earlier results as they were (a process killed during the renames can leave some
    files of each run: the module's note). Hidden folders of killed runs are removed
    first, except one keeping a former file that could not be put back.

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
    out = as_path("out_dir", out)
    check_results_dir(out, overwrite=check_flag("overwrite", overwrite))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file on the way, no permission
        raise PerturbsimError(f"cannot write results to {str(out)!r}: {os_reason(err)}") from None
    for leftover in out.glob(f"{STAGING_PREFIX}*"):  # of a run that was killed
        if leftover.is_dir() and not leftover.is_symlink():
            discard(leftover)  # kept where it holds a former file that could not be put back
    # plain result files (check_results_dir), not a staging folder kept for what it holds
    earlier = [e for e in out.iterdir() if not e.name.startswith(STAGING_PREFIX)]
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        written = {name: Path(path).name for name, path in write(staging).items()}
        replace_together(
            {out / file: staging / file for file in written.values()},
            {out / file: staging / f".{file}.old" for file in written.values()},
        )
        for entry in earlier:
            if entry.name not in set(written.values()):
                entry.unlink()
    finally:
        discard(staging)
    return {name: out / file for name, file in written.items()}
