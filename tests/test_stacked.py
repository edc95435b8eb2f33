"""The default model: baseline, noise-aware changes, weights fitted on held-out conditions."""

from __future__ import annotations

import json
import logging
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import make_screen, split_small
from scipy.optimize import lsq_linear

import perturbsim as ps
from perturbsim.models._data import ScreenData
from perturbsim.models._pair_neighbours import SPARSITY
from perturbsim.models._stacked import GEARS_HIDDEN, GEARS_MAX_EPOCHS, SCALES, kind_of
from perturbsim.models._stacking import (
    MIN_CONDITIONS,
    FitRow,
    _bounded_from_moments,
    fit_per_kind,
    james_stein_factor,
    shrunk_fit,
    strongest,
)
from perturbsim.models._store import _config_sha256


def bounded_least_squares(parts: np.ndarray, target: np.ndarray, default: np.ndarray):
    """Weights in [0, 1] minimising |target - parts @ w|, from the moments as the default does."""
    parts = np.asarray(parts, dtype=float)
    used = np.abs(parts).sum(axis=0) > 0
    return _bounded_from_moments(parts.T @ parts, parts.T @ target, default, used)


def test_bounded_least_squares_recovers_weights_and_respects_bounds():
    rng = np.random.default_rng(0)
    parts = rng.normal(size=(400, 3))
    target = parts @ [0.3, 0.0, 0.8] + rng.normal(scale=0.01, size=400)
    np.testing.assert_allclose(
        bounded_least_squares(parts, target, np.zeros(3)), [0.3, 0, 0.8], atol=0.01
    )
    # a weight the data wants at 2 or -1 stops at the bound
    np.testing.assert_allclose(
        bounded_least_squares(parts, parts @ [2.0, -1.0, 0.5], np.zeros(3)),
        [1.0, 0.0, 0.5],
        atol=0.05,
    )
    # a part that is 0 everywhere keeps its default
    parts[:, 1] = 0
    assert bounded_least_squares(parts, target, np.array([0.0, 0.7, 0.0]))[1] == 0.7


def test_shrunk_fit_keeps_what_conditions_agree_on_and_drops_what_they_do_not():
    rng = np.random.default_rng(2)

    def row(weight: float) -> FitRow:
        part = rng.normal(size=(200, 1))
        return FitRow("a", part, weight * part[:, 0] + rng.normal(scale=0.05, size=200))

    agreed = shrunk_fit([row(0.6) for _ in range(4)], np.zeros(1))
    assert agreed[0] == pytest.approx(0.6, abs=0.02)
    # each condition wants another weight: the jackknife spread pulls it to the default
    rows = [row(w) for w in (0.0, 1.0, 0.0, 0.9)]
    plain = bounded_least_squares(
        np.vstack([r.parts for r in rows]), np.concatenate([r.target for r in rows]), np.zeros(1)
    )
    assert shrunk_fit(rows, np.zeros(1))[0] < 0.8 * plain[0]
    assert shrunk_fit([row(0.6)], np.zeros(1))[0] == 0.0  # one condition: no spread to judge
    # three agreeing conditions: a spread on two degrees of freedom has no finite posterior
    # mean, so the default is kept; a fourth condition lets the weight through
    assert MIN_CONDITIONS == 4
    assert shrunk_fit([row(0.6) for _ in range(3)], np.zeros(1))[0] == 0.0
    assert shrunk_fit([row(0.6) for _ in range(4)], np.zeros(1))[0] > 0.5


def test_the_james_stein_factor_keeps_a_departure_by_its_jackknife_noise():
    # refits 0, 2, 0, 2: jackknife variance 3/4 * 4 = 3, times (4 - 1) / (4 - 3) = 9
    refits = np.array([[0.0, 1.0], [2.0, 1.0], [0.0, 1.0], [2.0, 1.0]])
    np.testing.assert_allclose(james_stein_factor(np.array([6.0, 1.0]), refits), [0.75, 1.0])
    np.testing.assert_array_equal(james_stein_factor(np.array([3.0, 0.0]), refits), [0.0, 0.0])
    np.testing.assert_array_equal(james_stein_factor(np.array([2.0]), refits[:, :1]), [0.0])
    # refits that each left out 2 of the 4 units stray farther: (4 - 2) / 2 / 4 * 4 = 1, x 3
    np.testing.assert_allclose(
        james_stein_factor(np.array([6.0]), refits[:, :1], np.full(4, 2)), [1 - 3 / 36]
    )
    # three units: no finite posterior mean of the variance, nothing kept however they agree
    np.testing.assert_array_equal(james_stein_factor(np.array([6.0]), refits[:3, 1:]), [0.0])


def test_weights_are_fitted_on_each_condition_strongest_changes():
    # a mean that holds on a condition's strong responses but is noise on the many small
    # ones: over all genes least squares shrinks it, on the strongest it is kept
    rng = np.random.default_rng(3)

    def row() -> tuple[np.ndarray, np.ndarray]:
        part = np.concatenate([rng.normal(scale=3.0, size=20), rng.normal(scale=0.3, size=980)])
        measured = np.concatenate([part[:20], rng.normal(scale=0.3, size=980)])
        return part, measured

    rows = [row() for _ in range(6)]
    everywhere = shrunk_fit([FitRow("a", p[:, None], m) for p, m in rows], np.ones(1))
    focused = shrunk_fit(
        [FitRow("a", p[:, None], m, strongest(m, 20)) for p, m in rows], np.ones(1)
    )
    assert everywhere[0] < 0.9
    assert focused[0] == pytest.approx(1.0, abs=0.01)
    np.testing.assert_array_equal(strongest(np.array([0.1, -5.0, 2.0, 0.0]), 2), [1, 2])
    assert strongest(np.array([1.0]), 5).tolist() == [0]


def test_a_weight_at_its_bound_is_judged_by_the_unbounded_spread():
    # every condition wants more than the bound: each leave-one-out fit stops at 1, yet
    # how much more they want varies widely; unbounded, that spread shrinks the weight away
    rng = np.random.default_rng(4)

    def row(weight: float) -> FitRow:
        part = rng.normal(size=(100, 1))
        return FitRow("a", part, weight * part[:, 0] + rng.normal(scale=0.01, size=100))

    agreed = shrunk_fit([row(w) for w in (1.5, 1.6, 1.4, 1.5)], np.zeros(1))
    assert agreed[0] > 0.99
    disputed = shrunk_fit([row(w) for w in (1.2, 6.0, 1.1, 40.0)], np.zeros(1))
    assert disputed[0] < 0.5


