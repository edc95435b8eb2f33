"""The result of an evaluation: its tables, their summaries, and writing them to files."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._atomic import atomic_write, write_results_dir
from .._checks import check_fraction, checked_table
from .._errors import PerturbsimError
from ..pp._gi import SUBTYPES
from ._intervals import mean_interval
from ._metrics import METRICS, full_depth
from ._uncertainty import UNCERTAINTY_COLUMNS, calibration_curve, uncertainty_per_seed

logger = logging.getLogger(__name__)

REPLICATE = "replicate"
"""The row of the split-half replicate, the screen's noise ceiling."""
MEAN_BASELINE = "mean"
"""The model that anchors calibrated scores at 0 (the mean of the training perturbations)."""

SUBGROUP_ORDER = ("unseen_single", "seen_single", "combo_seen0", "combo_seen1", "combo_seen2")
"""Test subgroups in report order; others (``combo3_seen1``, ...) follow, sorted."""

SCORE_COLUMNS = ["model", "seed", "subgroup", "condition", "metric", "value"]
COVERAGE_COLUMNS = ["model", "seed", "subgroup", "n_covered", "n_total"]
CHANGE_COLUMNS = ["model", "seed", "subgroup", "condition", "gene", "predicted", "measured"]
FAILURE_COLUMNS = ["model", "seed", "stage", "error"]
GI_KEYS = ("model", "seed", "subtype", "n_pairs")
"""Columns of :attr:`EvaluationResult.gi` naming a row."""
GI_METRICS = ("precision_at_k", "random_precision", "top_k_accuracy", "r2")
"""Columns of :attr:`EvaluationResult.gi` that :meth:`EvaluationResult.gi_summary` averages."""
SUMMARY_COLUMNS = [
    "model",
    "subgroup",
    "metric",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "n_seeds",
    "n_conditions",
]


MIN_SPAN_SE = 1.0
"""Standard errors by which the replicate must beat the baseline, on average over the
conditions scored, for a calibrated score to be defined (:meth:`EvaluationResult.calibrated`).
A margin within its own noise makes the calibrated ratio arbitrary; one standard error, not a
significance test's two, since few conditions (the demo's two to five per subgroup) would
then leave nothing calibrated even where the replicate plainly wins (0.97 against 0.19)."""

GI_BOUNDS = {
    "precision_at_k": (0.0, 1.0),
    "random_precision": (0.0, 1.0),
    "top_k_accuracy": (0.0, 1.0),
    "r2": (-np.inf, 1.0),
}
"""Ranges of the interaction-ranking figures (:meth:`EvaluationResult.gi_summary`)."""


