"""Singles of genes perturbed only in pairs, inferred from those pairs.

A screen may perturb a gene only together with others: its single was never measured (or
was held out), yet its pairs were. Where such a pair's other gene was measured alone, the
additive model solved for the missing single gives an estimate of it: the pair's change
minus its partner's single. Averaged over the gene's pairs, this is the least-squares
estimate of the single under additivity. It carries each pair's interaction as error, the
error of a pair predicted from its singles, shrinking with the number of pairs averaged when
the interactions are independent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ._base import GeneSet


@dataclass(frozen=True, eq=False)
class InferredSingles:
    """Inferred singles and how many pairs each was inferred from.

    Attributes
    ----------
    changes
        Gene -> its inferred single change ``(G,)``.
    n_pairs
        Gene -> the number of pairs averaged.
    """

    changes: dict[str, np.ndarray]
    n_pairs: dict[str, int]


def infer_singles(
    pairs: Sequence[GeneSet], pair_changes: np.ndarray, singles: Mapping[str, np.ndarray]
) -> InferredSingles:
    """Infer the single of each gene not in ``singles`` from its pairs with genes that are.

    Parameters
    ----------
    pairs
        Measured perturbations; those of two genes exactly one of which is in ``singles`` are
        used, the others ignored.
    pair_changes
        ``(len(pairs), G)`` their measured changes.
    singles
        Gene -> its measured single change ``(G,)``.

    Returns
    -------
    For each gene not in ``singles`` with at least one such pair, the mean over its pairs
    of the pair's change minus the partner's single.
    """
    estimates: dict[str, list[np.ndarray]] = {}
    for genes, change in zip(pairs, pair_changes, strict=True):
        if len(genes) != 2:
            continue
        measured = [g for g in genes if g in singles]
        if len(measured) != 1:
            continue
        (partner,) = measured
        (gene,) = (g for g in genes if g != partner)
        estimates.setdefault(gene, []).append(change - singles[partner])
    ordered = sorted(estimates.items())
    return InferredSingles(
        changes={g: np.mean(e, axis=0) for g, e in ordered},
        n_pairs={g: len(e) for g, e in ordered},
    )
