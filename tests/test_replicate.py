"""The split-half replicate (the screen's noise ceiling) and calibrated scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import perturbsim as ps
from perturbsim.pp._pseudobulk import half_labels
from perturbsim.tl import EvaluationResult
from perturbsim.tl._result import SCORE_COLUMNS


def test_half_labels_split_every_condition_in_two_seeded_halves():
    codes = np.repeat([0, 1, 2], [7, 4, 1])
    names = [f"cell{i}" for i in range(codes.size)]
    halves = half_labels(codes, 3, names, seed=5)
    assert [np.bincount(halves[codes == c], minlength=2).tolist() for c in range(3)] == [
        [3, 4],
        [2, 2],
        [0, 1],
    ]
    np.testing.assert_array_equal(halves, half_labels(codes, 3, names, seed=5))
    assert any(
        not np.array_equal(halves, half_labels(codes, 3, names, seed=s)) for s in range(6, 12)
    )


def test_half_labels_follow_the_cells_names_not_their_positions():
    codes = np.repeat([0, 1], [9, 6])
    names = np.array([f"cell{i}" for i in range(codes.size)])
    halves = half_labels(codes, 2, names, seed=0)
    order = np.random.default_rng(1).permutation(codes.size)
    np.testing.assert_array_equal(half_labels(codes[order], 2, names[order], seed=0), halves[order])
    # leaving out condition 0's cells keeps condition 1's halves
    kept = codes == 1
    np.testing.assert_array_equal(half_labels(codes[kept], 2, names[kept], seed=0), halves[kept])


def test_cells_of_one_name_are_still_split_at_random():
    codes = np.zeros(40, dtype=int)
    names = np.array(["KLF1"] * 40)  # e.g. obs_names set to the guide
    draws = {tuple(half_labels(codes, 1, names, seed=s)) for s in range(5)}
    assert len(draws) == 5  # each seed draws its own halves, not the first cells stored
    first = np.array(next(iter(draws)))
    assert first.sum() == 20 and 0 < first[:20].sum() < 20


def test_statistics_stored_by_positions_are_drawn_again_by_names(tiny, caplog):
    import logging

    from perturbsim.pp._pseudobulk import current_stats

    screen = tiny.copy()
    ps.pp.pseudobulk(screen)
    stored = screen.uns["perturbsim"]["pseudobulk"]
    assert stored["drawn_by"] == "names"
    fresh = current_stats(screen)
    del stored["drawn_by"]  # as an earlier version wrote them, halves drawn by position
    stored["half_n"] = stored["half_n"][::-1].copy()  # (a mark to tell them apart)
    assert ps.pp.PseudobulkStats.stored_in(screen).drawn_by == "positions"
    with caplog.at_level(logging.INFO, logger="perturbsim"):
        again = current_stats(screen)
    assert "drew their split halves and co-expression cells by the cells' positions" in caplog.text
    np.testing.assert_array_equal(again.half_n, fresh.half_n)


def test_the_co_expression_subset_is_drawn_apart_from_the_halves(norman):
    from perturbsim.pp._pseudobulk import COEXPR_SAMPLE_KEY, cell_keys, half_seed_key

    names = norman.obs_names
    chosen = np.argsort(cell_keys(names, COEXPR_SAMPLE_KEY))[:1000]
    halves = half_labels(
        norman.obs["perturbsim_condition"].cat.codes.to_numpy(),
        len(norman.obs["perturbsim_condition"].cat.categories),
        names,
        seed=0,
    )
    # the subset takes each half about alike (binomial sd of the share: 0.016)
    assert abs(halves[chosen].mean() - 0.5) < 0.06
    assert COEXPR_SAMPLE_KEY != half_seed_key(0)
    with pytest.raises(ps.PerturbsimError, match="half_seed must be a whole number"):
        half_seed_key(-1)


def test_replicate_of_a_reordered_screen_is_the_same(tiny):
    stats = ps.pp.compute_pseudobulk(tiny)
    order = np.random.default_rng(2).permutation(tiny.n_obs)
    shuffled = ps.pp.compute_pseudobulk(tiny[order].copy())
    np.testing.assert_array_equal(shuffled.half_n, stats.half_n)
    np.testing.assert_allclose(shuffled.half_moments, stats.half_moments, atol=1e-9)


def test_half_means_come_from_the_same_streaming_pass(tiny):
    codes = tiny.obs["perturbsim_condition"].cat.codes.to_numpy()
    first_cells = np.unique(codes, return_index=True)[1]
    tiny = tiny[np.setdiff1d(np.arange(tiny.n_obs), first_cells[::2])].copy()  # odd halves
    stats = ps.pp.compute_pseudobulk(tiny, chunk_size=97)
    assert (stats.half_n[0] != stats.half_n[1]).any()
    codes = tiny.obs["perturbsim_condition"].cat.codes.to_numpy()
    halves = half_labels(codes, len(stats.conditions), tiny.obs_names, seed=0)
    x = tiny.X.toarray().astype(np.float64)
    for c in range(len(stats.conditions)):
        for half in (0, 1):
            rows = (codes == c) & (halves == half)
            assert stats.half_n[half, c] == rows.sum()
            np.testing.assert_allclose(
                stats.half_moments[half, 0, c], x[rows].mean(axis=0), atol=1e-9
            )
    np.testing.assert_array_equal(stats.half_n.sum(axis=0), stats.n_cells)
    ps.pp.pseudobulk(tiny)
    stored = ps.pp.PseudobulkStats.from_adata(tiny)
    np.testing.assert_allclose(stored.half_moments, stats.half_moments, atol=1e-12)


def _replicate_pearson(cells_per_condition: int) -> float:
    adata = ps.ds.simulate(size="tiny", seed=0, cells_per_condition=cells_per_condition)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    result = ps.tl.evaluate(adata, models=["mean"], seeds=1, metrics=["pearson_delta"])
    rows = result.scores[result.scores["model"] == "replicate"]
    assert not rows.empty
    return float(rows["value"].mean())


def test_replicate_approaches_one_with_many_cells_and_falls_with_few():
    many, few = _replicate_pearson(400), _replicate_pearson(6)
    assert many > 0.9
    assert few < many - 0.2


def test_conditions_of_too_few_cells_are_left_out_or_scored_without_a_replicate(tiny, caplog):
    unseen = ["G0030", "G0057", "G0065"]  # the unseen singles of split seed 1
    labels = tiny.obs["condition"].astype(str).to_numpy()
    rows = [np.flatnonzero(~np.isin(labels, unseen))]
    rows += [np.flatnonzero(labels == label)[:3] for label in unseen]  # 3 cells each
    small = tiny[np.sort(np.concatenate(rows))].copy()
    ps.pp.setup(small, perturbation_key="condition", control="control")
    default = ps.tl.evaluate(small, models=["mean"], seeds=[1], metrics=["mse"])
    assert not set(default.scores["condition"]) & set(unseen)  # by default: no model
    assert "unseen_single" not in set(default.coverage["subgroup"])
    assert "left out 3 test conditions of fewer than 4 cells (min_cells)" in caplog.text
    assert default.settings["min_cells"] == 4
    caplog.clear()
    result = ps.tl.evaluate(small, models=["mean"], seeds=[1], metrics=["mse"], min_cells=1)
    assert set(result.scores.loc[result.scores["model"] == "mean", "condition"]) >= set(unseen)
    replicate = result.coverage[result.coverage["model"] == "replicate"].set_index("subgroup")
    assert replicate.loc["unseen_single", "n_covered"] == 0
    assert replicate.loc["unseen_single", "n_total"] == len(unseen)
    scored = set(result.scores.loc[result.scores["model"] == "replicate", "condition"])
    assert not scored & set(unseen)
    assert "too few for a split-half replicate" in caplog.text
    with pytest.raises(ps.PerturbsimError, match="min_cells must be"):
        ps.tl.evaluate(small, models=["mean"], seeds=[1], min_cells=0)
    with pytest.raises(ps.PerturbsimError, match="every test condition has fewer than 10000"):
        ps.tl.evaluate(small, models=["mean"], seeds=[1], min_cells=10_000)


def test_calibrated_places_a_model_between_the_anchors_on_the_same_conditions():
    rows = []
    for seed, (x, b, r) in {
        1: ((0.5, 0.9), (0.2, 0.4), (0.8, 1.0)),
        2: ((0.3, 0.3), (0.1, 0.1), (0.5, 0.5)),
    }.items():
        for model, values in (("x", x), ("mean", b), ("replicate", r)):
            for condition, value in zip(("A", "B"), values, strict=True):
                rows.append((model, seed, "unseen_single", condition, "de_jaccard", value))
    # the baseline also scored a condition the model did not: it must not enter the anchor
    rows.append(("mean", 1, "unseen_single", "C", "de_jaccard", -5.0))
    rows.append(("replicate", 1, "unseen_single", "C", "de_jaccard", 5.0))
    scores = pd.DataFrame(
        rows, columns=["model", "seed", "subgroup", "condition", "metric", "value"]
    )
    result = EvaluationResult(scores=scores, coverage=pd.DataFrame(columns=["model", "subgroup"]))
    table = result.calibrated()
    assert table["model"].tolist() == ["x"]
    # model - baseline: seed 1 0.7 - 0.3 = 0.4, seed 2 0.3 - 0.1 = 0.2; spans 0.6 and 0.4,
    # pooled 0.5: per-seed values 0.8 and 0.4, mean 0.6
    assert table["mean"].item() == pytest.approx(0.6)
    assert table["std"].item() == pytest.approx(np.std([0.8, 0.4], ddof=1))
    assert table["n_seeds"].item() == 2 and table["n_conditions"].item() == 4
    no_anchor = EvaluationResult(scores=scores[scores["model"] != "replicate"], coverage=scores)
    assert no_anchor.calibrated().empty


def test_a_result_of_tables_without_the_columns_read_is_refused_in_one_line():
    scores = pd.DataFrame(
        {"model": ["x"], "seed": [1], "condition": ["A"], "metric": ["mse"], "value": [0.1]}
    )
    with pytest.raises(ps.PerturbsimError) as err:
        EvaluationResult(scores=scores, coverage=pd.DataFrame())
    assert str(err.value).startswith("no columns ['subgroup'] in scores (it has model, seed")
    with pytest.raises(ps.PerturbsimError, match=r"^no columns \['r2'\] in gi"):
        EvaluationResult(
            scores=pd.DataFrame(),
            coverage=pd.DataFrame(),
            gi=pd.DataFrame({c: [0] for c in ("model", "seed", "subtype", "n_pairs")}).assign(
                precision_at_k=1.0, random_precision=0.5, top_k_accuracy=0.0
            ),
        )
    assert EvaluationResult(scores=pd.DataFrame(), coverage=pd.DataFrame()).scores.empty


def test_head_to_head_compares_two_models_on_the_conditions_both_cover():
    rows = []
    for seed, shift in ((1, 0.0), (2, 0.02)):
        values = {
            "ref": {"easy": 0.9 + shift, "easy2": 0.9 + shift, "hard": 0.3},
            "narrow": {"easy": 0.8, "easy2": 0.8},  # covers only the easy conditions
            "mean": {"easy": 0.1, "easy2": 0.1, "hard": 0.1},
            "replicate": {"easy": 1.1, "easy2": 1.1, "hard": 1.1},
        }
        for model, by_condition in values.items():
            for condition, value in by_condition.items():
                rows.append((model, seed, "unseen_single", condition, "de_jaccard", value))
    scores = pd.DataFrame(
        rows, columns=["model", "seed", "subgroup", "condition", "metric", "value"]
    )
    result = EvaluationResult(scores=scores, coverage=pd.DataFrame(columns=["model", "subgroup"]))
    # on each model's own conditions the narrow model looks better ...
    calibrated = result.calibrated().set_index("model")["mean"]
    assert calibrated["narrow"] > calibrated["ref"]
    # ... on the shared condition the reference is better, by 0.1 and 0.12 of the span
    table = result.head_to_head("ref")
    assert table["model"].tolist() == ["narrow"]
    row = table.iloc[0]
    assert row["mean"] == pytest.approx(0.11)
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert row["reference"] == pytest.approx(0.81) and row["model_value"] == pytest.approx(0.7)
    assert row["n_conditions"] == 4 and row["n_seeds"] == 2
    with pytest.raises(ps.PerturbsimError, match="reference 'nope'"):
        result.head_to_head("nope")
    with pytest.raises(ps.PerturbsimError, match="anchor of the calibration"):
        result.head_to_head("mean")


def test_calibrated_maps_the_replicate_to_full_depth_and_needs_it_to_beat_the_baseline():
    values = {
        "de_jaccard": (0.5, 0.3, 0.25),
        "pearson_delta": (0.5, 0.3, 0.4),
        "mse": (0.5, 0.3, 0.4),
    }
    rows = [
        (model, 1, "unseen_single", condition, metric, value)
        for condition in ("A", "B")  # alike: a span with no noise
        for metric, triple in values.items()
        for model, value in zip(("x", "mean", "replicate"), triple, strict=True)
    ]
    scores = pd.DataFrame(
        rows, columns=["model", "seed", "subgroup", "condition", "metric", "value"]
    )
    result = EvaluationResult(scores=scores, coverage=scores)
    table = result.calibrated().set_index("metric")
    # de_jaccard has no depth rule: the replicate (0.25) is worse than the baseline (0.3)
    assert np.isnan(table.loc["de_jaccard", "mean"])
    # pearson_delta: Spearman-Brown 2 * 0.4 / 1.4 = 4/7; (0.5 - 0.3) / (4/7 - 0.3)
    assert table.loc["pearson_delta", "mean"] == pytest.approx(0.2 / (4 / 7 - 0.3))
    # mse: a full-depth repeat has half the error, 0.2: (0.5 - 0.3) / (0.2 - 0.3) = -2
    assert table.loc["mse", "mean"] == pytest.approx(-2.0)
    per_seed = result.per_seed().set_index(["model", "metric"])["value"]
    assert per_seed["replicate", "pearson_delta"] == pytest.approx(4 / 7)
    assert per_seed["replicate", "mse"] == pytest.approx(0.2)
    assert per_seed["x", "mse"] == pytest.approx(0.5)


def test_calibrated_needs_the_replicate_to_beat_the_baseline_beyond_noise():
    def calibrated(
        replicate: dict[str, float], metric: str = "de_jaccard", seeds: tuple[int, ...] = (1,)
    ) -> float:
        rows = []
        for seed in seeds:
            for condition, value in replicate.items():
                rows += [
                    ("x", seed, "unseen_single", condition, metric, 0.5),
                    ("mean", seed, "unseen_single", condition, metric, 0.3),
                    ("replicate", seed, "unseen_single", condition, metric, value),
                ]
        scores = pd.DataFrame(
            rows, columns=["model", "seed", "subgroup", "condition", "metric", "value"]
        )
        return EvaluationResult(scores=scores, coverage=scores).calibrated()["mean"].item()

    # a clear margin over four conditions: (0.5 - 0.3) / (0.6 - 0.3)
    assert calibrated({"A": 0.55, "B": 0.6, "C": 0.65, "D": 0.6}) == pytest.approx(2 / 3)
    # beating the baseline in the mean, by a hair against the spread: 0.2 / 0.002 would
    # read as a hundred repeats of the experiment
    assert np.isnan(calibrated({"A": 0.5, "B": 0.1, "C": 0.35, "D": 0.258}))
    assert np.isnan(calibrated({"A": 0.6}))  # one condition: no spread to judge it by
    # nor when several seeds score that one condition (its replicate is the same split)
    assert np.isnan(calibrated({"A": 0.6}, seeds=(1, 2, 3)))
    # lower is better: halved to a full-depth repeat, the replicate's errors 0.2 beat the
    # mean's 0.3 on every condition; (0.5 - 0.3) / (0.2 - 0.3) = -2
    assert calibrated({"A": 0.4, "B": 0.4, "C": 0.4}, "mse") == pytest.approx(-2.0)
    # and a replicate whose error is worse than the mean's, by the spread, is undefined
    assert np.isnan(calibrated({"A": 0.7, "B": 0.9, "C": 0.6}, "mse"))


def test_calibrated_judges_the_replicate_s_margin_by_its_standard_error_not_its_spread():
    # replicate margins over the mean baseline 0.1, 0.1, 0.1, 0.9: mean 0.3, standard
    # deviation 0.4 (squares 0.04 * 3 + 0.36 = 0.48 over 3 df), standard error 0.4 / 2 = 0.2.
    # The mean margin clears one standard error (not one standard deviation): defined
    margins = {"A": 0.1, "B": 0.1, "C": 0.1, "D": 0.9}
    rows = []
    for condition, margin in margins.items():
        rows += [
            ("x", 1, "unseen_single", condition, "de_jaccard", 0.2),
            ("mean", 1, "unseen_single", condition, "de_jaccard", 0.05),
            ("replicate", 1, "unseen_single", condition, "de_jaccard", 0.05 + margin),
        ]
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    calibrated = EvaluationResult(scores=scores, coverage=scores).calibrated()["mean"].item()
    # de_jaccard has no depth rule: (0.2 - 0.05) / 0.3
    assert calibrated == pytest.approx(0.5)


def test_half_statistics_split_every_condition_control_included(tiny):
    stats = ps.pp.compute_pseudobulk(tiny)
    second = stats.half(1)
    codes = tiny.obs["perturbsim_condition"].cat.codes.to_numpy()
    halves = half_labels(codes, len(stats.conditions), tiny.obs_names, seed=0)
    x = tiny.X.toarray().astype(np.float64)
    for label in ("ctrl", "G0024"):
        row = int(np.flatnonzero(stats.conditions == label)[0])
        cells = x[(codes == row) & (halves == 1)]
        assert second.n_cells[row] == len(cells) < stats.n_cells[row]
        np.testing.assert_allclose(second.mean[row], cells.mean(axis=0), atol=1e-9)
        np.testing.assert_allclose(second.variance()[row], cells.var(axis=0, ddof=1), atol=1e-9)
    with pytest.raises(ps.PerturbsimError, match="which must be 0 or 1"):
        stats.half(2)


def test_the_replicate_is_mapped_to_full_depth_condition_by_condition():
    # split-half correlations 0.1 and 0.9: a full-depth repeat's are 2r / (1 + r) each,
    # mean 0.5646; the mapping of their mean, 0.5, would read 0.6667
    rows = [
        (model, seed, "unseen_single", condition, "pearson_delta", value)
        for seed in (1, 2)
        for model, by_condition in (
            ("x", {"A": 0.3, "B": 0.3}),
            ("mean", {"A": 0.0, "B": 0.0}),
            ("replicate", {"A": 0.1, "B": 0.9}),
        )
        for condition, value in by_condition.items()
    ]
    scores = pd.DataFrame(
        rows, columns=["model", "seed", "subgroup", "condition", "metric", "value"]
    )
    result = EvaluationResult(scores=scores, coverage=pd.DataFrame(columns=["model", "subgroup"]))
    ceiling = np.mean([0.2 / 1.1, 1.8 / 1.9])
    per_seed = result.per_seed().set_index(["model", "seed"])["value"]
    assert per_seed["replicate", 1] == pytest.approx(ceiling)
    # two distinct conditions, margins 0.18 and 0.95: clear of noise; x stands at 0.3 of 0.5646
    assert result.calibrated()["mean"].item() == pytest.approx(0.3 / ceiling)


def test_the_calibrated_interval_holds_the_noise_of_the_replicates_margin():
    def result(margins: list[float], follows: bool = False) -> EvaluationResult:
        rows = []
        for seed in range(1, 6):
            for condition, margin in zip("ABCDEF", margins, strict=True):
                gain = 0.5 * margin if follows else 0.2
                rows += [
                    ("x", seed, "unseen_single", condition, "de_jaccard", 0.2 + gain + 0.02 * seed),
                    ("mean", seed, "unseen_single", condition, "de_jaccard", 0.2),
                    ("replicate", seed, "unseen_single", condition, "de_jaccard", 0.2 + margin),
                ]
        scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
        return EvaluationResult(scores=scores, coverage=pd.DataFrame(columns=["model", "subgroup"]))

    def conditions_half(gains: np.ndarray, margins: np.ndarray, value: float) -> float:
        """t(N - 1) times the linearised ratio estimator's standard error over conditions."""
        spread = (gains - value * margins) / (len(margins) * margins.mean())
        return stats.t.ppf(0.975, len(margins) - 1) * np.sqrt(
            len(margins) / (len(margins) - 1) * (spread**2).sum()
        )

    def seeds_half(row: pd.Series) -> float:
        return stats.t.ppf(0.975, 4) * row["std"] / np.sqrt(5)

    steady = result([0.4] * 6).calibrated().iloc[0]
    noisy = result([0.05, 0.75] * 3).calibrated().iloc[0]  # the same mean margin, 0.4
    assert steady["mean"] == pytest.approx(noisy["mean"]) == pytest.approx(0.65)
    # a span of equal margins adds nothing beyond the seeds' spread
    assert steady["ci_high"] - steady["ci_low"] == pytest.approx(2 * seeds_half(steady))
    # a noisy span: the conditions' standard error, far wider than the seeds'; each
    # condition's gain over its 5 seeds averages 0.2 + 0.06
    margins = np.array([0.05, 0.75] * 3)
    expected = conditions_half(np.full(6, 0.26), margins, 0.65)
    assert expected > 3 * seeds_half(noisy)
    assert noisy["ci_high"] - noisy["ci_low"] == pytest.approx(2 * expected)
    # a gain that half follows the margin moves with the span less, but still beyond the
    # seeds' spread: 0.5 + 0.06 / span
    following = result([0.05, 0.75] * 3, follows=True).calibrated().iloc[0]
    half = conditions_half(0.5 * margins + 0.06, margins, following["mean"])
    assert seeds_half(following) < half < expected / 3
    assert following["ci_high"] - following["ci_low"] == pytest.approx(2 * half)


