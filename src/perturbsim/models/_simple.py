"""Simple baselines: no change, the mean training perturbation, and the additive model.

Deliberately simple models that any perturbation model must beat (Ahlmann-Eltze, Huber &
Anders, Nat. Methods 2025): for unseen single perturbations the mean training perturbation
is hard to beat, for combinations of seen singles the additive model is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from .._errors import PerturbsimError, counted, first_case_hint, shown_list
from ..pp import genes_of
from ._base import GeneSet, PerturbationModel
from ._data import ScreenData

logger = logging.getLogger(__name__)

_MAX_NAMED = 10


class CoverageMixin:
    """Models that can only predict perturbations of some genes.

    A subclass implements :meth:`_coverable`, the genes whose perturbation it can predict;
    :meth:`covers` tells an evaluator which queries to score and ``predict`` raises a
    one-line error naming the genes it cannot cover. The empty set (control) is always
    covered (change 0).
    """

    _uncovered_reason: str = "not coverable"

    def _coverable(self) -> set[str]:
        raise NotImplementedError

    def covers(self, perturbations: str | list[str] | list[list[str]]) -> np.ndarray:
        """Which perturbations this model can predict.

        Parameters
        ----------
        perturbations
            As for :meth:`~perturbsim.models.PerturbationModel.predict`: one label, a list of
            labels or a list of gene lists.

        Returns
        -------
        Boolean array, one entry per perturbation, in the order given.
        """
        self.require_fitted()
        coverable = self._coverable()
        sets = self.parsed_query(perturbations)
        return np.array([all(g in coverable for g in s) for s in sets], dtype=bool)

    def _require_covered(self, sets: Iterable[GeneSet]) -> None:
        coverable = self._coverable()
        missing = sorted({g for s in sets for g in s if g not in coverable})
        if missing:
            raise PerturbsimError(
                f"{self.label} cannot predict perturbations of {shown_list(missing, _MAX_NAMED)} "
                f"({self._uncovered_reason}); leave them out (covers() tells what it can predict)"
            )


class ScreenGenes:
    """Models that predict any gene, warning of genes their screen does not know.

    Such a gene (neither measured nor perturbed in the screen of the last fit,
    :attr:`~perturbsim.models.PerturbationModel.screen_conditions`) gets the model's
    generic prediction, as any other: a baseline predicts every perturbation, genes outside
    the screen included; the warning names them, since a typo would go unseen otherwise.
    Files saved before the screen was recorded do not warn.
    """

    def _warn_unknown(self, sets: Iterable[GeneSet]) -> None:
        screen = getattr(self, "screen_conditions", [])
        if not screen:
            return
        known = set(map(str, getattr(self, "genes", []))) | {g for c in screen for g in genes_of(c)}
        unknown = sorted({g for s in sets for g in s if g not in known})
        if unknown:
            hint = first_case_hint(unknown, sorted(known))
            self._warn_once(  # a model's: predicting the same again warns at INFO
                f"{self.label}: {counted(len(unknown), 'gene')} neither measured nor perturbed "
                f"in the screen it was fitted on, predicted as any other (a typo?): "
                f"{shown_list(unknown, 10)}{hint}"
            )


class NoPerturbation(ScreenGenes, PerturbationModel):
    """Predict the control profile for every perturbation (change 0).

    The reference of the normalised metrics (``nmse``): a model is only useful where it
    beats this one.

    Parameters
    ----------
    adata, seed
        As for :class:`PerturbationModel`.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.models.NoPerturbation(adata).fit().predict(["KLF1", "KLF1+MAP2K6"]).shape
    (2, 500)
    """

    name = "no_perturb"

    def _fit(self, data: ScreenData) -> None:
        """Nothing to learn."""

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, None]:
        self._warn_unknown(sets)
        return np.zeros((len(sets), len(self.genes))), None


class TrainMean(ScreenGenes, PerturbationModel):
    """Predict control plus the mean change of the training perturbations.

    Every perturbed training condition (single or combination) weighs equally. Control
    (the empty set) is predicted unchanged.

    Parameters
    ----------
    adata, seed
        As for :class:`PerturbationModel`.
    """

    name = "mean"

    def _fit(self, data: ScreenData) -> None:
        self.mean_change = data.mean_training_change()
        logger.info(
            "%s: mean change over %d training perturbations",
            self.label,
            len(data.perturbed(data.train)),
        )

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, None]:
        self._warn_unknown(sets)
        change = np.tile(self.mean_change, (len(sets), 1))
        change[[len(s) == 0 for s in sets]] = 0.0
        return change, None

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"mean_change": self.mean_change}

    def _array_shapes(self) -> dict[str, tuple[int | str, ...]]:
        return {"mean_change": (len(self.genes),)}

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.mean_change = np.asarray(arrays["mean_change"], dtype=np.float64)


class Additive(CoverageMixin, PerturbationModel):
    """Predict control plus the sum of the measured single-gene changes.

    The change after perturbing a gene set is the sum of the changes measured when each of
    its genes was perturbed alone in a training or validation condition (every measured
    single not held out for testing: the split's "seen" genes). A set containing a gene
    never perturbed alone there cannot be predicted: :meth:`covers` says which sets can,
    and ``predict`` raises naming the genes it cannot cover.

    Parameters
    ----------
    adata, seed
        As for :class:`PerturbationModel`.
    """

    name = "additive"
    _uncovered_reason = "never perturbed alone in the training or validation conditions"

    def _fit(self, data: ScreenData) -> None:
        singles = data.single_changes(validation=True)
        if not singles:
            logger.warning(
                "%s: no single perturbation among the training or validation conditions",
                self.label,
            )
        self.single_genes = list(singles)
        self.single_delta = (
            np.vstack(list(singles.values())) if singles else np.zeros((0, len(self.genes)))
        )
        logger.info("%s: %d measured single perturbations", self.label, len(singles))

    def _coverable(self) -> set[str]:
        return set(self.single_genes)

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, None]:
        self._require_covered(sets)
        row = {g: i for i, g in enumerate(self.single_genes)}
        change = np.zeros((len(sets), len(self.genes)))
        for i, genes in enumerate(sets):
            for gene in genes:
                change[i] += self.single_delta[row[gene]]
        return change, None

    def _options(self) -> dict[str, Any]:
        return {"single_genes": list(self.single_genes)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"single_delta": self.single_delta}

    def _array_shapes(self) -> dict[str, tuple[int | str, ...]]:
        return {"single_delta": (len(self.single_genes), len(self.genes))}

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.single_genes = [str(g) for g in options["single_genes"]]
        self.single_delta = np.asarray(arrays["single_delta"], dtype=np.float64)
