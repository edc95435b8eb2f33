"""A linear gene-regulatory-network baseline inferred from training co-expression."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from anndata import AnnData

from .._checks import check_count, check_finite, check_list, check_positive
from .._errors import PerturbsimError, shown_list
from ._base import GeneSet, PerturbationModel
from ._data import ScreenData
from ._simple import CoverageMixin

logger = logging.getLogger(__name__)

UNOBSERVED_STEP = 1.0
"""The step of a target when no training single's own target was measured (CRISPRa's)."""
MAX_STEPS = 100
"""Most propagation steps: effects travel one edge a step, and a cascade of more than 100
edges models no screen; each step costs a (sets x regulators) by (regulators x genes)
product. A saved model's ``n_steps`` is held to it too (a hand-edited 10**9 never ends)."""


class GRN(CoverageMixin, PerturbationModel):
    r"""Propagate a perturbation along a linear network inferred from co-expression.

    **Network.** Each measured gene *j* is regressed on the regulator genes *R* (all
    measured, non-constant genes by default; *j* itself excluded) by ridge regression of
    the standardised expression over the training cells. Cells are never revisited: the
    regression is a linear solve on the cell-level covariance, read from the co-expression
    moments of :func:`perturbsim.pp.pseudobulk` (``coexpr_gram``, ``coexpr_sum``,
    ``coexpr_n``, training cells when the screen was split before computing them). With
    :math:`C` the correlation matrix and :math:`\Theta = (C_{RR} + \lambda I)^{-1}`, a gene
    outside *R* gets :math:`\beta = \Theta C_{Rj}` and a regulator *j* gets the
    leave-itself-out ridge coefficients :math:`\beta_{-j} = -\Theta_{-j,j} / \Theta_{jj}`
    (all from one inversion). Coefficients are rescaled to expression units,
    :math:`A_{rj} = \beta_{rj} \sigma_j / \sigma_r`.

    **Propagation.** Perturbing a set *T* clamps the change of each target: its observed
    change in its training single perturbation when there is one, else ``default_step``
    (by default the median of those observed changes: a knockdown's on a CRISPRi screen, an
    activation's on a CRISPRa one). Every other
    gene starts at 0 and ``n_steps`` times takes :math:`d_j \leftarrow \sum_{r \in R} A_{rj}
    d_r`, the targets staying clamped; after *s* steps effects have travelled *s* edges.

    **Coverage.** A target must be a regulator node (a measured gene). CRISPRa targets are
    often unmeasured (30 of the 31 targets of the bundled Norman subset): :meth:`covers`
    tells which perturbations can be predicted and ``predict`` raises naming the others.

    Parameters
    ----------
    adata
        A set-up (and ideally split) screen whose pseudobulk statistics include the
        co-expression moments.
    regulators
        Candidate regulator genes; ``None`` uses every measured gene that varies.
    ridge
        :math:`\lambda`, the ridge penalty on the correlation scale.
    n_steps
        Propagation steps (edges travelled), 1 to :data:`MAX_STEPS` (100).
    default_step
        Change of a target without a training single perturbation; ``None`` (default): the
        median change of the training singles' own targets, where they are measured, and
        +1 log unit (CRISPRa) where none is (CRISPRa targets often are not). Fitted, the
        value used is the model's ``step``.
    seed
        Recorded only: the fit is deterministic.
    """

    name = "grn"
    _uncovered_reason = "not a regulator gene of the network (unmeasured or constant)"

    def __init__(
        self,
        adata: AnnData | None = None,
        *,
        regulators: Sequence[str] | None = None,
        ridge: float = 1.0,
        n_steps: int = 3,
        default_step: float | None = None,
        seed: int | None = None,
    ) -> None:
        check_positive("ridge", ridge)
        check_list("regulators", regulators, "genes", optional=True)
        super().__init__(adata, seed=seed)
        self.requested_regulators = None if regulators is None else [str(g) for g in regulators]
        self.ridge = float(ridge)
        self.n_steps = check_count("n_steps", n_steps, maximum=MAX_STEPS)
        self.default_step = (
            None if default_step is None else check_finite("default_step", default_step)
        )
        self.step = self.default_step

    def _fit(self, data: ScreenData) -> None:
        stats = data.stats
        if stats.coexpr_gram is None or stats.coexpr_n < 2:
            raise PerturbsimError(
                "no gene x gene co-expression moments: rerun perturbsim.pp.pseudobulk(adata) "
                "with coexpression='auto'"
            )
        n = stats.coexpr_n
        mu = stats.coexpr_sum / n
        cov = stats.coexpr_gram / n - np.outer(mu, mu)
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        varies = sd > 1e-8 * max(float(sd.max()), 1e-300)
        genes = list(self.genes)
        if self.requested_regulators is None:
            reg_idx = np.flatnonzero(varies)
        else:
            lookup = {g: i for i, g in enumerate(genes)}
            missing = [g for g in self.requested_regulators if g not in lookup]
            if missing:
                raise PerturbsimError(f"regulators not among the measured genes: {missing[:10]}")
            reg_idx = np.array([lookup[g] for g in self.requested_regulators], dtype=np.int64)
            constant = [str(genes[i]) for i in reg_idx if not varies[i]]
            if constant:
                logger.warning(
                    "%s: dropping constant regulators %s", self.label, shown_list(constant, 10)
                )
            reg_idx = reg_idx[varies[reg_idx]]
        if len(reg_idx) == 0:
            raise PerturbsimError("no regulator gene varies over the co-expression cells")

        safe_sd = np.where(varies, sd, 1.0)
        corr = cov[reg_idx] / np.outer(safe_sd[reg_idx], safe_sd)
        corr[:, ~varies] = 0.0
        theta = np.linalg.inv(corr[:, reg_idx] + self.ridge * np.eye(len(reg_idx)))
        beta = theta @ corr  # regulators x genes, for genes outside R
        for i, j in enumerate(reg_idx):
            beta[:, j] = -theta[:, i] / theta[i, i]
            beta[i, j] = 0.0
        self.regulators = [genes[i] for i in reg_idx]
        self.network = beta * safe_sd[None, :] / safe_sd[reg_idx][:, None]
        self.network[:, ~varies] = 0.0

        gene_col = {g: i for i, g in enumerate(genes)}
        self.step_genes = []
        steps = []
        for target, row in data.single_changes().items():
            if target in gene_col:
                self.step_genes.append(target)
                steps.append(row[gene_col[target]])
        self.steps = np.asarray(steps, dtype=np.float64)
        self.step = self.default_step
        if self.step is None:
            self.step = float(np.median(self.steps)) if len(self.steps) else UNOBSERVED_STEP
        logger.info(
            "%s: %d regulators, %d targets with an observed step; other targets step by %.3g",
            self.label,
            len(self.regulators),
            len(self.step_genes),
            self.step,
        )

    def _coverable(self) -> set[str]:
        return set(self.regulators)

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, None]:
        self._require_covered(sets)
        gene_col = {g: i for i, g in enumerate(self.genes)}
        reg_idx = np.array([gene_col[g] for g in self.regulators], dtype=np.int64)
        observed = dict(zip(self.step_genes, self.steps, strict=True))
        change = np.zeros((len(sets), len(self.genes)))
        rows, cols, values = [], [], []
        for i, genes in enumerate(sets):
            for gene in genes:
                rows.append(i)
                cols.append(gene_col[gene])
                values.append(observed.get(gene, self.step))
        clamp = (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))
        change[clamp] = values
        for _ in range(self.n_steps):
            change = change[:, reg_idx] @ self.network
            change[clamp] = values
        return change, None

    def _options(self) -> dict[str, Any]:
        return {
            "regulators": list(self.regulators),
            "ridge": self.ridge,
            "n_steps": self.n_steps,
            "default_step": self.step,
            "step_genes": list(self.step_genes),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"network": self.network, "steps": self.steps}

    def _array_shapes(self) -> dict[str, tuple[int | str, ...]]:
        return {
            "network": (len(self.regulators), len(self.genes)),
            "steps": (len(self.step_genes),),
        }

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.regulators = [str(g) for g in options["regulators"]]
        self.requested_regulators = list(self.regulators)
        self.ridge = float(options["ridge"])
        self.n_steps = check_count("n_steps", options["n_steps"], maximum=MAX_STEPS)
        self.default_step = self.step = check_finite("default_step", options["default_step"])
        self.step_genes = [str(g) for g in options["step_genes"]]
        self.network = np.asarray(arrays["network"], dtype=np.float64)
        self.steps = np.asarray(arrays["steps"], dtype=np.float64)
