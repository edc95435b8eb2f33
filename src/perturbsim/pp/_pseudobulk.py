"""Per-condition statistics computed in one streaming pass over the cells.

These are the central data structure of perturbsim: everything downstream (DE genes,
co-expression graph, the moment-based GEARS loss, baselines, metrics) scales with
conditions x genes, not with cells.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
from anndata import AnnData
from scipy import sparse
from scipy.linalg import blas
from tqdm.auto import tqdm

from .._errors import PerturbsimError
from .._keys import CONDITION, CONTROL, GRAM, PSEUDOBULK, SPLIT, SPLIT_UNS, UNS
from .._settings import progress_disabled
from ._setup import check_setup
from ._validate import check_block

logger = logging.getLogger(__name__)

N_MOMENTS = 4
HALF_MOMENTS = 2
"""Raw moments kept per half (mean and second moment: enough for a t statistic)."""


@dataclass
class PseudobulkStats:
    """Per-condition moments of expression, and the gene x gene second moments.

    Attributes
    ----------
    conditions
        Canonical condition labels, ``(C,)``; ``ctrl`` included.
    genes
        Gene names, ``(G,)``.
    n_cells
        Cells per condition, ``(C,)``.
    moments
        Raw moments ``E[x^k]`` over the cells of each condition for ``k = 1..4``,
        ``(4, C, G)``; ``moments[0]`` is the mean expression.
    coexpr_n
        Number of cells behind ``coexpr_sum`` and ``coexpr_gram`` (training cells when a
        split exists).
    coexpr_sum
        Sum of expression over those cells, ``(G,)``.
    coexpr_gram
        Sum of ``x x^T`` over those cells, ``(G, G)``, or ``None`` when not computed.
    coexpr_cells
        Which cells those are (see :func:`coexpression_source`), so that statistics computed
        before a split are recognised as stale.
    half_n
        Cells of each condition in each of two random halves, ``(2, C)`` (the split-half
        replicate, see :func:`half_labels`); ``None`` for statistics stored without it.
    half_moments
        Raw moments ``E[x]`` and ``E[x^2]`` of each condition in each half,
        ``(2 halves, 2, C, G)``, or ``None``.
    """

    conditions: np.ndarray
    genes: np.ndarray
    n_cells: np.ndarray
    moments: np.ndarray
    coexpr_n: int
    coexpr_sum: np.ndarray
    coexpr_gram: np.ndarray | None
    coexpr_cells: str = "all"
    half_n: np.ndarray | None = None
    half_moments: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        """Mean expression per condition, ``(C, G)``."""
        return self.moments[0]

    @property
    def control_index(self) -> int:
        """Row of the control condition."""
        return int(np.flatnonzero(self.conditions == CONTROL)[0])

    @property
    def control_mean(self) -> np.ndarray:
        """Mean expression of control cells, ``(G,)``."""
        return self.mean[self.control_index]

    @property
    def delta(self) -> np.ndarray:
        """Mean change over control per condition, ``(C, G)``."""
        return self.mean - self.control_mean

    def variance(self, ddof: int = 1) -> np.ndarray:
        """Per-condition variance of each gene, ``(C, G)`` (zero where a condition has 1 cell)."""
        var = np.clip(self.moments[1] - self.mean**2, 0.0, None)
        n = self.n_cells[:, None].astype(float)
        scale = np.divide(n, n - ddof, out=np.zeros_like(n), where=n > ddof)
        return var * scale

    def index(self, conditions: list[str] | np.ndarray) -> np.ndarray:
        """Row indices of ``conditions``; raise naming any condition not present."""
        lookup = {c: i for i, c in enumerate(self.conditions)}
        missing = [c for c in conditions if c not in lookup]
        if missing:
            raise PerturbsimError(f"conditions not in the statistics: {missing[:10]}")
        return np.array([lookup[c] for c in conditions], dtype=np.int64)

    def coexpression(self) -> np.ndarray:
        """Pearson correlation between genes over the co-expression cells, ``(G, G)``.

        Genes that are constant over those cells get correlation 0 with every other gene.
        """
        if self.coexpr_gram is None:
            raise PerturbsimError("gene x gene moments were not computed: rerun pseudobulk")
        n = self.coexpr_n
        mu = self.coexpr_sum / n
        cov = self.coexpr_gram / n - np.outer(mu, mu)
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        denom = np.outer(sd, sd)
        corr = np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)
        np.fill_diagonal(corr, np.where(sd > 0, 1.0, 0.0))
        return np.clip(corr, -1.0, 1.0)

    def half(self, which: int) -> PseudobulkStats:
        """The statistics of one random half of every condition's cells, control included.

        Every condition keeps only the cells of half ``which`` (0 or 1, see
        :func:`half_labels`) with its first two moments (mean and ``E[x^2]``: enough for
        means, variances and t statistics). The two halves share no cell, control cells
        included, so changes over control computed within each half are independent
        measurements: the split-half replicate.
        """
        if self.half_moments is None or self.half_n is None:
            raise PerturbsimError("the statistics lack the split-half moments: rerun pseudobulk")
        if which not in (0, 1):
            raise PerturbsimError(f"which must be 0 or 1, got {which!r}")
        return PseudobulkStats(
            conditions=self.conditions,
            genes=self.genes,
            n_cells=self.half_n[which],
            moments=self.half_moments[which],
            coexpr_n=0,
            coexpr_sum=np.zeros_like(self.coexpr_sum),
            coexpr_gram=None,
            coexpr_cells="none",
        )

    def to_adata(self, adata: AnnData) -> None:
        """Write into ``adata.uns["perturbsim"]["pseudobulk"]`` and ``adata.varp``."""
        data = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "coexpr_gram" and getattr(self, f.name) is not None
        }
        data["conditions"] = np.asarray(self.conditions, dtype=object)
        data["genes"] = np.asarray(self.genes, dtype=object)
        data["mean"] = self.mean
        data["delta"] = self.delta
        adata.uns.setdefault(UNS, {})[PSEUDOBULK] = data
        if self.coexpr_gram is not None:
            adata.varp[GRAM] = self.coexpr_gram
        logger.info("added .uns[%r][%r] and .varp[%r]", UNS, PSEUDOBULK, GRAM)

    @classmethod
    def from_adata(cls, adata: AnnData) -> PseudobulkStats:
        """Read the statistics written by :func:`pseudobulk`."""
        data = adata.uns.get(UNS, {}).get(PSEUDOBULK)
        if data is None:
            raise PerturbsimError("no pseudobulk statistics: run perturbsim.pp.pseudobulk(adata)")
        gram = adata.varp[GRAM] if GRAM in adata.varp else None
        return cls(
            conditions=np.asarray(data["conditions"]).astype(str),
            genes=np.asarray(data["genes"]).astype(str),
            n_cells=np.asarray(data["n_cells"]),
            moments=np.asarray(data["moments"]),
            coexpr_n=int(data["coexpr_n"]),
            coexpr_sum=np.asarray(data["coexpr_sum"]),
            coexpr_gram=None if gram is None else np.asarray(gram),
            coexpr_cells=str(data.get("coexpr_cells", "all")),
            half_n=None if "half_n" not in data else np.asarray(data["half_n"]),
            half_moments=None if "half_moments" not in data else np.asarray(data["half_moments"]),
        )


def _powers(
    block: np.ndarray | sparse.csr_matrix, n: int
) -> Iterator[np.ndarray | sparse.csr_matrix]:
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


def _coexpression_cells(
    adata: AnnData, coexpression: str, max_cells: int
) -> tuple[np.ndarray | None, str]:
    """Mask of the cells feeding the gene x gene moments, and its description."""
    if coexpression not in {"auto", "train", "all", "none"}:
        raise PerturbsimError(
            f"coexpression must be 'auto', 'train', 'all' or 'none', got {coexpression!r}"
        )
    if coexpression == "none":
        return None, "none"
    has_split = SPLIT in adata.obs.columns
    if coexpression == "train" and not has_split:
        raise PerturbsimError("coexpression='train' needs a split: run perturbsim.pp.split")
    if coexpression == "all" or not has_split:
        mask, source = np.ones(adata.n_obs, dtype=bool), "all"
    else:
        mask = (adata.obs[SPLIT] == "train").to_numpy()
        split = adata.uns.get(UNS, {}).get(SPLIT_UNS, {})
        source = f"train:{split.get('kind', '?')}:{split.get('seed', '?')}:{int(mask.sum())}"
    if mask.sum() > max_cells:
        keep = np.random.default_rng(0).choice(np.flatnonzero(mask), max_cells, replace=False)
        mask = np.zeros(adata.n_obs, dtype=bool)
        mask[keep] = True
        source += f":sample{max_cells}"
    return mask, source


def coexpression_source(adata: AnnData, *, max_cells: int = 10_000) -> str:
    """Describe the cells :func:`pseudobulk` would use for co-expression (``"auto"``)."""
    return _coexpression_cells(adata, "auto", max_cells)[1]


def _add_gram(gram: np.ndarray, block: np.ndarray | sparse.csr_matrix) -> None:
    """Add the lower triangle of ``block.T @ block`` to ``gram`` (see :func:`_symmetric`).

    Sparse product for very sparse data, else a float32 BLAS symmetric rank-k update (half
    the work of the full product).
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