def test_shrunk_fit_equals_the_jackknife_of_stacked_solves():
    rng = np.random.default_rng(5)
    rows = []
    for i in range(8):
        parts = rng.normal(size=(50, 3))
        if i == 2:
            parts[:, 2] = 0.0  # a part this condition does not have
        target = parts @ [0.3, 0.6, 0.2] + rng.normal(scale=0.5, size=50)
        rows.append(FitRow("a", parts, target))
    only_one = [FitRow("a", np.c_[r.parts[:, :2], np.zeros(50)], r.target) for r in rows[1:]]
    only_one.insert(0, rows[0])  # the third part exists in one row only
    default = np.array([0.0, 1.0, 0.5])
    for chosen in (rows, only_one):

        def solve(subset: list[FitRow]) -> np.ndarray:  # on the stacked rows themselves
            parts = np.vstack([r.parts for r in subset])
            used = np.abs(parts).sum(axis=0) > 0
            weights = default.copy()
            target = np.concatenate([r.target for r in subset])
            weights[used] = lsq_linear(parts[:, used], target, bounds=(0.0, 1.0)).x
            return weights

        fitted = solve(chosen)
        jackknife = np.array([solve(chosen[:i] + chosen[i + 1 :]) for i in range(len(chosen))])
        n = len(chosen)
        variance = (n - 1) / n * ((jackknife - jackknife.mean(axis=0)) ** 2).sum(axis=0)
        variance *= (n - 1) / (n - 3)  # its posterior mean on n - 1 degrees of freedom
        departure = fitted - default
        with np.errstate(invalid="ignore", divide="ignore"):
            keep = np.nan_to_num(np.clip(1 - variance / departure**2, 0, 1), nan=0.0)
        np.testing.assert_allclose(
            shrunk_fit(chosen, default), default + departure * keep, atol=1e-6
        )


def test_fit_per_kind_uses_own_rows_pools_few_and_keeps_default_without_any():
    rng = np.random.default_rng(1)

    def row(kind: str, weight: float) -> FitRow:
        part = rng.normal(size=(50, 1))
        return FitRow(kind, part, weight * part[:, 0])

    rows = [row("a", 0.2) for _ in range(MIN_CONDITIONS)] + [row("b", 0.9), row("d", 0.5)]
    fitted = fit_per_kind(rows, ("a", "b", "c", "d"), np.ones(1), pooled_kinds=("a", "b", "c"))
    assert fitted["a"].weights[0] == pytest.approx(0.2) and not fitted["a"].pooled
    assert fitted["b"].pooled and 0.2 < fitted["b"].weights[0] < 0.9
    assert fitted["c"].n_conditions == 0 and fitted["c"].weights[0] == 1.0
    assert fitted["d"].n_conditions == 0 and fitted["d"].weights[0] == 1.0  # not poolable
    # a pool too small to fit: the default, recorded as no fit (not as a pooled one)
    few = fit_per_kind(rows[-2:], ("b",), np.ones(1), pooled_kinds=("b", "d"))
    assert few["b"].n_conditions == 0 and not few["b"].pooled and few["b"].weights[0] == 1.0


def _null_screen() -> ad.AnnData:
    """Perturbations that do nothing: every condition's cells drawn like control's.

    Control has 1,000 times the cells of a perturbation, as in a CRISPRi screen such as
    Gasperini's, so the noise the measured changes share through the control mean is small.
    """
    genes = [f"G{i}" for i in range(100)]
    singles = [f"{g}+ctrl" for g in genes[:16]]
    pairs = [f"G{i}+G{i + 1}" for i in range(0, 20, 2)]
    adata = make_screen(["ctrl"] * 1000 + singles + pairs, n_genes=100, cells=30, seed=3)
    ps.pp.setup(adata, perturbation_key="condition")
    return adata


def _go(genes: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"gene": genes * 2, "term": [f"T{i % 4}" for i in range(len(genes))] + ["T9"] * len(genes)}
    )


def _training_changes(adata):
    """The screen's data, its perturbed training conditions, their changes and mean change."""
    data = ScreenData.from_adata(adata)
    conditions = data.perturbed(data.train)
    raw = data.stats.delta[data.stats.index(conditions)].astype(float)
    return data, conditions, raw, raw.mean(axis=0)


def test_denoised_changes_shrink_noise_to_the_mean_and_keep_strong_effects(norman):
    data, conditions, raw, mean = _training_changes(norman)
    denoised = data.denoised(conditions)[0]
    departure, kept = raw - mean, denoised - mean
    assert np.all(np.abs(kept) <= np.abs(departure) + 1e-9)
    assert np.all(np.sign(kept) * np.sign(departure) >= 0)
    assert (np.abs(kept) < 1e-12).mean() > 0.3  # most departures are within their noise
    strongest = np.unravel_index(np.abs(departure).argmax(), raw.shape)
    assert denoised[strongest] == pytest.approx(raw[strongest], rel=0.05)


def test_denoised_variances_are_the_noise_of_what_the_shrinkage_kept(norman):
    data, conditions, raw, mean = _training_changes(norman)
    squared_se = data.squared_standard_errors(conditions)
    rows = data.stats.index(conditions)
    np.testing.assert_allclose(
        squared_se, data.stats.variance()[rows] / data.stats.n_cells[rows][:, None], rtol=1e-6
    )
    denoised, variances = data.denoised(conditions)
    moved = raw != mean
    kept = (denoised - mean)[moved] / (raw - mean)[moved]
    # w · s², the posterior variance: the kept share of the departure times its noise
    np.testing.assert_allclose(variances[moved], kept * squared_se[moved], atol=1e-12)
    assert np.all(variances <= squared_se + 1e-15)
    shrunk_away = moved & (squared_se > 0) & (np.abs(denoised - mean) == 0)
    assert shrunk_away.mean() > 0.1 and np.all(variances[shrunk_away] == 0)
    assert (variances > 0.5 * squared_se).any()


def test_on_a_screen_where_nothing_replicates_it_predicts_close_to_no_change():
    adata = _null_screen()
    ps.pp.split(adata, kind="simulation", seed=0)
    go = _go(list(adata.var_names))
    stacked = ps.models.Stacked(adata, go_annotations=go, seed=0).fit(max_epochs=5)
    mean = ps.models.TrainMean(adata).fit()
    query = ["G30", "G31", "G32", "G30+G31"]
    assert (
        np.abs(stacked.predict(query).layers["delta"]).mean()
        < 0.6 * np.abs(mean.predict(query).layers["delta"]).mean()
    )


@pytest.fixture(scope="module")
def fitted_small():
    adata = split_small("simulation", 1)
    go = adata.uns["simulation"]["go"]
    model = ps.models.Stacked(adata, go_annotations=go, seed=0).fit(max_epochs=10)
    return adata, model


def test_weights_are_bounded_reported_and_default_without_evidence(fitted_small):
    adata, model = fitted_small
    weights = model.weights
    # a set with genes measured alone and genes not is summed (partial_sum): no weights
    assert set(weights["kind"]) == {"unseen_single", "combo_seen0", "combo_seen2"}
    assert set(weights["part"]) == {
        "scale",
        "scale_linear",
        "gears",
        "linear",
        "linear_go",
        "pair_neighbours",
    }
    assert weights["weight"].between(0, 1).all()
    # the scale of unseen singles is fitted on training singles held out one at a time
    scale = weights.query("kind == 'unseen_single' and part == 'scale'").iloc[0]
    assert scale["n_conditions"] >= 3 and not scale["pooled"]
    # the simulation split has no validation pair of two measured singles: the baseline
    seen2 = weights.query("kind == 'combo_seen2'").set_index("part")
    assert seen2.loc["scale", "weight"] == 1.0 and seen2.loc["gears", "weight"] == 0.0
    assert (seen2["n_conditions"] == 0).all()
    # training pairs of genes never measured alone are predicted from their predicted singles,
    # not the mean: they do not fit the scale (no validation triple has a mean part either)
    seen0 = weights.query("kind == 'combo_seen0' and part == 'scale'").iloc[0]
    assert seen0["n_conditions"] == 0
    # the corrections are weighted on validation conditions of their own kind, never pooled
    split = adata.uns["perturbsim"]["split"]
    trained = {
        ps.pp.genes_of(c)[0] for c in map(str, split["train"]) if len(ps.pp.genes_of(c)) == 1
    }
    val_kinds = pd.Series([kind_of(ps.pp.genes_of(str(c)), trained) for c in split["val"]])
    corrections = weights[weights["part"].isin(model.corrections)]
    for kind, rows in corrections.groupby("kind"):
        n_own = int((val_kinds == kind).sum())
        assert (rows["n_conditions"] == (n_own if n_own >= MIN_CONDITIONS else 0)).all(), kind
    assert not corrections["pooled"].any()


