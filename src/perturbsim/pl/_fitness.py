"""Plots of cell-fitness predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._checks import check_count, checked_table, shown
from .._errors import PerturbsimError
from ..tl._fitness import SUBGROUPS, FitnessResult, pair_metrics
from ._colours import subgroup_colour
from ._plots import _axes, legend_beside


def _subgroup_rank(subgroup: object) -> int:
    """Place of ``subgroup`` in :data:`SUBGROUPS` (any other value last)."""
    return SUBGROUPS.index(subgroup) if subgroup in SUBGROUPS else len(SUBGROUPS)


def _r2_text(group: pd.DataFrame) -> str:
    """``R² 0.947`` of a subgroup's drawn pairs (as the scores compute it), or ``R² n/a``."""
    r2 = pair_metrics(group["predicted"].to_numpy(), group["measured"].to_numpy())["r2"]
    return "R² n/a" if np.isnan(r2) else f"R² {r2:.3f}"


def fitness_scatter(
    data: FitnessResult | pd.DataFrame,
    *,
    method: str,
    seed: int | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Predicted against measured fitness of the test pairs, coloured by subgroup.

    Pairs the method did not predict, or without a measurement, are left out:
    ``expression_ridge`` predicts only the pairs its expression model covers (the legend
    counts the pairs shown and gives each subgroup's R² on them, as the scores compute it).
    One split seed is drawn; the title says which, and of how many (the printed tables
    average them).

    Parameters
    ----------
    data
        A :class:`~perturbsim.tl.FitnessResult` or its ``predictions`` table (columns
        ``seed``, ``subgroup``, ``method``, ``predicted``, ``measured``).
    method
        The method to show, e.g. ``"fitness_model"`` or ``"additive"``.
    seed
        The split seed to show; default: the first with a prediction of ``method``.
    ax
        Axes to draw on.

    Returns
    -------
    The Axes: one point collection per subgroup (both genes seen, one, none) and the
    identity line.

    Examples
    --------
    >>> import pandas as pd
    >>> import perturbsim as ps
    >>> table = pd.DataFrame(
    ...     {
    ...         "seed": 0,
    ...         "subgroup": ["combo_seen2", "combo_seen1"],
    ...         "method": "additive",
    ...         "predicted": [-0.4, -0.2],
    ...         "measured": [-0.5, -0.1],
    ...     }
    ... )
    >>> len(ps.pl.fitness_scatter(table, method="additive").collections)
    2
    """
    table = data.predictions if isinstance(data, FitnessResult) else data
    columns = ["seed", "subgroup", "method", "predicted", "measured"]
    table = checked_table(table, columns, "fitness predictions")
    for column in ("predicted", "measured", "seed"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = (values.isna() & table[column].notna()) | np.isinf(values)
        if column == "seed":
            bad |= table[column].isna()
        if bad.any():
            raise PerturbsimError(
                f"fitness predictions: column {column!r} holds "
                f"{shown(table[column][bad].iloc[0])}, not a finite number"
            )
        table = table.assign(**{column: values})  # numbers written as text read as numbers
    if method not in set(table["method"]):
        raise PerturbsimError(
            f"no predictions of method {method!r}; found {sorted(set(table['method']))}"
        )
    rows = table[
        (table["method"] == method) & table["predicted"].notna() & table["measured"].notna()
    ]
    if rows.empty:
        raise PerturbsimError(
            f"no predictions of {method!r} to draw: every one, or its measurement, is NaN"
        )
    seed = int(rows["seed"].iloc[0]) if seed is None else check_count("seed", seed, minimum=0)
    seeds = sorted(set(rows["seed"].astype(int)))
    rows = rows[rows["seed"] == seed]
    if rows.empty:
        raise PerturbsimError(
            f"no predictions of {method!r} for split seed {seed} (its seeds: "
            f"{', '.join(map(str, seeds))})"
        )
    own_figure = ax is None
    ax = _axes(ax, (5.6, 3.6))
    sizes = rows["subgroup"].value_counts()
    drawn = []
    for subgroup in sorted(sizes.index, key=lambda s: -sizes[s]):  # small groups on top
        group = rows[rows["subgroup"] == subgroup]
        points = ax.scatter(
            group["measured"],
            group["predicted"],
            s=6,
            alpha=0.5,
            color=subgroup_colour(subgroup),
            edgecolors="none",
            label=f"{subgroup} ({len(group)}, {_r2_text(group)})",
        )
        drawn.append((_subgroup_rank(subgroup), points))
    values = rows[["measured", "predicted"]].to_numpy(dtype=float)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.4", ls="--", lw=1)
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("measured fitness")
    ax.set_ylabel("predicted fitness")
    shown_seed = f"split seed {seed}" + (f", one of {len(seeds)}" if len(seeds) > 1 else "")
    ax.set_title(f"{method}\n({shown_seed})")
    listed = [points for _, points in sorted(drawn, key=lambda item: item[0])]
    legend = ax.legend(
        handles=listed, fontsize="small", frameon=False, markerscale=3, **legend_beside(own_figure)
    )
    for handle in legend.legend_handles:  # a subgroup's colour in full, not its points' fading
        handle.set_alpha(1.0)
    return ax
