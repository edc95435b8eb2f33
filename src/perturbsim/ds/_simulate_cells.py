"""Cells of the Perturb-seq simulator: extrinsic noise, library sizes, counts, and the truth.

Measurement model of cell ``i`` in condition ``c`` (steady state ``x_c``):

- library size ``L_i ~ LogNormal(log(library_median), library_sigma)``;
- extrinsic noise on the rates of gene ``g``:
  ``u_ig = exp(sigma_g z_i,module(g) - sigma_g^2 / 2) * exp(a_g cos(theta_i - phi_g)) / I0(a_g)``,
  with ``z_i,k ~ N(0, 1)`` shared by the genes of module ``k`` (co-varying programs) and a
  cell-cycle phase ``theta_i ~ U(0, 2 pi)`` driving the cell-cycle modules (``E[u] = 1``);
- counts ``k_ig ~ NB(mean = L_i w_ig / sum_h w_ih, dispersion r_g)`` with ``w_ig = x_cg u_ig``;
- ``X = log1p(target_sum * k / sum_h k_ih)`` (``normalize_total`` + ``log1p``).

Truth. The noiseless mean of ``X`` for a condition is ``E[log1p(target_sum k / N)]`` over
the distribution of cells. It depends on a gene only through its share ``pi = x_g / sum x``
and its noise class ``(sigma_g, a_g, r_g)``, so it is tabulated per class on a grid of
``log pi`` by deterministic quadrature (Gauss-Hermite over ``log L`` and ``z``, equally
spaced phases, generalised Gauss-Laguerre over the gamma of the negative binomial, exact
Poisson sums for small means and Gauss-Hermite for large ones) and interpolated. The cell's
total is taken as ``N = k + L (1 - pi)`` (the gene's own count plus the expected rest).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln, i0, roots_genlaguerre

_GRID = np.linspace(np.log(1e-9), np.log(0.95), 160)
_POISSON_EXACT_BELOW = 25.0
_POISSON_KMAX = 80


@dataclass
class CellModel:
    """Parameters of the measurement model (per gene and global)."""

    sigma: np.ndarray  # (G,) extrinsic module noise (0 outside modules)
    amp: np.ndarray  # (G,) cell-cycle amplitude (0 outside cycle modules)
    phase: np.ndarray  # (G,)
    dispersion: np.ndarray  # (G,) NB r
    module: np.ndarray  # (G,) module index, -1 none
    n_modules: int
    library_median: float
    library_sigma: float
    target_sum: float

    def classes(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct ``(sigma, amp, r)`` classes and the class index of each gene."""
        keys = np.stack([self.sigma, self.amp, self.dispersion], axis=1)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        return uniq, inv.ravel()


def _normal_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


def _expect_log1p(lam: np.ndarray, rest: np.ndarray, c: float) -> np.ndarray:
    """``E[log1p(c k / (k + rest))]`` for ``k ~ Poisson(lam)``."""
    out = np.empty_like(lam)
    small = lam < _POISSON_EXACT_BELOW
    for lo, hi, kmax in ((0.0, 0.3, 10), (0.3, 3.0, 22), (3.0, _POISSON_EXACT_BELOW, _POISSON_KMAX)):
        sel = small & (lam >= lo) & (lam < hi)
        ls, rs = lam[sel], rest[sel]
        pmf = np.exp(-ls)
        acc = np.zeros_like(ls)
        for k in range(1, kmax + 1):
            pmf = pmf * ls / k
            acc += pmf * np.log1p(c * k / (k + rs))
        out[sel] = acc
    big = ~small
    if big.any():
        t, w = _normal_nodes(9)
        lb, rb = lam[big][:, None], rest[big][:, None]
        k = np.maximum(lb + np.sqrt(lb) * t[None, :], 0.0)
        out[big] = (np.log1p(c * k / (k + rb)) * w[None, :]).sum(axis=1)
    return out


def truth_table(model: CellModel, sigma: float, amp: float, r: float) -> np.ndarray:
    """``log E[X]`` on the grid of ``log pi`` for one noise class."""
    lz, lw = _normal_nodes(7)
    lib = np.exp(np.log(model.library_median) + model.library_sigma * lz)
    if sigma > 0:
        zz, zw = _normal_nodes(7)
        log_u = sigma * zz - sigma**2 / 2
    else:
        log_u, zw = np.zeros(1), np.ones(1)
    if amp > 0:
        n_phase = 6
        th = 2 * np.pi * np.arange(n_phase) / n_phase
        log_c, cw = amp * np.cos(th) - np.log(i0(amp)), np.full(n_phase, 1.0 / n_phase)
    else:
        log_c, cw = np.zeros(1), np.ones(1)
    gx, gw = roots_genlaguerre(10, r - 1.0)
    gam, gw = gx / r, gw / np.exp(gammaln(r))
    gw = gw / gw.sum()

    pi = np.exp(_GRID)
    # axes: grid, library, z, phase, gamma
    lam = (pi[:, None, None, None, None] * lib[None, :, None, None, None]
           * np.exp(log_u)[None, None, :, None, None]
           * np.exp(log_c)[None, None, None, :, None] * gam[None, None, None, None, :])
    rest = np.broadcast_to(((1 - pi)[:, None] * lib[None, :])[:, :, None, None, None], lam.shape)
    vals = _expect_log1p(lam.ravel(), np.ascontiguousarray(rest).ravel(), model.target_sum)
    vals = vals.reshape(lam.shape)
    w = (lw[:, None, None, None] * zw[None, :, None, None] * cw[None, None, :, None]
         * gw[None, None, None, :])
    mean = np.tensordot(vals, w, axes=([1, 2, 3, 4], [0, 1, 2, 3]))
    return np.log(np.maximum(mean, 1e-300))


