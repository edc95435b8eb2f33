"""What several benchmark scripts share: rounding for JSON, means over seeds, one-line errors.

Imported as a sibling module (``from _common import rounded``): the scripts run_main as
``python benchmarks/<script>.py``, which puts this folder on the import path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from perturbsim import PerturbsimError
from perturbsim.tl._intervals import mean_interval


def rounded(x: float, digits: int = 4) -> float | None:
    """``x`` rounded for a JSON line; ``None`` for NaN or an infinite value."""
    return round(float(x), digits) if np.isfinite(x) else None


def over_seeds(values: object, digits: int = 4) -> dict[str, object]:
    """Mean of the finite ``values`` and its 95 % t-interval, rounded.

    ``{"mean": m, "ci": [low, high], "n": n}`` (:func:`perturbsim.tl._intervals.
    mean_interval`); ``None`` where a figure is undefined (no finite value; one, for the
    interval).
    """
    summary = mean_interval(np.asarray(values, dtype=float), 0.95)
    return {
        "mean": rounded(summary.mean, digits),
        "ci": [rounded(summary.low, digits), rounded(summary.high, digits)],
        "n": summary.n,
    }


def run_main(main: Callable[..., object], *args: object) -> None:
    """Run a script's ``main``; bad input (a :class:`~perturbsim.PerturbsimError`) ends in one
    line on standard error and exit status 1, not a traceback."""
    try:
        main(*args)
    except PerturbsimError as err:
        sys.exit(f"{Path(sys.argv[0]).name}: error: {err}")
