"""Benchmark experiment design: an active-learning loop on the simulator.

For each seed a screen is simulated (the ``small`` preset with 30 measured singles and 90
measured pairs of its 36 perturbable genes, every gene GO-annotated so that GEARS covers
every condition: it predicts each, though early in the loop most from no measured single or
GO neighbour of one, the package's "unsupported" warning, switched off here as expected).
Its measured conditions are the pool an experimenter may measure; the other singles and
pairs of the perturbable genes (never measured, known only through the simulator's
noiseless truth) are the untested conditions the model is scored on, the same for every
strategy. The loop starts from ``--initial`` pool conditions drawn at random,
fits the model on the measured ones, then each round lets a strategy choose ``--k``
more from the rest of the pool (:func:`perturbsim.tl.design`), refits on explicit training
conditions and scores again.

The model is a GEARS ensemble (``--n-models`` networks, additive residual, ``--epochs``
epochs, no validation): it retrains in seconds and its spread is a predictive variance.
Its co-expression graph reads the gene x gene moments of the cells held before the loop
(the control and the initial conditions), kept through it: no model sees the cells of a
condition no strategy has chosen.
The error is the normalised squared error over the untested conditions and all genes,
``sum (predicted - true)^2 / sum (true - true control)^2`` on the log-normalised scale
(1 = no better than predicting control). Prints ONE JSON line: per strategy the mean curve
with 95 % t-intervals over seeds, the final error, and the number measured at which it
first reaches the random strategy's final error (per seed, its mean and interval, the
paired difference with random's own) and the mean number of singles among the measured
conditions, and writes the plot to ``--plot``.

Usage::

    python benchmarks/bench_design.py --plot out/design_curves.png
    python benchmarks/bench_design.py --seeds 3 --rounds 4 --plot /tmp/d.png   # quicker
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import over_seeds, rounded, run_main

import perturbsim as ps
from perturbsim._atomic import atomic_write
from perturbsim._keys import CONTROL
from perturbsim._settings import switched_off
from perturbsim.models._base import WARN_UNSUPPORTED

SCREEN = {"size": "small", "n_singles": 30, "n_pairs": 90, "unannotated_fraction": 0.0}
STRATEGIES = ("combined", "uncertainty", "coverage", "random")


def _error(model: ps.models.PerturbationModel, truth, untested: list[str]) -> float:
    """Normalised squared error of the predicted means over ``untested`` and all genes."""
    predicted = np.asarray(model.predict(untested).X, dtype=np.float64)
    true = np.asarray(truth[untested].X, dtype=np.float64)
    control = np.asarray(truth[CONTROL].X, dtype=np.float64)
    return float(((predicted - true) ** 2).sum() / ((true - control) ** 2).sum())


def _run_seed(seed: int, args: argparse.Namespace) -> list[dict]:
    """The curves of every strategy on the screen of one seed."""
    adata = ps.ds.simulate(seed=seed, **SCREEN)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    truth = ps.tl.truth_profiles(adata)
    pool = [str(c) for c in adata.uns["simulation"]["measured"] if c != CONTROL]
    untested = [c for c in truth.obs_names if c != CONTROL and c not in set(pool)]
    rng = np.random.default_rng(seed)
    initial = [str(c) for c in rng.choice(pool, args.initial, replace=False)]
    # the co-expression moments of the cells a lab holds before the loop (control and the
    # initial conditions), kept through it: no model sees cells of a condition not chosen
    later = [c for c in pool if c not in set(initial)]
    ps.pp.split(adata, kind="custom", test_conditions=later, val_fraction=0.0)
    ps.pp.pseudobulk(adata, coexpression="train")
    model = ps.GEARS(
        adata,
        go_annotations=adata.uns["simulation"]["go"],
        n_models=args.n_models,
        hidden=args.hidden,
        additive_residual=True,
        seed=seed,
    )
    rows = []
    with switched_off(WARN_UNSUPPORTED):  # expected: see the module's note
        for strategy in args.strategies:
            measured = list(initial)
            for round_ in range(args.rounds + 1):
                model.fit(train_conditions=measured, max_epochs=args.epochs)
                if round_ == 0 and not model.covers(untested).all():
                    raise SystemExit("GEARS cannot predict every untested condition")
                rows.append(
                    {
                        "strategy": strategy,
                        "seed": seed,
                        "n_measured": len(measured),
                        "error": _error(model, truth, untested),
                        "n_singles": sum(len(ps.pp.genes_of(c)) == 1 for c in measured),
                    }
                )
                if round_ < args.rounds:
                    ranked = ps.tl.design(
                        model,
                        [c for c in pool if c not in set(measured)],
                        budget=args.k,
                        strategy=strategy,
                        measured=measured,
                        seed=seed * 1000 + round_,
                    )
                    measured += ranked["perturbation"].tolist()
    return rows


def _reach(curves: pd.DataFrame, strategy: str) -> np.ndarray:
    """Per seed, when ``strategy`` first reaches random's final error.

    The smallest number measured at which its error is at or below the random strategy's
    error at the end of the loop, on the same seed (NaN when it never is).
    """
    out = []
    for _, own in curves.groupby("seed", sort=True):
        random = own[own["strategy"] == "random"].sort_values("n_measured")
        target = random["error"].iloc[-1]
        rows = own[own["strategy"] == strategy].sort_values("n_measured")
        reached = rows.loc[rows["error"] <= target, "n_measured"]
        out.append(float(reached.iloc[0]) if len(reached) else math.nan)
    return np.array(out)


def _figures(curves: pd.DataFrame, strategies: list[str]) -> dict:
    summary = ps.tl.active_learning_summary(curves)
    random_reach = _reach(curves, "random")
    per_strategy = {}
    for strategy in strategies:
        rows = summary[summary["strategy"] == strategy]
        own = curves[curves["strategy"] == strategy]
        final = own[own["n_measured"] == own["n_measured"].max()]["error"].to_numpy()
        # a seed that never reaches it counts as reaching it at the loop's end (a bound:
        # left out, the mean would favour the strategy); n_never says how many
        last = float(own["n_measured"].max())
        reach = _reach(curves, strategy)
        reach_bound = np.where(np.isnan(reach), last, reach)
        per_strategy[strategy] = {
            "n_measured": rows["n_measured"].tolist(),
            "mean": [rounded(v) for v in rows["mean"]],
            "ci_low": [rounded(v) for v in rows["ci_low"]],
            "ci_high": [rounded(v) for v in rows["ci_high"]],
            "singles_measured": [
                rounded(v) for v in own.groupby("n_measured", sort=True)["n_singles"].mean()
            ],
            "final_error": over_seeds(final),
            "reach_random_final": {
                "per_seed": [rounded(v) for v in reach],
                **over_seeds(reach_bound),
                "n_never": int(np.isnan(reach).sum()),
                "minus_random": over_seeds(
                    reach_bound - np.where(np.isnan(random_reach), last, random_reach)
                ),
            },
        }
    return per_strategy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--initial", type=int, default=8, help="conditions measured at first")
    parser.add_argument("--k", type=int, default=8, help="conditions measured per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-models", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: fastest on a shared machine)"
    )
    parser.add_argument("--plot", type=Path, required=True, help="figure path (.png, .pdf)")
    args = parser.parse_args()
    args.strategies = [s.strip() for s in args.strategies.split(",")]
    if "random" not in args.strategies:
        parser.error("--strategies must include random (the reference)")
    if args.n_models < 2:  # one network has no spread: no uncertainty to design by
        parser.error("--n-models must be at least 2 (the ensemble's spread is its uncertainty)")
    ps.settings.progress = False
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    curves = pd.DataFrame([row for seed in range(args.seeds) for row in _run_seed(seed, args)])
    ax = ps.pl.design_curves(curves, strategies=args.strategies)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(args.plot), lambda tmp: ax.figure.savefig(tmp, dpi=150))
    print(
        json.dumps(
            {
                "screen": SCREEN,
                "model": f"GEARS n_models={args.n_models} hidden={args.hidden} "
                f"additive_residual epochs={args.epochs}",
                "seeds": args.seeds,
                "initial": args.initial,
                "k": args.k,
                "rounds": args.rounds,
                "threads": args.threads,
                "error": "sum sq. error / sum sq. true change, untested conditions, all genes",
                "strategies": _figures(curves, args.strategies),
                "plot": str(args.plot),
                "wall_s": round(time.perf_counter() - start, 1),
            }
        )
    )


if __name__ == "__main__":
    run_main(main)
