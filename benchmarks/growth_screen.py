"""Is the predicted interaction magnitude higher for pairs a growth screen calls synergistic?

Issue 13, item 8: the GEARS paper's check of its predicted interactions against Norman et
al.'s (Science 2019) CRISPRa growth screen, on the bundled Norman subset.

- **Training.** GEARS (defaults) on every condition of the bundled subset (control, 18
  singles, 15 pairs), as the GEARS paper trained on all of Norman's data (its ``no_test``
  split) before predicting unseen pairs: the growth screen, not held-out expression, is the
  independent test here, so holding conditions out would only take information from the
  model. The 15 measured pairs were seen in training, so the test is also reported on the
  other pairs alone. Five seeds; each pair's magnitude is the mean over seeds.
- **Pairs.** Every pair of the subset's perturbed genes that have growth data in
  ``processed_emap.csv`` (112 x 112 E-MAP; C3orf72 = FOXL2NB and C19orf26 = CBARP are
  mapped to the symbols of the GO tables): 30 of the 31 genes (no growth data for MAP3K21),
  435 pairs, predicted with ``model.predict_pairs``.
- **Score.** ``magnitude = sqrt(c1² + c2²)`` of :func:`perturbsim.tl.gi_scores` (GEARS's
  ``mag``, Norman's ``ts_norm2``) from the predicted singles and pair. Primary gene set:
  the 50 genes most expressed in control (``top50``), the set whose magnitudes came
  closest to Norman's published ones on the subset's measured pairs
  (``benchmarks/gi_published.py``); ``abundant`` (Norman's recipe, 5 genes here) and
  ``all500`` are reported beside it.
- **Growth classes.** E-MAP GI score ``<= -3`` synergistic, ``>= +3`` buffering, in
  between neutral. The sign: in this CRISPRa screen most hits slow growth, and a pair
  growing worse than expected (negative score) is synergistic; checked on Norman's own
  fits, whose measured magnitude falls with the E-MAP score (Spearman -0.69, 125 pairs).
  The cut 3 is the significance threshold of the same lab's GI scores in Horlbeck et al.
  (Cell 2018), with which Norman's E-MAP was computed; ``--threshold`` changes it.
- **Test.** One-sided Mann-Whitney U: magnitude of synergistic pairs greater than that of
  buffering-or-neutral pairs (the paper's comparison), and greater than buffering alone.
  Effect size: the common-language effect size ``U / (n1 n2)`` (probability that a
  synergistic pair has the larger magnitude; 0.5 = none) and the rank-biserial
  correlation ``2 U / (n1 n2) - 1``.
- **No-interaction baseline.** The same test on ``singles_size``, the sum of the norms of
  the two predicted single changes: a score that knows how strong each gene is but
  nothing of their interaction. Magnitude should beat it if it reads interactions.
- **Positive control.** The same test on Norman's measured magnitudes (``ts_norm2`` of
  ``regr_fits_final.csv``, 125 pairs measured by Perturb-seq): what the test shows when the
  magnitudes are real.

Also draws the GI map of the last seed's pairs and their phenotype landscape beside the
measured conditions, coloured by Norman's programme clusters (``gi_map.png``,
``landscape.png``).

Writes ``pairs.csv`` (per pair: E-MAP score, class, whether measured, the magnitude of each
gene set and the baseline score, mean and standard deviation over seeds) and ``tests.csv``
under ``--out``; prints ONE JSON line. Skips (JSON with ``skipped``) when the shared data
are absent.

Usage: python benchmarks/growth_screen.py --out out/growth_screen [--seeds 5] [--threshold 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from _common import run_main
from scipy import stats

import perturbsim as ps
from perturbsim._atomic import atomic_write, atomic_write_all
from perturbsim._keys import CONDITION
from perturbsim.pp._gi import gi_scores

EMAP = "norman2019/gi/processed_emap.csv"
PUBLISHED = "norman2019/gi/regr_fits_final.csv"
MANIFOLD = "norman2019/gi/norman2019_conditions_gi_manifold.csv"
OLD_SYMBOLS = {"C3orf72": "FOXL2NB", "C19orf26": "CBARP"}
PRIMARY = "top50"
SINGLES = "singles_size"
"""Baseline score: the summed norms of the two predicted single changes (no interaction)."""
CLASSES = ("synergistic", "buffering", "neutral")


def growth_class(score: pd.Series, threshold: float) -> pd.Series:
    """Synergistic (score <= -threshold), buffering (>= threshold) or neutral."""
    return pd.Series(
        np.where(
            score <= -threshold, "synergistic", np.where(score >= threshold, "buffering", "neutral")
        ),
        index=score.index,
    )


def one_sided(values: pd.Series, classes: pd.Series, others: tuple[str, ...]) -> dict:
    """Mann-Whitney U, synergistic greater than ``others``, with effect sizes."""
    high = values[classes == "synergistic"].dropna().to_numpy()
    low = values[classes.isin(others)].dropna().to_numpy()
    u, p = stats.mannwhitneyu(high, low, alternative="greater")
    cles = u / (len(high) * len(low))
    return {
        "vs": "+".join(others),
        "n_synergistic": len(high),
        "n_other": len(low),
        "median_synergistic": round(float(np.median(high)), 4),
        "median_other": round(float(np.median(low)), 4),
        "U": float(u),
        "cles": round(float(cles), 4),
        "rank_biserial": round(float(2 * cles - 1), 4),
        "p": float(f"{p:.3g}"),
    }


def gene_sets(model: ps.PerturbationModel) -> dict[str, dict]:
    """``gi_scores`` options of each gene set."""
    top = np.argsort(model.control_mean)[::-1][:50]
    return {
        "top50": {"genes": list(model.genes[np.sort(top)])},
        "abundant": {"abundance": 0.5},  # Norman's threshold as he set it
        "all500": {"genes": list(model.genes)},
    }


def figures(scored: ad.AnnData, adata: ad.AnnData, shared: Path, out: Path) -> None:
    """GI map and phenotype landscape of predictions with their GI scores in ``.obs``.

    The landscape is coloured by Norman et al.'s programme clusters
    (``norman2019_conditions_gi_manifold.csv``; labels ``A_B``, singles ``A_NegCtrl0``).
    """
    ax = ps.pl.gi_map(scored)
    atomic_write(
        out / "gi_map.png", lambda tmp: ax.figure.savefig(tmp, dpi=110, bbox_inches="tight")
    )
    manifold = pd.read_csv(shared / MANIFOLD, index_col=0)
    programmes = {name: f"programme {c}" for name, c in manifold["cluster"].items() if c >= 0}
    ax = ps.pl.phenotype_landscape(adata, scored, clusters=programmes, control="NegCtrl0", sep="_")
    atomic_write(
        out / "landscape.png", lambda tmp: ax.figure.savefig(tmp, dpi=110, bbox_inches="tight")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for the CSV files and figures"
    )
    parser.add_argument("--seeds", type=int, default=5, help="GEARS seeds (default 5)")
    parser.add_argument("--threshold", type=float, default=3.0, help="E-MAP cut (default 3)")
    args = parser.parse_args()
    shared = ps.ds.shared_data_dir()
    missing = [
        name
        for name in (EMAP, PUBLISHED, MANIFOLD)
        if shared is None or not (shared / name).is_file()
    ]
    if missing:  # every file checked before minutes of fitting
        skipped = f"shared data absent: no $PERTURBSIM_SHARED_DATA/{missing[0]}"
        print(json.dumps({"benchmark": "growth_screen", "skipped": skipped}))
        return
    ps.settings.progress = False
    start = time.perf_counter()
    emap = pd.read_csv(shared / EMAP, index_col=0).rename(index=OLD_SYMBOLS, columns=OLD_SYMBOLS)
    adata = ps.ds.norman2019_subset()
    conditions = set(adata.obs[CONDITION].astype(str))
    perturbed = sorted({g for c in conditions for g in ps.pp.genes_of(c)})
    genes = [g for g in perturbed if g in emap.index]
    pairs = [ps.pp.canonical_label(p) for p in itertools.combinations(genes, 2)]
    table = pd.DataFrame(
        {"emap": [emap.loc[a, b] for a, b in itertools.combinations(genes, 2)]},
        index=pd.Index(pairs, name="pair"),
    )
    table["growth_class"] = growth_class(table["emap"], args.threshold)
    table["measured"] = table.index.isin(conditions)

    per_seed: dict[str, list[pd.Series]] = {}
    for seed in range(args.seeds):
        model = ps.GEARS(adata, seed=seed).fit()
        pred = model.predict_pairs(genes, gi=False)
        for name, options in gene_sets(model).items():
            scores = gi_scores(  # every pair, its singles guessed generically or not
                pred, control_mean=model.control_mean, seed=seed, unsupported=(), **options
            )
            per_seed.setdefault(name, []).append(scores["magnitude"].reindex(table.index))
            if name == PRIMARY:
                scored = pred.copy()
                scored.obs = scored.obs.join(scores)
        size = pd.Series(np.linalg.norm(pred.layers["delta"], axis=1), index=pred.obs_names)
        singles = [size[a] + size[b] for a, b in itertools.combinations(genes, 2)]
        per_seed.setdefault(SINGLES, []).append(pd.Series(singles, index=table.index))
    for name, runs in per_seed.items():
        stacked = pd.concat(runs, axis=1)
        table[name] = stacked.mean(axis=1)
        table[f"{name}_sd"] = stacked.std(axis=1)

    tests = []
    for name in per_seed:
        for subset, rows in (("all", table.index), ("unmeasured", table.index[~table["measured"]])):
            values, classes = table.loc[rows, name], table.loc[rows, "growth_class"]
            for others in (("buffering", "neutral"), ("buffering",)):
                tests.append(
                    {"gene_set": name, "pairs": subset, **one_sided(values, classes, others)}
                )
        for seed, run in enumerate(per_seed[name]):
            test = one_sided(run, table["growth_class"], ("buffering", "neutral"))
            tests.append({"gene_set": name, "pairs": f"all (seed {seed})", **test})
    published = pd.read_csv(shared / PUBLISHED, index_col=0)
    control = one_sided(
        published["ts_norm2"],
        growth_class(published["emap"], args.threshold),
        ("buffering", "neutral"),
    )
    tests.append({"gene_set": "Norman measured ts_norm2", "pairs": "125 published", **control})
    tests = pd.DataFrame(tests)

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_all(
        {
            args.out / "pairs.csv": table.to_csv,
            args.out / "tests.csv": lambda tmp: tests.to_csv(tmp, index=False),
        }
    )
    figures(scored, adata, shared, args.out)

    def pick(gene_set: str, pairs: str, vs: str = "buffering+neutral") -> dict:
        row = tests[
            (tests["gene_set"] == gene_set) & (tests["pairs"] == pairs) & (tests["vs"] == vs)
        ]
        return row.drop(columns=["gene_set", "pairs"]).iloc[0].to_dict()

    seed_p = tests[tests["pairs"].str.startswith("all (seed") & (tests["gene_set"] == PRIMARY)]["p"]
    print(
        json.dumps(
            {
                "benchmark": "growth_screen",
                "genes_with_growth_data": len(genes),
                "genes_without": [g for g in perturbed if g not in emap.index],
                "pairs": len(table),
                "classes": table["growth_class"].value_counts().reindex(CLASSES).to_dict(),
                "threshold": args.threshold,
                "seeds": args.seeds,
                "primary": {"gene_set": PRIMARY, **pick(PRIMARY, "all")},
                "primary_unmeasured_pairs": pick(PRIMARY, "unmeasured"),
                "primary_vs_buffering": pick(PRIMARY, "all", "buffering"),
                "primary_p_per_seed": seed_p.tolist(),
                "other_gene_sets": {
                    g: pick(g, "all") for g in per_seed if g not in (PRIMARY, SINGLES)
                },
                "baseline_singles_size": pick(SINGLES, "all"),
                "baseline_singles_size_vs_buffering": pick(SINGLES, "all", "buffering"),
                "positive_control_norman_measured": control,
                "wall_s": round(time.perf_counter() - start, 1),
            },
            default=float,
        )
    )


if __name__ == "__main__":
    run_main(main)
