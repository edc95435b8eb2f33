from __future__ import annotations

import itertools
import logging
import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from dcor_reference import distance_correlation
from scipy import stats

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.cli import main
from perturbsim.pp import _gi
from perturbsim.pp._gi import is_scored, theil_sen
from perturbsim.tl import GIRules, gi_per_gene, gi_per_gene_auprc, gi_precision, gi_scores
from perturbsim.tl import _gi_precision as gi_precision_module

N_GENES = 80


def make_profiles(
    deltas: dict[str, np.ndarray],
    *,
    control: np.ndarray | None = None,
    genes: list[str] | None = None,
):
    """Profiles with one row per label: X = control + delta (control 1, genes g0.. default)."""
    labels = list(deltas)
    delta = np.stack([deltas[label] for label in labels])
    control = np.ones(delta.shape[1]) if control is None else control
    genes = [f"g{i}" for i in range(delta.shape[1])] if genes is None else genes
    profiles = ad.AnnData(
        control + delta, obs=pd.DataFrame(index=labels), var=pd.DataFrame(index=genes)
    )
    profiles.layers["delta"] = delta
    return profiles


@pytest.fixture
def singles():
    rng = np.random.default_rng(0)
    return rng.normal(size=N_GENES), rng.normal(size=N_GENES)


def score_pair(a: np.ndarray, b: np.ndarray, ab: np.ndarray, **kwargs) -> pd.Series:
    profiles = make_profiles({"A": a, "B": b, "A+B": ab})
    return gi_scores(profiles, genes=list(profiles.var_names), **kwargs).loc["A+B"]


def test_additive_pair_has_magnitude_sqrt2_and_mean_coefficient_1(singles):
    a, b = singles
    row = score_pair(a, b, a + b)
    assert row["c1"] == pytest.approx(1, abs=1e-6)
    assert row["c2"] == pytest.approx(1, abs=1e-6)
    assert row["magnitude"] == pytest.approx(np.sqrt(2), abs=1e-6)  # GEARS's mag
    assert row["mean_abs_coef"] == pytest.approx(1, abs=1e-6)  # Norman's ts_norm
    assert row["fit_corr"] == pytest.approx(1)
    assert row["dominance"] == pytest.approx(0, abs=1e-6)
    assert row["flag"] == "" and row["n_genes"] == N_GENES
    # GEARS's thresholds on sqrt(c1² + c2²): an additive pair is a synergy ...
    assert row["is_synergy"] and not row["is_additive"]
    # ... and inside the additive band on Norman's normalisation
    norman = score_pair(a, b, a + b, rules=GIRules(magnitude_score="mean_abs_coef"))
    assert norman["is_additive"] and not norman["is_synergy"]


def test_an_additive_pair_off_by_rounding_is_not_a_suppression_on_normans_scale(singles):
    # Theil-Sen solves c to ~1e-8: an additive pair's mean |c| lands either side of the cut
    a, b = singles
    rules = GIRules(magnitude_score="mean_abs_coef")
    for rounding in (-1e-8, 0.0, 1e-8):
        row = score_pair(a, b, (1 + rounding) * (a + b), rules=rules)
        assert row["is_additive"] and not row["is_suppression"] and row["subtype"] == "additive"
    assert score_pair(a, b, 0.999 * (a + b), rules=rules)["is_suppression"]


def test_mean_abs_coef_averages_the_coefficients_magnitudes_not_their_sum(singles):
    # Norman's ts_norm is the mean of |c1| and |c2|: (2 + 0.5) / 2; coefficients of
    # opposite sign must not cancel, as |c1 + c2| / 2 = 0.75 would
    a, b = singles
    row = score_pair(a, b, 2 * a - 0.5 * b)
    assert row["c1"] == pytest.approx(2, abs=1e-6) and row["c2"] == pytest.approx(-0.5, abs=1e-6)
    assert row["mean_abs_coef"] == pytest.approx(1.25, abs=1e-6)


def test_scaled_pairs_are_synergy_and_suppression(singles):
    a, b = singles
    double = score_pair(a, b, 2 * (a + b))
    assert double["magnitude"] == pytest.approx(2 * np.sqrt(2), abs=1e-6)
    assert double["is_synergy"] and not double["is_suppression"]
    half = score_pair(a, b, 0.5 * (a + b))
    assert half["magnitude"] == pytest.approx(np.sqrt(2) / 2, abs=1e-6)  # 0.707
    assert half["is_suppression"] and not half["is_synergy"]
    assert not half["is_additive"]  # |0.707 - 1| = 0.29 > 0.25


def test_pair_independent_of_its_singles_is_neomorphic(singles):
    a, b = singles
    own = np.random.default_rng(1).normal(size=N_GENES)
    row = score_pair(a, b, own)
    assert row["fit_corr"] < 0.88
    assert row["is_neomorphism"] and row["subtype"] == "neomorphism"


def test_pair_of_two_alike_singles_is_redundant(singles):
    a, _ = singles
    b = a + 0.05 * np.random.default_rng(2).normal(size=N_GENES)
    row = score_pair(a, b, (a + b) / 2)
    assert row["dcor"] > 0.85 and row["dcor_singles"] > 0.85
    assert row["equality"] > 0.9
    assert row["is_redundancy"] and row["subtype"] == "redundancy"


def test_pair_that_is_one_single_is_epistatic(singles):
    a, b = singles
    row = score_pair(a, b, a + 0.01 * np.random.default_rng(3).normal(size=N_GENES))
    assert row["c1"] == pytest.approx(1, abs=0.02)
    assert row["c2"] == pytest.approx(0, abs=0.02)
    assert row["dominance"] > 1.5  # |log10(1 / 0.02)|
    assert row["equality"] < 0.28
    assert row["is_epistasis"] and row["subtype"] == "epistasis"
    mirrored = score_pair(b, a, a + 0.01 * np.random.default_rng(3).normal(size=N_GENES))
    assert mirrored["c2"] == pytest.approx(1, abs=0.02)
    assert mirrored["dominance"] == pytest.approx(row["dominance"])  # either single dominant
    assert mirrored["is_epistasis"]


def test_theil_sen_recovers_coefficients_under_outliers():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 2))
    y = x @ np.array([0.7, 1.3]) + 0.01 * rng.normal(size=200)
    y[:40] += rng.normal(scale=20, size=40)  # 20 % gross outliers
    least_squares = np.linalg.lstsq(x, y, rcond=None)[0]
    assert np.abs(least_squares - [0.7, 1.3]).max() > 0.3
    np.testing.assert_allclose(theil_sen(x, y), [0.7, 1.3], atol=0.02)


def test_theil_sen_matches_scikit_learn_without_intercept():
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 2))
    y = x @ np.array([0.4, -0.9]) + rng.standard_t(2, size=60)
    reference = linear_model.TheilSenRegressor(fit_intercept=False, random_state=0).fit(x, y)
    # all 1,770 subsets: no randomness on either side; scikit-learn stops at tol 1e-3
    np.testing.assert_allclose(theil_sen(x, y), reference.coef_, atol=2e-3)


def test_theil_sen_random_subsets_follow_the_seed():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 2))
    y = x @ np.array([1.0, 2.0]) + rng.normal(size=300)
    first = theil_sen(x, y, max_subsets=500, seed=1)
    np.testing.assert_array_equal(first, theil_sen(x, y, max_subsets=500, seed=1))
    assert not np.array_equal(first, theil_sen(x, y, max_subsets=500, seed=2))


def test_theil_sen_leaves_out_degenerate_subsets():
    # half the genes change in neither single: scikit-learn's minimum-norm solutions of
    # those subsets would pull the estimate towards 0
    x = np.r_[np.random.default_rng(7).normal(size=(20, 2)), np.zeros((20, 2))]
    y = x @ np.array([0.6, 0.8])
    np.testing.assert_allclose(theil_sen(x, y), [0.6, 0.8], atol=1e-6)
    assert np.isnan(theil_sen(np.zeros((5, 2)), np.ones(5))).all()


def exact_spatial_median(points: np.ndarray) -> np.ndarray:
    """The spatial median by a general-purpose minimiser (slow, independent of theil_sen)."""
    optimize = pytest.importorskip("scipy.optimize")

    def summed(c):
        return np.sqrt(((points - c) ** 2).sum(axis=1)).sum()

    start = np.median(points, axis=0)
    options = {"xatol": 1e-13, "fatol": 1e-13, "maxiter": 20_000}
    return optimize.minimize(summed, start, method="Nelder-Mead", options=options).x


def subset_solutions(x: np.ndarray, y: np.ndarray, first, second) -> np.ndarray:
    """Each non-degenerate subset's solution, one ``np.linalg.solve`` at a time."""
    out = []
    for i, j in zip(first, second, strict=True):
        rows = x[[i, j]]
        if abs(np.linalg.det(rows)) > 1e-10 * np.linalg.norm(rows[0]) * np.linalg.norm(rows[1]):
            out.append(np.linalg.solve(rows, y[[i, j]]))
    return np.array(out)


