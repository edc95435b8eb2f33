"""What a model takes from a screen: statistics, the split's conditions, its own GO table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from anndata import AnnData

from .._checks import check_list, checked_table
from .._errors import PerturbsimError, counted, shown_list
from .._keys import CONTROL, SEP, SETUP, SIMULATION, SPLIT_UNS, UNS
from ..graphs import GeneGraph, go_graph
from ..pp import PseudobulkStats, canonical_label, genes_of, parse_label
from ..pp._pseudobulk import MIN_REPLICATE_CELLS as MIN_CELLS
from ..pp._pseudobulk import current_stats
from ..pp._setup import check_setup
from ..pp._split import Split

logger = logging.getLogger(__name__)

NO_TRAINING_PERTURBATION = (
    "no perturbed training conditions: the split, or the train_conditions given to fit, "
    "train on ctrl only (hold fewer conditions out, e.g. with kind='custom'; a screen "
    "without single-gene perturbations needs kind='combo', not kind='simulation')"
)
"""The error of a split that leaves no perturbation to learn from."""


class NoGOAnnotation(PerturbsimError):
    """No perturbed or measured gene of a screen has a GO annotation: a GO model has no graph.

    :class:`~perturbsim.models.Stacked` leaves such a correction out (with a warning) rather
    than refusing the screen, as GEARS degrades to its genes perturbed in training.
    """


def screen_go_graph(
    data: ScreenData,
    annotations: pd.DataFrame | None,
    *,
    top_k: int,
    threshold: float,
) -> GeneGraph:
    """GO graph (:func:`~perturbsim.graphs.go_graph`) over every perturbed and measured gene.

    Perturbed genes first, then the measured ones, each sorted by name (the graph breaks ties
    by node order, so it does not depend on the order of the screen's genes); those without
    annotation are left out.
    """
    perturbed = sorted({g for c in data.stats.conditions for g in genes_of(c)})
    measured = sorted(str(g) for g in data.genes if g not in set(perturbed))
    return go_graph(perturbed + measured, annotations=annotations, top_k=top_k, threshold=threshold)


def screen_go_annotations(
    adata: object, go_annotations: pd.DataFrame | None
) -> pd.DataFrame | None:
    """The GO annotations a model of ``adata`` uses.

    ``go_annotations`` when given (a DataFrame with columns ``gene`` and ``term``, else an
    error naming what it is); else a
    simulated screen's own GO-like table (``adata.uns["simulation"]["go"]``: its genes are
    in no real annotation); else ``None``, the bundled human GO.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.simulate(size="tiny", seed=0)
    >>> screen_go_annotations(adata, None).columns.tolist()
    ['gene', 'term']
    >>> screen_go_annotations(ps.ds.norman2019_subset(), None) is None
    True
    """
    if go_annotations is not None:  # refused when the model is built, not when fitted
        checked_table(go_annotations, ("gene", "term"), "go_annotations", kind="None or a table")
    if go_annotations is not None or not isinstance(adata, AnnData):
        return go_annotations
    own = adata.uns.get(SIMULATION, {}).get("go")
    if isinstance(own, pd.DataFrame):
        logger.info("GO annotations: the simulated screen's own (uns['simulation']['go'])")
        return own
    return None


def _without_few_cells(
    stats: PseudobulkStats, train: list[str], val: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """``train`` and ``val`` but their perturbed conditions of fewer than 4 cells, and those.

    (:data:`~perturbsim.pp._pseudobulk.MIN_REPLICATE_CELLS`.) Those left out are named in
    one warning, which says when no validation condition is left.

    Raises
    ------
    PerturbsimError
        When no perturbed training condition is left.
    """
    both = [*train, *val]
    cells = stats.n_cells[stats.index(both)]
    few = [c for c, n in zip(both, cells, strict=True) if genes_of(c) and n < MIN_CELLS]
    if not few:
        return train, val, []
    left_out = set(few)
    kept_train = [c for c in train if c not in left_out]
    kept_val = [c for c in val if c not in left_out]
    if not any(genes_of(c) for c in kept_train):
        raise PerturbsimError(
            f"every perturbed training condition has fewer than {MIN_CELLS} cells, too few "
            f"for a mean to learn from: {shown_list(few, 10)}"
        )
    logger.warning(
        "%s of fewer than %d cells left out of training and validation (the mean of so few "
        "cells is mostly noise; they can still be predicted)%s: %s",
        counted(len(few), "condition"),
        MIN_CELLS,
        ", leaving no validation condition" if val and not kept_val else "",
        shown_list(few, 10),
    )
    return kept_train, kept_val, few


def split_record(adata: AnnData) -> tuple | None:
    """What identifies the split stored in ``adata``: its kind, seed and sets (``None``: none).

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> split_record(adata) is None
    True
    >>> ps.pp.split(adata, kind="simulation", seed=1)
    >>> split_record(adata)[:2]
    ('simulation', 1)
    """
    if SPLIT_UNS not in adata.uns.get(UNS, {}):
        return None
    return _record_of(Split.from_adata(adata))


def _record_of(split: Split) -> tuple:
    """The kind, seed and sorted sets of ``split``: :func:`split_record`'s tuple."""
    sets = (split.train, split.val, split.test, split.excluded)
    return (split.kind, split.seed, *(tuple(sorted(map(str, s))) for s in sets))


