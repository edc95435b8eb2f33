"""The GEARS network as a plain ``nn.Module`` (knows nothing of AnnData).

Architecture (after Roohani, Huang & Leskovec, Nat Biotechnol 2023), with ``h`` the hidden size,
``G`` the measured genes and ``P`` the perturbable genes (nodes of the GO graph):

1. Gene side, shared by every sample (computed once per forward, shape (G, h)):
   learnable gene embeddings → per-feature normalisation over genes → ReLU → Linear;
   plus ``0.2 ×`` positional gene embeddings refined by ``n_gene_layers`` SGConv layers on the
   co-expression graph (ReLU between layers); → MLP.
2. Perturbation side: learnable perturbation embeddings (P, h) refined by ``n_pert_layers``
   SGConv layers on the GO graph (ReLU between layers). For each sample the rows of its
   perturbed genes are summed (order-invariant, any set size) → MLP ``pert_fuse`` → added to
   every gene embedding of the sample (B, G, h).
3. Decoder: LayerNorm → ReLU (the reference's ``transform``) → ``recovery`` (Linear
   h → 2h → ReLU → Linear 2h → h, no normalisation) → gene-specific linear decoder (a
   weight vector and bias per gene) → ``z0`` (B, G). A cross-gene MLP reads the whole
   ``z0`` vector (G → h) into a sample state; a second gene-specific linear decoder reads
   ``[z0_g, state]`` → ``z`` (B, G).
4. Optional uncertainty head: an MLP on the per-gene embedding (B, G, h) → per gene the log
   of a cell's expected error to the loss's exponent (B, G), the ``log_var`` output. Its
   hidden layer is the first (h → 2h, ReLU) layer of ``recovery`` (shared), its output
   layer a Linear 2h → 1 shared by all genes.

Deliberate differences from the reference:

* Normalisation. The reference puts BatchNorm1d on the gene table and inside every MLP
  (after each layer, the last too), and one over the (sample × gene) rows after adding the
  perturbation. Here the gene table (which does not depend on the minibatch) is normalised
  per feature over the gene axis with batch statistics always (``GeneNorm``: same in train
  and eval mode), the MLPs (``gene_mlp``, ``pert_fuse``, the cross-gene one) put a LayerNorm
  before each hidden ReLU and end in a bare Linear, and ``recovery`` has no normalisation
  at all (its hidden layer is shared with the uncertainty head, its output folded into the
  decoder; see Speed), so a sample's prediction never depends on the other sets in its
  minibatch and minibatches of 1 to 64 sets train the same way. (Normalising per feature
  over the genes *after* adding the perturbation would subtract the perturbation shift
  away.)
* Embedding scale. The reference's gene, positional and perturbation embeddings are
  ``nn.Embedding(max_norm=True)``: rows of norm at most 1. Here they start standard normal,
  uncapped (rows of norm about √h, 8 at h = 64): the gene table is normalised before use
  anyway, but the ``0.2 ×`` positional term and the perturbation embeddings start about √h
  times larger against it than in the reference. Never ablated.
* A Linear after the gene table's ReLU (``gene_in``; the reference's ``emb_trans`` is a
  bare ReLU): a learnable (h, h) map of the normalised gene embeddings before the
  co-expression positions are added. It has been there since the network was first
  written and was never ablated.
* Speed (the decoder is the only part that scales with B × G). The last Linear of
  ``recovery`` (2h → h) and the gene-specific decoder (h → 1) are both linear, so they are
  evaluated as one folded (G, 2h) matrix ``decoder1_weight @ recovery_out.weight``: the same
  function and parameters, without building a (B, G, h) tensor. The rest of the per-gene
  decoder runs in cache-sized blocks of genes with a hand-written backward pass
  (:func:`~perturbsim.module._decoder.gene_decoder`). The uncertainty head reuses
  the hidden layer of ``recovery`` instead of its own h → 2h → h → 1 MLP, which would double
  the cost of a training step.
* Untrained embeddings. A perturbation embedding that the training loss never reaches (a
  gene neither perturbed in training nor within reach of a perturbed gene's GO messages)
  stays at its random initialisation; the reference feeds that noise into the prediction
  for the gene. Here such nodes send no messages (``pert_known``), so an unseen gene is
  represented by its trained GO neighbourhood only. ``forward(..., drop=...)`` hides
  further nodes for one call (cold-start training of the neighbourhood path).
* Control anchoring. The network is evaluated on the batch plus one empty set, and the
  output for the empty set is subtracted: ``effect(S) = z(S) - z(∅)``. The control therefore
  has an effect of exactly zero, as it must by definition, and the gene-specific biases of the
  reference (which only encode the control profile) are unnecessary; the caller adds the
  control expression. The cost is one extra row in the batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from perturbsim._errors import PerturbsimError

from .._checks import check_count
from ._decoder import gene_decoder
from ._layers import MLP, GeneNorm, GraphArrays, SimpleGraphConv

POSITIONAL_WEIGHT = 0.2


@dataclass
class NetworkOutput:
    """Output of :class:`GEARSNetwork`.

    Attributes
    ----------
    effect
        (B, G) predicted change of expression over control.
    log_var
        (B, G) predicted log of a cell's expected error to the loss's exponent (uncertainty
        head; :func:`~perturbsim.module.variance_from_log_moment` reads it as a variance), or
        ``None``.
    """

    effect: Tensor
    log_var: Tensor | None = None


def pad_sets(sets: Sequence[Sequence[int]], *, device: torch.device | str | None = None) -> Tensor:
    """Pad perturbation sets into a LongTensor with ``-1`` for empty slots.

    Parameters
    ----------
    sets
        One sequence of GO-graph node indices per sample; an empty sequence is the control.
    device
        Device of the result.

    Returns
    -------
    (B, S) int64 tensor, ``S = max(1, longest set)``; row ``b`` holds ``sets[b]`` then ``-1``.

    Examples
    --------
    >>> pad_sets([[3], [1, 7], []])
    tensor([[ 3, -1],
            [ 1,  7],
            [-1, -1]])
    """
    width = max([1, *(len(s) for s in sets)])
    out = torch.full((len(sets), width), -1, dtype=torch.int64)
    for i, s in enumerate(sets):
        if len(s):
            row = torch.as_tensor(list(s), dtype=torch.int64)
            if (row < 0).any():
                raise PerturbsimError(f"perturbation indices must be >= 0, got set {list(s)}")
            out[i, : len(s)] = row
    return out if device is None else out.to(device)


class GEARSNetwork(nn.Module):
    """GEARS: gene embeddings + co-expression GNN, perturbation embeddings + GO GNN, decoders.

    See the module docstring for the architecture and the deliberate differences from the
    reference implementation.

    Parameters
    ----------
    n_genes
        Number of measured genes ``G`` (the outputs).
    n_perts
        Number of perturbable genes ``P`` (nodes of the GO graph).
    coexpr_graph
        ``(src, dst, weight)`` edge arrays over the ``G`` genes (non-negative weights).
    go_graph
        ``(src, dst, weight)`` edge arrays over the ``P`` perturbation nodes.
    hidden
        Hidden size ``h``.
    n_gene_layers
        SGConv layers on the co-expression graph (0 disables the graph).
    n_pert_layers
        SGConv layers on the GO graph (0 disables the graph).
    uncertainty
        Add the uncertainty head (per gene, the log of a cell's expected error to the
        loss's exponent).

    Notes
    -----
    Input of :meth:`forward` is a (B, S) int64 tensor of GO-node indices padded with ``-1``
    (see :func:`pad_sets`). Memory: the decoder holds a few (B + 1, G, h) float32 tensors for
    the backward pass (about 45 MB each for B = 32, G = 5,000, h = 64).
    """

    def __init__(
        self,
        *,
        n_genes: int,
        n_perts: int,
        coexpr_graph: GraphArrays,
        go_graph: GraphArrays,
        hidden: int = 64,
        n_gene_layers: int = 1,
        n_pert_layers: int = 1,
        uncertainty: bool = False,
    ) -> None:
        super().__init__()
        for name, value, low in [
            ("n_genes", n_genes, 1),
            ("n_perts", n_perts, 1),
            ("hidden", hidden, 1),
            ("n_gene_layers", n_gene_layers, 0),
            ("n_pert_layers", n_pert_layers, 0),
        ]:
            check_count(name, value, minimum=low)
        self.n_genes = G = int(n_genes)
        self.n_perts = P = int(n_perts)
        self.hidden = h = int(hidden)
        self.uncertainty = bool(uncertainty)

        # gene side
        self.gene_emb = nn.Parameter(torch.empty(G, h))
        self.gene_norm = GeneNorm(h)
        self.gene_in = nn.Linear(h, h)
        self.pos_emb = nn.Parameter(torch.empty(G, h))
        self.coexpr_layers = nn.ModuleList(
            SimpleGraphConv(h, h, graph=coexpr_graph, n_nodes=G) for _ in range(n_gene_layers)
        )
        self.gene_mlp = MLP([h, h, h])

        # perturbation side
        self.pert_emb = nn.Parameter(torch.empty(P, h))
        self.go_layers = nn.ModuleList(
            SimpleGraphConv(h, h, graph=go_graph, n_nodes=P) for _ in range(n_pert_layers)
        )
        self.pert_fuse = MLP([h, h, h])
        # perturbation nodes whose embedding the training loss reaches; the others keep their
        # random initialisation and send no GO-graph messages (see ``pert_embeddings``).
        # All known until the caller says otherwise.
        self.register_buffer("pert_known", torch.ones(P, dtype=torch.bool))

        # decoder
        self.post_norm = nn.LayerNorm(h)
        self.recovery_in = nn.Linear(h, 2 * h)
        self.recovery_out = nn.Linear(2 * h, h)
        self.decoder1_weight = nn.Parameter(torch.empty(G, h))
        self.decoder1_bias = nn.Parameter(torch.zeros(G))
        self.cross_gene = MLP([G, h, h])
        self.decoder2_self = nn.Parameter(torch.empty(G))
        self.decoder2_state = nn.Parameter(torch.empty(G, h))
        # no bias on the second decoder: it cancels in effect(S) = z(S) - z(∅)
        # uncertainty head: a Linear on the shared ReLU(recovery_in) layer (see module docstring)
        self.uncertainty_head = nn.Linear(2 * h, 1) if uncertainty else None
        self.reset_parameters()

    @staticmethod
    def saved_sizes(state: Mapping[str, Tensor]) -> dict[str, int | None]:
        """The sizes of a network whose weights are ``state``, read without building it.

        ``hidden``, ``n_gene_layers`` and ``n_pert_layers`` as its config names them;
        ``hidden`` is None when ``state`` lacks the gene embedding. A subclass that names
        its weights otherwise overrides this.
        """
        embedding = state.get("gene_emb")
        return {
            "hidden": None if embedding is None or embedding.ndim != 2 else embedding.shape[1],
            "n_gene_layers": len(
                {k.split(".")[1] for k in state if k.startswith("coexpr_layers.")}
            ),
            "n_pert_layers": len({k.split(".")[1] for k in state if k.startswith("go_layers.")}),
        }

    def reset_parameters(self) -> None:
        """Initialise embeddings (standard normal), first decoder (uniform), second (zero).

        The second gene-specific decoder starts at zero, so an untrained network predicts no
        effect at all (the caller's prior, e.g. the mean training change) rather than random
        noise that training must first unlearn; its gradient is not zero, so it leaves zero
        at the first step.
        """
        h = self.hidden
        nn.init.normal_(self.gene_emb)
        nn.init.normal_(self.pos_emb)
        nn.init.normal_(self.pert_emb)
        bound1 = 1.0 / math.sqrt(h)
        nn.init.uniform_(self.decoder1_weight, -bound1, bound1)
        nn.init.zeros_(self.decoder1_bias)
        nn.init.zeros_(self.decoder2_self)
        nn.init.zeros_(self.decoder2_state)

    # -- pieces -----------------------------------------------------------------------------
    def gene_embeddings(self) -> Tensor:
        """(G, h) gene embeddings shared by all samples (before adding perturbations)."""
        x = self.gene_in(torch.relu(self.gene_norm(self.gene_emb)))
        pos = self.pos_emb
        for i, layer in enumerate(self.coexpr_layers):
            pos = layer(pos)
            if i < len(self.coexpr_layers) - 1:
                pos = torch.relu(pos)
        return self.gene_mlp(x + POSITIONAL_WEIGHT * pos)

    def set_known_perturbations(self, known: Tensor) -> None:
        """Mark which perturbation nodes have embeddings shaped by training.

        Parameters
        ----------
        known
            (P,) bool; ``False`` for nodes whose embedding the training loss never reaches
            (neither perturbed in training nor a GO neighbour relaying messages to a
            perturbed one): their embedding is still random noise and is left out of the
            GO-graph messages.
        """
        known = torch.as_tensor(known, dtype=torch.bool, device=self.pert_known.device)
        if known.shape != self.pert_known.shape:
            raise PerturbsimError(
                f"known must have shape ({self.n_perts},), got {tuple(known.shape)}"
            )
        self.pert_known.copy_(known)

    def pert_embeddings(self, drop: Tensor | None = None) -> Tensor:
        """(P, h) perturbation embeddings refined by the GO-graph GNN.

        Only the embeddings of known nodes (:meth:`set_known_perturbations`) enter the graph,
        so a gene whose own embedding was never trained is represented by its known GO
        neighbours alone, not by random noise.

        Parameters
        ----------
        drop
            (P,) bool: known nodes to treat as unknown in this call (cold-start training).

        Returns
        -------
        (P, h) tensor, one row per perturbation node: the learned embeddings, those of
        unknown and dropped nodes zeroed, passed through the GO-graph layers (ReLU between
        them); differentiable.
        """
        keep = self.pert_known
        if drop is not None:
            if drop.shape != keep.shape or drop.dtype != torch.bool:
                raise PerturbsimError(
                    f"drop must be a bool tensor of shape ({self.n_perts},), "
                    f"got {drop.dtype} {tuple(drop.shape)}"
                )
            keep = keep & ~drop
        x = self.pert_emb * keep.unsqueeze(-1).to(self.pert_emb.dtype)
        for i, layer in enumerate(self.go_layers):
            x = layer(x)
            if i < len(self.go_layers) - 1:
                x = torch.relu(x)
        return x

    def _check_sets(self, perts: Tensor) -> Tensor:
        if not isinstance(perts, Tensor):
            raise PerturbsimError(
                f"perts must be a (B, S) LongTensor (see pad_sets), got {type(perts).__name__}"
            )
        if perts.dim() != 2:
            raise PerturbsimError(f"perts must be 2-d (B, S), got shape {tuple(perts.shape)}")
        if perts.dtype not in (torch.int64, torch.int32):
            raise PerturbsimError(f"perts must be an integer tensor, got {perts.dtype}")
        if perts.numel():
            lo, hi = int(perts.min()), int(perts.max())
            if lo < -1 or hi >= self.n_perts:
                bad = lo if lo < -1 else hi
                raise PerturbsimError(
                    f"perturbation index {bad} out of range [-1, {self.n_perts}) (-1 is padding)"
                )
        return perts.long()

    # -- forward ----------------------------------------------------------------------------
    def forward(self, perts: Tensor, *, drop: Tensor | None = None) -> NetworkOutput:
        """Predict the effect of each perturbation set over control.

        Parameters
        ----------
        perts
            (B, S) int64 GO-node indices padded with ``-1``; a row of only ``-1`` is control.
        drop
            Optional (P,) bool mask of perturbation nodes to treat as never perturbed in this
            call (see :meth:`pert_embeddings`).

        Returns
        -------
        :class:`NetworkOutput` with ``effect`` (B, G) and, with the uncertainty head,
        ``log_var`` (B, G).
        """
        perts = self._check_sets(perts)
        n_batch = perts.shape[0]
        base = self.gene_embeddings()  # (G, h)
        pert_table = self.pert_embeddings(drop)  # (P, h)

        valid = perts >= 0
        gathered = pert_table[perts.clamp_min(0)] * valid.unsqueeze(-1).to(pert_table.dtype)
        summed = gathered.sum(dim=1)  # (B, h), order invariant
        # one extra empty set: its output is the control reference subtracted below
        summed = torch.cat([summed, summed.new_zeros(1, self.hidden)])
        has_pert = torch.cat([valid.any(dim=1), valid.new_zeros(1)])
        shift = self.pert_fuse(summed) * has_pert.unsqueeze(-1).to(summed.dtype)  # (B+1, h)

        # recovery_out (2h -> h) followed by the per-gene decoder (h -> 1) is linear, so it is
        # folded into one (G, 2h) matrix: the (G, B+1, h) output of recovery_out is never built
        fold_w = (self.decoder1_weight @ self.recovery_out.weight).unsqueeze(-1)  # (G, 2h, 1)
        fold_b = self.decoder1_weight @ self.recovery_out.bias + self.decoder1_bias  # (G,)
        if self.uncertainty_head is not None:  # one read-out pass for both heads
            head = self.uncertainty_head.weight.T.expand(self.n_genes, -1, -1)  # (G, 2h, 1)
            fold_w = torch.cat([fold_w, head], dim=-1)
        # relu(recovery_in(relu(post_norm(base[g] + shift[b])))) @ fold_w[g], in gene blocks
        decoded = gene_decoder(
            base,
            shift,
            self.post_norm.weight,
            self.post_norm.bias,
            self.recovery_in.weight,
            self.recovery_in.bias,
            fold_w,
            self.post_norm.eps,
        )  # (G, B+1, 1 or 2)
        z0 = decoded[..., 0].T + fold_b  # (B+1, G)
        state = self.cross_gene(z0)  # (B+1, h)
        z = z0 * self.decoder2_self + state @ self.decoder2_state.T
        effect = z[:n_batch] - z[n_batch:]

        log_var = None
        if self.uncertainty_head is not None:
            log_var = decoded[:, :n_batch, 1].T + self.uncertainty_head.bias
        return NetworkOutput(effect=effect, log_var=log_var)
