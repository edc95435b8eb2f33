"""Evaluation of cell-fitness predictions on held-out pairs, by how many of their genes are seen."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from tqdm.auto import tqdm

from .._checks import check_flag, check_fraction
from .._errors import PerturbsimError, counted, shown_list
from .._settings import progress_disabled, resolve_seed, resolve_seeds
from ..ds import FitnessScreen
from ..ds._fitness import check_screen
from ..models import ExpressionFitness, FitnessModel, PerturbationModel
from ..models._fitness_expression import check_expression_model
from ..pp._split import subgroup_name
from ._result import _over_seeds

logger = logging.getLogger(__name__)

SUBGROUPS = tuple(subgroup_name(2, k) for k in (2, 1, 0))
"""Test subgroups: pairs with both genes seen, one, none (as :func:`perturbsim.pp.split`)."""
ADDITIVE, MEAN, EXPRESSION = "additive", "mean", "expression_ridge"
MODEL = "fitness_model"
"""Name of the default :class:`~perturbsim.models.FitnessModel` in results."""
DEFAULT_MODELS: dict[str, dict[str, Any]] = {MODEL: {}}
METRICS = ("r2", "pearson")
METRIC_BOUNDS = {"r2": (-np.inf, 1.0), "pearson": (-1.0, 1.0)}
"""Ranges the metrics can take: their intervals over seeds are clipped to them."""
ALL, COVERED = "all", "expression_covered"
"""Scopes: every test pair, or the test pairs the expression model covers (also the name of
the predictions' column saying which pairs those are)."""


@dataclass(frozen=True, repr=False)
class FitnessSplit:
    """Training, validation and test pairs of a growth screen, held out by gene.

    Its repr counts the genes and pairs of each set, with the first few of each; the
    attributes hold them all.

    Attributes
    ----------
    seed
        Seed of the draw.
    seen_genes
        Genes in some training pair, sorted; the others are unseen (with
        ``hide_unseen_singles``, :func:`fitness_evaluate` treats their singles as unknown).
    train, val
        Pair labels for training and for choosing the epoch a model keeps. Training pairs
        join seen genes; a validation pair may hold an unseen gene, never one held out for
        the test.
    test
        Pair labels by subgroup (:data:`SUBGROUPS`): how many of the pair's genes are seen
        (in some training pair).
    """

    seed: int
    seen_genes: list[str]
    train: list[str]
    val: list[str]
    test: dict[str, list[str]]

    def __repr__(self) -> str:
        sets = {"train": self.train, "val": self.val}
        sets.update({f"test {name}": pairs for name, pairs in self.test.items()})
        width = max(map(len, sets))
        lines = [
            f"FitnessSplit(seed={self.seed}): {len(self.seen_genes)} seen genes "
            f"({shown_list(self.seen_genes, 3)})"
        ]
        for name, pairs in sets.items():
            examples = f": {shown_list(pairs, 3)}" if pairs else ""
            lines.append(f"  {name:<{width}} {len(pairs):>5} pairs{examples}")
        return "\n".join(lines)


def fitness_split(
    screen: FitnessScreen,
    *,
    seed: int | None = None,
    unseen_fraction: float = 0.25,
    test_fraction: float = 0.25,
    val_fraction: float = 0.1,
) -> FitnessSplit:
    """Hold out pairs of a growth screen by gene, as GEARS's simulation split holds out combos.

    The pairs of a random ``unseen_fraction`` of the genes (held-out genes) are test pairs.
    Of the measured pairs of two other genes, a random ``test_fraction`` is held out for the
    test too. From the rest, the pairs of a random ``val_fraction`` of those genes and a
    random ``val_fraction`` of the other pairs are validation pairs (so validation, like the
    test, has pairs with genes never in a training pair); the remainder trains. A gene is
    *seen* when it is in some training pair, and a test pair's subgroup counts its seen
    genes: ``combo_seen2``, ``combo_seen1`` or ``combo_seen0``. Besides the held-out genes,
    the validation genes are unseen too, and so is any gene whose pairs all happened to be
    drawn for the test or validation. Genes are drawn in sorted order, so the split does not
    depend on the order of the screen's genes.

    Parameters
    ----------
    screen
        The growth screen.
    seed
        Seed of the draw (default :attr:`perturbsim.settings.seed`).
    unseen_fraction
        Share of genes held out of every training and validation pair (at least 2 genes,
        at least 2 left).
    test_fraction
        Share of the pairs of two other genes held out for the test.
    val_fraction
        Share of the other genes, and of their remaining pairs, for validation.

    Returns
    -------
    :class:`FitnessSplit`.

    Raises
    ------
    PerturbsimError
        ``screen`` is not a :class:`~perturbsim.ds.FitnessScreen`; a fraction out of range,
        fewer than 2 held-out genes or 2 others, or a split that leaves no training pair or
        holds out no test pair (too few measured pairs).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import perturbsim as ps
    >>> genes = [f"G{i}" for i in range(8)]
    >>> singles = pd.Series(np.linspace(-0.4, 0.0, 8), index=genes)
    >>> values = np.add.outer(singles.to_numpy(), singles.to_numpy())
    >>> pairs = pd.DataFrame(values, index=genes, columns=genes)
    >>> split = ps.tl.fitness_split(ps.ds.FitnessScreen(singles, pairs), seed=0)
    >>> {k: len(v) for k, v in split.test.items()}
    {'combo_seen2': 2, 'combo_seen1': 12, 'combo_seen0': 3}
    >>> print(split)  # counts and the first few of each set; G5 is a validation gene
    FitnessSplit(seed=0): 5 seen genes (G0, G1, G3 and 2 more)
      train                7 pairs: G0+G3, G0+G7, G1+G3 and 4 more
      val                  4 pairs: G0+G1, G1+G5, G3+G5 and 1 more
      test combo_seen2     2 pairs: G0+G6, G6+G7
      test combo_seen1    12 pairs: G0+G2, G0+G4, G0+G5 and 9 more
      test combo_seen0     3 pairs: G2+G4, G2+G5, G4+G5
    """
    check_screen(screen)
    unseen_fraction = check_fraction("unseen_fraction", unseen_fraction)
    test_fraction = check_fraction("test_fraction", test_fraction)
    val_fraction = check_fraction("val_fraction", val_fraction, allow_zero=True)
    genes = sorted(screen.genes)  # the split does not depend on the tables' gene order
    n_unseen = round(len(genes) * unseen_fraction)
    if not 2 <= n_unseen <= len(genes) - 2:
        raise PerturbsimError(
            f"unseen_fraction {unseen_fraction} of {len(genes)} genes holds out "
            f"{counted(n_unseen, 'gene')}; a split needs at least 2 held out and 2 others"
        )
    seed = resolve_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(genes))
    held_out = {genes[i] for i in order[:n_unseen]}
    others = [genes[i] for i in sorted(order[n_unseen:])]
    table = screen.pair_table()
    free = ~(table["gene_a"].isin(held_out) | table["gene_b"].isin(held_out))
    both = np.array(sorted(table.index[free]))
    both = both[rng.permutation(both.size)]
    n_test = round(both.size * test_fraction)
    remaining = table.loc[both[n_test:]]
    val_genes = set(rng.permutation(others)[: round(len(others) * val_fraction)].tolist())
    touches = remaining["gene_a"].isin(val_genes) | remaining["gene_b"].isin(val_genes)
    drawn = rng.random(len(remaining)) < val_fraction
    is_val = (touches | drawn).to_numpy()
    train, val = sorted(remaining.index[~is_val]), sorted(remaining.index[is_val])
    measured = f"pairs measured in the screen: {len(table)}"
    if not train:
        raise PerturbsimError(
            f"the split of seed {seed} leaves no training pair ({measured}); lower the fractions"
        )
    held = table.loc[~table.index.isin(train + val)]  # the test pairs
    if held.empty:
        raise PerturbsimError(
            f"the split of seed {seed} holds out no test pair ({measured}); a fitness "
            "evaluation needs pairs to train on and pairs to test"
        )
    seen = sorted(set(table.loc[train, "gene_a"]) | set(table.loc[train, "gene_b"]))
    n_seen = held["gene_a"].isin(seen).astype(int) + held["gene_b"].isin(seen)
    test = {name: sorted(held.index[n_seen == int(name[-1])]) for name in SUBGROUPS}
    return FitnessSplit(seed=int(seed), seen_genes=seen, train=train, val=val, test=test)


