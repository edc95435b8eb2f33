"""Weights of a stacked prediction, fitted per kind of perturbation by bounded least squares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear

MIN_CONDITIONS = 3
"""Fewest conditions of a kind that fit its own weights; fewer borrow a pooled fit."""


@dataclass(frozen=True)
class FitRow:
    """One held-out condition: what the parts predict of it and what was measured.

    Attributes
    ----------
    kind
        Kind of the perturbation (e.g. ``"unseen_single"``).
    parts
        ``(genes, parts)``: each weighted part's prediction on the fitted genes.
    target
        ``(genes,)``: the measured change minus everything not weighted.
    """

    kind: str
    parts: np.ndarray
    target: np.ndarray


@dataclass(frozen=True)
class Fitted:
    """Weights of one kind and how they were fitted.

    Attributes
    ----------
    weights
        One weight per part, each in ``[0, 1]``.
    n_conditions
        Conditions that fitted them (0: the defaults were kept).
    pooled
        Fitted on the conditions of several kinds, the kind having some but fewer than
        :data:`MIN_CONDITIONS`.
    """

    weights: np.ndarray
    n_conditions: int
    pooled: bool


def bounded_least_squares(parts: np.ndarray, target: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Weights in ``[0, 1]`` minimising ``|target - parts @ w|``, shrunk by their noise.

    Each fitted weight's departure from its default, ``δ``, is then shrunk by the
    positive-part James-Stein rule, ``δ · max(0, 1 - se² / δ²)``, with ``se`` its
    ordinary least-squares standard error (residual variance over the rows): a weight
    the rows cannot tell from its default stays at the default. Parts that are 0 on every
    row carry no information and keep their default.
    """
    default = np.asarray(default, dtype=float)
    weights = default.copy()
    used = np.flatnonzero(np.abs(parts).sum(axis=0) > 0)
    if used.size == 0:
        return weights
    x = parts[:, used]
    rest = target - np.delete(parts, used, axis=1) @ np.delete(weights, used)
    fitted = lsq_linear(x, rest, bounds=(0.0, 1.0)).x
    residual = rest - x @ fitted
    dof = max(len(rest) - used.size, 1)
    covariance = np.linalg.pinv(x.T @ x) * (residual @ residual) / dof
    departure = fitted - default[used]
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = np.clip(1.0 - np.diag(covariance) / departure**2, 0.0, 1.0)
    weights[used] = default[used] + departure * np.nan_to_num(keep, nan=0.0)
    return weights


def fit_per_kind(
    rows: list[FitRow],
    kinds: tuple[str, ...],
    default: np.ndarray,
    *,
    pooled_kinds: tuple[str, ...],
) -> dict[str, Fitted]:
    """Weights per kind: its own rows when it has enough, else the pool of similar kinds.

    A kind with at least :data:`MIN_CONDITIONS` rows is fitted on them. One of
    ``pooled_kinds`` with fewer (but some) is fitted on the rows of every kind of
    ``pooled_kinds`` together, its own too few to say more than those kinds as a whole;
    any other kind with too few rows, and every kind without rows, keeps ``default``: no
    evidence, no departure from it.

    Parameters
    ----------
    rows
        Held-out conditions, of any kinds.
    kinds
        The kinds to fit.
    default
        Weights of a kind without enough evidence.
    pooled_kinds
        Kinds alike enough to share a fit.

    Returns
    -------
    Kind -> :class:`Fitted`.
    """

    def solve(chosen: list[FitRow]) -> np.ndarray:
        parts = np.vstack([r.parts for r in chosen])
        target = np.concatenate([r.target for r in chosen])
        return bounded_least_squares(parts, target, default)

    pool = [r for r in rows if r.kind in pooled_kinds]
    fitted = {}
    for kind in kinds:
        own = [r for r in rows if r.kind == kind]
        if len(own) >= MIN_CONDITIONS:
            fitted[kind] = Fitted(solve(own), len(own), pooled=False)
        elif own and kind in pooled_kinds:
            fitted[kind] = Fitted(solve(pool), len(pool), pooled=True)
        else:
            fitted[kind] = Fitted(np.asarray(default, dtype=float), 0, pooled=False)
    return fitted
