"""What a model takes from a screen: pseudobulk statistics and the split's conditions."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from anndata import AnnData

from .._errors import PerturbsimError
from .._keys import CONDITION, CONTROL, UNS
from ..pp import PseudobulkStats, genes_of, pseudobulk
from ..pp._pseudobulk import coexpression_source
from ..pp._setup import check_setup
from ..pp._split import Split

logger = logging.getLogger(__name__)


def _training_stats(adata: AnnData) -> PseudobulkStats:
    """Stored statistics, recomputed when their co-expression cells are not the training cells."""
    if "pseudobulk" in adata.uns.get(UNS, {}):
        stats = PseudobulkStats.from_adata(adata)
        if stats.coexpr_gram is not None and stats.coexpr_cells == coexpression_source(adata):
            return stats
        logger.info("stored statistics predate the split: recomputing them on training cells")
    pseudobulk(adata)
    return PseudobulkStats.from_adata(adata)


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
    """

    stats: PseudobulkStats
    train: list[str]
    val: list[str]

    @classmethod
    def from_adata(cls, adata: AnnData) -> ScreenData:
        """Collect statistics and split from ``adata``, computing the statistics if absent.

        Without a split (:func:`perturbsim.pp.split`) every condition is used for training.
        """
        check_setup(adata)
        stats = _training_stats(adata)
        if "split" in adata.uns.get(UNS, {}):
            split = Split.from_adata(adata)
            train, val = list(split.train), list(split.val)
        else:
            logger.warning("no split in adata: training on every condition (no validation)")
            train, val = list(stats.conditions), []
        if CONTROL not in train:
            raise PerturbsimError("the training conditions lack control cells ('ctrl')")
        return cls(stats=stats, train=train, val=val)

    @property
    def genes(self) -> np.ndarray:
        """Measured genes."""
        return self.stats.genes

    def perturbed(self, conditions: list[str]) -> list[str]:
        """The conditions among ``conditions`` that perturb at least one gene."""
        return [c for c in conditions if genes_of(c)]


def sample_cells(
    adata: AnnData, conditions: list[str], *, max_cells: int, seed: int
) -> dict[str, np.ndarray]:
    """Draw up to ``max_cells`` cells of each condition as dense float32 arrays.

    Used by the per-cell loss path (odd or fractional autofocus exponents); works on
    backed files, reading only the drawn rows.

    Parameters
    ----------
    adata
        A set-up screen.
    conditions
        Canonical conditions to sample.
    max_cells
        Cells kept per condition (all when fewer).
    seed
        Seed of the draw.

    Returns
    -------
    Condition -> ``(n, G)`` array of expression.
    """
    rng = np.random.default_rng(seed)
    labels = adata.obs[CONDITION].astype(str).to_numpy()
    cells = {}
    for condition in conditions:
        rows = np.flatnonzero(labels == condition)
        if rows.size > max_cells:
            rows = np.sort(rng.choice(rows, size=max_cells, replace=False))
        block = adata.X[rows]
        block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
        cells[condition] = block.astype(np.float32)
    return cells