def pair_metrics(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """R² (around the measured mean of these pairs) and Pearson correlation."""
    if measured.size < 2:
        return dict.fromkeys(METRICS, float("nan"))
    residual = float(np.sum((measured - predicted) ** 2))
    total = float(np.sum((measured - measured.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else float("nan")
    flat = np.ptp(predicted) == 0 or np.ptp(measured) == 0
    pearson = float("nan") if flat else float(sps.pearsonr(predicted, measured)[0])
    return {"r2": r2, "pearson": pearson}


@dataclass
class FitnessResult:
    """Fitness predictions of every method on every split seed (:func:`fitness_evaluate`).

    Attributes
    ----------
    scores
        One row per ``seed``, ``scope``, ``subgroup``, ``method`` and ``metric`` (``r2``,
        ``pearson``), with its ``value`` and ``n_pairs``. Scope ``all`` scores every test
        pair; ``expression_covered`` only those the expression model covers (every method
        on the same pairs).
    predictions
        One row per ``seed``, ``pair``, ``subgroup`` and ``method``: ``predicted`` and
        ``measured`` fitness. With an expression model, also ``expression_covered``: whether
        it covers the pair (``expression_ridge`` predicts only those, NaN elsewhere; the
        scope ``expression_covered`` scores them); without one, no such column.
    train_seconds
        Fitting time of each fitted method, summed over seeds.
    settings
        How the evaluation ran: ``seeds`` (the split seeds), the split's fractions,
        ``hide_unseen_singles``, ``models``, ``fit_options``, ``expression_model`` (its
        name, or ``None``) and the screen's ``n_genes`` and ``n_pairs``.
    """

    scores: pd.DataFrame
    predictions: pd.DataFrame
    train_seconds: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        """Methods in the order they were scored."""
        return list(dict.fromkeys(self.scores["method"]))

    @property
    def scopes(self) -> list[str]:
        """Scopes scored: ``"all"``, then ``"expression_covered"`` (if it covers a test pair)."""
        return list(dict.fromkeys(self.scores["scope"]))

    def summary(self, confidence: float = 0.95) -> pd.DataFrame:
        """Mean over seeds with a t-interval, per scope, method, subgroup and metric.

        Parameters
        ----------
        confidence
            Coverage of the interval ``mean ± t(confidence, n_seeds - 1) * std / sqrt(n)``
            (NaN with one seed), clipped to the values the metric can take (R² at most 1).

        Returns
        -------
        Columns ``scope``, ``method``, ``subgroup``, ``metric``, ``mean``, ``std``,
        ``ci_low``, ``ci_high``, ``n_seeds`` and ``n_pairs`` (test pairs per seed, on
        average).
        """
        tables = []
        for scope, per_seed in self.scores.groupby("scope", sort=False):
            renamed = per_seed.rename(columns={"method": "model", "n_pairs": "n_conditions"})
            table = _over_seeds(renamed, self.methods, confidence, METRIC_BOUNDS)
            table = table.rename(columns={"model": "method"}).drop(columns="n_conditions")
            keys = ["method", "subgroup", "metric"]
            pairs = per_seed.groupby(keys)["n_pairs"].mean().rename("n_pairs").reset_index()
            table = table.merge(pairs, on=keys, how="left")
            table.insert(0, "scope", scope)
            tables.append(table)
        return pd.concat(tables, ignore_index=True)

    def table(
        self, metric: str = "r2", *, scope: str = ALL, confidence: float = 0.95, digits: int = 3
    ) -> pd.DataFrame:
        """One metric as subgroup x method text: ``mean [ci_low, ci_high]``.

        Parameters
        ----------
        metric
            ``"r2"`` or ``"pearson"``.
        scope
            ``"all"`` or ``"expression_covered"``.
        confidence
            Coverage of the intervals.
        digits
            Decimals shown.

        Returns
        -------
        DataFrame indexed by subgroup: ``pairs_per_seed`` (the subgroup's test pairs in the
        scope, per split seed: their mean over seeds, rounded), then one column per method.
        With one seed a cell is the mean alone (no interval); intervals are clipped to the
        values the metric can take (R² at most 1, Pearson within [-1, 1]).
        """
        summary = self.summary(confidence)
        rows = summary[(summary["metric"] == metric) & (summary["scope"] == scope)]
        if rows.empty:
            metrics = sorted(set(summary["metric"]))
            scopes = sorted(set(summary["scope"]))
            raise PerturbsimError(
                f"no {metric!r} scores in scope {scope!r} (metrics: {', '.join(metrics)}; "
                f"scopes: {', '.join(scopes)})"
            )

        def text(row: pd.Series) -> str:
            if not np.isfinite(row["mean"]):
                return "n/a"
            if not np.isfinite(row["ci_low"]):
                return f"{row['mean']:.{digits}f}"
            low, high = row["ci_low"], row["ci_high"]
            return f"{row['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

        cells = rows.assign(text=rows.apply(text, axis=1))
        wide = cells.pivot(index="subgroup", columns="method", values="text")
        n_pairs = cells.groupby("subgroup")["n_pairs"].max().round().astype(int)
        order = [s for s in SUBGROUPS if s in wide.index]
        wide = wide.loc[order, [m for m in self.methods if m in wide.columns]]
        wide.insert(0, "pairs_per_seed", n_pairs.loc[order])
        wide.columns.name = None
        return wide


def _additive(singles: pd.Series, first: pd.Series, second: pd.Series) -> np.ndarray:
    return singles.reindex(first).to_numpy() + singles.reindex(second).to_numpy()


def _run_seed(
    screen: FitnessScreen,
    split: FitnessSplit,
    *,
    models: Mapping[str, Mapping[str, Any]],
    fit_options: Mapping[str, Any],
    hide_unseen_singles: bool,
    go_annotations: pd.DataFrame | None,
    expression_model: PerturbationModel | None,
    seconds: dict[str, float],
) -> pd.DataFrame:
    """Predictions of every method for the test pairs of one split."""
    table = screen.pair_table()
    test = [(pair, name) for name in SUBGROUPS for pair in split.test[name]]
    pairs = [p for p, _ in test]
    rows = table.loc[pairs]
    known = split.seen_genes if hide_unseen_singles else None
    singles = screen.singles.reindex(screen.genes)
    if known is not None:  # an unseen gene's single is unknown: the known singles' mean
        singles = singles.where(singles.index.isin(known), singles.loc[known].mean())
    training = split.train + split.val
    predicted: dict[str, np.ndarray] = {}
    for name, options in models.items():
        started = time.perf_counter()
        logger.info("fitness: split seed %d, fitting %s", split.seed, name)  # names its log
        try:
            model = FitnessModel(screen, go_annotations=go_annotations, seed=split.seed, **options)
            model.fit(split.train, val_pairs=split.val, known_singles=known, **fit_options)
        except PerturbsimError as err:
            raise PerturbsimError(f"fitness model {name!r}: {err}") from err
        predicted[name] = model.predict(pairs).to_numpy()
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
    predicted[ADDITIVE] = _additive(singles, rows["gene_a"], rows["gene_b"])
    predicted[MEAN] = np.full(len(pairs), table.loc[training, "fitness"].mean())
    covered: np.ndarray | None = None  # by the expression model
    if expression_model is not None:
        started = time.perf_counter()
        route = ExpressionFitness(expression_model)
        measured = screen.singles.reindex(screen.genes if known is None else known)
        conditions = pd.concat([measured, table.loc[training, "fitness"]])
        route.fit(conditions)
        covered = route.covers(pairs)
        values = np.full(len(pairs), np.nan)
        if covered.any():
            values[covered] = route.predict([p for p, c in zip(pairs, covered, strict=True) if c])
        predicted[EXPRESSION] = values
        seconds[EXPRESSION] = seconds.get(EXPRESSION, 0.0) + time.perf_counter() - started
    frames = [
        pd.DataFrame(
            {
                "seed": split.seed,
                "pair": pairs,
                "subgroup": [name for _, name in test],
                "method": method,
                "predicted": values,
                "measured": rows["fitness"].to_numpy(),
            }
        )
        for method, values in predicted.items()
    ]
    if covered is not None:
        frames = [frame.assign(**{COVERED: covered}) for frame in frames]
    return pd.concat(frames, ignore_index=True)


def _scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per seed, scope, subgroup and method: every metric of the predictions."""
    rows = []
    scopes = [(ALL, predictions["method"] != EXPRESSION)]
    if COVERED in predictions.columns:
        scopes.append((COVERED, predictions[COVERED]))
    for scope, mask in scopes:
        grouped = predictions[mask].groupby(["seed", "subgroup", "method"], sort=False)
        for (seed, subgroup, method), group in grouped:
            values = pair_metrics(group["predicted"].to_numpy(), group["measured"].to_numpy())
            for metric, value in values.items():
                rows.append((seed, scope, subgroup, method, metric, value, len(group)))
    columns = ["seed", "scope", "subgroup", "method", "metric", "value", "n_pairs"]
    return pd.DataFrame(rows, columns=columns)


_SET_BY_EVALUATE = {"screen", "go_annotations", "seed", "train_pairs", "val_pairs", "known_singles"}
"""Arguments of :class:`~perturbsim.models.FitnessModel` and its ``fit`` that
:func:`fitness_evaluate` gives itself."""


def _check_options(models: Mapping[str, Mapping[str, Any]], fit_options: object) -> None:
    """Refuse, naming them, options ``FitnessModel`` or its ``fit`` would not take."""
    if fit_options is not None and not isinstance(fit_options, Mapping):
        raise PerturbsimError(
            f"fit_options must be a dict of FitnessModel.fit options, got "
            f"{type(fit_options).__name__}"
        )
    takes = {
        "fit_options": set(inspect.signature(FitnessModel.fit).parameters) - {"self"},
        "model": set(inspect.signature(FitnessModel).parameters),
    }
    given = {"fit_options": dict(fit_options or {})}
    for name, options in models.items():
        if not isinstance(options, Mapping):
            raise PerturbsimError(
                f"models[{name!r}] must be a dict of FitnessModel options, got "
                f"{type(options).__name__}"
            )
        given[f"model {name!r}"] = dict(options)
    for what, options in given.items():
        allowed = takes["fit_options" if what == "fit_options" else "model"] - _SET_BY_EVALUATE
        own = [key for key in options if key in _SET_BY_EVALUATE]
        if own:
            raise PerturbsimError(
                f"{what} sets {own[0]!r}, which fitness_evaluate sets itself (the screen, "
                "go_annotations, the seeds, and each split's pairs): leave it out"
            )
        unknown = [key for key in options if key not in allowed]
        if unknown:
            raise PerturbsimError(
                f"{what} has no option {unknown[0]!r} (its options: {', '.join(sorted(allowed))})"
            )


def fitness_evaluate(
    screen: FitnessScreen,
    *,
    seeds: int | Sequence[int] = 5,
    unseen_fraction: float = 0.25,
    test_fraction: float = 0.25,
    val_fraction: float = 0.1,
    hide_unseen_singles: bool = False,
    models: Mapping[str, Mapping[str, Any]] | None = None,
    fit_options: Mapping[str, Any] | None = None,
    go_annotations: pd.DataFrame | None = None,
    expression_model: PerturbationModel | None = None,
) -> FitnessResult:
    """Score fitness predictions of held-out pairs against the additive and mean baselines.

    For each split seed (:func:`fitness_split`), each :class:`~perturbsim.models.FitnessModel`
    of ``models`` is fitted on the training pairs (kept at its best validation epoch)
    and predicts the test pairs, beside two baselines: ``additive`` (``f_A + f_B`` of the
    single fitnesses) and ``mean`` (the mean fitness of the training and validation pairs).
    With ``expression_model``, the second route ``expression_ridge``
    (:class:`~perturbsim.models.ExpressionFitness`) is fitted on the training conditions it
    covers (the known singles and the training and validation pairs) and scored, with every
    other method, on the test pairs it covers (scope ``expression_covered``). Metrics per
    subgroup: R² and Pearson correlation of predicted and measured fitness. A progress bar
    counts the split seeds unless ``perturbsim.settings.progress`` is ``False``.

    Parameters
    ----------
    screen
        The growth screen (:func:`perturbsim.ds.read_fitness`).
    seeds
        Number of split seeds (``1 .. seeds``, as :func:`evaluate`'s) or the seeds
        themselves. Each model is initialised with its split's seed.
    unseen_fraction, test_fraction, val_fraction
        Options of :func:`fitness_split`.
    hide_unseen_singles
        Treat the single fitnesses of the unseen genes (those in no training pair,
        :attr:`FitnessSplit.seen_genes`) as unknown too (GEARS's setting, where an unseen
        gene was never perturbed): the models predict them from the GO graph (a model
        without it, such as ``{"go": False}``, by the mean known single), the additive
        baseline uses the mean known single. By default they are known (a
        single-gene growth screen is cheap; pairs are not).
    models
        Named :class:`~perturbsim.models.FitnessModel` options; default
        ``{"fitness_model": {}}``. E.g. ``{"go": {}, "no_go": {"go": False}}`` measures what
        the GO graph adds.
    fit_options
        Options of :meth:`~perturbsim.models.FitnessModel.fit` (``max_epochs``, ``lr``,
        ``weight_decay``).
    go_annotations
        Gene -> GO term table for the models; ``None``: the bundled human annotations.
    expression_model
        A fitted expression model for the second route (a saved one: load it with
        :meth:`~perturbsim.models.PerturbationModel.load`), or ``None``.

    Returns
    -------
    :class:`FitnessResult`; ``result.table("r2")`` is the headline table.

    Raises
    ------
    PerturbsimError
        One line, before any fit: ``screen`` is not a
        :class:`~perturbsim.ds.FitnessScreen`, bad seeds, a model named as a baseline, an option
        ``FitnessModel`` or its ``fit`` does not take (naming the model), an
        ``expression_model`` that is a path, not a model, or not fitted; then an error of
        :func:`fitness_split` or of a fit (naming the model).
    """
    check_screen(screen)
    seed_list = resolve_seeds(seeds, first=1)
    hide_unseen_singles = check_flag("hide_unseen_singles", hide_unseen_singles)
    if expression_model is not None:
        check_expression_model(expression_model)
    if models is not None and not isinstance(models, Mapping):
        raise PerturbsimError(
            "models must map names to FitnessModel options (e.g. {'go': {}}), got "
            f"{type(models).__name__}"
        )
    models = DEFAULT_MODELS if models is None else dict(models)
    unnamed = [name for name in models if not isinstance(name, str) or not name]
    if unnamed:
        raise PerturbsimError(f"models must be named by text, got the name {unnamed[0]!r}")
    clash = sorted(set(models) & {ADDITIVE, MEAN, EXPRESSION})
    if clash:
        raise PerturbsimError(f"model names {clash} are taken by the baselines")
    _check_options(models, fit_options)
    seconds: dict[str, float] = {}
    predictions = []
    for seed in tqdm(seed_list, desc="fitness", unit="seed", disable=progress_disabled()):
        split = fitness_split(
            screen,
            seed=seed,
            unseen_fraction=unseen_fraction,
            test_fraction=test_fraction,
            val_fraction=val_fraction,
        )
        predictions.append(
            _run_seed(
                screen,
                split,
                models=models,
                fit_options=dict(fit_options or {}),
                hide_unseen_singles=hide_unseen_singles,
                go_annotations=go_annotations,
                expression_model=expression_model,
                seconds=seconds,
            )
        )
        logger.info("fitness: split seed %d done", seed)
    table = pd.concat(predictions, ignore_index=True)
    settings = {
        "seeds": seed_list,
        "unseen_fraction": unseen_fraction,
        "test_fraction": test_fraction,
        "val_fraction": val_fraction,
        "hide_unseen_singles": bool(hide_unseen_singles),
        "models": {name: dict(options) for name, options in models.items()},
        "fit_options": dict(fit_options or {}),
        "expression_model": None if expression_model is None else expression_model.label,
        "n_genes": len(screen.genes),
        "n_pairs": len(screen.pair_table()),
    }
    return FitnessResult(
        scores=_scores(table), predictions=table, train_seconds=seconds, settings=settings
    )
