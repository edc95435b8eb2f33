"""The statistics pass as dask tasks: one task per chunk of rows, their sums added in a tree.

Each task reads one chunk of rows and returns its :class:`~._chunk_sums.ChunkSums`; the
sums of chunks merge by addition, in a binary tree of tasks, so that any dask scheduler
(threads, a local process pool, a :class:`distributed.Client`) gives the numbers of the
in-process pass. A task reads its own rows (it computes its block of a dask array itself),
so a chunk that cannot be read fails in the task that knows its rows and file; a task lost
with its worker is retried by distributed and, if it keeps failing, reported with its rows.

dask and distributed are optional: they are imported here, and only when a pass runs on
dask.
"""

from __future__ import annotations

import importlib
import logging
import operator
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from types import ModuleType

import anndata as ad
import h5py
import numpy as np

from .._errors import PerturbsimError, error_reason
from ._chunk_sums import CellLabels, ChunkSums, RowSource

logger = logging.getLogger(__name__)

Chunk = tuple[int, int, Callable[[], object]]
"""A chunk of the pass: its first row, the row after its last, and how to read them."""


def is_dask_array(matrix: object) -> bool:
    """Whether ``matrix`` is a :class:`dask.array.Array` (dask is not imported to check)."""
    array = sys.modules.get("dask.array")
    return array is not None and isinstance(matrix, array.Array)


def dask_scheduler_chosen() -> bool:
    """Whether dask's configuration names a scheduler now.

    ``dask.config.set(scheduler=...)``, or a :class:`distributed.Client` made the default
    (which sets it to ``"dask.distributed"``).
    """
    dask = sys.modules.get("dask")  # never imported: nothing can have been chosen
    return dask is not None and dask.config.get("scheduler", None) is not None


def dask_blocks(matrix: object) -> list[Chunk]:
    """The row blocks of a dask array (all its columns each), each computed when read.

    The chunks of a pass on dask, and of a pass in this process over a lazily read store
    (:func:`~._pseudobulk.compute_pseudobulk`): one block in memory at a time.
    """
    array = matrix if len(matrix.chunks[1]) == 1 else matrix.rechunk({1: -1})
    bounds = np.cumsum([0, *array.chunks[0]]).tolist()
    return [
        (start, stop, _DaskBlock(array.blocks[i]))
        for i, (start, stop) in enumerate(pairwise(bounds))
        if stop > start
    ]


def _require(module: str) -> ModuleType:
    """Import an optional dependency, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise PerturbsimError(
            f"the statistics pass on dask needs {module!r}: pip install 'perturbsim[dask]'"
        ) from err


class _InMemory:
    """Rows already in memory, shipped to the task that sums them."""

    def __init__(self, block: object) -> None:
        self.block = block

    def __call__(self) -> object:
        return self.block


class _DaskBlock:
    """One block of a dask array, computed by the task that sums it.

    Not itself a dask collection, so dask ships it to that task instead of scheduling its
    computation as a task of its own: a block that cannot be computed fails where its rows
    are known.
    """

    def __init__(self, array: object) -> None:
        self.array = array

    def __call__(self) -> object:
        return self.array.compute(scheduler="sync")


def _lazy_x(source: RowSource, chunk_size: int) -> object:
    """``X`` of a backed screen's file as a dask array of ``chunk_size`` rows per block."""
    try:
        with h5py.File(source.file, "r") as file:
            if file["X"].attrs.get("encoding-type") == "csc_matrix":
                raise PerturbsimError(
                    f"X of {source.file!r} is stored by column (CSC), which dask cannot read "
                    "in rows of cells: run without scheduler=, or write X as CSR "
                    "(adata.X = adata.X.tocsr(); adata.write_h5ad(...))"
                )
            return ad.experimental.read_elem_lazy(file["X"], chunks=(chunk_size, -1))
    except PerturbsimError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise PerturbsimError(
            f"cannot read X of {source.file!r} lazily with dask: {error_reason(err)}"
        ) from err


def _chunks(matrix: object, source: RowSource, chunk_size: int) -> list[Chunk]:
    """The chunks of the pass: a dask array's row blocks, else ``chunk_size`` rows each."""
    if is_dask_array(matrix):
        return dask_blocks(matrix)
    if source.file is not None:
        return _chunks(_lazy_x(source, chunk_size), source, chunk_size)
    n_obs = matrix.shape[0]
    return [
        (start, min(start + chunk_size, n_obs), _InMemory(matrix[start : start + chunk_size]))
        for start in range(0, n_obs, chunk_size)
    ]


