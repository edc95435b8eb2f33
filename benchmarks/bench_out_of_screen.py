"""Genes outside the screen: predicted from their GO terms alone, against the same genes inside it.

``linear_go`` and the default (``stacked``, through its ``linear_go`` part) cover every
GO-annotated gene: a gene the screen neither perturbed nor measured is placed among the
screen's genes by the GO terms it shares with them (a Nystrom extension of the GO spectral
embedding, ``models/_linear_go.py``). This benchmark measures how well such genes are
predicted on real and simulated data.

For each split seed (``simulation`` split) the screen's unseen genes are taken out of the
screen twice over:

- **in screen**: the models are fitted on the split as ``perturbsim evaluate`` fits them;
  the unseen genes' conditions are in the screen as test conditions (never trained on), so
  the GO graph holds them as nodes, and their own columns (expression, co-expression) are
  measured;
- **out of screen**: the same models, fitted on the same training and validation
  conditions of a copy of the screen from which every cell of a condition with an unseen
  gene and every unseen gene's column were removed: those genes are neither perturbed nor
  measured, and are placed by their GO terms only.

Both predict each unseen gene's single. Each prediction is scored against the gene's
measured change on the genes both copies measure, on its top-20 non-dropout DE genes with
its own target and the other held-out genes left out (the scoreboard's scores otherwise),
in Pearson delta and nMSE; beside it the ``mean`` baseline (the mean change of the
training perturbations, the scoreboard's 0).
Figures, on the genes every model predicts in and out of screen (a gene with no GO term
the models know is predicted by none out of screen): mean over seeds of each seed's mean
over genes, with the 95 % t-interval; and out of screen minus in screen, and out of
screen minus the mean, the same way (raw differences: higher Pearson is better, lower
nMSE is better).

Prints ONE JSON line. Usage: python benchmarks/bench_out_of_screen.py [--seeds 5]
[--skip-norman] [--sim-size small]
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
from _common import over_seeds, run_main

import perturbsim as ps
from perturbsim.models import takes_option
from perturbsim.pp import genes_of

MODELS = ("stacked", "linear_go", "mean")
METRICS = ("pearson_delta_de", "nmse_de")
N_DE = 20


def _interval(values: list[float]) -> list[float | None]:
    """Mean and 95 % t-interval over seeds, as ``[mean, low, high]``."""
    summary = over_seeds(values)
    return [summary["mean"], *summary["ci"]]


def _without_unseen_genes(work, plan: ps.pp.Split, unseen: set[str]):
    """``work`` without the cells of conditions with an unseen gene and their columns.

    The split keeps the same training and validation conditions.
    """
    conditions = work.obs["perturbsim_condition"].astype(str)
    dropped = {c for c in conditions.unique() if set(genes_of(c)) & unseen}
    cells = ~conditions.isin(dropped).to_numpy()
    genes = ~work.var_names.isin(sorted(unseen))
    reduced = work[cells, genes].copy()
    for key in [k for k in reduced.uns["perturbsim"] if k != "setup"]:
        del reduced.uns["perturbsim"][key]  # the statistics and DE of the full screen
    kept = [c for c in plan.test if c not in dropped]
    ps.pp.Split(
        kind=plan.kind,
        seed=plan.seed,
        train=plan.train,
        val=plan.val,
        test=kept,
        subgroups={
            g: [c for c in members if c not in dropped]
            for g, members in plan.subgroups.items()
            if any(c not in dropped for c in members)
        },
        val_subgroups=plan.val_subgroups,
        seen_genes=plan.seen_genes,
        excluded=plan.excluded,
    ).to_adata(reduced)
    return reduced


def _scores(model, singles: list[str], truth, de_genes, genes: list[str]) -> pd.DataFrame:
    """Scores of ``model``'s predictions of ``singles`` on ``genes`` (tidy)."""
    pred = model.predict(singles)
    pred = pred[:, pred.var_names.isin(genes)].copy()
    return ps.tl.score(pred, truth, de_genes=de_genes, metrics=list(METRICS))


