"""perturbsim and the reference GEARS (PyPI ``cell-gears`` 0.1.2), side by side.

The reference is never a dependency of perturbsim: it lives in its own virtual environment,
``benchmarks/.venv-reference`` (gitignored; ``bash benchmarks/reference_env.sh`` creates
it), and runs as a subprocess of that environment's python (``benchmarks/_reference_run.py``),
talking to this script only through files.

Both sides get the same data, the same split and the same seeds: our ``simulation`` split
(seed 1) of the screen, written as the reference's custom split file; our GO graph (human GO,
or the simulator's GO-like terms) for the perturbed and measured genes, written where the
reference would download its own (``go_essential_all.csv`` and the gene2go pickle);
seed 0 for every model. The reference runs its own pipeline with its defaults (DE genes,
one graph per cell, batch 32, 20 epochs, best epoch on validation); ours is the default
model (``ps.Stacked``) and GEARS alone (``ps.GEARS``), each with the statistics pass
counted as training, each run ``--repeats`` times (3) in a fresh process, the fastest kept,
so peak RSS is each side's own. Wall and CPU seconds are both reported.
The reference's predictions for the test conditions come back in a file and are scored
here, with ours, by :func:`perturbsim.tl.score` (top-20 non-dropout DE genes ranked as
:func:`perturbsim.tl.evaluate` ranks them, targets left out) on the test conditions every
model covers; the mean of the perturbed training profiles is scored alongside as an anchor.

Two screens:

- the bundled Norman subset: the reference's whole default training (20 epochs), timed;
- the Norman-sized simulation (~99,000 cells x 5,000 genes): the reference's whole training
  would take days on 2 cores, so it runs on a seeded sample of the cells (``--sample``, 10%
  of every condition by default), its optimiser steps and its per-epoch evaluation are timed
  (``--reference-steps``), and its epoch and whole training at full size are **extrapolated**
  (steps per epoch from the full training cells; preprocessing scaled by the number of
  cells). Its test metrics there are those of the partly trained network, not of a default
  training.

On a machine with a GPU, ``--reference-device cuda`` trains the reference there (its own
``device`` argument) while ours stay on the CPU, held to ``--ours-threads`` threads (a
laptop's 2, say), so the ratio compares the reference on a GPU with ours on a few cores of
the same machine, measured in the same run. ``--reference-python`` names another python
that imports cell-gears 0.1.2 (a GPU machine's own torch, the reference's packages on its
path).

Prints ONE JSON line. Usage::

    bash benchmarks/reference_env.sh          # once: the reference's environment
    python benchmarks/compare_reference.py    # ~40 min on 2 quiet cores (107 min loaded)
    python benchmarks/compare_reference.py --reference-python python3 \
        --reference-device cuda --ours-threads 2 --repeats 1 --reference-steps 1000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

import perturbsim as ps
from perturbsim._keys import CONDITION
from perturbsim.graphs._go import _resolve_symbols
from perturbsim.tl._evaluate import _prepare

HERE = Path(__file__).resolve().parent
VENV_PYTHON = HERE / ".venv-reference" / "bin" / "python"
HELPER = HERE / "_reference_run.py"
MAKE_VENV = "bash benchmarks/reference_env.sh"
SPLIT_SEED = 1
SEED = 0
N_DE = 20
METRICS = ("pearson_delta_de", "nmse_de")
OURS = ("stacked", "gears")
REFERENCE_BATCH = 32
REFERENCE_EPOCHS = 20
"""The reference's default ``GEARS.train(epochs=20)``."""
TARGET_SPEEDUP = {"norman_subset": 100, "norman_sized_simulation": 1000}
PREDICT_CELLS = 32
"""Control cells per prediction of the partly trained reference (300 in the reference)."""

