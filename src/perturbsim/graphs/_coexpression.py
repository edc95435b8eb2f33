"""Gene co-expression graph from the training cells' Pearson correlations."""

from __future__ import annotations

import logging

import numpy as np

from ..pp import PseudobulkStats
from ..pp._pseudobulk import check_stats
from ._graph import GeneGraph, _check_selection, _select_top_k

logger = logging.getLogger(__name__)


def coexpression_graph(
    stats: PseudobulkStats, *, top_k: int = 20, threshold: float = 0.4
) -> GeneGraph:
    """Gene co-expression graph, as in GEARS.

    Uses the Pearson correlation between genes over the cells behind
    ``stats.coexpr_gram`` (the training cells when a split existed at
    :func:`perturbsim.pp.pseudobulk`, so held-out perturbations do not leak into the graph).
    As in the reference GEARS, genes are ranked by the absolute correlation ``|r|``: each gene
    keeps its ``top_k`` partners with ``|r| > threshold`` (ties go to the earlier gene), the
    edge weight is ``|r|`` (so strongly anti-correlated genes are neighbours too, with a
    positive weight), and edges point from the partner to the gene that kept it. Self-edges
    are excluded; genes constant over those cells (correlation 0 with every gene) have no
    edges unless ``threshold`` is negative.

    Parameters
    ----------
    stats
        Statistics from :func:`perturbsim.pp.pseudobulk` with gene x gene moments.
    top_k
        Partners kept per gene (GEARS: 20).
    threshold
        Edges with ``|r| <= threshold`` are dropped (GEARS: 0.4).

    Returns
    -------
    :class:`GeneGraph` whose nodes are all measured genes (``stats.genes``) in that order.

    Examples
    --------
    >>> import perturbsim as ps
    >>> from perturbsim.graphs import coexpression_graph
    >>> adata = ps.ds.norman2019_subset()
    >>> stats = ps.pp.compute_pseudobulk(adata)
    >>> g = coexpression_graph(stats)
    >>> g.n_nodes
    500
    """
    check_stats(stats)
    top_k = _check_selection(top_k, threshold, minimum=-np.inf)
    strength = np.abs(stats.coexpression())
    rows, cols = np.nonzero(strength > threshold)
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    rows, cols, values = _select_top_k(
        rows, cols, strength[rows, cols], top_k=top_k, threshold=threshold
    )
    graph = GeneGraph(nodes=stats.genes, src=cols, dst=rows, weight=values)
    logger.info(
        "co-expression graph: %d nodes, %d edges (from %d cells)",
        graph.n_nodes,
        graph.n_edges,
        stats.coexpr_n,
    )
    return graph
