"""Plots of evaluations and predictions.

Every function takes its data first, draws on ``ax`` (a new figure when ``None``) and
returns the Axes. New figures are :class:`matplotlib.figure.Figure` objects, not pyplot
figures, so nothing depends on the interactive backend or pyplot's global state; save one
with ``ax.figure.savefig(path)``.
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter
from scipy import sparse

from .._checks import check_list, checked_table
from .._errors import PerturbsimError, counted, shown_list
from .._keys import CONDITION, DELTA_LAYER
from ..models import PerturbationModel, Stacked
from ..pp import PseudobulkStats, canonical_label, parse_label
from ..pp._pseudobulk import current_stats
from ..tl._metrics import METRICS
from ..tl._result import REPLICATE, EvaluationResult, order_subgroups
from ._colours import model_colours

logger = logging.getLogger(__name__)


ProfileSource = AnnData | PseudobulkStats
"""Changes over control of several conditions: profiles, statistics or a set-up screen."""

_BOUNDS = {"pearson": (-1.05, 1.05), "direction": (0.0, 1.05), "de": (0.0, 1.05)}
"""Axis limits of bounded metrics, by the first word of the metric name."""


UNIT = "log-normalised expression"
"""The unit of a change over control on a plot's axis (the screens' values: ``log1p``)."""
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "p", "h")
"""Markers of the runs (or seeds) of a training history, one each, in turn (:func:`_marker`)."""
_FOOT_NOTE = {
    "rotation": 90,
    "fontsize": "x-small",
    "ha": "center",
    "zorder": 2.5,  # over the bars' hatching and whiskers, on a white ground: never struck
    "bbox": {"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none"},
}
"""How a bar's coverage note is written beside it (:func:`_note_place`)."""
_NOTE_GAP = 2.0
"""Points between a coverage note's foot and the line it stands on (0, or the bar's end):
its white ground clear of the zero line, which runs whole beneath it."""
PARTIAL_ALPHA = 0.45
"""Opacity of a bar that is the mean of part of its subgroup's conditions only."""


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the Axes of a new figure of ``figsize`` (inches) when None."""
    if ax is not None:
        if not isinstance(ax, Axes):
            raise PerturbsimError(
                f"ax must be a matplotlib Axes (e.g. from plt.subplots()), got "
                f"{type(ax).__name__} {ax!r:.40}"
            )
        return ax
    return Figure(figsize=figsize, layout="constrained").add_subplot()


def legend_beside(own_figure: bool) -> dict[str, object]:
    """``Axes.legend`` placement: beside the axes on a figure of the plot's own.

    Inside, a legend lay over lines and points; in an Axes given, matplotlib finds it room.
    """
    return {"loc": "upper left", "bbox_to_anchor": (1.02, 1)} if own_figure else {}


def chosen(given: str | Sequence[str] | None, available: Sequence[str], what: str) -> list[str]:
    """``given`` (default ``available``; one name or several) as a list, refusing an unknown.

    Raises
    ------
    PerturbsimError
        One line naming the unknown names and the available ones (a misspelt model must
        not be drawn as an empty bar or line, read as "predicts nothing").
    """
    available = list(available)
    if isinstance(given, str):
        given = [given]
    shown = available if given is None else [str(name) for name in given]
    unknown = [name for name in shown if name not in available]
    if unknown:
        raise PerturbsimError(f"no {what} {unknown} (have: {available})")
    if given is not None and not shown:
        raise PerturbsimError(f"no {what} chosen: name at least one of {available}, or None")
    return shown


def checked_genes(genes: object) -> list[str]:
    """``genes`` to show as a list, refused when empty or naming a gene twice.

    Examples
    --------
    >>> checked_genes(("HBZ", "HBG2"))
    ['HBZ', 'HBG2']
    """
    check_list("genes", genes, "genes")
    genes = list(genes)
    if not genes:
        raise PerturbsimError("genes is empty: give the genes to show, or leave it out")
    repeated = sorted(g for g, n in Counter(genes).items() if n > 1)
    if repeated:
        raise PerturbsimError(f"genes names {shown_list(repeated, 5)} more than once")
    return genes


def delta_table(data: ProfileSource, what: str) -> pd.DataFrame:
    """Change over control, conditions x genes, of profiles, statistics or a set-up screen."""
    if isinstance(data, AnnData) and CONDITION in data.obs:  # cells of a set-up screen
        data = current_stats(data)
    if isinstance(data, PseudobulkStats):
        return pd.DataFrame(
            data.delta,
            index=pd.Index(np.asarray(data.conditions, dtype=str)),
            columns=pd.Index(np.asarray(data.genes, dtype=str)),
        )
    if isinstance(data, AnnData) and DELTA_LAYER in data.layers:
        delta = data.layers[DELTA_LAYER]
        delta = delta.toarray() if sparse.issparse(delta) else np.asarray(delta)
        return pd.DataFrame(
            delta.astype(np.float64),
            index=data.obs_names.astype(str),
            columns=data.var_names.astype(str),
        )
    raise PerturbsimError(
        f"{what} must be profiles (an AnnData with .layers[{DELTA_LAYER!r}], as predict "
        f"returns), PseudobulkStats or a set-up screen, got {type(data).__name__}"
    )


COVERAGE_COLUMNS = ("model", "subgroup", "n_covered", "n_total")
"""Columns of the ``coverage`` table :func:`metric_bars` reads (``coverage_table()``'s)."""
NOT_COVERED = "–"
"""The mark of a model that predicts none of a subgroup's conditions (the tables' mark)."""


def _coverage_note(
    coverage: pd.DataFrame, model: str, subgroup: str, scored: int | None = None
) -> str:
    """The coverage note of a bar: ``"k/n"``, ``"–"`` or "".

    ``"k/n"`` when ``model`` was scored on only ``k`` of the ``n`` test conditions, ``"–"``
    when it covers none of them, else "". ``scored``: the conditions the bar's mean is of,
    where known (a correlation is undefined on a condition predicted without change, so it
    may be fewer than those covered).

    ``coverage`` is :meth:`~perturbsim.tl.EvaluationResult.coverage_table`.
    """
    row = coverage[(coverage["model"] == model) & (coverage["subgroup"] == subgroup)]
    if row.empty:
        return ""
    covered, total = int(row["n_covered"].iloc[0]), int(row["n_total"].iloc[0])
    if covered == 0:
        return NOT_COVERED
    covered = covered if scored is None else min(covered, scored)
    return "" if covered == total else f"{covered}/{total}"


def plain_log_labels(axis: Axis) -> None:
    """Write a log axis's tick labels as plain numbers (``0.4``, not ``4 × 10⁻¹``).

    The decades are labelled. When fewer than two decades fall within the axis's range, so
    that one label or none would show, the ticks between them are labelled too: at 2 and 5
    times a decade, at 2, 3 and 5 times within a range under ten-fold (an x axis) or 2 to 5
    times within one under thirty-fold on a y axis (whose labels stack rather than crowd
    side by side), or every one (2 to 9 times) within a range under three-fold. Where even
    so fewer than two ticks would carry a label (a range such as 1.2 to 1.4, between the
    ticks of a log axis), the axis takes a few plain ticks, each labelled.
    Call it once the axis's limits are set.
    """
    low, high = sorted(getattr(axis.axes, f"get_{axis.axis_name}lim")())  # autoscaled now
    decades = np.floor(np.log10(high)) - np.ceil(np.log10(low)) + 1 if low > 0 else 2
    every, upright = (2, 3, 4, 5, 6, 7, 8, 9), axis.axis_name == "y"  # labels stacked, not abreast
    shown = (
        every
        if high < 3 * low
        else (2, 3, 4, 5)
        if upright and high < 30 * low
        else (2, 3, 5)
        if high < 10 * low
        else (2, 5)
    )

    def labelled(value: float) -> bool:
        mantissa = round(value / 10 ** np.floor(np.log10(value)))
        return decades < 2 and mantissa in shown

    def minor(value: float, _: object) -> str:
        return f"{value:.3g}" if labelled(value) else ""

    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    if low > 0:
        majors = axis.get_major_locator().tick_values(low, high)
        minors = [v for v in axis.get_minor_locator().tick_values(low, high) if labelled(v)]
        within = [value for value in [*majors, *minors] if low <= value <= high]
        if len(set(within)) < 2:  # between a log axis's ticks: a few plain ones instead
            axis.set_major_locator(MaxNLocator(nbins=4))
            axis.set_minor_formatter(NullFormatter())
            axis.set_major_formatter(plain)
            return
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(FuncFormatter(minor))


def _note_place(height: float, bottom: float, top: float) -> tuple[float, str]:
    """Where a bar's coverage note stands: ``(y, va)``, never over the bar.

    From 0 on the side the bar does not take where the axis has room there, else past the
    bar's end; from 0 upwards for a missing bar (:data:`_NOTE_GAP` off it, not on the zero
    line). A whisker it crosses is covered by the note's white ground.
    """
    if not np.isfinite(height):
        return 0.0, "bottom"
    if height >= 0:
        return (0.0, "top") if bottom < 0 else (float(height), "bottom")
    return (0.0, "bottom") if top > 0 else (float(height), "top")


def _value_range(metric: str, means: np.ndarray) -> tuple[float, float]:
    """Limits of a bar plot's value axis: the metric's range, or one fitted to the bars.

    Bounded metrics (:data:`_BOUNDS`) show their whole range. Others show the bars with a
    margin, and 0 and, for normalised errors, 1 (no change): never the whiskers, whose
    intervals over few seeds can reach tens of times the bars' heights and flatten them.
    """
    bounds = _BOUNDS.get(metric.split("_")[0])
    if bounds is not None:
        return bounds
    shown = [0.0, *means[np.isfinite(means)]] + ([1.0] if metric.startswith("nmse") else [])
    low, high = min(shown), max(shown)
    margin = 0.15 * (high - low) or 1.0
    return (low - margin if low < 0 else 0.0), high + margin


def metric_bars(
    data: EvaluationResult | pd.DataFrame,
    *,
    metric: str,
    models: str | Sequence[str] | None = None,
    subgroups: str | Sequence[str] | None = None,
    coverage: pd.DataFrame | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Grouped bars of one metric: test subgroups on the x axis, one bar per model.

    Bars show the mean over seeds, whiskers the interval of
    :meth:`~perturbsim.tl.EvaluationResult.summary` (absent with a single seed). The value
    axis spans a bounded metric's range (correlations, shares) or else the bars, 0 and
    (for normalised errors) 1, with a margin: intervals over few seeds can be many times
    the bars' heights, and whiskers beyond the axis are cut there, the title saying so. A model
    with no score in a subgroup leaves a gap (a bar of height NaN) marked ``–`` where it
    predicts none of the subgroup's conditions (as the report's tables mark it), ``n/a``
    where the metric is undefined for it. The title gives the number of seeds the bars are
    means of (a range, e.g. ``2–5 seeds``, where they differ). Each model is scored on the
    conditions it can predict: a bar of fewer than all the subgroup's test conditions is
    labelled ``scored/total`` (over the seeds; scored: covered, and the metric defined there,
    as a correlation is not on a change predicted as none) and faded, the note beside it,
    never over it: from 0
    on the side the bar does not take where the axis has room, else past its end, as its
    mean is not of the same conditions as the others' (from an
    :class:`~perturbsim.tl.EvaluationResult`, or ``coverage``). The split-half replicate,
    the screen's noise ceiling, is drawn as a hatched grey bar.

    Parameters
    ----------
    data
        An :class:`~perturbsim.tl.EvaluationResult` or its ``summary()`` table.
    metric
        Metric to show, e.g. ``"pearson_delta_de"``.
    models, subgroups
        Which to show (one name or several), in this order; default: all, in evaluation /
        report order. A name with no score of ``metric`` is refused.
    coverage
        Covered and total test conditions per model and subgroup
        (:meth:`~perturbsim.tl.EvaluationResult.coverage_table`, or a written result's
        ``coverage.csv``, one row per seed, summed here); default: the result's, or
        for a summary table none: a model and subgroup it has no row of are marked not
        covered, partial coverage is not labelled.
    ax
        Axes to draw on.

    Returns
    -------
    The Axes; one :class:`~matplotlib.container.BarContainer` per model in
    ``ax.containers`` (labelled by model), with one bar per subgroup; with several seeds
    each is preceded there by the :class:`~matplotlib.container.ErrorbarContainer` of its
    whiskers.

    Examples
    --------
    >>> import perturbsim as ps
    >>> from matplotlib.container import BarContainer
    >>> adata = ps.ds.norman2019_subset()
    >>> result = ps.tl.evaluate(adata, models=["mean", "no_perturb"], seeds=1)
    >>> ax = ps.pl.metric_bars(result, metric="nmse_de")
    >>> [c.get_label() for c in ax.containers if isinstance(c, BarContainer)]
    ['mean', 'no_perturb', 'replicate']
    """
    summary = checked_table(
        data.summary() if isinstance(data, EvaluationResult) else data,
        ["model", "subgroup", "metric", "mean"],
        "data",
        kind="an EvaluationResult or its summary() table",
        numeric=["mean", "ci_low", "ci_high", "n_seeds"],
    )
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise PerturbsimError(
            f"metric {metric!r} not in the summary; present: {sorted(summary['metric'].unique())}"
        )
    twice = rows.duplicated(["model", "subgroup"])
    if twice.any():
        model, group = rows.loc[twice, ["model", "subgroup"]].iloc[0]
        raise PerturbsimError(
            f"data holds {metric!r} of model {model!r} in subgroup {group!r} more than once: "
            "pass one summary() table (one row per model, subgroup and metric)"
        )
    present = list(dict.fromkeys(rows["model"]))
    if isinstance(data, EvaluationResult):
        present = [m for m in data.models if m in present] + [
            m for m in present if m not in data.models
        ]
    models = chosen(models, present, "scores of the models")
    subgroups = chosen(subgroups, order_subgroups(rows["subgroup"].unique()), "subgroups")
    if coverage is None and isinstance(data, EvaluationResult):
        coverage = data.coverage_table()
    elif coverage is not None:
        checked_table(coverage, COVERAGE_COLUMNS, "coverage")
        counts = coverage[["n_covered", "n_total"]].apply(pd.to_numeric, errors="coerce")
        if counts.isna().any().any() or (counts < 0).any().any():
            raise PerturbsimError(
                "coverage's n_covered and n_total count conditions (whole numbers >= 0): "
                "pass result.coverage_table()"
            )
        # one row per model and subgroup, over the seeds (coverage.csv holds one per seed)
        coverage = (
            coverage[["model", "subgroup"]]
            .join(counts)
            .groupby(["model", "subgroup"], as_index=False, sort=False)
            .sum()
        )
    # the legend beside (about 2 inches), a line of it about 0.2 inch: models, the line at 1
    # and the notes' key; a figure of many models grows to hold it, never the axes shrinking
    ax = _axes(ax, (2.6 + 1.3 * len(subgroups), max(3.6, 1.4 + 0.2 * (len(models) + 4))))
    x = np.arange(len(subgroups), dtype=float)
    width = 0.8 / max(len(models), 1)
    indexed = rows.set_index(["model", "subgroup"])
    means, ends = [], []
    notes: list[tuple[float, str, float]] = []  # (position, note, bar height)
    colours = model_colours(models)
    for i, model in enumerate(models):
        mean = np.full(len(subgroups), np.nan)
        low = np.full(len(subgroups), np.nan)
        high = np.full(len(subgroups), np.nan)
        for j, group in enumerate(subgroups):
            if (model, group) in indexed.index:
                row = indexed.loc[(model, group)]
                mean[j] = row["mean"]
                low[j] = row.get("ci_low", np.nan)
                high[j] = row.get("ci_high", np.nan)
        err = np.vstack([mean - low, high - mean])
        if (err < 0).any():
            group = subgroups[int(np.flatnonzero((err < 0).any(axis=0))[0])]
            raise PerturbsimError(
                f"data's interval of model {model!r} in subgroup {group!r} does not hold its "
                "mean (ci_low <= mean <= ci_high): pass an unchanged summary() table"
            )
        means.append(mean)
        ends.append(np.concatenate([low, high]))
        positions = x + (i - (len(models) - 1) / 2) * width
        bars = ax.bar(
            positions,
            mean,
            width=width,
            yerr=err if np.isfinite(err).any() else None,
            capsize=2,
            label=model,
            **(
                {"color": "0.85", "hatch": "///", "edgecolor": "0.45"}
                if model == REPLICATE
                else {"color": colours[model]}
            ),
        )
        for bar, position, group, height in zip(
            bars.patches, positions, subgroups, mean, strict=True
        ):
            # a bar of fewer conditions says how many, beside it; a missing one, why (without
            # coverage, a row absent from the summary is a subgroup the model never covered)
            if coverage is not None:
                count = (
                    indexed.loc[(model, group), "n_conditions"]
                    if "n_conditions" in indexed.columns and np.isfinite(height)
                    else np.nan
                )
                scored = int(count) if np.isfinite(count) else None
                note = _coverage_note(coverage, model, group, scored)
            else:
                note = "" if (model, group) in indexed.index else NOT_COVERED
            if np.isnan(height) and note != NOT_COVERED:
                note = "n/a" + (f" ({note})" if note else "")
            if note:
                notes.append((position, note, height))
            if note and np.isfinite(height):  # a mean of some conditions only: faded
                bar.set_alpha(PARTIAL_ALPHA)
    if metric.startswith("nmse"):
        ax.axhline(1.0, color="0.4", linestyle=":", linewidth=1, label="no change (1)")
    bottom, top = _value_range(metric, np.concatenate(means))
    ax.set_ylim(bottom, top)
    for position, note, height in notes:
        y, va = _note_place(height, bottom, top)
        upright = {"rotation": 0} if note == NOT_COVERED else {}  # a dash, not a tick mark
        gap = _NOTE_GAP if va == "bottom" else -_NOTE_GAP
        ax.annotate(
            note,
            (position, y),
            xytext=(0, gap),
            textcoords="offset points",
            va=va,
            annotation_clip=False,  # drawn wherever its point is, as a text would be
            **{**_FOOT_NOTE, **upright},
        )
    ax.axhline(0.0, color="0.2", linewidth=0.8)
    ax.set_xticks(x, subgroups, rotation=20, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.5, len(subgroups) - 0.5)  # a missing bar's note inside too, not on the frame
    best = METRICS[metric].best if metric in METRICS else None
    ax.set_ylabel(metric + (f" ({best} is better)" if best else ""))
    ends = np.concatenate(ends)
    cut = np.isfinite(ends) & ((ends < bottom) | (ends > top))
    low, high = METRICS[metric].bounds if metric in METRICS else (-np.inf, np.inf)
    at_range = np.isfinite(ends) & ((ends <= low) | (ends >= high))  # clipped by the summary
    note = (
        " (intervals cut at the axis)"
        if cut.any()
        else f" (intervals cut at the metric's range, {low:g}\u00a0to\u00a0{high:g})"
        if at_range.any()
        else ""
    )
    shown = rows[rows["model"].isin(models) & rows["subgroup"].isin(subgroups)]
    drawn = shown[np.isfinite(shown["mean"].to_numpy(dtype=float))]  # a gap is of no seed
    seeds = drawn["n_seeds"].dropna() if "n_seeds" in drawn.columns else pd.Series()
    of_seeds = ""
    if len(seeds):
        fewest, most = int(seeds.min()), int(seeds.max())
        # different counts: a run failed, or a subgroup went untested
        counts = counted(most, "seed") if fewest == most else f"{fewest}–{most} seeds"
        of_seeds = f"\nmean of {counts}"
    handles, labels = ax.get_legend_handles_labels()
    lines = [isinstance(handle, Line2D) for handle in handles]  # the line at 1 after the bars
    order = sorted(range(len(handles)), key=lambda i: lines[i])
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    key = _notes_key([note for _, note, _ in notes])  # under the models, no mark beside
    legend = ax.legend(
        [*handles, *(Patch(visible=False) for _ in key)],
        [*labels, *key],
        fontsize="small",
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    for handle in legend.legend_handles:  # a model's colour, not its first bar's fading
        handle.set_alpha(None)
    # about twelve characters an inch of the axes, once the legend took its room: a narrow
    # figure (one subgroup) wraps it
    ax.figure.draw_without_rendering()
    width = max(20, int(12 * ax.get_position().width * ax.figure.get_figwidth()))
    ax.set_title("\n".join(textwrap.wrap(metric + note, width)) + of_seeds)
    return ax


def _notes_key(notes: list[str]) -> list[str]:
    """What the bars' coverage notes mean: one legend line for each kind among ``notes``."""
    lines = []
    if any(re.fullmatch(r"\d+/\d+", note) for note in notes):  # not n/a's
        lines.append("k/n: faded, k of\nn conditions")
    if NOT_COVERED in notes:
        lines.append(f"{NOT_COVERED}: predicts none")
    if any(note.startswith("n/a") for note in notes):
        lines.append("n/a: undefined")
    return lines