def test_theil_sen_is_the_spatial_median_of_all_subset_solutions():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(40, 2))
    y = x @ np.array([0.8, -0.3]) + rng.standard_t(1.5, size=40)  # heavy tails
    points = subset_solutions(x, y, *np.triu_indices(40, k=1))  # all 780 subsets
    assert len(points) == 780
    estimate = theil_sen(x, y)
    np.testing.assert_allclose(estimate, exact_spatial_median(points), atol=1e-7)
    # first-order optimality: the unit vectors towards the solutions cancel
    units = (points - estimate) / np.linalg.norm(points - estimate, axis=1)[:, None]
    assert np.linalg.norm(units.sum(axis=0)) < 1e-6


def test_theil_sen_random_subsets_are_the_documented_draws():
    # subset i is (first[i], second[i]) from numpy's generator seeded with ``seed``;
    # gi_scores draws its pairs' subsets this way from its seed
    rng = np.random.default_rng(14)
    x = rng.normal(size=(60, 2))
    y = x @ np.array([1.5, 0.5]) + rng.normal(size=60)
    draws = np.random.default_rng([3, 7])
    first = draws.integers(0, 60, size=300)
    second = draws.integers(0, 59, size=300)
    second += second >= first
    points = subset_solutions(x, y, first, second)
    np.testing.assert_allclose(
        theil_sen(x, y, max_subsets=300, seed=[3, 7]), exact_spatial_median(points), atol=1e-7
    )
    # many subsets are drawn in parts: the same numbers as one draw
    count = 3 * _gi._DRAW + 5
    out = [np.empty(count, dtype=np.int64) for _ in range(2)]
    parts = _gi._draw_subsets(1098, count, [0, 12345], out)
    draws = np.random.default_rng([0, 12345])
    first = draws.integers(0, 1098, size=count)
    second = draws.integers(0, 1097, size=count)
    second += second >= first
    np.testing.assert_array_equal(parts[0], first)
    np.testing.assert_array_equal(parts[1], second)


def spatial_median(points: np.ndarray) -> np.ndarray:
    work = [np.empty(len(points)) for _ in range(4)]
    px, py = (np.ascontiguousarray(points[:, k]) for k in range(2))
    return _gi._spatial_median(px, py, work, max_iter=1000, tol=1e-12)


def test_spatial_median_on_a_data_point_and_on_a_line():
    rng = np.random.default_rng(15)
    # 50 equal solutions outweigh the pull of the 30 others: the median is that point
    cluster = np.r_[np.tile([1.0, 2.0], (50, 1)), rng.normal(size=(30, 2))]
    np.testing.assert_array_equal(spatial_median(cluster), [1.0, 2.0])
    np.testing.assert_array_equal(spatial_median(np.tile([0.5, -1.0], (7, 1))), [0.5, -1.0])
    # collinear points (singular Hessian): the median along the line, its middle point
    t = rng.normal(size=21)
    line = np.column_stack([t, 2 * t + 1])
    np.testing.assert_allclose(spatial_median(line), line[np.argsort(t)[10]], atol=1e-9)
    # many points (a subsample gives the start)
    cloud = rng.standard_cauchy(size=(30_000, 2))
    np.testing.assert_allclose(spatial_median(cloud), exact_spatial_median(cloud), atol=1e-6)


@pytest.mark.parametrize("n_genes", [3, 64, 150])
def test_gi_distance_correlations_match_the_quadratic_definition(n_genes):
    rng = np.random.default_rng(n_genes)
    size = n_genes + 2  # the last two genes are the targets A and B
    a = np.round(rng.normal(size=size), 1)  # ties
    b = rng.normal(size=size)
    b[: n_genes // 3] = 0.0  # genes that change in one single only
    deltas = {
        "A": a,
        "B": b,
        "C": np.full(size, 0.5),  # constant: distance correlation 0
        "A+B": np.round(0.7 * a + 0.4 * b + 0.3 * rng.normal(size=size), 2),
        "A+C": a**2 + 0.1 * rng.normal(size=size),
    }
    genes = [*(f"g{i}" for i in range(n_genes)), "A", "B"]
    scores = gi_scores(make_profiles(deltas, genes=genes), genes=genes)
    fitted = {"A+B": slice(0, n_genes), "A+C": np.r_[0:n_genes, n_genes + 1]}  # targets out
    for pair, genes_fitted in fitted.items():
        fa, fb, fab = (deltas[label][genes_fitted] for label in [*pair.split("+"), pair])
        assert scores.loc[pair, "n_genes"] == len(fab)
        samples = {
            "dcor": (np.column_stack([fa, fb]), fab),
            "dcor_singles": (fa, fb),
            "dcor_a": (fa, fab),
            "dcor_b": (fb, fab),
        }
        for column, (x, y) in samples.items():  # distances in float32: equal to ~1e-6
            assert scores.loc[pair, column] == pytest.approx(distance_correlation(x, y), abs=1e-6)
    assert scores.loc["A+C", "dcor_b"] == 0.0
    assert scores.loc["A+C", "dcor_singles"] == 0.0


def test_scores_do_not_depend_on_the_threads(singles, monkeypatch):
    a, b = singles
    rng = np.random.default_rng(16)
    deltas = {"A": a, "B": b, "C": rng.normal(size=N_GENES)}
    for pair in ["A+B", "A+C", "B+C"]:
        first, second = pair.split("+")
        deltas[pair] = deltas[first] - 0.5 * deltas[second] + 0.2 * rng.normal(size=N_GENES)
    profiles = make_profiles(deltas)
    genes = list(profiles.var_names)
    threaded = gi_scores(profiles, genes=genes, max_subsets=500)
    monkeypatch.setattr(_gi, "_THREADS", 1)
    pd.testing.assert_frame_equal(gi_scores(profiles, genes=genes, max_subsets=500), threaded)
    deltas["B+C"][5] = np.nan
    with pytest.raises(PerturbsimError, match=r"non-finite values .* \['B\+C'\]"):
        gi_scores(make_profiles(deltas), genes=genes)


def test_distance_correlation_hand_value():
    # x = (0, 1, 2): distances [[0,1,2],[1,0,1],[2,1,0]], double-centred
    #   A = [[-10, 2, 8], [2, -4, 2], [8, 2, -10]] / 9
    # y = (0, 1, 0): distances [[0,1,0],[1,0,1],[0,1,0]], double-centred
    #   B = [[-2, 4, -2], [4, -8, 4], [-2, 4, -2]] / 9
    # dCov² = mean(A B) = 72/729, dVar²(x) = 360/729, dVar²(y) = 144/729
    # dCor² = 72 / sqrt(360 * 144) = 1 / sqrt(10)
    x, y = np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 0.0])
    assert distance_correlation(x, y) == pytest.approx(10**-0.25)
    assert distance_correlation(x, 3 * x + 1) == pytest.approx(1.0)
    assert distance_correlation(x, np.ones(3)) == 0.0


def test_distance_correlation_matches_statsmodels():
    dependence = pytest.importorskip("statsmodels.stats.dist_dependence_measures")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(50, 2))
    y = x[:, 0] ** 2 + 0.1 * rng.normal(size=50)
    assert distance_correlation(x, y) == pytest.approx(dependence.distance_correlation(x, y))


def test_unscorable_pairs_are_flagged_rows_with_nan_scores(singles, caplog):
    a, b = singles
    profiles = make_profiles({"A": a, "B": b, "C": a - b, "A+B": a + b, "A+D": a, "B+C": b})
    genes = list(profiles.var_names)
    scores = gi_scores(
        profiles, pairs=["A+B", "A+D", "B+C", "C+E"], genes=genes, n_de={"A+B": 11, "B+C": 10}
    )
    # pairs asked for by name whose rows are missing (a typo?) are said, not only flagged
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        "2 pairs flagged, not scored, a single or the pair missing from profiles: A+D, C+E"
    ]
    caplog.clear()
    gi_scores(profiles, genes=genes)  # every pair row: one without its single is only flagged
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert scores.loc["A+B", "flag"] == ""
    assert scores.loc["A+D", "flag"] == "missing single D; no DE count"
    assert scores.loc["B+C", "flag"] == "too few DE genes (10 <= 10)"
    assert scores.loc["C+E", "flag"] == "missing pair; missing single E; no DE count"
    flagged = scores.loc[["A+D", "B+C", "C+E"]]
    assert flagged[["c1", "magnitude", "fit_corr", "equality"]].isna().all().all()
    assert (flagged["subtype"] == "").all()
    calls = scores.filter(like="is_")
    assert (calls.dtypes == "boolean").all()
    assert flagged.filter(like="is_").isna().all().all()  # not called, not "not of it"
    assert calls.loc["A+B"].notna().all()
    assert (~calls["is_synergy"]).sum() + calls["is_synergy"].sum() == 1  # the scored pair
    assert scores.loc["A+B", "n_de"] == 11
    for count in (np.nan, 10.7, "many"):  # never read as another count
        with pytest.raises(PerturbsimError, match="^n_de of 'A\\+B' must be a whole number"):
            gi_scores(profiles, pairs=["A+B"], genes=genes, n_de={"A+B": count})
    with pytest.raises(PerturbsimError, match="^min_de must be a whole number >= 0, got nan"):
        gi_scores(profiles, pairs=["A+B"], genes=genes, n_de={"A+B": 11}, min_de=np.nan)
    few = gi_scores(profiles, pairs=["A+B"], genes=genes[:2])
    assert few.loc["A+B", "flag"] == "fewer than 3 genes"
    # two spellings of one pair: the same count is read once, different ones refused
    same = gi_scores(profiles, pairs=["A+B"], genes=genes, n_de={"A+B": 11, "B+A": 11})
    assert same.loc["A+B", "flag"] == ""
    for n_de in ({"A+B": 20, "B+A": 0}, {"B+A": 0, "A+B": 20}):
        with pytest.raises(PerturbsimError, match="^n_de gives 'A\\+B' twice with different"):
            gi_scores(profiles, pairs=["A+B"], genes=genes, n_de=n_de)


