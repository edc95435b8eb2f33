"""Streaming pseudobulk statistics on a large on-disk screen, in bounded memory.

Writes a synthetic log-normalised screen (default 200,000 cells x 2,000 genes, sparse, 200
conditions) to a temporary h5ad, then computes the statistics twice, each in a fresh process:
from the backed (on-disk) file and from the file loaded into memory (the baseline). Prints one
JSON line: seconds and peak RSS of each, and their ratios.

Usage: python benchmarks/bench_pseudobulk.py [--cells 200000] [--genes 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATE = """
import sys, numpy as np, pandas as pd, anndata as ad
from scipy import sparse
path, n_cells, n_genes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
blocks = []
for start in range(0, n_cells, 20000):
    n = min(20000, n_cells - start)
    block = sparse.random(n, n_genes, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    block.data = np.log1p(rng.poisson(3.0, size=block.nnz) + 1).astype(np.float32)
    blocks.append(block)
labels = np.array(["ctrl"] + [f"G{i}" for i in range(1, 200)])[rng.integers(0, 200, n_cells)]
obs = pd.DataFrame({"condition": labels}, index=[f"c{i}" for i in range(n_cells)])
var = pd.DataFrame(index=[f"G{i}" for i in range(n_genes)])
adata = ad.AnnData(sparse.vstack(blocks).tocsr(), obs=obs, var=var)
adata.write_h5ad(path)
"""

MEASURE = """
import json, resource, sys, time
import perturbsim as ps
ps.settings.progress = False
start = time.perf_counter()
adata = ps.ds.read(sys.argv[1], backed=sys.argv[2] == "backed")
stats = ps.pp.compute_pseudobulk(adata, chunk_size=5000)
print(json.dumps({"seconds": time.perf_counter() - start,
    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--genes", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "screen.h5ad")
        start = time.perf_counter()
        run(GENERATE, path, str(args.cells), str(args.genes))
        generate_s = time.perf_counter() - start
        size_gb = Path(path).stat().st_size / 2**30
        backed = run(MEASURE, path, "backed")
        memory = run(MEASURE, path, "memory")
    print(
        json.dumps(
            {
                "benchmark": "pseudobulk_streaming",
                "cells": args.cells,
                "genes": args.genes,
                "file_gb": round(size_gb, 3),
                "generate_seconds": round(generate_s, 1),
                "backed_seconds": round(backed["seconds"], 2),
                "backed_peak_rss_gb": round(backed["peak_rss_gb"], 3),
                "in_memory_seconds": round(memory["seconds"], 2),
                "in_memory_peak_rss_gb": round(memory["peak_rss_gb"], 3),
                "rss_ratio_backed_vs_in_memory": round(
                    backed["peak_rss_gb"] / memory["peak_rss_gb"], 3
                ),
                "time_ratio_backed_vs_in_memory": round(backed["seconds"] / memory["seconds"], 3),
                "ru_maxrss_self_gb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
