"""How large a prediction's error is expected to be, per condition and gene, from held-out data.

A prediction's squared error on gene ``g`` of condition ``c`` is modelled as
``ratio(c) · scale[g]``:

- ``scale`` (:func:`gene_scale`) is how much each gene moves under a perturbation, the
  spread of the training changes around their mean plus their typical squared standard
  error: a gene that never responds cannot be mispredicted by much;
- ``ratio`` (:class:`ErrorScale`) is how much of that spread a prediction leaves
  unexplained, fitted on held-out conditions, falling linearly (as far as they agree it
  does: the slope is shrunk by its noise, :func:`fit_error_scale`) with the condition's
  *support*: how closely its genes are tied to genes measured alone (1 for a measured
  gene, the similarity of its most similar measured neighbour in the GO graph otherwise;
  :meth:`perturbsim.graphs.GeneGraph.support`). A gene with no measured neighbour can only
  be predicted from what perturbations do on average, and gets the largest ratio. The
  line holds only over the supports of the conditions that fitted it: a support outside
  them takes the line's value at the nearest of them (a line fitted on a few conditions
  extrapolates wildly).

The predictive variance of a prediction is then ``ratio(c) · scale``: its square root is
the standard deviation of the normal predictive interval of each gene.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

MIN_CONDITIONS = 3
"""Fewest held-out conditions that fit an error scale; fewer keep the default (or a pooled
fit, :func:`fit_error_scales`)."""
FLOOR = 0.05
"""Smallest ratio, as a share of the unsupported one: no prediction is taken as exact."""


@dataclass(frozen=True)
class ErrorScale:
    """Expected squared error as a share of the gene scale: ``intercept - slope · support``.

    The support is first clipped to :attr:`support_range`, the supports of the conditions
    that fitted the line, so that it is never extrapolated past them.

    Attributes
    ----------
    intercept
        The line's share left unexplained at support 0 (no measured gene near the
        perturbation); read there only if :attr:`support_range` reaches 0.
    slope
        How much of it each unit of support removes (0 when held-out errors do not fall
        with support, or not clearly), within :attr:`support_range`.
    n_conditions
        Held-out conditions that fitted it (0: the default, ``intercept`` 1, ``slope`` 0,
        as if the prediction were the mean of the training perturbations).
    pooled
        Whether it was fitted on the conditions of several kinds, the kind having too few of
        its own (:func:`fit_error_scales`); not in :meth:`to_dict`.
    support_range
        The lowest and highest support of the conditions that fitted it; None for the
        default, and in files saved before it was kept (their lines are extrapolated).

    Examples
    --------
    >>> import numpy as np
    >>> fitted = ErrorScale(1.0, 0.6, 4, support_range=(0.2, 0.5))
    >>> fitted.ratio(np.array([0.0, 0.3, 1.0])).round(2).tolist()  # 0 and 1 read at 0.2, 0.5
    [0.88, 0.82, 0.7]
    """

    intercept: float = 1.0
    slope: float = 0.0
    n_conditions: int = 0
    pooled: bool = False
    support_range: tuple[float, float] | None = None

    def ratio(self, support: np.ndarray) -> np.ndarray:
        """The expected share at each ``support`` (at least :data:`FLOOR` of the intercept).

        ``support`` is clipped to :attr:`support_range` first.
        """
        support = np.asarray(support, dtype=float)
        if self.support_range is not None:
            support = np.clip(support, *self.support_range)
        return np.maximum(self.intercept - self.slope * support, FLOOR * self.intercept)

    def to_dict(self) -> dict[str, float | int]:
        """The line's fields, for a model's JSON configuration (:meth:`from_dict`).

        Not ``pooled`` nor :attr:`support_range`: the fields earlier releases read, which
        would refuse others; a model saves those two beside them.
        """
        return {"intercept": self.intercept, "slope": self.slope, "n_conditions": self.n_conditions}

    @classmethod
    def from_dict(
        cls,
        saved: Mapping[str, Any],
        *,
        pooled: bool = False,
        support_range: Sequence[float] | None = None,
    ) -> ErrorScale:
        """An error scale from :meth:`to_dict`'s fields and the two saved beside them."""
        return cls(
            float(saved["intercept"]),
            float(saved["slope"]),
            int(saved["n_conditions"]),
            pooled,
            None if support_range is None else (float(support_range[0]), float(support_range[1])),
        )


def gene_scale(changes: np.ndarray, squared_se: np.ndarray) -> np.ndarray:
    """Per-gene scale of prediction errors, ``(G,)``.

    Parameters
    ----------
    changes
        ``(P, G)`` measured changes of the training perturbations.
    squared_se
        ``(P, G)`` their squared standard errors.

    Returns
    -------
    The variance of each gene's changes over the perturbations (0 for one perturbation)
    plus the median of its squared standard errors; positive wherever a gene was measured
    with noise.
    """
    spread = changes.var(axis=0) if changes.shape[0] > 1 else np.zeros(changes.shape[1])
    return spread + np.median(squared_se, axis=0)