def _as_series(
    values: AnnData | pd.Series | np.ndarray | Sequence[float],
    what: str,
    condition: str | None = None,
) -> tuple[pd.Series | np.ndarray, str | None]:
    """Change over control as a gene-indexed Series (or a bare array), and the condition.

    Of an AnnData, the row of ``condition``, or without it its only row.
    """
    if isinstance(values, AnnData):
        if DELTA_LAYER not in values.layers:
            raise PerturbsimError(f"{what} has no .layers[{DELTA_LAYER!r}] (change over control)")
        names = values.obs_names.astype(str)
        label = _chosen_profile(names, condition, what)
        row = names.get_loc(label)
        delta = values.layers[DELTA_LAYER][row : row + 1]
        delta = np.asarray(delta.toarray() if sparse.issparse(delta) else delta, dtype=float)
        return pd.Series(delta[0], index=values.var_names.astype(str)), label
    if isinstance(values, pd.Series):
        series = pd.to_numeric(values, errors="coerce")
        not_numbers = series.isna() & values.notna()  # coerced to NaN: text, say
        if not_numbers.any():
            gene = values.index[not_numbers][0]
            raise PerturbsimError(
                f"{what} must hold numbers, one per gene; gene {gene!r} holds "
                f"{values[not_numbers].iloc[0]!r}"
            )
        return series.astype(float), None
    try:
        return np.asarray(values, dtype=float).ravel(), None
    except (TypeError, ValueError):
        raise PerturbsimError(
            f"{what} must be profiles (an AnnData with .layers[{DELTA_LAYER!r}]), a Series or "
            f"an array of numbers, got {type(values).__name__}"
        ) from None


