"""The GEARS training plan: loss inputs of the conditions, the batch loss, validation error.

The plan knows what a training step computes, not what the network is or how the model
adds its priors: the model hands it a ``forward(network, sets, drop=...)`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .._keys import CONTROL
from ..module import GEARSLoss, LossTerms, difference_moments
from ..pp import PseudobulkStats, genes_of
from ..pp._de import non_zero_mask, top_de_indices, welch_t
from ._trainer import TrainConfig, TrainResult, fit_network

DIRECTION_T_SCALE = 2.0
"""The direction target of a gene is ``tanh(t / 2)``, ``t`` its Welch t statistic against
control: about ±1 for clear changes, near 0 for genes whose direction the data do not
establish."""

GeneSet = tuple[str, ...]
Forward = Callable[..., tuple[Tensor, Tensor | None]]
"""``forward(network, sets, drop=None) -> (change (B, G), log error moment (B, G) or None)``."""


@dataclass
class LossInputs:
    """Per-condition inputs of the loss, one row (or cell block) per training condition.

    Attributes
    ----------
    diff
        Difference moments ``E[(y - c)^k]``, ``(q + 1, C, G)`` float64 (moment path).
    mask
        Genes entering the loss (GEARS's non-zero genes), ``(C, G)``.
    direction
        Direction targets ``tanh(t / 2)``, ``(C, G)``.
    cells
        Sampled cells of each condition (per-cell path), else ``None``.
    control
        Sampled control cells (per-cell path), else ``None``.
    """

    diff: Tensor
    mask: Tensor
    direction: Tensor
    cells: list[Tensor] | None = None
    control: Tensor | None = None


@dataclass
class Validation:
    """Validation conditions: their gene sets, measured change and top DE gene indices."""

    sets: list[GeneSet]
    target: Tensor
    de: Tensor


class TrainingPlan:
    """What one GEARS training step and one validation pass compute.

    Parameters
    ----------
    loss
        The loss (autofocus + direction (+ uncertainty)).
    cold_start
        Fraction of the perturbation-graph nodes hidden at each step.
    device
        Where the inputs live.
    """

    def __init__(self, loss: GEARSLoss, *, cold_start: float, device: torch.device) -> None:
        self.loss = loss
        self.cold_start = float(cold_start)
        self.device = device

    def loss_inputs(
        self,
        stats: PseudobulkStats,
        conditions: Sequence[str],
        cells: Mapping[str, np.ndarray] | None = None,
    ) -> LossInputs:
        """Loss inputs of ``conditions``: difference moments (or cells), mask and direction.

        ``cells`` (condition -> ``(n, G)`` expression, control included) is needed only when
        the loss has no moment expansion (:attr:`GEARSLoss.uses_moments` false).
        """
        rows = stats.index(list(conditions))
        control = stats.moments[:, stats.control_index]
        order = self.loss.order if self.loss.uses_moments else 1
        diff = difference_moments(stats.moments[:, rows], control, order)
        confidence = np.nan_to_num(welch_t(stats, rows)) / DIRECTION_T_SCALE
        inputs = LossInputs(
            diff=torch.as_tensor(diff, device=self.device).double(),
            mask=torch.as_tensor(non_zero_mask(stats)[rows], device=self.device).float(),
            direction=torch.as_tensor(np.tanh(confidence), device=self.device).float(),
        )
        if not self.loss.uses_moments:
            assert cells is not None, "the per-cell loss needs sampled cells"
            inputs.cells = [torch.as_tensor(cells[c], device=self.device) for c in conditions]
            inputs.control = torch.as_tensor(cells[CONTROL], device=self.device)
        return inputs

    def validation(self, stats: PseudobulkStats, conditions: Sequence[str]) -> Validation:
        """Measured change and top-20 non-dropout DE genes of the validation conditions."""
        conditions = list(conditions)
        return Validation(
            sets=[genes_of(c) for c in conditions],
            target=torch.as_tensor(
                stats.delta[stats.index(conditions)], device=self.device
            ).float(),
            de=torch.as_tensor(top_de_indices(stats, conditions), device=self.device),
        )

    def batch_loss(
        self,
        network: nn.Module,
        forward: Forward,
        sets: list[GeneSet],
        inputs: LossInputs,
        rows: np.ndarray,
        generator: torch.Generator,
    ) -> LossTerms:
        """Loss terms of the training conditions ``rows`` (indices into ``sets``)."""
        drop = None
        if self.cold_start > 0:
            draw = torch.rand(network.n_perts, generator=generator)
            drop = (draw < self.cold_start).to(self.device)
        effect, log_var = forward(network, [sets[i] for i in rows], drop=drop)
        idx = torch.as_tensor(rows, device=self.device)
        mask, direction = inputs.mask[idx], inputs.direction[idx]
        if self.loss.uses_moments:
            return self.loss(
                effect, log_var, mask=mask, diff_moments=inputs.diff[:, idx], direction=direction
            )
        assert inputs.cells is not None
        return self.loss(
            effect,
            log_var,
            mask=mask,
            direction=direction,
            pert_cells=[inputs.cells[i] for i in rows],
            control_cells=inputs.control,
            generator=generator,
        )

    @staticmethod
    def validation_error(effect: Tensor, validation: Validation) -> float:
        """Mean over conditions of the squared error on each condition's top DE genes."""
        de = validation.de
        valid = (de >= 0).float()
        idx = de.clamp_min(0)
        error = (effect.gather(1, idx) - validation.target.gather(1, idx)) ** 2 * valid
        return float((error.sum(1) / valid.sum(1).clamp_min(1)).mean())

    def run(
        self,
        network: nn.Module,
        forward: Forward,
        *,
        train_sets: list[GeneSet],
        inputs: LossInputs,
        validation: Validation | None,
        config: TrainConfig,
        generator: torch.Generator,
        desc: str,
    ) -> TrainResult:
        """Train ``network`` on ``train_sets``; validation (if any) picks the best epoch."""

        def train_loss(rows: np.ndarray) -> LossTerms:
            return self.batch_loss(network, forward, train_sets, inputs, rows, generator)

        def val_loss() -> float:
            assert validation is not None
            effect, _ = forward(network, validation.sets)
            return self.validation_error(effect, validation)

        return fit_network(
            network,
            n_train=len(train_sets),
            train_loss=train_loss,
            val_loss=val_loss if validation is not None else None,
            config=config,
            generator=generator,
            desc=desc,
        )