def test_weights_reports_each_part_s_own_fitted_weight(norman):
    ps.pp.split(norman, kind="simulation", seed=1)
    model = ps.models.Stacked(norman, seed=0).fit()
    weights = model.weights.set_index(["kind", "part"])["weight"]
    singles = weights.loc["unseen_single"]
    assert singles.nunique() >= 3  # the Norman subset's unseen singles: parts weighed apart
    for kind in weights.index.unique(level="kind"):
        corrections, *_ = model._parts_fit(kind)
        expected = [*model._scale[kind].weights, *corrections.weights]
        parts = [*SCALES, *model.corrections]
        np.testing.assert_allclose(weights.loc[kind].loc[parts].to_numpy(), expected)


def test_pairs_of_measured_singles_are_their_sum_without_evidence_otherwise(fitted_small):
    adata, model = fitted_small
    go = adata.uns["simulation"]["go"]
    raw = ps.models.Stacked(adata, go_annotations=go, seed=0, denoise=False, interaction=False).fit(
        max_epochs=2
    )
    corrections = raw.weights.query("kind == 'combo_seen2' and part in @raw.corrections")
    assert corrections["weight"].eq(0).all()
    additive = ps.models.Additive(adata).fit()
    split = adata.uns["perturbsim"]["split"]
    pairs = [c for c in map(str, split["test"]) if "+" in c]
    covered = [p for p, ok in zip(pairs, additive.covers(pairs), strict=True) if ok]
    assert covered
    np.testing.assert_allclose(
        raw.predict(covered).layers["delta"], additive.predict(covered).layers["delta"], atol=1e-5
    )
    # by default the training pairs' interaction combines them instead (it holds out here)
    assert model.pair_roles.n_pairs >= 3 and model.pair_roles.loo_gain > 0
    a, b = ps.pp.genes_of(covered[0])
    pred = model.predict(covered[:1])
    unclipped = np.asarray(pred.X)[0] > 0  # predicted expression is floored at 0
    combined = model.pair_roles.predict(
        model.singles[a], model.singles[b], model._fitted_genes((a, b))
    )
    np.testing.assert_allclose(pred.layers["delta"][0][unclipped], combined[unclipped], atol=1e-5)


def test_measured_singles_enter_as_measured_unless_denoised(fitted_small):
    adata, model = fitted_small
    data = model.data
    singles = [c for c in data.perturbed(data.train) if len(ps.pp.genes_of(c)) == 1]
    measured = data.stats.delta[data.stats.index(singles)].astype(np.float64)
    np.testing.assert_array_equal(np.array([model.singles[c] for c in singles]), measured)
    shrunk = ps.models.build_model("stacked_denoised", adata, corrections=("linear",)).fit()
    kept = np.array([shrunk.singles[c] for c in singles])
    known = data.perturbed(data.train + data.val)  # shrunk together: they share the prior
    denoised = dict(zip(known, data.denoised(known)[0], strict=True))
    np.testing.assert_allclose(kept, np.array([denoised[c] for c in singles]))
    # the shrinkage moves them towards the mean change as a whole
    assert (
        np.abs(kept - shrunk.mean_change).sum() < 0.9 * np.abs(measured - shrunk.mean_change).sum()
    )


def test_save_and_load_give_the_same_predictions(fitted_small, tmp_path):
    adata, model = fitted_small
    query = [str(c) for c in adata.uns["perturbsim"]["split"]["test"]]
    model.save(tmp_path / "stacked")
    loaded = ps.models.PerturbationModel.load(tmp_path / "stacked")
    assert isinstance(loaded, ps.models.Stacked)
    np.testing.assert_array_equal(loaded.predict(query).X, model.predict(query).X)
    pd.testing.assert_frame_equal(loaded.weights, model.weights)
    assert loaded.linear_embedding == "auto"
    assert loaded.corrections["linear"].embedding == model.corrections["linear"].embedding
    assert loaded.corrections["gears"].config.hidden == GEARS_HIDDEN
    # its GEARS part trains without validation: no validation loss recorded, drawn or saved
    assert model.history["val_loss"].isna().all() and len(model.history) > 0
    config = (tmp_path / "stacked" / "config.json").read_text()
    assert "NaN" not in config and '"best_val_loss"' in config  # the key older versions read
    pd.testing.assert_frame_equal(loaded.history, model.history)
    assert len(ps.pl.training_history(model).lines) == 1
    # saved again, the loaded model writes the same weights, byte for byte
    loaded.save(tmp_path / "again")
    weights = "weights.safetensors"
    assert (tmp_path / "again" / weights).read_bytes() == (
        tmp_path / "stacked" / weights
    ).read_bytes()


def test_a_saved_config_is_strict_json_and_older_infinite_ridges_load(tmp_path):
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, seed=1)
    model = ps.Stacked(adata, seed=0, corrections=("linear",)).fit()
    assert np.isinf(model.pair_roles.ridge)  # the sum kept: written as Infinity before
    model.save(tmp_path / "stacked")

    def refuse(constant: str) -> None:  # as strict parsers do (JavaScript's, serde_json)
        raise AssertionError(f"{constant} in config.json")

    config = json.loads((tmp_path / "stacked" / "config.json").read_text(), parse_constant=refuse)
    assert config["options"]["pair_roles"]["ridge"] is None
    query = ["KLF1", "KLF1+MAP2K6"]
    for roles in ("pair_roles", "predicted_pair_roles"):  # as files saved before wrote it
        config["options"][roles]["ridge"] = config["options"][roles]["ridge"] or np.inf
    older = tmp_path / "older"
    shutil.copytree(tmp_path / "stacked", older)
    del config["config_sha256"]
    (older / "config.json").write_text(json.dumps(config))
    for path in (tmp_path / "stacked", older):
        loaded = ps.models.PerturbationModel.load(path)
        assert np.isinf(loaded.pair_roles.ridge)
        np.testing.assert_array_equal(loaded.predict(query).X, model.predict(query).X)


def test_its_gears_part_is_narrower_than_the_reference_unless_asked(fitted_small):
    adata, model = fitted_small
    assert model.corrections["gears"].config.hidden == GEARS_HIDDEN < ps.models.GEARSConfig().hidden
    wide = ps.models.Stacked(adata, hidden=64, seed=0)
    assert wide.corrections["gears"].config.hidden == 64