def test_the_conditions_standard_error_weighs_each_condition_as_the_seeds_draw_it():
    draws = {1: "ABC", 2: "ABD", 3: "AB"}  # A and B drawn by every seed, C and D by one
    margin = {"A": 0.2, "B": 0.9, "C": 0.5, "D": 0.3}
    gain = {"A": 0.3, "B": 0.1, "C": 0.6, "D": 0.0}
    rows = []
    for seed, conditions in draws.items():
        for condition in conditions:
            shift = 0.01 * seed  # the model's gain differs a little by seed, the anchors not
            for model, value in (
                ("x", gain[condition] + shift),
                ("y", 0.5 * gain[condition]),
                ("mean", 0.0),
                ("replicate", margin[condition]),
            ):
                rows.append((model, seed, "combo_seen1", condition, "de_jaccard", value))
    result = EvaluationResult(
        scores=pd.DataFrame(rows, columns=SCORE_COLUMNS),
        coverage=pd.DataFrame(columns=["model", "subgroup"]),
    )
    # weights 1 / (3 seeds x the seed's conditions); the ratio of weighted sums
    weights = {(s, c): 1 / (3 * len(cs)) for s, cs in draws.items() for c in cs}
    span = sum(w * margin[c] for (_, c), w in weights.items())

    def half_width(gain_of) -> tuple[float, float]:
        value = sum(w * gain_of(s, c) for (s, c), w in weights.items()) / span
        per_condition = {c: 0.0 for c in "ABCD"}
        for (s, c), w in weights.items():
            per_condition[c] += w * (gain_of(s, c) - value * margin[c]) / span
        squares = np.array(list(per_condition.values())) ** 2
        return value, stats.t.ppf(0.975, 3) * np.sqrt(4 / 3 * squares.sum())

    value, expected = half_width(lambda s, c: gain[c] + 0.01 * s)
    row = result.calibrated().set_index("model").loc["x"]
    assert row["mean"] == pytest.approx(value)
    assert row["ci_high"] - row["mean"] == pytest.approx(expected)
    # head to head: the same estimator of the difference of the two gains
    difference, expected = half_width(lambda s, c: 0.5 * gain[c] + 0.01 * s)
    versus = result.head_to_head("x").iloc[0]
    assert versus["mean"] == pytest.approx(difference)
    assert versus["ci_high"] - versus["mean"] == pytest.approx(expected)


