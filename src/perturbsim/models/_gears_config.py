"""The options of a GEARS model, typed, validated and saved as they are."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from .._checks import check_count, check_edge_threshold, check_finite, check_flag, check_fraction
from .._errors import PerturbsimError

NETWORK_FIELDS = ("hidden", "n_gene_layers", "n_pert_layers", "uncertainty")
"""The options that shape :class:`~perturbsim.module.GEARSNetwork`."""
FEWEST = {"n_gene_layers": 0, "n_pert_layers": 0}
"""The smallest value of a whole-number option other than 1 (no GNN layer at all)."""
LOWEST = {"gamma": -1.0, "coexpr_threshold": -math.inf}
"""The smallest value of a number option other than 0: the autofocus exponent ``2 + gamma``
is at least 1; a co-expression threshold on ``|r|`` may be negative (every pair an edge)."""
THRESHOLDS = ("go_threshold", "coexpr_threshold")
"""The graphs' edge thresholds: below 1 for a new model (:meth:`GEARSConfig.check_thresholds`)."""


@dataclass(frozen=True)
class GEARSConfig:
    """Everything that defines a GEARS model besides its data and seed.

    The attributes are the keyword arguments of :class:`~perturbsim.models.GEARS`, documented
    there; a saved model's ``config.json`` holds them under ``options.config``. Each is
    checked, never coerced: whole numbers >= 1 (the layer counts >= 0), finite numbers >= 0
    (``gamma`` >= -1, ``coexpr_threshold`` any: :meth:`check_thresholds` bounds both
    thresholds below 1 for a new model), ``cold_start`` in [0, 1), true/false
    flags; else a one-line error naming it.
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
            value = getattr(self, f.name)
            if f.name == "cold_start":
                value = check_fraction(f.name, value, allow_zero=True)
            elif str(f.type) == "int":
                value = check_count(f.name, value, minimum=FEWEST.get(f.name, 1))
            elif str(f.type) == "float":
                value = check_finite(f.name, value, minimum=LOWEST.get(f.name, 0.0))
            elif str(f.type) == "bool":
                value = check_flag(f.name, value)
            object.__setattr__(self, f.name, value)
        if self.prior not in ("mean", "none"):
            raise PerturbsimError(f"prior must be 'mean' or 'none', got {self.prior!r}")

    def check_thresholds(self) -> None:
        """Refuse a graph threshold of 1 or more, above which no similarity lies.

        Checked for a new model, not for one saved before the check, which loads as saved.
        """
        for name in THRESHOLDS:
            check_edge_threshold(name, getattr(self, name), minimum=LOWEST.get(name, 0.0))

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
