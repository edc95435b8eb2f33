"""Training loop shared by the neural models."""

from ._trainer import TrainConfig, TrainResult, fit_network

__all__ = ["TrainConfig", "TrainResult", "fit_network"]
