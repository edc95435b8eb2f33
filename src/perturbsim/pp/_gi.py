"""Genetic-interaction scores of gene pairs, from the mean changes of A, B and A+B.

Norman et al. (Science 2019) describe a pair by fitting its change over control as a
linear combination of the two single changes, ``ΔAB ≈ c1·ΔA + c2·ΔB``, by Theil-Sen
regression without intercept over a set of genes. The GEARS paper (Roohani et al.,
Nat. Biotechnol. 2023) turns the fit into five subtypes with fixed thresholds. The
definitions below are those of Norman's published table (``regr_fits_final.csv`` of
``thomasmaxwellnorman/Perturbseq_GI``) and of GEARS's GI code (``get_coeffs`` in
``snap-stanford/GEARS`` ``gears/utils.py``; thresholds in ``paper/fig_utils.py`` of
``yhr91/GEARS_misc``). The conventions were checked on the published table, and the
scores of measured pairs compared with it, in ``benchmarks/RESULTS.md``.

``c1``, ``c2``
    Theil-Sen coefficients of the pair's change on the changes of ``gene_a`` and
    ``gene_b`` (Norman's ``ts_coef_first`` / ``ts_coef_second``; GEARS's ``c1``/``c2``).
``magnitude``
    ``sqrt(c1² + c2²)``: GEARS's ``mag``, Norman's ``ts_norm2``. An exactly additive pair
    (``c1 = c2 = 1``) has magnitude ``√2 ≈ 1.41``.
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

Distance correlations are Székely's V-statistics, as the ``dcor`` package (which Norman
and GEARS used) and statsmodels compute them.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse, stats

from .._errors import PerturbsimError
from .._keys import CONTROL, DELTA_LAYER
from .._settings import resolve_seed
from ._labels import canonical_label, genes_of, parse_label

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

_MAGNITUDE_SCORES = ("magnitude", "mean_abs_coef")
_REDUNDANCY_SCORES = ("dcor", "dcor_singles")
_COLLINEAR = 1e-10
"""A two-gene subset is degenerate when ``|det| <= _COLLINEAR * |x_i| * |x_j|``."""
_TIES = 9
"""Decimals to which subtype strengths are rounded before ranking (equal = tied)."""
_ROUNDING = 1e-6
"""Relative spread of deviations below which they are taken as rounding errors."""
_CHUNK = 1024
"""Rows read at a time when checking that ``X - delta`` is one control profile."""


@dataclass(frozen=True)
class GIRules:
    """Thresholds that assign subtypes to scored pairs (the GEARS paper's figure code).

    Subtypes overlap: a pair gets every subtype whose rule holds (strict inequalities, as
    in GEARS). GEARS set the magnitude thresholds on ``sqrt(c1² + c2²)``: on Norman's
    published pairs they call 32 % synergy and 45 % suppression (2 % and 90 % on
    ``ts_norm``). With the defaults an exactly additive pair (``c1 = c2 = 1``, magnitude
    ``√2``) is a synergy, as in GEARS; ``magnitude_score="mean_abs_coef"`` puts it at 1
    (Norman's ``ts_norm``), inside the additive band.

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
            if field.name in SUBTYPES and not np.isfinite(value):
                raise PerturbsimError(f"GIRules.{field.name} must be finite, got {value!r}")
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
        minus ``equality``); a pair is of the subtype when ``strength > cut``. NaN scores
        give NaN strength.
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

    def classify(self, scores: pd.DataFrame) -> pd.DataFrame:
        """Boolean ``is_<subtype>`` columns and the primary ``subtype`` of each pair.

        The primary subtype is the first of :data:`PRECEDENCE` that holds: rules on the
        shape of the relation before rules on its size (a poor linear fit,
        neomorphism, makes the coefficients meaningless; epistasis: one single explains
        the pair), then synergy, redundancy before suppression (a redundant pair, whose
        change looks like each single's, usually has ``c1 + c2 ≈ 1`` and so a
        suppressive magnitude: redundancy names why), and additive last, as the absence
        of an interaction. ``""`` where none holds (NaN scores).
        """
        calls = pd.DataFrame(index=scores.index)
        for subtype in SUBTYPES:
            strength, cut = self.strength(scores, subtype)
            calls[f"is_{subtype}"] = (strength > cut).to_numpy()
        primary = np.full(len(scores), "", dtype=object)
        for subtype in reversed(PRECEDENCE):
            primary = np.where(calls[f"is_{subtype}"], subtype, primary)
        calls.insert(0, "subtype", primary.astype(str))
        return calls


def theil_sen(
    x: np.ndarray,
    y: np.ndarray,
    *,
    max_subsets: int = 100_000,
    seed: int | Sequence[int] | None = None,
    max_iter: int = 1000,
    tol: float = 1e-8,
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
        drawn at random (with replacement between subsets).
    seed
        Seed of the random subsets, an integer or a sequence of integers (entropy of a
        numpy ``SeedSequence``; default: ``perturbsim.settings.seed``).
    max_iter
        Iterations of the spatial median (Weiszfeld's algorithm, Vardi & Zhang's
        modification for an estimate on a data point).
    tol
        Stop when the estimate moves less than this.

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
    n = x.shape[0]
    if n * (n - 1) // 2 <= max_subsets:
        first, second = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(resolve_seed(None) if seed is None else seed)
        first = rng.integers(0, n, size=max_subsets)
        second = rng.integers(0, n - 1, size=max_subsets)
        second += second >= first
    xi, xj = x[first], x[second]
    det = xi[:, 0] * xj[:, 1] - xi[:, 1] * xj[:, 0]
    scale = np.linalg.norm(xi, axis=1) * np.linalg.norm(xj, axis=1)
    ok = np.abs(det) > _COLLINEAR * scale
    if not ok.any():
        return np.full(2, np.nan)
    xi, xj, det = xi[ok], xj[ok], det[ok]
    yi, yj = y[first[ok]], y[second[ok]]
    solutions = np.column_stack(
        [(yi * xj[:, 1] - xi[:, 1] * yj) / det, (xi[:, 0] * yj - yi * xj[:, 0]) / det]
    )
    return _spatial_median(solutions, max_iter=max_iter, tol=tol)


def _spatial_median(points: np.ndarray, *, max_iter: int, tol: float) -> np.ndarray:
    """The point minimising the summed Euclidean distance to ``points`` (``(m, d)``)."""
    estimate = points.mean(axis=0)
    for _ in range(max_iter):
        diff = points - estimate
        dist = np.linalg.norm(diff, axis=1)
        away = dist > 0
        if not away.any():
            break
        weights = 1.0 / dist[away]
        target = (points[away] * weights[:, None]).sum(axis=0) / weights.sum()
        on_point = len(dist) - int(away.sum())
        if on_point:
            pull = np.linalg.norm((diff[away] * weights[:, None]).sum(axis=0))
            gamma = on_point / pull if pull > 0 else 1.0
            target = max(0.0, 1.0 - gamma) * target + min(1.0, gamma) * estimate
        moved = np.linalg.norm(target - estimate)
        estimate = target
        if moved < tol:
            break
    return estimate


def _centred_distances(x: np.ndarray) -> np.ndarray:
    """Double-centred Euclidean distance matrix of the rows of ``x`` (``(n,)`` or ``(n, d)``)."""
    points = x.reshape(x.shape[0], -1)
    dist = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
    return dist - dist.mean(axis=0) - dist.mean(axis=1)[:, None] + dist.mean()


def _dcor(a: np.ndarray, b: np.ndarray) -> float:
    """Distance correlation from two double-centred distance matrices (0 if one is constant)."""
    var_a, var_b = (a * a).mean(), (b * b).mean()
    if var_a <= 0 or var_b <= 0:
        return 0.0
    cov = max((a * b).mean(), 0.0)
    return float(np.sqrt(cov / np.sqrt(var_a * var_b)))


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Distance correlation of Székely et al. (2007), V-statistic, of paired samples.

    ``O(n²)`` memory and time in the number of samples ``n``.

    Parameters
    ----------
    x, y
        Samples, ``(n,)`` or ``(n, d)`` each.

    Returns
    -------
    A value in ``[0, 1]``: 0 for independent samples (in the limit), 1 when one is a
    similarity transform of the other; 0 when either is constant.

    Examples
    --------
    >>> distance_correlation(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 4.0]))
    1.0
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise PerturbsimError(
            f"distance_correlation needs two samples of the same size >= 2, "
            f"got {x.shape[0]} and {y.shape[0]}"
        )
    return _dcor(_centred_distances(x), _centred_distances(y))


