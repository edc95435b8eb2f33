"""Cell fitness of gene pairs: single fitnesses and a GO-graph gene encoder (a deep set)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from typing import Self

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .._checks import (
    check_count,
    check_flag,
    check_fraction,
    check_list,
    check_nonnegative,
    check_positive,
    shown,
)
from .._errors import PerturbsimError, close_spellings, counted, first_case_hint, shown_list
from .._settings import resolve_seed
from .._threads import torch_threads_kept
from ..ds import FitnessScreen, human_go
from ..ds._fitness import check_screen
from ..graphs import go_graph
from ..module._layers import MLP, SimpleGraphConv, seeded_initialisation
from ..pp import canonical_label, genes_of, parse_perturbations
from ..pp._labels import joined_genes_hint, query_items, split_at_separators
from ..train import AdamW
from ._base import distinct_sets
from ._linear_go import spectral_embedding

logger = logging.getLogger(__name__)

_CHECK_EVERY = 10
"""Epochs between two validation checks (and the granularity of the chosen epoch count)."""


def pair_deviation(fitness: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A pair's deviation from additive fitness, ``f_AB - f_A - f_B``.

    Parameters
    ----------
    fitness
        Pair fitnesses ``f_AB``.
    first, second
        Single fitnesses ``f_A`` and ``f_B`` of the pairs' genes.

    Returns
    -------
    The deviations, an array like ``fitness``.
    """
    return np.asarray(fitness, dtype=np.float64) - first - second


RIDGE_GRID = tuple(10.0**k for k in range(-6, 3))
"""Penalties tried, relative to the largest squared singular value of the features."""


def loo_ridge(x: np.ndarray, y: np.ndarray, grid: Sequence[float]) -> tuple[np.ndarray, float]:
    """Ridge weights of centred ``x`` on centred ``y``, the penalty chosen by leave-one-out error.

    With ``x = U S V^T``, the hat matrix of ridge regression with an intercept is
    ``1/n + U diag(s² / (s² + a)) U^T`` and the leave-one-out residual is
    ``r_i / (1 - H_ii)``, so every penalty of the grid is scored exactly from one SVD.

    Parameters
    ----------
    x
        ``(n, p)`` centred features (``p`` may be 0: the weights are then empty).
    y
        ``(n,)`` centred targets.
    grid
        Penalties relative to the largest squared singular value of ``x``.

    Returns
    -------
    The ``(p,)`` weights and the chosen absolute penalty.
    """
    n = x.shape[0]
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uy = u.T @ y
    best = (np.inf, 0.0)
    for relative in grid:
        alpha = relative * float(s[0] ** 2) if s.size and s[0] > 0 else relative
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink * uy)
        leverage = 1.0 / n + (u**2) @ shrink
        loo = (y - fitted) / np.clip(1.0 - leverage, 1e-12, None)
        error = float(np.mean(loo**2))
        if error < best[0]:
            best = (error, alpha)
    alpha = best[1]
    weights = vt.T @ (s / (s**2 + alpha) * uy)
    return weights, alpha


