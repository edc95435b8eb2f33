"""Plot of an active-learning loop: error on the untested conditions against conditions measured."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._errors import PerturbsimError
from ..tl._design import active_learning_summary
from ._colours import strategy_colours
from ._plots import _axes, chosen, legend_beside

DEFAULT_REFERENCE = "random"
"""The strategy :func:`design_curves` marks unless told otherwise."""


def design_curves(
    curves: pd.DataFrame,
    *,
    strategies: str | Sequence[str] | None = None,
    reference: str | None = DEFAULT_REFERENCE,
    confidence: float = 0.95,
    ax: Axes | None = None,
) -> Axes:
    """Error on the untested conditions against the number measured, one line per strategy.

    Each line is the mean over seeds, its band the t-interval of
    :func:`perturbsim.tl.active_learning_summary` (absent with a single seed; cut at 0
    when no error is negative, as a squared error cannot be), in its strategy's colour:
    the same in every figure for the strategies of :func:`perturbsim.tl.design`, whichever
    others are drawn beside it (another's is drawn from its name). A dotted
    horizontal line marks the reference strategy's final mean error (at the last point
    every one of its seeds reached, not one a few seeds ran on to; its label names that
    point, e.g. ``random at 40``): where another line crosses it, that strategy has reached
    the reference's final error with fewer measurements. The title says when some points
    average fewer seeds than others.

    Parameters
    ----------
    curves
        One row per strategy, seed and round, columns ``strategy``, ``seed``,
        ``n_measured``, ``error`` (as ``benchmarks/bench_design.py`` records them).
    strategies
        Which to show (one name or several), in this order; default: all, in order of first
        appearance.
    reference
        Strategy whose final mean error is marked, one of the curves' (another is refused,
        but for the default, ``"random"``, which curves without it simply lack); ``None``
        marks none.
    confidence
        Coverage of the bands.
    ax
        Axes to draw on; default: a new figure.

    Returns
    -------
    The Axes.

    Raises
    ------
    PerturbsimError
        ``curves`` not a DataFrame with those columns, a strategy or ``reference`` not
        among its strategies, or ``reference`` without a finite error.

    Examples
    --------
    >>> import pandas as pd
    >>> import perturbsim as ps
    >>> curves = pd.DataFrame({
    ...     "strategy": ["combined"] * 4 + ["random"] * 4,
    ...     "seed": [0, 0, 1, 1] * 2,
    ...     "n_measured": [8, 16] * 4,
    ...     "error": [0.9, 0.5, 0.8, 0.6, 0.9, 0.7, 0.8, 0.8],
    ... })
    >>> ax = ps.pl.design_curves(curves)
    >>> [line.get_label() for line in ax.get_lines()][:2]
    ['combined', 'random']
    """
    summary = active_learning_summary(curves, confidence=confidence)
    available = list(pd.unique(summary["strategy"]))
    shown = chosen(strategies, available, "curves of the strategies")
    if reference == DEFAULT_REFERENCE and reference not in available:
        reference = None
    if reference is not None and reference not in available:
        raise PerturbsimError(
            f"reference {reference!r} is not a strategy of the curves (have: {available}); "
            "pass reference=None to mark none"
        )
    own_figure = ax is None
    ax = _axes(ax, (7.5, 4.0))
    errors = pd.to_numeric(curves["error"])  # numeric: the summary checked it
    floor = 0.0 if (errors.dropna() >= 0).all() else -np.inf  # an error that cannot be < 0
    colours = strategy_colours(shown)
    for strategy in shown:
        rows = summary[summary["strategy"] == strategy]
        colour = colours[strategy]
        ax.plot(rows["n_measured"], rows["mean"], marker="o", ms=3, color=colour, label=strategy)
        low = np.maximum(rows["ci_low"].to_numpy(dtype=float), floor)
        ax.fill_between(rows["n_measured"], low, rows["ci_high"], color=colour, alpha=0.2)
    if reference is not None:
        rows = summary[(summary["strategy"] == reference) & np.isfinite(summary["mean"])]
        if rows.empty:
            raise PerturbsimError(
                f"reference {reference!r} has no finite error at any point: pass another "
                "strategy as reference, or reference=None to mark none"
            )
        every = rows[rows["n_seeds"] == rows["n_seeds"].max()]  # the points all its seeds reach
        final = every.iloc[-1]
        at = int(final["n_measured"])
        ax.axhline(final["mean"], color="grey", ls=":", lw=1, label=f"{reference} at {at}")
    ax.set_xlabel("conditions measured")
    ax.set_ylabel("error on untested conditions")
    n_seeds = int(summary["n_seeds"].max())
    fewer = " (fewer at some points)" if summary["n_seeds"].nunique() > 1 else ""
    shown = (
        f"mean and {confidence:.0%} interval over {n_seeds} seeds{fewer}"
        if n_seeds > 1
        else "one seed, no interval"
    )
    ax.set_title(f"active learning: {shown}")
    ax.legend(frameon=False, **legend_beside(own_figure))  # inside, over lines and bands
    return ax
