"""Cell fitness from predicted expression: a ridge on an expression model's predicted change."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from os import PathLike
from typing import Self

import numpy as np
import pandas as pd

from .._errors import PerturbsimError, counted, shown_list
from .._keys import CONTROL, DELTA_LAYER, PRED_GENERIC
from .._settings import switched_off
from ..pp import canonical_label, parse_perturbations
from ._base import WARN_UNSUPPORTED, PerturbationModel
from ._fitness import RIDGE_GRID, loo_ridge

logger = logging.getLogger(__name__)

MOSTLY_GENERIC = 0.5
"""Above this share of training conditions predicted only generically, fitting warns."""


def check_expression_model(model: object) -> PerturbationModel:
    """``model`` if it is a fitted expression model, else a one-line error saying what it is.

    Raises
    ------
    PerturbsimError
        For a path (a saved model's folder: load it with
        :meth:`~perturbsim.models.PerturbationModel.load`), another object, or a model not
        fitted.
    """
    if isinstance(model, str | PathLike):
        raise PerturbsimError(
            f"expression_model {str(model)!r} is a path, not a model: load a saved model "
            f"with ps.models.PerturbationModel.load({str(model)!r})"
        )
    if not isinstance(model, PerturbationModel):
        raise PerturbsimError(
            "expression_model must be a fitted perturbsim expression model "
            f"(ps.models.PerturbationModel), got {type(model).__name__}"
        )
    if not model.is_fitted:
        raise PerturbsimError(
            f"expression_model {model.label!r} is not fitted: call .fit() first (or load a "
            "saved model with ps.models.PerturbationModel.load)"
        )
    return model


class ExpressionFitness:
    """Fitness from an expression model's predicted change over control, by ridge regression.

    The second route to fitness: any fitted perturbsim expression model predicts the mean
    expression change of a perturbation (``.layers["delta"]`` of
    :meth:`~perturbsim.models.PerturbationModel.predict`); a ridge regression with intercept
    maps that change to fitness. It is fitted on training conditions with measured fitness
    (singles and pairs) that the expression model covers, its penalty chosen by exact
    leave-one-out error over a grid relative to the largest squared singular value of the
    centred changes (:func:`~perturbsim.models._fitness.loo_ridge`). Only perturbations the
    expression model covers can be predicted.

    Parameters
    ----------
    expression_model
        A fitted :class:`~perturbsim.models.PerturbationModel`, e.g. ``ps.Stacked`` trained on
        ``ps.ds.norman2019_subset()``, or one saved and loaded with
        :meth:`~perturbsim.models.PerturbationModel.load` (a path is refused, naming it:
        :func:`check_expression_model`).

    Attributes
    ----------
    alpha
        The chosen penalty.
    n_train
        Conditions the ridge was fitted on.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> expression = ps.TrainMean(adata).fit()
    >>> fitness = {"KLF1": -0.3, "MAP2K6": -0.1, "CEBPE": -0.2, "KLF1+MAP2K6": -0.35}
    >>> route = ps.models.ExpressionFitness(expression).fit(fitness)
    >>> route.n_train
    4
    """

    def __init__(self, expression_model: PerturbationModel) -> None:
        self.expression_model = check_expression_model(expression_model)
        self.alpha = float("nan")
        self.n_train = 0
        self._weights: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"ExpressionFitness({self.expression_model.name}, n_train={self.n_train})"

    def covers(self, perturbations: str | Sequence[str] | Sequence[Sequence[str]]) -> np.ndarray:
        """Which perturbations the expression model (hence this route) can predict.

        Parameters
        ----------
        perturbations
            One label, a list of labels or a list of gene lists.

        Returns
        -------
        Boolean array, one entry per perturbation.
        """
        return np.asarray(self.expression_model.covers(parse_perturbations(perturbations)))

    def _changes(self, sets: list[tuple[str, ...]]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted change of each set, one row per set, repeats included, and its flag.

        The flag: whether the expression model predicts the set only by its generic guess
        (``.obs["generic"]``; all False for a model that does not flag it).
        """
        distinct = list(dict.fromkeys(sets))  # the expression model predicts each once
        with switched_off(WARN_UNSUPPORTED):  # features of fitness, not predictions shown
            predicted = self.expression_model.predict([list(s) for s in distinct])
        row_of = {s: i for i, s in enumerate(distinct)}
        rows = [row_of[s] for s in sets]
        changes = np.asarray(predicted.layers[DELTA_LAYER], dtype=np.float64)
        generic = (
            predicted.obs[PRED_GENERIC].to_numpy(dtype=bool)
            if PRED_GENERIC in predicted.obs
            else np.zeros(len(distinct), dtype=bool)
        )
        return changes[rows].reshape(len(sets), -1), generic[rows]

    def fit(self, fitness: pd.Series | dict[str, float]) -> Self:
        """Fit the ridge on measured fitness of training conditions.

        Parameters
        ----------
        fitness
            Fitness by condition label (``"A"``, ``"A+B"``), each a finite number (else a
            one-line error naming it); conditions the expression model does not cover are
            left out. A warning says when it predicts more than half of those it covers
            only by its generic guess (:data:`MOSTLY_GENERIC`; e.g. a model of another
            screen's genes).

        Returns
        -------
        The route itself.
        """
        given = pd.Series(fitness)
        fitness = pd.to_numeric(given, errors="coerce").astype(np.float64)
        bad = ~np.isfinite(fitness.to_numpy())
        if bad.any():
            label, value = given.index[bad][0], given.iloc[np.flatnonzero(bad)[0]]
            raise PerturbsimError(
                f"fitness of {label!r} is {value!s}: every fitness must be a finite number "
                "(leave out conditions without one)"
            )
        sets = parse_perturbations(fitness.index.astype(str).tolist())
        labels = [canonical_label(s) for s in sets]
        repeated = sorted(c for c, n in Counter(labels).items() if n > 1)
        if repeated:
            raise PerturbsimError(
                f"fitness gives {counted(len(repeated), 'condition')} more than once (as A+B "
                f"and B+A, say): {shown_list(repeated, 5)}; give each one value"
            )
        if CONTROL in labels:
            raise PerturbsimError(
                "fitness holds the control: fitness is of perturbations, relative to it "
                "(leave it out)"
            )
        covered = self.covers(sets)
        if covered.sum() < 3:
            genes = sorted({g for s in sets for g in s})
            known = set(map(str, self.expression_model.genes))
            shared = [g for g in genes if g in known]
            overlap = (
                f"{len(shared)} of their {len(genes)} genes are the expression model's"
                if shared
                else f"none of their genes ({shown_list(genes, 3)}) is among the expression "
                f"model's ({shown_list(sorted(known), 3)}): another species or naming?"
            )
            raise PerturbsimError(
                f"the expression model covers {int(covered.sum())} of the {len(sets)} training "
                f"conditions; the ridge needs at least 3 ({overlap})"
            )
        if not covered.all():
            logger.info("ExpressionFitness: %d conditions not covered, left out", (~covered).sum())
        kept = [s for s, c in zip(sets, covered, strict=True) if c]
        x, generic = self._changes(kept)
        if generic.mean() > MOSTLY_GENERIC:
            logger.warning(
                "ExpressionFitness: the expression model predicts %d of the %d training "
                "conditions only by its generic guess (.obs['generic']: a gene it has no "
                "measurement of, and no GO tie to one that it uses, in its screen), alike from "
                "one such condition to the next, so fitness is fitted on little: is it a model "
                "of this screen's genes? (e.g. %s)",
                int(generic.sum()),
                len(kept),
                shown_list(
                    [canonical_label(s) for s, g in zip(kept, generic, strict=True) if g], 3
                ),
            )
        y = fitness.to_numpy()[covered]
        self._x_mean, self._y_mean = x.mean(axis=0), float(y.mean())
        self._weights, self.alpha = loo_ridge(x - self._x_mean, y - self._y_mean, RIDGE_GRID)
        self.n_train = len(kept)
        return self

    def predict(self, perturbations: str | Sequence[str] | Sequence[Sequence[str]]) -> pd.Series:
        """Predict fitness from the expression model's predicted change.

        Parameters
        ----------
        perturbations
            One label, a list of labels or a list of gene lists, all covered.

        Returns
        -------
        Fitness indexed by canonical label.
        """
        if self._weights is None:
            raise PerturbsimError("ExpressionFitness is not fitted: call .fit() first")
        sets = parse_perturbations(perturbations)
        if () in sets:
            raise PerturbsimError(
                "the control has no fitness to predict: fitness is of perturbations, relative to it"
            )
        covered = self.covers(sets)
        uncovered = [canonical_label(s) for s, c in zip(sets, covered, strict=True) if not c]
        if uncovered:
            raise PerturbsimError(
                f"the expression model cannot predict {counted(len(uncovered), 'perturbation')}: "
                f"{shown_list(uncovered, 10)}"
            )
        values = (self._changes(sets)[0] - self._x_mean) @ self._weights + self._y_mean
        index = pd.Index([canonical_label(s) for s in sets], name="perturbation")
        return pd.Series(values, index=index, name="fitness")