def test_genes_may_be_a_mask_over_the_profiles_genes(singles):
    a, b = singles
    profiles = make_profiles({"A": a, "B": b, "A+B": a + 0.5 * b})
    mask = np.arange(profiles.n_vars) % 2 == 0
    by_mask = gi_scores(profiles, genes=mask)
    by_name = gi_scores(profiles, genes=list(profiles.var_names[mask]))
    pd.testing.assert_frame_equal(by_mask, by_name)
    assert by_mask.loc["A+B", "n_genes"] == mask.sum()
    with pytest.raises(PerturbsimError, match=r"one value per gene of profiles.var_names \(\d+\)"):
        gi_scores(profiles, genes=mask[:3])
    # a labelled mask is read by its genes, whatever their order; a 0/1 array is refused
    labelled = pd.Series(mask, index=profiles.var_names).sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(gi_scores(profiles, genes=labelled), by_mask)
    with pytest.raises(PerturbsimError, match=r"labelled mask must name each gene .* lacks g0$"):
        gi_scores(profiles, genes=labelled.drop("g0"))
    with pytest.raises(PerturbsimError, match=r"must be boolean, got int64 values 0, 1$"):
        gi_scores(profiles, genes=mask.astype(np.int64))


def test_a_control_row_with_nan_is_refused_naming_the_gene(singles):
    a, b = singles
    profiles = make_profiles({"ctrl": np.zeros(N_GENES), "A": a, "B": b, "A+B": a + b})
    profiles.X[0, 5] = np.nan
    with pytest.raises(PerturbsimError, match=r"'ctrl' row of profiles.X holds NaN .* at g5:"):
        gi_scores(profiles)


def test_singles_too_alike_to_tell_apart_are_flagged(singles):
    # B is A with a faint difference: any split of the pair between them fits, so the
    # coefficients would be arbitrary (here Theil-Sen would return something like 62·A - 61·B)
    a, b = singles
    nearly_a = a + 0.01 * b
    row = score_pair(a, nearly_a, a + nearly_a + 0.05 * b)
    assert row["flag"] == "singles collinear or zero"
    assert np.isnan(row["magnitude"]) and row["subtype"] == ""
    # alike but distinguishable singles are scored
    assert score_pair(a, a + 0.2 * b, 2 * a + 0.2 * b)["flag"] == ""


def test_singles_nearly_opposite_are_as_collinear_as_singles_nearly_alike(singles):
    # B is minus A with a faint difference (cosine about -0.99995): the pair's change is
    # as ambiguous between them as with B = A, since c·A - d·B spans the same line
    a, b = singles
    nearly_minus_a = -a + 0.01 * b
    row = score_pair(a, nearly_minus_a, a + nearly_minus_a + 0.05 * b)
    assert row["flag"] == "singles collinear or zero"
    assert np.isnan(row["magnitude"]) and row["subtype"] == ""


def test_singles_reliability_counts_the_control_noise_the_singles_share():
    # each single changes one gene by 2: S^T S = 4 I. Only the control is noisy, 0.5 per
    # gene and 1 in all: it enters both singles alike, N = [[1, 1], [1, 1]]. The largest
    # eigenvalue of N relative to 4 I is that of N / 4, (1 + 1) / 4 = 0.5 (along A + B)
    singles = 2.0 * np.eye(2)
    noise = np.array([[0.0, 0.0], [0.0, 0.0], [0.5, 0.5]])  # A, B, control
    # (counted on the diagonal only, as if independent in A and B, it would give 1 - 1/4)
    assert _gi.singles_reliability(singles, noise) == pytest.approx(0.5)


def test_abundant_genes_come_from_the_control_and_leave_targets_out(singles):
    a, b = singles
    genes = ["A", "B", *(f"g{i}" for i in range(2, N_GENES))]  # both targets measured
    control = np.where(np.arange(N_GENES) < 30, 2.0, 0.1)  # A, B, g2..g29 abundant
    deltas = {"A": a, "B": b, "A+B": a + b}
    profiles = make_profiles(deltas, control=control, genes=genes)
    implied = gi_scores(profiles)  # no ctrl row: control = X - delta
    assert implied.loc["A+B", "n_genes"] == 28
    assert gi_scores(profiles, exclude_targets=False).loc["A+B", "n_genes"] == 30
    with_ctrl = make_profiles({**deltas, "ctrl": np.zeros(N_GENES)}, control=control, genes=genes)
    assert gi_scores(with_ctrl, abundance=1.0).loc["A+B", "n_genes"] == 28
    given = gi_scores(profiles, control_mean=np.full(N_GENES, 3.0), abundance=2.5)
    assert given.loc["A+B", "n_genes"] == N_GENES - 2
    profiles.X = profiles.X + np.arange(3)[:, None]  # X - delta no longer a control
    with pytest.raises(PerturbsimError, match="pass control_mean="):
        gi_scores(profiles)
    with pytest.raises(PerturbsimError, match=r"abundance=2.5 selects genes only with genes="):
        gi_scores(with_ctrl, genes=genes[:10], abundance=2.5)  # would be silently unused


def test_labels_are_canonical_and_c1_belongs_to_the_first_gene(singles):
    a, b = singles
    profiles = make_profiles({"B": b, "A": a, "B+A": 2 * a + 0.5 * b})
    scores = gi_scores(profiles, pairs=["B+A"], genes=list(profiles.var_names))
    assert list(scores.index) == ["A+B"]
    assert (scores.loc["A+B", "gene_a"], scores.loc["A+B", "gene_b"]) == ("A", "B")
    assert scores.loc["A+B", "c1"] == pytest.approx(2, abs=1e-6)
    assert scores.loc["A+B", "c2"] == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(PerturbsimError, match="not a two-gene pair: 'A'"):
        gi_scores(profiles, pairs=["A"])
    with pytest.raises(PerturbsimError, match=r"genes not in profiles.var_names: nope$"):
        gi_scores(profiles, genes=["nope"])


def test_labels_joined_by_another_separator_need_sep_and_are_warned_of(singles, caplog):
    a, b = singles
    profiles = make_profiles({"A": a, "B": b, "A_B": 2 * a + 0.5 * b})
    genes = list(profiles.var_names)
    with caplog.at_level("WARNING", logger="perturbsim"):
        assert gi_scores(profiles, genes=genes).empty
    assert "no two-gene row among the 3 profiles (labels such as 'A_B')" in caplog.text
    assert "pass sep=" in caplog.text
    with pytest.raises(PerturbsimError, match=r"not a two-gene pair: 'A_B' \(genes joined by '\+'"):
        gi_scores(profiles, pairs=["A_B"])
    scores = gi_scores(profiles, genes=genes, sep="_")
    assert list(scores.index) == ["A+B"]
    assert scores.loc["A+B", "c1"] == pytest.approx(2, abs=1e-6)
    per_gene = gi_per_gene(profiles, pairs=["A_B"], sep="_")
    assert set(per_gene["pair"]) == {"A+B"}
    canonical = make_profiles({"A": a, "B": b, "A+B": 2 * a + 0.5 * b})  # as perturbsim names
    assert list(gi_scores(canonical, pairs=["A_B"], genes=genes, sep="_").index) == ["A+B"]


def test_a_pair_scores_the_same_whichever_pairs_come_with_it(singles):
    a, b = singles
    rng = np.random.default_rng(9)
    deltas = {"A": a, "B": b, "A+B": a + b + 0.3 * rng.normal(size=N_GENES)}
    deltas["A+C"], deltas["C"] = a - b, b
    profiles = make_profiles(deltas)
    genes = list(profiles.var_names)
    alone = gi_scores(profiles, pairs=["A+B"], genes=genes, max_subsets=200, seed=3)
    both = gi_scores(profiles, pairs=["A+C", "A+B"], genes=genes, max_subsets=200, seed=3)
    pd.testing.assert_series_equal(alone.loc["A+B"], both.loc["A+B"])


