"""How often ``gi_per_gene`` calls a gene where there is no interaction (its null).

Control cells only, relabelled at random as a "pair" of a few cells and two "singles" of
60, the rest staying control: every departure from the singles' sum is then noise, so
the share of genes with p < 0.05 should be 5 % or less. Measured for the pair's size
(2, 4, 10, 40 cells), for a pair that spreads its cells more than control does (each of
its values multiplied by 1 + s or 1 - s at random, s = 0.5: the same expected mean, a
larger variance, as a perturbation that makes expression more variable) and for the test:
a normal one on each mean's own standard error (a DataFrame ``se``), and Welch's t on
variances moderated with ``prior_df`` 0 (each mean's own), 4 and 10 (the default). On the
Gasperini screen's control cells (shared data; skipped when absent) and the simulated
``small`` screen's. Beside them, on the simulated screen's real pairs: the share of gene x
pair rows called at FDR 0.05 (not checked against the simulator's truth).

Prints ONE JSON line. Usage: python benchmarks/bench_gi_per_gene_null.py [--draws 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import pandas as pd
from _common import run_main
from anndata import AnnData
from bench_evaluate import GASPERINI

import perturbsim as ps

PAIR_CELLS = (2, 4, 10, 40)
"""Cells of the random "pair"."""
SINGLE_CELLS = 60
"""Cells of each random "single"."""
PRIOR_DFS = (0.0, 4.0, 10.0)
"""Prior degrees of freedom of the moderated tests compared."""
SPREADS = (0.0, 0.5)
"""``s`` of the pair's cells' values multiplied by ``1 ± s`` (0: control's spread)."""
SIM_SEED = 1
"""The simulated screen's seed: a development screen (seed 0 is the scoreboard's, which
chooses nothing: ``prior_df``'s default is chosen here)."""


def _control_cells() -> tuple[dict[str, AnnData], dict[str, str]]:
    """The control cells of the screens measured, log-normalised; those skipped, and why."""
    simulated = ps.ds.simulate(size="small", seed=SIM_SEED)
    screens = {"simulated_small": simulated[simulated.obs["condition"] == "control"].copy()}
    shared, skipped = ps.ds.shared_data_dir(), {}
    if shared is None or not (shared / GASPERINI).is_file():
        skipped["gasperini"] = f"no $PERTURBSIM_SHARED_DATA/{GASPERINI}"
    else:
        screen = ps.ds.read(
            shared / GASPERINI, perturbation_key="condition", control="control", normalize=True
        )
        cells = screen[screen.obs["condition"].astype(str) == "control"]
        screens["gasperini"] = AnnData(cells.X.copy(), var=cells.var[[]].copy())
    for cells in screens.values():
        cells.X = cells.X.toarray() if hasattr(cells.X, "toarray") else np.asarray(cells.X)
    return screens, skipped


def _null_rates(cells: AnnData, pair_cells: int, spread: float, draws: int) -> dict[str, float]:
    """Share of moved genes with p < 0.05 between random groups, per test."""
    hits: dict[str, list[np.ndarray]] = {}
    for draw in range(draws):
        labels = np.full(cells.n_obs, "control", dtype=object)
        rng = np.random.default_rng([pair_cells, draw])
        order = rng.permutation(cells.n_obs)
        a, b = order[:SINGLE_CELLS], order[SINGLE_CELLS : 2 * SINGLE_CELLS]
        labels[a], labels[b] = "A", "B"
        pair = order[2 * SINGLE_CELLS : 2 * SINGLE_CELLS + pair_cells]
        labels[pair] = "A+B"
        values = cells.X.copy()
        signs = rng.choice((-1.0, 1.0), size=(pair_cells, cells.n_vars))
        values[pair] *= 1.0 + spread * signs
        adata = AnnData(values, var=cells.var[[]].copy())
        adata.obs["condition"] = labels
        ps.pp.setup(adata, perturbation_key="condition", control="control")
        stats = ps.pp.compute_pseudobulk(adata, coexpression="none")
        profiles = ps.pp.measured_profiles(adata)
        options = {"exclude_targets": False, "min_cells": 1}
        own = pd.DataFrame(stats.standard_error(), index=stats.conditions, columns=stats.genes)
        tables = {"normal_own_se": ps.tl.gi_per_gene(profiles, se=own, **options)}
        for prior_df in PRIOR_DFS:
            tables[f"welch_prior_df_{prior_df:g}"] = ps.tl.gi_per_gene(
                profiles, se=stats, prior_df=prior_df, **options
            )
        for name, table in tables.items():
            moved = table["deviation"].to_numpy() != 0
            hits.setdefault(name, []).append(table["p"].to_numpy()[moved] < 0.05)
    return {name: round(float(np.concatenate(h).mean()), 4) for name, h in hits.items()}


def _power() -> dict[str, float]:
    """Share of gene x pair rows called at FDR 0.05 on the simulated screen's measured pairs.

    Per test; how many calls each test makes where the pairs interact, not their precision.
    """
    adata = ps.ds.simulate(size="small", seed=SIM_SEED)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    stats = ps.pp.compute_pseudobulk(adata, coexpression="none")
    profiles = ps.pp.measured_profiles(adata)
    own = pd.DataFrame(stats.standard_error(), index=stats.conditions, columns=stats.genes)
    tables = {"normal_own_se": ps.tl.gi_per_gene(profiles, se=own)}
    for prior_df in PRIOR_DFS:
        tables[f"welch_prior_df_{prior_df:g}"] = ps.tl.gi_per_gene(
            profiles, se=stats, prior_df=prior_df
        )
    return {
        name: round(float(t["call"].isin(["synergy", "buffering"]).mean()), 4)
        for name, t in tables.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20, help="random relabellings per size")
    args = parser.parse_args()
    ps.settings.progress = False
    logging.getLogger("perturbsim").setLevel(logging.ERROR)  # "A" and "B" are no genes
    start = time.perf_counter()
    screens, skipped = _control_cells()
    null = {
        f"{name}_spread_{spread:g}": {
            str(n): _null_rates(cells, n, spread, args.draws) for n in PAIR_CELLS
        }
        for name, cells in screens.items()
        for spread in SPREADS
    }
    record = {
        "benchmark": "gi_per_gene_null",
        "sim_seed": SIM_SEED,
        **({"skipped": skipped} if skipped else {}),
        "draws": args.draws,
        "single_cells": SINGLE_CELLS,
        "false_positive_rate_at_p05": null,
        "called_at_fdr05_simulated_pairs": _power(),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    run_main(main)