def truth_mean(x: np.ndarray, model: CellModel, *, chunk: int = 256) -> np.ndarray:
    """Noiseless mean of ``X`` for steady states ``x`` ``(C, G)``, float32 ``(C, G)``."""
    uniq, cls = model.classes()
    tables = [truth_table(model, *row) for row in uniq]
    out = np.empty(x.shape, dtype=np.float32)
    groups = [np.flatnonzero(cls == j) for j in range(len(uniq))]
    for start in range(0, x.shape[0], chunk):
        xs = x[start : start + chunk]
        log_pi = np.log(np.maximum(xs / xs.sum(axis=1, keepdims=True), 1e-300))
        for j, genes in enumerate(groups):
            out[start : start + chunk, genes] = np.exp(
                np.interp(log_pi[:, genes], _GRID, tables[j])
            )
    return out


def _sample_chunk(
    x_rows: np.ndarray, model: CellModel, seed: np.random.SeedSequence
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n = x_rows.shape[0]
    lib = np.exp(np.log(model.library_median) + model.library_sigma * rng.standard_normal(n))
    theta = rng.uniform(0.0, 2 * np.pi, n)
    z = np.zeros((n, model.n_modules + 1))
    z[:, :-1] = rng.standard_normal((n, model.n_modules))
    sig = model.sigma
    log_u = sig[None, :] * z[:, model.module] - sig[None, :] ** 2 / 2
    cyc = model.amp > 0
    if cyc.any():
        a = model.amp[cyc]
        log_u[:, cyc] += a * np.cos(theta[:, None] - model.phase[cyc]) - np.log(i0(a))
    w = x_rows * np.exp(log_u)
    lam = w * (lib / w.sum(axis=1))[:, None]
    r = model.dispersion
    counts = rng.negative_binomial(r[None, :], r[None, :] / (r[None, :] + lam))
    csr = sp.csr_matrix(counts.astype(np.float32))
    totals = np.asarray(csr.sum(axis=1)).ravel()
    row_scale = np.repeat(model.target_sum / np.maximum(totals, 1.0), np.diff(csr.indptr))
    xdata = np.log1p(csr.data * row_scale).astype(np.float32)
    return csr.data, xdata, csr.indices.astype(np.int32), np.diff(csr.indptr), totals, theta, lib


def sample_cells(
    x_cond: np.ndarray,
    row_cond: np.ndarray,
    model: CellModel,
    seed: np.random.SeedSequence,
    *,
    max_entries: int = 2_000_000,
) -> dict[str, np.ndarray | sp.csr_matrix]:
    """Draw cells: rows of condition ``row_cond`` with steady states ``x_cond``.

    Chunks of cells are drawn on threads, each from its own child seed, so the result does
    not depend on scheduling.
    """
    n_cells, n_genes = row_cond.size, x_cond.shape[1]
    rows_per_chunk = max(1, max_entries // n_genes)
    starts = list(range(0, n_cells, rows_per_chunk))
    seeds = seed.spawn(len(starts))

    def work(i: int) -> tuple[np.ndarray, ...]:
        sl = slice(starts[i], starts[i] + rows_per_chunk)
        return _sample_chunk(x_cond[row_cond[sl]], model, seeds[i])

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(work, range(len(starts))))
    row_nnz = np.concatenate([p[3] for p in parts])
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(row_nnz, out=indptr[1:])
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    indices = np.concatenate([p[2] for p in parts])
    counts_data = np.concatenate([p[0] for p in parts])
    x_data = np.concatenate([p[1] for p in parts])
    obs = {
        "ncounts": np.concatenate([p[4] for p in parts]),
        "cell_cycle_phase": np.concatenate([p[5] for p in parts]),
        "library_size": np.concatenate([p[6] for p in parts]),
    }
    del parts[:]
    shape = (n_cells, n_genes)
    counts = sp.csr_matrix((counts_data, indices, indptr), shape=shape)
    xmat = sp.csr_matrix((x_data, indices.copy(), indptr.copy()), shape=shape)
    return {"X": xmat, "counts": counts, **obs}
