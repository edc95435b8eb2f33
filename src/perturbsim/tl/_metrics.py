"""Per-condition metrics of predicted mean expression, from one registry.

Every metric is registered once (name, description, best value, the inputs it needs) so the
report, the CLI and :func:`list_metrics` list the same table, as in cell-eval. A metric is a
function of one :class:`MetricInputs`: the predicted and measured mean of a condition, the
control mean and, when a metric needs them, the predicted variance, the condition's top
differentially expressed (DE) genes, its target genes, the mean perturbed training profile
and the measured means of the other conditions. A new metric needing any of these fits
without changing a signature.

By default :func:`score` removes the perturbed genes (targets) from what a metric sees: a
target's own activation or knock-down is trivial to predict and inflates every gene-wise
score, so cell-eval excludes it too. A metric never has to know: it receives arrays over
the genes it scores.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._checks import check_flag, check_list
from .._errors import PerturbsimError
from .._keys import CONTROL, SETUP, UNS, VARIANCE_LAYER
from .._ranking import top_k_share
from ..pp import PseudobulkStats, genes_of
from ..pp._labels import canonical_label, parse_label
from ..pp._pseudobulk import current_stats
from ..pp._setup import check_anndata

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricInputs:
    """What a metric sees of one condition; arrays are float64 over the genes it scores.

    The genes scored are the predicted genes, less, by default (``exclude_targets=True``
    in :func:`score`), the condition's measured targets, or, for a metric that compares
    the condition with the others (one that needs ``others``), the measured targets of
    every scored condition. Gene indices (``de_idx``, ``targets``) count those genes.
    :func:`score` fills an optional field (default ``None``) only when a chosen metric
    needs it (:attr:`Metric.needs`).

    Attributes
    ----------
    predicted
        Predicted mean expression, ``(G,)``.
    measured
        Measured mean expression, ``(G,)``.
    control
        Mean control expression, ``(G,)``.
    variance
        Predicted variance, ``(G,)`` (the prediction's ``.layers["variance"]``).
    de_idx
        Gene indices of the condition's top DE genes, ``(k,)``.
    targets
        Gene indices of the condition's perturbed genes that are measured and scored,
        ``(t,)``; empty when none is (CRISPRa targets absent from the genes, or targets
        excluded).
    reference
        Mean perturbed training profile, ``(G,)``.
    others
        Measured means of the other scored conditions, ``(n - 1, G)``, in scoring order.
    """

    predicted: np.ndarray
    measured: np.ndarray
    control: np.ndarray
    variance: np.ndarray | None = None
    de_idx: np.ndarray | None = None
    targets: np.ndarray | None = None
    reference: np.ndarray | None = None
    others: np.ndarray | None = None


OPTIONAL_INPUTS = tuple(f.name for f in fields(MetricInputs) if f.default is None)
"""Fields of :class:`MetricInputs` a metric may list in ``needs``."""

MetricFunc = Callable[[MetricInputs], float]
"""``func(inputs) -> float`` on one condition."""


FullDepth = Literal["spearman_brown", "halve", "halve_relative", "none"]
FULL_DEPTH_RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # Spearman-Brown, the reliability of a test of twice the length, 2r / (1 + r); like
    # cell-eval, only for a positive correlation (no reliability to scale otherwise)
    "spearman_brown": lambda r: np.where(r > 0, 2 * r / (1 + np.abs(r)), r),
    # the difference of two half-depth means has twice the noise variance of two full ones
    "halve": lambda error: error / 2,
    # an error relative to no change's: the no-change error holds the measured change's
    # noise too (half the split-half error at half depth, a quarter at full depth, which
    # is what full depth removes); no larger than 2
    "halve_relative": lambda ratio: (ratio / 2) / np.maximum(1 - ratio / 4, ratio / 4),
    "none": lambda value: value,
}
"""How a split-half value maps to a full-depth repeat, by :attr:`Metric.full_depth`."""


def full_depth_note(metrics: Sequence[str]) -> str:
    """A sentence saying how the replicate's values of ``metrics`` stand for a full repeat.

    For a report: which of ``metrics`` (registered ones) are mapped to a full-depth repeat
    (:func:`full_depth`) and which keep the split-half value.

    Examples
    --------
    >>> note = full_depth_note(["pearson_delta_de", "nmse_de", "de_jaccard"])
    >>> note.startswith("mapped to a full-depth repeat"), "de_jaccard keeps the split-half" in note
    (True, True)
    """
    kept = [m for m in metrics if m in METRICS and METRICS[m].full_depth == "none"]
    text = (
        "mapped to a full-depth repeat of the experiment (Spearman-Brown for correlations, "
        "half the squared error for squared errors, and the no-change error less half its "
        "noise for errors relative to it)"
    )
    if not kept:
        return text
    verb = "keeps" if len(kept) == 1 else "keep"
    return (
        f"{text}; {', '.join(kept)} {verb} the split-half value (no mapping is known): a "
        "ceiling below a full repeat's, which a baseline may pass, its calibrated score then "
        "undefined"
    )


def full_depth(metric: str, values: np.ndarray | float) -> np.ndarray:
    """Map split-half replicate values of ``metric`` to those of a full-depth repeat.

    The split-half replicate compares two halves of each condition's cells, each with half
    the cells; repeating the whole experiment compares two full-depth means. For a
    correlation the Spearman-Brown formula ``2r / (1 + r)`` gives the full-depth
    reliability (as cell-eval's ceiling does, for positive ``r`` only); for a squared error
    between two noisy means the noise term halves. A squared error relative to that of
    predicting no change (``nmse``: ``n = E / D``) needs both: with each half's change
    measured with noise variance ``v``, the split-half error is ``E = 2v`` (the signal
    cancels) and the no-change error ``D = Δ² + v``; at full depth they are ``E / 2`` and
    ``D - E / 4``, so ``n`` maps to ``(n / 2) / (1 - n / 4)``, at most 2 (``D`` is at least
    the noise, ``v / 2``, at full depth). Other metrics are left as measured.

    Examples
    --------
    >>> float(full_depth("pearson_delta_de", 0.5))
    0.6666666666666666
    >>> float(full_depth("mse", 0.2))
    0.1
    >>> float(full_depth("nmse", 2.0))  # halves of pure noise: twice no change's error
    2.0
    """
    if metric not in METRICS:
        raise PerturbsimError(f"unknown metric {metric!r}; available: {list(METRICS)}")
    rule = FULL_DEPTH_RULES[METRICS[metric].full_depth]
    return rule(np.asarray(values, dtype=np.float64))


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes
    ----------
    name
        Registry key.
    description
        One line shown by :func:`list_metrics`.
    best
        ``"higher"`` or ``"lower"``.
    func
        ``func(inputs: MetricInputs) -> float`` on one condition.
    needs
        Optional fields of :class:`MetricInputs` the function uses (:data:`OPTIONAL_INPUTS`).
    full_depth
        How the value of a split-half replicate (two halves of a condition's cells, each at
        half the depth) maps to that of repeating the whole experiment (see
        :func:`full_depth`): ``"spearman_brown"`` for correlations, ``"halve"`` for
        squared errors, ``"halve_relative"`` for squared errors relative to that of no
        change, ``"none"`` where no simple rule applies.
    bounds
        The range the metric's values can take (a correlation's ``(-1, 1)``); intervals over
        seeds are clipped to it.
    """

    name: str
    description: str
    best: Literal["higher", "lower"]
    func: MetricFunc
    needs: tuple[str, ...] = ()
    full_depth: FullDepth = "none"
    bounds: tuple[float, float] = (-math.inf, math.inf)


CORRELATION = (-1.0, 1.0)
SHARE = (0.0, 1.0)
NON_NEGATIVE = (0.0, math.inf)

METRICS: dict[str, Metric] = {}
"""The metric registry: every metric by name (:func:`register_metric` adds one;
:func:`list_metrics` lists them)."""
HEADLINE_METRICS = ("pearson_delta_de", "nmse_de", "direction_error_de")
"""The metrics reports and the CLI show first."""


def register_metric(
    name: str,
    *,
    description: str,
    best: Literal["higher", "lower"],
    needs: Sequence[str] = (),
    full_depth: FullDepth = "none",
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Callable[[MetricFunc], MetricFunc]:
    """Register a metric function under ``name`` (decorator).

    Parameters
    ----------
    name
        Unique metric name.
    description
        One-line description.
    best
        Whether ``"higher"`` or ``"lower"`` values are better.
    needs
        Optional fields of :class:`MetricInputs` the function uses (``"variance"``,
        ``"de_idx"``, ``"targets"``, ``"reference"``, ``"others"``); :func:`score` fills
        them and skips the metric when one cannot be filled.
    full_depth
        ``"spearman_brown"``, ``"halve"``, ``"halve_relative"`` or ``"none"``: see
        :attr:`Metric.full_depth`.
    bounds
        The range of the metric's values: see :attr:`Metric.bounds`.

    Returns
    -------
    The decorator, which returns the function unchanged.
    """
    if best not in ("higher", "lower"):
        raise PerturbsimError(f"best must be 'higher' or 'lower', got {best!r}")
    if full_depth not in FULL_DEPTH_RULES:
        raise PerturbsimError(
            f"full_depth must be one of {list(FULL_DEPTH_RULES)}, got {full_depth!r}"
        )
    unknown = [n for n in needs if n not in OPTIONAL_INPUTS]
    if unknown:
        raise PerturbsimError(
            f"metric {name!r} needs unknown input {unknown[0]!r}; inputs: {list(OPTIONAL_INPUTS)}"
        )

    def decorate(func: MetricFunc) -> MetricFunc:
        if name in METRICS:
            raise PerturbsimError(f"metric {name!r} is already registered")
        METRICS[name] = Metric(
            name, description, best, func, tuple(needs), full_depth, tuple(bounds)
        )
        return func

    return decorate


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either vector is constant (or shorter than 2)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc @ xc) * (yc @ yc))
    if not np.isfinite(denom) or denom <= 0:
        return float("nan")
    return float(np.clip((xc @ yc) / denom, -1.0, 1.0))


def _mse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean((pred - true) ** 2)) if pred.size else float("nan")


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


