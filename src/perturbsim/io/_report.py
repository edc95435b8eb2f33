"""Write an evaluation report: its tables, PNG plots, ``report.md`` and ``report.html``.

The tables and settings come from :meth:`perturbsim.tl.EvaluationResult.write`; this module
adds the plots of :mod:`perturbsim.pl`, rendered once each, the Markdown text that links
them and the self-contained HTML page that embeds them (:mod:`perturbsim.io._html`). Every
file is written into a hidden staging folder inside the target directory and renamed into
place (:func:`perturbsim._atomic.write_results_dir`), so a reader never sees a half-written
file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._atomic import atomic_write, check_writable_place, write_results_dir
from .._checks import as_path, check_flag
from .._errors import PerturbsimError
from .._settings import each_warning_once
from ..models import Stacked, resolve_model
from ..pl import (
    calibration_curve,
    metric_bars,
    predicted_vs_true,
    training_history,
    uncertainty_vs_error,
)
from ..pl._plots import UNIT
from ..pp._split import subgroups_note
from ..tl._metrics import HEADLINE_METRICS, METRICS, full_depth_note
from ..tl._result import (
    MEAN_BASELINE,
    REPLICATE,
    EvaluationResult,
    order_subgroups,
    undefined_metrics,
)
from ._html import (
    HEAD_TO_HEAD_NOTE,
    NOT_COVERED,
    TITLE,
    UNCERTAINTY_NOTE,
    UNDEFINED,
    Plot,
    ReportPlots,
    calibration_verdicts,
    gi_note,
    gi_precision_table,
    head_to_head_table,
    html_report,
    min_cells_text,
    no_calibration_reason,
    number_text,
    raw_digits,
    scored_shares,
    timings_table,
    uncertainty_table,
)

logger = logging.getLogger(__name__)


def _write_text(text: str, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _history_title(model: str) -> str:
    """The title of a model's training history in the report.

    The default's history is its GEARS part's, whose weight on held-out conditions may be 0
    (the evaluation does not record it): said on a line of its own.
    """
    try:
        stacked = issubclass(resolve_model(model)[0], Stacked)
    except PerturbsimError:  # a name of the user's own
        stacked = False
    if not stacked:
        return f"{model} training"
    return f"{model}'s GEARS part: training\n(weighted on held-out conditions, possibly 0)"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")  # legends beside
    return buffer.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "condition"


def _file_stems(texts: Iterable[object]) -> dict[str, str]:
    """A file-name stem of each of ``texts``, distinct for distinct texts.

    Stems are :func:`_slug`'s; texts whose slugs coincide (``g u`` and ``g_u``) each take
    a short hash of themselves, so that neither file replaces the other.
    """
    names = list(dict.fromkeys(map(str, texts)))
    slugs = {name: _slug(name) for name in names}
    shared = Counter(slugs.values())
    return {
        name: f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:6]}" if shared[slug] > 1 else slug
        for name, slug in slugs.items()
    }


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(map(cell, header)) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "nan" if not np.isfinite(value) else number_text(value, 3)


def _metric_cell(row: pd.Series | None, *, counts: tuple[int, int], digits: int) -> str:
    """``mean [low, high]`` of a summary row; a missing row of a covered subgroup is undefined.

    ``counts``: the subgroup's test conditions the model was scored on and all of them; a
    value of some but not all is followed by ``(k/n)``.
    """
    covered, total = counts
    if row is None:
        return UNDEFINED if covered else NOT_COVERED
    if not np.isfinite(row["mean"]):
        return UNDEFINED
    mean = number_text(row["mean"], digits)
    if np.isfinite(row["ci_low"]):
        low, high = number_text(row["ci_low"], digits), number_text(row["ci_high"], digits)
        mean = f"{mean} [{low}, {high}]"
    return f"{mean} ({covered}/{total})" if 0 < covered < total else mean


def chosen_conditions(result: EvaluationResult) -> pd.DataFrame:
    """Conditions shown in the predicted-vs-measured plots of the report.

    From the first seed, per test subgroup, the condition predicted by the most models;
    ties go to the largest mean absolute measured change on the DE genes (the clearest
    plots), then to the label.

    Parameters
    ----------
    result
        The evaluation.

    Returns
    -------
    ``seed``, ``subgroup``, ``condition``.
    """
    changes = result.changes
    if changes.empty:
        return pd.DataFrame(columns=["seed", "subgroup", "condition"])
    seed = result.settings.get("seeds", [changes["seed"].iloc[0]])[0]
    first = changes[changes["seed"] == seed]
    per_condition = (
        first.groupby(["subgroup", "condition"])
        .agg(
            n_models=("model", "nunique"),
            size=("measured", lambda v: float(np.mean(np.abs(v))) if len(v) else 0.0),
        )
        .reset_index()
    )
    chosen = []
    for group in order_subgroups(per_condition["subgroup"].unique()):
        rows = per_condition[per_condition["subgroup"] == group].sort_values(
            ["n_models", "size", "condition"], ascending=[False, False, True]
        )
        chosen.append((seed, group, rows["condition"].iloc[0]))
    return pd.DataFrame(chosen, columns=["seed", "subgroup", "condition"])


SCATTER_COLUMNS = 4
"""Panels in a row of a predicted-vs-measured figure (more models wrap to further rows, so
that the report's page, about 1,200 pixels wide, shows each panel readably)."""


def _scatter_figure(result: EvaluationResult, seed: int, subgroup: str, condition: str) -> Figure:
    """One predicted-vs-measured panel per model that covers ``condition``, four a row.

    The panels share their axes, named briefly at the grid's edges (the unit in the title;
    the replicate's panel, one half of the cells against the other, names its own).
    """
    rows = result.changes[
        (result.changes["seed"] == seed) & (result.changes["condition"] == condition)
    ]
    models = [m for m in result.models if m in set(rows["model"])]
    n_rows = -(-len(models) // SCATTER_COLUMNS)
    n_columns = min(len(models), SCATTER_COLUMNS)
    figure = Figure(figsize=(2.6 * n_columns + 0.4, 2.8 * n_rows + 0.2), layout="constrained")
    grid = np.atleast_1d(figure.subplots(n_rows, n_columns, sharex=True, sharey=True))
    axes = grid.ravel()[: len(models)]
    for ax in grid.ravel()[len(models) :]:
        ax.set_visible(False)
    for i, (ax, model) in enumerate(zip(axes, models, strict=True)):
        part = rows[rows["model"] == model]
        predicted_vs_true(
            pd.Series(part["predicted"].to_numpy(), index=part["gene"].to_numpy()),
            pd.Series(part["measured"].to_numpy(), index=part["gene"].to_numpy()),
            ax=ax,
        )
        ax.set_title(model)
        if model == REPLICATE:  # one half of the cells against the other
            ax.set_xlabel("change in the other half")
            ax.set_ylabel("change in one half")
        else:  # short names (the unit is in the figure's title), at the grid's edges
            ax.set_xlabel("measured change" if i + SCATTER_COLUMNS >= len(models) else "")
            ax.set_ylabel("predicted change" if i % SCATTER_COLUMNS == 0 else "")
        if i + SCATTER_COLUMNS >= len(models):  # no panel below: the x axis keeps its numbers
            ax.tick_params(labelbottom=True)
    values = rows[["predicted", "measured"]].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    lim = float(np.abs(values).max()) * 1.08 if values.size and np.abs(values).max() > 0 else 1.0
    for ax in axes:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    figure.suptitle(
        f"{condition} ({subgroup}, seed {seed}): top DE genes, change over control ({UNIT})"
    )
    return figure


def report_plots(result: EvaluationResult, *, summary: pd.DataFrame | None = None) -> ReportPlots:
    """Every plot of the report, rendered as PNG.

    Parameters
    ----------
    result
        The evaluation.
    summary
        ``result.summary()`` if already computed.

    Returns
    -------
    ``bars_<metric>.png`` per evaluated metric (:func:`perturbsim.pl.metric_bars`, every
    model and the replicate), ``predicted_vs_true_<condition>.png`` for one condition per
    test subgroup (:func:`chosen_conditions`), ``history_<model>.png`` per model with a
    training history, and for models with a predictive variance
    ``uncertainty_<model>.png`` (:func:`perturbsim.pl.uncertainty_vs_error`) and
    ``calibration.png`` (:func:`perturbsim.pl.calibration_curve`).
    """
    summary = result.summary() if summary is None else summary
    plots = ReportPlots()
    coverage = result.coverage_table()
    for metric in [m for m in METRICS if m in set(summary["metric"])]:
        scored = set(summary.loc[summary["metric"] == metric, "model"])
        models = [m for m in result.models if m in scored]  # a failed run has no bar
        ax = metric_bars(summary, metric=metric, models=models, coverage=coverage)
        plots.bars[metric] = Plot(
            f"bars_{_slug(metric)}.png",
            f"{metric}: mean over seeds per model and test subgroup, whiskers the interval; "
            "k/n beside a bar (past its end, or across 0 from it): scored on k of the n test "
            "conditions only",
            _png(ax.figure),
        )
    chosen = chosen_conditions(result)
    stems = _file_stems(  # conditions and models alike: names that share a slug are told apart
        [
            *chosen["condition"],
            *result.histories.get("model", []),
            *result.uncertainty.get("model", []),
        ]
    )
    for seed, group, condition in chosen.itertuples(index=False):
        plots.scatters.append(
            Plot(
                f"predicted_vs_true_{stems[str(condition)]}.png",
                f"{condition} ({group}, seed {seed})",
                _png(_scatter_figure(result, seed, group, condition)),
            )
        )
    if not result.histories.empty:
        for model, table in result.histories.groupby("model", sort=False):
            ax = training_history(table.drop(columns="model"))
            ax.set_title(_history_title(str(model)))
            plots.histories.append(
                Plot(
                    f"history_{stems[str(model)]}.png",
                    f"{model}: training loss (and, where it has one, validation error) by epoch",
                    _png(ax.figure),
                )
            )
    if not result.uncertainty.empty:
        drawn = result.uncertainty[["uncertainty", "error_de"]].notna().all(axis=1)
        for model in dict.fromkeys(result.uncertainty.loc[drawn, "model"]):  # a point each
            ax = uncertainty_vs_error(result, model=str(model))
            plots.uncertainty.append(
                Plot(
                    f"uncertainty_{stems[str(model)]}.png",
                    f"{model}: error on the top DE genes against uncertainty, per condition",
                    _png(ax.figure),
                )
            )
        plots.uncertainty.append(
            Plot(
                "calibration.png",
                "Calibration of the predictive intervals",
                _png(calibration_curve(result).figure),
            )
        )
    return plots


def write_report(
    result: EvaluationResult, out_dir: str | Path, *, title: str = TITLE, overwrite: bool = False
) -> dict[str, Path]:
    """Write the tables, plots, ``report.md`` and ``report.html`` of an evaluation.

    Parameters
    ----------
    result
        The evaluation (:func:`perturbsim.tl.evaluate`).
    out_dir
        Folder, created if absent. Every file is written first (into a hidden folder
        inside it), then renamed into place. A folder that holds files is refused, unless
        ``overwrite`` and they are earlier results (tables, plots and reports with a
        ``settings.json``: a previous report or
        :meth:`~perturbsim.tl.EvaluationResult.write`'s tables), which are then replaced
        whole: no file of an earlier run is left to be read as this one's.
    title
        Heading of both reports, e.g. the screen's name.
    overwrite
        Replace earlier results in ``out_dir``.

    Returns
    -------
    File name -> path of every file written: the CSV tables and ``settings.json`` of
    :meth:`~perturbsim.tl.EvaluationResult.write`, the PNGs of :func:`report_plots`,
    ``report.md`` (linking them) and ``report.html`` (embedding them; see
    :func:`write_html_report`).

    Examples
    --------
    >>> import tempfile
    >>> import perturbsim as ps
    >>> result = ps.tl.evaluate(ps.ds.norman2019_subset(), models=["mean"], seeds=1)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     {"report.md", "report.html"} <= set(ps.io.write_report(result, out))
    True
    """
    _check_result(result)
    with each_warning_once():  # the tables and the pages read the same scores
        return write_results_dir(
            out_dir, partial(_write_report, result, title=title), overwrite=overwrite
        )


def _check_result(result: object) -> None:
    """Refuse what is not an evaluation, before any work (both report writers take one)."""
    if not isinstance(result, EvaluationResult):
        raise PerturbsimError(
            "result must be what perturbsim.tl.evaluate returns (an EvaluationResult), got "
            f"{type(result).__name__}"
        )


def _write_report(result: EvaluationResult, out: Path, *, title: str) -> dict[str, Path]:
    """Write the files of :func:`write_report` into the folder ``out``."""
    written = result.write_tables(out)  # write_results_dir stages the folder
    summary, calibrated = result.summary(), result.calibrated()
    plots = report_plots(result, summary=summary)
    for plot in plots:
        written[plot.file] = atomic_write(
            out / plot.file, lambda tmp, png=plot.png: tmp.write_bytes(png)
        )
    text = markdown_report(result, summary=summary, calibrated=calibrated, plots=plots, title=title)
    written["report.md"] = _write_text(text, out / "report.md")
    page = html_report(
        result,
        plots=plots,
        summary=summary,
        calibrated=calibrated,
        title=title,
        files=sorted(written),
    )
    written["report.html"] = _write_text(page, out / "report.html")
    logger.info("wrote %d files to %s", len(written), out)
    return written


def write_html_report(
    result: EvaluationResult, path: str | Path, *, title: str = TITLE, overwrite: bool = False
) -> Path:
    """Write the self-contained HTML page of an evaluation.

    The page opens with the calibrated scores of the headline metrics (models x test
    subgroups, colour-coded between the mean baseline, 0, and the split-half replicate, 1),
    then coverage, a table of raw values per metric with both anchors marked, and the plots
    of :func:`report_plots`, embedded as base64 PNG. Its CSS is inline; it has no script
    and no link to another file, so it can be opened, mailed or archived alone.

    Parameters
    ----------
    result
        The evaluation (:func:`perturbsim.tl.evaluate`).
    path
        The file; its folder is created if absent.
    title
        Heading of the page, e.g. the screen's name.
    overwrite
        Replace ``path`` (atomically) if it exists; else an existing file is refused.

    Returns
    -------
    ``path``.

    Raises
    ------
    PerturbsimError
        Before any work, if ``result`` is not an evaluation, or ``path`` is not a path, is a
        folder, exists (without ``overwrite``), or lies where nothing can be written (behind
        a file, in a folder this process may not write into).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import perturbsim as ps
    >>> result = ps.tl.evaluate(ps.ds.norman2019_subset(), models=["mean"], seeds=1)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     ps.io.write_html_report(result, Path(out) / "report.html").stat().st_size > 10_000
    True
    """
    _check_result(result)
    path = as_path("path", path)
    overwrite = check_flag("overwrite", overwrite)
    if path.is_dir():
        raise PerturbsimError(
            f"path {str(path)!r} is a folder: give the page's file name, e.g. "
            f"{str(path / 'report.html')!r} (write_report writes a folder)"
        )
    if path.exists() and not overwrite:
        raise PerturbsimError(f"{str(path)!r} already exists; pass overwrite=True to replace it")
    check_writable_place(path, "the report")
    summary = result.summary()
    page = html_report(
        result, plots=report_plots(result, summary=summary), summary=summary, title=title
    )
    return _write_text(page, path)


def markdown_report(
    result: EvaluationResult,
    *,
    summary: pd.DataFrame | None = None,
    calibrated: pd.DataFrame | None = None,
    plots: ReportPlots | None = None,
    title: str = TITLE,
) -> str:
    """The Markdown text of the report (images linked by their file names).

    Parameters
    ----------
    result
        The evaluation.
    summary, calibrated
        ``result.summary()`` and ``result.calibrated()`` if already computed.
    plots
        Plots to link (:func:`report_plots`); default: none.
    title
        Heading.

    Returns
    -------
    The page, its lines joined by newlines: the ``# title`` heading and the settings, then
    the calibrated scores, coverage, each metric's results, the metrics and the files
    written, with the sections that ``result`` and ``plots`` call for (failed runs,
    predicted-vs-measured plots, genetic interactions, uncertainty, training, run time).
    Images are linked by their file names alone (the PNGs are to lie beside the page).
    """
    summary = result.summary() if summary is None else summary
    calibrated = result.calibrated() if calibrated is None else calibrated
    plots = plots or ReportPlots()
    s = result.settings
    models, subgroups = result.models, result.subgroups
    seeds = s.get("seeds", sorted(result.coverage["seed"].unique()))
    cov = result.coverage_table().set_index(["model", "subgroup"])
    covered = {
        key: (int(row.n_covered), int(row.n_total)) for key, row in cov.iterrows()
    }  # (model, subgroup) -> covered and all test conditions
    lines = [
        f"# {title}",
        "",
        f"Screen: {s.get('n_cells', '?')} cells x {s.get('n_genes', '?')} genes, "
        f"{s.get('n_conditions', '?')} conditions (control included).  ",
        f"Split: `{s.get('split', '?')}`, {len(seeds)} seed(s): {', '.join(map(str, seeds))}.  ",
        f"Models: {', '.join(f'`{m}`' for m in models if m != REPLICATE)}.  ",
        f"DE metrics use each condition's top {s.get('n_de', '?')} non-dropout DE genes "
        "(Welch t-test against control). Truth is the measured pseudobulk mean of each test "
        f"condition{min_cells_text(s)}.",
        "",
        f"Test subgroups: {subgroups_note(lambda name: f'`{name}`')}. "
        "Each value is the mean over seeds of the per-seed mean over a subgroup's test "
        "conditions, with a 95% t-interval over seeds in brackets (none with one seed). "
        f"`{NOT_COVERED}`: the model cannot predict any condition of the subgroup; "
        f"`{UNDEFINED}`: the metric is undefined for the model (e.g. a correlation with the "
        "constant change of `no_perturb`); `(k/n)` after a value: the model was scored on "
        "k of the subgroup's n test conditions only. "
        f"`{REPLICATE}` is the screen's noise ceiling: half of each test condition's cells "
        "scored as a prediction of the other half, "
        f"{full_depth_note([m for m in METRICS if m in set(summary['metric'])])}.",
        "",
        "## Calibrated scores",
        "",
    ]
    anchored = [m for m in models if m not in (MEAN_BASELINE, REPLICATE)]
    if calibrated.empty:
        lines += [f"None: {no_calibration_reason(models, lambda name: f'`{name}`')}.", ""]
    else:
        headline = [m for m in HEADLINE_METRICS if m in set(summary["metric"])]
        undefined = undefined_metrics(calibrated, headline)
        shown = [m for m in headline if m not in undefined]
        listed = ", ".join(f"`{m}`" for m in undefined)
        lines += [
            f"`(model - {MEAN_BASELINE}) / ({REPLICATE} - {MEAN_BASELINE})` on the same "
            "conditions (each seed's margin of the model over the baseline, divided by the "
            "replicate's margin averaged over the seeds, then averaged): 0 = no better than "
            "the mean of the training perturbations, "
            "1 = as good as repeating the experiment. Its interval is the wider of the "
            "t-interval over seeds and one from the conditions scored, which holds the "
            "noise of the replicate's margin itself (the same split of each condition's "
            "cells in every seed) and how the model's gain follows it; none with one seed. "
            "Undefined where the "
            "replicate is not "
            "clearly better than the baseline on the conditions scored (its mean margin not "
            "more than one standard error above 0, or one condition). The replicate is a "
            "split-half estimate of repeating the experiment at full depth: a model "
            "predicting from many cells of other conditions (a pair from its measured "
            "singles) can score above 1. Its top DE genes are ranked on the half it is "
            "scored against, as the models' are on the data they are scored against (genes "
            "ranked on both halves would favour the noise the halves share), so from half "
            "the cells they are noisier than the models': a rough, understated ceiling, "
            "which the baseline passes on some conditions.",
            "",
        ]
        if shown:
            lines += [
                _summary_table(
                    calibrated, shown, anchored, subgroups, covered, raw=False, metric_column=True
                ),
                "",
            ]
        if undefined:
            lines += [f"Not shown, undefined for every model and subgroup: {listed}.", ""]
    lines += [
        "## Coverage",
        "",
        "Test conditions each model could predict (covered / total, summed over seeds). "
        "Models are only scored on what they cover.",
        "",
    ]
    rows = []
    for model in models:
        cells = []
        for group in subgroups:
            if (model, group) in cov.index:
                c = cov.loc[(model, group)]
                cells.append(f"{int(c['n_covered'])} / {int(c['n_total'])}")
            else:
                cells.append("0 / 0")
        rows.append([f"`{model}`", *cells])
    lines += [_markdown_table(["model", *subgroups], rows), ""]

    if not result.failures.empty:
        lines += [
            "**Failed runs** (skipped: the model has no scores for these seeds):",
            "",
            _markdown_table(
                ["model", "seed", "stage", "error"],
                [
                    [f"`{r.model}`", r.seed, r.stage, r.error]
                    for r in result.failures.itertuples(index=False)
                ],
            ),
            "",
        ]

    duel = head_to_head_table(result)
    if not duel.empty:
        lines += ["## Head to head", "", HEAD_TO_HEAD_NOTE, ""]
        rows = [[f"`{r[0]}`", f"`{r[1]}`", *r[2:]] for r in duel.itertuples(index=False)]
        lines += [_markdown_table(list(duel.columns), rows), ""]

    lines += ["## Results", ""]
    for metric in [m for m in METRICS if m in set(summary["metric"])]:
        info = METRICS[metric]
        lines += [f"### {metric}", "", f"{info.description} ({info.best} is better).", ""]
        if metric in plots.bars:
            lines += [f"![{metric}]({plots.bars[metric].file})", ""]
        lines += [_summary_table(summary, [metric], models, subgroups, covered), ""]

    if plots.scatters:
        lines += [
            "## Predicted vs measured change",
            "",
            "Change over control of a condition's top DE genes, predicted (y) against "
            "measured (x), one panel per model that covers the condition; the dashed line "
            "is a perfect prediction (cf. GEARS, Fig. 2g).",
            "",
        ]
        for plot in plots.scatters:
            lines += [f"**{plot.caption}**", "", f"![{plot.caption}]({plot.file})", ""]

    gi = gi_precision_table(result)
    if not gi.empty:
        lines += ["## Genetic interactions", "", gi_note(result), ""]
        rows = [[f"`{r[0]}`", *r[1:]] for r in gi.itertuples(index=False)]
        lines += [_markdown_table(["model", *gi.columns[1:]], rows), ""]

    trust = uncertainty_table(result)
    if not trust.empty:
        lines += ["## Uncertainty", "", UNCERTAINTY_NOTE, ""]
        rows = [[f"`{r[0]}`", *r[1:]] for r in trust.itertuples(index=False)]
        lines += [_markdown_table(["model", *trust.columns[1:]], rows), ""]
        verdicts = calibration_verdicts(result)
        lines += [*(f"- {verdict}." for verdict in verdicts), ""] if verdicts else []
        lines += [f"![{plot.caption}]({plot.file})" for plot in plots.uncertainty]
        lines += [""]

    if plots.histories:
        lines += ["## Training", ""]
        lines += [f"![{plot.caption}]({plot.file})" for plot in plots.histories]
        lines += [""]

    if not result.timings.empty:
        lines += ["## Run time", "", "Wall seconds per split seed (mean over seeds).", ""]
        t = timings_table(result)
        rows = [
            [f"`{m}`", _fmt(t.loc[m, "fit_s"]), _fmt(t.loc[m, "predict_s"])]
            for m in models
            if m in t.index
        ]
        lines += [_markdown_table(["model", "fit + build (s)", "predict (s)"], rows), ""]

    lines += ["## Metrics", ""]
    rows = [
        [f"`{m.name}`", m.best, m.description]
        for m in METRICS.values()
        if m.name in set(summary["metric"])
    ]
    lines += [_markdown_table(["metric", "best", "description"], rows), ""]
    lines += [
        "## Files",
        "",
        "`scores.csv` (model x seed x condition x metric; the replicate's rows as measured, "
        "between half-depth means), `per_seed.csv` and `summary.csv` (the replicate mapped as "
        "above), "
        + ("" if calibrated.empty else "`calibrated.csv` (the first table), ")
        + "`coverage.csv`, `changes.csv` (predicted and measured change on DE genes), "
        "`timings.csv`"
        + (", `history.csv`" if plots.histories else "")
        + (", `failures.csv`" if not result.failures.empty else "")
        + (", `gi_precision.csv`, `gi_summary.csv`" if not result.gi.empty else "")
        + (
            ", `uncertainty.csv`, `uncertainty_summary.csv`, `calibration.csv`"
            if not result.uncertainty.empty
            else ""
        )
        + "; `settings.json` (how the evaluation ran); `report.html` (this report as one "
        "self-contained page).",
        "",
    ]
    return "\n".join(lines)


def _summary_table(
    table: pd.DataFrame,
    metrics: Sequence[str],
    models: Sequence[str],
    subgroups: Sequence[str],
    covered: Mapping[tuple[str, str], tuple[int, int]],
    *,
    raw: bool = True,
    metric_column: bool | None = None,
) -> str:
    """Markdown table of a summary-like table: a subgroup a row (per metric), a model a column.

    A metric column leads when there are several metrics, or ``metric_column`` says so
    (a table whose heading does not name its one metric). Raw values take the decimals of
    :func:`~perturbsim.io._html.raw_digits` per row, calibrated ones (``raw=False``) 3.
    ``covered``: (model, subgroup) -> its covered and all test conditions; a value scored
    on fewer (:func:`~perturbsim.io._html.scored_shares`) says on how many.
    """
    named = len(metrics) > 1 if metric_column is None else metric_column
    indexed = table.set_index(["model", "subgroup", "metric"])
    rows = []
    for metric in metrics:
        counts = scored_shares(dict(covered), table, metric)  # a correlation: not on every one
        for group in subgroups:
            found = [
                indexed.loc[(m, group, metric)] if (m, group, metric) in indexed.index else None
                for m in models
            ]
            means = [row["mean"] for row in found if row is not None]
            digits = raw_digits(means) if raw else 3
            cells = [
                _metric_cell(row, counts=counts.get((m, group), (0, 0)), digits=digits)
                for m, row in zip(models, found, strict=True)
            ]
            rows.append([f"`{metric}`", group, *cells] if named else [group, *cells])
    header = ["subgroup", *[f"`{m}`" for m in models]]
    return _markdown_table(["metric", *header] if named else header, rows)
