"""Score the same GEARS predictions with perturbsim and with cell-eval, side by side.

cell-eval (Arc Institute, PyPI ``cell-eval``) is never a dependency of perturbsim: this script
creates its own virtual environment, ``benchmarks/.venv-cell-eval`` (gitignored), installs
the pinned ``cell-eval`` there, and talks to it only through files and its command line.

For the bundled Norman subset (``simulation`` split, seed 1) and, when the shared data are
present, the Gasperini 2019 CRISPRi screen (raw counts, normalised on reading; ``single``
split, seed 1), it trains GEARS (seed 0, at most 20 epochs), writes the held-out conditions
with :func:`perturbsim.io.export_cell_eval` (predicted cells from ``sample()``, real cells,
every control cell in both), runs ``cell-eval run --ceiling`` on them, and scores the same
predictions with :func:`perturbsim.tl.score` (DE genes as :func:`perturbsim.tl.evaluate`
ranks them). Prints ONE JSON line, per data set:

- ``metrics``: for each metric both tools define (Pearson of the change, MSE, DE overlap,
  discrimination L1 / L2), the mean over conditions of ours (targets left out, our default;
  and with targets kept), cell-eval's, and the two split-half ceilings: our ``replicate``
  row of :func:`perturbsim.tl.evaluate` (targets kept) and cell-eval's ``--ceiling``
  (``None`` where it defines none);
- ``de_counts``: per condition, the genes called DE against control (adjusted p < 0.05) by
  scanpy's ``rank_genes_groups`` (Wilcoxon with tie correction, t-test) and, for the real
  and GEARS's cells, by cell-eval (pdex: Mann-Whitney U, FDR), with their means, in: the
  real cells; GEARS's cells from ``sample()`` (``gears``) and made as ``sample()`` made
  them before, random control cells plus the predicted change clipped at 0
  (``gears_old``); the same two samplings of each condition's measured mean
  (``measured``, ``measured_old``), which show the sampling alone, free of any model's
  error; and the share of cell-eval's calls on genes no control cell detects.

Skips a data set (saying why in its entry) when its data are absent; prints only why when
cell-eval cannot be installed.

Usage::

    python benchmarks/compare_cell_eval.py
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
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from _common import rounded, run_main
from scipy import sparse

import perturbsim as ps
from perturbsim._keys import CELL_EVAL_CONTROL, CELL_EVAL_PERT_COL
from perturbsim.models._data import ScreenData
from perturbsim.tl._metrics import full_depth

CELL_EVAL_VERSION = "0.8.2"
VENV = Path(__file__).resolve().parent / ".venv-cell-eval"
GASPERINI = "gasperini2019/gasperini2019_highmoi_tss_subset.h5ad"
EPOCHS = 20
N_DE = 20
P_ADJ = 0.05
METRICS = {
    "pearson_delta": "pearson_delta",
    "mse": "mse",
    "de_overlap": "overlap_at_N",
    "discrimination_l1": "discrimination_score_l1",
    "discrimination_l2": "discrimination_score_l2",
}
"""Our metric -> its cell-eval counterpart (how the definitions differ: RESULTS.md)."""
SKIPPED_METRICS = "pearson_edistance"
"""Needs every pair of control cells: 30,298^2 distances on Gasperini."""


def cell_eval() -> Path:
    """The ``cell-eval`` command of the benchmark's own environment, installed if needed."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('cell-eval'))"],
        capture_output=True,
        text=True,
    )
    if version.stdout.strip() != CELL_EVAL_VERSION:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"cell-eval=={CELL_EVAL_VERSION}"],
            check=True,
            capture_output=True,
            text=True,
        )
    return VENV / "bin" / "cell-eval"


def run_cell_eval(exe: Path, pred: Path, real: Path, out: Path, *, ceiling: bool) -> None:
    """``cell-eval run`` with its default labels (those of the export)."""
    command = [str(exe), "run", "-ap", str(pred), "-ar", str(real), "-o", str(out)]
    command += ["--num-threads", str(os.cpu_count()), "--skip-metrics", SKIPPED_METRICS]
    subprocess.run([*command, *(["--ceiling"] if ceiling else [])], check=True, capture_output=True)


