"""The gene graph container shared by the GO and co-expression graphs."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._checks import check_count, check_edge_threshold
from .._errors import PerturbsimError, shown_list


def _str_array(values: Sequence[str] | np.ndarray) -> np.ndarray:
    return np.asarray(list(values), dtype=str) if len(values) else np.array([], dtype=str)


@dataclass(eq=False)
class GeneGraph:
    """A weighted, directed gene graph: each gene keeps its most similar genes.

    Edges point from the neighbour to the gene that selected it (``src -> dst``), the
    direction in which messages flow in a graph neural network: the edges entering node
    ``i`` are the (at most ``top_k``) neighbours ``i`` kept.

    Attributes
    ----------
    nodes
        Gene names in node order, ``(N,)``.
    src
        Source node index of each edge, ``(E,)`` int64.
    dst
        Target node index of each edge, ``(E,)`` int64.
    weight
        Edge weight, ``(E,)`` float32.
    unannotated
        Requested genes that could not be made nodes (e.g. genes without any GO term).

    Examples
    --------
    >>> from perturbsim.graphs import GeneGraph
    >>> g = GeneGraph(nodes=["A", "B"], src=[1], dst=[0], weight=[0.5])
    >>> g.to_frame()
      source target  weight
    0      B      A     0.5
    """

    nodes: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    unannotated: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))

    def __post_init__(self) -> None:
        self.nodes = _str_array(self.nodes)
        self.unannotated = _str_array(self.unannotated)
        self.src = np.asarray(self.src, dtype=np.int64).ravel()
        self.dst = np.asarray(self.dst, dtype=np.int64).ravel()
        self.weight = np.asarray(self.weight, dtype=np.float32).ravel()
        if not self.src.shape == self.dst.shape == self.weight.shape:
            raise PerturbsimError(
                f"src, dst and weight must have the same length, got "
                f"{self.src.size}, {self.dst.size} and {self.weight.size}"
            )
        n = self.nodes.size
        for name, idx in (("src", self.src), ("dst", self.dst)):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise PerturbsimError(f"{name} has node indices outside 0..{n - 1}")
        self._position = {g: i for i, g in enumerate(self.nodes.tolist())}
        if len(self._position) != n:
            repeated = pd.Index(self.nodes.tolist())
            repeated = repeated[repeated.duplicated()].unique()
            raise PerturbsimError(f"node names must be unique; repeated: {shown_list(repeated, 5)}")

    def __repr__(self) -> str:
        return f"GeneGraph(n_nodes={self.n_nodes}, n_edges={self.n_edges})"

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.nodes.size)

    @property
    def n_edges(self) -> int:
        """Number of edges."""
        return int(self.src.size)

    def node_index(self, genes: Sequence[str] | np.ndarray) -> np.ndarray:
        """Node indices of ``genes``; raise naming the genes that are not nodes.

        Parameters
        ----------
        genes
            Gene names.

        Returns
        -------
        int64 array of node indices, in the order of ``genes``.
        """
        lookup = self._position
        genes = [str(g) for g in genes]
        missing = [g for g in genes if g not in lookup]
        if missing:
            shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
            raise PerturbsimError(f"{len(missing)} genes are not nodes of the graph: {shown}")
        return np.array([lookup[g] for g in genes], dtype=np.int64)

    def support(self, genes: Sequence[str], known: Collection[str]) -> np.ndarray:
        """How closely each gene is tied to the ``known`` genes.

        1 for a known gene, else its strongest edge from a known gene (0 when it has none
        or is not a node). A gene's neighbours are those it kept (the edges entering it),
        so its support is the similarity of its most similar known neighbour.

        Parameters
        ----------
        genes
            Gene names (nodes or not).
        known
            Genes whose effect is known (e.g. measured perturbed alone).

        Returns
        -------
        float64 array in ``[0, 1]`` for Jaccard-weighted graphs, in the order of ``genes``.

        Examples
        --------
        >>> g = GeneGraph(nodes=["A", "B", "C"], src=[0, 0], dst=[1, 2], weight=[0.5, 0.25])
        >>> g.support(["A", "B", "C", "D"], known={"A"}).tolist()
        [1.0, 0.5, 0.25, 0.0]
        """
        position = self._position
        known_nodes = np.zeros(self.n_nodes, dtype=bool)
        known_nodes[[position[g] for g in known if g in position]] = True
        strongest = np.zeros(self.n_nodes)
        from_known = known_nodes[self.src]
        np.maximum.at(strongest, self.dst[from_known], self.weight[from_known].astype(float))
        return np.array(
            [
                1.0 if g in known else strongest[position[g]] if g in position else 0.0
                for g in map(str, genes)
            ]
        )

    def degree(self) -> np.ndarray:
        """Count the neighbours each node kept (edges entering it), ``(N,)`` int64."""
        return np.bincount(self.dst, minlength=self.n_nodes).astype(np.int64)

    def to_frame(self) -> pd.DataFrame:
        """Edge list with gene names: columns ``source``, ``target``, ``weight``."""
        return pd.DataFrame(
            {
                "source": self.nodes[self.src],
                "target": self.nodes[self.dst],
                "weight": self.weight,
            }
        )

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The edges as numeric arrays for a weights file (node names go in a config).

        Parameters
        ----------
        prefix
            Key prefix: arrays are stored as ``{prefix}.src``, ``.dst`` and ``.weight``.

        Returns
        -------
        ``{prefix}.src`` and ``{prefix}.dst`` (``(E,)`` int64 node indices) and
        ``{prefix}.weight`` (``(E,)`` float32) -> the graph's own arrays (not copies).
        """
        return {
            f"{prefix}.src": self.src,
            f"{prefix}.dst": self.dst,
            f"{prefix}.weight": self.weight,
        }

    @classmethod
    def from_arrays(
        cls, nodes: Sequence[str] | np.ndarray, arrays: Mapping[str, np.ndarray], prefix: str
    ) -> GeneGraph:
        """Rebuild a graph from its node names and the arrays of :meth:`to_arrays`."""
        missing = [k for k in ("src", "dst", "weight") if f"{prefix}.{k}" not in arrays]
        if missing:
            raise PerturbsimError(f"the weights lack the {prefix!r} graph's arrays {missing}")
        return cls(
            nodes=nodes,
            src=arrays[f"{prefix}.src"],
            dst=arrays[f"{prefix}.dst"],
            weight=arrays[f"{prefix}.weight"],
        )


