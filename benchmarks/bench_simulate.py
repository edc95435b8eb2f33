"""Benchmark the simulator's Norman-sized preset: time, peak memory and non-additivity.

Prints one JSON line. Non-additivity is measured on the noiseless truth:

- residual of a pair ``r = d_AB - d_A - d_B`` (changes from control in log-normalised space);
  "more than noise": ``|r_g| > 3 se_g`` with ``se_g`` the standard error of ``r_g`` estimated
  from pseudobulk means of this screen (control-cell variance, floored at 0.01, with
  ``cells_per_condition`` cells per perturbation); a pair is non-additive when at least 5
  genes are;
- Norman et al. (2019) GI model: least-squares fit ``d_AB ~ a d_A + b d_B`` over the genes
  changed in the pair or a single; magnitude ``sqrt(a^2 + b^2)`` (additive: 1.41) and the
  correlation of the fit.

Usage: ``python benchmarks/bench_simulate.py [--size norman] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def _quantiles(x: np.ndarray, qs=(5, 25, 50, 75, 95)) -> dict[str, float]:
    if len(x) == 0:
        return {}
    return {f"p{q}": round(float(np.percentile(x, q)), 4) for q in qs}


def interaction_stats(adata, pairs: list[str]) -> dict:
    """Non-additivity figures of ``pairs`` (canonical labels) from the truth of ``adata``."""
    s = adata.uns["simulation"]
    p = s["params"]
    index = {lab: i for i, lab in enumerate(s["truth_conditions"])}
    truth = np.asarray(s["truth_mean"], dtype=np.float64)
    delta = truth - truth[index["ctrl"]]
    ctrl = adata[adata.obs["condition"] == "control"].X
    mean = np.asarray(ctrl.mean(axis=0)).ravel()
    var = np.asarray(ctrl.multiply(ctrl).mean(axis=0)).ravel() - mean**2
    var = np.maximum(var, 1e-2)
    cpc, n_ctrl = p["cells_per_condition"], p["n_control_cells"]
    se_delta = np.sqrt(var * (1 / cpc + 1 / n_ctrl))
    se_resid = np.sqrt(var * (3 / cpc + 1 / n_ctrl))
    n_sig, rel, mag, cor, dominance = [], [], [], [], []
    for lab in pairs:
        a, b = lab.split("+")
        da, db, dab = delta[index[a]], delta[index[b]], delta[index[lab]]
        resid = dab - da - db
        n_sig.append(int((np.abs(resid) > 3 * se_resid).sum()))
        rel.append(np.linalg.norm(resid) / max(np.linalg.norm(da + db), 1e-9))
        sel = np.maximum.reduce([np.abs(da), np.abs(db), np.abs(dab)]) > 3 * se_delta
        if sel.sum() < 5 or max(np.abs(da[sel]).max(), np.abs(db[sel]).max()) < 1e-6:
            continue
        x = np.stack([da[sel], db[sel]], axis=1)
        coef, *_ = np.linalg.lstsq(x, dab[sel], rcond=None)
        fit = x @ coef
        mag.append(float(np.hypot(*coef)))
        cor.append(float(np.corrcoef(fit, dab[sel])[0, 1]) if fit.std() > 0 else np.nan)
        dominance.append(float(np.log10(max(abs(coef[0]), 1e-6) / max(abs(coef[1]), 1e-6))))
    n_sig_a = np.asarray(n_sig)
    return {
        "n_pairs": len(pairs),
        "share_nonadditive": round(float((n_sig_a >= 5).mean()), 4),
        "share_any_gene_beyond_noise": round(float((n_sig_a >= 1).mean()), 4),
        "nonadditive_genes_per_pair": _quantiles(n_sig_a, (50, 75, 90, 99)),
        "relative_residual": _quantiles(np.asarray(rel)),
        "gi_fitted_pairs": len(mag),
        "gi_magnitude": _quantiles(np.asarray(mag)),
        "gi_magnitude_sd": round(float(np.std(mag)), 4) if mag else None,
        "gi_fit_correlation": _quantiles(np.asarray(cor)[np.isfinite(cor)]),
        "gi_abs_log_dominance": _quantiles(np.abs(np.asarray(dominance))),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="norman")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modality", default="crispra")
    args = parser.parse_args()
    from perturbsim.ds._simulate import simulate

    t0 = time.perf_counter()
    adata = simulate(size=args.size, seed=args.seed, modality=args.modality)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_gb = peak / 1024**2 if sys.platform != "darwin" else peak / 1024**3
    s = adata.uns["simulation"]
    measured_pairs = [m for m in s["measured"] if "+" in m]
    all_pairs = [lab for lab in s["truth_conditions"] if "+" in lab]
    index = {lab: i for i, lab in enumerate(s["truth_conditions"])}
    truth = np.asarray(s["truth_mean"], dtype=np.float64)
    singles = [lab for lab in s["truth_conditions"] if lab != "ctrl" and "+" not in lab]
    ctrl = adata[adata.obs["condition"] == "control"].X
    mean = np.asarray(ctrl.mean(axis=0)).ravel()
    var = np.maximum(np.asarray(ctrl.multiply(ctrl).mean(axis=0)).ravel() - mean**2, 1e-2)
    p = s["params"]
    se = np.sqrt(var * (1 / p["cells_per_condition"] + 1 / p["n_control_cells"]))
    n_de = np.array([(np.abs(truth[index[g]] - truth[0]) > 3 * se).sum() for g in singles])
    out = {
        "benchmark": "simulate",
        "size": args.size,
        "seed": args.seed,
        "modality": args.modality,
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(peak_gb, 3),
        "n_obs": int(adata.n_obs),
        "n_vars": int(adata.n_vars),
        "nnz": int(adata.X.nnz),
        "fraction_zeros": round(1 - adata.X.nnz / (adata.n_obs * adata.n_vars), 4),
        "n_conditions_measured": len(s["measured"]),
        "n_truth_conditions": len(s["truth_conditions"]),
        "n_unconverged": int(s["params"]["n_unconverged"]),
        "truth_de_genes_per_single": _quantiles(n_de, (10, 25, 50, 75, 90, 100)),
        "share_singles_almost_null": round(float((n_de <= 2).mean()), 4),
        "measured_pairs": interaction_stats(adata, measured_pairs),
        "all_pairs": interaction_stats(adata, all_pairs),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
