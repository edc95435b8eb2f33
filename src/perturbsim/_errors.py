"""The one exception type perturbsim raises for bad input."""

from __future__ import annotations


class PerturbsimError(ValueError):
    """Bad input: the message is one line naming the offending value and how to fix it."""


def error_reason(err: BaseException) -> str:
    """The first line of an exception's message, prefixed with its type (for one-line errors)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