def _pair_scores(
    da: np.ndarray, db: np.ndarray, dab: np.ndarray, *, max_subsets: int, seed: Sequence[int]
) -> dict[str, float]:
    """The score columns of one pair from its changes over the fitted genes."""
    singles = np.column_stack([da, db])
    c1, c2 = theil_sen(singles, dab, max_subsets=max_subsets, seed=seed)
    fit = singles @ np.array([c1, c2])
    with np.errstate(divide="ignore", invalid="ignore"):
        fit_corr = float(np.corrcoef(fit, dab)[0, 1]) if fit.std() > 0 and dab.std() > 0 else np.nan
        dominance = float(np.abs(np.log10(np.abs(c1) / np.abs(c2))))
    centred_a, centred_b = _centred_distances(da), _centred_distances(db)
    centred_ab, centred_joint = _centred_distances(dab), _centred_distances(singles)
    dcor_a, dcor_b = _dcor(centred_a, centred_ab), _dcor(centred_b, centred_ab)
    top = max(dcor_a, dcor_b)
    return {
        "c1": float(c1),
        "c2": float(c2),
        "magnitude": float(np.hypot(c1, c2)),
        "mean_abs_coef": float((abs(c1) + abs(c2)) / 2),
        "fit_corr": fit_corr,
        "dcor": _dcor(centred_joint, centred_ab),
        "dcor_singles": _dcor(centred_a, centred_b),
        "dcor_a": dcor_a,
        "dcor_b": dcor_b,
        "dominance": dominance,
        "equality": min(dcor_a, dcor_b) / top if top > 0 else np.nan,
    }


