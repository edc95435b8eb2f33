"""Monte Carlo coverage of perturbsim's calibrated and head-to-head intervals.

Generative model of one evaluation
----------------------------------
A population of conditions. Condition ``c`` has a baseline level ``B_c``, a true margin
``M_c > 0`` (replicate minus baseline at full depth, gamma-distributed, heterogeneous) and a
true gain ``G_c`` per model (model minus baseline). The estimand of a model's calibrated
score is the population ratio ``E[G] / E[M]``; that of a head-to-head difference
``(E[G_ref] - E[G_other]) / E[M]``.

One simulated evaluation: a fresh pool of ``ceil(pool_factor * n)`` conditions drawn from
the population; ``K`` seeds, each drawing ``n`` test conditions from the pool without
replacement (seeds overlap, as splits do). Per condition of the pool, ONE replicate value
``B_c + M_c + e_c`` shared by every seed (the split-half replicate is the same split in
every seed). Per (seed, condition) the baseline ``B_c + u_s + e_sc`` and each model
``B_c + G_c + v_s + e'_sc`` with their own noise (retrained per seed) and optional per-seed
shifts ``u_s``, ``v_s``. The metric, ``score_x``, is not registered in perturbsim's
``METRICS``: higher is better and the replicate enters as is (no full-depth mapping), so
its true value is exactly ``B_c + M_c``.

Two truths are scored: the population ratio (``pop``, the estimand), and the ratio of the
true means over the distinct conditions the evaluation actually tested (``sample``: what
the intervals could cover if conditions were fixed rather than sampled).

Usage
-----
    python benchmarks/bench_interval_coverage.py                  # every scenario, n=12 and 40
    python benchmarks/bench_interval_coverage.py --reps 300 --n 12 --scenarios a c
    PYTHONPATH=/path/to/other/src python benchmarks/bench_interval_coverage.py  # another version

One JSON line on stdout (the summary table's rows), the table itself on stderr; about 6
minutes for every scenario at 300 evaluations on one core.

The simulation's random numbers depend only on (--seed, n, scenario), not on the package,
so two versions of perturbsim are scored on the very same simulated evaluations (same
``mean_est`` and ``3.92*sd``; only the intervals differ).

Importable: ``run_scenario(name, n, reps, seed, result_factory=...)`` and
``coverage_table(...)``. ``result_factory(scores, settings)`` must return an object with
``calibrated()`` and ``head_to_head(reference)`` (default: ``perturbsim.tl.EvaluationResult``
from whatever perturbsim is first on ``sys.path``, looked up at call time).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
from _common import rounded, run_main

METRIC = "score_x"
SUBGROUP = "unseen_single"
BASELINE = "mean"
REPLICATE = "replicate"
REF, OTHER = "x", "y"
COLUMNS = ["model", "seed", "subgroup", "condition", "metric", "value"]


@dataclass(frozen=True)
class Scenario:
    """Parameters of the generative model (see the module docstring)."""

    name: str
    description: str
    # population of conditions
    mean_margin: float = 0.3  # E[M]
    cv_margin: float = 0.6  # coefficient of variation of M (gamma)
    sd_level: float = 0.1  # sd of the baseline level B_c
    # model x's true gain: G_c = gain_const + gain_slope * M_c + N(0, gain_sd)
    gain_const: float = 0.0
    gain_slope: float = 0.0
    gain_sd: float = 0.05
    # model y: G_y = G_x - delta (true gains differ by a constant)
    delta: float = 0.06
    # measurement / retraining noise
    sd_replicate: float = 0.1  # replicate noise per condition, shared by all seeds
    sd_baseline: float = 0.03  # baseline noise per (seed, condition)
    sd_model: float = 0.05  # model x noise per (seed, condition)
    sd_other: float = 0.02  # model y's own noise per (seed, condition), on top of x's
    shift_baseline: float = 0.0  # sd of a per-seed common shift of the baseline
    shift_model: float = 0.02  # sd of a per-seed common shift of model x (y shares it)
    shift_other: float = 0.0  # sd of y's own per-seed shift
    # design
    n_seeds: int = 5
    pool_factor: float = 1.5

    @property
    def mean_gain(self) -> float:
        return self.gain_const + self.gain_slope * self.mean_margin

    @property
    def true_calibrated(self) -> float:
        return self.mean_gain / self.mean_margin

    @property
    def true_difference(self) -> float:
        return self.delta / self.mean_margin


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "a",
            "noisy margins (replicate sd 0.2), model near baseline (c=0.1)",
            gain_const=0.03,
            sd_replicate=0.2,
        ),
        Scenario(
            "b",
            "no replicate noise, model near baseline (c=0.1)",
            gain_const=0.03,
            sd_replicate=0.0,
        ),
        Scenario(
            "c",
            "model follows the replicate, G=0.9M+N(0,.02) (c=0.9)",
            gain_slope=0.9,
            gain_sd=0.02,
        ),
        Scenario(
            "d",
            "model far beyond the replicate, G=3M+N(0,.02) (c=3)",
            gain_slope=3.0,
            gain_sd=0.02,
        ),
        Scenario(
            "e",
            "head-to-head, G_x=0.15+N(0,.05) (c=0.5), G_y=G_x-0.06 (diff 0.2)",
            gain_const=0.15,
            delta=0.06,
        ),
        Scenario(
            "e_big",
            "head-to-head, G_x=0.45+N(0,.05) (c=1.5), G_y=G_x-0.3 (diff 1.0)",
            gain_const=0.45,
            delta=0.3,
        ),
    )
}


def _margins(s: Scenario, size: int, rng: np.random.Generator) -> np.ndarray:
    shape = 1.0 / s.cv_margin**2
    return rng.gamma(shape, s.mean_margin / shape, size)


def simulate_scores(s: Scenario, n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    """One evaluation's tidy scores table, and its truths."""
    pool = math.ceil(s.pool_factor * n)
    level = rng.normal(0.3, s.sd_level, pool)
    margin = _margins(s, pool, rng)
    gain = s.gain_const + s.gain_slope * margin + rng.normal(0.0, s.gain_sd, pool)
    replicate = (
        level + margin + rng.normal(0.0, s.sd_replicate, pool)
        if s.sd_replicate
        else (level + margin)
    )
    names = np.array([f"c{i:03d}" for i in range(pool)])
    models, seeds, conditions, values = [], [], [], []
    tested = np.zeros(pool, bool)
    for seed in range(1, s.n_seeds + 1):
        idx = rng.choice(pool, n, replace=False)
        tested[idx] = True
        base = level[idx] + rng.normal(0, s.shift_baseline) + rng.normal(0, s.sd_baseline, n)
        x = level[idx] + gain[idx] + rng.normal(0, s.shift_model) + rng.normal(0, s.sd_model, n)
        y = x - s.delta + rng.normal(0, s.shift_other) + rng.normal(0, s.sd_other, n)
        for model, vals in (
            (BASELINE, base),
            (REF, x),
            (OTHER, y),
            (REPLICATE, replicate[idx]),
        ):
            models.append(np.full(n, model))
            seeds.append(np.full(n, seed))
            conditions.append(names[idx])
            values.append(vals)
    scores = pd.DataFrame(
        {
            "model": np.concatenate(models),
            "seed": np.concatenate(seeds),
            "subgroup": SUBGROUP,
            "condition": np.concatenate(conditions),
            "metric": METRIC,
            "value": np.concatenate(values),
        }
    )[COLUMNS]
    sample_margin = margin[tested].mean()
    truths = {
        "cal_pop": s.true_calibrated,
        "cal_sample": gain[tested].mean() / sample_margin,
        "h2h_pop": s.true_difference,
        "h2h_sample": s.delta / sample_margin,
    }
    return scores, truths


