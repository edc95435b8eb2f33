"""Checks on the expression matrix and gene names, with one-line errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._errors import PerturbsimError, counted, error_reason, shown_list
from .._keys import COUNTS_LAYER
from .._threads import torch_threads_kept
from ..ds._stores import lazy_store_path

logger = logging.getLogger(__name__)

WARN_NOT_COUNTS: ContextVar[bool] = ContextVar("perturbsim_warn_not_counts", default=True)
"""Whether ``normalize=True`` on log-normalised values is warned of (else logged at info
level). Switched off (:func:`perturbsim._settings.switched_off`) where normalising was not
asked for but carried over: ``perturbsim export`` reads a screen as its model's was read,
which normalises counts and leaves log-normalised values as they are."""
_RAW_COUNT_MAX = 30.0
"""log1p-normalised data never reaches this (log1p of a count per million of every read is
13.8): non-integer data above it is not log-transformed."""
LAZY_NORMALISE = (
    "a screen read lazily must hold log-normalised values: load it into memory "
    "(adata.to_memory(), or perturbsim.ds.read without backed=True) and normalise it there "
    "(normalize=True), or write a log-normalised copy to read lazily"
)
"""What to do with counts in a backed file or a lazily read zarr store."""


def matrix_values(block: object) -> np.ndarray:
    """Return the stored values of a dense or sparse block (the non-zeros of sparse ones)."""
    if sparse.issparse(block):
        return np.asarray(block.data)
    return np.asarray(block).ravel()


def _check_sparse_structure(block: object, where: str) -> None:
    """Refuse a compressed sparse block whose index arrays do not describe a matrix.

    A corrupted file can hold column indices beyond the genes or row pointers that run
    backwards; scipy's products on such a block read outside its arrays (a crash, not an
    error), so they are checked first: O(stored values), vectorised.
    """
    if not sparse.issparse(block) or block.format not in ("csr", "csc"):
        return
    pointers, indices = np.asarray(block.indptr), np.asarray(block.indices)
    stored, bound = len(block.data), block.shape[1 if block.format == "csr" else 0]
    broken = (
        len(pointers) != block.shape[0 if block.format == "csr" else 1] + 1
        or pointers[0] != 0
        or pointers[-1] != stored
        or len(indices) != stored
        or bool((np.diff(pointers) < 0).any())
        or (stored and (int(indices.min()) < 0 or int(indices.max()) >= bound))
    )
    if broken:
        raise PerturbsimError(
            f"{where} is a sparse matrix whose index arrays are corrupted (row pointers or "
            "gene indices out of range): the file is damaged; write it again from its source"
        )


def check_numeric_dtype(dtype: np.dtype, where: str) -> None:
    """Refuse a matrix whose values are not real numbers (before any cast to float drops it).

    Raises
    ------
    PerturbsimError
        ``"{where} is not numeric"`` or ``"{where} holds complex numbers"``, with the dtype.
    """
    if not np.issubdtype(dtype, np.number):
        raise PerturbsimError(f"{where} is not numeric (dtype {dtype})")
    if np.issubdtype(dtype, np.complexfloating):
        raise PerturbsimError(f"{where} holds complex numbers (dtype {dtype}), not expression")


def check_block(
    block: object,
    *,
    where: str,
    cells: Sequence[object],
    genes: Sequence[object],
    log_normalised: bool = False,
) -> None:
    """Raise if a block of expression values holds NaN, infinity or negative numbers.

    Parameters
    ----------
    block
        Dense array or sparse matrix of expression values.
    where
        The matrix the block comes from (e.g. ``"adata.X"``), for the message.
    cells, genes
        Names of the block's rows and columns: the message names the cell and gene of the
        first offending value (looked up only then).
    log_normalised
        Also raise on values above 30, which log1p-normalised data never reach (counts
        among log-normalised cells: a file of two batches, a matrix replaced after setup).
    """
    _check_sparse_structure(block, where)
    values = matrix_values(block)
    if values.size == 0:
        return
    check_numeric_dtype(values.dtype, where)
    finite = np.isfinite(values)
    if not finite.all():
        row, column, bad = _first_where(block, lambda v: ~np.isfinite(v))
        n_bad = counted(int((~finite).sum()), "non-finite value")
        raise PerturbsimError(
            f"{where} contains {bad} at cell {str(cells[row])!r} gene {str(genes[column])!r} "
            f"({n_bad}); remove or impute them first"
        )
    if (values < 0).any():
        row, column, _ = _first_where(block, lambda v: v < 0)
        raise PerturbsimError(
            f"{where} contains negative values (minimum {values.min():.4g}; the first at cell "
            f"{str(cells[row])!r} gene {str(genes[column])!r}); perturbsim expects "
            "log-normalised non-negative expression, not scaled or centred data"
        )
    if log_normalised and values.max() > _RAW_COUNT_MAX:
        row, column, top = _first_where(block, lambda v: v > _RAW_COUNT_MAX)
        raise PerturbsimError(
            f"{where} holds {top:.6g} at cell {str(cells[row])!r} gene {str(genes[column])!r}, "
            f"above any log1p-normalised value (at most {_RAW_COUNT_MAX:g}): counts among "
            "log-normalised cells? perturbsim expects log-normalised expression throughout "
            "(normalise the counts, e.g. setup with normalize=True on a file of counts only)"
        )


def _first_where(
    block: object, offending: Callable[[np.ndarray], np.ndarray]
) -> tuple[int, int, float]:
    """Row, column and value of the first entry of ``block`` that ``offending`` marks.

    Entries are taken by row, then column; ``offending`` maps values to a boolean mask.
    """
    if sparse.issparse(block) and block.format in ("csr", "csc"):
        # read from the index arrays: scipy's conversions refuse an index pointer wider than
        # its indices, which h5ad files may hold (64-bit indptr, 32-bit indices)
        bad = np.flatnonzero(offending(block.data))
        major = np.searchsorted(block.indptr, bad, side="right") - 1
        minor = block.indices[bad]
        rows, columns = (major, minor) if block.format == "csr" else (minor, major)
        first = np.lexsort((columns, rows))[0]
        return int(rows[first]), int(columns[first]), block.data[bad[first]]
    if sparse.issparse(block):
        entries = sparse.coo_matrix(block)
        bad = np.flatnonzero(offending(entries.data))
        first = bad[np.lexsort((entries.col[bad], entries.row[bad]))[0]]
        return int(entries.row[first]), int(entries.col[first]), entries.data[first]
    dense = np.asarray(block)
    row, column = np.argwhere(offending(dense))[0]
    return int(row), int(column), dense[row, column]


def check_not_empty(adata: AnnData) -> None:
    """Raise if ``adata`` has no cell or no gene."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise PerturbsimError(f"empty AnnData: {adata.n_obs} cells x {adata.n_vars} genes")


