"""The GEARS model: composes graphs, network, loss and training plan behind the model interface."""

from __future__ import annotations

import logging
from dataclasses import fields
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from .._errors import PerturbsimError, error_reason, suggestion
from ..graphs import GeneGraph, coexpression_graph, reached_nodes, with_isolated_nodes
from ..module import (
    GEARSLoss,
    GEARSNetwork,
    pad_sets,
    seeded_initialisation,
    variance_from_log_moment,
)
from ..pp import draw_cells, genes_of
from ..train import TrainConfig, TrainingPlan, TrainResult
from ._base import GeneSet, PerturbationModel
from ._data import NO_TRAINING_PERTURBATION, ScreenData, screen_go_annotations, screen_go_graph
from ._gears_config import GEARSConfig
from ._target_effect import fit_target_effect, target_effect_shape

logger = logging.getLogger(__name__)

FIT_OPTIONS = tuple(
    f.name for f in fields(TrainConfig) if f.name not in ("min_lr", "min_improvement")
)


def resolve_device(device: str) -> torch.device:
    """The torch device ``device`` names (``"auto"``: CUDA if available); raise if unusable.

    ``"cpu"``, ``"cuda"`` or ``"cuda:N"``: the devices the network is written and tested for.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    unknown = PerturbsimError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not isinstance(device, str):
        raise unknown
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise unknown from None
    if chosen.type not in ("cpu", "cuda"):
        raise unknown
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise PerturbsimError(
            f"device {device!r} asked for, but no CUDA device is available; 'auto' or 'cpu' "
            "runs on the CPU"
        )
    return chosen


class GEARS(PerturbationModel):
    """GEARS (Roohani, Huang & Leskovec, Nat. Biotechnol. 2023), trained on pseudobulk moments.

    Gene embeddings are refined by a GNN over the co-expression graph of the training cells,
    perturbation embeddings by a GNN over the GO similarity graph (which is what predicts
    genes never perturbed in training); the set's embeddings are summed, fused into every
    gene embedding, decoded gene by gene and refined by a cross-gene layer. The predicted
    change depends only on the perturbation set, so training evaluates the network once per
    perturbation and computes the reference's per-cell autofocus loss, in expectation over
    random control pairings, exactly from per-condition moments (see :mod:`perturbsim.module`).

    The parts are class attributes, so a subclass can swap one without touching the rest:
    :attr:`network_class` (the ``nn.Module``), :attr:`loss_class` and :attr:`plan_class`
    (what a training step computes). The options are kept as a typed
    :class:`~perturbsim.models.GEARSConfig` in :attr:`config`; the keyword arguments below
    other than ``go_annotations``, ``seed`` and ``device`` are its fields.

    Parameters
    ----------
    adata
        Set-up screen (:func:`perturbsim.pp.setup`), ideally split (:func:`perturbsim.pp.split`),
        or its :class:`~perturbsim.models._data.ScreenData` (not with a ``gamma`` other than 0
        or 2, which trains on cells). It is not modified.
    hidden
        Embedding size.
    n_gene_layers, n_pert_layers
        GNN layers over the co-expression and GO graphs. With ``n_pert_layers=0`` no GO
        tie reaches a gene never perturbed: every such gene is predicted alike, with
        support 0 (flagged ``unsupported``).
    uncertainty
        Add the uncertainty head, trained with a heteroscedastic loss. As the reference's,
        it learns how far a perturbed *cell* less a random *control cell* falls from the
        predicted change (the log of its expected error to the loss's exponent, so both
        cells' own spreads are in it, and at an exponent of 4 the heavy tails of
        zero-inflated counts); predictions report it as a normal variance
        (``.layers["variance"]``, 0 for control): for a normal error, about the perturbed
        cells' variance plus the control cells'. It is a per-cell spread, not the variance
        of the predicted mean, so intervals for a condition's mean change are wide
        (``benchmarks/RESULTS.md``); an ensemble (``n_models``) or
        :class:`~perturbsim.models.Stacked` give that variance.
    gamma
        Autofocus exponent is ``2 + gamma``; exponents 2 and 4 (``gamma`` 0 or 2) use the
        exact moment loss, others (odd, fractional, 6 and above) the per-cell loss.
    direction_weight
        Weight of the direction-aware loss, whose target for each gene is ``tanh(t / 2)``
        (``t``: Welch t statistic against control). The reference uses 0.1; with the exact
        autofocus expectation that weight stalls learning on large screens (validation DE
        error 0.95 vs 0.82 after 40 epochs on the Norman-sized simulation), so the default
        is 0.01.
    go_annotations
        Gene -> GO term table (``gene``, ``term``); default: a simulated screen's own
        table (``.uns["simulation"]["go"]``), else the bundled human annotations.
    go_top_k, go_threshold, coexpr_top_k, coexpr_threshold
        Graph construction (top-H neighbours and weight thresholds).
    additive_residual
        For a set whose genes were measured singly in training, start from the sum of their
        measured changes and let the network supply only the interaction (its prediction for
        the set minus its predictions for those singles).
    prior
        ``"mean"``: the network learns the deviation from the mean change of the perturbed
        training conditions (the "mean" baseline), so a gene with an uninformative GO
        neighbourhood falls back to that baseline rather than to noise; ``"none"``: the
        reference's parametrisation.
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
    max_cells_per_condition
        Only for exponents without a moment expansion from the moments kept (``gamma``
        other than 0 and 2): cells kept per condition, control included, for the per-cell
        loss, whose control partners are redrawn at every step.
    seed
        Seed of initialisation and batching (default: ``perturbsim.settings.seed``). The
        global torch random state is left as it was.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.

    Notes
    -----
    ``fit(**options)`` takes the schedule of :class:`~perturbsim.train.TrainConfig`:
    ``max_epochs`` (200), ``batch_size`` (32 perturbations a step), ``lr`` (3e-3),
    ``weight_decay`` (5e-4, AdamW), ``lr_decay`` (0.5), ``lr_patience`` (10) and
    ``patience`` (20). One epoch is one pass over the training perturbations (not cells), so
    it takes a few optimiser steps; training runs until validation stops improving (an epoch
    improving on the best by less than 0.1 % counts as a stall: ``patience`` stalled epochs
    stop it), halves the learning rate every ``lr_patience`` stalled epochs, and stops once
    the rate falls below 1e-5 (so ``lr`` must be above it). As in the reference, the
    validation criterion is the mean squared error of the predicted change on the top-20
    non-dropout DE genes of each validation perturbation; the network of the best epoch is
    kept. Every loss term is in :attr:`history`.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.split(adata, kind="simulation", seed=1)
    >>> model = ps.GEARS(adata, seed=0).fit(max_epochs=5)
    >>> model.predict("KLF1+MAP2K6").shape
    (1, 500)
    """

    name = "gears"
    fit_options = FIT_OPTIONS
    network_class: ClassVar[type[GEARSNetwork]] = GEARSNetwork
    loss_class: ClassVar[type[GEARSLoss]] = GEARSLoss
    plan_class: ClassVar[type[TrainingPlan]] = TrainingPlan

    def __init__(
        self,
        adata: AnnData | ScreenData | None = None,
        *,
        go_annotations: pd.DataFrame | None = None,
        seed: int | None = None,
        device: str = "auto",
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - {f.name for f in fields(GEARSConfig)})
        if unknown:
            names = self.option_names()
            raise PerturbsimError(
                f"GEARS has no option {unknown[0]!r}{suggestion(unknown[0], names)} "
                f"(its options: {', '.join(names)})"
            )
        super().__init__(adata, seed=seed)
        self.config = GEARSConfig(**options)
        self.config.check_thresholds()
        self.device = resolve_device(device)
        self.go_annotations = screen_go_annotations(adata, go_annotations)
        self.networks: list[GEARSNetwork] = []
        self.results: list[TrainResult] = []
        self.single_changes: dict[str, np.ndarray] = {}
        self.prior_change = np.zeros(len(self.genes) if self.data is not None else 0, np.float32)
        self.target_effect = np.zeros(0, np.float32)
        self.cells: dict[str, np.ndarray] = {}
        if self.data is not None and not self.loss.uses_moments:
            if not isinstance(adata, AnnData):
                raise PerturbsimError(
                    f"gamma={self.config.gamma} trains on cells: build GEARS from the AnnData"
                )
            conditions = list(self.data.train) + list(self.data.val)
            rest = [str(c) for c in self.data.stats.conditions if c not in set(conditions)]
            self.cells = draw_cells(
                adata,
                conditions + rest,
                max_cells=self.config.max_cells_per_condition,
                seed=self.seed,
            )

    @cached_property
    def loss(self) -> GEARSLoss:
        """The training loss, built from :attr:`config`."""
        return self.loss_class(
            gamma=self.config.gamma, direction_weight=self.config.direction_weight
        )

    @classmethod
    def option_names(cls) -> list[str]:
        """Keyword arguments of the constructor: its own and every :class:`GEARSConfig` field."""
        return [*super().option_names(), *(f.name for f in fields(GEARSConfig))]

    # -- graphs ----------------------------------------------------------------------------
    @cached_property
    def coexpr_graph(self) -> GeneGraph:
        """Co-expression graph of the measured genes (from the statistics' gene moments)."""
        assert self.data is not None
        return coexpression_graph(
            self.data.stats, top_k=self.config.coexpr_top_k, threshold=self.config.coexpr_threshold
        )

    @cached_property
    def _annotated_go_graph(self) -> GeneGraph:
        """GO graph over every perturbed gene and every measured gene (annotated ones)."""
        assert self.data is not None
        return screen_go_graph(
            self.data,
            self.go_annotations,
            top_k=self.config.go_top_k,
            threshold=self.config.go_threshold,
        )

    def _new_network(self) -> GEARSNetwork:
        g, c = self.go_graph, self.coexpr_graph
        return self.network_class(
            n_genes=len(self.genes),
            n_perts=g.n_nodes,
            coexpr_graph=(c.src, c.dst, c.weight),
            go_graph=(g.src, g.dst, g.weight),
            **self.config.network_options(),
        ).to(self.device)

    def _check_saved_network(self, m: int, state: dict[str, torch.Tensor]) -> None:
        """Refuse network ``m``'s weights unless they have the config's sizes, before building it.

        ``load_state_dict`` would compare them once the network is built, but a config edited
        by hand to ``hidden = 10**9`` (or 10**6 graph layers) asks for more memory or time
        than any machine has before then. The sizes are read by the network class
        (``saved_sizes``).
        """
        if not state:
            raise PerturbsimError(
                f"the weights hold no network {m}, which the config's n_models = "
                f"{self.config.n_models} asks for (edited by hand?): save the model again"
            )
        for field, value in self.network_class.saved_sizes(state).items():
            if value is None:
                raise PerturbsimError(
                    f"network {m} weights lack what gives its {field} (edited by hand?): "
                    "save the model again"
                )
            if value != getattr(self.config, field):
                raise PerturbsimError(
                    f"network {m} weights do not fit its config: they hold {field} = {value} "
                    f"where the config gives {getattr(self.config, field)} (edited by hand?): "
                    "save the model again"
                )

    def _seeded_network(self, seed: int) -> GEARSNetwork:
        """A new network initialised from ``seed``, leaving torch's global RNG as it was."""
        with seeded_initialisation(seed):
            return self._new_network()

    # -- forward ---------------------------------------------------------------------------
    def _node_sets(self, sets: list[GeneSet]) -> list[list[int]]:
        unknown = sorted({g for s in sets for g in s} - set(self.go_graph.nodes))
        if unknown:
            raise PerturbsimError(
                "genes not in the model's GO graph (the screen's perturbed genes and its "
                "measured genes with GO terms), so GEARS cannot predict them (the default "
                f"model, stacked, and linear_go predict any gene with GO terms): {unknown[:20]}"
                + (f" (+{len(unknown) - 20} more)" if len(unknown) > 20 else "")
            )
        flat = self.go_graph.node_index([g for s in sets for g in s]).tolist()
        ends = np.cumsum([len(s) for s in sets]).tolist()
        return [flat[end - len(s) : end] for s, end in zip(sets, ends, strict=True)]

    def _gene_support(self, genes: list[str]) -> np.ndarray:
        """1 for a gene measured alone in training, else its GO tie to such genes.

        Without a GO layer (``n_pert_layers=0``) no tie carries anything to a gene never
        perturbed (its embedding stays as initialised, every such gene's alike): its
        support is 0.
        """
        return self._support_of(genes, self.single_changes)

    def _support_graph(self) -> GeneGraph | None:
        """The GO graph, or ``None`` without a GO layer (no tie carries anything then)."""
        return None if self.config.n_pert_layers == 0 else self.go_graph

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
        self, network: GEARSNetwork, sets: list[GeneSet], *, drop: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Change over control of ``sets``, additive residual included, and the log moment."""
        residual = self.config.additive_residual
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
    def _fit_priors(self, data: ScreenData) -> None:
        """Measured singles, mean prior and target effects of the training conditions."""
        self.single_changes = {
            gene: change.astype(np.float32) for gene, change in data.single_changes().items()
        }
        use_mean = self.config.prior == "mean" and data.perturbed(data.train)
        self.prior_change = (
            data.mean_training_change().astype(np.float32)
            if use_mean
            else np.zeros(len(self.genes), dtype=np.float32)
        )
        self.target_effect = np.zeros(0, np.float32)
        if self.config.target_prior:
            self.target_effect = fit_target_effect(
                data.stats.delta[data.stats.index(data.train)],
                [genes_of(c) for c in data.train],
                self.genes,
                data.stats.control_mean,
                self.prior_change,
            )

    def _fit(self, data: ScreenData, **options: Any) -> None:
        if not data.perturbed(data.train):
            raise PerturbsimError(NO_TRAINING_PERTURBATION)
        config = TrainConfig(**options)
        train_sets = [genes_of(c) for c in data.train]
        if self._annotated_go_graph.n_nodes == 0:
            advice = (
                "the go_annotations given name none of its genes (another species, other IDs?)"
                if self.go_annotations is not None
                else "not human gene names? pass go_annotations"
            )
            logger.warning(
                "%s: no gene of the screen has a GO annotation (%s): it can predict only the "
                "genes perturbed in training",
                self.label,
                advice,
            )
        self.go_graph = with_isolated_nodes(
            self._annotated_go_graph, sorted({g for s in train_sets for g in s})
        )
        logger.info(
            "GO graph: %d nodes, %d edges; co-expression graph: %d genes, %d edges",
            self.go_graph.n_nodes,
            self.go_graph.n_edges,
            self.coexpr_graph.n_nodes,
            self.coexpr_graph.n_edges,
        )
        nodes = set(self.go_graph.nodes)
        val = [c for c in data.perturbed(data.val) if set(genes_of(c)) <= nodes]
        if len(val) < len(data.perturbed(data.val)):
            logger.info("validation skips conditions with genes outside the GO graph")
        self._fit_priors(data)
        plan = self.plan_class(self.loss, cold_start=self.config.cold_start, device=self.device)
        inputs = plan.loss_inputs(data.stats, data.train, self.cells)
        validation = plan.validation(data.stats, val) if val else None
        known = torch.as_tensor(
            reached_nodes(
                self.go_graph,
                (g for s in train_sets for g in s),
                hops=self.config.n_pert_layers,
            )
        )
        self.networks, self.results = [], []
        n_models = self.config.n_models
        for member in range(n_models):
            seed = self.seed + member
            network = self._seeded_network(seed)
            network.set_known_perturbations(known)
            result = plan.run(
                network,
                self._forward,
                train_sets=train_sets,
                inputs=inputs,
                validation=validation,
                config=config,
                generator=torch.Generator().manual_seed(seed),
                desc=f"GEARS {member + 1}/{n_models}",
            )
            self.networks.append(network)
            self.results.append(result)

    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch history of every ensemble member.

        Columns: ``member``, ``epoch``, ``train_loss``, one column per loss term
        (``autofocus``, ``direction``, ``uncertainty`` when used), ``val_loss`` (NaN when
        trained without validation conditions, as inside the default model), ``lr``.

        Raises
        ------
        PerturbsimError
            If the model is not fitted (there is no history yet).
        """
        self.require_fitted()
        rows = [{"member": m, **entry} for m, r in enumerate(self.results) for entry in r.history]
        return pd.DataFrame(rows)

    # -- prediction ------------------------------------------------------------------------
    def covers(self, perturbations: str | list[str] | list[list[str]]) -> np.ndarray:
        """Which perturbations GEARS can predict: those whose genes are all GO-graph nodes.

        Parameters
        ----------
        perturbations
            One label, labels, or gene lists (as :meth:`predict` takes them).

        Returns
        -------
        Boolean array, one value per perturbation.
        """
        if not self.is_fitted:
            raise PerturbsimError(f"{self.label} is not fitted: call .fit() first")
        nodes = set(self.go_graph.nodes)
        return np.array([set(s) <= nodes for s in self.parsed_query(perturbations)], dtype=bool)

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, np.ndarray | None]:
        residual = self.config.additive_residual
        effects, variances = [], []
        with torch.no_grad():
            for network in self.networks:
                network.eval()
                effect, log_var = self._forward(network, sets)
                if residual:
                    for i, s in enumerate(sets):
                        if len(s) == 1 and s[0] in self.single_changes:
                            effect[i] = torch.as_tensor(
                                self.single_changes[s[0]], device=self.device
                            )
                effects.append(effect.double().cpu().numpy())
                if log_var is not None:
                    exponent = 2.0 + self.config.gamma
                    variances.append(variance_from_log_moment(log_var.cpu().numpy(), exponent))
        stacked = np.stack(effects)
        change = stacked.mean(axis=0)
        control = [i for i, s in enumerate(sets) if not s]
        change[control] = 0.0
        spread = stacked.var(axis=0) if len(effects) > 1 else None
        aleatoric = np.mean(variances, axis=0) if variances else None
        if spread is None and aleatoric is None:
            return change, None
        variance = np.asarray(
            (0 if spread is None else spread) + (0 if aleatoric is None else aleatoric)
        )
        variance[control] = 0.0
        return change, variance

    # -- persistence -----------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "go_nodes": self.go_graph.nodes.tolist(),
            "single_genes": list(self.single_changes),
            "history": [r.to_dict() for r in self.results],
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            **self.go_graph.to_arrays("go"),
            **self.coexpr_graph.to_arrays("coexpr"),
            "prior_change": self.prior_change,
            "target_effect": self.target_effect,
        }
        for gene, change in self.single_changes.items():
            arrays[f"single.{gene}"] = change
        for m, network in enumerate(self.networks):
            for key, value in network.state_dict().items():
                arrays[f"net{m}.{key}"] = value.detach().cpu().numpy()
        return arrays

    def _array_shapes(self) -> dict[str, tuple[int | str, ...]]:
        """The gene-sized arrays (the graphs and networks check their own on restore)."""
        n_genes = len(self.genes)
        return {
            "prior_change": (n_genes,),
            "target_effect": target_effect_shape(self.target_effect, n_genes),
            **{f"single.{gene}": (n_genes,) for gene in self.single_changes},
        }

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.config = GEARSConfig.from_dict(options["config"])
        self.device = resolve_device("auto")
        self.go_annotations = None
        self.go_graph = GeneGraph.from_arrays(options["go_nodes"], arrays, "go")
        self.coexpr_graph = GeneGraph.from_arrays(self.genes, arrays, "coexpr")
        self.single_changes = {g: arrays[f"single.{g}"] for g in options["single_genes"]}
        self.prior_change = arrays["prior_change"]
        self.target_effect = arrays["target_effect"]
        self.cells = {}
        self.results = [TrainResult.from_dict(r) for r in options["history"]]
        extra = sorted(
            {k.split(".")[0] for k in arrays if k.startswith("net")}
            - {f"net{m}" for m in range(self.config.n_models)}
        )
        if extra:  # never read: the config's n_models edited down
            raise PerturbsimError(
                f"the weights hold {extra[0]}, beyond the config's n_models = "
                f"{self.config.n_models} (edited by hand?): save the model again"
            )
        self.networks = []
        for m in range(self.config.n_models):
            prefix = f"net{m}."
            state = {
                k[len(prefix) :]: torch.as_tensor(v)
                for k, v in arrays.items()
                if k.startswith(prefix)
            }
            self._check_saved_network(m, state)
            network = self._seeded_network(self.seed)  # weights loaded below
            try:
                network.load_state_dict(state)
            except RuntimeError as err:
                details = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
                raise PerturbsimError(
                    f"network {m} weights do not fit its config: "
                    f"{details[0] if details else error_reason(err)}"
                ) from None
            network.eval()
            self.networks.append(network)
