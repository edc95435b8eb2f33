"""Simulated screens written to an h5ad file a chunk of cells at a time.

The screen is drawn as by :func:`perturbsim.ds.simulate` (same seed, same cells); its cells
are appended to the CSR matrices of the file as they are drawn (AnnData's on-disk format,
through :func:`anndata.io.write_elem` and :func:`anndata.io.sparse_dataset`), so memory holds
the network, the truth and a few chunks of cells, never the whole matrix.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import h5py
import numpy as np
import scipy.sparse as sp
from anndata.abc import CSRDataset
from anndata.io import sparse_dataset, write_elem
from tqdm.auto import tqdm

from .._atomic import atomic_write, check_writable_place
from .._checks import as_path, check_count, check_flag
from .._errors import PerturbsimError
from .._keys import SIMULATION
from .._settings import progress_disabled
from ._simulate import _draw_screen, _obs, _Screen, _uns, _var, simulate
from ._simulate_cells import CellChunk, assemble_cells, cell_chunks

logger = logging.getLogger(__name__)

_H5_CHUNK = 1 << 18
"""HDF5 chunk of the CSR arrays, in entries (1 MiB of float32 values)."""
_STAGED_COUNTS = "_counts"
"""Where the counts are appended before they move to ``layers/counts``."""
_PER_CELL = ("ncounts", "library_size", "cell_cycle_phase")


def _batches(chunks: Iterator[CellChunk], chunk_cells: int) -> Iterator[list[CellChunk]]:
    """Consecutive chunks grouped until they hold at least ``chunk_cells`` cells."""
    batch: list[CellChunk] = []
    n = 0
    for chunk in chunks:
        batch.append(chunk)
        n += chunk.row_nnz.size
        if n >= chunk_cells:
            yield batch
            batch, n = [], 0
    if batch:
        yield batch


def _empty_csr(f: h5py.File, key: str, n_genes: int) -> CSRDataset:
    """An empty, appendable CSR matrix with 64-bit ``indptr`` at ``key``."""
    empty = sp.csr_matrix((0, n_genes), dtype=np.float32)
    kwargs = {"indptr_dtype": np.int64, "chunks": (_H5_CHUNK,)}
    write_elem(f, key, empty, dataset_kwargs=kwargs)
    return cast(CSRDataset, sparse_dataset(f[key]))


def _write(path: Path, screen: _Screen, *, chunk_cells: int, counts: bool) -> None:
    """Write the screen to ``path``: its cells chunk by chunk, then the annotations."""
    n_genes = screen.names.size
    per_cell: dict[str, list[np.ndarray]] = {key: [] for key in (*_PER_CELL, "ngenes")}
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        x_store = _empty_csr(f, "X", n_genes)
        counts_store = _empty_csr(f, _STAGED_COUNTS, n_genes) if counts else None
        chunks = cell_chunks(screen.steady, screen.n_cells, screen.model, screen.cell_seed)
        cells_bar = tqdm(
            total=int(screen.n_cells.sum()),
            desc="simulate_to_disk",
            unit="cell",
            disable=progress_disabled(),
        )
        with closing(chunks), cells_bar:
            for batch in _batches(chunks, chunk_cells):
                cells_bar.update(sum(c.row_nnz.size for c in batch))
                cells = assemble_cells(batch, n_genes)
                x_store.append(cells["X"])
                if counts_store is not None:
                    counts_store.append(cells["counts"])
                for key in _PER_CELL:
                    per_cell[key].append(cells[key])
                per_cell["ngenes"].append(np.concatenate([c.row_nnz for c in batch]))
        obs = _obs(screen, {key: np.concatenate(parts) for key, parts in per_cell.items()})
        write_elem(f, "obs", obs)
        write_elem(f, "var", _var(screen))
        for key in ("obsm", "varm", "obsp", "varp", "layers"):
            write_elem(f, key, {})
        if counts:
            f.move(_STAGED_COUNTS, "layers/counts")
        write_elem(f, "uns", {SIMULATION: _uns(screen)})


def simulate_to_disk(
    path: str | Path,
    *,
    size: str = "norman",
    seed: int | None = None,
    chunk_cells: int = 20_000,
    counts: bool = True,
    **options: Any,
) -> Path:
    """Simulate a screen and write it to an h5ad file, never holding all its cells in memory.

    The screen is the one :func:`perturbsim.ds.simulate` returns for the same arguments (same
    seed: same network, truth and cells): its cells are drawn in chunks and appended to the
    file as they come, so memory holds the network, the noiseless truth and about
    ``chunk_cells`` cells. The file is written under a temporary name next to ``path`` and
    renamed when complete: an error or an interruption leaves no file at ``path`` (and an
    existing file there untouched). A place no file can be written (a folder of that name,
    a file on the way) is refused before the simulation; a progress bar counts the cells
    written unless ``perturbsim.settings.progress`` is ``False``.

    Parameters
    ----------
    path
        The ``.h5ad`` file to write (replaced if present).
    size
        Preset design, as for :func:`perturbsim.ds.simulate`; ``"genome"`` is meant for
        this function (1,000,000 cells).
    seed
        Seed of everything (default: ``perturbsim.settings.seed``).
    chunk_cells
        Cells drawn and appended at a time (at least this many, whole chunks of one
        condition; the cells do not depend on it).
    counts
        Also write the raw counts as ``layers["counts"]`` (about doubles the file).
    **options
        The other arguments of :func:`perturbsim.ds.simulate` (``n_genes``, ``n_perturbable``,
        ``n_singles``, ``n_pairs``, ``cells_per_condition``, ``n_control_cells``,
        ``modality``, ``go_noise``, ``unannotated_fraction``).

    Returns
    -------
    ``path``: an h5ad file with the contents of :func:`perturbsim.ds.simulate`'s AnnData
    (``X`` float32 CSR with 64-bit ``indptr``, ``obs``, ``var``, ``uns["simulation"]``, and
    ``layers["counts"]`` with ``counts=True``), to read with
    ``anndata.read_h5ad(path, backed="r")`` or ``perturbsim.ds.read(path, backed=True)``
    (anndata reads a backed file's layers into memory: ``counts=False`` for a screen beyond
    memory).

    Examples
    --------
    >>> import tempfile, anndata
    >>> import perturbsim as ps
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = ps.ds.simulate_to_disk(f"{tmp}/screen.h5ad", size="tiny", seed=0)
    ...     anndata.read_h5ad(path, backed="r").shape
    (750, 70)
    """
    path = as_path("path", path)
    if path.suffix.lower() != ".h5ad":
        raise PerturbsimError(f"expected a path ending in .h5ad, got {str(path)!r}")
    chunk_cells = check_count("chunk_cells", chunk_cells)
    accepted = set(inspect.signature(simulate).parameters) - {"size", "seed"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise PerturbsimError(
            f"simulate_to_disk has no option {unknown[0]!r}; it takes simulate's: "
            f"{', '.join(sorted(accepted))}"
        )
    counts = check_flag("counts", counts)
    if path.is_dir():
        raise PerturbsimError(f"cannot write the simulated screen {str(path)!r}: it is a folder")
    check_writable_place(path, "the simulated screen")  # before minutes of simulation
    t0 = time.perf_counter()
    screen = _draw_screen(size=size, seed=seed, **options)
    atomic_write(path, lambda tmp: _write(tmp, screen, chunk_cells=chunk_cells, counts=counts))
    logger.info(
        "wrote %d cells x %d genes to %s (%.1fs)",
        int(screen.n_cells.sum()),
        screen.names.size,
        path,
        time.perf_counter() - t0,
    )
    return path
