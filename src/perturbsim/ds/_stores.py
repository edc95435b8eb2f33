"""Open an AnnData screen stored on disk: an h5ad file or a zarr store, in memory or lazily."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import anndata as ad
import pandas as pd

from .._checks import check_file
from .._errors import PerturbsimError, error_reason

READ_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError, AttributeError)
"""What h5py, zarr and anndata raise on a file or store that is not complete AnnData (not
HDF5 or zarr, truncated, corrupted, or without AnnData's groups)."""
logger = logging.getLogger(__name__)

SUFFIXES = (".h5ad", ".zarr")
"""The stores read: an h5ad file, a zarr store (a folder)."""
LAZY_ROWS = 5_000
"""Rows of each block of a zarr store's matrices read lazily (the statistics pass's chunk)."""
EAGER_KEYS = ("obs", "var", "uns", "obsm", "varm", "obsp", "varp")
"""What a lazily read zarr store reads into memory (all but ``X`` and ``layers``)."""
LAZY_STORE = "perturbsim-lazy-store:"
"""How the name of a dask array read lazily from a zarr store begins, its path next."""


def lazy_store_name(path: object, token: str) -> str:
    """The dask name of an array read lazily from the zarr store ``path`` (``token``: unique).

    Examples
    --------
    >>> lazy_store_name("/data/screen.zarr", "read-1f3a")
    'perturbsim-lazy-store:/data/screen.zarr::read-1f3a'
    """
    return f"{LAZY_STORE}{path}::{token}"


def lazy_store_path(matrix: object) -> str | None:
    """The zarr store a dask array was read lazily from (:func:`lazy_store_name`), else ``None``.

    Also for an array computed from such a read (a subset of its cells: its dask graph
    keeps the read's layer).
    """
    layers = getattr(getattr(matrix, "dask", None), "layers", {})
    read = next((name for name in layers if str(name).startswith(LAZY_STORE)), None)
    return None if read is None else read[len(LAZY_STORE) :].rsplit("::", 1)[0]


def checked_store(path: Path) -> Path:
    """``path`` if it is an h5ad file or a zarr store (a folder).

    Raises
    ------
    PerturbsimError
        One line naming ``path``: missing, not named ``.h5ad`` or ``.zarr``, an ``.h5ad``
        that is not a regular file or a ``.zarr`` that is not a folder.

    Examples
    --------
    >>> checked_store(Path("screen.csv"))
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: expected an .h5ad file or a .zarr store, got 'screen.csv'
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise PerturbsimError(f"expected an .h5ad file or a .zarr store, got {str(path)!r}")
    if suffix == ".h5ad":
        return check_file(path)
    if not path.exists():
        raise PerturbsimError(f"no such zarr store: {str(path)!r}")
    if not path.is_dir():
        hint = ": it is an HDF5 file (an .h5ad file renamed?)" if _is_hdf5(path) else ""
        raise PerturbsimError(f"{str(path)!r} is not a zarr store (a folder written by zarr){hint}")
    return path


def _is_hdf5(path: Path) -> bool:
    """Whether ``path`` is a regular file starting with HDF5's signature (never blocks)."""
    if not path.is_file():  # a FIFO or device would block, or never end
        return False
    try:
        with path.open("rb") as file:
            return file.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def open_screen(path: Path, *, backed: bool) -> ad.AnnData:
    """Read the AnnData at ``path`` (see :func:`checked_store`).

    Parameters
    ----------
    path
        An h5ad file or a zarr store.
    backed
        Leave the expression on disk: an h5ad file opened read-only (``backed="r"``); a zarr
        store with ``X`` and ``layers`` as dask arrays of :data:`LAZY_ROWS` rows a block
        (needs the ``dask`` extra), the rest read into memory.

    Returns
    -------
    The AnnData as stored (not set up): with ``backed``, an h5ad file's is backed by the
    open file and a zarr store's holds dask arrays (layers stored by column left out);
    otherwise it is read whole into memory.

    Raises
    ------
    PerturbsimError
        If ``path`` is not one of those stores or cannot be read as AnnData, if a zarr store
        has no ``obs``, or if a zarr store read lazily has no ``X`` or dask is not installed.
    """
    path = checked_store(path)
    zarr_store = path.suffix.lower() == ".zarr"
    if not zarr_store and path.stat().st_size == 0:
        raise PerturbsimError(f"{str(path)!r} is empty (0 bytes): no h5ad file was written there")
    try:
        with warnings.catch_warnings():  # setup refuses them, in one line naming the fix
            warnings.filterwarnings("ignore", "Variable names are not unique", UserWarning)
            if not zarr_store:
                return ad.read_h5ad(path, backed="r" if backed else None)
            return _lazy_zarr(path) if backed else _zarr_in_memory(path)
    except PerturbsimError:  # its own, already one line (a ValueError too)
        raise
    except READ_ERRORS as err:
        kind = "an AnnData zarr store" if zarr_store else "an h5ad file"
        raise PerturbsimError(
            f"cannot read {str(path)!r} as AnnData (not {kind}, or truncated?): {error_reason(err)}"
        ) from err


def backed_path(adata: ad.AnnData) -> Path:
    """The absolute path of the h5ad file a backed screen has open.

    What opens the file again (a seed's working copy, a dask task) or watches its size goes
    by this path; ``adata.filename`` is as given, perhaps relative to another working folder.
    A screen whose file the user closed is opened again by anndata by its name: its path is
    taken as it stands.

    Raises
    ------
    PerturbsimError
        If ``adata.filename`` no longer names the file ``adata`` has open (read by a relative
        path from another working folder, or moved, deleted or replaced by another file
        since; a file overwritten in place is the same file).
    """
    path = Path(adata.filename).absolute()
    try:
        if adata.file.is_open:
            opened = os.fstat(adata.file["X"].file.id.get_vfd_handle())
            same = os.path.samestat(opened, path.stat())
        else:
            same = path.is_file()
    except (OSError, ValueError, RuntimeError, KeyError):  # no file there, another driver
        same = False
    if not same:
        raise PerturbsimError(
            f"the backed screen's file {str(adata.filename)!r} is not at that path any more "
            "(read by a relative path from another working folder, or moved, deleted or "
            "replaced since?): read it again with backed=True"
        )
    return path


def backed_copy(adata: ad.AnnData, uns: dict) -> ad.AnnData:
    """A backed screen on ``adata``'s file, with a handle of its own: ``X`` left on disk.

    Its ``obs`` and ``var`` are copies of ``adata``'s (as set up, not as stored), its ``uns``
    is ``uns``; nothing else is read (no layers). Close it (``.file.close()``) when done;
    ``adata`` and its handle are left as they are.

    Raises
    ------
    PerturbsimError
        As :func:`backed_path`; if the file changed size since ``adata`` opened it (HDF5
        reads the part of a file truncated under an open handle as zeros) or cannot be read.
    """
    path = backed_path(adata)
    if adata.file.is_open and path.stat().st_size != adata.file["X"].file.id.get_filesize():
        raise PerturbsimError(
            f"the backed screen's file {str(adata.filename)!r} changed size since it was opened "
            "(truncated or overwritten?); rerun on the complete file"
        )
    try:
        return ad.AnnData(
            obs=adata.obs.copy(), var=adata.var.copy(), uns=uns, filename=path, filemode="r"
        )
    except READ_ERRORS as err:
        raise PerturbsimError(
            f"cannot read {str(adata.filename)!r} again: {error_reason(err)}"
        ) from err


def _lazy_zarr(path: Path) -> ad.AnnData:
    """A zarr store with its matrices as dask arrays (:func:`open_screen`'s ``backed``).

    The store is held by its absolute path: its arrays read it when computed, after any
    change of the working folder, and dask knows them by a name that holds that path.
    """
    path = path.absolute()
    try:
        import dask.array  # noqa: F401  (read_elem_lazy's, imported here to say it is missing)
        from anndata.experimental import read_elem_lazy
        from anndata.io import read_elem
    except ImportError as err:
        raise PerturbsimError(
            "backed=True on a .zarr store reads its matrices with dask (anndata >= 0.12): "
            "pip install 'perturbsim[dask]', or read it in memory"
        ) from err
    group = _anndata_group(path)
    if "X" not in group:
        raise PerturbsimError(f"the zarr store {str(path)!r} has no X to read lazily")
    how = "read the store without backed=, or write it by row (.tocsr()) first"
    if _by_column(group["X"]):
        raise PerturbsimError(
            f"X of {str(path)!r} is stored by column (CSC), which cannot be read lazily a "
            f"block of cells at a time: {how}"
        )

    def lazy(key: str) -> object:
        _check_complete(group, key, path)
        stored = read_elem_lazy(group[key], chunks=(LAZY_ROWS, -1))
        return stored.map_blocks(
            _store_unchanged(path, key, _files_on_disk(path / key)),
            dtype=None,
            name=lazy_store_name(path, stored.name),
        )

    layers = {}
    for name in group.get("layers", {}):
        if _by_column(group[f"layers/{name}"]):
            logger.warning(
                "layers[%r] of %r is stored by column (CSC), which cannot be read lazily: "
                "left out (%s)",
                name,
                str(path),
                how,
            )
        else:
            layers[name] = lazy(f"layers/{name}")
    eager = {key: read_elem(group[key]) for key in EAGER_KEYS if key in group}
    return ad.AnnData(X=lazy("X"), layers=layers, **eager)


def _zarr_in_memory(path: Path) -> ad.AnnData:
    """A zarr store read into memory, its matrices' missing chunks warned of first."""
    group = _anndata_group(path)
    for key in ("X", *(f"layers/{name}" for name in group.get("layers", {}))):
        if key in group:
            _check_complete(group, key, path)
    return ad.read_zarr(path)


def _anndata_group(path: Path) -> object:
    """The root group of the zarr store ``path``, which must hold ``obs``.

    ``obs`` is looked for on disk too: consolidated metadata can still name a removed one,
    whose arrays zarr would read as fill values (a misleading error further on).

    Raises
    ------
    PerturbsimError
        ``"the zarr store {path} has no obs, ..."``.
    """
    import zarr

    group = zarr.open_group(path, mode="r")
    if "obs" not in group or not (path / "obs").is_dir():
        raise PerturbsimError(
            f"the zarr store {str(path)!r} has no obs, the cells' annotations (their "
            "perturbation labels): write the screen with AnnData.write_zarr, or copy the "
            "store whole"
        )
    return group


def _files_on_disk(folder: Path) -> tuple[int, int]:
    """How many files the folder of a stored matrix holds, and their bytes (one walk)."""
    count = size = 0
    for root, _, files in os.walk(folder):
        for name in files:
            count += 1
            size += os.stat(os.path.join(root, name)).st_size
    return count, size


def _check_complete(group: object, key: str, path: Path) -> None:
    """Warn of a matrix of the store whose chunk files are not all on disk.

    zarr reads a missing chunk as its fill value, 0: a store copied in part, or whose files
    were removed (its consolidated metadata still naming them), reads as zeros. zarr also
    leaves unwritten a chunk that is all zeros (an empty matrix, explicit zeros), so a
    missing chunk is not proof of a fault: warned of, with what it would mean. An empty
    sparse matrix (no stored value) is not.
    """
    import zarr

    element = group[key]
    sparse = not isinstance(element, zarr.Array)
    if sparse and element["data"].shape[0] == 0:
        return
    arrays = [element[name] for name in ("data", "indices", "indptr")] if sparse else [element]
    for array in arrays:
        on_disk, expected = array.nchunks_initialized, array.nchunks
        if on_disk < expected:
            logger.warning(
                "%s of the zarr store %r has %d of its %d chunks on disk: the missing ones "
                "read as zeros, right only if they hold zeros (a copy cut short, files "
                "removed? copy the store again)",
                key,
                str(path),
                on_disk,
                expected,
            )
            return


def _store_unchanged(path: Path, key: str, on_disk: tuple[int, int]) -> object:
    """A block function that refuses to pass a block on once the store's matrix changed.

    zarr reads the chunks of a removed store, or chunk files removed since it was opened, as
    zeros: the folder must still be there, and the matrix's folder must hold as many files
    of as many bytes as it did then (``on_disk``, :func:`_files_on_disk`: one walk of the
    folder a block, milliseconds for thousands of chunk files).
    """

    def checked(block: object) -> object:
        if not path.is_dir():
            raise PerturbsimError(
                f"cannot read the zarr store {str(path)!r}: it no longer exists (deleted or "
                "moved since it was opened)"
            )
        if _files_on_disk(path / key) != on_disk:
            raise PerturbsimError(
                f"cannot read the zarr store {str(path)!r}: the files of {key} changed since "
                "it was opened (chunks removed, added or rewritten: the missing would read as "
                "zeros); rerun on the complete store"
            )
        return block

    return checked


def _by_column(element: object) -> bool:
    """Whether a stored matrix is a CSC sparse matrix (anndata's ``encoding-type``)."""
    return getattr(element, "attrs", {}).get("encoding-type") == "csc_matrix"


def read_obs(path: Path) -> pd.DataFrame:
    """The cell annotations (``obs``) of an h5ad file or zarr store, reading nothing else.

    Raises
    ------
    PerturbsimError
        As :func:`open_screen`.
    """
    if path.suffix.lower() != ".zarr":
        backed = open_screen(path, backed=True)
        try:
            return backed.obs
        finally:
            backed.file.close()
    from anndata.io import read_elem

    path = checked_store(path)
    try:
        return read_elem(_anndata_group(path)["obs"])
    except PerturbsimError:  # its own, already one line (a ValueError too)
        raise
    except READ_ERRORS as err:
        raise PerturbsimError(
            f"cannot read the cells of {str(path)!r} (not an AnnData zarr store?): "
            f"{error_reason(err)}"
        ) from err
