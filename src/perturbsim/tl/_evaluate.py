"""Evaluation runner: every model on every split seed, scored per test subgroup.

For each split seed (:func:`evaluate_seed`) the screen is split (:func:`perturbsim.pp.split`),
its pseudobulk statistics are computed *after* the split (so the co-expression moments come
from training cells only), the top DE genes of every condition are ranked
(:func:`perturbsim.pp.rank_de`), and each model is built from the catalogue
(:func:`perturbsim.models.build_model`), fitted on the training conditions and asked for the
test conditions it :meth:`~perturbsim.models.PerturbationModel.covers`. Predictions are
scored with :func:`perturbsim.tl.score` against the measured pseudobulk means of the test
conditions. :func:`evaluate` runs the seeds and assembles an :class:`EvaluationResult`.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from tqdm.auto import tqdm

from .._checks import check_count, check_flag, shown
from .._errors import PerturbsimError, counted, error_reason, shown_list
from .._keys import CONDITION, DERIVED_UNS, UNS
from .._settings import each_warning_once, progress_disabled, resolve_seeds, switched_off
from ..ds._stores import backed_copy
from ..models import DEFAULT_MODELS, PerturbationModel, build_model, resolve_model
from ..models._base import WARN_UNSUPPORTED
from ..models._data import NO_TRAINING_PERTURBATION
from ..pp import DEGenes, PseudobulkStats, Split, genes_of, pseudobulk, rank_de
from ..pp import split as split_screen
from ..pp._chunk_sums import warn_backed_view
from ..pp._de import top_de_indices
from ..pp._pseudobulk import MIN_REPLICATE_CELLS, stored_layer, stored_matrix
from ..pp._setup import check_setup
from ._evaluate_gi import GI_COLUMNS, MEASURED, GITruth, simulated_truth
from ._metrics import _predicted_means, _stored_predictions, checked_metric_names, score
from ._result import (
    CHANGE_COLUMNS,
    COVERAGE_COLUMNS,
    FAILURE_COLUMNS,
    REPLICATE,
    SCORE_COLUMNS,
    EvaluationResult,
    _ordered,
)
from ._uncertainty import UNCERTAINTY_COLUMNS, uncertainty_table

logger = logging.getLogger(__name__)

SET_BY_EVALUATE = frozenset({"adata", "kind", "seed", "copy"})
"""Options of :func:`perturbsim.pp.split` that :func:`evaluate` sets itself."""

ModelFactory = Callable[..., PerturbationModel]
"""A custom model: ``factory(adata, **model_kwargs[name])`` returns it unfitted."""
Builder = Callable[[AnnData, int], PerturbationModel]
"""``build(adata, seed)``: an unfitted model for one split seed."""

TIMING_COLUMNS = ["model", "seed", "fit_s", "predict_s"]


@dataclass(frozen=True)
class SeedTables:
    """The tables of one split seed, with the columns of :class:`EvaluationResult`'s."""

    scores: pd.DataFrame
    coverage: pd.DataFrame
    changes: pd.DataFrame
    histories: pd.DataFrame
    timings: pd.DataFrame
    failures: pd.DataFrame
    gi: pd.DataFrame
    uncertainty: pd.DataFrame


@dataclass(frozen=True)
class _PreparedSeed:
    """A working copy of the screen split, summarised and DE-ranked for one seed."""

    seed: int
    work: AnnData
    stats: PseudobulkStats
    subgroups: dict[str, list[str]]
    """Test subgroup -> its conditions."""
    test: list[str]
    """Test conditions, subgroup by subgroup."""
    subgroup_of: dict[str, str]
    """Test condition -> its subgroup."""
    de_genes: dict[str, list[str]]
    """Test condition -> its top non-dropout DE genes."""
    reference: np.ndarray
    """Mean of the perturbed training conditions."""


def _from_factory(factory: ModelFactory, options: dict[str, Any]) -> Builder:
    def build(adata: AnnData, seed: int) -> PerturbationModel:
        return factory(adata, **options)

    return build


def _from_catalogue(name: str, options: dict[str, Any]) -> Builder:
    def build(adata: AnnData, seed: int) -> PerturbationModel:
        return build_model(name, adata, **{"seed": seed, **options})

    return build


RESERVED_NAMES = (REPLICATE, MEASURED)
"""Rows of an evaluation's own (the split-half replicate; the measured interactions)."""
EVALUATED_SPLITS = ("simulation", "single", "combo", "custom")
"""Split kinds :func:`evaluate` takes (``none`` holds nothing out)."""

OPTIONS_EXAMPLE = {
    "model_kwargs": "{'gears': {'hidden': 32}}",
    "train_kwargs": "{'gears': {'max_epochs': 20}}",
}
"""An example of each per-model option of :func:`evaluate` (the model's, its fit's)."""


