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

Genetic-interaction landscape, side by side (when the shared data holds Norman's published
fits, ``$PERTURBSIM_SHARED_DATA/norman2019/gi/regr_fits_final.csv``):

- real: Norman et al.'s published fits of their 125 pairs (``ts_norm`` = mean absolute
  coefficient, ``corr_fit``, ``dcor_singles``, ``abs_log_ts_ratio`` = dominance);
- simulated, measured: the simulated screen's measured pairs whose two singles are measured,
  scored from their cells by Norman's recipe: pseudobulk means of log1p-normalised
  expression, ``perturbsim.tl.gi_scores`` on the abundant genes (control mean > 0.5), pair
  targets left out, pairs with at most 10 DE genes left out (Welch t against control,
  Benjamini-Hochberg at 5 %, as ``gi_published.log_scale``);
- simulated, truth: the same pairs scored from the noiseless truth
  (``perturbsim.tl.truth_profiles``), on the truth's abundant genes.

Quantiles 5/25/50/75/95 % of ``mean_abs_coef``, ``fit_corr``, ``dcor_singles`` and
``dominance``, and the share of pairs of each subtype by ``GIRules()`` (GEARS's thresholds on
``sqrt(c1² + c2²)``) and ``GIRules(magnitude_score="mean_abs_coef")`` (the same thresholds on
Norman's ``ts_norm``).

Usage: ``python benchmarks/realism_report.py [--size norman] [--seed 0] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from _common import run_main
from gi_published import log_scale, published_scores
from scipy import stats

import perturbsim as ps
from perturbsim._atomic import atomic_write
from perturbsim.pp._gi import SUBTYPES

_CELLS = 100
_T = 4.0
GI_SCORES = ("mean_abs_coef", "fit_corr", "dcor_singles", "dominance")
GI_QUANTILES = (5, 25, 50, 75, 95)
GI_RULES = {
    "GEARS defaults, `GIRules()`": ps.tl.GIRules(),
    'on Norman\'s ts_norm, `GIRules(magnitude_score="mean_abs_coef")`': ps.tl.GIRules(
        magnitude_score="mean_abs_coef"
    ),
}
MIN_DE = 10
_SUBTYPE_GAP = 0.1


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


def gi_landscape(sim) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Scores of the measured pairs of ``sim``, from their cells and from the truth.

    Pairs whose two singles are measured; the cell-based scores leave out pairs with at most
    ``MIN_DE`` DE genes (their number is returned third), as Norman did.
    """
    ps.pp.setup(sim, perturbation_key="condition", control="control")
    profiles, n_de = log_scale(sim)
    labels = set(profiles.obs_names)
    pairs = [
        p
        for p in profiles.obs_names
        if len(ps.pp.genes_of(p)) == 2 and set(ps.pp.genes_of(p)) <= labels
    ]
    cells = ps.tl.gi_scores(profiles, pairs=pairs, n_de=n_de, min_de=MIN_DE, seed=0)
    n_flagged = int((cells["flag"] != "").sum())
    cells = cells[cells["flag"] == ""]
    truth = ps.tl.gi_scores(ps.tl.truth_profiles(sim), pairs=list(cells.index), seed=0)
    return cells, truth, n_flagged


def _quantile_rows(tables: dict[str, pd.DataFrame]) -> list[str]:
    head = " | ".join(f"{q} %" for q in GI_QUANTILES)
    lines = [
        f"| score | source | pairs | {head} |",
        "| --- | --- | ---: |" + " ---: |" * len(GI_QUANTILES),
    ]
    for score in GI_SCORES:
        for source, table in tables.items():
            values = table[score].dropna().quantile([q / 100 for q in GI_QUANTILES])
            cells = " | ".join(f"{v:.2f}" for v in values)
            lines.append(f"| {score} | {source} | {table[score].notna().sum()} | {cells} |")
    return lines


def _subtype_rows(tables: dict[str, pd.DataFrame], rules) -> list[str]:
    calls = {source: rules.classify(table) for source, table in tables.items()}
    sources = list(tables)
    lines = [
        "| subtype | "
        + " | ".join(f"{s}: primary" for s in sources)
        + " | "
        + " | ".join(f"{s}: rule holds" for s in sources)
        + " |",
        "| --- |" + " ---: |" * (2 * len(sources)),
    ]
    for subtype in SUBTYPES:
        primary = [f"{(c['subtype'] == subtype).mean():.0%}" for c in calls.values()]
        # over every pair, as the primary share is (an unscored pair's call is missing)
        holds = [f"{c[f'is_{subtype}'].fillna(False).mean():.0%}" for c in calls.values()]
        lines.append(f"| {subtype} | " + " | ".join(primary + holds) + " |")
    return lines


def _differences(real: pd.DataFrame, measured: pd.DataFrame) -> list[str]:
    """Where the measured simulated pairs depart from the real ones: scores and subtypes."""
    lines = []
    for score in GI_SCORES:
        r = real[score].dropna().quantile([0.05, 0.25, 0.5, 0.75, 0.95]).to_numpy()
        m = measured[score].dropna().quantile([0.05, 0.25, 0.5, 0.75, 0.95]).to_numpy()
        where = "inside" if r[1] <= m[2] <= r[3] else "outside"
        lines.append(
            f"- `{score}`: simulated median {m[2]:.2f}, {where} the real interquartile range "
            f"({r[1]:.2f}-{r[3]:.2f}); 5-95 % range {m[0]:.2f}-{m[4]:.2f} against "
            f"{r[0]:.2f}-{r[4]:.2f}."
        )
    for name, rules in GI_RULES.items():
        real_calls = rules.classify(real)["subtype"]
        sim_calls = rules.classify(measured)["subtype"]
        apart = []
        for subtype in SUBTYPES:
            r, m = (real_calls == subtype).mean(), (sim_calls == subtype).mean()
            if abs(r - m) > _SUBTYPE_GAP:
                apart.append(f"{subtype} {r:.0%} real vs {m:.0%} simulated")
        lines.append(
            f"- primary subtypes ({name}) more than {_SUBTYPE_GAP:.0%} apart: "
            + ("; ".join(apart) if apart else "none")
            + "."
        )
    return lines


def gi_section(sim, *, size: str, seed: int) -> tuple[list[str], dict]:
    """Markdown lines and JSON summary of the interaction landscape, real beside simulated."""
    shared = ps.ds.shared_data_dir()
    path = None if shared is None else shared / "norman2019" / "gi" / "regr_fits_final.csv"
    title = ["## Genetic interactions: Norman's published fits vs the simulated pairs", ""]
    if path is None or not path.is_file():
        note = "Skipped: Norman's published fits are absent (set PERTURBSIM_SHARED_DATA)."
        return [*title, note, ""], {"skipped": note}
    real = published_scores(path)
    measured, truth, n_flagged = gi_landscape(sim)
    tables = {
        "real (published)": real,
        "simulated, measured": measured,
        "simulated, truth": truth,
    }
    lines = [
        *title,
        f"Real: Norman et al.'s published fits of their {len(real)} pairs (`regr_fits_final.csv`"
        "; `ts_norm` is `mean_abs_coef`, `abs_log_ts_ratio` is `dominance`, and their "
        "`corr_fit` correlates an ordinary least-squares fit where ours correlates the "
        "Theil-Sen one). Simulated: the measured pairs of "
        f"`simulate(size={size!r}, seed={seed})` whose two singles are measured, scored by "
        "`gi_scores` from the pseudobulk means of their cells on the abundant genes (control "
        "mean > 0.5), targets left out, pairs with at most "
        f"{MIN_DE} DE genes left out ({n_flagged} here) as Norman did (*measured*), and the "
        "same pairs scored from the noiseless truth (`truth_profiles`, *truth*). Norman fitted "
        f"the abundant genes of his whole transcriptome, the simulation has {sim.n_vars:,}.",
        "",
        *_quantile_rows(tables),
        "",
        "Share of pairs of each subtype: the primary subtype (first rule that holds, in "
        "`PRECEDENCE` order) and each rule on its own (rules overlap).",
        "",
    ]
    for name, rules in GI_RULES.items():
        lines += [f"Rules: {name}.", "", *_subtype_rows(tables, rules), ""]
    lines += [
        "Measured simulated pairs against the real ones:",
        "",
        *_differences(real, measured),
        "",
    ]
    summary = {
        source: {
            score: [round(float(v), 3) for v in table[score].quantile([0.05, 0.5, 0.95])]
            for score in GI_SCORES
        }
        | {"n_pairs": len(table)}
        for source, table in tables.items()
    }
    return lines, summary


DEFAULT_OUT = Path(__file__).parent / "REALISM.md"
"""The report kept in the repository: never replaced by a run that skipped a section."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="norman")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    from perturbsim.ds._simulate import simulate

    ps.settings.progress = False
    real = ps.ds.norman2019_subset()
    real_stats = screen_stats(real, _real_counts(real), key="condition", control="control")

    t0 = time.perf_counter()
    sim = simulate(size=args.size, seed=args.seed)
    seconds = time.perf_counter() - t0
    sim_all = screen_stats(sim, sim.layers["counts"], key="condition", control="control")
    hvg = sc.pp.highly_variable_genes(sim, n_top_genes=500, flavor="seurat", inplace=False)
    genes = hvg.index[hvg["highly_variable"]] if "highly_variable" in hvg else hvg.index[:500]
    sim_hvg_ad = sim[:, sim.var_names.isin(genes)].copy()
    sim_hvg_genes = sim_hvg_ad.n_vars  # 500, or fewer on a screen of fewer genes
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
        "| statistic | real Norman subset | simulated, all genes | "
        f"simulated, {sim_hvg_genes} HVGs |",
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
    gi_lines, gi_summary = gi_section(sim, size=args.size, seed=args.seed)
    lines += gi_lines
    if "skipped" in gi_summary and Path(args.out).resolve() == DEFAULT_OUT.resolve():
        args.out = None  # the kept report holds the section this run could not make
        gi_summary["skipped"] += f" {DEFAULT_OUT.name} left as it was: pass --out to write one"
    else:
        atomic_write(Path(args.out), lambda tmp: tmp.write_text("\n".join(lines)))
    print(
        json.dumps(
            {
                "benchmark": "realism_report",
                "size": args.size,
                "seed": args.seed,
                "out": None if args.out is None else str(args.out),
                "real": {k: round(v, 4) for k, v in real_stats.items()},
                "sim_all_genes": {k: round(v, 4) for k, v in sim_all.items()},
                "sim_500_hvg": {k: round(v, 4) for k, v in sim_hvg.items()},
                "sim_hvg_genes": sim_hvg_genes,
                "gi_5_50_95": gi_summary,
            }
        )
    )


if __name__ == "__main__":
    run_main(main)
