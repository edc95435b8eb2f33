"""Does GEARS use the GO graph? Informative vs shuffled GO annotations on a simulated screen.

The simulator's GO-like terms follow its regulatory modules (``go_noise=0``) or are shuffled
among genes (``go_noise=1``); the expression data are identical. GEARS is trained with each
annotation table on the same splits (simulation split, several seeds) and scored beside the
mean and no-perturbation baselines on held-out conditions. Prints one JSON line: per subgroup
and model, the mean over seeds of ``pearson_delta_de`` and ``nmse_de``, and the ratio of
GEARS's unseen-single Pearson to the mean baseline's.

Usage: python benchmarks/bench_gears_go.py [--size small] [--seeds 10]
"""

from __future__ import annotations

import argparse
import json
import time

from _common import run_main

import perturbsim as ps
from perturbsim.tl import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["small", "norman"])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    ps.settings.progress = False
    start = time.perf_counter()
    adata = ps.ds.simulate(size=args.size, seed=0, go_noise=0.0)
    go_informative = adata.uns["simulation"]["go"]
    go_shuffled = ps.ds.simulate(size=args.size, seed=0, go_noise=1.0).uns["simulation"]["go"]
    ps.pp.setup(adata, perturbation_key="condition", control="control")

    def gears(go, **options):
        return lambda a, **kw: ps.GEARS(a, go_annotations=go, **options, **kw)

    models = {
        "gears_go": gears(go_informative),
        "gears_shuffled_go": gears(go_shuffled),
        "gears_go_cold_start": gears(go_informative, cold_start=0.5),
        "gears_shuffled_go_cold_start": gears(go_shuffled, cold_start=0.5),
        "gears_go_no_target_prior": gears(go_informative, target_prior=False),
        "gears_go_reference": gears(go_informative, prior="none", target_prior=False),
        "gears_go_ensemble": gears(go_informative, n_models=5),
        "gears_shuffled_go_ensemble": gears(go_shuffled, n_models=5),
        "mean": lambda a, **kw: ps.TrainMean(a, **kw),
        "no_perturb": lambda a, **kw: ps.NoPerturbation(a, **kw),
    }
    result = evaluate(adata, models=models, split="simulation", seeds=args.seeds)
    summary = result.summary()
    figures: dict[str, dict] = {}
    for (subgroup, model), rows in summary.groupby(["subgroup", "model"]):
        values = rows.set_index("metric")["mean"]
        figures.setdefault(subgroup, {})[model] = {
            m: round(float(values[m]), 4) for m in ("pearson_delta_de", "nmse_de") if m in values
        }
    unseen = figures.get("unseen_single", {})
    pearson = {m: v["pearson_delta_de"] for m, v in unseen.items()}
    nmse = {m: v["nmse_de"] for m, v in unseen.items()}
    print(
        json.dumps(
            {
                "benchmark": "gears_go_graph",
                "size": args.size,
                "seeds": args.seeds,
                "seconds": round(time.perf_counter() - start, 1),
                "unseen_single_pearson_ratio_gears_vs_mean": round(
                    pearson["gears_go"] / pearson["mean"], 3
                ),
                "unseen_single_pearson_gain_go_vs_shuffled": round(
                    pearson["gears_go"] - pearson["gears_shuffled_go"], 3
                ),
                "unseen_single_nmse_ratio_go_vs_shuffled": round(
                    nmse["gears_go"] / nmse["gears_shuffled_go"], 3
                ),
                "subgroups": figures,
            }
        )
    )


if __name__ == "__main__":
    run_main(main)