def test_rules_are_checked_and_primary_subtype_follows_precedence():
    with pytest.raises(PerturbsimError, match="magnitude_score must be one of"):
        GIRules(magnitude_score="ts_norm")
    with pytest.raises(PerturbsimError, match="GIRules.synergy must be a finite number"):
        GIRules(synergy=np.nan)
    with pytest.raises(PerturbsimError, match="GIRules.additive must be a finite number, got 'x'"):
        GIRules(additive="x")
    with pytest.raises(PerturbsimError, match=r"synergy \(0.5\) must not be below .*\(1.0\)"):
        GIRules(synergy=0.5)  # 0.7 would be both a synergy and a suppression
    with pytest.raises(PerturbsimError, match=r"GIRules.additive must be above 0 .*, got -1"):
        GIRules(additive=-1)
    for name, value, scale in (
        ("redundancy", 5, "0, 1"),
        ("neomorphism", -1.5, "-1, 1"),
        ("epistasis", 2, "0, 1"),
    ):
        with pytest.raises(PerturbsimError, match=rf"GIRules.{name} must lie in \[{scale}\]"):
            GIRules(**{name: value})
    assert GIRules(neomorphism=-0.1).neomorphism == -0.1  # fit_corr runs from -1 to 1
    profiles = make_profiles({"A": np.ones(5), "B": np.ones(5), "A+B": np.ones(5)})
    with pytest.raises(PerturbsimError, match="rules must be a GIRules .*, got dict"):
        gi_scores(profiles, rules={"synergy": 1.2})
    scores = pd.DataFrame(
        {
            "magnitude": [2.0, 0.5, 1.1, 2.0, np.nan],
            "fit_corr": [0.95, 0.95, 0.95, 0.5, np.nan],
            "dcor": [0.9, 0.9, 0.5, 0.9, np.nan],
            "equality": [0.9, 0.9, 0.9, 0.1, np.nan],
        }
    )
    calls = GIRules().classify(scores)
    # synergy before redundancy; redundancy before suppression; shape rules first
    assert calls["subtype"].tolist() == ["synergy", "redundancy", "additive", "neomorphism", ""]
    assert calls.loc[3, ["is_synergy", "is_redundancy", "is_epistasis"]].all()


def test_too_few_fitted_genes_are_warned_of(norman, caplog):
    profiles = ps.pp.measured_profiles(norman, ["ctrl", "KLF1", "MAP2K6", "KLF1+MAP2K6"])
    gi_scores(profiles, abundance=0.5)  # log-normalised: 5 of 500 genes above Norman's 0.5
    assert "only 5 genes have a mean control expression above abundance=0.5" in caplog.text
    assert "pass a lower abundance (0 keeps every expressed gene)" in caplog.text
    caplog.clear()
    gi_scores(profiles, genes=list(profiles.var_names[:10]))
    assert "only 10 genes listed to fit the pairs on" in caplog.text
    caplog.clear()
    scores = gi_scores(profiles, abundance=0.05)
    assert "too few" not in caplog.text and scores["n_genes"].iloc[0] >= 20
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="perturbsim"):
        by_default = gi_scores(profiles)  # too few above 0.5: every expressed gene
    expressed = int((np.asarray(profiles["ctrl"].X).ravel() > 0).sum())
    assert "too few" not in caplog.text
    assert f"interactions fitted on every expressed gene ({expressed})" in caplog.text
    every = gi_scores(profiles, abundance=0)
    pd.testing.assert_frame_equal(by_default, every)


def test_measured_pairs_of_few_cells_are_flagged_not_scored(norman):
    pair = "KLF1+MAP2K6"
    in_pair = np.flatnonzero(norman.obs["condition"].to_numpy() == pair)
    few = norman[np.setdiff1d(np.arange(norman.n_obs), in_pair[2:])].copy()
    ps.pp.setup(few, perturbation_key="condition", control="control")
    profiles = ps.pp.measured_profiles(few)
    assert profiles.obs.loc[pair, "n_cells"] == 2
    scores = gi_scores(profiles)
    assert scores.loc[pair, "flag"] == f"few cells ({pair} 2)"
    assert np.isnan(scores.loc[pair, "magnitude"]) and scores.loc[pair, "subtype"] == ""
    others = scores.drop(index=pair)["flag"]  # 4 cells or more: flagged for other reasons only
    assert len(others) and not others.str.contains("few cells").any()
    every = gi_scores(profiles, min_cells=1)
    assert every.loc[pair, "flag"] == "" and np.isfinite(every.loc[pair, "magnitude"])
    # predictions have no cell counts: never flagged for cells
    predicted = ps.Additive(few).fit().predict(["KLF1", "MAP2K6", pair])
    assert gi_scores(predicted, min_cells=10).loc[pair, "flag"] == ""
    with pytest.raises(PerturbsimError, match="min_cells must be a whole number >= 1, got 0"):
        gi_scores(profiles, min_cells=0)
    unreadable = profiles.copy()
    unreadable.obs["n_cells"] = unreadable.obs["n_cells"].astype(object)
    unreadable.obs.loc[pair, "n_cells"] = "two"  # would leave the pair unflagged
    with pytest.raises(PerturbsimError, match=re.escape(f"'two' in row '{pair}' is not a")):
        gi_scores(unreadable)
    for bad in (-1, 2.5):  # a count: read as "few cells (A+B -1)" before
        uncountable = profiles.copy()
        uncountable.obs["n_cells"] = uncountable.obs["n_cells"].astype(float)
        uncountable.obs.loc[pair, "n_cells"] = bad
        with pytest.raises(PerturbsimError, match=re.escape(f": {bad} in row '{pair}' is not a")):
            gi_scores(uncountable)


def test_measured_pairs_without_de_counts_are_warned_of_unless_min_de_is_0(norman, caplog):
    profiles = ps.pp.measured_profiles(norman)
    pairs = [c for c in profiles.obs_names if c.count("+") == 1]
    unfiltered = gi_scores(profiles)  # min_de=10 by default, inert without n_de
    assert "min_de=10 filters only pairs with a DE count (n_de=)" in caplog.text
    assert "or min_de=0 to score every pair" in caplog.text
    caplog.clear()
    every = gi_scores(profiles, min_de=0)
    assert "min_de" not in caplog.text
    pd.testing.assert_frame_equal(unfiltered, every)
    stats = ps.pp.compute_pseudobulk(norman, coexpression="none")
    counted = gi_scores(profiles, n_de=ps.pp.count_de(stats, pairs).to_dict(), min_de=0)
    assert "min_de" not in caplog.text
    assert counted["flag"].str.startswith("too few DE genes").any()  # 2 pairs change no gene
    # predictions hold no measurement noise and are never warned of
    gi_scores(ps.Additive(norman).fit().predict(["KLF1", "MAP2K6", "KLF1+MAP2K6"]))
    assert "min_de" not in caplog.text


def test_measured_norman_pair_on_the_50_most_expressed_genes(norman):
    profiles = ps.pp.measured_profiles(norman)
    control_mean = np.asarray(profiles["ctrl"].X).ravel()
    top50 = profiles.var_names[np.argsort(-control_mean)[:50]]
    row = gi_scores(profiles, pairs=["MAP2K3+SLC38A2"], genes=list(top50)).loc["MAP2K3+SLC38A2"]
    # the earlier measurement (scikit-learn): 0.69 / 0.42; published 0.77 / 0.44
    assert (row["c1"], row["c2"]) == pytest.approx((0.69, 0.42), abs=0.01)


def precision_tables():
    # five pairs scored in both tables, one flagged in the predictions only
    truth = pd.DataFrame(
        {
            "magnitude": [1.5, 1.3, 0.9, 0.5, 1.1, 1.0],
            "fit_corr": [0.95, 0.80, 0.95, 0.95, 0.95, 0.95],
            "dcor": 0.5,
            "equality": 0.9,
            "flag": "",
        },
        index=["P1", "P2", "P3", "P4", "P5", "P6"],
    )
    predicted = pd.DataFrame(
        {
            "magnitude": [1.2, 0.8, 1.4, 0.6, 1.0, np.nan],
            "fit_corr": 0.95,  # the same for every pair: a tie
            "dcor": 0.5,
            "equality": 0.9,
            "flag": ["", "", "", "", "", "missing single X"],
        },
        index=truth.index,
    )
    return predicted, truth


