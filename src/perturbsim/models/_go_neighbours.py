"""Each gene's single predicted from the measured singles of its GO neighbours."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .._checks import check_count, check_edge_threshold, check_flag
from ..graphs import go_graph
from ..pp import genes_of
from ._base import GeneSet, PerturbationModel
from ._data import ScreenData, screen_go_annotations
from ._simple import CoverageMixin

logger = logging.getLogger(__name__)

Neighbours = dict[str, list[tuple[str, float]]]
"""Gene -> its GO neighbours among the measured singles, ``(gene, Jaccard index)``."""
SHRINK_GENES = 20
"""Genes of each training single its leave-one-out fit is read on: its largest measured
departures from the mean (as the scores read a condition's top 20 DE genes)."""


def measured_go_neighbours(
    genes: list[str],
    measured: list[str],
    annotations: pd.DataFrame | None,
    *,
    n_neighbours: int,
    threshold: float,
) -> Neighbours:
    """Each gene's ``n_neighbours`` most GO-similar genes among ``measured``, itself excluded.

    Similarity is the Jaccard index of direct GO terms (:func:`~perturbsim.graphs.go_graph`,
    every pair above ``threshold`` kept, ties to the earlier measured gene). A gene without
    GO annotation, or sharing no term with a measured gene, has none.

    Examples
    --------
    >>> import perturbsim as ps
    >>> near = measured_go_neighbours(
    ...     ["CKS2", "LDHA"], ["CKS1B", "ENO1"], None, n_neighbours=1, threshold=0.1
    ... )
    >>> [(g, round(w, 3)) for g, w in near["CKS2"]], near["LDHA"][0][0]
    ([('CKS1B', 0.706)], 'ENO1')
    """
    nodes = list(dict.fromkeys([*measured, *genes]))
    graph = go_graph(nodes, annotations=annotations, top_k=len(nodes), threshold=threshold)
    known = set(measured)
    edges = graph.to_frame()
    edges = edges[edges["source"].isin(known) & (edges["source"] != edges["target"])]
    order = {g: i for i, g in enumerate(measured)}
    edges = edges.assign(rank=edges["source"].map(order)).sort_values(
        ["target", "weight", "rank"], ascending=[True, False, True], kind="stable"
    )
    wanted = set(genes)
    return {
        str(gene): [
            (str(s), float(w))
            for s, w in zip(
                group["source"][:n_neighbours], group["weight"][:n_neighbours], strict=True
            )
        ]
        for gene, group in edges.groupby("target", sort=False)
        if gene in wanted
    }


class GONeighbours(CoverageMixin, PerturbationModel):
    r"""Predict a gene's single from the measured singles of the genes GO ties it to.

    A GO-knowledge baseline that, unlike :class:`~perturbsim.models.LinearGO`'s embedding
    of the whole GO graph, reads each gene's nearest GO neighbours only. A gene :math:`g`
    departs from the mean training change :math:`b` as its ``n_neighbours`` most similar
    genes measured alone in training do (Jaccard index :math:`J` of direct GO terms, above
    ``threshold``; the gene itself excluded, so that a measured gene too is predicted from
    the others), weighted by their similarity:

    .. math:: d_g = \frac{\sum_j J_{gj} (y_j - b)}{\sum_j J_{gj}},

    scaled by :math:`\alpha \in [0, 1]`, how far the training singles' departures are
    predicted so, each from the others (leave one out, least squares on each single's
    :data:`SHRINK_GENES` largest departures, clipped): 0 on a screen whose GO ties predict
    nothing, and a gene set is predicted as :math:`b + \alpha \sum_{g} d_g`: additive,
    with no interaction.
    The empty set (control) is predicted unchanged. Beyond the mean, the measured singles
    and :math:`\alpha`, nothing is fitted: how far the departures help a stronger baseline
    is for a stacking model to weigh on held-out conditions
    (:class:`~perturbsim.models.Stacked` with ``"go_neighbours"`` among its corrections,
    the variant ``stacked_go_neighbours``; ``benchmarks/RESULTS.md``, rules I and J).

    **Coverage.** Genes with a GO neighbour measured alone in training. The neighbours of
    the screen's perturbed genes are found when fitted (and kept in a saved file); any other
    gene's when it is predicted, by the model's annotations (after loading, only when they
    are the bundled human ones: custom annotations are not saved).

    Parameters
    ----------
    adata
        A set-up (and ideally split) screen: its training singles are the references.
    go_annotations
        Gene -> GO term table with columns ``gene`` and ``term``; ``None``: a simulated
        screen's own table (``.uns["simulation"]["go"]``), else the bundled human
        annotations (with alias matching).
    n_neighbours
        Most measured neighbours a gene's departure averages.
    threshold
        Neighbours must share GO terms with Jaccard index above it.
    shrink
        Scale the departures by the leave-one-out :math:`\alpha`; ``False`` keeps
        :math:`\alpha = 1`.
    seed
        Recorded only: the fit is deterministic.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.split(adata, seed=1)
    >>> model = ps.models.GONeighbours(adata).fit()
    >>> model.covers(["FOXO4", "NOT_A_GENE"]).tolist()
    [True, False]
    """

    name = "go_neighbours"
    _uncovered_reason = "no GO neighbour measured alone in training"

    def __init__(
        self,
        adata: AnnData | ScreenData | None = None,
        *,
        go_annotations: pd.DataFrame | None = None,
        n_neighbours: int = 10,
        threshold: float = 0.0,
        shrink: bool = True,
        seed: int | None = None,
    ) -> None:
        n_neighbours = check_count("n_neighbours", n_neighbours)
        threshold = check_edge_threshold("threshold", threshold)
        super().__init__(adata, seed=seed)
        self.go_annotations = screen_go_annotations(adata, go_annotations)
        self.bundled_annotations = go_annotations is None and self.go_annotations is None
        self.n_neighbours = n_neighbours
        self.threshold = threshold
        self.shrink = check_flag("shrink", shrink)
        self.shrinkage = 1.0
        self.neighbours: Neighbours = {}
        self._placed: Neighbours = {}
        self.single_genes: list[str] = []
        self.departures = np.zeros((0, 0))
        self.mean_change = np.zeros(0)

    def _fit(self, data: ScreenData) -> None:
        singles = data.single_changes()
        self.mean_change = data.mean_training_change()
        self.single_genes = [genes_of(c)[0] for c in singles]
        self.departures = (
            np.vstack(list(singles.values())) - self.mean_change
            if singles
            else np.zeros((0, len(self.genes)))
        )
        perturbed = sorted({g for c in data.stats.conditions for g in genes_of(c)})
        # the screen's measured genes too: placed now, they are saved with the model (a
        # loaded model keeps no annotations of its own to place them with)
        placed = sorted({*perturbed, *map(str, self.genes)})
        self.neighbours = self._neighbours_of(placed) if self.single_genes else {}
        self._placed = {}
        self.shrinkage = 1.0
        if self.shrink:
            self.shrinkage = self._leave_one_out_shrinkage()
        logger.info(
            "%s: %d of %d perturbed or measured genes have GO neighbours among %d measured "
            "singles; shrinkage %.3g",
            self.label,
            len(self.neighbours),
            len(placed),
            len(self.single_genes),
            self.shrinkage,
        )

    def _leave_one_out_shrinkage(self) -> float:
        r""":math:`\alpha`: each training single fitted by its neighbours' departures, clipped."""
        predicted = self._neighbour_departures([(g,) for g in self.single_genes])
        fitted = np.zeros(2)
        for measured, guess in zip(self.departures, predicted, strict=True):
            top = np.argsort(-np.abs(measured), kind="stable")[:SHRINK_GENES]
            fitted += measured[top] @ guess[top], guess[top] @ guess[top]
        return float(np.clip(fitted[0] / fitted[1], 0.0, 1.0)) if fitted[1] > 0 else 0.0

    def _neighbours_of(self, genes: list[str]) -> Neighbours:
        return measured_go_neighbours(
            genes,
            self.single_genes,
            self.go_annotations,
            n_neighbours=self.n_neighbours,
            threshold=self.threshold,
        )

    def _neighbours_with(self, genes: set[str]) -> Neighbours:
        """The stored neighbours, and those of ``genes`` placed where annotations allow.

        A gene outside the screen is placed once (the GO graph is built for it on its first
        query, and what it finds, if anything, is kept for the next ones).
        """
        added = sorted(genes - set(self.neighbours) - set(self._placed))
        placeable = self.go_annotations is not None or self.bundled_annotations
        if added and self.single_genes and placeable:  # custom annotations are not saved
            found = self._neighbours_of(added)
            self._placed |= {g: found.get(g, []) for g in added}
        return self.neighbours | {g: near for g, near in self._placed.items() if near}

    def _coverable(self) -> set[str]:
        return set(self.neighbours)

    def covers(self, perturbations: str | list[str] | list[list[str]]) -> np.ndarray:
        """Which perturbations this model can predict (genes with a measured GO neighbour).

        Parameters
        ----------
        perturbations
            As for :meth:`~perturbsim.models.PerturbationModel.predict`.

        Returns
        -------
        Boolean array, one entry per perturbation, in the order given.
        """
        self.require_fitted()
        sets = self.parsed_query(perturbations)
        known = self._neighbours_with({g for s in sets for g in s})
        return np.array([all(g in known for g in s) for s in sets], dtype=bool)

    def departures_of(self, sets: list[GeneSet]) -> np.ndarray:
        r"""Each set's departure from the mean, :math:`\alpha \sum_g d_g`, ``(len(sets), G)``.

        A gene without a measured GO neighbour departs by 0 (:meth:`covers` says which).
        """
        self.require_fitted()
        return self.shrinkage * self._neighbour_departures(sets)

    def _neighbour_departures(self, sets: list[GeneSet]) -> np.ndarray:
        r""":math:`\sum_g d_g` of each set, unshrunk."""
        known = self._neighbours_with({g for s in sets for g in s})
        row = {g: i for i, g in enumerate(self.single_genes)}
        departure = np.zeros((len(sets), len(self.genes)))
        for i, genes in enumerate(sets):
            for gene in genes:
                near = known.get(gene, [])
                if near:
                    weights = np.array([w for _, w in near])
                    rows = [row[g] for g, _ in near]
                    departure[i] += weights @ self.departures[rows] / weights.sum()
        return departure

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, None]:
        known = self._neighbours_with({g for s in sets for g in s})
        missing = sorted({g for s in sets for g in s if g not in known})
        if missing:
            self._require_covered([missing])  # raises, naming them
        change = self.mean_change + self.departures_of(sets)
        change[[not s for s in sets]] = 0.0
        return change, None

    def _options(self) -> dict[str, Any]:
        return {
            "n_neighbours": self.n_neighbours,
            "threshold": self.threshold,
            "shrink": self.shrink,
            "shrinkage": self.shrinkage,
            "single_genes": list(self.single_genes),
            "neighbours": {g: [[s, w] for s, w in near] for g, near in self.neighbours.items()},
            "bundled_annotations": self.bundled_annotations,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"departures": self.departures, "mean_change": self.mean_change}

    def _array_shapes(self) -> dict[str, tuple[int | str, ...]]:
        return {
            "departures": (len(self.single_genes), len(self.genes)),
            "mean_change": (len(self.genes),),
        }

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.go_annotations = None
        self.bundled_annotations = bool(options["bundled_annotations"])
        self.n_neighbours = int(options["n_neighbours"])
        self.threshold = float(options["threshold"])
        self.shrink = bool(options["shrink"])
        self.shrinkage = float(options["shrinkage"])
        self.single_genes = [str(g) for g in options["single_genes"]]
        self.neighbours = {
            str(g): [(str(s), float(w)) for s, w in near]
            for g, near in options["neighbours"].items()
        }
        self._placed = {}
        self.departures = np.asarray(arrays["departures"], dtype=np.float64)
        self.mean_change = np.asarray(arrays["mean_change"], dtype=np.float64)
