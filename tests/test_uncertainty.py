"""Uncertainty that means something: the default's error model, flags, and its evaluation."""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import replace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import point_stats

import perturbsim as ps
from perturbsim.cli import main
from perturbsim.graphs import GeneGraph
from perturbsim.models._data import ScreenData
from perturbsim.models._error_model import (
    MIN_CONDITIONS,
    ErrorScale,
    error_ratio,
    fit_error_scale,
    fit_error_scales,
    gene_scale,
)
from perturbsim.pp import PseudobulkStats
from perturbsim.tl._uncertainty import (
    LEVELS,
    SUMMARY_METRICS,
    UNCERTAINTY_COLUMNS,
    _spearman,
    calibration_curve,
    inside_column,
    uncertainty_per_seed,
    uncertainty_table,
    within_subgroups,
)


def test_support_follows_edges_into_a_gene_from_known_genes():
    # B kept A (A -> B) and C kept B: B is tied to the known A, C only to the unknown B
    graph = GeneGraph(nodes=["A", "B", "C"], src=[0, 1], dst=[1, 2], weight=[0.5, 0.9])
    np.testing.assert_allclose(graph.support(["C", "B", "A"], known={"A"}), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(graph.support(["C"], known={"A", "B"}), [0.9])


def test_error_scale_keeps_a_falling_slope_only():
    support = np.linspace(0, 1, 8)
    falling = fit_error_scale(1.0 - 0.6 * support, support)
    assert falling.intercept == pytest.approx(1.0) and falling.slope == pytest.approx(0.6)
    assert falling.ratio(np.array([0.0, 1.0])).tolist() == pytest.approx([1.0, 0.4])
    rising = fit_error_scale(0.5 + 0.3 * support, support)
    assert rising.slope == 0.0 and rising.intercept == pytest.approx(0.65)
    assert fit_error_scale(np.ones(MIN_CONDITIONS - 1), support[:2]) == ErrorScale()
    # never taken as exact: a steep fit stops at the floor
    assert ErrorScale(1.0, 2.0, 5).ratio(np.array([1.0]))[0] > 0


def test_an_error_scale_is_not_extrapolated_past_the_supports_that_fitted_it():
    support = np.linspace(0.5, 0.7, 6)
    fitted = fit_error_scale(6.0 - 8.0 * support, support)  # steep, fitted near 0.6
    assert fitted.support_range == pytest.approx((0.5, 0.7))
    # read at 0 the line would give 6.0 and at 1 the floor; it stops at the supports it saw
    np.testing.assert_allclose(fitted.ratio(np.array([0.0, 0.6, 1.0])), [2.0, 1.2, 0.4])
    # the range is saved beside the fields earlier releases read, which it would break
    assert set(fitted.to_dict()) == {"intercept", "slope", "n_conditions"}
    assert ErrorScale.from_dict(fitted.to_dict(), support_range=[0.5, 0.7]) == fitted
    # files saved before the range was kept load as they were fitted: extrapolated
    assert ErrorScale.from_dict(fitted.to_dict()).ratio(np.array([0.0]))[0] == pytest.approx(6.0)
    assert ErrorScale.from_dict(fitted.to_dict(), pooled=True).pooled


def test_an_error_slope_is_shrunk_by_its_noise():
    support = np.linspace(0.0, 0.6, 8)
    line = 1.0 - 0.5 * support
    assert fit_error_scale(line, support).slope == pytest.approx(0.5)  # no noise: whole
    wobble = 0.05 * np.array([1, -1, -1, 1] * 2)  # leaves the least-squares line as it is
    shrunk = fit_error_scale(line + wobble, support)
    assert 0.0 < shrunk.slope < 0.5  # some noise: part of it
    # the shrunk line passes through the conditions' mean support and mean ratio
    assert shrunk.ratio(np.array([support.mean()]))[0] == pytest.approx((line + wobble).mean())
    noisy = fit_error_scale(line + 10 * wobble, support)
    assert noisy.slope == 0.0 and noisy.intercept == pytest.approx((line + 10 * wobble).mean())
    # four conditions leave too few degrees of freedom to gauge the slope's noise: flat;
    # five are the fewest that keep one
    assert fit_error_scale(line[:4], support[:4]).slope == 0.0
    assert fit_error_scale(line[:5], support[:5]).slope == pytest.approx(0.5)


@pytest.fixture(scope="module")
def fitted_norman():
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, seed=1)
    return adata, ps.Stacked(adata, seed=0).fit(max_epochs=3)


def test_unseen_genes_poorly_tied_to_measured_ones_get_higher_uncertainty(fitted_norman):
    adata, model = fitted_norman
    scales = model.error_scales.set_index("kind")
    # on the real subset, held-out errors fall with GO support: the fit keeps the slope
    assert scales.loc["unseen_single", "slope"] > 0
    assert scales.loc["unseen_single", "n_conditions"] >= MIN_CONDITIONS
    unseen = [c for c in map(str, adata.uns["perturbsim"]["split"]["test"]) if "+" not in c]
    pred = model.predict(unseen)
    order = np.argsort(pred.obs["support"].to_numpy())
    uncertainty = pred.obs["uncertainty"].to_numpy()[order]
    assert np.all(np.diff(uncertainty) < 0)  # more support, less uncertainty
    np.testing.assert_allclose(
        pred.obs["uncertainty"], np.sqrt(pred.layers["variance"].mean(axis=1)), rtol=1e-5
    )
    assert (pred.layers["variance"] >= 0).all()


