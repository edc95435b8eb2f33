"""Precision@10 of predicted genetic-interaction subtypes against the simulator's truth.

On the simulated ``small`` screen (simulator seed 0 unless ``--sim-seed``), for 5 simulation
splits (seeds 0-4): GEARS
(``gears``), GEARS learning only the interaction on top of the additive expectation
(``gears_residual``), the default model (``stacked``) and its ablation combining measured
singles by their sum (``stacked_no_interaction``), the measured singles combined by the
role coefficients of the training pairs (``interaction``) and the additive baseline
(``additive``) are trained, and each predicts every test pair it covers together with the
two singles of the pair: the interaction of a pair is scored from the model's own singles
and pair. Both the predictions and the noiseless truth (:func:`perturbsim.tl.truth_profiles`)
are scored with :func:`perturbsim.tl.gi_scores` on the same genes, those above Norman's abundance
threshold (0.5) in the truth's control, pair targets left out, with no DE-count filter
(``n_de=None``: the truth has no cells to test). The truth's subtypes are the true ones;
:func:`perturbsim.tl.gi_precision` gives per subtype the precision@k (k = min(10, pairs
compared)) and the R² of the ranked score (magnitude for synergy, suppression, additive).
``random`` is the expectation of a random ranking of the same pairs (the subtype's
prevalence among them). Each figure is the mean over the 5 splits with a 95 % t-interval.

The two anchors: a random ranking (above) and the screen's own noise ceiling, ``measured``:
the measured means of each test pair and its two singles (every cell of the screen, not
only the split's training cells), scored the same way against the truth. It says how well
the measurement itself, at the screen's depth, ranks the true interactions; a model that
learns from the training pairs is not bound by it (it can pool many pairs), but where the
measured pairs rank a subtype no better than chance, the screen holds little of it.

Each model is also scored head to head on the pairs every model of the run and the
measurement scored (``shared_pairs``, with the random ranking of those pairs): ``additive``
and ``measured`` cover only the pairs of measured singles, so a model's figures on all the
pairs it covers rank other pairs.

Prints ONE JSON line.

``--size norman --split combo`` measures the same on the Norman-sized screen with the
``combo`` split (every single of the screen in training, half of its pairs held out: 65
test pairs per seed instead of 14, 47 of them pairs of two measured singles, on which
``additive`` and the models that combine measured singles are compared head to head).

``--sim-seed S`` simulates another screen of the same size (development screens: 1-3; the
figures in ``benchmarks/RESULTS.md`` are seed 0's unless said otherwise).

Usage: python benchmarks/bench_gi_precision.py [--size small|norman]
[--split simulation|combo] [--models stacked,interaction,...] [--sim-seed S]
"""

from __future__ import annotations

import argparse
import json
import time

import anndata as ad
import numpy as np
import pandas as pd
from _common import rounded, run_main

import perturbsim as ps
from perturbsim.pp._gi import SUBTYPES
from perturbsim.tl._gi_precision import _scored
from perturbsim.tl._intervals import mean_interval

MODELS = "stacked,stacked_no_interaction,interaction,gears,gears_residual,additive"
MEASURED = "measured"
"""The noise ceiling's row: the measured means of the test pairs and their singles."""
SEEDS = (0, 1, 2, 3, 4)
K = 10
ABUNDANCE = 0.5


def _summary(values: list[float]) -> dict[str, float | int | None]:
    """Mean and 95 % t-interval half-width over the finite ``values``."""
    summary = mean_interval(np.asarray(values, dtype=float), 0.95)
    return {
        "mean": rounded(summary.mean, 3),
        "ci95": rounded(summary.high - summary.mean, 3),
        "n": summary.n,
    }


def _pair_labels(conditions: list[str]) -> list[str]:
    return [c for c in conditions if len(ps.pp.genes_of(c)) == 2]


def _measured_profiles(adata: ad.AnnData) -> ad.AnnData:
    """Every condition's measured mean (``X``) and change over control (``delta``)."""
    pseudobulk = ps.pp.compute_pseudobulk(adata, coexpression="none")
    profiles = ad.AnnData(
        np.asarray(pseudobulk.mean, dtype=np.float64),
        obs=pd.DataFrame(index=pd.Index(np.asarray(pseudobulk.conditions, dtype=str))),
        var=pd.DataFrame(index=pd.Index(np.asarray(pseudobulk.genes, dtype=str))),
    )
    profiles.layers["delta"] = np.asarray(pseudobulk.delta, dtype=np.float64)
    return profiles