def _options_by_model(name: str, given: object) -> dict[str, dict[str, Any]]:
    """``given`` (``model_kwargs``, ``train_kwargs``) as model name -> its options."""
    if given is None:
        return {}
    if not isinstance(given, Mapping) or not all(isinstance(v, Mapping) for v in given.values()):
        raise PerturbsimError(
            f"{name} must map model names to dicts of their options, e.g. "
            f"{OPTIONS_EXAMPLE[name]}, got {shown(given)}"
        )
    return {str(model): dict(options) for model, options in given.items()}


def _split_options(given: object) -> dict[str, Any]:
    """``split_kwargs`` checked against :func:`perturbsim.pp.split`'s options."""
    if given is None:
        return {}
    settable = sorted(set(inspect.signature(split_screen).parameters) - SET_BY_EVALUATE)
    if not isinstance(given, Mapping):
        raise PerturbsimError(
            f"split_kwargs must map split's options to values, got {shown(given)}"
        )
    refused = sorted(set(map(str, given)) - set(settable))
    why = []
    own = [key for key in refused if key in SET_BY_EVALUATE]
    if own:
        why.append(f"{shown_list(own, 4)}, which evaluate sets itself (split=, seeds=)")
    unknown = [key for key in refused if key not in SET_BY_EVALUATE]
    if unknown:
        why.append(f"{shown_list(unknown, 5)}, which perturbsim.pp.split does not take")
    if why:
        raise PerturbsimError(
            f"split_kwargs cannot give {' nor '.join(why)}; it takes {', '.join(settable)}"
        )
    return dict(given)


def _resolve_models(
    models: str | Sequence[str] | Mapping[str, ModelFactory],
    model_kwargs: Mapping[str, dict[str, Any]],
) -> dict[str, Builder]:
    """Name -> ``build(adata, seed)``, in evaluation order."""
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if isinstance(models, type) or not isinstance(models, Iterable):  # one model, or its class
        models = [models]
    if not isinstance(models, Mapping):
        given = next((m for m in models if not isinstance(m, str)), None)
        if given is not None:
            what = (
                f"the class {given.__name__}" if isinstance(given, type) else type(given).__name__
            )
            raise PerturbsimError(
                "models takes catalogue names (e.g. ['stacked', 'mean']) or a mapping of "
                f"name -> factory(adata) building an unfitted model, got {what} (evaluate "
                "fits every model on each split itself)"
            )
    names = [str(m) for m in models]
    if not names:
        raise PerturbsimError("no models to evaluate")
    if len(set(names)) != len(names):
        raise PerturbsimError(f"models repeat: {names}")
    reserved = [name for name in names if name in RESERVED_NAMES]
    if reserved:
        raise PerturbsimError(
            f"model name {reserved[0]!r} is a row of the evaluation's own (the split-half "
            "replicate, or the measured interactions): name the model otherwise"
        )
    unknown_kw = sorted(set(model_kwargs) - set(names))
    if unknown_kw:
        raise PerturbsimError(f"model_kwargs names models not evaluated: {unknown_kw}")
    if isinstance(models, Mapping):
        odd = next((name for name, factory in models.items() if not callable(factory)), None)
        if odd is not None:
            raise PerturbsimError(
                f"models[{odd!r}] must be a factory(adata, **options) building an unfitted "
                f"model, got {type(models[odd]).__name__}"
            )
        return {
            str(name): _from_factory(factory, dict(model_kwargs.get(name, {})))
            for name, factory in models.items()
        }
    return {name: _from_catalogue(name, dict(model_kwargs.get(name, {}))) for name in names}


def _check_catalogue_options(
    names: Sequence[str],
    model_kwargs: Mapping[str, dict[str, Any]],
    train_kwargs: Mapping[str, dict[str, Any]],
) -> None:
    """Refuse, before any split is fitted, an option a catalogue model does not take."""
    for name in names:
        cls, preset = resolve_model(name)  # raises, naming an unknown model
        options = {**preset, **model_kwargs.get(name, {})}
        for given, accepted, what in (
            (model_kwargs.get(name, {}), cls.option_names_of(options), "option"),
            (train_kwargs.get(name, {}), cls.fit_options_of(options), "fit option"),
        ):
            unknown = [key for key in given if key not in accepted]
            if unknown:
                raise PerturbsimError(
                    f"model {name!r} has no {what} {unknown[0]!r} (its {what}s: "
                    f"{shown_list(list(accepted), 12) if accepted else 'none'})"
                )


