"""How GEARS assembles its perturbation graph: nodes for every trained gene, reach of training."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from .._checks import check_count, check_list
from .._errors import counted, shown_list
from ._graph import GeneGraph

logger = logging.getLogger(__name__)


def with_isolated_nodes(graph: GeneGraph, genes: Iterable[str]) -> GeneGraph:
    """``graph`` with every gene of ``genes`` a node, those not yet nodes without edges.

    A gene perturbed in training but without any GO term still gets an embedding: it learns
    from its own training conditions, though it can pass nothing on to other genes.

    Parameters
    ----------
    graph
        The GO (or any perturbation) graph.
    genes
        Genes that must be nodes, e.g. the genes perturbed in the training conditions.

    Returns
    -------
    ``graph`` itself when nothing is missing, else a graph with the missing genes appended
    as nodes (and removed from :attr:`~GeneGraph.unannotated`).
    """
    check_list("genes", genes, "genes")
    nodes = set(graph.nodes)
    extra = [g for g in dict.fromkeys(genes) if g not in nodes]
    if not extra:
        return graph
    logger.info(
        "%s no GO term (in the GO graph without edges): %s",
        counted(len(extra), "trained gene has", "trained genes have"),
        shown_list(extra, 10),
    )
    return GeneGraph(
        nodes=np.concatenate([graph.nodes, np.asarray(extra, dtype=str)]),
        src=graph.src,
        dst=graph.dst,
        weight=graph.weight,
        unannotated=np.asarray([g for g in graph.unannotated if g not in extra], dtype=str),
    )


def reached_nodes(graph: GeneGraph, genes: Iterable[str], *, hops: int) -> np.ndarray:
    """Nodes whose embedding a loss on ``genes`` reaches through ``hops`` message passes.

    These are the genes themselves and every node within ``hops`` edges upstream of them
    (the relays of their messages); a GNN's other embeddings never receive a gradient.

    Parameters
    ----------
    graph
        The graph messages flow on (``src -> dst``).
    genes
        Genes the loss sees, e.g. the genes perturbed in the training conditions.
    hops
        Number of message-passing layers.

    Returns
    -------
    Boolean mask over the nodes, ``(N,)``.

    Examples
    --------
    >>> from perturbsim.graphs import GeneGraph, reached_nodes
    >>> chain = GeneGraph(nodes=["A", "B", "C"], src=[0, 1], dst=[1, 2], weight=[1, 1])
    >>> reached_nodes(chain, ["C"], hops=1).tolist()
    [False, True, True]
    """
    check_list("genes", genes, "genes")
    hops = check_count("hops", hops, minimum=0)
    reached = np.zeros(graph.n_nodes, dtype=bool)
    genes = sorted(set(genes))
    if genes:
        reached[graph.node_index(genes)] = True
    for _ in range(hops):
        reached[graph.src[reached[graph.dst]]] = True
    return reached