TIE_TOLERANCE = 1e-12
"""|Predicted change|s this close (relative beyond 1) are tied when the top-k genes are drawn."""


def _expected_overlap(x: MetricInputs) -> tuple[float, int]:
    """Expected measured DE genes among the top-k by |predicted change|, and k.

    Genes tied in |predicted change| share the places left among the top k (as a random
    order of the ties would on average): a constant prediction (``no_perturb``) overlaps
    by ``k²/G`` whatever the order of the genes.
    """
    k = len(x.de_idx)
    share = top_k_share(np.abs(x.predicted - x.control), k, TIE_TOLERANCE)
    return float(share[np.asarray(x.de_idx)].sum()), k


def _closer_than_own(x: MetricInputs, order: int) -> tuple[int, int, int]:
    """How the measured profiles of the other conditions stand to the prediction.

    Distances are L^``order`` norms between the predicted mean and each measured mean,
    equal to those between the predicted and measured change over control.

    Returns
    -------
    The number of other conditions closer to the prediction than its own measured
    profile, the number at the same distance, and the number of other conditions.
    """
    own = np.linalg.norm(x.predicted - x.measured, ord=order)
    others = np.linalg.norm(x.others - x.predicted[None, :], ord=order, axis=1)
    return int((others < own).sum()), int((others == own).sum()), len(others)