def _rows_of(matrix: object, rows: Sequence[int]) -> np.ndarray:
    """Rows of a dense or sparse matrix as a float64 array, ``(len(rows), G)``."""
    block = matrix[list(rows)]
    return np.asarray(block.toarray() if sparse.issparse(block) else block, dtype=float)


def _profile_rows(profiles: AnnData) -> dict[str, int]:
    """Canonical label of each row of ``profiles`` -> row index."""
    rows: dict[str, int] = {}
    for i, name in enumerate(profiles.obs_names):
        label = canonical_label(parse_label(name))
        if label in rows:
            raise PerturbsimError(
                f"profiles has two rows for condition {label!r}: "
                f"{profiles.obs_names[rows[label]]!r} and {name!r}"
            )
        rows[label] = i
    return rows


def _delta(profiles: AnnData) -> object:
    """The ``.layers["delta"]`` matrix of ``profiles`` (dense or sparse, as stored)."""
    if DELTA_LAYER not in profiles.layers:
        raise PerturbsimError(
            f"profiles has no .layers[{DELTA_LAYER!r}] (change over control): "
            "pass model.predict(...) output or set it to mean minus control"
        )
    return profiles.layers[DELTA_LAYER]


def _control(
    profiles: AnnData, rows: Mapping[str, int], delta: object, control_mean: np.ndarray | None
) -> np.ndarray:
    """Mean control expression: row ``ctrl`` of X, else ``control_mean``, else X - delta."""
    if CONTROL in rows:
        return _rows_of(profiles.X, [rows[CONTROL]])[0]
    if control_mean is not None:
        control = np.asarray(control_mean, dtype=float).ravel()
        if control.shape != (profiles.n_vars,):
            raise PerturbsimError(
                f"control_mean has {control.size} values but profiles has {profiles.n_vars} genes"
            )
        return control
    first = _rows_of(profiles.X, [0])[0] - _rows_of(delta, [0])[0]
    for start in range(0, profiles.n_obs, _CHUNK):
        chunk = range(start, min(start + _CHUNK, profiles.n_obs))
        implied = _rows_of(profiles.X, chunk) - _rows_of(delta, chunk)
        if not np.allclose(implied, first, atol=1e-3):
            raise PerturbsimError(
                f"profiles has no {CONTROL!r} row and X - .layers[{DELTA_LAYER!r}] differs "
                "between rows: pass control_mean="
            )
    return first


