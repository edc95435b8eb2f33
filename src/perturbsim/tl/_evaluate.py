"""Evaluation runner: every model on every split seed, scored per test subgroup.

For each split seed the screen is split (:func:`perturbsim.pp.split`), its pseudobulk
statistics are computed *after* the split (so the co-expression moments come from training
cells only), the top DE genes of every condition are ranked (:func:`perturbsim.pp.rank_de`),
and each model is built, fitted on the training conditions and asked for the test conditions
it :meth:`~perturbsim.models.PerturbationModel.covers`. Predictions are scored with
:func:`perturbsim.tl.score` against the measured pseudobulk means of the test conditions.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats as sps
from tqdm.auto import tqdm

from .._errors import PerturbsimError
from .._keys import UNS
from .._settings import progress_disabled
from ..models import MODEL_REGISTRY, PerturbationModel
from ..pp import DEGenes, PseudobulkStats, genes_of, pseudobulk, rank_de
from ..pp._setup import check_setup
from ..pp._split import Split
from ..pp._split import split as split_screen
from ._metrics import METRICS, _predicted_means, score

logger = logging.getLogger(__name__)

DEFAULT_MODELS = ("gears", "gears_residual", "additive", "linear", "mean", "grn", "no_perturb")
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gears_reference": ("gears", {"prior": "none", "target_prior": False}),
    "gears_cold_start": ("gears", {"cold_start": 0.5}),
    "gears_residual": ("gears", {"additive_residual": True}),
    "gears_ensemble": ("gears", {"n_models": 5}),
    "gears_residual_ensemble": ("gears", {"additive_residual": True, "n_models": 5}),
}
"""Named GEARS options for ablations: name -> (registry name, keyword arguments).

