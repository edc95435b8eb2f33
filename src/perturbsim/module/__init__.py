"""The GEARS network and its losses as plain torch (no AnnData)."""

from ._layers import MLP, GeneNorm, SimpleGraphConv, normalized_adjacency
from ._loss import (
    GEARSLoss,
    LossTerms,
    autofocus_all_pairs,
    autofocus_cell_loss,
    autofocus_moment_loss,
    cell_error,
    difference_moments,
    direction_loss,
    masked_mean,
    moment_error,
    uncertainty_moment_loss,
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
    "autofocus_all_pairs",
    "autofocus_cell_loss",
    "autofocus_moment_loss",
    "cell_error",
    "difference_moments",
    "direction_loss",
    "masked_mean",
    "moment_error",
    "normalized_adjacency",
    "pad_sets",
    "uncertainty_moment_loss",
]
