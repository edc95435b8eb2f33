"""The evaluation runner, its summary, its tables and the written report, on the tiny screen."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from scipy import stats as sps

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim._keys import DE, GRAM, PSEUDOBULK, SPLIT, SPLIT_UNS, SUBGROUP, UNS
from perturbsim._settings import each_warning_once
from perturbsim.models import Additive, TrainMean
from perturbsim.pp import genes_of
from perturbsim.tl import EvaluationResult, _evaluate, evaluate
from perturbsim.tl._intervals import mean_interval

MODELS = ("gears", "additive", "mean", "no_perturb")
TRAIN = {"gears": {"max_epochs": 3}}
SUBGROUPS = {"unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"}


@pytest.fixture(scope="module")
def adata(_tiny_cached):
    return _tiny_cached  # evaluate never writes into it (test_adata_left_untouched)


@pytest.fixture(scope="module")
def model_kwargs(_tiny_cached):
    return {"gears": {"go_annotations": _tiny_cached.uns["simulation"]["go"]}}


@pytest.fixture(scope="module")
def result(adata, model_kwargs) -> EvaluationResult:
    progress, ps.settings.progress = ps.settings.progress, False
    try:
        return evaluate(
            adata, models=MODELS, seeds=2, model_kwargs=model_kwargs, train_kwargs=TRAIN
        )
    finally:
        ps.settings.progress = progress


def _prepared(adata, seed: int):
    """The screen as evaluate prepares it for one seed, done by hand."""
    work = adata.copy()
    ps.pp.split(work, kind="simulation", seed=seed)
    ps.pp.pseudobulk(work)
    ps.pp.rank_de(work, n_genes=20)
    return work, ps.pp.Split.from_adata(work), ps.pp.PseudobulkStats.from_adata(work)


def test_tidy_table(result):
    scores = result.scores
    assert list(scores.columns) == ["model", "seed", "subgroup", "condition", "metric", "value"]
    assert set(scores["model"]) == {*MODELS, "replicate"}
    assert set(scores["seed"]) == {1, 2}
    assert set(scores["subgroup"]) == SUBGROUPS
    assert set(scores["metric"]) == set(ps.tl.METRICS)
    assert not scores.duplicated(["model", "seed", "condition", "metric"]).any()
    # every scored row of a model that predicts a change has a finite correlation
    gears = scores[(scores["model"] == "gears") & (scores["metric"] == "pearson_delta_de")]
    assert np.isfinite(gears["value"]).all()


def test_every_model_in_every_subgroup_it_covers(adata, result):
    scored = result.scores.groupby(["model", "seed", "subgroup"])["condition"].nunique()
    for row in result.coverage.itertuples():
        assert scored.get((row.model, row.seed, row.subgroup), 0) == row.n_covered
    covered_by_additive = 0
    for seed in (1, 2):
        _, plan, _ = _prepared(adata, seed)
        test = {c for members in plan.subgroups.values() for c in members}
        measured = [*plan.train, *plan.val]
        train_singles = {genes_of(c)[0] for c in measured if len(genes_of(c)) == 1}
        rows = result.scores[result.scores["seed"] == seed]
        for model in ("mean", "no_perturb"):
            assert set(rows.loc[rows["model"] == model, "condition"]) == test
        additive = set(rows.loc[rows["model"] == "additive", "condition"])
        assert additive == {c for c in test if set(genes_of(c)) <= train_singles}
        covered_by_additive += len(additive)
        cov = result.coverage[(result.coverage["seed"] == seed)]
        assert cov.groupby("model")["n_total"].sum().eq(len(test)).all()
    assert covered_by_additive  # some test pair has both singles in training
    # GEARS predicts every pair whose genes are GO-graph nodes: annotated, or trained on
    annotated = set(adata.uns["simulation"]["go"]["gene"])
    for seed in (1, 2):
        _, plan, _ = _prepared(adata, seed)
        known = annotated | {g for c in plan.train for g in genes_of(c)}
        pairs = [
            c for g, members in plan.subgroups.items() if g.startswith("combo") for c in members
        ]
        rows = result.scores[(result.scores["seed"] == seed) & (result.scores["model"] == "gears")]
        covered = set(rows["condition"]) & set(pairs)
        assert covered == {c for c in pairs if set(genes_of(c)) <= known}


def test_scores_match_a_hand_run(adata, result):
    """evaluate splits, then pseudobulks, ranks non-dropout DE genes and scores like by hand."""
    work, plan, stats = _prepared(adata, 1)
    test = [c for members in plan.subgroups.values() for c in members]
    de = ps.pp.DEGenes.from_adata(work)
    perturbed = [c for c in plan.train if genes_of(c)]
    reference = stats.mean[stats.index(perturbed)].mean(axis=0)
    pred = TrainMean(work).fit().predict(test)
    expected = ps.tl.score(
        pred,
        stats,
        de_genes={c: de.top_genes(c, non_dropout=True, exclude=genes_of(c)) for c in test},
        reference_mean=reference,
    )
    got = result.scores[(result.scores["model"] == "mean") & (result.scores["seed"] == 1)]
    merged = expected.merge(got, on=["condition", "metric"], suffixes=("_hand", ""))
    assert len(merged) == len(expected) == len(got)
    np.testing.assert_allclose(merged["value"], merged["value_hand"], rtol=1e-12, equal_nan=True)
    # a model of some test conditions is told apart from all of them, as the anchors are
    additive = Additive(work).fit()
    covered = [c for c, ok in zip(test, additive.covers(test), strict=True) if ok]
    assert 0 < len(covered) < len(test)
    expected = ps.tl.score(
        additive.predict(covered),
        stats,
        de_genes={c: de.top_genes(c, non_dropout=True, exclude=genes_of(c)) for c in covered},
        reference_mean=reference,
        comparison=test,
    )
    got = result.scores[(result.scores["model"] == "additive") & (result.scores["seed"] == 1)]
    merged = expected.merge(got, on=["condition", "metric"], suffixes=("_hand", ""))
    assert len(merged) == len(expected) == len(got)
    np.testing.assert_allclose(merged["value"], merged["value_hand"], rtol=1e-12, equal_nan=True)


def test_summary_means_and_intervals(result):
    summary = result.summary()
    assert list(summary.columns) == [
        "model",
        "subgroup",
        "metric",
        "mean",
        "std",
        "ci_low",
        "ci_high",
        "n_seeds",
        "n_conditions",
    ]
    scores = result.scores
    rows = scores[
        (scores["model"] == "mean")
        & (scores["subgroup"] == "combo_seen1")
        & (scores["metric"] == "pearson_delta_de")
    ]
    per_seed = rows.groupby("seed")["value"].mean().to_numpy()
    row = summary[
        (summary["model"] == "mean")
        & (summary["subgroup"] == "combo_seen1")
        & (summary["metric"] == "pearson_delta_de")
    ].iloc[0]
    assert row["n_seeds"] == 2
    assert row["mean"] == pytest.approx(per_seed.mean())
    assert row["std"] == pytest.approx(per_seed.std(ddof=1))
    half = sps.t.ppf(0.975, 1) * per_seed.std(ddof=1) / np.sqrt(2)
    assert row["ci_high"] - row["mean"] == pytest.approx(half)
    assert row["mean"] - row["ci_low"] == pytest.approx(half)
    # a correlation with no_perturb's constant change is undefined: NaN, no seeds
    nan = summary[(summary["model"] == "no_perturb") & (summary["metric"] == "pearson_delta")]
    assert nan["mean"].isna().all() and (nan["n_seeds"] == 0).all()
    assert (nan["n_conditions"] == 0).all()  # counts finite values, not rows
    per_seed = result.per_seed()
    counted = scores.groupby(["model", "seed", "subgroup", "metric"])["value"].count()
    merged = per_seed.join(counted.rename("finite"), on=["model", "seed", "subgroup", "metric"])
    assert (merged["n_conditions"] == merged["finite"]).all()
    # nmse of no_perturb is 1 by construction
    nmse = summary[(summary["model"] == "no_perturb") & (summary["metric"] == "nmse_de")]
    np.testing.assert_allclose(nmse["mean"], 1.0)


def test_mean_interval_is_the_mean_of_the_finite_values_with_their_t_interval():
    # a skewed three (mean 3, median 2), and values that are not finite
    values = np.array([1.0, 2.0, 6.0, np.nan, np.inf, -np.inf])
    finite = values[:3]
    got = mean_interval(values, 0.9)
    half = sps.t.ppf(0.95, 2) * finite.std(ddof=1) / np.sqrt(3)
    assert got.n == 3
    assert got.mean == pytest.approx(3.0)
    assert got.std == pytest.approx(finite.std(ddof=1))
    assert (got.low, got.high) == pytest.approx((3.0 - half, 3.0 + half))


def test_a_result_prints_as_one_line_saying_what_it_holds(result):
    text = repr(result)
    assert text.startswith(f"EvaluationResult: {len(result.models)} models (")
    assert "seeds [1, 2]" in text and "\n" not in text and "DataFrame" not in text


def test_summary_intervals_stay_within_what_each_metric_can_take(result):
    summary = result.summary().dropna(subset=["ci_low"])
    half = sps.t.ppf(0.975, summary["n_seeds"] - 1) * summary["std"] / np.sqrt(summary["n_seeds"])
    for metric, (low, high) in [("pearson_delta_de", (-1, 1)), ("nmse_de", (0, np.inf))]:
        rows = summary["metric"] == metric
        assert ((summary["mean"] - half)[rows] < low).any() or (
            (summary["mean"] + half)[rows] > high
        ).any()  # two seeds: some t-interval reaches past the range
        assert (summary.loc[rows, "ci_low"] >= low).all()
        assert (summary.loc[rows, "ci_high"] <= high).all()


def test_same_seed_same_scores_and_single_seed_interval(adata, model_kwargs, result):
    again = evaluate(adata, models=MODELS, seeds=[1], model_kwargs=model_kwargs, train_kwargs=TRAIN)
    first = result.scores[result.scores["seed"] == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.scores, first)
    summary = again.summary()
    assert (summary.loc[summary["mean"].notna(), "n_seeds"] == 1).all()
    assert summary["ci_low"].isna().all() and summary["ci_high"].isna().all()


def test_the_calibration_refuses_a_baseline_that_is_no_model_of_it(result):
    for baseline in ("bogus", "replicate"):
        with pytest.raises(PerturbsimError, match=f"baseline '{baseline}' must be a model of"):
            result.calibrated(baseline=baseline)
        with pytest.raises(PerturbsimError, match=f"baseline '{baseline}' must be a model of"):
            result.head_to_head(result.models[0], baseline=baseline)


def test_adata_left_untouched(adata, result):
    assert SPLIT not in adata.obs and SUBGROUP not in adata.obs
    assert GRAM not in adata.varp
    assert not {SPLIT_UNS, PSEUDOBULK, DE} & set(adata.uns[UNS])


def test_histories_and_timings(result):
    history = result.histories
    assert list(history.columns[:5]) == ["model", "seed", "member", "epoch", "train_loss"]
    assert {"val_loss", "lr"} <= set(history.columns)
    assert set(history["model"]) == {"gears"}
    assert set(history["seed"]) == {1, 2}
    assert set(history["member"]) == {0}
    assert history.groupby("seed")["epoch"].max().eq(3).all()
    assert len(result.timings) == len(MODELS) * 2
    assert (result.timings[["fit_s", "predict_s"]] >= 0).all().all()


def test_changes_are_on_de_genes(result):
    changes = result.changes
    one = changes[(changes["model"] == "no_perturb") & (changes["seed"] == 1)]
    assert (one["predicted"] == 0).all()
    assert one.groupby("condition").size().le(20).all()
    assert one["measured"].abs().max() > 0.1


def test_catalogue_models_get_the_split_seed(adata, monkeypatch):
    built = []

    def spy(name, screen, **options):
        built.append((name, options))
        return ps.models.build_model(name, screen, **options)

    monkeypatch.setattr(_evaluate, "build_model", spy)
    evaluate(
        adata,
        models=["mean", "linear"],
        seeds=[3, 4],
        model_kwargs={"linear": {"n_components": 2, "seed": 7}},
    )
    assert built == [
        ("mean", {"seed": 3}),
        ("linear", {"seed": 7, "n_components": 2}),
        ("mean", {"seed": 4}),
        ("linear", {"seed": 7, "n_components": 2}),
    ]


def test_write_round_trips(result, tmp_path):
    out = tmp_path / "tables"
    written = result.write(out)
    tables = {
        "scores.csv": result.scores,
        "summary.csv": result.summary(),
        "calibrated.csv": result.calibrated(),
        "per_seed.csv": result.per_seed(),
        "coverage.csv": result.coverage,
        "changes.csv": result.changes,
        "timings.csv": result.timings,
        "history.csv": result.histories,
        "gi_precision.csv": result.gi,
        "gi_summary.csv": result.gi_summary(),
    }
    assert set(written) == {*tables, "settings.json"}  # no failures.csv: nothing failed
    assert sorted(p.name for p in out.iterdir()) == sorted(written)  # no temporary files
    for name, frame in tables.items():
        assert written[name] == out / name
        pd.testing.assert_frame_equal(pd.read_csv(out / name), frame, check_dtype=False)
    settings = json.loads((out / "settings.json").read_text())
    assert settings == result.settings
    assert settings["models"] == [*MODELS, "replicate"] and settings["seeds"] == [1, 2]
    (tmp_path / "file").write_text("")
    with pytest.raises(ps.PerturbsimError, match="'.*file' is a file or a link, not a folder"):
        result.write(tmp_path / "file")


def test_results_replace_only_earlier_results_and_only_when_told(result, tmp_path):
    out = tmp_path / "report"
    result.write(out)  # earlier results: tables and settings.json (a report adds plots)
    (out / "history_gears.png").write_bytes(b"an earlier run's plot")
    with pytest.raises(ps.PerturbsimError, match="already exists; pass overwrite=True"):
        ps.io.write_report(result, out)
    with pytest.raises(ps.PerturbsimError, match="already exists; pass overwrite=True"):
        result.write(out)
    written = ps.io.write_report(result, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(written)  # the stale plot is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left
    (out / "notes.txt").write_text("mine")  # not a result's file: never removed
    with pytest.raises(
        ps.PerturbsimError, match="not a folder of earlier results.*holds 'notes.txt'"
    ):
        result.write(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_the_report_names_every_table_it_writes(result, tmp_path):
    written = ps.io.write_report(result, tmp_path / "report")
    files = (tmp_path / "report" / "report.md").read_text().split("## Files")[1]
    tables = sorted(name for name in map(str, written) if name.endswith(".csv"))
    assert "calibrated.csv" in tables
    assert [t for t in tables if f"`{t}`" not in files] == []


def test_results_go_into_the_folder_itself(result, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2770)  # a group folder: kept as it is, not replaced by a new one
    (shared / ".perturbsim-staging-x1").mkdir()  # left by a killed run
    written = result.write(shared)
    assert shared.stat().st_mode & 0o7777 == 0o2770
    assert sorted(p.name for p in shared.iterdir()) == sorted(written)
    empty = tmp_path / "here"
    empty.mkdir()
    monkeypatch.chdir(empty)
    result.write(".")  # an empty working folder
    assert (empty / "settings.json").is_file() and Path.cwd() == empty
    with pytest.raises(ps.PerturbsimError, match="never the working folder"):
        result.write(".", overwrite=True)


def test_write_report(result, tmp_path):
    out = tmp_path / "out"
    written = ps.io.write_report(result, out)
    for name in (
        "scores.csv",
        "summary.csv",
        "coverage.csv",
        "report.md",
        "changes.csv",
        "settings.json",
    ):
        assert (out / name).is_file()
    assert not list(out.glob(".*")), "temporary files left behind"
    pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), result.scores, check_dtype=False)
    assert len(pd.read_csv(out / "summary.csv")) == len(result.summary())

    report = (out / "report.md").read_text()
    for model in MODELS:
        assert f"`{model}`" in report
    for group in SUBGROUPS:
        assert group in report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    pngs = {p.name for p in out.glob("*.png")}
    assert set(links) == pngs
    assert {f"bars_{m}.png" for m in ps.tl.METRICS} <= pngs
    assert any(p.startswith("predicted_vs_true_") for p in pngs)
    assert "history_gears.png" in pngs
    for name in pngs:
        image = imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert written[name] == out / name
    # the additive model covers no unseen single: its cell says so
    row = next(line for line in report.splitlines() if line.startswith("| unseen_single"))
    assert "–" in row
    # a value of some of a subgroup's conditions says how many, as the HTML page does
    table = result.coverage_table()
    partial = table[(table["n_covered"] > 0) & (table["n_covered"] < table["n_total"])]
    assert len(partial)
    for row in partial.itertuples():
        assert f"({row.n_covered}/{row.n_total})" in report


def test_fit_errors_name_model_and_seed(adata):
    with pytest.raises(ps.PerturbsimError, match=r"model 'broken' failed to fit on split seed 3"):
        evaluate(
            adata, models={"broken": TrainMean}, seeds=[3], train_kwargs={"broken": {"bogus": 1}}
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": ["gears", "nope"]}, "unknown model 'nope'"),
        # a mistyped name first, not the options it leaves unexplained
        ({"models": ["gaers"], "train_kwargs": {"gears": {}}}, "unknown model 'gaers'"),
        ({"models": []}, "no models to evaluate"),
        ({"models": ["mean", ps.TrainMean]}, "models takes catalogue names .* the class TrainMean"),
        ({"models": ps.TrainMean}, "models takes catalogue names .* the class TrainMean"),
        ({"models": ["mean", "mean"]}, "models repeat"),
        ({"models": ["mean"], "seeds": 0}, "seeds must be a whole number >= 1, got 0"),
        (
            {"models": ["mean"], "seeds": [1, None]},
            r"seeds must be whole numbers >= 0 and < 2\*\*32, got None in",
        ),
        ({"models": ["mean"], "metrics": []}, "metrics must name at least one metric"),
        ({"models": ["mean"], "n_de": 0}, "n_de must be a whole number >= 1, got 0"),
        ({"models": ["mean"], "train_kwargs": {"gears": {}}}, "train_kwargs names models"),
        ({"models": ["mean"], "model_kwargs": {"gears": {}}}, "model_kwargs names models"),
        ({"models": ["mean"], "metrics": ["bogus"]}, "unknown metric 'bogus'"),
        ({"models": ["mean"], "metrics": ["mse", "mse"]}, "metrics name 'mse' more than once"),
        (
            {"models": ["mean"], "metrics": "mse"},
            r"metrics must be a list of metric names \(None: all\), got the string",
        ),
        ({"models": ["mean"], "on_error": "ignore"}, "on_error must be"),
        # refused before any split is fitted, whatever on_error
        (
            {
                "models": ["additive"],
                "model_kwargs": {"additive": {"bogus": 1}},
                "on_error": "skip",
            },
            "model 'additive' has no option 'bogus'",
        ),
        (
            {"models": ["mean"], "train_kwargs": {"mean": {"max_epoch": 5}}},
            "model 'mean' has no fit option 'max_epoch' \\(its fit options: none\\)",
        ),
        ({"models": {"x": 3}, "on_error": "skip"}, r"models\['x'\] must be a factory"),
        (
            {"models": {"replicate": ps.TrainMean}},
            "model name 'replicate' is a row of the evaluation's own",
        ),
        ({"models": ["mean"], "split": "bogus"}, r"split must be one of \['simulation', 'single'"),
    ],
)
def test_bad_arguments(adata, kwargs, message):
    with pytest.raises(ps.PerturbsimError, match=message):
        evaluate(adata, **kwargs)


def test_metric_subset_and_model_kwargs(norman):
    result = evaluate(
        norman,
        models="linear, mean",
        seeds=[1],
        metrics=["mse", "nmse_de"],
        model_kwargs={"linear": {"n_components": 3}},
    )
    assert set(result.scores["metric"]) == {"mse", "nmse_de"}
    # most CRISPRa targets of the Norman screen are not measured: linear cannot embed them
    linear = result.coverage[result.coverage["model"] == "linear"]
    assert linear["n_covered"].sum() < linear["n_total"].sum()


def test_skip_failed_runs(adata, tmp_path):
    result = evaluate(
        adata,
        models={"broken": TrainMean, "mean": TrainMean},
        seeds=[1, 2],
        train_kwargs={"broken": {"bogus": 1}},
        on_error="skip",
    )
    assert set(result.scores["model"]) == {"mean", "replicate"}
    assert list(result.failures["model"]) == ["broken", "broken"]
    assert list(result.failures["stage"]) == ["fit", "fit"]
    assert result.failures["error"].str.contains("bogus").all()
    ps.io.write_report(result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "Failed runs" in report and "`broken`" in report
    assert (tmp_path / "failures.csv").is_file()


class _MultiLineFailure(TrainMean):
    """The mean baseline failing to predict with a library's message of several lines."""

    def _predict_change(self, sets):
        raise RuntimeError("CUDA error: out of memory\nCompile with TORCH_USE_CUDA_DSA to debug")