def test_its_gears_part_trains_at_most_the_capped_epochs_unless_asked(fitted_small):
    adata, _ = fitted_small
    go = adata.uns["simulation"]["go"]
    # patience beyond any epoch count: only the cap stops training
    capped = ps.models.Stacked(adata, go_annotations=go, seed=0).fit(patience=500)
    assert len(capped.corrections["gears"].history) == GEARS_MAX_EPOCHS
    longer = ps.models.Stacked(adata, go_annotations=go, seed=0)
    longer.fit(patience=500, max_epochs=GEARS_MAX_EPOCHS + 5)
    assert len(longer.corrections["gears"].history) == GEARS_MAX_EPOCHS + 5


def test_the_linear_baseline_embeds_perturbations_as_held_out_data_prefer(fitted_small):
    adata, model = fitted_small
    linear = model.corrections["linear"]
    errors = linear.held_out_error
    assert set(errors) == {"training", "coexpression"}
    assert linear.embedding == min(errors, key=errors.get) == "coexpression"
    # the ablation keeps the paper's embedding; unseen singles of measured genes then differ
    own = ps.models.Stacked(adata, corrections=("linear",)).fit()
    paper = ps.models.build_model("stacked_no_coexpression", adata, corrections=("linear",)).fit()
    assert paper.corrections["linear"].embedding == "training"
    unseen = [
        c
        for c in map(str, adata.uns["perturbsim"]["split"]["test"])
        if "+" not in c and c in set(map(str, adata.var_names))
    ]
    assert unseen
    gap = own.predict(unseen).layers["delta"] - paper.predict(unseen).layers["delta"]
    assert np.abs(gap).max() > 0.05
    with pytest.raises(ps.PerturbsimError, match="linear_embedding must be one of"):
        ps.models.Stacked(adata, linear_embedding="pca")
    with pytest.raises(ps.PerturbsimError, match="without 'linear' in corrections"):
        ps.models.Stacked(adata, corrections=("gears",), linear_embedding="training")


def _reloaded_without(model, path, option: str, conditions: list) -> ps.PerturbationModel:
    """Save ``model``; check that it loads with ``option`` and predicts ``conditions`` alike.

    Returns it loaded again as a file saved before ``option`` existed would be.
    """
    model.save(path)
    loaded = ps.PerturbationModel.load(path)
    assert getattr(loaded, option) is getattr(model, option) is True
    np.testing.assert_allclose(loaded.predict(conditions).X, model.predict(conditions).X)
    config_path = path / "config.json"
    config = json.loads(config_path.read_text())
    del config["options"][option], config["config_sha256"]
    config_path.write_text(json.dumps(config))
    return ps.PerturbationModel.load(path)


def test_weighted_a_pair_with_one_measured_single_takes_linear_for_its_other_gene(
    fitted_small, tmp_path
):
    adata, _ = fitted_small
    go = adata.uns["simulation"]["go"]
    model = ps.models.build_model("stacked_no_partial_sum", adata, go_annotations=go, seed=0)
    model.fit(max_epochs=10)
    linear = model.corrections["linear"]
    test = [ps.pp.genes_of(str(c)) for c in adata.uns["perturbsim"]["split"]["test"]]
    pair = next(
        g for g in test if len(g) == 2 and (g[0] in model.singles) != (g[1] in model.singles)
    )
    unmeasured = next(g for g in pair if g not in model.singles)
    assert kind_of(pair, model.singles) == "combo_seen1"
    assert linear.covers([[unmeasured]])[0]
    _, scaled = model._baseline([pair])
    departure = linear.predict([[unmeasured]]).layers["delta"][0] - model.mean_change
    departure[model.genes == unmeasured] = 0.0  # its own target: the target effect instead
    np.testing.assert_allclose(scaled[0, :, 1], departure)
    assert np.abs(departure).max() > 0.01  # linear says something of the gene
    # the pair's part for its unmeasured gene is then its unseen single's, up to the scales
    _, alone = model._baseline([(unmeasured,)])
    np.testing.assert_allclose(scaled[0], alone[0])
    # saved and loaded, it stays; the ablation gives such a pair the mean alone
    older = _reloaded_without(model, tmp_path / "model", "partial_linear", [list(pair)])
    assert older.partial_linear is False  # predicts as it was fitted: the mean alone
    gap = older.predict([list(pair)]).layers["delta"] - model.predict([list(pair)]).layers["delta"]
    assert np.abs(gap).max() > 0.01
    ablation = ps.models.build_model("stacked_no_partial_linear", adata, seed=0)
    assert not ablation.partial_linear and not ablation.partial_sum
    ablation.singles, ablation.corrections = model.singles, model.corrections
    ablation.mean_change, ablation.target_effect = model.mean_change, model.target_effect
    _, without = ablation._baseline([pair])
    assert not without[0, :, 1].any()
    np.testing.assert_allclose(without[0, :, 0], scaled[0, :, 0])


def test_a_set_with_a_measured_single_is_its_parts_summed(fitted_small, tmp_path):
    adata, model = fitted_small
    go = adata.uns["simulation"]["go"]
    weighted = ps.models.build_model("stacked_no_partial_sum", adata, go_annotations=go, seed=0)
    assert model.partial_sum and not weighted.partial_sum
    weighted.fit(max_epochs=10)
    test = [ps.pp.genes_of(str(c)) for c in adata.uns["perturbsim"]["split"]["test"]]
    pair = next(g for g in test if kind_of(g, model.singles) == "combo_seen1")
    measured, other = sorted(pair, key=lambda g: g not in model.singles)
    alone = model._point_change([(other,)])[0]
    np.testing.assert_allclose(model._point_change([pair])[0], model.singles[measured] + alone)
    # a larger set: its measured single plus the rest predicted as a pair of unmeasured genes
    third = next(g for s in test for g in s if g not in model.singles and g != other)
    rest = tuple(sorted((other, third)))
    assert kind_of(rest, model.singles) == "combo_seen0"
    np.testing.assert_allclose(
        model._point_change([(measured, *rest)])[0],
        model.singles[measured] + model._point_change([rest])[0],
    )
    # the kind has no weights; its error scale is fitted on those sets as predicted
    assert "combo_seen1" not in set(model.weights["kind"])
    assert "combo_seen1" in set(weighted.weights["kind"])
    # weighted, such a pair is not its own singles summed: its kind's weights differ
    gap = weighted._point_change([pair])[0] - weighted.singles[measured]
    assert np.abs(gap - weighted._point_change([(other,)])[0]).max() > 1e-3
    # no scale of its own is fitted; its error scale is, on its own held-out conditions
    assert model._scale["combo_seen1"].n_conditions == 0
    # its unmeasured genes are scaled as unseen singles are (weighted, by its own scales)
    assert model._scale_kind("combo_seen1") == "unseen_single"
    assert weighted._scale_kind("combo_seen1") == "combo_seen1"
    assert weighted._scale["combo_seen1"].n_conditions > 0
    scales = model.error_scales.set_index("kind")
    assert scales.loc["combo_seen1", "n_conditions"] >= 3
    assert not scales.loc["combo_seen1", "pooled"]
    # saved and loaded, it stays; a file saved before the option weighs the set
    older = _reloaded_without(model, tmp_path / "model", "partial_sum", [list(pair)])
    assert older.partial_sum is False
    with pytest.raises(ps.PerturbsimError, match="partial_sum"):
        ps.models.Stacked(adata, go_annotations=go, partial_sum="yes")


