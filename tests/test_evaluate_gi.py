"""Genetic-interaction precision inside ``tl.evaluate``: truth, models, anchors, files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_screen

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.pp import genes_of


@pytest.fixture(scope="module")
def small():
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    return adata


@pytest.fixture(scope="module")
def small_result(small):
    return ps.tl.evaluate(small, models=["additive", "mean", "linear"], seeds=[1, 2])


def test_simulated_screen_is_ranked_against_its_noiseless_truth(small_result):
    gi = small_result.gi
    assert set(gi["truth"]) == {"simulated"}
    for (model, seed), rows in gi.groupby(["model", "seed"]):
        assert list(rows["subtype"]) == list(ps.pp._gi.SUBTYPES), (model, seed)
    # "mean" predicts one profile for every perturbation: its singles are collinear, so
    # no pair can be scored and it has no rows
    assert set(gi["model"]) == {"additive", "linear", "measured"}
    assert gi["precision_at_k"].between(0, 1).all()
    assert (gi["k"] <= gi["n_pairs"]).all()


def test_additive_baseline_ranks_magnitude_as_a_random_ranking_does(small):
    """Every additive pair has c1 = c2 = 1: all ties, so the random expectation exactly.

    Theil-Sen leaves their magnitudes ~1e-9 apart (1.4142135616 and 1.4142135606): ties
    read to 9 decimals ordered them by that rounding (0.50 for synergy against 0.25).
    """
    # k below each seed's 3 or 4 test pairs: at k = 10 every ranking equals a random one
    gi = ps.tl.evaluate(small, models=["additive"], seeds=[1, 2], gi_k=2).gi
    additive = gi[(gi["model"] == "additive") & gi["subtype"].isin(["synergy", "suppression"])]
    assert not additive.empty and (additive["k"] < additive["n_pairs"]).all()
    np.testing.assert_allclose(additive["precision_at_k"], additive["random_precision"])


def test_measured_row_matches_scoring_measured_means_by_hand(small, small_result):
    split = ps.pp.split(small, kind="simulation", seed=1, copy=True)
    ps.pp.pseudobulk(split)
    stats = ps.pp.PseudobulkStats.from_adata(split)
    test = [str(c) for c in split.uns["perturbsim"]["split"]["test"]]
    measured_conditions = set(map(str, stats.conditions))
    pairs = [c for c in test if len(genes_of(c)) == 2 and set(genes_of(c)) <= measured_conditions]
    assert pairs
    truth = ps.tl.truth_profiles(small)
    genes = list(truth.var_names[np.asarray(truth["ctrl"].X).ravel() > 0.5])
    singles = sorted({g for p in pairs for g in genes_of(p)})
    measured = ps.pp.measured_profiles(split, [*singles, *pairs])
    expected = ps.tl.gi_precision(
        ps.tl.gi_scores(measured, pairs=pairs, genes=genes, seed=1),
        ps.tl.gi_scores(truth, pairs=pairs, genes=genes, seed=1),
    )
    got = small_result.gi.query("model == 'measured' and seed == 1")
    np.testing.assert_allclose(got["precision_at_k"], expected["precision_at_k"])
    np.testing.assert_allclose(got["random_precision"], expected["random_precision"])


def test_real_screen_takes_the_measured_means_as_truth(norman, caplog):
    with caplog.at_level("WARNING", logger="perturbsim"):
        result = ps.tl.evaluate(norman, models=["additive"], seeds=[1], replicate=False)
    # a handful of test pairs, fewer than k: precision@10 is a random ranking's, and said so
    n_pairs = int(result.gi["n_pairs"].iloc[0])
    assert n_pairs <= 10
    np.testing.assert_allclose(result.gi["precision_at_k"], result.gi["random_precision"])
    assert "interactions: a seed ranks no more test pairs than k = 10" in caplog.text
    assert set(result.gi["truth"]) == {"measured"}
    assert "measured" not in set(result.gi["model"])  # no noiseless truth to rank against
    note = ps.io._html.gi_note(result)
    assert "The truth is the test pairs' measured means" in note and "simulator" not in note
    # log-normalised: 5 genes above Norman's 0.5, so every expressed gene is fitted
    control = np.asarray(ps.pp.measured_profiles(norman, ["ctrl"]).X).ravel()
    assert (control > 0.5).sum() == 5
    assert set(result.gi["n_genes"]) == {int((control > 0).sum())}
    summary = result.gi_summary()
    assert set(summary["metric"]) == {
        "precision_at_k",
        "random_precision",
        "top_k_accuracy",
        "r2",
    }


def test_gi_can_be_turned_off_and_its_files_follow(small, tmp_path):
    result = ps.tl.evaluate(small, models=["additive"], seeds=[1], gi=False)
    assert result.gi.empty and result.gi_summary().empty
    assert "gi_precision.csv" not in result.write(tmp_path / "off")
    on = ps.tl.evaluate(small, models=["additive"], seeds=[1])
    # empty or not, the summary has the same columns
    assert list(result.gi_summary().columns) == list(on.gi_summary().columns)
    written = on.write(tmp_path / "on")
    assert {"gi_precision.csv", "gi_summary.csv"} <= set(written)
    report = ps.io.write_report(on, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Genetic interactions" in text and report
    assert "The truth is the simulator's noiseless profiles" in text  # what it is scored on
    assert "| model | pairs per seed | genes | synergy" in text


@pytest.mark.parametrize("gi_k", [0, 2.5, True])
def test_bad_gi_k_is_one_clear_error(small, gi_k):
    with pytest.raises(PerturbsimError, match="gi_k"):
        ps.tl.evaluate(small, models=["additive"], seeds=[1], gi_k=gi_k)


def test_a_screen_without_pairs_has_no_interaction_rows_and_no_failure():
    singles = make_screen(["ctrl"] + [f"G{i}+ctrl" for i in range(10)], n_genes=20, cells=8)
    ps.pp.setup(singles, perturbation_key="condition")
    result = ps.tl.evaluate(singles, models=["mean", "additive"], split="single", seeds=[1])
    assert result.failures.empty and result.gi.empty


def test_a_subtype_no_pair_or_every_pair_has_reads_as_ranking_nothing():
    from perturbsim.io._html import _precision_cell

    assert _precision_cell(0.7, 0.63) == "0.70 (0.63)"
    assert _precision_cell(0.0, 0.0) == "– (none true)"
    assert _precision_cell(1.0, 1.0) == "– (all true)"


def test_a_measured_truth_has_the_screens_halves_as_its_ceiling(small):
    from perturbsim.tl._evaluate_gi import GITruth

    stats_ = ps.pp.compute_pseudobulk(small, coexpression="none")
    measured = {str(c) for c in stats_.conditions}
    pairs = [c for c in measured if c.count("+") == 1 and set(genes_of(c)) <= measured]
    truth = GITruth(stats_, pairs, seed=0)  # no simulator: the measured means are the truth
    ceiling = truth.of_measurement(k=5)
    assert set(ceiling["model"]) == {"replicate"} and set(ceiling["truth"]) == {"measured"}
    # the simulator's interactions replicate between halves of the cells: above random
    excess = ceiling["precision_at_k"] - ceiling["random_precision"]
    assert excess.sum() > 0.3 and (excess > -0.25).all()
    # one half against the other, not against itself: noisy, so short of a perfect fit
    assert (ceiling["r2"] < 0.95).all()


def test_the_replicate_ceiling_holds_each_half_to_half_the_cells(small):
    from perturbsim.tl._evaluate_gi import GITruth

    labels = small.obs["condition"].astype(str).to_numpy()
    stats_ = ps.pp.compute_pseudobulk(small, coexpression="none")
    measured = {str(c) for c in stats_.conditions}
    pairs = sorted(c for c in measured if c.count("+") == 1 and set(genes_of(c)) <= measured)
    cut = pairs[:5]  # these pairs keep 6 cells: 3 per half, above half of min_cells = 4
    keep = np.ones(small.n_obs, bool)
    for pair in cut:
        keep[np.flatnonzero(labels == pair)[6:]] = False
    fewer = ps.pp.compute_pseudobulk(small[keep].copy(), coexpression="none")
    truth = GITruth(fewer, pairs, seed=0)
    flags = truth.scores["flag"]
    # 6 cells: enough for the truth (those left out change no gene significantly)
    assert flags[cut].isin(["", "too few DE genes (0 <= 0)"]).all() and flags[cut].eq("").any()
    ceiling = truth.of_measurement(k=5)
    assert set(ceiling["n_pairs"]) == {int(flags.eq("").sum())}  # and in both halves


def test_a_measured_pair_that_changes_no_gene_is_not_part_of_the_truth(small):
    from perturbsim.tl._evaluate_gi import GITruth

    labels = small.obs["condition"].astype(str).to_numpy()
    measured = set(labels)
    pairs = sorted(c for c in measured if c.count("+") == 1 and set(genes_of(c)) <= measured)
    keep = np.ones(small.n_obs, bool)
    for pair in pairs[:5]:  # 6 cells: some of these change no gene significantly
        keep[np.flatnonzero(labels == pair)[6:]] = False
    stats_ = ps.pp.compute_pseudobulk(small[keep].copy(), coexpression="none")
    truth = GITruth(stats_, pairs, seed=0)
    fitted = np.isin(stats_.genes, truth.genes)
    expected = ps.pp.count_de(stats_, pairs, genes=fitted)
    assert truth.n_de == expected.to_dict()
    unscored = truth.scores.index[truth.scores["flag"].str.startswith("too few DE genes")]
    assert len(unscored) and set(unscored) == set(expected.index[expected == 0])
    simulated = GITruth(stats_, pairs, seed=0, simulated=ps.tl.truth_profiles(small))
    assert simulated.n_de is None  # the simulator's truth is noiseless: no such filter


def test_the_replicate_ceiling_comes_with_the_replicate():
    adata = ps.ds.norman2019_subset()  # measured means as the truth
    with_it = ps.tl.evaluate(adata, models=["mean"], seeds=1)
    assert "replicate" in set(with_it.gi["model"])
    without = ps.tl.evaluate(adata, models=["mean"], seeds=1, replicate=False)
    assert "replicate" not in set(without.gi["model"])


def test_a_simulated_truth_fits_the_genes_its_noiseless_control_expresses(small):
    """The genes are chosen on the truth's control, not on the measured one (~200 genes
    near Norman's 0.5: the measured control mean crosses it for a few of them)."""
    from perturbsim.pp._gi import resolve_abundance
    from perturbsim.tl._evaluate_gi import GITruth

    stats_ = ps.pp.compute_pseudobulk(small, coexpression="none")
    measured = {str(c) for c in stats_.conditions}
    pairs = sorted(c for c in measured if c.count("+") == 1 and set(genes_of(c)) <= measured)
    profiles = ps.tl.truth_profiles(small)
    control = np.asarray(profiles["ctrl"].X, dtype=float).ravel()
    expected = list(profiles.var_names[control > resolve_abundance(control, None)])
    noisy = stats_.control_mean > resolve_abundance(stats_.control_mean, None)
    assert list(np.asarray(stats_.genes)[noisy]) != expected  # the two choices differ here
    assert GITruth(stats_, pairs, seed=0, simulated=profiles).genes == expected