def test_a_failure_of_several_lines_is_recorded_as_its_first(adata, tmp_path):
    result = evaluate(adata, models={"oom": _MultiLineFailure}, seeds=[1], on_error="skip")
    assert result.failures["error"].tolist() == ["RuntimeError: CUDA error: out of memory"]
    ps.io.write_report(result, tmp_path)  # a row of the report's table each, unbroken
    report = (tmp_path / "report.md").read_text()
    failed = report[report.index("Failed runs") :].splitlines()
    row = next(i for i, line in enumerate(failed) if line.startswith("| `oom` | 1 | predict"))
    assert failed[row].endswith("out of memory |") and not failed[row + 1].startswith("Compile")
    with pytest.raises(
        ps.PerturbsimError,
        match=r"predict on split seed 1: RuntimeError: CUDA error: out of memory$",
    ):
        evaluate(adata, models={"oom": _MultiLineFailure}, seeds=[1])


class _NonFiniteMean(TrainMean):
    """The mean baseline with one gene's prediction NaN: a prediction that cannot be scored.

    Without a name of its own it replaces no model of the catalogue (``"mean"`` stays).
    """

    def _predict_change(self, sets):
        change, variance = super()._predict_change(sets)
        change = change.copy()
        change[:, 0] = np.nan
        return change, variance


