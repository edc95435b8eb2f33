"""Does a model's uncertainty mean something? Its rank correlation with error, and calibration.

For every model whose predictions carry a predictive variance (``.layers["variance"]``),
each test condition gets one row: the model's own uncertainty score
(``.obs["uncertainty"]``, the root mean variance over genes), its error (mean squared
error of the predicted change, on the condition's top DE genes and on all genes, the
condition's own targets left out as in every metric), and the share of the measured
changes inside the model's central normal predictive intervals at each nominal level of
:data:`LEVELS` (a calibrated model has 50 % inside its 50 % intervals; a gene predicted
with no variance is outside every interval unless predicted exactly, and then tests no
interval: it is left out, as genes never detected are, whose change is 0 on both sides).
The summary then
asks two questions per model and seed, averaged over seeds with a t-interval:

- is the uncertainty *anti-correlated with performance*, i.e. correlated with error: the
  Spearman correlation of uncertainty and error across the test conditions
  (``spearman_error_de``, ``spearman_error_all``; positive is good), and within each test
  subgroup, averaged over the subgroups weighted by their conditions
  (``spearman_error_de_within``, ``spearman_error_all_within``): across subgroups a model
  that is only more uncertain of the harder kind (pairs of unmeasured genes than measured
  singles) scores well; within them it must rank the conditions of one kind;
- are the per-gene intervals calibrated: the share inside the 50 % and 90 % intervals
  (``inside_de_50`` ... ``inside_all_90``; against 0.5 and 0.9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats as sps

from .._keys import DELTA_LAYER, PRED_UNCERTAINTY, VARIANCE_LAYER
from ..pp import genes_of
from ..pp._pseudobulk import PseudobulkStats

LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Nominal coverages of the central normal predictive intervals that are checked."""
GENE_SETS: tuple[str, ...] = ("de", "all")
"""Genes scored per condition: its top DE genes, and every measured gene (targets out)."""
SUMMARY_METRICS: tuple[str, ...] = (
    "spearman_error_de",
    "spearman_error_all",
    "spearman_error_de_within",
    "spearman_error_all_within",
    "inside_de_50",
    "inside_de_90",
    "inside_all_50",
    "inside_all_90",
)
"""Per-seed summaries of :func:`uncertainty_summary`, in report order."""


def inside_column(genes: str, level: float) -> str:
    """Column of the share inside the ``level`` intervals on ``genes`` (e.g. ``inside_de_50``)."""
    return f"inside_{genes}_{round(100 * level)}"


UNCERTAINTY_COLUMNS = [
    "model",
    "seed",
    "subgroup",
    "condition",
    "uncertainty",
    "error_de",
    "error_all",
    *(inside_column(g, level) for g in GENE_SETS for level in LEVELS),
]


