"""Plots: evaluations, predictions, training, interactions, uncertainty, fitness, design."""

from ._design import design_curves
from ._fitness import fitness_scatter
from ._gi import gi_map, pair_prediction, phenotype_landscape
from ._plots import metric_bars, predicted_vs_true, training_history
from ._uncertainty import calibration_curve, uncertainty_vs_error

__all__ = [
    "calibration_curve",
    "design_curves",
    "fitness_scatter",
    "gi_map",
    "metric_bars",
    "pair_prediction",
    "phenotype_landscape",
    "predicted_vs_true",
    "training_history",
    "uncertainty_vs_error",
]