def _working_copy(adata: AnnData) -> AnnData:
    """A screen of ``adata``'s cells whose ``obs``, ``var`` and ``uns`` can be written freely.

    In memory, its ``X`` is ``adata``'s (shared, not copied), or the layer the stored
    statistics were computed from, if any (:func:`perturbsim.pp.pseudobulk`'s ``layer``). A
    backed screen's copy is backed by the same file, opened again read-only with ``X`` left
    on disk: close it (:func:`_close`) when done.
    """
    layer = stored_layer(adata)
    uns = dict(adata.uns)
    uns[UNS] = {k: v for k, v in adata.uns.get(UNS, {}).items() if k not in DERIVED_UNS}
    if adata.isbacked and layer is None and not adata.is_view:
        return backed_copy(adata, uns)
    if adata.isbacked and adata.is_view and layer is None:
        warn_backed_view(adata, "evaluate")
    matrix = stored_matrix(adata, layer)
    if layer is not None:
        logger.warning("evaluating on adata.layers[%r], the layer of the stored statistics", layer)
    return AnnData(X=matrix, obs=adata.obs.copy(), var=adata.var.copy(), uns=uns)


def _close(work: AnnData) -> None:
    """Close the file of a working copy that leaves ``X`` on disk (:func:`_working_copy`)."""
    if work.isbacked:
        work.file.close()


def _reference_mean(stats: PseudobulkStats, train: Sequence[str]) -> np.ndarray:
    """Mean expression of the perturbed training conditions (Systema's reference)."""
    perturbed = [c for c in train if genes_of(c)]
    if not perturbed:
        raise PerturbsimError(NO_TRAINING_PERTURBATION)
    return stats.mean[stats.index(perturbed)].mean(axis=0)


def _with_enough_cells(
    subgroups: Mapping[str, list[str]], stats: PseudobulkStats, min_cells: int, seed: int
) -> dict[str, list[str]]:
    """``subgroups`` without the conditions of fewer than ``min_cells`` cells (warned of).

    Raises when no test condition is left.
    """
    cells = dict(zip(map(str, stats.conditions), stats.n_cells, strict=True))
    few = {c for members in subgroups.values() for c in members if cells[c] < min_cells}
    if few:
        logger.warning(
            "seed %d: left out %s of fewer than %d cells (min_cells): the mean of so few "
            "cells is mostly noise, and no split-half replicate anchors it: %s",
            seed,
            counted(len(few), "test condition"),
            min_cells,
            shown_list([c for members in subgroups.values() for c in members if c in few], 10),
        )
    kept = {g: [c for c in members if c not in few] for g, members in subgroups.items()}
    kept = {g: members for g, members in kept.items() if members}
    if not kept:
        raise PerturbsimError(
            f"seed {seed}: every test condition has fewer than {min_cells} cells "
            "(min_cells): nothing to score; pass a lower min_cells to score them anyway"
        )
    return kept


def _prepare(
    adata: AnnData,
    seed: int,
    *,
    split: str,
    split_kwargs: Mapping[str, Any],
    n_de: int,
    exclude_targets: bool,
    min_cells: int = MIN_REPLICATE_CELLS,
) -> _PreparedSeed:
    """Split a working copy, then compute its statistics and DE genes.

    With ``exclude_targets``, each condition's DE genes are ranked without its own targets.
    Test conditions of fewer than ``min_cells`` cells are left out (warned of): the mean of
    so few cells is mostly noise.
    """
    work = _working_copy(adata)
    try:
        split_screen(work, kind=split, seed=seed, **split_kwargs)
        pseudobulk(work)
        rank_de(work, n_genes=n_de)
        stats = PseudobulkStats.from_adata(work)
        plan = Split.from_adata(work)
        de = DEGenes.from_adata(work)
        subgroups = _with_enough_cells(plan.subgroups, stats, min_cells, seed)
        test = [c for members in subgroups.values() for c in members]
        return _PreparedSeed(
            seed=seed,
            work=work,
            stats=stats,
            subgroups=subgroups,
            test=test,
            subgroup_of={c: g for g, members in subgroups.items() for c in members},
            de_genes={
                c: de.top_genes(c, non_dropout=True, exclude=genes_of(c) if exclude_targets else ())
                for c in test
            },
            reference=_reference_mean(stats, plan.train),
        )
    except BaseException:
        _close(work)
        raise