def uncertainty_table(
    pred: AnnData,
    stats: PseudobulkStats,
    de_genes: Mapping[str, Sequence[str]],
    subgroup_of: Mapping[str, str],
    *,
    model: str,
    seed: int,
    exclude_targets: bool = True,
) -> pd.DataFrame | None:
    """One row per predicted condition: uncertainty, error and interval coverage.

    Parameters
    ----------
    pred
        Predictions of test conditions (:meth:`~perturbsim.models.PerturbationModel.predict`).
    stats
        The screen's statistics: the measured change of each condition is its mean minus
        the control mean.
    de_genes
        Condition -> its top DE genes.
    subgroup_of
        Condition -> its test subgroup.
    model, seed
        Written into the ``model`` and ``seed`` columns.
    exclude_targets
        Leave each condition's own targets out of its genes, its DE genes and all genes.

    Returns
    -------
    The columns of :data:`UNCERTAINTY_COLUMNS`; None when ``pred`` has no variance. The
    shares inside the intervals count the genes predicted with a variance, and those
    predicted without one and missed (outside every interval); a gene predicted exactly
    with no variance (one never detected: no change measured, none predicted) tests no
    interval and is left out (the share is NaN when no gene is left).
    """
    if VARIANCE_LAYER not in pred.layers:
        return None
    genes = [str(g) for g in pred.var_names]
    column = {g: i for i, g in enumerate(map(str, stats.genes))}
    pred_column = {g: i for i, g in enumerate(genes)}
    conditions = [str(c) for c in pred.obs_names]
    measured = stats.delta[stats.index(conditions)][:, [column[g] for g in genes]]
    error = measured.astype(float) - np.asarray(pred.layers[DELTA_LAYER], dtype=float)
    sd = np.sqrt(np.asarray(pred.layers[VARIANCE_LAYER], dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, np.abs(error) / sd, np.where(error == 0, np.nan, np.inf))
    bounds = sps.norm.ppf(0.5 + np.asarray(LEVELS) / 2)
    rows = []
    for i, condition in enumerate(conditions):
        targets = set(genes_of(condition)) if exclude_targets else set()
        masks = {
            "de": [
                pred_column[g] for g in de_genes[condition] if g in pred_column and g not in targets
            ],
            "all": [j for j, g in enumerate(genes) if g not in targets],
        }
        row = {
            "model": model,
            "seed": seed,
            "subgroup": subgroup_of[condition],
            "condition": condition,
            "uncertainty": float(pred.obs[PRED_UNCERTAINTY].iloc[i]),
        }
        for name, idx in masks.items():
            row[f"error_{name}"] = float((error[i, idx] ** 2).mean()) if idx else np.nan
            tested = z[i, idx][~np.isnan(z[i, idx])]
            for level, bound in zip(LEVELS, bounds, strict=True):
                share = float((tested <= bound).mean()) if tested.size else np.nan
                row[inside_column(name, level)] = share
        rows.append(row)
    return pd.DataFrame(rows, columns=UNCERTAINTY_COLUMNS)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation over the finite pairs; NaN with fewer than 3 or no spread."""
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(sps.spearmanr(x, y).statistic)


def within_subgroups(table: pd.DataFrame, genes: str) -> float:
    """Spearman correlation of uncertainty and error within each subgroup, weighted mean.

    Each subgroup of ``table`` (rows of :data:`UNCERTAINTY_COLUMNS`) whose correlation is
    defined (3 conditions or more with a finite error, with spread) counts by those
    conditions; NaN with fewer than two subgroups (the pooled figure says it all) or when
    no subgroup's correlation is defined.

    Examples
    --------
    >>> table = pd.DataFrame(
    ...     {
    ...         "subgroup": ["a"] * 3 + ["b"] * 3,
    ...         "uncertainty": [1, 1.1, 1.2, 5, 5.1, 5.2],
    ...         "error_de": [3, 2, 1, 9, 8, 7],
    ...     }
    ... )
    >>> round(within_subgroups(table, "de"), 2)  # across the two, the correlation is positive
    -1.0
    """
    rhos, weights = [], []
    if table["subgroup"].nunique() < 2:
        return float("nan")
    for _, part in table.groupby("subgroup", sort=False):
        uncertainty, error = part["uncertainty"].to_numpy(), part[f"error_{genes}"].to_numpy()
        rho = _spearman(uncertainty, error)
        if np.isfinite(rho):
            rhos.append(rho)
            weights.append(int((np.isfinite(uncertainty) & np.isfinite(error)).sum()))
    return float(np.average(rhos, weights=weights)) if rhos else float("nan")


def uncertainty_per_seed(table: pd.DataFrame) -> pd.DataFrame:
    """:data:`SUMMARY_METRICS` of each model and seed over its test conditions.

    Returns
    -------
    ``model``, ``seed``, ``subgroup`` (``"all"``: every test condition), ``metric``,
    ``value``, ``n_conditions``, as :meth:`perturbsim.tl.EvaluationResult.per_seed`.
    """
    rows = []
    for (model, seed), group in table.groupby(["model", "seed"], sort=False):
        uncertainty = group["uncertainty"].to_numpy()
        values = {
            f"spearman_error_{genes}": _spearman(uncertainty, group[f"error_{genes}"].to_numpy())
            for genes in GENE_SETS
        }
        values.update(
            {
                f"spearman_error_{genes}_within": within_subgroups(group, genes)
                for genes in GENE_SETS
            }
        )
        for genes in GENE_SETS:
            for level in (0.5, 0.9):
                name = inside_column(genes, level)
                values[name] = float(group[name].mean())
        rows += [
            (model, seed, "all", metric, values[metric], len(group)) for metric in SUMMARY_METRICS
        ]
    return pd.DataFrame(
        rows, columns=["model", "seed", "subgroup", "metric", "value", "n_conditions"]
    )


def calibration_curve(table: pd.DataFrame) -> pd.DataFrame:
    """Observed share inside the intervals at each nominal level, per model and gene set.

    Returns
    -------
    ``model``, ``genes`` (``"de"`` or ``"all"``), ``nominal``, ``observed`` (mean over
    seeds and test conditions), ``n_conditions``.
    """
    rows = []
    for model, group in table.groupby("model", sort=False):
        for genes in GENE_SETS:
            for level in LEVELS:
                values = group[inside_column(genes, level)].to_numpy(dtype=float)
                values = values[np.isfinite(values)]
                observed = float(values.mean()) if values.size else float("nan")
                rows.append((model, genes, level, observed, int(values.size)))
    return pd.DataFrame(rows, columns=["model", "genes", "nominal", "observed", "n_conditions"])
