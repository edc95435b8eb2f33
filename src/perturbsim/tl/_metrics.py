"""Per-condition metrics of predicted mean expression, from one registry.

Every metric is registered once (name, description, best value, what it needs) so the
report, the CLI and :func:`list_metrics` list the same table, as in cell-eval. Metrics
compare pseudobulk means: the predicted mean of a condition, its measured mean, the
control mean, the condition's top differentially expressed (DE) genes and optionally the
mean perturbed training profile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._errors import PerturbsimError
from .._keys import CONTROL
from ..pp import PseudobulkStats

logger = logging.getLogger(__name__)

MetricFunc = Callable[..., float]
"""``func(pred, true, *, control, de_idx, reference) -> float``; all arrays ``(G,)``."""


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
        ``func(pred, true, *, control, de_idx, reference) -> float`` on one condition.
    needs_de
        Uses the condition's DE genes (``de_idx``).
    needs_reference
        Uses the mean perturbed training profile (``reference``).
    """

    name: str
    description: str
    best: Literal["higher", "lower"]
    func: MetricFunc
    needs_de: bool = False
    needs_reference: bool = False


METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    *,
    description: str,
    best: Literal["higher", "lower"],
    needs_de: bool = False,
    needs_reference: bool = False,
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
    needs_de
        The function uses ``de_idx``.
    needs_reference
        The function uses ``reference``.

    Returns
    -------
    The decorator, which returns the function unchanged.
    """
    if best not in ("higher", "lower"):
        raise PerturbsimError(f"best must be 'higher' or 'lower', got {best!r}")

    def decorate(func: MetricFunc) -> MetricFunc:
        if name in METRICS:
            raise PerturbsimError(f"metric {name!r} is already registered")
        METRICS[name] = Metric(name, description, best, func, needs_de, needs_reference)
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


@register_metric("mse", description="mean squared error of the mean, all genes", best="lower")
def _metric_mse(pred, true, *, control, de_idx, reference) -> float:
    return _mse(pred, true)


@register_metric(
    "mse_de",
    description="mean squared error of the mean, top DE genes",
    best="lower",
    needs_de=True,
)
def _metric_mse_de(pred, true, *, control, de_idx, reference) -> float:
    return _mse(pred[de_idx], true[de_idx])


@register_metric(
    "nmse",
    description="mse / mse of predicting control (no-perturbation model), all genes",
    best="lower",
)
def _metric_nmse(pred, true, *, control, de_idx, reference) -> float:
    return _ratio(_mse(pred, true), _mse(control, true))


@register_metric(
    "nmse_de",
    description="mse / mse of predicting control, top DE genes",
    best="lower",
    needs_de=True,
)
def _metric_nmse_de(pred, true, *, control, de_idx, reference) -> float:
    return _ratio(_mse(pred[de_idx], true[de_idx]), _mse(control[de_idx], true[de_idx]))


@register_metric(
    "pearson_delta",
    description="Pearson of predicted vs measured change over control, all genes",
    best="higher",
)
def _metric_pearson_delta(pred, true, *, control, de_idx, reference) -> float:
    return pearson(pred - control, true - control)


@register_metric(
    "pearson_delta_de",
    description="Pearson of predicted vs measured change over control, top DE genes",
    best="higher",
    needs_de=True,
)
def _metric_pearson_delta_de(pred, true, *, control, de_idx, reference) -> float:
    return pearson(pred[de_idx] - control[de_idx], true[de_idx] - control[de_idx])


@register_metric(
    "direction_error_de",
    description="fraction of top DE genes whose predicted change has the wrong sign",
    best="lower",
    needs_de=True,
)
def _metric_direction_error_de(pred, true, *, control, de_idx, reference) -> float:
    if len(de_idx) == 0:
        return float("nan")
    predicted = np.sign(pred[de_idx] - control[de_idx])
    measured = np.sign(true[de_idx] - control[de_idx])
    return float(np.mean(predicted != measured))


@register_metric(
    "de_jaccard",
    description="Jaccard of the top-k genes by |predicted change| and the k measured DE genes",
    best="higher",
    needs_de=True,
)
def _metric_de_jaccard(pred, true, *, control, de_idx, reference) -> float:
    k = len(de_idx)
    if k == 0:
        return float("nan")
    ranked = np.argsort(-np.abs(pred - control), kind="stable")[:k]
    top, measured = set(ranked.tolist()), set(np.asarray(de_idx).tolist())
    return len(top & measured) / len(top | measured)


@register_metric(
    "pearson_delta_pert",
    description="Pearson of predicted vs measured change over the mean perturbed training "
    "profile (Systema), all genes",
    best="higher",
    needs_reference=True,
)
def _metric_pearson_delta_pert(pred, true, *, control, de_idx, reference) -> float:
    return pearson(pred - reference, true - reference)


def list_metrics() -> pd.DataFrame:
    """List the registered metrics.

    Returns
    -------
    DataFrame indexed by ``name`` with columns ``description``, ``best``
    (``"higher"``/``"lower"``), ``needs_de`` and ``needs_reference``.

    Examples
    --------
    >>> import perturbsim as ps
    >>> "pearson_delta" in ps.tl.list_metrics().index
    True
    """
    rows = [
        {
            "name": m.name,
            "description": m.description,
            "best": m.best,
            "needs_de": m.needs_de,
            "needs_reference": m.needs_reference,
        }
        for m in METRICS.values()
    ]
    return pd.DataFrame(rows).set_index("name")


def _dense(x: object) -> np.ndarray:
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def _truth_means(
    truth: AnnData | PseudobulkStats, conditions: list[str], genes: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Measured means ``(n, G)`` of ``conditions`` on ``genes``, and the truth's control mean."""
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
        raise PerturbsimError(f"predicted genes missing from the truth: {missing_genes[:10]}")
    row = {c: i for i, c in enumerate(map(str, rows))}
    missing = [c for c in conditions if c not in row]
    if missing:
        raise PerturbsimError(f"predicted conditions missing from the truth: {missing[:10]}")
    cols = np.array([col[g] for g in genes], dtype=np.int64)
    selected = means[np.array([row[c] for c in conditions], dtype=np.int64)][:, cols]
    control = means[row[CONTROL]][cols] if CONTROL in row else None
    return np.asarray(selected, dtype=np.float64), control