def _check_selection(top_k: int, threshold: float, *, minimum: float) -> int:
    """``top_k`` as an int, once it and ``threshold`` (``>= minimum``, below 1) are checked."""
    check_edge_threshold("threshold", threshold, minimum=minimum)
    return check_count("top_k", top_k)


def _select_top_k(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, *, top_k: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep, for each row, the ``top_k`` largest values above ``threshold`` (self excluded).

    Ties are broken by the lower column index, so the result is deterministic. Returns
    ``(rows, cols, values)`` sorted by row, then by decreasing value. Linear-time histogram
    pruning first discards entries that cannot be in their row's top ``top_k``, so only a few
    entries per row are sorted.
    """
    keep = (values > threshold) & (rows != cols)
    rows, cols, values = rows[keep], cols[keep], values[keep]
    if rows.size > _PRUNE_ABOVE:
        keep = _histogram_prune(rows, values, top_k)
        rows, cols, values = rows[keep], cols[keep], values[keep]
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    if rows.size == 0:
        return rows, cols, values
    # rank of each entry within its row
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    counts = np.diff(np.r_[starts, rows.size])
    rank = np.arange(rows.size) - np.repeat(starts, counts)
    keep = rank < top_k
    return rows[keep], cols[keep], values[keep]


_PRUNE_ABOVE = 100_000
_N_BINS = 256


def _histogram_prune(rows: np.ndarray, values: np.ndarray, top_k: int) -> np.ndarray:
    """Mask of entries whose value bin reaches their row's ``top_k``-th largest bin."""
    low, high = float(values.min()), float(values.max())
    scale = (_N_BINS - 1) / (high - low) if high > low else 0.0
    bins = ((values - low) * scale).astype(np.int64)
    np.clip(bins, 0, _N_BINS - 1, out=bins)
    first = int(rows.min())
    local = rows - first
    n_rows = int(local.max()) + 1
    hist = np.bincount(local * _N_BINS + bins, minlength=n_rows * _N_BINS)
    hist = hist.reshape(n_rows, _N_BINS)
    at_or_above = hist[:, ::-1].cumsum(axis=1)[:, ::-1]  # entries with bin >= b, per row
    cutoff = np.maximum((at_or_above >= top_k).sum(axis=1) - 1, 0)
    return bins >= cutoff[local]