def test_the_changes_table_reproduces_the_direction_scores_of_models_and_replicate(adata):
    result = evaluate(adata, models=["mean"], seeds=[1], gi=False, metrics=["direction_error_de"])
    changes = result.changes.copy()
    changes["wrong"] = np.sign(changes["predicted"]) != np.sign(changes["measured"])
    from_changes = changes.groupby(["model", "condition"])["wrong"].mean()
    scored = result.scores.set_index(["model", "condition"])["value"]
    assert set(from_changes.index.get_level_values("model")) == {"mean", "replicate"}
    np.testing.assert_allclose(
        from_changes.sort_index(), scored.loc[from_changes.index].sort_index()
    )


def test_a_prediction_that_cannot_be_scored_is_a_failed_run_too(adata):
    assert ps.models.MODEL_REGISTRY["mean"] is TrainMean
    models = {"mean": TrainMean, "nan": _NonFiniteMean}
    result = evaluate(adata, models=models, seeds=[1], on_error="skip", gi=False)
    assert set(result.scores["model"]) == {"mean", "replicate"}
    assert result.failures[["model", "stage"]].values.tolist() == [["nan", "score"]]
    with pytest.raises(ps.PerturbsimError, match="^model 'nan' failed to score on split seed 1"):
        evaluate(adata, models=models, seeds=[1], gi=False)


