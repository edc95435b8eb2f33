"""How the default predicts an unseen gene's change of its own expression (its target).

Every metric of the scoreboard leaves a condition's own targets out, so this is scored
here alone. On the Gasperini CRISPRi screen (shared data; skipped when absent): its singles
with the ``single`` split, and its singles with the pairs of >= 10 cells with the
``simulation`` split, 5 split seeds each; the default model (``Stacked``) is fitted and
predicts each held-out single whose target is a measured gene; its predicted
change at the target is compared with the measured one (mean absolute error, share of
signs right, mean predicted and measured change). Beside it, in the same run: no change
(0) and the mean change of the training perturbations at that gene (the ``mean``
baseline's prediction there).

Prints ONE JSON line. Usage: python benchmarks/bench_targets.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import run_main
from bench_evaluate import gasperini_screens

import perturbsim as ps
from perturbsim.models._data import ScreenData

SCREENS = (("gasperini_singles", "single"), ("gasperini_pairs", "simulation"))
"""The screens of :func:`gasperini_screens` scored, and their splits."""


def _held_out_targets(screen, split: str, seed: int) -> dict[str, list[tuple[float, float]]]:
    """(predicted, measured) change at each held-out single's target, per predictor."""
    adata = screen.copy()
    ps.pp.split(adata, kind=split, seed=seed)
    model = ps.Stacked(adata, seed=0).fit()
    data = ScreenData.from_adata(adata)
    genes = list(map(str, adata.var_names))
    test = [
        str(c)
        for c in adata.uns["perturbsim"]["split"]["test"]
        if "+" not in str(c) and str(c) in genes
    ]
    if not test:
        return {}
    predicted = model.predict(test).layers["delta"]
    measured = data.changes(test)
    mean = data.mean_training_change()
    pairs: dict[str, list[tuple[float, float]]] = {"stacked": [], "no_change": [], "mean": []}
    for row, gene in enumerate(test):
        column = genes.index(gene)
        truth = float(measured[row, column])
        pairs["stacked"].append((float(predicted[row, column]), truth))
        pairs["no_change"].append((0.0, truth))
        pairs["mean"].append((float(mean[column]), truth))
    return pairs


def _summary(pairs: list[tuple[float, float]]) -> dict[str, float]:
    values = np.asarray(pairs, dtype=float)
    predicted, measured = values[:, 0], values[:, 1]
    return {
        "n_targets": len(values),
        "mae": round(float(np.abs(predicted - measured).mean()), 4),
        "sign_right": round(float((np.sign(predicted) == np.sign(measured)).mean()), 3),
        "mean_predicted": round(float(predicted.mean()), 4),
        "mean_measured": round(float(measured.mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="split seeds 1..N")
    args = parser.parse_args()
    ps.settings.progress = False
    screens = gasperini_screens()
    out: dict[str, object] = {"benchmark": "targets"}
    if screens is None:
        out["skipped"] = "shared data absent (PERTURBSIM_SHARED_DATA)"
        print(json.dumps(out))
        return
    by_name = {name: screen for name, screen, _ in screens}
    start = time.perf_counter()
    for name, split in SCREENS:
        collected: dict[str, list[tuple[float, float]]] = {}
        for seed in range(1, args.seeds + 1):
            for model, pairs in _held_out_targets(by_name[name], split, seed).items():
                collected.setdefault(model, []).extend(pairs)
        out[f"{name}/{split}"] = {model: _summary(pairs) for model, pairs in collected.items()}
    out["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    run_main(main)
