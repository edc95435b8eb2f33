"""Genome-scale run, end to end: simulate to disk, statistics from the backed file, train, evaluate.

Default scale: 1,000,000 cells x 8,000 genes x 2,000 perturbations (the simulator's
``genome`` preset: 150 singles and 1,850 pairs of 160 perturbable genes, 480 cells each,
40,000 control cells). Other scales keep the preset's proportions. Stages, each in a fresh
process so that its peak memory is its own:

1. ``simulate``: :func:`perturbsim.ds.simulate_to_disk` writes the screen (``X`` only, no
   counts layer) to an h5ad file, a chunk of cells at a time;
2. ``statistics``: :func:`perturbsim.ds.read` opens it backed (``backed="r"``), then
   ``pp.split`` (``simulation``), ``pp.pseudobulk`` (the one streaming pass) and
   ``pp.rank_de``; the set-up annotations and statistics (no cells) are handed to the next
   stages in ``prepared.h5ad``;
3. ``train``: the default model (:class:`perturbsim.Stacked`, whose GEARS trains on the
   statistics, early-stopped on the validation conditions) from ``prepared.h5ad``, saved
   to ``model/``;
4. ``evaluate``: the saved model and the ``mean`` baseline predict the test conditions,
   scored by :func:`perturbsim.tl.score` against the measured means (the statistics), with
   each condition's top-20 non-dropout DE genes ranked without its targets, as
   :func:`perturbsim.tl.evaluate` does (``evaluate`` itself needs the cells in memory).

Measured per stage: wall time of the stage's work (``seconds``; the hand-off through
``prepared.h5ad`` is timed apart, ``handoff_s``) and of its process (``process_seconds``:
interpreter start and imports included), CPU seconds, and peak RSS (``ru_maxrss`` of the
stage's own process, i.e. its high-water mark ``VmHWM``, imports included;
``rss_after_imports_gb`` is its RSS before the work starts). The screen's pages are
dropped from the page cache before the statistics stage (``posix_fadvise``), so that its
pass reads the file from disk, not from memory. ``log`` lists perturbsim's INFO
messages with the seconds since the stage started. The 1-minute load average is sampled
every 2 s during each stage (``load_mean``, ``load_max``): on a 2-core machine a load above
2 means other processes competed for the cores.

The stage processes run with ``OMP_WAIT_POLICY=PASSIVE`` (unless set otherwise): torch's
OpenMP threads then sleep at barriers instead of spinning, which on cores shared with other
processes made a GEARS decoder step 3-15x faster (and costs little on idle cores).

Prints one JSON line. ``--keep`` keeps the files; ``--stages train,evaluate`` reruns stages
on kept files.

Usage: python benchmarks/bench_genome_scale.py [--cells 1000000] [--genes 8000]
[--perturbations 2000] [--max-epochs 40] [--dir /tmp] [--keep] [--stages ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

STAGES = ("simulate", "statistics", "train", "evaluate")
TARGET_TOTAL_S = 20 * 60
TARGET_STATISTICS_GB = 8.0
SCORED_METRICS = ("pearson_delta", "pearson_delta_de", "nmse_de", "mse")


def _design(cells: int, genes: int, perturbations: int) -> dict[str, int]:
    """The ``genome`` preset's proportions at another scale (the preset itself at its own)."""
    from perturbsim.ds._simulate import PRESETS

    preset = PRESETS["genome"]
    k0 = preset["n_singles"] + preset["n_pairs"]
    n0 = preset["n_control_cells"] + k0 * preset["cells_per_condition"]
    singles = max(2, round(perturbations * preset["n_singles"] / k0))
    # enough perturbable genes for the pairs at small scales
    perturbable = max(
        round(perturbations * preset["n_perturbable"] / k0), math.ceil(2 * math.sqrt(perturbations))
    )
    control = round(cells * preset["n_control_cells"] / n0)
    return {
        "n_genes": genes,
        "n_perturbable": perturbable,
        "n_singles": singles,
        "n_pairs": perturbations - singles,
        "cells_per_condition": (cells - control) // perturbations,
        "n_control_cells": control,
    }


def _gb(kib: float) -> float:
    return round(kib / 2**20, 3)


def _rss_kib() -> int:
    """Current resident set size of this process (``VmRSS``), KiB."""
    with open("/proc/self/status") as status:
        line = next(row for row in status if row.startswith("VmRSS:"))
    return int(line.split()[1])


