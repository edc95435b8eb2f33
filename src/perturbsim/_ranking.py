"""Places among the top k of a ranking whose ties are ordered at random."""

from __future__ import annotations

import numpy as np


def top_k_share(strength: np.ndarray, k: int, decimals: int) -> np.ndarray:
    """Each item's chance of being among the top ``k`` by ``strength``, ties ordered at random.

    Items strictly above the ``k``-th strength are all in (1); of the items tied with it
    (equal to ``decimals`` decimals), the remaining places go to a random subset, so each
    has the share of places left. NaN strengths rank last.

    Parameters
    ----------
    strength
        One value per item; higher ranks first.
    k
        Places, between 1 and the number of items.
    decimals
        Decimals to which strengths are rounded before they are compared.

    Returns
    -------
    One share in [0, 1] per item, summing to ``k``.

    Examples
    --------
    >>> top_k_share(np.array([3.0, 1.0, 1.0, 0.5]), 2, decimals=9).tolist()
    [1.0, 0.5, 0.5, 0.0]
    """
    value = np.where(np.isnan(strength), -np.inf, np.round(strength, decimals))
    kth = np.sort(value)[::-1][k - 1]
    above = value > kth
    tied = value == kth
    share = above.astype(float)
    share[tied] = (k - int(above.sum())) / tied.sum()
    return share