def _listed_genes(profiles: AnnData, genes: Sequence[str]) -> np.ndarray:
    """Mask of an explicit gene list over ``profiles.var_names``."""
    names = pd.Index(profiles.var_names)
    missing = [g for g in genes if g not in names]
    if missing:
        raise PerturbsimError(f"genes not in profiles.var_names: {missing[:10]}")
    return names.isin(list(genes))


def _requested_pairs(pairs: Sequence[str] | None, rows: Mapping[str, int]) -> list[str]:
    if pairs is None:
        return [label for label in rows if len(genes_of(label)) == 2]
    if isinstance(pairs, str):
        raise PerturbsimError(f"pairs must be a list of labels, got the string {pairs!r}")
    out: list[str] = []
    for pair in pairs:
        label = canonical_label(parse_label(pair))
        if len(genes_of(label)) != 2:
            raise PerturbsimError(f"not a two-gene pair: {pair!r}")
        if label not in out:
            out.append(label)
    return out


def _flags(
    pair: str, rows: Mapping[str, int], n_de: Mapping[str, int] | None, min_de: int, n_genes: int
) -> list[str]:
    """Why ``pair`` cannot be scored (empty when it can)."""
    reasons = [] if pair in rows else ["missing pair"]
    missing = [g for g in genes_of(pair) if g not in rows]
    if missing:
        reasons.append(f"missing single{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if n_de is not None:
        if pair not in n_de:
            reasons.append("no DE count")
        elif n_de[pair] <= min_de:
            reasons.append(f"too few DE genes ({n_de[pair]} <= {min_de})")
    if n_genes < MIN_GENES:
        reasons.append(f"fewer than {MIN_GENES} genes")
    return reasons


def gi_scores(
    profiles: AnnData,
    *,
    pairs: Sequence[str] | None = None,
    genes: str | Sequence[str] = "abundant",
    abundance: float = 0.5,
    control_mean: np.ndarray | None = None,
    exclude_targets: bool = True,
    n_de: Mapping[str, int] | None = None,
    min_de: int = 10,
    rules: GIRules | None = None,
    max_subsets: int = 100_000,
    seed: int | None = None,
) -> pd.DataFrame:
    """Score genetic interactions of gene pairs by Norman et al.'s linear model.

    For each pair A+B, the change of the pair over control is fitted as
    ``c1·ΔA + c2·ΔB`` by Theil-Sen regression without intercept (:func:`theil_sen`) over
    a set of genes, and the fit is summarised by the scores described in the module
    documentation (:mod:`perturbsim.pp._gi`). Works on measured profiles, predictions
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
        Pair labels to score; default every two-gene row of ``profiles``.
    genes
        ``"abundant"`` (Norman's choice): genes whose mean control expression exceeds
        ``abundance``; or an explicit list of genes. The fitted genes are part of the
        method: on a few hundred highly variable genes, where most changes are near
        zero, the fits differ from Norman's whole-transcriptome ones (see
        ``benchmarks/RESULTS.md``).
    abundance
        Threshold of ``"abundant"``, on the scale of ``X``. Norman's 0.5 was a mean UMI
        count per cell (his notebook ``GI_model_fits.ipynb``); on log1p-normalised data it
        selects fewer genes.
    control_mean
        Mean control expression, used when ``profiles`` has no ``ctrl`` row; by default
        ``X - .layers["delta"]`` (identical over rows for model predictions).
    exclude_targets
        Leave each pair's own genes out of its fit: their change is the perturbation
        itself (Norman left out the targets of every perturbation of his screen).
    n_de
        Number of DE genes of each pair (labels as ``pairs``); pairs with at most
        ``min_de`` are flagged, as Norman fitted only pairs with more than 10 (his count:
        abundant genes whose KS test against control has adjusted p < 0.001).
    min_de
        See ``n_de``.
    rules
        Subtype thresholds, :class:`GIRules` (defaults: the GEARS paper's).
    max_subsets
        Two-gene subsets per Theil-Sen fit (all when there are fewer).
    seed
        Seed of the subsets (default ``perturbsim.settings.seed``). Each pair draws from
        ``(seed, crc32(pair label))``, so its scores do not depend on the other pairs.

    Returns
    -------
    DataFrame indexed by the canonical pair label (index name ``pair``), one row per
    pair: ``gene_a``, ``gene_b`` (sorted; ``c1`` belongs to ``gene_a``), the score
    columns (:data:`SCORES`: ``c1``, ``c2``, ``magnitude``, ``mean_abs_coef``,
    ``fit_corr``, ``dcor``, ``dcor_singles``, ``dcor_a``, ``dcor_b``, ``dominance``,
    ``equality``), ``n_genes`` (genes fitted), ``n_de`` (from ``n_de``, else NaN),
    ``flag`` (``""`` when scored, else why not: ``"missing pair"``, ``"missing single
    B"``, ``"no DE count"``, ``"too few DE genes (7 <= 10)"``, ``"fewer than 3 genes"``,
    ``"singles collinear or zero"``; several joined by ``"; "``), the primary
    ``subtype`` and one boolean ``is_<subtype>`` per subtype (:meth:`GIRules.classify`).
    A flagged pair has NaN scores, no subtype and all booleans False; it never raises.

    Examples
    --------
    >>> import numpy as np, pandas as pd, anndata as ad
    >>> rng = np.random.default_rng(0)
    >>> da, db = rng.normal(size=50), rng.normal(size=50)
    >>> delta = np.stack([da, db, 0.5 * (da + db)])
    >>> profiles = ad.AnnData(
    ...     np.ones((3, 50)) + delta, obs=pd.DataFrame(index=["A", "B", "A+B"])
    ... )
    >>> profiles.layers["delta"] = delta
    >>> scores = gi_scores(profiles, genes=list(profiles.var_names))
    >>> scores[["c1", "c2"]].round(3).loc["A+B"].tolist()
    [0.5, 0.5]
    >>> bool(scores.loc["A+B", "is_suppression"])
    True
    """
    rules = GIRules() if rules is None else rules
    if min_de < 0:
        raise PerturbsimError(f"min_de must be non-negative, got {min_de}")
    rows = _profile_rows(profiles)
    delta = _delta(profiles)
    if isinstance(genes, str):
        if genes != "abundant":
            raise PerturbsimError(f"genes must be 'abundant' or a list of genes, got {genes!r}")
        base_mask = _control(profiles, rows, delta, control_mean) > abundance
    else:
        base_mask = _listed_genes(profiles, genes)
    n_de_canonical = (
        None if n_de is None else {canonical_label(parse_label(p)): int(v) for p, v in n_de.items()}
    )
    seed = resolve_seed(seed)
    records = []
    for pair in _requested_pairs(pairs, rows):
        gene_a, gene_b = genes_of(pair)
        mask = (
            base_mask & ~profiles.var_names.isin([gene_a, gene_b]) if exclude_targets else base_mask
        )
        n_genes = int(mask.sum())
        record: dict[str, object] = {"pair": pair, "gene_a": gene_a, "gene_b": gene_b}
        record.update(dict.fromkeys(SCORES, np.nan))
        reasons = _flags(pair, rows, n_de_canonical, min_de, n_genes)
        if not reasons:
            changes = _rows_of(delta, [rows[gene_a], rows[gene_b], rows[pair]])[:, mask]
            bad = [
                c
                for c, row in zip((gene_a, gene_b, pair), changes, strict=True)
                if not np.isfinite(row).all()
            ]
            if bad:
                raise PerturbsimError(f"non-finite values in .layers[{DELTA_LAYER!r}] of {bad}")
            pair_seed = [seed, zlib.crc32(pair.encode())]
            scores = _pair_scores(*changes, max_subsets=max_subsets, seed=pair_seed)
            if np.isnan(scores["c1"]):
                reasons.append("singles collinear or zero")
            else:
                record.update(scores)
        record.update(
            n_genes=n_genes,
            n_de=np.nan if n_de_canonical is None else n_de_canonical.get(pair, np.nan),
            flag="; ".join(reasons),
        )
        records.append(record)
    columns = ["pair", "gene_a", "gene_b", *SCORES, "n_genes", "n_de", "flag"]
    table = pd.DataFrame.from_records(records, columns=columns).set_index("pair")
    table = table.astype({c: float for c in [*SCORES, "n_de"]})
    if (table["flag"] != "").any():
        flagged = table.loc[table["flag"] != "", "flag"]
        logger.info(
            "%d of %d pairs not scored: %s",
            len(flagged),
            len(table),
            "; ".join(f"{p} ({f})" for p, f in flagged.head(5).items()),
        )
    return table.join(rules.classify(table))


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
    se: pd.DataFrame | None = None,
    fdr: float = 0.05,
    exclude_targets: bool = True,
) -> pd.DataFrame:
    """Each gene's deviation of a pair from the additive expectation, with calls.

    The per-gene view of Ahlmann-Eltze et al. (Nat. Methods 2025): for pair A+B and each
    gene, ``deviation = ΔAB - ΔA - ΔB`` (equal to ``AB - A - B + ctrl`` on the means).
    Its z-score:

    - with ``se``: ``deviation / sqrt(se_AB² + se_A² + se_B² + se_ctrl²)``, the standard
      error of a sum of four independent means (``se_ctrl`` from the ``ctrl`` row of
      ``se``, 0 without one);
    - without: against an empirical null, a normal fitted to the 30 % and 70 %
      quantiles of all deviations of the table (Ahlmann-Eltze et al. fitted their null
      to the same quantiles; they then cut where its density falls below 10 % of the
      observed one, where this uses p-values); undefined (every gene additive) when
      the two quantiles are equal up to rounding.

    Two-sided normal p-values are adjusted by Benjamini-Hochberg over every row of the
    table; genes with ``q <= fdr`` are called ``"synergy"`` (the pair above the sum of
    the singles) or ``"buffering"`` (below), the others ``"additive"``. The call follows
    the sign of the deviation, not of the change (as Ahlmann-Eltze et al.).

    Parameters
    ----------
    profiles
        As for :func:`gi_scores` (only ``.layers["delta"]`` is read).
    pairs
        Pair labels; default every two-gene row. Pairs whose singles or own row are
        missing are left out (logged).
    se
        Standard error of each condition's mean expression: a DataFrame indexed by
        condition label (rows for the pairs, their singles and ideally ``ctrl``) with the
        genes of ``profiles`` as columns. From pseudobulk statistics ``stats``:
        ``pd.DataFrame(np.sqrt(stats.variance() / stats.n_cells[:, None]),
        index=stats.conditions, columns=stats.genes)``.
    fdr
        False discovery rate of the calls.
    exclude_targets
        Leave each pair's own genes out.

    Returns
    -------
    Tidy DataFrame, one row per pair and gene: ``pair``, ``gene``, ``delta_a``,
    ``delta_b``, ``delta_ab``, ``deviation``, ``se`` (NaN without ``se``), ``z``, ``p``,
    ``q``, ``call``. Rows with an undefined z (zero standard error) have NaN ``p`` and
    ``q`` and are called ``"additive"``.
    """
    if not 0 < fdr < 1:
        raise PerturbsimError(f"fdr must be between 0 and 1, got {fdr}")
    rows = _profile_rows(profiles)
    delta = _delta(profiles)
    genes = np.asarray(profiles.var_names, dtype=str)
    se_rows = None if se is None else _profile_se(se, genes)
    frames = []
    skipped = []
    for pair in _requested_pairs(pairs, rows):
        gene_a, gene_b = genes_of(pair)
        if not {pair, gene_a, gene_b} <= rows.keys():
            skipped.append(pair)
            continue
        keep = ~np.isin(genes, [gene_a, gene_b]) if exclude_targets else np.ones(len(genes), bool)
        da, db, dab = _rows_of(delta, [rows[gene_a], rows[gene_b], rows[pair]])[:, keep]
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
        frame["se"] = np.nan if se_rows is None else _deviation_se(se_rows, pair, keep)
        frames.append(frame)
    if skipped:
        logger.warning(
            "%d pairs left out, a single or the pair missing: %s",
            len(skipped),
            ", ".join(skipped[:10]),
        )
    columns = ["pair", "gene", "delta_a", "delta_b", "delta_ab", "deviation", "se"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    if table.empty:
        return table.assign(z=[], p=[], q=[], call=[])
    if se_rows is None:
        changes = table[["delta_a", "delta_b", "delta_ab"]].abs().to_numpy()
        table["z"] = _empirical_z(table["deviation"].to_numpy(), float(np.nanmax(changes)))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            table["z"] = np.where(table["se"] > 0, table["deviation"] / table["se"], np.nan)
    table["p"] = 2 * stats.norm.sf(np.abs(table["z"]))
    tested = table["p"].notna().to_numpy()
    q = np.full(len(table), np.nan)
    if tested.any():
        q[tested] = stats.false_discovery_control(table["p"].to_numpy()[tested], method="bh")
    table["q"] = q
    hit = table["q"] <= fdr
    table["call"] = np.where(
        hit & (table["deviation"] > 0),
        "synergy",
        np.where(hit & (table["deviation"] < 0), "buffering", "additive"),
    )
    return table


def _profile_se(se: pd.DataFrame, genes: np.ndarray) -> pd.DataFrame:
    """``se`` with canonical row labels and the genes of the profiles as columns."""
    if not isinstance(se, pd.DataFrame):
        raise PerturbsimError(
            f"se must be a DataFrame (conditions x genes), got {type(se).__name__}"
        )
    missing = [g for g in genes if g not in se.columns]
    if missing:
        raise PerturbsimError(f"se has no column for genes {missing[:10]}")
    out = se.loc[:, list(genes)].astype(float)
    out.index = [canonical_label(parse_label(label)) for label in se.index]
    return out


def _deviation_se(se: pd.DataFrame, pair: str, keep: np.ndarray) -> np.ndarray:
    """Standard error of ``ΔAB - ΔA - ΔB`` from the standard errors of the four means."""
    needed = [pair, *genes_of(pair)]
    missing = [c for c in needed if c not in se.index]
    if missing:
        raise PerturbsimError(f"se has no row for conditions {missing}")
    conditions = [*needed, CONTROL] if CONTROL in se.index else needed
    return np.sqrt((se.loc[conditions].to_numpy()[:, keep] ** 2).sum(axis=0))