OURS_CODE = r"""
import json, resource, sys, time
import numpy as np
import perturbsim as ps
ps.settings.progress = False
source, name, out, test, split_seed, seed = sys.argv[1:7]
if source == "norman_subset":
    adata, go = ps.ds.norman2019_subset(), None
else:
    adata = ps.ds.read(source, control="control")
    go = adata.uns["simulation"]["go"]
test = json.loads(test)
ps.pp.split(adata, kind="simulation", seed=int(split_seed))
assert sorted(ps.pp.Split.from_adata(adata).test) == sorted(test), "not the driver's split"
clock = lambda: np.array([time.perf_counter(), time.process_time()])
t = clock()
ps.pp.pseudobulk(adata)
stats = clock() - t
model_class = {"stacked": ps.Stacked, "gears": ps.GEARS}[name]
t = clock()
model = model_class(adata, seed=int(seed), go_annotations=go).fit()
fit = clock() - t
covered = [c for c, ok in zip(test, model.covers(test)) if ok]
pred = model.predict(covered)
np.savez(out, conditions=np.array(covered, dtype=str),
         genes=np.asarray(pred.var_names, dtype=str), mean=np.asarray(pred.X, dtype=np.float32))
epochs = len(model.history)
figures = {"stats_s": stats[0], "fit_s": fit[0], "whole_training_s": stats[0] + fit[0],
           "whole_training_cpu_s": stats[1] + fit[1]}
if name == "gears":
    figures.update(epoch_s=fit[0] / epochs, epoch_cpu_s=fit[1] / epochs)
figures = {k: round(float(v), 3) for k, v in figures.items()}
figures["epochs (GEARS)"] = epochs
figures["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
print(json.dumps(figures))
"""

SIMULATE_CODE = r"""
import sys
import perturbsim as ps
ps.ds.simulate(size=sys.argv[2], seed=0).write_h5ad(sys.argv[1])
print("{}")
"""


class BenchmarkError(Exception):
    """A one-line reason the benchmark cannot go on."""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _run(command: list[str], log: Path, what: str, *, env: dict | None = None) -> dict:
    """Run a measuring subprocess; its last stdout line is its JSON result."""
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    log.write_text(out.stdout + "\n--- stderr ---\n" + out.stderr)
    if out.returncode != 0:
        raise BenchmarkError(f"{what} failed: {_last_line(out.stderr)} (log: {log})")
    return json.loads(_last_line(out.stdout))


def check_reference_env(python: str) -> str:
    """The reference environment's versions; a one-line error when it is broken."""
    probe = (
        "import importlib.metadata as m, gears; "
        "print(', '.join(n + ' ' + m.version(n) for n in "
        "('cell-gears', 'torch', 'torch_geometric', 'scipy', 'numpy')))"
    )
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    if out.returncode != 0 or "cell-gears 0.1.2" not in out.stdout:
        reason = _last_line(out.stderr) if out.returncode else out.stdout.strip()
        fix = f"rm -r benchmarks/.venv-reference && {MAKE_VENV}"
        if python != str(VENV_PYTHON):
            fix = f"give a --reference-python that imports it, or leave it out after {MAKE_VENV}"
        raise BenchmarkError(f"{python} does not import cell-gears 0.1.2 ({reason}); {fix}")
    return out.stdout.strip()


# -- the reference's inputs -----------------------------------------------------------------
def reference_label(condition: str) -> str:
    """Our canonical label in the reference's style: ``ctrl``, ``A+ctrl``, ``A+B``."""
    genes = ps.pp.genes_of(condition)
    if not genes:
        return "ctrl"
    return genes[0] + "+ctrl" if len(genes) == 1 else "+".join(genes)


def go_inputs(work: ad.AnnData, go: pd.DataFrame | None) -> tuple[pd.DataFrame, dict]:
    """Our GEARS's GO graph as the reference's ``go_essential_all.csv``, and gene -> terms.

    The graph is the one ``ps.GEARS`` builds (perturbed + measured genes, top 20 neighbours
    with Jaccard > 0.1), plus each node's self-edge of weight 1 as in the reference's own
    file (its graph convolution adds self-loops of weight 1 anyway).
    """
    graph = ps.GEARS(work, go_annotations=go)._annotated_go_graph
    edges = graph.to_frame().rename(columns={"weight": "importance"})
    nodes = [str(n) for n in graph.nodes]
    loops = pd.DataFrame({"source": nodes, "target": nodes, "importance": 1.0})
    edges = pd.concat([loops, edges[["source", "target", "importance"]]], ignore_index=True)
    annotations = ps.ds.human_go() if go is None else go[["gene", "term"]].astype(str)
    aliases = ps.ds.human_gene_alias() if go is None else None
    symbol = _resolve_symbols(nodes, set(annotations["gene"]), aliases)
    terms = annotations.groupby("gene")["term"].apply(lambda t: sorted(set(t))).to_dict()
    return edges, {node: terms[symbol[node]] for node in nodes}


