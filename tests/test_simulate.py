"""Tests of the Perturb-seq simulator (size="small" throughout: about a second per call)."""

from __future__ import annotations

import re
from itertools import pairwise

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order

import perturbsim as ps
from perturbsim._errors import PerturbsimError
from perturbsim.ds._simulate import simulate
from perturbsim.pp import setup, split
from perturbsim.pp._gi import SUBTYPES


@pytest.fixture(scope="module")
def sim() -> ad.AnnData:
    return simulate(size="small", seed=0)


def _truth(adata: ad.AnnData) -> tuple[dict[str, int], np.ndarray]:
    s = adata.uns["simulation"]
    index = {lab: i for i, lab in enumerate(s["truth_conditions"])}
    return index, np.asarray(s["truth_mean"], dtype=np.float64)


def test_same_seed_identical_other_seed_differs(sim):
    again = simulate(size="small", seed=0)
    assert (sim.X != again.X).nnz == 0
    assert (sim.layers["counts"] != again.layers["counts"]).nnz == 0
    assert sim.obs.equals(again.obs)
    assert sim.var.equals(again.var)
    np.testing.assert_array_equal(
        sim.uns["simulation"]["truth_mean"], again.uns["simulation"]["truth_mean"]
    )
    assert sim.uns["simulation"]["go"].equals(again.uns["simulation"]["go"])
    other = simulate(size="small", seed=1)
    assert not other.uns["simulation"]["grn"].equals(sim.uns["simulation"]["grn"])
    assert other.X.shape != sim.X.shape or (other.X != sim.X).nnz > 0


