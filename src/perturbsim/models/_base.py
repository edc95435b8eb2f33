"""The interface shared by GEARS and the baselines: fit, predict, save, load."""

from __future__ import annotations

import inspect
import logging
import weakref
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import special
from tqdm.auto import tqdm

from .._checks import check_count, check_flag, check_label_part, check_list, check_nonnegative
from .._errors import (
    PerturbsimError,
    case_hint,
    close_spellings,
    counted,
    error_reason,
    shown_list,
)
from .._keys import (
    CONDITION,
    CONTROL,
    DELTA_LAYER,
    PRED_GENERIC,
    PRED_MODEL,
    PRED_N_TARGETS,
    PRED_SUPPORT,
    PRED_UNCERTAINTY,
    PRED_UNSUPPORTED,
    SAMPLE_PERTURBATION,
    SEP,
    UNS,
    VARIANCE_LAYER,
)
from .._settings import progress_disabled, resolve_seed, switched_off
from ..ds import human_gene_alias, human_go
from ..graphs import GeneGraph
from ..pp import canonical_label, genes_of, parse_perturbations
from ..pp._cells import dense_rows
from ..pp._gi import (
    SUM_OF_SINGLES,
    check_abundance_reached,
    check_rules,
    checked_control_mean,
    gi_scores,
    resolve_abundance,
    summed_pairs,
)
from ..pp._label_hint import ENSEMBL_ID
from ..pp._labels import (
    CONTROL_LOOKALIKE_GENES,
    is_control_word,
    joined_genes_hint,
    looks_like_control,
    singles_of,
    split_at_separators,
)
from ..pp._pseudobulk import cell_matrix
from ..pp._setup import check_anndata, check_setup
from ._catalogue import MODEL_REGISTRY
from ._data import ScreenData, split_record
from ._store import CONFIG_CHECKSUM, check_array_sizes, read_model_dir, write_model_dir

logger = logging.getLogger(__name__)

GeneSet = tuple[str, ...]


_LOG_FOLD_BOUND = 40.0
"""Folds are sought in ``[exp(-40), exp(40)]``, far beyond any change of expression."""
_BISECTION_STEPS = 40
"""Halvings of the log-fold interval, whose width falls from 80 to below 1e-10."""
_ROWS_PER_CHUNK = 2048
"""Control cells read at a time by :func:`_control_summary`."""
SAME_CONTROL_R = 0.9
"""Least correlation of the control cells' mean profiles, given and fitted on, that
:meth:`PerturbationModel.sample` takes without a warning (the Norman subset's split halves:
above 0.99)."""
_MAX_NAMED_GENES = 30
"""Genes named by an error of :meth:`PerturbationModel.predict_pairs` before "and N more"."""

WARN_UNSUPPORTED: ContextVar[bool] = ContextVar("perturbsim_warn_unsupported", default=True)
"""Whether :meth:`PerturbationModel.predict` and :meth:`~PerturbationModel.predict_pairs`
warn of unsupported predictions. Switched off (:func:`perturbsim._settings.switched_off`)
for predictions made on the way to something else: by a model of its parts, while fitting,
batch by batch, in an evaluation or an experiment design."""
WARN_SUMMED: ContextVar[bool] = ContextVar("perturbsim_warn_summed", default=True)
"""Whether :meth:`~PerturbationModel.predict_pairs` warns of pairs predicted as their singles
summed; switched off where the caller says it itself (``perturbsim gi``)."""


def check_fitted_model(value: object) -> None:
    """Raise unless ``value`` is a fitted perturbsim model.

    Raises
    ------
    PerturbsimError
        Naming the type given, or the model that is not fitted.
    """
    if not isinstance(value, PerturbationModel):
        raise PerturbsimError(
            "model must be a fitted perturbsim model (e.g. ps.Stacked(adata).fit()), got "
            f"{type(value).__name__}"
        )
    value.require_fitted()


def _cell_counts(n_cells: int | Sequence[int], n_perturbations: int) -> np.ndarray:
    """Cells to sample per perturbation, from one count or one count per perturbation."""
    counts = np.asarray(n_cells)
    if counts.ndim == 0:
        counts = np.full(n_perturbations, counts)
    if counts.shape != (n_perturbations,):
        raise PerturbsimError(
            f"n_cells gives {counts.size} counts for {n_perturbations} distinct perturbations"
        )
    if not np.issubdtype(counts.dtype, np.integer) or (counts < 1).any():
        raise PerturbsimError(f"n_cells must be whole numbers >= 1, got {n_cells!r}")
    return counts.astype(np.int64)


def distinct_sets(sets: list[GeneSet]) -> list[GeneSet]:
    """``sets`` without repeats (first appearances, in order); a warning names the repeats."""
    counts = Counter(sets)
    distinct = list(counts)
    if len(distinct) < len(sets):
        repeated = [canonical_label(s) for s in distinct if counts[s] > 1]
        logger.warning(
            "%s, each predicted once: %s",
            counted(len(repeated), "repeated perturbation"),
            shown_list(repeated, 10),
        )
    return distinct


def _gene_list(genes: Sequence[str], screen_control: str) -> list[str]:
    """Check a gene list of :meth:`PerturbationModel.predict_pairs`: names, no repeat.

    A control word (:func:`~perturbsim.pp._labels.is_control_word`: ``ctrl``, ``control``,
    ``non-targeting``, ``NT``, ``NTC``, the screen's control label; any case) is no gene:
    refused.
    """
    check_list("genes", genes, "genes")
    genes = list(genes)
    if len(genes) < 2:
        raise PerturbsimError(f"pairs need a list of at least two genes, got {genes}")
    bad = [repr(g) for g in genes if not isinstance(g, str) or not g or SEP in g]
    if bad:
        raise PerturbsimError(f"not single gene names: {shown_list(bad, _MAX_NAMED_GENES)}")
    control = next((g for g in genes if is_control_word(g, screen_control)), None)
    if control is not None:
        raise PerturbsimError(f"{control!r} is a control label, not a gene: leave it out")
    repeated = [g for g, n in Counter(genes).items() if n > 1]
    if repeated:
        raise PerturbsimError(
            f"genes listed more than once: {shown_list(repeated, _MAX_NAMED_GENES)}"
        )
    return genes


