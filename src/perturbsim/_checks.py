"""Checks of the numbers a function is given: one line naming the argument and its value."""

from __future__ import annotations

import math
import numbers
from typing import Any

from ._errors import PerturbsimError


def check_count(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int if it is a whole number >= ``minimum``.

    Raises
    ------
    PerturbsimError
        ``"{name} must be a whole number >= {minimum}, got {value!r}"`` (also for a bool, a
        float such as 2.0, or a string).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise PerturbsimError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_nonnegative(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number >= 0 (not NaN, not a bool).

    Raises
    ------
    PerturbsimError
        ``"{name} must be a finite number >= 0, got {value!r}"``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        raise PerturbsimError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)
