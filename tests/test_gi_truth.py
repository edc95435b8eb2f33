"""The simulator's truth as profiles, and its interaction scores as the true subtypes."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from dcor_reference import distance_correlation

import perturbsim as ps

ABUNDANCE = 0.5


@pytest.fixture(scope="module")
def truth() -> ad.AnnData:
    adata = ps.ds.simulate(size="tiny", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    return ps.tl.truth_profiles(adata)


@pytest.fixture(scope="module")
def truth_scores(truth) -> pd.DataFrame:
    return ps.tl.gi_scores(truth, seed=0)


def _fitted(truth: ad.AnnData) -> np.ndarray:
    """Mask of the genes ``gi_scores`` fits by default (abundant in the truth's control)."""
    return np.asarray(truth.X[0]) > ABUNDANCE


def _score_constructed(truth: ad.AnnData, gene_a: str, gene_b: str, delta_ab: np.ndarray):
    """Scores of one hand-built pair ``gene_a+gene_b`` beside the truth's singles."""
    rows = truth[["ctrl", gene_a, gene_b]]
    delta = np.vstack([rows.layers["delta"], delta_ab]).astype(float)
    profiles = ad.AnnData(
        X=delta + np.asarray(truth.X[0], dtype=float),
        obs=pd.DataFrame(index=["ctrl", gene_a, gene_b, f"{gene_a}+{gene_b}"]),
        var=pd.DataFrame(index=truth.var_names),
    )
    profiles.layers["delta"] = delta
    return ps.tl.gi_scores(profiles, seed=0).iloc[0]


@pytest.fixture(scope="module")
def singles(truth) -> tuple[str, str, str]:
    """The two singles with the largest change, and the single least like the first."""
    labels = truth.obs_names[truth.obs["n_targets"] == 1]
    genes = _fitted(truth)
    size = np.abs(truth[labels].layers["delta"][:, genes]).sum(axis=1)
    first, second = labels[np.argsort(-size)[:2]]
    delta_first = truth[first].layers["delta"][0, genes]
    unlike = min(
        (label for label in labels[np.argsort(-size)[:5]] if label != first),
        key=lambda label: distance_correlation(delta_first, truth[label].layers["delta"][0, genes]),
    )
    return str(first), str(second), str(unlike)


def test_truth_profiles_layout(truth):
    adata = ps.ds.simulate(size="tiny", seed=0)
    sim = adata.uns["simulation"]
    assert list(truth.obs_names) == list(sim["truth_conditions"])
    np.testing.assert_array_equal(truth.X, sim["truth_mean"])
    np.testing.assert_array_equal(truth.layers["delta"][0], 0)
    np.testing.assert_allclose(
        truth.layers["delta"], sim["truth_mean"] - sim["truth_mean"][0], atol=0
    )
    assert truth.obs["n_targets"].tolist() == [len(ps.pp.genes_of(c)) for c in truth.obs_names]


def test_truth_profiles_needs_a_simulated_screen(norman):
    with pytest.raises(ps.PerturbsimError, match="no .uns\\['simulation'\\] truth"):
        ps.tl.truth_profiles(norman)


def test_every_truth_pair_gets_a_subtype(truth, truth_scores):
    pairs = [label for label in truth.obs_names if len(ps.pp.genes_of(label)) == 2]
    assert sorted(truth_scores.index) == sorted(pairs)
    assert (truth_scores["flag"] == "").all()
    assert (truth_scores["subtype"] != "").all()


def test_truth_scores_are_deterministic(truth, truth_scores):
    pd.testing.assert_frame_equal(ps.tl.gi_scores(truth, seed=0), truth_scores)


def test_truth_ranks_its_own_subtypes_perfectly(truth_scores):
    table = ps.tl.gi_precision(truth_scores, truth_scores, k=10)
    full = table[table["n_true"] >= 10]
    assert not full.empty
    assert (full["precision_at_k"] == 1.0).all()
    assert (table["r2"] == 1.0).all()


@pytest.mark.parametrize(
    ("scale", "holds", "fails"),
    [
        (2.0, {"synergy"}, {"suppression", "additive"}),
        (0.4, {"suppression"}, {"synergy", "additive"}),
        (0.75, {"additive"}, {"synergy", "suppression"}),
    ],
)
def test_constructed_magnitudes(truth, singles, scale, holds, fails):
    first, second, _ = singles
    delta = scale * (truth[first].layers["delta"][0] + truth[second].layers["delta"][0])
    row = _score_constructed(truth, first, second, delta)
    np.testing.assert_allclose([row["c1"], row["c2"]], [scale, scale], rtol=1e-6)
    assert row["fit_corr"] == pytest.approx(1.0)
    assert not row["is_neomorphism"]
    assert all(row[f"is_{s}"] for s in holds)
    assert not any(row[f"is_{s}"] for s in fails)


def test_constructed_epistasis(truth, singles):
    first, _, unlike = singles
    row = _score_constructed(truth, first, unlike, 1.5 * truth[first].layers["delta"][0])
    c_first, c_unlike = (row["c1"], row["c2"]) if row["gene_a"] == first else (row["c2"], row["c1"])
    np.testing.assert_allclose([c_first, c_unlike], [1.5, 0.0], atol=1e-6)
    assert row["subtype"] == "epistasis"


def test_constructed_neomorphism(truth, singles):
    first, second, _ = singles
    additive = truth[first].layers["delta"][0] + truth[second].layers["delta"][0]
    row = _score_constructed(truth, first, second, np.random.default_rng(0).permutation(additive))
    assert row["fit_corr"] < 0.5
    assert row["subtype"] == "neomorphism"


def test_truth_profiles_of_something_else_is_one_line():
    with pytest.raises(ps.PerturbsimError, match="adata must be an AnnData"):
        ps.tl.truth_profiles("screen.h5ad")


def test_truth_profiles_read_the_truth_by_gene_name():
    adata = ps.ds.simulate(size="tiny", seed=0)
    truth = ps.tl.truth_profiles(adata)
    reordered = ps.tl.truth_profiles(adata[:, adata.var_names[::-1][:30]].copy())
    assert list(reordered.var_names) == list(adata.var_names[::-1][:30])
    np.testing.assert_array_equal(reordered.X, truth[:, reordered.var_names].X)
    renamed = adata.copy()
    renamed.var_names = [f"X{i}" for i in range(renamed.n_vars)]
    with pytest.raises(ps.PerturbsimError, match="gene 'X0' of adata has no truth"):
        ps.tl.truth_profiles(renamed)


def test_truth_profiles_of_an_unreadable_record_are_one_line_errors():
    adata = ps.ds.simulate(size="tiny", seed=0)
    sim = adata.uns["simulation"]
    no_labels = adata.copy()
    del no_labels.uns["simulation"]["truth_conditions"]
    with pytest.raises(ps.PerturbsimError, match="no .uns\\['simulation'\\] truth"):
        ps.tl.truth_profiles(no_labels)
    unnamed = adata.copy()  # a screen simulated before the truth's genes were kept
    del unnamed.uns["simulation"]["truth_genes"]
    cut = unnamed[:, : adata.n_vars - 1].copy()
    with pytest.raises(ps.PerturbsimError, match="truth_mean has shape"):
        ps.tl.truth_profiles(cut)
    no_control = adata.copy()
    labels = np.asarray(sim["truth_conditions"]).astype(object)
    labels[list(labels).index("ctrl")] = "nothing"
    no_control.uns["simulation"]["truth_conditions"] = labels
    with pytest.raises(ps.PerturbsimError, match="truth_conditions has no 'ctrl' row"):
        ps.tl.truth_profiles(no_control)


def test_truth_profiles_change_is_over_the_ctrl_row_wherever_it_lies(truth):
    adata = ps.ds.simulate(size="tiny", seed=0)
    sim = adata.uns["simulation"]
    reversed_ = adata.copy()
    reversed_.uns["simulation"]["truth_conditions"] = np.asarray(sim["truth_conditions"])[::-1]
    reversed_.uns["simulation"]["truth_mean"] = np.asarray(sim["truth_mean"])[::-1]
    again = ps.tl.truth_profiles(reversed_)
    assert again.obs_names[-1] == "ctrl" and again.X.dtype == np.float32
    np.testing.assert_array_equal(again[truth.obs_names].layers["delta"], truth.layers["delta"])