def test_one_seed_gives_no_interval_whatever_its_conditions():
    rows = []
    for condition, (x, margin) in {"A": (0.3, 0.5), "B": (0.6, 0.9), "C": (0.1, 0.4)}.items():
        for model, value in (("x", x), ("y", x / 2), ("mean", 0.0), ("replicate", margin)):
            rows.append((model, 1, "unseen_single", condition, "de_jaccard", value))
    result = EvaluationResult(
        scores=pd.DataFrame(rows, columns=SCORE_COLUMNS),
        coverage=pd.DataFrame(columns=["model", "subgroup"]),
    )
    for table in (result.calibrated(), result.head_to_head("x")):
        row = table.set_index("model").loc["y"]
        assert np.isfinite(row["mean"]) and row["n_seeds"] == 1
        assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])


def test_the_conditions_variance_agrees_with_a_jackknife_over_conditions():
    from perturbsim.tl._result import _calibrated_per_seed, _calibration_table

    rng = np.random.default_rng(7)
    seeds = {seed: [f"c{seed}_{i}" for i in range(12)] for seed in range(1, 6)}
    margin = {c: rng.gamma(3.0, 0.1) for conditions in seeds.values() for c in conditions}
    rows = []
    for seed, conditions in seeds.items():
        for c in conditions:
            gain = 0.6 * margin[c] + rng.normal(0.0, 0.05)
            for model, value in (("x", gain), ("mean", 0.0), ("replicate", margin[c])):
                rows.append((model, seed, "unseen_single", c, "de_jaccard", value))
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)

    def calibrated(frame: pd.DataFrame) -> float:
        per_seed = _calibrated_per_seed(_calibration_table(frame, "mean"))
        return float(per_seed["value"].mean())

    per_seed = _calibrated_per_seed(_calibration_table(scores, "mean"))
    leave_one_out = np.array([calibrated(scores[scores["condition"] != c]) for c in margin])
    n = len(leave_one_out)
    jackknife = (n - 1) / n * ((leave_one_out - leave_one_out.mean()) ** 2).sum()
    # the jackknife re-weighs a seed's other conditions (12 a seed: a factor near 12/11)
    assert per_seed["ratio_var"].iloc[0] == pytest.approx(jackknife, rel=0.15)
