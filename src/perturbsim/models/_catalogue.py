"""The model catalogue: every model class, its named variants and the default model lists.

The CLI, :func:`perturbsim.tl.evaluate` and the demo read model names from here and build
models with :func:`build_model`; nothing else tests names.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._checks import shown
from .._errors import PerturbsimError, shown_list

if TYPE_CHECKING:
    from anndata import AnnData

    from ._base import PerturbationModel

MODEL_REGISTRY: dict[str, type[PerturbationModel]] = {}
"""Model name -> class; every subclass of :class:`~perturbsim.models.PerturbationModel`
registers itself under its ``name``."""


RETIRED: dict[str, str] = {
    "stacked_shared": "its shared-change fit is part of the default, 'stacked', since "
    "2026-12-04 (the default without it: 'stacked_no_shared')",
}
"""Names that were models once -> what to use now; naming one is an error that says so."""


@dataclass(frozen=True)
class Variant:
    """A named set of options of a registered model.

    Attributes
    ----------
    base
        Registry name of the model class.
    options
        Constructor arguments that define the variant.
    description
        One line shown by :func:`list_models`.
    """

    base: str
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


VARIANTS: dict[str, Variant] = {
    "gears_reference": Variant(
        "gears",
        {"prior": "none", "target_prior": False},
        "GEARS as the reference parametrises it: no mean or target prior",
    ),
    "gears_cold_start": Variant(
        "gears",
        {"cold_start": 0.5},
        "GEARS hiding half of the GO nodes at each step (learns to predict unseen genes)",
    ),
    "gears_residual": Variant(
        "gears",
        {"additive_residual": True},
        "GEARS learning only the interaction on top of measured singles",
    ),
    "gears_uncertainty": Variant(
        "gears",
        {"uncertainty": True},
        "GEARS with its uncertainty head (a cell's spread around the prediction, per gene)",
    ),
    "gears_ensemble": Variant(
        "gears", {"n_models": 5}, "five GEARS networks from consecutive seeds, averaged"
    ),
    "gears_residual_ensemble": Variant(
        "gears",
        {"additive_residual": True, "n_models": 5},
        "gears_residual with five networks",
    ),
    "interaction_shared": Variant(
        "interaction",
        {"shared_change": True},
        "interaction also fitting pairs as their sum less a share of their singles' shared change",
    ),
    "stacked_no_shared": Variant(
        "stacked",
        {"shared_change": False},
        "stacked with pairs of measured singles combined by the role fits alone (ablation)",
    ),
    "stacked_denoised": Variant(
        "stacked",
        {"denoise": True},
        "stacked on measured changes shrunk by their noise (empirical Bayes; ablation)",
    ),
    "stacked_no_interaction": Variant(
        "stacked",
        {"interaction": False},
        "stacked with pairs of measured singles as their sum (ablation)",
    ),
    "stacked_no_coexpression": Variant(
        "stacked",
        {"linear_embedding": "training"},
        "stacked with the paper's linear embedding, never the co-expression one (ablation)",
    ),
    "stacked_no_gears": Variant(
        "stacked",
        {"corrections": ("linear", "linear_go")},
        "stacked without GEARS: no network, most of the training time saved (ablation)",
    ),
    "stacked_gears_only": Variant(
        "stacked", {"corrections": ("gears",)}, "stacked corrected by GEARS alone (ablation)"
    ),
    "stacked_no_neighbours": Variant(
        "stacked",
        {"neighbours": False},
        "stacked without the residuals of training pairs alike (ablation)",
    ),
    "stacked_dense_neighbours": Variant(
        "stacked",
        {"sparse_neighbours": False},
        "stacked lending the pair neighbours' residual whole, not only its largest entries "
        "(ablation)",
    ),
    "stacked_no_inferred": Variant(
        "stacked",
        {"infer_singles": False},
        "stacked without singles inferred from pairs for genes measured only in pairs (ablation)",
    ),
    "stacked_no_partial_sum": Variant(
        "stacked",
        {"partial_sum": False},
        "stacked weighting a pair with one measured single by its kind's own scales and "
        "corrections, not as that single plus its other gene's own prediction (ablation)",
    ),
    "stacked_no_partial_linear": Variant(
        "stacked",
        {"partial_sum": False, "partial_linear": False},
        "stacked_no_partial_sum giving a pair with one measured single the mean alone for "
        "its other gene, not linear's prediction of it (ablation)",
    ),
    "stacked_go_neighbours": Variant(
        "stacked",
        {"corrections": ("gears", "linear", "linear_go", "go_neighbours")},
        "stacked also corrected by each gene's GO neighbours measured alone (candidate, "
        "not adopted)",
    ),
    "stacked_baseline": Variant(
        "stacked",
        {"corrections": (), "neighbours": False},
        "stacked without corrections: the calibrated baseline",
    ),
}
"""Named options of registered models, for ablations: name -> :class:`Variant`."""

BASELINES: tuple[str, ...] = ("additive", "linear", "linear_go", "mean", "grn", "no_perturb")
"""The simple baselines every result is compared with."""

DEFAULT_MODELS: tuple[str, ...] = ("stacked", "gears", *BASELINES)
"""What :func:`perturbsim.tl.evaluate` and ``perturbsim evaluate`` run unless told otherwise:
the default model (``stacked``), GEARS alone and the baselines; one network each, so that
large screens stay in minutes."""

DEMO_MODELS: tuple[str, ...] = ("stacked", *BASELINES)
"""What ``perturbsim demo`` runs on the bundled screen: the default and the baselines."""


def model_names() -> list[str]:
    """Every name :func:`build_model` accepts: registered models, then variants."""
    return [*MODEL_REGISTRY, *VARIANTS]


def resolve_model(name: str) -> tuple[type[PerturbationModel], dict[str, Any]]:
    """The class and preset options of a catalogue name.

    Parameters
    ----------
    name
        A registered model (``"gears"``, ``"mean"``, ...) or a variant
        (``"gears_residual"``, ...).

    Returns
    -------
    The model class and the variant's options (empty for a registered model).

    Raises
    ------
    PerturbsimError
        If ``name`` is neither (a retired name: with what replaced it, :data:`RETIRED`).
    """
    if not isinstance(name, str):
        raise PerturbsimError(
            f"a model name is text (e.g. 'stacked'; perturbsim models lists them), got {name!r}"
        )
    if name in RETIRED:
        raise PerturbsimError(f"model {name!r} is no longer a name: {RETIRED[name]}")
    variant = VARIANTS.get(name, Variant(name))
    cls = MODEL_REGISTRY.get(variant.base)
    if cls is None:
        names = {known.lower(): known for known in model_names()}
        close = difflib.get_close_matches(str(name).lower(), list(names), n=1)
        hint = f" (did you mean {names[close[0]]!r}?)" if close else ""
        raise PerturbsimError(
            f"unknown model {name!r}{hint}; available: {', '.join(model_names())}"
        )
    return cls, dict(variant.options)


def takes_option(name: str, option: str, *, fit: bool = False) -> bool:
    """Whether the model behind ``name``, with its preset options, takes ``option``.

    Parameters
    ----------
    name
        A registered model or a variant (see :func:`list_models`).
    option
        The option's name.
    fit
        Ask about the options of ``fit`` instead of the constructor's.

    Returns
    -------
    True if ``option`` is among the constructor's options that apply with the preset ones
    (with ``fit``: among the fit options that apply), else False.

    Examples
    --------
    >>> from perturbsim.models import takes_option
    >>> [takes_option(name, "device") for name in ("stacked", "stacked_no_gears")]
    [True, False]
    >>> [takes_option(name, "max_epochs", fit=True) for name in ("stacked", "stacked_no_gears")]
    [True, False]
    """
    cls, preset = resolve_model(name)
    return option in (cls.fit_options_of(preset) if fit else cls.option_names_of(preset))


def build_model(
    name: str, adata: AnnData, *, seed: int | None = None, **options: Any
) -> PerturbationModel:
    """Build the (unfitted) model a catalogue name stands for.

    Parameters
    ----------
    name
        A registered model or a variant (see :func:`list_models`).
    adata
        A set-up screen (:func:`perturbsim.pp.setup`).
    seed
        Seed of the model (default: ``perturbsim.settings.seed``).
    **options
        Constructor arguments, besides the variant's; a number of the variant's may be
        given another value (``gears_ensemble`` of 2 networks), but a switch, a name or a
        list that makes it what it is may not (``gears_residual`` with
        ``additive_residual=False``: another model, built by its base name).

    Returns
    -------
    The model; call ``fit()`` on it.

    Raises
    ------
    PerturbsimError
        An unknown ``name``, or an option the model does not take (named with those it
        takes).

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.models.build_model("gears_residual", adata).config.additive_residual
    True
    """
    cls, preset = resolve_model(name)
    accepted = cls.option_names()  # what applies with the others, the model checks itself
    unknown = [option for option in options if option not in accepted]
    if unknown:
        raise PerturbsimError(
            f"model {name!r} has no option {unknown[0]!r} (its options: {shown_list(accepted, 12)})"
        )
    redefined = [key for key in options if key in preset and _redefines(preset[key], options[key])]
    if redefined:
        key = redefined[0]
        raise PerturbsimError(
            f"model {name!r} is {cls.name!r} with {key}={preset[key]!r}; "
            f"{key}={_listed(options[key]) or shown(options[key])} "
            f"would make it another model under its name: build {cls.name!r} with it instead"
        )
    model = cls(adata, seed=seed, **{**preset, **options})
    if name != cls.name:
        model.variant = name
    return model


def _listed(value: Any) -> tuple[str, ...] | None:
    """``value`` as a tuple of names when it is a list of them, else None.

    A list, tuple, array, pandas Series or Index is; one string is not.
    """
    if isinstance(value, str) or not isinstance(
        value, Sequence | np.ndarray | pd.Series | pd.Index
    ):
        return None
    return tuple(map(str, value))


def _redefines(preset: Any, given: Any) -> bool:
    """Whether ``given`` makes a variant's ``preset`` option another model.

    A switch, a name or a list differs in what it holds (a list and a tuple of the same
    names are one); a number (how many networks, what share) only tunes the variant.
    """
    if isinstance(preset, tuple | list):
        listed = _listed(given)
        return listed is None or listed != tuple(preset)
    if isinstance(preset, bool):
        return not (isinstance(given, bool | np.bool_) and bool(given) == preset)
    if not isinstance(preset, numbers.Number):
        return not (isinstance(given, type(preset)) and given == preset)
    return False


def list_models() -> pd.DataFrame:
    """The catalogue as a table.

    Returns
    -------
    DataFrame indexed by ``name`` with ``base`` (registry name), ``options`` (the
    variant's options) and ``description``; ``default`` marks :data:`DEFAULT_MODELS`.

    Examples
    --------
    >>> import perturbsim as ps
    >>> "gears_residual" in ps.models.list_models().index
    True
    """
    rows = [
        {
            "name": name,
            "base": name,
            "options": {},
            "description": (inspect.getdoc(cls) or "").splitlines()[0],
        }
        for name, cls in MODEL_REGISTRY.items()
    ]
    rows += [
        {"name": name, "base": v.base, "options": dict(v.options), "description": v.description}
        for name, v in VARIANTS.items()
    ]
    table = pd.DataFrame(rows).set_index("name")
    table["default"] = table.index.isin(DEFAULT_MODELS)
    return table