@dataclass
class ScreenData:
    """Pseudobulk statistics of a screen with its training and validation conditions.

    Attributes
    ----------
    stats
        Per-condition statistics (co-expression moments over training cells).
    train
        Training conditions (``ctrl`` included).
    val
        Validation conditions (may be empty).
    labels
        How the screen was read: the ``control`` label and the ``sep`` of its raw labels,
        their ``perturbation_key`` column and the ``gene_key`` column naming the genes
        (``"none"``: ``var_names``) (:func:`perturbsim.pp.setup`; empty when unknown),
        ``normalize`` (``"true"``)
        when its raw counts were normalised, and ``pooled_datasets`` (``"true"``) when it
        pooled several screens (``pool_datasets=True``).
    where
        The cells the screen was read with (:func:`perturbsim.ds.read`'s ``where``: column ->
        values kept; empty when every cell of the file, or unknown).
    few_cells
        Perturbed conditions of the split's training and validation sets left out of them
        for having fewer than 4 cells (:meth:`from_adata`): neither fitted nor held out.
    excluded
        Conditions the split put in no set (the pairs of a ``single`` split): neither
        fitted nor held out.
    split
        What identifies the split read (:func:`split_record`), to tell a split made since.
    """

    stats: PseudobulkStats
    train: list[str]
    val: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    where: dict[str, list[str]] = field(default_factory=dict)
    few_cells: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    split: tuple | None = None

    @classmethod
    def from_adata(cls, adata: AnnData) -> ScreenData:
        """Collect statistics and split from ``adata``, computing the statistics if absent.

        Without a split (:func:`perturbsim.pp.split`) every condition is used for training.
        Perturbed conditions of fewer than :data:`~perturbsim.pp._pseudobulk.MIN_REPLICATE_CELLS`
        cells are left out of training and validation, with a warning naming them: the mean
        of one to three cells is mostly noise (on the Gasperini screen a pair of 3 cells
        moved one gene by +1.7, a fifth of the mean training change there), and
        :func:`~perturbsim.tl.evaluate` and :func:`~perturbsim.tl.gi_scores` leave such
        conditions out too. They can still be predicted. ``adata`` is not modified.
        """
        check_setup(adata)
        stats = current_stats(adata, coexpression="auto")
        excluded: list[str] = []
        record = None
        if SPLIT_UNS in adata.uns.get(UNS, {}):
            split = Split.from_adata(adata)
            train, val, excluded = list(split.train), list(split.val), list(split.excluded)
            record = _record_of(split)
            present = set(map(str, stats.conditions))
            gone = [c for c in [*train, *val] if c not in present]
            if gone:
                raise PerturbsimError(
                    f"the stored split names {counted(len(gone), 'condition')} no longer in "
                    f"adata ({shown_list(gone, 5)}; subset after perturbsim.pp.split?): "
                    "split it again with perturbsim.pp.split(adata)"
                )
        else:
            logger.warning("no split in adata: training on every condition (no validation)")
            train, val = list(stats.conditions), []
        if CONTROL not in train:
            raise PerturbsimError(f"the training conditions lack control cells ({CONTROL!r})")
        train, val, few = _without_few_cells(stats, train, val)
        setup = adata.uns.get(UNS, {}).get(SETUP, {})
        read_as = ("control", "sep", "perturbation_key", "gene_key")
        labels = {key: str(setup[key]) for key in read_as if key in setup}
        for flag in ("normalize", "pooled_datasets"):  # how to read the file again
            if setup.get(flag, False):
                labels[flag] = "true"
        where = {str(c): [str(v) for v in values] for c, values in setup.get("where", {}).items()}
        return cls(
            stats=stats,
            train=train,
            val=val,
            labels=labels,
            where=where,
            few_cells=few,
            excluded=excluded,
            split=record,
        )

    def with_conditions(
        self, train: Sequence[str] | None, val: Sequence[str] | None = None
    ) -> ScreenData:
        """The same statistics with other training and validation conditions.

        The conditions are taken as given, whatever their cells (none is left out as
        :meth:`from_adata` leaves out those of fewer than 4 cells; with ``train=None`` those
        it left out of the training set stay out).

        Parameters
        ----------
        train
            Labels of the training conditions (canonical, or raw as the screen writes them:
            its control label and separator); ``ctrl`` is added when missing. ``None``
            keeps the current ones.
        val
            Labels of the validation conditions; ``None`` means none.

        Returns
        -------
        A new :class:`ScreenData` sharing :attr:`stats` (whose co-expression moments stay
        those of the cells they were computed on).

        Raises
        ------
        PerturbsimError
            For a label the statistics do not hold, or a condition in both sets.
        """
        train_list = self.train if train is None else self._known(train, "train_conditions")
        if CONTROL not in train_list:
            train_list = [CONTROL, *train_list]
        val_list = [] if val is None else self._known(val, "val_conditions")
        if CONTROL in val_list:
            raise PerturbsimError(
                "val_conditions holds the control: it is always trained on (every change is "
                "over it); validate on perturbed conditions"
            )
        overlap = sorted(set(train_list) & set(val_list))
        if overlap:
            raise PerturbsimError(f"conditions both in training and validation: {overlap[:10]}")
        if train is not None:
            self._warn_of_coexpression_beyond(train_list, val_list)
        return ScreenData(
            stats=self.stats,
            train=train_list,
            val=val_list,
            labels=self.labels,
            where=self.where,
            few_cells=self.few_cells if train is None else [],
            excluded=self.excluded if train is None else [],
            split=self.split,
        )

    def _warn_of_coexpression_beyond(self, train: list[str], val: list[str]) -> None:
        """Warn when cells of conditions in neither set are behind the gene x gene moments.

        The co-expression graph and embedding read those moments, so a condition held out
        of ``train`` and ``val`` whose cells are among them is not held out of the model.
        """
        source = self.stats.coexpr_cells
        if self.stats.coexpr_gram is None or source == "none":
            return
        behind = (
            set(map(str, self.stats.conditions)) if source.startswith("all") else set(self.train)
        )
        beyond = sorted(behind - {CONTROL, *train, *val, *self.few_cells, *self.excluded})
        if beyond:
            logger.warning(
                "the cells of %s outside train_conditions and val_conditions (%s) are behind "
                "the statistics' gene x gene moments, which the co-expression graph and "
                "embedding read: to hold them out, split the screen (perturbsim.pp.split) so "
                "that the moments come from its training cells",
                counted(len(beyond), "condition"),
                shown_list(beyond, 5),
            )

    def _known(self, labels: Sequence[str], what: str) -> list[str]:
        check_list(what, labels, "labels")
        present = set(map(str, self.stats.conditions))
        canonical = [self._canonical(str(label), present) for label in labels]
        unknown = [c for c in canonical if c not in present]
        if unknown:
            raise PerturbsimError(f"{what} names conditions not in the screen: {unknown[:10]}")
        return list(dict.fromkeys(canonical))

    def _canonical(self, label: str, present: set[str]) -> str:
        """``label`` as a canonical label.

        As it is when a condition of the screen, else read as the screen writes its labels
        (its control label and separator), else with ``+``.
        """
        if label in present:
            return label
        control, sep = self.labels.get("control", CONTROL), self.labels.get("sep", SEP)
        if sep != SEP:
            with suppress(PerturbsimError):
                screen_label = canonical_label(parse_label(label, control=control, sep=sep))
                if screen_label in present:
                    return screen_label
        return canonical_label(parse_label(label, control=control))

    @property
    def genes(self) -> np.ndarray:
        """Measured genes."""
        return self.stats.genes

    def perturbed(self, conditions: list[str]) -> list[str]:
        """The conditions among ``conditions`` that perturb at least one gene."""
        return [c for c in conditions if genes_of(c)]

    def changes(self, conditions: Sequence[str]) -> np.ndarray:
        """Mean changes over control of ``conditions``, ``(len(conditions), G)`` float64.

        Examples
        --------
        >>> import perturbsim as ps
        >>> adata = ps.ds.norman2019_subset()
        >>> ps.pp.split(adata, seed=1)
        >>> data = ScreenData.from_adata(adata)
        >>> data.changes(data.perturbed(data.train)[:2]).shape, data.changes([]).shape
        ((2, 500), (0, 500))
        """
        if not conditions:
            return np.zeros((0, len(self.genes)))
        return self.stats.delta[self.stats.index(list(conditions))].astype(np.float64)

    def training_changes(self) -> tuple[list[str], np.ndarray]:
        """Perturbed training conditions and their mean change over control ``(P, G)``."""
        conditions = self.perturbed(self.train)
        if not conditions:
            raise PerturbsimError(NO_TRAINING_PERTURBATION)
        return conditions, self.changes(conditions)

    def mean_training_change(self) -> np.ndarray:
        """Mean change over control of the perturbed training conditions, ``(G,)`` float64.

        Each perturbed training condition (single or combination) weighs equally: the
        "mean" baseline and the prior of GEARS.
        """
        return self.training_changes()[1].mean(axis=0)

    def squared_standard_errors(self, conditions: Sequence[str]) -> np.ndarray:
        """Squared standard error of each condition's mean change, ``s² = var_c / n_c``.

        The condition's own noise, its cells' variance over their count; the control's,
        shared by every condition, is left out.

        Parameters
        ----------
        conditions
            Conditions in the statistics.

        Returns
        -------
        ``(len(conditions), G)`` float64; 0 for a condition of one cell.
        """
        return self.stats.squared_standard_error()[self.stats.index(list(conditions))]

    def change_variances(self, conditions: Sequence[str]) -> np.ndarray:
        """Error variance of each condition's measured change over control, ``(C, G)``.

        The change is the difference of two means, so both count: the condition's squared
        standard error plus the control's, each from its variance moderated towards the
        gene's variance pooled over the training and validation conditions
        (:meth:`~perturbsim.pp.PseudobulkStats.moderated_variance`, the prior that DE and the
        interaction tests use; held-out conditions are left out of the pool). A gene none
        of a condition's cells detected then has an error from the pooled spread, not an
        error of 0; so has a condition of one cell, whose own spread is unknown.

        Returns
        -------
        ``(len(conditions), G)`` float64 (``conditions`` as for
        :meth:`squared_standard_errors`), positive wherever the gene varies in the
        conditions pooled.

        Examples
        --------
        >>> import numpy as np
        >>> import perturbsim as ps
        >>> data = ScreenData.from_adata(ps.ds.norman2019_subset())
        >>> variances = data.change_variances(["KLF1", "KLF1+MAP2K6"])
        >>> own = data.squared_standard_errors(["KLF1", "KLF1+MAP2K6"])
        >>> bool((variances >= own).all())
        True
        >>> # errors of 0: the genes no cell of the screen detected (250), none else
        >>> int((own == 0).sum()), int((variances == 0).sum())
        (781, 500)
        """
        seen = self.stats.index(list(dict.fromkeys(self.train + self.val)))
        squared, _ = self.stats.moderated_squared_standard_error(pooled_over=seen)
        return squared[self.stats.index(list(conditions))] + squared[self.stats.control_index]

    def denoised(self, conditions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean changes of ``conditions`` shrunk towards their mean by their noise, and errors.

        Each condition's measured change of a gene, ``d``, is an estimate whose own noise
        has squared standard error ``s² = var_c / n_c``
        (:meth:`squared_standard_errors`; the control's noise is shared by every condition,
        so it is part of what they have in common, not of what sets one apart). Its
        departure from the mean change of ``conditions``, ``r = d - m``, is shrunk by the
        positive-part James-Stein rule of one observation, a normal prior of mean 0 on the
        true departure with variance estimated from the measurement itself
        (``τ² = max(0, r² - s²)``): ``m + r · w`` with ``w = max(0, 1 - s² / r²)``. A
        departure within its noise (``|r| <= s``) becomes 0, one of ``z = |r| / s``
        standard errors keeps ``1 - 1 / z²`` of itself. The prior is per condition and
        gene, not shared by a gene's conditions, because perturbation effects are sparse: a
        gene that responds strongly to one perturbation and not to the others must keep
        that response. A condition of one cell has no variance and is kept as measured.

        Parameters
        ----------
        conditions
            Conditions in the statistics, at least one.

        Returns
        -------
        ``(changes, variances)``, each ``(len(conditions), G)`` float64 in the order of
        ``conditions``: the shrunk changes and their error variances, ``w · s²``, the
        posterior variance of the true departure under the normal prior that shrinks it
        (``τ² s² / (τ² + s²)``): 0 for a departure shrunk to nothing (the prior then has
        no variance), ``s²`` for one kept whole. The prior's variance is estimated from the
        same measurement, so the variances are an approximation: they understate the error
        of a weak effect kept in part and overstate that of a strong one.
        """
        delta = self.changes(conditions)
        mean = delta.mean(axis=0)
        departure = delta - mean
        noise = self.squared_standard_errors(conditions)
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = np.where(noise > 0, np.clip(1.0 - noise / departure**2, 0.0, 1.0), 1.0)
        weight = np.nan_to_num(weight, nan=0.0)
        return mean + departure * weight, weight * noise

    def single_changes(self, *, validation: bool = False) -> dict[str, np.ndarray]:
        """Gene -> mean change of its single-gene training condition, ``(G,)`` float64.

        With ``validation``, the single-gene validation conditions too (measured, and not
        held out for testing: the split's "seen" genes).
        """
        conditions = self.train + self.val if validation else self.train
        singles = [c for c in self.perturbed(conditions) if len(genes_of(c)) == 1]
        if not singles:
            return {}
        delta = self.changes(singles)
        return dict(zip(singles, delta, strict=True))
