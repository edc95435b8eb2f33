"""perturbsim's default: the strongest simple baseline, corrected as far as validation supports.

Simple baselines are hard to beat (Ahlmann-Eltze, Huber & Anders, Nat. Methods 2025): the
mean of the training perturbations for a gene never perturbed, the sum of the measured
singles for a pair of measured genes. :class:`Stacked` starts from that baseline and adds
the corrections of the knowledge-based models (GEARS's network, the GO linear model),
each scaled by a weight fitted on the validation conditions only (stacked generalisation,
Wolpert 1992; Breiman 1996). Where validation shows no gain the weight is 0 and the
prediction is the baseline; the training changes are denoised first, so that effects no
larger than their measurement noise teach nothing.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from anndata import AnnData

from .._errors import PerturbsimError
from ..pp import genes_of
from ._base import GeneSet, PerturbationModel
from ._catalogue import MODEL_REGISTRY
from ._data import ScreenData
from ._gears import FIT_OPTIONS, GEARS
from ._stacking import FitRow, Fitted, fit_per_kind

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2")
"""Kinds of perturbation that get their own correction weights (as the test subgroups).
A single measured in training (``seen_single``) is predicted by its measurement."""
POOLED_CORRECTIONS: tuple[str, ...] = ("combo_seen0", "combo_seen1")
"""Kinds whose corrections may share a fit: combinations with a gene not measured alone.
A model's gain on pairs says nothing of its gain on unseen singles (GEARS's interaction
term helps pairs and not singles), and pairs of measured singles (``combo_seen2``) have a
baseline of another nature, the sum of two measurements: those are corrected only on
evidence of their own."""
SCALE = "scale"
"""Name of the factor on everything but the measured singles (see :class:`Stacked`)."""


def kind_of(genes: GeneSet, measured: set[str] | dict[str, Any]) -> str:
    """The kind of a perturbation, by how many of its genes were measured alone in training.

    ``"seen_single"``, ``"unseen_single"``, or for sets of two genes or more
    ``"combo_seen0"`` (none measured), ``"combo_seen2"`` (all) or ``"combo_seen1"`` (some).
    The control (empty set) is ``"control"``.
    """
    if not genes:
        return "control"
    n_seen = sum(g in measured for g in genes)
    if len(genes) == 1:
        return "seen_single" if n_seen else "unseen_single"
    if n_seen == 0:
        return "combo_seen0"
    return "combo_seen2" if n_seen == len(genes) else "combo_seen1"


class Stacked(PerturbationModel):
    r"""The default: the strongest simple baseline plus validated corrections by GEARS and GO.

    **Baseline.** A perturbation's baseline change is the sum of the measured changes of
    its genes perturbed alone (in training or validation; validation singles join only
    after the weights below are fitted, so that the weights are fitted on predictions made
    without them), plus, when some of its genes were not perturbed alone, the mean change
    of the training perturbations and the direct effect of each such gene on its own
    expression (GEARS's target prior, for measured targets). So a measured single is its
    measurement, an unseen single gets the mean (the ``mean`` baseline), a pair of
    measured singles their sum (``additive``), a pair with one measured single that single
    plus the mean (the partial additive model).

    **Noise.** With ``denoise`` (default) the measured singles entering the baseline are
    shrunk towards the mean change by their standard errors (empirical Bayes,
    :meth:`~perturbsim.models._data.ScreenData.denoised_changes`): what sets a single apart
    is kept only as far as it stands out of its noise. The mean itself is weighed by the
    scale below: on a screen where nothing beyond the targets replicates, the baseline is
    close to no change.

    **Corrections.** GEARS (with the additive residual: the network supplies only the
    interaction on top of measured singles) and, with ``linear_go``, the linear model on GO
    embeddings (``linear_go``, which covers every annotated gene) each predict the
    perturbation. With :math:`s` and :math:`u` the baseline's two parts (measured singles;
    mean and target effects for the genes not measured alone), the calibrated baseline is
    :math:`b = s + c_k u` and the prediction

    .. math:: b + \sum_j w_{k,j} (m_j - b),

    where :math:`m_j` are the models' predictions (:math:`b` where a model cannot predict
    the set) and every weight lies in :math:`[0, 1]`, fitted per kind :math:`k` of
    perturbation (:data:`KINDS`) by bounded least squares on held-out measured changes,
    each condition's own targets left out (:mod:`perturbsim.models._stacking`):

    - the scale :math:`c_k`, how far the mean of the training perturbations predicts a
      perturbation it was not computed from, on the training conditions held out one at a
      time (their mean computed without them) and the validation conditions: on a screen
      where nothing beyond the targets replicates it is close to 0;
    - the corrections' :math:`w_{k,j}`, how far each model's departure from the
      calibrated baseline improves on it, on the validation conditions only (the models
      were fitted on the training conditions).

    A kind with fewer than three held-out conditions borrows the fit pooled over the
    kinds alike (for the scale, every kind; for the corrections, the combinations with a
    gene not measured alone, :data:`POOLED_CORRECTIONS`); any other keeps the baseline
    (:math:`c = 1`, :math:`w = 0`): no departure without evidence. Every fitted weight is
    also shrunk towards its default by its standard error. :attr:`weights` reports them.

    Parameters
    ----------
    adata
        A set-up, split screen (the split's validation conditions fit the weights).
    go_annotations
        GO annotations of GEARS and the GO linear model (default: the bundled human GO).
    seed
        Seed of GEARS (the other parts are deterministic).
    device
        Device of GEARS.
    denoise
        Shrink the measured changes of the baseline by their noise.
    linear_go
        Use the GO linear model as a second correction.
    **gears_options
        Options of :class:`~perturbsim.models.GEARS` (default ``additive_residual=True``).

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.split(adata, seed=1)
    >>> model = ps.models.Stacked(adata, seed=0).fit(max_epochs=2)
    >>> sorted(model.weights["kind"].unique())[:2]
    ['combo_seen0', 'combo_seen1']
    """

    name = "stacked"
    fit_options: ClassVar[tuple[str, ...]] = FIT_OPTIONS

    def __init__(
        self,
        adata: AnnData | ScreenData | None = None,
        *,
        go_annotations: pd.DataFrame | None = None,
        seed: int | None = None,
        device: str = "auto",
        denoise: bool = True,
        linear_go: bool = True,
        **gears_options: Any,
    ) -> None:
        gears_options.setdefault("additive_residual", True)
        self.gears: GEARS | None = None
        self.linear_go: PerturbationModel | None = None
        if adata is not None:
            self.gears = GEARS(
                adata, go_annotations=go_annotations, seed=seed, device=device, **gears_options
            )
            adata = self.gears.data
        super().__init__(adata, seed=seed)
        self.denoise = bool(denoise)
        self.use_linear_go = bool(linear_go)
        if self.data is not None and self.use_linear_go:
            self.linear_go = MODEL_REGISTRY["linear_go"](
                self.data, go_annotations=go_annotations, seed=self.seed
            )
        self.mean_change = np.zeros(0)
        self.singles: dict[str, np.ndarray] = {}
        self._scale: dict[str, Fitted] = {}
        self._corrections_fit: dict[str, Fitted] = {}
        self._correction_names: list[str] = []

    @classmethod
    def option_names(cls) -> list[str]:
        """Its own keyword arguments and GEARS's."""
        own = super().option_names()
        return [*own, *(o for o in GEARS.option_names() if o not in own)]

    # -- parts -----------------------------------------------------------------------------
    def _models(self) -> dict[str, PerturbationModel]:
        models: dict[str, PerturbationModel | None] = {
            "gears": self.gears,
            "linear_go": self.linear_go,
        }
        return {name: model for name, model in models.items() if model is not None}

    def _baseline(self, sets: list[GeneSet]) -> tuple[np.ndarray, np.ndarray]:
        """The two parts of each set's baseline change (see the class documentation).

        Returns
        -------
        ``(seen, unseen)``, each ``(len(sets), G)``: the sum of the measured singles of the
        set's genes, and for sets with genes not measured alone the mean training change
        plus those genes' direct effects on themselves (0 for the other sets).
        """
        assert self.gears is not None
        column = self._gene_column
        target_effect = self.gears.target_effect
        seen = np.zeros((len(sets), len(self.genes)))
        unseen = np.zeros_like(seen)
        for row, genes in enumerate(sets):
            for gene in genes:
                if gene in self.singles:
                    seen[row] += self.singles[gene]
            new = [g for g in genes if g not in self.singles]
            if new:
                unseen[row] = self.mean_change
                if target_effect.size:
                    for gene in new:
                        if gene in column:
                            unseen[row, column[gene]] += target_effect[column[gene]]
        return seen, unseen

    def _corrections(
        self, sets: list[GeneSet], baseline: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Each model's deviation from the baseline, and GEARS's predictive variance.

        A deviation is 0 where the model cannot predict the set; the variance is None when
        GEARS has none.
        """
        deviations, variance = {}, None
        for name, model in self._models().items():
            covered = np.flatnonzero(model.covers([list(s) for s in sets]))
            deviation = np.zeros_like(baseline)
            if covered.size:
                pred = model.predict([list(sets[i]) for i in covered])
                deviation[covered] = pred.layers["delta"] - baseline[covered]
                if name == "gears" and "variance" in pred.layers:
                    variance = np.zeros_like(baseline)
                    variance[covered] = pred.layers["variance"]
            deviations[name] = deviation
        return deviations, variance

    # -- fit -------------------------------------------------------------------------------
    def _fit(self, data: ScreenData, **options: Any) -> None:
        for name, model in self._models().items():
            fit_options = options if name == "gears" else {}
            model.fit(train_conditions=data.train, val_conditions=data.val, **fit_options)
        train = data.perturbed(data.train)
        measured = train + data.perturbed(data.val)
        changes = dict(zip(measured, self._measured_changes(data, measured), strict=True))
        self.mean_change = data.mean_training_change()
        self.singles = {c: changes[c] for c in train if len(genes_of(c)) == 1}
        self._fit_weights(data)
        # validation singles were measured too: predictions use them once the weights are set
        self.singles.update({c: changes[c] for c in measured if len(genes_of(c)) == 1})

    def _measured_changes(self, data: ScreenData, conditions: list[str]) -> np.ndarray:
        """Measured changes of ``conditions``, denoised unless ``denoise=False``."""
        if self.denoise:
            return data.denoised_changes(conditions)
        return data.stats.delta[data.stats.index(conditions)].astype(np.float64)

    def _fit_weights(self, data: ScreenData) -> None:
        """Fit the scale, then the corrections' weights, per kind.

        The scale on held-out training conditions and the validation conditions; the
        corrections on the validation conditions (the networks were trained on the others).
        """
        val = data.perturbed(data.val)
        sets = [genes_of(c) for c in val]
        kinds = [kind_of(s, self.singles) for s in sets]
        seen, unseen = self._baseline(sets)
        measured = data.stats.delta[data.stats.index(val)].astype(np.float64) if val else None
        keep = [self._fitted_genes(s) for s in sets]
        val_rows = [
            FitRow(kinds[i], unseen[i, keep[i], None], measured[i, keep[i]] - seen[i, keep[i]])
            for i in range(len(val))
            if measured is not None and unseen[i].any()
        ]
        self._scale = fit_per_kind(
            self._held_out_training_rows(data) + val_rows, KINDS, np.ones(1), pooled_kinds=KINDS
        )
        scale = np.array([self._scale[k].weights[0] if k in KINDS else 1.0 for k in kinds])
        baseline = seen + scale[:, None] * unseen
        deviations, _ = self._corrections(sets, baseline)
        names = list(deviations)
        rows = [
            FitRow(
                kinds[i],
                np.column_stack([deviations[n][i, keep[i]] for n in names]),
                measured[i, keep[i]] - baseline[i, keep[i]],
            )
            for i in range(len(val))
            if measured is not None
        ]
        self._correction_names = names
        self._corrections_fit = fit_per_kind(
            rows, KINDS, np.zeros(len(names)), pooled_kinds=POOLED_CORRECTIONS
        )
        logger.info("%s weights (fitted on held-out conditions):\n%s", self.name, self.weights)

    def _fitted_genes(self, genes: GeneSet) -> np.ndarray:
        """Mask of the genes a condition's weights are fitted on: all but its own targets."""
        keep = np.ones(len(self.genes), dtype=bool)
        keep[[self._gene_column[g] for g in genes if g in self._gene_column]] = False
        return keep

    def _held_out_training_rows(self, data: ScreenData) -> list[FitRow]:
        """Training conditions held out one at a time, for the scale of the unseen part.

        Each perturbed training condition with genes not measured alone (by the other
        training conditions) is predicted by the mean of the other training conditions.
        """
        train = data.perturbed(data.train)
        if len(train) < 2:
            return []
        raw = data.stats.delta[data.stats.index(train)].astype(np.float64)
        total = raw.sum(axis=0)
        rows = []
        for i, condition in enumerate(train):
            genes = genes_of(condition)
            others = {g: c for g, c in self.singles.items() if g != condition}
            kind = kind_of(genes, others)
            if kind not in KINDS or kind == "combo_seen2":
                continue
            keep = self._fitted_genes(genes)
            seen = sum((others[g] for g in genes if g in others), np.zeros(len(self.genes)))
            loo_mean = (total - raw[i]) / (len(train) - 1)
            rows.append(FitRow(kind, loo_mean[keep, None], raw[i, keep] - seen[keep]))
        return rows

    @cached_property
    def _gene_column(self) -> dict[str, int]:
        return {str(g): i for i, g in enumerate(self.genes)}

    @property
    def weights(self) -> pd.DataFrame:
        """The weights, per kind of perturbation.

        Columns ``kind``, ``part`` (``"scale"``: the factor on the baseline's unseen part;
        ``"gears"``, ``"linear_go"``: the corrections), ``weight``, ``n_conditions`` (the
        held-out conditions that fitted it; 0 means the default was kept) and ``pooled``
        (fitted on the conditions of every kind, the kind having too few of its own).
        """
        rows = []
        for kind in KINDS:
            fits: list[tuple[str, Fitted, int]] = [(SCALE, self._scale[kind], 0)]
            fits += [
                (n, self._corrections_fit[kind], j) for j, n in enumerate(self._correction_names)
            ]
            for part, fitted, j in fits:
                rows.append(
                    {
                        "kind": kind,
                        "part": part,
                        "weight": float(fitted.weights[j]),
                        "n_conditions": fitted.n_conditions,
                        "pooled": fitted.pooled,
                    }
                )
        return pd.DataFrame(rows, columns=["kind", "part", "weight", "n_conditions", "pooled"])

    @property
    def history(self) -> pd.DataFrame:
        """GEARS's training history (see :attr:`perturbsim.models.GEARS.history`)."""
        return self.gears.history if self.gears is not None else pd.DataFrame()

    # -- predict ---------------------------------------------------------------------------
    def _weights_of(self, genes: GeneSet) -> tuple[float, dict[str, float]]:
        """The scale and the corrections' weights of a set (the baseline for other kinds)."""
        kind = kind_of(genes, self.singles)
        if kind not in KINDS:
            return 1.0, {}
        weights = self._corrections_fit[kind].weights
        return float(self._scale[kind].weights[0]), dict(
            zip(self._correction_names, map(float, weights), strict=True)
        )

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, np.ndarray | None]:
        seen, unseen = self._baseline(sets)
        fitted = [self._weights_of(s) for s in sets]
        baseline = seen + np.array([scale for scale, _ in fitted])[:, None] * unseen
        deviations, gears_variance = self._corrections(sets, baseline)
        change = baseline.copy()
        for row, (_, weights) in enumerate(fitted):
            for name, deviation in deviations.items():
                change[row] += weights.get(name, 0.0) * deviation[row]
        change[[not s for s in sets]] = 0.0
        if gears_variance is None:
            return change, None
        gears_weight = np.array([weights.get("gears", 0.0) for _, weights in fitted])
        return change, gears_variance * gears_weight[:, None] ** 2

    # -- persistence -----------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        def as_dict(fitted: dict[str, Fitted]) -> dict[str, Any]:
            return {
                kind: {
                    "weights": f.weights.tolist(),
                    "n_conditions": f.n_conditions,
                    "pooled": f.pooled,
                }
                for kind, f in fitted.items()
            }

        return {
            "denoise": self.denoise,
            "linear_go": self.use_linear_go,
            "scale": as_dict(self._scale),
            "corrections": as_dict(self._corrections_fit),
            "correction_names": self._correction_names,
            "single_genes": list(self.singles),
            "parts": {name: model._options() for name, model in self._models().items()},
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"mean_change": self.mean_change}
        arrays.update({f"single.{g}": change for g, change in self.singles.items()})
        for name, model in self._models().items():
            arrays.update({f"{name}/{key}": value for key, value in model._arrays().items()})
        return arrays

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        def from_dict(saved: dict[str, Any]) -> dict[str, Fitted]:
            return {
                kind: Fitted(np.asarray(f["weights"], float), int(f["n_conditions"]), f["pooled"])
                for kind, f in saved.items()
            }

        self.denoise = bool(options["denoise"])
        self.use_linear_go = bool(options["linear_go"])
        self._scale = from_dict(options["scale"])
        self._corrections_fit = from_dict(options["corrections"])
        self._correction_names = [str(n) for n in options["correction_names"]]
        self.mean_change = np.asarray(arrays["mean_change"], dtype=np.float64)
        self.singles = {g: np.asarray(arrays[f"single.{g}"]) for g in options["single_genes"]}
        parts: dict[str, PerturbationModel] = {}
        for name, part_options in options["parts"].items():
            prefix = f"{name}/"
            part_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            cls = MODEL_REGISTRY.get(name)
            if cls is None:
                raise PerturbsimError(f"unknown part {name!r} of a saved {self.name} model")
            parts[name] = cls.from_state(
                self.genes, self.control_mean, part_options, part_arrays, seed=self.seed
            )
        self.gears = parts.get("gears")  # type: ignore[assignment]
        self.linear_go = parts.get("linear_go")