class _TimedLog(logging.Handler):
    """Keeps perturbsim's log messages with the seconds since the handler was made."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.start, self.lines = time.perf_counter(), []

    def emit(self, record: logging.LogRecord) -> None:
        first = record.getMessage().splitlines()[0]
        self.lines.append(f"{time.perf_counter() - self.start:.1f}s {first}")


# -- the stages (run in child processes) --------------------------------------------------
def _simulate(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import h5py

    import perturbsim as ps

    design = _design(args.cells, args.genes, args.perturbations)
    path = ps.ds.simulate_to_disk(
        work / "screen.h5ad", size="genome", seed=args.seed, counts=False, **design
    )
    with h5py.File(path, "r") as f:
        nnz = int(f["X/data"].shape[0])
    n_cells = design["n_control_cells"] + args.perturbations * design["cells_per_condition"]
    return {
        "design": design,
        "n_cells": n_cells,
        "nnz": nnz,
        "density": round(nnz / (n_cells * args.genes), 4),
        "file_gb": round(path.stat().st_size / 2**30, 2),
    }


def _statistics(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import anndata as ad

    import perturbsim as ps
    from perturbsim._keys import CONDITION, GRAM, N_TARGETS, SIMULATION, SPLIT, SUBGROUP, UNS

    times = {}
    t = time.perf_counter()
    adata = ps.ds.read(work / "screen.h5ad", control="control", backed=True)
    times["read_setup_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ps.pp.split(adata, kind="simulation", seed=args.seed)
    times["split_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ps.pp.pseudobulk(adata, chunk_size=args.chunk_size)
    times["pseudobulk_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ps.pp.rank_de(adata)
    times["rank_de_s"] = time.perf_counter() - t
    t = time.perf_counter()
    prepared = ad.AnnData(
        obs=adata.obs[[CONDITION, N_TARGETS, SPLIT, SUBGROUP]].copy(),
        var=adata.var[[]].copy(),
        uns={UNS: adata.uns[UNS], SIMULATION: {"go": adata.uns[SIMULATION]["go"]}},
        varp={GRAM: adata.varp[GRAM]},
    )
    prepared.write_h5ad(work / "prepared.h5ad")
    times["handoff_s"] = time.perf_counter() - t
    plan = ps.pp.Split.from_adata(adata)
    n_test = sum(len(members) for members in plan.subgroups.values())
    return {
        **{k: round(v, 1) for k, v in times.items()},
        "chunk_size": args.chunk_size,
        "conditions": {"train": len(plan.train), "val": len(plan.val), "test": n_test},
    }


def _read_prepared(work: Path) -> tuple[Any, float]:
    import anndata as ad

    t = time.perf_counter()
    return ad.read_h5ad(work / "prepared.h5ad"), time.perf_counter() - t


def _train(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import perturbsim as ps
    from perturbsim._keys import SIMULATION

    adata, handoff_s = _read_prepared(work)
    t = time.perf_counter()
    model = ps.Stacked(adata, seed=args.seed, go_annotations=adata.uns[SIMULATION]["go"])
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    model.fit(max_epochs=args.max_epochs)
    fit_s = time.perf_counter() - t
    model.save(work / "model", overwrite=True)
    history = model.history  # its GEARS part trains without validation: on its training loss
    return {
        "handoff_s": round(handoff_s, 1),
        "build_s": round(build_s, 1),
        "fit_s": round(fit_s, 1),
        "max_epochs": args.max_epochs,
        "epochs": len(history),
        "best_epoch": model.corrections["gears"].results[0].best_epoch,
        "train_loss": [round(float(v), 4) for v in history["train_loss"]],
    }


def _evaluate(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import numpy as np

    import perturbsim as ps
    from perturbsim.pp import DEGenes, PseudobulkStats, Split, genes_of

    adata, handoff_s = _read_prepared(work)
    stats = PseudobulkStats.from_adata(adata)
    plan = Split.from_adata(adata)
    de = DEGenes.from_adata(adata)
    subgroup_of = {c: g for g, members in plan.subgroups.items() for c in members}
    test = list(subgroup_of)
    de_genes = {c: de.top_genes(c, non_dropout=True, exclude=genes_of(c)) for c in test}
    perturbed_train = [c for c in plan.train if genes_of(c)]
    reference = stats.mean[stats.index(perturbed_train)].mean(axis=0)
    models = {
        "stacked": ps.models.PerturbationModel.load(work / "model", adata),
        "mean": ps.TrainMean(adata).fit(),
    }
    out: dict[str, Any] = {"handoff_s": round(handoff_s, 1), "n_test": len(test)}
    for name, model in models.items():
        t = time.perf_counter()
        covered = [c for c, ok in zip(test, model.covers(test), strict=True) if ok]
        table = ps.tl.score(
            model.predict(covered),
            stats,
            de_genes=de_genes,
            reference_mean=reference,
            metrics=SCORED_METRICS,
        )
        table["subgroup"] = table["condition"].map(subgroup_of)
        by_subgroup = table.groupby(["subgroup", "metric"])["value"].mean().unstack()
        out[name] = {
            "seconds": round(time.perf_counter() - t, 1),
            "covered": len(covered),
            "mean": {
                m: round(float(np.nanmean(table.loc[table.metric == m, "value"])), 4)
                for m in SCORED_METRICS
            },
            "by_subgroup": {
                group: {m: round(float(v), 4) for m, v in row.items()}
                for group, row in by_subgroup.iterrows()
            },
        }
    return out


STAGE_FUNCTIONS = {
    "simulate": _simulate,
    "statistics": _statistics,
    "train": _train,
    "evaluate": _evaluate,
}


def _run_child(args: argparse.Namespace) -> None:
    """Run one stage in this process and print its figures as one JSON line."""
    import perturbsim as ps

    ps.settings.progress = False
    ps.settings.verbosity = "INFO"
    log = _TimedLog()
    logging.getLogger("perturbsim").addHandler(log)
    rss_start = _rss_kib()
    t = time.perf_counter()
    figures = STAGE_FUNCTIONS[args.stage](args, Path(args.work))
    seconds = time.perf_counter() - t
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_gb": _gb(usage.ru_maxrss),
        "rss_after_imports_gb": _gb(rss_start),
        **figures,
        "log": log.lines,
    }
    print(json.dumps(record))


# -- the driver ---------------------------------------------------------------------------
class _LoadSampler(threading.Thread):
    """Samples the 1-minute load average every ``every`` seconds until stopped."""

    def __init__(self, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self.stopped = every, [os.getloadavg()[0]], threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.samples.append(os.getloadavg()[0])


def _evict(path: Path) -> None:
    """Drop the file's pages from the page cache, so that the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _run_stage(stage: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        *("--stage", stage, "--work", str(work)),
        *("--cells", str(args.cells), "--genes", str(args.genes)),
        *("--perturbations", str(args.perturbations), "--seed", str(args.seed)),
        *("--max-epochs", str(args.max_epochs), "--chunk-size", str(args.chunk_size)),
    ]
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
    if stage == "statistics":
        _evict(work / "screen.h5ad")  # as a file written long ago: read from disk
    sampler = _LoadSampler()
    sampler.start()
    t = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    process_s = time.perf_counter() - t
    sampler.stopped.set()
    sampler.join()
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"stage {stage} failed (exit {done.returncode})")
    record = {
        "process_seconds": round(process_s, 1),
        "load_mean": round(sum(sampler.samples) / len(sampler.samples), 2),
        "load_max": round(max(sampler.samples), 2),
        **json.loads(done.stdout.strip().splitlines()[-1]),
    }
    print(stage, json.dumps(record), file=sys.stderr, flush=True)  # progress of long runs
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--genes", type=int, default=8_000)
    parser.add_argument("--perturbations", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--chunk-size", type=int, default=5_000, help="of pp.pseudobulk")
    parser.add_argument("--dir", default="/tmp", help="where the screen is written")
    parser.add_argument("--keep", action="store_true", help="keep the files afterwards")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage is not None:
        _run_child(args)
        return
    chosen = [s for s in STAGES if s in args.stages.split(",")]
    work = Path(args.dir) / f"genome_scale_{args.cells}x{args.genes}x{args.perturbations}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        stages = {stage: _run_stage(stage, args, work) for stage in chosen}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total = sum(s["process_seconds"] for s in stages.values())
    summary: dict[str, Any] = {
        "benchmark": "genome_scale",
        "cells": args.cells,
        "genes": args.genes,
        "perturbations": args.perturbations,
        "cpus": os.cpu_count(),
        "stages_run": chosen,
        "total_process_seconds": round(total, 1),
    }
    if chosen == list(STAGES):
        summary["target_total_met"] = total < TARGET_TOTAL_S
        summary["target_statistics_rss_met"] = (
            stages["statistics"]["peak_rss_gb"] < TARGET_STATISTICS_GB
        )
    print(json.dumps({**summary, "stages": stages}))


if __name__ == "__main__":
    main()