class FitnessNetwork(nn.Module):
    """Deep set over the genes of a perturbation, each gene encoded over the GO graph.

    Each node ``g`` of the gene graph has fixed GO features ``x_g`` and a learned embedding
    ``e_g`` (zero at start). One :class:`~perturbsim.module._layers.SimpleGraphConv` encodes
    them, ``h = ReLU(SGC([x, e]))``, so a gene never trained on gets an encoding from its
    GO neighbours. ``phi([h_g, f_g])`` encodes a gene with its (scaled) single fitness
    ``f_g``, and a pair's deviation from additive is ``rho(phi_A + phi_B)``: symmetric in
    the two genes by construction.

    Parameters
    ----------
    go_features
        ``(n_nodes, K)`` fixed node features (``K`` may be 0).
    graph
        ``(src, dst, weight)`` edge arrays of the gene graph over the same nodes.
    embedding_dim
        Size of the learned node embedding (may be 0 when ``K > 0``).
    hidden
        Width of every hidden layer.
    hops
        Propagation steps of the graph convolution.
    """

    def __init__(
        self,
        go_features: np.ndarray,
        graph: tuple[np.ndarray, np.ndarray, np.ndarray],
        *,
        embedding_dim: int,
        hidden: int,
        hops: int,
    ) -> None:
        super().__init__()
        n_nodes, n_features = go_features.shape
        if n_features + embedding_dim < 1:
            raise PerturbsimError("FitnessNetwork needs GO features or a learned embedding")
        self.register_buffer("go_features", torch.as_tensor(go_features, dtype=torch.float32))
        self.embedding = nn.Parameter(torch.zeros(n_nodes, embedding_dim))
        self.encoder = SimpleGraphConv(
            n_features + embedding_dim, hidden, graph=graph, n_nodes=n_nodes, hops=hops
        )
        self.phi = MLP([hidden + 1, hidden, hidden])
        self.rho = MLP([hidden, hidden, 1])

    def encode(self) -> Tensor:
        """Encoding ``h`` of every node, ``(n_nodes, hidden)``."""
        return torch.relu(self.encoder(torch.cat([self.go_features, self.embedding], dim=1)))

    def forward(self, fitness: Tensor, first: Tensor, second: Tensor) -> Tensor:
        """Predict the deviations of pairs from additive fitness.

        Parameters
        ----------
        fitness
            ``(n_nodes,)`` scaled single fitness given to ``phi`` for each node.
        first, second
            ``(P,)`` node indices of the pairs' two genes.

        Returns
        -------
        ``(P,)`` predicted scaled deviations from additive fitness.
        """
        genes = self.phi(torch.cat([self.encode(), fitness[:, None]], dim=1))
        return self.rho(genes[first] + genes[second]).squeeze(1)


def _refuse_shared_pairs(
    train: tuple[np.ndarray, ...], val: tuple[np.ndarray, ...], genes: Sequence[str]
) -> None:
    """Refuse validation pairs that are training pairs too, naming one (node indices in)."""
    pairs = [{frozenset(p) for p in zip(*part[:2], strict=True)} for part in (train, val)]
    shared = sorted(sorted(genes[i] for i in pair) for pair in pairs[0] & pairs[1])
    if shared:
        raise PerturbsimError(
            f"{len(shared)} validation pairs are training pairs too (e.g. "
            f"{'+'.join(shared[0])}): val_pairs must be held out"
        )


