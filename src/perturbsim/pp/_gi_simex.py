"""Simulation-extrapolation (SIMEX) of a measured pair's interaction coefficients.

A measured pair's coefficients are a fit of its change on its two singles' measured
changes, and the singles' noise biases that fit (errors in variables:
:func:`perturbsim.pp._gi.singles_reliability`). SIMEX (Cook & Stefanski 1994) measures the
bias instead of deriving it: the fit is repeated on the measured changes with more noise
added, ``λ`` times the measurement's own (``λ`` in :data:`SIMEX_LEVELS`, each
:data:`SIMEX_REPLICATES` times), and the mean coefficients, a smooth function of the total
noise ``1 + λ``, are extrapolated by a quadratic in ``λ`` back to ``λ = -1``, no noise. It
keeps the estimator (Theil-Sen, whose bias no closed form gives) and, as quadratic
extrapolation does, tends to correct too little rather than too much.

The noise added is the measurement's: each gene's change ``Δ = mean - mean_ctrl`` of A, B
and A+B has the error of its own mean (independent between conditions) minus the control
mean's error, which the three share; both are drawn with the squared standard errors of the
means (``.layers["mean_variance"]``, the control's ``.var["control_mean_variance"]``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SIMEX_LEVELS: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
"""Added noise, in multiples of the measurement's: the extrapolation's points beside 0."""
SIMEX_REPLICATES = 20
"""Fits averaged at each level of added noise."""
SIMEX_TARGET = -1.0
"""The level extrapolated to: the measurement's own noise taken away."""

Fit = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A fit of a pair's change ``(genes,)`` on its singles ``(genes, 2)``: ``(2,)`` coefficients
(NaN where it cannot be fitted)."""


def simex_coefficients(
    changes: np.ndarray,
    squared_errors: np.ndarray,
    fit: Fit,
    rng: np.random.Generator,
    *,
    measured: np.ndarray | None = None,
) -> np.ndarray:
    """A pair's coefficients with the bias of its measurement noise extrapolated away.

    Parameters
    ----------
    changes
        ``(3, genes)``: the measured changes of A, B and A+B over the fitted genes.
    squared_errors
        ``(4, genes)``: the squared standard errors of the means of A, B, A+B and the
        control over the same genes (finite, non-negative).
    fit
        The fit, ``fit(singles (genes, 2), pair (genes,)) -> (2,)``.
    rng
        The random generator of the added noise.
    measured
        ``fit`` of the measured changes, where already computed.

    Returns
    -------
    ``(2,)``: the coefficients extrapolated to no noise; NaN where a level's every fit is
    NaN.

    Examples
    --------
    Least squares of a pair ``ΔA + ΔB`` on singles measured with noise (a quarter of their
    spread) reads about 0.77 for 1 (attenuated); SIMEX reads closer to 1, a little short
    of it, as quadratic extrapolation does:

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(2, 2000))
    >>> noise = np.full((4, 2000), 0.3)
    >>> noise[2:] = 0.0  # a pair and a control measured exactly
    >>> measured = np.stack([a, b, a + b]) + rng.normal(size=(3, 2000)) * np.sqrt(noise[:3])
    >>> def least_squares(x, y):
    ...     return np.linalg.lstsq(x, y, rcond=None)[0]
    >>> least_squares(measured[:2].T, measured[2]).round(2)
    array([0.77, 0.76])
    >>> simex_coefficients(measured, noise, least_squares, rng).round(2)
    array([0.95, 0.95])
    """
    n_genes = changes.shape[1]
    own_sd = np.sqrt(squared_errors[:3])
    control_sd = np.sqrt(squared_errors[3])
    start = fit(changes[:2].T, changes[2]) if measured is None else measured
    means = [np.asarray(start, dtype=np.float64)]
    for level in SIMEX_LEVELS:
        scale = np.sqrt(level)
        fits = np.empty((SIMEX_REPLICATES, 2))
        for replicate in range(SIMEX_REPLICATES):
            control_error = rng.standard_normal(n_genes) * control_sd
            noisy = changes + scale * (rng.standard_normal((3, n_genes)) * own_sd - control_error)
            fits[replicate] = fit(noisy[:2].T, noisy[2])
        finite = np.isfinite(fits).all(axis=1)
        if not finite.any():
            return np.full(2, np.nan)
        means.append(fits[finite].mean(axis=0))
    return _extrapolated(np.array([0.0, *SIMEX_LEVELS]), np.vstack(means))


def _extrapolated(levels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each column of ``values`` fitted by a quadratic in ``levels``, read at the target."""
    design = np.vander(levels, 3)
    coefficients = np.linalg.lstsq(design, values, rcond=None)[0]
    return (np.vander(np.array([SIMEX_TARGET]), 3) @ coefficients)[0]