def test_error_scales_say_which_kinds_borrow_the_pooled_fit(fitted_norman, tmp_path):
    supports = np.array([0.0, 0.2, 0.4, 0.6, 0.1])
    kinds = ["single"] * 4 + ["combo"]
    fitted = fit_error_scales(
        0.9 - 0.5 * supports,
        supports,
        kinds,
        all_kinds=["single", "combo", "pair"],
        pooled_kinds=["single", "combo"],
    )
    assert not fitted["single"].pooled and fitted["single"].n_conditions == 4
    assert fitted["combo"] == replace(fit_error_scale(0.9 - 0.5 * supports, supports), pooled=True)
    assert fitted["pair"] == ErrorScale()  # not poolable: the default, never pooled
    empty = fit_error_scales(np.zeros(0), np.zeros(0), [], all_kinds=["a"], pooled_kinds=["a"])
    assert empty == {"a": ErrorScale()}  # an empty pool is the default, not "pooled"
    _, model = fitted_norman
    scales = model.error_scales.set_index("kind")
    # on this split the unseen singles have enough held-out conditions of their own; the
    # pairs with a gene not measured alone share one fit; pairs of measured singles, with
    # none held out and never pooled, keep the default
    assert scales["pooled"].to_dict() == {
        "unseen_single": False,
        "combo_seen0": True,
        "combo_seen1": True,
        "combo_seen2": False,
    }
    assert scales.loc["combo_seen0"].equals(scales.loc["combo_seen1"])
    assert scales.loc["combo_seen2", "n_conditions"] == 0
    model.save(tmp_path / "model")
    loaded = ps.models.PerturbationModel.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.error_scales, model.error_scales)
    assert loaded.error_scales["support_high"].notna().any()  # the ranges were kept
    # the fields earlier releases read are all that "error" holds: they can still load it
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    saved = config["options"]["error"]
    assert all(set(fields) == {"intercept", "slope", "n_conditions"} for fields in saved.values())


def test_sets_of_genes_never_measured_alone_are_as_uncertain_as_their_number(
    fitted_norman, tmp_path
):
    adata, model = fitted_norman
    unseen = sorted(c for c in map(str, adata.uns["perturbsim"]["split"]["test"]) if "+" not in c)
    pair, triple = unseen[:2], unseen[:3]
    assert len(triple) == 3 and not set(triple) & (set(model.singles) | set(model.inferred))
    sets = [unseen[0], "+".join(pair), "+".join(triple)]
    pred = model.predict(sets)
    support = pred.obs["support"].to_numpy()
    # a set errs at least as its parts do: its genes' variances as singles, summed
    alone = model.predict(triple).layers["variance"]
    floors = [alone[0], alone[:2].sum(axis=0), alone.sum(axis=0)]

    def fitted(kind: str, row: int, count: int) -> np.ndarray:
        return count * model._error[kind].ratio(support[row]) * model.gene_scale

    for row, (kind, count) in enumerate(
        [("unseen_single", 1), ("combo_seen0", 2), ("combo_seen0", 3)]
    ):
        # held-out errors are fitted per gene not measured alone: a set of n such genes
        # is n predicted singles' worth of error, and never less than its parts'
        expected = np.maximum(fitted(kind, row, count), floors[row])
        np.testing.assert_allclose(pred.layers["variance"][row], expected, rtol=1e-5)
    assert (pred.layers["variance"][1:] >= np.array(floors[1:]) * (1 - 1e-6)).all()
    # a file saved before the error was per gene reads its fits per perturbation
    model.save(tmp_path / "model")
    config_path = tmp_path / "model" / "config.json"
    config = json.loads(config_path.read_text())
    del config["options"]["error_per_gene"], config["config_sha256"]
    config_path.write_text(json.dumps(config))
    loaded = ps.PerturbationModel.load(tmp_path / "model")
    assert model.error_per_gene and not loaded.error_per_gene
    older = loaded.predict(sets)
    for row in (1, 2):
        expected = np.maximum(fitted("combo_seen0", row, 1), floors[row])
        np.testing.assert_allclose(older.layers["variance"][row], expected, rtol=1e-5)
    np.testing.assert_array_equal(older.layers["variance"][0], pred.layers["variance"][0])


def test_a_pair_is_no_more_certain_than_its_gene_never_measured(fitted_norman):
    _, model = fitted_norman
    measured = sorted(g for g in model.single_noise if g not in model.inferred)[0]
    guessed = "GATA1"  # GO-annotated, neither measured nor perturbed in the screen
    pred = model.predict([guessed, measured, f"{guessed}+{measured}"])
    variance = pred.layers["variance"]
    assert (variance[2] >= (variance[0] + variance[1]) * (1 - 1e-6)).all()
    assert pred.obs["uncertainty"].iloc[2] > pred.obs["uncertainty"].iloc[0]


