"""Genetic interactions in an evaluation: precision@k of each model's predicted test pairs.

For the test pairs of one split seed, the truth is scored once by Norman's model
(:func:`perturbsim.tl.gi_scores`): the simulator's noiseless profiles when the screen has
them (:func:`perturbsim.tl.truth_profiles`), else the measured means of the pair and its two
singles. Each model predicts the test pairs it covers together with their singles (its own
singles, measured or not), the predictions are scored the same way on the same genes, and
:func:`perturbsim.tl.gi_precision` compares the rankings. On a simulated screen the measured
means are scored against the truth too (row ``"measured"``): how well the screen itself, at
its depth, ranks the true interactions. Where the truth is the measured means, one random
half of the cells' means is ranked against the other half's (row ``"replicate"``): a rough
ceiling, understated (half the cells on each side, where models are scored against all).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from .._keys import CONTROL, SIMULATION
from .._settings import switched_off
from ..models import PerturbationModel
from ..pp import PseudobulkStats, count_de, genes_of
from ..pp._gi import WARN_NOISY_SINGLES, gi_scores, is_scored, resolve_abundance
from ..pp._profiles import profiles_of
from ..pp._pseudobulk import MIN_REPLICATE_CELLS
from ._gi_precision import gi_precision
from ._gi_truth import truth_profiles
from ._result import REPLICATE

logger = logging.getLogger(__name__)

MEASURED = "measured"
"""Row of the measured means scored against a simulator's truth."""
# REPLICATE (the scores' row of the split-half replicate) names here the row of one half of
# the cells' means scored against the other half's, where the truth is the measured means:
# the measurement's own reproducibility, a rough ceiling, understated (half the cells each side).

GI_COLUMNS = [
    "model",
    "seed",
    "truth",
    "subtype",
    "score",
    "k",
    "n_pairs",
    "n_genes",
    "n_true",
    "precision_at_k",
    "recall_at_k",
    "top_k_accuracy",
    "random_precision",
    "random_recall",
    "random_top_k_accuracy",
    "r2",
]


def simulated_truth(adata: AnnData) -> AnnData | None:
    """The noiseless profiles of a simulated screen (:func:`truth_profiles`); None otherwise."""
    return truth_profiles(adata) if SIMULATION in adata.uns else None


def _scored_pairs(table: pd.DataFrame) -> pd.Index:
    return table.index[is_scored(table)]


