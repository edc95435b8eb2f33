"""Experiment design: which untested perturbations to measure next.

:func:`design` ranks untested singles and pairs by how much measuring them is expected to
improve a model, from three parts: the model's predictive variance (what it is unsure of),
coverage of the GO graph by genes measured alone (what it knows nothing near), and a
penalty for predicted profiles like those already chosen or measured (what would be
redundant). A batch is chosen greedily, so each pick sees the ones before it.
:func:`active_learning_summary` condenses the error curves of an active-learning loop
(``benchmarks/bench_design.py``) into means and intervals over seeds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from .._checks import (
    check_count,
    check_fraction,
    check_list,
    check_nonnegative,
    checked_table,
    shown,
)
from .._errors import PerturbsimError, counted, shown_list
from .._keys import DELTA_LAYER, VARIANCE_LAYER
from .._settings import resolve_seed, switched_off
from ..graphs import GeneGraph, go_graph
from ..models import GEARS, PerturbationModel, Stacked
from ..models._base import WARN_UNSUPPORTED, check_fitted_model
from ..pp import canonical_label, genes_of, parse_perturbations
from ._intervals import mean_interval

logger = logging.getLogger(__name__)

MAX_PAIR_GENES = 40
"""Largest panel of genes whose pairs are default candidates (at most 780 pairs)."""
STRATEGIES: tuple[str, ...] = ("combined", "uncertainty", "coverage", "random")
"""Ranking strategies of :func:`design`."""
DESIGN_COLUMNS: tuple[str, ...] = (
    "rank",
    "perturbation",
    "n_targets",
    "score",
    "uncertainty",
    "coverage",
    "diversity_penalty",
)
"""Columns of the table :func:`design` returns."""
CURVE_COLUMNS: tuple[str, ...] = ("strategy", "seed", "n_measured", "error")
"""Columns of the learning curves :func:`active_learning_summary` reads."""
_BATCH = 1024
"""Perturbations predicted per call of ``predict``."""


def _predict(model: PerturbationModel, labels: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Changes ``(n, G)`` of ``labels`` and their mean variance over genes, in batches.

    Unsupported predictions are not warned of (untested candidates often are).
    """
    deltas, variances = [], []
    for start in range(0, len(labels), _BATCH):
        with switched_off(WARN_UNSUPPORTED):  # untested candidates: often unsupported
            pred = model.predict(labels[start : start + _BATCH])
        deltas.append(np.asarray(pred.layers[DELTA_LAYER], dtype=np.float32))
        if VARIANCE_LAYER in pred.layers:
            variances.append(np.asarray(pred.layers[VARIANCE_LAYER], dtype=np.float64).mean(1))
    delta = np.vstack(deltas) if deltas else np.zeros((0, len(model.genes)), np.float32)
    return delta, (np.concatenate(variances) if variances else None)


def _labels(perturbations: Sequence[str], what: str) -> list[str]:
    """Canonical labels of the perturbed conditions among ``perturbations``, each once."""
    check_list(what, perturbations, "labels")
    if not len(perturbations):
        return []
    sets = parse_perturbations(list(perturbations))
    return list(dict.fromkeys(canonical_label(s) for s in sets if s))


def measured_conditions(model: PerturbationModel) -> list[str]:
    """The conditions a fitted model knows were measured.

    Those of its last fit, training and validation
    (:attr:`~perturbsim.models.PerturbationModel.fitted_conditions`), and the others of
    the screen it was fitted on, held out of the fit but measured all the same
    (:attr:`~perturbsim.models.PerturbationModel.screen_conditions`); both are saved with
    it. A gene measured only in pairs stays a candidate, its single untested. A model
    saved before those were recorded knows only the single-gene conditions it keeps
    (``single_genes`` of its saved options: GEARS, the ``additive`` baseline and
    :class:`~perturbsim.models.Stacked`, whose include the singles it inferred from
    pairs): pass ``measured=`` to :func:`design` then.

    Parameters
    ----------
    model
        A fitted model.

    Returns
    -------
    Canonical labels of perturbed conditions, each once.
    """
    check_fitted_model(model)
    if model.fitted_conditions is None:
        return known_fitted_conditions(model)
    return _labels([*model.fitted_conditions, *model.screen_conditions], "measured")