def error_ratio(residual: np.ndarray, scale: np.ndarray) -> float:
    """A held-out condition's mean squared error in gene scales: ``mean(r²) / mean(scale)``.

    Parameters
    ----------
    residual
        Measured minus predicted change on the genes scored (its own targets left out).
    scale
        :func:`gene_scale` on the same genes.

    Returns
    -------
    The mean of ``residual²`` over the mean of ``scale``, a float >= 0; the mean scale is
    floored at the smallest positive float, so a zero scale gives a very large ratio (0 for
    a zero residual) rather than a division by zero.
    """
    return float((residual**2).mean() / max(scale.mean(), np.finfo(float).tiny))


def fit_error_scale(ratios: np.ndarray, supports: np.ndarray) -> ErrorScale:
    """Least-squares line of ``ratios`` on ``supports``, its slope shrunk by its noise.

    A negative slope is shrunk towards 0 as the stacking weights are shrunk towards their
    defaults (:func:`~perturbsim.models._stacking.shrunk_fit`): ``b · max(0, 1 - v / b²)``,
    with ``v`` the posterior mean of its sampling variance, ``se² · ν / (ν - 2)`` on
    ``ν = n - 2`` degrees of freedom (``se``: its least-squares standard error; no slope
    with four conditions or fewer), and the line goes through the conditions' mean
    support and mean ratio. Errors fall with support only as far as the held-out
    conditions agree they do.

    With fewer than :data:`MIN_CONDITIONS` conditions the default :class:`ErrorScale`;
    when the supports do not vary, or errors do not fall as support rises, or the slope
    shrinks to 0, the mean ratio at every support. The line keeps the range of
    ``supports`` (it is not extrapolated).

    Examples
    --------
    >>> import numpy as np
    >>> supports = np.linspace(0.0, 0.6, 8)
    >>> round(fit_error_scale(1.0 - 0.5 * supports, supports).slope, 6)  # no noise: kept whole
    0.5
    >>> noisy = 1.0 - 0.5 * supports + np.array([0.5, -0.5] * 4)
    >>> fit_error_scale(noisy, supports).slope  # the conditions disagree: flat
    0.0
    """
    ratios = np.asarray(ratios, dtype=float)
    supports = np.asarray(supports, dtype=float)
    n = ratios.size
    if n < MIN_CONDITIONS:
        return ErrorScale()
    support_range = (float(supports.min()), float(supports.max()))
    if np.ptp(supports) > 0:
        fit = stats.linregress(supports, ratios)
        dof = n - 2
        if fit.slope < 0 and dof > 2:
            noise = fit.stderr**2 * dof / (dof - 2)
            slope = fit.slope * max(0.0, 1.0 - noise / fit.slope**2)
            if slope < 0:
                intercept = ratios.mean() - slope * supports.mean()
                return ErrorScale(float(intercept), float(-slope), n, support_range=support_range)
    return ErrorScale(float(ratios.mean()), 0.0, n, support_range=support_range)


def fit_error_scales(
    ratios: np.ndarray,
    supports: np.ndarray,
    kinds: Sequence[str],
    *,
    all_kinds: Sequence[str],
    pooled_kinds: Sequence[str],
) -> dict[str, ErrorScale]:
    """:func:`fit_error_scale` per kind.

    On its own conditions when it has enough, else (for one of ``pooled_kinds``) on the
    conditions of those kinds together (``pooled``), else the default :class:`ErrorScale`.

    Examples
    --------
    >>> import numpy as np
    >>> ratios, supports = np.array([0.9, 0.8, 0.7, 0.6]), np.array([0.0, 0.2, 0.4, 0.6])
    >>> fitted = fit_error_scales(
    ...     ratios, supports, ["single"] * 3 + ["combo"], all_kinds=["single", "combo", "pair"],
    ...     pooled_kinds=["single", "combo"],
    ... )
    >>> fitted["single"].pooled, fitted["combo"].pooled, fitted["combo"].n_conditions
    (False, True, 4)
    >>> fitted["combo"].support_range  # the pool's supports
    (0.0, 0.6)
    >>> fitted["pair"]  # not poolable, none of its own: the default
    ErrorScale(intercept=1.0, slope=0.0, n_conditions=0, pooled=False, support_range=None)
    """
    kinds = np.asarray(kinds, dtype=object)
    in_pool = np.isin(kinds, list(pooled_kinds))
    pooled = fit_error_scale(ratios[in_pool], supports[in_pool])
    if pooled.n_conditions:
        pooled = replace(pooled, pooled=True)
    fitted = {}
    for kind in all_kinds:
        own = kinds == kind
        if own.sum() >= MIN_CONDITIONS:
            fitted[kind] = fit_error_scale(ratios[own], supports[own])
        else:
            fitted[kind] = pooled if kind in pooled_kinds else ErrorScale()
    return fitted
