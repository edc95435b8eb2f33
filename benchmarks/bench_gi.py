"""Every pair of 102 genes: ``model.predict_pairs`` timed with and without the GI scores.

GEARS is trained for 5 epochs on a Norman-sized simulated screen (99,000 cells x 5,000
genes, simulation split seed 1; training is not what is measured), then
``predict_pairs`` predicts the 102 singles and 5,151 pairs of 102 of its perturbable genes
(5,253 perturbations x 5,000 genes), without and with GI scores (Norman's abundant genes).
Target: under 30 s on 2 cores.

Baseline, measured in the same run: the same perturbations predicted one ``predict`` call
each, as a loop over pairs would; its time is extrapolated from ``--baseline-calls`` timed
calls (the calls are alike). ``gi=True`` is timed as ``predict_pairs(gi=False)`` plus
:func:`perturbsim.tl.gi_scores` on every pair (what ``gi=True`` runs), or on the first
``--gi-pairs N`` pairs, extrapolated, when every pair would take too long; it scores pairs
on ``gi_threads`` threads. The scoring is profiled (cProfile, on one thread: cProfile sees
only the calling thread) on ``--profile-pairs`` pairs; the JSON line gives the share of its
time spent in each of its functions, callees included. Wall and CPU seconds (all threads)
are both reported, with the load average: on a shared machine CPU seconds / 2 is the better
estimate of the wall time on 2 free cores.

Prints ONE JSON line.

Usage: python benchmarks/bench_gi.py [--gi-pairs N]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import resource
import time
from unittest import mock

import numpy as np
import torch
from _common import run_main

import perturbsim as ps
from perturbsim._keys import PRED_N_TARGETS
from perturbsim.pp import _gi
from perturbsim.pp._gi import gi_scores

N_GENES = 102
TARGET_S = 30.0


class Timer:
    """Wall and CPU seconds (all threads of the process) of a block."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = round(time.perf_counter() - self.wall, 2)
        self.cpu = round(time.process_time() - self.cpu, 2)


def _profile(pred, control_mean: np.ndarray, n_pairs: int) -> list[dict]:
    """Where ``gi_scores`` spends its time on ``n_pairs`` pairs: the functions of
    ``perturbsim.pp._gi`` by cumulative time (share of the whole call, callees included)."""
    labels = pred.obs_names[pred.obs[PRED_N_TARGETS] == 2][:n_pairs].tolist()
    profiler = cProfile.Profile()
    with mock.patch.object(_gi, "_THREADS", 1):
        profiler.enable()
        gi_scores(pred, pairs=labels, control_mean=control_mean, unsupported=())
        profiler.disable()
    table = pstats.Stats(profiler).stats
    own = {key: row for key, row in table.items() if key[0].endswith("pp/_gi.py")}
    total = max(row[3] for row in own.values())  # gi_scores itself
    heaviest = sorted(own.items(), key=lambda item: item[1][3], reverse=True)[:8]
    return [
        {"function": f"{name} (_gi.py:{line})", "share": round(row[3] / total, 3)}
        for (_, line, name), row in heaviest
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-calls", type=int, default=200)
    parser.add_argument("--profile-pairs", type=int, default=20)
    parser.add_argument("--gi-pairs", type=int, default=None, metavar="N")
    args = parser.parse_args()
    ps.settings.progress = False
    load_before = os.getloadavg()[0]
    with Timer() as setup:
        adata = ps.ds.simulate(size="norman", seed=0)
        ps.pp.setup(adata, perturbation_key="condition", control="control")
        ps.pp.split(adata, kind="simulation", seed=1)
        model = ps.GEARS(adata, seed=0, go_annotations=adata.uns["simulation"]["go"])
        model.fit(max_epochs=5)
    perturbable = adata.var_names[adata.var["perturbable"].to_numpy()].tolist()
    genes = [g for g in perturbable if model.covers(g)[0]][:N_GENES]
    del adata

    with Timer() as batched:
        pred = model.predict_pairs(genes, gi=False)
    pairs = pred.obs_names[pred.obs[PRED_N_TARGETS] == 2].tolist()
    labels = pred.obs_names.tolist()
    calls = np.random.default_rng(0).choice(len(labels), args.baseline_calls, replace=False)
    with Timer() as one_each:
        for i in calls:
            model.predict(labels[i])
    scale = len(labels) / args.baseline_calls  # the baseline, extrapolated to every call
    baseline = {"wall": round(one_each.wall * scale, 1), "cpu": round(one_each.cpu * scale, 1)}

    profile = _profile(pred, model.control_mean, args.profile_pairs)
    sample = pairs if args.gi_pairs is None else pairs[: args.gi_pairs]
    with Timer() as scoring:
        scores = gi_scores(pred, pairs=sample, control_mean=model.control_mean, unsupported=())
    scale = len(pairs) / len(sample)
    with_gi = {
        "wall": round(batched.wall + scoring.wall * scale, 1),
        "cpu": round(batched.cpu + scoring.cpu * scale, 1),
    }
    print(
        json.dumps(
            {
                "benchmark": "predict_pairs",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"{torch.get_num_threads()} torch threads",
                "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "genes": len(genes),
                "perturbations": len(labels),
                "pairs": len(pairs),
                "measured_genes": int(pred.n_vars),
                "setup_s (simulate + 5 epochs, not measured)": setup.wall,
                "predict_pairs_s (gi=False)": {"wall": batched.wall, "cpu": batched.cpu},
                "predict_pairs_s (gi=True)": with_gi,
                "gi_scored_pairs_timed": len(sample),
                "gi_threads": min(_gi._THREADS, os.cpu_count() or 1),
                "gi_s_per_pair": {
                    "wall": round(scoring.wall / len(sample), 4),
                    "cpu": round(scoring.cpu / len(sample), 4),
                },
                "baseline_one_predict_call_each_s (from timed calls)": baseline,
                "baseline_calls_timed": args.baseline_calls,
                "speedup_vs_one_call_each (wall)": round(baseline["wall"] / batched.wall, 1),
                "target_s": TARGET_S,
                "target_met (gi=False, gi=True; wall)": [
                    batched.wall < TARGET_S,
                    with_gi["wall"] < TARGET_S,
                ],
                "subtypes": scores["subtype"][scores["flag"] == ""].value_counts().to_dict(),
                "gi_profile": profile,
                "peak_rss_gb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2
                ),
            }
        )
    )


if __name__ == "__main__":
    run_main(main)
