"""Do noisy singles bias measured interactions, and does the singles' reliability tell?

Measured genetic interactions fit a pair's change on its two singles' measured changes
(:func:`perturbsim.tl.gi_scores`, Theil-Sen as Norman). The singles' measurement noise
biases the fitted coefficients (errors in variables); each measured pair carries its
singles' ``reliability`` (:func:`perturbsim.pp._gi.singles_reliability`). Two checks:

- **simulated screens** (``small`` preset, ``--seeds``, at ``--cells`` cells per condition,
  5x as many control cells, at least 300): the measured pairs' scores against the
  simulator's truth (:func:`perturbsim.tl.truth_profiles`), on the pairs scored in both:
  the median and mean absolute error of the magnitude, the suppressions and synergies
  called against the truth's, the agreement of the six subtype calls with the truth's
  (the mean over subtypes of the share of pairs whose call is the truth's), the median
  reliability, and the Spearman correlation over pairs of the reliability with the
  magnitude's absolute error (negative: the less reliable, the further off);
- **Norman's published fits** (``$PERTURBSIM_SHARED_DATA/norman2019/gi/regr_fits_final.csv``;
  skipped without it): the bundled Norman subset's scored pairs, ``c1`` and ``c2`` beside
  Norman's whole-transcriptome Theil-Sen coefficients, with each pair's reliability.

Prints ONE JSON line. Usage::

    python benchmarks/bench_gi_noise.py [--seeds 32,33,34,35] [--cells 60,150]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from _common import rounded, run_main
from scipy import stats

import perturbsim as ps
from perturbsim.ds._paths import shared_data_dir
from perturbsim.pp._gi import SUBTYPES, is_scored

PUBLISHED = "norman2019/gi/regr_fits_final.csv"


def _agreement(truth: pd.DataFrame, measured: pd.DataFrame) -> float:
    """The mean over the six subtypes of the share of pairs called as the truth calls them."""
    return float(
        np.mean(
            [
                (truth[f"is_{s}"].astype(bool) == measured[f"is_{s}"].astype(bool)).mean()
                for s in SUBTYPES
            ]
        )
    )


def _coefficient_error(truth: pd.DataFrame, c1: pd.Series, c2: pd.Series) -> float:
    """Mean absolute error of ``c1`` and ``c2`` against the truth's, over both."""
    return float(np.mean(np.abs(np.r_[c1 - truth["c1"], c2 - truth["c2"]])))


def _versus_truth(seed: int, cells: int) -> dict:
    adata = ps.ds.simulate(
        size="small", seed=seed, cells_per_condition=cells, n_control_cells=max(5 * cells, 300)
    )
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    truth = ps.tl.gi_scores(ps.tl.truth_profiles(adata))
    profiles = ps.pp.measured_profiles(adata)
    measured = ps.tl.gi_scores(profiles, min_de=0)  # every pair: the truth is known
    simex = ps.tl.gi_scores(profiles, min_de=0, noise_correction=True)
    both = truth.index[is_scored(truth)].intersection(measured.index[is_scored(measured)])
    t, m, s = truth.loc[both], measured.loc[both], simex.loc[both]
    error = m["magnitude"] - t["magnitude"]
    fixed = s.index[s["corrected"]]
    tc, mc, sc = t.loc[fixed], m.loc[fixed], s.loc[fixed]
    return {
        "seed": seed,
        "cells": cells,
        "pairs": len(both),
        "median_reliability": rounded(m["reliability"].median(), 3),
        "magnitude_median_error": rounded(error.median(), 3),
        "magnitude_mean_abs_error": rounded(error.abs().mean(), 3),
        "suppressions (truth, measured, corrected)": [
            int(t["is_suppression"].sum()),
            int(m["is_suppression"].sum()),
            int(s["is_suppression"].sum()),
        ],
        "synergies (truth, measured, corrected)": [
            int(t["is_synergy"].sum()),
            int(m["is_synergy"].sum()),
            int(s["is_synergy"].sum()),
        ],
        "subtype_agreement (measured, corrected)": [
            rounded(_agreement(t, m), 3),
            rounded(_agreement(t, s), 3),
        ],
        "spearman(reliability, abs error)": rounded(
            stats.spearmanr(m["reliability"], error.abs()).statistic, 3
        ),
        "corrected_pairs": len(fixed),
        "corrected: magnitude mean abs error (measured, corrected)": [
            rounded((mc["magnitude"] - tc["magnitude"]).abs().mean(), 3),
            rounded((sc["magnitude"] - tc["magnitude"]).abs().mean(), 3),
        ],
        "corrected: magnitude median error (measured, corrected)": [
            rounded((mc["magnitude"] - tc["magnitude"]).median(), 3),
            rounded((sc["magnitude"] - tc["magnitude"]).median(), 3),
        ],
        "corrected: c1, c2 mean abs error (measured, corrected)": [
            rounded(_coefficient_error(tc, mc["c1"], mc["c2"]), 3),
            rounded(_coefficient_error(tc, sc["c1"], sc["c2"]), 3),
        ],
    }


def _published(pair: str, table: pd.DataFrame) -> tuple[float, float]:
    """Norman's ``c1``, ``c2`` of ``pair`` (ours: sorted genes), or NaN."""
    a, b = pair.split("+")
    if f"{a}_{b}" in table.index:
        row = table.loc[f"{a}_{b}"]
        return float(row["ts_coef_first"]), float(row["ts_coef_second"])
    if f"{b}_{a}" in table.index:
        row = table.loc[f"{b}_{a}"]
        return float(row["ts_coef_second"]), float(row["ts_coef_first"])
    return np.nan, np.nan


def _versus_published() -> dict:
    folder = shared_data_dir()
    path = None if folder is None else folder / PUBLISHED
    if path is None or not path.is_file():
        return {"skipped": f"no {PUBLISHED} under $PERTURBSIM_SHARED_DATA"}
    table = pd.read_csv(path, index_col=0)
    profiles = ps.pp.measured_profiles(ps.ds.norman2019_subset())
    scores = ps.tl.gi_scores(profiles, min_de=0)  # as Norman's published fits, unfiltered
    scores = scores[is_scored(scores)]
    pairs = {}
    for pair in scores.index:
        c1, c2 = _published(pair, table)
        if np.isfinite(c1):
            pairs[pair] = {
                "ours": [rounded(scores.loc[pair, "c1"], 3), rounded(scores.loc[pair, "c2"], 3)],
                "published": [rounded(c1, 3), rounded(c2, 3)],
                "reliability": rounded(scores.loc[pair, "reliability"], 3),
            }
    differences = [abs(p["ours"][i] - p["published"][i]) for p in pairs.values() for i in (0, 1)]
    return {
        "control_cells": int(profiles.obs.loc["ctrl", "n_cells"]),
        "pairs": pairs,
        "mean_abs_difference": rounded(np.mean(differences), 3) if differences else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="32,33,34,35", help="simulator seeds (not 0)")
    parser.add_argument("--cells", default="60,150", help="cells per condition")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if 0 in seeds:
        parser.error("--seeds: seed 0 is the scoreboard's screen, never a benchmark's")
    cells = [int(c) for c in args.cells.split(",")]
    started = time.perf_counter()
    ps.settings.progress = False
    simulated = [_versus_truth(seed, n) for seed in seeds for n in cells]
    result = {
        "benchmark": "gi_noise",
        "simulated": simulated,
        "norman_published": _versus_published(),
        "seconds": rounded(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    run_main(main)