def test_a_measured_single_is_as_uncertain_as_its_measured_change(fitted_norman, tmp_path):
    adata, model = fitted_norman
    singles = [g for g in model.single_noise if g not in model.inferred][:3]
    data = ScreenData.from_adata(adata)
    pred = model.predict(singles)
    variance = pred.layers["variance"]
    np.testing.assert_allclose(variance, data.change_variances(singles), rtol=1e-6)
    # the change is a difference of two means: the control's noise counts too
    own = data.squared_standard_errors(singles)
    assert (variance >= own).all()
    # a gene none of a single's cells detected, where cells the model saw did, is not certain
    seen = data.stats.index(list(dict.fromkeys(data.train + data.val)))
    undetected = (own == 0) & (data.stats.variance()[seen].max(axis=0) > 0)
    assert undetected.sum() > 100 and (variance[undetected] > 0).all()
    unseen = model.predict(["TP53"]).obs["uncertainty"].iloc[0]
    assert (pred.obs["uncertainty"] < unseen).all()
    model.save(tmp_path / "model")
    loaded = ps.models.PerturbationModel.load(tmp_path / "model").predict(singles)
    np.testing.assert_array_equal(loaded.layers["variance"], pred.layers["variance"])


def test_a_single_of_one_cell_is_not_certain(tiny, caplog):
    ps.pp.split(tiny, kind="simulation", seed=1)
    train = ps.pp.Split.from_adata(tiny).train
    single, measured = [c for c in train if c != "ctrl" and "+" not in c][:2]
    cells = np.flatnonzero(tiny.obs["perturbsim_condition"] == single)
    screen = tiny[np.setdiff1d(np.arange(tiny.n_obs), cells[1:])].copy()
    with caplog.at_level("WARNING", logger="perturbsim"):
        model = ps.Stacked(screen, corrections=(), seed=0).fit()
    assert "1 condition of fewer than 4 cells left out of training and validation" in (caplog.text)
    assert single not in model.single_noise  # not measured: inferred from its pairs
    assert model.inferred.get(single, 0) > 0
    pred = model.predict([single, measured])
    assert pred.obs.loc[single, "uncertainty"] > pred.obs.loc[measured, "uncertainty"]
    assert pred.layers["variance"][0].min() > 0


def test_a_model_saved_with_a_negative_seed_loads(fitted_norman, tmp_path):
    import json

    _, model = fitted_norman
    model.save(tmp_path / "model")
    path = tmp_path / "model" / "config.json"
    config = json.loads(path.read_text())
    config["seed"] = -1  # earlier releases took any integer
    del config["config_sha256"]
    path.write_text(json.dumps(config))
    assert ps.models.PerturbationModel.load(tmp_path / "model").seed == -1


def test_unsupported_predictions_are_flagged_and_refused_in_strict_mode(fitted_norman):
    _, model = fitted_norman
    pred = model.predict(["BPGM+SAMD1", "KLF1+MAP2K6"])
    assert pred.obs["unsupported"].tolist() == [True, False]
    assert pred.obs.loc["KLF1+MAP2K6", "support"] == 1.0  # both measured alone
    with pytest.raises(ps.PerturbsimError, match="BPGM\\+SAMD1") as err:
        model.predict(["BPGM+SAMD1", "KLF1+MAP2K6"], strict=True)
    assert "\n" not in str(err.value)
    assert model.predict(["KLF1+MAP2K6"], strict=True).n_obs == 1


def test_the_warning_names_unsupported_genes_the_split_held_out(caplog):
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, seed=4)  # holds out the singles of HK2 and TGFBR2, tied by GO to none
    model = ps.Stacked(adata, seed=0, corrections=()).fit()
    with caplog.at_level("WARNING", logger="perturbsim"):
        pred = model.predict(["HK2", "TGFBR2+KLF1", "KLF1+MAP2K6"])
    assert pred.obs["unsupported"].tolist() == [True, True, False]
    assert pred.obs["generic"].tolist() == [True, True, False]  # the unsupported are generic
    assert (
        "HK2, TGFBR2 were measured alone in the screen but held out by the model's split"
        in caplog.text
    )
    caplog.clear()
    perturbed = set(adata.uns["perturbsim"]["setup"]["perturbed_genes"])
    never = [g for g in adata.var_names if g not in perturbed][:100]  # measured genes
    with caplog.at_level("WARNING", logger="perturbsim"):
        assert model.predict(never).obs["unsupported"].any()
    assert "neither measured" in caplog.text and "held out by the model's split" not in caplog.text


