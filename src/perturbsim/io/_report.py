"""Write an evaluation report to a directory: its tables, PNG plots and ``report.md``.

The tables and settings come from :meth:`perturbsim.tl.EvaluationResult.write`; this module
adds the plots of :mod:`perturbsim.pl` and the Markdown text that links them. Every file is
written to a temporary name in the target directory and renamed into place, so a reader
never sees a half-written file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._atomic import atomic_write
from ..pl import metric_bars, predicted_vs_true, training_history
from ..tl._metrics import METRICS
from ..tl._result import order_subgroups

if TYPE_CHECKING:
    from ..tl import EvaluationResult

logger = logging.getLogger(__name__)

NOT_COVERED = "–"
"""Table cell of a model that cannot predict a subgroup."""
UNDEFINED = "n/a"
"""Table cell of a metric that is undefined for a model (e.g. correlation with no change)."""


def _write_text(text: str, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write_png(figure: Figure, path: Path) -> Path:
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "condition"


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
    return "nan" if not np.isfinite(value) else f"{value:.3f}"


def _metric_cell(row: pd.Series | None) -> str:
    if row is None:
        return NOT_COVERED
    if not np.isfinite(row["mean"]):
        return UNDEFINED
    if np.isfinite(row["ci_low"]):
        return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return f"{row['mean']:.3f}"


def chosen_conditions(result: EvaluationResult, *, per_subgroup: int = 1) -> pd.DataFrame:
    """Conditions shown in the predicted-vs-measured plots of the report.

    From the first seed, per test subgroup, the conditions predicted by the most models;
    ties go to the largest mean absolute measured change on the DE genes (the clearest
    plots), then to the label.

    Parameters
    ----------
    result
        The evaluation.
    per_subgroup
        Conditions per subgroup.

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
        chosen += [(seed, group, c) for c in rows["condition"].head(per_subgroup)]
    return pd.DataFrame(chosen, columns=["seed", "subgroup", "condition"])


def _scatter_figure(result: EvaluationResult, seed: int, subgroup: str, condition: str) -> Figure:
    """One predicted-vs-measured panel per model that covers ``condition``."""
    rows = result.changes[
        (result.changes["seed"] == seed) & (result.changes["condition"] == condition)
    ]
    models = [m for m in result.models if m in set(rows["model"])]
    figure = Figure(figsize=(2.6 * len(models) + 0.4, 3.0), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(models), sharex=True, sharey=True))
    for ax, model in zip(axes, models, strict=True):
        part = rows[rows["model"] == model]
        predicted_vs_true(
            pd.Series(part["predicted"].to_numpy(), index=part["gene"].to_numpy()),
            pd.Series(part["measured"].to_numpy(), index=part["gene"].to_numpy()),
            ax=ax,
        )
        ax.set_title(model)
        if ax is not axes[0]:
            ax.set_ylabel("")
    values = rows[["predicted", "measured"]].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    lim = float(np.abs(values).max()) * 1.08 if values.size and np.abs(values).max() > 0 else 1.0
    for ax in axes:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    figure.suptitle(f"{condition} ({subgroup}, seed {seed}): top DE genes")
    return figure


