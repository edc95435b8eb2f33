"""The GEARS network and its losses as plain torch (no AnnData)."""

from ._layers import MLP, GeneNorm, SimpleGraphConv, normalized_adjacency, seeded_initialisation
from ._loss import (
    GEARSLoss,
    LossTerms,
    cell_error,
    difference_moments,
    direction_loss,
    masked_mean,
    moment_error,
    variance_from_log_moment,
)
from ._network import GEARSNetwork, NetworkOutput, pad_sets

__all__ = [
    "MLP",
    "GEARSLoss",
    "GEARSNetwork",
    "GeneNorm",
    "LossTerms",
    "NetworkOutput",
    "SimpleGraphConv",
    "cell_error",
    "difference_moments",
    "direction_loss",
    "masked_mean",
    "moment_error",
    "normalized_adjacency",
    "pad_sets",
    "seeded_initialisation",
    "variance_from_log_moment",
]
