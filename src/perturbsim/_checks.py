"""Checks of the arguments a function is given (numbers, tables): one line naming what is wrong."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._errors import PerturbsimError, shown_list

SHOWN_MOST = 60
"""Most characters of a value shown in a message (then ``...`` and how many more)."""


def shown(value: Any) -> str:
    """``repr`` of ``value`` for an error message, a numpy scalar as its Python value.

    At most :data:`SHOWN_MOST` characters of it, so that the message stays one short line.

    Examples
    --------
    >>> shown(10**100)[-28:], len(shown(10**100))
    ('000... (41 more characters)', 84)
    """
    item = getattr(value, "item", None)
    if isinstance(value, numbers.Number) and callable(item):
        value = item()
    text = repr(value)
    if len(text) > SHOWN_MOST:
        return f"{text[:SHOWN_MOST]}... ({len(text) - SHOWN_MOST} more characters)"
    return text


def as_whole(value: Any) -> int | None:
    """``value`` as an int if it is a whole number (``3``, ``np.int64(3)``, ``3.0``), else None.

    A bool, a string, NaN, an infinity or a fraction is not a whole number.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    return int(number) if math.isfinite(number) and number.is_integer() else None


def check_count(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int if it is a whole number (:func:`as_whole`) >= ``minimum``.

    With ``maximum``, it must also be at most ``maximum``.

    Raises
    ------
    PerturbsimError
        ``"{name} must be a whole number >= {minimum}, got {value}"`` (``and <= {maximum}``
        with ``maximum``).

    Examples
    --------
    >>> check_count("k", 101, maximum=100)
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: k must be a whole number >= 1 and <= 100, got 101
    """
    whole = as_whole(value)
    if whole is None or whole < minimum or (maximum is not None and whole > maximum):
        bound = "" if maximum is None else f" and <= {maximum}"
        raise PerturbsimError(
            f"{name} must be a whole number >= {minimum}{bound}, got {shown(value)}"
        )
    return whole


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool if it is one (``True``, ``False``, a numpy bool).

    A string such as ``"false"`` is refused rather than read as true.

    Raises
    ------
    PerturbsimError
        ``"{name} must be True or False, got {value}"``.

    Examples
    --------
    >>> check_flag("denoise", False)
    False
    """
    if not isinstance(value, bool | np.bool_):
        raise PerturbsimError(f"{name} must be True or False, got {shown(value)}")
    return bool(value)


def check_list(name: str, value: Any, kind: str = "labels", *, optional: bool = False) -> None:
    """Refuse one string, or a value that is no collection, where a list of ``kind`` is due.

    A string would be read as its letters. ``None`` passes where the list is ``optional``.

    Raises
    ------
    PerturbsimError
        ``"{name} must be a list of {kind}, got the string {value!r}"``, or ``got`` the
        value that is not a collection.

    Examples
    --------
    >>> check_list("genes", ["KLF1"], "genes")
    >>> check_list("genes", "KLF1", "genes")
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: genes must be a list of genes, got the string 'KLF1'
    """
    if isinstance(value, str | bytes):
        raise PerturbsimError(f"{name} must be a list of {kind}, got the string {value!r}")
    if value is None and optional:
        return
    zero_d = isinstance(value, np.ndarray) and value.ndim == 0  # an array that iterates not
    if not isinstance(value, Iterable) or zero_d:
        scalar = value is None or isinstance(value, numbers.Number) or zero_d
        what = shown(value) if scalar else type(value).__name__
        raise PerturbsimError(f"{name} must be a list of {kind}, got {what}")


def check_finite(name: str, value: Any, *, minimum: float = -math.inf) -> float:
    """``value`` as a float if it is a finite number >= ``minimum`` (not NaN, not a bool).

    Raises
    ------
    PerturbsimError
        ``"{name} must be a finite number >= {minimum}, got {value}"`` (without the bound
        when there is none).

    Examples
    --------
    >>> check_finite("gamma", -0.5, minimum=-1.0)
    -0.5
    """
    number = _real_as_float(value)
    if number is None or not (math.isfinite(number) and number >= minimum):
        bound = f" >= {minimum:g}" if math.isfinite(minimum) else ""
        raise PerturbsimError(f"{name} must be a finite number{bound}, got {shown(value)}")
    return number


def _real_as_float(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool), else None.

    An integer too large for a float is infinite (``float`` would raise).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def check_nonnegative(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number >= 0 (not NaN, not a bool).

    Raises
    ------
    PerturbsimError
        ``"{name} must be a finite number >= 0, got {value}"``.
    """
    return check_finite(name, value, minimum=0.0)


def check_positive(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number > 0 (not NaN, not a bool).

    Raises
    ------
    PerturbsimError
        ``"{name} must be a finite number > 0, got {value}"``.

    Examples
    --------
    >>> check_positive("ridge", 1)
    1.0
    """
    number = _real_as_float(value)
    if number is None or not 0 < number < math.inf:
        raise PerturbsimError(f"{name} must be a finite number > 0, got {shown(value)}")
    return number


def check_edge_threshold(name: str, value: Any, *, minimum: float = 0.0) -> float:
    """``value`` as a float if it is a finite number >= ``minimum`` and below 1.

    A graph keeps the edges whose similarity (a Jaccard index, a correlation's ``|r|``: at
    most 1) lies above the threshold, so a threshold of 1 or more keeps none.

    Raises
    ------
    PerturbsimError
        ``"{name} must be a finite number >= {minimum}, got {value}"``, or ``"{name} must be
        below 1 (...), got {value}"``.

    Examples
    --------
    >>> check_edge_threshold("go_threshold", 0.1)
    0.1
    """
    number = check_finite(name, value, minimum=minimum)
    if number >= 1:
        raise PerturbsimError(
            f"{name} must be below 1 (edges are kept above it, and a similarity is at most 1: "
            f"none would be), got {shown(value)}"
        )
    return number


def check_fraction(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a number in (0, 1), or [0, 1) with ``allow_zero``.

    Raises
    ------
    PerturbsimError
        ``"{name} must lie in (0, 1), got {value}"`` (``[0, 1)`` with ``allow_zero``).

    Examples
    --------
    >>> check_fraction("val_fraction", 0.0, allow_zero=True)
    0.0
    """
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (number and (0 <= value if allow_zero else 0 < value) and value < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise PerturbsimError(f"{name} must lie in {interval}, got {shown(value)}")
    return float(value)


def check_label_part(name: str, value: Any, example: str) -> str:
    """``value`` if it is a non-empty string: a control label or a separator of labels.

    Raises
    ------
    PerturbsimError
        ``"{name} must be a non-empty string (e.g. {example!r}), got {value}"``.

    Examples
    --------
    >>> check_label_part("sep", "_", "_")
    '_'
    """
    if not isinstance(value, str) or not value:
        raise PerturbsimError(
            f"{name} must be a non-empty string (e.g. {example!r}), got {shown(value)}"
        )
    return value


def as_path(name: str, value: Any) -> Path:
    """``value`` as a :class:`~pathlib.Path` if it names one (a non-empty str or path).

    A leading ``~`` is the home folder, as in a shell (``~/screen.h5ad``).

    Raises
    ------
    PerturbsimError
        ``"{name} must be a path (a str or os.PathLike), got {value}"``; an empty string is
        refused too (``Path("")`` is the working folder), as is a NUL character.

    Examples
    --------
    >>> as_path("out_dir", "report")
    PosixPath('report')
    >>> as_path("path", "~/screen.h5ad") == Path.home() / "screen.h5ad"
    True
    >>> as_path("out_dir", None)
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: out_dir must be a path (a str or os.PathLike), got None
    """
    if not isinstance(value, str | os.PathLike) or (isinstance(value, str) and not value):
        raise PerturbsimError(f"{name} must be a path (a str or os.PathLike), got {shown(value)}")
    if "\x00" in str(value):
        raise PerturbsimError(f"{name} holds a NUL character, which no path may: {shown(value)}")
    return Path(value).expanduser()


def check_file(path: Path, what: str = "file") -> Path:
    """``path`` if it is a regular file (existing; not a folder, a device or a pipe).

    Raises
    ------
    PerturbsimError
        One line naming ``path`` and what is wrong: missing, a folder, not a regular file
        (a device such as ``/dev/null``, a pipe), or behind a folder that cannot be entered.

    Examples
    --------
    >>> check_file(Path("/dev/null"), "gene list")
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: gene list '/dev/null' is not a regular file
    """
    try:
        if path.is_file():
            return path
        if not path.exists():
            raise PerturbsimError(f"no such {what}: {str(path)!r}")
        kind = "a folder" if path.is_dir() else "not a regular file"
    except OSError as err:  # a folder on the way that cannot be entered
        raise PerturbsimError(f"cannot read {what} {str(path)!r}: {err.strerror}") from err
    raise PerturbsimError(f"{what} {str(path)!r} is {kind}")


def checked_table(
    data: object,
    columns: Sequence[str],
    what: str,
    *,
    kind: str = "a DataFrame",
    numeric: Sequence[str] = (),
) -> pd.DataFrame:
    """``data`` if it is a DataFrame with ``columns``, those of ``numeric`` it has numbers.

    ``numeric`` names columns (required or optional) whose values must be numbers or
    missing (NaN), not text (numbers written as text included) nor booleans; a column of
    ``numeric`` the table lacks is not checked.

    Raises
    ------
    PerturbsimError
        One line naming what ``data`` is instead (its type, or the columns it lacks and
        those it has), what it must be (``kind``) and the columns needed; or the column of
        ``numeric`` holding something else, and its first such value.

    Examples
    --------
    >>> import pandas as pd
    >>> checked_table(pd.DataFrame({"gene": ["KLF1"]}), ["gene"], "genes").shape
    (1, 1)
    >>> checked_table({"gene": ["KLF1"]}, ["gene"], "g")
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: g must be a DataFrame with the columns ['gene'], got dict
    >>> checked_table(pd.DataFrame({"mean": [0.3, "high"]}), ["mean"], "s", numeric=["mean"])
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: s's column 'mean' must hold numbers, got 'high'
    """
    if not isinstance(data, pd.DataFrame):
        raise PerturbsimError(
            f"{what} must be {kind} with the columns {list(columns)}, got {type(data).__name__}"
        )
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise PerturbsimError(
            f"no columns {missing} in {what} (it has {shown_list(data.columns, 8) or 'none'}): "
            f"it must be {kind} with the columns {list(columns)}"
        )
    for column in (c for c in numeric if c in data.columns):
        values = data[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            continue
        for value in values:
            if isinstance(value, bool) or not (isinstance(value, numbers.Real) or pd.isna(value)):
                raise PerturbsimError(
                    f"{what}'s column {column!r} must hold numbers, got {value!r}"
                )
    return data


def gene_selection(genes: Any, names: Sequence[str], where: str) -> np.ndarray:
    """``genes`` as a boolean mask over ``names``: a mask, or gene names.

    Parameters
    ----------
    genes
        A boolean mask with one value per gene of ``names`` (a labelled ``pandas.Series``
        is aligned to ``names`` by its index, which must hold each of them), or gene names.
    names
        The genes the mask is over, in order.
    where
        What holds ``names``, for messages (e.g. ``"profiles.var_names"``).

    Returns
    -------
    ``(len(names),)`` bool.

    Raises
    ------
    PerturbsimError
        One line: a mask of another length, a labelled mask missing some of ``names``, a
        numeric (0/1) array in place of a boolean one, or names not among ``names``.

    Examples
    --------
    >>> import pandas as pd
    >>> gene_selection(pd.Series([True, False], index=["B", "A"]), ["A", "B"], "genes").tolist()
    [False, True]
    >>> gene_selection(["B"], ["A", "B"], "genes").tolist()
    [False, True]
    >>> gene_selection([1, 0], ["A", "B"], "genes")
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: genes as a mask must be boolean, got int64 values 0, 1
    """
    index = pd.Index(list(map(str, names)))
    if isinstance(genes, pd.Series) and genes.dtype == bool:
        labels = pd.Index(genes.index.map(str))
        missing = index.difference(labels)
        if len(missing) or labels.has_duplicates:
            problem = f"lacks {shown_list(missing, 5)}" if len(missing) else "repeats genes"
            raise PerturbsimError(
                f"genes as a labelled mask must name each gene of {where} once; its index {problem}"
            )
        return genes.set_axis(labels).reindex(index).to_numpy(dtype=bool)
    given = np.asarray(genes)
    if given.dtype == bool:
        if given.shape != (len(index),):
            raise PerturbsimError(
                f"genes as a mask must have one value per gene of {where} ({len(index)}), "
                f"got shape {given.shape}"
            )
        return given
    if given.size and given.dtype.kind in "iuf":
        values = sorted(set(given.ravel().tolist()))
        raise PerturbsimError(
            f"genes as a mask must be boolean, got {given.dtype} values {shown_list(values, 5)}"
        )
    unknown = sorted(set(map(str, given.ravel())) - set(index))
    if unknown:
        raise PerturbsimError(f"genes not in {where}: {shown_list(unknown, 10)}")
    return index.isin(given.astype(str).ravel())
