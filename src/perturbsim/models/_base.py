"""The interface shared by GEARS and the baselines: fit, predict, save, load."""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from anndata import AnnData

from .._errors import PerturbsimError
from .._keys import (
    CONDITION,
    CONTROL,
    DELTA_LAYER,
    PRED_MODEL,
    PRED_N_TARGETS,
    SAMPLE_PERTURBATION,
    UNS,
    VARIANCE_LAYER,
)
from .._settings import resolve_seed
from ..pp import canonical_label, parse_perturbations
from ..pp._setup import check_setup
from ._catalogue import MODEL_REGISTRY
from ._data import ScreenData
from ._store import read_model_dir, write_model_dir

logger = logging.getLogger(__name__)

GeneSet = tuple[str, ...]


class PerturbationModel(ABC):
    """A model of the mean expression after perturbing a gene set.

    Subclasses implement :meth:`_fit`, :meth:`_predict_change`, and :meth:`_options`,
    :meth:`_arrays` and :meth:`_restore` for saving, and list the keyword arguments their
    :meth:`fit` accepts in :attr:`fit_options`. Predictions come back as a labelled AnnData,
    one row per queried perturbation. Building or fitting a model never writes into
    ``adata``.

    Parameters
    ----------
    adata
        A set-up screen (:func:`perturbsim.pp.setup`), ideally split (:func:`perturbsim.pp.split`);
        ``None`` only when restoring a saved model.
    seed
        Seed of everything random in fitting (default: ``perturbsim.settings.seed``); models
        without randomness keep it only for the record.
    """

    name: ClassVar[str] = "model"
    fit_options: ClassVar[tuple[str, ...]] = ()
    """Keyword arguments that :meth:`fit` passes on to :meth:`_fit`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MODEL_REGISTRY[cls.name] = cls

    def __init__(self, adata: AnnData | None = None, *, seed: int | None = None) -> None:
        self.data = ScreenData.from_adata(adata) if adata is not None else None
        self.seed = resolve_seed(seed)
        self.is_fitted = False
        if self.data is not None:
            self.genes = np.asarray(self.data.genes, dtype=str)
            self.control_mean = self.data.stats.control_mean.astype(np.float64)

    @classmethod
    def option_names(cls) -> list[str]:
        """Keyword arguments of the constructor (besides ``adata``)."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]

    # -- to implement --------------------------------------------------------------------
    @abstractmethod
    def _fit(self, data: ScreenData, **options: Any) -> None:
        """Fit from the screen's statistics and training conditions.

        ``options`` are the model's :attr:`fit_options`, checked by :meth:`fit`.
        """

    @abstractmethod
    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, np.ndarray | None]:
        """Return the change over control ``(n, G)`` and optionally its variance ``(n, G)``."""

    def _options(self) -> dict[str, Any]:
        """JSON-serialisable options needed to rebuild the model."""
        return {}

    def _arrays(self) -> dict[str, np.ndarray]:
        """Fitted numeric state."""
        return {}

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the fitted state from :meth:`_options` and :meth:`_arrays`."""

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
        """
        if self.data is None:
            raise PerturbsimError(f"{self.name} was loaded without data and cannot be refitted")
        unknown = sorted(set(options) - set(self.fit_options))
        if unknown:
            accepted = ", ".join(self.fit_options) if self.fit_options else "none"
            raise PerturbsimError(
                f"{self.name} has no fit option {unknown[0]!r} (accepted: {accepted})"
            )
        data = self.data
        if train_conditions is not None or val_conditions is not None:
            data = data.with_conditions(train_conditions, val_conditions)
        self._fit(data, **options)
        self.is_fitted = True
        return self

    def covers(self, perturbations: str | list[str] | list[list[str]]) -> np.ndarray:
        """Which perturbations the model can predict (all, unless a subclass says otherwise).

        Parameters
        ----------
        perturbations
            As for :meth:`predict`.

        Returns
        -------
        Boolean array, one entry per perturbation.
        """
        return np.ones(len(parse_perturbations(perturbations)), dtype=bool)

    def predict(self, perturbations: str | list[str] | list[list[str]]) -> AnnData:
        """Predict the mean expression after each perturbation.

        Parameters
        ----------
        perturbations
            One label (``"FOSB+CEBPB"``), a list of labels, or a list of gene lists
            (``[["FOSB", "CEBPB"], ["KLF1"]]``).

        Returns
        -------
        AnnData with one row per perturbation (``obs_names`` = canonical labels) and the
        measured genes as columns: predicted mean expression in ``X`` (never below zero),
        change over control in ``.layers["delta"]``, the predictive variance in
        ``.layers["variance"]`` when the model has one, and ``.obs["n_targets"]``.
        """
        if not self.is_fitted:
            raise PerturbsimError(f"{self.name} is not fitted: call .fit() first")
        sets = parse_perturbations(perturbations)
        change, variance = self._predict_change(sets)
        expression = np.clip(self.control_mean + change, 0.0, None)
        labels = [canonical_label(s) for s in sets]
        obs = pd.DataFrame({PRED_N_TARGETS: [len(s) for s in sets]}, index=pd.Index(labels))
        out = AnnData(
            X=expression.astype(np.float32),
            obs=obs,
            var=pd.DataFrame(index=pd.Index(self.genes)),
        )
        out.layers[DELTA_LAYER] = (expression - self.control_mean).astype(np.float32)
        if variance is not None:
            out.layers[VARIANCE_LAYER] = variance.astype(np.float32)
        out.uns[UNS] = {PRED_MODEL: self.name}
        if out.obs_names.has_duplicates:
            out.obs_names_make_unique()
        return out

    def sample(
        self,
        perturbations: str | list[str] | list[list[str]],
        adata: AnnData,
        *,
        n_cells: int = 100,
        seed: int | None = None,
    ) -> AnnData:
        """Per-cell predictions: control cells of ``adata`` plus each predicted change.

        The model predicts a change that does not depend on the cell, so a perturbed cell is
        a control cell shifted by that change (clipped at zero), as in GEARS; this is the
        form tools that expect cells (e.g. cell-eval) want.

        Parameters
        ----------
        perturbations
            As for :meth:`predict`.
        adata
            A set-up screen (:func:`perturbsim.pp.setup`) with the model's genes; its control
            cells are drawn.
        n_cells
            Cells per perturbation (control cells drawn with replacement).
        seed
            Seed of the draw (default: ``perturbsim.settings.seed``).

        Returns
        -------
        AnnData of ``n_cells`` cells per perturbation, ``obs["perturbation"]`` the canonical
        label, genes as columns, dense ``X``.

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> cells = ps.TrainMean(adata).fit().sample(["KLF1", "KLF1+MAP2K6"], adata, n_cells=5)
        >>> cells.shape
        (10, 500)
        """
        if int(n_cells) < 1:
            raise PerturbsimError(f"n_cells must be >= 1, got {n_cells}")
        check_setup(adata)
        if not np.array_equal(np.asarray(adata.var_names, dtype=str), self.genes):
            raise PerturbsimError(
                f"the genes of adata ({adata.n_vars}) do not match the model's ({len(self.genes)})"
            )
        prediction = self.predict(perturbations)
        control_rows = np.flatnonzero((adata.obs[CONDITION] == CONTROL).to_numpy())
        rng = np.random.default_rng(resolve_seed(seed))
        drawn = np.sort(rng.choice(control_rows, size=(prediction.n_obs, int(n_cells))), axis=1)
        blocks = []
        for row, rows in enumerate(drawn):
            unique, inverse = np.unique(rows, return_inverse=True)
            cells = adata.X[unique]
            cells = cells.toarray() if hasattr(cells, "toarray") else np.asarray(cells)
            blocks.append(np.clip(cells[inverse] + prediction.layers[DELTA_LAYER][row], 0.0, None))
        labels = np.repeat(prediction.obs_names.to_numpy(), int(n_cells))
        obs = pd.DataFrame(
            {SAMPLE_PERTURBATION: pd.Categorical(labels, categories=list(prediction.obs_names))},
            index=pd.Index([f"{label}-{i}" for i, label in enumerate(labels)]),
        )
        return AnnData(
            X=np.vstack(blocks).astype(np.float32),
            obs=obs,
            var=pd.DataFrame(index=pd.Index(self.genes)),
        )

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
            raise PerturbsimError(f"{self.name} is not fitted: nothing to save")
        config = {
            "model": self.name,
            "genes": list(map(str, self.genes)),
            "seed": self.seed,
            "options": self._options(),
        }
        arrays = {"control_mean": self.control_mean, **self._arrays()}
        write_model_dir(path, config=config, arrays=arrays, overwrite=overwrite)
        logger.info("saved %s to %s", self.name, path)

    @classmethod
    def load(cls, path: str | Path, adata: AnnData | None = None) -> PerturbationModel:
        """Load a model saved with :meth:`save`; never unpickles.

        Parameters
        ----------
        path
            The model directory.
        adata
            Optional screen whose genes must match the model's.

        Returns
        -------
        The fitted model (of the class recorded in the directory).
        """
        config, arrays = read_model_dir(path)
        model_cls = MODEL_REGISTRY.get(config.get("model", ""))
        if model_cls is None:
            raise PerturbsimError(f"unknown model type {config.get('model')!r} in {str(path)!r}")
        if cls is not PerturbationModel and not issubclass(model_cls, cls):
            raise PerturbsimError(f"{str(path)!r} holds a {model_cls.name} model, not {cls.name}")
        genes = np.asarray(config["genes"], dtype=str)
        if adata is not None and not np.array_equal(np.asarray(adata.var_names, dtype=str), genes):
            raise PerturbsimError(
                f"the genes of adata ({adata.n_vars}) do not match the model's ({len(genes)})"
            )
        model = model_cls.__new__(model_cls)
        PerturbationModel.__init__(model, None, seed=config.get("seed"))
        model.genes = genes
        model.control_mean = np.asarray(arrays.pop("control_mean"), dtype=np.float64)
        model._restore(config.get("options", {}), arrays)
        model.is_fitted = True
        return model
