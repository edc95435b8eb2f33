"""The GEARS model: graphs + network + moment-based training, behind the model interface."""

from __future__ import annotations

import logging
from dataclasses import asdict
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from .._errors import PerturbsimError
from .._keys import CONTROL
from .._settings import resolve_seed
from ..graphs import GeneGraph, coexpression_graph, go_graph
from ..module import GEARSLoss, GEARSNetwork, difference_moments, pad_sets
from ..pp import genes_of, parse_perturbations
from ..pp._de import non_zero_mask, top_de_indices, welch_t
from ..train import TrainConfig, TrainResult, fit_network
from ._base import GeneSet, PerturbationModel
from ._data import ScreenData, sample_cells
from ._target_effect import fit_target_effect

logger = logging.getLogger(__name__)

NETWORK_OPTIONS = ("hidden", "n_gene_layers", "n_pert_layers", "uncertainty")
DIRECTION_T_SCALE = 2.0
"""The direction target of a gene is tanh(t / 2), t its Welch t statistic against control:
about ±1 for clear changes, near 0 for genes whose direction the data do not establish."""


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise PerturbsimError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise PerturbsimError(f"device {device!r} asked for, but no CUDA device is available")
    return chosen


def _with_isolated_nodes(graph: GeneGraph, genes: list[str]) -> GeneGraph:
    nodes = set(graph.nodes)
    extra = [g for g in genes if g not in nodes]
    if not extra:
        return graph
    logger.info(
        "%d trained genes have no GO term and join the GO graph without edges: %s",
        len(extra),
        ", ".join(extra[:10]),
    )
    return GeneGraph(
        nodes=np.concatenate([graph.nodes, np.asarray(extra, dtype=str)]),
        src=graph.src,
        dst=graph.dst,
        weight=graph.weight,
        unannotated=np.asarray([g for g in graph.unannotated if g not in extra], dtype=str),
    )


def _de_mse(effect: torch.Tensor, target: torch.Tensor, de: torch.Tensor) -> float:
    """Mean over conditions of the squared error on each condition's top DE genes."""
    valid = (de >= 0).float()
    idx = de.clamp_min(0)
    error = (effect.gather(1, idx) - target.gather(1, idx)) ** 2 * valid
    return float((error.sum(1) / valid.sum(1).clamp_min(1)).mean())


