"""The one exception type perturbsim raises for bad input."""

from __future__ import annotations


class PerturbsimError(ValueError):
    """Bad input: the message is one line naming the offending value and how to fix it."""