def test_summed_validation_sets_reach_the_error_model_as_predicted(monkeypatch):
    adata = split_small("simulation", 1)
    recorded: dict = {"summed": {}}
    summed_partial = ps.models.Stacked._summed_partial
    fit_error_model = ps.models.Stacked._fit_error_model

    def record_summed(self, sets):
        out = summed_partial(self, sets)
        recorded["summed"].update(zip(map(tuple, sets), out, strict=True))
        return out

    def record_errors(self, data, held_out, val, val_residuals):
        recorded.update(val=list(val), residuals=val_residuals.copy())
        return fit_error_model(self, data, held_out, val, val_residuals)

    monkeypatch.setattr(ps.models.Stacked, "_summed_partial", record_summed)
    monkeypatch.setattr(ps.models.Stacked, "_fit_error_model", record_errors)
    ps.models.Stacked(adata, go_annotations=adata.uns["simulation"]["go"], corrections=()).fit()
    stats = ScreenData.from_adata(adata).stats
    rows = [i for i, c in enumerate(recorded["val"]) if ps.pp.genes_of(c) in recorded["summed"]]
    assert len(rows) >= 3  # every summed validation set: its residual is of its sum
    for i in rows:
        condition = recorded["val"][i]
        measured = stats.delta[stats.index([condition])][0].astype(np.float64)
        np.testing.assert_allclose(
            recorded["residuals"][i],
            measured - recorded["summed"][ps.pp.genes_of(condition)],
            rtol=1e-5,
            atol=1e-6,
        )


def test_it_is_the_catalogue_default(tmp_path):
    from perturbsim.cli._main import build_parser

    assert ps.models.DEFAULT_MODELS[0] == "stacked"
    assert ps.models.DEMO_MODELS[0] == "stacked"
    args = build_parser().parse_args(["train", str(tmp_path / "x.h5ad"), "--out", "m"])
    assert args.model == "stacked"  # what `perturbsim train` fits unless told


def test_a_variant_goes_by_its_catalogue_name_saved_or_not(fitted_small, tmp_path):
    adata, _ = fitted_small
    variant = ps.models.build_model("stacked_baseline", adata, seed=0)
    with pytest.raises(ps.PerturbsimError, match="^stacked_baseline is not fitted"):
        variant.predict(["G0001"])
    assert repr(variant).endswith("'stacked_baseline': 400 genes, not fitted")
    variant.fit()
    assert (variant.name, variant.label) == ("stacked", "stacked_baseline")
    assert repr(variant).startswith("Stacked 'stacked_baseline': 400 genes, fitted on ")
    assert variant.predict(["ctrl"]).uns["perturbsim"]["model"] == "stacked_baseline"
    variant.save(tmp_path / "model")
    loaded = ps.PerturbationModel.load(tmp_path / "model")
    assert type(loaded) is ps.Stacked and loaded.label == "stacked_baseline"
    with pytest.raises(ps.PerturbsimError, match="^stacked_baseline cannot predict"):
        loaded.predict(["NOTAGENE"])
    assert ps.Stacked(adata, seed=0).label == "stacked"  # the class itself: no variant


def test_without_gears_genes_are_tied_to_measured_ones_by_the_same_go_graph(norman, tmp_path):
    ps.pp.split(norman, kind="simulation", seed=1)
    default = ps.Stacked(norman, seed=0).fit()
    no_gears = ps.models.build_model("stacked_no_gears", norman, seed=0).fit()
    queries = ["FOXO4", "SET", "A2M", "KLF1+TBX3"]  # unseen, measured, outside, a pair
    support = default.predict(queries).obs["support"]
    assert 0 < support["FOXO4"] < 1 and support["A2M"] == 0  # a GO tie, and none
    pd.testing.assert_series_equal(no_gears.predict(queries).obs["support"], support)
    with pytest.raises(ps.PerturbsimError, match="strict: 1 perturbation"):
        no_gears.predict(queries, strict=True)  # only A2M, as the default refuses it
    no_gears.save(tmp_path / "model")
    loaded = ps.PerturbationModel.load(tmp_path / "model")
    pd.testing.assert_series_equal(loaded.predict(queries).obs["support"], support)


def test_without_corrections_it_is_the_calibrated_baseline(fitted_small):
    adata, _ = fitted_small
    baseline = ps.models.build_model("stacked_baseline", adata, seed=0).fit()
    assert set(baseline.weights["part"]) == {"scale", "scale_linear"}
    assert baseline.history.empty
    test = [str(c) for c in adata.uns["perturbsim"]["split"]["test"]]
    assert np.isfinite(baseline.predict(test).X).all()
    with pytest.raises(ps.PerturbsimError, match="need 'gears'"):
        baseline.fit(max_epochs=3)
    with pytest.raises(ps.PerturbsimError, match="device='cpu' given without 'gears'"):
        ps.models.build_model("stacked_baseline", adata, device="cpu")


def test_without_gears_no_network_is_trained(fitted_small):
    adata, model = fitted_small
    assert "gears" in set(model.weights["part"]) and not model.history.empty
    go = adata.uns["simulation"]["go"]
    no_gears = ps.models.build_model("stacked_no_gears", adata, go_annotations=go, seed=0).fit()
    assert no_gears.history.empty
    assert {"linear", "linear_go"} <= set(no_gears.weights["part"])
    assert "gears" not in set(no_gears.weights["part"])
    test = [str(c) for c in adata.uns["perturbsim"]["split"]["test"]]
    assert np.isfinite(no_gears.predict(test).X).all()


def test_a_gene_nothing_knows_is_refused_by_name(fitted_small):
    _, model = fitted_small
    assert model.covers(["NOTAGENE", str(model.genes[0])]).tolist() == [False, True]
    with pytest.raises(ps.PerturbsimError, match="NOTAGENE") as err:
        model.predict(["NOTAGENE+" + str(model.genes[0])])
    assert "\n" not in str(err.value)


def test_a_pair_of_genes_never_measured_alone_combines_their_predicted_singles(fitted_small):
    adata, model = fitted_small
    # the simulation split leaves no validation pair of two unmeasured genes: no correction
    unmeasured = model.weights.query("kind == 'combo_seen0' and part in @model.part_names")
    assert unmeasured["weight"].eq(0).all()
    pairs = [
        c
        for c in map(str, adata.uns["perturbsim"]["split"]["test"])
        if "+" in c and not any(g in model.singles for g in ps.pp.genes_of(c))
    ]
    assert pairs
    a, b = ps.pp.genes_of(pairs[0])
    pred = model.predict([a, b, pairs[0]])
    single_a, single_b, pair = pred.layers["delta"]
    combined = model.predicted_pair_roles.predict(single_a, single_b, model._fitted_genes((a, b)))
    assert model.predicted_pair_roles.shared == 0.0  # never the shared-change fit
    unclipped = np.asarray(pred.X)[2] > 0
    np.testing.assert_allclose(pair[unclipped], combined[unclipped], atol=1e-5)
    assert np.abs(pair).sum() > np.abs(single_a).sum()  # not the mean of a single