def test_supported_unseen_singles_predicted_as_the_mean_are_named(caplog):
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, seed=1)  # holds out the singles of FOXO4 and MAP2K3, tied by GO
    model = ps.Stacked(adata, seed=0, corrections=()).fit()  # nothing corrects the mean
    with caplog.at_level("WARNING", logger="perturbsim"):
        pred = model.predict(["FOXO4", "MAP2K3", "FOXO4+MAP2K3", "KLF1", "KLF1+MAP2K6"])
    assert not pred.obs.loc[["FOXO4", "MAP2K3"], "unsupported"].any()
    # flagged in the predictions themselves, as the warning names them
    generic = pred.obs["generic"]
    assert generic[["FOXO4", "MAP2K3", "FOXO4+MAP2K3"]].all()
    assert not generic[["KLF1", "KLF1+MAP2K6"]].any()
    delta = pred.to_df(layer="delta")
    others = delta.columns.difference(["FOXO4", "MAP2K3"])  # off their own targets: alike
    np.testing.assert_allclose(delta.loc["FOXO4", others], delta.loc["MAP2K3", others])
    (warning,) = [r.getMessage() for r in caplog.records if "tied by GO" in r.getMessage()]
    assert warning.startswith(
        "3 perturbations of genes the model never saw alone are tied by GO to measured genes "
        "but predicted, as unsupported ones are, from the scaled mean change"
    )
    # their pair is their predicted singles combined; not the measured KLF1, nor its pair
    assert ": FOXO4, MAP2K3, FOXO4+MAP2K3; FOXO4, MAP2K3 were measured alone in the screen" in (
        warning
    )
    # a pair with one such gene rests on its guess too, as predict_pairs flags its single
    assert model.predict(["FOXO4+KLF1"]).obs["generic"].all()


def test_a_measured_target_without_a_learnt_direct_effect_is_named(caplog):
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, seed=1)  # TMSB4X, the one target the subset measures, is held out
    model = ps.Stacked(adata, seed=0, corrections=()).fit()
    assert not model.target_effect.any()  # no training target measured: nothing learnt
    with caplog.at_level("WARNING", logger="perturbsim"):
        pred = model.predict(["TMSB4X", "FOXO4", "KLF1"])
    delta = pred.to_df(layer="delta")  # its own change is any unseen gene's there: the mean's
    assert delta.loc["TMSB4X", "TMSB4X"] == pytest.approx(delta.loc["FOXO4", "TMSB4X"])
    warnings = [r.getMessage() for r in caplog.records if "direct effect" in r.getMessage()]
    assert len(warnings) == 1 and "the own expression of TMSB4X is predicted as" in warnings[0]


def test_genes_linear_covers_but_leaves_at_the_mean_are_named_with_their_summed_pairs(caplog):
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, seed=1)
    model = ps.Stacked(adata, seed=0, corrections=("linear",)).fit()
    assert not model._parts_fit("unseen_single")[0].weights.any()  # nothing corrects the mean
    queries = ["NFIA", "FOXO4", "KLF1+NFIA", "KLF1", "KLF1+MAP2K6"]  # NFIA: measured only
    with caplog.at_level("WARNING", logger="perturbsim"):
        pred = model.predict(queries)
    delta = pred.to_df(layer="delta")
    others = delta.columns.difference(["NFIA", "FOXO4"])
    # linear covers NFIA (a measured gene) but its shrinkage leaves the mean: alike
    assert model._linear_baseline([("NFIA",)])[0].size == 1
    np.testing.assert_allclose(delta.loc["NFIA", others], delta.loc["FOXO4", others], atol=1e-6)
    (warning,) = [r.getMessage() for r in caplog.records if "tied by GO" in r.getMessage()]
    # the pair with a measured gene is that single plus the mean: named; KLF1's are not
    assert ": NFIA, FOXO4, KLF1+NFIA; FOXO4 was measured alone" in warning