def _measured_labels(model: PerturbationModel, measured: Sequence[str] | None) -> list[str]:
    """Canonical labels of ``measured``, each once (any iterable of labels, read once).

    When None, those the model knows were measured (:func:`measured_conditions`).
    """
    if measured is None:
        return measured_conditions(model)
    check_list("measured", measured, "labels")
    return _labels(list(measured), "measured")


def known_fitted_conditions(model: PerturbationModel) -> list[str]:
    """The conditions a fitted model is known to have been fitted on, training and validation.

    :attr:`~perturbsim.models.PerturbationModel.fitted_conditions`, or for a model saved
    before those were recorded the single-gene conditions it keeps (see
    :func:`measured_conditions`). Canonical labels, each once.
    """
    if model.fitted_conditions is not None:
        return _labels(model.fitted_conditions, "fitted")
    # the models that keep their measured singles save them under this option (Stacked's
    # also hold the singles it inferred from pairs: a file this old cannot tell them apart)
    return _labels([str(g) for g in model._options().get("single_genes", [])], "fitted")


def default_candidates(
    model: PerturbationModel,
    measured: Sequence[str] | None = None,
    *,
    max_pair_genes: int = MAX_PAIR_GENES,
) -> list[str]:
    """Untested singles of every gene the model covers, and untested pairs of a gene panel.

    Singles: every gene the model can predict (:meth:`covers`) among its measured genes,
    the genes of the measured conditions and the genes perturbed in the screen it was
    fitted on (its own, or for a loaded model the one it recorded:
    :attr:`~perturbsim.models.PerturbationModel.screen_conditions`). Pairs: every pair the
    model can predict among the panel, the genes perturbed in the measured conditions (and
    in the screen), at most
    ``max_pair_genes`` of them, those in the most measured conditions first (ties by
    name); 40 genes give at most 780 pairs.

    Parameters
    ----------
    model
        A fitted model.
    measured
        Labels of the measured conditions (left out; any gene order and separator
        :func:`~perturbsim.pp.parse_perturbations` reads); default: those the model knows
        (:func:`measured_conditions`), as :func:`design`'s.
    max_pair_genes
        Largest panel whose pairs are candidates.

    Returns
    -------
    Canonical labels: the singles (sorted), then the pairs.
    """
    max_pair_genes = check_count("max_pair_genes", max_pair_genes, minimum=0)
    measured = _measured_labels(model, measured)
    counts = Counter(g for c in measured for g in genes_of(c))
    screen = model.data.stats.conditions if model.data is not None else model.screen_conditions
    counts.update({g: 0 for c in screen for g in genes_of(str(c))})
    panel = sorted(counts, key=lambda g: (-counts[g], g))[:max_pair_genes]
    universe = sorted(set(map(str, model.genes)) | set(counts))
    done = set(measured)
    singles = [g for g in universe if g not in done]
    pairs = [canonical_label(p) for p in combinations(sorted(panel), 2)]
    labels = singles + [p for p in pairs if p not in done]
    if not labels:
        return []
    return [label for label, ok in zip(labels, model.covers(labels), strict=True) if ok]


def _go_graph_of(model: PerturbationModel) -> GeneGraph | None:
    """The GO graph the model ties genes by; ``None`` without one.

    GEARS's, alone or as a correction of Stacked, or Stacked's own without GEARS
    (:attr:`~perturbsim.models.Stacked.support_graph`).
    """
    if isinstance(model, Stacked) and model.support_graph is not None:
        return model.support_graph
    parts = [model, *model.corrections.values()] if isinstance(model, Stacked) else [model]
    graphs = [part.go_graph for part in parts if isinstance(part, GEARS)]
    return graphs[0] if graphs else None