def write_report(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the tables, plots and ``report.md`` of an evaluation into ``out_dir``.

    Parameters
    ----------
    result
        The evaluation (:func:`perturbsim.tl.evaluate`).
    out_dir
        Folder, created if absent; files of the same names are replaced.

    Returns
    -------
    File name -> path of every file written: the CSV tables and ``settings.json`` of
    :meth:`~perturbsim.tl.EvaluationResult.write`, ``bars_<metric>.png`` per metric
    (:func:`perturbsim.pl.metric_bars`), ``predicted_vs_true_<condition>.png`` for one
    condition per test subgroup (:func:`chosen_conditions`), ``history_<model>.png`` per
    model with a training history, and ``report.md`` linking the plots.

    Examples
    --------
    >>> import tempfile
    >>> import perturbsim as ps
    >>> result = ps.tl.evaluate(ps.ds.norman2019_subset(), models=["mean"], seeds=1)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     "report.md" in ps.io.write_report(result, out)
    True
    """
    out = Path(out_dir)
    written = result.write(out)
    summary = result.summary()

    metrics = [m for m in METRICS if m in set(summary["metric"])]
    bar_files: dict[str, str] = {}
    for metric in metrics:
        ax = metric_bars(summary, metric=metric, models=result.models)
        name = f"bars_{_slug(metric)}.png"
        written[name] = _write_png(ax.figure, out / name)
        bar_files[metric] = name

    scatter_files: list[tuple[str, str, str]] = []
    for seed, group, condition in chosen_conditions(result).itertuples(index=False):
        name = f"predicted_vs_true_{_slug(condition)}.png"
        written[name] = _write_png(_scatter_figure(result, seed, group, condition), out / name)
        scatter_files.append((group, condition, name))

    history_files: list[str] = []
    if not result.histories.empty:
        for model, table in result.histories.groupby("model", sort=False):
            ax = training_history(table.drop(columns="model"))
            ax.set_title(f"{model} training")
            name = f"history_{_slug(str(model))}.png"
            written[name] = _write_png(ax.figure, out / name)
            history_files.append(name)

    text = markdown_report(
        result,
        summary=summary,
        bar_files=bar_files,
        scatter_files=scatter_files,
        history_files=history_files,
    )
    written["report.md"] = _write_text(text, out / "report.md")
    logger.info("wrote %d files to %s", len(written), out)
    return written


def markdown_report(
    result: EvaluationResult,
    *,
    summary: pd.DataFrame | None = None,
    bar_files: dict[str, str] | None = None,
    scatter_files: Sequence[tuple[str, str, str]] = (),
    history_files: Sequence[str] = (),
) -> str:
    """The Markdown text of the report (images linked by relative file names).

    Parameters
    ----------
    result
        The evaluation.
    summary
        ``result.summary()`` if already computed.
    bar_files
        Metric -> PNG of its bar chart.
    scatter_files
        ``(subgroup, condition, png)`` of the predicted-vs-measured plots.
    history_files
        PNGs of training histories.
    """
    summary = result.summary() if summary is None else summary
    bar_files = bar_files or {}
    s = result.settings
    models, subgroups = result.models, result.subgroups
    seeds = s.get("seeds", sorted(result.coverage["seed"].unique()))
    lines = [
        "# perturbsim evaluation",
        "",
        f"Screen: {s.get('n_cells', '?')} cells x {s.get('n_genes', '?')} genes, "
        f"{s.get('n_conditions', '?')} conditions (control included).  ",
        f"Split: `{s.get('split', '?')}`, {len(seeds)} seed(s): {', '.join(map(str, seeds))}.  ",
        f"Models: {', '.join(f'`{m}`' for m in models)}.  ",
        f"DE metrics use each condition's top {s.get('n_de', '?')} non-dropout DE genes "
        "(Welch t-test against control). Truth is the measured pseudobulk mean of each test "
        "condition.",
        "",
        "Each value is the mean over seeds of the per-seed mean over a subgroup's test "
        "conditions, with a 95% t-interval over seeds in brackets (none with one seed). "
        f"`{NOT_COVERED}`: the model cannot predict any condition of the subgroup; "
        f"`{UNDEFINED}`: the metric is undefined for the model (e.g. a correlation with the "
        "constant change of `no_perturb`).",
        "",
        "## Coverage",
        "",
        "Test conditions each model could predict (covered / total, summed over seeds). "
        "Models are only scored on what they cover.",
        "",
    ]
    cov = result.coverage_table().set_index(["model", "subgroup"])
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

    lines += ["## Results", ""]
    indexed = summary.set_index(["model", "subgroup", "metric"])
    for metric in [m for m in METRICS if m in set(summary["metric"])]:
        info = METRICS[metric]
        lines += [f"### {metric}", "", f"{info.description} ({info.best} is better).", ""]
        if metric in bar_files:
            lines += [f"![{metric}]({bar_files[metric]})", ""]
        rows = []
        for group in subgroups:
            cells = []
            for model in models:
                key = (model, group, metric)
                cells.append(_metric_cell(indexed.loc[key] if key in indexed.index else None))
            rows.append([group, *cells])
        lines += [_markdown_table(["subgroup", *[f"`{m}`" for m in models]], rows), ""]

    if scatter_files:
        lines += [
            "## Predicted vs measured change",
            "",
            "Change over control of a condition's top DE genes, predicted (y) against "
            "measured (x), one panel per model that covers the condition; the dashed line "
            "is a perfect prediction (cf. GEARS, Fig. 2g).",
            "",
        ]
        for group, condition, name in scatter_files:
            lines += [f"**{condition}** ({group})", "", f"![{condition}]({name})", ""]

    if history_files:
        lines += ["## Training", ""]
        lines += [f"![{name}]({name})" for name in history_files]
        lines += [""]

    if not result.timings.empty:
        lines += ["## Run time", "", "Wall seconds per split seed (mean over seeds).", ""]
        t = result.timings.groupby("model", sort=False)[["fit_s", "predict_s"]].mean()
        rows = [
            [f"`{m}`", _fmt(t.loc[m, "fit_s"]), _fmt(t.loc[m, "predict_s"])]
            for m in models
            if m in t.index
        ]
        lines += [_markdown_table(["model", "fit + build (s)", "predict + score (s)"], rows), ""]

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
        "`scores.csv` (model x seed x condition x metric), `per_seed.csv`, `summary.csv`, "
        "`coverage.csv`, `changes.csv` (predicted and measured change on DE genes), "
        "`timings.csv`"
        + (", `history.csv`" if history_files else "")
        + (", `failures.csv`" if not result.failures.empty else "")
        + "; `settings.json` (how the evaluation ran).",
        "",
    ]
    return "\n".join(lines)
