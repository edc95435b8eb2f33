"""Plots: evaluations, predicted vs measured change, training history, genetic interactions."""

from ._gi import gi_map, pair_prediction, phenotype_landscape
from ._plots import metric_bars, predicted_vs_true, training_history

__all__ = [
    "gi_map",
    "metric_bars",
    "pair_prediction",
    "phenotype_landscape",
    "predicted_vs_true",
    "training_history",
]
