"""The training loop's schedule: best epoch and early stopping."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from perturbsim import PerturbsimError
from perturbsim.module._loss import LossTerms
from perturbsim.train import TrainConfig
from perturbsim.train._trainer import TrainResult, fit_network


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


def _run(val_losses: list[float], **options) -> TrainResult:
    """Train a one-weight network whose validation losses are ``val_losses``, in order."""
    network = nn.Linear(1, 1)
    losses = iter(val_losses)

    def train_loss(batch):
        total = network.weight.square().sum()
        return LossTerms(total=total, autofocus=total, direction=total * 0)

    return fit_network(
        network,
        n_train=4,
        train_loss=train_loss,
        val_loss=lambda: next(losses),
        config=TrainConfig(max_epochs=len(val_losses), batch_size=4, **options),
        generator=torch.Generator().manual_seed(0),
    )


def test_a_gain_below_min_improvement_is_a_stall_but_still_the_best_epoch():
    creeping = [1.0 - 1e-5 * i for i in range(20)]  # better each epoch by 1e-5 < 1e-3 of 1
    result = _run(creeping, patience=5)
    assert len(result.history) == 6 and result.best_epoch == 6
    assert result.best_loss == creeping[5]


def test_a_tie_keeps_the_earlier_epoch():
    result = _run([1.0, 0.5, 0.5, 0.5], patience=10)
    assert result.best_epoch == 2 and result.best_loss == 0.5


def test_the_learning_rate_decays_after_lr_patience_epochs_without_gain():
    result = _run([1.0] * 10, lr=1e-3, lr_decay=0.5, lr_patience=3, patience=100)
    lrs = [entry["lr"] for entry in result.history]
    assert lrs == pytest.approx([1e-3] * 4 + [5e-4] * 3 + [2.5e-4] * 3)


def test_a_gain_restarts_the_count_to_the_next_decay():
    # two stalls, a gain, two stalls: never lr_patience=3 stalls in a row
    result = _run([1.0, 1.0, 1.0, 0.5, 0.5, 0.5], lr=1e-3, lr_patience=3, patience=100)
    assert [entry["lr"] for entry in result.history] == pytest.approx([1e-3] * 6)


def test_training_stops_once_the_learning_rate_falls_below_min_lr():
    # halved after each stalled epoch: 1e-3 -> 5e-4 -> 2.5e-4 < min_lr after the third
    options = {"lr": 1e-3, "min_lr": 3e-4, "lr_decay": 0.5, "lr_patience": 1, "patience": 100}
    result = _run([1.0] * 10, **options)
    assert len(result.history) == 3


def test_config_bounds_are_open_or_closed_as_written():
    TrainConfig(weight_decay=0.0, min_lr=0.0, min_improvement=0.0, lr_decay=1.0)  # all allowed
    for options, message in (
        ({"lr": 0.0}, "lr must be a number in (0, inf), got 0.0"),
        ({"lr_decay": 0.0}, "lr_decay must be a number in (0, 1], got 0.0"),
        ({"min_improvement": 1.0}, "min_improvement must be a number in [0, 1), got 1.0"),
        ({"weight_decay": -1e-9}, "weight_decay must be a number in [0, inf), got -1e-09"),
        ({"lr": 1e-5, "min_lr": 1e-5}, "lr must be above 1e-05, the rate below which training"),
    ):
        with pytest.raises(PerturbsimError, match=f"^{re.escape(message)}"):
            TrainConfig(**options)