def test_pairs_of_predicted_singles_never_take_the_shared_change_fit(tmp_path):
    # on this split the training pairs are best fitted as their sum less a share of the change
    # their singles share; two predicted singles share the mean change both are built on, so a
    # pair of genes never measured alone keeps the role fit (here: the sum)
    adata = split_small("simulation", 2)
    model = ps.models.Stacked(adata, corrections=("linear",)).fit()
    assert model.shared_change  # the default's
    assert model.pair_roles.shared > 0.5 and model.predicted_pair_roles.shared == 0.0
    ablation = ps.models.build_model("stacked_no_shared", adata, corrections=("linear",)).fit()
    assert ablation.pair_roles.shared == 0.0
    assert ablation.predicted_pair_roles is ablation.pair_roles
    split = adata.uns["perturbsim"]["split"]
    pairs = [c for c in map(str, split["test"]) if "+" in c]
    unmeasured = next(p for p in pairs if model._unmeasured_pair(ps.pp.genes_of(p)))
    measured = next(p for p in pairs if model._measured_pair(ps.pp.genes_of(p)))
    a, b = ps.pp.genes_of(unmeasured)
    pred = model.predict([a, b, unmeasured])
    single_a, single_b, pair = pred.layers["delta"]
    unclipped = (np.asarray(pred.X) > 0).all(axis=0)  # predicted expression is floored at 0
    with_shared = model.pair_roles.predict(single_a, single_b, model._fitted_genes((a, b)))
    without = model.predicted_pair_roles.predict(single_a, single_b, model._fitted_genes((a, b)))
    assert not np.allclose(with_shared[unclipped], without[unclipped], atol=1e-3)
    np.testing.assert_allclose(pair[unclipped], without[unclipped], atol=1e-5)
    model.save(tmp_path / "model")
    loaded = ps.models.PerturbationModel.load(tmp_path / "model")
    assert loaded.pair_roles.shared == model.pair_roles.shared
    assert loaded.predicted_pair_roles.to_dict() == model.predicted_pair_roles.to_dict()
    query = [unmeasured, measured]
    np.testing.assert_array_equal(loaded.predict(query).X, model.predict(query).X)
    # a pair of measured singles is combined by the shared-change fit, not the role fit
    x, y = (model.singles[g] for g in ps.pp.genes_of(measured))
    fitted_genes = model._fitted_genes(ps.pp.genes_of(measured))
    np.testing.assert_array_equal(
        model._measured_part(ps.pp.genes_of(measured)), model.pair_roles.predict(x, y)
    )
    assert not np.allclose(
        model.pair_roles.predict(x, y), ablation.pair_roles.predict(x, y, fitted_genes), atol=1e-3
    )
    assert not ps.models.Stacked(adata, interaction=False).shared_change  # follows interaction
    options = ("shared_change", "interaction", "denoise", "neighbours", "sparse_neighbours")
    for option in (*options, "infer_singles"):
        with pytest.raises(ps.PerturbsimError, match=f"^{option} must be True or False, got 'no'$"):
            ps.models.Stacked(adata, **{option: "no"})  # a string is not read as true
    with pytest.raises(ps.PerturbsimError, match="shared_change=True given with interaction"):
        ps.models.Stacked(adata, interaction=False, shared_change=True)
    with pytest.raises(ps.PerturbsimError, match="sparse_neighbours=True given with neighbours"):
        ps.models.Stacked(adata, neighbours=False, sparse_neighbours=True)


@pytest.fixture(scope="module")
def fitted_combo():
    adata = split_small("combo", 1)
    model = ps.models.Stacked(adata, corrections=("linear",)).fit()
    return adata, model


def test_pairs_of_measured_singles_borrow_the_residual_of_training_pairs_alike(fitted_combo):
    adata, model = fitted_combo
    neighbours = model.pair_neighbours
    assert neighbours.power is not None and neighbours.held_out_gain > 0
    fitted = model.weights.query("kind == 'combo_seen2' and part == 'pair_neighbours'").iloc[0]
    # fitted on the training pairs held out one at a time, the validation pairs with them
    assert 0 < fitted["weight"] <= 1 and fitted["n_conditions"] > len(neighbours.pairs)
    # only pairs of two measured singles have neighbours to borrow from: no other kind's fit
    others = model.weights.query("kind != 'combo_seen2' and part == 'pair_neighbours'")
    assert len(others) and (others["weight"] == 0).all() and (others["n_conditions"] == 0).all()
    # the correcting models were trained on the training pairs: only validation pairs weigh them
    val_pairs = [c for c in map(str, adata.uns["perturbsim"]["split"]["val"]) if "+" in c]
    linear = model.weights.query("kind == 'combo_seen2' and part == 'linear'").iloc[0]
    assert linear["n_conditions"] == (len(val_pairs) if len(val_pairs) >= 3 else 0)
    pairs = [
        c
        for c in map(str, adata.uns["perturbsim"]["split"]["test"])
        if "+" in c and all(g in model.singles for g in ps.pp.genes_of(c))
    ]
    assert len(pairs) >= 5
    genes = [ps.pp.genes_of(c) for c in pairs]
    pred = model.predict(pairs)
    # lent off the pair's own targets
    fitted_genes = np.array([model._fitted_genes(g) for g in genes])
    lent = neighbours.residual(genes, model.singles, fitted_genes) * fitted_genes
    combined = np.array([model._measured_part(g) for g in genes])
    expected = combined + fitted["weight"] * lent
    unclipped = np.asarray(pred.X) > 0
    np.testing.assert_allclose(pred.layers["delta"][unclipped], expected[unclipped], atol=1e-5)
    ablation = ps.models.build_model("stacked_no_neighbours", adata, corrections=("linear",)).fit()
    assert ablation.pair_neighbours is None
    assert "pair_neighbours" not in set(ablation.weights["part"])
    gap = pred.layers["delta"] - ablation.predict(pairs).layers["delta"]
    assert np.abs(gap).max() > 0.05


def test_the_neighbours_lend_only_their_residuals_largest_entries(fitted_combo, tmp_path):
    adata, model = fitted_combo
    assert model.sparse_neighbours and model.pair_neighbours.sparsity == SPARSITY
    dense = ps.models.build_model("stacked_dense_neighbours", adata, corrections=("linear",)).fit()
    assert not dense.sparse_neighbours and dense.pair_neighbours.sparsity is None
    assert dense.pair_neighbours.power == model.pair_neighbours.power
    pairs = [
        c
        for c in map(str, adata.uns["perturbsim"]["split"]["test"])
        if "+" in c and all(g in model.singles for g in ps.pp.genes_of(c))
    ]
    genes = [ps.pp.genes_of(c) for c in pairs]
    fitted_genes = np.array([model._fitted_genes(g) for g in genes])
    sparse_part = model.pair_neighbours.residual(genes, model.singles, fitted_genes)
    whole = dense.pair_neighbours.residual(genes, dense.singles, fitted_genes)
    # most genes are lent nothing; where something is lent, less than the whole residual
    assert (sparse_part == 0).mean() > 0.5 and (whole == 0).mean() < 0.1
    lent = sparse_part != 0
    assert (np.sign(sparse_part[lent]) == np.sign(whole[lent])).all()
    assert (np.abs(sparse_part[lent]) < np.abs(whole[lent])).all()
    # a file saved before lent whole residuals, as its weight was fitted: it loads so
    dense.save(tmp_path / "dense")
    config_path = tmp_path / "dense" / "config.json"
    config = json.loads(config_path.read_text())
    del config["options"]["sparse_neighbours"], config["options"]["pair_neighbours"]["sparsity"]
    config["config_sha256"] = _config_sha256(config)
    config_path.write_text(json.dumps(config))
    loaded = ps.models.PerturbationModel.load(tmp_path / "dense")
    assert not loaded.sparse_neighbours and loaded.pair_neighbours.sparsity is None
    np.testing.assert_array_equal(loaded.predict(pairs).X, dense.predict(pairs).X)