def write_reference_inputs(
    work: ad.AnnData,
    split: ps.pp.Split,
    go: pd.DataFrame | None,
    folder: Path,
    *,
    sample: float | None,
) -> dict:
    """Screen, split and GO files for ``_reference_run.py``; what the reference can predict.

    The reference drops conditions with a gene outside its GO graph (``PertData.load``), so
    their cells are left out here (``new_data_process`` would train on them wrongly).
    ``sample``: keep that share of each condition's cells (seeded).
    """
    folder.mkdir(parents=True)
    edges, gene2go = go_inputs(work, go)
    conditions = work.obs[CONDITION].astype(str).to_numpy()
    covered = {c: all(g in gene2go for g in ps.pp.genes_of(c)) for c in sorted(set(conditions))}
    keep = np.array([covered[c] for c in conditions])
    covered_cells = int(keep.sum())
    if sample is not None:
        rng = np.random.default_rng(SEED)
        drawn = np.zeros_like(keep)
        for c in covered:
            rows = np.flatnonzero(conditions == c)
            n = max(1, round(sample * rows.size))
            drawn[rng.choice(rows, size=min(n, rows.size), replace=False)] = True
        keep &= drawn
    n_cells = {
        name: int(np.isin(conditions, [c for c in getattr(split, name) if covered.get(c)]).sum())
        for name in ("train", "val", "test")
    }
    cells = work[keep]
    labels = [reference_label(c) for c in cells.obs[CONDITION].astype(str)]
    x = cells.X
    screen = ad.AnnData(
        X=sparse.csr_matrix(x, dtype=np.float32),
        obs=pd.DataFrame(
            {
                "condition": labels,
                "cell_type": (
                    cells.obs["cell_type"].astype(str).to_numpy()
                    if "cell_type" in cells.obs
                    else "screen"
                ),
            },
            index=cells.obs_names.astype(str),
        ),
        var=pd.DataFrame({"gene_name": work.var_names.astype(str)}, index=work.var_names),
    )
    screen.write_h5ad(folder / "screen.h5ad")
    sets = {
        name: [reference_label(c) for c in getattr(split, name) if covered.get(c, False)]
        for name in ("train", "val", "test")
    }
    (folder / "split.json").write_text(json.dumps(sets))
    (folder / "gene2go.json").write_text(json.dumps(gene2go))
    edges.to_csv(folder / "go_edges.csv", index=False)
    return {
        "cells": int(cells.n_obs),
        "covered_cells": covered_cells,
        "train_cells": n_cells["train"],
        "val_cells": n_cells["val"],
        "test_cells": n_cells["test"],
        "go_nodes": len(gene2go),
        "go_edges_without_self": int(len(edges) - len(gene2go)),
        "test": [c for c in split.test if covered.get(c, False)],
        "not_covered": sorted(c for c, ok in covered.items() if not ok),
    }


# -- scoring ------------------------------------------------------------------------------
def load_predictions(path: Path, *, labels: dict[str, str] | None = None) -> ad.AnnData:
    """Predicted means from an ``.npz`` (``conditions``, ``genes``, ``mean``) as an AnnData.

    ``labels`` maps the file's condition labels to ours (the reference's ``A+ctrl`` style).
    """
    with np.load(path, allow_pickle=False) as f:
        conditions = [str(c) for c in f["conditions"]]
        genes, mean = f["genes"].astype(str), f["mean"]
    if labels is not None:
        conditions = [labels[c] for c in conditions]
    return ad.AnnData(
        X=mean.astype(np.float32),
        obs=pd.DataFrame(index=pd.Index(conditions)),
        var=pd.DataFrame(index=pd.Index(genes)),
    )


def train_mean(prepared, conditions: list[str]) -> ad.AnnData:
    """The anchor: every condition predicted as the mean perturbed training profile."""
    return ad.AnnData(
        X=np.tile(prepared.reference.astype(np.float32), (len(conditions), 1)),
        obs=pd.DataFrame(index=pd.Index(conditions)),
        var=pd.DataFrame(index=pd.Index(np.asarray(prepared.stats.genes, dtype=str))),
    )


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return round(float(values.mean()), 4) if len(values) else None


