"""Training: the GEARS training plan and the loop shared by the neural models."""

from ._adamw import AdamW
from ._plan import LossInputs, TrainingPlan, Validation
from ._trainer import TrainConfig, TrainResult, fit_network

__all__ = [
    "AdamW",
    "LossInputs",
    "TrainConfig",
    "TrainResult",
    "TrainingPlan",
    "Validation",
    "fit_network",
]
