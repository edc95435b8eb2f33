"""The linear baseline of Ahlmann-Eltze, Huber & Anders (Nat. Methods 2025)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from anndata import AnnData

from .._errors import PerturbsimError
from ..pp import genes_of
from ._base import GeneSet, PerturbationModel
from ._data import ScreenData
from ._simple import CoverageMixin

logger = logging.getLogger(__name__)


class Linear(CoverageMixin, PerturbationModel):
    r"""Linear model on PCA gene embeddings (Ahlmann-Eltze, Huber & Anders, Nat. Methods 2025).

    Let :math:`Y` be the training change matrix (genes x perturbed training conditions,
    pseudobulk mean change over control) and :math:`b` its row means (the mean training
    perturbation). The model is

    .. math:: Y \approx G W P^\top + b,

    where :math:`G` (genes x K) are gene embeddings, :math:`P` (perturbations x K)
    perturbation embeddings and :math:`W` (K x K) is fitted by ridge regression,

    .. math:: W = (G^\top G + \lambda I)^{-1} G^\top (Y - b) P (P^\top P + \lambda I)^{-1}.

    As in the paper, :math:`G` holds the first K principal components of the genes in the
    row-centred :math:`Y - b = U S V^\top` (:math:`G = U_K S_K`), and a perturbation of gene
    *g* is embedded by the row of :math:`G` of gene *g*; a set of genes by the sum of their
    rows. The prediction for a perturbation embedded by :math:`p` is :math:`G W p + b`, so a
    perturbation the embedding knows nothing about falls back on the mean training
    perturbation. The empty set (control) is predicted unchanged. Training conditions with an
    embeddable target set are the rows of :math:`P`; :math:`b` averages over all of them.

    **Coverage.** Only perturbations of *measured* genes have a row in :math:`G`. CRISPRa
    targets are often not measured (in the bundled Norman subset 30 of 31 targets are not
    among the 500 genes), so most perturbations cannot be covered: :meth:`covers` tells which
    can, ``predict`` raises naming the others. With ``embed_unmeasured=True`` an unmeasured
    gene that was perturbed *alone in training* is embedded by the principal-component
    scores of its own training change, :math:`U_K^\top (y_g - b)` (the row of
    :math:`V_K S_K`, on the same scale as the rows of :math:`G`); the model then also covers
    combinations of such genes (a denoised, low-rank additive model). Unmeasured genes never
    perturbed alone in training stay uncovered: nothing in the data places them.

    Parameters
    ----------
    adata
        A set-up (and ideally split) screen.
    n_components
        K, the embedding dimension (at most the number of training perturbations).
    ridge
        :math:`\lambda`, the ridge penalty.
    embed_unmeasured
        Embed unmeasured genes perturbed alone in training by their PCA scores (see above).
    seed
        Recorded only: the fit is deterministic.
    """

    name = "linear"
    _uncovered_reason = "not a measured gene"

    def __init__(
        self,
        adata: AnnData | None = None,
        *,
        n_components: int = 10,
        ridge: float = 0.1,
        embed_unmeasured: bool = False,
        seed: int | None = None,
    ) -> None:
        if n_components < 1:
            raise PerturbsimError(f"n_components must be at least 1, got {n_components}")
        if ridge < 0:
            raise PerturbsimError(f"ridge must be non-negative, got {ridge}")
        super().__init__(adata, seed=seed)
        self.n_components = int(n_components)
        self.ridge = float(ridge)
        self.embed_unmeasured = bool(embed_unmeasured)
        if embed_unmeasured:
            self._uncovered_reason = "neither a measured gene nor perturbed alone in training"

    def _fit(self, data: ScreenData) -> None:
        conditions, delta = data.training_changes()
        y = delta.T  # genes x perturbations
        self.offset = data.mean_training_change()
        centred = y - self.offset[:, None]
        u, s, vt = np.linalg.svd(centred, full_matrices=False)
        k = min(self.n_components, len(s))
        self.gene_embedding = u[:, :k] * s[:k]
        gene_row = {g: i for i, g in enumerate(self.genes)}

        self.fallback_genes: list[str] = []
        fallback_rows: list[np.ndarray] = []
        if self.embed_unmeasured:
            for j, cond in enumerate(conditions):
                targets = genes_of(cond)
                if len(targets) == 1 and targets[0] not in gene_row:
                    self.fallback_genes.append(targets[0])
                    fallback_rows.append(vt[:k, j] * s[:k])
        self.fallback_embedding = np.vstack(fallback_rows) if fallback_rows else np.zeros((0, k))

        coverable = self._coverable()
        fit_cols = [j for j, c in enumerate(conditions) if set(genes_of(c)) <= coverable]
        if not fit_cols:
            logger.warning(
                "%s: no training perturbation has an embeddable target (measured gene%s); "
                "W = 0, every covered prediction is the mean training perturbation",
                self.name,
                " or training single" if self.embed_unmeasured else "",
            )
            self.weights = np.zeros((k, k))
            return
        lookups = self._lookups()
        pert = np.vstack([self._embed(genes_of(conditions[j]), *lookups) for j in fit_cols])
        ident = self.ridge * np.eye(k)
        gg = self.gene_embedding.T @ self.gene_embedding + ident
        left = np.linalg.solve(gg, self.gene_embedding.T @ centred[:, fit_cols] @ pert)
        self.weights = np.linalg.solve(pert.T @ pert + ident, left.T).T
        logger.info(
            "%s: K=%d, W fitted on %d of %d training perturbations",
            self.name,
            k,
            len(fit_cols),
            len(conditions),
        )

    def _coverable(self) -> set[str]:
        return set(self.genes) | set(self.fallback_genes)

    def _lookups(self) -> tuple[dict[str, int], dict[str, int]]:
        return (
            {g: i for i, g in enumerate(self.genes)},
            {g: i for i, g in enumerate(self.fallback_genes)},
        )

    def _embed(
        self, genes: GeneSet, gene_row: dict[str, int], fallback_row: dict[str, int]
    ) -> np.ndarray:
        out = np.zeros(self.gene_embedding.shape[1])
        for gene in genes:
            if gene in gene_row:
                out += self.gene_embedding[gene_row[gene]]
            else:
                out += self.fallback_embedding[fallback_row[gene]]
        return out

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, None]:
        self._require_covered(sets)
        lookups = self._lookups()
        change = np.zeros((len(sets), len(self.genes)))
        for i, genes in enumerate(sets):
            if genes:
                embedding = self._embed(genes, *lookups)
                change[i] = self.gene_embedding @ (self.weights @ embedding) + self.offset
        return change, None

    def _options(self) -> dict[str, Any]:
        return {
            "n_components": self.n_components,
            "ridge": self.ridge,
            "embed_unmeasured": self.embed_unmeasured,
            "fallback_genes": list(self.fallback_genes),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "gene_embedding": self.gene_embedding,
            "weights": self.weights,
            "offset": self.offset,
            "fallback_embedding": self.fallback_embedding,
        }

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.n_components = int(options["n_components"])
        self.ridge = float(options["ridge"])
        self.embed_unmeasured = bool(options["embed_unmeasured"])
        if self.embed_unmeasured:
            self._uncovered_reason = "neither a measured gene nor perturbed alone in training"
        self.fallback_genes = [str(g) for g in options["fallback_genes"]]
        for key in ("gene_embedding", "weights", "offset", "fallback_embedding"):
            setattr(self, key, np.asarray(arrays[key], dtype=np.float64))
