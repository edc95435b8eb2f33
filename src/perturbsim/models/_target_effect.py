"""The direct effect of a perturbation on its own target gene, fitted from training targets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RIDGE = 1e-3
"""Ridge penalty (per row) of the least-squares fit, on standardised features."""


def target_features(level: np.ndarray) -> np.ndarray:
    """Features of a gene's direct effect: its control level and ``exp(-level)``.

    On log-normalised data the change of a targeted gene depends on how much it is expressed
    before the perturbation (a CRISPRa target expressed near zero cannot rise far in log
    space, a highly expressed one has room to fall under CRISPRi); ``exp(-level)`` lets the
    fit bend near zero expression.

    Parameters
    ----------
    level
        (G,) mean control expression of each gene (log-normalised).

    Returns
    -------
    (G, 2) float64 array with columns ``level`` and ``exp(-level)``.
    """
    level = np.asarray(level, dtype=np.float64)
    return np.stack([level, np.exp(-level)], axis=1)


def target_effect_shape(effect: np.ndarray, n_genes: int) -> tuple[int]:
    """The shape a saved direct effect must have: one value per gene, or none (not fitted).

    Examples
    --------
    >>> target_effect_shape(np.zeros(0), 70), target_effect_shape(np.ones(69), 70)
    ((0,), (70,))
    """
    return (n_genes,) if effect.size else (0,)


def fit_target_effect(
    delta: np.ndarray,
    sets: Sequence[Sequence[str]],
    genes: Sequence[str],
    level: np.ndarray,
    baseline: np.ndarray,
) -> np.ndarray:
    """Predict, for every measured gene, its own change when it is the perturbed gene.

    Each measured target ``t`` of a training condition ``c`` gives one observation
    ``delta[c, t] - baseline[t]`` (its change beyond the baseline prior); a ridge-regularised
    least-squares fit (intercept plus standardised :func:`target_features` of its control
    level) gives the direct effect of every gene; levels outside the range of the observed
    targets are clipped to it, so the fit never extrapolates. With fewer observations than
    fitted coefficients the mean observation is used for every gene (zero with none).

    Parameters
    ----------
    delta
        (C, G) change over control of the training conditions.
    sets
        The C gene sets of those conditions.
    genes
        The G measured genes (column names of ``delta``).
    level
        (G,) mean control expression.
    baseline
        (G,) prior change to which the direct effect is added (e.g. the mean training change).

    Returns
    -------
    (G,) float32 direct effect of perturbing each gene on that gene.

    Examples
    --------
    >>> import numpy as np
    >>> from perturbsim.models import fit_target_effect
    >>> delta = np.array([[2.0, 0.1, 0.0], [0.0, 1.0, 0.1]])
    >>> fit_target_effect(delta, [["a"], ["b"]], ["a", "b", "c"], np.zeros(3), np.zeros(3))
    array([1.5, 1.5, 1.5], dtype=float32)
    """
    position = {g: i for i, g in enumerate(genes)}
    rows, cols = [], []
    for row, s in enumerate(sets):
        for gene in s:
            if gene in position:
                rows.append(row)
                cols.append(position[gene])
    if not rows:
        return np.zeros(len(genes), dtype=np.float32)
    level = np.asarray(level, dtype=np.float64)
    features = target_features(np.clip(level, level[cols].min(), level[cols].max()))
    observed = np.asarray(delta, dtype=np.float64)[rows, cols] - np.asarray(baseline)[cols]
    if len(rows) < features.shape[1] + 1:
        return np.full(len(genes), observed.mean(), dtype=np.float32)
    scale = features[cols].std(axis=0)
    scaled = (features - features[cols].mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    standard = np.column_stack([np.ones(len(genes)), scaled])
    design = standard[cols]
    penalty = RIDGE * len(rows) * np.diag([0.0] + [1.0] * features.shape[1])
    coef = np.linalg.solve(design.T @ design + penalty, design.T @ observed)
    return (standard @ coef).astype(np.float32)
