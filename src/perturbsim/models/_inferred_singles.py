"""Singles of genes perturbed only in pairs, inferred from those pairs.

A screen may perturb a gene only together with others: its single was never measured (or
was held out), yet its pairs were. Under the additive model a measured pair is the sum of
its two singles. Each gene never measured alone also has a prior guess of its single, with
a variance (how an unseen single is predicted). The inferred singles are the limit of the
Gaussian posterior mean as the pairs' interactions go to 0, one small linear problem per
measured gene, one unknown per gene never measured alone:

- a gene paired with measured genes gets the mean over its pairs of the pair's change
  minus the partner's single (the least-squares solution of the additive model), whatever
  its prior (but one paired also with another gene never measured alone, whose prior
  variance on some gene is over 1 / :data:`RCOND` times its own there, as an exactly-zero
  one floored at :data:`MIN_VARIANCE` is, keeps its prior on that gene). The posterior
  with independent interactions would pull it towards its prior; on development screens
  (simulated ``small``, simulator seeds 1-5, none of them a scoreboard screen) that pull
  lost on pairs whose gene carries the same interaction into all its pairs, and taking the
  pairs as exact lost nowhere;
- a pair of two genes never measured alone splits what its genes' priors leave of its
  change between them in proportion to their prior variances, so such a gene is no longer
  left at its prior.

Genes linked by pairs are solved together (one problem per connected group). Each
inferred single's variance is the error variance of that estimate when the pairs do carry
independent interactions of a given variance (that of a pair predicted from its singles)
and the singles scatter about their priors by the prior variances: with measured partners
only, the pairs' variance divided by their number; for a pair of two otherwise unknown
genes, what the prior leaves open plus the gene's share of the pair's interaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ._base import GeneSet

#: Floor on every variance, so that a gene that never varies (variance 0) stays defined.
MIN_VARIANCE = 1e-12
#: Elements of the per-gene ``n x n`` matrices decomposed at once (bounds the memory).
CHUNK_ELEMENTS = 1 << 22
#: Eigenvalues below this fraction of the largest count as directions the pairs leave open.
RCOND = 1e-10

Prior = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class InferredSingles:
    """Inferred singles, their error variances and how many pairs each was inferred from.

    Attributes
    ----------
    changes
        Gene -> its inferred single change ``(G,)``.
    variance
        Gene -> the error variance of that estimate ``(G,)``.
    n_pairs
        Gene -> the number of measured pairs it is in.
    """

    changes: dict[str, np.ndarray]
    variance: dict[str, np.ndarray]
    n_pairs: dict[str, int]


def infer_singles(
    pairs: Sequence[GeneSet],
    pair_changes: np.ndarray,
    singles: Mapping[str, np.ndarray],
    prior: Prior,
    pair_variance: np.ndarray,
) -> InferredSingles:
    """Infer the single of each gene not in ``singles`` that is in a measured pair.

    Parameters
    ----------
    pairs
        Measured perturbations; those of two genes at least one of which is not in
        ``singles`` are used, the others ignored.
    pair_changes
        ``(len(pairs), G)`` their measured changes.
    singles
        Gene -> its measured single change ``(G,)``.
    prior
        Called with the genes to infer, returns their prior singles and prior variances,
        each ``(n_genes, G)``.
    pair_variance
        ``(G,)`` variance of a pair's change about the sum of its singles (its interaction
        and noise).

    Returns
    -------
    Each such gene's inferred single and its error variance (see the module
    documentation).
    """
    used = [
        (tuple(genes), change)
        for genes, change in zip(pairs, pair_changes, strict=True)
        if len(genes) == 2 and not all(g in singles for g in genes)
    ]
    if not used:
        return InferredSingles({}, {}, {})
    unknown = sorted({g for genes, _ in used for g in genes if g not in singles})
    prior_mean, prior_variance = prior(unknown)
    column = {g: i for i, g in enumerate(unknown)}
    incidence = np.zeros((len(used), len(unknown)))
    residual = np.array([change for _, change in used], dtype=np.float64)
    for row, (genes, _) in enumerate(used):
        for gene in genes:
            if gene in singles:
                residual[row] -= singles[gene]
            else:
                incidence[row, column[gene]] += 1.0
    pair_variance = np.asarray(pair_variance, dtype=np.float64)
    mean = np.zeros((len(unknown), residual.shape[1]))
    variance = np.zeros_like(mean)
    for group in _linked_groups(incidence):
        rows = np.flatnonzero(incidence[:, group].any(axis=1))
        mean[group], variance[group] = _solve_group(
            incidence[np.ix_(rows, group)],
            residual[rows],
            prior_mean[group],
            prior_variance[group],
            pair_variance,
        )
    n_pairs = (incidence > 0).sum(axis=0)
    return InferredSingles(
        changes={g: mean[i] for i, g in enumerate(unknown)},
        variance={g: variance[i] for i, g in enumerate(unknown)},
        n_pairs={g: int(n_pairs[i]) for i, g in enumerate(unknown)},
    )


def _linked_groups(incidence: np.ndarray) -> list[np.ndarray]:
    """Columns (genes) linked through shared rows (pairs), as groups of column indices."""
    group = np.arange(incidence.shape[1])
    for row in incidence:
        members = np.flatnonzero(row)
        if members.size == 2:
            group[group == group[members[1]]] = group[members[0]]
    return [np.flatnonzero(group == g) for g in np.unique(group)]


def _solve_group(
    incidence: np.ndarray,
    residual: np.ndarray,
    prior_mean: np.ndarray,
    prior_variance: np.ndarray,
    pair_variance: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Inferred singles of one linked group and their error variances, gene by measured gene.

    With ``A`` the ``(pairs, n)`` incidence, ``r`` a measured gene's residuals (the pairs'
    changes minus their measured partners), ``p`` and ``T = diag(t)`` the priors and ``s``
    the pair variance, the singles are ``p + K (r - A p)`` with
    ``K = T A' (A T A')^+ = T^1/2 M^+ T^1/2 A'`` and ``M = T^1/2 A'A T^1/2`` (``n x n``):
    the limit of the posterior mean as ``s`` goes to 0, so the pairs are taken as exact
    sums where they pin a single down (least squares where they disagree) and the priors
    fill in what they leave open. If the singles scatter about ``p`` by ``T`` and the pairs
    about their sums by ``s``, the estimate's error variance is the diagonal of
    ``(I - KA) T (I - KA)' + s K K' = T^1/2 ((I - P) + s M^+) T^1/2``, ``P`` the projection
    on the range of ``M``. Returns two ``(n, G)`` arrays.
    """
    n, n_genes = prior_mean.shape
    pair_var = np.maximum(pair_variance, MIN_VARIANCE)
    root = np.sqrt(np.maximum(prior_variance, MIN_VARIANCE))  # (n, G): T^1/2
    # A'(r - A p): what the priors leave of the pairs, seen from each unknown gene
    left = incidence.T @ (residual - incidence @ prior_mean)  # (n, G)
    gram = incidence.T @ incidence
    mean = np.empty((n, n_genes))
    variance = np.empty((n, n_genes))
    step = max(1, CHUNK_ELEMENTS // (n * n))
    for start in range(0, n_genes, step):
        chunk = slice(start, min(start + step, n_genes))
        scale = root[:, chunk].T  # (g, n)
        values, vectors = np.linalg.eigh(scale[:, :, None] * gram[None] * scale[:, None, :])
        kept = values > RCOND * values.max(axis=1, keepdims=True)
        inverse = np.where(kept, 1.0 / np.where(kept, values, 1.0), 0.0)  # M^+ eigenvalues
        projected = np.einsum("gij,gj->gi", vectors.transpose(0, 2, 1), scale * left[:, chunk].T)
        mean[:, chunk] = (
            prior_mean[:, chunk] + (scale * np.einsum("gij,gj->gi", vectors, inverse * projected)).T
        )
        squares = vectors**2  # diagonal of V diag(d) V' is squares @ d
        open_share = np.einsum("gij,gj->gi", squares, (~kept).astype(float))
        pair_share = np.einsum("gij,gj->gi", squares, inverse)
        variance[:, chunk] = (scale**2 * (open_share + pair_var[chunk, None] * pair_share)).T
    return mean, variance
