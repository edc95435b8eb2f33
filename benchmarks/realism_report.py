"""Compare a simulated screen with the real bundled Norman subset, side by side.

Same statistics on both, written as a Markdown table (``--out``, default
``benchmarks/REALISM.md``) and one JSON line on stdout:

- fraction of zeros of ``X``;
- mean-variance relation: slope of log variance on log mean over genes, on counts (real
  counts recovered as ``expm1(X) * ncounts / 1e4``) and on ``X``;
- DE genes per perturbation: Welch t-test of each perturbation against control,
  ``|t| > 4``, on 100 cells per condition and 100 control cells (as in the real subset),
  as a share of genes;
- correlation structure: absolute Pearson correlation between genes over cells.

The real subset holds 500 highly variable genes; the simulation is shown on all its genes and
on its 500 most variable ones (``scanpy.pp.highly_variable_genes``, seurat flavour), which is
the fair comparison.

Usage: ``python benchmarks/realism_report.py [--size norman] [--seed 0] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import scanpy as sc
import scipy.sparse as sp
from scipy import stats

_CELLS = 100
_T = 4.0


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _slope(m: np.ndarray, v: np.ndarray) -> float:
    ok = (m > 0) & (v > 0)
    return float(np.polyfit(np.log10(m[ok]), np.log10(v[ok]), 1)[0])


def _subsample(adata, key: str, control: str, rng: np.random.Generator):
    keep = []
    labels = adata.obs[key].astype(str).to_numpy()
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        keep.append(np.sort(rng.choice(idx, size=min(_CELLS, idx.size), replace=False)))
    return adata[np.sort(np.concatenate(keep))].copy()


def screen_stats(adata, counts, *, key: str, control: str, seed: int = 0) -> dict:
    """Realism statistics of one screen (``counts``: cells x genes raw counts)."""
    rng = np.random.default_rng(seed)
    x = adata.X
    out: dict[str, float | int] = {
        "cells": int(adata.n_obs),
        "genes": int(adata.n_vars),
        "conditions": int(adata.obs[key].nunique()),
        "fraction_zeros": float(1 - (x != 0).sum() / np.prod(x.shape)),
    }
    xd = x.tocsc() if sp.issparse(x) else x
    mean_x = np.asarray(xd.mean(axis=0)).ravel()
    sq = xd.multiply(xd) if sp.issparse(xd) else xd**2
    var_x = np.asarray(sq.mean(axis=0)).ravel() - mean_x**2
    c = counts.tocsc() if sp.issparse(counts) else counts
    mean_c = np.asarray(c.mean(axis=0)).ravel()
    sqc = c.multiply(c) if sp.issparse(c) else c**2
    var_c = np.asarray(sqc.mean(axis=0)).ravel() - mean_c**2
    out["slope_logvar_logmean_counts"] = _slope(mean_c, var_c)
    out["slope_logvar_logmean_X"] = _slope(mean_x, var_x)
    ok = mean_c > 0.1
    out["overdispersion_median"] = float(np.median((var_c[ok] - mean_c[ok]) / mean_c[ok] ** 2))
    out["median_counts_per_cell"] = float(np.median(np.asarray(counts.sum(axis=1)).ravel()))
    out["median_genes_per_cell"] = float(np.median(np.asarray((counts > 0).sum(axis=1)).ravel()))

    # DE genes per perturbation, on equal cell numbers
    sub = _subsample(adata, key, control, rng)
    xs = _dense(sub.X)
    labels = sub.obs[key].astype(str).to_numpy()
    ctrl = xs[labels == control]
    shares = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lab in np.unique(labels):
            if lab == control:
                continue
            t = stats.ttest_ind(xs[labels == lab], ctrl, equal_var=False).statistic
            shares.append(float(np.mean(np.abs(np.nan_to_num(t)) > _T)))
    shares_a = np.asarray(shares)
    out["de_share_median"] = float(np.median(shares_a))
    out["de_share_p90"] = float(np.percentile(shares_a, 90))
    out["de_share_max"] = float(shares_a.max())
    out["share_perturbations_no_de"] = float(np.mean(shares_a * adata.n_vars < 1))

    # correlation structure over (up to 5,000) cells
    cells = rng.choice(adata.n_obs, size=min(5000, adata.n_obs), replace=False)
    xc = _dense(x[np.sort(cells)])
    xc = xc[:, xc.std(axis=0) > 0]
    corr = np.corrcoef(xc, rowvar=False)
    upper = np.abs(corr[np.triu_indices_from(corr, k=1)])
    out["abs_corr_median"] = float(np.median(upper))
    out["abs_corr_p99"] = float(np.percentile(upper, 99))
    out["share_abs_corr_gt_0.1"] = float(np.mean(upper > 0.1))
    return out


def _real_counts(adata) -> sp.csr_matrix:
    x = sp.csr_matrix(adata.X)
    scale = adata.obs["ncounts"].to_numpy() / 1e4
    counts = x.copy()
    counts.data = np.round(np.expm1(x.data) * np.repeat(scale, np.diff(x.indptr)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="norman")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "REALISM.md"))
    args = parser.parse_args()
    import perturbsim as ps
    from perturbsim.ds._simulate import simulate

    real = ps.ds.norman2019_subset()
    real_stats = screen_stats(real, _real_counts(real), key="condition", control="control")

    t0 = time.perf_counter()
    sim = simulate(size=args.size, seed=args.seed)
    seconds = time.perf_counter() - t0
    sim_all = screen_stats(sim, sim.layers["counts"], key="condition", control="control")
    hvg = sc.pp.highly_variable_genes(sim, n_top_genes=500, flavor="seurat", inplace=False)
    genes = hvg.index[hvg["highly_variable"]] if "highly_variable" in hvg else hvg.index[:500]
    sim_hvg_ad = sim[:, sim.var_names.isin(genes)].copy()
    sim_hvg = screen_stats(
        sim_hvg_ad, sim_hvg_ad.layers["counts"], key="condition", control="control"
    )

    rows = [
        ("cells", "cells", "{:,.0f}"),
        ("genes", "genes", "{:,.0f}"),
        ("conditions (incl. control)", "conditions", "{:,.0f}"),
        ("fraction of zeros in X", "fraction_zeros", "{:.3f}"),
        ("median counts per cell (recovered for real)", "median_counts_per_cell", "{:,.0f}"),
        ("median detected genes per cell", "median_genes_per_cell", "{:,.0f}"),
        ("slope log var ~ log mean (counts)", "slope_logvar_logmean_counts", "{:.2f}"),
        ("slope log var ~ log mean (X)", "slope_logvar_logmean_X", "{:.2f}"),
        (
            "median overdispersion (var - mean) / mean^2, genes with mean count > 0.1",
            "overdispersion_median",
            "{:.2f}",
        ),
        (
            f"DE genes per perturbation, median share (Welch abs(t) > {_T:g})",
            "de_share_median",
            "{:.3f}",
        ),
        ("DE genes per perturbation, 90th pct share", "de_share_p90", "{:.3f}"),
        ("DE genes per perturbation, max share", "de_share_max", "{:.3f}"),
        ("share of perturbations without DE genes", "share_perturbations_no_de", "{:.2f}"),
        ("median abs gene-gene correlation", "abs_corr_median", "{:.3f}"),
        ("99th pct abs gene-gene correlation", "abs_corr_p99", "{:.3f}"),
        ("share of gene pairs with abs correlation > 0.1", "share_abs_corr_gt_0.1", "{:.3f}"),
    ]
    lines = [
        "# Realism of the simulator: simulated screen vs the real Norman subset",
        "",
        f"Simulated: `simulate(size={args.size!r}, seed={args.seed})` ({seconds:.1f} s). "
        "Real: `perturbsim.ds.norman2019_subset()` (K562 CRISPRa, 500 highly variable genes). "
        "Written by `benchmarks/realism_report.py`.",
        "",
        "| statistic | real Norman subset | simulated, all genes | simulated, 500 HVGs |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key, fmt in rows:
        lines.append(
            f"| {label} | {fmt.format(real_stats[key])} | {fmt.format(sim_all[key])} | "
            f"{fmt.format(sim_hvg[key])} |"
        )
    lines += [
        "",
        f"DE: each perturbation against control on {_CELLS} cells each (the real subset has "
        f"100 per condition), Welch t-test on X, abs(t) > {_T:g}, as a share of the genes shown. "
        "Correlations over up to 5,000 cells of all conditions. Real counts are recovered "
        "from X and `obs['ncounts']` (the real subset keeps no counts layer); its library "
        "sizes count the whole transcriptome, not only the 500 genes.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(
        json.dumps(
            {
                "benchmark": "realism_report",
                "size": args.size,
                "seed": args.seed,
                "out": str(args.out),
                "real": {k: round(v, 4) for k, v in real_stats.items()},
                "sim_all_genes": {k: round(v, 4) for k, v in sim_all.items()},
                "sim_500_hvg": {k: round(v, 4) for k, v in sim_hvg.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
