"""Places among the top k of a ranking whose ties are ordered at random."""

from __future__ import annotations

import numpy as np


def top_k_share(strength: np.ndarray, k: int, tolerance: float) -> np.ndarray:
    """Each item's chance of being among the top ``k`` by ``strength``, ties ordered at random.

    Items above the ``k``-th strength by more than ``tolerance`` (relative beyond ±1) are
    all in (1); of the items within it of the ``k``-th, tied with it, the remaining places
    go to a random subset, so each has the share of places left. A tolerance rather than
    rounding: values a rounding error apart on either side of a rounding boundary would
    round apart. NaN strengths rank last.

    Parameters
    ----------
    strength
        One value per item; higher ranks first.
    k
        Places, between 1 and the number of items.
    tolerance
        Distance from the ``k``-th strength, times ``max(1, |k-th strength|)``, within
        which an item is tied with it.

    Returns
    -------
    One share in [0, 1] per item, summing to ``k``.

    Examples
    --------
    >>> top_k_share(np.array([3.0, 1.0, 1.0 + 1e-9, 0.5]), 2, tolerance=1e-6).tolist()
    [1.0, 0.5, 0.5, 0.0]
    """
    value = np.where(np.isnan(strength), -np.inf, strength)
    kth = np.sort(value)[::-1][k - 1]
    margin = tolerance * max(1.0, abs(kth)) if np.isfinite(kth) else 0.0
    above = value > kth + margin
    tied = (value >= kth - margin) & ~above
    share = above.astype(float)
    share[tied] = (k - int(above.sum())) / tied.sum()
    return share
