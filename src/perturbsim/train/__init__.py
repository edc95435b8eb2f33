"""Training: the GEARS training plan and the loop shared by the neural models."""

from ._plan import LossInputs, TrainingPlan, Validation
from ._trainer import TrainConfig, TrainResult, fit_network

__all__ = ["LossInputs", "TrainConfig", "TrainResult", "TrainingPlan", "Validation", "fit_network"]