def _predicted_means(pred: AnnData, control: np.ndarray) -> np.ndarray:
    """Predicted means in float64; values equal to control at the stored precision are control.

    ``predict`` stores float32, so a prediction of "no change" differs from a float64 control
    by rounding (~1e-7), which would give a spurious change with non-zero variance.
    """
    stored = pred.X.toarray() if sparse.issparse(pred.X) else np.asarray(pred.X)
    predicted = stored.astype(np.float64)
    if np.issubdtype(stored.dtype, np.floating) and stored.dtype.itemsize < 8:
        unchanged = stored == control.astype(stored.dtype)[None, :]
        predicted[unchanged] = np.broadcast_to(control, predicted.shape)[unchanged]
    return predicted


def _vector(values: np.ndarray, n_genes: int, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.shape != (n_genes,):
        raise PerturbsimError(
            f"{what} must have one value per gene ({n_genes}), got shape {values.shape}"
        )
    return values


def score(
    pred: AnnData,
    truth: AnnData | PseudobulkStats,
    *,
    control_mean: np.ndarray | None = None,
    de_genes: Mapping[str, Sequence[str]] | None = None,
    reference_mean: np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Score predicted mean profiles against measured ones, per condition.

    Parameters
    ----------
    pred
        Predictions, one row per condition (``obs_names`` = canonical labels, as returned by
        :meth:`~perturbsim.models.PerturbationModel.predict`); predicted means in ``X``.
    truth
        Measured means: :class:`~perturbsim.pp.PseudobulkStats` or an AnnData with one row
        per condition (means in ``X``). Must hold every condition of ``pred`` and every
        gene of ``pred`` (matched by name).
    control_mean
        Mean control profile, ``(G,)`` in the genes of ``pred``. ``None`` takes the ``ctrl``
        row of ``truth``.
    de_genes
        Condition -> its top DE genes (by convention the top 20, e.g. from
        :meth:`perturbsim.pp._de.DEGenes.top_genes`); empty strings (padding) are ignored.
        Required for the ``*_de`` metrics and ``de_jaccard``, which compares the top-k
        predicted genes (by absolute predicted change, ties by gene order) with the k given.
    reference_mean
        Mean of the perturbed training profiles, ``(G,)``, for ``pearson_delta_pert``.
    metrics
        Metric names (see :func:`list_metrics`); ``None`` computes every metric whose
        inputs were given.

    Returns
    -------
    Tidy DataFrame with columns ``condition``, ``metric``, ``value``; one row per condition
    and metric, conditions in the order of ``pred``. Pearson correlations with a constant
    vector (e.g. the change predicted by the no-perturbation model, or the change of
    control itself) are NaN, as are ratios whose reference error is 0. A predicted value
    stored in float32 that equals the control mean at float32 precision counts as no change.

    Examples
    --------
    >>> import perturbsim as ps
    >>> from perturbsim.models._simple import TrainMean
    >>> adata = ps.ds.norman2019_subset()
    >>> pred = TrainMean(adata).fit().predict(["KLF1", "KLF1+MAP2K6"])
    >>> stats = ps.pp.PseudobulkStats.from_adata(adata)
    >>> table = ps.tl.score(pred, stats, metrics=["mse", "pearson_delta"])
    >>> table.shape
    (4, 3)
    """
    if not isinstance(pred, AnnData):
        raise PerturbsimError(f"pred must be an AnnData, got {type(pred).__name__}")
    genes = np.asarray(pred.var_names, dtype=str)
    conditions = [str(c) for c in pred.obs_names]
    n_genes = len(genes)

    if metrics is None:
        chosen = [
            m
            for m in METRICS.values()
            if (de_genes is not None or not m.needs_de)
            and (reference_mean is not None or not m.needs_reference)
        ]
    else:
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise PerturbsimError(f"unknown metrics {unknown}; available: {list(METRICS)}")
        chosen = [METRICS[m] for m in metrics]
        for m in chosen:
            if m.needs_de and de_genes is None:
                raise PerturbsimError(f"metric {m.name!r} needs de_genes")
            if m.needs_reference and reference_mean is None:
                raise PerturbsimError(f"metric {m.name!r} needs reference_mean")

    true, truth_control = _truth_means(truth, conditions, genes)
    if control_mean is None:
        if truth_control is None:
            raise PerturbsimError("truth has no 'ctrl' row: pass control_mean")
        control_mean = truth_control
    control = _vector(control_mean, n_genes, "control_mean")
    reference = (
        None if reference_mean is None else _vector(reference_mean, n_genes, "reference_mean")
    )
    predicted = _predicted_means(pred, control)

    de_index: dict[str, np.ndarray] = {}
    if any(m.needs_de for m in chosen):
        assert de_genes is not None
        col = {g: i for i, g in enumerate(genes)}
        missing = [c for c in conditions if c not in de_genes]
        if missing:
            raise PerturbsimError(f"de_genes has no entry for conditions {missing[:10]}")
        for c in conditions:
            listed = [str(g) for g in de_genes[c] if str(g) != ""]  # "" pads short lists
            unknown = [g for g in listed if g not in col]
            if unknown:
                raise PerturbsimError(f"DE genes of {c!r} not among the genes: {unknown[:10]}")
            de_index[c] = np.array([col[g] for g in listed], dtype=np.int64)

    records = []
    for i, cond in enumerate(conditions):
        for m in chosen:
            value = m.func(
                predicted[i],
                true[i],
                control=control,
                de_idx=de_index.get(cond),
                reference=reference,
            )
            records.append((cond, m.name, float(value)))
    logger.info("scored %d conditions on %d metrics", len(conditions), len(chosen))
    return pd.DataFrame(records, columns=["condition", "metric", "value"])
