"""Training loop: batches of perturbations, validation, best epoch, early stopping."""

from __future__ import annotations

import copy
import logging
import math
import numbers
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_count
from .._errors import PerturbsimError
from .._memory import reuse_freed_memory
from .._settings import progress_disabled
from ..module import LossTerms
from ._adamw import AdamW

logger = logging.getLogger(__name__)

BatchLoss = Callable[[np.ndarray], LossTerms]
"""Maps an array of training-condition indices to the loss terms of that batch."""


_RANGES = {
    "lr": ("(0", "inf)"),
    "weight_decay": ("[0", "inf)"),
    "lr_decay": ("(0", "1]"),
    "min_lr": ("[0", "inf)"),
    "min_improvement": ("[0", "1)"),
}
"""The interval each number of :class:`TrainConfig` must lie in, as written in errors."""


def _inside(value: float, low: str, high: str) -> bool:
    """Whether ``value`` lies in the interval from bounds written as ``"(0"``, ``"1]"``."""
    lowest, highest = float(low[1:]), float(high[:-1])
    above = value >= lowest if low[0] == "[" else value > lowest
    below = value <= highest if high[-1] == "]" else value < highest
    return above and below


@dataclass
class TrainConfig:
    """Schedule and optimiser settings.

    Attributes
    ----------
    max_epochs
        Upper bound on epochs (one epoch = one pass over the training perturbations).
    batch_size
        Perturbations per optimiser step.
    lr, weight_decay
        AdamW learning rate and (decoupled) weight decay. The reference's weight decay; the
        learning rate is 3x the reference's because an epoch here is a few steps, not
        hundreds (chosen on the validation loss of simulated and real screens, see
        ``docs/method.md``).
    lr_decay
        Multiplicative learning-rate decay applied each time validation stalls for
        ``lr_patience`` epochs (with no validation set the training loss stands in for it).
    lr_patience
        Epochs without validation improvement before the learning rate decays.
    patience
        Epochs without validation improvement before training stops.
    min_lr
        Training stops once the learning rate falls below this.
    min_improvement
        Relative decrease of the validation loss that counts as an improvement.
    """

    max_epochs: int = 200
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 5e-4
    lr_decay: float = 0.5
    lr_patience: int = 10
    patience: int = 20
    min_lr: float = 1e-5
    min_improvement: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "lr_patience", "patience"):
            setattr(self, name, check_count(name, getattr(self, name)))
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            number = not isinstance(value, bool) and isinstance(value, numbers.Real)
            if not (number and _inside(float(value), low, high)):
                raise PerturbsimError(f"{name} must be a number in {low}, {high}, got {value!r}")
        if self.min_lr >= self.lr:
            raise PerturbsimError(
                f"lr must be above {self.min_lr:g}, the rate below which training stops "
                f"(min_lr), got {self.lr:g}: training would stop at once"
            )


