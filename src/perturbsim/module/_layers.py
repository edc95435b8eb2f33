"""Building blocks of the GEARS network: a graph convolution and small MLPs, in plain torch."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from perturbsim._errors import PerturbsimError

GraphArrays = tuple[Sequence[int] | Sequence[float] | np.ndarray | Tensor | None, ...]
"""``(src, dst)`` or ``(src, dst, weight)`` edge arrays; ``weight`` may be ``None``."""


@contextmanager
def seeded_initialisation(seed: int) -> Iterator[None]:
    """Within the block, torch's CPU generator draws from ``seed`` in float32; after it, as it was.

    For building modules whose parameters are initialised from the global CPU generator
    (modules are built on the CPU, then moved). Only the CPU generator is seeded and
    restored: ``torch.manual_seed`` would also reseed every CUDA generator and leave them
    changed. The default dtype is float32 within the block, so that a caller's
    ``torch.set_default_dtype(torch.float64)`` builds the same parameters (the generator
    draws other numbers for float64), and is restored after it.

    Examples
    --------
    >>> import torch
    >>> with seeded_initialisation(0):
    ...     first = torch.nn.Linear(2, 2).weight
    >>> with seeded_initialisation(0):
    ...     second = torch.nn.Linear(2, 2).weight
    >>> bool(torch.equal(first, second))
    True
    """
    dtype = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        torch.set_default_dtype(torch.float32)
        try:
            yield
        finally:
            torch.set_default_dtype(dtype)


def normalized_adjacency(
    src: Sequence[int] | np.ndarray | Tensor,
    dst: Sequence[int] | np.ndarray | Tensor,
    weight: Sequence[float] | np.ndarray | Tensor | None,
    n_nodes: int,
) -> tuple[Tensor, Tensor]:
    """Symmetrically normalised adjacency with self-loops, ``D^-1/2 (A + I) D^-1/2``.

    An edge ``(src[e], dst[e], weight[e])`` sends a message from ``src`` to ``dst``. Duplicate
    edges are summed. Nodes that already have a self-loop keep its weight; all others get a
    self-loop of weight 1. The degree of a node is the summed weight of its incoming edges
    (self-loop included), so the result is symmetric whenever the input graph is.

    Parameters
    ----------
    src, dst
        Integer node indices in ``[0, n_nodes)``, one per edge.
    weight
        Non-negative finite edge weights, or ``None`` for all ones.
    n_nodes
        Number of nodes.

    Returns
    -------
    ``indices`` (2, E') int64 rows ``(dst, src)`` sorted row-major (a coalesced COO layout of
    the propagation matrix ``P`` with ``x_out = P @ x``) and ``values`` (E',) float32.
    """
    n_nodes = int(n_nodes)
    if n_nodes < 1:
        raise PerturbsimError(f"n_nodes must be at least 1, got {n_nodes}")
    src_t = torch.as_tensor(np.asarray(src), dtype=torch.int64).reshape(-1)
    dst_t = torch.as_tensor(np.asarray(dst), dtype=torch.int64).reshape(-1)
    if src_t.shape != dst_t.shape:
        raise PerturbsimError(
            f"src and dst must have the same length, got {src_t.numel()} and {dst_t.numel()}"
        )
    if weight is None:
        w_t = torch.ones(src_t.numel(), dtype=torch.float64)
    else:
        w_t = torch.as_tensor(np.asarray(weight), dtype=torch.float64).reshape(-1)
        if w_t.numel() != src_t.numel():
            raise PerturbsimError(
                f"weight must have one value per edge ({src_t.numel()}), got {w_t.numel()}"
            )
    if src_t.numel():
        lo = int(min(src_t.min(), dst_t.min()))
        hi = int(max(src_t.max(), dst_t.max()))
        if lo < 0 or hi >= n_nodes:
            raise PerturbsimError(
                f"edge index out of range [0, {n_nodes}): found {lo if lo < 0 else hi}"
            )
        if not torch.isfinite(w_t).all() or (w_t < 0).any():
            bad = w_t[~torch.isfinite(w_t) | (w_t < 0)][0].item()
            raise PerturbsimError(f"edge weights must be finite and non-negative, found {bad}")

    # self-loops: keep existing ones, add weight 1 where missing
    is_loop = src_t == dst_t
    has_loop = torch.zeros(n_nodes, dtype=torch.bool)
    has_loop[src_t[is_loop]] = True
    missing = torch.nonzero(~has_loop).reshape(-1)
    src_t = torch.cat([src_t, missing])
    dst_t = torch.cat([dst_t, missing])
    w_t = torch.cat([w_t, torch.ones(missing.numel(), dtype=torch.float64)])

    # coalesce: rows are destinations, columns sources (x_out[dst] += w * x[src])
    adj = torch.sparse_coo_tensor(
        torch.stack([dst_t, src_t]), w_t, (n_nodes, n_nodes), check_invariants=False
    )
    adj = adj.coalesce()
    idx, val = adj.indices(), adj.values()
    deg = torch.zeros(n_nodes, dtype=torch.float64).index_add_(0, idx[0], val)
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(1e-300).rsqrt(), torch.zeros_like(deg))
    val = inv_sqrt[idx[0]] * val * inv_sqrt[idx[1]]
    return idx.contiguous(), val.to(torch.float32)


def _csr_matrix(rows: Tensor, cols: Tensor, values: Tensor, n_nodes: int) -> Tensor:
    """Square CSR matrix from entries sorted by row (then column)."""
    crow = torch.zeros(n_nodes + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.bincount(rows, minlength=n_nodes).cumsum(0)
    with warnings.catch_warnings():  # CSR is stable for the products used here
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            crow, cols, values, (n_nodes, n_nodes), check_invariants=True
        )


class _SparseProduct(torch.autograd.Function):
    """``matrix @ x`` for a constant sparse matrix; the backward pass uses its stored transpose.

    Sparse-dense products in CSR layout are ~10x faster on CPU than in COO layout, and keeping
    the transpose avoids transposing the matrix at every backward pass.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, matrix: Tensor, transposed: Tensor, x: Tensor
    ) -> Tensor:
        ctx.transposed = transposed
        return matrix @ x

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[None, None, Tensor]:
        return None, None, ctx.transposed @ grad.contiguous()