def test_gi_precision_on_a_hand_example():
    predicted, truth = precision_tables()
    table = gi_precision(predicted, truth, k=2).set_index("subtype")
    assert (table["n_pairs"] == 5).all() and (table["k"] == 2).all()
    synergy = table.loc["synergy"]
    # true synergies (> 1.15): P1, P2; predicted top 2 by magnitude: P3 (1.4), P1 (1.2)
    assert synergy["n_true"] == 2
    assert synergy["precision_at_k"] == 0.5 and synergy["recall_at_k"] == 0.5
    # truth's own top 2: P1, P2; shared with the predicted top 2: P1
    assert synergy["top_k_accuracy"] == 0.5
    assert synergy["random_precision"] == pytest.approx(0.4)
    assert synergy["random_recall"] == pytest.approx(0.4)
    # residuals .3 -.5 .5 -.1 .1 (0.61); truth around 1.06: 0.592
    assert synergy["r2"] == pytest.approx(1 - 0.61 / 0.592)
    suppression = table.loc["suppression"]
    # true suppressions (< 1): P3, P4; predicted lowest two: P4 (0.6), P2 (0.8)
    assert suppression["precision_at_k"] == 0.5 and suppression["recall_at_k"] == 0.5
    additive = table.loc["additive"]
    # true additive (|m - 1| < .25): P3, P5; predicted closest to 1: P5 (0), P2 and P1 (.2)
    # tied for the second place: P5 plus half a place for P2 or P1, neither additive
    assert additive["precision_at_k"] == 0.5
    # every predicted fit_corr is tied: a random ranking's expectation, the prevalence 1/5
    neomorphism = table.loc["neomorphism"]
    assert neomorphism["n_true"] == 1
    assert neomorphism["precision_at_k"] == pytest.approx(neomorphism["random_precision"])
    assert table.loc["redundancy", "n_true"] == 0
    assert np.isnan(table.loc["redundancy", "recall_at_k"])
    # tables read back from CSV (pairs in a column), in another order: the same comparison
    as_read = [t.rename_axis("pair").reset_index() for t in (predicted, truth.iloc[::-1])]
    again = gi_precision(*as_read, k=2).set_index("subtype")
    pd.testing.assert_frame_equal(again, table)


def test_a_truth_pair_without_a_score_is_of_no_known_subtype():
    predicted, truth = precision_tables()
    unknown = truth.index[0]  # P1, truly synergistic: its magnitude now unscorable
    blank = truth.copy()
    blank.loc[unknown, "magnitude"] = np.nan
    table = gi_precision(predicted, blank, k=2).set_index("subtype")
    # the magnitude's subtypes compare the four other pairs, as if P1 were not there
    without = gi_precision(predicted.drop(index=unknown), truth.drop(index=unknown), k=2)
    for subtype in ("synergy", "suppression", "additive"):
        pd.testing.assert_series_equal(
            table.loc[subtype], without.set_index("subtype").loc[subtype]
        )
    assert table.loc["synergy", "random_precision"] == pytest.approx(1 / 4)  # P2 of four
    assert table.loc["neomorphism", "n_pairs"] == 5  # its fit_corr is known: P1 kept there
    everywhere = truth.assign(magnitude=np.nan)
    synergy = gi_precision(predicted, everywhere, k=2).set_index("subtype").loc["synergy"]
    assert synergy["n_pairs"] == 0 and np.isnan(synergy["precision_at_k"])


