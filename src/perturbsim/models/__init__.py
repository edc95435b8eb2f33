"""Models behind one interface: GEARS and the baselines."""

from ._base import MODEL_REGISTRY, PerturbationModel
from ._gears import GEARS
from ._grn import GRN
from ._linear import Linear
from ._simple import Additive, NoPerturbation, TrainMean
from ._target_effect import fit_target_effect

__all__ = [
    "GEARS",
    "GRN",
    "MODEL_REGISTRY",
    "Additive",
    "Linear",
    "NoPerturbation",
    "PerturbationModel",
    "TrainMean",
    "fit_target_effect",
]
