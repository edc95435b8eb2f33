"""Genetic-interaction scores of gene pairs, from the mean changes of A, B and A+B.

Norman et al. (Science 2019) describe a pair by fitting its change over control as a
linear combination of the two single changes, ``ΔAB ≈ c1·ΔA + c2·ΔB``, by Theil-Sen
regression without intercept over a set of genes. The GEARS paper (Roohani et al.,
Nat. Biotechnol. 2023) turns the fit into five subtypes with fixed thresholds. The
scores, defined in :func:`gi_scores`'s documentation, are those of Norman's published
table (``regr_fits_final.csv`` of ``thomasmaxwellnorman/Perturbseq_GI``) and of GEARS's GI
code (``get_coeffs`` in ``snap-stanford/GEARS`` ``gears/utils.py``; thresholds in
``paper/fig_utils.py`` of ``yhr91/GEARS_misc``). The conventions were checked on the
published table, and the scores of measured pairs compared with it, in
``benchmarks/RESULTS.md``. The changes are fitted as given (GEARS's convention); Norman
divided each gene's change by its control standard deviation first, which leaves the
coefficients as they are but weighs the genes of ``fit_corr``, the distance correlations
and ``equality`` differently.

Distance correlations are Székely's V-statistics, as the ``dcor`` package (which Norman
and GEARS used) and statsmodels compute them; a pair's four take one pass over its
gene-by-gene distance matrices, a block of rows at a time, without storing them.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import linalg, stats
from tqdm.auto import tqdm

from .._checks import (
    as_whole,
    check_count,
    check_flag,
    check_label_part,
    check_list,
    check_nonnegative,
    gene_selection,
    shown,
)
from .._errors import PerturbsimError, counted, first_case_hint, shown_list
from .._keys import (
    CONTROL,
    CONTROL_MEAN_VARIANCE,
    DELTA_LAYER,
    MEAN_VARIANCE_LAYER,
    PRED_GENERIC,
    PRED_UNSUPPORTED,
    SEP,
)
from .._settings import progress_disabled, resolve_seed
from ._cells import dense_rows
from ._gi_simex import simex_coefficients
from ._labels import SEPARATORS, canonical_label, genes_of, label_sep, parse_label
from ._pseudobulk import (
    MIN_REPLICATE_CELLS,
    PRIOR_DF,
    PseudobulkStats,
    check_prior_df,
    check_stats,
    welch_satterthwaite,
)
from ._setup import check_anndata

logger = logging.getLogger(__name__)

SUBTYPES: tuple[str, ...] = (
    "synergy",
    "suppression",
    "additive",
    "redundancy",
    "neomorphism",
    "epistasis",
)
"""The subtypes, each with a boolean column ``is_<subtype>`` in :func:`gi_scores`."""

PRECEDENCE: tuple[str, ...] = (
    "neomorphism",
    "epistasis",
    "synergy",
    "redundancy",
    "suppression",
    "additive",
)
"""Order in which the first subtype that applies becomes a pair's primary ``subtype``."""

SCORES: tuple[str, ...] = (
    "c1",
    "c2",
    "magnitude",
    "mean_abs_coef",
    "fit_corr",
    "dcor",
    "dcor_singles",
    "dcor_a",
    "dcor_b",
    "dominance",
    "equality",
)
"""Score columns of :func:`gi_scores`, NaN in a flagged row."""

MIN_GENES = 3
"""Fewest genes a fit needs (two coefficients and a correlation of fit with pair)."""
FEW_GENES = 20
"""Below this many fitted genes :func:`gi_scores` warns: the scores then mean little (Norman
fitted thousands of abundant genes)."""
NORMAN_ABUNDANCE = 0.5
"""Norman's threshold on a gene's mean UMI count per cell (over all the screen's cells) for
the genes a pair is fitted on; applied here to the mean control expression."""

_MAGNITUDE_SCORES = ("magnitude", "mean_abs_coef")
_REDUNDANCY_SCORES = ("dcor", "dcor_singles")
_COLLINEAR = 1e-10
"""A two-gene subset is degenerate when ``|det| <= _COLLINEAR * |x_i| * |x_j|``."""
MIN_RELIABILITY = 0.5
"""A pair's singles' reliability (:func:`singles_reliability`) below which its coefficients
are mostly its singles' noise's: ``measured-gi`` counts such pairs."""
CORRECTION_COLUMNS = ("c1_uncorrected", "c2_uncorrected")
"""The Theil-Sen fit's own coefficients, beside the noise-corrected ``c1``, ``c2`` of
``gi_scores(noise_correction=True)``."""
MAX_SINGLES_COSINE = 0.999
"""Largest ``|cosine|`` of a pair's two singles (over the fitted genes) that is scored.
Singles more alike than this cannot be told apart: a split of the pair between them such as
62·A − 61·B fits as well as A + B, so the coefficients, and every score built on them, are
arbitrary. Predicted singles of two genes never perturbed (both near the mean change) do
this; so do, in the Norman-sized simulation's truth, 15 of 5,995 pairs (on its abundant
genes), genes with nearly no effect (norms 0.001-0.05) whose singles are the same faint pattern
(cosine 0.99999)."""
_MAX_ITER = 1000
"""Default iterations of the spatial median of :func:`theil_sen`."""
_TOL = 1e-8
"""Default tolerance of the spatial median of :func:`theil_sen`."""
_DRAW = 16_000
"""Random indices drawn at a time: 128,000 bytes, under glibc's default mmap threshold."""
_START = 10_000
"""The spatial median of more solutions starts from that of every k-th, at most this many."""
_ON_POINT = 1e-12
"""A solution this close to the spatial median's estimate (times ``max(1, |estimate|)``) is
on it: Vardi & Zhang's case."""
_HALVINGS = 6
"""Halvings of a Newton step that does not decrease the summed distance, before Weiszfeld's."""
_SINGULAR = 1e-12
"""The spatial median takes a Weiszfeld step where ``det(H) <= _SINGULAR * (Σ 1/d)²``."""
_BLOCK = 128
"""Rows of the gene-by-gene distance matrices held at a time by the distance correlations."""
_KEPT_DRAWS = 4
"""Draws of random Theil-Sen subsets kept per thread (one per number of fitted genes)."""
_THREADS = 8
"""Most threads that score pairs at once (fewer on fewer cores)."""
ON_CUT = 1e-6
"""Distance from a subtype's cut (relative beyond ±1) within which a score lies on it
(:meth:`GIRules.holds`): the scores are solved to about ``1e-8``."""
_SUM_CHUNK = 128
"""Pairs compared at a time by :func:`summed_pairs` (three rows each, in float64)."""
_ROUNDING = 1e-6
"""Relative spread of deviations below which they are taken as rounding errors."""
_CHUNK = 1024
"""Rows read at a time when checking that ``X - delta`` is one control profile."""


@dataclass(frozen=True)
class GIRules:
    """Thresholds that assign subtypes to scored pairs (the GEARS paper's figure code).

    Subtypes overlap: a pair gets every subtype whose rule holds (strict inequalities, as in
    GEARS, beyond the scores' rounding: :meth:`holds`). GEARS set the magnitude thresholds
    on ``sqrt(c1² + c2²)``: on Norman's published pairs they call 32 % synergy and 45 %
    suppression (2 % and 90 % on ``ts_norm``). With the defaults an exactly additive pair
    (``c1 = c2 = 1``, magnitude ``√2``) is a synergy, as in GEARS;
    ``magnitude_score="mean_abs_coef"`` puts it at 1 (Norman's ``ts_norm``), inside the
    additive band and on the suppression cut, so not a suppression.

    Attributes
    ----------
    synergy
        Synergy: magnitude above this (1.15).
    suppression
        Suppression: magnitude below this (1.0).
    additive
        Additive: ``|magnitude - 1|`` below this (0.25); the band overlaps suppression
        (0.75-1.0) and synergy (1.15-1.25).
    redundancy
        Redundancy: the redundancy score above this (0.85).
    neomorphism
        Neomorphism: ``fit_corr`` below this (0.88).
    epistasis
        Epistasis: ``equality`` below this (0.28).
    magnitude_score
        Column the magnitude rules read: ``"magnitude"`` (GEARS, default) or
        ``"mean_abs_coef"`` (Norman's ``ts_norm``).
    redundancy_score
        Column the redundancy rule reads: ``"dcor"`` (GEARS's code, default) or
        ``"dcor_singles"`` (the distance correlation of the two singles; no pair of
        Norman's published table exceeds 0.85 by it, 14 % do by ``dcor``).
    """

    synergy: float = 1.15
    suppression: float = 1.0
    additive: float = 0.25
    redundancy: float = 0.85
    neomorphism: float = 0.88
    epistasis: float = 0.28
    magnitude_score: str = "magnitude"
    redundancy_score: str = "dcor"

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in SUBTYPES and (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not np.isfinite(value)
            ):
                raise PerturbsimError(
                    f"GIRules.{field.name} must be a finite number, got {value!r}"
                )
        if self.synergy < self.suppression:  # a pair could be both
            raise PerturbsimError(
                f"GIRules.synergy ({self.synergy}) must not be below GIRules.suppression "
                f"({self.suppression}): a pair would be called both"
            )
        if self.additive <= 0:
            raise PerturbsimError(
                f"GIRules.additive must be above 0 (a band around 1), got {self.additive}"
            )
        ranges = {"redundancy": (0, 1), "neomorphism": (-1, 1), "epistasis": (0, 1)}
        for name, (low, high) in ranges.items():  # cuts of scores in these ranges
            if not low <= getattr(self, name) <= high:
                raise PerturbsimError(
                    f"GIRules.{name} must lie in [{low}, {high}] (its score does), "
                    f"got {getattr(self, name)}"
                )
        if self.magnitude_score not in _MAGNITUDE_SCORES:
            raise PerturbsimError(
                f"GIRules.magnitude_score must be one of {_MAGNITUDE_SCORES}, "
                f"got {self.magnitude_score!r}"
            )
        if self.redundancy_score not in _REDUNDANCY_SCORES:
            raise PerturbsimError(
                f"GIRules.redundancy_score must be one of {_REDUNDANCY_SCORES}, "
                f"got {self.redundancy_score!r}"
            )

    def map_columns(self) -> tuple[str, ...]:
        """The score columns a GI map of these rules' calls shows.

        Returns
        -------
        The magnitude the rules read, ``fit_corr``, the redundancy score they read,
        ``dominance`` and ``equality``.
        """
        return (self.magnitude_score, "fit_corr", self.redundancy_score, "dominance", "equality")

    def score_column(self, subtype: str) -> str:
        """The score column the rule of ``subtype`` reads."""
        columns = {
            "synergy": self.magnitude_score,
            "suppression": self.magnitude_score,
            "additive": self.magnitude_score,
            "redundancy": self.redundancy_score,
            "neomorphism": "fit_corr",
            "epistasis": "equality",
        }
        if subtype not in columns:
            raise PerturbsimError(f"unknown subtype {subtype!r}: expected one of {SUBTYPES}")
        return columns[subtype]

    def strength(self, scores: pd.DataFrame, subtype: str) -> tuple[pd.Series, float]:
        """How strongly each pair is of ``subtype``, and the cut above which it is.

        Parameters
        ----------
        scores
            A table with the score column of ``subtype`` (:meth:`score_column`).
        subtype
            One of :data:`SUBTYPES`.

        Returns
        -------
        ``(strength, cut)``: larger strength means more of the subtype (synergy: the
        magnitude; suppression: minus the magnitude; additive: minus ``|magnitude - 1|``;
        redundancy: the redundancy score; neomorphism: minus ``fit_corr``; epistasis:
        minus ``equality``); a pair is of the subtype when ``strength > cut``, beyond
        rounding (:meth:`holds`). NaN scores give NaN strength.
        """
        column = self.score_column(subtype)
        if column not in scores.columns:
            raise PerturbsimError(f"no column {column!r} for the {subtype} rule in the scores")
        score = scores[column].astype(float)
        if subtype == "synergy":
            return score, self.synergy
        if subtype == "suppression":
            return -score, -self.suppression
        if subtype == "additive":
            return -(score - 1.0).abs(), -self.additive
        if subtype == "redundancy":
            return score, self.redundancy
        if subtype == "neomorphism":
            return -score, -self.neomorphism
        return -score, -self.epistasis

    def holds(self, scores: pd.DataFrame, subtype: str) -> pd.Series:
        """Whether the rule of ``subtype`` holds for each pair: its strength beyond the cut.

        Beyond by more than ``1e-6`` (times ``|cut|`` where that exceeds 1): the scores are
        solved to about ``1e-8``, so an exactly additive pair, whose ``mean_abs_coef`` is 1
        to that precision, lies on the suppression cut of 1 rather than either side of it
        by its rounding. NaN scores hold nothing.

        Examples
        --------
        >>> import pandas as pd
        >>> import perturbsim as ps
        >>> scores = pd.DataFrame({"mean_abs_coef": [1 - 1e-8, 0.9]}, index=["A+B", "A+C"])
        >>> ps.tl.GIRules(magnitude_score="mean_abs_coef").holds(scores, "suppression").tolist()
        [False, True]
        """
        strength, cut = self.strength(scores, subtype)
        return strength > cut + ON_CUT * max(1.0, abs(cut))

    def classify(self, scores: pd.DataFrame) -> pd.DataFrame:
        """Boolean ``is_<subtype>`` columns and the primary ``subtype`` of each pair.

        The columns are pandas' nullable ``boolean``: missing (``<NA>``) where the score the
        rule reads is NaN (a pair not scored, or a score undefined for a scored pair:
        ``fit_corr`` of a pair whose change is 0 on every gene fitted), so that
        ``~is_synergy`` counts pairs with that score only. The primary subtype is the first
        of :data:`PRECEDENCE` that holds: rules on the shape of the relation before rules on
        its size (a poor linear fit, neomorphism, makes the coefficients meaningless;
        epistasis: one single explains the pair), then synergy, redundancy before
        suppression (a redundant pair, whose change looks like each single's, usually has
        ``c1 + c2 ≈ 1`` and so a suppressive magnitude: redundancy names why), and additive
        last, as the absence of an interaction. ``""`` where none holds (NaN scores).

        Examples
        --------
        >>> import pandas as pd
        >>> import perturbsim as ps
        >>> columns = ("magnitude", "dcor", "fit_corr", "equality")
        >>> scores = pd.DataFrame([[2.0, 0.5, 0.9, 0.9], [None] * 4], ["A+B", "A+C"], columns)
        >>> ps.tl.GIRules().classify(scores)["is_synergy"].tolist()
        [True, <NA>]
        """
        calls = pd.DataFrame(index=scores.index)
        for subtype in SUBTYPES:
            held = self.holds(scores, subtype).astype("boolean")
            calls[f"is_{subtype}"] = held.mask(scores[self.score_column(subtype)].isna()).array
        primary = np.full(len(scores), "", dtype=object)
        for subtype in reversed(PRECEDENCE):
            primary = np.where(calls[f"is_{subtype}"].fillna(False), subtype, primary)
        calls.insert(0, "subtype", primary.astype(str))
        return calls