def _discrimination(x: MetricInputs, order: int) -> float:
    """cell-eval's discrimination score with the L^``order`` distance.

    cell-eval: ``discrimination_score`` in ``cell_eval/metrics/_anndata.py``. The measured
    changes of the n scored conditions are ranked by distance to the condition's
    predicted change; with r of them closer than its own (ties count half),
    the score is ``1 - r / (n - 1)``: 1 when its own is the closest, 0 when it is the
    farthest, 0.5 in expectation for a prediction that cannot tell conditions apart.
    Differences from cell-eval: cell-eval divides by n (its worst score is 1/n) and
    breaks ties by sort order; it leaves out only the condition's own target, whereas
    here (by default) the targets of every scored condition are left out of every
    distance. Leaving out only one's own would inflate the score: another condition's
    target effect, absent from its own comparison, pushes that condition away from any
    prediction that does not predict it, so even "no change" would score near 1 on a
    screen whose targets dominate the response. NaN with a single scored condition.
    """
    closer, tied, n_others = _closer_than_own(x, order)
    if n_others == 0:
        return float("nan")
    return 1.0 - (closer + tied / 2) / n_others


@register_metric(
    "mse",
    description="mean squared error of the mean, all genes",
    best="lower",
    full_depth="halve",
    bounds=NON_NEGATIVE,
)
def _metric_mse(x: MetricInputs) -> float:
    return _mse(x.predicted, x.measured)


@register_metric(
    "mse_de",
    description="mean squared error of the mean, top DE genes",
    best="lower",
    needs=("de_idx",),
    full_depth="halve",
    bounds=NON_NEGATIVE,
)
def _metric_mse_de(x: MetricInputs) -> float:
    return _mse(x.predicted[x.de_idx], x.measured[x.de_idx])


@register_metric(
    "nmse",
    description="mse / mse of predicting control (no-perturbation model), all genes",
    best="lower",
    full_depth="halve_relative",
    bounds=NON_NEGATIVE,
)
def _metric_nmse(x: MetricInputs) -> float:
    return _ratio(_mse(x.predicted, x.measured), _mse(x.control, x.measured))


@register_metric(
    "nmse_de",
    description="mse / mse of predicting control, top DE genes",
    best="lower",
    needs=("de_idx",),
    full_depth="halve_relative",
    bounds=NON_NEGATIVE,
)
def _metric_nmse_de(x: MetricInputs) -> float:
    de = x.de_idx
    return _ratio(_mse(x.predicted[de], x.measured[de]), _mse(x.control[de], x.measured[de]))


