"""The HTML page of an evaluation report: one self-contained file to open in a browser.

:func:`html_report` renders an :class:`~perturbsim.tl.EvaluationResult` and its plots as
one page: the calibrated scores first, then coverage, the raw value of every metric beside
its two anchors (the mean baseline and the split-half replicate), and the plots. The page
needs nothing else: its CSS is inline, its plots are embedded as base64 PNG, and it has no
script and no link to another file, so it can be mailed or archived alone. Every text taken
from the evaluation (names of models, subgroups, conditions and metrics, settings, errors)
is escaped. :func:`perturbsim.io.write_html_report` writes it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from ..models._catalogue import DEFAULT_MODELS
from ..pp._gi import FEW_GENES, NORMAN_ABUNDANCE
from ..pp._pseudobulk import MIN_REPLICATE_CELLS
from ..pp._split import subgroups_note
from ..tl._metrics import HEADLINE_METRICS, METRICS, full_depth_note
from ..tl._result import MEAN_BASELINE, REPLICATE, undefined_metrics
from ..tl._uncertainty import inside_column

if TYPE_CHECKING:
    from ..tl import EvaluationResult

TITLE = "perturbsim evaluation"
"""Heading of a report unless the caller names the screen."""
NOT_COVERED = "–"
"""Table cell of a model that cannot predict any condition of a subgroup."""
UNDEFINED = "n/a"
"""Table cell of a score that is undefined (e.g. a correlation with no change)."""

SCALE = (
    (-1.0, (178, 24, 43)),
    (0.0, (247, 247, 247)),
    (1.0, (33, 102, 172)),
    (2.0, (5, 48, 97)),
)
"""Colour stops of calibrated scores (value, RGB): red below the baseline, white at the
baseline, blue at the replicate, dark blue beyond; values outside take the end colours."""
PALE = 0.7
"""Share of white mixed into the colour of a calibrated score whose interval spans both
anchors (neither the seeds nor the conditions scored, the replicate's noise included,
tell the model apart from either)."""


def _code(name: str) -> str:
    """``name`` as HTML code (escaped)."""
    return f"<code>{escape(name)}</code>"


@dataclass(frozen=True)
class Plot:
    """One plot of a report, rendered once as PNG.

    Attributes
    ----------
    file
        File name of the PNG beside ``report.md``.
    caption
        One line saying what the plot shows.
    png
        The image.
    """

    file: str
    caption: str
    png: bytes


@dataclass(frozen=True)
class ReportPlots:
    """The plots of a report, by the section that shows them.

    Attributes
    ----------
    bars
        Metric -> bar chart of its mean per model and subgroup.
    scatters
        Predicted against measured change of chosen conditions.
    histories
        Training histories.
    uncertainty
        Error against uncertainty per model with a predictive variance, and the
        calibration curve of their intervals.
    """

    bars: dict[str, Plot] = field(default_factory=dict)
    scatters: list[Plot] = field(default_factory=list)
    histories: list[Plot] = field(default_factory=list)
    uncertainty: list[Plot] = field(default_factory=list)

    def __iter__(self) -> Iterator[Plot]:
        yield from self.bars.values()
        yield from self.scatters
        yield from self.histories
        yield from self.uncertainty


class _Score(NamedTuple):
    """One row of a summary table, as :meth:`EvaluationResult.summary` returns it."""

    mean: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_conditions: int


Shares = dict[tuple[str, str], tuple[int, int]]
"""``(model, subgroup)`` -> the test conditions it covered and the subgroup's, over seeds."""

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1d232a; margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 34px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #dde3ea; }
h3 { font-size: 16px; margin: 26px 0 4px; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
p { margin: 6px 0; max-width: 92ch; }
.settings { color: #45505c; }
nav { margin: 10px 0 0; font-size: 14px; }
nav a { color: #2166ac; margin-right: 14px; text-decoration: none; }
.note { color: #45505c; font-size: 14px; }
table { border-collapse: collapse; margin: 10px 0 6px; font-size: 14px; }
th, td { padding: 5px 10px; border: 1px solid #dde3ea; }
thead th { background: #eef2f6; font-weight: 600; text-align: center; }
tbody th { text-align: left; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.empty { color: #8a949e; text-align: center; }
td .share { font-size: 11px; opacity: 0.75; }
tr.metric th { background: #f6f8fa; font-weight: 600; text-align: left; padding-top: 9px; }
tr.metric th span { font-weight: 400; color: #45505c; }
tr.baseline { background: #f6f8fa; }
tr.ceiling { background: #fff8e1; font-style: italic; }
tr.ceiling th, tr.ceiling td { border-top: 2px dashed #c9a227; }
.tag { display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 8px;
       font: 600 11px/17px system-ui, sans-serif; font-style: normal; vertical-align: 1px; }
.tag.baseline { background: #dde3ea; color: #45505c; }
.tag.ceiling { background: #f3dd8c; color: #5c4a00; }
td.best { font-weight: 700; }
td.partial { background: #fff3e0; }
td.none { color: #8a949e; background: #f6f8fa; }
.legend { display: flex; align-items: center; gap: 14px; flex-wrap: wrap; margin: 8px 0 4px;
          font-size: 13px; color: #45505c; }
.legend .bar { width: 260px; height: 14px; border: 1px solid #c5ccd3; }
.legend .ticks { display: flex; justify-content: space-between; width: 262px; font-size: 12px; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eef2f6; }
figcaption { font-size: 13px; color: #45505c; }
details { margin: 10px 0; }
summary { cursor: pointer; color: #2166ac; }
"""


def _colour(value: float, *, pale: bool = False) -> tuple[str, str]:
    """Background and text colour of a calibrated score on :data:`SCALE`.

    ``pale`` mixes the background with :data:`PALE` parts of white.
    """
    stops = np.array([s[0] for s in SCALE])
    rgb = [float(np.interp(value, stops, [s[1][i] for s in SCALE])) for i in range(3)]
    if pale:
        rgb = [c + PALE * (255 - c) for c in rgb]
    luminance = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255
    background = "#" + "".join(f"{round(c):02x}" for c in rgb)
    return background, "#fff" if luminance < 0.5 else "#1d232a"


def _gradient() -> str:
    """CSS gradient of :data:`SCALE`, for the legend."""
    low, high = SCALE[0][0], SCALE[-1][0]
    stops = ", ".join(f"{_colour(v)[0]} {100 * (v - low) / (high - low):.0f}%" for v, _ in SCALE)
    return f"linear-gradient(to right, {stops})"


def _scores(table: pd.DataFrame) -> dict[tuple[str, str, str], _Score]:
    """Rows of a summary table by ``(model, subgroup, metric)``."""
    return {
        (r.model, r.subgroup, r.metric): _Score(
            r.mean, r.ci_low, r.ci_high, r.n_seeds, r.n_conditions
        )
        for r in table.itertuples(index=False)
    }


def number_text(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals; one that rounds to zero is ``0``, never ``-0``.

    Examples
    --------
    >>> number_text(-0.0004, 3), number_text(-0.25, 2)
    ('0.000', '-0.25')
    """
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


RAW_DIGITS = (3, 6)
"""Fewest and most decimals of a raw value in the reports (:func:`raw_digits`)."""


def raw_digits(means: Iterable[float]) -> int:
    """Decimals that show the typical raw value of a table row to two significant figures.

    Three, or more (up to six) where the median of the finite, non-zero ``|means|`` is
    below 0.1: on a screen of weak effects every mean squared error reads ``0.000`` at
    three decimals.

    Examples
    --------
    >>> raw_digits([0.5, 0.04]), raw_digits([0.0004, 0.006, 0.002]), raw_digits([])
    (3, 4, 3)
    """
    values = np.abs(np.asarray(list(means), dtype=float))
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return RAW_DIGITS[0]
    wanted = 1 - int(np.floor(np.log10(np.median(values))))
    return int(np.clip(wanted, *RAW_DIGITS))


def _interval(score: _Score, digits: int) -> str:
    """``mean [low, high]``; the mean alone without an interval; ``n/a`` without a mean.

    Never ``mean ± half-width``: an interval clipped to the metric's range is not symmetric.
    """
    if not np.isfinite(score.mean):
        return UNDEFINED
    text = number_text(score.mean, digits)
    if not np.isfinite(score.ci_low):
        return text
    return f"{text} [{number_text(score.ci_low, digits)}, {number_text(score.ci_high, digits)}]"


def _td(
    text: str, *, classes: str = "num", style: str = "", title: str = "", share: str = ""
) -> str:
    """A table cell of ``text``, then ``share`` (``"k/n"``: scored on part of the subgroup)."""
    attributes = f' class="{classes}"'
    if style:
        attributes += f' style="{escape(style)}"'
    if title:
        attributes += f' title="{escape(title)}"'
    mark = f' <span class="share">{escape(share)}</span>' if share else ""
    return f"<td{attributes}>{escape(text)}{mark}</td>"


def _model_header(model: str) -> str:
    """Row header of a model; the anchors carry a tag."""
    tag = {
        MEAN_BASELINE: '<span class="tag baseline">baseline</span>',
        REPLICATE: '<span class="tag ceiling">ceiling</span>',
    }.get(model, "")
    return f"<th>{escape(model)}{tag}</th>"


def _row_class(model: str) -> str:
    return {MEAN_BASELINE: ' class="baseline"', REPLICATE: ' class="ceiling"'}.get(model, "")


def _score_rows(
    scores: dict[tuple[str, str, str], _Score],
    metric: str,
    models: Sequence[str],
    subgroups: Sequence[str],
    shares: Shares,
    cell: Callable[[_Score, bool, str, int], str],
    *,
    better: Literal["higher", "lower"] | None,
    digits: Callable[[list[float]], int],
) -> list[str]:
    """Table rows of one metric, a model a row and a subgroup a column.

    ``cell(score, best, share, decimals)`` renders a finite score, ``decimals`` being
    ``digits`` of the column's means; ``best`` marks the models of a column with the best
    mean at those decimals (each of those tied for it there, as the cells read) among the
    models scored on all its conditions (a mean over fewer is of other conditions),
    ``better`` being the best direction (none: no mark; the replicate does not compete);
    ``share`` is ``"k/n"`` when the model was scored on ``k`` of the subgroup's ``n`` test
    conditions (``shares``), else empty. A missing or undefined score reads
    :data:`NOT_COVERED` when the model covers no condition of the subgroup, else
    :data:`UNDEFINED`.
    """
    pick = max if better == "higher" else min
    best: dict[str, set[str]] = {}
    decimals: dict[str, int] = {}
    for group in subgroups:
        means = {m: scores[(m, group, metric)].mean for m in models if (m, group, metric) in scores}
        decimals[group] = digits(list(means.values()))
        finite = {
            m: v
            for m, v in means.items()
            if m != REPLICATE and np.isfinite(v) and _all_scored(shares, m, group)
        }
        if better and len(finite) > 1:
            shown = {m: float(number_text(v, decimals[group])) for m, v in finite.items()}
            top = pick(shown.values())
            best[group] = {m for m, v in shown.items() if v == top}
    rows = []
    for model in models:
        cells = []
        for group in subgroups:
            score = scores.get((model, group, metric))
            n_covered, n_total = shares.get((model, group), (0, 0))
            share = f"{n_covered}/{n_total}" if 0 < n_covered < n_total else ""
            if score is not None and np.isfinite(score.mean):
                cells.append(cell(score, model in best.get(group, ()), share, decimals[group]))
            else:
                empty = UNDEFINED if n_covered else NOT_COVERED
                cells.append(_td(empty, classes="empty"))
        rows.append(f"<tr{_row_class(model)}>{_model_header(model)}{''.join(cells)}</tr>")
    return rows


def scored_shares(shares: Shares, table: pd.DataFrame, metric: str) -> Shares:
    """``shares`` narrowed to the conditions ``metric`` was scored on, by its rows of ``table``.

    ``table``: a summary-like table (``model``, ``subgroup``, ``metric``, ``mean``,
    ``n_conditions``: the conditions the metric was finite on over seeds). A correlation
    is undefined on a condition predicted without change (and a calibrated score where an
    anchor is), so a model can be scored on fewer conditions than it covers. Where its
    mean is undefined the coverage stands (the cell says why).
    """
    narrowed = dict(shares)
    rows = table[(table["metric"] == metric) & np.isfinite(table["mean"].astype(float))]
    for row in rows.itertuples(index=False):
        key = (row.model, row.subgroup)
        if key in shares:
            covered, total = shares[key]
            narrowed[key] = (min(covered, int(row.n_conditions)), total)
    return narrowed


def _all_scored(shares: Shares, model: str, group: str) -> bool:
    """Whether ``model`` was scored on every test condition of ``group`` (``shares``)."""
    n_covered, n_total = shares.get((model, group), (0, 0))
    return n_covered == n_total


def _title(score: _Score, share: str) -> str:
    part = f"; scored on {share.replace('/', ' of ')} test conditions only" if share else ""
    return f"{score.n_seeds} seed(s), {score.n_conditions} condition scores{part}"


def _calibrated_cell(score: _Score, best: bool, share: str, digits: int) -> str:
    undecided = bool(score.ci_low <= 0 and score.ci_high >= 1)  # False without an interval
    background, colour = _colour(score.mean, pale=undecided)
    note = "; the interval spans both anchors" if undecided else ""
    return _td(
        _interval(score, digits),
        classes="num best" if best else "num",
        style=f"background:{background};color:{colour}",
        title=_title(score, share) + note,
        share=share,
    )


def _raw_cell(score: _Score, best: bool, share: str, digits: int) -> str:
    return _td(
        _interval(score, digits),
        classes="num best" if best else "num",
        title=_title(score, share),
        share=share,
    )


def _metric_heading(metric: str) -> str:
    """Name and description of a metric (its calibrated score is better higher, always)."""
    info = METRICS.get(metric)
    description = f" <span>{escape(info.description)}</span>" if info else ""
    return f"{escape(metric)}{description}"


def _table(header: Sequence[str], body: Sequence[str], *, classes: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead>' + "".join(body) + "</table>"


def _calibrated_table(
    calibrated: pd.DataFrame,
    metrics: Sequence[str],
    models: Sequence[str],
    subgroups: Sequence[str],
    shares: Shares,
) -> str:
    """Calibrated scores of ``metrics``: one block of rows per metric."""
    scores = _scores(calibrated)
    span = len(subgroups) + 1
    body = [
        f'<tbody><tr class="metric"><th colspan="{span}">{_metric_heading(metric)}</th></tr>'
        + "".join(
            _score_rows(
                scores,
                metric,
                models,
                subgroups,
                scored_shares(shares, calibrated, metric),
                _calibrated_cell,
                better=None,
                digits=lambda _: 2,
            )
        )
        + "</tbody>"
        for metric in metrics
    ]
    return _table(["model", *subgroups], body, classes="calibrated")


def _legend() -> str:
    low, high = SCALE[0][0], SCALE[-1][0]
    ticks = "".join(f"<span>{v:g}</span>" for v in np.arange(low, high + 1))
    return (
        '<div class="legend">'
        f'<div><div class="bar" style="background:{_gradient()}"></div>'
        f'<div class="ticks">{ticks}</div></div>'
        "<div><b>0</b> = no better than the mean of the training perturbations "
        "(<code>mean</code> baseline); <b>1</b> = as good as repeating the experiment "
        "(split-half replicate); <b>below 0</b> worse than the baseline; <b>above 1</b> "
        "closer than a repeat of the measurement. Higher is better for every metric. Pale: "
        "the interval (over the seeds and the conditions scored) spans both 0 and 1: the "
        "model cannot be told from either anchor.</div></div>"
    )


def _image(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    caption = escape(plot.caption)
    return (
        f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def min_cells_text(settings: Mapping[str, Any]) -> str:
    """``" of at least N cells (fewer: left out)"``, from the settings of an evaluation.

    Empty for an evaluation saved before ``min_cells`` was recorded.

    Examples
    --------
    >>> min_cells_text({"min_cells": 4}), min_cells_text({})
    (' of at least 4 cells (fewer: left out)', '')
    """
    n = settings.get("min_cells")
    return "" if n is None else f" of at least {n} cells (fewer: left out)"


def _settings(result: EvaluationResult) -> str:
    s: dict[str, Any] = result.settings
    seeds = s.get("seeds", sorted(result.coverage["seed"].unique()))
    models = [m for m in result.models if m != REPLICATE]
    parts = [
        f"Screen: {escape(str(s.get('n_cells', '?')))} cells × "
        f"{escape(str(s.get('n_genes', '?')))} genes, "
        f"{escape(str(s.get('n_conditions', '?')))} conditions (control included)",
        f"split <code>{escape(str(s.get('split', '?')))}</code> over {len(seeds)} seed(s) "
        f"({escape(', '.join(map(str, seeds)))})",
        "models " + ", ".join(map(_code, models)),
        f"DE metrics on each condition's top {escape(str(s.get('n_de', '?')))} DE genes",
        *([f"test conditions{escape(min_cells_text(s))}"] if min_cells_text(s) else []),
    ]
    return '<p class="settings">' + " · ".join(parts) + ".</p>"


def _how_to_read(metrics: Sequence[str]) -> str:
    """The "How to read this" paragraph, the replicate's mapping said for ``metrics``."""
    return (
        "Models were trained on the training perturbations of each split and predict the mean "
        f"expression of held-out ones, grouped in subgroups ({subgroups_note(_code)}). A "
        "score is the mean over a subgroup's test conditions, averaged over split seeds, with a "
        "95% t-interval over seeds (none with one seed). Two anchors stand beside the models: "
        "the <code>mean</code> baseline predicts the mean change of the training perturbations "
        "for every perturbation, and the <code>replicate</code>, the screen's noise ceiling, "
        "scores half of each test condition's cells as a prediction of the other half "
        f"(a condition of fewer than {MIN_REPLICATE_CELLS} cells has no halves to compare: "
        "the replicate alone leaves it out), "
        f"{escape(full_depth_note(metrics))}. The calibrated score is "
        "<code>(model − mean) / (replicate − mean)</code> on the same conditions, the span "
        "<code>replicate − mean</code> pooled over seeds, its interval the wider of the "
        "interval over seeds and one from the conditions scored, which holds the noise of "
        "that span (one split of each condition's cells, the same in every seed) and how "
        "the model's gain follows it (none with one seed). "
        f"{NOT_COVERED}: the model cannot predict any condition of the subgroup; {UNDEFINED}: "
        "the score is undefined (e.g. a correlation with the constant change of "
        "<code>no_perturb</code>, or a replicate not clearly better than the baseline on the "
        "conditions scored, its mean margin not more than one standard error above 0 or "
        "measured on one condition: nothing reproducible enough to calibrate against). Bold "
        "in the tables of raw values: the best model of a column (each of those tied for "
        "it at the digits shown) among those scored on all its conditions, the replicate "
        "aside. Hover over a cell for its numbers of "
        "seeds and conditions."
    )


def no_calibration_reason(models: Sequence[str], code: Callable[[str], str]) -> str:
    """Why an evaluation of ``models`` has no calibrated score (names written by ``code``).

    Examples
    --------
    >>> no_calibration_reason(["mean", "replicate"], lambda name: f"`{name}`")
    'this evaluation ran no model but the anchors, which they place models between'
    """
    missing = [a for a in (MEAN_BASELINE, REPLICATE) if a not in models]
    if missing:
        return f"they need both anchors, and this evaluation lacks {', '.join(map(code, missing))}"
    if all(m in (MEAN_BASELINE, REPLICATE) for m in models):
        return "this evaluation ran no model but the anchors, which they place models between"
    return "no score of its models had two finite anchors that set them apart"


def _calibrated_section(
    calibrated: pd.DataFrame,
    metrics: Sequence[str],
    models: Sequence[str],
    subgroups: Sequence[str],
    shares: Shares,
) -> list[str]:
    """The headline metrics' calibrated scores, those of the other metrics folded."""
    section = ['<section id="calibrated"><h2>Calibrated scores</h2>']
    if calibrated.empty:
        reason = no_calibration_reason(models, _code)
        return [*section, f'<p class="note">No calibrated scores: {reason}.</p></section>']
    models = [m for m in models if m not in (MEAN_BASELINE, REPLICATE)]
    undefined = undefined_metrics(calibrated, metrics)  # scored, calibrated nowhere
    metrics = [m for m in metrics if m not in undefined]
    headline = [m for m in HEADLINE_METRICS if m in metrics] or metrics
    others = [m for m in metrics if m not in headline]
    if headline:
        section += [
            '<p class="note">Each model between two anchors, per test subgroup: mean over '
            "split seeds [95% interval]; a small <i>k/n</i> beside a score: the model was "
            "scored on only <i>k</i> of the subgroup's <i>n</i> test conditions (those it "
            "could predict, where the score and its anchors are defined), and few conditions "
            "can land a score far from both anchors.</p>",
            _legend(),
            _calibrated_table(calibrated, headline, models, subgroups, shares),
        ]
    if others:
        section.append(
            "<details><summary>Calibrated scores of the other metrics</summary>"
            + _calibrated_table(calibrated, others, models, subgroups, shares)
            + "</details>"
        )
    if undefined:
        names = ", ".join(map(_code, undefined))
        section.append(
            f'<p class="note">Not shown, undefined for every model and subgroup: {names}.</p>'
        )
    return [*section, "</section>"]


def _metrics_section(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    models: Sequence[str],
    subgroups: Sequence[str],
    shares: Shares,
    bars: dict[str, Plot],
) -> list[str]:
    """A table of raw values per metric, anchors included, and its bar chart."""
    scores = _scores(summary)
    section = [
        '<section id="metrics"><h2>Every metric</h2>',
        '<p class="note">Raw values: mean over split seeds [95% interval, clipped to what the '
        "metric can take]. The <code>replicate</code> row is the ceiling a prediction can "
        "hope for, the <code>mean</code> row the baseline it has to beat.</p>",
    ]
    for metric in metrics:
        info = METRICS[metric]
        section += [
            f'<h3 id="metric-{escape(metric)}">{escape(metric)}</h3>',
            f'<p class="note">{escape(info.description)} ({escape(info.best)} is better).</p>',
            _table(
                ["model", *subgroups],
                _score_rows(
                    scores,
                    metric,
                    models,
                    subgroups,
                    scored_shares(shares, summary, metric),
                    _raw_cell,
                    better=info.best,
                    digits=raw_digits,
                ),
                classes="raw",
            ),
        ]
        if metric in bars:
            section.append(_image(bars[metric]))
    return [*section, "</section>"]


def _nav(plots: ReportPlots, *, head_to_head: bool, interactions: bool, uncertainty: bool) -> str:
    """Links to the page's sections, in their order on the page."""
    links = [
        ("calibrated", "Calibrated scores"),
        ("how-to-read", "How to read this"),
        ("coverage", "Coverage"),
    ]
    if head_to_head:
        links.append(("head-to-head", "Head to head"))
    links.append(("metrics", "Every metric"))
    if plots.scatters:
        links.append(("scatters", "Predicted vs measured"))
    if plots.histories:
        links.append(("training", "Training"))
    if interactions:
        links.append(("interactions", "Genetic interactions"))
    if uncertainty:
        links.append(("uncertainty", "Uncertainty"))
    return "<nav>" + "".join(f'<a href="#{key}">{text}</a>' for key, text in links) + "</nav>"


def html_report(
    result: EvaluationResult,
    *,
    plots: ReportPlots | None = None,
    summary: pd.DataFrame | None = None,
    calibrated: pd.DataFrame | None = None,
    title: str = TITLE,
    files: Sequence[str] = (),
) -> str:
    """The HTML page of an evaluation: calibrated scores, coverage, every metric, plots.

    Parameters
    ----------
    result
        The evaluation (:func:`perturbsim.tl.evaluate`).
    plots
        Plots to embed: each metric's bar chart below its table, then the
        predicted-vs-measured scatters and the training histories; default: none.
    summary, calibrated
        ``result.summary()`` and ``result.calibrated()`` if already computed.
    title
        Heading and ``<title>`` of the page.
    files
        Names of the files written beside the page (tables, plots), listed at its end as
        text, not links.

    Returns
    -------
    A complete HTML5 document. Its first table holds the calibrated scores of the
    :data:`HEADLINE_METRICS` (the other metrics' follow, folded); without an anchor, a note
    says which one the evaluation lacks.

    Examples
    --------
    >>> import perturbsim as ps
    >>> result = ps.tl.evaluate(ps.ds.norman2019_subset(), models=["mean"], seeds=1)
    >>> html_report(result).startswith("<!DOCTYPE html>")
    True
    """
    plots = plots or ReportPlots()
    summary = result.summary() if summary is None else summary
    calibrated = result.calibrated() if calibrated is None else calibrated
    models, subgroups = result.models, result.subgroups
    coverage = result.coverage_table()
    shares = _shares(coverage)
    metrics = [m for m in METRICS if m in set(summary["metric"])]
    duel = head_to_head_table(result)
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        _settings(result),
        _nav(
            plots,
            head_to_head=not duel.empty,
            interactions=not result.gi.empty,
            uncertainty=not result.uncertainty.empty,
        ),
        *_calibrated_section(calibrated, metrics, models, subgroups, shares),
        '<section id="how-to-read"><h2>How to read this</h2>',
        f"<p>{_how_to_read(metrics)}</p></section>",
        '<section id="coverage"><h2>Coverage</h2>',
        '<p class="note">Test conditions each model could predict (covered / total, summed '
        "over seeds). Models are scored on what they cover only.</p>",
        _coverage_table(shares, models, subgroups),
    ]
    if not result.failures.empty:
        page += [
            "<h3>Failed runs</h3>",
            '<p class="note">Skipped: the model has no scores for these seeds.</p>',
            _plain_table(result.failures, ["model", "seed", "stage", "error"]),
        ]
    page.append("</section>")
    if not duel.empty:
        page += _table_section("head-to-head", "Head to head", HEAD_TO_HEAD_NOTE, duel)
    page += _metrics_section(summary, metrics, models, subgroups, shares, plots.bars)
    if plots.scatters:
        page += [
            '<section id="scatters"><h2>Predicted vs measured change</h2>',
            '<p class="note">Change over control of a condition\'s top DE genes, predicted '
            "(y) against measured (x), one panel per model that covers the condition; the "
            "dashed line is a perfect prediction.</p>",
            *map(_image, plots.scatters),
            "</section>",
        ]
    if plots.histories:
        page += [
            '<section id="training"><h2>Training</h2>',
            *map(_image, plots.histories),
            "</section>",
        ]
    gi = gi_precision_table(result)
    if not gi.empty:
        page += _table_section("interactions", "Genetic interactions", gi_note(result), gi)
    trust = uncertainty_table(result)
    if not trust.empty:
        page += [
            '<section id="uncertainty"><h2>Uncertainty</h2>',
            f'<p class="note">{escape(UNCERTAINTY_NOTE)}</p>',
            _plain_table(trust, list(trust.columns)),
            *(f'<p class="note">{escape(v)}.</p>' for v in calibration_verdicts(result)),
            *map(_image, plots.uncertainty),
            "</section>",
        ]
    if not result.timings.empty:
        timings = timings_table(result)
        page += [
            "<section><h2>Run time</h2>",
            '<p class="note">Wall seconds per split seed, mean over seeds; fit includes '
            "building the model and its graphs.</p>",
            _plain_table(
                pd.DataFrame(
                    {
                        "model": timings.index,
                        "fit + build (s)": [number_text(v, 3) for v in timings["fit_s"]],
                        "predict (s)": [number_text(v, 3) for v in timings["predict_s"]],
                    }
                ),
                ["model", "fit + build (s)", "predict (s)"],
            ),
            "</section>",
        ]
    if files:
        names = ", ".join(map(_code, files))
        page.append(f'<p class="note">Written beside this page: {names}.</p>')
    page += ["</main></body></html>", ""]
    return "\n".join(page)


def _table_section(key: str, title: str, note: str, table: pd.DataFrame) -> list[str]:
    """A section of the page holding one note and one plain table."""
    return [
        f'<section id="{key}"><h2>{escape(title)}</h2>',
        f'<p class="note">{escape(note)}</p>',
        _plain_table(table, list(table.columns)),
        "</section>",
    ]


def _shares(coverage: pd.DataFrame) -> Shares:
    """``(model, subgroup)`` -> (covered, total) test conditions, from ``coverage_table()``."""
    return {
        (r.model, r.subgroup): (int(r.n_covered), int(r.n_total))
        for r in coverage.itertuples(index=False)
    }


def _coverage_table(shares: Shares, models: Sequence[str], subgroups: Sequence[str]) -> str:
    rows = []
    for model in models:
        cells = []
        for group in subgroups:
            covered, total = shares.get((model, group), (0, 0))
            state = "num none" if covered == 0 else "num partial" if covered < total else "num"
            cells.append(_td(f"{covered} / {total}", classes=state))
        rows.append(f"<tr{_row_class(model)}>{_model_header(model)}{''.join(cells)}</tr>")
    return _table(["model", *subgroups], rows, classes="coverage")


GI_NOTE = (
    "Precision@k of each interaction subtype among the test pairs (Norman's model of the "
    "pair on its singles; subtypes by the GEARS paper's thresholds): of the k pairs a model "
    "ranks most of a subtype, the share truly of it; mean over seeds, the expectation of a "
    "random ranking of the same pairs in brackets, the pairs compared per seed (k is at "
    "most that many: a seed with k pairs or fewer ranks them all, at the random precision) "
    "and the genes each pair is fitted on (those whose mean control expression exceeds "
    f"Norman's {NORMAN_ABUNDANCE:g}, or every expressed gene where fewer than {FEW_GENES} do). "
    "The additive baseline predicts every pair as the sum of its singles (c1 = c2 = 1, fit "
    "correlation 1): its rankings of magnitude and fit are all ties, so it scores what a "
    "random ranking does."
)
"""What every table of :func:`gi_precision_table` means (:func:`gi_note` adds its truth)."""
GI_TRUTH_NOTES = {
    "simulated": "The truth is the simulator's noiseless profiles of each pair and its "
    "singles, scored the same way. The row measured (when some test pairs have measured "
    "singles) scores the test pairs' own measured means against it: the screen's noise "
    "ceiling, how well the screen itself, at its depth, ranks the true interactions.",
    "measured": "The truth is the test pairs' measured means (each pair and its singles), a "
    "noisy measurement; pairs whose singles were not measured, and pairs that change no "
    "gene significantly (no DE gene, as perturbsim measured-gi leaves them out), are left "
    "out. The row "
    "replicate, where present, ranks one random half of the cells' means against the other "
    "half's: how well the measurement ranks its own interactions, a rough ceiling, "
    "understated (half the cells on each side). Where it is near random, the truth's "
    "subtypes are mostly noise.",
}
"""What the truth of the interactions is, by the ``truth`` column of ``result.gi``."""


def gi_note(result: EvaluationResult) -> str:
    """:data:`GI_NOTE` and what the truth of ``result``'s interactions is."""
    truths = [GI_TRUTH_NOTES[t] for t in dict.fromkeys(result.gi["truth"])]
    return " ".join([GI_NOTE, *truths])


UNCERTAINTY_NOTE = (
    "For models whose predictions carry a predictive variance. Spearman: correlation "
    "across the test conditions of the model's uncertainty score with its mean squared "
    "error (on the top DE genes; on all genes): positive means the model is more uncertain "
    "where it is more wrong. Inside 50 % / 90 %: share of the measured changes inside the "
    "central normal predictive intervals of that level (calibrated: 0.50 / 0.90; lower: "
    "intervals too narrow). Each figure is the mean over seeds of the seed's own, the "
    "interval over seeds in brackets; the uncertainty plots pool every seed's conditions "
    "into one correlation, and the calibration curve averages them all at once (a seed of "
    "more conditions weighs more), so theirs differ from these a little."
)


def timings_table(result: EvaluationResult) -> pd.DataFrame:
    """Wall seconds per split seed of each model's fit (with building) and prediction.

    Indexed by ``model`` in the evaluation's order, columns ``fit_s`` and ``predict_s``: the
    means over seeds of ``result.timings``; empty when no model was timed.
    """
    return result.timings.groupby("model", sort=False)[["fit_s", "predict_s"]].mean()


def uncertainty_table(result: EvaluationResult) -> pd.DataFrame:
    """Per model with a predictive variance: uncertainty-error correlation and calibration.

    Columns ``model`` and one per summary (``"0.42 [0.30, 0.54]"``; ``n/a`` where undefined,
    e.g. no subgroup with two conditions to rank within); empty when no model has a
    predictive variance.
    """
    summary = result.uncertainty_summary()
    if summary.empty:
        return pd.DataFrame()
    labels = {
        "spearman_error_de": "Spearman (DE)",
        "spearman_error_all": "Spearman (all)",
        "spearman_error_de_within": "Spearman within subgroups (DE)",
        "spearman_error_all_within": "Spearman within subgroups (all)",
        "inside_de_50": "inside 50 % (DE)",
        "inside_de_90": "inside 90 % (DE)",
        "inside_all_50": "inside 50 % (all)",
        "inside_all_90": "inside 90 % (all)",
    }
    rows = []
    for model, group in summary.groupby("model", sort=False):
        cells = {"model": model}
        for row in group.itertuples(index=False):
            score = _Score(row.mean, row.ci_low, row.ci_high, row.n_seeds, row.n_conditions)
            cells[labels[row.metric]] = _interval(score, 2)
        rows.append(cells)
    return pd.DataFrame(rows, columns=["model", *labels.values()])


HEAD_TO_HEAD_NOTE = (
    "The default model against each other model with a calibrated score, on the test "
    "conditions both were scored on (the calibrated table compares each with the anchors on "
    "the conditions it covers, which may differ): the default's calibrated score minus the "
    "model's, so positive means the default is better; mean over seeds with its 95 % "
    "interval (none with one seed), n/a where no shared condition is calibrated."
)


def head_to_head_table(result: EvaluationResult) -> pd.DataFrame:
    """The default against each other model on their shared conditions, headline metrics.

    Columns ``model``, ``metric`` and one per test subgroup (``"+0.12 [+0.03, +0.21]"``,
    from :meth:`~perturbsim.tl.EvaluationResult.head_to_head`); empty when the evaluation
    has no default model or no calibration.
    """
    default = DEFAULT_MODELS[0]
    if default not in result.models:
        return pd.DataFrame()
    table = result.head_to_head(default)
    table = table[table["metric"].isin(HEADLINE_METRICS)]
    if table.empty or table["mean"].isna().all():
        return pd.DataFrame()
    groups = [g for g in result.subgroups if g in set(table["subgroup"])]
    indexed = table.set_index(["model", "metric", "subgroup"])
    rows = []
    for model in dict.fromkeys(table["model"]):
        for metric in (m for m in HEADLINE_METRICS if m in set(table["metric"])):
            cells = {"model": model, "metric": metric}
            for group in groups:
                key = (model, metric, group)
                row = indexed.loc[key] if key in indexed.index else None
                cells[group] = (
                    UNDEFINED
                    if row is None
                    else difference_text(row["mean"], row["ci_low"], row["ci_high"])
                )
            rows.append(cells)
    return pd.DataFrame(rows, columns=["model", "metric", *groups])


def difference_text(mean: float, low: float, high: float) -> str:
    """A head-to-head difference, signed: ``+0.12 [+0.03, +0.21]``; ``n/a`` without a mean.

    Examples
    --------
    >>> difference_text(0.123, -0.02, 0.3), difference_text(-0.001, float("nan"), float("nan"))
    ('+0.12 [-0.02, +0.30]', '+0.00')
    """
    if not np.isfinite(mean):
        return UNDEFINED

    def signed(value: float) -> str:
        return f"{round(value, 2) + 0.0:+.2f}"  # -0.001 reads +0.00, never -0.00

    text = signed(mean)
    return text if not np.isfinite(low) else f"{text} [{signed(low)}, {signed(high)}]"


CALIBRATION_SLACK = 0.05
"""How far a share inside the intervals may stand from its level before
:func:`calibration_verdicts` calls the intervals too narrow or wide."""


def calibration_verdicts(result: EvaluationResult) -> list[str]:
    """A sentence per model and gene set whose intervals miss their level, plainly.

    A share inside the 50 % or 90 % intervals misses when it stands more than
    :data:`CALIBRATION_SLACK` from its level and its interval over seeds (where there is
    one: two seeds or more) leaves the level out. Misses all below their levels (at one
    level or both) say the intervals are too narrow; all above, too wide; one each way, not
    normal in shape. The sentence gives the shares that miss. Empty when every share holds
    its level, or no model has a variance.
    """
    summary = result.uncertainty_summary()
    verdicts = []
    for model, group in summary.groupby("model", sort=False):
        rows = group.set_index("metric")
        for genes, named in (("de", "the top DE genes"), ("all", "all genes")):
            shares, sides = [], set()
            for level in (0.5, 0.9):
                mean, low, high = rows.loc[
                    inside_column(genes, level), ["mean", "ci_low", "ci_high"]
                ]
                excluded = not (np.isfinite(low) and low <= level <= high)
                if abs(mean - level) > CALIBRATION_SLACK and excluded:  # False for a NaN
                    sides.add("narrow" if mean < level else "wide")
                    shares.append(f"{mean:.2f} inside the {round(100 * level)} % intervals")
            if sides:
                verdict = f"too {sides.pop()}" if len(sides) == 1 else "not normal in shape"
                verdicts.append(f"{model}: intervals {verdict} on {named} ({', '.join(shares)})")
    return verdicts


def _precision_cell(precision: float, random: float) -> str:
    """``"0.70 (0.63)"``: precision@k and a random ranking's (``–`` where none can rank).

    A subtype no pair (or every pair) truly has, on every seed, ranks nothing:
    ``"– (none true)"``, ``"– (all true)"``.
    """
    if random == 0 or random == 1:
        return f"– ({'none' if random == 0 else 'all'} true)"
    return f"{number_text(precision, 2)} ({number_text(random, 2)})"


def _count_text(mean: float) -> str:
    """A mean count: whole as such, else with one decimal (``3``, ``2.9``, ``13.3``)."""
    return f"{mean:.0f}" if float(mean).is_integer() else f"{mean:.1f}"


def gi_precision_table(result: EvaluationResult) -> pd.DataFrame:
    """Precision@k per model (rows) and subtype (columns), ``"0.70 (0.63)"`` with random.

    A subtype no compared pair truly has, or every one has, on every seed, reads
    ``"– (none true)"`` or ``"– (all true)"``: any ranking scores the same there.

    Columns ``pairs per seed`` and ``genes``: the pairs compared and the genes each pair
    was fitted on, per seed, mean over seeds (one decimal where not whole), over the seeds
    with pairs scored: ``"2.5 (2 of 3 seeds with pairs scored)"`` where some of the
    evaluation's seeds have none (none held out, or none the model could score). Empty
    when the evaluation scored no interactions.
    """
    summary = result.gi_summary()
    if summary.empty:
        return pd.DataFrame()
    first = result.gi.groupby(["model", "seed"], sort=False)[["n_pairs", "n_genes"]].first()
    per_seed = first.groupby(level="model", sort=False).mean()
    means = summary.set_index(["model", "subtype", "metric"])["mean"]
    models = list(dict.fromkeys(summary["model"]))
    subtypes = list(dict.fromkeys(summary["subtype"]))
    cells = {
        subtype: [
            _precision_cell(
                means[(m, subtype, "precision_at_k")], means[(m, subtype, "random_precision")]
            )
            for m in models
        ]
        for subtype in subtypes
    }
    seeds = result.settings.get("seeds") or list(dict.fromkeys(result.scores.get("seed", [])))
    with_pairs = first.groupby(level="model", sort=False).size()
    pairs = [
        _count_text(per_seed.loc[m, "n_pairs"])
        + (
            f" ({with_pairs[m]} of {len(seeds)} seeds with pairs scored)"
            if with_pairs[m] < len(seeds)
            else ""
        )
        for m in models
    ]
    genes = [_count_text(per_seed.loc[m, "n_genes"]) for m in models]
    return pd.DataFrame({"model": models, "pairs per seed": pairs, "genes": genes, **cells})


def _plain_table(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    rows = [
        "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame[list(columns)].itertuples(index=False)
    ]
    return _table(columns, rows, classes="plain")
