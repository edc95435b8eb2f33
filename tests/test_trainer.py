"""The training loop's schedule: best epoch and early stopping."""

from __future__ import annotations

import torch
from torch import nn

from perturbsim.module._loss import LossTerms
from perturbsim.train import TrainConfig
from perturbsim.train._trainer import fit_network


def _fit(val_losses: list[float], patience: int) -> int:
    """Epochs trained by a one-weight network whose validation losses are ``val_losses``."""
    network = nn.Linear(1, 1)
    losses = iter(val_losses)

    def train_loss(batch):
        total = network.weight.square().sum()
        return LossTerms(total=total, autofocus=total, direction=total * 0)

    config = TrainConfig(max_epochs=len(val_losses), batch_size=4, patience=patience)
    result = fit_network(
        network,
        n_train=4,
        train_loss=train_loss,
        val_loss=lambda: next(losses),
        config=config,
        generator=torch.Generator().manual_seed(0),
    )
    return len(result.history)


def test_early_stopping_counts_a_worse_loss_as_no_gain_whatever_its_sign():
    worsening = [1.0 + 1e-4 * i for i in range(20)]  # each epoch a little worse
    assert _fit(worsening, patience=5) == 6
    negative = [-1.0 + 1e-4 * i for i in range(20)]  # the same below 0 (log-variance terms)
    assert _fit(negative, patience=5) == 6
    improving = [-1.0 - 0.1 * i for i in range(20)]  # each epoch clearly better: no stop
    assert _fit(improving, patience=5) == 20


def test_the_network_ends_with_the_weights_of_its_best_epoch():
    network = nn.Linear(1, 1)
    scripted = iter([1.0, 0.5, 0.9, 0.8, 0.7])  # the second epoch's validation is the best
    kept = []

    def val_loss():
        kept.append(network.weight.detach().clone())
        return next(scripted)

    def train_loss(batch):
        total = (network.weight - 3.0).square().sum()  # every step moves the weight
        return LossTerms(total=total, autofocus=total, direction=total * 0)

    result = fit_network(
        network,
        n_train=4,
        train_loss=train_loss,
        val_loss=val_loss,
        config=TrainConfig(max_epochs=5, batch_size=4, patience=10),
        generator=torch.Generator().manual_seed(0),
    )
    assert len(kept) == 5 and result.best_epoch == result.history[1]["epoch"]
    assert torch.equal(network.weight.detach(), kept[1])
    assert not torch.equal(kept[1], kept[-1])