def test_recall_at_k_is_the_share_of_the_true_pairs_found_not_of_the_places():
    # ten pairs, four truly synergistic (magnitude > 1.15); the predicted top 2 are two of
    # them: precision 2 / 2, but only 2 of the 4 synergies are found, recall 2 / 4
    pairs = [f"P{i}" for i in range(10)]
    truth = pd.DataFrame(
        {
            "magnitude": [1.5, 1.4, 1.3, 1.2, 1.0, 0.9, 1.05, 0.5, 0.8, 1.1],
            "fit_corr": 0.95,
            "dcor": 0.5,
            "equality": 0.9,
            "flag": "",
        },
        index=pairs,
    )
    predicted = truth.assign(magnitude=[2.0, 1.9, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    synergy = gi_precision(predicted, truth, k=2).set_index("subtype").loc["synergy"]
    assert synergy["n_true"] == 4 and synergy["k"] == 2
    assert synergy["precision_at_k"] == 1.0
    assert synergy["recall_at_k"] == 0.5


def test_additive_baseline_ranks_pairs_at_random(singles):
    a, _ = singles
    rng = np.random.default_rng(12)
    deltas, additive = {"A": a}, {"A": a}
    for i, scale in enumerate([0.3, 0.6, 0.9, 1.2, 2.0, 3.0]):
        other = rng.normal(size=N_GENES)
        deltas[f"B{i}"] = additive[f"B{i}"] = other
        deltas[f"A+B{i}"] = scale * (a + other) + 0.1 * rng.normal(size=N_GENES)
        additive[f"A+B{i}"] = a + other
    genes = [f"g{i}" for i in range(N_GENES)]
    truth = gi_scores(make_profiles(deltas), genes=genes)
    baseline = gi_scores(make_profiles(additive), genes=genes)
    np.testing.assert_allclose(baseline["magnitude"], np.sqrt(2))
    table = gi_precision(baseline, truth, k=2).set_index("subtype")
    for subtype in ["synergy", "suppression", "additive", "neomorphism"]:
        row = table.loc[subtype]
        assert row["precision_at_k"] == pytest.approx(row["random_precision"])


def test_gi_precision_rejects_tables_without_common_pairs():
    predicted, truth = precision_tables()
    with pytest.raises(PerturbsimError, match="share no scored pair"):
        gi_precision(predicted.rename(index=lambda p: p + "x"), truth)
    with pytest.raises(PerturbsimError, match="k must be a whole number >= 1"):
        gi_precision(predicted, truth, k=0)
    twice = pd.concat([truth, truth.iloc[:1]])
    with pytest.raises(PerturbsimError, match="^truth lists the pair '.*' more than once"):
        gi_precision(predicted, twice)


def test_gi_per_gene_calls_with_standard_errors_and_benjamini_hochberg():
    zero = np.zeros(4)
    deltas = {"A": zero, "B": zero, "A+B": np.array([3.0, 1.0, -4.0, 0.0])}
    profiles = make_profiles(deltas, genes=["g1", "g2", "g3", "A"])  # A is a target: left out
    se = pd.DataFrame(
        {"g1": [0.6, 0.8, 0.0, 0.0], "g2": [0.6, 0.8, 0.0, 0.0], "g3": [0.6, 0.8, 0.0, 0.0]},
        index=["A", "B", "B+A", "ctrl"],
    ).assign(A=1.0)
    table = gi_per_gene(profiles, se=se).set_index("gene")
    assert list(table.index) == ["g1", "g2", "g3"]
    np.testing.assert_allclose(table["se"], 1.0)  # sqrt(0.6² + 0.8² + 0 + 0)
    np.testing.assert_allclose(table["z"], [3.0, 1.0, -4.0])
    p = 2 * stats.norm.sf([3.0, 1.0, 4.0])  # 0.0027, 0.317, 6.3e-5
    np.testing.assert_allclose(table["p"], p)
    # BH: ranks 2, 3, 1 of 3 -> q = 3p/2, 3p/3, 3p/1
    np.testing.assert_allclose(table["q"], [1.5 * p[0], p[1], 3 * p[2]])
    assert table["call"].tolist() == ["synergy", "additive", "buffering"]


def test_gi_per_gene_reads_moderated_standard_errors_from_pseudobulk_statistics():
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    stats_ = ps.pp.compute_pseudobulk(adata, coexpression="none")
    profiles = ps.pp.measured_profiles(adata)
    table = gi_per_gene(profiles, se=stats_)
    # by hand: each condition's variance shrunk to the gene's pooled one on 10 prior df,
    # never below its own
    own_df = stats_.n_cells - 1.0
    pooled = (stats_.variance() * own_df[:, None]).sum(axis=0) / own_df.sum()
    moderated = (stats_.variance() * own_df[:, None] + 10 * pooled) / (own_df[:, None] + 10)
    moderated = np.maximum(moderated, stats_.variance())
    squared = pd.DataFrame(
        moderated / stats_.n_cells[:, None], index=stats_.conditions, columns=stats_.genes
    )
    pair = table["pair"].iloc[0]
    rows = table[table["pair"] == pair]
    four = squared.loc[[pair, *ps.pp.genes_of(pair), "ctrl"], rows["gene"]].to_numpy()
    np.testing.assert_allclose(rows["se"], np.sqrt(four.sum(axis=0)))
    dof = own_df[stats_.index([pair, *ps.pp.genes_of(pair), "ctrl"])] + 10.0
    welch = four.sum(axis=0) ** 2 / (four**2 / dof[:, None]).sum(axis=0)
    np.testing.assert_allclose(rows["p"], 2 * stats.t.sf(np.abs(rows["z"]), welch))
    assert {"synergy", "buffering"} <= set(table["call"])
    with pytest.raises(PerturbsimError, match="se must be a DataFrame .* or pseudobulk"):
        gi_per_gene(profiles, se=stats_.standard_error())
    with pytest.raises(PerturbsimError, match="prior_df must be a number >= 0"):
        stats_.moderated_variance(-1)


def test_gi_per_gene_calls_few_genes_between_random_groups_of_control_cells():
    """The null: a 'pair' of 4 control cells, 'singles' of 60, against the other control cells."""
    adata = ps.ds.simulate(size="small", seed=0)
    adata = adata[adata.obs["condition"] == "control"].copy()
    labels = np.array(["control"] * adata.n_obs, dtype=object)
    order = np.random.default_rng(12).permutation(adata.n_obs)
    labels[order[:60]], labels[order[60:120]], labels[order[120:124]] = "A", "B", "A+B"
    adata.obs["condition"] = labels
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    stats_ = ps.pp.compute_pseudobulk(adata, coexpression="none")
    profiles = ps.pp.measured_profiles(adata)
    moderated = gi_per_gene(profiles, se=stats_, exclude_targets=False)
    raw = pd.DataFrame(stats_.standard_error(), index=stats_.conditions, columns=stats_.genes)
    naive = gi_per_gene(profiles, se=raw, exclude_targets=False)  # own variances, normal test
    moved = moderated["deviation"] != 0
    false_positives = (moderated.loc[moved, "p"] < 0.05).mean()
    assert false_positives < 0.08 < (naive.loc[moved, "p"] < 0.05).mean()
    assert (moderated["call"] == "additive").mean() > 0.95


def test_gi_per_gene_leaves_pairs_of_few_cells_untested(caplog):
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    labels = adata.obs["condition"].astype(str)
    measured = set(labels)
    pairs = sorted(
        {c for c in measured if c.count("+") == 1 and set(ps.pp.genes_of(c)) <= measured}
    )
    lone, kept = pairs[0], pairs[1]
    drop = np.flatnonzero(labels.to_numpy() == lone)[1:]  # the pair keeps one cell
    adata = adata[np.setdiff1d(np.arange(adata.n_obs), drop)].copy()
    stats_ = ps.pp.compute_pseudobulk(adata, coexpression="none")
    profiles = ps.pp.measured_profiles(adata)
    with caplog.at_level("WARNING", logger="perturbsim"):
        table = gi_per_gene(profiles, se=stats_, pairs=[lone, kept])
    assert f"1 pair untested, a mean of fewer than 4 cells (min_cells): {lone} ({lone} 1)" in (
        caplog.text
    )
    one_cell, other = table[table["pair"] == lone], table[table["pair"] == kept]
    assert (one_cell["call"] == "untested").all() and one_cell["z"].isna().all()
    # the genes that moved in none of the three changes (no cell expressed them) only
    unmoved = (other[["delta_a", "delta_b", "delta_ab"]] == 0).all(axis=1)
    assert 0 < unmoved.sum() < 0.1 * len(other)
    assert ((other["call"] == "untested") == unmoved).all() and other["p"].isna().eq(unmoved).all()
    # asked for, a mean of one cell is tested against the gene's pooled spread
    alone = gi_per_gene(profiles, se=stats_, pairs=[lone], min_cells=1)
    assert np.isfinite(alone.loc[alone["deviation"] != 0, "z"]).all()
    assert (alone.loc[alone["deviation"] != 0, "call"] != "untested").all()
    # the empirical null: untested by min_cells only, and left out of the null
    empirical = gi_per_gene(profiles, pairs=[lone, kept])
    assert (empirical.loc[empirical["pair"] == lone, "call"] == "untested").all()
    everything = gi_per_gene(profiles, pairs=[lone, kept], min_cells=1)
    moved = ~(everything[["delta_a", "delta_b", "delta_ab"]] == 0).all(axis=1)
    assert np.isfinite(everything["z"]).eq(moved).all()
    assert everything["call"].eq("untested").eq(~moved).all()
    kept_rows = empirical[empirical["pair"] == kept]  # its null without the one-cell pair
    assert not np.allclose(everything.loc[kept_rows.index, "z"], kept_rows["z"])
    with pytest.raises(PerturbsimError, match="min_cells"):
        gi_per_gene(profiles, min_cells=0)
    with pytest.raises(PerturbsimError, match=r"prior_df must be a number >= 0 .* got -1"):
        gi_per_gene(profiles, prior_df=-1)
    pooled = gi_per_gene(profiles, se=stats_, pairs=[kept], prior_df=np.inf)
    assert np.isfinite(pooled.loc[pooled["deviation"] != 0, "p"]).all()  # a normal test


def test_gi_per_gene_without_standard_errors_uses_the_empirical_null():
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=200), rng.normal(size=200)
    ab = a + b + 0.1 * rng.normal(size=200)
    ab[:3] += [2.0, 2.0, -2.0]
    table = gi_per_gene(make_profiles({"A": a, "B": b, "A+B": ab}))
    assert table["se"].isna().all()
    assert table["call"].iloc[:3].tolist() == ["synergy", "synergy", "buffering"]
    assert (table["call"].iloc[3:] == "additive").mean() > 0.95
    # the additive model's predictions: every deviation 0, nothing to test against
    rounding = 1e-9 * np.random.default_rng(11).normal(size=200)
    flat = gi_per_gene(make_profiles({"A": a, "B": b, "A+B": a + b + rounding}))
    assert flat["z"].isna().all() and (flat["call"] == "additive").all()


def test_gi_per_gene_auprc_on_a_hand_example():
    predicted = pd.DataFrame(
        {"pair": "A+B", "gene": ["g1", "g2", "g3", "g4"], "deviation": [0.9, 0.5, 0.1, -0.7]}
    )
    truth = predicted.assign(call=["synergy", "additive", "synergy", "buffering"])
    table = gi_per_gene_auprc(predicted, truth.drop(columns="deviation")).set_index("call")
    # synergy, ranked 0.9 (hit), 0.5, 0.1 (hit): 1/2 * 1/1 + 1/2 * 2/3
    assert table.loc["synergy", "auprc"] == pytest.approx(0.5 + 1 / 3)
    # a random ranking's expected average precision, over every order of the four rows
    orders = [np.array(o, dtype=float) for o in itertools.permutations(range(4))]
    hits = np.array([True, False, True, False])
    expected = np.mean([gi_precision_module._average_precision(o, hits) for o in orders])
    assert table.loc["synergy", "random_auprc"] == pytest.approx(expected)  # 0.68, not 0.5
    # buffering, ranked from the lowest deviation: -0.7 first
    assert table.loc["buffering", "auprc"] == 1.0
    metrics = pytest.importorskip("sklearn.metrics")
    expected = metrics.average_precision_score([1, 0, 1, 0], [0.9, 0.5, 0.1, -0.7])
    assert table.loc["synergy", "auprc"] == pytest.approx(expected)
    # tied deviations are one threshold, whichever of them is listed first: 1/2 * 1 + 1/2 * 2/3
    tied = pd.DataFrame({"pair": "A+B", "gene": ["g1", "g2", "g3"], "deviation": [2.0, 1.0, 1.0]})
    calls = tied.drop(columns="deviation").assign(call=["synergy", "synergy", "additive"])
    tied_table = gi_per_gene_auprc(tied, calls).set_index("call")
    assert tied_table.loc["synergy", "auprc"] == pytest.approx(5 / 6)
    # rows the truth could not test are neither positive nor negative: left out
    untested = pd.DataFrame({"pair": "A+C", "gene": ["g1"], "call": ["untested"]})
    extra = pd.concat([predicted, untested.drop(columns="call").assign(deviation=5.0)])
    with_untested = gi_per_gene_auprc(extra, pd.concat([truth, untested])).set_index("call")
    pd.testing.assert_frame_equal(with_untested, table)
    # a row given twice would count twice: refused, naming it
    with pytest.raises(
        PerturbsimError, match="^predicted lists the gene 'g1' of pair 'A\\+B' more"
    ):
        gi_per_gene_auprc(pd.concat([predicted, predicted.iloc[[0]]]), truth)


def test_an_abundance_no_gene_reaches_is_refused(singles):
    a, b = singles
    profiles = make_profiles({"A": a, "B": b, "A+B": a + b})  # control expression 1
    with pytest.raises(PerturbsimError, match=r"no gene .* above abundance=2: .* lower abundance"):
        gi_scores(profiles, abundance=2.0)


def test_gi_per_gene_names_what_a_requested_pair_lacks(singles, caplog):
    a, b = singles
    profiles = make_profiles({"A": a, "B": b, "A+B": a + b})
    with pytest.raises(PerturbsimError, match=r"none of the 1 pairs .*A\+C \(no C or A\+C\)"):
        gi_per_gene(profiles, pairs=["A+C"])
    with caplog.at_level("WARNING", logger="perturbsim"):  # some left: a warning
        table = gi_per_gene(profiles, pairs=["A+B", "A+C"])
    assert set(table["pair"]) == {"A+B"} and "A+C (no C or A+C)" in caplog.text
    se = pd.DataFrame(0.1, index=["A", "B", "A+B"], columns=["g0"])
    with pytest.raises(PerturbsimError, match=r"se has no column for genes g1, g2, "):
        gi_per_gene(profiles, se=se)


def test_a_pair_is_scored_when_its_flag_is_empty_however_the_table_stores_it():
    flags = ["", "single", None, "too few DE genes"]
    expected = [True, False, True, False]
    for column in (
        pd.Series(flags, dtype=object),  # as scored
        pd.Series(flags, dtype=object).replace("", np.nan),  # read back from CSV
        pd.Series(flags, dtype="category"),  # .obs of predict_pairs, or read from h5ad
    ):
        table = pd.DataFrame({"flag": column.array}, index=["A+B", "A", "A+C", "B+C"])
        scored = is_scored(table)
        assert scored.dtype == bool and scored.tolist() == expected
        assert table[scored].index.tolist() == ["A+B", "A+C"]


def test_gi_per_gene_refuses_bad_values_in_one_line(norman):
    profiles = ps.pp.measured_profiles(norman)
    stats_ = ps.pp.compute_pseudobulk(norman, coexpression="none")
    se = pd.DataFrame(stats_.standard_error(), index=stats_.conditions, columns=stats_.genes)
    gene = str(se.columns[3])
    cases = {
        "fdr must be a number strictly between 0 and 1, got '0.05'": {"fdr": "0.05"},
        "fdr must be a number strictly between 0 and 1, got 1.0": {"fdr": 1.0},
        "sep must be a non-empty string (e.g. '_'), got 1": {"sep": 1},
        f"se must be finite standard errors >= 0: 'ctrl' at gene '{gene}' holds -0.1": {
            "se": se.assign(**{gene: -0.1})
        },
        f"se must be finite standard errors >= 0: 'ctrl' at gene '{gene}' holds inf": {
            "se": se.assign(**{gene: np.inf})
        },
        f"se has more than one column for the gene '{gene}'": {
            "se": pd.concat([se, se[[gene]]], axis=1)
        },
        "se has more than one row for the condition 'KLF1+MAP2K6': KLF1+MAP2K6, MAP2K6+KLF1": {
            "se": pd.concat([se, se.loc[["KLF1+MAP2K6"]].rename(index=lambda _: "MAP2K6+KLF1")])
        },
        f"se must hold numbers: 'ctrl' at gene '{gene}' holds 'abc'": {
            "se": se.astype(object).assign(**{gene: "abc"})
        },
    }
    for message, options in cases.items():
        with pytest.raises(PerturbsimError, match=re.escape(message)):
            gi_per_gene(profiles, **options)
    broken = profiles.copy()
    broken.layers["delta"] = np.array(broken.layers["delta"], dtype=float)
    broken.layers["delta"][list(broken.obs_names).index("KLF1"), 5] = np.nan
    for score in (gi_per_gene, gi_scores):
        with pytest.raises(PerturbsimError, match=r"non-finite values in .* of \['KLF1'\]"):
            score(broken, pairs=["KLF1+MAP2K6"])
    with pytest.raises(PerturbsimError, match="max_subsets must be a whole number >= 1, got 0"):
        gi_scores(profiles, max_subsets=0)
    with pytest.raises(PerturbsimError, match=r"measured_profiles\(adata\) for a screen"):
        gi_scores(norman)  # the screen's cells, not profiles: the way to them is named


def test_pairs_unscored_for_their_de_count_alone_are_told_apart():
    from perturbsim.pp._gi import unscored_for_few_de_only

    flags = [
        "",
        "too few DE genes (0 <= 0)",
        "few cells (A+B 2); too few DE genes (0 <= 0)",
        "too few DE genes (3 <= 10); fewer than 3 genes (x)",
    ]
    scores = pd.DataFrame({"flag": flags})
    assert unscored_for_few_de_only(scores).tolist() == [False, True, False, False]


def test_gi_split_half_replicates_simulated_interactions_not_random_groups(caplog):
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    stats_ = ps.pp.compute_pseudobulk(adata, coexpression="none")
    measured = {str(c) for c in stats_.conditions}
    pairs = sorted(c for c in measured if c.count("+") == 1 and set(c.split("+")) <= measured)
    with caplog.at_level("WARNING", logger="perturbsim"):
        r = ps.tl.gi_split_half(stats_, [*pairs, "NOPE+G0001"], genes=stats_.control_mean > 0.5)
    assert r.name == "split_half_r" and np.isnan(r["G0001+NOPE"])  # a single not measured
    assert "1 pair NaN, a single or the pair missing from the statistics: NOPE+G0001" in (
        caplog.text
    )  # named as given
    assert r[pairs].notna().all() and r[pairs].median() > 0.2
    # random groups of control cells: departures of noise do not replicate
    control = adata[adata.obs["condition"] == "control"].copy()
    labels = np.full(control.n_obs, "control", dtype=object)
    order = np.random.default_rng(4).permutation(control.n_obs)
    labels[order[:60]], labels[order[60:120]], labels[order[120:180]] = "A", "B", "A+B"
    control.obs["condition"] = labels
    ps.pp.setup(control, perturbation_key="condition", control="control")
    null = ps.pp.compute_pseudobulk(control, coexpression="none")
    assert abs(ps.tl.gi_split_half(null, ["A+B"])["A+B"]) < 0.2
    with pytest.raises(PerturbsimError, match="pairs must be a list of labels"):
        ps.tl.gi_split_half(stats_, "A+B")
    with pytest.raises(PerturbsimError, match="not a pair of two genes: 'G0057'"):
        ps.tl.gi_split_half(stats_, ["G0057"])
    with pytest.raises(PerturbsimError, match="none of the 1 pairs requested has its own row"):
        ps.tl.gi_split_half(stats_, ["NOPE+G0001"])  # a typo alone: no silent NaN
    first = pairs[0]
    reversed_label = "+".join(reversed(first.split("+")))  # any order, repeats once
    again = ps.tl.gi_split_half(stats_, [reversed_label, first], genes=stats_.control_mean > 0.5)
    assert list(again.index) == [first] and again[first] == pytest.approx(r[first])
    given = (p for p in [first])  # a generator: read once
    assert ps.tl.gi_split_half(stats_, given, genes=stats_.control_mean > 0.5)[first] == (
        pytest.approx(r[first])
    )
    named = list(stats_.genes[stats_.control_mean > 0.5])  # the genes by name, as a mask
    assert ps.tl.gi_split_half(stats_, [first], genes=named)[first] == pytest.approx(r[first])
    with pytest.raises(
        PerturbsimError, match=r"one value per gene of the statistics \(400\), got shape \(2,\)"
    ):
        ps.tl.gi_split_half(stats_, pairs, genes=np.ones(2, bool))


def test_measured_profiles_carry_the_squared_standard_errors_of_their_means(norman):
    profiles = ps.pp.measured_profiles(norman, ["ctrl", "KLF1"])
    stats = ps.pp.compute_pseudobulk(norman, coexpression="none")
    rows = stats.index(["ctrl", "KLF1"])
    expected = stats.variance(ddof=1)[rows] / stats.n_cells[rows, None]
    np.testing.assert_allclose(profiles.layers["mean_variance"], expected)


def test_noisy_singles_bias_the_coefficients_and_the_reliability_says_so():
    # a simulated screen of 60 cells per condition: its singles' means are noisy
    adata = ps.ds.simulate(size="small", seed=25, cells_per_condition=60, n_control_cells=300)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    truth = gi_scores(ps.tl.truth_profiles(adata))
    measured = gi_scores(ps.pp.measured_profiles(adata))
    both = truth.index[is_scored(truth)].intersection(measured.index[is_scored(measured)])
    assert len(both) >= 15
    error = measured.loc[both, "magnitude"] - truth.loc[both, "magnitude"]
    assert error.median() < -0.3  # read far smaller than they are: synergies as suppressions
    assert measured.loc[both, "is_suppression"].sum() > 3 * truth.loc[both, "is_suppression"].sum()
    reliability = measured.loc[both, "reliability"]
    assert reliability.between(-np.inf, 1).all() and reliability.median() < 0.9
    assert truth["reliability"].isna().all()  # noiseless profiles carry no noise
    assert "corrected" not in measured  # the correction is asked for


def test_noise_correction_brings_reliable_pairs_closer_to_the_truth():
    adata = ps.ds.simulate(size="small", seed=25, cells_per_condition=60, n_control_cells=300)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    truth = gi_scores(ps.tl.truth_profiles(adata))
    profiles = ps.pp.measured_profiles(adata)
    measured = gi_scores(profiles)
    corrected = gi_scores(profiles, noise_correction=True)
    scored = is_scored(measured)
    assert is_scored(corrected).equals(scored)
    reliable = scored & (measured["reliability"] >= _gi.MIN_RELIABILITY)
    assert corrected["corrected"].tolist() == reliable.tolist() and reliable.sum() >= 5
    np.testing.assert_array_equal(corrected["c1_uncorrected"], measured["c1"])
    np.testing.assert_array_equal(corrected["c2_uncorrected"], measured["c2"])
    # the fit of the measured changes stays the fit's own: corrected coefficients fit no data
    np.testing.assert_array_equal(corrected["fit_corr"], measured["fit_corr"])
    kept = scored & ~reliable  # below the reliability's threshold: left as fitted
    pd.testing.assert_frame_equal(corrected.loc[kept, measured.columns], measured.loc[kept])
    fixed = corrected.index[corrected["corrected"]]
    before = (measured.loc[fixed, "magnitude"] - truth.loc[fixed, "magnitude"]).abs().mean()
    after = (corrected.loc[fixed, "magnitude"] - truth.loc[fixed, "magnitude"]).abs().mean()
    assert after < 0.8 * before
    c1, c2 = corrected.loc[fixed, "c1"], corrected.loc[fixed, "c2"]
    np.testing.assert_allclose(corrected.loc[fixed, "magnitude"], np.hypot(c1, c2))
    # each pair's added noise is drawn from the seed and its label: alone, it scores alike
    alone = gi_scores(profiles, pairs=[fixed[0]], noise_correction=True)
    assert alone.loc[fixed[0], "c1"] == corrected.loc[fixed[0], "c1"]


def test_noisy_singles_are_warned_of_in_python_and_printed_by_the_command_line(
    norman, caplog, tmp_path, capsys
):
    profiles = ps.pp.measured_profiles(norman)  # ~100 cells a condition: noisy singles
    with caplog.at_level("WARNING", logger="perturbsim"):
        scores = gi_scores(profiles, noise_correction=True)
    reliability = scores.loc[is_scored(scores), "reliability"]
    noisy = int((reliability < _gi.MIN_RELIABILITY).sum())
    assert noisy >= 1 and not scores["corrected"].any()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    (said,) = [m for m in warnings if m.startswith(f"{noisy} of {len(reliability)} scored pairs")]
    if noisy == len(reliability):  # the correction asked for did nothing: said there, once
        assert said.endswith("noise_correction leaves them as fitted")
        assert not any(m.startswith("noise correction:") for m in warnings)
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"):  # nothing scored: nothing corrected
        gi_scores(profiles, noise_correction=True, min_cells=10**6)
    assert "noise correction" not in caplog.text
    # the command line prints it with the scores: no warning besides
    path = tmp_path / "screen.h5ad"
    norman.write_h5ad(path)
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"):
        code = main(["measured-gi", str(path), "--out", str(tmp_path / "gi"), "--correct-noise"])
    assert code == 0
    assert not [r for r in caplog.records if "reliability below" in r.getMessage()]
    assert re.search(r"\d+ of \d+ scored pairs below 0.5", capsys.readouterr().out)


def test_simex_undoes_most_of_the_attenuation_of_least_squares():
    from perturbsim.pp._gi_simex import simex_coefficients

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 4000))
    noise = np.repeat([[0.4], [0.2], [0.1], [0.1]], 4000, axis=1)
    errors = rng.normal(size=(4, 4000)) * np.sqrt(noise)
    measured = np.stack([a, 0.5 * b, a + 0.5 * b]) + errors[:3] - errors[3]
    least_squares = lambda x, y: np.linalg.lstsq(x, y, rcond=None)[0]  # noqa: E731
    naive = least_squares(measured[:2].T, measured[2])
    fixed = simex_coefficients(measured, noise, least_squares, rng)
    # true coefficients 1 and 1: attenuated to 0.69, 0.54; corrected most of the way, short of it
    assert np.all((naive < fixed) & (fixed < 1.0))
    assert np.all(np.abs(fixed - 1.0) < 0.65 * np.abs(naive - 1.0))
    assert np.isnan(simex_coefficients(measured, noise, lambda x, y: np.full(2, np.nan), rng)).all()