def check_gene_names(names: pd.Index) -> None:
    """Raise if gene names (``var_names``) are missing, empty or duplicated."""
    missing = int(names.isna().sum())
    if missing:
        raise PerturbsimError(f"{missing} missing (NaN) gene names in var_names")
    empty = [n for n in names if str(n).strip() == ""]
    if empty:
        raise PerturbsimError(f"{len(empty)} empty gene names in var_names")
    check_unpadded(names, "var_names", "adata.var_names = adata.var_names.str.strip()")
    if names.has_duplicates:
        dup = names[names.duplicated()].unique()
        raise PerturbsimError(
            f"duplicated gene names in var_names, e.g. {list(dup[:5])} ({len(dup)} in all); "
            "run adata.var_names_make_unique() or aggregate them first"
        )


def check_unpadded(names: Iterable[object], where: str, fix: str) -> None:
    """Refuse gene names with white space around them, naming the first and the ``fix``.

    Perturbation labels refuse padded gene names, so a padded name in the screen's genes
    would never match its target: the gene would count as unmeasured, in silence.
    """
    padded = [str(n) for n in names if str(n) != str(n).strip()]
    if padded:
        raise PerturbsimError(
            f"{counted(len(padded), 'gene name')} in {where} with white space around it, e.g. "
            f"{padded[0]!r} (no label could name such a gene): strip first, e.g. {fix}"
        )


def _is_dask(matrix: object) -> bool:
    """Whether ``matrix`` is a dask array (checked without importing dask)."""
    return type(matrix).__module__.split(".")[0] == "dask"


def stored_in(adata: AnnData, layer: str | None, matrix: object) -> str | None:
    """The file ``matrix`` is read from lazily, named in messages, else ``None``.

    ``matrix`` is ``adata.X`` (``layer=None``) or ``adata.layers[layer]``: for ``X``, a
    backed screen's h5ad file; the zarr store of a dask array :func:`perturbsim.ds.read`
    read lazily, or computed from one (``lazy_store_path``).
    """
    if layer is None and adata.isbacked:
        return str(adata.filename)
    return lazy_store_path(matrix)


