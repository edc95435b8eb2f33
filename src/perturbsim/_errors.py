"""The one exception type perturbsim raises for bad input."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class PerturbsimError(ValueError):
    """Bad input: the message is one line naming the offending value and how to fix it."""


def error_reason(err: BaseException) -> str:
    """The first line of an exception's message, prefixed with its type (for one-line errors)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def os_reason(err: BaseException) -> str:
    r"""An error's reason in a few words: an OS error's own text, else :func:`error_reason`.

    Examples
    --------
    >>> os_reason(OSError(28, "No space left on device", "out.h5ad"))
    'No space left on device'
    >>> os_reason(ValueError("bad\nmore"))
    'ValueError: bad'
    """
    return getattr(err, "strerror", None) or error_reason(err)


def shown_list(items: object, most: int) -> str:
    """The first ``most`` of ``items`` joined by commas, then how many more there are.

    Examples
    --------
    >>> shown_list(["KLF1", "MAP2K6", "FOXO4"], 2)
    'KLF1, MAP2K6 and 1 more'
    """
    names = [str(item) for item in items]  # type: ignore[attr-defined]
    more = len(names) - most
    return ", ".join(names[:most]) + (f" and {more} more" if more > 0 else "")


def suggestion(value: object, options: Iterable[object]) -> str:
    """``"; did you mean 'X'?"`` for the option closest to ``value``, or ``""`` if none is close.

    Closeness is :func:`difflib.get_close_matches`'s (ratio at least 0.6), in any case: an
    option that differs only in case is the closest.

    Examples
    --------
    >>> suggestion("cond", ["ncounts", "condition", "dataset"])
    "; did you mean 'condition'?"
    >>> suggestion("ntc", ["control", "NTC"])
    "; did you mean 'NTC'?"
    >>> suggestion("xyz", ["condition"])
    ''
    """
    by_lower = {str(o).lower(): str(o) for o in reversed(list(options))}  # first kept
    close = difflib.get_close_matches(str(value).lower(), list(by_lower), n=1)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


def close_spellings(name: str, options: Sequence[str], n: int = 3) -> list[str]:
    """The ``options`` a letter or two off ``name``: a misspelling's likely intents.

    :func:`difflib.get_close_matches` at ratio 0.75 (e.g. two letters swapped in a
    four-letter name), lengths at most one apart, so that a short name inside a longer one
    (``FOO`` in ``FOXO4``) is no match; closest first, at most ``n``.

    Examples
    --------
    >>> close_spellings("KFL1", ["KLF1", "KLF2", "FOXO4"])
    ['KLF1']
    >>> close_spellings("FOO", ["FOXO4"])
    []
    """
    return [
        match
        for match in difflib.get_close_matches(name, options, n=n, cutoff=0.75)
        if abs(len(match) - len(name)) <= 1
    ]


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``count`` followed by the words that agree with it: ``singular`` for 1, else ``plural``.

    ``plural`` defaults to ``singular`` with an ``s``; give it for other plurals and for
    phrases whose verb agrees too.

    Examples
    --------
    >>> counted(1, "perturbation"), counted(3, "perturbation")
    ('1 perturbation', '3 perturbations')
    >>> counted(1, "gene was", "genes were")
    '1 gene was'
    """
    words = singular if count == 1 else f"{singular}s" if plural is None else plural
    return f"{count} {words}"


def case_hint(gene: str, known: str) -> str:
    """The hint for ``gene`` written in another case than the ``known`` gene.

    Examples
    --------
    >>> case_hint("klf1", "KLF1")
    " (did you mean 'KLF1' for 'klf1'? gene names are case-sensitive)"
    """
    return f" (did you mean {known!r} for {gene!r}? gene names are case-sensitive)"


def first_case_hint(unknown: Sequence[str], genes: Sequence[str]) -> str:
    """A hint for the first of ``unknown`` that is one of ``genes`` written in another case.

    Returns
    -------
    `` (did you mean 'KLF1' for 'klf1'? gene names are case-sensitive)``, or ``""`` when
    no gene of ``unknown`` matches one of ``genes`` ignoring case.

    Examples
    --------
    >>> first_case_hint(["klf1", "NOPE"], ["KLF1", "MAP2K6"])
    " (did you mean 'KLF1' for 'klf1'? gene names are case-sensitive)"
    """
    by_case = {gene.casefold(): gene for gene in genes}
    for gene in unknown:
        match = by_case.get(gene.casefold())
        if match is not None:
            return case_hint(gene, match)
    return ""