def test_a_predicted_pair_among_measured_singles_is_fitted_as_it_is(norman):
    # measured singles beside a pair predicted as their sum: nothing to correct for
    measured = ps.pp.measured_profiles(norman, ["ctrl", "KLF1", "MAP2K6"])
    predicted = ps.Additive(norman).fit().predict(["KLF1+MAP2K6"])
    mixed = ad.concat([measured, predicted], join="outer")
    row = gi_scores(mixed).loc["KLF1+MAP2K6"]
    assert (row["c1"], row["c2"]) == pytest.approx((1.0, 1.0), abs=1e-3)
    assert np.isnan(row["reliability"])  # no measured pair: no errors in variables
    kept = gi_scores(mixed, noise_correction=True).loc["KLF1+MAP2K6"]
    assert not kept["corrected"] and kept["c1"] == row["c1"] == kept["c1_uncorrected"]
    with pytest.raises(PerturbsimError, match="noise_correction needs measured profiles"):
        gi_scores(predicted, noise_correction=True)
    with pytest.raises(PerturbsimError, match="noise_correction must be True or False"):
        gi_scores(measured, noise_correction="yes")


def test_a_pair_that_reverses_its_singles_is_named_in_the_summary(singles):
    from perturbsim.cli._gi import _gi_summary

    a, b = singles
    profiles = make_profiles({"A": a, "B": b, "A+B": -(a + b)})  # both singles reversed
    scores = gi_scores(profiles, genes=list(profiles.var_names))
    assert scores.loc["A+B", ["c1", "c2"]].tolist() == pytest.approx([-1.0, -1.0], abs=0.01)
    assert scores.loc["A+B", "magnitude"] == pytest.approx(np.sqrt(2), abs=0.02)  # signless
    text = _gi_summary(scores, 2, "gears")
    assert "1 of them has a negative coefficient (e.g. A+B: a single's change reversed" in text


