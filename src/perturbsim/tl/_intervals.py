"""The mean of values over seeds with a t-interval, as every summary over seeds reports it."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as sps


class MeanInterval(NamedTuple):
    """Mean of the finite values, their standard deviation, the interval and their count."""

    mean: float
    std: float
    low: float
    high: float
    n: int


def mean_interval(values: np.ndarray, confidence: float) -> MeanInterval:
    """Mean of the finite ``values`` and its t-interval ``mean ± t(confidence, n - 1) s / √n``.

    Parameters
    ----------
    values
        One value per seed; NaN and infinite values are left out.
    confidence
        Coverage of the interval, in (0, 1).

    Returns
    -------
    The mean (NaN without a finite value), the standard deviation (ddof 1) and the
    interval's bounds (NaN with fewer than two finite values), and the count ``n`` of
    finite values.

    Examples
    --------
    >>> import numpy as np
    >>> summary = mean_interval(np.array([1.0, 2.0, 3.0, np.nan]), 0.95)
    >>> summary.mean, summary.n, round(summary.high - summary.mean, 3)
    (2.0, 3, 2.484)
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    if n < 2:
        return MeanInterval(mean, float("nan"), float("nan"), float("nan"), n)
    std = float(values.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n))
    return MeanInterval(mean, std, mean - half, mean + half, n)