def our_metrics(
    model: ps.models.PerturbationModel, adata: ad.AnnData, labels: list[str], split: str
) -> dict:
    """Mean over ``labels`` of our metrics, targets left out (default) and kept, and of our
    split-half replicate (targets kept, as cell-eval's ceiling; its mean over the conditions
    mapped to full depth, as cell-eval maps it, and the mean of each condition's value
    mapped, as ``tl.evaluate``'s summaries do) on the same split."""
    work = adata.copy()
    ps.pp.pseudobulk(work)
    ps.pp.rank_de(work, n_genes=N_DE)
    stats = ps.pp.PseudobulkStats.from_adata(work)
    de = ps.pp.DEGenes.from_adata(work)
    pred = model.predict(labels)
    names = [m for m in METRICS if m in ps.tl.METRICS]
    means = {}
    for key, exclude in (("ours", True), ("ours_targets_kept", False)):
        de_genes = {
            c: de.top_genes(c, non_dropout=True, exclude=ps.pp.genes_of(c) if exclude else ())
            for c in labels
        }
        table = ps.tl.score(pred, stats, de_genes=de_genes, metrics=names, exclude_targets=exclude)
        means[key] = table.groupby("metric")["value"].mean()
    scores = ps.tl.evaluate(
        adata, models=["mean"], split=split, seeds=[1], metrics=names, exclude_targets=False
    ).scores
    replicate = scores[scores["model"] == "replicate"].groupby("metric")["value"]
    # the mean of the half-depth values mapped to a full-depth repeat, as cell-eval does
    means["ours_replicate"] = pd.Series(
        {m: float(full_depth(m, value)) for m, value in replicate.mean().items()}
    )
    # each condition's value mapped before the mean, as tl.evaluate's summaries do
    means["ours_replicate_by_condition"] = pd.Series(
        {m: float(np.nanmean(full_depth(m, values.to_numpy()))) for m, values in replicate}
    )
    return {m: {key: rounded(means[key].get(m, math.nan)) for key in means} for m in names}


