"""Per-condition statistics computed in one streaming pass over the cells.

These are the central data structure of perturbsim: everything downstream (DE genes,
co-expression graph, the moment-based GEARS loss, baselines, metrics) scales with
conditions x genes, not with cells. The pass adds up the sums of chunks of cells
(:mod:`._chunk_sums`), one chunk after another in this process or as dask tasks
(:mod:`._distributed`), and divides them by the counts at the end.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse
from tqdm.auto import tqdm

from .._checks import as_whole, check_count, check_list, gene_selection, shown
from .._errors import PerturbsimError
from .._keys import CONDITION, CONTROL, GRAM, PSEUDOBULK, SPLIT, SPLIT_UNS, UNS
from .._settings import progress_disabled
from ._chunk_sums import HALF_MOMENTS, CellLabels, ChunkSums, RowSource
from ._distributed import dask_blocks, dask_scheduler_chosen, dask_sums, is_dask_array
from ._setup import check_setup
from ._validate import validate_expression
from ._writes import store_uns, written_screen

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger(__name__)

COEXPR_MAX_CELLS = 10_000
"""The most cells the gene x gene moments are drawn from by default (a subset drawn by the
cells' names): the standard error of a correlation is already about 0.01 at 10,000 cells."""
DRAWN_BY = "names"
"""How this version draws the split halves and the co-expression subset (by the cells'
names); statistics stored by earlier versions, drawn by the cells' positions, read as
``"positions"``."""
LABELS_KEY = "perturbsim-label"
"""The :func:`cell_keys` key of :func:`labels_fingerprint`."""
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
"""An odd 64-bit constant that spreads a condition's code over every bit before mixing."""
COEXPR_SAMPLE_KEY = "perturbsim-coexp"
"""The :func:`cell_keys` key of the co-expression cells' subset: its own, so that the subset
is drawn independently of the split halves."""
CONSTANT_RTOL = 1e-4
"""A gene whose variance over the co-expression cells is at most this share of its mean
square (a coefficient of variation under 1 %) is constant there
(:meth:`PseudobulkStats.coexpression`): ``E[x^2] - E[x]^2`` of a constant leaves rounding,
1e-6 to 3e-6 of ``E[x^2]`` in the float32 sums of the gene x gene moments (3,000 to 30,000
cells), which divided by itself read as a correlation of +-1."""
FINGERPRINT_ROWS = 64
"""Rows of the matrix (evenly spaced) whose values fingerprint stored statistics."""
MIN_REPLICATE_CELLS = 4
"""Conditions with fewer cells have no split-half replicate (two cells per half): their means
are mostly noise, left out of evaluations and of measured interaction scores."""
PRIOR_DF = 10.0
"""Prior degrees of freedom of :meth:`PseudobulkStats.moderated_variance`. Chosen on control
cells (the Gasperini screen's and a simulated screen's) relabelled at random as the four
means of a pair's test (``benchmarks/bench_gi_per_gene_null.py``), for pairs of 4 to 40
cells (fewer are untested by default), with the pair's cells spread as control's and more
(each value times 1 +- 0.5): the prior whose tests' false positives at p < 0.05 stayed
lowest at worst (``benchmarks/RESULTS.md``)."""


def welch_satterthwaite(squared_errors: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Degrees of freedom of a sum of independent means' errors, ``(Σ v)² / Σ (v² / dfᵢ)``.

    Parameters
    ----------
    squared_errors
        ``(k, ...)`` the means' squared standard errors ``v``.
    dof
        ``(k,)`` the degrees of freedom of each mean's variance (``inf``: known exactly).

    Returns
    -------
    The Welch-Satterthwaite degrees of freedom over the first axis (``inf`` when every
    variance is known exactly, NaN where every ``v`` is 0).
    """
    shape = (-1,) + (1,) * (np.ndim(squared_errors) - 1)
    dof = np.asarray(dof, dtype=float).reshape(shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return squared_errors.sum(axis=0) ** 2 / (squared_errors**2 / dof).sum(axis=0)


def check_prior_df(prior_df: Any) -> float:
    """``prior_df`` as a float if it is a number >= 0 (``inf`` included), else raise."""
    if isinstance(prior_df, bool) or not isinstance(prior_df, numbers.Real) or not prior_df >= 0:
        raise PerturbsimError(
            f"prior_df must be a number >= 0 (inf: the pooled variance, or the condition's own "
            f"where larger), got {prior_df!r}"
        )
    return float(prior_df)


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
    coexpr_max_cells
        The most cells the gene x gene moments were drawn from (``pseudobulk``'s
        ``coexpr_max_cells``), so that a later check asks for the same draw.
    half_n
        Cells of each condition in each of two random halves, ``(2, C)`` (the split-half
        replicate, see :func:`half_labels`); ``None`` for statistics stored without it.
    half_moments
        Raw moments ``E[x]`` and ``E[x^2]`` of each condition in each half,
        ``(2 halves, 2, C, G)``, or ``None``.
    layer
        The layer of ``adata`` the moments are of (``None``: ``X``).
    half_seed
        The seed of the two halves.
    fingerprint
        Sum and sum of squares of :data:`FINGERPRINT_ROWS` evenly spaced rows, ``(2,)``
        (:func:`value_fingerprint`): how stored statistics of values changed since are
        recognised; ``None`` for statistics stored without it.
    labels_fingerprint
        A hash of every cell's condition by the cell's name (:func:`labels_fingerprint`):
        how stored statistics of cells relabelled since, each condition keeping its count,
        are recognised; ``None`` for statistics stored without it.
    drawn_by
        How the halves and the co-expression subset were drawn: ``"names"``
        (:data:`DRAWN_BY`, :func:`cell_keys`) or ``"positions"`` (stored by an earlier
        version: :func:`current_stats` computes them afresh).
    """

    conditions: np.ndarray
    genes: np.ndarray
    n_cells: np.ndarray
    moments: np.ndarray
    coexpr_n: int
    coexpr_sum: np.ndarray
    coexpr_gram: np.ndarray | None
    coexpr_cells: str = "all"
    coexpr_max_cells: int = COEXPR_MAX_CELLS
    half_n: np.ndarray | None = None
    half_moments: np.ndarray | None = None
    layer: str | None = None
    half_seed: int = 0
    fingerprint: np.ndarray | None = None
    labels_fingerprint: int | None = None
    drawn_by: str = DRAWN_BY

    def __repr__(self) -> str:
        """A summary: conditions, genes, cells and what was computed (not the arrays).

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> ps.pp.pseudobulk(adata)
        >>> ps.pp.PseudobulkStats.from_adata(adata)  # doctest: +ELLIPSIS
        PseudobulkStats: 34 conditions x 500 genes, 3375 cells (control 100); gene x gene ...
        """
        control = np.flatnonzero(np.asarray(self.conditions) == CONTROL)  # a slice may lack it
        cells = f"control {int(self.n_cells[control[0]])}" if control.size else "no control"
        parts = [
            f"{len(self.conditions)} conditions x {len(self.genes)} genes, "
            f"{int(self.n_cells.sum())} cells ({cells})"
        ]
        if self.coexpr_gram is not None:
            parts.append(f"gene x gene moments of {self.coexpr_cells} cells")
        if self.half_moments is not None:
            parts.append(f"split halves (seed {self.half_seed})")
        if self.layer is not None:
            parts.append(f"of layer {self.layer!r}")
        return "PseudobulkStats: " + "; ".join(parts)

    @property
    def mean(self) -> np.ndarray:
        """Mean expression per condition, ``(C, G)``."""
        return self.moments[0]

    @property
    def control_index(self) -> int:
        """Row of the control condition (an error naming the rows when there is none)."""
        rows = np.flatnonzero(self.conditions == CONTROL)
        if not rows.size:
            raise PerturbsimError(
                f"the statistics have no control cells ({CONTROL!r} is none of their "
                f"{len(self.conditions)} conditions): every change is over control"
            )
        return int(rows[0])

    @property
    def control_mean(self) -> np.ndarray:
        """Mean expression of control cells, ``(G,)``."""
        return self.mean[self.control_index]

    @property
    def delta(self) -> np.ndarray:
        """Mean change over control per condition, ``(C, G)``."""
        return self.mean - self.control_mean

    def variance(self, ddof: int = 1) -> np.ndarray:
        """Per-condition variance of each gene, ``(C, G)``, from the first two moments.

        Parameters
        ----------
        ddof
            Delta degrees of freedom: the sum of squares is divided by ``n_cells - ddof``
            (1: the unbiased sample variance); 0 where a condition has ``ddof`` cells or
            fewer.

        Returns
        -------
        ``(C, G)`` float array, one row per condition of :attr:`conditions`: the second
        moment less the squared mean (clipped at 0), times ``n / (n - ddof)``; 0 in the rows
        of conditions of ``ddof`` cells or fewer.
        """
        ddof = check_count("ddof", ddof, minimum=0)
        var = np.clip(self.moments[1] - self.mean**2, 0.0, None)
        n = self.n_cells[:, None].astype(float)
        scale = np.divide(n, n - ddof, out=np.zeros_like(n), where=n > ddof)
        return var * scale

    def squared_standard_error(self) -> np.ndarray:
        """Squared standard error of each condition's mean expression, ``(C, G)``.

        ``variance / n_cells``; 0 where a condition has one cell (no variance to estimate
        it from).
        """
        n = self.n_cells[:, None].astype(float)
        return np.divide(self.variance(), n, out=np.zeros_like(self.mean), where=n > 0)

    def standard_error(self) -> np.ndarray:
        """Standard error of each condition's mean expression, ``(C, G)``.

        The root of :meth:`squared_standard_error` (:func:`~perturbsim.tl.gi_per_gene`
        reads the moderated ones instead: :meth:`moderated_variance`).

        Examples
        --------
        >>> import numpy as np
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> stats = ps.pp.compute_pseudobulk(adata, coexpression="none")
        >>> se = stats.standard_error()
        >>> se.shape == (len(stats.conditions), len(stats.genes))
        True
        >>> row = stats.control_index  # the control's: its cells' spread over their root count
        >>> bool(np.allclose(se[row], np.sqrt(stats.variance()[row] / stats.n_cells[row])))
        True
        """
        return np.sqrt(self.squared_standard_error())

    def moderated_variance(
        self, prior_df: float = PRIOR_DF, *, pooled_over: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-condition variances shrunk towards each gene's pooled variance, and their df.

        ``((n - 1) s² + d0 s0²) / (n - 1 + d0)`` with ``s²`` a condition's sample variance
        on ``n`` cells, ``s0²`` the gene's variance pooled over every condition (weighted by
        ``n - 1``) and ``d0 = prior_df``: limma's moderated variance (Smyth 2004), with the
        prior's degrees of freedom fixed rather than estimated, and never below ``s²``
        itself (as DESeq kept the larger of a gene's fitted and own dispersion, Anders &
        Huber 2010). A condition of a few cells then borrows the spread of the rest (a mean
        of one cell has the pooled one), where its own would often be 0 on sparse genes and
        make any difference look significant; one whose cells spread more than the rest
        (mostly control) keeps its own spread, which the pooled one would understate.

        Parameters
        ----------
        prior_df
            ``d0 >= 0``; 0 is each condition's sample variance (NaN for a condition of one
            cell), ``inf`` the larger of the pooled and the condition's own.
        pooled_over
            Indices of the conditions ``s0²`` is pooled over (default: every one). A model
            pools over the conditions it may see, so that held-out cells shape nothing.

        Returns
        -------
        ``(variance, df)``: ``(C, G)`` the moderated variances, ``(C,)`` their degrees of
        freedom, ``n - 1 + d0`` (``d0`` without cells): the moderated estimate's, also
        where a condition's own variance is kept (on ``n - 1``: the df then overstate its
        certainty, which the nulls of ``benchmarks/bench_gi_per_gene_null.py`` found
        harmless, under 5 % from 4 cells, as the variance kept is the larger).

        Raises
        ------
        PerturbsimError
            With ``prior_df > 0``, when no condition pooled over has two cells or more
            (no spread to moderate towards).

        Examples
        --------
        >>> import numpy as np
        >>> import perturbsim as ps
        >>> stats = ps.pp.compute_pseudobulk(ps.ds.norman2019_subset(), coexpression="none")
        >>> variance, df = stats.moderated_variance()
        >>> bool(np.allclose(df, stats.n_cells - 1 + 10))
        True
        >>> bool((variance >= stats.variance()).all())  # never below a condition's own
        True
        >>> own, _ = stats.moderated_variance(prior_df=0)  # each condition's own
        >>> bool(np.allclose(own, stats.variance()))
        True
        """
        prior_df = check_prior_df(prior_df)
        own_df = np.clip(self.n_cells.astype(float) - 1.0, 0.0, None)
        sum_of_squares = self.variance() * own_df[:, None]
        pool = slice(None) if pooled_over is None else self._rows_of(pooled_over)
        pooled_df = float(own_df[pool].sum())
        if pooled_df == 0 and prior_df > 0:
            raise PerturbsimError(
                "no condition to pool the variance over has two cells or more"
                + ("" if pooled_over is None else " (pooled_over)")
                + ": there is no spread to moderate towards; pass prior_df=0"
            )
        pooled = sum_of_squares[pool].sum(axis=0) / max(pooled_df, 1.0)
        df = own_df + prior_df
        if np.isinf(prior_df):
            return np.fmax(pooled[None, :], self.variance()), df
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = (sum_of_squares + prior_df * pooled) / df[:, None]
        variance = np.fmax(variance, self.variance())
        return np.where(df[:, None] > 0, variance, np.nan), df

    def _rows_of(self, rows: Sequence[int]) -> np.ndarray:
        """``rows`` as indices of conditions, else a one-line error naming the first bad one."""
        check_list("pooled_over", rows, "condition indices")
        n = len(self.conditions)
        out = []
        for row in rows:
            whole = as_whole(row)
            if whole is None or not 0 <= whole < n:
                raise PerturbsimError(
                    f"pooled_over must hold indices of the {n} conditions (0 to {n - 1}), "
                    f"got {shown(row)}"
                )
            out.append(whole)
        return np.asarray(out, dtype=np.int64)

    def moderated_squared_standard_error(
        self, prior_df: float = PRIOR_DF, *, pooled_over: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Squared standard errors of the means from :meth:`moderated_variance`, and their df.

        ``prior_df`` and ``pooled_over`` as there.

        Returns
        -------
        ``(C, G)`` the moderated variances over each condition's cells, ``(C,)`` their
        degrees of freedom.
        """
        variance, dof = self.moderated_variance(prior_df, pooled_over=pooled_over)
        with np.errstate(invalid="ignore", divide="ignore"):
            return variance / self.n_cells[:, None].astype(float), dof

    def gene_mask(self, genes: Sequence[str] | np.ndarray | None) -> np.ndarray:
        """``genes`` as a boolean mask over :attr:`genes`.

        Parameters
        ----------
        genes
            A boolean mask (checked for its length; a labelled ``pandas.Series`` aligned
            by its index), gene names (checked against :attr:`genes`) or None (every
            gene); see :func:`~perturbsim._checks.gene_selection`.

        Returns
        -------
        ``(G,)`` boolean array over :attr:`genes`: the mask when given one, else True at
        the genes named (at every gene for None).
        """
        if genes is None:
            return np.ones(len(self.genes), bool)
        return gene_selection(genes, self.genes, "the statistics")

    def index(self, conditions: list[str] | np.ndarray) -> np.ndarray:
        """Row indices of ``conditions``; raise naming any condition not present.

        Parameters
        ----------
        conditions
            Canonical condition labels, each a row of these statistics.

        Returns
        -------
        ``(len(conditions),)`` int64 array: the row of each condition in :attr:`conditions`,
        in the order given.
        """
        check_list("conditions", conditions, "condition labels")
        lookup = {c: i for i, c in enumerate(self.conditions)}
        missing = [c for c in conditions if c not in lookup]
        if missing:
            raise PerturbsimError(f"conditions not in the statistics: {missing[:10]}")
        return np.array([lookup[c] for c in conditions], dtype=np.int64)

    def coexpression(self) -> np.ndarray:
        """Pearson correlation between genes over the co-expression cells, ``(G, G)``.

        Genes that are constant over those cells (their variance at most
        :data:`CONSTANT_RTOL` of their mean square) get correlation 0 with every gene,
        themselves included.
        """
        if self.coexpr_gram is None or self.coexpr_n < 1:
            raise PerturbsimError("gene x gene moments were not computed: rerun pseudobulk")
        n = self.coexpr_n
        mu = self.coexpr_sum / n
        corr = np.asarray(self.coexpr_gram, dtype=np.float64) / n  # the covariance, in place
        mean_square = np.diag(corr).copy()
        corr -= np.outer(mu, mu)
        variance = np.diag(corr)
        varies = variance > CONSTANT_RTOL * mean_square  # rounding is no variance
        sd = np.sqrt(np.where(varies, variance, 0.0))
        inverse = np.divide(1.0, sd, out=np.zeros_like(sd), where=varies)
        corr *= inverse[:, None]
        corr *= inverse
        np.fill_diagonal(corr, np.where(varies, 1.0, 0.0))
        return np.clip(corr, -1.0, 1.0, out=corr)

    def half(self, which: int) -> PseudobulkStats:
        """The statistics of one random half of every condition's cells, control included.

        Every condition keeps only the cells of half ``which`` (0 or 1, see
        :func:`half_labels`) with its first two moments (mean and ``E[x^2]``: enough for
        means, variances and t statistics). The two halves share no cell, control cells
        included, so changes over control computed within each half are independent
        measurements: the split-half replicate.

        Parameters
        ----------
        which
            The half, 0 or 1.

        Returns
        -------
        New statistics of the same conditions and genes: that half's ``n_cells`` and
        ``moments`` (``(2, C, G)``: ``E[x]`` and ``E[x^2]`` only), no gene x gene moments
        (``coexpr_cells="none"``), no halves of their own and no fingerprint.
        """
        if self.half_moments is None or self.half_n is None:
            raise PerturbsimError("the statistics lack the split-half moments: rerun pseudobulk")
        if (
            isinstance(which, bool)
            or not isinstance(which, numbers.Integral)
            or which not in (0, 1)
        ):
            raise PerturbsimError(f"which must be 0 or 1, got {which!r}")
        return PseudobulkStats(
            conditions=self.conditions,
            genes=self.genes,
            n_cells=self.half_n[int(which)],
            moments=self.half_moments[int(which)],
            coexpr_n=0,
            coexpr_sum=np.zeros_like(self.coexpr_sum),
            coexpr_gram=None,
            coexpr_cells="none",
            layer=self.layer,
            half_seed=self.half_seed,
            drawn_by=self.drawn_by,
        )

    def to_adata(self, adata: AnnData) -> None:
        """Write into ``adata.uns["perturbsim"]["pseudobulk"]`` and ``adata.varp``.

        Parameters
        ----------
        adata
            The screen the statistics are of (its genes, in order, and cells).
        """
        data = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "coexpr_gram" and getattr(self, f.name) is not None
        }
        data["conditions"] = np.asarray(self.conditions, dtype=object)
        data["genes"] = np.asarray(self.genes, dtype=object)
        data["mean"] = self.mean
        data["delta"] = self.delta
        store_uns(adata, PSEUDOBULK, data)
        if self.coexpr_gram is not None:
            adata.varp[GRAM] = self.coexpr_gram
        elif GRAM in adata.varp:  # an earlier pass's, of other cells
            del adata.varp[GRAM]
        logger.info("added .uns[%r][%r] and .varp[%r]", UNS, PSEUDOBULK, GRAM)

    @classmethod
    def from_adata(cls, adata: AnnData) -> PseudobulkStats:
        """Read the statistics written by :func:`pseudobulk`, if they are still ``adata``'s.

        The arrays are those stored in ``adata.uns``, not copies (statistics of a large
        screen are read without doubling them): changing them in place changes what
        ``adata`` stores.

        Raises
        ------
        PerturbsimError
            If none are stored, or they are of other genes, or of other cells or labels
            (``adata`` was subset or relabelled since; :func:`current_stats` computes them
            afresh instead).
        """
        stats = cls.stored_in(adata)
        if not _same_screen(stats, adata):
            raise PerturbsimError(
                "the statistics stored in adata are of other cells, genes or labels (subset "
                "or relabelled since they were computed): rerun perturbsim.pp.pseudobulk(adata)"
            )
        return stats

    @classmethod
    def stored_in(cls, adata: AnnData) -> PseudobulkStats:
        """The statistics written by :func:`pseudobulk` into ``adata``, whatever it holds now.

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> ps.pp.pseudobulk(adata)
        >>> half = adata[adata.obs["perturbsim_condition"] != "KLF1"].copy()
        >>> int(ps.pp.PseudobulkStats.stored_in(half).n_cells.sum()) == adata.n_obs  # stale
        True
        """
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
            coexpr_max_cells=int(data.get("coexpr_max_cells", COEXPR_MAX_CELLS)),
            half_n=None if "half_n" not in data else np.asarray(data["half_n"]),
            half_moments=None if "half_moments" not in data else np.asarray(data["half_moments"]),
            layer=None if "layer" not in data else str(data["layer"]),
            half_seed=int(data.get("half_seed", 0)),
            fingerprint=None if "fingerprint" not in data else np.asarray(data["fingerprint"]),
            labels_fingerprint=(
                None if "labels_fingerprint" not in data else int(data["labels_fingerprint"])
            ),
            drawn_by=str(data.get("drawn_by", "positions")),
        )


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
        cells = np.flatnonzero(mask)
        keys = cell_keys(adata.obs_names[cells], COEXPR_SAMPLE_KEY)
        keep = cells[np.argsort(keys, kind="stable")[:max_cells]]
        mask = np.zeros(adata.n_obs, dtype=bool)
        mask[keep] = True
        source += f":named-sample{max_cells}"
    return mask, source