def validate_expression(
    adata: AnnData,
    *,
    normalize: bool = False,
    chunk_size: int = 10_000,
    layer: str | None = None,
) -> bool:
    """Check the expression matrix; normalise raw counts when asked.

    In memory, every value is checked; for a backed file or a lazy (dask) ``X`` only the
    first ``chunk_size`` cells are checked here (their scale stands for the screen's), the
    rest for non-finite and negative values and values above 30 during the streaming pass
    of :func:`perturbsim.pp.pseudobulk` (which checks every value it reads so, also of a
    matrix replaced after setup). Whole numbers are raw counts (log-normalised values
    are not whole), and non-integer values above 30, which log1p-normalised data never
    reach, are data not log-transformed, as are cells that all sum to the same total
    (``normalize_total`` without ``log1p``): each an error, unless ``normalize``.

    Parameters
    ----------
    adata
        The screen.
    normalize
        ``X`` holds counts (integers, or non-integer values above 30 such as ambient-corrected
        counts, or counts normalised to one total): run ``scanpy.pp.normalize_total`` and
        ``log1p`` in place. Data that look
        log-normalised (non-integer, at most 30) are left as they are, with a warning.
    chunk_size
        Cells read for the check of a backed file.
    layer
        Check this layer instead of ``X`` (never normalised: its errors say to pass a layer
        of log-normalised values).

    Returns
    -------
    Whether ``X`` was normalised (replaced).
    """
    check_not_empty(adata)
    check_gene_names(adata.var_names)
    matrix = adata.X if layer is None else adata.layers[layer]
    name = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    if matrix is None:
        raise PerturbsimError(f"{name} is empty (None): the screen holds no expression values")
    lazy = adata.isbacked or _is_dask(matrix)
    file = stored_in(adata, layer, matrix) if lazy else None
    where = f"{name} (first {chunk_size} cells)" if lazy else name
    where += "" if file is None else f" of {file!r}"
    try:
        block = matrix[: min(chunk_size, adata.n_obs)] if lazy else matrix
        if _is_dask(block):
            block = block.compute()
    except PerturbsimError:
        raise
    except Exception as err:  # a corrupted chunk, a file gone: the library's error, one line
        raise PerturbsimError(f"cannot read {where}: {error_reason(err)}") from err
    if layer is not None:
        fix = "perturbsim needs log-normalised values: pass a layer that holds them (or none: X)"
    elif lazy:
        fix = LAZY_NORMALISE
    else:
        fix = (
            "pass normalize=True (normalize_total + log1p) if they are counts, or run "
            "scanpy.pp.log1p first if they are normalised but not log-transformed"
        )
        others = _possible_log_layers(adata)
        if others:  # the log-normalised values may be in a layer
            fix += (
                f"; if a layer holds the log-normalised values, make it X first "
                f"(adata.X = adata.layers[{others[0]!r}]; layers: {shown_list(others, 5)})"
            )
    cells = adata.obs_names[: block.shape[0]]
    check_block(block, where=where, cells=cells, genes=adata.var_names)
    values = matrix_values(block)
    top = float(values.max()) if values.size else 0.0
    if top == 0.0 and not lazy:  # a backed file's first cells alone say little
        raise PerturbsimError(f"{where} holds no non-zero value: the screen measured nothing")
    whole = _all_whole(values)
    row_sum = _constant_row_sum(block) if top <= _RAW_COUNT_MAX else None  # expm1 stays finite
    if normalize:
        if not whole and top <= _RAW_COUNT_MAX and row_sum is None:
            logger.log(
                logging.WARNING if WARN_NOT_COUNTS.get() else logging.INFO,
                "normalize=True, but adata.X looks log-normalised (non-integer, at most %.4g): "
                "left as it is",
                top,
            )
            return False
        _normalise(adata, lazy=lazy)
        return True
    if whole or top > _RAW_COUNT_MAX:  # log-normalised data are not whole numbers
        what = (
            "raw integer counts"
            if whole
            else f"values up to {top:.6g}, above any log1p-normalised value"
        )
        raise PerturbsimError(f"{where} holds {what}; {fix}")
    if row_sum is not None:
        raise PerturbsimError(
            f"every cell of {where} sums to {row_sum:.6g}: normalised (normalize_total) but not "
            f"log-transformed; {fix}"
        )
    if layer is None and _log_of_counts(values):
        logger.warning(
            "%s looks like log1p of raw counts (expm1 of its values is whole): each cell's "
            "depth then adds to every change; normalise the counts to one depth first "
            "(scanpy.pp.normalize_total, then log1p; or normalize=True on the counts)",
            where,
        )
    return False


