"""Gene graphs for GEARS: Gene Ontology similarity and co-expression."""

from ._annotations import read_annotations
from ._assembly import reached_nodes, with_isolated_nodes
from ._coexpression import coexpression_graph
from ._go import go_graph
from ._graph import GeneGraph

__all__ = [
    "GeneGraph",
    "coexpression_graph",
    "go_graph",
    "reached_nodes",
    "read_annotations",
    "with_isolated_nodes",
]