def _summaries(of_model: pd.DataFrame) -> dict[str, object]:
    """A model's precision@k, R² and true-pair count per subtype, over the seeds."""
    return {
        "n_pairs": _summary(of_model.groupby("seed")["n_pairs"].first().tolist()),
        **{
            subtype: {
                "precision_at_k": _summary(part["precision_at_k"].tolist()),
                "r2": _summary(part["r2"].tolist()),
                "n_true": _summary(part["n_true"].tolist()),
            }
            for subtype, part in of_model.groupby("subtype", sort=False)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["small", "norman"])
    parser.add_argument("--split", default="simulation", choices=["simulation", "combo"])
    parser.add_argument("--models", default=MODELS, help="comma-separated catalogue names")
    parser.add_argument("--sim-seed", type=int, default=0, help="simulator seed of the screen")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        parser.error("--models names no model")
    ps.settings.progress = False
    start = time.perf_counter()
    adata = ps.ds.simulate(size=args.size, seed=args.sim_seed)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    go = adata.uns["simulation"]["go"]
    truth = ps.tl.truth_profiles(adata)
    genes = list(truth.var_names[np.asarray(truth.X[0]) > ABUNDANCE])

    splits = {s: ps.pp.split(adata, kind=args.split, seed=s, copy=True) for s in SEEDS}
    tests = {
        s: _pair_labels([str(c) for c in a.uns["perturbsim"]["split"]["test"]])
        for s, a in splits.items()
    }
    all_pairs = sorted({p for pairs in tests.values() for p in pairs})
    truth_scores = ps.tl.gi_scores(truth, pairs=all_pairs, genes=genes, seed=0)
    all_truth = ps.tl.gi_scores(truth, genes=genes, seed=0)
    measured = _measured_profiles(adata)

    rows, shared_rows = [], []
    seconds: dict[str, float] = dict.fromkeys(models, 0.0)
    for seed, split in splits.items():
        pairs = tests[seed]
        scored: dict[str, pd.DataFrame] = {}
        for name in models:
            tic = time.perf_counter()
            options = (
                {"go_annotations": go} if ps.models.takes_option(name, "go_annotations") else {}
            )
            model = ps.models.build_model(name, split, seed=seed, **options).fit()
            covered = [p for p, ok in zip(pairs, model.covers(pairs), strict=True) if ok]
            singles = sorted({g for p in covered for g in ps.pp.genes_of(p)})
            predicted = ps.tl.gi_scores(
                model.predict(singles + covered), genes=genes, seed=0, unsupported=()
            )  # every pair it covers, its singles guessed generically or not
            table = ps.tl.gi_precision(predicted, truth_scores.loc[covered], k=K)
            seconds[name] += time.perf_counter() - tic
            rows.append(table.assign(model=name, seed=seed, n_test_pairs=len(pairs)))
            scored[name] = predicted
        # the noise ceiling: the test pairs whose pair and singles were measured (the
        # others are flagged as missing and left out of the comparison)
        ceiling = ps.tl.gi_scores(measured, pairs=pairs, genes=genes, seed=0)
        table = ps.tl.gi_precision(ceiling, truth_scores.loc[pairs], k=K)
        rows.append(table.assign(model=MEASURED, seed=seed, n_test_pairs=len(pairs)))
        scored[MEASURED] = ceiling
        # head to head: every model ranks the same pairs, those all of them scored
        shared = sorted(
            set.intersection(*(set(_scored(t, "predicted").index) for t in scored.values()))
        )
        for name, predicted in scored.items():
            table = ps.tl.gi_precision(predicted.loc[shared], truth_scores.loc[shared], k=K)
            shared_rows.append(table.assign(model=name, seed=seed))
    results = pd.concat(rows, ignore_index=True)
    shared_results = pd.concat(shared_rows, ignore_index=True)

    out: dict[str, object] = {}
    for name in [*models, MEASURED]:
        of_model = results[results["model"] == name]
        out[name] = _summaries(of_model)
        out[f"random ({name}'s pairs)"] = {
            subtype: _summary(part["random_precision"].tolist())
            for subtype, part in of_model.groupby("subtype", sort=False)
        }
    on_shared: dict[str, object] = {}
    for name in [*models, MEASURED]:
        of_model = shared_results[shared_results["model"] == name]
        on_shared[name] = {
            subtype: _summary(part["precision_at_k"].tolist())
            for subtype, part in of_model.groupby("subtype", sort=False)
        }
    # the random ranking of the shared pairs, the same for every model
    of_first = shared_results[shared_results["model"] == models[0]]
    random_on_shared = {
        subtype: _summary(part["random_precision"].tolist())
        for subtype, part in of_first.groupby("subtype", sort=False)
    }
    print(
        json.dumps(
            {
                "benchmark": "gi_precision",
                "screen": f"simulate(size={args.size!r}, seed={args.sim_seed})",
                "split": args.split,
                "seeds": list(SEEDS),
                "k": K,
                "genes_fitted": len(genes),
                "test_pairs_per_seed": [len(tests[s]) for s in SEEDS],
                "truth_subtypes_all_pairs": {s: int(all_truth[f"is_{s}"].sum()) for s in SUBTYPES}
                | {"n_pairs": len(all_truth)},
                "truth_primary_subtype_all_pairs": all_truth["subtype"].value_counts().to_dict(),
                "truth_magnitude_5_50_95": [
                    round(float(q), 2) for q in all_truth["magnitude"].quantile([0.05, 0.5, 0.95])
                ],
                "models": out,
                "shared_pairs": {
                    "n_pairs": _summary(of_first.groupby("seed")["n_pairs"].first().tolist()),
                    "random": random_on_shared,
                    "models": on_shared,
                },
                "fit_predict_score_s": {k: round(v, 1) for k, v in seconds.items()},
                "total_s": round(time.perf_counter() - start, 1),
            }
        )
    )


if __name__ == "__main__":
    run_main(main)
