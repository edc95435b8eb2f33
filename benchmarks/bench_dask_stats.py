"""The statistics pass in memory, on dask in one process, and on a 2-worker LocalCluster.

Writes the Norman-sized simulated screen (``ps.ds.simulate_to_disk(size="norman", seed=0)``,
99,000 cells x 5,000 genes, the cells of ``ps.ds.simulate(size="norman", seed=0)``) to a
temporary h5ad file, then times ``ps.pp.compute_pseudobulk`` on it: loaded into memory (the
baseline), backed (streamed from the file in this process), as dask tasks on dask's threaded
scheduler (the tasks read the backed file lazily) and as dask tasks on a
``distributed.LocalCluster`` of 2 single-threaded worker processes (started and warmed up
before the clock starts). Prints one JSON line: the seconds of each, the cluster's start-up,
and how far each dask path's statistics are from the in-memory ones: the largest absolute
difference of the float64 sums (moments, split-half moments, co-expression sum) and the
largest difference of the gene x gene moments relative to their largest value (those are
summed per chunk in float32 BLAS, whose order of additions follows its thread count).

``--size genome`` writes the genome-scale screen (1,000,000 cells x 8,000 genes, 2,001
conditions, a 12 GB file): too large to load into 23 GB beside its statistics, so
``--skip-in-memory`` makes the backed single-process pass the baseline the dask paths are
timed and compared against.

Usage: python benchmarks/bench_dask_stats.py [--size norman] [--chunk-size 5000]
[--skip-in-memory] [--skip-threads]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import rounded, run_main
from distributed import Client, LocalCluster

import perturbsim as ps

FLOAT64_SUMS = ("moments", "half_moments", "coexpr_sum")


def differences(stats: ps.pp.PseudobulkStats, reference: ps.pp.PseudobulkStats) -> list[float]:
    """Largest absolute difference of the float64 sums; largest relative one of the gram."""
    sums = max(float(np.abs(getattr(stats, f) - getattr(reference, f)).max()) for f in FLOAT64_SUMS)
    gram = np.abs(stats.coexpr_gram - reference.coexpr_gram).max() / reference.coexpr_gram.max()
    return [sums, float(gram)]


def timed(adata, **options) -> tuple[float, ps.pp.PseudobulkStats]:
    start = time.perf_counter()
    stats = ps.pp.compute_pseudobulk(adata, **options)
    return time.perf_counter() - start, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="norman")
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--skip-in-memory", action="store_true", help="backed is the baseline")
    parser.add_argument("--skip-threads", action="store_true", help="no dask-threads pass")
    args = parser.parse_args()
    ps.settings.progress = False
    chunk = args.chunk_size
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "screen.h5ad"
        start = time.perf_counter()
        ps.ds.simulate_to_disk(path, size=args.size, seed=0, counts=False)
        generate_s = time.perf_counter() - start
        read = {"perturbation_key": "condition", "control": "control"}
        memory_s = float("nan")
        if not args.skip_in_memory:
            loaded = ps.ds.read(path, **read)
            memory_s, reference = timed(loaded, chunk_size=chunk)
            del loaded
        backed = ps.ds.read(path, backed=True, **read)
        n_cells, n_genes = backed.shape
        backed_s, on_backed = timed(backed, chunk_size=chunk)
        if args.skip_in_memory:
            reference = on_backed
        threads_s, threads = float("nan"), None
        if not args.skip_threads:
            threads_s, threads = timed(backed, chunk_size=chunk, scheduler="threads")
        start = time.perf_counter()
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster, set_as_default=False) as client,
        ):
            client.run(__import__, "perturbsim")
            cluster_start_s = time.perf_counter() - start
            cluster_s, on_cluster = timed(backed, chunk_size=chunk, scheduler=client)
        file_gb = path.stat().st_size / 2**30
    print(
        json.dumps(
            {
                "benchmark": "dask_statistics_pass",
                "size": args.size,
                "cells": n_cells,
                "genes": n_genes,
                "conditions": len(reference.conditions),
                "chunk_size": chunk,
                "chunks": -(-n_cells // chunk),
                "file_gb": round(file_gb, 3),
                "cpus": os.cpu_count(),
                "load_average_1min": round(os.getloadavg()[0], 2),
                "generate_seconds": round(generate_s, 1),
                "baseline": "backed" if args.skip_in_memory else "in memory",
                "in_memory_seconds": rounded(memory_s, 2),
                "backed_seconds": round(backed_s, 2),
                "dask_threads_seconds": rounded(threads_s, 2),
                "cluster_start_seconds": round(cluster_start_s, 2),
                "local_cluster_2_workers_seconds": round(cluster_s, 2),
                "ratio_dask_threads_vs_in_memory": rounded(threads_s / memory_s, 3),
                "ratio_local_cluster_vs_in_memory": rounded(cluster_s / memory_s, 3),
                "ratio_local_cluster_vs_backed": round(cluster_s / backed_s, 3),
                "difference_sums_gram_dask_threads": (
                    None if threads is None else differences(threads, reference)
                ),
                "difference_sums_gram_local_cluster": differences(on_cluster, reference),
            }
        )
    )


if __name__ == "__main__":
    run_main(main)