@dataclass
class TrainResult:
    """What training returns: the per-epoch history and the chosen epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = math.inf
    """The loss that chose the best epoch there: validation, or training without it."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields: a missing validation loss (NaN) is written as ``None``.

        Examples
        --------
        >>> import math
        >>> result = TrainResult([{"epoch": 1, "train_loss": 0.5, "val_loss": math.nan}], 1, 0.5)
        >>> result.to_dict()["history"]
        [{'epoch': 1, 'train_loss': 0.5, 'val_loss': None}]
        >>> math.isnan(TrainResult.from_dict(result.to_dict()).history[0]["val_loss"])
        True
        """
        history = [
            {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in entry.items()}
            for entry in self.history
        ]
        best = None if math.isnan(self.best_loss) else self.best_loss
        # under the key earlier versions read, whose meaning it keeps
        return {"history": history, "best_epoch": self.best_epoch, "best_val_loss": best}

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> TrainResult:
        """Inverse of :meth:`to_dict`."""
        history = [
            {k: math.nan if v is None else v for k, v in entry.items()}
            for entry in fields["history"]
        ]
        best = fields["best_val_loss"]
        return cls(history, int(fields["best_epoch"]), math.nan if best is None else float(best))


def fit_network(
    network: nn.Module,
    *,
    n_train: int,
    train_loss: BatchLoss,
    val_loss: Callable[[], float] | None,
    config: TrainConfig,
    generator: torch.Generator,
    desc: str = "training",
) -> TrainResult:
    """Train ``network`` in place with AdamW and leave it at its best epoch.

    The best epoch, early stopping and the learning-rate decay follow the validation loss,
    or the training loss where there is no validation.

    Parameters
    ----------
    network
        The module to train.
    n_train
        Number of training conditions; batches are drawn as index arrays into them.
    train_loss
        Loss terms of a batch of training condition indices; ``total`` is minimised.
    val_loss
        Validation loss of the current network (``None``: train loss decides).
    config
        Schedule.
    generator
        Source of the batch shuffling.
    desc
        Progress-bar label.

    Returns
    -------
    History (``epoch``, ``train_loss``, the mean of each loss term over the epoch's
    conditions, ``val_loss``, NaN without validation, ``lr``) and the best epoch.
    """
    parameters = list(network.parameters())
    # torch's fused kernel without torch.optim, whose first use costs 1.5 s of imports
    optimiser = AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    result = TrainResult()
    best_state = copy.deepcopy(network.state_dict())
    stall = 0
    since_decay = 0
    bar = tqdm(
        range(1, config.max_epochs + 1),
        desc=desc,
        unit="epoch",
        leave=False,
        disable=progress_disabled(),
    )
    with reuse_freed_memory():
        for epoch in bar:
            network.train()
            order = torch.randperm(n_train, generator=generator).numpy()
            total = 0.0
            term_sums: dict[str, float] = defaultdict(float)
            for start in range(0, n_train, config.batch_size):
                batch = order[start : start + config.batch_size]
                optimiser.zero_grad()
                terms = train_loss(batch)
                terms.total.backward()
                optimiser.step()
                total += float(terms.total.detach()) * len(batch)
                for name, value in terms.components().items():
                    term_sums[name] += float(value.detach()) * len(batch)
            epoch_train = total / n_train
            network.eval()
            with torch.no_grad():
                epoch_val = val_loss() if val_loss is not None else math.nan
            epoch_loss = epoch_val if val_loss is not None else epoch_train
            lr = optimiser.lr
            result.history.append(
                {
                    "epoch": epoch,
                    "train_loss": epoch_train,
                    **{name: value / n_train for name, value in term_sums.items()},
                    "val_loss": epoch_val,
                    "lr": lr,
                }
            )
            shown = {"val": f"{epoch_val:.4g}"} if val_loss is not None else {}
            bar.set_postfix(train=f"{epoch_train:.4g}", **shown)
            first = not math.isfinite(result.best_loss)
            # a gain of min_improvement of the best's size, whatever its sign (a loss with
            # the uncertainty head's log-variance term goes below 0)
            margin = config.min_improvement * abs(result.best_loss)
            significant = first or epoch_loss < result.best_loss - margin
            if first or epoch_loss < result.best_loss:
                result.best_loss, result.best_epoch = epoch_loss, epoch
                best_state = copy.deepcopy(network.state_dict())
            if significant:
                stall = since_decay = 0
            else:
                stall += 1
                since_decay += 1
            if since_decay >= config.lr_patience:
                optimiser.lr *= config.lr_decay
                since_decay = 0
            if stall >= config.patience or optimiser.lr < config.min_lr:
                break
    network.load_state_dict(best_state)
    network.eval()
    logger.info(
        "%s: %d epochs, best epoch %d (%s loss %.4g)",
        desc,
        len(result.history),
        result.best_epoch,
        "validation" if val_loss is not None else "training",
        result.best_loss,
    )
    return result