def test_a_test_triple_is_left_out_of_the_interactions():
    from perturbsim.tl._evaluate_gi import GITruth

    pairs = ["G0+G1", "G2+G3", "G0+G2", "G1+G3"]
    labels = ["ctrl", "G0", "G1", "G2", "G3", *pairs, "G0+G1+G2"]
    screen = make_screen(labels, n_genes=30, cells=30)
    ps.pp.setup(screen, perturbation_key="condition")
    stats_ = ps.pp.compute_pseudobulk(screen, coexpression="none")
    truth = GITruth(stats_, labels[5:], seed=0)  # every one measured, with its singles
    assert truth.pairs == pairs and list(truth.scores.index) == pairs


def test_a_model_is_ranked_on_every_pair_it_covers_its_generic_guesses_too(small):
    from perturbsim.tl._evaluate_gi import GITruth

    stats_ = ps.pp.compute_pseudobulk(small, coexpression="none")
    measured = {str(c) for c in stats_.conditions}
    pairs = sorted(c for c in measured if c.count("+") == 1 and set(genes_of(c)) <= measured)
    truth = GITruth(stats_, pairs, seed=0)
    profiles = ps.pp.measured_profiles(small, ["ctrl", *genes_of(pairs[0]), pairs[0]])
    profiles.obs["generic"] = [label == genes_of(pairs[0])[0] for label in profiles.obs_names]
    scored = truth.score(profiles, [pairs[0]])  # gi_scores alone would flag it: generic single
    assert scored.loc[pairs[0], "flag"] == ""
    assert ps.tl.gi_scores(profiles).loc[pairs[0], "flag"].startswith("generic single")
