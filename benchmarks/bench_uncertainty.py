"""Does uncertainty mean something? Uncertainty-error correlation and interval calibration.

Issue 15, item 1. :func:`perturbsim.tl.evaluate` (5 split seeds) of the models whose
predictions carry a predictive variance: the default ``stacked`` (its error model fitted on
held-out conditions and GO support), ``gears_uncertainty`` (GEARS's uncertainty head: how
far a cell falls from the prediction, per gene) and ``gears_ensemble`` (the spread of five
networks plus nothing else), beside the
``mean`` baseline (no variance; the anchor of the scores), on the bundled Norman subset,
the simulated ``small`` screen and the Gasperini singles (shared data; skipped when
absent). Per data set and model: the Spearman correlation across test conditions of the
uncertainty with the error (top DE genes and all genes; positive: more uncertain where
more wrong) and the share of measured changes inside the 50 % and 90 % predictive
intervals (calibrated: 0.5 and 0.9), mean over seeds with the 95 % interval; and the full
calibration curve on the top DE genes.

Prints ONE JSON line. Usage: python benchmarks/bench_uncertainty.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import time

from _common import rounded, run_main
from bench_evaluate import gasperini_screens

import perturbsim as ps
from perturbsim.models import takes_option

MODELS = ("stacked", "gears_uncertainty", "gears_ensemble", "mean")


def _figures(adata, *, seeds: int, split: str, go=None) -> dict:
    t0 = time.perf_counter()
    kwargs = {
        m: {"go_annotations": go}
        for m in MODELS
        if go is not None and takes_option(m, "go_annotations")
    }
    result = ps.tl.evaluate(
        adata,
        models=list(MODELS),
        split=split,
        seeds=seeds,
        model_kwargs=kwargs,
        gi=False,
        on_error="skip",
    )
    summary = result.uncertainty_summary()
    out: dict = {"wall_s": round(time.perf_counter() - t0, 1), "split": split}
    for row in summary.itertuples(index=False):
        out.setdefault(row.model, {})[row.metric] = [
            rounded(row.mean, 3),
            rounded(row.ci_low, 3),
            rounded(row.ci_high, 3),
        ]
    curve = result.calibration()
    for model, rows in curve[curve["genes"] == "de"].groupby("model", sort=False):
        out[model]["calibration_de"] = {
            f"{r.nominal:.1f}": rounded(r.observed, 3) for r in rows.itertuples(index=False)
        }
    out["failures"] = [f"{r.model} seed {r.seed}: {r.error}" for r in result.failures.itertuples()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    ps.settings.progress = False
    out: dict = {"bench": "uncertainty", "models": list(MODELS)}
    out["norman_subset"] = _figures(ps.ds.norman2019_subset(), seeds=args.seeds, split="simulation")
    sim = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(sim, perturbation_key="condition", control="control")
    out["simulated_small"] = _figures(
        sim, seeds=args.seeds, split="simulation", go=sim.uns["simulation"]["go"]
    )
    screens = gasperini_screens()
    if screens is None:
        out["gasperini_singles"] = "skipped: shared data absent (set PERTURBSIM_SHARED_DATA)"
    else:
        name, screen, split = screens[0]
        out[name] = _figures(screen, seeds=args.seeds, split=split)
    print(json.dumps(out))


if __name__ == "__main__":
    run_main(main)