LOG_OF_COUNTS_SAMPLE = 100_000
"""Non-zero values (the first) read for :func:`_log_of_counts`."""
LOG_OF_COUNTS_SHARE = 0.99
"""Share of the non-zero values whose ``expm1`` is whole above which they are read as
``log1p`` of counts not normalised to a depth (after ``normalize_total`` few are)."""


def _log_of_counts(values: np.ndarray) -> bool:
    """Whether non-zero ``values`` look like ``log1p`` of whole counts (a thousand at least).

    The first :data:`LOG_OF_COUNTS_SAMPLE` non-zero values are read (of the first ten times
    as many values).

    Examples
    --------
    >>> _log_of_counts(np.log1p(np.arange(1, 2001, dtype=np.float32)))
    True
    >>> _log_of_counts(np.log1p(np.arange(1, 2001) * 0.37))
    False
    """
    head = np.ravel(values)[: 10 * LOG_OF_COUNTS_SAMPLE]  # a view: no copy of the whole
    nonzero = head[head != 0][:LOG_OF_COUNTS_SAMPLE].astype(np.float64)
    if nonzero.size < 1000:
        return False
    counts = np.expm1(nonzero)  # float32 log1p of a count k comes back within ~1e-6 k of it
    whole = np.abs(counts - np.round(counts)) <= 1e-3 + 1e-5 * counts
    return bool(whole.mean() >= LOG_OF_COUNTS_SHARE)


def _possible_log_layers(adata: AnnData) -> list[str]:
    """The layers that may hold log-normalised values.

    Neither the counts layer nor a layer of whole numbers in its first 100 cells (counts
    by another name).
    """
    names = []
    for name in adata.layers:
        if name == COUNTS_LAYER:
            continue
        values = matrix_values(adata.layers[name][:100])
        if values.size and not _all_whole(values):
            names.append(str(name))
    return names


def _all_whole(values: np.ndarray) -> bool:
    """Whether ``values`` are whole numbers, at least one (counts are; log values are not)."""
    return bool(values.size) and bool(np.all(np.mod(values, 1) == 0))


def _constant_row_sum(block: object) -> float | None:
    """The sum every row of ``block`` shares (``normalize_total`` without a log), else ``None``.

    Cells of log-normalised data never share their sum while their counts (``expm1``) do
    not; two cells or more must, to within 1e-4. Rows whose counts share their sum too
    (identical or constant rows) say nothing of a log and pass.
    """

    def shared_sum(matrix: object) -> float | None:
        sums = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
        if sums.size < 2 or sums.mean() <= 0:
            return None
        spread = (sums.max() - sums.min()) / sums.mean()
        return float(sums.mean()) if spread < 1e-4 else None

    total = shared_sum(block)
    if total is None:
        return None
    counts = block.expm1() if sparse.issparse(block) else np.expm1(np.asarray(block, np.float64))
    return total if shared_sum(counts) is None else None


def _same_values(a: object, b: object) -> bool:
    """Whether two matrices (dense or sparse) of the same shape hold the same values."""
    if a.shape != b.shape:
        return False
    if sparse.issparse(a) or sparse.issparse(b):
        return (sparse.csr_matrix(a) != sparse.csr_matrix(b)).nnz == 0
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _shares_memory(first: object, second: object) -> bool:
    """Whether two matrices (dense or sparse) hold their values in the same memory."""
    if first is second:
        return True
    values = [m.data if sparse.issparse(m) else m for m in (first, second)]
    return all(isinstance(v, np.ndarray) for v in values) and np.shares_memory(*values)


def _normalise(adata: AnnData, *, lazy: bool) -> None:
    """``normalize_total`` + ``log1p`` in place, the counts kept in ``.layers["counts"]``."""
    if lazy:
        raise PerturbsimError(
            f"cannot normalise a backed or dask AnnData in place; {LAZY_NORMALISE}"
        )
    kept = adata.layers.get(COUNTS_LAYER)
    if kept is not None and not _same_values(kept, adata.X):
        raise PerturbsimError(
            f"normalize=True would overwrite .layers[{COUNTS_LAYER!r}], which differs from X's "
            "counts; remove or rename that layer first, or normalise X yourself"
        )
    import scanpy as sc

    if kept is None or _shares_memory(kept, adata.X):  # X normalised in place: not its counts
        adata.layers[COUNTS_LAYER] = adata.X.copy()
    with torch_threads_kept():
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
    logger.info(
        "normalised raw counts (normalize_total + log1p); counts kept in .layers[%r]", COUNTS_LAYER
    )