def test_unsupported_predictions_are_named_in_one_warning(fitted_norman, caplog):
    adata, _ = fitted_norman
    with caplog.at_level("WARNING", logger="perturbsim"):
        model = ps.Stacked(adata, seed=0).fit(max_epochs=3)
    assert "neither measured" not in caplog.text  # its parts predicting validation: not news
    with caplog.at_level("WARNING", logger="perturbsim"):
        pred = model.predict(["KLF11", "BPGM+SAMD1", "KLF1+MAP2K6"])
    assert pred.obs["unsupported"].tolist() == [True, True, False]
    # one, from the default itself: its GEARS part, which flags BPGM+SAMD1 too, says nothing
    (warning,) = [r.getMessage() for r in caplog.records if "neither measured" in r.getMessage()]
    assert warning.startswith("2 predictions have a gene neither measured alone")
    assert ": KLF11, BPGM+SAMD1; KLF11 is not in the model's GO graph" in warning  # not screened
    assert warning.endswith(
        "no tie counts towards its support; strict=True refuses such predictions"
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"):
        assert model.predict("KLF11").obs["unsupported"].all()
        model.predict(["KLF1+MAP2K6"])
    assert "1 prediction has a gene neither measured alone" in caplog.text
    assert caplog.text.count("neither measured") == 1  # nothing of the supported pair
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"):
        model.sample(["BPGM+SAMD1"], adata, n_cells=2, seed=0)
    # sampled cells name it too; strict=True refuses it there as predict does
    (warning,) = [r.getMessage() for r in caplog.records if "neither measured" in r.getMessage()]
    assert warning.endswith(": BPGM+SAMD1")
    with pytest.raises(ps.PerturbsimError, match=r"BPGM\+SAMD1"):
        model.sample(["BPGM+SAMD1"], adata, n_cells=2, seed=0, strict=True)
    assert model.sample(["KLF1+MAP2K6"], adata, n_cells=2, seed=0, strict=True).n_obs == 2
    caplog.clear()
    fitness = pd.Series({"KLF1": -0.1, "MAP2K6": -0.2, "BPGM+SAMD1": -0.3, "CBL": 0.0})
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.models.ExpressionFitness(model).fit(fitness)
    assert "neither measured" not in caplog.text  # its features, not predictions shown
    assert "generic guess" not in caplog.text  # one of four generic: fitted on enough
    caplog.clear()
    # genes outside the screen: not in the model's GO graph, however close their GO ties
    # (MAPK3 to the screen's MAPK1, KLF2 to KLF1): said so
    with caplog.at_level("WARNING", logger="perturbsim"):
        pred = model.predict(["MAPK3", "KLF2+KLF1"])
    assert pred.obs["support"].tolist() == [0.0, 0.5]
    (warning,) = [r.getMessage() for r in caplog.records if "neither measured" in r.getMessage()]
    graph = "KLF2, MAPK3 are not in the model's GO graph, which holds only the screen's"
    assert graph in warning
    caplog.clear()
    # fitness fitted mostly on such genes: warned of
    outside = pd.Series({"MAPK3": -0.1, "KLF2": -0.2, "TP53": -0.3, "KLF1": 0.0})
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.models.ExpressionFitness(model).fit(outside)
    assert "predicts 3 of the 4 training conditions only by its generic guess" in caplog.text


def test_saved_model_keeps_its_error_model(fitted_norman, tmp_path):
    _, model = fitted_norman
    model.save(tmp_path / "model")
    loaded = ps.models.PerturbationModel.load(tmp_path / "model")
    query = ["FOXO4", "CBL+CNN1", "KLF1+MAP2K6"]
    np.testing.assert_array_equal(
        loaded.predict(query).layers["variance"], model.predict(query).layers["variance"]
    )
    pd.testing.assert_frame_equal(loaded.error_scales, model.error_scales)


def test_predict_cli_writes_the_uncertainty_beside_the_csv(fitted_norman, tmp_path, capsys, caplog):
    _, model = fitted_norman
    model.save(tmp_path / "model")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(tmp_path / "model"), "CBL+CNN1", "FOXO4", "--out", str(out)]) == 0
    # the flag is told, not only stored: logged once, in the CLI's words, not printed again
    assert caplog.text.count("neither measured alone") == 1 and "--strict refuses" in caplog.text
    printed = capsys.readouterr()
    assert "neither measured alone" not in printed.out + printed.err
    variance = pd.read_csv(tmp_path / "pred.variance.csv", index_col=0)
    obs = pd.read_csv(tmp_path / "pred.obs.csv", index_col=0)
    assert variance.shape == pd.read_csv(out, index_col=0).shape
    assert {"uncertainty", "support", "unsupported"} <= set(obs.columns)
    argv = [
        "predict",
        str(tmp_path / "model"),
        "CBL+CNN1",
        "--out",
        str(out),
        "--strict",
        "--overwrite",
    ]
    assert main(argv) == 2
    assert "CBL+CNN1" in capsys.readouterr().err


def test_intervals_of_a_calibrated_prediction_hold_their_level(tiny):
    ps.pp.split(tiny, kind="simulation", seed=1)
    stats = ScreenData.from_adata(tiny).stats
    conditions = [c for c in map(str, stats.conditions) if c != "ctrl"]
    measured = stats.delta[stats.index(conditions)].astype(float)
    rng = np.random.default_rng(0)
    sd = rng.uniform(0.05, 0.5, size=measured.shape)
    pred = ad.AnnData(
        X=np.zeros_like(measured),
        obs=pd.DataFrame(index=conditions),
        var=pd.DataFrame(index=stats.genes.astype(str)),
    )
    pred.layers["delta"] = measured + rng.normal(size=measured.shape) * sd
    pred.layers["variance"] = sd**2
    pred.obs["uncertainty"] = np.sqrt((sd**2).mean(axis=1))
    de = {c: list(stats.genes.astype(str)[:20]) for c in conditions}
    table = uncertainty_table(pred, stats, de, dict.fromkeys(conditions, "x"), model="m", seed=1)
    for level in LEVELS:
        assert table[inside_column("all", level)].mean() == pytest.approx(level, abs=0.02)
    # twice too narrow intervals hold less than their level
    pred.layers["variance"] = sd**2 / 4
    narrow = uncertainty_table(pred, stats, de, dict.fromkeys(conditions, "x"), model="m", seed=1)
    assert narrow[inside_column("all", 0.9)].mean() < 0.75
    # a target's own error, however large, is left out of every gene set, all genes too
    genes = list(stats.genes.astype(str))
    single = next(c for c in conditions if "+" not in c and c in genes)
    row = conditions.index(single)
    pred.layers["delta"][row, genes.index(single)] += 100.0
    tables = {
        exclude: uncertainty_table(
            pred[[single]], stats, de, {single: "x"}, model="m", seed=1, exclude_targets=exclude
        )
        for exclude in (True, False)
    }
    others = [j for j, g in enumerate(genes) if g != single]
    error = measured[row, others] - pred.layers["delta"][row, others]
    assert tables[True]["error_all"].iloc[0] == pytest.approx(float(np.mean(error**2)))
    assert tables[False]["error_all"].iloc[0] > 100 * tables[True]["error_all"].iloc[0]
    # no variance layer: nothing to say
    del pred.layers["variance"]
    assert uncertainty_table(pred, stats, de, {}, model="m", seed=1) is None


