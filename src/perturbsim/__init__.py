"""perturbsim: predict transcriptional outcomes of genetic perturbations."""

from . import ds, graphs, io, models, pl, pp, tl
from ._errors import PerturbsimError
from ._settings import settings
from .models import (
    GEARS,
    GRN,
    Additive,
    Linear,
    LinearGO,
    NoPerturbation,
    PerturbationModel,
    Stacked,
    TrainMean,
)

__all__ = [
    "GEARS",
    "GRN",
    "Additive",
    "Linear",
    "LinearGO",
    "NoPerturbation",
    "PerturbationModel",
    "PerturbsimError",
    "Stacked",
    "TrainMean",
    "ds",
    "graphs",
    "io",
    "models",
    "pl",
    "pp",
    "settings",
    "tl",
]
__version__ = "0.1.0"