def default_result_factory(scores: pd.DataFrame, settings: dict) -> Any:
    """perturbsim's EvaluationResult, from whatever perturbsim is on sys.path."""
    from perturbsim.tl import EvaluationResult

    return EvaluationResult(
        scores=scores,
        coverage=pd.DataFrame(columns=["model", "subgroup"]),
        settings=settings,
    )


def one_evaluation(
    s: Scenario,
    n: int,
    rng: np.random.Generator,
    result_factory: Callable[[pd.DataFrame, dict], Any] = default_result_factory,
    head_to_head: bool = True,
) -> dict[str, float]:
    scores, truths = simulate_scores(s, n, rng)
    settings = {"models": [BASELINE, REF, OTHER, REPLICATE], "seeds": list(range(1, s.n_seeds + 1))}
    result = result_factory(scores, settings)
    row = dict(truths)
    cal = result.calibrated()
    pick = cal[(cal["model"] == REF) & (cal["metric"] == METRIC) & (cal["subgroup"] == SUBGROUP)]
    if len(pick) == 1:
        r = pick.iloc[0]
        row.update(cal_est=r["mean"], cal_low=r["ci_low"], cal_high=r["ci_high"])
    else:
        row.update(cal_est=np.nan, cal_low=np.nan, cal_high=np.nan)
    if head_to_head:
        h2h = result.head_to_head(REF)
        pick = h2h[(h2h["model"] == OTHER) & (h2h["metric"] == METRIC)]
        if len(pick) == 1:
            r = pick.iloc[0]
            row.update(h2h_est=r["mean"], h2h_low=r["ci_low"], h2h_high=r["ci_high"])
        else:
            row.update(h2h_est=np.nan, h2h_low=np.nan, h2h_high=np.nan)
    return row


