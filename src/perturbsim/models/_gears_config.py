"""The options of a GEARS model, typed, validated and saved as they are."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from .._errors import PerturbsimError

NETWORK_FIELDS = ("hidden", "n_gene_layers", "n_pert_layers", "uncertainty")
"""The options that shape :class:`~perturbsim.module.GEARSNetwork`."""


@dataclass(frozen=True)
class GEARSConfig:
    """Everything that defines a GEARS model besides its data and seed.

    The attributes are the keyword arguments of :class:`~perturbsim.models.GEARS`, documented
    there; a saved model's ``config.json`` holds them under ``options.config``.
    """

    hidden: int = 64
    n_gene_layers: int = 1
    n_pert_layers: int = 1
    uncertainty: bool = False
    gamma: float = 2.0
    direction_weight: float = 0.01
    go_top_k: int = 20
    go_threshold: float = 0.1
    coexpr_top_k: int = 20
    coexpr_threshold: float = 0.4
    additive_residual: bool = False
    prior: Literal["mean", "none"] = "mean"
    target_prior: bool = True
    cold_start: float = 0.0
    n_models: int = 1
    max_cells_per_condition: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            kind = {"int": int, "float": float, "bool": bool}.get(str(f.type))
            if kind is not None:
                object.__setattr__(self, f.name, kind(getattr(self, f.name)))
        if self.prior not in ("mean", "none"):
            raise PerturbsimError(f"prior must be 'mean' or 'none', got {self.prior!r}")
        if self.n_models < 1:
            raise PerturbsimError(f"n_models must be >= 1, got {self.n_models}")
        if not 0.0 <= self.cold_start < 1.0:
            raise PerturbsimError(f"cold_start must be in [0, 1), got {self.cold_start}")
        if self.hidden < 1:
            raise PerturbsimError(f"hidden must be >= 1, got {self.hidden}")

    def network_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~perturbsim.module.GEARSNetwork` from this config."""
        return {name: getattr(self, name) for name in NETWORK_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GEARSConfig:
        """Rebuild from :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PerturbsimError(f"unknown GEARS options in the saved config: {unknown}")
        return cls(**data)