def check_rules(rules: GIRules | None) -> GIRules:
    """``rules``, or the default :class:`GIRules` for None; anything else refused."""
    if rules is None:
        return GIRules()
    if not isinstance(rules, GIRules):
        raise PerturbsimError(
            f"rules must be a GIRules (e.g. ps.tl.GIRules(synergy=1.2)), got "
            f"{type(rules).__name__} {rules!r}"
        )
    return rules


def theil_sen(
    x: np.ndarray,
    y: np.ndarray,
    *,
    max_subsets: int = 100_000,
    seed: int | Sequence[int] | None = None,
    max_iter: int = _MAX_ITER,
    tol: float = _TOL,
) -> np.ndarray:
    """Theil-Sen regression of ``y`` on the two columns of ``x``, without intercept.

    Every subset of two rows (genes) determines the exact solution ``c`` of
    ``x[[i, j]] @ c = y[[i, j]]``; the estimate is the spatial (L1) median of these
    solutions, as in scikit-learn's ``TheilSenRegressor(fit_intercept=False)``, which
    Norman and GEARS used (with ``max_subpopulation=1e5``). Unlike scikit-learn,
    degenerate subsets (collinear rows, e.g. two genes with no change in either single)
    are left out instead of contributing their minimum-norm least-squares solution.

    Parameters
    ----------
    x
        Regressors, ``(n, 2)``.
    y
        Response, ``(n,)``.
    max_subsets
        All ``n (n - 1) / 2`` subsets when there are at most this many, else this many
        drawn at random (with replacement between subsets), by row position: rows in
        another order draw other subsets, which moves the estimate as another ``seed``
        does (about 0.005 on a Norman-sized pair of 500 fitted genes).
    seed
        Seed of the random subsets, an integer or a sequence of integers (entropy of a
        numpy ``SeedSequence``; default: ``perturbsim.settings.seed``).
    max_iter
        Iterations of the spatial median: Newton's method, its step halved (up to 6 times)
        until it decreases the summed distance; a Weiszfeld step instead where it does
        not, where the Hessian is singular, or where the estimate is on a data point
        (Vardi & Zhang's modification). It starts from the spatial median of every k-th
        solution (at most 10,000 of them; to ``√tol``), itself started from their
        coordinate-wise median.
    tol
        Stop when the estimate moves less than this, or when Newton's method, which
        converges quadratically, would next move it less than a hundredth of this (after a
        move ``t``, a move ``s`` with ``s³ / t² < tol / 100``).

    Returns
    -------
    ``(2,)`` coefficients; NaN when every subset is degenerate.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    >>> theil_sen(x, x @ [2.0, -1.0]).round(6)
    array([ 2., -1.])
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or x.shape[1] != 2 or y.shape != (x.shape[0],):
        raise PerturbsimError(f"theil_sen needs x (n, 2) and y (n,), got {x.shape} and {y.shape}")
    if max_subsets < 1:
        raise PerturbsimError(f"max_subsets must be positive, got {max_subsets}")
    return _theil_sen(
        x,
        y,
        max_subsets=max_subsets,
        seed=resolve_seed(None) if seed is None else seed,
        max_iter=max_iter,
        tol=tol,
        scratch=_Scratch(),
    )


class _Scratch:
    """Work arrays kept from one fit to the next (one set per thread).

    A fresh array of 100,000 values can cost more, in page faults, than the arithmetic
    done on it: glibc maps arrays above 128 KiB afresh unless its threshold has adapted,
    which it no longer does once set (``perturbsim._memory``, after training).
    """

    def __init__(self) -> None:
        self._kept: dict[type, list[np.ndarray]] = {
            np.float64: [],
            np.float32: [],
            np.int64: [],
        }
        self._subsets: dict[tuple[int, int, tuple[int, ...]], tuple[np.ndarray, np.ndarray]] = {}

    def arrays(self, count: int, size: int) -> list[np.ndarray]:
        """``count`` distinct float64 arrays of ``size`` values (contents undefined)."""
        return self._get(np.float64, count, size)

    def singles(self, count: int, size: int) -> list[np.ndarray]:
        """``count`` distinct float32 arrays of ``size`` values (contents undefined)."""
        return self._get(np.float32, count, size)

    def subsets(
        self, n: int, count: int, seed: int | Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_draw_subsets` of ``(n, count, seed)``, drawn once and kept.

        Pairs fitted on the same number of genes share their subsets. The last
        ``_KEPT_DRAWS`` draws are kept (a pair's own genes, left out of its fit, change
        its number of genes by at most two).
        """
        key = (n, count, tuple(np.atleast_1d(seed).tolist()))
        if key not in self._subsets:
            if len(self._subsets) == _KEPT_DRAWS:
                del self._subsets[next(iter(self._subsets))]
            out = [np.empty(count, dtype=np.int64) for _ in range(2)]
            self._subsets[key] = _draw_subsets(n, count, seed, out)
        return self._subsets[key]

    def _get(self, dtype: type, count: int, size: int) -> list[np.ndarray]:
        kept = self._kept[dtype]
        for i in range(count):
            if i == len(kept):
                kept.append(np.empty(size, dtype=dtype))
            elif kept[i].size < size:
                kept[i] = np.empty(size, dtype=dtype)
        return [array[:size] for array in kept[:count]]


