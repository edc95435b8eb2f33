"""Exactly additive pairs at the noise of real singles: does the default's pair fit keep the sum?

The default model combines two measured singles in a pair by a fit chosen on the training
pairs' held-out error (:func:`perturbsim.models._pair_roles.fit_pair_roles`, with the
shared-change candidate, as :class:`perturbsim.models.Stacked` fits it). This benchmark
builds pairs with no interaction at all and asks whether the fit says so:

- the singles' truth is a simulated screen's noiseless changes (``uns["simulation"]``'s
  ``truth_mean``) of its measured singles, each measured with the noise of its own cells
  (its squared standard error over control, times ``--noise-scale`` squared);
- each draw takes random pairs of those singles, ``--pairs`` for training (several sizes
  allowed) and 20 fresh ones for testing; a pair is measured as the sum of its two true
  singles plus noise of the two singles' mean error variance; the training pairs' own
  genes are left out of their fit, as in the model;
- the fit's prediction of each test pair, from its noisy singles, is judged against the
  pair's truth on its 20 strongest true genes, beside the sum of the noisy singles.

A fit that keeps the sum scores 1.0; above 1 it moves additive pairs away from their sum
(towards buffering, where the shared change damps the singles' shared noise). Prints ONE
JSON line: per training size, how many draws chose a fit other than the sum, the mean
shared coefficient, and the mean error of the fit and of the sum with their ratio.

Usage::

    python benchmarks/bench_additive_pairs.py [--size small] [--sim-seed 57] [--draws 10]
        [--pairs 10,30] [--noise-scale 1.0]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from _common import rounded, run_main

import perturbsim as ps
from perturbsim.models._data import ScreenData
from perturbsim.models._pair_roles import PairRoles, fit_pair_roles

TEST_PAIRS = 20
"""Fresh additive pairs each draw's fit is judged on."""
JUDGED_GENES = 20
"""A test pair's strongest true genes its error is taken on (as the scores' top DE genes)."""


def _true_singles(size: str, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The screen's measured singles: their noiseless changes and their error variances."""
    adata = ps.ds.simulate(size=size, seed=seed)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    data = ScreenData.from_adata(adata)
    simulation = adata.uns["simulation"]
    labels = [str(label) for label in simulation["truth_conditions"]]
    truth = np.asarray(simulation["truth_mean"], dtype=np.float64)
    control = truth[labels.index("ctrl")]
    singles = [c for c in data.perturbed(list(data.stats.conditions)) if "+" not in c]
    changes = {s: truth[labels.index(s)] - control for s in singles if s in labels}
    noise = dict(zip(changes, data.squared_standard_errors(list(changes)), strict=True))
    return changes, noise


def _draw(
    rng: np.random.Generator,
    truth: dict[str, np.ndarray],
    noise: dict[str, np.ndarray],
    n_train: int,
    scale: float,
) -> dict[str, float]:
    """One draw: fit on ``n_train`` additive pairs, judge on fresh ones; the figures."""
    genes = list(truth)
    n_genes = len(next(iter(truth.values())))
    pairs = list(itertools.combinations(genes, 2))
    chosen = [pairs[i] for i in rng.choice(len(pairs), n_train + TEST_PAIRS, replace=False)]
    train, test = chosen[:n_train], chosen[n_train:]
    measured = {g: truth[g] + rng.normal(size=n_genes) * np.sqrt(noise[g]) * scale for g in genes}
    position = {g: i for i, g in enumerate(genes)}

    def stacked(values: dict[str, np.ndarray], which: int) -> np.ndarray:
        return np.array([values[pair[which]] for pair in train])

    pair_error = {(a, b): np.sqrt((noise[a] + noise[b]) / 2) * scale for a, b in train}
    measured_pairs = np.array(
        [truth[a] + truth[b] + rng.normal(size=n_genes) * pair_error[a, b] for a, b in train]
    )
    keep = np.ones(measured_pairs.shape, dtype=bool)
    for row, (a, b) in enumerate(train):
        keep[row, [position[a], position[b]]] = False
    variances = {g: noise[g] * scale**2 for g in genes}
    fit = fit_pair_roles(
        stacked(measured, 0),
        stacked(measured, 1),
        measured_pairs,
        keep,
        train,
        (stacked(variances, 0), stacked(variances, 1)),
        shared_change=True,
    )
    errors = {"fit": [], "sum": []}
    for a, b in test:
        target = truth[a] + truth[b]
        judged = np.argsort(-np.abs(target))[:JUDGED_GENES]
        for name, model in (("fit", fit), ("sum", PairRoles.additive())):
            predicted = model.predict(measured[a], measured[b])
            errors[name].append(float(np.mean((predicted - target)[judged] ** 2)))
    return {
        "other_than_sum": float(not fit.is_additive),
        "shared": fit.shared,
        "fit": float(np.mean(errors["fit"])),
        "sum": float(np.mean(errors["sum"])),
    }


def _training_sizes(text: str) -> list[int]:
    """``--pairs``: comma-separated numbers of training pairs, each at least 3."""
    try:
        sizes = [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not whole numbers: {text!r}") from None
    if min(sizes) < 3:
        raise argparse.ArgumentTypeError(f"each size must be at least 3 pairs, got {text!r}")
    return sizes


def main(args: argparse.Namespace) -> None:
    """Draw, fit and judge; print one JSON line."""
    start = time.perf_counter()
    truth, noise = _true_singles(args.size, args.sim_seed)
    rng = np.random.default_rng(args.sim_seed)
    by_size: dict[int, list[dict[str, float]]] = {n: [] for n in args.pairs}
    for _ in range(args.draws):
        for n in args.pairs:
            by_size[n].append(_draw(rng, truth, noise, n, args.noise_scale))
    out = {
        "bench": "additive_pairs",
        "size": args.size,
        "sim_seed": args.sim_seed,
        "noise_scale": args.noise_scale,
        "draws": args.draws,
        "singles": len(truth),
    }
    for n, draws in by_size.items():
        fit, summed = (float(np.mean([d[k] for d in draws])) for k in ("fit", "sum"))
        out[f"pairs_{n}"] = {
            "other_than_sum": int(sum(d["other_than_sum"] for d in draws)),
            "mean_shared": rounded(np.mean([d["shared"] for d in draws])),
            "error_fit": rounded(fit, 6),
            "error_sum": rounded(summed, 6),
            "ratio": rounded(fit / summed),
        }
    out["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", help="simulate() preset: small or norman")
    parser.add_argument("--sim-seed", type=int, default=57)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument(
        "--pairs", type=_training_sizes, default="10,30", help="training pairs per draw, e.g. 10,30"
    )
    parser.add_argument("--noise-scale", type=float, default=1.0)
    run_main(main, parser.parse_args())