def _labelled_scores(
    pred: AnnData,
    truth: AnnData | PseudobulkStats,
    prepared: _PreparedSeed,
    name: str,
    *,
    metrics: Sequence[str] | None,
    exclude_targets: bool,
    de_genes: Mapping[str, Sequence[str]],
    comparison: Sequence[str],
    control_mean: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`score` of ``pred`` against ``truth``, behind ``model`` and ``seed`` columns.

    ``comparison``: the conditions every prediction is told apart from (the seed's test
    conditions the anchors are scored on), whichever subset the model predicts.
    """
    scores = score(
        pred,
        truth,
        control_mean=control_mean,
        de_genes=de_genes,
        reference_mean=prepared.reference,
        metrics=metrics,
        exclude_targets=exclude_targets,
        comparison=comparison,
    )
    scores.insert(0, "seed", prepared.seed)
    scores.insert(0, "model", name)
    scores.insert(2, "subgroup", scores["condition"].map(prepared.subgroup_of))
    return scores


def _scored_tables(
    pred: AnnData | None,
    prepared: _PreparedSeed,
    name: str,
    metrics: Sequence[str] | None,
    exclude_targets: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None] | None:
    """A model's scores, changes on the DE genes and uncertainty rows; None without a prediction."""
    if pred is None:
        return None
    table = _labelled_scores(
        pred,
        prepared.stats,
        prepared,
        name,
        metrics=metrics,
        exclude_targets=exclude_targets,
        de_genes=prepared.de_genes,
        comparison=prepared.test,
    )
    trust = uncertainty_table(
        pred,
        prepared.stats,
        prepared.de_genes,
        prepared.subgroup_of,
        model=name,
        seed=prepared.seed,
        exclude_targets=exclude_targets,
    )
    return table, _de_changes(pred, prepared, name), trust


def _history(model: PerturbationModel, name: str, seed: int) -> pd.DataFrame | None:
    """The model's training history behind ``model`` and ``seed`` columns; None without one."""
    history = getattr(model, "history", None)
    if not isinstance(history, pd.DataFrame) or history.empty:
        return None
    history = history.copy()
    history.insert(0, "seed", seed)
    history.insert(0, "model", name)
    return history


def _de_changes(
    pred: AnnData,
    prepared: _PreparedSeed,
    name: str,
    *,
    measured: AnnData | None = None,
    de_genes: Mapping[str, Sequence[str]] | None = None,
    control_mean: np.ndarray | None = None,
) -> pd.DataFrame:
    """Predicted and measured change over control on each condition's DE genes.

    ``measured``: the measured means, one row per condition of ``pred`` in the screen's
    genes; default: the statistics' means. ``de_genes``: each condition's DE genes;
    default: the seed's. ``control_mean``: the control both changes are over, as the scores
    took it; default: the statistics'.
    """
    de_genes = prepared.de_genes if de_genes is None else de_genes
    stats = prepared.stats
    control = np.asarray(
        stats.control_mean if control_mean is None else control_mean, dtype=np.float64
    )
    col = {g: i for i, g in enumerate(map(str, stats.genes))}
    pred_col = {g: i for i, g in enumerate(map(str, pred.var_names))}
    predicted = _predicted_means(
        _stored_predictions(pred), control[[col[g] for g in pred.var_names]]
    )
    if measured is None:
        measured_means = stats.mean[stats.index([str(c) for c in pred.obs_names])]
    else:
        measured_means = np.asarray(measured.X, dtype=np.float64)
    frames = []
    for i, cond in enumerate(map(str, pred.obs_names)):
        genes = [g for g in de_genes[cond] if g in pred_col]
        p = predicted[i, [pred_col[g] for g in genes]] - control[[col[g] for g in genes]]
        m = measured_means[i, [col[g] for g in genes]] - control[[col[g] for g in genes]]
        frames.append(
            pd.DataFrame(
                {
                    "model": name,
                    "seed": prepared.seed,
                    "subgroup": prepared.subgroup_of[cond],
                    "condition": cond,
                    "gene": genes,
                    "predicted": p,
                    "measured": m,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CHANGE_COLUMNS)


def _means_as_anndata(means: np.ndarray, conditions: list[str], genes: np.ndarray) -> AnnData:
    """Mean profiles, one row per condition, as the AnnData that :func:`score` compares."""
    return AnnData(
        X=np.asarray(means, dtype=np.float64),
        obs=pd.DataFrame(index=pd.Index(conditions)),
        var=pd.DataFrame(index=pd.Index(np.asarray(genes, dtype=str))),
    )


def _replicate_tables(
    prepared: _PreparedSeed,
    metrics: Sequence[str] | None,
    *,
    n_de: int,
    exclude_targets: bool,
) -> tuple[pd.DataFrame, list[tuple], pd.DataFrame]:
    """Scores, coverage rows and DE changes of the split-half replicate of one seed.

    Each test condition's cells were split in two random halves in the statistics pass
    (``pp.pseudobulk(half_seed=...)``), control cells too; the change over control
    measured in the first half is scored as a prediction of the change measured in the
    second, with every metric. Everything on the "measured" side comes from the second half
    alone (its control mean, its DE genes, ranked as a model's are on the data it is scored
    against), so the two sides share no cell and no noise: ranking DE genes on both halves,
    or sharing the control mean, would favour genes whose noise the halves share. The values
    are those of the halves; summaries map them, condition by condition, to a full-depth
    repeat of the experiment (see :meth:`EvaluationResult.per_seed`).
    Conditions with fewer than :data:`MIN_REPLICATE_CELLS` cells (scored by the models only
    with a lower ``min_cells``) are flagged (logged, not covered), not scored.
    """
    stats = prepared.stats
    rows = stats.index(prepared.test)
    splittable = stats.n_cells[rows] >= MIN_REPLICATE_CELLS
    scored = [c for c, ok in zip(prepared.test, splittable, strict=True) if ok]
    flagged = [c for c, ok in zip(prepared.test, splittable, strict=True) if not ok]
    if flagged:
        logger.warning(
            "seed %d: %s fewer than %d cells, too few for a split-half "
            "replicate (the models are scored on them, as min_cells asked; the replicate "
            "skips them): %s",
            prepared.seed,
            counted(len(flagged), "test condition has", "test conditions have"),
            MIN_REPLICATE_CELLS,
            shown_list(flagged, 10),
        )
    coverage = [
        (REPLICATE, prepared.seed, group, sum(c in set(scored) for c in members), len(members))
        for group, members in prepared.subgroups.items()
    ]
    if not scored:
        return pd.DataFrame(columns=SCORE_COLUMNS), coverage, pd.DataFrame(columns=CHANGE_COLUMNS)
    predicting, measured = stats.half(0), stats.half(1)
    kept = rows[splittable]
    # the first half's change over its own control cells, added to the second half's control
    change = predicting.delta[kept]
    first = _means_as_anndata(measured.control_mean + change, scored, stats.genes)
    second = _means_as_anndata(measured.mean[kept], scored, stats.genes)
    top = top_de_indices(measured, scored, n_genes=n_de, exclude_targets=exclude_targets)
    de_genes = {
        c: [str(stats.genes[i]) for i in order if i >= 0]
        for c, order in zip(scored, top, strict=True)
    }
    table = _labelled_scores(
        first,
        second,
        prepared,
        REPLICATE,
        metrics=metrics,
        exclude_targets=exclude_targets,
        de_genes=de_genes,
        comparison=scored,  # the second half's means of the conditions it can split
        control_mean=measured.control_mean,
    )
    changes = _de_changes(
        first,
        prepared,
        REPLICATE,
        measured=second,
        de_genes=de_genes,
        control_mean=measured.control_mean,
    )
    return table, coverage, changes


def _concat(frames: Sequence[pd.DataFrame], columns: list[str] | None) -> pd.DataFrame:
    """Row-bind the non-empty frames; an empty frame with ``columns`` when there are none."""
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _check_predicted(pred: AnnData | None, asked: list[str]) -> None:
    """Refuse a prediction without a row for each condition asked (a model breaking its word).

    Its coverage would otherwise count the conditions left out as predicted, unscored.
    """
    if pred is None:
        return
    rows = set(map(str, pred.obs_names))
    missing = [c for c in asked if c not in rows]
    if missing:
        raise PerturbsimError(
            f"it predicted {len(asked) - len(missing)} of the {len(asked)} conditions asked, "
            f"which it says it covers; missing: {shown_list(missing, 5)}"
        )


def evaluate_seed(
    adata: AnnData,
    seed: int,
    builders: Mapping[str, Builder],
    *,
    split: str = "simulation",
    split_kwargs: Mapping[str, Any] | None = None,
    train_kwargs: Mapping[str, dict[str, Any]] | None = None,
    n_de: int = 20,
    metrics: Sequence[str] | None = None,
    exclude_targets: bool = True,
    on_error: str = "raise",
    replicate: bool = True,
    gi: bool = True,
    gi_k: int = 10,
    min_cells: int = MIN_REPLICATE_CELLS,
    simulated: AnnData | None = None,
    bar: tqdm | None = None,
) -> SeedTables:
    """Split, summarise and DE-rank a copy of the screen for one seed; fit and score each model.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`, in memory or backed; not modified.
    seed
        Split seed; also the seed of every catalogue model (see :func:`evaluate`).
    builders
        Model name -> ``build(adata, seed)`` returning an unfitted model.
    split, split_kwargs, train_kwargs, n_de, metrics, exclude_targets, on_error, replicate
        As for :func:`evaluate`.
    gi, gi_k, min_cells
        As for :func:`evaluate`.
    simulated
        The simulator's noiseless profiles, the truth of the GI precision; None: the
        measured means.
    bar
        Progress bar advanced by one per model.

    Returns
    -------
    The seed's tables (see :class:`EvaluationResult`); ``scores`` and ``coverage`` in run
    order, not yet sorted.
    """
    prepared = _prepare(
        adata,
        seed,
        split=split,
        split_kwargs=split_kwargs or {},
        n_de=n_de,
        exclude_targets=exclude_targets,
        min_cells=min_cells,
    )
    try:
        return _fit_and_score(
            prepared,
            builders,
            train_kwargs=train_kwargs or {},
            n_de=n_de,
            metrics=metrics,
            exclude_targets=exclude_targets,
            on_error=on_error,
            replicate=replicate,
            gi=gi,
            gi_k=gi_k,
            min_cells=min_cells,
            simulated=simulated,
            bar=bar,
        )
    finally:
        _close(prepared.work)  # a backed screen's own handle


def _fit_and_score(
    prepared: _PreparedSeed,
    builders: Mapping[str, Builder],
    *,
    train_kwargs: Mapping[str, dict[str, Any]],
    n_de: int,
    metrics: Sequence[str] | None,
    exclude_targets: bool,
    on_error: str,
    replicate: bool,
    gi: bool,
    gi_k: int,
    min_cells: int,
    simulated: AnnData | None,
    bar: tqdm | None,
) -> SeedTables:
    """Fit and score each model on a prepared seed, then the replicate (:func:`evaluate_seed`)."""
    seed = prepared.seed
    test = prepared.test
    scores, changes, histories, gi_tables, uncertainty = [], [], [], [], []
    coverage, timings, failures = [], [], []
    truth = GITruth(prepared.stats, test, seed, simulated, min_cells=min_cells) if gi else None
    for name, build in builders.items():
        if bar is not None:
            bar.set_postfix(seed=seed, model=name)
        t0 = time.perf_counter()
        stage = "fit"
        try:
            model = build(prepared.work, seed)
            model.fit(**train_kwargs.get(name, {}))
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            stage = "predict"
            covered = (
                [c for c, ok in zip(test, model.covers(test), strict=True) if ok] if test else []
            )
            if test and not covered:
                logger.warning(
                    "%s can predict none of the %d test conditions of split seed %d: it is "
                    "scored nowhere (see the coverage)",
                    name,
                    len(test),
                    seed,
                )
            pred = model.predict(covered) if covered else None
            _check_predicted(pred, covered)
            predict_s = time.perf_counter() - t0
            stage = "score"
            scored = _scored_tables(pred, prepared, name, metrics, exclude_targets)
            stage = "score interactions"
            gi_table = truth.of_model(name, model, gi_k) if truth is not None else None
        except Exception as err:
            error = error_reason(err)  # one line: a table row of the report
            message = f"model {name!r} failed to {stage} on split seed {seed}: {error}"
            if on_error == "raise":
                raise PerturbsimError(message) from err
            logger.warning("%s (skipped)", message)
            failures.append((name, seed, stage, error))
            if bar is not None:
                bar.update()
            continue
        covered_set = set(covered)
        coverage += [
            (name, seed, group, sum(c in covered_set for c in members), len(members))
            for group, members in prepared.subgroups.items()
        ]
        if scored is not None:
            table, change_rows, trust = scored
            scores.append(table)
            changes.append(change_rows)
            if trust is not None:
                uncertainty.append(trust)
        if gi_table is not None:
            gi_tables.append(gi_table)
        timings.append((name, seed, fit_s, predict_s))
        history = _history(model, name, seed)
        if history is not None:
            histories.append(history)
        logger.info(
            "seed %d, %s: %d/%d test conditions covered (fit %.1fs)",
            seed,
            name,
            len(covered),
            len(test),
            fit_s,
        )
        if bar is not None:
            bar.update()
    if replicate:
        table, rows, replicate_changes = _replicate_tables(
            prepared, metrics, n_de=n_de, exclude_targets=exclude_targets
        )
        scores.append(table)
        coverage += rows
        changes.append(replicate_changes)
    if truth is not None and (replicate or truth.simulated is not None):
        gi_tables.append(truth.of_measurement(gi_k))
    return SeedTables(
        scores=_concat(scores, SCORE_COLUMNS),
        coverage=pd.DataFrame(coverage, columns=COVERAGE_COLUMNS),
        changes=_concat(changes, CHANGE_COLUMNS),
        histories=_concat(histories, None),
        timings=pd.DataFrame(timings, columns=TIMING_COLUMNS),
        failures=pd.DataFrame(failures, columns=FAILURE_COLUMNS),
        gi=_concat([t for t in gi_tables if t is not None], GI_COLUMNS),
        uncertainty=_concat(uncertainty, UNCERTAINTY_COLUMNS),
    )


def evaluate(
    adata: AnnData,
    *,
    models: str | Sequence[str] | Mapping[str, ModelFactory] = DEFAULT_MODELS,
    split: str = "simulation",
    seeds: int | Sequence[int] = 5,
    split_kwargs: dict[str, Any] | None = None,
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    train_kwargs: dict[str, dict[str, Any]] | None = None,
    n_de: int = 20,
    metrics: Sequence[str] | None = None,
    exclude_targets: bool = True,
    on_error: str = "raise",
    replicate: bool = True,
    gi: bool = True,
    gi_k: int = 10,
    min_cells: int = MIN_REPLICATE_CELLS,
) -> EvaluationResult:
    """Train every model on every split seed and score it on each test subgroup.

    For each seed (:func:`evaluate_seed`): split the conditions
    (:func:`perturbsim.pp.split`), compute the pseudobulk statistics after the split
    (co-expression from training cells only), rank the top ``n_de`` DE genes of each
    condition among GEARS's non-dropout genes (:func:`perturbsim.pp.rank_de`; by default
    without the condition's own targets), then build each model, fit it
    (``model.fit(**train_kwargs[name])``) and query it. A model is asked
    only for the test conditions it :meth:`~perturbsim.models.PerturbationModel.covers`;
    the others get no rows (see :attr:`EvaluationResult.coverage`). Truth is the measured
    pseudobulk mean of each test condition; the reference of ``pearson_delta_pert`` is the
    mean of the perturbed training conditions. ``adata`` is not modified.

    Beside the models stands the screen's own noise ceiling, the row ``"replicate"``: each
    test condition's cells are split in two random halves in the statistics pass, and the
    change of one half over its own control half, added to the other's control, is scored
    as a prediction of the other half with every metric (test
    conditions of fewer than ``min_cells`` cells, by default the 4 a replicate needs, are
    left out altogether). With the ``"mean"`` baseline among the
    models, :meth:`EvaluationResult.calibrated` places every model between the two anchors.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`: in memory, backed
        (:func:`perturbsim.ds.read`'s ``backed=True``: each seed streams its file again,
        which stays as it is), or lazily read (a dask ``X``). Its cells are read from ``X``,
        or, when its stored statistics were computed from a layer
        (:func:`perturbsim.pp.pseudobulk`'s ``layer``), from that layer (a warning says so).
    models
        Names from the model catalogue (:func:`perturbsim.models.list_models`: registered
        models such as ``"gears"``, ``"additive"``, ``"linear"``, ``"mean"``, ``"grn"``,
        ``"no_perturb"`` and variants such as ``"gears_reference"``, ``"gears_residual"``),
        as a list or a comma-separated string; default
        :data:`perturbsim.models.DEFAULT_MODELS`. Or a mapping name -> factory
        ``f(adata, **model_kwargs[name])`` returning an unfitted model. A model is given the
        whole screen with the split marked in it, the held-out cells included: the
        catalogue's models fit on the training and validation conditions only (a test
        scrambles the held-out cells and finds every prediction the same); a model of your
        own must do so too. ``"replicate"`` and ``"measured"`` name rows of the evaluation's
        own, not models.
    split
        Kind of split (``"simulation"``, ``"single"``, ``"combo"``, ``"custom"``; not
        ``"none"``, which holds nothing out).
    seeds
        Number of split seeds (seeds ``1..n``, as in GEARS) or the seeds themselves.
        Catalogue models are built with the split seed unless ``model_kwargs`` sets one;
        factories get no seed.
    split_kwargs
        Further arguments of :func:`perturbsim.pp.split`.
    model_kwargs
        Model name -> constructor arguments, e.g. ``{"linear": {"n_components": 5}}``;
        they override a variant's.
    train_kwargs
        Model name -> fit options (``model.fit(**train_kwargs[name])``), e.g.
        ``{"gears": {"max_epochs": 20}}``.
    n_de
        Number of top DE genes per condition for the ``*_de`` metrics: ranked by Welch t on
        the condition's own measured cells against control (as GEARS ranks them), the cells
        each prediction is scored against; no model is fitted on them.
    metrics
        Metric names (:func:`perturbsim.tl.list_metrics`); default: every registered metric
        whose inputs a model's predictions provide.
    exclude_targets
        Leave the perturbed genes out of every metric (see :func:`perturbsim.tl.score`)
        and rank each condition's ``n_de`` DE genes without its own targets; ``False``
        keeps the targets in both.
    on_error
        A model failing on a seed (to fit, to predict, or its predictions to be scored or
        their interactions: a non-finite prediction, say): ``"raise"`` an error naming
        the model, seed and stage, or ``"skip"`` that run (logged as a warning and listed
        in :attr:`EvaluationResult.failures`; the model gets no rows for that seed).
    replicate
        Score the split-half replicate as the row ``"replicate"`` (of the scores, and of
        the interactions where their truth is the measured means).
    gi
        Score how well each model ranks the genetic interactions of the test pairs
        (:attr:`EvaluationResult.gi`): the test pairs are scored by Norman's model
        (:func:`perturbsim.tl.gi_scores`, on the genes whose control mean exceeds
        Norman's 0.5, or every expressed gene where fewer than 20 do) from
        the simulator's noiseless truth when the screen is simulated, else from the
        measured means (pairs whose singles were measured); each model's predictions of the
        pairs and their singles are scored the same way and compared by
        :func:`perturbsim.tl.gi_precision` (``random_*`` columns: a random ranking). On a
        simulated screen the row ``"measured"`` ranks by the measured means; elsewhere the
        row ``"replicate"`` ranks by one random half of the cells' means against the other
        half's (the measurement's own reproducibility). A pair whose measured mean, or a
        measured single's, averages fewer than ``min_cells`` cells is not scored from the
        measured means (the truth, or these rows).
    gi_k
        Pairs taken from the top of each subtype's ranking (precision@k).
    min_cells
        Test conditions of fewer cells are left out of every model's scores, with a
        warning: the mean of so few cells is mostly noise, and below
        :data:`MIN_REPLICATE_CELLS` (the default) no split-half replicate anchors it.
        1 scores them all (the replicate still skips those it cannot split). The GI
        scoring of measured means leaves out the pairs it reaches (``gi``). Training and
        validation conditions of fewer than 4 cells are left out by every model itself
        (warned of), while the test subgroups follow the split: a gene measured alone only
        in such a condition still counts as seen there.

    Returns
    -------
    The scores, coverage, per-gene changes, training histories and timings; see
    :class:`EvaluationResult` (``summary()``; ``write(out_dir)`` writes the tables,
    :func:`perturbsim.io.write_report` adds plots and a Markdown report).

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> result = ps.tl.evaluate(adata, models=["additive", "mean"], seeds=2)
    >>> sorted(result.scores["subgroup"].unique())
    ['combo_seen0', 'combo_seen1', 'combo_seen2', 'unseen_single']
    """
    check_setup(adata)
    seed_list = resolve_seeds(seeds, first=1)
    model_kwargs = _options_by_model("model_kwargs", model_kwargs)
    train_kwargs = _options_by_model("train_kwargs", train_kwargs)
    split_kwargs = _split_options(split_kwargs)
    builders = _resolve_models(models, model_kwargs)
    names = list(builders)
    if not isinstance(models, Mapping):  # first: a mistyped name, before unexplained options
        _check_catalogue_options(names, model_kwargs, train_kwargs)
    unknown_train = sorted(set(train_kwargs) - set(names))
    if unknown_train:
        raise PerturbsimError(f"train_kwargs names models not evaluated: {unknown_train}")
    metrics = checked_metric_names(metrics)
    if on_error not in ("raise", "skip"):
        raise PerturbsimError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    gi_k = check_count("gi_k", gi_k)
    n_de = check_count("n_de", n_de)
    min_cells = check_count("min_cells", min_cells)
    exclude_targets = check_flag("exclude_targets", exclude_targets)
    replicate, gi = check_flag("replicate", replicate), check_flag("gi", gi)
    if split == "none":
        raise PerturbsimError("split='none' holds nothing out: there is nothing to score")
    if split not in EVALUATED_SPLITS:
        raise PerturbsimError(f"split must be one of {list(EVALUATED_SPLITS)}, got {split!r}")
    simulated = simulated_truth(adata) if gi else None

    bar = tqdm(
        total=len(seed_list) * len(names),
        desc="evaluate",
        unit="run",
        disable=progress_disabled(),
    )
    with each_warning_once(), switched_off(WARN_UNSUPPORTED):  # unsupported tests: the benchmark
        try:
            parts = [
                evaluate_seed(
                    adata,
                    seed,
                    builders,
                    split=split,
                    split_kwargs=split_kwargs,
                    train_kwargs=train_kwargs,
                    n_de=n_de,
                    metrics=metrics,
                    exclude_targets=exclude_targets,
                    on_error=on_error,
                    replicate=replicate,
                    gi=gi,
                    gi_k=gi_k,
                    min_cells=min_cells,
                    simulated=simulated,
                    bar=bar,
                )
                for seed in seed_list
            ]
        finally:
            bar.close()
    if replicate:
        names = [*names, REPLICATE]

    return EvaluationResult(
        scores=_ordered(
            _concat([p.scores for p in parts], SCORE_COLUMNS),
            names,
            ["model", "seed", "subgroup", "condition", "metric"],
        )[SCORE_COLUMNS],
        coverage=_ordered(
            _concat([p.coverage for p in parts], COVERAGE_COLUMNS),
            names,
            ["model", "seed", "subgroup"],
        ),
        changes=_concat([p.changes for p in parts], CHANGE_COLUMNS),
        histories=_concat([p.histories for p in parts], None),
        timings=_concat([p.timings for p in parts], TIMING_COLUMNS),
        failures=_concat([p.failures for p in parts], FAILURE_COLUMNS),
        gi=_concat([p.gi for p in parts], GI_COLUMNS),
        uncertainty=_concat([p.uncertainty for p in parts], UNCERTAINTY_COLUMNS),
        settings={
            "models": names,
            "split": split,
            "seeds": seed_list,
            "n_de": int(n_de),
            "exclude_targets": bool(exclude_targets),
            "replicate": bool(replicate),
            "gi_k": int(gi_k) if gi else None,
            "min_cells": int(min_cells),
            "metrics": list(metrics) if metrics is not None else None,
            "n_cells": int(adata.n_obs),
            "n_genes": int(adata.n_vars),
            "n_conditions": int(adata.obs[CONDITION].nunique()),
        },
    )
