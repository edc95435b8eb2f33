"""The distance correlation computed the plain way, from whole distance matrices.

A reference for the tests: perturbsim computes it in one pass over sorted changes
(``pp._gi._pair_dcors``), without the ``O(n²)`` matrices this builds.
"""

from __future__ import annotations

import numpy as np


def _centred_distances(x: np.ndarray) -> np.ndarray:
    """Double-centred Euclidean distance matrix of the rows of ``x`` (``(n,)`` or ``(n, d)``)."""
    points = x.reshape(x.shape[0], -1)
    dist = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
    return dist - dist.mean(axis=0) - dist.mean(axis=1)[:, None] + dist.mean()


def _dcor(a: np.ndarray, b: np.ndarray) -> float:
    """Distance correlation from two double-centred distance matrices (0 if one is constant)."""
    var_a, var_b = (a * a).mean(), (b * b).mean()
    if var_a <= 0 or var_b <= 0:
        return 0.0
    cov = max((a * b).mean(), 0.0)
    return float(np.sqrt(cov / np.sqrt(var_a * var_b)))


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Distance correlation of Székely et al. (2007), V-statistic, of paired samples.

    ``O(n²)`` memory and time in the number of samples ``n``.

    Parameters
    ----------
    x, y
        Samples, ``(n,)`` or ``(n, d)`` each.

    Returns
    -------
    A value in ``[0, 1]``: 0 for independent samples (in the limit), 1 when one is a
    similarity transform of the other; 0 when either is constant.

    Examples
    --------
    >>> distance_correlation(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 4.0]))
    1.0
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    assert x.shape[0] == y.shape[0] >= 2, "two samples of the same size >= 2"
    return _dcor(_centred_distances(x), _centred_distances(y))
