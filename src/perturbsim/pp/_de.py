"""Differentially expressed genes of each perturbation against control.

The t-test is Welch's, computed from the per-condition moments of
:class:`~perturbsim.pp.PseudobulkStats` (so it scales with conditions x genes and works on
backed files); its scores equal scanpy's ``rank_genes_groups(method="t-test",
reference="ctrl")`` (genes of tied scores are ranked in gene order, which scanpy's ranking
need not keep).
The Wilcoxon rank-sum test goes through scanpy on an in-memory matrix.

GEARS's masks (``get_dropout_non_zero_genes`` in the reference code) are provided too:

- *non-zero* genes of a condition: mean expression in the condition is non-zero (the
  reference GEARS restricts its training loss to these genes);
- *non-dropout* genes of a condition: every gene except those with zero mean in the
  condition but non-zero mean in control, i.e. non-zero genes plus the genes that are zero in
  both the condition and control. The reference reports "top non-dropout DE" metrics on the
  top-ranked genes among them.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats as scipy_stats

from .._checks import check_count, check_list, shown
from .._errors import PerturbsimError, counted, shown_list
from .._keys import CONDITION, CONTROL, DE, OWN_UNS, SEP, SETUP, UNS
from .._threads import torch_threads_kept
from ._distributed import is_dask_array
from ._labels import genes_of, read_measured
from ._pseudobulk import (
    PRIOR_DF,
    PseudobulkStats,
    cell_matrix,
    check_stats,
    current_stats,
    welch_satterthwaite,
)
from ._setup import check_setup
from ._writes import store_uns, written_screen

logger = logging.getLogger(__name__)

METHODS = ("t-test", "wilcoxon")
NORMAN_DE_ALPHA = 0.001
"""Adjusted p-value below which Norman et al. counted a gene differentially expressed."""


def non_zero_mask(stats: PseudobulkStats) -> np.ndarray:
    """Genes with non-zero mean expression in each condition (GEARS's loss filter).

    Parameters
    ----------
    stats
        Per-condition statistics.

    Returns
    -------
    Boolean array ``(C, G)`` aligned with ``stats.conditions`` and ``stats.genes``; the
    control row is all ``True``.
    """
    mask = stats.mean != 0
    mask[stats.control_index] = True
    return mask


def non_dropout_mask(stats: PseudobulkStats) -> np.ndarray:
    """GEARS's non-dropout genes of each condition.

    A gene is a *dropout* of condition ``p`` when its mean expression is zero in ``p`` but
    non-zero in control; every other gene is non-dropout (including genes that are zero in
    both ``p`` and control), as in the reference GEARS (``non_dropout_gene_idx``).

    Parameters
    ----------
    stats
        Per-condition statistics.

    Returns
    -------
    Boolean array ``(C, G)`` aligned with ``stats.conditions`` and ``stats.genes``; the
    control row is all ``True``.
    """
    zero = stats.mean == 0
    mask = ~(zero & ~zero[stats.control_index][None, :])
    mask[stats.control_index] = True
    return mask


def welch_t(stats: PseudobulkStats, rows: np.ndarray) -> np.ndarray:
    """Welch's t statistic of ``rows`` of ``stats`` against control, ``(len(rows), G)``.

    Variances use ``ddof=1``; ``0/0`` (equal means, no variance) gives 0, as in scanpy.
    Rows of conditions with fewer than two cells are returned as ``NaN``, and every row
    when control has fewer than two (its variance is then unknown, not 0).
    """
    ctrl = stats.control_index
    var = stats.variance(ddof=1)
    n = stats.n_cells.astype(float)
    diff = stats.mean[rows] - stats.mean[ctrl][None, :]
    denom = np.sqrt(var[rows] / n[rows, None] + var[ctrl][None, :] / n[ctrl])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / denom
    t[np.isnan(t)] = 0.0
    t[n[rows] < 2] = np.nan
    if n[ctrl] < 2:
        t[:] = np.nan
    return t


def _measured_conditions(stats: PseudobulkStats, conditions: Sequence[object]) -> list[str]:
    """The canonical labels of perturbed ``conditions`` among ``stats``' rows.

    Raises naming a condition no row reads as, or the control (nothing to test it against).
    """
    measured = {str(c) for c in stats.conditions} - {CONTROL}
    labels, unknown, control = [], [], []
    for condition in conditions:
        label = read_measured(str(condition), measured)
        if label is None:
            is_control = read_measured(str(condition), {CONTROL}) == CONTROL
            (control if is_control else unknown).append(condition)
        labels.append(label)
    if control:
        raise PerturbsimError(
            f"conditions must be perturbations, tested against control: {shown(control[0])} "
            "is the control"
        )
    if unknown:
        raise PerturbsimError(f"conditions not in the statistics: {shown_list(unknown, 10)}")
    return [str(label) for label in labels]


def count_de(
    stats: PseudobulkStats,
    conditions: Sequence[str],
    *,
    genes: Sequence[str] | np.ndarray | None = None,
    alpha: float = NORMAN_DE_ALPHA,
    prior_df: float = PRIOR_DF,
) -> pd.Series:
    """How many genes each condition changes significantly against control.

    Each gene's change is tested by Welch's t on variances moderated towards the gene's
    pooled one (:meth:`PseudobulkStats.moderated_variance`, Satterthwaite's degrees of
    freedom: the test of :func:`perturbsim.tl.gi_per_gene`), p-values adjusted by
    Benjamini-Hochberg within each condition over ``genes`` less the condition's own
    targets, and the genes with adjusted p below ``alpha`` counted. Norman et al. counted
    the abundant genes whose Kolmogorov-Smirnov test against control had adjusted
    p < 0.001 and scored interactions only for pairs with more than 10; the moments hold no
    distributions, so this tests means.

    Parameters
    ----------
    stats
        Per-condition statistics.
    conditions
        Perturbed conditions, in any label form the statistics' rows read as
        (``"MAP2K6+KLF1"``, ``"KLF1+ctrl"``); the counts are indexed by their canonical
        labels.
    genes
        The genes tested: a boolean mask over ``stats.genes`` or their names (default all).
    alpha
        Adjusted p-value below which a gene counts, in ``(0, 1)``.
    prior_df
        Prior degrees of freedom of the moderated variances.

    Returns
    -------
    Counts indexed by ``conditions`` (integers); 0 for a condition none of whose genes can
    be tested (nothing is shown to change).

    Examples
    --------
    >>> import perturbsim as ps
    >>> stats = ps.pp.compute_pseudobulk(ps.ds.norman2019_subset(), coexpression="none")
    >>> counts = ps.pp.count_de(stats, ["KLF1", "KLF1+MAP2K6"])
    >>> list(counts.index), bool((counts >= 0).all())
    (['KLF1', 'KLF1+MAP2K6'], True)
    """
    check_stats(stats)
    check_list("conditions", conditions, "labels")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise PerturbsimError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}")
    conditions = _measured_conditions(stats, conditions)
    rows, control = stats.index(conditions), stats.control_index
    squared, dof = stats.moderated_squared_standard_error(prior_df)
    tested = stats.gene_mask(genes)
    counts = []
    for condition, row in zip(conditions, rows, strict=True):
        pair = np.stack([squared[row], squared[control]])
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (stats.mean[row] - stats.mean[control]) / np.sqrt(pair.sum(axis=0))
        df = welch_satterthwaite(pair, dof[[row, control]])
        p = 2 * scipy_stats.t.sf(np.abs(t), df)
        keep = tested & ~np.isin(stats.genes, genes_of(condition)) & np.isfinite(p)
        if not keep.any():
            counts.append(0)
            continue
        adjusted = scipy_stats.false_discovery_control(p[keep], method="bh")
        counts.append(int((adjusted < alpha).sum()))
    return pd.Series(counts, index=pd.Index(conditions, name="condition"), name="n_de", dtype=int)


def top_de_indices(
    stats: PseudobulkStats,
    conditions: list[str],
    *,
    n_genes: int = 20,
    exclude_targets: bool = False,
) -> np.ndarray:
    """Indices of the top non-dropout DE genes (Welch t against control) of ``conditions``.

    The same ranking as :func:`rank_de` with ``method="t-test"``, straight from the
    statistics (used for model selection on validation conditions, and for the split-half
    replicate's DE genes).

    Parameters
    ----------
    stats
        Per-condition statistics.
    conditions
        Perturbed conditions.
    n_genes
        Genes per condition.
    exclude_targets
        Rank each condition's genes without its own targets (as
        :meth:`DEGenes.top_genes` with ``exclude=genes_of(condition)``).

    Returns
    -------
    ``(len(conditions), n_genes)`` int array, ``-1`` where fewer genes qualify.
    """
    rows = stats.index(conditions)
    scores = welch_t(stats, rows)
    fallback = stats.mean[rows] - stats.control_mean[None, :]
    scores = np.where(np.isnan(scores), fallback, scores)
    allowed = non_dropout_mask(stats)[rows]
    if exclude_targets and conditions:
        allowed &= ~np.stack([np.isin(stats.genes, genes_of(c)) for c in conditions])
    return _rank(scores, min(n_genes, stats.mean.shape[1]), allowed)


def _wilcoxon_scores(adata: AnnData, conditions: np.ndarray) -> np.ndarray:
    import anndata as ad
    import pandas as pd
    import scanpy as sc

    keep = adata.obs[CONDITION].isin([*conditions, CONTROL]).to_numpy()
    labels = adata.obs[CONDITION].astype(str).to_numpy()[keep]
    light = ad.AnnData(
        X=cell_matrix(adata)[keep],
        obs=pd.DataFrame({"group": pd.Categorical(labels)}, index=adata.obs_names[keep]),
        var=pd.DataFrame(index=adata.var_names),
    )
    with warnings.catch_warnings():
        # scanpy fills its result frame column by column
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        with torch_threads_kept():
            sc.tl.rank_genes_groups(
                light,
                groupby="group",
                groups=[*conditions, CONTROL],
                reference=CONTROL,
                method="wilcoxon",
                rankby_abs=True,
                n_genes=adata.n_vars,
                use_raw=False,
                key_added="wilcoxon",
            )
    result = light.uns["wilcoxon"]
    gene_index = {g: i for i, g in enumerate(adata.var_names)}
    scores = np.zeros((len(conditions), adata.n_vars))
    for row, cond in enumerate(conditions):
        order = np.array([gene_index[g] for g in result["names"][cond]], dtype=np.int64)
        scores[row, order] = np.asarray(result["scores"][cond], dtype=float)
    return scores


def _rank(scores: np.ndarray, n_genes: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Return the top ``n_genes`` indices by ``|score|`` per row (ties: gene order; -1 pads)."""
    key = -np.abs(scores)
    if allowed is not None:
        key = np.where(allowed, key, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :n_genes]
    if allowed is not None:
        order = np.where(np.take_along_axis(allowed, order, axis=1), order, -1)
    return order


def _names(genes: np.ndarray, order: np.ndarray) -> np.ndarray:
    names = np.asarray(genes, dtype=object)[np.clip(order, 0, None)]
    names[order < 0] = ""
    return names


def rank_de(
    adata: AnnData,
    *,
    n_genes: int = 20,
    method: str = "t-test",
    stats: PseudobulkStats | None = None,
    key_added: str = DE,
    copy: bool = False,
) -> AnnData | None:
    """Rank genes by differential expression of each perturbation against control.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`; may be backed, or hold a dask ``X``,
        for ``method="t-test"``.
    n_genes
        Number of top genes kept per condition (GEARS uses 20).
    method
        ``"t-test"``: Welch's t statistic from the pseudobulk moments (mean, variance with
        ``ddof=1``, cell count), identical to scanpy's ``rank_genes_groups(method="t-test",
        reference=...)``; ``"wilcoxon"``: scanpy's rank-sum z-score (in-memory data only).
        Genes are ranked by the absolute score (GEARS's ``rankby_abs=True``).
    stats
        Per-condition statistics to use; by default those stored by
        :func:`perturbsim.pp.pseudobulk` if they are ``adata``'s (its genes and cells), else
        computed (without the gene x gene moments) and not stored.
    key_added
        Key under ``adata.uns["perturbsim"]``, so that rankings of several methods coexist;
        not one of the entries of setup, split and statistics (``"setup"``, ``"split"``,
        ``"pseudobulk"``).
    copy
        Work on a copy and return it.

    Returns
    -------
    The copy with ``copy=True``, else ``None``. Writes ``adata.uns["perturbsim"][key_added]``
    (default ``"de"``), a dict with

    - ``"method"``, ``"n_genes"``;
    - ``"conditions"``: the perturbed conditions with cells, ``(C',)``;
    - ``"scores"``: t statistic (or Wilcoxon z-score) per condition and gene, ``(C', G)``;
    - ``"top"``: names of the top ``n_genes`` genes by ``|score|``, ``(C', n_genes)``;
    - ``"non_dropout"``: GEARS's non-dropout genes (not zero in the condition while
      expressed in control), ``(C', G)`` bool;
    - ``"top_non_dropout"``: the ranking restricted to non-dropout genes,
      ``(C', n_genes)``, padded with ``""`` if fewer genes qualify;
    - ``"single_cell"``: conditions with a single cell, ``(C',)`` bool. Their test statistic
      is undefined; their score is the mean difference to control instead (logged).

    Read it back with :meth:`DEGenes.from_adata`.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.rank_de(adata, n_genes=20)
    >>> len(ps.pp.DEGenes.from_adata(adata).top_genes("KLF1"))
    20
    """
    check_setup(adata)
    if not isinstance(key_added, str) or not key_added or key_added in OWN_UNS:
        raise PerturbsimError(
            f"key_added must name a new entry of .uns[{UNS!r}] (default {DE!r}), not "
            + (
                f"{key_added!r}, which setup, split or pseudobulk writes"
                if key_added in OWN_UNS
                else shown(key_added)
            )
        )
    adata = written_screen(adata, copy=copy, what="rank_de")
    if method not in METHODS:
        raise PerturbsimError(f"method must be 't-test' or 'wilcoxon', got {method!r}")
    n_genes = check_count("n_genes", n_genes)
    if method == "wilcoxon" and (adata.isbacked or is_dask_array(cell_matrix(adata))):
        raise PerturbsimError(
            "method='wilcoxon' needs the expression matrix in memory: read the file without "
            "backed= (a dask array: compute it, e.g. adata.X = adata.X.compute()), or use "
            "method='t-test' (works on backed files and dask arrays)"
        )
    if stats is None:
        stats = current_stats(adata)
    check_stats(stats)
    if list(stats.genes) != list(adata.var_names):
        raise PerturbsimError("stats.genes differ from adata.var_names: recompute pseudobulk")
    if CONTROL not in set(stats.conditions) or stats.n_cells[stats.control_index] == 0:
        raise PerturbsimError(f"no control cells ({CONTROL!r}) in the statistics")
    if stats.n_cells[stats.control_index] < 2:
        raise PerturbsimError(
            f"a single control cell ({CONTROL!r}): a DE test needs at least 2 to know "
            "control's variance"
        )
    n_top = min(int(n_genes), len(stats.genes))
    if n_top < n_genes:
        logger.warning("n_genes=%d exceeds the %d genes: keeping all", n_genes, n_top)

    rows = np.flatnonzero((stats.conditions != CONTROL) & (stats.n_cells > 0))
    conditions = np.asarray(stats.conditions[rows], dtype=str)
    single = stats.n_cells[rows] < 2
    if method == "t-test":
        scores = welch_t(stats, rows)
    else:
        scores = np.zeros((len(rows), len(stats.genes)))
        if (~single).any():
            scores[~single] = _wilcoxon_scores(adata, conditions[~single])
    if single.any():
        scores[single] = stats.delta[rows[single]]
        logger.warning(
            "%s a single cell; the DE score of such a condition is the mean difference "
            "to control (no test statistic): %s",
            counted(int(single.sum()), "condition has", "conditions have"),
            shown_list(conditions[single], 10),
        )
    non_dropout = non_dropout_mask(stats)[rows]
    top = _names(stats.genes, _rank(scores, n_top))
    top_nd = _names(stats.genes, _rank(scores, n_top, allowed=non_dropout))
    store_uns(
        adata,
        key_added,
        {
            "method": method,
            "n_genes": n_top,
            "conditions": np.asarray(conditions, dtype=object),
            "top": top,
            "top_non_dropout": top_nd,
            "non_dropout": non_dropout,
            "scores": scores,
            "single_cell": single,
        },
    )
    logger.info("added .uns[%r][%r] (%s, top %d genes)", UNS, key_added, method, n_top)
    return adata if copy else None


@dataclass
class DEGenes:
    """Differentially expressed genes per perturbed condition (see :func:`rank_de`).

    Attributes
    ----------
    method
        ``"t-test"`` or ``"wilcoxon"``.
    n_genes
        Genes kept per condition in ``top`` and ``top_non_dropout``.
    conditions
        Perturbed conditions, ``(C',)``.
    genes
        Gene names, ``(G,)``.
    top
        Top gene names per condition, ``(C', n_genes)``.
    top_non_dropout
        Top non-dropout gene names per condition, ``(C', n_genes)`` (``""`` pads).
    non_dropout
        Non-dropout genes, ``(C', G)`` bool.
    scores
        Test statistic per condition and gene, ``(C', G)``.
    control, sep
        How :func:`~perturbsim.pp.setup` read the screen's labels: a condition may be
        named by its raw label as well as by its canonical one.
    """

    method: str
    n_genes: int
    conditions: np.ndarray
    genes: np.ndarray
    top: np.ndarray
    top_non_dropout: np.ndarray
    non_dropout: np.ndarray
    scores: np.ndarray
    control: str = CONTROL
    sep: str = SEP

    @classmethod
    def from_adata(cls, adata: AnnData, *, key: str = DE) -> DEGenes:
        """Read the result of :func:`rank_de` from ``adata.uns["perturbsim"][key]``.

        Parameters
        ----------
        adata
            A screen :func:`rank_de` ran on.
        key
            Where it wrote (its ``key_added``).

        Returns
        -------
        The stored result, with ``genes`` the names of ``adata.var_names`` and ``control``
        and ``sep`` as :func:`~perturbsim.pp.setup` recorded them (the defaults if it did
        not).
        """
        data = adata.uns.get(UNS, {}).get(key)
        if data is None:
            added = "" if key == DE else f", key_added={key!r}"
            raise PerturbsimError(
                f"no DE genes under .uns[{UNS!r}][{key!r}]: run perturbsim.pp.rank_de(adata{added})"
            )
        setup = adata.uns[UNS].get(SETUP, {})
        scores = np.asarray(data["scores"], dtype=float)
        if scores.shape[1] != adata.n_vars:
            raise PerturbsimError(
                f"DE scores cover {scores.shape[1]} genes but adata has {adata.n_vars}: "
                "rerun perturbsim.pp.rank_de(adata)"
            )
        conditions = np.asarray(data["conditions"]).astype(str)
        if CONDITION in adata.obs.columns:  # a subset of the cells keeps its conditions' ranks
            ranked = set(conditions) | {CONTROL}
            new = sorted(set(map(str, adata.obs[CONDITION].astype(str))) - ranked)
            if new:
                raise PerturbsimError(
                    f"the DE genes under .uns[{UNS!r}][{key!r}] were ranked on other labels "
                    f"({new[0]!r} is a condition of the screen they do not rank): rerun "
                    f"perturbsim.pp.rank_de(adata, key_added={key!r})"
                )
        return cls(
            method=str(data["method"]),
            n_genes=int(data["n_genes"]),
            conditions=conditions,
            genes=np.asarray(adata.var_names, dtype=str),
            top=np.asarray(data["top"]).astype(str),
            top_non_dropout=np.asarray(data["top_non_dropout"]).astype(str),
            non_dropout=np.asarray(data["non_dropout"], dtype=bool),
            scores=scores,
            control=str(setup.get("control", CONTROL)),
            sep=str(setup.get("sep", SEP)),
        )

    @cached_property
    def _rows(self) -> dict[str, int]:
        """Row of each condition's label."""
        return {str(c): i for i, c in enumerate(self.conditions)}

    def _label(self, condition: str) -> str | None:
        """The canonical label ``condition`` reads as (``ctrl`` included), else ``None``."""
        if condition == CONTROL or condition in self._rows:
            return condition
        known = self._rows.keys() | {CONTROL}
        return read_measured(condition, known, control=self.control, sep=self.sep)

    def _row(self, condition: str) -> int:
        label = self._label(condition)
        if label is None or label == CONTROL:
            raise PerturbsimError(f"no DE genes for condition {condition!r}")
        return self._rows[label]

    def top_genes(
        self, condition: str, non_dropout: bool = False, *, exclude: Iterable[str] = ()
    ) -> list[str]:
        """Top DE genes of ``condition`` (raw or canonical label), best first.

        Parameters
        ----------
        condition
            A perturbed condition, e.g. ``"KLF1"`` or ``"SET+KLF1"``.
        non_dropout
            Rank among GEARS's non-dropout genes only (may return fewer genes).
        exclude
            Genes to rank without, e.g. the condition's own targets
            (:func:`perturbsim.pp.genes_of`): the next-ranked genes take their places, so
            the list still holds up to ``n_genes`` genes. Names that are not among the
            genes are ignored (e.g. CRISPRa targets that are not measured).

        Returns
        -------
        Up to ``n_genes`` gene names, by decreasing absolute score (ties: gene order).
        """
        check_list("exclude", exclude, "genes")
        row = self._row(condition)
        excluded = np.isin(self.genes, list(exclude))
        if not excluded.any():
            table = self.top_non_dropout if non_dropout else self.top
            return [g for g in table[row] if g != ""]
        allowed = (~excluded & self.non_dropout[row]) if non_dropout else ~excluded
        order = _rank(self.scores[row][None, :], self.n_genes, allowed[None, :])[0]
        return [str(g) for g in _names(self.genes, order) if g != ""]

    def non_dropout_mask(self, conditions: Sequence[str]) -> np.ndarray:
        """Non-dropout genes of ``conditions``, ``(len(conditions), G)``; ``ctrl``: all True.

        Parameters
        ----------
        conditions
            Condition labels ranked by :func:`rank_de`, or the control.

        Returns
        -------
        ``(len(conditions), G)`` boolean array, one row per condition in the order given:
        True at the condition's non-dropout genes; all True in a row of the control.
        """
        out = np.ones((len(conditions), len(self.genes)), dtype=bool)
        for i, cond in enumerate(conditions):
            if self._label(cond) != CONTROL:
                out[i] = self.non_dropout[self._row(cond)]
        return out