class SimpleGraphConv(nn.Module):
    """Simplified graph convolution (SGC): ``K`` normalised propagation hops, then a Linear.

    ``out = Linear((D^-1/2 (A + I) D^-1/2)^K x)`` as in Wu et al. 2019 (SGConv), the layer
    GEARS uses on both of its graphs. The normalised adjacency is kept as two dense buffers
    (``adj_indices`` int64 (2, E) and ``adj_values`` float32 (E,)) so that ``state_dict`` and
    safetensors handle it; products use the matrix and its transpose in CSR layout, built
    from the buffers once and rebuilt whenever they change (e.g. ``load_state_dict``).

    Parameters
    ----------
    in_features, out_features
        Feature sizes.
    graph
        ``(src, dst, weight)`` arrays of the graph; ``weight`` may be ``None``.
    n_nodes
        Number of nodes; inputs have shape ``(n_nodes, in_features)``.
    hops
        Number of propagation steps ``K`` (at least 1).
    bias
        Whether the Linear has a bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        graph: GraphArrays,
        n_nodes: int,
        hops: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if hops < 1:
            raise PerturbsimError(f"hops must be at least 1, got {hops}")
        if len(graph) not in (2, 3):
            raise PerturbsimError(f"graph must be (src, dst, weight), got {len(graph)} arrays")
        src, dst = graph[0], graph[1]
        weight = graph[2] if len(graph) == 3 else None
        indices, values = normalized_adjacency(src, dst, weight, n_nodes)
        self.n_nodes = int(n_nodes)
        self.hops = int(hops)
        self.register_buffer("adj_indices", indices)
        self.register_buffer("adj_values", values)
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self._csr_key: tuple | None = None
        self._csr_cache: tuple[Tensor, Tensor] | None = None

    def _csr_pair(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The propagation matrix and its transpose (CSR), rebuilt when the buffers change."""
        key = (
            self.adj_indices.data_ptr(),
            self.adj_indices._version,
            self.adj_values.data_ptr(),
            self.adj_values._version,
            dtype,
        )
        if self._csr_cache is None or self._csr_key != key:
            values = self.adj_values.to(dtype)
            rows, cols = self.adj_indices
            order = torch.argsort(cols * self.n_nodes + rows)
            self._csr_cache = (
                _csr_matrix(rows, cols, values, self.n_nodes),
                _csr_matrix(cols[order], rows[order], values[order], self.n_nodes),
            )
            self._csr_key = key
        return self._csr_cache

    def propagate(self, x: Tensor) -> Tensor:
        """Apply the ``K`` propagation hops to node features ``x`` (n_nodes, F)."""
        if x.shape[0] != self.n_nodes:
            raise PerturbsimError(
                f"SimpleGraphConv expects {self.n_nodes} node rows, got {x.shape[0]}"
            )
        matrix, transposed = self._csr_pair(x.dtype)
        for _ in range(self.hops):
            x = _SparseProduct.apply(matrix, transposed, x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Propagate node features ``x`` (n_nodes, in_features) and project them."""
        return self.linear(self.propagate(x))

    def extra_repr(self) -> str:
        return f"n_nodes={self.n_nodes}, n_edges={self.adj_values.numel()}, hops={self.hops}"


class GeneNorm(nn.Module):
    """Per-feature normalisation across the rows of a (rows, features) matrix, always batch stats.

    This is ``BatchNorm1d`` where the "batch" is the gene (or node) axis of a matrix that does
    not depend on the samples of a minibatch, e.g. the (G, h) gene-embedding table. Because the
    statistics are recomputed at every call (no running averages), training and evaluation give
    the same output and the result does not depend on the minibatch composition or size.
    """

    def __init__(self, features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (rows, features) per feature over the rows."""
        return nn.functional.batch_norm(
            x, None, None, self.weight, self.bias, training=True, eps=self.eps
        )


class MLP(nn.Sequential):
    """``Linear → LayerNorm → ReLU`` blocks, the last block a bare ``Linear``.

    The reference uses BatchNorm1d inside its MLPs, after its last Linear too (its older
    release a ReLU after that); LayerNorm normalises each row on its own, so the output of a
    sample never depends on the other samples of its minibatch and a batch of one
    perturbation set behaves like any other, and the output is left unnormalised.

    Parameters
    ----------
    sizes
        Layer sizes, e.g. ``[h, 2 * h, h]`` gives two Linears.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        if len(sizes) < 2:
            raise PerturbsimError(f"MLP needs at least two sizes, got {list(sizes)}")
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers += [nn.LayerNorm(sizes[i + 1]), nn.ReLU()]
        super().__init__(*layers)
