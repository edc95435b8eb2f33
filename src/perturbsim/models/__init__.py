"""Models behind one interface: GEARS and the baselines."""

from ._base import MODEL_REGISTRY, PerturbationModel

__all__ = ["MODEL_REGISTRY", "PerturbationModel"]
