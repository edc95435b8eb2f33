from __future__ import annotations

import numpy as np
import pytest
from conftest import make_screen

import perturbsim as ps
from perturbsim import PerturbsimError


def test_measured_profiles_are_each_conditions_mean_and_change_over_control():
    adata = make_screen(["control", "A", "B", "B+A"], cells=7, sparse_x=False)
    raw = adata.X.copy()
    labels = adata.obs["condition"].to_numpy()
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    profiles = ps.pp.measured_profiles(adata)
    assert profiles.obs_names.tolist() == ["ctrl", "A", "B", "A+B"]
    control = raw[labels == "control"].mean(axis=0)
    for label, name in [("control", "ctrl"), ("A", "A"), ("B+A", "A+B"), ("B", "B")]:
        mean = raw[labels == label].mean(axis=0)
        np.testing.assert_allclose(profiles[name].X.ravel(), mean, rtol=1e-6)
        np.testing.assert_allclose(
            profiles[name].layers["delta"].ravel(), mean - control, atol=1e-6
        )
    assert profiles.obs["n_targets"].tolist() == [0, 1, 1, 2]
    assert profiles.obs["n_cells"].tolist() == [7, 7, 7, 7]
    assert "perturbsim" not in adata.uns or "pseudobulk" not in adata.uns["perturbsim"]


def test_measured_profiles_read_labels_as_the_screen_was_read():
    adata = make_screen(["control", "A", "B", "B+A"])
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    profiles = ps.pp.measured_profiles(adata, ["B+A", "control", "A+B", "A"])
    assert profiles.obs_names.tolist() == ["A+B", "ctrl", "A"]  # canonical, once each


def test_measured_profiles_use_the_stored_statistics(norman):
    ps.pp.pseudobulk(norman)
    stored = ps.pp.measured_profiles(norman, ["KLF1"])
    norman.uns["perturbsim"]["pseudobulk"]["moments"][0] += 1.0  # read, not recomputed
    shifted = ps.pp.measured_profiles(norman, ["KLF1"])
    np.testing.assert_allclose(shifted.X, stored.X + 1.0)


def test_measured_profiles_errors_name_the_offending_value(norman):
    with pytest.raises(PerturbsimError, match=r"not measured in the screen: \['KLF2'\]"):
        ps.pp.measured_profiles(norman, ["KLF1", "KLF2"])
    assert ps.pp.measured_profiles(norman, "KLF1").obs_names.tolist() == ["KLF1"]  # one label
    with pytest.raises(PerturbsimError, match="got set"):
        ps.pp.measured_profiles(norman, {"KLF1", "MAP2K6"})
    with pytest.raises(PerturbsimError, match="not set up"):
        ps.pp.measured_profiles(make_screen(["ctrl", "A"]))
    with pytest.raises(PerturbsimError, match="must be an AnnData"):
        ps.pp.measured_profiles(np.zeros((3, 3)))


def test_measured_interactions_of_a_simulated_screen_follow_its_truth():
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    profiles = ps.pp.measured_profiles(adata)
    truth = ps.tl.truth_profiles(adata)
    pairs = [p for p in profiles.obs_names if p.count("+") == 1]
    pairs = [p for p in pairs if set(p.split("+")) <= set(profiles.obs_names)]
    genes = list(adata.var_names[np.asarray(truth["ctrl"].X).ravel() > 0.5])
    measured = ps.tl.gi_scores(profiles, pairs=pairs, genes=genes, seed=0)
    true = ps.tl.gi_scores(truth, pairs=pairs, genes=genes, seed=0)
    assert len(pairs) == 19
    rho = measured["magnitude"].corr(true["magnitude"], method="spearman")
    assert rho > 0.5  # 0.61: the screen's depth ranks its interactions, not perfectly


def test_measured_profiles_take_their_own_labels_from_a_screen_read_with_another_sep():
    adata = make_screen(["NT", "A", "B", "B_A"])
    ps.pp.setup(adata, perturbation_key="condition", control="NT", sep="_")
    own = ps.pp.measured_profiles(adata)
    again = ps.pp.measured_profiles(adata, list(own.obs_names))
    assert again.obs_names.tolist() == own.obs_names.tolist() == ["ctrl", "A", "B", "A+B"]
    queried = ps.pp.measured_profiles(adata, ["B_A", "B+A", "A_NT", "control", "Nt"])
    assert queried.obs_names.tolist() == ["A+B", "A", "ctrl"]


def test_measured_profiles_recompute_statistics_stored_for_other_cells(norman):
    ps.pp.pseudobulk(norman)
    subset = norman[norman.obs["perturbsim_condition"] != "KLF1"].copy()
    with pytest.raises(PerturbsimError, match=r"not measured in the screen: \['KLF1'\]"):
        ps.pp.measured_profiles(subset, ["KLF1"])
    assert ps.pp.measured_profiles(norman[:, :50].copy()).n_vars == 50
    with pytest.raises(PerturbsimError, match="no perturbations given"):
        ps.pp.measured_profiles(norman, [])


def test_measured_standard_errors_follow_each_conditions_own_cells():
    # conditions of 9, 4 and 1 cells: each mean's squared standard error is its cells'
    # variance (ddof 1) over their number, NaN for the lone cell; the control's in var
    adata = make_screen(["control", "A", "B"], cells=9, sparse_x=False)
    labels = np.array(["control"] * 9 + ["A"] * 4 + ["drop"] * 5 + ["B"] + ["drop"] * 8)
    adata.obs["condition"] = labels
    adata = adata[labels != "drop"].copy()
    raw, labels = adata.X.copy(), adata.obs["condition"].to_numpy()
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    profiles = ps.pp.measured_profiles(adata, ["A", "B", "control"])
    assert profiles.obs_names.tolist() == ["A", "B", "ctrl"]
    assert profiles.obs["n_cells"].tolist() == [4, 1, 9]
    for name, label in (("A", "A"), ("ctrl", "control")):
        cells = raw[labels == label]
        expected = cells.var(axis=0, ddof=1) / len(cells)
        np.testing.assert_allclose(
            profiles[name].layers["mean_variance"].ravel(), expected, rtol=1e-5
        )
    assert np.isnan(profiles["B"].layers["mean_variance"]).all()
    np.testing.assert_allclose(
        profiles.var["control_mean_variance"], profiles["ctrl"].layers["mean_variance"].ravel()
    )
    with pytest.raises(PerturbsimError, match="conditions must be labels, got 3"):
        ps.pp.measured_profiles(adata, ["A", 3])