def test_evaluate_reports_uncertainty_of_models_that_have_one(tiny, tiny_go, tmp_path):
    result = ps.tl.evaluate(
        tiny,
        models={
            "stacked": lambda a: ps.Stacked(a, go_annotations=tiny_go, seed=0),
            "mean": ps.TrainMean,
        },
        seeds=2,
        gi=False,
        train_kwargs={"stacked": {"max_epochs": 2}},
    )
    assert set(result.uncertainty["model"]) == {"stacked"}  # the mean has no variance
    summary = result.uncertainty_summary()
    assert set(summary["metric"]) == set(SUMMARY_METRICS)
    assert summary.query("metric == 'inside_all_90'")["mean"].between(0, 1).all()
    curve = result.calibration()
    assert curve["observed"].between(0, 1).all() and set(curve["nominal"]) == set(LEVELS)
    files = ps.io.write_report(result, tmp_path)
    assert {"calibration.png", "uncertainty_stacked.png", "uncertainty_summary.csv"} <= set(files)
    assert "## Uncertainty" in (tmp_path / "report.md").read_text()
    assert 'id="uncertainty"' in (tmp_path / "report.html").read_text()
    # a model with one test condition of finite uncertainty still gets its plot, a point
    one = dataclasses.replace(result, uncertainty=result.uncertainty.iloc[:1])
    files = ps.io.write_report(one, tmp_path / "one")
    assert "uncertainty_stacked.png" in set(files)


def test_without_a_split_it_fits_on_every_condition_and_still_has_uncertainty():
    adata = ps.ds.norman2019_subset()  # no split: every condition trains, none validates
    model = ps.Stacked(adata, seed=0).fit(max_epochs=2)
    pred = model.predict(["KLF1+MAP2K6", "CBL", "MYC"])
    assert np.isfinite(pred.layers["variance"]).all()
    # CBL, perturbed only in CBL+CNN1, has the single its pair implies once CNN1's is
    # inferred from CNN1+MAPK1; MYC is in no condition of the screen: its GO terms alone
    assert "CBL" in model.inferred and "MYC" not in model.inferred
    assert pred.obs["unsupported"].tolist() == [False, False, True]


def test_an_uncertainty_that_only_tells_the_kinds_apart_scores_well_only_pooled():
    from perturbsim.tl._uncertainty import uncertainty_per_seed

    rows = []
    for subgroup, base in (("combo_seen2", 0.1), ("combo_seen0", 1.0)):
        for i in range(4):  # within a kind, the more uncertain are the less wrong
            rows.append(
                ("stacked", 1, subgroup, f"{subgroup}{i}", base * (1 + i / 10), base * (4 - i))
            )
    table = pd.DataFrame(
        rows, columns=["model", "seed", "subgroup", "condition", "uncertainty", "error_de"]
    )
    table["error_all"] = table["error_de"]
    for column in UNCERTAINTY_COLUMNS[7:]:
        table[column] = 0.5
    figures = uncertainty_per_seed(table).set_index("metric")["value"]
    assert figures["spearman_error_de"] > 0.4  # pooled: the harder kind is the more uncertain
    assert figures["spearman_error_de_within"] == -1.0
    ax = ps.pl.uncertainty_vs_error(table, model="stacked")
    assert ax.get_title().endswith("pooled over 8 test conditions\nwithin subgroups -1.00")
    # a second seed where, within a kind, the more uncertain are the more wrong: the figure
    # reads within subgroups as the summary does, each seed's, then their mean
    second = table.assign(seed=2, error_de=table["error_de"].to_numpy()[[3, 2, 1, 0, 7, 6, 5, 4]])
    second = second.drop(index=[3, 7])  # 3 conditions a kind: pooled, seed 1's would outweigh
    both = pd.concat([table, second], ignore_index=True)
    per_seed = uncertainty_per_seed(both)
    within = per_seed[per_seed["metric"] == "spearman_error_de_within"]["value"]
    assert sorted(within) == [-1.0, 1.0]
    title = ps.pl.uncertainty_vs_error(both, model="stacked").get_title()
    assert title.endswith(f"within subgroups {within.mean():.2f}")