def _gi_summary_of(precision: list[float], r2: list[float]) -> pd.DataFrame:
    """``gi_summary()`` by metric of three seeds' synergy precision and R² (the rest fixed)."""
    gi = pd.DataFrame(
        {
            "model": "stacked",
            "seed": [1, 2, 3],
            "subtype": "synergy",
            "n_pairs": 10,
            "precision_at_k": precision,
            "random_precision": [0.5, 0.6, 0.7],
            "top_k_accuracy": [0.0, 0.1, 0.0],
            "r2": r2,
        }
    )
    result = EvaluationResult(scores=pd.DataFrame(), coverage=pd.DataFrame(), gi=gi)
    return result.gi_summary().set_index("metric")


def test_interaction_ranking_intervals_stay_inside_what_precision_can_take():
    """Precision 0.9, 1, 1 over three seeds: the t-interval would pass 1; it is clipped."""
    summary = _gi_summary_of([0.9, 1.0, 1.0], [0.9, 1.0, 0.95])
    half = sps.t.ppf(0.975, 2) * np.std([0.9, 1.0, 1.0], ddof=1) / np.sqrt(3)
    precision = summary.loc["precision_at_k"]
    assert precision["ci_high"] == 1.0 and precision["mean"] + half > 1.0
    assert precision["ci_low"] == pytest.approx(precision["mean"] - half)
    assert summary.loc["top_k_accuracy", "ci_low"] == 0.0
    assert summary.loc["r2", "ci_high"] == 1.0
    assert summary.loc["random_precision", "ci_high"] < 1.0  # far from the bounds: untouched


