"""Plots of a model's uncertainty: error against uncertainty, and interval calibration.

Both take an :class:`~perturbsim.tl.EvaluationResult` (or its tables) and return the Axes
(a new :class:`matplotlib.figure.Figure` when ``ax`` is None), as :mod:`perturbsim.pl._plots`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._checks import checked_table
from .._errors import PerturbsimError, counted
from ..tl._result import EvaluationResult, order_subgroups
from ..tl._uncertainty import within_subgroups
from ._colours import model_colours, subgroup_colour
from ._plots import _axes, legend_beside, plain_log_labels


def _table(
    data: EvaluationResult | pd.DataFrame, what: str, columns: list[str], numeric: list[str]
) -> pd.DataFrame:
    """The ``what`` table of an evaluation (``data``'s, or ``data`` itself), with ``columns``.

    Those of ``numeric`` must hold numbers (:func:`~perturbsim._checks.checked_table`).
    """
    table = getattr(data, what) if isinstance(data, EvaluationResult) else data
    table = table() if callable(table) else table
    table = checked_table(
        table, columns, "data", kind=f"an EvaluationResult or its {what} table", numeric=numeric
    )
    if table.empty:
        raise PerturbsimError("no model of this evaluation has a predictive variance")
    return table


def uncertainty_vs_error(
    data: EvaluationResult | pd.DataFrame,
    *,
    model: str,
    genes: str = "de",
    ax: Axes | None = None,
) -> Axes:
    """One point per test condition and seed: a model's uncertainty against its error.

    Coloured by test subgroup, both axes logarithmic. An uncertainty that means something
    rises with the error: the title gives the Spearman correlation pooled over every point
    (each test condition of each seed), which is not the figure of
    :meth:`~perturbsim.tl.EvaluationResult.uncertainty_summary` (a correlation per seed,
    then their mean), so the two can differ, and the same within each subgroup, averaged
    (:func:`~perturbsim.tl._uncertainty.within_subgroups`, each subgroup of each seed apart,
    as the summary reads it; with two subgroups or more, where one has three points or more
    in a seed): a model only more uncertain of the harder kind is well correlated pooled,
    not within.

    Parameters
    ----------
    data
        An :class:`~perturbsim.tl.EvaluationResult` or its ``uncertainty`` table (columns
        ``model``, ``subgroup``, ``uncertainty``, ``error_de`` or ``error_all``, and
        optionally ``seed``).
    model
        The model to plot.
    genes
        ``"de"`` (error on each condition's top DE genes) or ``"all"``.
    ax
        Axes to draw on.

    Returns
    -------
    The Axes: one scatter per subgroup (labelled by it), the correlations in the title.

    Examples
    --------
    >>> import pandas as pd
    >>> import perturbsim as ps
    >>> table = pd.DataFrame(
    ...     {
    ...         "model": "stacked",
    ...         "subgroup": ["unseen_single", "unseen_single", "combo_seen2"],
    ...         "uncertainty": [0.2, 0.4, 0.1],
    ...         "error_de": [0.05, 0.2, 0.01],
    ...     }
    ... )
    >>> ax = ps.pl.uncertainty_vs_error(table, model="stacked")
    >>> print(ax.get_title())
    stacked: Spearman 1.00
    pooled over 3 test conditions
    """
    if genes not in ("de", "all"):
        raise PerturbsimError(f"genes must be 'de' or 'all', got {genes!r}")
    error = f"error_{genes}"
    table = _table(
        data, "uncertainty", ["model", "subgroup", "uncertainty", error], ["uncertainty", error]
    )
    rows = table[table["model"] == model]
    if rows.empty:
        raise PerturbsimError(
            f"model {model!r} has no uncertainty rows; models: {sorted(table['model'].unique())}"
        )
    finite = np.isfinite(rows[["uncertainty", error]].to_numpy(dtype=float)).all(axis=1)
    if not finite.any():
        raise PerturbsimError(
            f"model {model!r} has no test condition with a finite uncertainty and {error}: "
            "nothing to plot"
        )
    missing = int((~finite).sum())
    rows = rows[finite]
    ax = _axes(ax, (4.8, 4.0))
    for subgroup in order_subgroups(rows["subgroup"].unique()):
        part = rows[rows["subgroup"] == subgroup]
        colour = subgroup_colour(subgroup)
        ax.scatter(part["uncertainty"], part[error], s=18, alpha=0.8, color=colour, label=subgroup)
    rho = rows[["uncertainty", error]].corr(method="spearman").iloc[0, 1]
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_labels(ax.xaxis)
    plain_log_labels(ax.yaxis)
    ax.set_xlabel("uncertainty (root mean predictive variance)")
    ax.set_ylabel(f"mean squared error ({'top DE genes' if genes == 'de' else 'all genes'})")
    n_seeds = rows["seed"].nunique() if "seed" in rows.columns else 1
    of_seeds = f" of {n_seeds} seeds" if n_seeds > 1 else ""
    # within each subgroup of each seed, averaged over the seeds, as the summary reads it
    seeds = [part for _, part in rows.groupby("seed", sort=False)] if "seed" in rows else [rows]
    per_seed = np.array([within_subgroups(part, genes) for part in seeds], dtype=float)
    within = float(np.nanmean(per_seed)) if np.isfinite(per_seed).any() else np.nan
    within_text = "" if np.isnan(within) else f"\nwithin subgroups {within:.2f}"
    # log axes cannot draw a 0 (a prediction exact, or without variance): said, not hidden
    hidden = int(((rows["uncertainty"] <= 0) | (rows[error] <= 0)).sum())
    hidden_text = f" ({hidden} at 0, not drawn on log axes)" if hidden else ""
    hidden_text += f" ({missing} without a value, left out)" if missing else ""
    # n/a for fewer than three points (two are ranked +-1 whatever they are) or a constant
    spearman = f"{rho:.2f}" if np.isfinite(rho) and len(rows) >= 3 else "n/a"
    ax.set_title(
        f"{model}: Spearman {spearman}\npooled over {counted(len(rows), 'test condition')}"
        f"{of_seeds}" + hidden_text + within_text
    )
    ax.legend(fontsize="small", frameon=False)
    return ax


def calibration_curve(data: EvaluationResult | pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Observed share of measured changes inside the predictive intervals, per nominal level.

    One line per model and gene set (solid: top DE genes, dashed: all genes); the diagonal
    is perfect calibration, below it the intervals are too narrow, above it too wide (the
    title says so).

    Parameters
    ----------
    data
        An :class:`~perturbsim.tl.EvaluationResult` or its ``calibration()`` table (columns
        ``model``, ``genes``, ``nominal``, ``observed``).
    ax
        Axes to draw on.

    Returns
    -------
    The Axes: the diagonal, then one line per model and gene set (labelled by them).

    Examples
    --------
    >>> import pandas as pd
    >>> import perturbsim as ps
    >>> table = pd.DataFrame(
    ...     {
    ...         "model": "stacked",
    ...         "genes": ["de", "de", "all", "all"],
    ...         "nominal": [0.5, 0.9, 0.5, 0.9],
    ...         "observed": [0.4, 0.8, 0.5, 0.91],
    ...     }
    ... )
    >>> ax = ps.pl.calibration_curve(table)
    >>> [line.get_label() for line in ax.get_lines()[1:]]
    ['stacked (top DE genes)', 'stacked (all genes)']
    >>> print(ax.get_title())
    on the diagonal: intervals as wide as they claim
    below it: too narrow; above it: too wide
    """
    table = _table(
        data, "calibration", ["model", "genes", "nominal", "observed"], ["nominal", "observed"]
    )
    unknown = sorted(set(map(str, table["genes"])) - {"de", "all"})
    if unknown:
        raise PerturbsimError(f"calibration: column 'genes' must hold 'de' or 'all', got {unknown}")
    own_figure = ax is None
    ax = _axes(ax, (6.6, 4.0))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    colours = model_colours(list(table["model"].unique()))
    for (model, genes), rows in table.groupby(["model", "genes"], sort=False):
        colour = colours[model]
        part = rows.sort_values("nominal", kind="stable")  # a line from the lowest level up
        ax.plot(
            part["nominal"],
            part["observed"],
            marker="o",
            color=colour,
            linestyle="-" if genes == "de" else "--",
            label=f"{model} ({'top DE' if genes == 'de' else 'all'} genes)",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("nominal coverage of the interval")
    ax.set_ylabel("measured changes inside")
    ax.set_title(
        "on the diagonal: intervals as wide as they claim\n"
        "below it: too narrow; above it: too wide",
        fontsize="small",
    )
    ax.legend(fontsize="small", frameon=False, **legend_beside(own_figure))
    return ax