@register_metric(
    "pearson_delta",
    description="Pearson of predicted vs measured change over control, all genes",
    best="higher",
    full_depth="spearman_brown",
    bounds=CORRELATION,
)
def _metric_pearson_delta(x: MetricInputs) -> float:
    return pearson(x.predicted - x.control, x.measured - x.control)


@register_metric(
    "pearson_delta_de",
    description="Pearson of predicted vs measured change over control, top DE genes",
    best="higher",
    needs=("de_idx",),
    full_depth="spearman_brown",
    bounds=CORRELATION,
)
def _metric_pearson_delta_de(x: MetricInputs) -> float:
    de = x.de_idx
    return pearson(x.predicted[de] - x.control[de], x.measured[de] - x.control[de])


@register_metric(
    "direction_error_de",
    description="fraction of top DE genes whose predicted change has the wrong sign (no "
    "predicted change where one was measured: half, a guess's chance)",
    best="lower",
    needs=("de_idx",),
    bounds=SHARE,
)
def _metric_direction_error_de(x: MetricInputs) -> float:
    de = x.de_idx
    if len(de) == 0:
        return float("nan")
    predicted = np.sign(x.predicted[de] - x.control[de])
    measured = np.sign(x.measured[de] - x.control[de])
    # a gene predicted not to change names no direction: as a coin would, half wrong
    undecided = (predicted == 0) & (measured != 0)
    return float(np.mean(np.where(undecided, 0.5, predicted != measured)))


@register_metric(
    "de_jaccard",
    description="Jaccard of the top-k genes by |predicted change| and the k measured DE genes",
    best="higher",
    needs=("de_idx",),
    bounds=SHARE,
)
def _metric_de_jaccard(x: MetricInputs) -> float:
    if len(x.de_idx) == 0:
        return float("nan")
    overlap, k = _expected_overlap(x)
    return overlap / (2 * k - overlap)


@register_metric(
    "de_overlap",
    description="share of the k measured DE genes among the top-k genes by |predicted "
    "change| (cell-eval's overlap_at_N)",
    best="higher",
    needs=("de_idx",),
    bounds=SHARE,
)
def _metric_de_overlap(x: MetricInputs) -> float:
    """cell-eval's ``overlap_at_N``, on the condition's top DE genes.

    cell-eval (``DEComparison.compute_overlap`` with ``k=None``, metric ``"overlap"``)
    takes as measured DE set the genes with FDR < 0.05, ranked by |fold change|, and
    scores the share of them among the same number of top predicted DE genes. We have no
    per-gene test on a predicted mean, so the measured set is the condition's top DE genes
    (``de_idx``: the top ``n_de`` non-dropout genes by Welch t in :func:`evaluate`) and the
    predicted ones the top-k by |predicted change|. Both sets then hold k genes, so the
    value is ``2 J / (1 + J)`` of ``de_jaccard`` J; with cell-eval's FDR-defined sets k
    varies by condition and the two tools can differ. Genes tied in |predicted change|
    share the places left (the expected overlap under a random order of the ties; cell-eval
    orders them as its sort does).
    """
    if len(x.de_idx) == 0:
        return float("nan")
    overlap, k = _expected_overlap(x)
    return overlap / k


@register_metric(
    "pearson_delta_pert",
    description="Pearson of predicted vs measured change over the mean perturbed training "
    "profile (Systema), all genes; on a screen of weak effects predicting no change "
    "scores high (its change over that profile is minus the mean perturbation's)",
    best="higher",
    needs=("reference",),
    full_depth="spearman_brown",
    bounds=CORRELATION,
)
def _metric_pearson_delta_pert(x: MetricInputs) -> float:
    """Systema's PearsonΔ with the perturbed reference (``corr_all_allpert``).

    Systema (Viñas Torné et al., Nat. Biotechnol. 2025;
    ``evaluation/pearson_delta_reference_metrics.py``) correlates ``X_true - reference``
    with ``X_pred - reference`` over all genes, the reference being the mean of the
    perturbed training conditions' centroids (``average_of_perturbation_centroids``):
    the same as here, where :func:`evaluate` passes the mean of the perturbed training
    conditions' means. By default the condition's targets are left out (Systema keeps
    them); ``exclude_targets=False`` gives Systema's value.
    """
    return pearson(x.predicted - x.reference, x.measured - x.reference)


@register_metric(
    "discrimination_l1",
    description="1 - share of the other scored conditions whose measured profile is closer "
    "(L1) to the prediction than its own (cell-eval's discrimination; 0.5 = random)",
    best="higher",
    needs=("others",),
    bounds=SHARE,
)
def _metric_discrimination_l1(x: MetricInputs) -> float:
    return _discrimination(x, 1)