def coexpression_source(adata: AnnData, *, max_cells: int = COEXPR_MAX_CELLS) -> str:
    """Describe the cells :func:`pseudobulk` would use for co-expression (``"auto"``).

    At most ``max_cells`` of them (of more, those whose names hash lowest: see
    :func:`cell_keys`).
    """
    return _coexpression_cells(adata, "auto", max_cells)[1]


def cell_keys(names: pd.Index | np.ndarray | Sequence[str], key: str) -> np.ndarray:
    """A pseudo-random key of each cell computed from its name alone, ``(n_cells,)`` uint64.

    A keyed hash of each name's UTF-8 bytes under the 16-character ``key``
    (:func:`pandas.util.hash_array`: SipHash, then a 64-bit mix): a cell keeps its key
    wherever it is stored, so draws ordered by these keys do not move when the cells are
    reordered, and leaving cells out does not reorder the others. Cells of one name are
    told apart by their occurrence (the ``k``-th after the first hashed as the name, a NUL
    and ``k``), so they are scattered at random too, though which of them is which then
    follows their order.

    Parameters
    ----------
    names
        The cells' names (``adata.obs_names``; non-strings are read as their text).
    key
        Sixteen ASCII characters; another key draws other, independent keys.

    Returns
    -------
    One key per cell.

    Examples
    --------
    >>> import pandas as pd
    >>> keys = cell_keys(pd.Index(["AAAC-1", "TTTG-1", "AAAC-1"]), "0000000000000000")
    >>> keys.dtype.name, len(set(keys.tolist()))
    ('uint64', 3)
    >>> bool(cell_keys(pd.Index(["TTTG-1"]), "0000000000000000")[0] == keys[1])
    True
    """
    index = pd.Index(names).astype(str)  # object strings, no fixed-width copy
    values = pd.Series(index, dtype=object)
    if not index.is_unique:
        occurrence = values.groupby(values, sort=False).cumcount()
        repeated = occurrence > 0
        values[repeated] = values[repeated] + "\0" + occurrence[repeated].astype(str)
    return pd.util.hash_array(values.to_numpy(), encoding="utf8", hash_key=key, categorize=False)