def test_interaction_ranking_r2_interval_may_go_below_zero():
    """R² worse than the mean's (negative) is no bound: its interval is not clipped at 0."""
    r2 = [-0.4, -0.1, -0.25]
    row = _gi_summary_of([0.5, 0.6, 0.4], r2).loc["r2"]
    half = sps.t.ppf(0.975, 2) * np.std(r2, ddof=1) / np.sqrt(3)
    assert row["mean"] == pytest.approx(np.mean(r2))
    expected = (np.mean(r2) - half, np.mean(r2) + half)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(expected)


def test_a_model_that_predicts_no_test_condition_is_named(norman, caplog):
    with caplog.at_level("WARNING", logger="perturbsim.tl._evaluate"):
        result = ps.tl.evaluate(norman, models=["linear", "mean"], split="combo", seeds=1)
    assert "linear can predict none of the" in caplog.text
    assert result.coverage.set_index("model").loc["linear", "n_covered"].sum() == 0


def test_held_out_predictions_are_not_warned_of_as_unsupported(norman, caplog):
    with caplog.at_level("WARNING", logger="perturbsim"):
        result = ps.tl.evaluate(norman, models=["stacked_baseline"], seeds=1, gi=False)
    # the split holds out genes of no measured GO neighbour: scored, as the benchmark asks
    assert result.scores["model"].eq("stacked_baseline").any()
    assert "neither measured" not in caplog.text