class _Coverage:
    """Facility-location coverage of the candidates' genes by genes measured alone.

    A gene measured alone covers itself fully and each gene of the GO graph that kept it as
    a neighbour by their similarity (:meth:`GeneGraph.support`). Each gene counts as many
    times as there are candidates it is part of. Measuring a single covers its gene; a pair
    covers none, since every model here predicts a pair from its genes' singles (additive
    baseline, GEARS's additive residual, Stacked's kinds): its value lies in its uncertainty.
    """

    def __init__(self, sets: list[tuple[str, ...]], measured_genes: set[str], graph: GeneGraph):
        demand = Counter(g for s in sets for g in s)
        self.genes = sorted(demand)
        self.weight = np.array([demand[g] for g in self.genes], dtype=np.float64)
        self.cover = graph.support(self.genes, measured_genes)
        position = {g: i for i, g in enumerate(self.genes)}
        node = {g: i for i, g in enumerate(graph.nodes.tolist())}
        into = np.array([position.get(g, -1) for g in graph.nodes.tolist()], dtype=np.int64)
        kept = into[graph.dst] >= 0
        self.edge_src = graph.src[kept]
        self.edge_dst = into[graph.dst[kept]]
        self.edge_weight = graph.weight[kept].astype(np.float64)
        self.n_nodes = graph.n_nodes
        gene = [s[0] if len(s) == 1 else None for s in sets]
        self.own = np.array([-1 if g is None else position[g] for g in gene], dtype=np.int64)
        self.own_node = np.array([-1 if g is None else node.get(g, -1) for g in gene], np.int64)

    def gains(self) -> np.ndarray:
        """Weighted coverage each candidate would add now (0 for pairs)."""
        added = self.weight[self.edge_dst] * np.clip(
            self.edge_weight - self.cover[self.edge_dst], 0.0, None
        )
        by_node = np.bincount(self.edge_src, weights=added, minlength=self.n_nodes)
        single = self.own >= 0
        gains = np.zeros(self.own.size)
        gains[single] = self.weight[self.own[single]] * (1.0 - self.cover[self.own[single]])
        in_graph = self.own_node >= 0
        gains[in_graph] += by_node[self.own_node[in_graph]]
        return gains

    def add(self, i: int) -> None:
        """Count candidate ``i`` as measured."""
        if self.own[i] < 0:
            return
        self.cover[self.own[i]] = 1.0
        if self.own_node[i] >= 0:
            edges = self.edge_src == self.own_node[i]
            np.maximum.at(self.cover, self.edge_dst[edges], self.edge_weight[edges])


MIN_CENTRED = 3
"""Fewest changes whose mean :class:`_Diversity` centres on (see there)."""


