"""perturbsim: predict transcriptional outcomes of genetic perturbations."""

from . import ds, io, models, pl, pp, tl
from ._errors import PerturbsimError
from ._settings import settings
from .models import GEARS, GRN, Additive, Linear, NoPerturbation, PerturbationModel, TrainMean

__all__ = [
    "GEARS",
    "GRN",
    "Additive",
    "Linear",
    "NoPerturbation",
    "PerturbationModel",
    "PerturbsimError",
    "TrainMean",
    "ds",
    "io",
    "models",
    "pl",
    "pp",
    "settings",
    "tl",
]
__version__ = "0.1.0"