@register_metric(
    "discrimination_l2",
    description="as discrimination_l1 with the L2 (Euclidean) distance",
    best="higher",
    needs=("others",),
    bounds=SHARE,
)
def _metric_discrimination_l2(x: MetricInputs) -> float:
    return _discrimination(x, 2)


@register_metric(
    "centroid_accuracy",
    description="share of the other scored conditions whose measured profile is farther "
    "(Euclidean) from the prediction than its own (Systema): discrimination_l2 but for ties, "
    "which count against it here (the two agree unless distances tie)",
    best="higher",
    needs=("others",),
    bounds=SHARE,
)
def _metric_centroid_accuracy(x: MetricInputs) -> float:
    """Systema's centroid accuracy (``calculate_centroid_accuracies``).

    For the prediction of one held-out condition, the share of the other held-out
    conditions whose measured profile (centroid) is strictly farther from it, in
    Euclidean distance over the genes, than its own measured profile. Distances do not
    depend on the centring: profiles, changes over control and changes over the mean
    perturbed profile give the same value, so no reference is needed. It is
    ``discrimination_l2`` except that a tie counts against the prediction (Systema
    counts strictly farther conditions). By default the targets of every scored
    condition are left out (Systema keeps every gene; ``exclude_targets=False`` gives its
    value). NaN with a single scored condition.
    """
    closer, tied, n_others = _closer_than_own(x, 2)
    return (n_others - closer - tied) / n_others if n_others else float("nan")


def list_metrics() -> pd.DataFrame:
    """List the registered metrics.

    Returns
    -------
    DataFrame indexed by ``name`` with columns ``description``, ``best``
    (``"higher"``/``"lower"``), ``needs`` (the optional :class:`MetricInputs` fields it
    uses, comma-separated; empty when none) and ``full_depth`` (how a split-half replicate
    value maps to a full-depth repeat, :func:`full_depth`).

    Examples
    --------
    >>> import perturbsim as ps
    >>> ps.tl.list_metrics().loc["mse_de", "needs"]
    'de_idx'
    """
    rows = [
        {
            "name": m.name,
            "description": m.description,
            "best": m.best,
            "needs": ", ".join(m.needs),
            "full_depth": m.full_depth,
        }
        for m in METRICS.values()
    ]
    return pd.DataFrame(rows).set_index("name")