class _Diversity:
    """Largest cosine similarity of each candidate's predicted change to a chosen one.

    Changes (``(n, G)`` candidates, ``(m, G)`` measured conditions) are centred on the
    candidates' mean change first, so that the part every prediction shares (e.g. the mean
    of the training perturbations) makes no two alike. Fewer than :data:`MIN_CENTRED`
    candidates are centred on the mean of candidates and measured conditions together, and
    not at all when those too are fewer (two changes centred on their own mean are always
    opposite, whatever they are). Changes equal to the centre (nothing left after centring,
    e.g. every prediction of a model that predicts the mean alike) are alike to one another
    (similarity 1). Measured conditions count as chosen. The penalty lies in [0, 1]
    (rounding clipped).
    """

    def __init__(self, candidates: np.ndarray, measured: np.ndarray):
        pooled = candidates if len(candidates) >= MIN_CENTRED else np.vstack([candidates, measured])
        centre = (
            pooled.mean(axis=0, dtype=np.float64)
            if len(pooled) >= MIN_CENTRED
            else np.zeros(candidates.shape[1])
        )
        self.unit, self.flat = self._unit(candidates - centre)
        self.penalty = np.zeros(len(self.unit))
        measured_unit, measured_flat = self._unit(measured - centre)
        for start in range(0, len(measured_unit), _BATCH):
            block = self.unit @ measured_unit[start : start + _BATCH].T
            self.penalty = np.maximum(self.penalty, block.max(axis=1, initial=0.0))
        if measured_flat.any():
            self.penalty[self.flat] = 1.0
        self.penalty = np.clip(self.penalty, 0.0, 1.0)

    @staticmethod
    def _unit(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows scaled to unit length, and which rows are zero (left at zero)."""
        norm = np.linalg.norm(rows, axis=1, keepdims=True)
        unit = np.divide(rows, norm, out=np.zeros_like(rows, dtype=np.float64), where=norm > 0)
        return unit, ~(norm.ravel() > 0)

    def add(self, i: int) -> None:
        """Count candidate ``i`` as chosen."""
        similarity = self.unit @ self.unit[i]
        if self.flat[i]:
            similarity[self.flat] = 1.0
        self.penalty = np.clip(np.maximum(self.penalty, similarity), 0.0, 1.0)


def _graph(
    model: PerturbationModel,
    sets: list[tuple[str, ...]],
    measured_genes: set[str],
    go_annotations: pd.DataFrame | None,
) -> GeneGraph:
    """The GO graph that spreads coverage.

    That of ``go_annotations`` over the candidates' and measured genes, else the model's,
    else an empty graph (a gene covers only itself).
    """
    if go_annotations is not None:
        genes = sorted({g for s in sets for g in s} | measured_genes)
        return go_graph(genes, annotations=go_annotations)
    graph = _go_graph_of(model)
    return graph if graph is not None else GeneGraph(nodes=[], src=[], dst=[], weight=[])


def _normalised(values: np.ndarray) -> np.ndarray:
    """``values`` divided by their largest value (unchanged when that is not positive)."""
    top = values.max(initial=0.0)
    return values / top if top > 0 else values


def _chosen_candidates(candidates: Sequence[str]) -> list[str]:
    """Canonical labels of a caller's ``candidates``, each once, in their order.

    Raises
    ------
    PerturbsimError
        A set (no order to break ties by), an empty list, or the control among them.
    """
    if isinstance(candidates, set | frozenset):
        raise PerturbsimError(
            "candidates must be an ordered list (ties go to the earlier candidate), got a set: "
            "pass sorted(candidates)"
        )
    check_list("candidates", candidates, "labels")
    candidates = list(candidates)  # a generator too
    if not candidates:
        raise PerturbsimError("candidates is empty: name the perturbations to rank, or pass None")
    sets = parse_perturbations(candidates)
    control = [label for label, genes in zip(candidates, sets, strict=True) if not genes]
    if control:
        raise PerturbsimError(
            f"candidates hold {shown(control[0])}, the control, not a perturbation to rank: "
            "leave it out"
        )
    return list(dict.fromkeys(canonical_label(genes) for genes in sets))


def _check_budget(budget: object, n_candidates: int) -> int:
    budget = check_count("budget", budget)
    if n_candidates == 0:
        raise PerturbsimError("no untested candidates: every candidate is measured or uncovered")
    if budget > n_candidates:
        raise PerturbsimError(
            f"budget {budget} exceeds the {n_candidates} untested candidates; "
            f"ask for at most {n_candidates}"
        )
    return int(budget)


def _candidate_list(
    model: PerturbationModel,
    candidates: Sequence[str] | None,
    measured: list[str],
    max_pair_genes: int,
) -> list[str]:
    """Untested, covered candidates (the default ones when ``candidates`` is ``None``)."""
    if candidates is None:
        return default_candidates(model, measured, max_pair_genes=max_pair_genes)
    labels = _chosen_candidates(candidates)
    done = set(measured)
    untested = [c for c in labels if c not in done]
    tested = [c for c in labels if c in done]
    if tested:
        logger.warning(
            "left out %s already measured: %s",
            counted(len(tested), "candidate"),
            shown_list(tested, 10),
        )
    covered = model.covers(untested) if untested else np.zeros(0, dtype=bool)
    if not covered.all():
        left_out = [c for c, ok in zip(untested, covered, strict=True) if not ok]
        logger.warning(
            "left out %s %s cannot predict: %s%s",
            counted(len(left_out), "candidate"),
            model.label,
            shown_list(left_out, 10),
            model.query_hint([genes_of(c) for c in left_out]),
        )
    return [c for c, ok in zip(untested, covered, strict=True) if ok]


def _choose(
    budget: int,
    uncertainty: np.ndarray,
    coverage: _Coverage,
    diversity: _Diversity,
    *,
    weights: tuple[float, float, float] | None,
    order: np.ndarray | None,
) -> pd.DataFrame:
    """Choose ``budget`` candidates one at a time, updating coverage and diversity.

    Each step takes the candidate of highest weighted score (``weights`` of uncertainty,
    coverage and diversity penalty), or the next of ``order`` when given (score NaN). When
    the last pick's score is shared by others, a warning says that candidate order chose.

    Returns
    -------
    Score, uncertainty, coverage and diversity penalty of each pick when it was chosen,
    indexed by candidate, in order of choice.
    """
    scale = coverage.gains().max(initial=0.0) or 1.0
    chosen = np.zeros(len(uncertainty), dtype=bool)
    rows = {}
    for step in range(budget):
        gain = coverage.gains() / scale
        if weights is None:
            score, i = np.full(len(uncertainty), np.nan), int(order[step])
        else:
            parts = (np.nan_to_num(uncertainty), gain, -diversity.penalty)
            score = sum(w * p for w, p in zip(weights, parts, strict=True))
            open_score = np.where(chosen, -np.inf, score)
            i = int(np.argmax(open_score))
            if step == budget - 1:
                tied = int(np.isclose(open_score, score[i], rtol=1e-9, atol=0).sum())
                _warn_tied(tied, weights)
        chosen[i] = True
        rows[i] = (score[i], uncertainty[i], gain[i], diversity.penalty[i])
        coverage.add(i)
        diversity.add(i)
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(DESIGN_COLUMNS[3:]))


def _strategy_weights(
    strategy: str, has_variance: bool, weights: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Weights of uncertainty, coverage and diversity penalty of a greedy strategy."""
    if strategy == "uncertainty" and not has_variance:
        raise PerturbsimError(
            "strategy 'uncertainty' needs a model whose predictions have a .layers['variance'] "
            "(e.g. GEARS with n_models > 1): use 'coverage' or 'combined'"
        )
    if strategy == "combined" and not has_variance:
        logger.warning("the model has no predictive variance: ranking by coverage and diversity")
    u, c, d = weights
    return {
        "combined": (u if has_variance else 0.0, c, d),
        "uncertainty": (1.0, 0.0, 0.0),
        "coverage": (0.0, c, d),
    }[strategy]


def design(
    model: PerturbationModel,
    candidates: Sequence[str] | None = None,
    *,
    budget: int,
    strategy: str = "combined",
    measured: Sequence[str] | None = None,
    go_annotations: pd.DataFrame | None = None,
    max_pair_genes: int = MAX_PAIR_GENES,
    uncertainty_weight: float = 1.0,
    coverage_weight: float = 1.0,
    diversity_weight: float = 0.5,
    seed: int | None = None,
) -> pd.DataFrame:
    """Rank untested perturbations by how much measuring them should improve the model.

    Each candidate gets three parts, each in ``[0, 1]``:

    - ``uncertainty``: its mean predictive variance over genes
      (``.layers["variance"]`` of the model's prediction), divided by the largest among the
      candidates; NaN when the model has no variance;
    - ``coverage``: how much of the candidates' genes measuring it would newly cover,
      divided by the largest such gain before the first pick. A gene measured alone covers
      itself and, through the GO graph, each gene that kept it as a neighbour by their
      Jaccard similarity (:meth:`~perturbsim.graphs.GeneGraph.support`); a gene counts once
      per candidate it is part of (measuring a single helps every pair with its gene).
      Only singles cover genes: the models predict a pair from its genes' singles;
    - ``diversity_penalty``: the largest cosine similarity (clipped to [0, 1]) of its
      predicted change, centred on the candidates' mean change, to that of a measured
      condition or of a candidate already chosen (two changes equal to that mean count
      as alike: 1).

    The batch is chosen greedily: each step takes the candidate of highest score
    ``uncertainty_weight * uncertainty + coverage_weight * coverage - diversity_weight *
    diversity_penalty`` (ties to the earlier candidate), then updates coverage and
    penalties as if it were measured. The table reports each part at the step its
    candidate was chosen. Strategies:

    - ``"combined"``: the score above; without predictive variance (a logged warning), its
      coverage and diversity terms only;
    - ``"uncertainty"``: the highest ``uncertainty`` first (needs variance), nothing else;
    - ``"coverage"``: the score without its uncertainty term;
    - ``"random"``: a random order drawn from ``seed`` (``score`` is NaN): the reference.

    Parameters
    ----------
    model
        A fitted model; its predictive variance, when it has one, and its GO graph (GEARS's,
        or :class:`~perturbsim.models.Stacked`'s support graph, with or without GEARS) are
        used.
    candidates
        Labels of the perturbations that could be measured; measured ones and those the
        model cannot predict (:meth:`~perturbsim.models.PerturbationModel.covers`) are left
        out. Default: :func:`default_candidates` (untested singles of every covered gene,
        untested pairs among at most ``max_pair_genes`` genes of the screen's panel).
    budget
        Number of perturbations to choose, at most the number of untested candidates.
    strategy
        One of ``"combined"``, ``"uncertainty"``, ``"coverage"``, ``"random"``.
    measured
        Labels of the conditions already measured: never proposed, and their predicted
        changes count for the diversity penalty, their single genes for coverage. Default:
        :func:`measured_conditions`. A list replaces that record (a study of what to
        have measured may hold conditions of the screen out), with a warning naming the
        conditions it chose that the model was fitted on (none for an empty list: nothing
        measured, by intent): for conditions measured since, pass
        ``[*measured_conditions(model), *new]``; for a model saved before its fitted
        conditions were recorded, every measured condition. Those the model cannot
        predict are left out of both, with a warning naming them.
    go_annotations
        Gene -> GO term table (``gene``, ``term``) whose similarity graph
        (:func:`perturbsim.graphs.go_graph`) spreads coverage; default: the model's GO
        graph, or none (a gene covers only itself).
    max_pair_genes
        Panel size of the default pairs.
    uncertainty_weight, coverage_weight, diversity_weight
        Weights of the score's parts (``"combined"`` and ``"coverage"``), finite numbers
        >= 0.
    seed
        Seed of the ``"random"`` strategy (default: ``perturbsim.settings.seed``); the other
        strategies are deterministic (a seed given with one is warned of as unused).

    Returns
    -------
    DataFrame of ``budget`` rows in rank order, columns :data:`DESIGN_COLUMNS`: ``rank``
    (1 = measure first), ``perturbation`` (canonical label), ``n_targets``, ``score`` and
    its parts.

    Raises
    ------
    PerturbsimError
        An unknown strategy, a model that is no fitted model, a negative or non-finite
        weight, a budget
        below 1 or above the number of untested candidates, or ``"uncertainty"`` for a
        model without variance.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.simulate(size="tiny", seed=0)
    >>> ps.pp.setup(adata, perturbation_key="condition", control="control")
    >>> ps.pp.split(adata, kind="simulation", seed=0)
    >>> go = adata.uns["simulation"]["go"]
    >>> model = ps.GEARS(adata, go_annotations=go, n_models=2, seed=0).fit(max_epochs=2)
    >>> ranked = ps.tl.design(model, budget=3)
    >>> ranked.columns.tolist()[:3], len(ranked)
    (['rank', 'perturbation', 'n_targets'], 3)
    """
    if strategy not in STRATEGIES:
        raise PerturbsimError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if seed is not None and strategy != "random":  # given, not used: said, not ignored
        logger.warning(
            "seed=%s is not used: only strategy='random' draws at random; %r ranks the same "
            "way every time",
            seed,
            strategy,
        )
    check_fitted_model(model)
    part_weights = (
        check_nonnegative("uncertainty_weight", uncertainty_weight),
        check_nonnegative("coverage_weight", coverage_weight),
        check_nonnegative("diversity_weight", diversity_weight),
    )
    done = _measured_labels(model, measured)
    replaces_record = measured is not None and bool(done)  # []: nothing measured, by intent
    labels = _candidate_list(model, candidates, done, max_pair_genes)
    budget = _check_budget(budget, len(labels))
    if done:
        covered = model.covers(done)
        unknown = [c for c, ok in zip(done, covered, strict=True) if not ok]
        if unknown:  # expected of the screen's held-out conditions, news of a given list
            logger.log(
                logging.INFO if measured is None else logging.WARNING,
                "%s %s cannot predict: left out of diversity and coverage: %s%s",
                counted(len(unknown), "measured condition"),
                model.label,
                shown_list(unknown, 10),
                "" if measured is None else model.query_hint([genes_of(c) for c in unknown]),
            )
        done = [c for c, ok in zip(done, covered, strict=True) if ok]
    delta, variance = _predict(model, labels)
    model.warn_of_larger_sets(labels)  # a candidate guessed beyond what was learnt: said
    sets = [genes_of(c) for c in labels]
    single_genes = {c for c in done if len(genes_of(c)) == 1}
    coverage = _Coverage(sets, single_genes, _graph(model, sets, single_genes, go_annotations))
    diversity = _Diversity(delta, _predict(model, done)[0])
    uncertainty = _normalised(variance) if variance is not None else np.full(len(labels), np.nan)
    if strategy == "random":
        order = np.random.default_rng(resolve_seed(seed)).permutation(len(labels))[:budget]
        weights = None
    else:
        order = None
        weights = _strategy_weights(strategy, variance is not None, part_weights)
    table = _choose(budget, uncertainty, coverage, diversity, weights=weights, order=order)
    table.insert(0, "n_targets", [len(sets[i]) for i in table.index])
    table.insert(0, "perturbation", [labels[i] for i in table.index])
    table.insert(0, "rank", np.arange(1, budget + 1))
    logger.info("ranked %d of %d candidates (%s)", budget, len(labels), strategy)
    if replaces_record:
        _warn_recorded(table["perturbation"].tolist(), model)
    return table.reset_index(drop=True)


def _warn_recorded(chosen: list[str], model: PerturbationModel) -> None:
    """Warn when a ``measured=`` list left out conditions the model was fitted on, now chosen.

    ``measured=`` replaces the model's record (:func:`measured_conditions`), as a study of
    what to have measured needs (its pool: conditions of the screen the model did not fit);
    a list of only the conditions measured since would propose the model's own training
    conditions again.
    """
    fitted = set(known_fitted_conditions(model))
    proposed = [c for c in chosen if c in fitted]
    if proposed:
        logger.warning(
            "%s chosen that the model was fitted on (measured), left out of measured=, "
            "which replaces the model's record: %s; to add conditions measured since, pass "
            "them with tl.measured_conditions(model)",
            counted(len(proposed), "condition was", "conditions were"),
            shown_list(proposed, 10),
        )


def _warn_tied(tied: int, weights: tuple[float, float, float]) -> None:
    """Warn when ``tied`` candidates (the last pick among them) share the last pick's score.

    Which of them is taken then follows candidate order alone (alphabetical for the default
    candidates). ``weights``: of uncertainty, coverage and diversity; the uncertainty alone,
    or none at all (every score 0), each is said.
    """
    if tied < 2:
        return
    by_uncertainty = weights[0] > 0 and weights[1:] == (0.0, 0.0)
    why = (
        "the model knows as little of each; coverage and diversity weights above 0 break the tie"
        if by_uncertainty
        else "every weight is 0, so every score is 0"
        if not any(weights)
        else "their uncertainty, GO coverage and predicted changes tell them apart no better"
    )
    logger.warning(
        "the last pick tied in %s with %s, so candidate order chose it (%s)",
        "uncertainty" if by_uncertainty else "score",
        counted(tied - 1, "other candidate"),
        why,
    )


def active_learning_summary(curves: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Mean error over seeds of each strategy at each number measured, with a t-interval.

    Parameters
    ----------
    curves
        One row per strategy, seed and round, columns :data:`CURVE_COLUMNS`: ``error`` is
        the model's error on the untested conditions after ``n_measured`` conditions were
        measured.
    confidence
        Coverage of the interval ``mean ± t(confidence, n - 1) * std / sqrt(n)`` over the
        ``n`` seeds with a finite error at that point (NaN with one).

    Returns
    -------
    DataFrame with columns ``strategy`` (in order of first appearance), ``n_measured``
    (ascending), ``mean``, ``ci_low``, ``ci_high``, ``n_seeds`` (the seeds with a finite
    error there: a NaN error, a round that could not be scored, is left out). A strategy,
    seed and number measured given twice is refused: each seed counts once.
    """
    checked_table(curves, CURVE_COLUMNS, "curves", kind="a DataFrame of learning curves")
    check_fraction("confidence", confidence)
    if curves.empty:
        raise PerturbsimError("curves has no rows: nothing to summarise")
    errors = pd.to_numeric(curves["error"], errors="coerce")
    unreadable = errors.isna() & curves["error"].notna()
    if unreadable.any():
        bad = curves["error"][unreadable].iloc[0]
        raise PerturbsimError(f"curves' error column must be numeric, got {bad!r}")
    if np.isinf(errors).any():
        raise PerturbsimError(
            f"curves' error column holds {errors[np.isinf(errors)].iloc[0]}: an error is finite "
            "(NaN: a round not scored)"
        )
    measured = pd.to_numeric(curves["n_measured"], errors="coerce")
    whole = measured.notna() & (measured == measured.round()) & (measured >= 0)
    if not whole.all():
        bad = curves["n_measured"][~whole].iloc[0]
        raise PerturbsimError(
            f"curves' n_measured column counts conditions (whole numbers >= 0), got {shown(bad)}"
        )
    if curves["strategy"].isna().any() or curves["seed"].isna().any():
        column = "strategy" if curves["strategy"].isna().any() else "seed"
        raise PerturbsimError(f"curves' {column} column has missing values: name every row's")
    curves = curves.assign(n_measured=measured.astype(int), error=errors)
    keys = ["strategy", "seed", "n_measured"]
    repeated = curves.duplicated(keys)
    if repeated.any():
        first = curves[repeated].iloc[0]
        raise PerturbsimError(
            "curves repeat a strategy, seed and number measured (each seed counts once): "
            f"{first['strategy']!r}, seed {first['seed']}, {first['n_measured']} measured"
        )
    rows = []
    for strategy in pd.unique(curves["strategy"]):
        own = curves[curves["strategy"] == strategy]
        for n_measured, group in own.groupby("n_measured", sort=True):
            mean, _, low, high, n = mean_interval(group["error"].to_numpy(dtype=float), confidence)
            rows.append((strategy, int(n_measured), mean, low, high, n))
    return pd.DataFrame(
        rows, columns=["strategy", "n_measured", "mean", "ci_low", "ci_high", "n_seeds"]
    )