def test_each_warning_is_shown_once_across_the_seeds(norman, caplog):
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.tl.evaluate(norman, models=["linear", "mean"], split="simulation", seeds=3)
    warned = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned and len(warned) == len(set(warned))
    # outside an evaluation the same warning is logged every time, and the block lets
    # messages below WARNING through every time
    logger = logging.getLogger("perturbsim.models._linear")
    caplog.clear()
    with caplog.at_level("INFO", logger="perturbsim"):
        with each_warning_once():
            for _ in range(2):
                logger.warning("the same warning")
                logger.info("the same note")
        logger.warning("the same warning")
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("the same warning") == 2 and messages.count("the same note") == 2


def test_calibration_without_its_anchor_says_so(caplog):
    from perturbsim.tl._result import EvaluationResult

    scores = pd.DataFrame(
        [
            ("additive", 1, "combo_seen2", "A+B", "mse", 0.1),
            ("replicate", 1, "combo_seen2", "A+B", "mse", 0.05),
        ],
        columns=["model", "seed", "subgroup", "condition", "metric", "value"],
    )
    result = EvaluationResult(
        scores=scores,
        coverage=pd.DataFrame(columns=["model", "subgroup"]),
        settings={"models": ["additive", "replicate"]},
    )
    with caplog.at_level("WARNING", logger="perturbsim"):
        assert result.calibrated().empty
    assert "no calibrated scores: the evaluation has no 'mean' (evaluate with 'mean'" in caplog.text