def test_shapes_labels_and_setup(sim):
    p = sim.uns["simulation"]["params"]
    assert sim.shape == (300 + (26 + 26) * 60, 400)
    assert sim.X.dtype == np.float32 and sp.issparse(sim.X) and sim.X.format == "csr"
    assert sim.layers["counts"].format == "csr"
    cond = sim.obs["condition"].astype(str)
    assert cond.nunique() == 1 + 26 + 26
    assert (cond == "control").sum() == 300
    assert all(re.fullmatch(r"control|G\d{4}(\+G\d{4})?", c) for c in cond.unique())
    perturbable = set(sim.var_names[sim.var["perturbable"]])
    assert len(perturbable) == p["n_perturbable"] == 36
    pairs = [c for c in cond.unique() if "+" in c]
    singles = {c for c in cond.unique() if c != "control" and "+" not in c}
    assert all(set(c.split("+")) <= perturbable for c in pairs)
    seen = [sum(g in singles for g in c.split("+")) for c in pairs]
    assert 2 in seen and min(seen) < 2  # pair subgroups exist
    # truth covers control, every single and every pair of the perturbable genes
    index, truth = _truth(sim)
    assert truth.shape == (1 + 36 + 36 * 35 // 2, 400)
    assert sim.uns["simulation"]["truth_mean"].dtype == np.float32
    assert next(iter(index)) == "ctrl"
    assert all(lab.split("+") == sorted(lab.split("+")) for lab in index)
    assert set(sim.uns["simulation"]["measured"]) <= set(index)
    setup(sim.copy(), perturbation_key="condition", control="control")


def test_tiny_preset_is_a_complete_screen_and_deterministic():
    tiny = simulate(size="tiny", seed=0)
    p = tiny.uns["simulation"]["params"]
    assert (p["n_perturbable"], p["n_singles"], p["n_pairs"]) == (14, 10, 10)
    assert tiny.shape == (150 + (10 + 10) * 30, 70)
    cells = tiny.obs["condition"].astype(str).value_counts()
    assert cells["control"] == 150 and (cells.drop("control") == 30).all()
    singles = {c for c in cells.index if c != "control" and "+" not in c}
    pairs = [c for c in cells.index if "+" in c]
    assert len(singles) == 10 and len(pairs) == 10
    assert {sum(g in singles for g in c.split("+")) for c in pairs} == {0, 1, 2}
    index, truth = _truth(tiny)
    assert truth.shape == (1 + 14 + 14 * 13 // 2, 70) and np.isfinite(truth).all()
    assert set(tiny.uns["simulation"]["measured"]) <= set(index)
    assert p["n_unconverged"] == 0
    again = simulate(size="tiny", seed=0)
    assert (tiny.layers["counts"] != again.layers["counts"]).nnz == 0
    assert tiny.obs.equals(again.obs) and tiny.var.equals(again.var)
    np.testing.assert_array_equal(
        tiny.uns["simulation"]["truth_mean"], again.uns["simulation"]["truth_mean"]
    )
    assert tiny.uns["simulation"]["go"].equals(again.uns["simulation"]["go"])
    other = simulate(size="tiny", seed=1)
    assert not other.uns["simulation"]["grn"].equals(tiny.uns["simulation"]["grn"])


def test_tiny_fixture_has_every_simulation_split_subgroup(tiny, tiny_go):
    split(tiny, kind="simulation", seed=1)
    subgroups = set(tiny.obs["perturbsim_subgroup"].astype(str))
    assert {"unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"} <= subgroups
    assert list(tiny_go.columns) == ["gene", "term"]
    assert set(tiny_go["gene"]) <= set(tiny.var_names)


def test_counts_are_integers_and_x_is_their_log_normalisation(sim):
    counts = sim.layers["counts"]
    assert np.all(counts.data == np.round(counts.data)) and counts.data.min() >= 1
    ref = ad.AnnData(counts.copy())
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    np.testing.assert_allclose(sim.X.toarray(), ref.X.toarray(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sim.obs["ncounts"], np.asarray(counts.sum(axis=1)).ravel())
    assert 0.3 < 1 - sim.X.nnz / np.prod(sim.shape) < 0.95


def _module_mate_jaccard(adata: ad.AnnData) -> tuple[float, float]:
    go = adata.uns["simulation"]["go"]
    terms = go.groupby("gene")["term"].apply(set).to_dict()
    module = adata.var["module"]
    rng = np.random.default_rng(0)
    genes = [g for g in adata.var_names if g in terms]
    mates, others = [], []
    for _ in range(2000):
        a, b = rng.choice(genes, 2, replace=False)
        j = len(terms[a] & terms[b]) / len(terms[a] | terms[b])
        same = module[a] == module[b] and module[a] >= 0
        (mates if same else others).append(j)
    for k in range(int(module.max()) + 1):
        members = [g for g in module.index[module == k] if g in terms]
        for a, b in pairwise(members):
            mates.append(len(terms[a] & terms[b]) / len(terms[a] | terms[b]))
    return float(np.mean(mates)), float(np.mean(others))


def test_go_follows_modules_unless_noisy(sim):
    go = sim.uns["simulation"]["go"]
    assert list(go.columns) == ["gene", "term"]
    annotated = set(go["gene"])
    assert 0.85 <= len(annotated) / sim.n_vars <= 0.92  # unannotated_fraction=0.1
    mates, others = _module_mate_jaccard(sim)
    assert mates > 0.3 and mates > 4 * others
    noisy = simulate(size="small", seed=0, go_noise=1.0)
    mates1, others1 = _module_mate_jaccard(noisy)
    assert mates1 < 2 * others1 + 0.05
    # the expression data do not depend on go_noise
    assert (noisy.X != sim.X).nnz == 0


def test_truth_regulated_genes_change_more_than_unreachable(sim):
    index, truth = _truth(sim)
    delta = truth - truth[index["ctrl"]]
    names = list(sim.var_names)
    pos = {g: i for i, g in enumerate(names)}
    grn = sim.uns["simulation"]["grn"]
    src, tgt = grn["source"].map(pos).to_numpy(), grn["target"].map(pos).to_numpy()
    g = len(names)
    adj = sp.csr_matrix((np.ones(src.size), (src, tgt)), shape=(g, g))
    wins, n = 0, 0
    for gene in sim.var_names[sim.var["perturbable"]]:
        i = pos[gene]
        targets = np.setdiff1d(tgt[src == i], [i])
        reach = breadth_first_order(adj, i, directed=True, return_predecessors=False)
        unreachable = np.setdiff1d(np.arange(g), reach)
        if targets.size == 0 or unreachable.size == 0:
            continue
        d = np.abs(delta[index[gene]])
        wins += d[targets].mean() > d[unreachable].mean()
        n += 1
    assert n >= 10 and wins >= 0.9 * n


def test_truth_is_the_pseudobulk_limit():
    """The truth's changes over control are the many-cell limit; its levels nearly are."""
    adata = simulate(
        size="tiny", seed=3, n_control_cells=6000, cells_per_condition=1500, n_singles=4, n_pairs=1
    )
    index, truth = _truth(adata)
    labels = adata.obs["condition"].astype(str).to_numpy()
    control = adata[labels == "control"].X.toarray()
    assert np.abs(control.mean(0) - truth[index["ctrl"]]).max() < 0.08  # documented bias
    for condition in sorted(set(labels) - {"control"}):
        cells = adata[labels == condition].X.toarray()
        measured = cells.mean(0) - control.mean(0)
        se = np.sqrt(cells.var(0, ddof=1) / len(cells) + control.var(0, ddof=1) / len(control))
        z = (measured - (truth[index[condition]] - truth[index["ctrl"]])) / (se + 1e-6)
        assert np.median(np.abs(z)) < 1.0, condition  # 0.67 for unbiased changes


def test_perturbed_target_moves_in_the_right_direction():
    for modality, sign in (("crispra", 1), ("knockout", -1)):
        adata = simulate(size="small", seed=0, modality=modality, n_singles=5, n_pairs=5)
        index, truth = _truth(adata)
        eff = adata.var["efficacy"]
        for gene in adata.var_names[adata.var["perturbable"]]:
            if eff[gene] > 0.3:
                i = adata.var_names.get_loc(gene)
                assert sign * (truth[index[gene], i] - truth[index["ctrl"], i]) > 0


def test_non_additivity_present_but_not_universal(sim):
    index, truth = _truth(sim)
    delta = truth - truth[index["ctrl"]]
    rel = []
    for lab in index:
        if "+" in lab:
            a, b = lab.split("+")
            add = delta[index[a]] + delta[index[b]]
            resid = delta[index[lab]] - add
            rel.append(np.linalg.norm(resid) / max(np.linalg.norm(add), 1e-9))
    rel = np.asarray(rel)
    share = (rel > 0.1).mean()
    assert 0.03 < share < 0.9
    assert (rel < 0.05).mean() > 0.1  # pairs on unrelated programs are close to additive


def test_interaction_landscape_is_not_degenerate(sim):
    """The truth of every pair spans buffering to synergy, neomorphism and epistasis.

    As in Norman et al.'s screen, whose published pairs are mostly buffered (mean absolute
    coefficient below 1), and whose pairs converge on shared programs (singles alike).
    """
    truth = ps.tl.truth_profiles(sim)
    scores = ps.tl.gi_scores(truth, seed=0)
    # a pair of two near-null genes whose singles are the same faint pattern cannot be split
    # between them (gi_scores flags it): rare
    unscored = scores["flag"] != ""
    assert (scores.loc[unscored, "flag"] == "singles collinear or zero").all()
    assert unscored.mean() < 0.01
    scores = scores[~unscored]
    magnitude, mean_abs = scores["magnitude"], scores["mean_abs_coef"]
    assert (magnitude < 1).mean() > 0.05  # balanced buffering: GEARS's suppression
    assert (magnitude > 1.15).mean() > 0.3  # GEARS's synergy
    assert magnitude.quantile(0.95) < 2.5  # no wild fits of near-null singles
    assert (mean_abs < 0.8).mean() > 0.35  # buffered on Norman's ts_norm
    assert ((mean_abs - 1).abs() < 0.1).mean() > 0.15  # additive
    assert 0.05 < (scores["fit_corr"] < 0.88).mean() < 0.4  # neomorphic
    assert 0.05 < scores["is_epistasis"].mean() < 0.5
    assert scores["is_redundancy"].mean() < 0.95
    assert set(scores["subtype"]) == set(SUBTYPES)  # each subtype is some pair's primary one
    measured = [m for m in sim.uns["simulation"]["measured"] if "+" in m]
    dcor = scores["dcor_singles"]
    assert dcor[measured].median() > dcor.median() + 0.07


def test_network_has_programs_with_inputs_and_modulated_targets(sim):
    grn = sim.uns["simulation"]["grn"]
    program = grn[grn["kind"] == "program"]
    heads = set(program["source"])
    assert len(heads) == sim.uns["simulation"]["params"]["n_programs"] == 4
    assert ((program["weight"] > 0) & (program["weight"] < 1)).all()
    assert (grn.loc[grn["kind"] != "program", "weight"] <= 1).all()
    inputs = grn[grn["kind"] == "program_input"]
    assert set(inputs["target"]) == heads
    # heads modulate genes that regulate nothing, a large share of all genes
    assert not set(program["target"]) & set(grn["source"])
    assert program["target"].nunique() > 0.5 * sim.n_vars


def test_h5ad_round_trip(sim, tmp_path):
    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    back = ad.read_h5ad(path)
    assert (back.X != sim.X).nnz == 0
    assert (back.layers["counts"] != sim.layers["counts"]).nnz == 0
    s, t = sim.uns["simulation"], back.uns["simulation"]
    np.testing.assert_array_equal(s["truth_mean"], t["truth_mean"])
    assert list(t["truth_conditions"]) == list(s["truth_conditions"])
    assert t["go"].reset_index(drop=True).equals(s["go"])
    assert len(t["grn"]) == len(s["grn"])
    assert t["params"]["n_genes"] == 400


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": "huge"}, "size='huge'"),
        ({"modality": "rnai"}, "modality='rnai'"),
        ({"n_singles": 99}, "n_singles=99"),
        ({"n_pairs": 10_000}, "n_pairs=10000"),
        ({"go_noise": 1.5}, "go_noise must lie in [0, 1], got 1.5"),
        ({"go_noise": "a"}, "go_noise must be a finite number >= 0, got 'a'"),
        ({"unannotated_fraction": "x"}, "unannotated_fraction must lie in [0, 1), got 'x'"),
        ({"size": ["tiny"]}, "size=['tiny'] is not a preset"),
        ({"n_genes": -1}, "n_genes must be a whole number >= 50, got -1"),  # not ">= 0"
        # the limits themselves: one past each is refused
        ({"n_genes": 49}, "n_genes must be a whole number >= 50, got 49"),
        ({"size": "tiny", "n_perturbable": 36}, "n_perturbable=36 must be between 2"),
        ({"n_pairs": 36 * 35 // 2 + 1}, "n_pairs=631 exceeds the 630 pairs"),
        ({"n_control_cells": 0}, "n_control_cells=0"),
        ({"cells_per_condition": 0}, "cells_per_condition=0"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, match):
    with pytest.raises(PerturbsimError, match=re.escape(match)):
        simulate(**{"size": "small", **kwargs})


def test_a_network_that_oscillates_under_damping_is_solved_on_with_less():
    # seed 51's feedback cycles swing between two states at the first damping (79 of its
    # 106 conditions unsettled before the solver damped them further)
    adata = ps.ds.simulate(size="tiny", seed=51)
    assert adata.uns["simulation"]["params"]["n_unconverged"] == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_genes": 5000, "n_perturbable": 2000}, "a truth of 2,001,001 conditions"),
        ({"n_genes": 10**9}, "x 1,000,000,000 genes, more than the 500,000,000 values"),
        ({"cells_per_condition": 10**12}, "more than 50,000,000: choose fewer cells"),
    ],
)
def test_a_design_beyond_memory_is_refused_before_it_is_drawn(options, message):
    with pytest.raises(ps.PerturbsimError, match=message):
        ps.ds.simulate(size="tiny", **options)


def test_pairs_beyond_the_quotas_of_a_design_are_drawn_among_related_genes_too():
    # no single measured: every pair comes from the fill after the quotas, still weighted
    # towards genes that feed one program, as the quotas' picks are
    from perturbsim.ds import _simulate
    from perturbsim.ds._simulate_grn import build_grn, calibrate

    rng = np.random.default_rng(7)
    grn = build_grn(400, rng, min_modules=8, n_programs=4)
    calibrate(grn, rng)
    perturbable = _simulate._choose_perturbable(grn, 26, rng)
    related = _simulate._related(grn, perturbable) >= 1
    everywhere = related[np.triu_indices(perturbable.size, k=1)].mean()
    shares = []
    for seed in range(5):
        _, pairs = _simulate._choose_design(grn, perturbable, 0, 30, np.random.default_rng(seed))
        shares.append(np.mean([related[a, b] for a, b in pairs]))
    assert np.mean(shares) > everywhere + 0.1


def test_a_screen_too_large_for_memory_points_to_simulate_to_disk(monkeypatch, caplog):
    import perturbsim.ds._simulate as simulator

    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.ds.simulate(size="tiny", seed=0)
    assert "simulate_to_disk" not in caplog.text
    monkeypatch.setattr(simulator, "LARGE_IN_MEMORY", 750 * 70 - 1)  # tiny: 750 x 70
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.ds.simulate(size="tiny", seed=0)
    assert "drawing 750 cells x 70 genes in memory" in caplog.text
    assert "perturbsim.ds.simulate_to_disk writes a screen this large" in caplog.text


def test_genes_are_named_from_one_in_zero_padded_order(sim):
    assert sim.var_names[0] == "G0001" and sim.var_names[-1] == "G0400"
    assert list(sim.var_names) == sorted(sim.var_names)


def test_var_flags_regulators_and_cell_cycle_genes_of_the_network(sim):
    grn = sim.uns["simulation"]["grn"]
    np.testing.assert_array_equal(
        sim.var["is_regulator"].to_numpy(), sim.var_names.isin(grn["source"])
    )
    # the cell-cycle program runs through (at most) two whole modules
    cycling = sim.var.loc[sim.var["cell_cycle"], "module"]
    assert 1 <= cycling.nunique() <= 2 and (cycling >= 0).all()
    assert sim.var["module"].isin(cycling.unique()).sum() == cycling.size


def test_control_cells_of_a_module_covary_through_its_extrinsic_noise(sim):
    labels = sim.obs["condition"].astype(str).to_numpy()
    x = sim[labels == "control"].X.toarray()
    keep = ~sim.var["cell_cycle"].to_numpy() & (x.std(0) > 0)
    corr = np.corrcoef(x[:, keep].T)
    module = sim.var["module"].to_numpy()[keep]
    in_module = module[:, None] >= 0
    same = in_module & (module[:, None] == module[None, :])
    np.fill_diagonal(same, False)
    other = in_module & (module[None, :] >= 0) & (module[:, None] != module[None, :])
    assert corr[same].mean() > corr[other].mean() + 0.01


def test_every_annotated_module_member_has_a_term_of_its_module_alone(sim):
    go = sim.uns["simulation"]["go"]
    module = go["gene"].map(sim.var["module"])
    per_term = module.groupby(go["term"])
    pure = (per_term.nunique() == 1) & (per_term.min() >= 0) & (per_term.size() >= 2)
    covered = set(go.loc[go["term"].isin(pure.index[pure]), "gene"])
    members = set(go["gene"][module >= 0])
    assert members and members <= covered


def test_knockdown_scales_production_and_activation_adds_to_it():
    from perturbsim.ds import _simulate
    from perturbsim.ds._simulate_grn import build_grn, calibrate

    rng = np.random.default_rng(0)
    grn = build_grn(100, rng, min_modules=6, n_programs=4)
    calibrate(grn, rng)
    eff = rng.uniform(0.1, 0.9, grn.n_genes)
    boost = rng.uniform(2.0, 8.0, grn.n_genes)
    conditions = [(), (3,), (5, 7)]
    for modality in ("crispri", "knockout"):
        pert = _simulate._perturbations(grn, conditions, modality, eff, boost)
        np.testing.assert_array_equal(pert.cond, [1, 2, 2])
        np.testing.assert_array_equal(pert.gene, [3, 5, 7])
        np.testing.assert_allclose(pert.mult, 1.0 - eff[[3, 5, 7]])
        np.testing.assert_array_equal(pert.add, 0.0)
    pert = _simulate._perturbations(grn, conditions, "crispra", eff, boost)
    np.testing.assert_array_equal(pert.mult, 1.0)
    genes = [3, 5, 7]
    np.testing.assert_allclose(pert.add, eff[genes] * boost[genes] * grn.vmax[genes])


def test_truth_levels_lie_below_the_pseudobulk_alike_in_and_outside_modules():
    """The quadrature's documented bias is low levels, for module genes (extrinsic noise of
    mean 1) as for the others."""
    adata = simulate(size="tiny", seed=3, n_control_cells=6000, n_singles=0, n_pairs=0)
    index, truth = _truth(adata)
    labels = adata.obs["condition"].astype(str).to_numpy()
    bias = adata[labels == "control"].X.toarray().mean(0) - truth[index["ctrl"]]
    in_module = adata.var["module"].to_numpy() >= 0
    for genes in (in_module, ~in_module):
        assert 0.01 < np.median(bias[genes]) < 0.08


@pytest.fixture(scope="module")
def network():
    """A calibrated ``small``-sized network (400 genes, 4 programs) and its control state."""
    from perturbsim.ds._simulate_grn import build_grn, calibrate

    rng = np.random.default_rng(7)
    grn = build_grn(400, rng, min_modules=8, n_programs=4)
    return grn, calibrate(grn, rng)


def test_production_follows_the_hill_logic_of_every_edge(network):
    """Repressors, AND activators (product), OR activators (1 - prod(1 - w h)) and the
    programs' bounded modulation, gene by gene, against the vectorised production."""
    grn, x_ctrl = network
    rng = np.random.default_rng(0)
    x = x_ctrl * np.exp(rng.normal(0.0, 0.7, grn.n_genes))  # away from control
    core_block, leaf_block = grn.blocks()
    got = np.empty(grn.n_genes)
    got[grn.core] = grn.production(x[None, grn.core], core_block, grn.core)[0]
    got[grn.leaf] = grn.production(x[None, grn.core], leaf_block, grn.leaf)[0]
    h = x[grn.src] ** grn.hill_n / (x[grn.src] ** grn.hill_n + grn.half_sat**grn.hill_n)
    expected = np.empty(grn.n_genes)
    for g in range(grn.n_genes):
        into = grn.tgt == g
        program = into & (grn.kind == "program")
        rep = into & ~program & (grn.sign < 0)
        act = into & ~program & (grn.sign > 0)
        active = np.prod(1 - h[rep])
        if act.any() and grn.logic_and[g]:
            active *= np.prod(h[act])
        elif act.any():
            active *= 1 - np.prod(1 - grn.weight[act] * h[act])
        level = grn.vmax[g] * (grn.basal[g] + (1 - grn.basal[g]) * active)
        up, down = program & (grn.sign > 0), program & (grn.sign < 0)
        level *= np.prod(1 - grn.weight[up] * (1 - h[up])) * np.prod(1 - grn.weight[down] * h[down])
        expected[g] = level
    assert (grn.kind == "program").any() and (grn.sign[grn.kind == "program"] < 0).any()
    assert grn.logic_and[grn.tgt[grn.sign > 0]].any()
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_the_steady_state_is_a_fixed_point_of_every_condition(network):
    from perturbsim.ds._simulate_grn import Perturbations, solve

    grn, x_ctrl = network
    genes = grn.core[:6]
    pert = Perturbations(cond=np.arange(1, 7), gene=genes, mult=np.full(6, 0.1), add=np.zeros(6))
    x, n_bad = solve(grn, 7, pert, x0_core=x_ctrl[grn.core])
    assert n_bad == 0
    np.testing.assert_allclose(x[0], x_ctrl, rtol=1e-5)
    core_block, _ = grn.blocks()
    f = grn.production(x[:, grn.core], core_block, grn.core)
    f[np.arange(1, 7), np.arange(6)] *= 0.1  # the knocked-down genes are the first core genes
    np.testing.assert_allclose(f, x[:, grn.core], rtol=1e-5)


def test_calibration_sets_and_programs_off_in_control_and_their_targets_switch_like(network):
    grn, x_ctrl = network
    hill = x_ctrl[grn.src] ** grn.hill_n
    h = hill / (hill + grn.half_sat**grn.hill_n)
    and_heads = np.flatnonzero((grn.program >= 0) & grn.logic_and)
    assert and_heads.size
    for head in and_heads:
        inputs = (grn.tgt == head) & (grn.kind == "program_input") & (grn.sign > 0)
        assert inputs.sum() >= 2
        assert ((h[inputs] > 0.02 - 1e-6) & (h[inputs] < 0.06 + 1e-6)).all()
    switch = (grn.kind == "program") & grn.logic_and[grn.src]
    ratio = np.log(grn.half_sat[switch] / x_ctrl[grn.src[switch]])
    assert switch.any() and ((ratio > 1.2 - 1e-6) & (ratio < 2.2 + 1e-6)).all()