def _profile_of(data: ProfileSource, condition: str | None, what: str) -> pd.Series:
    """The change over control of ``condition`` among the profiles of ``data`` (by gene).

    Without ``condition``, that of the only profile ``data`` holds.
    """
    table = delta_table(data, what)
    return table.loc[_chosen_profile(table.index, condition, what)]


def _chosen_profile(labels: pd.Index, condition: str | None, what: str) -> str:
    """The label among ``labels`` that ``condition`` names; without it, the only one.

    Raises
    ------
    PerturbsimError
        Naming the labels: ``condition`` names none of them, or it is ``None`` and there
        are several.
    """
    if len(labels) == 0:
        raise PerturbsimError(f"{what} holds no profile")
    if condition is None:
        if len(labels) != 1:
            raise PerturbsimError(
                f"{what} holds {len(labels)} profiles: pass condition= to choose one of them "
                f"({shown_list(labels, 8)})"
            )
        return str(labels[0])
    label = canonical_label(parse_label(condition))
    if label not in labels:
        raise PerturbsimError(
            f"{what} has no profile of {label!r} (it holds {shown_list(labels, 8)})"
        )
    return label


def predicted_vs_true(
    predicted: AnnData | pd.Series | np.ndarray,
    measured: ProfileSource | pd.Series | np.ndarray,
    *,
    genes: Sequence[str] | None = None,
    condition: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Scatter of predicted against measured change over control, with the identity line.

    As in Fig. 2g of the GEARS paper, restricted to chosen genes (typically a condition's
    top 20 DE genes): points on the diagonal are predicted exactly.

    Parameters
    ----------
    predicted
        A prediction of :meth:`~perturbsim.models.PerturbationModel.predict` (its
        ``.layers["delta"]`` is used): its only row, or among several the row of
        ``condition``; or changes over control as a gene-indexed Series or an array.
    measured
        A set-up screen, :class:`~perturbsim.pp.PseudobulkStats` or measured profiles (an
        AnnData with ``.layers["delta"]``), of which the change of ``condition`` (by
        default the predicted condition) is used, as by
        :func:`~perturbsim.pl.pair_prediction`; or measured changes as a Series or array
        aligned with ``predicted``.
    genes
        Genes to show (needs gene names on either side: an AnnData, a Series or
        statistics; a bare array takes the other side's); default: all.
    condition
        Condition shown, and named in the title (with the number of genes drawn, those
        with both changes finite): the row of a ``predicted`` of several rows (needed
        then) and the profile of ``measured`` (needed when ``predicted`` names none and
        ``measured`` holds several profiles); default: the predicted one.
    ax
        Axes to draw on.

    Returns
    -------
    The Axes; the points are ``ax.collections[0]``.

    Raises
    ------
    PerturbsimError
        When no gene has both a finite predicted and a finite measured change (nothing to
        draw), among other bad inputs.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> pred = ps.TrainMean(adata).fit().predict("KLF1")
    >>> ax = ps.pl.predicted_vs_true(pred, adata, genes=["HBZ", "HBG2"])
    >>> len(ax.collections[0].get_offsets())
    2
    """
    pred, pred_condition = _as_series(predicted, "predicted", condition)
    condition = condition or pred_condition
    if isinstance(measured, AnnData | PseudobulkStats):
        true = _profile_of(measured, condition, "measured")
    else:
        true, _ = _as_series(measured, "measured")
    if isinstance(pred, pd.Series) and isinstance(true, pd.Series):
        missing = pred.index.difference(true.index)
        if len(missing):
            raise PerturbsimError(f"genes missing from measured: {list(missing[:10])}")
        true = true.reindex(pred.index)
    elif len(pred) != len(true):
        raise PerturbsimError(
            f"predicted ({len(pred)}) and measured ({len(true)}) differ in length"
        )
    elif isinstance(pred, pd.Series) or isinstance(true, pd.Series):  # one side names the genes
        names = pred.index if isinstance(pred, pd.Series) else true.index
        pred, true = (
            pd.Series(np.asarray(pred), index=names),
            pd.Series(np.asarray(true), index=names),
        )
    if genes is not None:
        genes = checked_genes(genes)
        if not isinstance(pred, pd.Series):
            raise PerturbsimError(
                "genes= needs named values: pass a prediction, statistics or a Series"
            )
        unknown = [g for g in genes if g not in pred.index]
        if unknown:
            raise PerturbsimError(f"genes not among the predicted genes: {shown_list(unknown, 10)}")
        pred, true = pred.loc[genes], true.loc[genes]
    x, y = np.asarray(true, dtype=float), np.asarray(pred, dtype=float)
    if not (np.isfinite(x) & np.isfinite(y)).any():
        raise PerturbsimError(
            f"nothing to draw: none of the {x.size} genes has both a finite predicted and a "
            f"finite measured change ({(~np.isfinite(y)).sum()} predicted and "
            f"{(~np.isfinite(x)).sum()} measured are NaN or infinite)"
        )
    ax = _axes(ax, (3.4, 3.4))
    ax.scatter(x, y, s=14, alpha=0.8, color="C0", edgecolors="none")
    finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    lim = float(np.abs(finite).max()) * 1.08 if finite.size and np.abs(finite).max() > 0 else 1.0
    # to the corners whatever limits the axes are given later (a grid of shared limits)
    ax.axline((0.0, 0.0), slope=1.0, color="0.4", linestyle="--", linewidth=1)
    ax.axhline(0.0, color="0.85", linewidth=0.8, zorder=0)
    ax.axvline(0.0, color="0.85", linewidth=0.8, zorder=0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel(f"measured change over control\n({UNIT})")
    ax.set_ylabel(f"predicted change over control\n({UNIT})")
    drawn = int((np.isfinite(x) & np.isfinite(y)).sum())
    what = counted(drawn, "gene") if genes is not None else f"all {counted(drawn, 'gene')}"
    ax.set_title(f"{condition}: {what}" if condition else what)
    return ax


HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss")
"""Columns :func:`training_history` draws."""
LEGEND_INSIDE = 4
"""Most lines of a training history whose legend sits inside the axes; more go beside it."""
_KEEPS_HISTORY = "of the expression models only GEARS, alone or as a correction of Stacked, does"
"""Which models train a network, and so keep a training history, for error messages."""


def _marker(i: int) -> dict[str, str]:
    """The marker of a training history's ``i``-th run or seed, as ``Line2D`` keywords.

    Each of :data:`_MARKERS` filled, then each hollow: 24 runs told apart, then repeated.
    """
    hollow = i % (2 * len(_MARKERS)) >= len(_MARKERS)
    return {"marker": _MARKERS[i % len(_MARKERS)], "fillstyle": "none" if hollow else "full"}


def _log_if_positive(ax: Axes, values: pd.Series) -> None:
    """A logarithmic y axis, plainly labelled, where every finite value is positive."""
    finite = values.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size and np.all(finite > 0):
        ax.set_yscale("log")
        plain_log_labels(ax.yaxis)


def _gears_part_note(model: Stacked) -> str:
    """What a default model's history is of: its GEARS part, said when no kind weighs it."""
    weights = model.weights
    gears = weights.loc[weights["part"] == "gears", "weight"].to_numpy(dtype=float)
    unused = gears.size > 0 and not np.any(gears > 0)
    note = " (weight 0 in every kind: no part of its predictions)" if unused else ""
    return "GEARS part" + note


def _why_no_history(history: object) -> str:
    """Why a model, or a table, has an empty training history."""
    if isinstance(history, pd.DataFrame):
        return (
            f"the history table is empty: none of the models trained a network ({_KEEPS_HISTORY})"
        )
    label = getattr(history, "label", type(history).__name__)
    if not getattr(history, "is_fitted", True):
        return f"{label} has no training history: it is not fitted, call .fit() first"
    return f"{label} has no training history: it trained no network ({_KEEPS_HISTORY})"


def training_history(
    history: object,
    *,
    ax: Axes | None = None,
) -> Axes:
    """Training loss and validation error by epoch.

    Two measures, each on its own axis: the loss the network trains on (GEARS's autofocus
    and direction terms; left) and the error that picks its best epoch (mean squared error
    on the validation conditions' top DE genes; right, on a twin axis). Their levels are
    not comparable, so each has its own scale (logarithmic where all its values are
    positive); their courses are.

    Parameters
    ----------
    history
        A model with a ``history`` table (:class:`~perturbsim.GEARS`), such a table
        (``epoch``, ``train_loss``, ``val_loss``; optional ``model``/``member``/``seed``
        columns make one pair of lines each), or
        :attr:`~perturbsim.tl.EvaluationResult.histories`.
    ax
        Axes to draw on.

    Returns
    -------
    The Axes of the training loss: per run a solid training line; the dashed validation
    lines (none for a run trained without validation, whose ``val_loss`` is NaN: the default
    model's GEARS part) lie on its twin Axes (``ax.twinx()``'s: the one sharing its x axis,
    ``ax.get_shared_x_axes().get_siblings(ax)``), drawn beneath it, and one legend on it
    names both (its background is left transparent so that they show through). The title
    names the model (its ``label``, or the table's ``model`` column).

    Raises
    ------
    PerturbsimError
        An empty history (saying why: the model is not fitted or trained no network, or
        none of an evaluation's models did), or a table lacking the columns drawn.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.split(adata, kind="simulation", seed=1)
    >>> model = ps.GEARS(adata, seed=0).fit(max_epochs=3)
    >>> ax = ps.pl.training_history(model)
    >>> len(ax.lines), len(ax.figure.axes[1].lines)
    (1, 1)
    """
    if isinstance(history, PerturbationModel) and (
        not history.is_fitted or not hasattr(history, "history")
    ):
        raise PerturbsimError(_why_no_history(history))
    table = getattr(history, "history", history)
    if not isinstance(table, pd.DataFrame):
        raise PerturbsimError(
            f"history must be a model with .history or a DataFrame, got {type(history).__name__}"
        )
    if table.empty:
        raise PerturbsimError(_why_no_history(history))
    checked_table(table, HISTORY_COLUMNS, "the history table", numeric=HISTORY_COLUMNS)
    keys = [c for c in ("model", "seed", "member") if c in table.columns and table[c].nunique() > 1]
    # every row a run, a missing model or seed too (a group of its own, named "nan")
    groups = table.groupby(keys, sort=False, dropna=False) if keys else [((), table)]
    own_figure = ax is None
    ax = _axes(ax, (4.2, 3.2))
    validated = bool(np.isfinite(table["val_loss"].to_numpy(dtype=float)).any())
    val_ax = ax.twinx() if validated else None
    # several models: each in its own colour, named once (its seeds' runs by their markers)
    models = [str(m) for m in pd.unique(table["model"])] if "model" in keys else []
    colours = model_colours(models) if models else {}
    # a seed's runs take its marker in every model's colour (a legend entry each)
    seeds = list(pd.unique(table["seed"])) if colours and "seed" in keys else []
    named: set[str] = set()
    for i, (key, rows) in enumerate(groups):
        run = rows.sort_values("epoch", kind="stable")  # a line from the first epoch on
        key = key if isinstance(key, tuple) else (key,)
        named_key = dict(zip(keys, key, strict=True))
        marker = _marker(seeds.index(named_key["seed"]) if seeds else i)
        if colours:
            model = str(named_key["model"])
            colour, suffix, shown = colours[model], f" ({model})", model not in named
            named.add(model)
        else:
            name = ", ".join(f"{k} {v}" for k, v in zip(keys, key, strict=True))
            colour, suffix, shown = f"C{i % 10}", f" ({name})" if name else "", True
        ax.plot(  # markers: a run under another (the same start) still shows
            run["epoch"],
            run["train_loss"],
            color=colour,
            markersize=3,
            **marker,
            label="training loss" + suffix if shown else "_nolegend_",
        )
        if val_ax is not None and np.isfinite(run["val_loss"].to_numpy(dtype=float)).any():
            val_ax.plot(
                run["epoch"],
                run["val_loss"],
                color=colour,
                linestyle="--",
                label="validation error" + suffix if shown else "_nolegend_",
            )
    _log_if_positive(ax, table["train_loss"])
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("training loss (solid)" if validated else "training loss")
    lines = ax.get_lines()
    if val_ax is not None:
        _log_if_positive(val_ax, table["val_loss"])
        val_ax.set_ylabel("validation error (dashed)")
        lines += val_ax.get_lines()
    entries = [line for line in lines if not line.get_label().startswith("_")]
    entries += [
        Line2D(
            [],
            [],
            color="0.4",
            linestyle="",
            **_marker(j),
            label=f"seed {seed}",
        )
        for j, seed in enumerate(seeds)
    ]
    labels = [line.get_label() for line in entries]
    # beside the axes and the twin's labels when many, or on a figure of its own (inside,
    # "best" weighs the training lines only, not the twin's); inside an Axes given, when few
    if len(entries) > LEGEND_INSIDE or (validated and own_figure):
        if own_figure:
            ax.figure.set_size_inches(7.0, 3.2)
        place = {"loc": "upper left", "bbox_to_anchor": (1.18 if validated else 1.02, 1)}
    else:
        place = {}
    ax.legend(entries, labels, fontsize="x-small", frameon=False, **place)
    if val_ax is not None:  # the training axes (and legend) over the twin, seen through
        ax.set_zorder(val_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
    names = list(pd.unique(table["model"])) if "model" in table.columns else []
    label = getattr(history, "label", None)
    shown = [str(label)] if isinstance(label, str) and label else [str(n) for n in names]
    title = "training history" + (f": {', '.join(shown)}" if shown else "")
    if isinstance(history, Stacked):
        title += f"'s {_gears_part_note(history)}"
    ax.set_title("\n".join(textwrap.wrap(title, 50)))
    return ax