class FitnessModel:
    r"""Predict the fitness of gene pairs with a GO-graph gene encoder.

    A pair is predicted as its additive fitness plus a learned deviation,

    .. math:: \hat f_{AB} = f_A + f_B + \rho(\phi(h_A, f_A) + \phi(h_B, f_B)),

    where :math:`h_g` encodes gene :math:`g` over the Gene Ontology graph of the screen's
    genes (:class:`FitnessNetwork`: GEARS's perturbation encoder, a graph convolution over
    the GO Jaccard graph, here fed with the graph's spectral embedding and a learned
    embedding per gene) and :math:`f_g` is the single fitness. The deviation is a function
    of the unordered pair, so ``A+B`` and ``B+A`` get the same prediction. It can learn
    how pairs deviate with the strength of their singles (buffering of two strong hits),
    per-gene tendencies of seen genes and what GO neighbours share; a pair whose genes were
    never in a training pair gets its deviation from the singles and the GO encoding alone.

    **Singles.** They are measured for the genes in ``known_singles`` (by default every
    gene of the screen: a single-gene growth screen is cheap beside the pairs). Another
    gene's single is predicted from its GO features (the spectral embedding) by a ridge
    regression fitted on the known singles, its penalty chosen by leave-one-out error
    (:func:`loo_ridge`): where GO says little about growth, the prediction shrinks to the
    mean known single. The prediction stands for :math:`f_g` everywhere.

    **Training.** Full-batch AdamW on the mean squared error of the training pairs'
    deviations, scaled by the standard deviation of the known singles. With validation
    pairs, the network is kept at the epoch of lowest validation error (checked every 10
    epochs, at most ``max_epochs``), as GEARS keeps its best epoch; without, it trains for
    ``max_epochs``. (Training afresh on training and validation pairs for the chosen number
    of epochs was tried: no better on the Norman screen, and on synthetic screens it could
    stop on a plateau the first run had left.) During training, a gene of the validation
    pairs that is in no training pair is treated as an unseen gene will be: its single
    stays known when every single is known, else it is predicted from GO. Everything is
    deterministic given ``seed``; torch's global random state is left unchanged. Training
    runs on one thread (restored after), faster for so small a network; a fit of the
    112-gene Norman screen takes 0.6-0.8 s on a quiet machine.

    Parameters
    ----------
    screen
        The growth screen (:func:`perturbsim.ds.read_fitness`). Pairs of its genes can be
        predicted.
    go_annotations
        Gene -> GO term table (columns ``gene``, ``term``); ``None``: the bundled human
        annotations with alias matching. Genes without a GO term get zero GO features and no
        graph edge.
    go
        Use the GO graph; ``False`` gives each gene only its learned embedding and predicts
        unknown singles by the mean known single (an ablation: what the GO graph adds).
    go_components
        Dimensions of the spectral embedding of the GO graph (the fixed node features).
        32: chosen by ``benchmarks/bench_fitness.py --tune`` on validation pairs (16, the
        default before, erred 4 % more, more on each of its three split seeds; with 32, a
        re-run puts ``hidden=64`` lower on two seeds of three: not adopted, see
        ``benchmarks/RESULTS.md``).
    embedding_dim
        Size of the learned gene embedding.
    hidden
        Width of the hidden layers.
    hops
        Propagation steps over the GO graph.
    top_k, threshold
        GO graph construction, as in :func:`perturbsim.graphs.go_graph`: each gene keeps its
        ``top_k`` most similar genes whose Jaccard index is above ``threshold``, a number in
        [0, 1) (a Jaccard index is at most 1: a threshold of 1 or more keeps no edge).
    seed
        Seed of the network's initialisation; ``None``: ``perturbsim.settings.seed``.

    Attributes
    ----------
    genes
        The screen's genes, sorted: the node order, so that nothing depends on the order of
        the genes in the screen's tables.
    best_epoch
        The epoch the network was kept at (chosen on validation pairs when given).
    val_loss
        Scaled validation mean squared error at ``best_epoch`` (NaN without validation).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import perturbsim as ps
    >>> genes = ["A", "B", "C", "D"]
    >>> singles = pd.Series([-0.1, -0.2, -0.3, -0.4], index=genes)
    >>> values = np.add.outer(singles.to_numpy(), singles.to_numpy())
    >>> pairs = pd.DataFrame(values, index=genes, columns=genes)
    >>> go = pd.DataFrame({"gene": genes, "term": ["T1", "T1", "T2", "T2"]})
    >>> screen = ps.ds.FitnessScreen(singles, pairs)
    >>> model = ps.models.FitnessModel(screen, go_annotations=go, go_components=2, seed=0)
    >>> model = model.fit(["A+B", "A+C", "B+D"], max_epochs=20)
    >>> model.predict(["C+D"]).index.tolist()
    ['C+D']
    """

    def __init__(
        self,
        screen: FitnessScreen,
        *,
        go_annotations: pd.DataFrame | None = None,
        go: bool = True,
        go_components: int = 32,
        embedding_dim: int = 8,
        hidden: int = 32,
        hops: int = 1,
        top_k: int = 20,
        threshold: float = 0.1,
        seed: int | None = None,
    ) -> None:
        check_screen(screen)
        for name, value in (("go_components", go_components), ("hidden", hidden), ("hops", hops)):
            check_count(name, value)
        check_count("embedding_dim", embedding_dim, minimum=0)
        if not go and embedding_dim == 0:
            raise PerturbsimError("go=False needs embedding_dim >= 1: a gene needs some input")
        self.screen = screen
        self.genes = sorted(screen.genes)
        self._node = {g: i for i, g in enumerate(self.genes)}
        self._measured = screen.singles.reindex(self.genes).to_numpy(dtype=np.float64)
        self.go_annotations = go_annotations
        self.go = check_flag("go", go)
        self.go_components = int(go_components)
        self.embedding_dim = int(embedding_dim)
        self.hidden = int(hidden)
        self.hops = int(hops)
        self.top_k = check_count("top_k", top_k)
        # a Jaccard index is at most 1: a threshold of 1 or more would keep no edge
        self.threshold = check_fraction("threshold", threshold, allow_zero=True)
        self.seed = resolve_seed(seed)
        self.network: FitnessNetwork | None = None
        self.best_epoch = 0
        self.val_loss = float("nan")
        self._singles = np.zeros(0)
        self._scale = 1.0

    def __repr__(self) -> str:
        state = "fitted" if self.network is not None else "not fitted"
        return f"FitnessModel({len(self.genes)} genes, go={self.go}, {state})"

    # -- inputs ------------------------------------------------------------------------------
    @cached_property
    def _go_inputs(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """GO features and edges over the screen's genes (no feature, no edge without GO)."""
        n = len(self.genes)
        empty = np.array([], dtype=np.int64)
        if not self.go:
            return np.zeros((n, 0)), (empty, empty, np.array([], np.float32))
        graph = go_graph(
            self.genes, annotations=self.go_annotations, top_k=self.top_k, threshold=self.threshold
        )
        if graph.n_nodes == 0:
            raise PerturbsimError(
                f"none of the {n} genes of {self.screen.source} has a GO annotation; pass "
                "go_annotations that cover them (or, in Python, go=False)"
            )
        if 2 * graph.unannotated.size > n:  # GO can say little of most of the screen
            logger.warning(
                "%d of the %d genes of %s have no GO annotation, and no GO features (e.g. %s): "
                "pass go_annotations that cover them",
                graph.unannotated.size,
                n,
                self.screen.source,
                shown_list(graph.unannotated.tolist(), 5),
            )
        elif graph.unannotated.size:
            logger.info("genes without GO terms (no GO features): %s", graph.unannotated.tolist())
        rows = np.array([self._node[g] for g in graph.nodes], dtype=np.int64)
        features = np.zeros((n, min(self.go_components, graph.n_nodes)))
        features[rows] = spectral_embedding(graph, self.go_components)
        return features, (rows[graph.src], rows[graph.dst], graph.weight)

    def _pairs(self, labels: Sequence[str], what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Node indices of the pairs' genes and their measured fitness (``what``: the argument)."""
        check_list(what, labels, "labels")
        labels = list(labels)
        if not labels:
            raise PerturbsimError(f"{what} is empty: give measured pairs, e.g. ['FOSB+CEBPB']")
        table = self.screen.pair_table()
        labels = [canonical_label(s) for s in parse_perturbations(labels)]
        not_pairs = [p for p in labels if len(genes_of(p)) != 2]
        if not_pairs:
            raise PerturbsimError(f"{what} holds {shown(not_pairs[0])}, not a pair of two genes")
        outside = sorted({g for p in labels for g in genes_of(p) if g not in self._node})
        if outside:
            raise PerturbsimError(
                f"{what} name genes not in {self.screen.source}: {shown_list(outside, 5)}"
                f"{first_case_hint(outside, self.genes)}"
            )
        repeated = sorted(p for p, n in Counter(labels).items() if n > 1)
        if repeated:  # A+B and B+A are one pair: counted once, not weighed twice
            logger.warning(
                "%s given more than once (as A+B and B+A, say), counted once: %s",
                counted(len(repeated), "pair"),
                shown_list(repeated, 10),
            )
            labels = list(dict.fromkeys(labels))
        missing = [p for p in labels if p not in table.index]
        if missing:
            raise PerturbsimError(
                f"{what}: {counted(len(missing), 'pair')} not measured in "
                f"{self.screen.source}: {shown_list(missing, 10)}"
            )
        # each pair's genes in name order (its canonical label's), not the tables': the
        # sums of the fit then do not move with the order of the screen's genes
        first, second = (
            np.array([self._node[genes_of(p)[k]] for p in labels], dtype=np.int64) for k in (0, 1)
        )
        return first, second, table.loc[labels, "fitness"].to_numpy(dtype=np.float64)

    def _known(self, known_singles: Sequence[str] | None) -> np.ndarray:
        if known_singles is None:
            return np.ones(len(self.genes), dtype=bool)
        check_list("known_singles", known_singles, "genes")
        known_singles = list(known_singles)  # read twice below: a generator once
        unknown = [g for g in known_singles if g not in self._node]
        if unknown:
            raise PerturbsimError(f"known_singles not in the screen: {shown_list(unknown, 10)}")
        mask = np.zeros(len(self.genes), dtype=bool)
        mask[[self._node[g] for g in known_singles]] = True
        if mask.sum() < 2:
            raise PerturbsimError("known_singles needs at least two genes")
        return mask

    def _singles_from(self, known: np.ndarray) -> np.ndarray:
        """Single fitness of every gene: measured where known, else predicted from GO."""
        features = self._go_inputs[0]
        y = self._measured[known]
        x = features[known] - features[known].mean(axis=0)
        weights, _ = loo_ridge(x, y - y.mean(), RIDGE_GRID)
        predicted = y.mean() + (features - features[known].mean(axis=0)) @ weights
        return np.where(known, self._measured, predicted)

    # -- training ----------------------------------------------------------------------------
    def _train(
        self,
        pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
        singles: np.ndarray,
        epochs: int,
        *,
        lr: float,
        weight_decay: float,
        val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[FitnessNetwork, int, float]:
        """Train a fresh network; with ``val``, return it at its best checked epoch."""
        features, edges = self._go_inputs
        with seeded_initialisation(self.seed):
            network = FitnessNetwork(
                features,
                edges,
                embedding_dim=self.embedding_dim,
                hidden=self.hidden,
                hops=self.hops,
            )
        optimiser = AdamW(network.parameters(), lr=lr, weight_decay=weight_decay)
        first, second, fitness = pairs
        target = torch.as_tensor(
            pair_deviation(fitness, singles[first], singles[second]) / self._scale
        ).float()
        inputs = torch.as_tensor(singles / self._scale).float()
        first_t, second_t = torch.as_tensor(first), torch.as_tensor(second)
        best: tuple[float, int, dict[str, Tensor] | None] = (float("inf"), epochs, None)
        for epoch in range(1, epochs + 1):
            optimiser.zero_grad()
            loss = nn.functional.mse_loss(network(inputs, first_t, second_t), target)
            loss.backward()
            optimiser.step()
            if val is not None and (epoch % _CHECK_EVERY == 0 or epoch == epochs):
                predicted = self._predict_pairs(network, singles, *val[:2])
                error = float(np.mean((predicted - val[2]) ** 2)) / self._scale**2
                if error < best[0]:
                    state = {k: v.detach().clone() for k, v in network.state_dict().items()}
                    best = (error, epoch, state)
        if best[2] is not None:
            network.load_state_dict(best[2])
        return network, best[1], best[0]

    def _predict_pairs(
        self, network: FitnessNetwork, singles: np.ndarray, first: np.ndarray, second: np.ndarray
    ) -> np.ndarray:
        """Pair fitness: the singles' sum plus the network's deviation."""
        inputs = torch.as_tensor(singles / self._scale).float()
        with torch.no_grad():
            deviation = network(inputs, torch.as_tensor(first), torch.as_tensor(second))
        return singles[first] + singles[second] + deviation.numpy().astype(np.float64) * self._scale

    def fit(
        self,
        train_pairs: Sequence[str],
        *,
        val_pairs: Sequence[str] | None = None,
        known_singles: Sequence[str] | None = None,
        max_epochs: int = 400,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
    ) -> Self:
        """Fit on measured pairs of the screen.

        Parameters
        ----------
        train_pairs
            Pair labels (``"A+B"``) to train on; every one must be measured, and its genes
            in ``known_singles``.
        val_pairs
            Pairs on which the epoch to keep is chosen, none of them a training pair (refused:
            they would not be held out). ``None``: train for ``max_epochs``.
        known_singles
            Genes whose measured single fitness the model may use; the others' singles are
            predicted from GO. ``None``: every gene of the screen.
        max_epochs
            Most full-batch epochs.
        lr, weight_decay
            AdamW settings.

        Returns
        -------
        The model itself.
        """
        max_epochs = check_count("max_epochs", max_epochs)
        check_positive("lr", lr)
        weight_decay = check_nonnegative("weight_decay", weight_decay)
        started = time.perf_counter()
        known = self._known(known_singles)
        train = self._pairs(train_pairs, "train_pairs")
        unknown = sorted({str(self.genes[g]) for g in np.concatenate(train[:2]) if not known[g]})
        if unknown:
            raise PerturbsimError(
                f"every gene of a training pair must be in known_singles; not there: "
                f"{shown_list(unknown, 5)}"
            )
        scale = float(self._measured[known].std())
        self._scale = scale if np.isfinite(scale) and scale > 0 else 1.0
        options = {"lr": lr, "weight_decay": weight_decay}
        check_list("val_pairs", val_pairs, "labels", optional=True)
        given = val_pairs is not None and len(val_pairs)
        val = self._pairs(val_pairs, "val_pairs") if given else None
        if val is not None:
            _refuse_shared_pairs(train, val, self.genes)
        training = known.copy()
        if val is not None and not known.all():  # in no training pair: unseen
            training[:] = False
            training[np.concatenate(train[:2])] = True
        # one thread: the network's operations are tiny (a few thousand rows of 32
        # features), and on several threads their synchronisation costs more than it gains
        # (a fit of Norman's screen ran 3-4x slower on 2 threads than on 1, 2 loaded cores)
        with torch_threads_kept(1):
            self.network, self.best_epoch, self.val_loss = self._train(
                train, self._singles_from(training), max_epochs, val=val, **options
            )
        if val is None:
            self.val_loss = float("nan")
        self._singles = self._singles_from(known)
        self.network.eval()
        logger.info(
            "FitnessModel: %d epochs, validation MSE %.4g, %.1f s",
            self.best_epoch,
            self.val_loss,
            time.perf_counter() - started,
        )
        return self

    # -- prediction --------------------------------------------------------------------------
    def predict(self, perturbations: str | Sequence[str] | Sequence[Sequence[str]]) -> pd.Series:
        """Predict the fitness of singles and pairs of the screen's genes.

        Parameters
        ----------
        perturbations
            One label, a list of labels (``"A+B"``, ``"A"``) or a list of gene lists.

        Returns
        -------
        Fitness indexed by canonical label, each perturbation once (a repeat is warned of):
        a single its known (measured) fitness or the GO prediction, a pair its additive
        fitness plus the predicted deviation.

        Raises
        ------
        PerturbsimError
            One line: the model is not fitted; genes not in the screen (with a hint when one
            is a screen's gene in another case, joined by another separator, or misspelt: a
            letter or two off a screen's gene and no GO-annotated human gene's symbol); the control
            (``ctrl``: fitness is measured relative to it, so it is not predicted) or a set of
            more than two genes, named.
        """
        if self.network is None:
            raise PerturbsimError("FitnessModel is not fitted: call .fit() first")
        sets = parse_perturbations(perturbations)
        unknown = sorted({g for s in sets for g in s if g not in self._node})
        if unknown:
            raise PerturbsimError(
                f"{counted(len(unknown), 'gene is', 'genes are')} not in {self.screen.source}: "
                f"{shown_list(unknown, 10)}{self._unknown_hint(unknown)}"
            )
        for given, genes in zip(query_items(perturbations), sets, strict=True):
            label = given if isinstance(given, str) else canonical_label(genes)
            if not genes:
                raise PerturbsimError(
                    f"{label!r} is the control (no gene): fitness is measured relative to it "
                    "(about 0), so FitnessModel does not predict it; give single genes or pairs"
                )
            if len(genes) > 2:
                raise PerturbsimError(
                    f"{label!r} has {len(genes)} genes: FitnessModel predicts single genes and "
                    "pairs only"
                )
        sets = distinct_sets(sets)
        first = np.array([self._node[s[0]] for s in sets], dtype=np.int64)
        second = np.array([self._node[s[-1]] for s in sets], dtype=np.int64)
        is_pair = np.array([len(s) == 2 for s in sets])
        pairs = self._predict_pairs(self.network, self._singles, first, second)
        values = np.where(is_pair, pairs, self._singles[first])
        index = pd.Index([canonical_label(s) for s in sets], name="perturbation")
        return pd.Series(values, index=index, name="fitness")

    def _unknown_hint(self, unknown: Sequence[str]) -> str:
        """A hint for queried genes not in the screen: joined otherwise, another case, a typo."""
        for gene in unknown:
            for sep, parts in split_at_separators(gene):
                if all(part in self._node for part in parts):
                    return joined_genes_hint(gene, sep, parts, takes_sep=False)
        in_case = first_case_hint(unknown, self.genes)
        if in_case:
            return in_case
        human = set(human_go()["gene"].astype(str))  # a real gene's symbol is no misspelling
        for gene in unknown:
            close = [] if gene in human else close_spellings(gene, self.genes, n=1)
            if close:
                return f" (did you mean {close[0]!r} for {gene!r}?)"
        return ""