def test_a_measured_single_s_variance_ignores_held_out_cells_and_holds_with_denoise(norman):
    ps.pp.split(norman, kind="simulation", seed=1)
    data = ScreenData.from_adata(norman)
    held_out = ps.pp.Split.from_adata(norman).test
    singles = [c for c in data.train if c != "ctrl" and "+" not in c][:2]
    before = data.change_variances(singles)
    # the held-out conditions' cells, scaled up, leave the pooled prior alone
    rows = norman.obs["perturbsim_condition"].isin(held_out).to_numpy()
    louder = norman.copy()
    louder.X = louder.X.tocsr(copy=True)
    louder.X[rows] = louder.X[rows] * 3
    ps.pp.pseudobulk(louder)
    np.testing.assert_allclose(ScreenData.from_adata(louder).change_variances(singles), before)
    # the shrunk changes of denoise are as uncertain as the changes measured
    model = ps.Stacked(norman, corrections=(), denoise=True, seed=0).fit()
    np.testing.assert_allclose(model.predict(singles).layers["variance"], before, rtol=1e-6)


def test_held_out_errors_are_fitted_per_gene_never_measured_alone(monkeypatch):
    from perturbsim.models import _stacked

    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, seed=1)
    recorded = []
    fit_error_scales = _stacked.fit_error_scales

    def record(ratios, supports, kinds, **options):
        recorded.append((np.array(ratios), list(kinds)))
        return fit_error_scales(ratios, supports, kinds, **options)

    monkeypatch.setattr(_stacked, "fit_error_scales", record)
    ps.Stacked(adata, corrections=()).fit()
    monkeypatch.setattr(_stacked, "unmeasured_count", lambda genes, measured: 1)
    ps.Stacked(adata, corrections=()).fit()
    (per_gene, kinds), (per_condition, _) = recorded
    pairs = np.array([kind == "combo_seen0" for kind in kinds])
    assert pairs.any()  # the pairs of two genes never measured alone: their ratios halved
    np.testing.assert_allclose(per_gene[pairs], per_condition[pairs] / 2)
    np.testing.assert_array_equal(per_gene[~pairs], per_condition[~pairs])


def test_gene_scale_is_the_spread_of_changes_plus_the_median_squared_error():
    changes = np.array([[0.0], [0.0], [3.0]])  # mean 1: squared deviations 1, 1, 4 -> 2
    squared_se = np.array([[1.0], [2.0], [9.0]])  # median 2 (mean 4)
    np.testing.assert_allclose(gene_scale(changes, squared_se), [4.0])
    # one perturbation: no spread, the median squared error alone
    np.testing.assert_allclose(gene_scale(np.array([[5.0]]), np.array([[0.5]])), [0.5])


def test_error_ratio_is_mean_squared_residual_over_mean_scale():
    # mean(r²) = (1 + 9) / 2 = 5, mean(scale) = (2 + 8) / 2 = 5
    assert error_ratio(np.array([1.0, 3.0]), np.array([2.0, 8.0])) == pytest.approx(1.0)
    assert error_ratio(np.zeros(2), np.zeros(2)) == 0.0


def test_the_fewest_conditions_fit_a_flat_error_scale_not_the_default():
    supports, ratios = np.array([0.0, 0.5, 1.0]), np.array([0.9, 0.6, 0.3])
    assert supports.size == MIN_CONDITIONS  # the fewest that fit
    fitted = fit_error_scale(ratios, supports)  # one degree of freedom: no slope
    assert fitted != ErrorScale()
    assert fitted.n_conditions == MIN_CONDITIONS and fitted.slope == 0.0
    assert fitted.intercept == pytest.approx(0.6)
    assert fitted.support_range == (0.0, 1.0)


# -- scores on tables small enough to check by hand --------------------------------------
SCORE_GENES = ["A", "B", "C"]


def stats_of(delta: np.ndarray) -> PseudobulkStats:
    """Statistics of ``ctrl`` (all zero) and one condition per row of ``delta``."""
    rows = {"ctrl": np.zeros(len(SCORE_GENES)), **dict(zip(SCORE_GENES, delta, strict=False))}
    return point_stats(rows, SCORE_GENES)


def prediction(conditions: list[str], delta: np.ndarray, variance: np.ndarray) -> ad.AnnData:
    pred = ad.AnnData(
        X=np.zeros_like(delta),
        obs=pd.DataFrame(index=conditions),
        var=pd.DataFrame(index=SCORE_GENES),
    )
    pred.layers["delta"] = delta
    pred.layers["variance"] = variance
    pred.obs["uncertainty"] = np.sqrt(variance.mean(axis=1))
    return pred


def test_a_condition_s_own_target_is_left_out_of_its_de_genes():
    stats = stats_of(np.array([[1.0, 1.0, 1.0]]))
    # condition A: its own gene A predicted 10 off, B 1 off; A and B are its DE genes
    pred = prediction(["A"], np.array([[11.0, 2.0, 1.0]]), np.ones((1, 3)))
    table = uncertainty_table(pred, stats, {"A": ["A", "B"]}, {"A": "x"}, model="m", seed=0)
    assert table["error_de"].iloc[0] == pytest.approx(1.0)  # B's alone
    assert table["error_all"].iloc[0] == pytest.approx(0.5)  # B's and C's (0), A left out