def test_pair_neighbours_are_saved_and_loaded(fitted_combo, tmp_path):
    adata, model = fitted_combo
    query = [str(c) for c in adata.uns["perturbsim"]["split"]["test"]]
    model.save(tmp_path / "stacked")
    loaded = ps.models.PerturbationModel.load(tmp_path / "stacked")
    assert loaded.pair_neighbours.power == model.pair_neighbours.power
    assert loaded.pair_neighbours.sparsity == SPARSITY and loaded.sparse_neighbours
    np.testing.assert_array_equal(loaded.predict(query).X, model.predict(query).X)


def test_a_model_saved_with_the_neighbours_weight_among_the_corrections_loads(
    fitted_combo, tmp_path, caplog
):
    adata, model = fitted_combo
    query = [str(c) for c in adata.uns["perturbsim"]["split"]["test"]]
    model.save(tmp_path / "stacked")
    config_path = tmp_path / "stacked" / "config.json"
    config = json.loads(config_path.read_text())
    # the layout of the previous release: the neighbours' weight ended each kind's corrections
    neighbours = config["options"].pop("neighbours_weight")
    for kind, fitted in config["options"]["corrections"].items():
        fitted["weights"].append(neighbours["weights"][0] if kind == "combo_seen2" else 0.0)
    # and its neighbours lent whole residuals, their weight fitted on those
    del config["options"]["neighbours_beyond_singles"]
    del config["config_sha256"]  # nor a checksum of their config
    config_path.write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        loaded = ps.models.PerturbationModel.load(tmp_path / "stacked")
    assert "beyond a pair's singles" in caplog.text and "refit it" in caplog.text
    np.testing.assert_array_equal(loaded.predict(query).X, model.predict(query).X)
    pd.testing.assert_frame_equal(
        loaded.weights.drop(columns="n_conditions"), model.weights.drop(columns="n_conditions")
    )


def test_an_option_of_another_version_in_a_part_is_refused(fitted_combo, tmp_path):
    _, model = fitted_combo
    model.save(tmp_path / "stacked")
    config_path = tmp_path / "stacked" / "config.json"
    config = json.loads(config_path.read_text())
    config["options"]["parts"]["linear"]["future_option"] = 1  # a later version's part
    config["config_sha256"] = _config_sha256(config)
    config_path.write_text(json.dumps(config))
    with pytest.raises(ps.PerturbsimError, match=r"saved linear model .* \(future_option\)"):
        ps.models.PerturbationModel.load(tmp_path / "stacked")


def test_a_model_without_neighbours_saved_before_their_weight_loads_and_saves_again(tmp_path):
    adata = split_small("combo", 1)
    model = ps.models.Stacked(
        adata, corrections=("linear",), neighbours=False, shared_change=False
    ).fit()
    model.save(tmp_path / "stacked")
    config_path = tmp_path / "stacked" / "config.json"
    config = json.loads(config_path.read_text())
    del config["options"]["neighbours_weight"]  # the previous release's layout
    for key in ("shared_change", "predicted_pair_roles"):  # before the shared-change fit
        del config["options"][key]
    del config["options"]["pair_roles"]["shared"]
    del config["config_sha256"]  # with no checksum of its config
    config_path.write_text(json.dumps(config))
    loaded = ps.models.PerturbationModel.load(tmp_path / "stacked")
    loaded.save(tmp_path / "again")
    again = ps.models.PerturbationModel.load(tmp_path / "again")
    query = [str(c) for c in adata.uns["perturbsim"]["split"]["test"]]
    np.testing.assert_array_equal(again.predict(query).X, model.predict(query).X)


def test_corrections_are_not_weighted_on_validation_conditions_of_other_kinds():
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, seed=1)
    split = adata.uns["perturbsim"]["split"]
    trained = {
        ps.pp.genes_of(c)[0] for c in map(str, split["train"]) if len(ps.pp.genes_of(c)) == 1
    }
    val_kinds = [kind_of(ps.pp.genes_of(str(c)), trained) for c in split["val"]]
    # one validation pair with a measured gene, one with none: too few to weigh either
    assert val_kinds.count("combo_seen1") == 1 and val_kinds.count("combo_seen0") == 1
    # weighted (partial_sum=False), not summed as by default
    model = ps.models.Stacked(adata, corrections=("linear_go",), partial_sum=False).fit()
    seen1 = model.weights.query("kind == 'combo_seen1'").set_index("part")
    assert seen1.loc["linear_go", "n_conditions"] == 0 and not seen1.loc["linear_go", "pooled"]
    assert seen1.loc["linear_go", "weight"] == 0.0


def test_validation_pairs_are_fitted_as_they_are_predicted(monkeypatch):
    adata = split_small("combo", 3, val_fraction=0.3)
    recorded: dict = {}
    fit_error_model = ps.models.Stacked._fit_error_model

    def record(self, data, held_out, val, val_residuals):
        recorded.update(val=list(val), residuals=val_residuals.copy())
        return fit_error_model(self, data, held_out, val, val_residuals)

    monkeypatch.setattr(ps.models.Stacked, "_fit_error_model", record)
    model = ps.models.Stacked(adata, corrections=("linear",)).fit()
    weights = model.weights.query("kind == 'combo_seen2'").set_index("part")["weight"]
    # the neighbours weigh in (10 pairs); 3 validation pairs are too few to weigh `linear`
    assert weights["pair_neighbours"] > 0 and weights["linear"] == 0
    # a pair with a gene measured only in pairs is predicted from its inferred single once
    # the weights are fitted, as a validation single joins the measured ones then
    rows = [
        i
        for i, c in enumerate(recorded["val"])
        if len(ps.pp.genes_of(c)) == 2 and not set(ps.pp.genes_of(c)) & set(model.inferred)
    ]
    assert len(rows) >= 3
    stats = ScreenData.from_adata(adata).stats
    conditions = [recorded["val"][i] for i in rows]
    measured = stats.delta[stats.index(conditions)].astype(np.float64)
    predicted = model._point_change([ps.pp.genes_of(c) for c in conditions])
    np.testing.assert_allclose(recorded["residuals"][rows], measured - predicted, atol=1e-6)


def test_a_gene_outside_the_screen_is_predicted_from_go_and_flagged(norman):
    ps.pp.split(norman, kind="simulation", seed=1)
    model = ps.models.Stacked(norman, seed=0).fit(max_epochs=2)
    screen = set(map(str, norman.var_names)) | set(model.screen_genes)
    assert "MYC" not in screen and model.covers(["MYC", "KLF1+MYC"]).all()
    pred = model.predict(["MYC", "KLF1+MYC"])
    assert pred.obs["unsupported"].all() and np.isfinite(pred.X).all()
    with pytest.raises(ps.PerturbsimError, match="strict"):
        model.predict(["MYC"], strict=True)