def test_a_model_that_leaves_out_a_condition_it_covers_fails_to_predict(tiny):
    class DropsOne(ps.models.TrainMean):
        def predict(self, perturbations, **kwargs):
            return super().predict(perturbations, **kwargs)[1:].copy()

    result = ps.tl.evaluate(
        tiny,
        models={"drops": DropsOne, "mean": ps.models.TrainMean},
        seeds=1,
        gi=False,
        on_error="skip",
    )
    assert list(result.failures["stage"]) == ["predict"]
    assert "conditions asked, which it says it covers; missing:" in result.failures["error"][0]
    assert set(result.scores["model"]) == {"mean", "replicate"}


def test_an_infinite_score_is_left_out_of_a_seed_s_mean_as_a_nan_is():
    scores = pd.DataFrame(
        {
            "model": "m",
            "seed": 1,
            "subgroup": "unseen_single",
            "condition": ["a", "b", "c", "d"],
            "metric": "custom",  # a registered metric of one's own may divide by zero
            "value": [1.0, 2.0, np.inf, np.nan],
        }
    )
    result = EvaluationResult(
        scores=scores, coverage=pd.DataFrame({"model": ["m"], "subgroup": ["unseen_single"]})
    )
    row = result.per_seed().iloc[0]
    assert row["value"] == 1.5 and row["n_conditions"] == 2