def _chunk_sums(
    load: Callable[[], object],
    labels: CellLabels,
    n_genes: int,
    source: RowSource,
    start: int,
    stop: int,
) -> ChunkSums:
    """The sums over rows ``start`` to ``stop - 1``: the body of one task."""
    sums = ChunkSums.zeros(labels.n_conditions, n_genes, gram=labels.gram_mask is not None)
    sums.add_block(source.read(load, start, stop, labels.names), labels)
    return sums


@contextmanager
def _scheduler(scheduler: object) -> Iterator[object]:
    """What ``dask.compute`` takes as ``scheduler=``: a client for the pass if an address."""
    if isinstance(scheduler, str) and "://" in scheduler:
        distributed = _require("distributed")
        try:
            client = distributed.Client(scheduler, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise PerturbsimError(
                f"cannot connect to the dask scheduler at {scheduler!r}: {error_reason(err)}"
            ) from err
        with client:
            yield client
        return
    try:
        _require("dask.base").get_scheduler(scheduler=scheduler)
    except (ValueError, RuntimeError) as err:
        raise PerturbsimError(
            f"unusable dask scheduler {scheduler!r}: {error_reason(err)}"
        ) from err
    yield scheduler


def _worker_death() -> tuple[type[Exception], ...]:
    """The exception distributed raises for a task whose workers kept dying (if loaded)."""
    distributed = sys.modules.get("distributed")
    return () if distributed is None else (distributed.KilledWorker,)


def dask_sums(
    matrix: object,
    labels: CellLabels,
    source: RowSource,
    *,
    chunk_size: int,
    scheduler: object,
) -> ChunkSums:
    """The sums over all rows of ``matrix``, one dask task per chunk, added in a tree.

    Parameters
    ----------
    matrix
        A dask array (its row blocks are the chunks), a backed ``X`` (read lazily from
        ``source.file`` by the tasks) or an in-memory matrix.
    labels
        The labels of all cells.
    source
        Names the rows in errors; its file is watched for changes.
    chunk_size
        Rows per chunk, unless ``matrix`` is a dask array.
    scheduler
        See :func:`perturbsim.pp.pseudobulk`.

    Returns
    -------
    The sums over every row of ``matrix``, the chunks' sums added together: those of the
    in-process pass, with the gene x gene sum only when ``labels.gram_mask`` is set.

    Raises
    ------
    PerturbsimError
        Naming the rows (and file) of a chunk that cannot be read or whose workers kept
        dying; the matrix (and file), cell and gene of the first non-finite or negative
        value of one that holds such values.
    """
    dask = _require("dask")
    n_genes = matrix.shape[1]
    name = f"perturbsim-pseudobulk-{uuid.uuid4().hex}"
    # one key: its gene names reach each worker once, not once per task
    shared = dask.delayed(source, name=f"{name}-source", traverse=False)
    level = [
        (
            start,
            stop,
            dask.delayed(_chunk_sums)(
                load,
                labels.rows(start, stop),
                n_genes,
                shared,
                start,
                stop,
                dask_key_name=(name, start, stop),
            ),
        )
        for start, stop, load in _chunks(matrix, source, chunk_size)
    ]
    n_chunks = len(level)
    while len(level) > 1:
        merged = [
            (a[0], b[1], dask.delayed(operator.add)(a[2], b[2], dask_key_name=(name, a[0], b[1])))
            for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        level = merged + level[len(merged) * 2 :]
    with _scheduler(scheduler) as chosen:
        logger.info("statistics pass: %d chunks as dask tasks", n_chunks)
        try:
            (sums,) = dask.compute(level[0][2], scheduler=chosen)
        except _worker_death() as err:
            # a chunk's task is keyed (name, start, stop); else it is the shared source's
            chunk = isinstance(err.task, tuple) and len(err.task) == 3
            start, stop = err.task[1:] if chunk else (0, matrix.shape[0])
            task = "summed" if chunk else "held the reader of"
            raise PerturbsimError(
                f"every dask worker that {task} {source.where(start, stop)} died "
                f"({err.allowed_failures + 1} tried; killed, or out of memory?); rerun, or "
                "give the workers more memory"
            ) from err
    return sums