def test_genes_that_are_no_list_are_refused(norman):
    with pytest.raises(PerturbsimError, match="^genes must be a list of genes, got None"):
        gi_scores(ps.pp.measured_profiles(norman), genes=None)


def test_squared_standard_errors_that_are_no_variances_are_refused(norman):
    profiles = ps.pp.measured_profiles(norman, ["ctrl", "KLF1", "MAP2K6", "KLF1+MAP2K6"])
    profiles.layers["mean_variance"][0, :] = -1.0  # would read pure noise as reliable
    with pytest.raises(PerturbsimError, match=r"row 'ctrl', gene .* holds -1: a squared"):
        gi_scores(profiles)
    without_control = ps.pp.measured_profiles(norman, ["KLF1", "MAP2K6", "KLF1+MAP2K6"])
    for bad, words in ((np.inf, "holds inf: a squared"), ("abc", "holds 'abc' for")):
        without_control.var["control_mean_variance"] = bad
        with pytest.raises(PerturbsimError, match=words):
            gi_scores(without_control)


def test_an_unsupported_gene_of_no_row_is_warned_of(norman, caplog):
    profiles = ps.pp.measured_profiles(norman)
    with caplog.at_level("WARNING", logger="perturbsim.pp._gi"):
        flagged = gi_scores(profiles, unsupported=["klf1"])  # meant KLF1: flags nothing
    assert "unsupported names klf1, a gene of no row of profiles: it flags nothing" in caplog.text
    assert "did you mean 'KLF1'" in caplog.text
    assert not flagged["flag"].str.startswith("generic single").any()


def test_top_k_accuracy_shares_the_places_of_pairs_tied_in_the_truth():
    # the truth ties four pairs at the additive magnitude; the prediction ranks P2, P3 first
    truth = pd.DataFrame(
        {"magnitude": [np.sqrt(2)] * 4 + [0.5], "fit_corr": 0.9, "dcor": 0.5, "equality": 0.9},
        index=["P0", "P1", "P2", "P3", "P4"],
    )
    predicted = truth.assign(magnitude=[1.0, 1.1, 1.6, 1.5, 0.4])
    expected = 0.5  # each tied pair has 2 of 4 places: P2 and P3 count half each
    for order in (truth.index, truth.index[::-1]):
        table = gi_precision(predicted.loc[order], truth.loc[order], k=2).set_index("subtype")
        assert table.loc["synergy", "top_k_accuracy"] == pytest.approx(expected)


def test_simex_adds_noise_as_the_measurement_has_it_the_control_shared():
    from perturbsim.pp._gi_simex import SIMEX_LEVELS, SIMEX_REPLICATES, simex_coefficients

    n = 20_000
    changes = np.zeros((3, n))
    squared_errors = np.repeat([[0.1], [0.2], [0.3], [0.4]], n, axis=1)  # A, B, A+B, control
    added = []

    def recording_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        added.append(np.vstack([x.T, y]))
        return np.ones(2)

    simex_coefficients(changes, squared_errors, recording_fit, np.random.default_rng(0))
    assert len(added) == 1 + len(SIMEX_LEVELS) * SIMEX_REPLICATES  # the measured fit first
    first_level = np.hstack(added[1 : 1 + SIMEX_REPLICATES])  # 0.5 of the measurement's noise
    # each change's own error, minus the control's, which the three share
    expected = SIMEX_LEVELS[0] * (np.diag([0.1, 0.2, 0.3]) + 0.4)
    np.testing.assert_allclose(np.cov(first_level), expected, atol=0.01)


def test_simex_drops_a_replicate_whose_fit_fails_for_one_coefficient_only():
    from perturbsim.pp._gi_simex import simex_coefficients

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 2000))
    noise = np.repeat([[0.4], [0.2], [0.1], [0.1]], 2000, axis=1)
    measured = np.stack([a, b, a + b]) + rng.normal(size=(3, 2000)) * np.sqrt(noise[:3])
    calls = []

    def sometimes_one_nan(x, y):  # a fit that cannot read B's coefficient now and then
        calls.append(1)
        coefficients = np.linalg.lstsq(x, y, rcond=None)[0]
        if len(calls) % 7 == 0:
            coefficients[1] = np.nan
        return coefficients

    fixed = simex_coefficients(measured, noise, sometimes_one_nan, np.random.default_rng(0))
    clean = simex_coefficients(
        measured, noise, lambda x, y: np.linalg.lstsq(x, y, rcond=None)[0], np.random.default_rng(0)
    )
    assert np.isfinite(fixed).all()  # the failed replicates are left out, not averaged in
    np.testing.assert_allclose(fixed, clean, atol=0.02)