def run_scenario(
    scenario: str | Scenario,
    n: int,
    reps: int = 300,
    seed: int = 0,
    result_factory: Callable[[pd.DataFrame, dict], Any] = default_result_factory,
    head_to_head: bool = True,
    **overrides: Any,
) -> pd.DataFrame:
    """``reps`` simulated evaluations of one scenario: one row each (estimates, bounds, truths)."""
    s = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    if overrides:
        s = replace(s, **overrides)
    rng = np.random.default_rng([seed, n, sum(map(ord, s.name))])
    rows = [one_evaluation(s, n, rng, result_factory, head_to_head) for _ in range(reps)]
    out = pd.DataFrame(rows)
    out.insert(0, "n", n)
    out.insert(0, "scenario", s.name)
    return out


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Coverage, widths and spread per scenario, n and quantity (cal, h2h)."""
    rows = []
    for (scenario, n), g in runs.groupby(["scenario", "n"], sort=False):
        for q in ("cal", "h2h"):
            if f"{q}_est" not in g:
                continue
            est, low, high = g[f"{q}_est"], g[f"{q}_low"], g[f"{q}_high"]
            ok = np.isfinite(est) & np.isfinite(low) & np.isfinite(high)
            truth = float(g[f"{q}_pop"].iloc[0])
            e, lo, hi = est[ok], low[ok], high[ok]
            sample = g.loc[ok, f"{q}_sample"]
            k = int(ok.sum())
            cover = float(((lo <= truth) & (truth <= hi)).mean()) if k else np.nan
            rows.append(
                {
                    "scen": scenario,
                    "n": n,
                    "what": q,
                    "reps": len(g),
                    "undef": int(len(g) - k),
                    "truth": truth,
                    "mean_est": float(e.mean()) if k else np.nan,
                    "cover_pop": cover,
                    "mc_se": math.sqrt(max(cover * (1 - cover), 1e-9) / k) if k else np.nan,
                    "cover_sample": float(((lo <= sample) & (sample <= hi)).mean())
                    if k
                    else np.nan,
                    "miss_lo": float((hi < truth).mean()) if k else np.nan,
                    "miss_hi": float((lo > truth).mean()) if k else np.nan,
                    "width": float((hi - lo).mean()) if k else np.nan,
                    "3.92*sd": float(2 * 1.96 * e.std(ddof=1)) if k > 1 else np.nan,
                    "3.92*rmse": float(2 * 1.96 * np.sqrt(((e - truth) ** 2).mean()))
                    if k
                    else np.nan,
                }
            )
    return pd.DataFrame(rows)


def coverage_table(
    scenarios: list[str] | None = None,
    ns: tuple[int, ...] = (12, 40),
    reps: int = 300,
    seed: int = 0,
    result_factory: Callable[[pd.DataFrame, dict], Any] = default_result_factory,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every (scenario, n): the raw runs and the summary table."""
    scenarios = scenarios or list(SCENARIOS)
    runs = pd.concat(
        [run_scenario(name, n, reps, seed, result_factory) for name in scenarios for n in ns],
        ignore_index=True,
    )
    return runs, summarise(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--n", nargs="*", type=int, default=[12, 40])
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", help="also write the raw runs to this CSV")
    args = parser.parse_args(argv)

    import perturbsim

    start = time.perf_counter()
    runs, table = coverage_table(args.scenarios, tuple(args.n), args.reps, args.seed)
    if args.csv:
        runs.to_csv(args.csv, index=False)
    seconds = time.perf_counter() - start
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"), file=sys.stderr)
    rows = [
        {k: (rounded(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
        for row in table.to_dict("records")
    ]
    print(
        json.dumps(
            {
                "benchmark": "interval_coverage",
                "perturbsim": perturbsim.__version__,
                "reps": args.reps,
                "seed": args.seed,
                "rows": rows,
                "wall_s": round(seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
