"""A pair's interaction from the training pairs whose genes act alike.

The role coefficients or the shared-change fit (:mod:`perturbsim.models._pair_roles`) say
how two singles combine in general; what a pair does beyond that, its *residual* (its
measured change minus its singles combined), is specific to the pair: two genes feeding one
AND-like program switch on genes that neither moves alone (neomorphism), genes of one
pathway mask each other (epistasis).
Pairs of genes that act alike tend to share it: if ``A+C`` switches a program on, so does
``B+C`` when ``B`` acts as ``A`` does. So a pair's residual is predicted as the mean of the
training pairs' residuals, each weighted by how alike the two pairs' genes are: the better of
the two ways of matching their genes, by the product of the matched genes' similarities, the
cosine of their measured singles' changes (negative cosines count as 0), raised to a power
that sharpens the weights towards the closest pairs. A gene matched with itself has
similarity 1 (if its single moves any gene), so pairs sharing a gene weigh most.

A pair is lent only what lies **beyond its own singles**: the lent residual less its
least-squares fit by the pair's two measured singles on the pair's fitted genes
(:func:`beyond_singles`), what no ``c1·A + c2·B`` expresses (e.g. genes neither single
moves). How strongly each single acts in a pair (Norman's ``c1``, ``c2``) is the role
coefficients' (or the shared-change fit's) to predict (:mod:`perturbsim.models._pair_roles`;
when they keep the sum of the singles, or in the ablation without them, nothing predicts
it). Lent as is, the residual of training pairs sharing gene ``A`` carries minus ``A``'s
single's measurement noise (each residual is its pair minus the measured singles combined),
which fitting the predicted pair on ``A``'s measured single reads as damping ``A``: the
noisier the single, the more buffered the pair looks. The genetic-interaction scores fit by
Theil-Sen on the abundant genes, not by least squares on every fitted gene, so for them the
removal is approximate. On development screens (simulated Norman-sized, simulator seeds 1-4,
never the scoreboard's 0; ``combo`` split, the default without GEARS) it raised the summed
precision@10 of synergy, suppression and additive pairs against the simulator's truth on 3
of 4 screens at the same calibrated error (``benchmarks/RESULTS.md``, the scoreboard's
sixteenth pass).

With a ``sparsity`` (:data:`SPARSITY`, the default model's), a pair is lent only the
**largest entries** of that part, shrunk: soft-thresholded at ``sparsity`` robust standard
deviations of its bulk (:func:`soft_threshold`). The lent residual is a weighted mean of
training pairs' residuals, each its pair's measurement noise and its singles' as much as
its interaction; what a pair's genes share beyond their singles (a programme switched on, a
pathway masked) sits on the few genes it moves far, while the bulk of small entries is
mostly that noise. The bulk adds little to a pair's predicted expression but, spread over
the abundant genes, it moves the Theil-Sen fit of the interaction scores, which reads it as
a change of ``c1`` and ``c2`` (the least-squares removal above cannot prevent it). What is
lent is then close to, no longer exactly, orthogonal to the pair's singles. On development
screens (simulator seeds 10 and 12, ``combo`` split) lending the residual whole ranked
additive and suppressed pairs worse than the pair fit alone; soft-thresholding it ranked
the interactions better than lending it whole (summed precision@10 above random 0.78 ->
1.00 and 0.62 -> 0.84), nearer the pair fit alone, at no cost in expression. It was
adopted by a rule on two fresh screens (seeds 14 and 15: on their ``combo`` splits additive
pairs +0.12 and +0.14, suppression +0.02 each); on the scoreboard's screen it ranks every
subtype above random on the ``combo`` split but lost suppressed pairs on the simulation
split (0.12 -> 0.06) (``benchmarks/RESULTS.md``, twenty-ninth pass).

The power is chosen among :data:`POWERS` by the leave-one-pair-out error of the training
residuals: each pair's whole residual, not only the part beyond its singles, predicted from
the others' (:attr:`PairNeighbours.held_out_gain` is that share); when no power predicts
them better than no residual at all, none is kept (:attr:`PairNeighbours.power` is
``None``) and the residual is 0. How far the residual is added is for the caller to fit on
held-out pairs (:class:`~perturbsim.models.Stacked` weights it on its validation pairs and
on the training pairs each lent the part beyond its singles of the others' residuals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import PerturbsimError
from ._base import GeneSet

POWERS: tuple[int, ...] = (1, 2, 4, 8, 16)
"""Powers of the similarity tried; higher powers weigh the closest training pairs more."""
MIN_PAIRS = 3
"""Fewest training pairs that can predict a residual."""
SPARSITY = 3.0
"""Robust standard deviations of a lent residual's bulk that an entry must pass to be lent
(:func:`soft_threshold`; the default model's)."""
MAD_TO_SD = 1.4826
"""Ratio of a normal distribution's standard deviation to its median absolute deviation."""


def cosine_similarity(profiles: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows of ``profiles``, negative values set to 0, ``(n, n)``.

    A row of zeros has similarity 0 with every row, itself included.
    """
    norms = np.linalg.norm(profiles, axis=1)
    unit = np.divide(
        profiles, norms[:, None], out=np.zeros_like(profiles), where=norms[:, None] > 0
    )
    return np.clip(unit @ unit.T, 0.0, 1.0)


def pair_similarity(
    queries: Sequence[GeneSet],
    references: Sequence[GeneSet],
    gene_similarity: np.ndarray,
    index: Mapping[str, int],
) -> np.ndarray:
    """How alike each query pair is to each reference pair, ``(len(queries), len(references))``.

    The better of the two matchings of their genes, each scored by the product of the matched
    genes' similarities (``gene_similarity``, indexed by ``index``).
    """
    qa, qb = (np.array([index[q[i]] for q in queries]) for i in (0, 1))
    ra, rb = (np.array([index[r[i]] for r in references]) for i in (0, 1))
    straight = gene_similarity[np.ix_(qa, ra)] * gene_similarity[np.ix_(qb, rb)]
    crossed = gene_similarity[np.ix_(qa, rb)] * gene_similarity[np.ix_(qb, ra)]
    return np.maximum(straight, crossed)


def weighted_residuals(weights: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Each row of ``weights`` applied to ``residuals`` as a weighted mean (0 where all are 0)."""
    totals = weights.sum(axis=1, keepdims=True)
    return np.divide(
        weights @ residuals,
        totals,
        out=np.zeros((len(weights), residuals.shape[1])),
        where=totals > 0,
    )


def beyond_singles(
    lent: np.ndarray, a: np.ndarray, b: np.ndarray, fitted: np.ndarray
) -> np.ndarray:
    """What ``lent`` holds beyond a pair's singles: less its least-squares fit by them.

    Parameters
    ----------
    lent
        ``(G,)`` a residual lent to the pair.
    a, b
        ``(G,)`` the pair's two measured singles.
    fitted
        ``(G,)`` mask of the genes the fit is made on (the pair's own targets left out:
        their change is the perturbation itself).

    Returns
    -------
    ``(G,)``: ``lent - c1·a - c2·b`` with ``(c1, c2)`` the least-squares coefficients of
    ``lent`` on ``a`` and ``b`` over the ``fitted`` genes (the smallest such when the two
    are collinear there), hence orthogonal to both there; ``lent`` itself when neither
    moves a fitted gene.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    >>> beyond_singles(np.array([-0.5, 0.2, 2.0]), a, b, np.ones(3, dtype=bool))
    array([0., 0., 2.])
    """
    fitted = np.asarray(fitted, dtype=bool)
    design = np.stack([a[fitted], b[fitted]], axis=1)
    coefficients = np.linalg.lstsq(design, lent[fitted], rcond=None)[0]
    return lent - np.stack([a, b], axis=1) @ coefficients


def check_sparsity(sparsity: object) -> float | None:
    """``sparsity`` as a float, or ``None``; a one-line error for anything else.

    Parameters
    ----------
    sparsity
        A threshold of :func:`soft_threshold` (a finite number >= 0, not a bool) or ``None``.

    Returns
    -------
    ``float(sparsity)``, or ``None``.

    Raises
    ------
    PerturbsimError
        If ``sparsity`` is anything else (naming it).

    Examples
    --------
    >>> check_sparsity(3), check_sparsity(None)
    (3.0, None)
    """
    if sparsity is None:
        return None
    ok = isinstance(sparsity, int | float | np.integer | np.floating) and not isinstance(
        sparsity, bool | np.bool_
    )
    if not ok or not np.isfinite(sparsity) or sparsity < 0:
        raise PerturbsimError(f"sparsity must be a number >= 0 or None, got {sparsity!r}")
    return float(sparsity)


def soft_threshold(lent: np.ndarray, fitted: np.ndarray, sparsity: float) -> np.ndarray:
    """The largest entries of ``lent``, shrunk towards 0; the others 0.

    Parameters
    ----------
    lent
        ``(G,)`` a residual lent to a pair.
    fitted
        ``(G,)`` mask of the genes its bulk is measured on (the pair's own targets left out).
    sparsity
        Threshold in robust standard deviations of the bulk: ``σ = 1.4826 · MAD`` of
        ``lent`` over the ``fitted`` genes (the median absolute deviation from the median,
        scaled to a normal distribution's standard deviation).

    Returns
    -------
    ``(G,)``: ``sign(lent) · max(|lent| - sparsity · σ, 0)``; ``lent`` itself when ``σ``
    is 0 (more than half the fitted entries equal) or no gene is fitted.

    Examples
    --------
    >>> import numpy as np
    >>> lent = np.array([0.1, -0.1, 0.2, -0.2, 0.0, 3.0, -2.0])
    >>> soft_threshold(lent, np.ones(7, dtype=bool), 3.0).round(3)
    array([ 0.  ,  0.  ,  0.  ,  0.  ,  0.  ,  2.11, -1.11])
    """
    values = lent[np.asarray(fitted, dtype=bool)]
    if values.size == 0:
        return lent
    sigma = MAD_TO_SD * float(np.median(np.abs(values - np.median(values))))
    if sigma == 0.0:
        return lent
    return np.sign(lent) * np.maximum(np.abs(lent) - sparsity * sigma, 0.0) + 0.0  # no -0.0


def _check_mask(fitted: np.ndarray, shape: tuple[int, int]) -> None:
    """Refuse a fitted genes' mask that is not one row per pair, one column per gene."""
    if np.shape(fitted) != shape:
        raise PerturbsimError(
            f"the fitted genes' mask has shape {np.shape(fitted)}, expected {shape}"
        )


@dataclass(frozen=True, eq=False)
class PairNeighbours:
    """Training pairs' residuals, to be lent to pairs whose genes act alike.

    Attributes
    ----------
    pairs
        The two genes of each training pair.
    residuals
        ``(len(pairs), G)``: each pair's measured change minus its singles combined, 0 on its
        own targets.
    power
        The chosen power of the similarity (:data:`POWERS`); ``None``: no residual is lent.
    held_out_gain
        Share of the training residuals' squared error that the chosen power removes, each
        pair's whole residual predicted from the others' (0 when none was chosen).
    sparsity
        Threshold of :func:`soft_threshold` applied to what a pair is lent, in robust
        standard deviations; ``None``: lent whole.
    """

    pairs: tuple[GeneSet, ...]
    residuals: np.ndarray
    power: int | None
    held_out_gain: float
    sparsity: float | None = None

    @classmethod
    def none(cls, n_genes: int, sparsity: float | None = None) -> PairNeighbours:
        """No training pairs: no residual is lent (``sparsity`` is kept, for the record)."""
        return cls((), np.zeros((0, n_genes)), None, 0.0, check_sparsity(sparsity))

    @classmethod
    def fit(
        cls,
        pairs: Sequence[GeneSet],
        residuals: np.ndarray,
        singles: Mapping[str, np.ndarray],
        *,
        sparsity: float | None = SPARSITY,
    ) -> PairNeighbours:
        """Keep the training residuals and choose the power (see the module documentation).

        Parameters
        ----------
        pairs
            The two genes of each training pair, each measured alone (a key of ``singles``).
        residuals
            ``(len(pairs), G)`` their residuals, 0 on each pair's own targets.
        singles
            Gene -> its measured change alone ``(G,)``.
        sparsity
            Lend only the entries beyond this many robust standard deviations, shrunk
            (:func:`soft_threshold`; default :data:`SPARSITY`, unlike the class's field,
            whose default ``None`` is what files saved before it was added hold); ``None``:
            lend the residual whole. The power is chosen on the whole residuals either way.

        Returns
        -------
        The pairs (as tuples) and their residuals (float64) as given, with the power of
        :data:`POWERS` whose held-out gain is the largest and above 0, and that gain;
        ``None`` and 0.0 when no power gains, the residuals are all 0 or there are fewer
        than :data:`MIN_PAIRS` pairs; ``sparsity`` as checked (a float or ``None``).
        """
        pairs = tuple(tuple(p) for p in pairs)
        residuals = np.asarray(residuals, dtype=np.float64)
        if len(pairs) != len(residuals) or any(len(p) != 2 for p in pairs):
            raise PerturbsimError("PairNeighbours.fit needs one residual per pair of two genes")
        if not np.isfinite(residuals).all():
            raise PerturbsimError("the residuals of the training pairs hold NaN or inf")
        sparsity = check_sparsity(sparsity)
        if len(pairs) < MIN_PAIRS:
            return cls(pairs, residuals, None, 0.0, sparsity)
        energy = float((residuals**2).sum())
        best_power, best_gain = None, 0.0
        if energy > 0:
            similarity = cls._others_similarity(pairs, singles)
            for power in POWERS:
                predicted = weighted_residuals(similarity**power, residuals)
                gain = 1.0 - float(((residuals - predicted) ** 2).sum()) / energy
                if gain > best_gain:
                    best_power, best_gain = power, gain
        return cls(pairs, residuals, best_power, best_gain, sparsity)

    @classmethod
    def _others_similarity(
        cls, pairs: Sequence[GeneSet], singles: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Each pair's similarity to the other pairs (0 to itself: it is held out)."""
        similarity = cls._similarity_of(pairs, pairs, singles)
        np.fill_diagonal(similarity, 0.0)
        return similarity

    def held_out(self, singles: Mapping[str, np.ndarray], fitted: np.ndarray) -> np.ndarray:
        """Each training pair's residual predicted from the other training pairs'.

        ``(len(pairs), G)`` with the chosen power, beyond each pair's singles on its
        ``fitted`` genes (``(len(pairs), G)`` bool; :func:`beyond_singles`), soft-thresholded
        by :attr:`sparsity`; 0 when no power was chosen.
        """
        _check_mask(fitted, self.residuals.shape)
        if self.power is None:
            return np.zeros_like(self.residuals)
        similarity = self._others_similarity(self.pairs, singles)
        lent = weighted_residuals(similarity**self.power, self.residuals)
        return self._beyond(self.pairs, lent, singles, fitted)

    def _beyond(
        self,
        pairs: Sequence[GeneSet],
        lent: np.ndarray,
        singles: Mapping[str, np.ndarray],
        fitted: np.ndarray,
    ) -> np.ndarray:
        """Each row of ``lent`` beyond its pair's singles (:func:`beyond_singles`), sparse.

        Soft-thresholded (:func:`soft_threshold`) unless :attr:`sparsity` is ``None``.
        """
        rows = []
        for (a, b), row, mask in zip(pairs, lent, fitted, strict=True):
            beyond = beyond_singles(row, singles[a], singles[b], mask)
            if self.sparsity is not None:
                beyond = soft_threshold(beyond, mask, self.sparsity)
            rows.append(beyond)
        return np.array(rows).reshape(lent.shape)

    @staticmethod
    def _similarity_of(
        queries: Sequence[GeneSet], references: Sequence[GeneSet], singles: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        genes = sorted({g for p in (*queries, *references) for g in p})
        missing = [g for g in genes if g not in singles]
        if missing:
            raise PerturbsimError(f"gene {missing[0]!r} of a pair was not measured alone")
        index = {g: i for i, g in enumerate(genes)}
        gene_similarity = cosine_similarity(np.array([singles[g] for g in genes], dtype=float))
        return pair_similarity(queries, references, gene_similarity, index)

    def residual(
        self, queries: Sequence[GeneSet], singles: Mapping[str, np.ndarray], fitted: np.ndarray
    ) -> np.ndarray:
        """The residual lent to each query pair of measured singles, ``(len(queries), G)``.

        The training pairs' residuals weighted by their similarity to the query, beyond the
        query's singles on its ``fitted`` genes (``(len(queries), G)`` bool;
        :func:`beyond_singles`), soft-thresholded by :attr:`sparsity`. 0 for every pair when
        no power was chosen.
        """
        shape = (len(queries), self.residuals.shape[1])
        _check_mask(fitted, shape)
        if self.power is None or not queries:
            return np.zeros(shape)
        similarity = self._similarity_of(queries, self.pairs, singles)
        lent = weighted_residuals(similarity**self.power, self.residuals)
        return self._beyond(queries, lent, singles, fitted)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the residuals go to the weights file)."""
        return {
            "pairs": [list(p) for p in self.pairs],
            "power": self.power,
            "held_out_gain": self.held_out_gain,
            "sparsity": self.sparsity,
        }

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any], residuals: np.ndarray) -> PairNeighbours:
        """Inverse of :meth:`to_dict`, with the saved residuals.

        Fields saved before :attr:`sparsity` existed lend the residual whole, as they were
        fitted.
        """
        pairs = tuple(tuple(str(g) for g in p) for p in fields["pairs"])
        residuals = np.asarray(residuals, dtype=np.float64)
        if len(pairs) != len(residuals):
            raise PerturbsimError(
                f"saved pair neighbours list {len(pairs)} pairs but {len(residuals)} residuals"
            )
        power, sparsity = fields["power"], fields.get("sparsity")
        return cls(
            pairs,
            residuals,
            None if power is None else int(power),
            float(fields["held_out_gain"]),
            check_sparsity(sparsity),
        )
