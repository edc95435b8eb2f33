"""Plots: metric bars of an evaluation, predicted vs measured change, training history."""

from ._plots import metric_bars, predicted_vs_true, training_history

__all__ = ["metric_bars", "predicted_vs_true", "training_history"]