def _dense(x: object) -> np.ndarray:
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def _truth_means(
    truth: AnnData | PseudobulkStats,
    conditions: list[str],
    genes: np.ndarray,
    what: str = "predicted conditions",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Measured means ``(n, G)`` of ``conditions`` on ``genes``, and the truth's control mean.

    ``what`` names the conditions in the error when the truth lacks some.
    """
    if isinstance(truth, AnnData) and SETUP in truth.uns.get(UNS, {}):  # a screen of cells
        truth = current_stats(truth)
    if isinstance(truth, PseudobulkStats):
        truth_genes, rows = np.asarray(truth.genes, dtype=str), truth.conditions
        means = truth.mean
    elif isinstance(truth, AnnData):
        truth_genes, rows = np.asarray(truth.var_names, dtype=str), np.asarray(truth.obs_names)
        means = _dense(truth.X)
    else:
        raise PerturbsimError(
            f"truth must be an AnnData or PseudobulkStats, got {type(truth).__name__}"
        )
    col = {g: i for i, g in enumerate(truth_genes)}
    missing_genes = [g for g in genes if g not in col]
    if missing_genes:
        raise PerturbsimError(
            f"predicted genes missing from the truth: {[str(g) for g in missing_genes[:10]]}"
        )
    row = {c: i for i, c in enumerate(map(str, rows))}
    missing = [c for c in conditions if c not in row]
    if missing:
        cells = isinstance(truth, AnnData) and len(missing) == len(conditions)
        hint = (
            " (a screen of cells? set it up first, perturbsim.pp.setup, or pass "
            "perturbsim.pp.measured_profiles(adata))"
            if cells
            else ""
        )
        raise PerturbsimError(f"{what} missing from the truth: {missing[:10]}{hint}")
    cols = np.array([col[g] for g in genes], dtype=np.int64)
    selected = np.asarray(
        means[np.array([row[c] for c in conditions], dtype=np.int64)][:, cols], dtype=np.float64
    )
    _refuse_non_finite(selected, conditions, genes, "the truth")
    control = means[row[CONTROL]][cols] if CONTROL in row else None
    return selected, control


def _refuse_non_finite(
    values: np.ndarray, rows: Sequence[str], genes: np.ndarray, what: str
) -> None:
    """Raise naming the first row and gene of ``values`` that is NaN or infinite."""
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise PerturbsimError(
            f"{what} holds {int(bad.sum())} non-finite value(s), e.g. {values[row, col]} for "
            f"{rows[row]!r} at gene {genes[col]!r}"
        )


ROUNDING_FLOOR = 1e-12
"""Absolute difference below which a stored prediction equals the control or the reference
(log-normalised expression: a change a million times below any measurable one)."""


def _stored_predictions(pred: AnnData) -> np.ndarray:
    """The predicted means as stored (dense); a non-finite one is an error naming its gene."""
    stored = pred.X.toarray() if sparse.issparse(pred.X) else np.asarray(pred.X)
    _refuse_non_finite(stored, list(map(str, pred.obs_names)), pred.var_names, "pred")
    return stored


def _equal_when_stored(stored: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Where predictions stored below float64 equal ``anchor`` at their precision (else none).

    ``predict`` stores float32, so a prediction of exactly the control (or the reference)
    differs from the float64 value by rounding (~1e-7 relative; where the value is 0, by
    what is left of a sum that cancels, ~1e-18), which would give a spurious change with
    non-zero variance. Equal: within the stored type's machine epsilon relative to
    ``anchor``, or :data:`ROUNDING_FLOOR` absolute.
    """
    if np.issubdtype(stored.dtype, np.floating) and stored.dtype.itemsize < 8:
        relative = float(np.finfo(stored.dtype).eps)
        return np.isclose(stored, anchor, rtol=relative, atol=ROUNDING_FLOOR)
    return np.zeros(np.shape(stored), dtype=bool)


def _predicted_means(stored: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Predicted means in float64; values equal to control at the stored precision are control."""
    predicted = stored.astype(np.float64)
    unchanged = _equal_when_stored(stored, control[None, :])
    predicted[unchanged] = np.broadcast_to(control, predicted.shape)[unchanged]
    return predicted


def _reference_for(
    stored: np.ndarray, predicted: np.ndarray, reference: np.ndarray | None
) -> np.ndarray | None:
    """``reference`` for one condition, equal to its prediction where they agree when stored.

    The "mean" baseline predicts the reference itself: its change over the reference is 0,
    not float32 rounding (whose correlation with the measured change would be noise).
    """
    if reference is None:
        return None
    return np.where(_equal_when_stored(stored, reference), predicted, reference)


def _vector(values: np.ndarray, n_genes: int, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.shape != (n_genes,):
        raise PerturbsimError(
            f"{what} must have one value per gene ({n_genes}), got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        first = int(np.flatnonzero(~np.isfinite(values))[0])
        raise PerturbsimError(f"{what} is {values[first]} at gene number {first}: NaN or infinite")
    return values


_SOURCE = {
    "variance": "a predicted variance (pred.layers['variance'])",
    "de_idx": "de_genes",
    "reference": "reference_mean",
}
"""What :func:`score` must be given to fill an optional input; the others are always filled."""


def checked_metric_names(metrics: Sequence[str] | None) -> list[str] | None:
    """``metrics`` as a list of registered metric names, each once (``None``: all).

    Raises
    ------
    PerturbsimError
        One string instead of a list, an empty list, an unknown name or a repeated one.
    """
    if metrics is None:
        return None
    check_list("metrics", metrics, "metric names (None: all)")
    names = list(metrics)
    if not names:
        raise PerturbsimError("metrics must name at least one metric (None: all)")
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise PerturbsimError(f"unknown metric {unknown[0]!r}; available: {list(METRICS)}")
    repeated = sorted({m for m in names if names.count(m) > 1})
    if repeated:
        raise PerturbsimError(f"metrics name {repeated[0]!r} more than once")
    return names


def _chosen_metrics(metrics: Sequence[str] | None, available: set[str]) -> list[Metric]:
    """The metrics to compute: those named, or every one whose inputs are ``available``."""
    names = checked_metric_names(metrics)
    if names is None:
        return [m for m in METRICS.values() if set(m.needs) <= available]
    chosen = [METRICS[m] for m in names]
    for m in chosen:
        missing = [n for n in m.needs if n not in available]
        if missing:
            raise PerturbsimError(f"metric {m.name!r} needs {_SOURCE[missing[0]]}")
    return chosen


def _de_indices(
    de_genes: Mapping[str, Sequence[str]], conditions: list[str], col: Mapping[str, int]
) -> dict[str, np.ndarray]:
    """Condition -> gene indices of its DE genes (``""`` padding dropped)."""
    missing = [c for c in conditions if c not in de_genes]
    if missing:
        raise PerturbsimError(f"de_genes has no entry for conditions {missing[:10]}")
    indices = {}
    for c in conditions:
        check_list(f"de_genes[{c!r}]", de_genes[c], "genes")
        listed = [str(g) for g in de_genes[c] if str(g) != ""]
        unknown = [g for g in listed if g not in col]
        if unknown:
            raise PerturbsimError(f"DE genes of {c!r} not among the genes: {unknown[:10]}")
        twice = sorted(pd.Index(listed)[pd.Index(listed).duplicated()])
        if twice:
            raise PerturbsimError(f"DE genes of {c!r} name {twice[0]!r} more than once")
        indices[c] = np.array([col[g] for g in listed], dtype=np.int64)
    return indices


def _target_indices(condition: str, col: Mapping[str, int]) -> np.ndarray:
    """Gene indices of the measured genes perturbed in ``condition``."""
    return np.array([col[g] for g in genes_of(condition) if g in col], dtype=np.int64)


_INDEX_INPUTS = ("de_idx", "targets")
"""Fields of :class:`MetricInputs` holding gene indices; the other arrays end in a gene axis."""


def _without(inputs: MetricInputs, excluded: np.ndarray) -> MetricInputs:
    """``inputs`` without the genes ``excluded``, gene indices renumbered; as is if none."""
    if excluded.size == 0:
        return inputs
    n_genes = inputs.predicted.size
    keep = np.setdiff1d(np.arange(n_genes), excluded)
    position = np.full(n_genes, -1, dtype=np.int64)
    position[keep] = np.arange(keep.size)
    changes = {}
    for f in fields(inputs):
        value = getattr(inputs, f.name)
        if value is None:
            continue
        if f.name in _INDEX_INPUTS:
            moved = position[value]
            changes[f.name] = moved[moved >= 0]
        else:
            changes[f.name] = value[..., keep]
    return replace(inputs, **changes)


def score(
    pred: AnnData,
    truth: AnnData | PseudobulkStats,
    *,
    control_mean: np.ndarray | None = None,
    de_genes: Mapping[str, Sequence[str]] | None = None,
    reference_mean: np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
    exclude_targets: bool = True,
    comparison: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Score predicted mean profiles against measured ones, per condition.

    For each condition of ``pred`` the function builds one :class:`MetricInputs` and calls
    every chosen metric on it. The optional inputs come from: ``variance``, the
    prediction's ``.layers["variance"]``; ``de_idx``, ``de_genes``; ``targets``, the genes of
    the condition's label that are among the predicted genes; ``reference``,
    ``reference_mean``; ``others``, the measured means of the other conditions of ``pred``
    (or of ``comparison``).

    By default (``exclude_targets=True``) the perturbed genes are left out of every
    metric, all-gene and DE-gene alike: a metric of one condition does not see that
    condition's measured targets, and a metric comparing it with the other conditions
    (``discrimination_l1``, ``discrimination_l2``, ``centroid_accuracy``) does not see the
    measured targets of any condition of ``pred`` (and of ``comparison``), so that no
    distance rewards or punishes a target's own change. ``exclude_targets=False`` keeps
    every gene, as GEARS and Systema score.

    Parameters
    ----------
    pred
        Predictions, one row per condition (``obs_names`` = canonical labels, as returned by
        :meth:`~perturbsim.models.PerturbationModel.predict`); predicted means in ``X``.
    truth
        Measured means: :class:`~perturbsim.pp.PseudobulkStats`, an AnnData with one row
        per condition (means in ``X``, as :func:`~perturbsim.pp.measured_profiles` gives),
        or the set-up screen itself (its cells: its statistics are read, or computed).
        Must hold every condition of ``pred`` and every gene of ``pred`` (matched by name).
    control_mean
        Mean control profile, ``(G,)`` in the genes of ``pred``. ``None`` takes the ``ctrl``
        row of ``truth``.
    de_genes
        Condition -> its top DE genes (by convention the top 20, e.g. from
        :meth:`perturbsim.pp.DEGenes.top_genes`); empty strings (padding) are ignored.
        Required for the ``*_de`` metrics, ``de_jaccard`` and ``de_overlap``, which compare
        the top-k predicted genes (by absolute predicted change; genes tied there share
        the places left, as a random order of the ties would on average) with the k
        given. Excluded targets among them are dropped: to keep k genes, rank them
        without the targets (``DEGenes.top_genes(c, exclude=perturbsim.pp.genes_of(c))``,
        as :func:`evaluate` does).
    reference_mean
        Mean of the perturbed training profiles, ``(G,)``, for ``pearson_delta_pert``.
    metrics
        Metric names (see :func:`list_metrics`); ``None`` computes every metric whose
        inputs were given.
    exclude_targets
        Leave the perturbed genes out of every metric (see above); ``False`` keeps them.
    comparison
        The conditions whose measured means a prediction is told apart from by the metrics
        that compare conditions (each condition's own left out), in any form
        :func:`perturbsim.pp.parse_label` reads (gene order free, ``"A+ctrl"``), each
        counted once; default: those of ``pred``. Models that predict different subsets
        of the same test conditions are comparable only against the same ones
        (:func:`evaluate` gives every model, and the baseline, all of a split's test
        conditions).

    Returns
    -------
    Tidy DataFrame with columns ``condition``, ``metric``, ``value``; one row per condition
    and metric, conditions in the order of ``pred``. Pearson correlations with a constant
    vector (e.g. the change predicted by the no-perturbation model, or the change of
    control itself) are NaN, as are ratios whose reference error is 0, and the metrics
    comparing conditions when there is no other condition to compare with (``pred``, or
    ``comparison``, holds a single one). A predicted value stored in
    float32 that equals the control mean at float32 precision counts as no change, and one
    that equals ``reference_mean`` so as no change over the reference.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> pred = ps.TrainMean(adata).fit().predict(["KLF1", "KLF1+MAP2K6"])
    >>> stats = ps.pp.compute_pseudobulk(adata)
    >>> table = ps.tl.score(pred, stats, metrics=["mse", "pearson_delta"])
    >>> table.shape
    (4, 3)
    """
    check_anndata(pred, "pred", rows="conditions")
    exclude_targets = check_flag("exclude_targets", exclude_targets)
    genes = np.asarray(pred.var_names, dtype=str)
    conditions = [str(c) for c in pred.obs_names]
    repeated = pd.Index(conditions)[pd.Index(conditions).duplicated()]
    if len(repeated):
        raise PerturbsimError(
            f"pred holds condition {repeated[0]!r} more than once (one row per condition: "
            "each is told apart from the others)"
        )
    given = {
        "variance": VARIANCE_LAYER in pred.layers,
        "de_idx": de_genes is not None,
        "reference": reference_mean is not None,
    }
    available = {n for n in OPTIONAL_INPUTS if given.get(n, True)}  # the rest: always
    chosen = _chosen_metrics(metrics, available)
    needed = {n for m in chosen for n in m.needs}

    true, truth_control = _truth_means(truth, conditions, genes)
    if control_mean is None:
        if truth_control is None:
            raise PerturbsimError("truth has no 'ctrl' row: pass control_mean")
        control_mean = truth_control
    control = _vector(control_mean, len(genes), "control_mean")
    stored = _stored_predictions(pred)
    predicted = _predicted_means(stored, control)
    col = {g: i for i, g in enumerate(genes)}
    variance = _dense(pred.layers[VARIANCE_LAYER]) if "variance" in needed else None
    de_index = _de_indices(de_genes, conditions, col) if "de_idx" in needed else {}
    reference = (
        _vector(reference_mean, len(genes), "reference_mean") if "reference" in needed else None
    )

    targets = [_target_indices(c, col) for c in conditions]
    check_list("comparison", comparison, "condition labels", optional=True)
    pool = conditions
    if comparison is not None:  # any form a label takes, each condition once
        pool = list(dict.fromkeys(canonical_label(parse_label(str(c))) for c in comparison))
        if not pool:
            raise PerturbsimError(
                "comparison is empty: name the conditions to tell predictions apart from, or "
                "pass None (the conditions of pred)"
            )
    pool_means = (
        true if comparison is None else _truth_means(truth, pool, genes, "comparison conditions")[0]
    )
    pool_targets = targets if comparison is None else [_target_indices(c, col) for c in pool]
    every_target = np.unique(np.concatenate([np.empty(0, dtype=np.int64), *targets, *pool_targets]))

    records = []
    for i, cond in enumerate(conditions):
        inputs = MetricInputs(
            predicted=predicted[i],
            measured=true[i],
            control=control,
            variance=None if variance is None else variance[i],
            de_idx=de_index.get(cond),
            targets=targets[i] if "targets" in needed else None,
            reference=None
            if reference is None
            else _reference_for(stored[i], predicted[i], reference),
            others=(
                np.delete(pool_means, [j for j, c in enumerate(pool) if c == cond], axis=0)
                if "others" in needed
                else None
            ),
        )
        own = _without(inputs, targets[i]) if exclude_targets else inputs
        shared = _without(inputs, every_target) if exclude_targets else inputs
        records += [
            (cond, m.name, float(m.func(shared if "others" in m.needs else own))) for m in chosen
        ]
    logger.info("scored %d conditions on %d metrics", len(conditions), len(chosen))
    return pd.DataFrame(records, columns=["condition", "metric", "value"])
