"""One chunk of the statistics pass: its rows, read and checked, and their sums.

Every statistic of :func:`perturbsim.pp.compute_pseudobulk` is a sum over cells (of the
powers of expression per condition, the same over one random half of each condition, and
``x`` and ``x x^T`` over the co-expression cells), divided by a count at the end. Sums over
disjoint chunks of cells merge by addition, so the pass can add chunk after chunk in one
process or run each chunk as a separate dask task (:mod:`perturbsim.pp._distributed`) and
give the same numbers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse
from scipy.linalg import blas

from .._errors import PerturbsimError, error_reason
from ..ds._stores import backed_path
from ._validate import check_block, check_numeric_dtype, stored_in

N_MOMENTS = 4
HALF_MOMENTS = 2
"""Raw moments kept per half (mean and second moment: enough for a t statistic)."""

Block = np.ndarray | sparse.csr_matrix

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellLabels:
    """What the pass needs to know of each cell besides its expression.

    Attributes
    ----------
    codes
        Condition code of each cell, ``(n,)``; codes run from 0 to ``n_conditions - 1``.
    halves
        Random half (0 or 1) of each cell within its condition, ``(n,)``.
    gram_mask
        Whether each cell feeds the gene x gene moments, ``(n,)``; ``None`` when they are
        not computed.
    n_conditions
        Number of conditions.
    names
        Name of each cell (``obs_names``), ``(n,)``: what an error about its values calls it.
    """

    codes: np.ndarray
    halves: np.ndarray
    gram_mask: np.ndarray | None
    n_conditions: int
    names: pd.Index

    def rows(self, start: int, stop: int) -> CellLabels:
        """The labels of cells ``start`` to ``stop - 1``."""
        return CellLabels(
            codes=self.codes[start:stop],
            halves=self.halves[start:stop],
            gram_mask=None if self.gram_mask is None else self.gram_mask[start:stop],
            n_conditions=self.n_conditions,
            names=self.names[start:stop],
        )


@dataclass
class ChunkSums:
    """Sums over a set of cells; ``a + b`` holds the sums over the cells of both.

    Attributes
    ----------
    powers
        Sum of ``x^k`` over the cells of each condition for ``k = 1..4``, ``(4, C, G)``.
    second_half
        Sum of ``x`` and ``x^2`` over the cells of each condition in half 1, ``(2, C, G)``.
    coexpr_sum
        Sum of ``x`` over the co-expression cells, ``(G,)``.
    gram
        Sum of ``x x^T`` over the co-expression cells, lower triangle only (the upper one is
        zero), ``(G, G)``; ``None`` when not computed.
    """

    powers: np.ndarray
    second_half: np.ndarray
    coexpr_sum: np.ndarray
    gram: np.ndarray | None

    @classmethod
    def zeros(cls, n_conditions: int, n_genes: int, *, gram: bool) -> ChunkSums:
        """Sums over no cell, with or without the gene x gene sum."""
        return cls(
            powers=np.zeros((N_MOMENTS, n_conditions, n_genes)),
            second_half=np.zeros((HALF_MOMENTS, n_conditions, n_genes)),
            coexpr_sum=np.zeros(n_genes),
            gram=np.zeros((n_genes, n_genes)) if gram else None,
        )

    def add_block(self, block: Block, labels: CellLabels) -> None:
        """Add, in place, the sums over the cells of ``block``.

        Parameters
        ----------
        block
            Expression of the cells, float64, dense or CSR, one row per cell of ``labels``.
        labels
            Their labels; the gene x gene sum takes the cells of ``labels.gram_mask``.
        """
        n = block.shape[0]
        indicator = sparse.csr_matrix(
            (np.ones(n), (labels.codes, np.arange(n))), shape=(labels.n_conditions, n)
        )
        in_second = indicator @ sparse.diags(labels.halves.astype(np.float64))
        for k, power in enumerate(_powers(block, N_MOMENTS)):
            summed = indicator @ power
            self.powers[k] += summed.toarray() if sparse.issparse(summed) else summed
            if k < HALF_MOMENTS:
                summed = in_second @ power
                self.second_half[k] += summed.toarray() if sparse.issparse(summed) else summed
        if self.gram is not None:
            sub = block[labels.gram_mask]
            self.coexpr_sum += np.asarray(sub.sum(axis=0)).ravel()
            _add_gram(self.gram, sub)

    def __add__(self, other: ChunkSums) -> ChunkSums:
        return ChunkSums(
            powers=self.powers + other.powers,
            second_half=self.second_half + other.second_half,
            coexpr_sum=self.coexpr_sum + other.coexpr_sum,
            gram=None if self.gram is None else self.gram + other.gram,
        )


def _powers(block: Block, n: int) -> Iterator[Block]:
    """Yield ``block**1 .. block**n`` elementwise, each from the previous by one product.

    Sparse blocks share the sparsity structure of ``block`` (only the stored values change).
    """
    values = block.data if sparse.issparse(block) else block
    power = values
    for k in range(1, n + 1):
        if k > 1:
            power = power * values
        if sparse.issparse(block):
            yield sparse.csr_matrix((power, block.indices, block.indptr), shape=block.shape)
        else:
            yield power


def _add_gram(gram: np.ndarray, block: Block) -> None:
    """Add the lower triangle of ``block.T @ block`` to ``gram``.

    Sparse product for very sparse data, else a float32 BLAS symmetric rank-k update (half
    the work of the full product; each chunk's products are summed in float32, into a float64
    total). A correlation computed from these moments (``E[xy] - E[x]E[y]``) then carries
    errors of about 1e-4 for log-normalised data (3e-3 for a gene of mean 3 and standard
    deviation 0.02, 3e-2 for one of mean 7 on 10,000 cells, in reviewers' checks): below
    the co-expression graph's 0.4 threshold, not fit for near-constant genes at high
    expression (constant ones are read as such: :data:`~._pseudobulk.CONSTANT_RTOL`).
    """
    if block.shape[0] == 0:
        return
    if sparse.issparse(block) and block.nnz < 0.05 * block.shape[0] * block.shape[1]:
        gram += sparse.tril((block.T @ block).tocsr()).toarray()
        return
    dense = block.toarray() if sparse.issparse(block) else block
    # BLAS fills the upper triangle of a Fortran-ordered result: its transpose is a C-ordered
    # lower triangle, added without a strided copy
    gram += blas.ssyrk(1.0, np.asarray(dense, dtype=np.float32), trans=1).T


def _file_size(path: str) -> int | None:
    """Size of the file in bytes, or ``None`` if it is gone."""
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def warn_backed_view(adata: AnnData, reader: str) -> None:
    """Warn that ``reader`` reads the X of a view of a backed screen into memory whole."""
    logger.warning(
        "a view of a backed screen: anndata reads its X into memory whole (%d cells), so %s "
        "cannot stream it; to stream a subset, write it to its own file "
        "(adata[mask].write_h5ad(...)) and read that with backed=True",
        adata.n_obs,
        reader,
    )


@dataclass(frozen=True)
class RowSource:
    """Where the rows of the pass come from: named in errors, and watched if a file.

    Attributes
    ----------
    name
        The matrix, as the user knows it (``"adata.X"``, ``"adata.layers['counts']"``).
    genes
        Its column names (``var_names``): what an error about a value calls its gene.
    file
        The h5ad file of a backed ``X`` by its absolute path (checked to be the file the
        screen has open: :func:`~perturbsim.ds._stores.backed_path`), else ``None`` (also for
        a view of a backed screen: its rows are read through the view, not as the file's rows
        in order).
    file_size
        Its size in bytes when it was opened (HDF5 reads the part of a file truncated under
        an open handle as zeros: a changed size is how the pass notices).
    store
        The file or zarr store a lazily read matrix comes from, named in messages
        (:func:`~perturbsim.pp._validate.stored_in`: also for a view of a backed screen
        and for a zarr store read as dask arrays), else ``None``.
    """

    name: str
    genes: pd.Index = field(compare=False, repr=False)
    file: str | None = None
    file_size: int | None = None
    store: str | None = None

    @classmethod
    def of(cls, adata: AnnData, layer: str | None, matrix: object) -> RowSource:
        """The source of ``matrix``: ``adata.layers[layer]``, or ``adata.X`` for no ``layer``."""
        genes, store = adata.var_names, stored_in(adata, layer, matrix)
        if layer is not None:
            return cls(name=f"adata.layers[{layer!r}]", genes=genes, store=store)
        if adata.isbacked and adata.is_view:
            warn_backed_view(adata, "the pass")
        if not adata.isbacked or adata.is_view:
            return cls(name="adata.X", genes=genes, store=store)
        stored = adata.file["X"]
        if stored.attrs.get("encoding-type") == "csc_matrix":
            logger.warning(
                "X of %r is stored by column (CSC): every chunk of cells reads the whole "
                "matrix, so the pass needs memory for all of it and slows with its size; write "
                "X as CSR (adata.X = adata.X.tocsr(); adata.write_h5ad(...)) to stream it",
                str(adata.filename),
            )
        opened = stored.file.id.get_filesize()
        return cls(
            name="adata.X",
            genes=genes,
            file=str(backed_path(adata)),
            file_size=opened,
            store=store,
        )

    def where(self, start: int, stop: int) -> str:
        """Rows ``start`` to ``stop - 1`` of the matrix (and its file), for messages."""
        return self._of_file(f"{self.name} rows {start}-{stop - 1}")

    def _of_file(self, what: str) -> str:
        """``what`` followed by the file it is read from, if any."""
        return what if self.store is None else f"{what} of {self.store!r}"

    def read(self, load: Callable[[], object], start: int, stop: int, cells: pd.Index) -> Block:
        """Read rows ``start`` to ``stop - 1`` with ``load()``; return them float64, checked.

        ``cells`` names the rows read (``obs_names``).

        Raises
        ------
        PerturbsimError
            Naming the rows and the file if ``load`` fails or the file changed size since it
            was opened; the matrix, the file and the cell and gene of the first offending
            value if a value is non-finite, negative or above any log1p-normalised value.
        """
        where = self.where(start, stop)
        try:
            block = load()
        except PerturbsimError:
            raise
        except Exception as err:
            raise PerturbsimError(f"cannot read {where}: {error_reason(err)}") from err
        size = None if self.file is None else _file_size(self.file)
        if self.file is not None and size is None:
            raise PerturbsimError(
                f"cannot read {where}: the file no longer exists (deleted or moved since it "
                "was opened)"
            )
        if self.file is not None and size != self.file_size:
            raise PerturbsimError(
                f"cannot read {where}: the file changed size since it was opened "
                "(truncated or overwritten?); rerun on the complete file"
            )
        check_numeric_dtype(block.dtype, self._of_file(self.name))  # before float drops it
        if sparse.issparse(block):
            block = sparse.csr_matrix(block.astype(np.float64))
            # a value stored in parts (duplicate entries) is one value: its powers are not
            # the sum of its parts' powers
            block.sum_duplicates()
        else:
            block = np.asarray(block, dtype=np.float64)
        check_block(
            block,
            where=self._of_file(self.name),
            cells=cells,
            genes=self.genes,
            log_normalised=True,
        )
        return block