def test_a_gene_predicted_without_variance_is_missed_or_tests_no_interval():
    stats = stats_of(np.array([[1.0, 2.0, 3.0]]))
    # zero variance everywhere; A is the target (left out), B exact, C 0.5 off: C misses
    # every interval, B tests none (as a gene never detected, predicted unchanged, would)
    pred = prediction(["A"], np.array([[1.0, 2.0, 3.5]]), np.zeros((1, 3)))
    table = uncertainty_table(pred, stats, {"A": ["B", "C"]}, {"A": "x"}, model="m", seed=0)
    for level in (0.1, 0.5, 0.9):
        assert table[inside_column("all", level)].iloc[0] == 0
        assert table[inside_column("de", level)].iloc[0] == 0
    # B alone: nothing tested, no share; C given a variance: inside its wider intervals
    alone = uncertainty_table(pred, stats, {"A": ["B"]}, {"A": "x"}, model="m", seed=0)
    assert np.isnan(alone[inside_column("de", 0.9)].iloc[0])
    pred.layers["variance"] = np.array([[0.0, 0.0, 0.25]])  # C 1 sd off
    table = uncertainty_table(pred, stats, {"A": ["B", "C"]}, {"A": "x"}, model="m", seed=0)
    assert table[inside_column("de", 0.5)].iloc[0] == 0  # |z| = 1 > 0.67
    assert table[inside_column("de", 0.9)].iloc[0] == 1  # |z| = 1 < 1.64


def test_spearman_needs_three_finite_pairs():
    assert np.isnan(_spearman(np.array([1.0, 2.0]), np.array([1.0, 2.0])))
    # a NaN pair is dropped: two finite pairs left
    assert np.isnan(_spearman(np.array([1.0, 2.0, np.nan]), np.array([1.0, 2.0, 3.0])))
    assert _spearman(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(1.0)


def test_within_subgroups_needs_two_subgroups():
    table = pd.DataFrame(
        {"subgroup": ["a"] * 4, "uncertainty": [1, 2, 3, 4], "error_de": [1, 2, 3, 4]}
    )
    assert np.isnan(within_subgroups(table, "de"))


def test_within_subgroups_weights_each_subgroup_by_its_conditions():
    table = pd.DataFrame(
        {
            "subgroup": ["a"] * 3 + ["b"] * 5,
            "uncertainty": [1, 2, 3, 1, 2, 3, 4, 5],
            "error_de": [1, 2, 3, 5, 4, 3, 2, 1],  # a: rho 1 over 3; b: rho -1 over 5
        }
    )
    assert within_subgroups(table, "de") == pytest.approx((3 * 1.0 + 5 * -1.0) / 8)


def test_calibration_curve_skips_conditions_without_a_share():
    table = pd.DataFrame({"model": ["m", "m", "m"]})
    for genes in ("de", "all"):
        for level in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            table[inside_column(genes, level)] = [0.2, 0.4, np.nan]  # the third: no DE gene
    curve = calibration_curve(table)
    assert curve["observed"].to_numpy() == pytest.approx(np.full(len(curve), 0.3))
    assert (curve["n_conditions"] == 2).all()


def test_the_measured_change_is_read_by_gene_name_not_position():
    stats = stats_of(np.array([[1.0, 2.0, 3.0]]))
    # A is the target (left out); B exact, C 1 off
    pred = prediction(["A"], np.array([[1.0, 2.0, 4.0]]), np.ones((1, 3)))
    reordered = pred[:, ::-1].copy()  # genes C, B, A
    for p in (pred, reordered):
        table = uncertainty_table(p, stats, {"A": ["B", "C"]}, {"A": "x"}, model="m", seed=0)
        assert table["error_all"].iloc[0] == pytest.approx(0.5)
        assert table["error_de"].iloc[0] == pytest.approx(0.5)


def test_a_seed_s_shares_inside_skip_conditions_without_de_genes():
    stats = stats_of(np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [0.0, 0.0, 2.0]]))
    conditions = ["A", "B", "C"]
    pred = prediction(conditions, np.zeros((3, 3)), np.full((3, 3), 0.01))
    pred.obs["uncertainty"] = [1.0, 2.0, 3.0]
    de = {"A": ["B"], "B": ["A"], "C": ["C"]}  # C's only DE gene is its own target: none left
    table = uncertainty_table(pred, stats, de, dict.fromkeys(conditions, "x"), model="m", seed=0)
    assert np.isnan(table.loc[2, inside_column("de", 0.5)])
    per_seed = uncertainty_per_seed(table).set_index("metric")
    assert per_seed.loc["inside_de_50", "value"] == pytest.approx(0.0)  # A and B, both far off
    assert per_seed.loc["inside_all_50", "value"] == pytest.approx(1 / 3)  # C: A, B exact
    assert (per_seed["n_conditions"] == 3).all()


def test_spearman_of_a_constant_is_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(_spearman(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5])))
        assert np.isnan(_spearman(np.array([0.5, 0.5, 0.5]), np.array([1.0, 2.0, 3.0])))