def score_all(predictions: dict[str, ad.AnnData], prepared, conditions: list[str]) -> dict:
    """Mean of each metric over ``conditions`` (and per test subgroup), per model."""
    scores = {}
    for name, pred in predictions.items():
        genes = np.asarray(prepared.stats.genes, dtype=str)
        table = ps.tl.score(
            pred[conditions, genes],
            prepared.stats,
            de_genes=prepared.de_genes,
            metrics=list(METRICS),
        )
        table["subgroup"] = table["condition"].map(prepared.subgroup_of)
        wide = table.pivot_table(index=["subgroup", "condition"], columns="metric", values="value")
        wide = wide.reset_index()
        scores[name] = {m: _mean(wide[m]) for m in METRICS}
        scores[name]["by_subgroup"] = {
            group: {m: _mean(rows[m]) for m in METRICS} | {"n": len(rows)}
            for group, rows in wide.groupby("subgroup")
        }
    return scores


# -- one screen ---------------------------------------------------------------------------
def _ours_env(threads: int | None) -> dict | None:
    """The environment of our training processes: ``threads`` threads for torch, BLAS and
    numba (each library's default where None)."""
    if threads is None:
        return None
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
    return dict(os.environ, **dict.fromkeys(names, str(threads)))


def run_ours(
    model: str, source: str, split: ps.pp.Split, folder: Path, args: argparse.Namespace
) -> dict:
    """Our model's whole training ``args.repeats`` times, each in a fresh process; the fastest."""
    runs = []
    env = _ours_env(args.ours_threads)
    for run in range(args.repeats):
        command = [sys.executable, "-c", OURS_CODE, source, model, str(folder / f"{model}.npz")]
        command += [json.dumps(split.test), str(SPLIT_SEED), str(SEED)]
        log = folder / f"{model}_{run}.log"
        runs.append(_run(command, log, f"perturbsim {model}", env=env))
    fastest = min(runs, key=lambda r: r["whole_training_s"])
    return fastest | {"whole_training_s_of_each_run": [r["whole_training_s"] for r in runs]}


def run_reference(folder: Path, args: argparse.Namespace, *, full: bool) -> dict:
    """The reference in its own environment: whole training, or timed steps on a sample."""
    command = [args.reference_python, str(HELPER), "--inputs", str(folder / "inputs")]
    command += ["--work", str(folder / "reference_data"), "--out", str(folder / "reference")]
    command += ["--seed", str(SEED), "--eval-batches", str(args.eval_batches)]
    command += ["--device", args.reference_device]
    if full:
        command += ["--epochs", str(args.reference_epochs), "--steps", str(args.check_steps)]
    else:
        command += ["--steps", str(args.reference_steps), "--predict-cells", str(PREDICT_CELLS)]
    env = dict(os.environ, PYTHONHASHSEED="0")  # the reference's loss iterates over a set
    return _run(command, folder / "reference.log", "the reference (cell-gears)", env=env)


