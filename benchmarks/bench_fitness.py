"""Cell fitness of held-out gene pairs on Norman et al.'s growth screen (issue 15, item 2).

Data: ``norman2019/gi/`` of the shared folder (112 genes after dropping the ``negative``
control, 6,216 measured pairs), read by :func:`perturbsim.ds.read_fitness`.

- **Split.** :func:`perturbsim.tl.fitness_split`, seeds 1-5: a quarter of the genes unseen
  (no training pair), a quarter of the pairs of two seen genes held out; validation pairs
  (those of 10% of the seen genes and 10% of the rest) choose the epoch kept.
- **Methods.** ``fitness_model`` (:class:`perturbsim.models.FitnessModel`, defaults);
  ``no_go``, the same network without the GO graph (each gene only its learned embedding):
  what GO adds; ``additive`` (``f_A + f_B``) and ``mean`` (of the training pairs).
- **Settings.** ``measured``: every gene's single fitness is known (a single-gene screen
  is cheap; the default of ``perturbsim fitness``). ``hidden``: an unseen gene's single is
  unknown too (GEARS's setting): the model predicts it from GO, the additive baseline uses
  the mean known single.
- **Second route.** ``expression_ridge``: ``ps.Stacked`` trained on the bundled Norman
  subset (simulation split, seed 1), its predicted expression change mapped to fitness by
  a ridge fitted on the training conditions it covers (measured setting), scored with the
  other methods on the test pairs it covers.
- **Metrics.** R² and Pearson per test subgroup, mean over split seeds with a 95%
  t-interval; fitting seconds per model fit.

``--tune`` instead prints the validation error (never the test) of a few settings of the
model on split seeds 100-102, the run that chose the defaults (what it says of them now:
``benchmarks/RESULTS.md``, "Cell fitness").

Prints ONE JSON line (the R² tables go to stderr); skips (JSON with ``skipped``) when the
shared data are absent.

Usage: python benchmarks/bench_fitness.py [--seeds 5] [--tune]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from _common import run_main

import perturbsim as ps
from perturbsim.tl._fitness import ALL, COVERED, SUBGROUPS

GI_DIR = "norman2019/gi"
MODELS = {"fitness_model": {}, "no_go": {"go": False}}
TUNE_SEEDS = (100, 101, 102)
TUNE_GRID = (
    {},
    {"weight_decay": 1e-2},
    {"lr": 1e-2},
    {"hidden": 64},
    {"embedding_dim": 0},
    {"go_components": 8},
    {"go_components": 16},
    {"hops": 2},
    {"go": False},
)
FIT_OPTIONS = {"weight_decay", "lr", "max_epochs"}


def figures(result: ps.tl.FitnessResult, metric: str, scope: str = ALL) -> dict:
    """``{method: {subgroup: [mean, ci_low, ci_high]}}`` of one metric, rounded (NaN: null)."""
    summary = result.summary()
    rows = summary[(summary["metric"] == metric) & (summary["scope"] == scope)]
    out: dict[str, dict[str, list[float | None]]] = {}
    for row in rows.itertuples():
        values = [
            round(float(v), 3) if np.isfinite(v) else None
            for v in (row.mean, row.ci_low, row.ci_high)
        ]
        out.setdefault(row.method, {})[row.subgroup] = values
    return {m: {s: out[m][s] for s in SUBGROUPS if s in out[m]} for m in out}


def pairs_per_subgroup(result: ps.tl.FitnessResult, scope: str = ALL) -> dict[str, float]:
    summary = result.summary()
    rows = summary[(summary["scope"] == scope) & (summary["metric"] == "r2")]
    return rows.groupby("subgroup")["n_pairs"].max().round(1).to_dict()


def expression_model() -> ps.PerturbationModel:
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, kind="simulation", seed=1)
    return ps.Stacked(adata, seed=0).fit()


def tune(screen: ps.ds.FitnessScreen) -> dict:
    """Validation error of each setting of :data:`TUNE_GRID`, mean over :data:`TUNE_SEEDS`."""
    splits = [ps.tl.fitness_split(screen, seed=s) for s in TUNE_SEEDS]
    rows = []
    for setting in TUNE_GRID:
        options = {k: v for k, v in setting.items() if k not in FIT_OPTIONS}
        fit = {k: v for k, v in setting.items() if k in FIT_OPTIONS}
        losses, epochs = [], []
        for split in splits:
            model = ps.models.FitnessModel(screen, seed=split.seed, **options)
            model.fit(split.train, val_pairs=split.val, **fit)
            losses.append(model.val_loss)
            epochs.append(model.best_epoch)
        rows.append(
            {
                "setting": setting or "defaults",
                "val_mse_scaled": round(float(np.mean(losses)), 4),
                "per_seed": [round(v, 4) for v in losses],
                "best_epochs": epochs,
            }
        )
    return {"benchmark": "fitness_tune", "seeds": list(TUNE_SEEDS), "settings": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="split seeds (default 5)")
    parser.add_argument("--tune", action="store_true", help="validation run of the defaults")
    args = parser.parse_args()
    shared = ps.ds.shared_data_dir()
    if shared is None or not (shared / GI_DIR).is_dir():
        print(json.dumps({"benchmark": "fitness", "skipped": "shared data absent"}))
        return
    ps.settings.progress = False
    started = time.perf_counter()
    try:
        screen = ps.ds.read_fitness(shared / GI_DIR)
    except ps.PerturbsimError as err:  # a folder without the files it needs
        print(json.dumps({"benchmark": "fitness", "skipped": str(err)}))
        return
    if args.tune:
        print(json.dumps(tune(screen)))
        return
    measured = ps.tl.fitness_evaluate(
        screen, seeds=args.seeds, models=MODELS, expression_model=expression_model()
    )
    hidden = ps.tl.fitness_evaluate(
        screen, seeds=args.seeds, models=MODELS, hide_unseen_singles=True
    )
    tables = {
        "measured singles": measured.table("r2"),
        "hidden singles": hidden.table("r2"),
        "expression-covered pairs, measured singles": measured.table("r2", scope=COVERED),
    }
    for name, table in tables.items():  # for the reader; stdout keeps its one JSON line
        print(f"R², {name}:\n{table.to_string()}\n", file=sys.stderr)
    print(
        json.dumps(
            {
                "benchmark": "fitness",
                "genes": len(screen.genes),
                "pairs": len(screen.pair_table()),
                "seeds": args.seeds,
                "test_pairs_per_seed": pairs_per_subgroup(measured),
                "r2_measured_singles": figures(measured, "r2"),
                "pearson_measured_singles": figures(measured, "pearson"),
                "r2_hidden_singles": figures(hidden, "r2"),
                "expression_route": {
                    "test_pairs_per_seed": pairs_per_subgroup(measured, COVERED),
                    "r2": figures(measured, "r2", COVERED),
                },
                "train_s_per_fit": {
                    m: round(s / args.seeds, 2) for m, s in measured.train_seconds.items()
                },
                "torch_threads": torch.get_num_threads(),
                "wall_s": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    run_main(main)
