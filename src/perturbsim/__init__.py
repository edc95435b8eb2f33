"""perturbsim: predict transcriptional outcomes of genetic perturbations."""

from . import ds, pp
from ._errors import PerturbsimError
from ._settings import settings

__all__ = ["PerturbsimError", "ds", "pp", "settings"]
__version__ = "0.1.0"
