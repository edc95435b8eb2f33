"""Models behind one interface (GEARS and the baselines) and the catalogue that names them."""

from ._base import PerturbationModel
from ._catalogue import (
    DEFAULT_MODELS,
    DEMO_MODELS,
    MODEL_REGISTRY,
    VARIANTS,
    Variant,
    build_model,
    list_models,
    model_names,
    resolve_model,
    takes_option,
)
from ._fitness import FitnessModel
from ._fitness_expression import ExpressionFitness
from ._gears import GEARS
from ._gears_config import GEARSConfig
from ._go_neighbours import GONeighbours
from ._grn import GRN
from ._linear import Linear
from ._linear_go import LinearGO
from ._pair_roles import PairInteraction, PairRoles
from ._simple import Additive, NoPerturbation, TrainMean
from ._stacked import Stacked
from ._target_effect import fit_target_effect

__all__ = [
    "DEFAULT_MODELS",
    "DEMO_MODELS",
    "GEARS",
    "GRN",
    "MODEL_REGISTRY",
    "VARIANTS",
    "Additive",
    "ExpressionFitness",
    "FitnessModel",
    "GEARSConfig",
    "GONeighbours",
    "Linear",
    "LinearGO",
    "NoPerturbation",
    "PairInteraction",
    "PairRoles",
    "PerturbationModel",
    "Stacked",
    "TrainMean",
    "Variant",
    "build_model",
    "fit_target_effect",
    "list_models",
    "model_names",
    "resolve_model",
    "takes_option",
]