def _theil_sen(
    x: np.ndarray,
    y: np.ndarray,
    *,
    max_subsets: int,
    seed: int | Sequence[int],
    max_iter: int,
    tol: float,
    scratch: _Scratch,
) -> np.ndarray:
    """:func:`theil_sen` on checked float arrays, with work arrays from ``scratch``."""
    n = x.shape[0]
    if n * (n - 1) // 2 <= max_subsets:
        first, second = np.triu_indices(n, k=1)
    else:
        first, second = scratch.subsets(n, max_subsets, seed)
    m = first.size
    if m == 0:
        return np.full(2, np.nan)
    at_first, at_second, rest = (a.reshape(-1, m) for a in scratch.arrays(3, 4 * m))
    columns = np.stack([x[:, 0], x[:, 1], y, np.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)])
    np.take(columns, first, axis=1, out=at_first, mode="clip")  # "raise" would buffer
    np.take(columns, second, axis=1, out=at_second, mode="clip")
    (xi0, xi1, yi, norm_i), (xj0, xj1, yj, norm_j) = at_first, at_second
    det, c1, c2 = rest[:3]
    np.subtract(np.multiply(xi0, xj1, out=det), np.multiply(xi1, xj0, out=c1), out=det)
    scale = np.multiply(np.multiply(norm_i, norm_j, out=c1), _COLLINEAR, out=c1)
    ok = np.abs(det, out=c2) > scale
    if not ok.any():
        return np.full(2, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.subtract(np.multiply(yi, xj1, out=c1), np.multiply(xi1, yj, out=c2), out=c1)
        np.divide(c1, det, out=c1)
        np.subtract(np.multiply(xi0, yj, out=c2), np.multiply(yi, xj0, out=xj0), out=c2)
        np.divide(c2, det, out=c2)
    if not ok.all():
        c1, c2 = c1[ok], c2[ok]
    work = [array[: c1.size] for array in at_first]
    return _spatial_median(c1, c2, work, max_iter=max_iter, tol=tol)


def _draw_subsets(
    n: int, count: int, seed: int | Sequence[int], out: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random subsets ``(first, second)`` of two of ``n`` rows, into ``out``.

    As ``rng = np.random.default_rng(seed)``, ``first = rng.integers(0, n, size=count)``,
    ``second = rng.integers(0, n - 1, size=count)``, ``second += second >= first``, drawn
    ``_DRAW`` at a time: the same numbers (numpy's generator draws them one after the
    other), without fresh arrays too large for the allocator to recycle.
    """
    rng = np.random.default_rng(seed)
    first, second = out
    for high, indices in ((n, first), (n - 1, second)):
        for start in range(0, count, _DRAW):
            part = indices[start : start + _DRAW]
            part[...] = rng.integers(0, high, size=part.size)
    second += second >= first
    return first, second


class _Weber(NamedTuple):
    """The summed distance to the points from an estimate, and its derivatives there."""

    distance: float
    """Summed distance to the points (the objective)."""
    weight: float
    """``Σ 1/d`` over the points not on the estimate."""
    pull: tuple[float, float]
    """``Σ u``: unit vectors from the estimate towards those points (minus the gradient)."""
    xx: float
    """``Σ ux² / d``; with ``xy`` and ``weight`` the Hessian ``Σ (I - u uᵀ) / d``."""
    xy: float
    """``Σ ux uy / d``."""
    on: int
    """Points on the estimate (within rounding: ``_ON_POINT``), left out of the sums."""


def _weber(
    px: np.ndarray, py: np.ndarray, estimate: tuple[float, float], work: list[np.ndarray]
) -> _Weber:
    """:class:`_Weber` terms of the points ``(px, py)`` at ``estimate``; four work arrays."""
    rx, ry, dist, weight = work
    np.subtract(px, estimate[0], out=rx)
    np.subtract(py, estimate[1], out=ry)
    np.multiply(rx, rx, out=dist)
    np.add(dist, np.multiply(ry, ry, out=weight), out=dist)
    np.sqrt(dist, out=dist)
    with np.errstate(divide="ignore"):
        np.divide(1.0, dist, out=weight)
    total = weight.sum()
    near = _ON_POINT * max(1.0, abs(estimate[0]), abs(estimate[1]))
    on = 0
    if not total < 1.0 / near:  # some point may be within rounding of the estimate
        on_point = dist <= near
        on = int(np.count_nonzero(on_point))
        weight[on_point] = 0.0
        total = weight.sum()
    np.multiply(rx, weight, out=rx)
    np.multiply(ry, weight, out=ry)
    pull = (float(rx.sum()), float(ry.sum()))
    np.multiply(weight, rx, out=weight)
    xx, xy = np.einsum("i,i->", weight, rx), np.einsum("i,i->", weight, ry)
    return _Weber(float(dist.sum()), float(total), pull, float(xx), float(xy), on)


def _median_move(terms: _Weber) -> tuple[tuple[float, float], bool]:
    """Next move of the spatial median, and whether it is Newton's (else Weiszfeld's)."""
    (px, py), xx, xy = terms.pull, terms.xx, terms.xy
    if terms.on:
        # Vardi & Zhang: on data points, optimal unless the pull of the others exceeds them
        pull = math.hypot(px, py)
        shrink = max(0.0, 1.0 - terms.on / pull) / terms.weight if pull > 0 else 0.0
        return (shrink * px, shrink * py), False
    yy = terms.weight - xx  # Σ uy² / d
    det = yy * xx - xy**2
    if det > _SINGULAR * terms.weight**2:
        return ((xx * px + xy * py) / det, (xy * px + yy * py) / det), True
    return (px / terms.weight, py / terms.weight), False


def _spatial_median(
    px: np.ndarray, py: np.ndarray, work: list[np.ndarray], *, max_iter: int, tol: float
) -> np.ndarray:
    """The point minimising the summed Euclidean distance to the points ``(px, py)``."""
    if px.size > _START:
        every = -(-px.size // _START)
        sample = [np.ascontiguousarray(p[::every]) for p in (px, py)]
        sample_work = [w[: sample[0].size] for w in work]
        # a start within ~√tol will do: Newton's next move squares the error
        estimate = _spatial_median(*sample, sample_work, max_iter=max_iter, tol=math.sqrt(tol))
    else:
        estimate = np.array([np.median(px), np.median(py)])
    ex, ey = (float(v) for v in estimate)
    terms = _weber(px, py, (ex, ey), work)
    last = 0.0  # size of the last move if Newton's, else 0
    for _ in range(max_iter):
        (mx, my), newton = _median_move(terms)
        size = math.hypot(mx, my)
        # quadratic convergence: the next move would be about size³ / last²; 100 for safety
        if size < tol or (newton and size < last and 100 * size**3 < tol * last**2):
            return np.array([ex + mx, ey + my])
        moved = _weber(px, py, (ex + mx, ey + my), work)
        halvings = 0
        while newton and moved.distance > terms.distance:
            if halvings == _HALVINGS:  # Weiszfeld's step, which always descends
                mx, my, newton = terms.pull[0] / terms.weight, terms.pull[1] / terms.weight, False
                if math.hypot(mx, my) < tol:
                    return np.array([ex + mx, ey + my])
            else:
                mx, my, halvings = mx / 2, my / 2, halvings + 1
            moved = _weber(px, py, (ex + mx, ey + my), work)
        ex, ey, terms = ex + mx, ey + my, moved
        last = size if newton and not halvings else 0.0
    return np.array([ex, ey])


class _Distances(NamedTuple):
    """What distance correlations need of the distance matrix ``D`` of one sample."""

    sums: np.ndarray
    """Row sums ``Σ_j D_ij``."""
    var: float
    """Distance variance (V-statistic): the mean of the squared double-centred ``D``."""


def _distances(sums: np.ndarray, squares: float, constant: bool) -> _Distances:
    """:class:`_Distances` from the row sums and ``Σ_ij D_ij²`` (variance 0 if ``constant``)."""
    n = sums.size
    total = sums.sum()
    var = 0.0 if constant else squares / n**2 - 2 * (sums @ sums) / n**3 + (total / n**2) ** 2
    return _Distances(sums, var)


def _line_distances(v: np.ndarray) -> _Distances:
    """:class:`_Distances` of a centred univariate sample, in ``O(n log n)`` by sorting."""
    n = v.size
    order = np.argsort(v)
    ranked = v[order]
    below = np.cumsum(ranked) - ranked
    sums = np.empty(n)
    sums[order] = ranked * (2 * np.arange(n) - n) + ranked.sum() - 2 * below
    return _distances(sums, 2 * n * (v @ v) - 2 * v.sum() ** 2, bool(v.min() == v.max()))


def _dcor_of(cross: float, x: _Distances, y: _Distances) -> float:
    """Distance correlation from ``Σ_ij Dx_ij Dy_ij`` and the two samples' terms.

    The V-statistic of Székely et al. expanded: the mean of the products of the
    double-centred matrices is ``cross/n² - 2 Σ_i rx_i ry_i / n³ + Σrx Σry / n⁴`` for
    row sums ``rx``, ``ry``.
    """
    if x.var <= 0 or y.var <= 0:
        return 0.0
    n = x.sums.size
    cov = cross / n**2 - 2 * (x.sums @ y.sums) / n**3 + x.sums.sum() * y.sums.sum() / n**4
    return float(np.sqrt(max(cov, 0.0) / np.sqrt(x.var * y.var)))


def _pair_dcors(
    da: np.ndarray, db: np.ndarray, dab: np.ndarray, scratch: _Scratch
) -> dict[str, float]:
    """``dcor``, ``dcor_singles``, ``dcor_a`` and ``dcor_b`` of one pair's changes.

    One pass over the gene pairs ``i < j`` with the genes sorted by ``dab``, ``_BLOCK``
    rows of the distance matrices of ``da``, ``db`` and ``(da, db)`` at a time. With
    ``dab`` sorted, ``Σ_ij D_ij |dab_i - dab_j| = 2 Σ_j dab_j Σ_i<j D_ij - 2 Σ_i dab_i
    Σ_j>i D_ij``: the pass sums each matrix over ``j > i``, the joint one over ``i < j``
    too (for a univariate sample that is ``Σ_j D_ij``, known by sorting, minus the
    first), and ``Σ_ij |Δda| |Δdb|``. The distances are computed in float32 (half the
    memory traffic), each row summed in float32 and the rows in float64: equal to the
    distance correlation computed from the whole distance matrices (Székely et al. 2007,
    V-statistic) to about 1e-6.
    """
    n = dab.size
    a, b, y = (v - v.mean() for v in (da, db, dab))
    order = np.argsort(y)
    a, b, y = a[order], b[order], y[order]
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    later = np.zeros((3, n))  # Σ_j>i of |Δa|, |Δb| and the joint distance ‖(Δa, Δb)‖
    earlier = np.zeros(n)  # Σ_j<i of the joint distance (Σ_j<i |Δa| is Σ_j |Δa| - Σ_j>i)
    cross_singles = 0.0  # Σ_i<j |Δa| |Δb|
    block = min(_BLOCK, n)
    upper = np.triu(np.ones((block, block), dtype=bool))  # in the diagonal square, j >= i
    stacked, square_b = scratch.singles(2, 3 * block * n)
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows, cols = stop - start, n - start
        diffs = stacked[: 3 * rows * cols].reshape(3, rows, cols)  # |Δa|, |Δb|, joint
        np.subtract.outer(a32[start:stop], a32[start:], out=diffs[0])
        np.subtract.outer(b32[start:stop], b32[start:], out=diffs[1])
        np.multiply(diffs[0], diffs[0], out=diffs[2])
        squares = np.multiply(diffs[1], diffs[1], out=square_b[: rows * cols].reshape(rows, cols))
        np.sqrt(np.add(diffs[2], squares, out=diffs[2]), out=diffs[2])
        np.abs(diffs[:2], out=diffs[:2])
        square = diffs[:, :, :rows]  # keep each gene pair once, i < j
        np.multiply(square, upper[:rows, :rows], out=square)
        cross_singles += np.einsum("ij,ij->i", diffs[0], diffs[1]).sum(dtype=float)
        later[:, start:stop] += diffs.sum(axis=2)
        earlier[start:] += diffs[2].sum(axis=0)
    constant = bool(a.min() == a.max() and b.min() == b.max())
    joint = _distances(later[2] + earlier, 2 * n * (a @ a + b @ b), constant)
    terms_a, terms_b, terms_y = (_line_distances(v) for v in (a, b, y))
    # Σ_ij D_ij |Δy| = 2 Σ_j y_j Σ_i<j D_ij - 2 Σ_i y_i Σ_j>i D_ij
    return {
        "dcor": _dcor_of(2 * (earlier @ y - later[2] @ y), joint, terms_y),
        "dcor_singles": _dcor_of(2 * cross_singles, terms_a, terms_b),
        "dcor_a": _dcor_of(2 * (terms_a.sums @ y - 2 * (later[0] @ y)), terms_a, terms_y),
        "dcor_b": _dcor_of(2 * (terms_b.sums @ y - 2 * (later[1] @ y)), terms_b, terms_y),
    }


def _pair_scores(
    da: np.ndarray,
    db: np.ndarray,
    dab: np.ndarray,
    *,
    max_subsets: int,
    seed: Sequence[int],
    scratch: _Scratch,
    noise: np.ndarray | None = None,
    correction: np.random.Generator | None = None,
) -> dict[str, float] | None:
    """The score columns of one pair from its changes over the fitted genes.

    ``None`` when the singles are zero or collinear (``|cosine|`` above
    :data:`MAX_SINGLES_COSINE`, or every Theil-Sen subset degenerate). With ``noise``
    (``(4, genes)``: the squared standard errors of the means of A, B, A+B and the
    control), the singles' reliability (:func:`singles_reliability`); with ``correction``
    too (the generator of its added noise), the coefficients corrected for the noise
    (:func:`~perturbsim.pp._gi_simex.simex_coefficients`) where the reliability is at least
    :data:`MIN_RELIABILITY`, ``corrected`` saying where, the fit's own in
    ``c1_uncorrected`` and ``c2_uncorrected``. ``fit_corr`` is always the fit's own: the
    correlation of the measured changes with the fit of them (the corrected coefficients
    fit a noiseless pair, not the measured one).
    """
    norms = float(np.linalg.norm(da) * np.linalg.norm(db))
    if norms == 0.0 or abs(float(da @ db)) > MAX_SINGLES_COSINE * norms:
        return None
    singles = np.column_stack([da, db])

    def theil_sen_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _theil_sen(
            x, y, max_subsets=max_subsets, seed=seed, max_iter=_MAX_ITER, tol=_TOL, scratch=scratch
        )

    measured = theil_sen_fit(singles, dab)
    c1, c2 = measured
    if np.isnan(c1):
        return None
    reliability = np.nan if noise is None else singles_reliability(singles, noise[[0, 1, 3]])
    corrections: dict[str, float] = {}
    if correction is not None:
        corrected = np.full(2, np.nan)
        if noise is not None and np.isfinite(noise).all() and reliability >= MIN_RELIABILITY:
            changes = np.vstack([da, db, dab])
            corrected = simex_coefficients(
                changes, noise, theil_sen_fit, correction, measured=measured
            )
        is_corrected = bool(np.isfinite(corrected).all())
        corrections = {
            "corrected": is_corrected,
            "c1_uncorrected": float(c1),
            "c2_uncorrected": float(c2),
        }
        if is_corrected:
            c1, c2 = corrected
    fit = singles @ measured  # the fit's own: the measured changes follow no correction
    with np.errstate(divide="ignore", invalid="ignore"):
        fit_corr = float(np.corrcoef(fit, dab)[0, 1]) if fit.std() > 0 and dab.std() > 0 else np.nan
        dominance = float(np.abs(np.log10(np.abs(c1) / np.abs(c2))))
    dcors = _pair_dcors(da, db, dab, scratch)
    top = max(dcors["dcor_a"], dcors["dcor_b"])
    return {
        "c1": float(c1),
        "c2": float(c2),
        "magnitude": float(np.hypot(c1, c2)),
        "mean_abs_coef": float((abs(c1) + abs(c2)) / 2),
        "fit_corr": fit_corr,
        **dcors,
        "dominance": dominance,
        "equality": min(dcors["dcor_a"], dcors["dcor_b"]) / top if top > 0 else np.nan,
        "reliability": reliability,
        **corrections,
    }


def singles_reliability(singles: np.ndarray, noise: np.ndarray) -> float:
    """The share of a pair's two measured singles' spread that is not their noise.

    Fitting the pair's change on two singles measured with noise biases the coefficients
    (errors in variables): the singles' spread over the genes holds their noise, which the
    pair's change does not follow, so the fit drifts from the true coefficients towards what
    a fit of pure noise gives (0 when the control is exact; about a third each when the
    control's noise, shared by the singles and the pair, equals theirs). With each single's
    change ``ΔA = mean_A - mean_ctrl`` measured with error variance ``s²_A + s²_c`` per
    gene, the singles' normal equations ``SᵀS`` hold ``N = Σ_genes [[s²_A + s²_c, s²_c],
    [s²_c, s²_B + s²_c]]`` of noise in expectation; the reliability is ``1 -`` the largest
    eigenvalue of ``N`` relative to ``SᵀS``: the share that is not noise in the direction
    where it is least (a weak single, or two singles nearly alike, leave little spread
    there, which noise then swamps).

    Parameters
    ----------
    singles
        ``(genes, 2)``: the measured changes of A and B over the fitted genes.
    noise
        ``(3, genes)``: squared standard errors of the means of A, B and the control.

    Returns
    -------
    The reliability: an estimate of a share in ``[0, 1]``, below 0 where the spread
    measured in that direction is less than the noise expected there (a single that is
    all noise); NaN with noise not known (NaN) or singles without spread.

    Examples
    --------
    >>> singles = np.array([[2.0, 0.0], [0.0, 2.0]])  # each single's change: 4 of spread
    >>> noise = np.array([[0.5, 0.5], [0.5, 0.5], [0.0, 0.0]])  # 1 of it noise
    >>> singles_reliability(singles, noise)
    0.75
    >>> weak = np.array([[2.0, 0.0], [0.0, 0.5]])  # B's change: 0.25 of spread, 1 of noise
    >>> singles_reliability(weak, noise)
    -3.0
    """
    gram = singles.T @ singles
    a, b, control = noise.sum(axis=1)
    bias = np.array([[a + control, control], [control, b + control]])
    if not np.isfinite(bias).all() or np.linalg.det(gram) <= 0:
        return np.nan
    return 1.0 - float(linalg.eigh(bias, gram, eigvals_only=True).max())


def _canonical(label: object, sep: str) -> str:
    """The canonical form of ``label``: genes joined by ``sep``, or by ``+`` if it has one."""
    text = str(label)
    return canonical_label(parse_label(text, sep=label_sep(text, sep)))


def _profile_rows(profiles: AnnData, sep: str) -> dict[str, int]:
    """Canonical label of each row of ``profiles`` (genes joined by ``sep``) -> row index."""
    check_label_part("sep", sep, "_")
    rows: dict[str, int] = {}
    for i, name in enumerate(profiles.obs_names):
        label = _canonical(name, sep)
        if label in rows:
            raise PerturbsimError(
                f"profiles has two rows for condition {label!r}: "
                f"{profiles.obs_names[rows[label]]!r} and {name!r}"
            )
        rows[label] = i
    return rows


def _require_finite(labels: Sequence[str], changes: Sequence[np.ndarray]) -> None:
    """Raise naming the ``labels`` whose ``changes`` hold NaN or infinite values."""
    bad = [c for c, row in zip(labels, changes, strict=True) if not np.isfinite(row).all()]
    if bad:
        raise PerturbsimError(f"non-finite values in .layers[{DELTA_LAYER!r}] of {bad}")


def _check_squared_errors(values: np.ndarray, where: Callable[[int, int], str]) -> None:
    """Refuse negative or infinite squared standard errors, ``where`` naming the first.

    ``where(row, column)`` says where the value lies; NaN (unknown) is allowed.
    """
    bad = np.isinf(values) | (values < 0)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise PerturbsimError(
            f"{where(row, column)} holds {values[row, column]:g}: a squared standard error is "
            "a finite number >= 0 (NaN: unknown)"
        )


def _noise_of(profiles: AnnData, rows: Mapping[str, int]) -> tuple[object, np.ndarray] | None:
    """The squared standard errors of measured profiles' means, and of the control's.

    ``None`` when ``profiles`` carry none (predictions). The control's are its row's, else
    ``.var["control_mean_variance"]`` (:func:`perturbsim.pp.measured_profiles` writes it),
    else taken as 0 with a warning: a control mean given as exact.
    """
    if MEAN_VARIANCE_LAYER not in profiles.layers:
        return None
    squared_se = profiles.layers[MEAN_VARIANCE_LAYER]
    _check_squared_errors(
        dense_rows(squared_se, range(profiles.n_obs)),
        lambda row, gene: (
            f"profiles.layers[{MEAN_VARIANCE_LAYER!r}], row {profiles.obs_names[row]!r}, gene "
            f"{profiles.var_names[gene]!r},"
        ),
    )
    if CONTROL in rows:
        control = dense_rows(squared_se, [rows[CONTROL]])[0]
    elif CONTROL_MEAN_VARIANCE in profiles.var:
        column = profiles.var[CONTROL_MEAN_VARIANCE]
        control = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        text = column.notna().to_numpy() & np.isnan(control)
        if text.any():
            raise PerturbsimError(
                f"profiles.var[{CONTROL_MEAN_VARIANCE!r}] holds {column.iloc[text.argmax()]!r} "
                f"for {profiles.var_names[text.argmax()]!r}: squared standard errors are numbers"
            )
        _check_squared_errors(
            control[None, :],
            lambda _, gene: (
                f"profiles.var[{CONTROL_MEAN_VARIANCE!r}] of {profiles.var_names[gene]!r}"
            ),
        )
    else:
        logger.warning(
            "profiles carry the squared standard errors of their means (.layers[%r]) but not "
            "the control's (no %r row, no .var[%r]): the control's mean taken as exact in "
            "the singles' reliability",
            MEAN_VARIANCE_LAYER,
            CONTROL,
            CONTROL_MEAN_VARIANCE,
        )
        control = np.zeros(profiles.n_vars)
    return squared_se, np.asarray(control, dtype=np.float64)


def _delta(profiles: AnnData) -> object:
    """The ``.layers["delta"]`` matrix of ``profiles`` (dense or sparse, as stored)."""
    if DELTA_LAYER not in profiles.layers:
        raise PerturbsimError(
            f"profiles has no .layers[{DELTA_LAYER!r}] (change over control): "
            "pass model.predict(...) output, or perturbsim.pp.measured_profiles(adata) for "
            "a screen's measured means"
        )
    return profiles.layers[DELTA_LAYER]


def _control(
    profiles: AnnData, rows: Mapping[str, int], delta: object, control_mean: np.ndarray | None
) -> np.ndarray:
    """Mean control expression: row ``ctrl`` of X, else ``control_mean``, else X - delta.

    A ``control_mean`` given beside a ``ctrl`` row must agree with it.
    """
    given = None if control_mean is None else checked_control_mean(control_mean, profiles.n_vars)
    if CONTROL in rows:
        row = dense_rows(profiles.X, [rows[CONTROL]])[0]
        _check_finite_control(row, f"the {CONTROL!r} row of profiles.X", profiles.var_names)
        if given is not None and not np.allclose(given, row, rtol=1e-5, atol=1e-6):
            raise PerturbsimError(
                f"control_mean differs from the {CONTROL!r} row of profiles by up to "
                f"{np.abs(given - row).max():.3g}: pass one of them"
            )
        return row
    if given is not None:
        return given
    first = dense_rows(profiles.X, [0])[0] - dense_rows(delta, [0])[0]
    _check_finite_control(first, f"X - .layers[{DELTA_LAYER!r}] of profiles", profiles.var_names)
    for start in range(0, profiles.n_obs, _CHUNK):
        chunk = range(start, min(start + _CHUNK, profiles.n_obs))
        implied = dense_rows(profiles.X, chunk) - dense_rows(delta, chunk)
        if not np.allclose(implied, first, atol=1e-3):
            raise PerturbsimError(
                f"profiles has no {CONTROL!r} row and X - .layers[{DELTA_LAYER!r}] differs "
                "between rows: pass control_mean="
            )
    return first


def _check_finite_control(control: np.ndarray, source: str, genes: Sequence[str]) -> None:
    """Refuse a mean control expression with NaN or infinite values, naming the genes."""
    bad = ~np.isfinite(control)
    if bad.any():
        raise PerturbsimError(
            f"{source} holds NaN or infinite values at {shown_list(np.asarray(genes)[bad], 5)}: "
            "the mean control expression chooses the genes interactions are fitted on"
        )


def checked_control_mean(control_mean: object, n_genes: int) -> np.ndarray:
    """``control_mean`` as a float vector of one finite value for each of ``n_genes`` genes.

    Raises
    ------
    PerturbsimError
        For values that are not numbers, another number of them, or NaN or infinite ones.
    """
    try:
        control = np.asarray(control_mean, dtype=float).ravel()
    except (TypeError, ValueError):
        given = shown(control_mean) if np.ndim(control_mean) == 0 else "values that are not"
        raise PerturbsimError(f"control_mean must be numbers, one per gene, got {given}") from None
    if control.shape != (n_genes,):
        raise PerturbsimError(
            f"control_mean has {control.size} values but profiles has {n_genes} genes"
        )
    if not np.isfinite(control).all():
        raise PerturbsimError(
            f"control_mean holds {int((~np.isfinite(control)).sum())} NaN or infinite values"
        )
    return control


def _requested_pairs(pairs: Sequence[str] | None, rows: Mapping[str, int], sep: str) -> list[str]:
    """The canonical labels of ``pairs`` (genes joined by ``sep``), default every pair row."""
    if pairs is None:
        found = [label for label in rows if len(genes_of(label)) == 2]
        if not found:
            joined = [label for label in rows if any(s in label for s in SEPARATORS)]
            logger.warning(
                "no two-gene row among the %d profiles (labels such as %r): pairs are read as "
                "genes joined by %r; pass sep= if they are joined otherwise",
                len(rows),
                (joined or list(rows) or [""])[0],
                sep,
            )
        return found
    check_list("pairs", pairs, "labels")
    out: list[str] = []
    for pair in pairs:
        label = _canonical(pair, sep)
        if len(genes_of(label)) != 2:
            raise PerturbsimError(
                f"not a two-gene pair: {pair!r} (genes joined by {sep!r}; pass sep= for another "
                "separator)"
            )
        if label not in out:
            out.append(label)
    return out


FEW_DE = "too few DE genes"
"""Start of the flag reason of a pair with no more DE genes than ``min_de``."""
_FLAG_KINDS = {
    "missing single": "missing single(s)",
    "generic single": "a single the model's generic guess",
    "few cells": "a mean of fewer cells than min_cells",
    FEW_DE: "no more DE genes than min_de",
}
"""Starts of :func:`gi_scores`' flag reasons that name genes or counts -> the reason alone."""


def flag_kind(flag: str) -> str:
    """A :func:`gi_scores` flag without the genes or counts it names, to count pairs by.

    Examples
    --------
    >>> flag_kind("generic single GATA1; too few DE genes (7 <= 10)")
    "a single the model's generic guess; no more DE genes than min_de"
    >>> flag_kind("singles collinear or zero")
    'singles collinear or zero'
    """
    return "; ".join(
        next((kind for start, kind in _FLAG_KINDS.items() if part.startswith(start)), part)
        for part in flag.split("; ")
    )


def unscored_for_few_de_only(scores: pd.DataFrame) -> pd.Series:
    """Which pairs of :func:`gi_scores` are flagged for their DE count alone.

    Such a pair was measured well enough to score (singles, cells, genes) but changes too
    few genes for its interaction to be told from noise.
    """
    reasons = scores["flag"].astype(str).str.split("; ")
    return reasons.map(lambda parts: len(parts) == 1 and parts[0].startswith(FEW_DE))


def _de_count(pair: str, value: object) -> int:
    """A pair's DE count as given in ``n_de``: a whole number >= 0, else a one-line error."""
    count = as_whole(value)
    if count is None or count < 0:
        raise PerturbsimError(f"n_de of {pair!r} must be a whole number >= 0, got {shown(value)}")
    return count


def _canonical_de_counts(n_de: Mapping[str, object], sep: str) -> dict[str, int]:
    """``n_de`` by canonical pair label; two spellings of one pair must agree."""
    counts: dict[str, int] = {}
    spelled: dict[str, object] = {}
    for pair, value in n_de.items():
        label, count = _canonical(pair, sep), _de_count(pair, value)
        if label in counts and counts[label] != count:
            raise PerturbsimError(
                f"n_de gives {label!r} twice with different counts: {spelled[label]!r} "
                f"{counts[label]} and {pair!r} {count}"
            )
        counts[label], spelled[label] = count, pair
    return counts


def _flags(
    pair: str,
    rows: Mapping[str, int],
    n_de: Mapping[str, int] | None,
    min_de: int,
    n_genes: int,
    unsupported: set[str],
    few_cells: Mapping[str, int],
) -> list[str]:
    """Why ``pair`` cannot be scored (empty when it can)."""
    reasons = [] if pair in rows else ["missing pair"]
    missing = [g for g in genes_of(pair) if g not in rows]
    if missing:
        reasons.append(f"missing single{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    few = [f"{label} {few_cells[label]}" for label in (pair, *genes_of(pair)) if label in few_cells]
    if few:
        reasons.append(f"few cells ({', '.join(few)})")
    weak = [g for g in genes_of(pair) if g in unsupported]
    if weak:
        reasons.append(f"generic single {', '.join(weak)}")
    if n_de is not None:
        if pair not in n_de:
            reasons.append("no DE count")
        elif n_de[pair] <= min_de:
            reasons.append(f"{FEW_DE} ({n_de[pair]} <= {min_de})")
    if n_genes < MIN_GENES:
        reasons.append(f"fewer than {MIN_GENES} genes")
    return reasons


def _few_cells(profiles: AnnData, sep: str, min_cells: int) -> dict[str, int]:
    """Canonical label -> cells of the rows averaging fewer than ``min_cells`` (``n_cells``).

    Empty when ``profiles.obs`` has no ``n_cells`` column (predictions).
    """
    if "n_cells" not in profiles.obs.columns:
        return {}
    column = profiles.obs["n_cells"]
    cells = pd.to_numeric(column, errors="coerce").to_numpy(float)
    unread = np.isnan(cells) & column.notna().to_numpy()
    with np.errstate(invalid="ignore"):
        uncountable = (cells < 0) | (np.isfinite(cells) & (cells != np.round(cells)))
    wrong = unread | uncountable | np.isinf(cells)
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        value = repr(column.iloc[row]) if unread[row] else f"{cells[row]:g}"
        raise PerturbsimError(
            f"profiles.obs['n_cells'] must hold cell counts: {value} in row "
            f"{profiles.obs_names[row]!r} is not a whole number >= 0"
        )
    return {
        _canonical(label, sep): int(n)
        for label, n in zip(profiles.obs_names, cells, strict=True)
        if np.isfinite(n) and n < min_cells
    }


def gi_scores(
    profiles: AnnData,
    *,
    pairs: Sequence[str] | None = None,
    genes: str | Sequence[str] | np.ndarray = "abundant",
    abundance: float | None = None,
    control_mean: np.ndarray | None = None,
    exclude_targets: bool = True,
    n_de: Mapping[str, int] | None = None,
    min_de: int = 10,
    rules: GIRules | None = None,
    max_subsets: int = 100_000,
    seed: int | None = None,
    unsupported: Sequence[str] | None = None,
    min_cells: int = MIN_REPLICATE_CELLS,
    noise_correction: bool = False,
    sep: str = SEP,
) -> pd.DataFrame:
    """Score genetic interactions of gene pairs by Norman et al.'s linear model.

    For each pair A+B, the change of the pair over control is fitted as
    ``c1·ΔA + c2·ΔB`` by Theil-Sen regression without intercept (:func:`theil_sen`) over
    a set of genes, and the fit is summarised by the scores described under Returns (their
    sources: :mod:`perturbsim.pp._gi`). Works on measured profiles, predictions
    (``model.predict``) and mixes of the two (concatenate measured singles with a
    predicted pair): only the rows' changes matter.

    Parameters
    ----------
    profiles
        One row per condition, ``obs_names`` perturbation labels (``"A"``, ``"A+B"``,
        ``"ctrl"``; any form :func:`perturbsim.pp.parse_label` reads, gene order free);
        genes as columns; the change over control in ``.layers["delta"]``, the mean
        expression in ``X`` (used only for the ``"abundant"`` genes).
    pairs
        Pair labels to score; default every two-gene row of ``profiles``. A pair named here
        whose own row or a single's is missing (a typo?) is flagged, and a warning names it.
    genes
        ``"abundant"``: genes whose mean control expression exceeds ``abundance`` (Norman
        thresholded the mean over all the screen's cells, which profiles do not hold, and
        left out every gene the screen perturbs); or an explicit list of genes, or a
        boolean mask over ``profiles.var_names``. The fitted genes are part of the
        method: on a few hundred highly variable genes, where most changes are near
        zero, the fits differ from Norman's whole-transcriptome ones (see
        ``benchmarks/RESULTS.md``).
    abundance
        Threshold of ``"abundant"``, on the scale of ``X``. Norman's 0.5 was a mean UMI
        count per cell (his notebook ``GI_model_fits.ipynb``); on log1p-normalised data it
        selects fewer genes. Default (``None``): 0.5 where at least :data:`FEW_GENES` genes
        exceed it, else 0, every expressed gene (:func:`resolve_abundance`; as
        :func:`perturbsim.tl.evaluate` and ``perturbsim gi`` choose).
    control_mean
        Mean control expression, by which ``"abundant"`` genes are chosen (not read with a
        list of genes), used when ``profiles`` has no ``ctrl`` row (beside one, it must
        agree with it); by default ``X - .layers["delta"]`` (identical over rows for model
        predictions).
    exclude_targets
        Leave each pair's own genes out of its fit: their change is the perturbation
        itself (Norman left out the targets of every perturbation of his screen).
    n_de
        Number of DE genes of each pair (labels as ``pairs``); pairs with at most
        ``min_de`` are flagged, as Norman fitted only pairs with more than 10 (his count:
        abundant genes whose KS test against control has adjusted p < 0.001). Without it
        no pair is flagged for its DE genes, and measured profiles (with
        ``.layers["mean_variance"]``) are warned of unless ``min_de=0``.
    min_de
        See ``n_de``; 0 flags only the pairs that change no gene.
    rules
        Subtype thresholds, :class:`GIRules` (defaults: the GEARS paper's, on whose
        magnitude scale an exactly additive pair, ``c1 = c2 = 1``, is a synergy;
        ``GIRules(magnitude_score="mean_abs_coef")`` is Norman's scale, where it is 1 and
        additive).
    max_subsets
        Two-gene subsets per Theil-Sen fit (all when there are fewer).
    seed
        Seed of the subsets (default ``perturbsim.settings.seed``). Pairs fitted on the
        same number of genes share the subsets drawn from ``seed`` (drawn once), so a
        pair's scores do not depend on the other pairs, nor on the threads that score
        them (up to 8, one per core).
    unsupported
        Genes whose profiles are predictions resting on nothing measured of them: their
        single is then the model's generic guess, and a pair's coefficients would read that
        guess's scale rather than the gene, so their pairs are flagged, not scored. None
        (default): the genes whose single's row a model's prediction flags in
        ``.obs["unsupported"]`` or ``.obs["generic"]`` (:func:`generic_guesses`; none for
        measured profiles); ``()`` flags none.
    min_cells
        Where ``profiles.obs`` has ``n_cells`` (measured means:
        :func:`perturbsim.pp.measured_profiles`), pairs whose own mean or a single's
        averages fewer cells are flagged, not scored: a mean of one to three cells is
        mostly noise, and a pair fitted on noise reads as a neomorphism (low
        ``fit_corr``). The default 4 is what a split-half replicate needs (as
        :func:`perturbsim.tl.evaluate`'s ``min_cells``); 1 scores every pair.
    noise_correction
        For measured profiles (:func:`perturbsim.pp.measured_profiles`: the squared
        standard errors of their means in ``.layers["mean_variance"]``), correct the
        coefficients of each measured pair whose singles' ``reliability`` is at least
        :data:`MIN_RELIABILITY` for the bias their measurement noise puts in the fit
        (simulation-extrapolation, keeping the Theil-Sen fit:
        :mod:`perturbsim.pp._gi_simex`; about 80 fits a pair, so slower); ``magnitude``,
        ``mean_abs_coef``, ``dominance`` and the subtypes follow (``fit_corr`` stays the
        fit's own, which noise lowers too: neomorphism stays over-called on noisy screens).
        Off by default: Norman's published scores are uncorrected. On simulated screens it
        cut the corrected pairs' magnitude error by a third to a half, each coefficient's
        less and not pair by pair (``benchmarks/RESULTS.md``, "Noisy singles"). Refused for
        profiles that carry no standard errors (predictions, a simulator's noiseless
        truth).
    sep
        Separator of the genes of a combination in the labels of ``profiles``, ``pairs`` and
        ``n_de`` (e.g. ``"_"`` for ``KLF1_MAP2K6``); labels joined by ``+`` (as perturbsim
        names its predictions) are read as such whatever ``sep``. A warning says when no
        row is a pair.

    Returns
    -------
    DataFrame indexed by the canonical pair label (index name ``pair``), one row per pair:
    ``gene_a``, ``gene_b`` (sorted; ``c1`` belongs to ``gene_a``), the score columns
    (:data:`SCORES`: ``c1``, ``c2``, ``magnitude``, ``mean_abs_coef``, ``fit_corr``,
    ``dcor``, ``dcor_singles``, ``dcor_a``, ``dcor_b``, ``dominance``, ``equality``),
    ``n_genes`` (genes fitted), ``n_de`` (from ``n_de``, else NaN), ``reliability`` (for
    measured profiles: the share of the singles' spread over the fitted genes that is not
    their noise, in its worst direction, :func:`singles_reliability`; below 0 where a single's
    measured spread is less than its noise; below :data:`MIN_RELIABILITY` the coefficients
    are mostly noise's, drawn from the truth towards a fit of pure noise, so the subtypes
    lean to suppression and neomorphism; NaN for predictions), ``flag`` (``""`` when scored,
    else why not: ``"missing pair"``, ``"missing single B"``, ``"no DE count"``, ``"too few
    DE genes (7 <= 10)"``, ``"fewer than 3 genes"``, ``"singles collinear or zero"``:
    ``|cosine|`` above :data:`MAX_SINGLES_COSINE`; ``"generic single B"``: a gene of
    ``unsupported`` (its single is the model's generic guess); ``"few cells (A+B 1, B 2)"``:
    means of fewer than ``min_cells`` cells; several joined by ``"; "``); with
    ``noise_correction``, ``corrected`` (whether the coefficients were corrected) and the
    fit's own ``c1_uncorrected``, ``c2_uncorrected``;
    the primary ``subtype`` and one boolean ``is_<subtype>``
    per subtype (:meth:`GIRules.classify`). A flagged pair has NaN scores, no subtype and
    every boolean missing (``<NA>``, pandas' nullable ``boolean``: ``~is_synergy`` counts
    scored pairs only): a pair that cannot be scored is flagged, never raised (an
    ``abundance`` no gene's control mean exceeds is, as are malformed arguments and
    non-finite values in ``delta``).

    The scores:

    ``c1``, ``c2``
        Theil-Sen coefficients of the pair's change on the changes of ``gene_a`` and
        ``gene_b`` (Norman's ``ts_coef_first`` / ``ts_coef_second``; GEARS's ``c1``/``c2``).
    ``magnitude``
        ``sqrt(c1² + c2²)``: GEARS's ``mag``, Norman's ``ts_norm2``. An exactly additive pair
        (``c1 = c2 = 1``) has magnitude ``√2 ≈ 1.41``. Signless, as Norman's: a pair that
        reverses its singles (``c1 = c2 = -1``) has the magnitude of one that adds them and
        is called alike (a synergy here); read ``c1`` and ``c2`` for the direction.
    ``mean_abs_coef``
        ``(|c1| + |c2|) / 2``: Norman's published ``ts_norm`` (1 for an additive pair; 90 % of
        Norman's pairs are below 1).
    ``fit_corr``
        Pearson correlation of the Theil-Sen fit ``c1·ΔA + c2·ΔB`` with ``ΔAB`` (GEARS's
        ``corr_fit``; Norman's published ``corr_fit`` correlates his ordinary least-squares fit
        instead); low means the pair does something neither single does (neomorphism).
    ``dcor``
        Distance correlation of the two singles jointly, ``[ΔA, ΔB]``, with ``ΔAB``
        (Norman's and GEARS's ``dcor``).
    ``dcor_singles``, ``dcor_a``, ``dcor_b``
        Distance correlations of ``ΔA`` with ``ΔB``, and of each single with ``ΔAB``
        (``dcor_singles``, ``dcor_first``, ``dcor_second``).
    ``dominance``
        ``|log10(|c1| / |c2|)|`` (Norman's ``abs_log_ts_ratio``).
    ``equality``
        Equality of contribution, ``min(dcor_a, dcor_b) / max(dcor_a, dcor_b)`` (GEARS's
        ``eq_contr``); low means one single explains the pair (epistasis).

    Examples
    --------
    >>> import numpy as np, pandas as pd, anndata as ad
    >>> import perturbsim as ps
    >>> rng = np.random.default_rng(0)
    >>> da, db = rng.normal(size=50), rng.normal(size=50)
    >>> delta = np.stack([da, db, 0.5 * (da + db)])
    >>> profiles = ad.AnnData(
    ...     np.ones((3, 50)) + delta, obs=pd.DataFrame(index=["A", "B", "A+B"])
    ... )
    >>> profiles.layers["delta"] = delta
    >>> scores = ps.tl.gi_scores(profiles, genes=list(profiles.var_names))
    >>> scores[["c1", "c2"]].round(3).loc["A+B"].tolist()
    [0.5, 0.5]
    >>> bool(scores.loc["A+B", "is_suppression"])
    True
    """
    check_anndata(profiles, "profiles", rows="conditions")
    if not profiles.n_obs:
        raise PerturbsimError("profiles has no rows: nothing to score")
    rules = check_rules(rules)
    exclude_targets = check_flag("exclude_targets", exclude_targets)
    min_cells = check_count("min_cells", min_cells)
    max_subsets = check_count("max_subsets", max_subsets)
    if abundance is not None:
        check_nonnegative("abundance", abundance)
    min_de = check_count("min_de", min_de, minimum=0)
    noise_correction = check_flag("noise_correction", noise_correction)
    if noise_correction and MEAN_VARIANCE_LAYER not in profiles.layers:
        raise PerturbsimError(
            f"noise_correction needs measured profiles with the squared standard errors of "
            f"their means (.layers[{MEAN_VARIANCE_LAYER!r}], as perturbsim.pp.measured_profiles "
            "writes); these profiles have none (predictions and noiseless truths have no "
            "measurement noise)"
        )
    rows = _profile_rows(profiles, sep)
    delta = _delta(profiles)
    if isinstance(genes, str):
        if genes != "abundant":
            raise PerturbsimError(f"genes must be 'abundant' or a list of genes, got {genes!r}")
        control = _control(profiles, rows, delta, control_mean)
        if abundance is None:
            abundance = resolve_abundance(control, None)
            if abundance == 0.0:
                logger.info(
                    "interactions fitted on every expressed gene (%d): fewer than %d have a "
                    "mean control expression above Norman's %g",
                    int((control > 0).sum()),
                    FEW_GENES,
                    NORMAN_ABUNDANCE,
                )
        base_mask = control > abundance
        check_abundance_reached(int(base_mask.sum()), abundance)
    else:
        if abundance is not None:
            raise PerturbsimError(
                f"abundance={abundance!r} selects genes only with genes='abundant'; genes "
                "names them here: leave one of the two out"
            )
        check_list("genes", genes, "genes")
        base_mask = gene_selection(genes, profiles.var_names, "profiles.var_names")
    if n_de is not None and not isinstance(n_de, Mapping | pd.Series):
        raise PerturbsimError(
            "n_de must map pairs to their DE gene counts (a dict or Series, e.g. "
            f"perturbsim.pp.count_de's; or None), got {type(n_de).__name__}"
        )
    n_de_canonical = None if n_de is None else _canonical_de_counts(n_de, sep)
    if n_de is None and min_de and MEAN_VARIANCE_LAYER in profiles.layers:
        logger.warning(
            "min_de=%d filters only pairs with a DE count (n_de=), and none was given: these "
            "measured pairs are scored whatever genes they change, and a pair that changes "
            "none reads as an interaction of noise (often a neomorphism); pass "
            "n_de=perturbsim.pp.count_de(stats, pairs).to_dict(), or min_de=0 to score "
            "every pair",
            min_de,
        )
    seed = resolve_seed(seed)
    check_list("unsupported", unsupported, "genes", optional=True)
    perturbed = {gene for label in rows for gene in genes_of(label)}
    if unsupported is None:
        weak = {label for label in generic_guesses(profiles) if label in perturbed}
    else:
        weak = set(map(str, unsupported))
    strangers = sorted(weak - perturbed)
    if strangers:  # a typo would leave a pair scored that was meant to be flagged
        logger.warning(
            "unsupported names %s, a gene of no row of profiles: it flags nothing%s",
            shown_list(strangers, 5),
            first_case_hint(strangers, sorted(perturbed)),
        )
    few_cells = _few_cells(profiles, sep, min_cells)
    n_fitted = int(base_mask.sum())
    _warn_few_genes(n_fitted, abundance if isinstance(genes, str) else None)
    positions: dict[str, list[int]] = {}
    for i, gene in enumerate(profiles.var_names):
        positions.setdefault(gene, []).append(i)
    records: list[dict[str, object]] = []
    jobs: list[_Job] = []
    for pair in _requested_pairs(pairs, rows, sep):
        gene_a, gene_b = genes_of(pair)
        targets = positions.get(gene_a, []) + positions.get(gene_b, []) if exclude_targets else []
        n_genes = n_fitted - int(base_mask[targets].sum())
        record: dict[str, object] = {"pair": pair, "gene_a": gene_a, "gene_b": gene_b}
        record.update(dict.fromkeys(SCORES, np.nan))
        if noise_correction:
            record.update(dict.fromkeys(CORRECTION_COLUMNS, np.nan), corrected=False)
        reasons = _flags(pair, rows, n_de_canonical, min_de, n_genes, weak, few_cells)
        if not reasons:
            jobs.append(_Job(len(records), (gene_a, gene_b, pair), targets))
        record.update(
            n_genes=n_genes,
            n_de=np.nan if n_de_canonical is None else n_de_canonical.get(pair, np.nan),
            flag="; ".join(reasons),
        )
        records.append(record)
    if pairs is not None:  # asked for by name: a typo is said, not only flagged
        _tell_missing_pairs(
            [
                r["pair"]
                for r in records
                if r["pair"] not in rows or any(g not in rows for g in genes_of(r["pair"]))
            ],
            every=False,
            where="profiles",
            outcome="flagged, not scored",
        )
    scored = _score_pairs(
        delta,
        rows,
        base_mask,
        jobs,
        max_subsets=max_subsets,
        seed=seed,
        noise=_noise_of(profiles, rows),
        noise_correction=noise_correction,
    )
    for job, scores in zip(jobs, scored, strict=True):
        if scores is None:
            records[job.record]["flag"] = "singles collinear or zero"
        else:
            records[job.record].update(scores)
    corrections = ["corrected", *CORRECTION_COLUMNS] if noise_correction else []
    columns = [
        "pair",
        "gene_a",
        "gene_b",
        *SCORES,
        "n_genes",
        "n_de",
        "reliability",
        *corrections,
        "flag",
    ]
    table = pd.DataFrame.from_records(records, columns=columns).set_index("pair")
    table = table.astype({c: float for c in [*SCORES, "n_de", "reliability"]})
    if noise_correction:
        table = table.astype({"corrected": bool, **dict.fromkeys(CORRECTION_COLUMNS, float)})
    if WARN_NOISY_SINGLES.get():
        _warn_of_noisy_singles(table)
    if (table["flag"] != "").any():
        flagged = table.loc[table["flag"] != "", "flag"]
        logger.info(
            "%d of %d pairs not scored: %s",
            len(flagged),
            len(table),
            "; ".join(f"{p} ({f})" for p, f in flagged.head(5).items()),
        )
    return table.join(rules.classify(table))


def is_scored(table: pd.DataFrame) -> pd.Series:
    """Which rows of :func:`gi_scores` were scored: an empty ``flag``.

    A table read back from CSV has NaN for an empty flag, and ``.obs`` of an AnnData
    read back from h5ad a categorical one; both count as empty too.
    """
    empty = table["flag"].astype("string").fillna("") == ""
    return pd.Series(empty.to_numpy(dtype=bool), index=table.index, name="flag")


SUM_OF_SINGLES = "sum_of_singles"
"""Column of :meth:`~perturbsim.models.PerturbationModel.predict_pairs` saying which pairs
were predicted as their singles summed (:func:`summed_pairs`)."""
SUM_TOLERANCE = 1e-5
"""Largest departure of a pair's change from its singles' sum, relative to the singles'
largest changes (at least 1), that :func:`summed_pairs` reads as rounding (float32
predictions agree to about 1e-7)."""


def is_summed(table: pd.DataFrame) -> pd.Series:
    """The ``sum_of_singles`` column of a table as plain booleans (False where absent).

    As :func:`is_scored` does for ``flag``: a table read back from CSV may hold the text
    ``"True"`` / ``"False"`` or empty cells, ``.obs`` a nullable boolean with missing values
    on the singles' rows; missing counts as False.

    Examples
    --------
    >>> import pandas as pd
    >>> is_summed(pd.DataFrame({"sum_of_singles": ["True", "False", ""]})).tolist()
    [True, False, False]
    """
    if SUM_OF_SINGLES not in table.columns:
        return pd.Series(False, index=table.index, name=SUM_OF_SINGLES)
    return pd.Series(true_values(table[SUM_OF_SINGLES]), index=table.index)


def generic_guesses(profiles: AnnData) -> set[str]:
    """Labels of the rows of a prediction that are its model's generic guess.

    Rows flagged in ``.obs["unsupported"]`` (a gene neither measured alone nor tied by GO
    to one that was) or ``.obs["generic"]`` (also one the default model predicts as the
    mean change) of :meth:`~perturbsim.models.PerturbationModel.predict`'s output; none for
    measured profiles, which have neither column.

    Examples
    --------
    >>> import pandas as pd
    >>> from anndata import AnnData
    >>> obs = pd.DataFrame({"generic": [False, True]}, index=["KLF1", "GATA1"])
    >>> sorted(generic_guesses(AnnData(obs=obs)))
    ['GATA1']
    """
    obs = profiles.obs
    flags = [true_values(obs[key]) for key in (PRED_UNSUPPORTED, PRED_GENERIC) if key in obs]
    return set(map(str, obs.index[np.logical_or.reduce(flags)])) if flags else set()


def true_values(column: pd.Series) -> np.ndarray:
    """Where a column of booleans holds True, also as a CSV gives it back (text).

    ``True`` / ``"True"`` (any case, around spaces) is True; ``False``, missing values,
    empty text and anything else is False.

    Examples
    --------
    >>> import pandas as pd
    >>> true_values(pd.Series([True, " true", "False", None, 3.5])).tolist()
    [True, True, False, False, False]
    """
    text = column.astype("string").str.strip().str.lower()
    return (text == "true").fillna(False).to_numpy(dtype=bool)


def summed_pairs(
    profiles: AnnData, pairs: Sequence[str] | None = None, *, sep: str = SEP
) -> pd.Series:
    """Which pairs' changes are exactly their singles' changes summed.

    A model that saw nothing of a pair's interaction (e.g. a gene never measured alone)
    predicts the pair as its predicted singles summed; Norman's model then gives it the
    additive model's scores and subtypes (magnitude ``√2``), which are calls, not evidence
    of an interaction. A pair is summed when ``ΔAB = ΔA + ΔB`` to :data:`SUM_TOLERANCE` on
    every gene but its own two and those whose predicted expression was clipped at 0 in
    the pair or a single (where a change cannot add). Read off the profiles, not off the
    scores: a robust fit of a pair with an interaction on a minority of genes can give
    ``c1 = c2 = 1`` too. Measured means are never exactly summed.

    Parameters
    ----------
    profiles
        Profiles as for :func:`gi_scores` (``.layers["delta"]``, one row per condition).
    pairs
        Pair labels; default every two-gene row.
    sep
        Separator of the genes in the labels.

    Returns
    -------
    Boolean Series named ``sum_of_singles``, indexed by the pairs' canonical labels; False
    where a single is missing or no gene is left to compare.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.setup(adata, perturbation_key="condition", control="control")
    >>> pred = ps.Additive(adata).fit().predict(["KLF1", "MAP2K6", "KLF1+MAP2K6"])
    >>> ps.tl.summed_pairs(pred).tolist()
    [True]
    >>> ps.tl.summed_pairs(ps.pp.measured_profiles(adata, ["KLF1", "MAP2K6", "KLF1+MAP2K6"]))
    KLF1+MAP2K6    False
    Name: sum_of_singles, dtype: bool
    """
    check_anndata(profiles, "profiles", rows="conditions")
    rows = _profile_rows(profiles, sep)
    labels = _requested_pairs(pairs, rows, sep)
    delta, column = _delta(profiles), {g: j for j, g in enumerate(profiles.var_names)}
    summed = np.zeros(len(labels), dtype=bool)
    whole = [i for i, p in enumerate(labels) if all(c in rows for c in (p, *genes_of(p)))]
    for start in range(0, len(whole), _SUM_CHUNK):
        chunk = whole[start : start + _SUM_CHUNK]
        triples = [(labels[i], *genes_of(labels[i])) for i in chunk]
        index = [rows[label] for triple in triples for label in triple]
        change = dense_rows(delta, index).reshape(len(chunk), 3, -1)
        compared = (dense_rows(profiles.X, index).reshape(len(chunk), 3, -1) > 0).all(axis=1)
        for k, (_, *genes) in enumerate(triples):
            compared[k, [column[g] for g in genes if g in column]] = False  # its own genes
        departure = np.abs(change[:, 0] - change[:, 1] - change[:, 2])
        largest = np.where(compared, departure, 0.0).max(axis=1)
        scale = np.maximum(1.0, np.abs(change[:, 1:]).max(axis=2).sum(axis=1))
        summed[chunk] = compared.any(axis=1) & (largest <= SUM_TOLERANCE * scale)
    return pd.Series(summed, index=pd.Index(labels), name=SUM_OF_SINGLES)


def resolve_abundance(control_mean: np.ndarray, abundance: float | None) -> float:
    """The threshold on mean control expression that chooses the genes pairs are fitted on.

    ``abundance`` as given; for ``None``, Norman's :data:`NORMAN_ABUNDANCE` where at least
    :data:`FEW_GENES` genes exceed it (his UMI counts, or log-normalised data of deep
    cells), else 0, every expressed gene (log-normalised data, on which his threshold
    keeps too few genes to fit a pair on).

    Examples
    --------
    >>> import numpy as np
    >>> resolve_abundance(np.full(30, 2.0), None), resolve_abundance(np.full(30, 0.2), None)
    (0.5, 0.0)
    >>> resolve_abundance(np.full(30, 0.2), 0.1)
    0.1
    """
    if abundance is not None:
        return abundance
    control_mean = np.asarray(control_mean, dtype=float)
    return NORMAN_ABUNDANCE if (control_mean > NORMAN_ABUNDANCE).sum() >= FEW_GENES else 0.0


def check_abundance_reached(n_abundant: int, abundance: float) -> None:
    """Refuse an ``abundance`` that no gene's mean control expression exceeds.

    Raises
    ------
    PerturbsimError
        ``n_abundant`` (the genes above it) is 0: there is nothing to fit a pair on.
    """
    if n_abundant == 0 and abundance == 0:
        raise PerturbsimError("no gene is expressed in the control: nothing to fit the pairs on")
    if n_abundant == 0:
        raise PerturbsimError(
            f"no gene has a mean control expression above abundance={abundance:g}: nothing to "
            "fit the pairs on; pass a lower abundance (log-normalised data: e.g. 0.05)"
        )


def _warn_few_genes(n_fitted: int, abundance: float | None) -> None:
    """Warn when fewer than :data:`FEW_GENES` genes are fitted.

    ``abundance`` is the threshold that chose them (None for a listed set of genes).
    """
    if n_fitted >= FEW_GENES:
        return
    if abundance is None:
        logger.warning(
            "only %s listed to fit the pairs on, too few for the scores to mean much "
            "(fewer than %d)",
            counted(n_fitted, "gene"),
            FEW_GENES,
        )
        return
    logger.warning(
        "only %s a mean control expression above abundance=%g%s, too few for the scores "
        "to mean much (fewer than %d)%s",
        counted(n_fitted, "gene has", "genes have"),
        abundance,
        " (Norman's threshold on UMI counts)" if abundance == NORMAN_ABUNDANCE else "",
        FEW_GENES,
        "; on log-normalised data pass a lower abundance (0 keeps every expressed gene)"
        if abundance > 0
        else "",
    )


class _Job(NamedTuple):
    """A pair to score: its record, labels ``(A, B, A+B)`` and genes left out of its fit."""

    record: int
    labels: tuple[str, str, str]
    targets: list[int]


WARN_NOISY_SINGLES: ContextVar[bool] = ContextVar("warn_noisy_singles", default=True)
"""Whether :func:`gi_scores` warns of pairs whose singles' noise rivals their spread (the
command line prints it with the scores instead)."""


def _warn_of_noisy_singles(table: pd.DataFrame) -> None:
    """Warn of scored pairs whose singles' reliability is below :data:`MIN_RELIABILITY`.

    With ``noise_correction``, also say how many it corrected (a warning when none was).
    """
    scored = is_scored(table)
    reliability = table.loc[scored, "reliability"].dropna()
    noisy = int((reliability < MIN_RELIABILITY).sum())
    if noisy:
        logger.warning(
            "%s of %d scored pairs %s singles' reliability below %g (column reliability: "
            "the share of their spread that is not noise, below 0 where a single is all "
            "noise): noise pulls their coefficients towards a fit of noise, so their subtypes lean "
            "to suppression and neomorphism%s",
            noisy,
            len(reliability),
            "has" if len(reliability) == 1 else "have",
            MIN_RELIABILITY,
            "; noise_correction leaves them as fitted" if "corrected" in table else "",
        )
    if "corrected" in table and scored.any():
        corrected = int(table.loc[scored, "corrected"].sum())
        unexplained = not corrected and noisy < int(scored.sum())  # none said above
        (logger.warning if unexplained else logger.info)(
            "noise correction: %d of %d scored pairs corrected; the others left as fitted "
            "(their singles' reliability below %g, or unknown)",
            corrected,
            int(scored.sum()),
            MIN_RELIABILITY,
        )


def _score_pairs(
    delta: object,
    rows: Mapping[str, int],
    genes: np.ndarray,
    jobs: Sequence[_Job],
    *,
    max_subsets: int,
    seed: int,
    noise: tuple[object, np.ndarray] | None = None,
    noise_correction: bool = False,
) -> list[dict[str, float] | None]:
    """The scores of each job (``None``: singles collinear or zero), on up to ``_THREADS``.

    ``noise``: the profiles' squared standard errors of their means and the control's
    (:func:`_noise_of`), for each pair's singles' reliability and, with
    ``noise_correction``, its coefficients corrected for the noise. Every pair's subsets
    are drawn from ``seed`` (the same for the same number of genes), and the noise its
    correction adds from ``seed`` and its label, so the scores do not depend on the
    threads or on the other pairs.
    """
    local = threading.local()

    def score(job: _Job) -> dict[str, float] | None:
        keep = genes.copy()
        keep[job.targets] = False
        changes = dense_rows(delta, [rows[label] for label in job.labels])[:, keep]
        _require_finite(job.labels, changes)
        if not hasattr(local, "scratch"):
            local.scratch = _Scratch()
        errors = None
        if noise is not None:  # measured rows; a predicted pair (NaN) follows no noise
            squared_se, control = noise
            measured = dense_rows(squared_se, [rows[label] for label in job.labels])[:, keep]
            if np.isfinite(measured[2]).any():
                errors = np.vstack([measured, control[None, keep]])
        correction = None
        if noise_correction:
            label = job.labels[2].encode()
            correction = np.random.default_rng([seed, zlib.crc32(label)])
        return _pair_scores(
            *changes,
            max_subsets=max_subsets,
            seed=seed,
            scratch=local.scratch,
            noise=errors,
            correction=correction,
        )

    workers = max(1, min(_THREADS, os.cpu_count() or 1, len(jobs)))
    # the correction fits each pair about 80 times: long enough to show its progress
    bar = tqdm(
        total=len(jobs),
        desc="noise-corrected interactions",
        unit="pair",
        disable=progress_disabled() if noise_correction else True,
    )
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        scored = []
        for result in pool.map(score, jobs) if pool else map(score, jobs):
            scored.append(result)
            bar.update()
        return scored
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _empirical_z(deviation: np.ndarray, largest_change: float) -> np.ndarray:
    """z-scores against a normal fitted to the 30 % and 70 % quantiles of ``deviation``.

    NaN everywhere (logged) when the two quantiles are equal, up to rounding (``1e-6`` of
    the largest change): no spread to test against, as for predictions of the additive
    model, whose deviations are 0 but for rounding.
    """
    low, high = np.nanquantile(deviation, [0.3, 0.7])
    scale = (high - low) / (stats.norm.ppf(0.7) - stats.norm.ppf(0.3))
    if not scale > _ROUNDING * largest_change:
        logger.warning(
            "no empirical null: the 30 %% and 70 %% quantiles of the deviations are equal "
            "(%.3g); every gene is called additive (pass se= to test)",
            low,
        )
        return np.full(len(deviation), np.nan)
    return (deviation - (low + high) / 2) / scale


def gi_per_gene(
    profiles: AnnData,
    *,
    pairs: Sequence[str] | None = None,
    se: pd.DataFrame | PseudobulkStats | None = None,
    fdr: float = 0.05,
    exclude_targets: bool = True,
    min_cells: int = MIN_REPLICATE_CELLS,
    prior_df: float = PRIOR_DF,
    sep: str = SEP,
) -> pd.DataFrame:
    """Each gene's deviation of a pair from the additive expectation, with calls.

    The per-gene view of Ahlmann-Eltze et al. (Nat. Methods 2025): for pair A+B and each
    gene, ``deviation = ΔAB - ΔA - ΔB`` (equal to ``AB - A - B + ctrl`` on the means).
    Its z-score and test:

    - with ``se``: ``deviation / sqrt(se_AB² + se_A² + se_B² + se_ctrl²)``, the standard
      error of a sum of four independent means (``se_ctrl`` from the ``ctrl`` row of
      ``se``, 0 without one). From pseudobulk statistics the means' variances are
      moderated (:meth:`~perturbsim.pp.PseudobulkStats.moderated_variance`) and the test
      is Welch's t, with Satterthwaite's degrees of freedom: each mean's own sample
      variance, on a pair of 4 to 10 cells, makes a normal test give p < 0.05 for 8-20 %
      of genes between random groups of control cells, the moderated test for 1.5-3 %,
      and 2-5 % where the pair's cells spread more than control's (each value times
      1 +- 0.5: ``benchmarks/RESULTS.md``). From a DataFrame the test is normal,
      its standard errors taken as exact;
    - without: against an empirical null, a normal fitted to the 30 % and 70 %
      quantiles of all deviations of the table (Ahlmann-Eltze et al. fitted their null
      to the same quantiles; they then cut where its density falls below 10 % of the
      observed one, where this uses p-values); undefined (every gene additive) when
      the two quantiles are equal up to rounding.

    Two-sided p-values are adjusted by Benjamini-Hochberg over every tested row of the
    table; genes with ``q <= fdr`` are called ``"synergy"`` (the pair above the sum of
    the singles) or ``"buffering"`` (below), the others ``"additive"``. The call follows
    the sign of the deviation, not of the change (as Ahlmann-Eltze et al.). Rows that
    cannot be tested are called ``"untested"`` and stay out of the correction and the
    empirical null: those of a gene that moved in none of the three changes (each exactly
    0: a gene no cell of the four means expressed, typically), those of a pair whose own
    mean or a single's averages fewer than ``min_cells`` cells, and, with ``se``, those
    with a deviation but no standard error (0 or NaN).

    Parameters
    ----------
    profiles
        As for :func:`gi_scores` (only ``.layers["delta"]`` is read).
    pairs
        Pair labels; default every two-gene row. Pairs whose singles or own row are
        missing are left out with a warning naming what is missing; an error when that
        leaves none of the pairs given.
    se
        Standard error of each condition's mean expression: a DataFrame indexed by
        condition label (rows for the pairs, their singles and ideally ``ctrl``) with the
        genes of ``profiles`` as columns; or the screen's pseudobulk statistics
        (:func:`compute_pseudobulk`), from whose moderated variances they are computed
        (control included), with their degrees of freedom.
    fdr
        False discovery rate of the calls.
    exclude_targets
        Leave each pair's own genes out.
    min_cells
        Where the cells of each mean are known (``n_cells`` of ``profiles.obs``, as
        :func:`perturbsim.pp.measured_profiles` gives, or of statistics given as ``se``),
        the rows of pairs whose own mean or a single's averages fewer cells are
        ``"untested"`` and stay out of the empirical null (as :func:`gi_scores`'s
        ``min_cells``); 1 tests every pair.
    prior_df
        Prior degrees of freedom of the moderated variances, with ``se`` from statistics
        (:meth:`~perturbsim.pp.PseudobulkStats.moderated_variance`; 0: each mean's own
        variance).
    sep
        As for :func:`gi_scores` (also of the labels of ``se``).

    Returns
    -------
    Tidy DataFrame, one row per pair and gene: ``pair``, ``gene``, ``delta_a``,
    ``delta_b``, ``delta_ab``, ``deviation``, ``se`` (NaN without ``se``), ``z``, ``p``,
    ``q``, ``call``. Untested rows have NaN ``z``, ``p`` and ``q``. Also called
    ``"additive"`` with NaN ``z``: with ``se``, rows of a deviation of exactly 0 and no
    standard error; without, every testable row when there is no empirical null.
    """
    check_anndata(profiles, "profiles", rows="conditions")
    if isinstance(fdr, bool) or not isinstance(fdr, numbers.Real) or not 0 < fdr < 1:
        raise PerturbsimError(f"fdr must be a number strictly between 0 and 1, got {fdr!r}")
    exclude_targets = check_flag("exclude_targets", exclude_targets)
    min_cells = check_count("min_cells", min_cells)
    prior_df = check_prior_df(prior_df)
    rows = _profile_rows(profiles, sep)
    delta = _delta(profiles)
    genes = np.asarray(profiles.var_names, dtype=str)
    se_rows = None if se is None else _profile_se(se, genes, sep, prior_df)
    few_cells = _few_cells(profiles, sep, min_cells)
    if isinstance(se, PseudobulkStats):
        few_cells |= {
            _canonical(str(c), sep): int(n)
            for c, n in zip(se.conditions, se.n_cells, strict=True)
            if n < min_cells
        }
    untested_pairs = []
    frames = []
    skipped = []
    for pair in _requested_pairs(pairs, rows, sep):
        gene_a, gene_b = genes_of(pair)
        absent = [label for label in (gene_a, gene_b, pair) if label not in rows]
        if absent:
            skipped.append(f"{pair} (no {' or '.join(absent)})")
            continue
        keep = ~np.isin(genes, [gene_a, gene_b]) if exclude_targets else np.ones(len(genes), bool)
        da, db, dab = dense_rows(delta, [rows[gene_a], rows[gene_b], rows[pair]])[:, keep]
        _require_finite((gene_a, gene_b, pair), (da, db, dab))
        frame = pd.DataFrame(
            {
                "pair": pair,
                "gene": genes[keep],
                "delta_a": da,
                "delta_b": db,
                "delta_ab": dab,
                "deviation": dab - da - db,
            }
        )
        if se_rows is None:
            frame["se"], frame["df"] = np.nan, np.inf
        else:
            frame["se"], frame["df"] = _deviation_se(se_rows, pair, keep)
        few = {c: few_cells[c] for c in (pair, gene_a, gene_b) if c in few_cells}
        frame["testable"] = not few
        if few:
            untested_pairs.append(f"{pair} ({', '.join(f'{c} {n}' for c, n in few.items())})")
        frames.append(frame)
    _tell_missing_pairs(
        skipped, every=not frames and pairs is not None, where="profiles", outcome="left out"
    )
    if untested_pairs:
        logger.warning(
            "%s untested, a mean of fewer than %d cells (min_cells): %s",
            counted(len(untested_pairs), "pair"),
            min_cells,
            shown_list(untested_pairs, 10),
        )
    columns = ["pair", "gene", "delta_a", "delta_b", "delta_ab", "deviation", "se"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    if table.empty:
        return table.assign(z=[], p=[], q=[], call=[])
    unmoved = (table[["delta_a", "delta_b", "delta_ab"]].to_numpy() == 0).all(axis=1)
    testable = table.pop("testable").to_numpy(bool) & ~unmoved
    dof = table.pop("df").to_numpy(float)
    deviation = table["deviation"].to_numpy(float)
    z = np.full(len(table), np.nan)
    if se_rows is None:
        if testable.any():
            changes = table[["delta_a", "delta_b", "delta_ab"]].to_numpy()[testable]
            z[testable] = _empirical_z(deviation[testable], float(np.nanmax(np.abs(changes))))
        no_error = np.zeros(len(table), bool)
    else:
        error = table["se"].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(testable & (error > 0), deviation / error, np.nan)
        no_error = ~(error > 0) & (deviation != 0)
    table["z"] = z
    with np.errstate(invalid="ignore"):
        table["p"] = 2 * stats.t.sf(np.abs(z), np.where(np.isfinite(z), dof, np.inf))
    tested = np.isfinite(z)
    q = np.full(len(table), np.nan)
    if tested.any():
        q[tested] = stats.false_discovery_control(table["p"].to_numpy()[tested], method="bh")
    table["q"] = q
    hit = q <= fdr
    calls = np.where(hit & (deviation > 0), "synergy", "additive")
    calls = np.where(hit & (deviation < 0), "buffering", calls)
    table["call"] = np.where(~testable | no_error, "untested", calls)
    return table


class _MeanErrors(NamedTuple):
    """Standard errors of the conditions' means, with the degrees of freedom behind them."""

    se: pd.DataFrame
    """Conditions (canonical labels) x genes."""
    df: pd.Series | None
    """Degrees of freedom of each condition's variance; ``None``: unknown (normal tests)."""


def _profile_se(
    se: pd.DataFrame | PseudobulkStats, genes: np.ndarray, sep: str, prior_df: float
) -> _MeanErrors:
    """``se`` with canonical row labels (genes joined by ``sep``), the genes as columns.

    From statistics, the standard errors of the variances moderated on ``prior_df``
    (:meth:`PseudobulkStats.moderated_variance`), with their degrees of freedom.
    """
    df = None
    if isinstance(se, PseudobulkStats):
        conditions = [str(c) for c in se.conditions]  # canonical below
        squared, dof = se.moderated_squared_standard_error(prior_df)
        error = np.sqrt(squared)
        se, df = (
            pd.DataFrame(error, index=conditions, columns=se.genes.astype(str)),
            pd.Series(dof, index=[_canonical(c, sep) for c in conditions]),
        )
    if not isinstance(se, pd.DataFrame):
        raise PerturbsimError(
            "se must be a DataFrame (conditions x genes) or pseudobulk statistics, got "
            f"{type(se).__name__}"
        )
    missing = [g for g in genes if g not in se.columns]
    if missing:
        raise PerturbsimError(f"se has no column for genes {shown_list(missing, 10)}")
    repeated = se.columns[se.columns.duplicated() & se.columns.isin(list(genes))]
    if len(repeated):
        raise PerturbsimError(f"se has more than one column for the gene {str(repeated[0])!r}")
    rows = pd.Index([_canonical(label, sep) for label in se.index])
    if rows.has_duplicates:
        first = rows[rows.duplicated()][0]
        spellings = [str(label) for label, row in zip(se.index, rows, strict=True) if row == first]
        raise PerturbsimError(
            f"se has more than one row for the condition {first!r}: {shown_list(spellings, 5)}"
        )
    given = se.loc[:, list(genes)]
    out = given.apply(pd.to_numeric, errors="coerce")
    text = (given.notna() & out.isna()).to_numpy()
    if text.any():
        row, column = np.argwhere(text)[0]
        raise PerturbsimError(
            f"se must hold numbers: {se.index[row]!r} at gene {str(genes[column])!r} holds "
            f"{given.iat[row, column]!r}"
        )
    values = out.to_numpy(dtype=float)
    wrong = (values < 0) | np.isinf(values)
    if wrong.any():
        row, column = np.argwhere(wrong)[0]
        raise PerturbsimError(
            f"se must be finite standard errors >= 0: {se.index[row]!r} at gene "
            f"{str(genes[column])!r} holds {float(out.iat[row, column])!r}"
        )
    out = out.astype(float)
    out.index = rows
    return _MeanErrors(out, df)


def _deviation_se(
    errors: _MeanErrors, pair: str, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Standard error of ``ΔAB - ΔA - ΔB`` from those of the four means, and its df.

    The degrees of freedom are Welch-Satterthwaite's, ``(Σ v)² / Σ (v² / dfᵢ)`` over the
    means' squared standard errors ``v``; infinite (a normal test) when ``errors`` has none.
    """
    se = errors.se
    needed = [pair, *genes_of(pair)]
    missing = [c for c in needed if c not in se.index]
    if missing:
        raise PerturbsimError(f"se has no row for conditions {missing}")
    conditions = [*needed, CONTROL] if CONTROL in se.index else needed
    squared = se.loc[conditions].to_numpy()[:, keep] ** 2
    total = squared.sum(axis=0)
    if errors.df is None:
        return np.sqrt(total), np.full(total.shape, np.inf)
    return np.sqrt(total), welch_satterthwaite(squared, errors.df.loc[conditions].to_numpy(float))


def _tell_missing_pairs(missing: list[str], *, every: bool, where: str, outcome: str) -> None:
    """Refuse when ``every`` requested pair lacks its rows in ``where``; else warn of those.

    ``outcome``: what becomes of a pair missing its own row or a single's (``"left out"``).
    """
    missing = list(dict.fromkeys(missing))  # a pair asked twice is named once
    if not missing:
        return
    if every:
        raise PerturbsimError(
            f"none of the {len(missing)} pairs requested has its own row and both singles' "
            f"rows in {where}: {shown_list(missing, 5)}"
        )
    logger.warning(
        "%s %s, a single or the pair missing from %s: %s",
        counted(len(missing), "pair"),
        outcome,
        where,
        shown_list(missing, 10),
    )


def gi_split_half(
    stats: PseudobulkStats,
    pairs: Sequence[str],
    *,
    genes: Sequence[str] | np.ndarray | None = None,
    exclude_targets: bool = True,
) -> pd.Series:
    """How well each pair's departure from its singles' sum replicates between two halves.

    The statistics pass puts every condition's cells (control's too) in one of two random
    halves (:meth:`PseudobulkStats.half`). For each pair, its departure
    ``ΔAB - ΔA - ΔB`` is computed in each half, on ``genes``, and the two correlated
    (Pearson): near 1 the interaction is reproducible, near 0 it is noise, and so are its
    scores and subtypes. Halves have half the cells, so the figure understates how well
    the whole screen's means would replicate.

    Parameters
    ----------
    stats
        The screen's statistics, with their halves (:func:`perturbsim.pp.compute_pseudobulk`).
    pairs
        Pair labels (genes joined by ``+``, in any order; repeats are counted once).
    genes
        The genes compared: a boolean mask over ``stats.genes`` or their names (default
        all).
    exclude_targets
        Leave each pair's own genes out.

    Returns
    -------
    ``r`` per pair, indexed by the distinct pairs' canonical labels in the order given; NaN
    for a pair with a condition (its own or a single's: warned of, named as given) missing,
    or without cells in a half, or whose departure is constant in a half.

    Raises
    ------
    PerturbsimError
        ``stats`` that are not statistics or lack the halves, ``pairs`` given as one string
        or holding a label that is not a pair of two genes, none of the pairs with its own
        and its singles' conditions, a mask of the wrong length, an ``exclude_targets`` that
        is not a bool.

    Examples
    --------
    >>> import perturbsim as ps
    >>> stats = ps.pp.compute_pseudobulk(ps.ds.norman2019_subset(), coexpression="none")
    >>> r = ps.tl.gi_split_half(stats, ["KLF1+MAP2K6"], genes=stats.control_mean > 0)
    >>> bool(-1 <= r["KLF1+MAP2K6"] <= 1)
    True
    """
    check_list("pairs", pairs, "labels")
    pairs = list(pairs)  # a generator too: counted below
    check_stats(stats)
    exclude_targets = check_flag("exclude_targets", exclude_targets)
    if stats.half_moments is None or stats.half_n is None:
        raise PerturbsimError("the statistics lack the split-half moments: rerun pseudobulk")
    names = np.asarray(stats.genes, dtype=str)
    mask = stats.gene_mask(genes)
    measured = {str(c): i for i, c in enumerate(stats.conditions)}
    halves = [stats.half(which).delta.astype(np.float64) for which in (0, 1)]
    in_both = np.min(stats.half_n, axis=0) > 0
    correlations, missing = {}, []
    for given in pairs:
        pair = canonical_label(parse_label(str(given)))
        if len(genes_of(pair)) != 2:
            raise PerturbsimError(f"not a pair of two genes: {given!r}")
        labels = (pair, *genes_of(pair))
        correlations[pair] = np.nan
        if not all(label in measured for label in labels):
            missing.append(str(given))
            continue
        rows = [measured[label] for label in labels]
        if not in_both[[*rows, stats.control_index]].all():
            continue
        keep = mask & ~np.isin(names, genes_of(pair)) if exclude_targets else mask
        if keep.sum() < 2:
            continue
        ab, a, b = (np.stack([half[rows][k, keep] for half in halves]) for k in range(3))
        departure = ab - a - b
        if np.isfinite(departure).all() and (departure.std(axis=1) > 0).all():
            correlations[pair] = float(np.corrcoef(departure)[0, 1])
    _tell_missing_pairs(
        missing, every=len(missing) == len(pairs), where="the statistics", outcome="NaN"
    )
    return pd.Series(correlations, dtype=float, name="split_half_r")