def _move(adata: ad.AnnData, conditions: list[str], to: str) -> None:
    """Move ``conditions`` of the recorded split into its ``to`` set (train or val)."""
    split = adata.uns["perturbsim"]["split"]
    recorded = {str(c) for name in ("train", "val", "test") for c in split[name]}
    assert conditions and set(conditions) <= recorded
    for name in ("train", "val", "test"):
        kept = [str(c) for c in split[name] if str(c) not in conditions]
        split[name] = np.array(kept + (conditions if name == to else []), dtype=object)


def _unmeasured_pairs(adata: ad.AnnData, name: str) -> list[tuple[str, ...]]:
    """Pairs of the split's ``name`` set neither of whose genes a training single perturbs."""
    split = adata.uns["perturbsim"]["split"]
    singles = {str(c) for c in split["train"] if "+" not in str(c) and str(c) != "ctrl"}
    pairs = [ps.pp.genes_of(str(c)) for c in split[name] if "+" in str(c)]
    return [genes for genes in pairs if singles.isdisjoint(genes)]


@pytest.mark.parametrize("infer_singles", [True, False])
def test_pairs_of_genes_never_measured_alone_are_weighted_on_pairs_of_untrained_genes(
    infer_singles: bool,
):
    adata = split_small("simulation", 4, val_fraction=0.3)
    split = adata.uns["perturbsim"]["split"]
    # two more validation pairs of unmeasured genes; then one validation pair's gene trained
    _move(adata, ["+".join(p) for p in _unmeasured_pairs(adata, "test")[:2]], "val")
    val_genes = {g for p in _unmeasured_pairs(adata, "val") for g in p}
    test_pairs = [str(c) for c in split["test"] if "+" in str(c)]
    _move(adata, [next(c for c in test_pairs if val_genes & set(ps.pp.genes_of(c)))], "train")
    trained = {g for c in split["train"] for g in ps.pp.genes_of(str(c))}
    unmeasured = _unmeasured_pairs(adata, "val")
    untrained = [genes for genes in unmeasured if trained.isdisjoint(genes)]
    assert 4 <= len(untrained) < len(unmeasured)
    model = ps.models.Stacked(adata, corrections=("linear",), infer_singles=infer_singles).fit()
    seen0 = model.weights.query("kind == 'combo_seen0' and part == 'linear'").iloc[0]
    # with inferred singles the correcting models' knowledge of a trained gene serves the
    # pairs it is in through its inferred single: those pairs are no unmeasured pair's peers
    assert seen0["n_conditions"] == (len(untrained) if infer_singles else len(unmeasured))
    errors = model.error_scales.set_index("kind").loc["combo_seen0"]
    assert errors["n_conditions"] == len(unmeasured)  # every pair as predicted: more rows


def test_a_gene_outside_the_screen_is_refused_with_the_missing_go_part_named():
    adata = split_small("simulation", 1)
    model = ps.models.Stacked(adata, corrections=("linear",)).fit()
    with pytest.raises(ps.PerturbsimError, match="without 'gears' or 'linear_go' among its"):
        model.predict("TP53")


def test_a_screen_go_does_not_annotate_leaves_the_go_correction_out(tiny, caplog):
    del tiny.uns["simulation"]  # its genes then in no GO annotation
    ps.pp.split(tiny, kind="simulation", seed=1)
    with caplog.at_level("WARNING", logger="perturbsim"):
        model = ps.Stacked(tiny, seed=0).fit(max_epochs=2)
    assert "linear_go" not in model.corrections and "leaves the correction out" in caplog.text
    assert np.isfinite(model.predict([tiny.obs["condition"].iloc[-1]]).X).all()


def test_models_write_nothing_into_the_screen_nor_move_the_global_generators():
    import copy
    import random

    numpy_state = np.random.get_state()  # noqa: NPY002 (the global state it must keep)
    python_state = random.getstate()
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, kind="simulation", seed=1)
    ps.pp.rank_de(adata)
    obs, var, uns = adata.obs.copy(), adata.var.copy(), copy.deepcopy(adata.uns)
    layers, x = set(adata.layers), adata.X.copy()
    queries = ["KLF1+MAP2K6", "KLF1", "FOXO4", "TMSB4X"]
    for name in ("stacked", "mean", "additive", "linear", "linear_go"):
        model = ps.models.build_model(name, adata, seed=0)
        model.fit(**({"max_epochs": 2} if name == "stacked" else {}))
        known = [q for q, ok in zip(queries, model.covers(queries), strict=True) if ok]
        assert known, name
        model.predict(known)
        model.sample(known[:1], adata, n_cells=5, seed=1)
    pd.testing.assert_frame_equal(adata.obs, obs)
    pd.testing.assert_frame_equal(adata.var, var)
    assert set(adata.layers) == layers and (adata.X != x).nnz == 0
    assert (
        adata.uns.keys() == uns.keys()
        and adata.uns["perturbsim"].keys() == uns["perturbsim"].keys()
    )
    for key, entry in uns["perturbsim"].items():
        assert repr(adata.uns["perturbsim"][key]) == repr(entry), key
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1])
    assert after[2:] == numpy_state[2:] and random.getstate() == python_state


def test_nearly_collinear_parts_are_still_told_apart():
    # parts collinear to about 1e-2 (far above the documented ~1e-6 cut) keep both
    # directions: targets made exactly of 0.3 and 0.5 of them give back 0.3 and 0.5, and
    # every leave-one-out fit agrees, so nothing is shrunk
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(MIN_CONDITIONS + 2):
        x, z = rng.normal(size=(2, 60))
        parts = np.c_[x, x + 0.02 * z]
        rows.append(FitRow("a", parts, parts @ [0.3, 0.5]))
    np.testing.assert_allclose(shrunk_fit(rows, np.zeros(2)), [0.3, 0.5], atol=1e-6)


def test_the_kind_of_a_set_counts_how_many_of_its_genes_were_measured_alone():
    measured = {"A", "B", "C"}
    assert kind_of((), measured) == "control"
    assert kind_of(("A",), measured) == "seen_single"
    assert kind_of(("X",), measured) == "unseen_single"
    assert kind_of(("A", "B"), measured) == "combo_seen2"
    assert kind_of(("A", "X"), measured) == "combo_seen1"
    assert kind_of(("X", "Y"), measured) == "combo_seen0"
    # a triple is all measured or not: two of three measured is some
    assert kind_of(("A", "B", "C"), measured) == "combo_seen2"
    assert kind_of(("A", "B", "X"), measured) == "combo_seen1"


def test_an_unseen_single_moves_its_own_target_by_the_learnt_direct_effect(fitted_small):
    adata, _ = fitted_small
    baseline = ps.models.build_model("stacked_baseline", adata, seed=0).fit()
    gene = str(adata.uns["perturbsim"]["split"]["subgroups"]["unseen_single"][0])
    column = baseline._gene_column[gene]
    weights = baseline.weights.query("kind == 'unseen_single'").set_index("part")["weight"]
    delta = baseline.predict([gene]).layers["delta"][0]
    mean, effect = baseline.mean_change, baseline.target_effect
    assert abs(effect[column]) > 10 * abs(mean[column])
    # the baseline without corrections: the scaled mean change, plus the direct effect on
    # the gene's own target
    assert delta[column] == pytest.approx(weights["scale"] * (mean[column] + effect[column]))
    others = np.arange(len(delta)) != column
    np.testing.assert_allclose(delta[others], weights["scale"] * mean[others], atol=1e-6)