def compare(
    name: str,
    source: str,
    adata: ad.AnnData,
    go: pd.DataFrame | None,
    tmp: Path,
    args: argparse.Namespace,
) -> dict:
    """Train both sides on one screen; timings, peak RSS and scores."""
    full = name == "norman_subset"
    prepared = _prepare(
        adata, SPLIT_SEED, split="simulation", split_kwargs={}, n_de=N_DE, exclude_targets=True
    )
    split = ps.pp.Split.from_adata(prepared.work)
    folder = tmp / name
    inputs = write_reference_inputs(
        prepared.work, split, go, folder / "inputs", sample=None if full else args.sample
    )
    result: dict = {
        "cells": adata.n_obs,
        "genes": adata.n_vars,
        "conditions": {k: len(getattr(split, k)) for k in ("train", "val", "test")},
        "go_graph": {"nodes": inputs["go_nodes"], "edges": inputs["go_edges_without_self"]},
        "reference_drops (genes without GO terms)": inputs["not_covered"],
    }

    timing: dict = {}
    predictions: dict[str, ad.AnnData] = {}
    for model in OURS:
        timing[model] = run_ours(model, source, split, folder, args)
        predictions[model] = load_predictions(folder / f"{model}.npz")
        _progress(f"[{name}] {model}: {timing[model]}")
    measured = run_reference(folder, args, full=full)
    _progress(f"[{name}] reference: {measured}")
    labels = {reference_label(c): c for c in inputs["test"]}
    predictions["reference"] = load_predictions(
        folder / "reference" / "predictions.npz", labels=labels
    )
    timing["reference"] = reference_timing(measured, inputs, full=full)
    result["timing"] = timing

    ref = timing["reference"]
    result["speedup_whole_training (wall, cpu)"] = {
        m: [
            _ratio(ref, timing[m], "whole_training_s"),
            _ratio(ref, timing[m], "whole_training_cpu_s"),
        ]
        for m in OURS
    }
    result["speedup_per_epoch_gears (wall, cpu)"] = [
        _ratio(ref, timing["gears"], "epoch_s"),
        _ratio(ref, timing["gears"], "epoch_cpu_s"),
    ]
    target = TARGET_SPEEDUP.get(name)
    if target is not None:
        result[f"target_default_>={target}x_faster_met (wall)"] = (
            result["speedup_whole_training (wall, cpu)"]["stacked"][0] >= target
        )

    common = [c for c in split.test if all(c in set(p.obs_names) for p in predictions.values())]
    predictions["train_mean (anchor)"] = train_mean(prepared, common)
    result["scored_test_conditions"] = f"{len(common)} of {len(split.test)}"
    result["scores"] = score_all(predictions, prepared, common)
    if not full:
        result["scores"]["reference"]["note"] = (
            f"after {args.reference_steps} steps of {REFERENCE_BATCH} cells on the "
            f"{args.sample:.0%} sample, not a default training; predictions from "
            f"{PREDICT_CELLS} control cells (300 in the reference)"
        )
    ours, theirs = result["scores"]["stacked"], result["scores"]["reference"]
    result["default_metrics_equal_or_better"] = {
        "pearson_delta_de": _at_least(ours["pearson_delta_de"], theirs["pearson_delta_de"]),
        "nmse_de": _at_least(theirs["nmse_de"], ours["nmse_de"]),
    }
    return result


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _ratio(slow: dict, fast: dict, key: str) -> float | None:
    if slow.get(key) is None or not fast.get(key):
        return None
    return round(slow[key] / fast[key], 1)


def _at_least(a: float | None, b: float | None) -> bool | None:
    return None if a is None or b is None else a >= b


def reference_timing(measured: dict, inputs: dict, *, full: bool) -> dict:
    """The reference's figures, wall and CPU; from a sample of the cells, extrapolated."""
    keys = ("device", "cells", "epochs", "timed_steps", "eval_batches_timed", "predict_cells")
    timing = {k: measured[k] for k in keys if k in measured}
    for phase in ("preprocess", "graphs", "train", "epoch", "step", "eval_batch", "predict"):
        for clock in ("s", "cpu_s"):
            if f"{phase}_{clock}" in measured:
                timing[f"{phase}_{clock}"] = measured[f"{phase}_{clock}"]
    if full:
        timing["measured"] = f"whole default training ({measured['epochs']} epochs), timed"
        for clock in ("s", "cpu_s"):
            timing[f"whole_training_{clock}"] = round(
                sum(measured[f"{p}_{clock}"] for p in ("preprocess", "graphs", "train")), 1
            )
        if "step_s" in measured:
            sizes = (measured["train_cells"], measured["val_cells"], measured["test_cells"])
            epoch, train = _estimated_training(measured, *sizes, epochs=measured["epochs"])
            timing["epoch_s_estimated_from_steps (check)"] = round(epoch, 2)
            timing["train_s_estimated_from_steps (check)"] = round(train, 1)
        timing["peak_rss_gb"] = measured["peak_rss_gb"]
        if "peak_gpu_memory_gb" in measured:
            timing["peak_gpu_memory_gb"] = measured["peak_gpu_memory_gb"]
        return timing
    share = measured["cells"] / inputs["covered_cells"]
    sizes = (inputs["train_cells"], inputs["val_cells"], inputs["test_cells"])
    timing.update(
        measured=(
            f"extrapolated: {measured['timed_steps']} timed steps and "
            f"{measured['eval_batches_timed']} timed evaluation batches on a {share:.0%} "
            "sample of the cells; preprocessing scaled by the number of cells"
        ),
        cells_full_size=inputs["covered_cells"],
        train_cells_full_size=inputs["train_cells"],
        steps_per_epoch=inputs["train_cells"] // REFERENCE_BATCH,
        epochs=REFERENCE_EPOCHS,
    )
    for clock in ("s", "cpu_s"):
        epoch, train = _estimated_training(measured, *sizes, epochs=REFERENCE_EPOCHS, clock=clock)
        preprocess = measured[f"preprocess_{clock}"] / share
        timing[f"epoch_{clock}"] = round(epoch, 1)
        timing[f"train_{clock}"] = round(train, 1)
        timing[f"preprocess_{clock}_full_size"] = round(preprocess, 1)
        timing[f"whole_training_{clock}"] = round(
            preprocess + measured[f"graphs_{clock}"] + train, 1
        )
    timing["peak_rss_gb (on the sample: a lower bound)"] = measured["peak_rss_gb"]
    if "peak_gpu_memory_gb" in measured:
        timing["peak_gpu_memory_gb (on the sample)"] = measured["peak_gpu_memory_gb"]
    return timing


