"""Can a pair's two singles rank its interaction? The simulator's truth against the role fit.

A diagnosis for issue 14's "interactions, not just means": the default ranks suppression no
better than chance on the Norman-sized screen. On the simulated Norman-sized screen
(``--sim-seed``), for 5 ``combo`` splits (seeds 1-5: every single of the screen in
training, half of its pairs held out), each test pair of two measured singles is ranked for
two subtypes by one number, the cosine similarity of its two singles' changes (on the genes
above Norman's abundance threshold, 0.5, in the truth's control, the pair's targets left
out), in the direction the role coefficients assume (:mod:`perturbsim.models._pair_roles`):
alike singles buffer each other (suppression: highest cosine first), unlike ones add or
more (synergy: lowest first). Rows:

- ``cosine_truth``: the cosine of the simulator's noiseless singles: whether the screen's
  interactions can be told from its singles at all;
- ``cosine_measured``: the cosine of the measured singles (every cell of the screen): the
  same, at the screen's depth;
- ``interaction``: the measured singles combined by the role coefficients fitted on the
  split's training pairs (:class:`perturbsim.models.PairInteraction`), ranked by the
  magnitude of its predicted pairs' :func:`perturbsim.tl.gi_scores`, as the default ranks
  its pairs of measured singles; with whether its fit passed the held-out bar
  (``roles_fitted``: the share of splits) and the held-out gain of the fits that passed;
- ``random``: a random ranking's expectation (the subtype's prevalence among the pairs).

The truth's subtypes are those of :func:`perturbsim.tl.gi_scores` on the noiseless
profiles (:func:`perturbsim.tl.truth_profiles`), GEARS's rules. Precision@10, mean and 95 %
t-interval over the splits. Prints ONE JSON line.

Usage: python benchmarks/bench_gi_singles.py [--sim-seed 1]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from _common import run_main
from bench_gi_precision import ABUNDANCE, K, _measured_profiles, _pair_labels, _summary

import perturbsim as ps
from perturbsim.pp._gi import is_scored
from perturbsim.tl._gi_precision import _expected_hits

SPLIT_SEEDS = (1, 2, 3, 4, 5)
RANKED = {"suppression": 1.0, "synergy": -1.0}
"""Subtype -> the sign of the cosine its ranking puts first (alike singles buffer)."""


def _cosines(delta: pd.DataFrame, pairs: list[str], abundant: np.ndarray) -> np.ndarray:
    """Cosine of each pair's two singles in ``delta`` (rows: conditions), targets left out."""
    values = []
    for pair in pairs:
        a, b = ps.pp.genes_of(pair)
        keep = abundant & ~delta.columns.isin([a, b])
        x, y = delta.loc[a].to_numpy()[keep], delta.loc[b].to_numpy()[keep]
        values.append(float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))))
    return np.array(values)


def _precision(strength: np.ndarray, member: np.ndarray) -> float:
    places = min(K, len(member))
    return _expected_hits(strength, member, places) / places


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-seed", type=int, default=1, help="the simulated screen's seed")
    args = parser.parse_args()
    ps.settings.progress = False
    start = time.perf_counter()
    adata = ps.ds.simulate(size="norman", seed=args.sim_seed)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    truth = ps.tl.truth_profiles(adata)
    abundant = np.asarray(truth.X[0]).ravel() > ABUNDANCE
    genes = list(truth.var_names[abundant])
    deltas = {
        "cosine_truth": truth.to_df(layer="delta"),
        "cosine_measured": _measured_profiles(adata).to_df(layer="delta"),
    }
    rows: list[dict[str, object]] = []
    for seed in SPLIT_SEEDS:
        split = ps.pp.split(adata, kind="combo", seed=seed, copy=True)
        model = ps.models.PairInteraction(split, seed=seed).fit()
        tests = _pair_labels([str(c) for c in split.uns["perturbsim"]["split"]["test"]])
        pairs = [p for p, ok in zip(tests, model.covers(tests), strict=True) if ok]
        singles = sorted({g for p in pairs for g in ps.pp.genes_of(p)})
        predicted = ps.tl.gi_scores(
            model.predict(singles + pairs), genes=genes, seed=0, unsupported=()
        )  # every pair it covers, its singles guessed generically or not
        true_scores = ps.tl.gi_scores(truth, pairs=pairs, genes=genes, seed=0)
        both = predicted.index[is_scored(predicted)].intersection(
            true_scores.index[is_scored(true_scores)]
        )
        scored = [p for p in pairs if p in both]
        for subtype, sign in RANKED.items():
            member = true_scores.loc[scored, f"is_{subtype}"].to_numpy(bool)
            row = {"seed": seed, "subtype": subtype, "n_pairs": len(scored)}
            row["n_true"] = int(member.sum())
            row["random"] = float(member.mean())
            for name, delta in deltas.items():
                row[name] = _precision(sign * _cosines(delta, scored, abundant), member)
            strength, _ = ps.tl.GIRules().strength(predicted.loc[scored], subtype)
            row["interaction"] = _precision(strength.to_numpy(float), member)
            row["roles_fitted"] = not model.roles.is_additive
            row["held_out_gain"] = model.roles.loo_gain
            rows.append(row)
    table = pd.DataFrame(rows)
    by_subtype = {
        subtype: {
            column: _summary(part[column].astype(float).tolist())
            for column in ("n_pairs", "n_true", "random", *deltas, "interaction")
        }
        for subtype, part in table.groupby("subtype", sort=False)
    }
    fits = table.drop_duplicates("seed")
    print(
        json.dumps(
            {
                "benchmark": "gi_singles",
                "screen": f"simulate(size='norman', seed={args.sim_seed})",
                "split": "combo",
                "split_seeds": list(SPLIT_SEEDS),
                "k": K,
                "genes_fitted": len(genes),
                "precision_at_k": by_subtype,
                "roles_fitted": float(fits["roles_fitted"].mean()),
                "held_out_gain_when_fitted": _summary(
                    fits.loc[fits["roles_fitted"], "held_out_gain"].tolist()
                ),
                "total_s": round(time.perf_counter() - start, 1),
            }
        )
    )


if __name__ == "__main__":
    run_main(main)
