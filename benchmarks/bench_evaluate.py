"""Benchmark the evaluation runner: GEARS against every baseline, per test subgroup.

Runs :func:`perturbsim.tl.evaluate` (5 seeds, all models) on the bundled Norman subset
(simulation split), on a simulated screen (simulation split) and, when the shared data are
present, on the real Gasperini 2019 CRISPRi screen (normalised; its singles under the
``single`` split, its singles with the 9 pairs of >= 10 cells under ``combo``). Prints ONE
JSON line: per data set the wall time, the mean fit time per run of each model and, per
subgroup and model, the mean over seeds of ``pearson_delta_de`` and ``nmse_de`` with the
coverage (covered / total test conditions over all seeds), beside the split-half replicate,
the calibrated scores (``(model - mean) / (replicate - mean)``) with their intervals, the
default (``stacked``) against each other model on the conditions both cover
(:meth:`~perturbsim.tl.EvaluationResult.head_to_head`: calibrated difference with its
interval), and each model's precision@10 of the interaction subtypes of the test pairs
beside a random ranking's (against the simulator's noiseless truth, or the measured means).

Usage::

    python benchmarks/bench_evaluate.py            # Norman subset, simulated "small", Gasperini
    python benchmarks/bench_evaluate.py --sim-size norman --seeds 1   # Norman-sized screen
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from _common import rounded, run_main

import perturbsim as ps
from perturbsim.models import DEFAULT_MODELS, takes_option
from perturbsim.tl import EvaluationResult, evaluate

METRICS = ("pearson_delta_de", "nmse_de")
GASPERINI = "gasperini2019/gasperini2019_highmoi_tss_subset.h5ad"
MIN_PAIR_CELLS = 10
MODELS = (
    *DEFAULT_MODELS,
    "stacked_denoised",
    "stacked_no_neighbours",
    "stacked_dense_neighbours",
    "stacked_no_shared",
    "stacked_no_inferred",
    "stacked_no_partial_sum",
    "stacked_no_partial_linear",
    "stacked_no_coexpression",
    "stacked_gears_only",
    "stacked_no_gears",
    "gears_residual",
    "gears_reference",
    "gears_cold_start",
    "gears_residual_ensemble",
)
"""The default models plus the ablations of the default and of GEARS reported in RESULTS.md."""


def _figures(result: EvaluationResult, wall_s: float) -> dict:
    summary = result.summary()
    coverage = result.coverage_table().set_index(["model", "subgroup"])
    subgroups: dict[str, dict] = {}
    for group in result.subgroups:
        per_model = {}
        for model in result.models:
            if (model, group) not in coverage.index:  # every run of the model failed
                continue
            cov = coverage.loc[(model, group)]
            if cov["n_covered"] == 0:
                continue
            rows = summary[(summary["model"] == model) & (summary["subgroup"] == group)]
            entry = {m: rounded(rows.loc[rows["metric"] == m, "mean"].iloc[0]) for m in METRICS}
            entry["coverage"] = f"{int(cov['n_covered'])}/{int(cov['n_total'])}"
            per_model[model] = entry
        subgroups[group] = per_model
    calibrated: dict[str, dict] = {}
    table = result.calibrated()
    for row in table[table["metric"].isin(METRICS)].itertuples(index=False):
        calibrated.setdefault(row.subgroup, {}).setdefault(row.model, {})[row.metric] = [
            rounded(row.mean),
            rounded(row.ci_low),
            rounded(row.ci_high),
        ]
    head_to_head: dict[str, dict] = {}
    if "stacked" in result.models:
        table = result.head_to_head("stacked")
        for row in table[table["metric"].isin(METRICS)].itertuples(index=False):
            head_to_head.setdefault(row.subgroup, {}).setdefault(row.model, {})[row.metric] = {
                "stacked": rounded(row.reference),
                "model": rounded(row.model_value),
                "difference": [rounded(row.mean), rounded(row.ci_low), rounded(row.ci_high)],
                "n_conditions": int(row.n_conditions),
            }
    gi: dict[str, dict] = {}
    gi_summary = result.gi_summary()
    for (model, subtype), rows in gi_summary.groupby(["model", "subtype"], sort=False):
        means = rows.set_index("metric")["mean"]
        gi.setdefault(model, {})[subtype] = {
            "precision_at_k": rounded(means["precision_at_k"]),
            "random": rounded(means["random_precision"]),
            "r2": rounded(means["r2"]),
        }
    timings = result.timings.groupby("model", sort=False)["fit_s"].mean()
    epochs = {}
    if not result.histories.empty:
        last = result.histories.groupby(["model", "seed", "member"])["epoch"].max()
        epochs = {m: float(v) for m, v in last.groupby(level="model").mean().items()}
    return {
        "n_cells": result.settings["n_cells"],
        "n_genes": result.settings["n_genes"],
        "n_conditions": result.settings["n_conditions"],
        "seeds": result.settings["seeds"],
        "wall_s": round(wall_s, 2),
        "fit_s_per_run": {m: round(float(t), 3) for m, t in timings.items()},
        "epochs_per_run": epochs,
        "subgroups": subgroups,
        "calibrated": calibrated,
        "head_to_head_vs_stacked": head_to_head,
        "gi_precision_at_10": gi,
    }


def _run(
    adata,
    *,
    models: list[str],
    seeds: int,
    split: str = "simulation",
    model_kwargs: dict | None = None,
    save: Path | None = None,
) -> dict:
    t0 = time.perf_counter()
    result = evaluate(
        adata,
        models=models,
        split=split,
        seeds=seeds,
        model_kwargs=model_kwargs,
        on_error="skip",
    )
    figures = _figures(result, time.perf_counter() - t0)
    if save is not None:  # every table, to summarise again without evaluating again
        result.write(save, overwrite=True)
    figures["split"] = split
    figures["failures"] = [
        f"{r.model} seed {r.seed} ({r.stage}): {r.error}"
        for r in result.failures.itertuples(index=False)
    ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sim-size", default="small", help="simulate() preset: small or norman")
    parser.add_argument("--sim-seed", type=int, default=0)
    parser.add_argument(
        "--sim-unannotated",
        type=float,
        default=None,
        help="simulate(unannotated_fraction=...); default: the simulator's",
    )
    parser.add_argument("--skip-norman", action="store_true", help="no Norman subset")
    parser.add_argument("--skip-gasperini", action="store_true", help="no Gasperini screen")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated models and GEARS variants"
    )
    parser.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write each evaluation's tables (EvaluationResult.write) into DIR/<screen>",
    )
    args = parser.parse_args()

    def saved(name: str) -> dict:
        return {} if args.save is None else {"save": args.save / name}

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    ps.settings.progress = False

    out: dict = {
        "bench": "evaluate",
        "split": "simulation",
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    if not args.skip_norman:
        out["norman_subset"] = _run(
            ps.ds.norman2019_subset(), models=models, seeds=args.seeds, **saved("norman_subset")
        )

    from perturbsim.ds._simulate import simulate

    t0 = time.perf_counter()
    extra = {} if args.sim_unannotated is None else {"unannotated_fraction": args.sim_unannotated}
    sim = simulate(size=args.sim_size, seed=args.sim_seed, **extra)
    ps.pp.setup(sim, perturbation_key="condition", control="control")
    simulate_s = time.perf_counter() - t0
    go = sim.uns["simulation"]["go"]  # the simulator's GO-like terms, not human GO
    gears_models = [m for m in models if takes_option(m, "go_annotations")]
    figures = _run(
        sim,
        models=models,
        seeds=args.seeds,
        model_kwargs={m: {"go_annotations": go} for m in gears_models},
        **saved(f"simulated_{args.sim_size}"),
    )
    out[f"simulated_{args.sim_size}"] = {
        "sim_seed": args.sim_seed,  # 0 is the scoreboard; others, development screens
        "simulate_s": round(simulate_s, 2),
        **extra,
        **figures,
    }
    if not args.skip_gasperini:
        out |= _gasperini(models, args.seeds, args.save)
    print(json.dumps(out))


def gasperini_screens() -> list[tuple[str, object, str]] | None:
    """The Gasperini screen's singles (``single`` split) and singles with pairs (``combo``).

    ``(name, screen, split)`` per screen, set up; None when the shared data are absent.
    """
    shared = ps.ds.shared_data_dir()
    path = None if shared is None else shared / GASPERINI
    if path is None or not path.is_file():
        return None
    screen = ps.ds.read(path, perturbation_key="condition", control="control", normalize=True)
    table = ps.pp.condition_table(screen)
    singles = table.index[table["kind"].isin(["control", "single"])]
    pairs = table.index[(table["kind"] == "combo") & (table["n_cells"] >= MIN_PAIR_CELLS)]
    screens = []
    for name, kept, split in (
        ("gasperini_singles", singles, "single"),
        ("gasperini_pairs", singles.append(pairs), "combo"),
    ):
        cells = screen.obs["perturbsim_condition"].astype(str).isin(kept).to_numpy()
        subset = screen[cells].copy()
        subset.obs = subset.obs[["condition"]]
        del subset.uns["perturbsim"]
        ps.pp.setup(subset, perturbation_key="condition", control="control")
        screens.append((name, subset, split))
    return screens


def _gasperini(models: list[str], seeds: int, save: Path | None) -> dict:
    """:func:`_run` on each of :func:`gasperini_screens` (tables into ``save/<name>``)."""
    screens = gasperini_screens()
    if screens is None:
        return {"gasperini": "skipped: shared data absent (set PERTURBSIM_SHARED_DATA)"}
    return {
        name: _run(
            subset,
            models=models,
            seeds=seeds,
            split=split,
            save=None if save is None else save / name,
        )
        for name, subset, split in screens
    }


if __name__ == "__main__":
    run_main(main)