def _estimated_training(
    measured: dict,
    train_cells: int,
    val_cells: int,
    test_cells: int,
    *,
    epochs: int,
    clock: str = "s",
) -> tuple[float, float]:
    """Seconds per epoch of ``GEARS.train`` (its steps, then the evaluation of the train and
    val loaders) and of the whole call (``epochs`` epochs, then the test set's evaluation),
    from the timed step and evaluation batch."""
    step, batch = measured[f"step_{clock}"], measured[f"eval_batch_{clock}"]
    steps = train_cells // REFERENCE_BATCH
    epoch = steps * step + (steps + math.ceil(val_cells / REFERENCE_BATCH)) * batch
    return epoch, epochs * epoch + math.ceil(test_cells / REFERENCE_BATCH) * batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help="only the Norman subset")
    parser.add_argument("--skip-subset", action="store_true", help="only the simulation")
    parser.add_argument("--sim-size", default="norman", help="simulated preset (default norman)")
    parser.add_argument("--sample", type=float, default=0.1, help="reference's share of cells")
    parser.add_argument("--reference-steps", type=int, default=200)
    parser.add_argument("--reference-epochs", type=int, default=REFERENCE_EPOCHS)
    parser.add_argument("--check-steps", type=int, default=30, help="subset: timed steps")
    parser.add_argument("--eval-batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each of ours")
    parser.add_argument("--keep", type=Path, help="keep the working files in this new folder")
    parser.add_argument(
        "--reference-python",
        default=str(VENV_PYTHON),
        help="a python that imports cell-gears 0.1.2 (default: the reference environment's)",
    )
    parser.add_argument("--reference-device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--ours-threads", type=int, help="threads of our training processes (default: all)"
    )
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep} is not a new (or empty) folder")
    if args.ours_threads is not None and args.ours_threads < 1:
        parser.error(f"--ours-threads {args.ours_threads}: give 1 or more")
    if args.reference_python == str(VENV_PYTHON) and not VENV_PYTHON.exists():
        # a skip, as every benchmark's without what it needs
        skipped = f"the reference environment is missing: create it with {MAKE_VENV}"
        print(json.dumps({"benchmark": "compare_reference", "skipped": skipped}))
        return

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    try:
        versions = check_reference_env(args.reference_python)
        with tempfile.TemporaryDirectory() as scratch:
            tmp = args.keep or Path(scratch)
            tmp.mkdir(parents=True, exist_ok=True)
            result: dict = {
                "benchmark": "compare_reference",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "reference": versions,
                "split": f"simulation, seed {SPLIT_SEED}",
                "model_seed": SEED,
                "reference_device": args.reference_device,
                "ours_threads": args.ours_threads or f"torch's default ({os.cpu_count()} cores)",
                "metrics": "ours (ps.tl.score): top-20 non-dropout DE genes, targets left out",
            }
            if not args.skip_subset:
                adata = ps.ds.norman2019_subset()
                result["norman_subset"] = compare(
                    "norman_subset", "norman_subset", adata, None, tmp, args
                )
            if not args.skip_large:
                path = tmp / "simulation.h5ad"
                command = [sys.executable, "-c", SIMULATE_CODE, str(path), args.sim_size]
                _run(command, tmp / "simulate.log", "the simulation")
                adata = ps.ds.read(path, control="control")
                go = adata.uns["simulation"]["go"]
                name = "norman_sized_simulation"
                if args.sim_size != "norman":
                    name = f"simulated_{args.sim_size}"
                result[name] = compare(name, str(path), adata, go, tmp, args)
    except BenchmarkError as err:
        raise SystemExit(f"compare_reference: {err}") from None
    result["load_average_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
