"""GEARS training speed: moment-based training vs per-cell training of the same network.

For the bundled Norman subset and a Norman-sized simulated screen (~100k cells x 5,000
genes), each in a fresh process: statistics pass, graphs and full default training (early
stopping on validation), with seconds per epoch, total seconds and peak RSS; then the
default model (``Stacked``: GEARS, the GO linear model and the weights fitted on held-out
conditions) from the same statistics, ``default_total_s`` counting the statistics pass too
(target: under 60 s on 2 cores for the Norman-sized screen). The baseline,
measured in the same run on the same network, is per-cell training as the reference does it
(one network evaluation per cell, batches of 32 cells): its epoch time is estimated from timed
optimiser steps. Prints one JSON line.

Usage: python benchmarks/bench_train.py [--skip-large]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = r"""
import json, resource, sys, time
import numpy as np, torch
import perturbsim as ps
from perturbsim.module import pad_sets
from perturbsim._memory import reuse_freed_memory
ps.settings.progress = False
path = sys.argv[1]
start = time.perf_counter()
if path == "norman_subset":
    adata = ps.ds.norman2019_subset()
    go = None
else:
    adata = ps.ds.read(path, control="control")
    go = adata.uns["simulation"]["go"]
read_s = time.perf_counter() - start
ps.pp.split(adata, kind="simulation", seed=1)
t = time.perf_counter()
ps.pp.pseudobulk(adata)
stats_s = time.perf_counter() - t
t = time.perf_counter()
model = ps.GEARS(adata, seed=0, go_annotations=go)
model.coexpr_graph, model._annotated_go_graph  # built once, reused by every fit
graphs_s = time.perf_counter() - t
t = time.perf_counter()
model.fit()
train_s = time.perf_counter() - t
epochs = len(model.history)
# per-cell baseline: the same network run once per cell, 32 cells a step
network = model._new_network()
optimiser = torch.optim.Adam(network.parameters(), lr=1e-3)
train_cells = int((adata.obs["perturbsim_split"] == "train").sum())
conditions = adata.obs.loc[adata.obs["perturbsim_split"] == "train", "perturbsim_condition"]
rng = np.random.default_rng(0)
batch = [ps.pp.genes_of(c) for c in rng.choice(conditions.astype(str).to_numpy(), 32)]
nodes = pad_sets(model._node_sets(batch))
target = torch.zeros(32, adata.n_vars)
steps = 10
with reuse_freed_memory():  # the same allocator settings as GEARS training
    t = time.perf_counter()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = ((network(nodes).effect - target) ** 2).mean()
        loss.backward()
        optimiser.step()
    step_s = (time.perf_counter() - t) / steps
t = time.perf_counter()
ps.Stacked(adata, seed=0, go_annotations=go).fit()
default_s = time.perf_counter() - t
print(json.dumps({
    "cells": adata.n_obs, "genes": adata.n_vars, "train_cells": train_cells,
    "read_s": round(read_s, 2), "stats_s": round(stats_s, 2), "graphs_s": round(graphs_s, 2),
    "train_s": round(train_s, 2), "epochs": epochs, "s_per_epoch": round(train_s / epochs, 3),
    "total_s": round(stats_s + graphs_s + train_s, 2),
    "per_cell_s_per_epoch_estimate": round(step_s * train_cells / 32, 1),
    "default_fit_s": round(default_s, 2), "default_total_s": round(stats_s + default_s, 2),
    "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
}))
"""

SIMULATE = r"""
import sys
import perturbsim as ps
ps.ds.simulate(size="norman", seed=0).write_h5ad(sys.argv[1])
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:  # a child killed for memory may leave no message
        lines = out.stderr.strip().splitlines()
        raise SystemExit(lines[-1] if lines else f"child process exited with {out.returncode}")
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def with_ratio(figures: dict) -> dict:
    figures["speedup_per_epoch_vs_per_cell"] = round(
        figures["per_cell_s_per_epoch_estimate"] / figures["s_per_epoch"], 1
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help="only the Norman subset")
    args = parser.parse_args()
    result = {"benchmark": "gears_training", "threads": "torch default"}
    # the reference GEARS is timed beside ours in compare_reference.py, in the same run
    result["norman_subset"] = with_ratio(run(MEASURE, "norman_subset"))
    if not args.skip_large:
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "sim.h5ad")
            run(SIMULATE, path)
            result["norman_sized_simulation"] = with_ratio(run(MEASURE, path))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