def _over_seeds(
    per_seed: pd.DataFrame,
    models: Sequence[str],
    confidence: float,
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Mean over seeds of per-seed values, with a t-interval (see ``EvaluationResult.summary``).

    ``bounds``: metric -> the range its values can take; its interval is clipped to it (a
    share cannot exceed 1 however few the seeds).
    """
    check_fraction("confidence", confidence)
    rows = []
    for (model, subgroup, metric), group in per_seed.groupby(
        ["model", "subgroup", "metric"], sort=False
    ):
        mean, std, low, high, n = mean_interval(group["value"].to_numpy(dtype=float), confidence)
        if bounds is not None and metric in bounds:
            low, high = max(low, bounds[metric][0]), min(high, bounds[metric][1])
        n_conditions = int(group["n_conditions"].sum())
        rows.append((model, subgroup, metric, mean, std, low, high, n, n_conditions))
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return _ordered(table, models, ["model", "subgroup", "metric"])


def _full_depth(table: pd.DataFrame, column: str) -> np.ndarray:
    """``table[column]``, split-half replicate means, as a full-depth repeat's (by metric)."""
    values = table[column].to_numpy(dtype=float).copy()
    for metric, rows in table.groupby("metric", sort=False).indices.items():
        if metric in METRICS:
            values[rows] = full_depth(str(metric), values[rows])
    return values


def _lower_is_better(metric: str) -> bool:
    """Whether lower values of ``metric`` are better (unregistered metrics: higher is)."""
    registered = METRICS.get(metric)
    return registered is not None and registered.best == "lower"


def _better_sign(metrics: pd.Series) -> pd.Series:
    """+1 where a higher value of the row's metric is better, -1 where a lower one is."""
    return metrics.map(lambda m: -1.0 if _lower_is_better(m) else 1.0)


def _signed_rows(table: pd.DataFrame) -> pd.DataFrame:
    """``table``'s keys with each row's better-signed ``gain`` and ``margin``.

    ``table``: one row per model, seed, condition and metric with the model's ``value`` and
    the anchors ``low`` and ``high`` (the replicate already mapped to a full-depth repeat).
    ``gain`` is the model minus the baseline, ``margin`` the replicate minus the baseline,
    both signed so that positive is better.
    """
    sign = _better_sign(table["metric"])
    keys = table[["model", "seed", "subgroup", "condition", "metric"]]
    return keys.assign(
        gain=(table["value"] - table["low"]) * sign, margin=(table["high"] - table["low"]) * sign
    )


def _span_clear(rows: pd.DataFrame) -> pd.Series:
    """Whether the replicate clearly beats the baseline, per model, subgroup and metric.

    ``rows``: as :func:`_signed_rows` returns. Each distinct condition's ``margin`` is
    averaged over the seeds that scored it (the replicate is one split of its cells, the
    same in every seed); their mean must exceed :data:`MIN_SPAN_SE` standard errors over
    the distinct conditions, as a replicate that beats the baseline by a hair, or on one
    condition, would make any difference between a model and the baseline a multiple of
    the span and the calibrated score arbitrary.
    """
    keys = ["model", "subgroup", "metric"]
    margins = rows.groupby([*keys, "condition"], sort=False)["margin"].mean()
    groups = margins.groupby(level=keys, sort=False)
    n, mean, std = groups.count(), groups.mean(), groups.std()
    return (n > 1) & (mean > MIN_SPAN_SE * std / np.sqrt(n))


def _ratio_variance(rows: pd.DataFrame) -> pd.DataFrame:
    """Squared standard error of calibrated means over seeds, from their conditions.

    ``rows``: as :func:`_signed_rows` returns (``gain`` may be a difference of two models'
    gains on the same conditions, as :meth:`EvaluationResult.head_to_head` compares). The
    calibrated mean over seeds of a model, subgroup and metric is a ratio of weighted sums
    over its rows, ``R = sum(w * gain) / sum(w * margin)`` with ``w = 1 / (seeds * the
    seed's conditions)``: the mean over seeds of the per-seed mean gains over the pooled
    span. Linearised about ``R``, its error is a sum over the distinct conditions of
    ``e = sum(w * (gain - R * margin)) / sum(w * margin)`` (the rows of a condition drawn
    by several seeds summed: they share its replicate, one split of its cells), and with the
    conditions independent draws its variance is estimated by ``N / (N - 1) * sum(e²)``
    over the ``N`` distinct conditions (NaN with one). This holds the noise of the span,
    the replicate's included, and how the gain follows it condition by condition, which a
    spread over seeds cannot.

    The same residuals summed by seed, instead of by condition, give ``seeds_var``: a
    seed's shift (a model retrained worse on every condition) moves them all alike, which
    the conditions' sum takes for independent noise.

    Returns
    -------
    Per model, subgroup and metric: ``ratio_var``, ``n_distinct`` (``N``) and
    ``seeds_var``.
    """
    keys = ["model", "subgroup", "metric"]
    seeds = rows.groupby(keys, sort=False)["seed"].transform("nunique")
    per_seed = rows.groupby([*keys, "seed"], sort=False)["seed"].transform("size")
    weight = 1.0 / (seeds * per_seed)
    weighted = pd.DataFrame(
        {"gain": weight * rows["gain"], "margin": weight * rows["margin"]}, index=rows.index
    )
    by = [rows[k] for k in keys]
    sums = weighted.groupby(by, sort=False).transform("sum")
    ratio = sums["gain"] / sums["margin"]
    residual = (weighted["gain"] - ratio * weighted["margin"]) / sums["margin"]

    def clustered(by_what: pd.Series) -> tuple[pd.Series, pd.Series]:
        totals = residual.groupby([*by, by_what], sort=False).sum()
        groups = (totals**2).groupby(level=keys, sort=False)
        n = groups.count()
        return (groups.sum() * n / (n - 1)).where(n > 1), n

    ratio_var, n_distinct = clustered(rows["condition"])
    seeds_var, _ = clustered(rows["seed"])
    return pd.DataFrame({"ratio_var": ratio_var, "n_distinct": n_distinct, "seeds_var": seeds_var})


def _calibration_table(scores: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Every model's finite scores beside both anchors on the same seed and condition.

    Returns ``scores``' rows of the models (the anchors left out) with the baseline's value
    as ``low`` and the replicate's, mapped to a full-depth repeat condition by condition
    (as :meth:`EvaluationResult.per_seed`), as ``high``.
    """
    keys = ["seed", "condition", "metric"]
    anchors = [
        scores[scores["model"] == name].set_index(keys)["value"].rename(column)
        for name, column in ((baseline, "low"), (REPLICATE, "high"))
    ]
    table = scores[~scores["model"].isin([baseline, REPLICATE])]
    table = table.join(anchors[0], on=keys).join(anchors[1], on=keys)
    finite = np.isfinite(table[["value", "low", "high"]].to_numpy(dtype=float)).all(axis=1)
    table = table[finite].copy()
    table["high"] = _full_depth(table, "high")
    return table


def _calibrated_per_seed(table: pd.DataFrame) -> pd.DataFrame:
    """Per-seed calibrated means of every model in ``table`` (see ``calibrated``).

    ``table``: as :func:`_calibration_table` returns. Beside the means, the terms of
    :func:`_ratio_variance` (``ratio_var``, ``n_distinct``, ``seeds_var``) of their model,
    subgroup and metric, on each of its rows (:func:`_with_ratio_intervals` reads them).
    """
    groups = table.groupby(["model", "seed", "subgroup", "metric"], sort=False)
    per_seed = groups[["value", "low", "high"]].mean()
    per_seed["n_conditions"] = groups.size()
    per_seed = per_seed.reset_index()
    # one span per model, subgroup and metric, pooled over seeds: a seed whose anchors
    # nearly coincide must not blow up the ratio
    by = [per_seed["model"], per_seed["subgroup"], per_seed["metric"]]
    span = (per_seed["high"] - per_seed["low"]).groupby(by, sort=False).transform("mean")
    rows = _signed_rows(table)
    index = pd.MultiIndex.from_frame(per_seed[["model", "subgroup", "metric"]])
    gained = _better_sign(per_seed["metric"]) * span > 0
    meaningful = _span_clear(rows).reindex(index, fill_value=False).to_numpy() & gained
    per_seed["value"] = ((per_seed["value"] - per_seed["low"]) / span).where(meaningful)
    variance = _ratio_variance(rows).reindex(index)
    for column in ("ratio_var", "n_distinct", "seeds_var"):
        per_seed[column] = variance[column].to_numpy()
    return per_seed


def _with_ratio_intervals(
    summary: pd.DataFrame, per_seed: pd.DataFrame, confidence: float
) -> pd.DataFrame:
    """``summary``'s intervals, as wide as the seeds or the conditions make them.

    A calibrated mean ``R`` varies through the seeds (the model and the baseline
    retrained, each with its shift) and through the conditions scored, whose replicate is
    one split of their cells, the same in every seed. Its linearised error
    (:func:`_ratio_variance`) summed by condition gives ``per_seed``'s ``ratio_var`` over
    ``n_distinct`` conditions, with the t quantile of ``n_distinct - 1`` degrees of
    freedom; summed by seed, ``seeds_var``, with that of ``n_seeds - 1``. The interval's
    half-width is the larger of the two. ``std`` and ``n_seeds`` stay the summary's (the
    spread of the per-seed values); one seed gives no interval.
    """
    if summary.empty:
        return summary
    keys = ["model", "subgroup", "metric"]
    index = pd.MultiIndex.from_frame(summary[keys])
    columns = ["ratio_var", "n_distinct", "seeds_var"]
    first = per_seed.groupby(keys, sort=False)[columns].first().reindex(index)
    n = summary["n_seeds"].to_numpy(dtype=float)
    distinct = first["n_distinct"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        seeds_half = stats.t.ppf(0.5 + confidence / 2, n - 1) * np.sqrt(
            first["seeds_var"].to_numpy(dtype=float)
        )
        conditions_half = stats.t.ppf(0.5 + confidence / 2, distinct - 1) * np.sqrt(
            first["ratio_var"].to_numpy(dtype=float)
        )
        # one seed: no interval (seeds_half NaN), as summary's
        half = np.where(
            np.isfinite(conditions_half), np.maximum(seeds_half, conditions_half), seeds_half
        )
    mean = summary["mean"].to_numpy(dtype=float)
    widened = summary.copy()
    widened["ci_low"], widened["ci_high"] = mean - half, mean + half
    return widened


def _difference_variance(rows: pd.DataFrame, reference: str, model: str) -> pd.DataFrame:
    """:func:`_ratio_variance` of ``reference``'s calibrated mean minus ``model``'s.

    ``rows``: both models' rows as :func:`_signed_rows` returns, on the same conditions,
    so calibrated by one span: their difference is the ratio of the difference of their
    gains, condition by condition, to it. Returns the terms under ``model``'s name.
    """
    keys = ["seed", "subgroup", "condition", "metric"]
    ours = rows[rows["model"] == reference].set_index(keys)
    theirs = rows[rows["model"] == model].set_index(keys)
    difference = theirs.assign(gain=ours["gain"].reindex(theirs.index) - theirs["gain"])
    variance = _ratio_variance(difference.dropna(subset=["gain"]).reset_index())
    return variance.reset_index()


def order_subgroups(subgroups: Sequence[str]) -> list[str]:
    """Sort subgroup names: unseen singles, then pairs by seen genes, then the rest."""
    unique = list(dict.fromkeys(map(str, subgroups)))
    known = [s for s in SUBGROUP_ORDER if s in unique]
    return known + sorted(s for s in unique if s not in SUBGROUP_ORDER)


def undefined_metrics(calibrated: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """Those of ``metrics`` with no finite mean in ``calibrated``, for any model or subgroup.

    ``calibrated`` is :meth:`EvaluationResult.calibrated`; ``metrics`` the metrics scored
    (a metric calibrated nowhere, its rows all NaN or none at all, is shown raw only).
    """
    if calibrated.empty:
        return list(metrics)
    finite = np.isfinite(calibrated["mean"].to_numpy(dtype=float))
    defined = set(calibrated.loc[finite, "metric"])
    return [m for m in metrics if m not in defined]


def _ordered(frame: pd.DataFrame, models: Sequence[str], by: list[str]) -> pd.DataFrame:
    """Sort ``frame`` by model (given order), subgroup (report order), metric (registry)."""
    if frame.empty:
        return frame.reset_index(drop=True)
    keys = frame.copy()
    keys["_model"] = keys["model"].map({m: i for i, m in enumerate(models)})
    if "subgroup" in keys:
        groups = order_subgroups(keys["subgroup"].unique())
        keys["_subgroup"] = keys["subgroup"].map({s: i for i, s in enumerate(groups)})
    if "metric" in keys:
        rank = {m: i for i, m in enumerate(METRICS)}
        keys["_metric"] = keys["metric"].map(lambda m: rank.get(m, len(rank)))
    sort = [{"model": "_model", "subgroup": "_subgroup", "metric": "_metric"}.get(c, c) for c in by]
    keys = keys.sort_values(sort, kind="stable")
    return frame.loc[keys.index].reset_index(drop=True)


@dataclass(repr=False)
class EvaluationResult:
    """Scores of every model on every split seed (see :func:`perturbsim.tl.evaluate`).

    :meth:`summary` aggregates the scores over seeds; :meth:`write` saves the tables.

    Attributes
    ----------
    scores
        Tidy table, one row per model, seed, test condition and metric: ``model``, ``seed``,
        ``subgroup``, ``condition``, ``metric``, ``value``.
    coverage
        ``model``, ``seed``, ``subgroup``, ``n_covered``, ``n_total``: how many test
        conditions of each subgroup the model could predict.
    changes
        Predicted and measured change over control on each scored condition's top DE genes:
        ``model``, ``seed``, ``subgroup``, ``condition``, ``gene``, ``predicted``,
        ``measured`` (for plots such as :func:`perturbsim.pl.predicted_vs_true`).
    histories
        Training history of the models that keep one (GEARS): ``model``, ``seed``, then the
        model's own history (for GEARS ``member`` (ensemble member), ``epoch``,
        ``train_loss``, ``val_loss`` (NaN without validation: the default model's GEARS
        part), ``lr`` and one column per loss term).
    timings
        ``model``, ``seed``, ``fit_s``, ``predict_s`` (wall seconds; ``fit_s`` includes
        building the model and its graphs, ``predict_s`` predicting the test conditions).
    failures
        Runs skipped with ``on_error="skip"``: ``model``, ``seed``, ``stage`` (``"fit"``,
        ``"predict"``, ``"score"`` or ``"score interactions"``), ``error``.
    gi
        How well each model ranks the genetic interactions of the test pairs, one row per
        model, seed and subtype: ``model``, ``seed``, ``truth`` (``"simulated"``: the
        simulator's noiseless profiles; ``"measured"``: the measured means) and the
        columns of :func:`perturbsim.tl.gi_precision` (``precision_at_k`` beside
        ``random_precision``, a random ranking's). On a simulated screen the row
        ``"measured"`` ranks by the measured means. Empty without test pairs or with
        ``evaluate(gi=False)``. :meth:`gi_summary` averages over seeds.
    uncertainty
        For models whose predictions carry a predictive variance, one row per model, seed
        and test condition (:mod:`perturbsim.tl._uncertainty`): ``uncertainty`` (the
        model's score), ``error_de`` and ``error_all`` (mean squared error of the change
        on the top DE genes and on all genes), and ``inside_<genes>_<level>``, the share of
        measured changes inside the central normal predictive interval of that nominal
        level. :meth:`uncertainty_summary` and :meth:`calibration` summarise it.
    settings
        How the evaluation ran: ``models`` (the ``"replicate"`` row last), ``split``,
        ``seeds``, ``n_de``, ``exclude_targets``, ``replicate``, ``gi_k``, ``metrics``,
        ``min_cells`` and the screen's ``n_cells``, ``n_genes``, ``n_conditions``; from ``perturbsim
        evaluate``, also ``screen``: the ``file`` read (as given on the command line), its
        ``where`` filter, whether its counts were normalised (``normalize``) and the
        ``--test`` list (``test_conditions``, or ``None``).

    A non-empty ``scores``, ``coverage`` or ``gi`` lacking the columns the summaries read
    is refused in one line naming them.
    """

    scores: pd.DataFrame
    coverage: pd.DataFrame
    changes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHANGE_COLUMNS))
    histories: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FAILURE_COLUMNS))
    gi: pd.DataFrame = field(default_factory=pd.DataFrame)
    uncertainty: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=UNCERTAINTY_COLUMNS)
    )
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a non-empty table without the columns the summaries read."""
        needed = {
            "scores": SCORE_COLUMNS,
            "coverage": ["model", "subgroup"],
            "gi": [*GI_KEYS, *GI_METRICS],
        }
        for name, columns in needed.items():
            table = getattr(self, name)
            if not isinstance(table, pd.DataFrame) or not table.empty:
                checked_table(table, columns, name)

    def __repr__(self) -> str:
        seeds = self.settings.get("seeds", sorted(set(self.scores.get("seed", []))))
        failed = f", {len(self.failures)} failed runs" if len(self.failures) else ""
        return (
            f"EvaluationResult: {len(self.models)} models ({', '.join(self.models)}) on "
            f"{self.settings.get('split', '?')} split seeds {list(seeds)}, subgroups "
            f"{', '.join(self.subgroups)}; {len(self.scores)} scores{failed} "
            "(.calibrated(), .summary(), .head_to_head(model), .write(folder))"
        )

    @property
    def models(self) -> list[str]:
        """Model names in evaluation order."""
        listed = self.settings.get("models")
        return list(listed) if listed else list(dict.fromkeys(self.coverage["model"]))

    @property
    def subgroups(self) -> list[str]:
        """Test subgroups seen in any seed, in report order."""
        return order_subgroups(self.coverage["subgroup"].unique())

    def per_seed(self) -> pd.DataFrame:
        """Mean over the conditions of each model, seed, subgroup and metric.

        The replicate's values are mapped to a full-depth repeat of the experiment
        (:func:`perturbsim.tl.metrics.full_depth`: Spearman-Brown for correlations, as
        cell-eval's ceiling, half the squared error, and for an error relative to no
        change's that reference less half its noise) condition by condition, before the
        mean: its rows in :attr:`scores` compare two half-depth means, and a full-depth
        repeat's mean correlation is the mean of its conditions' (Spearman-Brown of the
        mean correlation would overstate it).

        Returns
        -------
        ``model``, ``seed``, ``subgroup``, ``metric``, ``value`` (mean of the finite
        per-condition values; NaN when none is finite) and ``n_conditions`` (finite values).
        """
        if self.scores.empty:
            return pd.DataFrame(
                columns=["model", "seed", "subgroup", "metric", "value", "n_conditions"]
            )
        keys = ["model", "seed", "subgroup", "metric"]
        scores = self.scores.copy()
        replicate = (scores["model"] == REPLICATE).to_numpy()
        scores.loc[replicate, "value"] = _full_depth(scores[replicate], "value")
        values = pd.to_numeric(scores["value"], errors="coerce")
        scores["value"] = values.where(np.isfinite(values))  # an infinite value: not finite
        grouped = scores.groupby(keys, sort=False, observed=True)["value"]
        table = grouped.agg(value="mean", n_conditions="count").reset_index()
        return _ordered(table, self.models, ["model", "subgroup", "metric", "seed"])

    def summary(self, *, confidence: float = 0.95) -> pd.DataFrame:
        """Mean over seeds of the per-seed means, with a t-interval over seeds.

        Each seed contributes the mean over its test conditions (:meth:`per_seed`); the
        interval is ``mean ± t(confidence, n_seeds - 1) * std / sqrt(n_seeds)`` with the
        sample standard deviation over seeds, NaN with a single seed, clipped to the values
        the metric can take (:attr:`~perturbsim.tl.Metric.bounds`: a correlation's interval
        stays within [-1, 1] however few the seeds).

        Parameters
        ----------
        confidence
            Coverage of the interval.

        Returns
        -------
        One row per ``model``, ``subgroup``, ``metric``: ``mean``, ``std``, ``ci_low``,
        ``ci_high``, ``n_seeds`` (seeds with a finite mean) and ``n_conditions`` (finite
        per-condition values over all seeds). Metrics undefined for a model (e.g. a
        correlation with the constant change of ``no_perturb``) have ``mean`` NaN and
        ``n_seeds`` 0.
        """
        bounds = {name: metric.bounds for name, metric in METRICS.items()}
        return _over_seeds(self.per_seed(), self.models, confidence, bounds)

    def calibrated(
        self, *, confidence: float = 0.95, baseline: str = MEAN_BASELINE
    ) -> pd.DataFrame:
        """Every model placed between the two anchors: the baseline and the replicate.

        ``(model - b) / (r - b)``, where ``model``, ``b`` (the baseline) and ``r`` (the
        split-half replicate) are per-seed means over the same conditions: those the model
        was scored on and both anchors have a finite value for. 0 means no better than the
        mean of the training perturbations, 1 as good as repeating the experiment, above 1
        better than a repeat (a prediction can be less noisy than a measurement), below 0
        worse than the baseline; the sign works for metrics where lower is better too. The
        span ``r - b`` is pooled over seeds (its mean), so the per-seed values
        ``(model - b) / span`` are aggregated as in :meth:`summary` without a seed whose
        anchors nearly coincide blowing up the ratio. Undefined (NaN) where the replicate
        does not clearly beat the baseline on those conditions: where the margins of the
        distinct conditions (replicate minus baseline, each averaged over the seeds that
        scored it) do not average more than their standard error (:data:`MIN_SPAN_SE`), as
        with a single condition. The screen then has nothing reproducible enough to
        calibrate against, and a margin of a hair would make any difference from the
        baseline look like many repeats of the experiment.
        ``n_conditions`` counts the conditions scored (also where the value is undefined).
        The interval is the wider of two
        t-intervals of a ratio estimator's standard error: over the distinct conditions,
        each weighted as the seeds drew it, which holds the noise of the span and how the
        model's gain follows it condition by condition (the replicate is one split of each
        condition's cells, the same in every seed, so no spread over seeds holds it), and
        over the seeds (a seed's shift); none with one seed. In simulated evaluations (5
        seeds, 12 or 40 conditions; ``benchmarks/bench_interval_coverage.py``) it covered
        the true calibrated value 0.92-0.96 of the time at a nominal 0.95
        (``benchmarks/RESULTS.md``).

        Parameters
        ----------
        confidence
            Coverage of the interval (the wider of the one over seeds and the one over
            conditions).
        baseline
            The model that anchors 0 (default: ``"mean"``); the replicate, or a name no
            model of the evaluation has, is an error.

        Returns
        -------
        One row per ``model`` (the anchors left out), ``subgroup``, ``metric``, with the
        columns of :meth:`summary`. Empty when the evaluation lacks an anchor. ``std`` is
        the spread over seeds of the per-seed values ``(model - b) / span``; the interval is
        not built from it (not ``mean ± t · std / sqrt(n_seeds)``) but from the ratio
        estimator above, so it can be much narrower (a model that gains exactly what the
        replicate gains, condition by condition, is at 1 with no doubt, however the
        per-seed values spread) or wider.
        """
        self._check_baseline(baseline)
        missing = [a for a in (baseline, REPLICATE) if a not in set(self.scores["model"])]
        if missing:
            logger.warning(
                "no calibrated scores: the evaluation has no %s (evaluate with %s among the "
                "models, and replicate=True)",
                " and no ".join(map(repr, missing)),
                repr(baseline),
            )
        models = [m for m in self.models if m not in (baseline, REPLICATE)]
        per_seed = _calibrated_per_seed(_calibration_table(self.scores, baseline))
        summary = _over_seeds(per_seed, models, confidence)
        return _with_ratio_intervals(summary, per_seed, confidence)

    def _check_baseline(self, baseline: object) -> None:
        """Refuse the replicate as ``baseline``, or a name no model of this evaluation has.

        The default baseline (``"mean"``) may be absent: the calibration is then empty.
        """
        names = list(dict.fromkeys([*self.models, *self.scores["model"]]))
        if baseline == REPLICATE or (baseline not in names and baseline != MEAN_BASELINE):
            raise PerturbsimError(
                f"baseline {baseline!r} must be a model of this evaluation other than the "
                f"replicate (the other anchor): {[n for n in names if n != REPLICATE]}"
            )

    def head_to_head(
        self,
        reference: str = "stacked",
        *,
        confidence: float = 0.95,
        baseline: str = MEAN_BASELINE,
    ) -> pd.DataFrame:
        """``reference`` against every other model on the conditions both were scored on.

        :meth:`calibrated` scores each model on the conditions it covers, so two models of
        different coverage (e.g. ``additive``, only pairs of measured singles, and the
        default, every pair) are compared on different conditions there. Here each model
        is compared with ``reference`` on their shared conditions only: both calibrated as
        in :meth:`calibrated`, per seed, and their difference (reference minus model:
        calibrated values are higher-is-better for every metric, so positive means the
        reference is better) averaged over seeds, its interval the wider of the
        t-interval over seeds and one from the conditions, as :meth:`calibrated`'s, of
        the difference of the two gains condition by condition over the one span both are
        measured in.

        Parameters
        ----------
        reference
            The model compared with the others (default: the default model).
        confidence
            Coverage of the interval (the wider of the one over seeds and the one over
            conditions).
        baseline
            The model that anchors 0 of the calibration (default: ``"mean"``; as for
            :meth:`calibrated`).

        Returns
        -------
        One row per other ``model``, ``subgroup``, ``metric``: ``reference`` and
        ``model_value`` (calibrated means over seeds on the shared conditions), then the
        difference's ``mean``, ``std``, ``ci_low``, ``ci_high``, ``n_seeds`` and
        ``n_conditions`` (shared conditions over the seeds). Empty when the evaluation lacks
        an anchor (as :meth:`calibrated`).

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> result = ps.tl.evaluate(adata, models=["stacked", "additive", "mean"], seeds=2)
        >>> table = result.head_to_head("stacked")
        >>> sorted(table["model"].unique())
        ['additive']
        """
        self._check_baseline(baseline)
        names = list(dict.fromkeys([*self.models, *self.scores["model"]]))
        if reference in (baseline, REPLICATE):
            raise PerturbsimError(
                f"reference {reference!r} is an anchor of the calibration; name a model to compare"
            )
        if reference not in names:
            raise PerturbsimError(
                f"reference {reference!r} is not a model of this evaluation: {names}"
            )
        others = [m for m in names if m not in (reference, baseline, REPLICATE)]
        keys = ["seed", "condition", "metric"]
        scores = self.scores
        finite = scores[np.isfinite(scores["value"].to_numpy(dtype=float))]
        reference_keys = finite[finite["model"] == reference].set_index(keys).index
        tables = []
        for model in others:
            model_keys = finite[finite["model"] == model].set_index(keys).index
            shared = reference_keys.intersection(model_keys)
            involved = scores[scores["model"].isin([reference, model, baseline, REPLICATE])]
            on_shared = involved[involved.set_index(keys).index.isin(shared)]
            table = _calibration_table(on_shared, baseline)
            per_seed = _calibrated_per_seed(table)
            wide = per_seed.pivot_table(
                index=["seed", "subgroup", "metric"], columns="model", values="value"
            )
            if reference not in wide or model not in wide:
                continue
            counts = per_seed[per_seed["model"] == model].set_index(["seed", "subgroup", "metric"])[
                "n_conditions"
            ]
            # calibrated values are higher-is-better for every metric
            difference = wide.assign(
                value=wide[reference] - wide[model],
                n_conditions=counts.reindex(wide.index).fillna(0).astype(int),
                model=model,
            ).reset_index()
            summary = _with_ratio_intervals(
                _over_seeds(difference, [model], confidence),
                _difference_variance(_signed_rows(table), reference, model),
                confidence,
            )
            means = difference.groupby(["subgroup", "metric"], sort=False)[[reference, model]]
            means = means.mean().rename(columns={reference: "reference", model: "model_value"})
            tables.append(summary.join(means, on=["subgroup", "metric"]))
        columns = ["model", "subgroup", "metric", "reference", "model_value", *SUMMARY_COLUMNS[3:]]
        if not tables:
            return pd.DataFrame(columns=columns)
        return pd.concat(tables, ignore_index=True)[columns]

    def gi_summary(self, *, confidence: float = 0.95) -> pd.DataFrame:
        """Precision@k of predicted interaction subtypes: mean over seeds, with a t-interval.

        Parameters
        ----------
        confidence
            Coverage of the interval (the wider of the one over seeds and the one over
            conditions).

        Returns
        -------
        One row per ``model`` and ``subtype``, for ``metric`` ``precision_at_k``,
        ``random_precision`` (a random ranking of the same pairs), ``top_k_accuracy`` and
        ``r2``: the columns of :meth:`summary` (``n_conditions``: pairs compared, summed
        over seeds), each interval clipped to the values its figure can take (``[0, 1]``;
        ``r2`` at most 1). Empty when :attr:`gi` is.
        """
        if self.gi.empty:
            return pd.DataFrame(
                columns=[{"subgroup": "subtype"}.get(c, c) for c in SUMMARY_COLUMNS]
            )
        metrics = list(GI_METRICS)
        long = self.gi.melt(
            id_vars=list(GI_KEYS),
            value_vars=metrics,
            var_name="metric",
        )
        # _over_seeds groups by subgroup: the subtype takes its place
        long = long.rename(columns={"subtype": "subgroup", "n_pairs": "n_conditions"})
        models = list(dict.fromkeys(self.gi["model"]))
        table = _over_seeds(long, models, confidence, GI_BOUNDS).rename(
            columns={"subgroup": "subtype"}
        )
        keys = pd.DataFrame(
            {
                "model": table["model"].map({m: i for i, m in enumerate(models)}),
                "subtype": table["subtype"].map({s: i for i, s in enumerate(SUBTYPES)}),
                "metric": table["metric"].map({m: i for i, m in enumerate(metrics)}),
            }
        ).sort_values(["model", "subtype", "metric"], kind="stable")
        return table.loc[keys.index].reset_index(drop=True)

    def uncertainty_summary(self, *, confidence: float = 0.95) -> pd.DataFrame:
        """Does uncertainty track error, and are the intervals calibrated? Over seeds.

        Per model and seed over its test conditions: the Spearman correlation of the
        uncertainty with the error (``spearman_error_de``, ``spearman_error_all``;
        positive: more uncertain where the error is larger, the paper's
        anti-correlation with performance), the same within each test subgroup, averaged
        over them (``spearman_error_de_within``, ``spearman_error_all_within``: whether the
        uncertainty ranks conditions of one kind, not only the kinds) and the share of
        measured changes inside the 50 % and 90 % intervals (``inside_de_50``,
        ``inside_de_90``, ``inside_all_50``, ``inside_all_90``; calibrated: 0.5 and 0.9);
        then the mean over seeds with a t-interval, clipped to the values each figure can
        take (``[-1, 1]`` for the correlations, ``[0, 1]`` for the shares).

        Parameters
        ----------
        confidence
            Coverage of the interval (the wider of the one over seeds and the one over
            conditions).

        Returns
        -------
        The columns of :meth:`summary` (``subgroup`` is ``"all"``). Empty when no model
        has a predictive variance.
        """
        if self.uncertainty.empty:
            return pd.DataFrame(columns=SUMMARY_COLUMNS)
        models = list(dict.fromkeys(self.uncertainty["model"]))
        per_seed = uncertainty_per_seed(self.uncertainty)
        bounds = {
            m: (-1.0, 1.0) if m.startswith("spearman") else (0.0, 1.0) for m in per_seed["metric"]
        }
        return _over_seeds(per_seed, models, confidence, bounds)

    def calibration(self) -> pd.DataFrame:
        """Observed share inside the predictive intervals at each nominal level.

        Returns
        -------
        ``model``, ``genes`` (``"de"``, ``"all"``), ``nominal``, ``observed``,
        ``n_conditions`` (:func:`perturbsim.tl._uncertainty.calibration_curve`); empty
        when no model has a predictive variance.
        """
        return calibration_curve(self.uncertainty)

    def coverage_table(self) -> pd.DataFrame:
        """Covered and total test conditions summed over seeds, per model and subgroup."""
        table = (
            self.coverage.groupby(["model", "subgroup"], sort=False)[["n_covered", "n_total"]]
            .sum()
            .reset_index()
        )
        return _ordered(table, self.models, ["model", "subgroup"])

    def write(self, out_dir: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
        """Write the tables as CSV files and the settings as ``settings.json`` into ``out_dir``.

        Every file is written first (into a hidden folder inside ``out_dir``), then renamed
        into place, so a reader never sees a half-written file.
        :func:`perturbsim.io.write_report` adds plots and a Markdown report.

        Parameters
        ----------
        out_dir
            Folder, created if absent; one that holds files is refused, unless
            ``overwrite`` and they are earlier results (tables, plots and reports with a
            ``settings.json``), which are then replaced whole.
        overwrite
            Replace earlier results in ``out_dir``.

        Returns
        -------
        File name -> path of every file written: ``scores.csv``, ``summary.csv``
        (:meth:`summary`), ``calibrated.csv`` (:meth:`calibrated`, the headline table,
        unless empty), ``per_seed.csv`` (:meth:`per_seed`), ``coverage.csv``,
        ``changes.csv``, ``timings.csv``, ``history.csv`` (:attr:`histories`),
        ``failures.csv``, ``gi_precision.csv`` (:attr:`gi`) and ``gi_summary.csv``
        (:meth:`gi_summary`), ``uncertainty.csv`` (:attr:`uncertainty`),
        ``uncertainty_summary.csv`` (:meth:`uncertainty_summary`) and ``calibration.csv``
        (:meth:`calibration`) unless empty, all without an index column, and
        ``settings.json`` (:attr:`settings`).

        Examples
        --------
        >>> import tempfile
        >>> import perturbsim as ps
        >>> result = ps.tl.evaluate(ps.ds.norman2019_subset(), models=["mean"], seeds=1)
        >>> with tempfile.TemporaryDirectory() as out:
        ...     sorted(result.write(out))[:3]
        ['changes.csv', 'coverage.csv', 'gi_precision.csv']
        """
        return write_results_dir(out_dir, self.write_tables, overwrite=overwrite)

    def write_tables(self, out: Path) -> dict[str, Path]:
        """Write the files of :meth:`write` straight into the existing folder ``out``.

        Each file is written atomically, but the folder is neither checked nor staged: for a
        writer that stages a folder of its own (:func:`perturbsim.io.write_report`); use
        :meth:`write` otherwise.

        Parameters
        ----------
        out
            An existing folder.

        Returns
        -------
        File name -> path of every file written (as :meth:`write`).

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> import perturbsim as ps
        >>> result = ps.tl.evaluate(ps.ds.norman2019_subset(), models=["mean"], seeds=1)
        >>> with tempfile.TemporaryDirectory() as out:
        ...     "settings.json" in result.write_tables(Path(out))
        True
        """
        tables = {
            "scores.csv": self.scores,
            "summary.csv": self.summary(),
            "per_seed.csv": self.per_seed(),
            "coverage.csv": self.coverage,
            "changes.csv": self.changes,
            "timings.csv": self.timings,
        }
        calibrated = self.calibrated()
        if not calibrated.empty:
            tables["calibrated.csv"] = calibrated
        if not self.histories.empty:
            tables["history.csv"] = self.histories
        if not self.failures.empty:
            tables["failures.csv"] = self.failures
        if not self.gi.empty:
            tables["gi_precision.csv"] = self.gi
            tables["gi_summary.csv"] = self.gi_summary()
        if not self.uncertainty.empty:
            tables["uncertainty.csv"] = self.uncertainty
            tables["uncertainty_summary.csv"] = self.uncertainty_summary()
            tables["calibration.csv"] = self.calibration()
        written = {
            name: atomic_write(out / name, lambda tmp, frame=frame: frame.to_csv(tmp, index=False))
            for name, frame in tables.items()
        }
        text = json.dumps(self.settings, indent=2) + "\n"
        written["settings.json"] = atomic_write(
            out / "settings.json", lambda tmp: tmp.write_text(text, encoding="utf-8")
        )
        logger.info("wrote %d tables and settings.json to %s", len(written) - 1, out)
        return written