def half_seed_key(seed: int) -> str:
    """The :func:`cell_keys` key of the halves drawn with ``seed``: its 16 hex digits.

    Raises
    ------
    PerturbsimError
        For a seed outside ``0 .. 2**64 - 1``.

    Examples
    --------
    >>> half_seed_key(10)
    '000000000000000a'
    """
    if not 0 <= seed < 2**64:
        raise PerturbsimError(f"half_seed must be a whole number 0 .. 2**64 - 1, got {seed}")
    return f"{seed:016x}"


def half_labels(
    codes: np.ndarray, n_conditions: int, names: pd.Index | np.ndarray, *, seed: int = 0
) -> np.ndarray:
    """Assign each cell to one of two random halves of its condition.

    Within each condition the cells are ordered by their :func:`cell_keys` (names hashed
    under ``seed``) and the first ``n // 2`` go to half 0, the others to half 1, so the
    halves differ in size by at most one cell. The draw follows the cells' names, not their
    positions: reordering the screen's cells draws the same halves, and leaving cells out
    moves only the condition they leave (its cells at the middle of the order may change
    half). Cells of one name are told apart by their occurrence (:func:`cell_keys`).

    Parameters
    ----------
    codes
        Condition code of each cell, ``(n_cells,)``.
    n_conditions
        Number of conditions (codes run from 0 to ``n_conditions - 1``).
    names
        Each cell's name (``adata.obs_names``), ``(n_cells,)``.
    seed
        Seed of the draw, below ``2**64``.

    Returns
    -------
    ``(n_cells,)`` int8 array of 0 and 1.

    Examples
    --------
    >>> import numpy as np
    >>> names = ["a", "b", "c", "d", "e", "f"]
    >>> halves = half_labels(np.array([0, 0, 0, 1, 1, 0]), 2, names, seed=0)
    >>> np.bincount(halves[[0, 1, 2, 5]]).tolist(), np.bincount(halves[[3, 4]]).tolist()
    ([2, 2], [1, 1])
    """
    keys = cell_keys(names, half_seed_key(seed))
    order = np.lexsort((keys, codes))
    sizes = np.bincount(codes, minlength=n_conditions)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(codes.size, dtype=np.int64)
    rank[order] = np.arange(codes.size) - starts[codes[order]]
    return (rank >= sizes[codes] // 2).astype(np.int8)


def _symmetric(lower: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose lower triangle is ``lower``'s (its upper triangle is 0)."""
    lower += np.tril(lower, -1).T
    return lower


def _stream(matrix: object, labels: CellLabels, source: RowSource, chunk_size: int) -> ChunkSums:
    """Add the sums of one chunk of rows at a time, in this process, with a progress bar.

    ``chunk_size`` rows a chunk; a dask array's own row blocks, each computed as it is read.
    """
    n_obs, n_genes = matrix.shape
    sums = ChunkSums.zeros(labels.n_conditions, n_genes, gram=labels.gram_mask is not None)
    if is_dask_array(matrix):
        chunks = dask_blocks(matrix)
    else:
        chunks = [
            (
                start,
                min(start + chunk_size, n_obs),
                partial(matrix.__getitem__, slice(start, start + chunk_size)),
            )
            for start in range(0, n_obs, chunk_size)
        ]
    for start, stop, load in tqdm(
        chunks, desc="pseudobulk", unit="chunk", disable=progress_disabled()
    ):
        rows = labels.rows(start, stop)
        sums.add_block(source.read(load, start, stop, rows.names), rows)
    return sums


def _from_sums(
    sums: ChunkSums,
    labels: CellLabels,
    *,
    conditions: np.ndarray,
    genes: np.ndarray,
    coexpr_cells: str,
) -> PseudobulkStats:
    """Divide the sums over all cells by their counts."""
    n_cells = np.bincount(labels.codes, minlength=labels.n_conditions)
    moments = sums.powers / np.maximum(n_cells, 1)[None, :, None]
    n_second = np.bincount(labels.codes[labels.halves == 1], minlength=labels.n_conditions)
    half_n = np.stack([n_cells - n_second, n_second])
    half_sums = np.stack([sums.powers[:HALF_MOMENTS] - sums.second_half, sums.second_half])
    half_moments = half_sums / np.maximum(half_n, 1)[:, None, :, None]
    return PseudobulkStats(
        conditions=conditions,
        genes=genes,
        n_cells=n_cells,
        moments=moments,
        coexpr_n=0 if labels.gram_mask is None else int(labels.gram_mask.sum()),
        coexpr_sum=sums.coexpr_sum,
        coexpr_gram=None if sums.gram is None else _symmetric(sums.gram),
        coexpr_cells=coexpr_cells,
        half_n=half_n,
        half_moments=half_moments,
    )


def compute_pseudobulk(
    adata: AnnData,
    *,
    coexpression: str = "auto",
    chunk_size: int = 5_000,
    layer: str | None = None,
    coexpr_max_cells: int = COEXPR_MAX_CELLS,
    half_seed: int = 0,
    scheduler: str | Client | None = None,
) -> PseudobulkStats:
    """Compute :class:`PseudobulkStats` in one streaming pass, without writing into ``adata``.

    Parameters
    ----------
    adata
        A set-up screen (in memory, backed, or with a dask ``X``).
    coexpression, chunk_size, layer, coexpr_max_cells, half_seed, scheduler
        As for :func:`pseudobulk`, which stores the result.

    Returns
    -------
    The statistics (nothing is written into ``adata``).

    Examples
    --------
    >>> import perturbsim as ps
    >>> stats = ps.pp.compute_pseudobulk(ps.ds.norman2019_subset())
    >>> stats.moments.shape
    (4, 34, 500)
    """
    check_setup(adata)
    chunk_size = check_count("chunk_size", chunk_size)
    coexpr_max_cells = check_count("coexpr_max_cells", coexpr_max_cells)
    half_seed = check_count("half_seed", half_seed, minimum=0)
    if half_seed >= 2**63:  # stored with the statistics as a 64-bit integer
        raise PerturbsimError(f"half_seed must be below 2**63, got {half_seed}")
    cond = adata.obs[CONDITION]
    conditions = np.asarray(cond.cat.categories, dtype=str)
    codes = cond.cat.codes.to_numpy()
    gram_mask, coexpr_cells = _coexpression_cells(adata, coexpression, coexpr_max_cells)
    if layer is not None and layer not in adata.layers:
        raise PerturbsimError(f"layer {layer!r} not found in adata.layers: {list(adata.layers)}")
    if layer is not None:  # X was checked by setup
        validate_expression(adata, layer=layer)
    matrix = adata.layers[layer] if layer is not None else adata.X
    if matrix is None:
        raise PerturbsimError(
            "adata.X is None: no expression to compute statistics from (statistics stored "
            "with a screen are of its cells as written; pass layer= for another matrix)"
        )
    control = np.flatnonzero(conditions == CONTROL)
    if not control.size or not (codes == control[0]).any():
        raise PerturbsimError(
            f"adata has no control cells ({CONTROL!r}): every change is over control; keep "
            "the control cells when subsetting a screen"
        )
    labels = CellLabels(
        codes=codes,
        halves=half_labels(codes, len(conditions), adata.obs_names, seed=half_seed),
        gram_mask=gram_mask,
        n_conditions=len(conditions),
        names=adata.obs_names,
    )
    source = RowSource.of(adata, layer, matrix)
    if scheduler is None and not (is_dask_array(matrix) and dask_scheduler_chosen()):
        sums = _stream(matrix, labels, source, chunk_size)
    else:
        sums = dask_sums(matrix, labels, source, chunk_size=chunk_size, scheduler=scheduler)
    stats = _from_sums(
        sums,
        labels,
        conditions=conditions,
        genes=np.asarray(adata.var_names, dtype=str),
        coexpr_cells=coexpr_cells,
    )
    return replace(
        stats,
        coexpr_max_cells=coexpr_max_cells,
        layer=layer,
        half_seed=half_seed,
        fingerprint=value_fingerprint(matrix, source, adata.obs_names),
        labels_fingerprint=labels_fingerprint(codes, adata.obs_names),
    )


def value_fingerprint(matrix: object, source: RowSource, cells: pd.Index) -> np.ndarray:
    """Sum and sum of squares of :data:`FINGERPRINT_ROWS` evenly spaced rows, ``(2,)``.

    ``cells`` names the rows of ``matrix`` (``obs_names``), for an error about their values.

    Cheap to recompute (one small read, also of a backed or dask matrix), and changed by
    a transformation of every value in place (a new normalisation, a log, a rescaling) and
    by reordering the cells; an edit of rows it does not read goes unseen.
    """
    n_rows = matrix.shape[0]
    rows = np.unique(np.linspace(0, n_rows - 1, min(FINGERPRINT_ROWS, n_rows)).astype(np.int64))
    if is_dask_array(matrix):
        block = source.read(lambda: matrix[rows].compute(), 0, n_rows, cells[rows])
    else:
        block = source.read(partial(matrix.__getitem__, rows), 0, n_rows, cells[rows])
    values = block.data if sparse.issparse(block) else block
    return np.array([values.sum(), np.square(values).sum()])


def labels_fingerprint(codes: np.ndarray, names: pd.Index) -> int:
    """A 62-bit hash of which condition each cell, by its name, belongs to.

    A labelling that gives every condition as many cells but moves cells between them (two
    balanced conditions swapped) hashes otherwise; the same cells stored in another order
    hash alike (a sum over cells of a hash of each name's key and condition).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> names = pd.Index(["a", "b", "c", "d"])
    >>> labels_fingerprint(np.array([0, 1, 1, 2]), names) == labels_fingerprint(
    ...     np.array([0, 2, 2, 1]), names
    ... )
    False
    >>> labels_fingerprint(np.array([0, 1, 1, 2]), names) == labels_fingerprint(
    ...     np.array([2, 1, 1, 0]), names[::-1]
    ... )
    True
    """
    keys = cell_keys(names, LABELS_KEY)
    mixed = keys ^ (np.asarray(codes, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
    return int(pd.util.hash_array(mixed).sum(dtype=np.uint64)) >> 2  # an int64 h5ad stores


def pseudobulk(
    adata: AnnData,
    *,
    coexpression: str = "auto",
    chunk_size: int = 5_000,
    layer: str | None = None,
    coexpr_max_cells: int = COEXPR_MAX_CELLS,
    half_seed: int = 0,
    scheduler: str | Client | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Compute per-condition statistics in one streaming, chunked pass over the cells.

    Works on dense, sparse, backed (on-disk) and dask matrices; memory grows with
    conditions x genes and genes x genes, not with cells. The statistics are sums over
    chunks of cells that merge by addition, so the pass can also run as one dask task per
    chunk on a cluster (``scheduler``) and give the same numbers (see ``docs/scaling.md``).
    Non-finite or negative values, and chunks that cannot be read, raise an error naming
    the rows (and the file of a backed screen); nothing is written into ``adata`` unless the
    whole pass succeeds.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`.
    coexpression
        Which cells feed the gene x gene second moments (for the co-expression graph):
        ``"auto"`` (training cells when a split exists, else all), ``"train"``, ``"all"`` or
        ``"none"`` (skip them).
    chunk_size
        Cells read at a time (one dask task each); a dask ``X`` keeps its own row chunks.
    layer
        Layer of log-normalised values to use instead of ``X`` (checked as ``setup`` checks
        ``X``). The statistics remember it: whatever recomputes them later (a model after a
        new split, :func:`perturbsim.pp.measured_profiles`, ``tl.evaluate``) and whatever
        reads cells beside them (Wilcoxon DE, GEARS's cell loss, ``sample``) reads the same
        layer.
    coexpr_max_cells
        At most this many of those cells (a pseudo-random subset) feed the gene x gene
        moments: the standard error of a correlation is already about 0.01 at 10,000
        cells, and the cost of the moments grows with cells x genes². The subset is drawn
        by the cells' names (those whose names hash lowest, :func:`cell_keys`): the same
        cells stored in another order give the same subset.
    half_seed
        Seed of the split of each condition's cells into two random halves, whose means are
        kept as a split-half replicate (the screen's noise ceiling; see
        :func:`half_labels`).
    scheduler
        ``None``: one pass in this process (over a :class:`dask.array.Array`, such as a
        zarr store read lazily, one of its row blocks at a time), or, for a dask array while
        dask's configuration names a scheduler (``dask.config.set(scheduler=...)``, or a
        :class:`distributed.Client` made the default), that one. Otherwise run the pass as dask
        tasks on: a :class:`distributed.Client`, the address of a dask scheduler
        (``"tcp://host:8786"``; connected for the pass and closed after), or a local dask
        scheduler's name (``"threads"``, ``"processes"``, ``"sync"``). A backed ``X`` is
        then read by the tasks themselves, lazily, from its file (which the workers must
        see at the same path). On dask each task's sums (six conditions x genes arrays, and
        genes x genes with the gene moments) are held until merged, so a process's memory
        grows with the tasks it runs at once; the pass in this process holds one. Needs the
        ``dask`` extra (``pip install 'perturbsim[dask]'``).
    copy
        Work on a copy and return it.

    Returns
    -------
    The copy with ``copy=True``, else ``None`` (:func:`compute_pseudobulk` returns the
    statistics without writing them). Writes ``adata.uns["perturbsim"]["pseudobulk"]``
    (``conditions``, ``genes``, ``n_cells``, ``mean`` and ``delta`` (mean expression and
    mean change over control, ``(conditions, genes)``), ``moments`` of shape ``(4,
    conditions, genes)``, ``coexpr_n``, ``coexpr_sum``, ``coexpr_cells``,
    ``coexpr_max_cells``, ``half_n`` and ``half_moments`` (cells and raw moments ``E[x]``,
    ``E[x^2]`` of each condition in each of two random halves, ``(2, conditions)`` and ``(2,
    2, conditions, genes)``), ``half_seed`` (the seed of the halves), ``drawn_by`` (how the
    halves and the co-expression subset were drawn: ``"names"``), ``layer`` (the layer
    the moments are of, when not ``X``), ``fingerprint`` (sums over a few evenly spaced
    cells, to recognise statistics of values changed since) and ``labels_fingerprint`` (a hash
    of every cell's condition, to recognise cells relabelled since)) and
    ``adata.varp["perturbsim_gram"]``; read them back with
    :meth:`PseudobulkStats.from_adata`.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.pseudobulk(adata)
    >>> ps.pp.PseudobulkStats.from_adata(adata).moments.shape
    (4, 34, 500)
    """
    adata = written_screen(adata, copy=copy, what="pseudobulk")
    stats = compute_pseudobulk(
        adata,
        coexpression=coexpression,
        chunk_size=chunk_size,
        layer=layer,
        coexpr_max_cells=coexpr_max_cells,
        half_seed=half_seed,
        scheduler=scheduler,
    )
    stats.to_adata(adata)
    return adata if copy else None


def _same_screen(stats: PseudobulkStats, adata: AnnData) -> bool:
    """Whether ``stats`` are of ``adata``'s genes, in order, and of its cells as labelled now."""
    return list(stats.genes) == list(map(str, adata.var_names)) and _same_cells(stats, adata)


def _same_cells(stats: PseudobulkStats, adata: AnnData) -> bool:
    """Whether ``stats`` are of the cells ``adata``'s labels give each condition now.

    Their counts, and where stored, the hash of every cell's label
    (:attr:`PseudobulkStats.labels_fingerprint`).
    """
    if CONDITION not in adata.obs.columns:  # not set up: nothing to tell them by
        return True
    condition = adata.obs[CONDITION]
    categories = list(map(str, condition.cat.categories))
    codes = condition.cat.codes.to_numpy()
    counts = np.bincount(codes[codes >= 0], minlength=len(categories))
    if list(stats.conditions) != categories or not np.array_equal(stats.n_cells, counts):
        return False
    if stats.labels_fingerprint is None:  # stored before it was kept: cannot tell
        return True
    return stats.labels_fingerprint == labels_fingerprint(codes, adata.obs_names)


def stored_layer(adata: AnnData) -> str | None:
    """The layer the statistics stored in ``adata`` are of (``None``: ``X``, or none stored)."""
    data = adata.uns.get(UNS, {}).get(PSEUDOBULK)
    return None if data is None or "layer" not in data else str(data["layer"])


def check_stats(value: object) -> None:
    """Raise naming the type when ``value`` is not a :class:`PseudobulkStats`.

    Examples
    --------
    >>> check_stats("KLF1")
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: stats must be statistics of a screen \
(ps.pp.compute_pseudobulk(adata)), got str
    """
    if not isinstance(value, PseudobulkStats):
        raise PerturbsimError(
            "stats must be statistics of a screen (ps.pp.compute_pseudobulk(adata)), got "
            f"{type(value).__name__}"
        )


def stored_matrix(adata: AnnData, layer: str | None) -> object:
    """``adata.X`` (``layer=None``) or the layer stored statistics were computed from."""
    if layer is None:
        return adata.X
    if layer not in adata.layers:
        raise PerturbsimError(
            f"the stored statistics are of layer {layer!r}, which adata no longer has: "
            "rerun perturbsim.pp.pseudobulk"
        )
    return adata.layers[layer]


def cell_matrix(adata: AnnData) -> object:
    """The matrix whose cells are read beside the statistics: their layer if stored, else X.

    What reads cells (Wilcoxon DE, GEARS's cell loss, ``sample``) reads the values the
    statistics describe.
    """
    return stored_matrix(adata, stored_layer(adata))


def _same_values(adata: AnnData, stats: PseudobulkStats) -> bool:
    """Whether the matrix ``stats`` were computed from still holds the values it held then."""
    if stats.fingerprint is None:  # stored before fingerprints: cannot tell
        return True
    matrix = stored_matrix(adata, stats.layer)
    if matrix is None:  # statistics kept without the cells' values: nothing to change
        return True
    now = value_fingerprint(matrix, RowSource.of(adata, stats.layer, matrix), adata.obs_names)
    return bool(np.allclose(now, stats.fingerprint, rtol=1e-9, atol=0.0))


def current_stats(adata: AnnData, *, coexpression: str = "none") -> PseudobulkStats:
    """The statistics stored by :func:`pseudobulk` if they are ``adata``'s, else computed.

    Stored statistics are used when they cover ``adata``'s genes, in order, and its
    conditions with the same cells each (``adata`` was not subset or relabelled after
    :func:`pseudobulk`: their counts and :attr:`~PseudobulkStats.labels_fingerprint`), the
    values they were computed from are unchanged (their
    :attr:`~PseudobulkStats.fingerprint`, of a few rows), and, with
    ``coexpression="auto"``, hold gene x gene moments of the cells :func:`pseudobulk` would
    use now (:func:`coexpression_source`: a split made after them makes them stale), drawn
    with the same cap (``coexpr_max_cells``). Otherwise they are computed afresh from the
    same layer, with the same halves and cap (a warning says so when the values changed).
    Computed statistics are not stored: reading never writes into ``adata``.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`.
    coexpression
        ``"none"``: the gene x gene moments are not needed (nor computed); ``"auto"``: they
        are, of the cells :func:`pseudobulk` would choose.

    Returns
    -------
    The statistics.
    """
    if coexpression not in {"none", "auto"}:
        raise PerturbsimError(f"coexpression must be 'none' or 'auto', got {coexpression!r}")
    if PSEUDOBULK not in adata.uns.get(UNS, {}):
        logger.info("no stored statistics: computing them (perturbsim.pp.pseudobulk stores them)")
        return compute_pseudobulk(adata, coexpression=coexpression)
    stats = PseudobulkStats.stored_in(adata)
    same_screen = _same_screen(stats, adata)
    same_values = same_screen and _same_values(adata, stats)
    same_coexpression = coexpression == "none" or (
        stats.coexpr_gram is not None
        and stats.coexpr_cells == coexpression_source(adata, max_cells=stats.coexpr_max_cells)
    )
    same_draw = stats.drawn_by == DRAWN_BY
    if same_values and same_coexpression and same_draw:
        return stats
    matrix = "adata.X" if stats.layer is None else f"adata.layers[{stats.layer!r}]"
    if not same_screen:
        why = "they are of other cells, genes or labels"
    elif not same_values:
        why = f"the values of {matrix} changed since (or its cells were reordered)"
    elif not same_draw:
        why = (
            "an earlier version drew their split halves and co-expression cells by the cells' "
            "positions, this one by their names"
        )
    elif stats.coexpr_gram is None:
        why = "they hold no gene x gene moments"
    else:
        why = "their gene x gene moments are of other cells (a split made since)"
    log = logger.warning if same_screen and not same_values else logger.info
    log(
        "not using the stored statistics, %s: computing them afresh from %s "
        "(perturbsim.pp.pseudobulk stores them)",
        why,
        matrix,
    )
    return compute_pseudobulk(
        adata,
        coexpression=coexpression,
        layer=stats.layer,
        coexpr_max_cells=stats.coexpr_max_cells,
        half_seed=stats.half_seed,
    )