class GITruth:
    """The true interactions of a seed's test pairs, and the genes every pair is fitted on.

    Pairs are fitted on the genes whose control mean (of the truth) is above Norman's 0.5,
    or on every gene expressed in control when fewer than
    :data:`~perturbsim.pp._gi.FEW_GENES` are (:func:`~perturbsim.pp._gi.resolve_abundance`,
    as :func:`~perturbsim.tl.gi_scores` chooses by default; Norman's threshold was on UMI
    counts: log-normalised screens of a few hundred variable genes, such as the bundled
    Norman subset, keep about 5 above it), their own genes left out. Where the truth is
    the measured means, a pair that changes no gene significantly (no DE gene among the
    fitted ones, :func:`~perturbsim.pp.count_de`) is left unscored, as ``perturbsim
    measured-gi`` leaves it by default: its fit is noise (on the Gasperini screen every
    pair).

    Parameters
    ----------
    stats
        The seed's statistics (every condition's measured means).
    test
        The seed's test conditions; its two-gene ones are scored.
    seed
        Seed of the Theil-Sen subsets.
    simulated
        The simulator's noiseless profiles (:func:`simulated_truth`), or None to take the
        measured means as the truth (pairs whose singles were not measured are left out).
    min_cells
        Measured means of fewer cells leave their pairs unscored (:func:`gi_scores`).
    """

    def __init__(
        self,
        stats: PseudobulkStats,
        test: Sequence[str],
        seed: int,
        simulated: AnnData | None = None,
        *,
        min_cells: int = MIN_REPLICATE_CELLS,
    ) -> None:
        self.stats, self.seed, self.simulated = stats, seed, simulated
        self.min_cells = min_cells
        pairs = [c for c in test if len(genes_of(c)) == 2]
        measured = set(map(str, stats.conditions))
        self.measurable = [p for p in pairs if {p, *genes_of(p)} <= measured]
        if simulated is None:
            self.pairs, self.kind = self.measurable, MEASURED
            profiles = profiles_of(stats, self._with_singles(self.pairs))
            control = stats.control_mean
        else:
            self.pairs, self.kind = [p for p in pairs if p in simulated.obs_names], "simulated"
            profiles = simulated
            control = np.asarray(simulated[CONTROL].X, dtype=float).ravel()
        fitted = control > resolve_abundance(control, None)
        self.genes = list(np.asarray(stats.genes, dtype=str)[fitted])
        self.n_de: dict[str, int] | None = None
        """DE genes of each measured pair (measured truths only): none leaves it unscored."""
        if simulated is None and self.pairs:
            self.n_de = count_de(stats, self.pairs, genes=fitted).to_dict()
        self.scores = self.score(profiles, self.pairs, n_de=self.n_de) if self.pairs else None

    @staticmethod
    def _with_singles(pairs: Sequence[str]) -> list[str]:
        singles = sorted({g for p in pairs for g in genes_of(p)})
        return [*singles, *pairs]

    def score(
        self,
        profiles: AnnData,
        pairs: Sequence[str],
        min_cells: int | None = None,
        n_de: dict[str, int] | None = None,
    ) -> pd.DataFrame:
        """:func:`gi_scores` of ``pairs`` in ``profiles`` on the truth's genes.

        Means of fewer than ``min_cells`` cells (default the truth's) leave pairs unscored,
        as do pairs with no DE gene in ``n_de`` when given; a pair with a single the model
        guessed generically is scored all the same (every model is ranked on every pair it
        covers).
        """
        with switched_off(WARN_NOISY_SINGLES):  # on the way; the replicate's row shows the noise
            return gi_scores(
                profiles,
                pairs=list(pairs),
                genes=self.genes,
                seed=self.seed,
                n_de=n_de,
                min_de=0,
                min_cells=self.min_cells if min_cells is None else min_cells,
                unsupported=(),
            )

    def precision(
        self, name: str, predicted: pd.DataFrame, k: int, truth: pd.DataFrame | None = None
    ) -> pd.DataFrame | None:
        """:func:`gi_precision` of ``predicted`` scores, with ``model``, ``seed``, ``truth``.

        Against ``truth`` scores (default the truth's). None when no pair is scored in both
        tables (e.g. every pair flagged). No more than ``k`` pairs ranked for a subtype
        (scored in both, the truth's strength known) are warned of: precision@k then
        equals a random ranking's.
        """
        truth = self.scores if truth is None else truth
        if truth is None:
            return None
        both = _scored_pairs(predicted).intersection(_scored_pairs(truth))
        if both.empty:
            logger.info("seed %d, %s: no pair scored in both prediction and truth", self.seed, name)
            return None
        table = gi_precision(predicted, truth, k=k)
        ranked = table["n_pairs"] > 0  # a subtype no truth pair has a known score of: none
        if (table.loc[ranked, "n_pairs"] <= k).any():
            logger.warning(  # once an evaluation (each_warning_once), whatever the count
                "interactions: a seed ranks no more test pairs than k = %d (of a subtype whose "
                "truth is known), so precision@%d counts every pair and equals a random "
                "ranking's (top-k accuracy 1), saying nothing of the ranking (evaluate's gi_k "
                "sets k)",
                k,
                k,
            )
        table["n_genes"] = len(self.genes)
        table.insert(0, "truth", self.kind)
        table.insert(0, "seed", self.seed)
        table.insert(0, "model", name)
        return table[GI_COLUMNS]

    def of_model(self, name: str, model: PerturbationModel, k: int) -> pd.DataFrame | None:
        """Precision of ``model``'s predicted interactions; None when it covers no pair."""
        if not self.pairs:
            return None
        pairs = [p for p, ok in zip(self.pairs, model.covers(self.pairs), strict=True) if ok]
        if not pairs:
            return None
        predicted = self.score(model.predict(self._with_singles(pairs)), pairs)
        return self.precision(name, predicted, k)

    def of_measurement(self, k: int) -> pd.DataFrame | None:
        """The screen's own ceiling: its means against a simulator's truth, or its halves.

        On a simulated screen, the measured means scored against the truth (row
        ``"measured"``); where the truth is the measured means, one random half of the cells'
        means against the other half's (row ``"replicate"``; None without the halves). A half
        has about half of each mean's cells, so its pairs are held to half of ``min_cells``.
        """
        if not self.measurable:
            return None
        conditions = self._with_singles(self.measurable)
        if self.simulated is not None:
            measured = profiles_of(self.stats, conditions)
            return self.precision(MEASURED, self.score(measured, self.measurable), k)
        if self.stats.half_moments is None or self.stats.half_n is None:
            return None
        first, second = (
            self.score(
                profiles_of(self.stats.half(which), conditions),
                self.measurable,
                min_cells=max(1, self.min_cells // 2),
                n_de=self.n_de,
            )
            for which in (0, 1)
        )
        return self.precision(REPLICATE, first, k, truth=second)