``gears_reference`` is the reference parametrisation (no mean or target prior);
``gears_cold_start`` hides half of the GO nodes at each training step; ``gears_residual``
learns only the interaction on top of measured singles; ``gears_ensemble`` averages five
networks trained from consecutive seeds."""
SUBGROUP_ORDER = ("unseen_single", "seen_single", "combo_seen0", "combo_seen1", "combo_seen2")
"""Test subgroups in report order; others (``combo3_seen1``, ...) follow, sorted."""

ModelFactory = Callable[[AnnData], PerturbationModel]

SCORE_COLUMNS = ["model", "seed", "subgroup", "condition", "metric", "value"]
COVERAGE_COLUMNS = ["model", "seed", "subgroup", "n_covered", "n_total"]
CHANGE_COLUMNS = ["model", "seed", "subgroup", "condition", "gene", "predicted", "measured"]
FAILURE_COLUMNS = ["model", "seed", "stage", "error"]
SUMMARY_COLUMNS = [
    "model",
    "subgroup",
    "metric",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "n_seeds",
    "n_conditions",
]


def order_subgroups(subgroups: Sequence[str]) -> list[str]:
    """Sort subgroup names: unseen singles, then pairs by seen genes, then the rest."""
    unique = list(dict.fromkeys(map(str, subgroups)))
    known = [s for s in SUBGROUP_ORDER if s in unique]
    return known + sorted(s for s in unique if s not in SUBGROUP_ORDER)


def _ordered(frame: pd.DataFrame, models: Sequence[str], by: list[str]) -> pd.DataFrame:
    """Sort ``frame`` by model (given order), subgroup (report order), metric (registry)."""
    if frame.empty:
        return frame.reset_index(drop=True)
    keys = frame.copy()
    keys["_model"] = keys["model"].map({m: i for i, m in enumerate(models)})
    if "subgroup" in keys:
        groups = order_subgroups(keys["subgroup"].unique())
        keys["_subgroup"] = keys["subgroup"].map({s: i for i, s in enumerate(groups)})
    if "metric" in keys:
        rank = {m: i for i, m in enumerate(METRICS)}
        keys["_metric"] = keys["metric"].map(lambda m: rank.get(m, len(rank)))
    sort = [{"model": "_model", "subgroup": "_subgroup", "metric": "_metric"}.get(c, c) for c in by]
    keys = keys.sort_values(sort, kind="stable")
    return frame.loc[keys.index].reset_index(drop=True)


@dataclass
class EvaluationResult:
    """Scores of every model on every split seed (see :func:`evaluate`).

    Attributes
    ----------
    scores
        Tidy table, one row per model, seed, test condition and metric: ``model``, ``seed``,
        ``subgroup``, ``condition``, ``metric``, ``value``.
    coverage
        ``model``, ``seed``, ``subgroup``, ``n_covered``, ``n_total``: how many test
        conditions of each subgroup the model could predict.
    changes
        Predicted and measured change over control on each scored condition's top DE genes:
        ``model``, ``seed``, ``subgroup``, ``condition``, ``gene``, ``predicted``,
        ``measured`` (for plots such as :func:`perturbsim.pl.predicted_vs_true`).
    histories
        Training history of the models that keep one (GEARS): ``model``, ``seed``,
        ``member`` (ensemble member), ``epoch``, ``train_loss``, ``val_loss``, ``lr``.
    timings
        ``model``, ``seed``, ``fit_s``, ``predict_s`` (wall seconds; ``fit_s`` includes
        building the model and its graphs, ``predict_s`` scoring).
    failures
        Runs skipped with ``on_error="skip"``: ``model``, ``seed``, ``stage`` (``"fit"``
        or ``"predict"``), ``error``.
    settings
        How the evaluation ran: ``models``, ``split``, ``seeds``, ``n_de``, ``metrics`` and
        the screen's ``n_cells``, ``n_genes``, ``n_conditions``.
    """

    scores: pd.DataFrame
    coverage: pd.DataFrame
    changes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHANGE_COLUMNS))
    histories: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FAILURE_COLUMNS))
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        """Model names in evaluation order."""
        listed = self.settings.get("models")
        return list(listed) if listed else list(dict.fromkeys(self.coverage["model"]))

    @property
    def subgroups(self) -> list[str]:
        """Test subgroups seen in any seed, in report order."""
        return order_subgroups(self.coverage["subgroup"].unique())

    def per_seed(self) -> pd.DataFrame:
        """Mean over the conditions of each model, seed, subgroup and metric.

        Returns
        -------
        ``model``, ``seed``, ``subgroup``, ``metric``, ``value`` (mean of the finite
        per-condition values; NaN when none is finite) and ``n_conditions`` (finite values).
        """
        if self.scores.empty:
            return pd.DataFrame(
                columns=["model", "seed", "subgroup", "metric", "value", "n_conditions"]
            )
        keys = ["model", "seed", "subgroup", "metric"]
        grouped = self.scores.groupby(keys, sort=False, observed=True)["value"]
        table = grouped.agg(value="mean", n_conditions="count").reset_index()
        return _ordered(table, self.models, ["model", "subgroup", "metric", "seed"])

    def summary(self, *, confidence: float = 0.95) -> pd.DataFrame:
        """Mean over seeds of the per-seed means, with a t-interval over seeds.

        Each seed contributes the mean over its test conditions (:meth:`per_seed`); the
        interval is ``mean ± t(confidence, n_seeds - 1) * std / sqrt(n_seeds)`` with the
        sample standard deviation over seeds, NaN with a single seed.

        Parameters
        ----------
        confidence
            Coverage of the interval.

        Returns
        -------
        One row per ``model``, ``subgroup``, ``metric``: ``mean``, ``std``, ``ci_low``,
        ``ci_high``, ``n_seeds`` (seeds with a finite mean) and ``n_conditions`` (finite
        per-condition values over all seeds). Metrics undefined for a model (e.g. a
        correlation with the constant change of ``no_perturb``) have ``mean`` NaN and
        ``n_seeds`` 0.
        """
        if not 0 < confidence < 1:
            raise PerturbsimError(f"confidence must lie in (0, 1), got {confidence!r}")
        per_seed = self.per_seed()
        rows = []
        for (model, subgroup, metric), group in per_seed.groupby(
            ["model", "subgroup", "metric"], sort=False
        ):
            values = group["value"].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            n = len(values)
            mean = float(values.mean()) if n else float("nan")
            std = float(values.std(ddof=1)) if n > 1 else float("nan")
            if n > 1:
                half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / np.sqrt(n)
            else:
                half = float("nan")
            rows.append(
                (
                    model,
                    subgroup,
                    metric,
                    mean,
                    std,
                    mean - half,
                    mean + half,
                    n,
                    int(group["n_conditions"].sum()),
                )
            )
        table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
        return _ordered(table, self.models, ["model", "subgroup", "metric"])

    def coverage_table(self) -> pd.DataFrame:
        """Covered and total test conditions summed over seeds, per model and subgroup."""
        table = (
            self.coverage.groupby(["model", "subgroup"], sort=False)[["n_covered", "n_total"]]
            .sum()
            .reset_index()
        )
        return _ordered(table, self.models, ["model", "subgroup"])


def _resolve_seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise PerturbsimError(f"seeds must be a count or a list of seeds, got {seeds!r}")
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise PerturbsimError(f"seeds must be at least 1, got {seeds}")
        return list(range(1, int(seeds) + 1))
    resolved = [int(s) for s in seeds]
    if not resolved:
        raise PerturbsimError("seeds is empty: give a count or at least one seed")
    if len(set(resolved)) != len(resolved):
        raise PerturbsimError(f"seeds repeat: {resolved}")
    return resolved


def _resolve_models(
    models: Sequence[str] | Mapping[str, ModelFactory], model_kwargs: Mapping[str, dict]
) -> dict[str, Callable[[AnnData, int], PerturbationModel]]:
    """Name -> ``build(adata, seed)``."""
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if isinstance(models, Mapping):
        unknown_kw = sorted(set(model_kwargs) - set(models))
        if unknown_kw:
            raise PerturbsimError(f"model_kwargs names models not evaluated: {unknown_kw}")

        def from_factory(factory: ModelFactory, kwargs: dict[str, Any]):
            return lambda adata, seed: factory(adata, **kwargs)

        return {
            str(name): from_factory(factory, dict(model_kwargs.get(name, {})))
            for name, factory in models.items()
        }
    names = [str(m) for m in models]
    if not names:
        raise PerturbsimError("no models to evaluate")
    if len(set(names)) != len(names):
        raise PerturbsimError(f"models repeat: {names}")
    unknown = [m for m in names if m not in MODEL_REGISTRY and m not in VARIANTS]
    if unknown:
        raise PerturbsimError(
            f"unknown model {unknown[0]!r}; available: {sorted(MODEL_REGISTRY) + sorted(VARIANTS)}"
        )
    unknown_kw = sorted(set(model_kwargs) - set(names))
    if unknown_kw:
        raise PerturbsimError(f"model_kwargs names models not evaluated: {unknown_kw}")
    builders = {}
    for name in names:
        base, preset = VARIANTS.get(name, (name, {}))
        cls = MODEL_REGISTRY[base]
        kwargs = {**preset, **model_kwargs.get(name, {})}
        takes_seed = "seed" in inspect.signature(cls.__init__).parameters

        def build(adata: AnnData, seed: int, cls=cls, kwargs=kwargs, takes_seed=takes_seed):
            extra = {"seed": seed} if takes_seed and "seed" not in kwargs else {}
            return cls(adata, **kwargs, **extra)

        builders[name] = build
    return builders


def _working_copy(adata: AnnData) -> AnnData:
    """A copy sharing ``X`` whose ``obs``, ``var`` and ``uns`` can be written freely."""
    if adata.isbacked:
        raise PerturbsimError(
            "evaluate needs the screen in memory: read the file without backed= "
            "(or adata.to_memory())"
        )
    uns = dict(adata.uns)
    uns[UNS] = {
        k: v for k, v in adata.uns.get(UNS, {}).items() if k not in ("split", "de", "pseudobulk")
    }
    return AnnData(X=adata.X, obs=adata.obs.copy(), var=adata.var.copy(), uns=uns)


def _fit(model: PerturbationModel, kwargs: dict[str, Any]) -> None:
    trainer = getattr(model, "train", None)
    if callable(trainer):
        trainer(**kwargs)
    else:
        model.fit(**kwargs)


def _history(model: PerturbationModel, name: str, seed: int) -> pd.DataFrame | None:
    history = getattr(model, "history", None)
    if not isinstance(history, pd.DataFrame) or history.empty:
        return None
    history = history.rename(columns={"model": "member"}).copy()
    history.insert(0, "seed", seed)
    history.insert(0, "model", name)
    return history


def evaluate(
    adata: AnnData,
    *,
    models: Sequence[str] | Mapping[str, ModelFactory] = DEFAULT_MODELS,
    split: str = "simulation",
    seeds: int | Sequence[int] = 5,
    split_kwargs: dict[str, Any] | None = None,
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    train_kwargs: dict[str, dict[str, Any]] | None = None,
    n_de: int = 20,
    metrics: Sequence[str] | None = None,
    on_error: str = "raise",
) -> EvaluationResult:
    """Train every model on every split seed and score it on each test subgroup.

    For each seed: split the conditions (:func:`perturbsim.pp.split`), compute the
    pseudobulk statistics after the split (co-expression from training cells only), rank the
    top ``n_de`` DE genes of each condition among GEARS's non-dropout genes
    (:func:`perturbsim.pp.rank_de`), then build, fit and query each model. A model is asked
    only for the test conditions it :meth:`~perturbsim.models.PerturbationModel.covers`;
    the others get no rows (see :attr:`EvaluationResult.coverage`). Truth is the measured
    pseudobulk mean of each test condition; the reference of ``pearson_delta_pert`` is the
    mean of the perturbed training conditions. ``adata`` is not modified.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`, in memory.
    models
        Registry names (:data:`perturbsim.models.MODEL_REGISTRY`: ``"gears"``,
        ``"additive"``, ``"linear"``, ``"mean"``, ``"grn"``, ``"no_perturb"``) or GEARS
        variants (:data:`VARIANTS`: ``"gears_reference"``, ``"gears_cold_start"``,
        ``"gears_residual"``, ``"gears_ensemble"``, ``"gears_residual_ensemble"``), or a mapping
        name -> factory ``f(adata, **model_kwargs[name])`` returning an unfitted model.
    split
        Kind of split (``"simulation"``, ``"single"``, ``"combo"``, ``"custom"``).
    seeds
        Number of split seeds (seeds ``1..n``, as in GEARS) or the seeds themselves. Models
        whose constructor takes ``seed`` (GEARS) are initialised with the split seed unless
        ``model_kwargs`` sets one.
    split_kwargs
        Further arguments of :func:`perturbsim.pp.split`.
    model_kwargs
        Model name -> constructor arguments, e.g. ``{"linear": {"n_components": 5}}``.
    train_kwargs
        Model name -> arguments of ``train`` (models that have one, GEARS) or ``fit``,
        e.g. ``{"gears": {"max_epochs": 20}}``.
    n_de
        Number of top DE genes per condition for the ``*_de`` metrics.
    metrics
        Metric names (:func:`perturbsim.tl.list_metrics`); default: all registered.
    on_error
        A model failing to fit or predict on a seed: ``"raise"`` an error naming the model
        and seed, or ``"skip"`` that run (logged as a warning and listed in
        :attr:`EvaluationResult.failures`; the model gets no rows for that seed).

    Returns
    -------
    The scores, coverage, per-gene changes, training histories and timings; see
    :class:`EvaluationResult` (``summary()``, ``write(out_dir)``).

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> result = ps.tl.evaluate(adata, models=["additive", "mean"], seeds=2)
    >>> sorted(result.scores["subgroup"].unique())
    ['combo_seen0', 'combo_seen1', 'combo_seen2', 'unseen_single']
    """
    check_setup(adata)
    seed_list = _resolve_seeds(seeds)
    model_kwargs = dict(model_kwargs or {})
    train_kwargs = dict(train_kwargs or {})
    builders = _resolve_models(models, model_kwargs)
    names = list(builders)
    unknown_train = sorted(set(train_kwargs) - set(names))
    if unknown_train:
        raise PerturbsimError(f"train_kwargs names models not evaluated: {unknown_train}")
    if metrics is not None:
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise PerturbsimError(f"unknown metric {unknown[0]!r}; available: {list(METRICS)}")
    if on_error not in ("raise", "skip"):
        raise PerturbsimError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    split_kwargs = dict(split_kwargs or {})

    scores, coverage, changes, histories, timings, failures = [], [], [], [], [], []
    bar = tqdm(
        total=len(seed_list) * len(names),
        desc="evaluate",
        unit="run",
        disable=progress_disabled(),
    )
    try:
        for seed in seed_list:
            work = _working_copy(adata)
            split_screen(work, kind=split, seed=seed, **split_kwargs)
            pseudobulk(work)
            rank_de(work, n_genes=n_de)
            stats = PseudobulkStats.from_adata(work)
            plan = Split.from_adata(work)
            de = DEGenes.from_adata(work)
            test = [c for group in plan.subgroups.values() for c in group]
            subgroup_of = {c: g for g, members in plan.subgroups.items() for c in members}
            de_genes = {c: de.top_genes(c, non_dropout=True) for c in test}
            reference = _reference_mean(stats, plan.train)
            for name in names:
                bar.set_postfix(seed=seed, model=name)
                t0 = time.perf_counter()
                stage = "fit"
                try:
                    model = builders[name](work, seed)
                    _fit(model, dict(train_kwargs.get(name, {})))
                    fit_s = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    stage = "predict"
                    covered = (
                        [c for c, ok in zip(test, model.covers(test), strict=True) if ok]
                        if test
                        else []
                    )
                    pred = model.predict(covered) if covered else None
                except Exception as err:
                    message = (
                        f"model {name!r} failed to {stage} on split seed {seed}: "
                        f"{type(err).__name__}: {err}"
                    )
                    if on_error == "raise":
                        raise PerturbsimError(message) from err
                    logger.warning("%s (skipped)", message)
                    failures.append((name, seed, stage, f"{type(err).__name__}: {err}"))
                    bar.update()
                    continue
                for group, members in plan.subgroups.items():
                    coverage.append(
                        (name, seed, group, sum(c in set(covered) for c in members), len(members))
                    )
                if pred is not None:
                    table = score(
                        pred, stats, de_genes=de_genes, reference_mean=reference, metrics=metrics
                    )
                    table.insert(0, "seed", seed)
                    table.insert(0, "model", name)
                    table.insert(2, "subgroup", table["condition"].map(subgroup_of))
                    scores.append(table)
                    changes.append(_de_changes(pred, stats, de_genes, subgroup_of, name, seed))
                predict_s = time.perf_counter() - t0
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
                bar.update()
    finally:
        bar.close()

    result = EvaluationResult(
        scores=_ordered(
            pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=SCORE_COLUMNS),
            names,
            ["model", "seed", "subgroup", "condition", "metric"],
        )[SCORE_COLUMNS],
        coverage=_ordered(
            pd.DataFrame(coverage, columns=COVERAGE_COLUMNS), names, ["model", "seed", "subgroup"]
        ),
        changes=pd.concat(changes, ignore_index=True)
        if changes
        else pd.DataFrame(columns=CHANGE_COLUMNS),
        histories=pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(),
        timings=pd.DataFrame(timings, columns=["model", "seed", "fit_s", "predict_s"]),
        failures=pd.DataFrame(failures, columns=FAILURE_COLUMNS),
        settings={
            "models": names,
            "split": split,
            "seeds": seed_list,
            "n_de": int(n_de),
            "metrics": list(metrics) if metrics is not None else None,
            "n_cells": int(adata.n_obs),
            "n_genes": int(adata.n_vars),
            "n_conditions": int(stats.conditions.size),
        },
    )
    return result


def _reference_mean(stats: PseudobulkStats, train: Sequence[str]) -> np.ndarray:
    """Mean expression of the perturbed training conditions (Systema's reference)."""
    perturbed = [c for c in train if genes_of(c)]
    if not perturbed:
        raise PerturbsimError("no perturbed training conditions: the split trains on ctrl only")
    return stats.mean[stats.index(perturbed)].mean(axis=0)


def _de_changes(
    pred: AnnData,
    stats: PseudobulkStats,
    de_genes: Mapping[str, Sequence[str]],
    subgroup_of: Mapping[str, str],
    name: str,
    seed: int,
) -> pd.DataFrame:
    """Predicted and measured change over control on each condition's DE genes."""
    control = stats.control_mean.astype(np.float64)
    col = {g: i for i, g in enumerate(map(str, stats.genes))}
    pred_col = {g: i for i, g in enumerate(map(str, pred.var_names))}
    predicted = _predicted_means(pred, control[[col[g] for g in pred.var_names]])
    measured = stats.mean[stats.index([str(c) for c in pred.obs_names])]
    frames = []
    for i, cond in enumerate(map(str, pred.obs_names)):
        genes = [g for g in de_genes[cond] if g in pred_col]
        p = predicted[i, [pred_col[g] for g in genes]] - control[[col[g] for g in genes]]
        m = measured[i, [col[g] for g in genes]] - control[[col[g] for g in genes]]
        frames.append(
            pd.DataFrame(
                {
                    "model": name,
                    "seed": seed,
                    "subgroup": subgroup_of[cond],
                    "condition": cond,
                    "gene": genes,
                    "predicted": p,
                    "measured": m,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CHANGE_COLUMNS)