class GEARS(PerturbationModel):
    """GEARS (Roohani, Huang & Leskovec, Nat. Biotechnol. 2023), trained on pseudobulk moments.

    Gene embeddings are refined by a GNN over the co-expression graph of the training cells,
    perturbation embeddings by a GNN over the GO similarity graph (which is what predicts
    genes never perturbed in training); the set's embeddings are summed, fused into every
    gene embedding, decoded gene by gene and refined by a cross-gene layer. The predicted
    change depends only on the perturbation set, so training evaluates the network once per
    perturbation and computes the reference's per-cell autofocus loss, in expectation over
    random control pairings, exactly from per-condition moments (see :mod:`perturbsim.module`).

    Parameters
    ----------
    adata
        Set-up screen (:func:`perturbsim.pp.setup`), ideally split (:func:`perturbsim.pp.split`).
    hidden
        Embedding size.
    n_gene_layers, n_pert_layers
        GNN layers over the co-expression and GO graphs.
    uncertainty
        Add the uncertainty head (per-gene log-variance, trained with a heteroscedastic loss).
    gamma
        Autofocus exponent is ``2 + gamma``; even exponents use the exact moment loss.
    direction_weight
        Weight of the direction-aware loss, whose target for each gene is ``tanh(t / 2)``
        (``t``: Welch t statistic against control). The reference uses 0.1; with the exact
        autofocus expectation that weight stalls learning on large screens (validation DE
        error 0.95 vs 0.82 after 40 epochs on the Norman-sized simulation), so the default
        is 0.01.
    go_annotations
        Gene -> GO term table (``gene``, ``term``); default: bundled human annotations.
    go_top_k, go_threshold, coexpr_top_k, coexpr_threshold
        Graph construction (top-H neighbours and weight thresholds).
    prior
        ``"mean"``: the network learns the deviation from the mean change of the perturbed
        training conditions (the "mean" baseline), so a gene with an uninformative GO
        neighbourhood falls back to that baseline rather than to noise; ``"none"``: the
        reference's parametrisation.
    additive_residual
        For a set whose genes were measured singly in training, start from the sum of their
        measured changes and let the network supply only the interaction (its prediction for
        the set minus its predictions for those singles).
    target_prior
        Add to the prior the direct effect of a perturbation on its own target gene, when
        the target is measured: a least-squares fit, over the measured targets of the
        training conditions, of their own change on their control level (see
        :func:`perturbsim.models.fit_target_effect`). It carries over to targets never
        perturbed in training (CRISPRa raises its target, CRISPRi lowers it), which the
        network alone cannot do: a gene's decoder never saw its gene targeted unless it was
        perturbed in training. ``False``: the reference, which infers a target's change like
        any other gene's.
    cold_start
        Fraction of the GO nodes hidden at each training step (their embeddings send no
        messages), so that the network also learns to predict a perturbation from part of
        its GO neighbourhood, the situation of genes never perturbed in training. Embeddings
        that training never reaches are always left out (see
        :meth:`perturbsim.module.GEARSNetwork.set_known_perturbations`).
    n_models
        Ensemble size: networks trained from seeds ``seed, seed+1, ...``; their mean is the
        prediction and their spread adds to the variance.
    seed
        Seed of initialisation and batching (default: ``perturbsim.settings.seed``).
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    max_cells_per_condition
        Only for odd or fractional exponents (``gamma`` not an even integer), which have no
        moment expansion: cells kept per condition for the per-cell loss, whose control
        partners are redrawn at every step.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> _ = ps.pp.split(adata, kind="simulation", seed=1)
    >>> model = ps.GEARS(adata, seed=0).train(max_epochs=5)
    >>> model.predict("KLF1+MAP2K6").shape
    (1, 500)
    """

    name = "gears"

    def __init__(
        self,
        adata: AnnData | None = None,
        *,
        hidden: int = 64,
        n_gene_layers: int = 1,
        n_pert_layers: int = 1,
        uncertainty: bool = False,
        gamma: float = 2.0,
        direction_weight: float = 0.01,
        go_annotations: pd.DataFrame | None = None,
        go_top_k: int = 20,
        go_threshold: float = 0.1,
        coexpr_top_k: int = 20,
        coexpr_threshold: float = 0.4,
        additive_residual: bool = False,
        prior: str = "mean",
        target_prior: bool = True,
        cold_start: float = 0.0,
        n_models: int = 1,
        seed: int | None = None,
        device: str = "auto",
        max_cells_per_condition: int = 256,
    ) -> None:
        super().__init__(adata)
        if prior not in {"mean", "none"}:
            raise PerturbsimError(f"prior must be 'mean' or 'none', got {prior!r}")
        if int(n_models) < 1:
            raise PerturbsimError(f"n_models must be >= 1, got {n_models}")
        if not 0.0 <= float(cold_start) < 1.0:
            raise PerturbsimError(f"cold_start must be in [0, 1), got {cold_start}")
        self.options: dict[str, Any] = {
            "hidden": int(hidden),
            "n_gene_layers": int(n_gene_layers),
            "n_pert_layers": int(n_pert_layers),
            "uncertainty": bool(uncertainty),
            "gamma": float(gamma),
            "direction_weight": float(direction_weight),
            "go_top_k": int(go_top_k),
            "go_threshold": float(go_threshold),
            "coexpr_top_k": int(coexpr_top_k),
            "coexpr_threshold": float(coexpr_threshold),
            "additive_residual": bool(additive_residual),
            "prior": str(prior),
            "n_models": int(n_models),
            "cold_start": float(cold_start),
            "target_prior": bool(target_prior),
            "seed": resolve_seed(seed),
        }
        self.device = _device(device)
        self.loss = GEARSLoss(gamma=gamma, direction_weight=direction_weight)
        self.networks: list[GEARSNetwork] = []
        self.results: list[TrainResult] = []
        self.single_changes: dict[str, np.ndarray] = {}
        self.prior_change = np.zeros(len(self.genes) if self.data is not None else 0, np.float32)
        self.target_effect = np.zeros(0, np.float32)
        self.cells: dict[str, np.ndarray] = {}
        if self.data is not None:
            self._build_graphs(self.data, go_annotations)
            if not self.loss.uses_moments:
                self.cells = sample_cells(
                    adata,
                    self.data.train + self.data.val,
                    max_cells=int(max_cells_per_condition),
                    seed=self.options["seed"],
                )

    # -- graphs ----------------------------------------------------------------------------
    def _build_graphs(self, data: ScreenData, annotations: pd.DataFrame | None) -> None:
        opts = self.options
        self.coexpr_graph = coexpression_graph(
            data.stats, top_k=opts["coexpr_top_k"], threshold=opts["coexpr_threshold"]
        )
        perturbed = sorted({g for c in data.stats.conditions for g in genes_of(c)})
        trained = sorted({g for c in data.train for g in genes_of(c)})
        candidates = perturbed + [g for g in self.genes if g not in set(perturbed)]
        graph = go_graph(
            candidates,
            annotations=annotations,
            top_k=opts["go_top_k"],
            threshold=opts["go_threshold"],
        )
        self.go_graph = _with_isolated_nodes(graph, trained)
        logger.info(
            "GO graph: %d nodes, %d edges; co-expression graph: %d genes, %d edges",
            self.go_graph.n_nodes,
            self.go_graph.n_edges,
            self.coexpr_graph.n_nodes,
            self.coexpr_graph.n_edges,
        )

    def _new_network(self) -> GEARSNetwork:
        g, c = self.go_graph, self.coexpr_graph
        return GEARSNetwork(
            n_genes=len(self.genes),
            n_perts=g.n_nodes,
            coexpr_graph=(c.src, c.dst, c.weight),
            go_graph=(g.src, g.dst, g.weight),
            **{k: self.options[k] for k in NETWORK_OPTIONS},
        ).to(self.device)

    # -- forward ---------------------------------------------------------------------------
    def _node_sets(self, sets: list[GeneSet]) -> list[list[int]]:
        unknown = sorted({g for s in sets for g in s} - set(self.go_graph.nodes))
        if unknown:
            raise PerturbsimError(
                f"genes not in the GO graph, so GEARS cannot predict them: {unknown[:20]}"
                + (f" (+{len(unknown) - 20} more)" if len(unknown) > 20 else "")
            )
        return [self.go_graph.node_index(list(s)).tolist() if s else [] for s in sets]

    @cached_property
    def _gene_column(self) -> dict[str, int]:
        """Measured gene -> its column in the predictions."""
        return {str(gene): i for i, gene in enumerate(self.genes)}

    def _prior(self, sets: list[GeneSet]) -> torch.Tensor:
        """Prior change of each set: mean training change + direct effects on its targets."""
        prior = np.zeros((len(sets), len(self.genes)), dtype=np.float32)
        prior[[bool(s) for s in sets]] = self.prior_change
        if self.target_effect.size:
            position = self._gene_column
            for row, s in enumerate(sets):
                for gene in s:
                    if gene in position:
                        prior[row, position[gene]] += self.target_effect[position[gene]]
        return torch.as_tensor(prior, device=self.device)

    def _forward(
        self,
        network: GEARSNetwork,
        sets: list[GeneSet],
        *,
        residual: bool,
        drop: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Change over control (and log-variance) of ``sets``, with the additive residual."""
        corrected = [
            i
            for i, s in enumerate(sets)
            if residual and len(s) > 1 and any(g in self.single_changes for g in s)
        ]
        singles = sorted({g for i in corrected for g in sets[i] if g in self.single_changes})
        queries = sets + [(g,) for g in singles]
        out = network(pad_sets(self._node_sets(queries), device=self.device), drop=drop)
        raw = out.effect + self._prior(queries).to(out.effect.dtype)
        effect = raw[: len(sets)]
        if corrected:
            row = {g: len(sets) + j for j, g in enumerate(singles)}
            shift = torch.zeros_like(effect)
            for i in corrected:
                for g in sets[i]:
                    if g in row:
                        measured = torch.as_tensor(self.single_changes[g], device=self.device)
                        shift[i] += measured.to(effect.dtype) - raw[row[g]]
            effect = effect + shift
        log_var = None if out.log_var is None else out.log_var[: len(sets)]
        return effect, log_var

    # -- training --------------------------------------------------------------------------
    def _loss_inputs(self, data: ScreenData, conditions: list[str]) -> dict[str, Any]:
        """Per-condition loss inputs: difference moments (or sampled cells) and gene mask."""
        stats = data.stats
        rows = stats.index(conditions)
        control = stats.moments[:, stats.control_index]
        order = self.loss.order if self.loss.uses_moments else 1
        diff = difference_moments(stats.moments[:, rows], control, order)
        confidence = np.nan_to_num(welch_t(stats, rows)) / DIRECTION_T_SCALE
        inputs: dict[str, Any] = {
            "diff": torch.as_tensor(diff, device=self.device).double(),
            "mask": torch.as_tensor(non_zero_mask(stats)[rows], device=self.device).float(),
            "direction": torch.as_tensor(np.tanh(confidence), device=self.device).float(),
        }
        if not self.loss.uses_moments:
            inputs["cells"] = [
                torch.as_tensor(self.cells[c], device=self.device) for c in conditions
            ]
            inputs["control"] = torch.as_tensor(self.cells[CONTROL], device=self.device)
        return inputs

    def _batch_loss(
        self,
        network: GEARSNetwork,
        sets: list[GeneSet],
        inputs: dict[str, Any],
        rows: np.ndarray,
        *,
        residual: bool,
        generator: torch.Generator,
    ) -> torch.Tensor:
        drop = None
        if self.options["cold_start"] > 0:
            draw = torch.rand(network.n_perts, generator=generator)
            drop = (draw < self.options["cold_start"]).to(self.device)
        effect, log_var = self._forward(
            network, [sets[i] for i in rows], residual=residual, drop=drop
        )
        idx = torch.as_tensor(rows, device=self.device)
        diff, mask, direction = (
            inputs["diff"][:, idx],
            inputs["mask"][idx],
            inputs["direction"][idx],
        )
        if self.loss.uses_moments:
            return self.loss(
                effect, log_var, mask=mask, diff_moments=diff, target_sign=direction
            ).total
        return self.loss(
            effect,
            log_var,
            mask=mask,
            target_sign=direction,
            pert_cells=[inputs["cells"][i] for i in rows],
            control_cells=inputs["control"],
            generator=generator,
        ).total

    def train(
        self,
        *,
        max_epochs: int = 200,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        lr_decay: float = 0.5,
        lr_patience: int = 10,
        patience: int = 20,
    ) -> GEARS:
        """Train on the screen's training conditions; validation picks the best epoch.

        One epoch is one pass over the training perturbations (not cells), so it takes a few
        optimiser steps; the schedule runs until validation stops improving (``patience``)
        and halves the learning rate whenever it stalls for ``lr_patience`` epochs. As in
        the reference, the validation criterion is the mean squared error of the predicted
        change on the top-20 non-dropout DE genes of each validation perturbation; the
        network of the best epoch is kept.

        Parameters
        ----------
        max_epochs
            Upper bound on epochs.
        batch_size
            Perturbations per optimiser step.
        lr, weight_decay
            Adam settings. The reference's weight decay; the learning rate is 3x the
            reference's because an epoch here is a few steps, not hundreds (chosen on
            validation loss of simulated and real screens, see ``docs/method.md``).
        lr_decay, lr_patience, patience
            Schedule and early stopping, see :class:`perturbsim.train.TrainConfig`.

        Returns
        -------
        The trained model; per-epoch history in :attr:`history`.
        """
        config = TrainConfig(
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            lr_decay=lr_decay,
            lr_patience=lr_patience,
            patience=patience,
        )
        return self.fit(config=config)

    def _supervised_nodes(self, train_sets: list[GeneSet]) -> np.ndarray:
        """GO nodes whose embedding the training loss reaches.

        These are the trained genes and every node within ``n_pert_layers`` hops upstream of
        them (the relays of their messages); the other embeddings stay at their random
        initialisation and are left out.
        """
        graph = self.go_graph
        reached = np.zeros(graph.n_nodes, dtype=bool)
        trained = sorted({g for s in train_sets for g in s})
        if trained:
            reached[graph.node_index(trained)] = True
        for _ in range(self.options["n_pert_layers"]):
            reached[graph.src[reached[graph.dst]]] = True
        return reached

    def _prior_change(self, data: ScreenData) -> np.ndarray:
        """Mean change of the perturbed training conditions (zeros with ``prior="none"``)."""
        perturbed = data.perturbed(data.train)
        if self.options["prior"] == "none" or not perturbed:
            return np.zeros(len(self.genes), dtype=np.float32)
        return data.stats.delta[data.stats.index(perturbed)].mean(axis=0).astype(np.float32)

    def _fit(self, data: ScreenData, config: TrainConfig | None = None) -> None:
        config = config or TrainConfig()
        train = data.train
        nodes = set(self.go_graph.nodes)
        val = [c for c in data.perturbed(data.val) if set(genes_of(c)) <= nodes]
        if len(val) < len(data.perturbed(data.val)):
            logger.info("validation skips conditions with genes outside the GO graph")
        train_sets = [genes_of(c) for c in train]
        val_sets = [genes_of(c) for c in val]
        delta = data.stats.delta
        self.single_changes = {
            c: delta[data.stats.index([c])[0]].astype(np.float32)
            for c in train
            if len(genes_of(c)) == 1
        }
        self.prior_change = self._prior_change(data)
        self.target_effect = np.zeros(0, np.float32)
        if self.options["target_prior"]:
            self.target_effect = fit_target_effect(
                delta[data.stats.index(train)],
                train_sets,
                self.genes,
                data.stats.control_mean,
                self.prior_change,
            )
        train_inputs = self._loss_inputs(data, train)
        if val:
            val_target = torch.as_tensor(
                data.stats.delta[data.stats.index(val)], device=self.device
            ).float()
            val_de = torch.as_tensor(top_de_indices(data.stats, val), device=self.device)
        residual = self.options["additive_residual"]
        known = torch.as_tensor(self._supervised_nodes(train_sets))
        self.networks, self.results = [], []
        for member in range(self.options["n_models"]):
            seed = self.options["seed"] + member
            torch.manual_seed(seed)
            network = self._new_network()
            network.set_known_perturbations(known)
            generator = torch.Generator().manual_seed(seed)

            def train_loss(
                rows: np.ndarray, network: GEARSNetwork = network, generator=generator
            ) -> torch.Tensor:
                return self._batch_loss(
                    network, train_sets, train_inputs, rows, residual=residual, generator=generator
                )

            def val_loss(network: GEARSNetwork = network) -> float:
                effect, _ = self._forward(network, val_sets, residual=residual)
                return _de_mse(effect, val_target, val_de)

            result = fit_network(
                network,
                n_train=len(train_sets),
                train_loss=train_loss,
                val_loss=val_loss if val else None,
                config=config,
                generator=generator,
                desc=f"GEARS {member + 1}/{self.options['n_models']}",
            )
            self.networks.append(network)
            self.results.append(result)

    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch history: ``model``, ``epoch``, ``train_loss``, ``val_loss``, ``lr``."""
        rows = [{"model": m, **entry} for m, r in enumerate(self.results) for entry in r.history]
        return pd.DataFrame(rows)

    # -- prediction ------------------------------------------------------------------------
    def covers(self, perturbations: str | list[str] | list[list[str]]) -> np.ndarray:
        """Which perturbations GEARS can predict: those whose genes are all GO-graph nodes."""
        nodes = set(self.go_graph.nodes)
        return np.array([set(s) <= nodes for s in parse_perturbations(perturbations)], dtype=bool)

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, np.ndarray | None]:
        residual = self.options["additive_residual"]
        effects, variances = [], []
        with torch.no_grad():
            for network in self.networks:
                network.eval()
                effect, log_var = self._forward(network, sets, residual=residual)
                if residual:
                    for i, s in enumerate(sets):
                        if len(s) == 1 and s[0] in self.single_changes:
                            effect[i] = torch.as_tensor(
                                self.single_changes[s[0]], device=self.device
                            )
                effects.append(effect.double().cpu().numpy())
                if log_var is not None:
                    variances.append(log_var.double().exp().cpu().numpy())
        stacked = np.stack(effects)
        change = stacked.mean(axis=0)
        control = [i for i, s in enumerate(sets) if not s]
        change[control] = 0.0
        spread = stacked.var(axis=0) if len(effects) > 1 else None
        aleatoric = np.mean(variances, axis=0) if variances else None
        if spread is None and aleatoric is None:
            return change, None
        variance = (0 if spread is None else spread) + (0 if aleatoric is None else aleatoric)
        return change, np.asarray(variance)

    # -- persistence -----------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return {
            **self.options,
            "go_nodes": self.go_graph.nodes.tolist(),
            "single_genes": sorted(self.single_changes),
            "history": [[asdict(r) for r in self.results]],
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for prefix, graph in (("go", self.go_graph), ("coexpr", self.coexpr_graph)):
            arrays |= {
                f"{prefix}.src": graph.src,
                f"{prefix}.dst": graph.dst,
                f"{prefix}.weight": graph.weight,
            }
        arrays["prior_change"] = self.prior_change
        arrays["target_effect"] = self.target_effect
        for gene, change in self.single_changes.items():
            arrays[f"single.{gene}"] = change
        for m, network in enumerate(self.networks):
            for key, value in network.state_dict().items():
                arrays[f"net{m}.{key}"] = value.detach().cpu().numpy()
        return arrays

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        history = options.pop("history", [[]])[0]
        go_nodes = options.pop("go_nodes")
        single_genes = options.pop("single_genes")
        self.options = options
        self.device = _device("auto")
        self.loss = GEARSLoss(gamma=options["gamma"], direction_weight=options["direction_weight"])
        self.go_graph = GeneGraph(
            nodes=go_nodes, src=arrays["go.src"], dst=arrays["go.dst"], weight=arrays["go.weight"]
        )
        self.coexpr_graph = GeneGraph(
            nodes=self.genes,
            src=arrays["coexpr.src"],
            dst=arrays["coexpr.dst"],
            weight=arrays["coexpr.weight"],
        )
        self.single_changes = {g: arrays[f"single.{g}"] for g in single_genes}
        self.prior_change = arrays["prior_change"]
        self.target_effect = arrays["target_effect"]
        self.results = [TrainResult(**r) for r in history]
        self.networks = []
        for m in range(options["n_models"]):
            network = self._new_network()
            prefix = f"net{m}."
            state = {
                k[len(prefix) :]: torch.as_tensor(v)
                for k, v in arrays.items()
                if k.startswith(prefix)
            }
            try:
                network.load_state_dict(state)
            except RuntimeError as err:
                raise PerturbsimError(
                    f"network {m} weights do not fit its config: {str(err).splitlines()[0]}"
                ) from None
            network.eval()
            self.networks.append(network)
