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
total is taken as ``N = k + L (1 - pi)`` (the gene's own count plus the expected rest), and
the sampler's rescaling of each cell's noise factors to its library size is left out: the
levels come out up to about 0.08 low, nearly alike in every condition, so that the changes
over control are the many-cell limit (``tests/test_simulate.py``), but for a knocked-down
gene's own change, which reads about 0.04 smaller (its low level is off by less).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

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
    module: np.ndarray  # (G,) module index, n_modules for genes outside modules
    n_modules: int
    library_median: float
    library_sigma: float
    target_sum: float

    def module_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noise ``sigma``, cycle amplitude and phase of each module (last: no module)."""
        k = self.n_modules + 1
        sig, amp, phase = np.zeros(k), np.zeros(k), np.zeros(k)
        sig[self.module], amp[self.module], phase[self.module] = self.sigma, self.amp, self.phase
        return sig, amp, phase

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
    bands = ((0.0, 0.3, 10), (0.3, 3.0, 22), (3.0, _POISSON_EXACT_BELOW, _POISSON_KMAX))
    for lo, hi, kmax in bands:
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
    lam = (
        pi[:, None, None, None, None]
        * lib[None, :, None, None, None]
        * np.exp(log_u)[None, None, :, None, None]
        * np.exp(log_c)[None, None, None, :, None]
        * gam[None, None, None, None, :]
    )
    rest = np.broadcast_to(((1 - pi)[:, None] * lib[None, :])[:, :, None, None, None], lam.shape)
    vals = _expect_log1p(lam.ravel(), np.ascontiguousarray(rest).ravel(), model.target_sum)
    vals = vals.reshape(lam.shape)
    w = (
        lw[:, None, None, None]
        * zw[None, :, None, None]
        * cw[None, None, :, None]
        * gw[None, None, None, :]
    )
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


_BIG_MEAN = 2.0


def _draw_counts(
    lam: np.ndarray, r: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Negative-binomial counts of means ``lam`` (n, G), dispersions ``r`` (G,), as COO.

    Exact inverse-CDF sampling that only works on the non-zero entries: one uniform per entry
    decides zero versus non-zero, the non-zero ones walk up the CDF (large means are drawn
    directly). Rows come out in order, as CSR needs.
    """
    q = lam / (lam + r)
    p_nonzero = -np.expm1(r * np.log1p(-q))
    u = rng.random(lam.shape, dtype=np.float32)
    candidate = u < p_nonzero
    candidate |= lam > _BIG_MEAN
    flat = np.flatnonzero(candidate)
    del candidate, p_nonzero
    n_genes = lam.shape[1]
    rows, cols = np.divmod(flat, n_genes)
    lam_c = lam.ravel()[flat].astype(np.float64)
    u_c = u.ravel()[flat].astype(np.float64)
    r_c = r[cols].astype(np.float64)
    k = np.zeros(flat.size, dtype=np.float64)
    b = np.flatnonzero(lam_c > _BIG_MEAN)
    if b.size:
        k[b] = rng.negative_binomial(r_c[b], r_c[b] / (r_c[b] + lam_c[b]))
    pos = np.flatnonzero(lam_c <= _BIG_MEAN)
    uu, rr = u_c[pos], r_c[pos]
    qq = lam_c[pos] / (lam_c[pos] + rr)
    pmf = np.exp(rr * np.log1p(-qq))
    survival = 1.0 - pmf  # P(K > 0)
    step = 0
    while pos.size:
        step += 1
        pmf *= (step - 1 + rr) / step * qq
        survival -= pmf  # P(K > step)
        done = (survival <= uu) | (step >= 1000)
        k[pos[done]] = step
        if done.all():
            break
        keep = ~done
        pos, pmf, survival, uu, qq, rr = (a[keep] for a in (pos, pmf, survival, uu, qq, rr))
    nz = k > 0
    return rows[nz], cols[nz].astype(np.int32), k[nz].astype(np.float32)


class CellChunk(NamedTuple):
    """Cells drawn together (one condition), as the parts of a CSR matrix and per-cell values."""

    counts: np.ndarray
    """Non-zero counts, row by row, float32."""
    values: np.ndarray
    """``X`` at the same entries, ``log1p(target_sum * k / total)``, float32."""
    cols: np.ndarray
    """Gene of each entry, int32."""
    row_nnz: np.ndarray
    """Detected genes of each cell."""
    totals: np.ndarray
    """Total counts of each cell."""
    phase: np.ndarray
    """Cell-cycle phase of each cell (radians)."""
    library: np.ndarray
    """Expected total (library size) of each cell."""


def _sample_chunk(
    x_c: np.ndarray, n: int, model: CellModel, seed: np.random.SeedSequence
) -> CellChunk:
    """``n`` cells of one condition with steady state ``x_c``."""
    rng = np.random.default_rng(seed)
    lib = np.exp(np.log(model.library_median) + model.library_sigma * rng.standard_normal(n))
    theta = rng.uniform(0.0, 2 * np.pi, n)
    sig, amp, phase = model.module_params()
    log_f = sig[None, :] * rng.standard_normal((n, sig.size)) - sig[None, :] ** 2 / 2
    log_f += amp[None, :] * np.cos(theta[:, None] - phase[None, :]) - np.log(i0(amp))[None, :]
    factor = np.exp(log_f)  # (n, K + 1): extrinsic rate factor of each module in each cell
    by_module = np.bincount(model.module, weights=x_c, minlength=sig.size)
    factor *= (lib / (factor @ by_module))[:, None]
    lam = factor.astype(np.float32)[:, model.module] * x_c.astype(np.float32)[None, :]
    rows, cols, k = _draw_counts(lam, model.dispersion.astype(np.float32), rng)
    del lam
    totals = np.bincount(rows, weights=k, minlength=n)
    xval = np.log1p(k * (model.target_sum / np.maximum(totals, 1.0))[rows]).astype(np.float32)
    row_nnz = np.bincount(rows, minlength=n)
    return CellChunk(k, xval, cols, row_nnz, totals, theta, lib)


def cell_chunks(
    x_cond: np.ndarray,
    n_cells: np.ndarray,
    model: CellModel,
    seed: np.random.SeedSequence,
    *,
    max_entries: int = 2_000_000,
) -> Iterator[CellChunk]:
    """Draw ``n_cells[c]`` cells of each condition ``c`` with steady state ``x_cond[c]``, lazily.

    Cells come in chunks (at most ``max_entries`` values, one condition each), yielded in
    order of condition. Each chunk is drawn from its own child seed, on threads that work a
    few chunks ahead of the consumer, so the cells do not depend on scheduling and memory
    holds only those few chunks.
    """
    n_genes = x_cond.shape[1]
    rows_per_chunk = max(1, max_entries // n_genes)
    jobs = [
        (c, min(rows_per_chunk, int(n) - start))
        for c, n in enumerate(n_cells)
        for start in range(0, int(n), rows_per_chunk)
    ]
    seeds = seed.spawn(len(jobs))
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ahead: deque[Future[CellChunk]] = deque()
        for (c, n), child in zip(jobs, seeds, strict=True):
            ahead.append(pool.submit(_sample_chunk, x_cond[c], n, model, child))
            if len(ahead) >= 2 * workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def assemble_cells(
    chunks: Iterable[CellChunk], n_genes: int
) -> dict[str, np.ndarray | sp.csr_matrix]:
    """Stack chunks of cells into CSR matrices ``X`` and ``counts`` and per-cell arrays."""
    parts = list(chunks)
    k_parts, x_parts, col_parts, nnz_parts, tot_parts, theta_parts, lib_parts = zip(
        *parts, strict=True
    )
    del parts
    row_nnz = np.concatenate(nnz_parts)
    indptr = np.zeros(row_nnz.size + 1, dtype=np.int64)
    np.cumsum(row_nnz, out=indptr[1:])
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    shape = (row_nnz.size, n_genes)
    indices = np.concatenate(col_parts)
    del col_parts
    counts = sp.csr_matrix((np.concatenate(k_parts), indices, indptr), shape=shape)
    del k_parts
    xmat = sp.csr_matrix((np.concatenate(x_parts), indices.copy(), indptr.copy()), shape=shape)
    del x_parts
    obs = {
        "ncounts": np.concatenate(tot_parts),
        "cell_cycle_phase": np.concatenate(theta_parts),
        "library_size": np.concatenate(lib_parts),
    }
    return {"X": xmat, "counts": counts, **obs}


def sample_cells(
    x_cond: np.ndarray,
    n_cells: np.ndarray,
    model: CellModel,
    seed: np.random.SeedSequence,
    *,
    max_entries: int = 2_000_000,
) -> dict[str, np.ndarray | sp.csr_matrix]:
    """Draw ``n_cells[c]`` cells of each condition ``c`` with steady state ``x_cond[c]``.

    The chunks of :func:`cell_chunks`, stacked by :func:`assemble_cells`.
    """
    chunks = cell_chunks(x_cond, n_cells, model, seed, max_entries=max_entries)
    return assemble_cells(chunks, x_cond.shape[1])
