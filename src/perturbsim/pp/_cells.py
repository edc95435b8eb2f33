"""Cells of chosen conditions, drawn without reading the whole matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData

from .._checks import check_count, check_list
from .._errors import PerturbsimError
from .._keys import CONDITION
from .._settings import resolve_seed
from ._distributed import is_dask_array
from ._pseudobulk import cell_matrix
from ._setup import check_setup


def matrix_rows(matrix: object, rows: Sequence[int] | np.ndarray) -> object:
    """Rows of a cell matrix in memory as it stores them (sparse stays sparse).

    Parameters
    ----------
    matrix
        ``adata.X`` or a layer: dense, sparse, backed on disk (``rows`` then increasing, as
        h5py reads them) or a dask array (its blocks dense or sparse; computed here).
    rows
        Row indices (any sequence: a list, a range, an array).

    Returns
    -------
    A numpy array or a scipy sparse matrix, ``(len(rows), n_genes)``.
    """
    block = matrix[np.asarray(rows)]
    return block.compute() if is_dask_array(block) else block


def dense_rows(
    matrix: object, rows: Sequence[int] | np.ndarray, dtype: type = np.float64
) -> np.ndarray:
    """Rows of a cell matrix as a dense array, reading only those rows.

    Parameters
    ----------
    matrix, rows
        As for :func:`matrix_rows`.
    dtype
        Type of the returned array.

    Returns
    -------
    ``(len(rows), n_genes)`` array.

    Examples
    --------
    >>> from scipy import sparse
    >>> dense_rows(sparse.csr_matrix(np.eye(3)), np.array([0, 2]))
    array([[1., 0., 0.],
           [0., 0., 1.]])
    """
    block = matrix_rows(matrix, rows)
    return np.asarray(block.toarray() if hasattr(block, "toarray") else block, dtype=dtype)


def draw_cells(
    adata: AnnData, conditions: list[str], *, max_cells: int, seed: int | None = None
) -> dict[str, np.ndarray]:
    """Draw up to ``max_cells`` cells of each condition as dense float32 arrays.

    For losses without a moment expansion (odd or fractional autofocus exponents), which
    need cells; works on backed files and dask arrays, reading only the drawn rows.

    Parameters
    ----------
    adata
        A set-up screen (:func:`~perturbsim.pp.setup`).
    conditions
        Canonical conditions of the screen to sample.
    max_cells
        Cells kept per condition (all when fewer).
    seed
        Seed of the draw (a whole number >= 0; default: ``perturbsim.settings.seed``).

    Returns
    -------
    Condition -> ``(n, G)`` array of expression.

    Raises
    ------
    PerturbsimError
        For a screen not set up, ``conditions`` given as one string or no collection, a
        condition not in the
        screen's labels (one with no cells left gives ``(0, G)``), ``max_cells`` not a whole
        number >= 1, or a bad ``seed``.
    """
    check_setup(adata)
    max_cells = check_count("max_cells", max_cells)
    check_list("conditions", conditions, "labels")
    known = set(map(str, adata.obs[CONDITION].cat.categories))
    unknown = sorted(set(conditions) - known)
    if unknown:
        raise PerturbsimError(f"{len(unknown)} condition(s) not in the screen: {unknown[:5]}")
    column = adata.obs[CONDITION]
    code_of = {str(c): i for i, c in enumerate(column.cat.categories)}
    codes = column.cat.codes.to_numpy()
    order = np.argsort(codes, kind="stable")  # the cells of each condition, in screen order
    bounds = np.searchsorted(codes[order], np.arange(len(code_of) + 1))
    matrix = cell_matrix(adata)
    rng = np.random.default_rng(resolve_seed(seed))
    cells = {}
    for condition in conditions:
        code = code_of[condition]
        rows = order[bounds[code] : bounds[code + 1]]
        if rows.size > max_cells:
            rows = np.sort(rng.choice(rows, size=max_cells, replace=False))
        cells[condition] = dense_rows(matrix, rows, np.float32)
    return cells