def _seed(screen, seed: int, go) -> pd.DataFrame:
    """One split seed: every model in screen and out of screen, one row per gene and metric."""
    work = screen.copy()
    ps.pp.split(work, kind="simulation", seed=seed)
    ps.pp.pseudobulk(work)
    ps.pp.rank_de(work, n_genes=N_DE)
    plan = ps.pp.Split.from_adata(work)
    singles = list(plan.subgroups.get("unseen_single", []))
    unseen = {g for c in singles for g in genes_of(c)}
    reduced = _without_unseen_genes(work, plan, unseen)
    genes = list(map(str, reduced.var_names))
    de = ps.pp.DEGenes.from_adata(work)
    # ranked without the genes the out-of-screen copy lacks (its own target among them)
    removed = tuple(sorted(unseen))
    de_genes = {c: de.top_genes(c, non_dropout=True, exclude=removed) for c in singles}
    truth = ps.pp.PseudobulkStats.from_adata(work)
    rows = []
    for name in MODELS:
        options = {}
        if go is not None and takes_option(name, "go_annotations"):
            options["go_annotations"] = go
        for where, data in (("in_screen", work), ("out_of_screen", reduced)):
            model = ps.models.build_model(name, data, seed=0, **options).fit()
            covered = [c for c, ok in zip(singles, model.covers(singles), strict=True) if ok]
            table = _scores(model, covered, truth, de_genes, genes)
            rows.append(table.assign(model=name, where=where, seed=seed))
    return pd.concat(rows, ignore_index=True)


def _figures(screen, *, seeds: int, go=None) -> dict:
    """Every seed's scores, on the genes every model predicts both in and out of screen."""
    t0 = time.perf_counter()
    scores = pd.concat([_seed(screen, s, go) for s in range(1, seeds + 1)], ignore_index=True)
    wide = scores.pivot_table(
        index=["seed", "condition", "metric"], columns=["model", "where"], values="value"
    )
    # a gene counts only if every model scores it in and out of screen on every metric
    complete = wide.notna().all(axis=1).groupby(level=["seed", "condition"]).transform("all")
    wide = wide[complete]
    out: dict = {"wall_s": round(time.perf_counter() - t0, 1), "seeds": seeds}
    out["n_genes_per_seed"] = [
        int(wide.xs(s, level="seed").index.get_level_values("condition").nunique())
        if s in wide.index.get_level_values("seed")
        else 0
        for s in range(1, seeds + 1)
    ]
    out["n_unseen_genes_per_seed"] = scores.groupby("seed")["condition"].nunique().tolist()

    def over_seeds(values: pd.Series, metric: str) -> list[float | None]:
        by_seed = values.xs(metric, level="metric").groupby(level="seed").mean()
        return _interval(list(by_seed))

    for (model, where), values in wide.items():
        out.setdefault(model, {})[where] = {m: over_seeds(values, m) for m in METRICS}
    for model in ("stacked", "linear_go"):
        out[model]["out_minus_in"] = {
            m: over_seeds(wide[(model, "out_of_screen")] - wide[(model, "in_screen")], m)
            for m in METRICS
        }
        out[model]["out_minus_mean"] = {
            m: over_seeds(wide[(model, "out_of_screen")] - wide[("mean", "in_screen")], m)
            for m in METRICS
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sim-size", default="small", help="simulate() preset: small or norman")
    parser.add_argument("--skip-norman", action="store_true", help="no Norman subset")
    args = parser.parse_args()
    ps.settings.progress = False
    out: dict = {"bench": "out_of_screen"}
    if not args.skip_norman:
        out["norman_subset"] = _figures(ps.ds.norman2019_subset(), seeds=args.seeds)
    from perturbsim.ds._simulate import simulate

    sim = simulate(size=args.sim_size, seed=0)
    ps.pp.setup(sim, perturbation_key="condition", control="control")
    out[f"simulated_{args.sim_size}"] = _figures(
        sim, seeds=args.seeds, go=sim.uns["simulation"]["go"]
    )
    print(json.dumps(out))


if __name__ == "__main__":
    run_main(main)