def _check_gi_options(options: Mapping[str, Any], control_mean: np.ndarray) -> None:
    """Refuse options :func:`~perturbsim.tl.gi_scores` does not take, or bad ones.

    Bad ``rules`` are not a :class:`~perturbsim.tl.GIRules`; a bad ``abundance`` is
    negative or not a number, or one that no gene's mean control expression
    (``control_mean`` unless the options give one) exceeds when the pairs are to be fitted
    on the abundant genes.
    """
    parameters = inspect.signature(gi_scores).parameters
    known = set(parameters) - {"profiles"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise PerturbsimError(f"unknown GI options {unknown}; gi_scores takes {sorted(known)}")
    check_rules(options.get("rules"))
    abundance = options.get("abundance", parameters["abundance"].default)
    if abundance is not None:
        check_nonnegative("abundance", abundance)
    if isinstance(options.get("genes", parameters["genes"].default), str):
        control = options.get("control_mean", control_mean)
        control = checked_control_mean(control, np.asarray(control_mean).size)
        abundance = resolve_abundance(control, abundance)
        check_abundance_reached(int((control > abundance).sum()), abundance)


def _join_scores(obs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``obs`` with the per-pair ``scores`` joined; rows without a score (singles) filled.

    Floats become NaN, booleans and integers a missing value (pandas' nullable ``boolean``
    and ``Int64``), text the empty string, except ``flag``, which says ``single``.
    """
    joined = scores.reindex(obs.index)
    missing = ~obs.index.isin(scores.index)
    for column, dtype in scores.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            joined[column] = joined[column].astype("boolean")
        elif pd.api.types.is_integer_dtype(dtype):
            joined[column] = joined[column].astype("Int64")
        elif not pd.api.types.is_numeric_dtype(dtype):
            joined.loc[missing, column] = "single" if column == "flag" else ""
    return obs.join(joined)


def _control_summary(matrix: object, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each gene's zero fraction and mean, each cell's one-count value, over ``matrix``'s ``rows``.

    Returns
    -------
    ``p0``, ``(G,)``: the fraction of zeros with half a pseudo-cell, ``(zeros + 1/2) /
    (cells + 1)``, strictly between 0 and 1, so every gene has a positive detection rate
    ``-log(p0)``. ``one_count``, ``(len(rows),)``: each cell's lowest detected value as a
    normalised count (``expm1``), one count in ``normalize_total`` + ``log1p`` data; the
    median of the others for a cell with no detected gene. ``mean``, ``(G,)``: each gene's
    mean over the rows.
    """
    zeros, sums = np.zeros(matrix.shape[1]), np.zeros(matrix.shape[1])
    lowest = np.empty(rows.size)
    for start in range(0, rows.size, _ROWS_PER_CHUNK):
        block = dense_rows(matrix, rows[start : start + _ROWS_PER_CHUNK])
        zeros += (block == 0).sum(axis=0)
        sums += block.sum(axis=0, dtype=np.float64)
        lowest[start : start + len(block)] = np.where(block > 0, block, np.inf).min(axis=1)
    detected = np.isfinite(lowest)
    if not detected.any():
        raise PerturbsimError("the control cells of adata express no gene: nothing to sample")
    lowest[~detected] = np.median(lowest[detected])
    return (zeros + 0.5) / (rows.size + 1), np.expm1(lowest), sums / rows.size


def _warn_other_control(fitted: np.ndarray, given: np.ndarray) -> None:
    """Warn when the control cells given look unlike those a model was fitted on.

    ``fitted`` and ``given``: the two control means over the model's genes; unlike when
    their Pearson correlation is below :data:`SAME_CONTROL_R` (the cells of another cell
    type; a change of scale alone, such as counts for log values, it does not see).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        r = float(np.corrcoef(fitted, given)[0, 1])
    if np.isfinite(r) and r < SAME_CONTROL_R:
        logger.warning(
            "the control cells of adata look unlike those the model was fitted on (Pearson r "
            "%.2f of the two mean profiles over its %d genes): the sampled cells take their "
            "means from the model and their shape from these cells; pass the screen the "
            "model was fitted on, or control cells of the same kind",
            r,
            fitted.size,
        )


@dataclass(frozen=True)
class _GeneFold:
    """Drawn cells, each gene ready to take a fold change of its expression.

    The model is the one :meth:`PerturbationModel.sample` describes. Arrays are ``(n, G)``
    over ``n`` cells and ``G`` genes, or ``(G,)`` per gene.
    """

    counts: np.ndarray
    """Normalised counts ``expm1(x)``."""
    one_count: np.ndarray
    """Each cell's one-count value, ``(n, 1)``."""
    rank: np.ndarray
    """Rank of a zero among the gene's zeros (random order), of a detected value among the
    gene's detected values (lowest first, ties in random order)."""
    n_zero: np.ndarray
    """Zeros of each gene."""
    p0: np.ndarray
    """Each gene's zero fraction in control cells, strictly between 0 and 1."""

    @classmethod
    def of(
        cls, cells: np.ndarray, one_count: np.ndarray, p0: np.ndarray, rng: np.random.Generator
    ) -> _GeneFold:
        """Rank the values of ``cells`` (log-normalised, ``(n, G)``) gene by gene."""
        counts = np.expm1(cells)
        order = np.lexsort((rng.random(counts.shape), counts), axis=0)
        position = np.empty_like(order)
        rows = np.broadcast_to(np.arange(len(counts))[:, None], order.shape)
        np.put_along_axis(position, order, rows, axis=0)
        n_zero = (counts == 0).sum(axis=0)
        rank = position - np.where(counts > 0, n_zero, 0)
        return cls(counts, one_count[:, None], rank, n_zero, p0)

    def values(self, log_fold: np.ndarray) -> np.ndarray:
        """Log-normalised values of the cells after each gene's fold ``exp(log_fold)``."""
        fold = np.exp(log_fold)
        rises = log_fold > 0
        rate = np.where(rises, np.expm1(log_fold), 0.0) * -np.log(self.p0)
        n_on = self.n_zero * -np.expm1(-rate)
        n_detected = len(self.counts) - self.n_zero
        n_off = np.where(rises, 0.0, n_detected * (self.p0**fold - self.p0) / (1 - self.p0))
        kept = np.log1p(np.maximum(fold * self.counts, self.one_count))
        gained = np.log1p(self.one_count / special.exprel(-rate))
        return np.where(
            self.counts > 0,
            kept * (1 - np.clip(n_off - self.rank, 0, 1)),
            gained * np.clip(n_on - self.rank, 0, 1),
        )

    def matching(self, mean: np.ndarray) -> np.ndarray:
        """Values whose mean over cells is ``mean`` (``(G,)``, >= 0), fold solved by bisection.

        A gene of mean 0 is 0 in every cell (the limit ``f -> 0``).
        """
        low = np.full(mean.shape, -_LOG_FOLD_BOUND)
        high = np.full(mean.shape, _LOG_FOLD_BOUND)
        for _ in range(_BISECTION_STEPS):
            middle = (low + high) / 2
            below = self.values(middle).mean(axis=0) < mean
            low = np.where(below, middle, low)
            high = np.where(below, high, middle)
        return np.where(mean > 0, self.values((low + high) / 2), 0.0)


def _control_hint(genes: Sequence[str], *, labels: bool) -> str:
    """The hint for the first of ``genes`` spelt as a control guide (not ``CTRL``, a gene).

    With ``labels`` (the query has a ``control=`` option) it names the option; else it says
    to leave the name out.
    """
    guides = [g for g in genes if looks_like_control(g) and g not in CONTROL_LOOKALIKE_GENES]
    if not guides:
        return ""
    if labels:
        return (
            f" ({guides[0]!r} looks like a control label: pass control={guides[0]!r} if it is "
            "the control's name)"
        )
    return f" ({guides[0]!r} looks like a control label, not a gene: leave it out)"


def _ensembl_hint(genes: Sequence[str], known: Sequence[str]) -> str:
    """The hint for the first of ``genes`` that is an Ensembl ID where ``known`` are names.

    ``known``: the model's genes, the first named in the hint; none where they are mostly
    Ensembl IDs.
    """
    ids = [g for g in genes if ENSEMBL_ID.match(g)]
    named = [g for g in known if not ENSEMBL_ID.match(str(g))]
    if not ids or 2 * len(named) <= len(known):
        return ""
    examples = ", ".join(repr(str(g)) for g in named[:2])
    return (
        f" ({ids[0]!r} looks like an Ensembl gene ID, and the model names its genes by "
        f"symbol, as the screen's var_names: {examples}, ...; query the gene's symbol)"
    )


class PerturbationModel(ABC):
    """A model of the mean expression after perturbing a gene set.

    Subclasses implement :meth:`_fit`, :meth:`_predict_change`, and :meth:`_options`,
    :meth:`_arrays` and :meth:`_restore` for saving, and list the keyword arguments their
    :meth:`fit` accepts in :attr:`fit_options`. Predictions come back as a labelled AnnData,
    one row per queried perturbation. Building or fitting a model never writes into
    ``adata``. A subclass that sets its own :attr:`name` joins the catalogue under it
    (:func:`~perturbsim.models.build_model`, :meth:`load`); one that does not (a user's
    variant of a model) replaces nothing there.

    Parameters
    ----------
    adata
        A set-up screen (:func:`perturbsim.pp.setup`), ideally split (:func:`perturbsim.pp.split`),
        or the :class:`ScreenData` of one (shared between models without recomputing its
        statistics); ``None`` only when restoring a saved model.
    seed
        Seed of everything random in fitting (default: ``perturbsim.settings.seed``); models
        without randomness keep it only for the record.
    """

    name: ClassVar[str] = "model"
    """Catalogue name (set by each registered model)."""
    fit_options: ClassVar[tuple[str, ...]] = ()
    """Keyword arguments that :meth:`fit` passes on to :meth:`_fit`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a subclass without a name of its own replaces none
            MODEL_REGISTRY[cls.name] = cls

    def __init__(
        self, adata: AnnData | ScreenData | None = None, *, seed: int | None = None
    ) -> None:
        self.seed = resolve_seed(seed)  # checked before the screen is read and logged of
        self._screen: weakref.ref[AnnData] | None = None
        """The AnnData the model was built on, while it lives: a split made in it since is
        told at :meth:`fit`."""
        if isinstance(adata, ScreenData):
            self.data: ScreenData | None = adata
        else:
            self.data = ScreenData.from_adata(adata) if adata is not None else None
            self._screen = None if adata is None else weakref.ref(adata)
        self.is_fitted = False
        self._warned: set[str] = set()
        self.variant: str | None = None
        """The catalogue name the model was built by when it is a named variant
        (``stacked_no_gears``; :func:`~perturbsim.models.build_model`), saved with it."""
        self.fitted_conditions: list[str] | None = []
        """Perturbed conditions of the last fit, training and validation (saved with it;
        ``None``: unknown, a model file saved before perturbsim recorded them)."""
        self.screen_conditions: list[str] = []
        """Perturbed conditions with cells in the screen of the last fit, held-out ones
        included: all measured (saved with it; empty in files saved before it was kept)."""
        self.few_cell_conditions: list[str] = []
        """Perturbed conditions of the last fit's training and validation sets left out of
        the fit for their few cells (:class:`ScreenData`): neither fitted nor held out
        (saved with it)."""
        self.excluded_conditions: list[str] = []
        """Perturbed conditions the last fit's split put in no set (the pairs of a
        ``single`` split): neither fitted nor held out (saved with it)."""
        self.part_of: str | None = None
        """The model this one is a part of (set by that model, e.g. the default's corrections),
        which weighs it on held-out conditions: warnings of a fallback it would give alone
        (a linear model predicting the mean) are then only logged at info level."""
        self.screen_labels: dict[str, str] = {} if self.data is None else dict(self.data.labels)
        """How the screen was read: the ``control`` label and the ``sep`` of its labels
        (:func:`perturbsim.pp.setup`), ``normalize`` (``"true"``) when its raw counts were
        normalised, ``pooled_datasets`` (``"true"``) when it pooled several screens (saved
        with the model; ``perturbsim predict`` and ``design`` read
        labels written alike, ``export`` reads the screen alike; empty when unknown)."""
        self.screen_where: dict[str, list[str]] = {} if self.data is None else dict(self.data.where)
        """The cells of the file the screen was read with (:func:`perturbsim.ds.read`'s
        ``where``; saved with the model; ``perturbsim export`` reads the same cells; empty:
        every cell, or unknown)."""
        if self.data is not None:
            self.genes = np.asarray(self.data.genes, dtype=str)
            self.control_mean = self.data.stats.control_mean.astype(np.float64)

    @property
    def held_out_conditions(self) -> list[str] | None:
        """Perturbed conditions of the screen of the last fit that the fit held out.

        Its split's test conditions (empty for a model fitted on every condition, ``split``
        kind ``"none"``), not the conditions of few cells it left out of training
        (:attr:`few_cell_conditions`) nor those its split put in no set
        (:attr:`excluded_conditions`); ``None`` for a model not fitted or saved before
        perturbsim recorded the screen's conditions.

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> ps.pp.split(adata, kind="combo", seed=1)
        >>> model = ps.TrainMean(adata).fit()
        >>> test = set(map(str, adata.uns["perturbsim"]["split"]["test"]))
        >>> set(model.held_out_conditions) == test
        True
        """
        if self.fitted_conditions is None or not self.screen_conditions:
            return None
        fitted = {*self.fitted_conditions, *self.few_cell_conditions, *self.excluded_conditions}
        return [c for c in self.screen_conditions if c not in fitted]

    def __getstate__(self) -> dict[str, Any]:
        """The model's state for pickling (joblib, multiprocessing).

        Without the weak reference to the AnnData it was built on, which cannot be pickled:
        an unpickled model no longer tells a split made since in that AnnData.
        """
        state = self.__dict__.copy()
        state["_screen"] = None
        return state

    def __repr__(self) -> str:
        genes = f"{len(self.genes)} genes" if hasattr(self, "genes") else "no screen"
        if not self.is_fitted:
            return f"{type(self).__name__} {self.label!r}: {genes}, not fitted"
        fitted = self.fitted_conditions
        on = "" if fitted is None else f" on {len(fitted)} perturbations"
        return f"{type(self).__name__} {self.label!r}: {genes}, fitted{on} (seed {self.seed})"

    @property
    def label(self) -> str:
        """The model's name in messages and predictions: its variant's, else its class's."""
        return self.variant or self.name

    def require_fitted(self) -> None:
        """Raise unless the model is fitted (what it learned is read only after :meth:`fit`)."""
        if not self.is_fitted:
            raise PerturbsimError(f"{self.label} is not fitted: call .fit() first")

    @classmethod
    def option_names(cls) -> list[str]:
        """Keyword arguments of the constructor (besides ``adata``)."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]

    @classmethod
    def option_names_of(cls, options: Mapping[str, Any]) -> list[str]:
        """Constructor arguments that apply to a model built with the arguments ``options``.

        Its :meth:`option_names`, unless ``options`` leave out the part that takes some.
        """
        return cls.option_names()

    @classmethod
    def fit_options_of(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """Fit options of a model built with the constructor arguments ``options``.

        Their :attr:`fit_options`, unless those arguments leave out the part that takes them.
        """
        return cls.fit_options

    # -- to implement --------------------------------------------------------------------
    @abstractmethod
    def _fit(self, data: ScreenData, **options: Any) -> None:
        """Fit from the screen's statistics and training conditions.

        ``options`` are the model's :attr:`fit_options`, checked by :meth:`fit`.
        """

    @abstractmethod
    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, np.ndarray | None]:
        """Return the change over control ``(n, G)`` and optionally its variance ``(n, G)``."""

    def _gene_support(self, genes: list[str]) -> np.ndarray | None:
        """How closely each gene is tied to genes measured alone, in ``[0, 1]``.

        1: measured; 0: nothing links it to a measurement. ``None`` for models that cannot
        tell.
        """
        return None

    def _support_graph(self) -> GeneGraph | None:
        """The GO graph :meth:`_gene_support` ties genes by; ``None`` for models without one."""
        return None

    def _support_of(self, genes: Sequence[str], known: Collection[str]) -> np.ndarray:
        """Support of each gene: 1 if ``known``, else its tie in :meth:`_support_graph`.

        Without a graph, 1 for a known gene and 0 for any other.
        """
        graph = self._support_graph()
        if graph is None:
            return np.array([float(g in known) for g in genes])
        return graph.support(genes, known)

    def _options(self) -> dict[str, Any]:
        """JSON-serialisable options needed to rebuild the model."""
        return {}

    def _arrays(self) -> dict[str, np.ndarray]:
        """Fitted numeric state."""
        return {}

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the fitted state from :meth:`_options` and :meth:`_arrays`."""

    def _array_shapes(self) -> dict[str, tuple[int | str, ...]]:
        """The shape of each array of :meth:`_arrays`, as the model's genes and options state.

        A whole number is a size they state, a name a size they leave free but which every
        array naming it shares (see :func:`~perturbsim.models._store.check_array_sizes`).
        Read after :meth:`_restore`, to refuse the arrays of a hand-edited config on load.
        """
        return {}

    # -- public API ----------------------------------------------------------------------
    def fit(
        self,
        *,
        train_conditions: Sequence[str] | None = None,
        val_conditions: Sequence[str] | None = None,
        **options: Any,
    ) -> Self:
        """Fit the model on training conditions of the screen it was built with.

        Parameters
        ----------
        train_conditions
            Labels of the conditions to train on (control is added when missing); default:
            the training conditions of the screen's split (:func:`perturbsim.pp.split`), or
            every condition when it has none. Refitting on another list needs no new model
            and leaves the AnnData untouched (what an experiment-design loop does).
        val_conditions
            Validation conditions; default: the split's when ``train_conditions`` is
            ``None``, else none.
        **options
            The model's fit options (:attr:`fit_options`), e.g. ``max_epochs`` for GEARS.

        Returns
        -------
        The model itself.

        Raises
        ------
        PerturbsimError
            No screen to fit on; an option the model does not take; unknown or overlapping
            conditions; without ``train_conditions``, a split drawn in the AnnData the model
            was built on since it was built (the model read the earlier one: build it again).
        """
        if self.data is None:
            raise PerturbsimError(
                f"{self.label} has no screen to fit on (built with adata=None, or loaded from "
                "a file): build it on a set-up screen"
            )
        unknown = sorted(set(options) - set(self.fit_options))
        if unknown:
            accepted = ", ".join(self.fit_options) if self.fit_options else "none"
            raise PerturbsimError(
                f"{self.label} has no fit option {unknown[0]!r} (accepted: {accepted})"
            )
        data = self.data
        if train_conditions is not None or val_conditions is not None:
            data = data.with_conditions(train_conditions, val_conditions)
        else:
            self._refuse_a_split_made_since()
        with switched_off(WARN_UNSUPPORTED):  # e.g. a default's parts predicting validation
            self._fit(data, **options)
        self.is_fitted = True
        self._warned.clear()  # a refitted model's predictions are new
        self.fitted_conditions = data.perturbed([*data.train, *data.val])
        self.few_cell_conditions = list(data.few_cells)
        self.excluded_conditions = data.perturbed(data.excluded)
        stats = data.stats
        self.screen_conditions = data.perturbed(
            [str(c) for c, n in zip(stats.conditions, stats.n_cells, strict=True) if n > 0]
        )
        return self

    def _refuse_a_split_made_since(self) -> None:
        """Raise when the AnnData the model was built on holds another split now.

        The model read the split when it was built; fitting it on that one after
        :func:`perturbsim.pp.split` drew another would train on conditions the new split
        holds out.
        """
        adata = None if self._screen is None or self.data is None else self._screen()
        now = None if adata is None else split_record(adata)
        built = None if self.data is None else self.data.split
        if adata is None or now == built:
            return
        then = "no split" if built is None else f"the {built[0]} split of seed {built[1]}"
        drawn = "none" if now is None else f"the {now[0]} split of seed {now[1]}"
        raise PerturbsimError(
            f"the screen's split changed since {self.label} was built (it read {then}; the "
            f"screen now holds {drawn}): build the model again after perturbsim.pp.split"
        )

    def covers(self, perturbations: str | list[str] | list[list[str]]) -> np.ndarray:
        """Which perturbations the model can predict (all, unless a subclass says otherwise).

        Parameters
        ----------
        perturbations
            As for :meth:`predict`.

        Returns
        -------
        Boolean array, one entry per perturbation.

        Raises
        ------
        PerturbsimError
            The model is not fitted, or a malformed query.
        """
        self.require_fitted()
        return np.ones(len(self.parsed_query(perturbations)), dtype=bool)

    def parsed_query(
        self,
        perturbations: str | list[str] | list[list[str]],
        *,
        control: str = CONTROL,
        sep: str = SEP,
    ) -> list[GeneSet]:
        """The gene sets of a query, read as :meth:`predict` reads them.

        Parameters
        ----------
        perturbations, control, sep
            As for :meth:`predict`: ``ctrl`` and the screen's own control label (its
            ``screen_labels``) both name the control.

        Returns
        -------
        One sorted gene tuple per perturbation, in the order given (duplicates kept).

        Examples
        --------
        >>> import perturbsim as ps
        >>> model = ps.TrainMean(ps.ds.norman2019_subset()).fit()
        >>> model.parsed_query(["MAP2K6+KLF1", "control", "KLF1"])  # the screen's label too
        [('KLF1', 'MAP2K6'), (), ('KLF1',)]
        """
        if control == CONTROL:  # "ctrl" is always a control word: the screen's label too
            control = self.screen_labels.get("control", CONTROL)
        return parse_perturbations(perturbations, control=control, sep=sep)

    def query_hint(self, sets: Sequence[GeneSet], *, labels: bool = False) -> str:
        """A hint for the first gene of ``sets`` the model predicts only written otherwise.

        `` ('KLF1_MAP2K6' looks like genes joined by '_': ...)`` for genes joined by another
        separator, `` (did you mean 'KLF1' for 'klf1'? ...)`` for another case, `` (did you
        mean 'MIDEAS'? ...)`` for a human gene's former name (the bundled alias table),
        `` (did you mean 'KLF1' for 'KFL1'?)`` for a misspelling of a gene the screen
        perturbed (:meth:`_typo_hint`), `` ('NegCtrl' looks like a control label ...)`` for
        a control guide's name the model cannot predict, `` ('ENSG...' looks like an
        Ensembl gene ID ...)`` for an ID where the model's genes are names, or ``""``.

        Parameters
        ----------
        sets
            Gene sets the model was asked for (those it cannot predict, or all of them).
        labels
            The sets were read from labels with ``control=`` and ``sep=`` options (as
            :meth:`predict`'s): the hints name those options.

        Returns
        -------
        The hint, with its leading space, to append to a message naming those sets.
        """
        genes = sorted({g for s in sets for g in s})
        aliases = human_gene_alias()
        aliases = aliases[aliases["alias"].isin(genes)].drop_duplicates()
        renamed = [
            (str(gene), str(symbol))
            for gene, symbol in zip(aliases["alias"], aliases["symbol"], strict=True)
            if symbol != gene
        ]
        joined = [(gene, sep, parts) for gene in genes for sep, parts in split_at_separators(gene)]
        spellings = [
            (gene, other)
            for gene in genes
            for other in dict.fromkeys((gene.upper(), gene.capitalize(), gene.lower()))
            if other != gene and not is_control_word(other)  # 'Ctrl' for 'CTRL': no gene
        ]
        queries = [
            *genes,
            *(t for _, _, parts in joined for t in parts),
            *(other for _, other in spellings),
            *(symbol for _, symbol in renamed),
        ]
        try:  # one call: a model may build its coverage afresh each time
            covered = iter(self.covers([[g] for g in queries]))
        except PerturbsimError:  # the hint must not hide the error it explains
            return ""
        known = {g for g in genes if next(covered)}
        for gene, sep, parts in joined:
            if all([next(covered) for _ in parts]) and gene not in known:
                return joined_genes_hint(gene, sep, parts, takes_sep=labels)
        hints = [
            *((gene, case_hint(gene, other)) for gene, other in spellings),
            *(
                (gene, f" (did you mean {symbol!r}? {gene!r} is a former name of it)")
                for gene, symbol in renamed
            ),
        ]
        for gene, hint in hints:
            if next(covered) and gene not in known:
                return hint
        unknown = [g for g in genes if g not in known]
        return (
            self._typo_hint(unknown)
            or _control_hint(unknown, labels=labels)
            or _ensembl_hint(unknown, [*sorted(self.perturbed_genes()), *map(str, self.genes)])
        )

    def perturbed_genes(self) -> set[str]:
        """The genes perturbed in the model's screen, in fitted or held-out conditions.

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> ps.pp.setup(adata, perturbation_key="condition", control="control")
        >>> "KLF1" in ps.Additive(adata).fit().perturbed_genes()
        True
        """
        conditions = [*(self.fitted_conditions or []), *(self.held_out_conditions or [])]
        return {g for c in conditions for g in genes_of(c)}

    def check_control_label(
        self, control: str | None, sep: str | None = None, *, option: str = "control"
    ) -> None:
        """Refuse a control label naming a gene of the model, whole or as one of its parts.

        Every part of a control label reads as no perturbation (``NT_NT``), so a gene named
        there would be dropped from the queries silently. The screen's own control label,
        the words that always mean control (``ctrl``, ``control``, ``non-targeting``,
        ``NT``, ``NTC``, in any case but ``CTRL`` spelt so, a human gene:
        :func:`~perturbsim.pp._labels.is_control_word`) and ``None`` (none given) pass;
        names are otherwise compared in any case, as labels are read.

        Parameters
        ----------
        control
            The further control word given with the queries.
        sep
            Separator of a label's genes (default: the screen's).
        option
            How the caller names the argument in the error (``"--control"`` for the CLI).

        Raises
        ------
        PerturbsimError
            ``control`` is not a string, ``sep`` not a non-empty one, or ``control`` or one
            of its parts is a gene measured or perturbed in the model's screen.

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> ps.pp.setup(adata, perturbation_key="condition", control="control")
        >>> model = ps.Additive(adata).fit()
        >>> model.check_control_label("NTC")
        >>> model.check_control_label("KLF1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        perturbsim._errors.PerturbsimError: control 'KLF1' names a gene of the model, not a ...
        """
        if sep is not None:
            check_label_part("sep", sep, "_")
        if control is None:
            return
        if not isinstance(control, str):
            raise PerturbsimError(f"{option} must be a label, got {type(control).__name__}")
        screen_control = self.screen_labels.get("control", CONTROL)
        known = {g.lower() for g in [*map(str, self.genes), *self.perturbed_genes()]}
        parts = {control, *control.split(sep or self.screen_labels.get("sep", SEP))}
        gene = next(
            (
                p
                for p in sorted(parts)
                if p.lower() in known and not is_control_word(p, screen_control)
            ),
            None,
        )
        if gene is not None:
            named = "a gene of the model," if gene == control else f"{gene!r}, a gene of the model,"
            raise PerturbsimError(
                f"{option} {control!r} names {named} not a label of no perturbation: "
                f"leave {option} out (the screen's control label is {screen_control!r})"
            )

    def _typo_hint(self, unknown: Sequence[str]) -> str:
        """A hint for the first of ``unknown`` that looks like a misspelt perturbed gene.

        `` (did you mean 'KLF1' for 'KFL1'?)`` when the gene is close in spelling
        (:func:`~perturbsim._errors.close_spellings`) to a gene perturbed in the model's
        screen (fitted or held
        out) that the model predicts, the closest such; else ``""``. A name the screen
        measured or a human gene symbol (the bundled GO annotations) is no misspelling
        (``CEBPB`` is not ``CEBPE``).
        """
        if not unknown:
            return ""
        perturbed = sorted(self.perturbed_genes())
        real = {*map(str, self.genes), *human_go()["gene"].astype(str)}
        close = {g: close_spellings(g, perturbed) for g in unknown if g not in real}
        candidates = sorted({c for matches in close.values() for c in matches})
        if not candidates:
            return ""
        try:  # one call, and the hint must not hide the error it explains
            predictable = dict(zip(candidates, self.covers([[c] for c in candidates]), strict=True))
        except PerturbsimError:
            return ""
        for gene, matches in close.items():
            match = next((m for m in matches if predictable[m]), None)
            if match is not None:
                return f" (did you mean {match!r} for {gene!r}?)"
        return ""

    def _held_out_note(self, labels: Sequence[str]) -> str:
        """Which genes of ``labels`` the screen measured alone but the model's split held out.

        ``""`` when none; else one clause for a warning, with the fix.
        """
        genes = {g for label in labels for g in genes_of(str(label))}
        held = sorted(genes.intersection(singles_of(self.held_out_conditions or [])))
        if not held:
            return ""
        return (
            f"{shown_list(held, _MAX_NAMED_GENES)} {'was' if len(held) == 1 else 'were'} "
            "measured alone in the screen but held out by the model's split, so the model "
            "never saw those measurements (refit with split kind 'none' to use them)"
        )

    def _outside_graph_note(self, labels: Sequence[str]) -> str:
        """Which genes of ``labels`` are not nodes of the model's GO graph (support 0 by that).

        ``""`` when none, or for a model without a graph; else one clause for a warning.
        """
        graph = self._support_graph()
        if graph is None:
            return ""
        genes = sorted({g for label in labels for g in genes_of(str(label))})
        nodes = set(map(str, graph.nodes))
        unsupported = self._gene_support(genes) == 0
        outside = [g for g, no in zip(genes, unsupported, strict=True) if no and g not in nodes]
        if not outside:
            return ""
        return (
            f"{shown_list(outside, _MAX_NAMED_GENES)} {'is' if len(outside) == 1 else 'are'} "
            "not in the model's GO graph, which holds only the screen's perturbed and measured "
            "genes that GO annotates: however closely GO ties such a gene to a gene measured "
            "alone, no tie counts towards its support"
        )

    def _warn_of(self, prediction: AnnData, fix: str = "") -> None:
        """Log one warning naming the predictions flagged ``unsupported``, if any (and warned of).

        Models may add warnings of their own about a prediction (:class:`Stacked` does).

        It also names the flagged genes measured alone but held out by the model's split
        (their measurements unused), and those outside the model's GO graph
        (:meth:`_outside_graph_note`). ``fix`` (e.g. ``"strict=True refuses such
        predictions"``) ends the message. Sets of more genes than any fitted condition are
        warned of too (:meth:`warn_of_larger_sets`).
        """
        self.warn_of_larger_sets(list(prediction.obs_names))
        if not WARN_UNSUPPORTED.get() or PRED_UNSUPPORTED not in prediction.obs:
            return
        flagged = prediction.obs_names[prediction.obs[PRED_UNSUPPORTED].to_numpy(dtype=bool)]
        if not len(flagged):
            return
        notes = [self._held_out_note(flagged), self._outside_graph_note(flagged), fix]
        self._warn_once(
            f"{counted(len(flagged), 'prediction has', 'predictions have')} a gene neither "
            "measured alone nor tied by the model's GO graph to one that was "
            "(.obs['unsupported']: such a gene "
            "is predicted from what perturbations do on average, and a set of genes as such "
            f"predictions combined): {shown_list(flagged, _MAX_NAMED_GENES)}"
            + "".join(f"; {note}" for note in notes if note)
        )

    def _warn_once(self, message: str) -> None:
        """Log ``message`` as a warning the first time this model gives it, at INFO after.

        As Python's default warnings filter shows a warning once per place: predicting the
        same perturbations again (e.g. in a loop) repeats nothing new.
        """
        if message in self._warned:
            logger.info("%s (again)", message)
            return
        self._warned.add(message)
        logger.warning("%s", message)

    def predict(
        self,
        perturbations: str | list[str] | list[list[str]],
        *,
        strict: bool = False,
        control: str = CONTROL,
        sep: str = SEP,
    ) -> AnnData:
        """Predict the mean expression after each perturbation.

        Parameters
        ----------
        perturbations
            One label (``"FOSB+CEBPB"``), a list of labels, or a list of gene lists
            (``[["FOSB", "CEBPB"], ["KLF1"]]``), in order (a set is refused). ``ctrl``,
            ``control``, ``non-targeting``, ``NT``, ``NTC`` (any case, but ``CTRL`` spelt so,
            a human gene; whole or as a token of a label) and the screen's control label are
            the control: no gene.
        strict
            Refuse (one error naming them) perturbations with a gene never measured alone
            and with no measured neighbour in the model's GO graph (``.obs["unsupported"]``),
            instead of predicting them with a flag and a warning that names them.
        control, sep
            How the labels are written, as ``perturbsim predict``'s ``--control`` and
            ``--sep``: a further control word (``"NegCtrl"``; by default the screen's control
            label), the separator of a label's genes (``"_"`` for ``"KLF1_MAP2K6"``; a label
            holding ``+`` is read with ``+``; the screen's own separator is not assumed, as
            canonical labels, ``A+B``, are read alike from every screen). A ``control``
            naming a gene of the model is refused (:meth:`check_control_label`).

        Returns
        -------
        AnnData with one row per distinct perturbation, in order of first appearance
        (``obs_names`` = canonical labels; a repeat, ``"B+A"`` after ``"A+B"`` too, is
        predicted once, with a warning) and the measured genes as columns: predicted mean
        expression in ``X`` (never below zero), change over control in
        ``.layers["delta"]``, and ``.obs["n_targets"]``. When the
        model has a predictive variance: ``.layers["variance"]`` (per gene) and
        ``.obs["uncertainty"]``, the root mean variance over genes (one score per
        perturbation). When the model knows how its genes relate to measured ones (the
        default model and GEARS): ``.obs["support"]``, the mean over a perturbation's
        genes of 1 for a gene measured alone (for the default model, also one whose single
        it inferred from the gene's pairs), else the GO-graph similarity of its most
        similar measured neighbour (0: none), ``.obs["unsupported"]``, True when some
        gene has support 0, a prediction resting only on what perturbations do on
        average (one warning, through the ``perturbsim`` logger, names such predictions),
        and ``.obs["generic"]``, True where the prediction is the model's generic guess for
        some gene however closely GO ties it to measured ones (the unsupported ones; for
        the default model also those it predicts from the scaled mean change, which a
        second warning names). ``.uns["perturbsim"]["model"]`` names the model.

        Raises
        ------
        PerturbsimError
            Not fitted; a ``control`` naming a gene of the model; genes the model cannot
            predict (:meth:`covers`; naming how the model would know them: ``'KLF1'`` for
            ``'klf1'``, ``'KLF1+MAP2K6'`` for ``'KLF1_MAP2K6'``); with ``strict``,
            unsupported perturbations. Models that cover any name (the ``mean`` and
            ``no_perturb`` baselines) raise no such error for genes: they warn of a gene
            neither measured nor perturbed.
        """
        self.require_fitted()
        strict = check_flag("strict", strict)
        self.check_control_label(control, sep)
        sets = distinct_sets(self.parsed_query(perturbations, control=control, sep=sep))
        try:  # genes it cannot predict are named before any refused as unsupported
            with switched_off(WARN_UNSUPPORTED):  # the models it predicts with, if any
                change, variance = self._predict_change(sets)
            support = self._support_columns(sets)
            if strict and support is not None and support[PRED_UNSUPPORTED].any():
                flags = support[PRED_UNSUPPORTED]
                refused = [canonical_label(s) for s, bad in zip(sets, flags, strict=True) if bad]
                them = "it" if len(refused) == 1 else "them"
                raise PerturbsimError(
                    f"strict: {counted(len(refused), 'perturbation')} with a gene never measured "
                    f"alone and no measured GO neighbour: {shown_list(refused, _MAX_NAMED_GENES)}; "
                    f"leave {them} out, or predict {them} without strict=True (flagged unsupported)"
                )
        except PerturbsimError as err:
            hint = self.query_hint(sets, labels=True)
            if not hint:
                raise
            raise PerturbsimError(f"{err}{hint}") from err
        expression = np.clip(self.control_mean + change, 0.0, None)
        labels = [canonical_label(s) for s in sets]
        obs = pd.DataFrame({PRED_N_TARGETS: [len(s) for s in sets]}, index=pd.Index(labels))
        if variance is not None:
            obs[PRED_UNCERTAINTY] = np.sqrt(np.asarray(variance, dtype=float).mean(axis=1))
        if support is not None:
            obs[PRED_SUPPORT] = support[PRED_SUPPORT]
            obs[PRED_UNSUPPORTED] = support[PRED_UNSUPPORTED]
            obs[PRED_GENERIC] = support[PRED_UNSUPPORTED] | self._predicted_generically(labels)
        out = AnnData(
            X=expression.astype(np.float32),
            obs=obs,
            var=pd.DataFrame(index=pd.Index(self.genes)),
        )
        out.layers[DELTA_LAYER] = (expression - self.control_mean).astype(np.float32)
        if variance is not None:
            out.layers[VARIANCE_LAYER] = variance.astype(np.float32)
        out.uns[UNS] = {PRED_MODEL: self.label}
        self._warn_of(out, "strict=True refuses such predictions")
        return out

    def warn_of_larger_sets(self, labels: Sequence[str]) -> None:
        """Warn of predicted sets of more genes than any condition the model was fitted on.

        The models combine the genes' singles, or embeddings, as they learnt to for smaller
        sets; nothing the model was fitted on tells how well that holds for larger ones.
        Nothing is said for a model saved before its fitted conditions were recorded.
        """
        if not WARN_UNSUPPORTED.get() or not self.fitted_conditions:
            return
        largest = max(len(genes_of(c)) for c in self.fitted_conditions)
        larger = [label for label in labels if len(genes_of(label)) > largest]
        if larger:
            self._warn_once(
                f"{counted(len(larger), 'prediction is of a set', 'predictions are of sets')} "
                f"of more genes than any condition the model was fitted on (at most {largest}), "
                "combined as it learnt to combine fewer: "
                f"{shown_list(larger, _MAX_NAMED_GENES)}"
            )

    def _support_columns(self, sets: list[GeneSet]) -> dict[str, np.ndarray] | None:
        """``support`` (mean over genes) and ``unsupported`` (some gene at 0) of each set."""
        genes = [g for s in sets for g in s]
        per_gene = self._gene_support(genes)
        if per_gene is None:
            return None
        ends = np.cumsum([len(s) for s in sets])
        parts = [per_gene[end - len(s) : end] for s, end in zip(sets, ends, strict=True)]
        return {
            PRED_SUPPORT: np.array([p.mean() if p.size else 1.0 for p in parts]),
            PRED_UNSUPPORTED: np.array([bool(p.size) and bool((p == 0).any()) for p in parts]),
        }

    def predict_pairs(
        self,
        genes: Sequence[str],
        /,
        *,
        batch_size: int = 1024,
        gi: bool = True,
        skip_unknown: bool = False,
        **gi_options: Any,
    ) -> AnnData:
        """Predict every single and every pair of a gene set, and score their interactions.

        The ``n`` singles and ``n (n - 1) / 2`` pairs (102 genes: 5,151 pairs) are predicted
        ``batch_size`` perturbations at a time with :meth:`predict`, each batch copied into
        the result as it comes, so besides the result only one batch is held at once.

        Parameters
        ----------
        genes
            Gene names, each once; the pairs are formed in this order (positional, so
            ``genes=`` among ``gi_options`` goes to :func:`perturbsim.tl.gi_scores`).
        batch_size
            Perturbations predicted per call of :meth:`predict`.
        gi
            Score each pair's genetic interaction with :func:`perturbsim.tl.gi_scores` from the
            predicted singles and pair, and join the scores into ``.obs``.
        skip_unknown
            Leave out, with a warning, the genes the model cannot predict
            (:meth:`covers`), instead of raising an error that lists them.
        **gi_options
            Passed on to :func:`perturbsim.tl.gi_scores` (e.g. ``genes=``, ``n_de=``);
            ``control_mean`` defaults to the model's control mean, ``unsupported`` to the
            genes whose predicted singles are the model's generic guess (their pairs are
            flagged, not called): unsupported ones (``.obs["unsupported"]``: neither
            measured alone nor tied by GO to a gene that was) and, for the default model,
            those it predicts as the mean change (as its warning names them). Checked
            before anything is predicted: a name ``gi_scores`` does not take, a bad
            ``abundance`` (negative, not a number, or above every gene's control mean), or
            options with ``gi=False`` are refused.

        Returns
        -------
        AnnData as from :meth:`predict`, one row per perturbation: the singles in the order
        of ``genes``, then the pairs (canonical labels ``A+B``); one warning names the
        unsupported ones. With ``gi=True``, ``.obs`` also holds the columns of
        :func:`perturbsim.tl.gi_scores` for the pairs (a pair not scored, ``flag`` not
        empty, has NaN scores and missing ``is_<subtype>`` calls) and ``sum_of_singles``
        (True where the predicted pair is its predicted singles summed: the model
        predicts no interaction, and the subtypes are the additive model's, as a warning
        says; :func:`perturbsim.tl.summed_pairs`; a missing value on the singles' rows); on the
        rows of singles floats are NaN, booleans and integers missing, text empty and
        ``flag`` is ``"single"``.

        Raises
        ------
        PerturbsimError
            A list of fewer than two genes, a repeated gene, a name that is not a single
            gene (``ctrl``, ``A+B``), or genes the model cannot predict (listed; unless
            ``skip_unknown``, which fails only when fewer than two genes are left); bad
            ``gi_options`` (above).

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> model = ps.Additive(adata).fit()
        >>> pred = model.predict_pairs(["KLF1", "MAP2K6", "SLC38A2"], gi=False)
        >>> list(pred.obs_names)
        ['KLF1', 'MAP2K6', 'SLC38A2', 'KLF1+MAP2K6', 'KLF1+SLC38A2', 'MAP2K6+SLC38A2']
        """
        genes = _gene_list(genes, self.screen_labels.get("control", CONTROL))
        batch_size = check_count("batch_size", batch_size)
        gi, skip_unknown = check_flag("gi", gi), check_flag("skip_unknown", skip_unknown)
        covered = self.covers([[g] for g in genes])
        unknown = [g for g, ok in zip(genes, covered, strict=True) if not ok]
        if unknown and not skip_unknown:
            raise PerturbsimError(
                f"{self.label} cannot predict {len(unknown)} of the {len(genes)} genes: "
                f"{shown_list(unknown, _MAX_NAMED_GENES)}{self.query_hint([unknown])}; pass "
                "skip_unknown=True to leave them out"
            )
        if unknown:
            logger.warning(
                "left out the genes %s cannot predict: %s",
                self.label,
                shown_list(unknown, _MAX_NAMED_GENES),
            )
            genes = [g for g, ok in zip(genes, covered, strict=True) if ok]
        if len(genes) < 2:
            raise PerturbsimError(f"{self.label} can predict fewer than two of the genes: {genes}")
        if gi:  # before the predictions, not after
            _check_gi_options(gi_options, self.control_mean)
        elif gi_options:
            raise PerturbsimError(f"GI options {sorted(gi_options)} given with gi=False")
        sets = [[g] for g in genes] + [list(pair) for pair in combinations(genes, 2)]
        with switched_off(WARN_UNSUPPORTED):  # one warning for all the batches, below
            out = self._predict_batches(sets, batch_size)
        self._warn_of(out)
        if gi:
            gi_options.setdefault("control_mean", self.control_mean)  # unsupported: its .obs
            scores = gi_scores(out, **gi_options)
            scores[SUM_OF_SINGLES] = summed_pairs(out, scores.index)
            summed = int((scores[SUM_OF_SINGLES] & (scores["flag"] == "")).sum())
            if summed and WARN_SUMMED.get():
                self._warn_once(
                    f"{summed} of the {int((scores['flag'] == '').sum())} scored pairs "
                    "predicted as their singles summed (.obs['sum_of_singles']): the model "
                    "predicts no interaction for them, and their subtypes are the additive "
                    "model's, not evidence (on the default magnitude scale, synergy)"
                )
            out.obs = _join_scores(out.obs, scores)
            logger.info("added the GI scores of %d pairs to .obs", out.n_obs - len(genes))
        return out

    def _predicted_generically(self, labels: Sequence[str]) -> np.ndarray:
        """Which ``labels`` the model predicts by its generic guess though supported by GO.

        All False here: a model's unsupported predictions are flagged as such, and a model
        that knows of more predictions resting on nothing of their genes flags those.
        """
        return np.zeros(len(labels), dtype=bool)

    def _predict_batches(self, sets: list[list[str]], batch_size: int) -> AnnData:
        """:meth:`predict` of ``sets`` in batches, assembled into one AnnData."""
        n, n_genes = len(sets), len(self.genes)
        layers: dict[str | None, np.ndarray] = {}  # None: X
        obs = []
        bar = tqdm(total=n, desc="predicting", unit="perturbation", disable=progress_disabled())
        with bar:
            for start in range(0, n, batch_size):
                batch = self.predict(sets[start : start + batch_size])
                for name, values in ((None, batch.X), *batch.layers.items()):
                    if name not in layers:
                        layers[name] = np.empty((n, n_genes), dtype=np.float32)
                    layers[name][start : start + batch.n_obs] = values
                obs.append(batch.obs)
                bar.update(batch.n_obs)
        out = AnnData(
            X=layers.pop(None),
            obs=pd.concat(obs),
            var=pd.DataFrame(index=pd.Index(self.genes)),
            layers=layers,
        )
        out.uns[UNS] = {PRED_MODEL: self.label}
        return out

    def check_genes_of(self, adata: AnnData) -> None:
        r"""Refuse a screen whose genes are not the model's, in the model's order.

        Parameters
        ----------
        adata
            The screen to read cells from (e.g. for :meth:`sample`).

        Raises
        ------
        PerturbsimError
            For an ``adata`` that is no AnnData; one line with both counts, how many
            genes they share and the model's first missing ones: ``adata.var_names``
            differ from :attr:`genes` (another screen, or genes subset since the fit), or
            hold the same genes in another order (reorder ``adata`` by ``model.genes``).

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> model = ps.TrainMean(adata).fit()
        >>> model.check_genes_of(adata)  # the screen it was fitted on: nothing to say
        >>> try:
        ...     model.check_genes_of(adata[:, :10])
        ... except ps.PerturbsimError as error:
        ...     print(*str(error).split(":")[0].split("; "), sep="\n")
        the genes of adata (10) do not match the model's (500
        10 shared
        the model's ZMYM4-AS1, SZT2-AS1, RAB3B and 487 more missing)
        """
        check_anndata(adata)
        genes = np.asarray(adata.var_names, dtype=str)
        if np.array_equal(genes, self.genes):
            return
        shared = len(np.intersect1d(genes, self.genes))
        if shared == len(genes) == len(self.genes):
            raise PerturbsimError(
                "adata holds the model's genes in another order: reorder it, adata[:, model.genes]"
            )
        fix = (
            "keep the model's genes, adata[:, model.genes], or pass the screen it was fitted on"
            if shared == len(self.genes)
            else "pass the screen the model was fitted on"
        )
        missing = [str(g) for g in self.genes[~np.isin(self.genes, genes)]]
        absent = f"; the model's {shown_list(missing, 3)} missing" if missing else ""
        raise PerturbsimError(
            f"the genes of adata ({adata.n_vars}) do not match the model's "
            f"({len(self.genes)}; {shared} shared{absent}): {fix}"
        )

    def sample(
        self,
        perturbations: str | list[str] | list[list[str]],
        adata: AnnData,
        *,
        n_cells: int | Sequence[int] = 100,
        seed: int | None = None,
        strict: bool = False,
    ) -> AnnData:
        """Per-cell predictions: control cells of ``adata`` changed to each predicted mean.

        The model predicts a mean per gene, not cells. For each perturbation, control cells
        are drawn (with replacement) and every gene is given the fold change ``f`` of its
        expression that brings the mean of the drawn cells to the predicted mean, read on
        the log-normalised scale as normalised counts ``y = expm1(x)``:

        - a detected value becomes ``log1p(f * y)``, never below the cell's lowest detected
          value (one count, in ``normalize_total`` + ``log1p`` data);
        - zeros change as Poisson sampling says they do when the gene's expected count is
          multiplied by ``f``: with ``p0`` the gene's zero fraction among all control cells
          of ``adata`` (with half a pseudo-cell, so a gene never detected can rise) and
          ``rate = (f - 1) * -log(p0)``, a zero turns positive with probability
          ``1 - exp(-rate)`` when ``f > 1``, at ``rate / (1 - exp(-rate))`` counts (times the
          cell's one-count value); when ``f < 1``, a fraction ``(p0**f - p0) / (1 - p0)``
          of the detected values drops to zero, the lowest first.

        Which zeros turn positive is drawn at random (and ties among equal values are
        broken at random); how many is the expected number, its fractional remainder going
        to one cell per gene whose value is scaled down by that fraction. The mean is then
        a continuous increasing function of ``f``, solved per gene by bisection, so the
        per-gene mean of the sampled cells equals the predicted mean (``predict().X``) to
        float32 rounding (1e-5). A gene the model barely changes keeps its zeros, so a
        rank-based DE test does not call it, unlike after the constant shift of GEARS,
        which turns every zero into a small positive value.

        Parameters
        ----------
        perturbations
            As for :meth:`predict`.
        adata
            A set-up screen (:func:`perturbsim.pp.setup`) with the model's genes; its control
            cells are drawn (with a warning when their mean profile correlates with the
            control mean the model was fitted on below :data:`SAME_CONTROL_R`: cells of
            another kind).
        n_cells
            Cells per perturbation: one count for all, or one count per perturbation. More
            than ``adata``'s control cells is warned of (cells drawn twice).
        seed
            Seed of the draw (default: ``perturbsim.settings.seed``).
        strict
            Refuse perturbations flagged unsupported, as :meth:`predict`'s ``strict``
            (default: sample them, with one warning naming them).

        Returns
        -------
        AnnData of ``n_cells`` cells per perturbation, ``obs["perturbation"]`` the canonical
        label, ``adata``'s genes as columns (its ``var``), dense float32 ``X`` on the scale of
        ``adata.X`` (of the layer its stored statistics were computed from, if any), never
        negative; ``uns["perturbsim"]["model"]`` names the model, as :meth:`predict`'s.

        Raises
        ------
        PerturbsimError
            As :meth:`predict` does; ``n_cells`` not whole numbers >= 1 or not one count per
            perturbation; ``adata`` not set up, without control cells or without the model's
            genes; more cells than
            the machine's memory holds (naming the size asked for).

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> cells = ps.TrainMean(adata).fit().sample(["KLF1", "KLF1+MAP2K6"], adata, n_cells=5)
        >>> cells.shape
        (10, 500)
        """
        check_setup(adata)
        self.check_genes_of(adata)
        control_rows = np.flatnonzero((adata.obs[CONDITION] == CONTROL).to_numpy())
        if not control_rows.size:
            raise PerturbsimError(
                "adata has no control cells: sample draws each perturbation's cells from the "
                "control cells' distribution; pass the screen with its control cells"
            )
        with switched_off(WARN_UNSUPPORTED):  # warned of below
            prediction = self.predict(perturbations, strict=strict)
        self._warn_of(prediction)
        counts = _cell_counts(n_cells, prediction.n_obs)
        if counts.max() > control_rows.size:
            self._warn_once(
                f"n_cells asks for up to {int(counts.max())} cells a perturbation from "
                f"{control_rows.size} control cells: drawn with replacement, many share a "
                "control cell and differ only where the change is sampled (they sit together "
                "in an embedding); sample at most as many as there are control cells"
            )
        matrix = cell_matrix(adata)
        p0, one_count, control_mean = _control_summary(matrix, control_rows)
        _warn_other_control(self.control_mean, control_mean)
        rng = np.random.default_rng(resolve_seed(seed))
        ends = np.cumsum(counts)
        try:
            sampled = np.empty((int(ends[-1]), len(self.genes)), dtype=np.float32)
            for row, n in enumerate(counts):
                picks = rng.integers(control_rows.size, size=n)
                unique, inverse = np.unique(control_rows[picks], return_inverse=True)
                cells = dense_rows(matrix, unique)[inverse]
                fold = _GeneFold.of(cells, one_count[picks], p0, rng)
                sampled[ends[row] - n : ends[row]] = fold.matching(
                    prediction.X[row].astype(np.float64)
                )
        except MemoryError:
            size = int(ends[-1]) * len(self.genes) * 4
            raise PerturbsimError(
                f"n_cells asks for {int(ends[-1]):,} cells x {len(self.genes)} genes "
                f"({size / 2**30:.1f} GiB as float32, more while built): more than this "
                "machine can hold; sample fewer cells a call"
            ) from None
        labels = np.repeat(prediction.obs_names.to_numpy(), counts)
        obs = pd.DataFrame(
            {SAMPLE_PERTURBATION: pd.Categorical(labels, categories=list(prediction.obs_names))},
            index=pd.Index([f"{label}-{i}" for i, label in enumerate(labels)]),
        )
        out = AnnData(X=sampled, obs=obs, var=adata.var.copy())
        out.uns[UNS] = {PRED_MODEL: self.label}
        return out

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Save to a directory: ``config.json`` + ``weights.safetensors``, written atomically.

        Parameters
        ----------
        path
            Directory to create.
        overwrite
            Replace an existing directory.
        """
        if not self.is_fitted:
            raise PerturbsimError(f"{self.label} is not fitted: nothing to save")
        config = {
            "model": self.name,
            "variant": self.variant,
            "genes": list(map(str, self.genes)),
            "seed": self.seed,
            "options": self._options(),
            "fitted_conditions": self.fitted_conditions,
            "screen_conditions": self.screen_conditions,
            "few_cell_conditions": self.few_cell_conditions,
            "excluded_conditions": self.excluded_conditions,
            "screen_labels": self.screen_labels,
            "screen_where": self.screen_where,
        }
        arrays = {"control_mean": self.control_mean, **self._arrays()}
        write_model_dir(path, config=config, arrays=arrays, overwrite=overwrite)
        logger.info("saved %s to %s", self.label, path)

    @classmethod
    def load(cls, path: str | Path, adata: AnnData | None = None) -> PerturbationModel:
        """Load a model saved with :meth:`save`; never unpickles.

        Parameters
        ----------
        path
            The model directory.
        adata
            Optional screen whose genes must match the model's, in its order
            (:meth:`check_genes_of`).

        Returns
        -------
        The fitted model (of the class recorded in the directory).

        Raises
        ------
        PerturbsimError
            A ``path`` that is no path or a folder that is not a saved model, was written by
            a newer perturbsim, or was
            changed since it was saved (checksums; a config edited by hand that no longer
            reads as a model); a model of another class than ``cls``; an ``adata`` whose
            genes are not the model's.
        """
        config, arrays = read_model_dir(path)
        name = config.get("model", "")
        model_cls = MODEL_REGISTRY.get(name) if isinstance(name, str) else None
        if model_cls is None:
            raise PerturbsimError(f"unknown model type {config.get('model')!r} in {str(path)!r}")
        if issubclass(cls, model_cls) and cls.name == model_cls.name:  # a user's variant
            model_cls = cls
        elif cls is not PerturbationModel and not issubclass(model_cls, cls):
            raise PerturbsimError(f"{str(path)!r} holds a {model_cls.name} model, not {cls.name}")
        try:
            model = _restored(model_cls, path, config, arrays)
        except PerturbsimError as err:  # its own advice, with the folder it is about
            if f"{str(path)!r}" in str(err):
                raise
            raise PerturbsimError(f"{str(path)!r}: {err}") from err
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as err:
            # a config whose checksum held was not edited: another version wrote it
            cause = "saved by another version?" if CONFIG_CHECKSUM in config else "edited by hand?"
            raise PerturbsimError(
                f"{str(path)!r}: config.json does not read as a saved {model_cls.name} model "
                f"({error_reason(err)}; {cause}): save the model again"
            ) from err
        if adata is not None:
            model.check_genes_of(adata)
        return model

    @classmethod
    def from_state(
        cls,
        genes: np.ndarray,
        control_mean: np.ndarray,
        options: dict[str, Any],
        arrays: dict[str, np.ndarray],
        *,
        seed: int | None,
    ) -> Self:
        """A fitted model of this class rebuilt from its saved state, without data.

        Parameters
        ----------
        genes
            The measured genes.
        control_mean
            Mean control expression of each gene.
        options, arrays
            What :meth:`_options` and :meth:`_arrays` returned when it was saved.
        seed
            The model's seed.

        Returns
        -------
        The model, fitted; :meth:`fit` is unavailable (no data).

        Raises
        ------
        PerturbsimError
            ``control_mean`` or an array of ``arrays`` whose shape is not the one ``genes``
            and ``options`` state (:meth:`_array_shapes`), naming it.
        """
        model = cls.__new__(cls)
        PerturbationModel.__init__(model, None)
        if seed is not None:  # as saved, checked when the model was built
            model.seed = int(seed)
        model.genes = np.asarray(genes, dtype=str)
        model.control_mean = np.asarray(control_mean, dtype=np.float64)
        saved = {"control_mean": model.control_mean}  # first: _restore builds on the genes
        check_array_sizes(cls.name, saved, {"control_mean": (len(model.genes),)})
        model._restore(options, arrays)
        check_array_sizes(cls.name, arrays, model._array_shapes())
        unknown = sorted(set(options) - set(model._options()))
        if unknown:  # read as if absent, they would be silently ignored
            raise PerturbsimError(
                f"the saved {cls.name} model holds options this version of perturbsim does not "
                f"know ({shown_list(unknown, 3)}): saved by another version; load it with that "
                "version or train the model again"
            )
        model.is_fitted = True
        return model


def _restored(
    model_cls: type[PerturbationModel],
    path: str | Path,
    config: dict[str, Any],
    arrays: dict[str, np.ndarray],
) -> PerturbationModel:
    """The model of ``config`` and ``arrays`` (:meth:`PerturbationModel.save`'s), rebuilt.

    The fields are checked for their type (a config whose checksum line was deleted is read
    unchecked otherwise: a string where a list is due would read as its characters).
    """
    _check_saved_fields(path, config, model_cls.name)
    genes = np.asarray(config["genes"], dtype=str)
    control_mean = arrays.pop("control_mean")
    model = model_cls.from_state(
        genes, control_mean, config.get("options", {}), arrays, seed=config.get("seed")
    )
    model.variant = config.get("variant")  # absent from files saved before it was kept
    model.screen_labels = {str(k): str(v) for k, v in config.get("screen_labels", {}).items()}
    model.screen_where = {  # absent from files saved before it was kept
        str(c): [str(v) for v in values] for c, values in config.get("screen_where", {}).items()
    }
    fitted = config.get("fitted_conditions")  # absent from files saved before it was kept
    model.fitted_conditions = None if fitted is None else [str(c) for c in fitted]
    model.screen_conditions = [str(c) for c in config.get("screen_conditions", [])]
    model.few_cell_conditions = [str(c) for c in config.get("few_cell_conditions", [])]
    model.excluded_conditions = [str(c) for c in config.get("excluded_conditions", [])]
    return model


SAVED_LISTS = (
    "genes",
    "fitted_conditions",
    "screen_conditions",
    "few_cell_conditions",
    "excluded_conditions",
)
"""Fields of a saved model's config that are lists of text (``fitted_conditions`` may be
``null`` in files saved before it was kept)."""


def _check_saved_fields(path: str | Path, config: dict[str, Any], name: str) -> None:
    """Refuse a saved ``name`` model's config whose fields are not of their type."""

    def refuse(field: str, what: str) -> None:
        raise PerturbsimError(
            f"{str(path)!r}: config.json does not read as a saved {name} model ({field!r} is "
            f"not {what}; edited by hand?): save the model again"
        )

    for field in SAVED_LISTS:
        value = config.get(field, [] if field != "genes" else None)
        if field == "fitted_conditions" and value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            refuse(field, "a list of names")
    if len(set(config["genes"])) != len(config["genes"]):
        refuse("genes", "a list of distinct genes")
    seed = config.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        refuse("seed", "a whole number")