def scanpy_de_counts(path: Path) -> dict[str, dict[str, int]]:
    """Genes with adjusted p < 0.05 against control, per condition, by scanpy's tests."""
    cells = ad.read_h5ad(path)
    groups = [g for g in cells.obs[CELL_EVAL_PERT_COL].cat.categories if g != CELL_EVAL_CONTROL]
    counts = {}
    for method in ("wilcoxon", "t-test"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scanpy's notes on constant genes
            sc.tl.rank_genes_groups(
                cells,
                CELL_EVAL_PERT_COL,
                groups=groups,
                reference=CELL_EVAL_CONTROL,
                method=method,
                tie_correct=method == "wilcoxon",
            )
        counts[method] = {
            g: int((sc.get.rank_genes_groups_df(cells, g)["pvals_adj"] < P_ADJ).sum())
            for g in groups
        }
    return counts


class MeasuredMeans(ps.models.PerturbationModel):
    """Predicts each condition's measured mean: its sampled cells show the sampling alone."""

    name = "measured_means"

    def _fit(self, data: ScreenData) -> None:
        self.stats = data.stats

    def _predict_change(self, sets: list[tuple[str, ...]]) -> tuple[np.ndarray, None]:
        rows = self.stats.index([ps.pp.canonical_label(s) for s in sets])
        return self.stats.mean[rows] - self.control_mean, None


def shifted_cells(model: ps.models.PerturbationModel, pred_path: Path, out: Path) -> Path:
    """The predicted cells of ``pred_path`` made as ``sample()`` made them before.

    Each condition's cells become random control cells (seed 0) plus the predicted change,
    clipped at 0; the control cells stay as they are.
    """
    cells = ad.read_h5ad(pred_path)
    labels = cells.obs[CELL_EVAL_PERT_COL].astype(str).to_numpy()
    control = cells.X[labels == CELL_EVAL_CONTROL].toarray()
    conditions = list(pd.unique(labels[labels != CELL_EVAL_CONTROL]))
    delta = model.predict(conditions).layers["delta"]
    rng = np.random.default_rng(0)
    blocks = [control] + [
        np.clip(control[rng.integers(len(control), size=(labels == c).sum())] + d, 0, None)
        for c, d in zip(conditions, delta, strict=True)
    ]
    cells.X = sparse.csr_matrix(np.vstack(blocks))
    cells.write_h5ad(out)
    return out


def cell_eval_de(out: Path) -> tuple[dict[str, dict[str, int]], dict[str, float | None]]:
    """cell-eval's DE counts per condition, and the share of calls on genes silent in control.

    A gene is silent in control when no control cell detects it (pdex's ``ref_mean`` is 0).
    """
    results = pd.read_csv(out / "results.csv", index_col="perturbation")
    counts, shares = {}, {}
    for which in ("real", "pred"):
        counts[which] = results[f"de_nsig_counts_{which}"].astype(int).to_dict()
        table = pd.read_csv(out / f"{which}_de.csv")
        called = table[table["fdr"] < P_ADJ]
        shares[which] = rounded((called["ref_mean"] == 0).mean()) if len(called) else None
    return counts, shares


def compare(name: str, adata: ad.AnnData, split: str, exe: Path, tmp: Path) -> dict:
    """Train, export, run cell-eval and score ours for one data set."""
    start = time.perf_counter()
    ps.pp.split(adata, kind=split, seed=1)
    model = ps.GEARS(adata, seed=0).fit(max_epochs=EPOCHS)
    labels = ps.pp.Split.from_adata(adata).test
    pred, real = ps.io.export_cell_eval(model, adata, tmp / name, seed=0)
    run_cell_eval(exe, pred, real, tmp / name / "gears", ceiling=True)
    results = pd.read_csv(tmp / name / "gears" / "results.csv", index_col="perturbation")
    ceiling = pd.read_csv(tmp / name / "gears" / "agg_ceiling_results.csv").iloc[0]
    metrics = our_metrics(model, adata, labels, split)
    for ours, theirs in METRICS.items():
        if ours in metrics:
            metrics[ours]["cell_eval"] = rounded(results.loc[labels, theirs].mean())
            metrics[ours]["cell_eval_ceiling"] = rounded(ceiling[theirs])

    old = shifted_cells(model, pred, tmp / name / "pred_old.h5ad")
    run_cell_eval(exe, old, real, tmp / name / "gears_old", ceiling=False)
    measured = MeasuredMeans(adata).fit()
    measured_pred, _ = ps.io.export_cell_eval(measured, adata, tmp / name / "measured", seed=0)
    cells = {
        "real": real,
        "gears": pred,
        "gears_old": old,
        "measured": measured_pred,
        "measured_old": shifted_cells(measured, measured_pred, tmp / name / "measured_old.h5ad"),
    }
    counts = {which: scanpy_de_counts(path) for which, path in cells.items()}
    silent = {}
    for sampling in ("gears", "gears_old"):
        by_cell_eval, silent[sampling] = cell_eval_de(tmp / name / sampling)
        counts[sampling]["cell_eval"] = by_cell_eval["pred"]
    counts["real"]["cell_eval"] = by_cell_eval["real"]
    mean = {
        which: {test: rounded(np.mean([per[c] for c in labels])) for test, per in tests.items()}
        for which, tests in counts.items()
    }
    return {
        "cells_x_genes": list(adata.shape),
        "split": split,
        "test_conditions": len(labels),
        "best_epoch": [r.best_epoch for r in model.results],
        "metrics": metrics,
        "de_counts": {
            "mean": mean,
            "share_of_calls_silent_in_control": silent,
            "per_condition": {
                c: {
                    which: {test: per[c] for test, per in tests.items()}
                    for which, tests in counts.items()
                }
                for c in labels
            },
        },
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()  # no options: --help says what the run does before it starts
    ps.settings.progress = False
    figures: dict = {
        "benchmark": "compare_cell_eval",
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "cell_eval": CELL_EVAL_VERSION,
    }
    try:
        exe = cell_eval()
    except subprocess.CalledProcessError as err:
        reason = (err.stderr or "").strip().splitlines()[-1:] or [str(err)]
        figures["skipped"] = f"cannot install cell-eval=={CELL_EVAL_VERSION}: {reason[0]}"
        print(json.dumps(figures))
        return
    shared = ps.ds.shared_data_dir()
    with tempfile.TemporaryDirectory() as tmp:
        figures["norman"] = compare(
            "norman", ps.ds.norman2019_subset(), "simulation", exe, Path(tmp)
        )
        if shared is None or not (shared / GASPERINI).is_file():
            figures["gasperini"] = {
                "skipped": f"{GASPERINI} absent from the shared data folder "
                "(set PERTURBSIM_SHARED_DATA)"
            }
        else:
            adata = ps.ds.read(
                shared / GASPERINI, perturbation_key="condition", control="control", normalize=True
            )
            figures["gasperini"] = compare("gasperini", adata, "single", exe, Path(tmp))
    print(json.dumps(figures))


if __name__ == "__main__":
    run_main(main)
