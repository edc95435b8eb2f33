r"""GEARS training losses, computed exactly from per-condition moments instead of per cell.

The per-cell objective of GEARS
-------------------------------
For a perturbation (set) ``p`` with measured cells :math:`y_1, \dots, y_n` and control cells
:math:`c_1, \dots, c_m`, GEARS pairs every perturbed cell with a random control cell and
predicts it as :math:`\hat y_i = c_{j(i)} + z_p`, where the effect :math:`z_p` depends only on
the set ``p``. The autofocus loss of gene ``g`` is :math:`|y_{ig} - c_{j(i)g} - z_{pg}|^q`
with :math:`q = 2 + \gamma` (:math:`\gamma = 2` by default), averaged over the cells of ``p``
and over the genes retained for ``p`` (its non-zero genes, a mask), then over the
perturbations of the minibatch.

Because the pairing is random, the loss is a noisy estimate of its expectation over all
pairings, :math:`\frac{1}{nm}\sum_{i,j} |y_i - c_j - z|^q` (per gene). For an *even integer*
:math:`q` this expectation depends on the data only through a few moments, so it can be
evaluated exactly, for all cells, at the cost of one (B, G) polynomial.

Moment expansion
----------------
Fix a gene and write :math:`a = y - c` for a perturbed cell :math:`y` and a control cell
:math:`c` drawn independently and uniformly (all :math:`nm` pairs equally likely). For even
:math:`q`, :math:`|a - z|^q = (a - z)^q`, and by the binomial theorem

.. math::

    \mathbb E\,(a - z)^q = \sum_{k=0}^{q} \binom{q}{k}\, \mathbb E[a^k]\, (-z)^{q-k}.

Independence of :math:`y` and :math:`c` (uniform pairs) gives the raw moments of :math:`a`
from the raw moments of the two populations:

.. math::

    \mathbb E[a^k] = \mathbb E[(y - c)^k]
      = \sum_{j=0}^{k} \binom{k}{j}\, \mathbb E[y^j]\, \mathbb E[(-c)^{k-j}]
      = \sum_{j=0}^{k} \binom{k}{j}\, (-1)^{k-j}\, \mathbb E[y^j]\, \mathbb E[c^{k-j}],

with :math:`\mathbb E[y^0] = \mathbb E[c^0] = 1`. So with the raw moments
:math:`\mathbb E[x^k]`, :math:`k = 1..q`, of each condition (a pseudobulk pass) the
"difference moments" :math:`\mathbb E[a^k]` (:func:`difference_moments`) are precomputed once,
and a training step evaluates the degree-``q`` polynomial in :math:`z` above
(:func:`moment_error`, Horner's scheme). This *is* the expectation of the per-cell loss over
all (perturbed cell, control cell) pairings, to rounding, and its gradient in :math:`z`,
:math:`-q\,\mathbb E(a - z)^{q-1}`, is the exact all-pairings gradient. The expansion
subtracts large terms when :math:`|z|` and the moments are large, so the moments are kept and
the polynomial is evaluated in float64 (cheap: B × G × q operations).

For odd or fractional exponents there is no finite expansion, and the statistics keep the raw
moments up to :data:`~perturbsim.pp._chunk_sums.N_MOMENTS` (4) only: for those exponents and
even ones above 4, :func:`cell_error` computes the per-cell loss with explicit random pairing
instead.

The other terms
---------------
* Direction (:func:`direction_loss`): the reference penalises
  :math:`(\mathrm{sign}(y - \bar c) - \mathrm{sign}(\hat y - \bar c))^2`, which has zero
  gradient almost everywhere. Here the prediction is :math:`\tanh(z / T)`, a differentiable
  surrogate of :math:`\mathrm{sign}(z)`, and the target a direction in :math:`[-1, 1]` per
  condition and gene: by default the sign of the pseudobulk change
  :math:`\mathrm{sign}(\bar y_p - \bar c) = \mathrm{sign}\,\mathbb E[a]`; GEARS training
  passes :math:`\tanh(t / 2)` of the gene's Welch t statistic instead, so that changes the
  data do not establish pull little either way.
* Uncertainty (the ``uncertainty`` term of :class:`GEARSLoss`): with a predicted log error
  moment :math:`s` (the ``log_var`` output; for :math:`q = 2` a log-variance), the
  heteroscedastic form :math:`e^{-s}\,\mathbb E|a - z|^q + s`, minimised at
  :math:`s^* = \log \mathbb E|a - z|^q`. (The reference's
  :math:`\mathrm{err}^q + \lambda\,e^{-s}\,\mathrm{err}^q`, :math:`\lambda = 1`, has no
  :math:`+s` term, so :math:`s` grows without bound.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from perturbsim._errors import PerturbsimError
from perturbsim.pp._chunk_sums import N_MOMENTS

__all__ = [
    "GEARSLoss",
    "LossTerms",
    "cell_error",
    "difference_moments",
    "direction_loss",
    "masked_mean",
    "moment_error",
    "variance_from_log_moment",
]


# -- moments ---------------------------------------------------------------------------------
def difference_moments(
    pert_moments: np.ndarray | Tensor,
    control_moments: np.ndarray | Tensor,
    order: int,
) -> np.ndarray | Tensor:
    r"""Raw moments of ``a = y - c`` for independent perturbed (``y``) and control (``c``) cells.

    Parameters
    ----------
    pert_moments
        (K, C, G) raw moments :math:`\mathbb E[y^k]`, ``k = 1..K``, of each condition (e.g.
        ``PseudobulkStats.moments``).
    control_moments
        (K, G) raw moments :math:`\mathbb E[c^k]` of the control cells (e.g.
        ``moments[:, control_index]``).
    order
        Highest moment wanted, ``q`` (``order <= K``).

    Returns
    -------
    (order + 1, C, G) float64 array (a torch tensor when ``pert_moments`` is one) with
    :math:`\mathbb E[a^k]` at index ``k``; index 0 is 1. Slicing ``[:q' + 1]`` gives the
    moments of any lower order ``q'``.
    """
    is_torch = isinstance(pert_moments, Tensor)
    device = pert_moments.device if is_torch else None
    pm = _as_float64_numpy(pert_moments)
    cm = _as_float64_numpy(control_moments)
    order = int(order)
    if pm.ndim != 3:
        raise PerturbsimError(f"pert_moments must be (K, C, G), got shape {pm.shape}")
    if cm.ndim == 3 and cm.shape[1] == 1:
        cm = cm[:, 0]
    if cm.ndim != 2 or cm.shape[0] != pm.shape[0] or cm.shape[1] != pm.shape[2]:
        raise PerturbsimError(
            f"control_moments must be (K, G) = ({pm.shape[0]}, {pm.shape[2]}), got {cm.shape}"
        )
    if order < 1 or order > pm.shape[0]:
        raise PerturbsimError(
            f"order must be between 1 and the number of moments {pm.shape[0]}, got {order}"
        )
    ey = np.concatenate([np.ones((1, *pm.shape[1:])), pm[:order]])  # E[y^j], j = 0..order
    ec = np.concatenate([np.ones((1, cm.shape[1])), cm[:order]])  # E[c^j]
    out = np.empty((order + 1, *pm.shape[1:]), dtype=np.float64)
    for k in range(order + 1):
        acc = np.zeros(pm.shape[1:], dtype=np.float64)
        for j in range(k + 1):
            sign = -1.0 if (k - j) % 2 else 1.0
            acc += math.comb(k, j) * sign * ey[j] * ec[k - j][None, :]
        out[k] = acc
    if is_torch:
        return torch.from_numpy(out).to(device)
    return out


def moment_error(effect: Tensor, diff_moments: Tensor) -> Tensor:
    r"""Exact :math:`\mathbb E\,(a - z)^q` over all cell pairings, per condition and gene.

    Parameters
    ----------
    effect
        (B, G) predicted effects :math:`z`.
    diff_moments
        (q + 1, B, G) moments :math:`\mathbb E[a^k]` from :func:`difference_moments` (rows of
        the batch's conditions); ``q`` must be even.

    Returns
    -------
    (B, G) tensor in the dtype of ``diff_moments`` (use float64).
    """
    q = _check_moments(effect, diff_moments)
    t = -effect.to(diff_moments.dtype)
    # Horner: sum_k C(q,k) m_k t^(q-k)
    out = diff_moments[0] * float(math.comb(q, 0))
    for k in range(1, q + 1):
        out = out * t + math.comb(q, k) * diff_moments[k]
    return out


# -- reductions ------------------------------------------------------------------------------
def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the masked genes of each condition, then over the conditions.

    Conditions with an empty mask are left out of the outer mean. ``mask`` may be boolean or
    non-negative weights; ``None`` means all genes.
    """
    if mask is None:
        return values.mean()
    if mask.shape != values.shape:
        raise PerturbsimError(
            f"mask must have shape {tuple(values.shape)}, got {tuple(mask.shape)}"
        )
    m = mask.to(values.dtype)
    denom = m.sum(dim=1)
    keep = denom > 0
    if not bool(keep.any()):
        return values.sum() * 0.0
    per_row = (values * m).sum(dim=1)[keep] / denom[keep]
    return per_row.mean()


# -- autofocus -------------------------------------------------------------------------------
def _pad_cells(
    pert_cells: Sequence[Tensor] | Tensor, counts: Tensor | Sequence[int] | None, n_batch: int
) -> tuple[Tensor, Tensor]:
    if isinstance(pert_cells, Tensor):
        if pert_cells.dim() != 3:
            raise PerturbsimError(
                f"padded pert_cells must be (B, N, G), got shape {tuple(pert_cells.shape)}"
            )
        if counts is None:
            counts_t = torch.full((pert_cells.shape[0],), pert_cells.shape[1], dtype=torch.int64)
        else:
            counts_t = torch.as_tensor(counts, dtype=torch.int64).cpu()
        cells = pert_cells
    else:
        if counts is not None:
            raise PerturbsimError("counts is only used with padded pert_cells, got a list")
        if len(pert_cells) == 0:
            raise PerturbsimError("pert_cells is empty")
        counts_t = torch.tensor([c.shape[0] for c in pert_cells], dtype=torch.int64)
        cells = torch.nn.utils.rnn.pad_sequence(list(pert_cells), batch_first=True)
    if cells.shape[0] != n_batch or counts_t.numel() != n_batch:
        raise PerturbsimError(f"pert_cells must hold {n_batch} conditions, got {cells.shape[0]}")
    if (counts_t < 1).any() or (counts_t > cells.shape[1]).any():
        raise PerturbsimError(
            f"cell counts must be in [1, {cells.shape[1]}], got {counts_t.tolist()}"
        )
    return cells, counts_t


def _check_exponent(exponent: float) -> float:
    exponent = float(exponent)
    if not math.isfinite(exponent) or exponent < 1:
        raise PerturbsimError(f"exponent must be a finite number >= 1, got {exponent}")
    return exponent


def cell_error(
    effect: Tensor,
    pert_cells: Sequence[Tensor] | Tensor,
    control_cells: Tensor,
    *,
    exponent: float,
    generator: torch.Generator,
    counts: Tensor | Sequence[int] | None = None,
) -> Tensor:
    r"""Per-cell :math:`|y - c - z|^q` with random control pairing, averaged over cells.

    Parameters
    ----------
    effect
        (B, G) predicted effects.
    pert_cells
        The cells of each condition: a list of (n_b, G) tensors, or a padded (B, N, G) tensor
        with ``counts``.
    control_cells
        (m, G) control cells.
    exponent
        ``q >= 1`` (any real).
    generator
        CPU ``torch.Generator`` drawing the control partner of each cell (uniform, with
        replacement).
    counts
        (B,) number of valid rows of a padded ``pert_cells``.

    Returns
    -------
    (B, G) tensor.
    """
    exponent = _check_exponent(exponent)
    cells, counts_t = _pad_cells(pert_cells, counts, effect.shape[0])
    if control_cells.dim() != 2 or control_cells.shape[1] != effect.shape[1]:
        raise PerturbsimError(
            f"control_cells must be (m, {effect.shape[1]}), got {tuple(control_cells.shape)}"
        )
    n_batch, n_max = cells.shape[:2]
    partner = torch.randint(control_cells.shape[0], (n_batch, n_max), generator=generator)
    partner = partner.to(control_cells.device)
    valid = (torch.arange(n_max)[None, :] < counts_t[:, None]).to(effect.device)
    resid = cells.to(effect.dtype) - control_cells.to(effect.dtype)[partner] - effect[:, None]
    err = resid.abs().pow(exponent) * valid[..., None].to(effect.dtype)
    return err.sum(dim=1) / counts_t.to(effect.device, effect.dtype)[:, None]


# -- direction and uncertainty ---------------------------------------------------------------
def direction_loss(
    effect: Tensor,
    direction: Tensor,
    mask: Tensor | None,
    *,
    temperature: float = 0.1,
) -> Tensor:
    r"""Differentiable direction loss :math:`(d - \tanh(z/T))^2`, ``d`` a target direction.

    Deliberate deviation from the reference, whose
    :math:`(\mathrm{sign}(y - \bar c) - \mathrm{sign}(\hat y - \bar c))^2` passes no gradient
    through ``sign``: the target is one direction in ``[-1, 1]`` per condition and gene
    (e.g. the sign of the pseudobulk change, ``torch.sign(diff_moments[1])``, or a confidence
    such as ``tanh(t / 2)`` of a t statistic) and the predicted direction is
    :math:`\tanh(z / T)`, which tends to ``sign(z)`` as ``T → 0``.

    Parameters
    ----------
    effect
        (B, G) predicted effects.
    direction
        (B, G) target directions in ``[-1, 1]``.
    mask
        (B, G) genes entering the loss, or ``None``.
    temperature
        ``T > 0``, in units of the effect (expression); smaller is closer to ``sign``.

    Returns
    -------
    Scalar (masked mean over genes, then mean over conditions).
    """
    if not temperature > 0:
        raise PerturbsimError(f"temperature must be > 0, got {temperature}")
    if direction.shape != effect.shape:
        raise PerturbsimError(
            f"direction must have shape {tuple(effect.shape)}, got {tuple(direction.shape)}"
        )
    pred = torch.tanh(effect / temperature)
    return masked_mean((direction.to(effect.dtype) - pred).square(), mask)


def _heteroscedastic(error: Tensor, log_var: Tensor, mask: Tensor | None) -> Tensor:
    if log_var.shape != error.shape:
        raise PerturbsimError(
            f"log_var must have shape {tuple(error.shape)}, got {tuple(log_var.shape)}"
        )
    s = log_var.to(error.dtype)
    return masked_mean(torch.exp(-s) * error + s, mask)


def variance_from_log_moment(log_moment: np.ndarray, exponent: float) -> np.ndarray:
    r"""Variance of a normal error whose ``exponent``-th absolute moment is ``exp(log_moment)``.

    The uncertainty head learns :math:`s^* = \log \mathbb E|a - z|^q` (see the module
    documentation), a ``q``-th moment, not a variance, for ``q = 2 + gamma``. For a normal
    error :math:`e \sim N(0, \sigma^2)`, :math:`\mathbb E|e|^q = \sigma^q\, m_q` with
    :math:`m_q = 2^{q/2}\,\Gamma((q + 1)/2) / \sqrt\pi` (1 for ``q = 2``, 3 for ``q = 4``),
    so :math:`\sigma^2 = (e^{s} / m_q)^{2/q}`.

    Parameters
    ----------
    log_moment
        Predicted :math:`s`, any shape.
    exponent
        The loss's exponent ``q`` (at least 1).

    Returns
    -------
    :math:`\sigma^2`, float64, the shape of ``log_moment``.

    Examples
    --------
    >>> float(variance_from_log_moment(np.log(np.array(3.0 * 0.5**4)), 4.0).round(12))
    0.25
    """
    q = _check_exponent(exponent)
    log_m = 0.5 * q * math.log(2.0) + math.lgamma(0.5 * (q + 1.0)) - 0.5 * math.log(math.pi)
    return np.exp((np.asarray(log_moment, dtype=np.float64) - log_m) * (2.0 / q))


# -- combined --------------------------------------------------------------------------------
@dataclass
class LossTerms:
    """Named terms of the GEARS loss (scalars); ``total`` is their weighted sum."""

    total: Tensor
    autofocus: Tensor
    direction: Tensor
    uncertainty: Tensor | None = None

    def components(self) -> dict[str, Tensor]:
        """The unweighted terms by name (``uncertainty`` only when it was computed)."""
        terms = {"autofocus": self.autofocus, "direction": self.direction}
        if self.uncertainty is not None:
            terms["uncertainty"] = self.uncertainty
        return terms


class GEARSLoss:
    """Autofocus + ``direction_weight`` × direction (+ ``uncertainty_weight`` × uncertainty).

    Parameters
    ----------
    gamma
        Autofocus exponent ``q = 2 + gamma``. With ``q`` 2 or 4 (default 4; an even integer
        of at most the moments kept) the loss is computed exactly from ``diff_moments``;
        otherwise (odd, fractional, or 6 and above) from cells with random pairing.
    direction_weight
        Weight of :func:`direction_loss`; the default is the reference's
        ``direction_lambda``, 0.1.
    temperature
        Temperature of the direction surrogate.
    uncertainty_weight
        Weight of the heteroscedastic term, used when ``log_var`` is passed.
    """

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        direction_weight: float = 0.1,
        temperature: float = 0.1,
        uncertainty_weight: float = 1.0,
    ) -> None:
        self.exponent = _check_exponent(2.0 + float(gamma))
        self.gamma = float(gamma)
        self.direction_weight = float(direction_weight)
        self.temperature = float(temperature)
        self.uncertainty_weight = float(uncertainty_weight)

    @property
    def uses_moments(self) -> bool:
        """Whether the exact moment-based loss applies (an even exponent of at most 4).

        The statistics keep :data:`~perturbsim.pp._chunk_sums.N_MOMENTS` raw moments.
        """
        q = self.exponent
        return q == int(q) and int(q) % 2 == 0 and int(q) <= N_MOMENTS

    @property
    def order(self) -> int:
        """Number of difference moments needed (``q``); only for the moment path."""
        if not self.uses_moments:
            raise PerturbsimError(
                f"exponent {self.exponent} is not an even integer of at most {N_MOMENTS}: no "
                "moment expansion from the statistics"
            )
        return int(self.exponent)

    def __call__(
        self,
        effect: Tensor,
        log_var: Tensor | None = None,
        *,
        mask: Tensor | None,
        diff_moments: Tensor | None = None,
        direction: Tensor | None = None,
        pert_cells: Sequence[Tensor] | Tensor | None = None,
        control_cells: Tensor | None = None,
        counts: Tensor | Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> LossTerms:
        """Compute the loss terms of a minibatch.

        Parameters
        ----------
        effect
            (B, G) predicted effects.
        log_var
            (B, G) predicted logs of the expected error to the exponent ``q`` (the
            uncertainty head's output; log-variances for ``q = 2``), or ``None`` (no
            uncertainty term).
        mask
            (B, G) genes entering the loss, or ``None``.
        diff_moments
            (>= q + 1, B, G) difference moments (moment path; extra orders are ignored).
        direction
            (B, G) target directions in ``[-1, 1]``; defaults to ``sign(diff_moments[1])``,
            the sign of the pseudobulk change.
        pert_cells, control_cells, counts, generator
            Cells for the per-cell path (odd or fractional exponents), see :func:`cell_error`.

        Returns
        -------
        :class:`LossTerms`.
        """
        if self.uses_moments:
            if diff_moments is None:
                raise PerturbsimError(f"exponent {self.exponent:g} needs diff_moments, got None")
            q = int(self.exponent)
            if diff_moments.shape[0] < q + 1:
                raise PerturbsimError(
                    f"diff_moments must hold orders 0..{q}, got {diff_moments.shape[0]} rows"
                )
            error = moment_error(effect, diff_moments[: q + 1])
        else:
            if pert_cells is None or control_cells is None or generator is None:
                raise PerturbsimError(
                    f"exponent {self.exponent:g} needs pert_cells, control_cells and generator"
                )
            error = cell_error(
                effect,
                pert_cells,
                control_cells,
                exponent=self.exponent,
                generator=generator,
                counts=counts,
            )
        if direction is None:
            if diff_moments is None:
                raise PerturbsimError("direction is needed when diff_moments is not given")
            direction = torch.sign(diff_moments[1])
        autofocus = masked_mean(error, mask).to(effect.dtype)
        direction_term = direction_loss(effect, direction, mask, temperature=self.temperature)
        total = autofocus + self.direction_weight * direction_term
        uncertainty = None
        if log_var is not None:
            uncertainty = _heteroscedastic(error, log_var, mask).to(effect.dtype)
            total = total + self.uncertainty_weight * uncertainty
        return LossTerms(
            total=total, autofocus=autofocus, direction=direction_term, uncertainty=uncertainty
        )


def _as_float64_numpy(x: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _check_moments(effect: Tensor, diff_moments: Tensor) -> int:
    if not isinstance(diff_moments, Tensor):
        raise PerturbsimError(
            f"diff_moments must be a torch tensor, got {type(diff_moments).__name__}"
        )
    if diff_moments.dim() != 3 or tuple(diff_moments.shape[1:]) != tuple(effect.shape):
        raise PerturbsimError(
            f"diff_moments must be (q + 1, {effect.shape[0]}, {effect.shape[1]}), "
            f"got {tuple(diff_moments.shape)}"
        )
    q = diff_moments.shape[0] - 1
    if q < 2 or q % 2:
        raise PerturbsimError(
            f"moment loss needs an even order q >= 2, got q = {q}; "
            "use the per-cell loss (cell_error) for odd or fractional exponents"
        )
    return q