def _symmetric(lower: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose lower triangle is ``lower``'s (its upper triangle is 0)."""
    lower += np.tril(lower, -1).T
    return lower


def half_labels(codes: np.ndarray, n_conditions: int, *, seed: int = 0) -> np.ndarray:
    """Assign each cell to one of two random halves of its condition.

    Within each condition the cells are shuffled (seeded) and the first ``n // 2`` go to
    half 0, the others to half 1, so the halves differ in size by at most one cell.

    Parameters
    ----------
    codes
        Condition code of each cell, ``(n_cells,)``.
    n_conditions
        Number of conditions (codes run from 0 to ``n_conditions - 1``).
    seed
        Seed of the shuffle.

    Returns
    -------
    ``(n_cells,)`` int8 array of 0 and 1.

    Examples
    --------
    >>> import numpy as np
    >>> halves = half_labels(np.array([0, 0, 0, 1, 1, 0]), 2, seed=0)
    >>> np.bincount(halves[[0, 1, 2, 5]]).tolist(), np.bincount(halves[[3, 4]]).tolist()
    ([2, 2], [1, 1])
    """
    keys = np.random.default_rng(seed).random(codes.size)
    order = np.lexsort((keys, codes))
    sizes = np.bincount(codes, minlength=n_conditions)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(codes.size, dtype=np.int64)
    rank[order] = np.arange(codes.size) - starts[codes[order]]
    return (rank >= sizes[codes] // 2).astype(np.int8)


def compute_pseudobulk(
    adata: AnnData,
    *,
    coexpression: str = "auto",
    chunk_size: int = 5_000,
    layer: str | None = None,
    coexpr_max_cells: int = 10_000,
    half_seed: int = 0,
) -> PseudobulkStats:
    """Compute :class:`PseudobulkStats` in one streaming pass, without writing into ``adata``.

    Arguments as for :func:`pseudobulk`, which stores the result.

    Examples
    --------
    >>> import perturbsim as ps
    >>> stats = ps.pp.compute_pseudobulk(ps.ds.norman2019_subset())
    >>> stats.moments.shape
    (4, 34, 500)
    """
    check_setup(adata)
    if chunk_size < 1:
        raise PerturbsimError(f"chunk_size must be positive, got {chunk_size}")
    cond = adata.obs[CONDITION]
    conditions = np.asarray(cond.cat.categories, dtype=str)
    codes = cond.cat.codes.to_numpy()
    n_cond, n_genes = len(conditions), adata.n_vars
    gram_mask, source = _coexpression_cells(adata, coexpression, coexpr_max_cells)
    if layer is not None and layer not in adata.layers:
        raise PerturbsimError(f"layer {layer!r} not found in adata.layers: {list(adata.layers)}")
    matrix = adata.layers[layer] if layer is not None else adata.X

    sums = np.zeros((N_MOMENTS, n_cond, n_genes))
    halves = half_labels(codes, n_cond, seed=half_seed)
    second_half = np.zeros((HALF_MOMENTS, n_cond, n_genes))
    gram = None if gram_mask is None else np.zeros((n_genes, n_genes))
    coexpr_sum = np.zeros(n_genes)
    starts = range(0, adata.n_obs, chunk_size)
    for start in tqdm(starts, desc="pseudobulk", unit="chunk", disable=progress_disabled()):
        stop = min(start + chunk_size, adata.n_obs)
        block = matrix[start:stop]
        block = block.astype(np.float64) if sparse.issparse(block) else np.asarray(block, float)
        if sparse.issparse(block):
            block = sparse.csr_matrix(block)
        check_block(block, where=f"adata.X rows {start}-{stop - 1}")
        rows = codes[start:stop]
        indicator = sparse.csr_matrix(
            (np.ones(stop - start), (rows, np.arange(stop - start))), shape=(n_cond, stop - start)
        )
        in_second = indicator @ sparse.diags(halves[start:stop].astype(np.float64))
        for k, power in enumerate(_powers(block, N_MOMENTS)):
            summed = indicator @ power
            sums[k] += summed.toarray() if sparse.issparse(summed) else summed
            if k < HALF_MOMENTS:
                summed = in_second @ power
                second_half[k] += summed.toarray() if sparse.issparse(summed) else summed
        if gram is not None:
            sub = block[gram_mask[start:stop]]
            coexpr_sum += np.asarray(sub.sum(axis=0)).ravel()
            _add_gram(gram, sub)
    n_cells = np.bincount(codes, minlength=n_cond)
    moments = sums / np.maximum(n_cells, 1)[None, :, None]
    n_second = np.bincount(codes[halves == 1], minlength=n_cond)
    half_n = np.stack([n_cells - n_second, n_second])
    half_sums = np.stack([sums[:HALF_MOMENTS] - second_half, second_half])
    half_moments = half_sums / np.maximum(half_n, 1)[:, None, :, None]
    return PseudobulkStats(
        conditions=conditions,
        genes=np.asarray(adata.var_names, dtype=str),
        n_cells=n_cells,
        moments=moments,
        coexpr_n=0 if gram_mask is None else int(gram_mask.sum()),
        coexpr_sum=coexpr_sum,
        coexpr_gram=None if gram is None else _symmetric(gram),
        coexpr_cells=source,
        half_n=half_n,
        half_moments=half_moments,
    )


def pseudobulk(
    adata: AnnData,
    *,
    coexpression: str = "auto",
    chunk_size: int = 5_000,
    layer: str | None = None,
    coexpr_max_cells: int = 10_000,
    half_seed: int = 0,
    copy: bool = False,
) -> AnnData | None:
    """Compute per-condition statistics in one streaming, chunked pass over the cells.

    Works on dense, sparse and backed (on-disk) matrices; memory grows with conditions x
    genes and genes x genes, not with cells. Non-finite or negative values found during the
    pass raise an error naming the rows.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`.
    coexpression
        Which cells feed the gene x gene second moments (for the co-expression graph):
        ``"auto"`` (training cells when a split exists, else all), ``"train"``, ``"all"`` or
        ``"none"`` (skip them).
    chunk_size
        Cells read at a time.
    layer
        Layer to use instead of ``X``.
    coexpr_max_cells
        At most this many of those cells (a seeded random subset) feed the gene x gene
        moments: the standard error of a correlation is already about 0.01 at 10,000
        cells, and the cost of the moments grows with cells x genes².
    half_seed
        Seed of the split of each condition's cells into two random halves, whose means are
        kept as a split-half replicate (the screen's noise ceiling; see
        :func:`half_labels`).
    copy
        Work on a copy and return it.

    Returns
    -------
    The copy with ``copy=True``, else ``None`` (:func:`compute_pseudobulk` returns the
    statistics without writing them). Writes
    ``adata.uns["perturbsim"]["pseudobulk"]`` (``conditions``, ``genes``, ``n_cells``,
    ``mean`` and ``delta`` (mean expression and mean change over control, ``(conditions,
    genes)``), ``moments`` of shape ``(4, conditions, genes)``, ``coexpr_n``, ``coexpr_sum``,
    ``coexpr_cells``, ``half_n`` and ``half_moments`` (cells and raw moments ``E[x]``,
    ``E[x^2]`` of each condition in each of two random halves, ``(2, conditions)`` and
    ``(2, 2, conditions, genes)``)) and ``adata.varp["perturbsim_gram"]``; read them back with
    :meth:`PseudobulkStats.from_adata`.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.pseudobulk(adata)
    >>> ps.pp.PseudobulkStats.from_adata(adata).moments.shape
    (4, 34, 500)
    """
    if copy:
        adata = adata.copy()
    stats = compute_pseudobulk(
        adata,
        coexpression=coexpression,
        chunk_size=chunk_size,
        layer=layer,
        coexpr_max_cells=coexpr_max_cells,
        half_seed=half_seed,
    )
    stats.to_adata(adata)
    return adata if copy else None
