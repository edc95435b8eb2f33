from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from conftest import make_screen, screen_of
from scipy import stats as scipy_stats

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.pp._de import DEGenes, non_dropout_mask, non_zero_mask, rank_de, welch_t
from perturbsim.pp._pseudobulk import compute_pseudobulk

CONDITIONS = ["KLF1", "MAP2K6", "KLF1+MAP2K6", "FOXL2+HOXB9", "PLK4"]


@pytest.fixture(scope="module")
def norman_de(_norman_cached):
    adata = _norman_cached.copy()
    ps.settings.progress = False
    rank_de(adata, n_genes=20)
    return adata


@pytest.fixture(scope="module")
def scanpy_ttest(_norman_cached):
    adata = _norman_cached.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(
            adata,
            groupby="perturbsim_condition",
            groups=[*CONDITIONS, "ctrl"],
            reference="ctrl",
            method="t-test",
            rankby_abs=True,
            n_genes=adata.n_vars,
            use_raw=False,
        )
    return adata.uns["rank_genes_groups"]


def full_scores(result, cond, var_names):
    index = {g: i for i, g in enumerate(var_names)}
    scores = np.zeros(len(var_names))
    scores[[index[g] for g in result["names"][cond]]] = result["scores"][cond]
    return scores


def test_ttest_scores_equal_scanpy_welch(norman_de, scanpy_ttest):
    de = DEGenes.from_adata(norman_de)
    assert de.method == "t-test"
    assert len(de.conditions) == 33 and "ctrl" not in de.conditions
    assert de.scores.shape == (33, 500) and de.top.shape == (33, 20)
    for cond in CONDITIONS:
        row = list(de.conditions).index(cond)
        expected = full_scores(scanpy_ttest, cond, norman_de.var_names)
        np.testing.assert_allclose(de.scores[row], expected, rtol=1e-6, atol=2e-6)
        assert de.top_genes(cond) == list(scanpy_ttest["names"][cond][:20])


def test_ttest_from_backed_file_equals_in_memory(norman_de, tmp_path):
    path = tmp_path / "screen.h5ad"
    plain = norman_de.copy()
    del plain.uns["perturbsim"]["de"]
    plain.write_h5ad(path)
    backed = ps.ds.read(path, control="control", backed=True)
    rank_de(backed)
    again, direct = DEGenes.from_adata(backed), DEGenes.from_adata(norman_de)
    np.testing.assert_allclose(again.scores, direct.scores, rtol=1e-12)
    np.testing.assert_array_equal(again.top, direct.top)
    with pytest.raises(PerturbsimError, match="wilcoxon"):
        rank_de(backed, method="wilcoxon")


def test_uses_given_or_stored_pseudobulk(norman):
    stats = compute_pseudobulk(norman, coexpression="none")
    stats.moments = stats.moments.copy()
    stats.moments[0, stats.index(["KLF1"])[0], 0] += 50.0  # a fake huge change in gene 0
    rank_de(norman, stats=stats)
    assert DEGenes.from_adata(norman).top_genes("KLF1")[0] == norman.var_names[0]
    stats.to_adata(norman)
    rank_de(norman)
    assert DEGenes.from_adata(norman).top_genes("KLF1")[0] == norman.var_names[0]


def test_wilcoxon_runs_and_agrees_with_ttest_direction(norman_de):
    adata = norman_de.copy()
    rank_de(adata, method="wilcoxon", n_genes=20)
    wil, tt = DEGenes.from_adata(adata), DEGenes.from_adata(norman_de)
    assert wil.method == "wilcoxon" and wil.scores.shape == tt.scores.shape
    row = list(wil.conditions).index("KLF1")
    top = [list(adata.var_names).index(g) for g in tt.top_genes("KLF1")]
    assert np.all(np.sign(wil.scores[row, top]) == np.sign(tt.scores[row, top]))
    assert len(set(wil.top_genes("KLF1")) & set(tt.top_genes("KLF1"))) >= 10


def test_non_dropout_follows_gears_definition():
    adata = make_screen(["ctrl", "A", "B"], n_genes=6, cells=5, sparse_x=False)
    x = np.asarray(adata.X)
    x[:] = 1.0
    cond = adata.obs["condition"].to_numpy()
    x[:, 0] = 0.0  # gene 0: zero everywhere -> non-dropout (a "true zero")
    x[cond == "A", 1] = 0.0  # gene 1: zero in A, expressed in control -> dropout of A
    x[cond == "ctrl", 1] = np.linspace(3.5, 4.5, 5)
    x[cond == "ctrl", 2] = 0.0  # gene 2: zero in control, expressed in A -> non-dropout
    x[cond == "A", 2] = np.linspace(0.5, 1.5, 5)
    x[cond == "A", 3] = np.linspace(2, 3, 5)  # gene 3: the real change in A
    adata.X = x
    ps.pp.setup(adata, control="ctrl")
    stats = compute_pseudobulk(adata, coexpression="none")
    mask = non_dropout_mask(stats)
    a = stats.index(["A"])[0]
    assert mask[a].tolist() == [True, False, True, True, True, True]
    assert mask[stats.control_index].all()
    assert non_zero_mask(stats)[a].tolist() == [False, False, True, True, True, True]

    rank_de(adata, n_genes=3)
    de = DEGenes.from_adata(adata)
    assert de.top_genes("A")[0] == "G1"  # the dropout is the strongest change ...
    assert "G1" not in de.top_genes("A", non_dropout=True)  # ... and excluded here
    assert de.top_genes("A", non_dropout=True)[:2] == ["G3", "G2"]
    assert de.non_dropout_mask(["ctrl", "A"]).tolist() == [[True] * 6, mask[a].tolist()]


def test_single_cell_condition_does_not_crash_and_is_flagged(caplog):
    adata = make_screen(["ctrl", "A", "B"], n_genes=8, cells=4)
    adata = adata[[*range(8), 8]].copy()  # B keeps a single cell
    ps.pp.setup(adata, control="ctrl")
    with caplog.at_level("WARNING"):
        rank_de(adata, n_genes=5)
    data = adata.uns["perturbsim"]["de"]
    row = list(data["conditions"]).index("B")
    assert data["single_cell"].tolist() == [False, True]
    stats = compute_pseudobulk(adata, coexpression="none")
    np.testing.assert_allclose(data["scores"][row], stats.delta[stats.index(["B"])[0]])
    assert np.isfinite(data["scores"]).all()
    assert "single cell" in caplog.text
    rank_de(adata, method="wilcoxon", n_genes=5)
    assert np.isfinite(adata.uns["perturbsim"]["de"]["scores"]).all()


def test_raw_labels_padded_with_the_control_s_tokens_are_read_as_setup_read_them():
    adata = make_screen(["NegCtrl0_NegCtrl0", "KLF1_NegCtrl0", "NegCtrl0_FOXO4", "FOXO4_KLF1"])
    ps.pp.setup(adata, control="NegCtrl0_NegCtrl0", sep="_")
    rank_de(adata, n_genes=3)
    de = DEGenes.from_adata(adata)
    assert de.top_genes("KLF1_NegCtrl0") == de.top_genes("KLF1")
    mask = de.non_dropout_mask(["FOXO4+KLF1", "KLF1+ctrl", "NegCtrl0_NegCtrl0"])
    assert mask[2].all()
    profiles = ps.pp.measured_profiles(adata, ["KLF1_NegCtrl0", "FOXO4_KLF1"])
    assert profiles.obs_names.tolist() == ["KLF1", "FOXO4+KLF1"]


def test_a_single_control_cell_is_refused_and_gives_no_test_statistic():
    adata = make_screen(["ctrl", "A", "B"], n_genes=8, cells=4)
    adata = adata[3:].copy()  # control keeps a single cell
    ps.pp.setup(adata, control="ctrl")
    with pytest.raises(PerturbsimError, match="a single control cell"):
        rank_de(adata)
    stats = compute_pseudobulk(adata, coexpression="none")
    assert np.isnan(welch_t(stats, stats.index(["A", "B"]))).all()


def test_top_genes_reads_labels_as_setup_read_the_screen():
    adata = make_screen(["ctrl", "A_B", "A", "B"], n_genes=8, cells=5)
    ps.pp.setup(adata, sep="_")
    rank_de(adata, n_genes=3)
    de = DEGenes.from_adata(adata)
    assert de.top_genes("B_A") == de.top_genes("A+B") == de.top_genes("A_B")
    assert de.non_dropout_mask(["ctrl", "A_B", "A+B", "B+ctrl"]).shape == (4, 8)
    with pytest.raises(PerturbsimError, match="'A_C'"):
        de.top_genes("A_C")


def test_top_genes_accepts_raw_labels_and_round_trips_h5ad(norman_de, tmp_path):
    path = tmp_path / "de.h5ad"
    norman_de.write_h5ad(path)
    de = DEGenes.from_adata(ad.read_h5ad(path))
    direct = DEGenes.from_adata(norman_de)
    assert de.top_genes("SET+KLF1") == direct.top_genes("KLF1+SET")
    assert de.top_genes("KLF1+ctrl") == direct.top_genes("KLF1")
    np.testing.assert_array_equal(de.non_dropout, direct.non_dropout)
    with pytest.raises(PerturbsimError, match="'NOPE'"):
        de.top_genes("NOPE")
    with pytest.raises(PerturbsimError, match="'ctrl'"):
        de.top_genes("ctrl")


def test_de_genes_ranked_on_labels_since_changed_are_refused_under_any_key():
    adata = ps.ds.norman2019_subset()
    ps.pp.rank_de(adata, key_added="de_t")
    labels = adata.obs["condition"].astype(str)
    relabelled = adata.copy()
    relabelled.obs["condition"] = labels.where(labels != "KLF1", "KLF2")
    ps.pp.setup(relabelled, perturbation_key="condition", control="control")
    with pytest.raises(PerturbsimError) as err:  # setup with other labels dropped them
        ps.pp.DEGenes.from_adata(relabelled, key="de_t")
    assert str(err.value) == (
        "no DE genes under .uns['perturbsim']['de_t']: run perturbsim.pp.rank_de(adata, "
        "key_added='de_t')"
    )
    # the canonical labels edited by hand: the ranks are refused as well
    canonical = adata.obs["perturbsim_condition"].astype(str)
    adata.obs["perturbsim_condition"] = pd.Categorical(canonical.where(canonical != "KLF1", "KLF2"))
    with pytest.raises(PerturbsimError) as err:
        ps.pp.DEGenes.from_adata(adata, key="de_t")
    assert str(err.value) == (
        "the DE genes under .uns['perturbsim']['de_t'] were ranked on other labels ('KLF2' is "
        "a condition of the screen they do not rank): rerun perturbsim.pp.rank_de(adata, "
        "key_added='de_t')"
    )
    ps.pp.rank_de(adata, key_added="de_t")
    assert "KLF2" in ps.pp.DEGenes.from_adata(adata, key="de_t").conditions
    # a subset of the cells without a condition keeps the ranks of the others
    subset = adata[adata.obs["perturbsim_condition"] != "KLF2"]
    assert ps.pp.DEGenes.from_adata(subset, key="de_t").top_genes("MAP2K6")


def test_bad_arguments_raise_one_line_errors(norman):
    with pytest.raises(PerturbsimError, match="'anova'"):
        rank_de(norman, method="anova")
    with pytest.raises(PerturbsimError, match="n_genes"):
        rank_de(norman, n_genes=0)
    with pytest.raises(PerturbsimError, match="not set up"):
        rank_de(make_screen(["ctrl", "A"]))
    with pytest.raises(PerturbsimError, match="rank_de"):
        DEGenes.from_adata(norman)


def test_count_de_counts_real_changes_and_not_random_groups_of_control_cells():
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    stats_ = ps.pp.compute_pseudobulk(adata, coexpression="none")
    perturbed = [str(c) for c in stats_.conditions if c != "ctrl"]
    counts = ps.pp.count_de(stats_, perturbed)
    assert list(counts.index) == perturbed and (counts > 10).mean() > 0.6
    fewer = ps.pp.count_de(stats_, perturbed, genes=stats_.control_mean > 1.0)
    assert fewer.sum() < counts.sum()  # fewer genes tested, fewer found
    # a labelled mask is read by its genes' names, not by its order
    labelled = pd.Series(stats_.control_mean > 1.0, index=stats_.genes).iloc[::-1]
    pd.testing.assert_series_equal(ps.pp.count_de(stats_, perturbed, genes=labelled), fewer)
    # a "perturbation" of 30 random control cells changes nothing
    control = adata[adata.obs["condition"] == "control"].copy()
    labels = np.full(control.n_obs, "control", dtype=object)
    labels[np.random.default_rng(3).permutation(control.n_obs)[:30]] = "G0001"
    control.obs["condition"] = labels
    ps.pp.setup(control, perturbation_key="condition", control="control")
    null = ps.pp.compute_pseudobulk(control, coexpression="none")
    assert ps.pp.count_de(null, ["G0001"]).iloc[0] <= 1
    with pytest.raises(ps.PerturbsimError, match="NOPE"):
        ps.pp.count_de(stats_, ["NOPE"])


def test_count_de_takes_gene_names_and_refuses_bad_input_in_one_line():
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    stats_ = ps.pp.compute_pseudobulk(adata, coexpression="none")
    pair = next(str(c) for c in stats_.conditions if str(c).count("+") == 1)
    mask = stats_.control_mean > 1.0
    by_mask = ps.pp.count_de(stats_, [pair], genes=mask)
    by_name = ps.pp.count_de(stats_, [pair], genes=list(stats_.genes[mask]))
    pd.testing.assert_series_equal(by_mask, by_name)
    assert by_mask.dtype == int
    # any label form the rows read as, counted under the canonical label
    gene_a, gene_b = pair.split("+")
    single = next(str(c) for c in stats_.conditions if str(c).count("+") == 0 and c != "ctrl")
    reordered = ps.pp.count_de(stats_, [f"{gene_b}+{gene_a}", f"{single}+ctrl"], genes=mask)
    assert list(reordered.index) == [pair, single]
    assert reordered.iloc[0] == by_mask.iloc[0]
    cases = {
        "conditions must be a list of labels, got the string": {"conditions": pair},
        "alpha must be a number strictly between 0 and 1, got 2": {"alpha": 2},
        r"genes as a mask must have one value per gene of the statistics \(400\), got shape "
        r"\(3,\)": {"genes": np.ones(3, bool)},
        r"genes not in the statistics: NOPE": {"genes": ["NOPE"]},
        r"conditions not in the statistics: NOPE\+ctrl": {"conditions": ["NOPE+ctrl"]},
        "'control' is the control": {"conditions": ["control"]},
    }
    for message, options in cases.items():
        with pytest.raises(PerturbsimError, match=message):
            ps.pp.count_de(stats_, **{"conditions": [pair], **options})
    # a condition of one cell is tested against its gene's pooled spread: a cell far out
    # on a few genes is called on them
    keep = (adata.obs["condition"] != pair) | (np.cumsum(adata.obs["condition"] == pair) == 1)
    one = adata[keep].copy()
    x = one.X.toarray() if hasattr(one.X, "toarray") else np.array(one.X)
    cell = np.flatnonzero(one.obs["condition"].astype(str) == pair)[0]
    x[cell, :5] = 12.0  # far beyond any control cell's log-normalised expression
    one.X = x
    single_cell = ps.pp.compute_pseudobulk(one, coexpression="none")
    assert single_cell.n_cells[single_cell.index([pair])][0] == 1
    assert ps.pp.count_de(single_cell, [pair]).iloc[0] >= 5


def test_welch_satterthwaite_degrees_of_freedom():
    from perturbsim.pp._pseudobulk import welch_satterthwaite

    # two means of equal error on 9 df each: 18; one known exactly adds no uncertainty of df
    squared = np.array([[1.0, 1.0], [1.0, 0.0]])
    df = welch_satterthwaite(squared, np.array([9.0, 9.0]))
    np.testing.assert_allclose(df, [18.0, 9.0])
    assert np.isinf(welch_satterthwaite(squared, np.array([np.inf, np.inf]))).all()
    assert np.isnan(welch_satterthwaite(np.zeros((2, 1)), np.array([9.0, 9.0]))).all()


def _screen_of(blocks: dict[str, np.ndarray], genes: list[str]) -> ad.AnnData:
    """A set-up dense float64 screen whose cells of each label are the rows of its block."""
    labels = [label for label, block in blocks.items() for _ in range(len(block))]
    adata = screen_of(np.vstack(list(blocks.values())).astype(np.float64), labels, genes)
    return adata


def test_count_de_leaves_each_condition_s_own_targets_out_of_its_count():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(6)]
    control = 6.0 + rng.normal(0.0, 0.5, size=(100, 6))
    knock_g0 = 6.0 + rng.normal(0.0, 0.5, size=(50, 6))
    knock_g0[:, 0] -= 4.0  # only its own target moves
    knock_g1 = 6.0 + rng.normal(0.0, 0.5, size=(50, 6))
    knock_g1[:, 1] -= 1.0  # its own target ...
    knock_g1[:, 2:4] += 1.0  # ... and two other genes, each by ~11 standard errors
    adata = _screen_of({"ctrl": control, "G0": knock_g0, "G1": knock_g1}, genes)
    stats = compute_pseudobulk(adata, coexpression="none")
    counts = ps.pp.count_de(stats, ["G0", "G1"])
    # the knocked-down target is not a downstream change: G0 changes nothing else, G1 two
    assert counts.to_dict() == {"G0": 0, "G1": 2}


def test_count_de_uses_the_two_sided_p_value_of_the_moderated_welch_test():
    rng = np.random.default_rng(1)
    n_c, n_a, prior = 40, 20, 10.0
    control = 6.0 + rng.normal(0.0, 1.0, size=(n_c, 2))
    changed = 6.0 + rng.normal(0.0, 1.0, size=(n_a, 2))
    changed[:, 0] += 0.8
    adata = _screen_of({"ctrl": control, "A": changed}, ["X", "Y"])
    stats = compute_pseudobulk(adata, coexpression="none")
    # the documented test by hand on gene X: variances moderated towards the pooled one
    # with 10 prior df (never below a condition's own), Satterthwaite's df, two-sided p
    x_c, x_a = control[:, 0], changed[:, 0]
    own = np.array([x_a.var(ddof=1), x_c.var(ddof=1)])
    nu = np.array([n_a - 1.0, n_c - 1.0])
    pooled = (nu * own).sum() / nu.sum()
    moderated = np.maximum((nu * own + prior * pooled) / (nu + prior), own)
    v = moderated / np.array([n_a, n_c])
    t = (x_a.mean() - x_c.mean()) / np.sqrt(v.sum())
    df = v.sum() ** 2 / (v**2 / (nu + prior)).sum()
    p = 2 * scipy_stats.t.sf(abs(t), df)
    assert 1e-4 < p < 0.05  # a change between clear and absent: where one or two sides matter

    def count(alpha: float) -> int:  # one gene tested: its BH-adjusted p is its p
        return ps.pp.count_de(stats, ["A"], genes=["X"], alpha=alpha).item()

    # a p of 1.5 alpha is not significant (its one-sided half, 0.75 alpha, would be)
    assert count(p / 1.5) == 0
    assert count(1.5 * p) == 1


def test_welch_t_of_a_condition_of_two_cells_is_scipy_s_welch_t():
    rng = np.random.default_rng(2)
    control = 3.0 + rng.normal(0.0, 1.0, size=(10, 4))
    pair_of_cells = 3.0 + rng.normal(1.0, 1.0, size=(2, 4))
    adata = _screen_of({"ctrl": control, "A": pair_of_cells}, ["G0", "G1", "G2", "G3"])
    stats = compute_pseudobulk(adata, coexpression="none")
    t = welch_t(stats, stats.index(["A"]))[0]
    # two cells give a variance (ddof=1): the statistic is defined, and it is Welch's
    expected = scipy_stats.ttest_ind(pair_of_cells, control, equal_var=False).statistic
    assert np.isfinite(t).all()
    np.testing.assert_allclose(t, expected, rtol=1e-8)
    rank_de(adata, n_genes=4)
    np.testing.assert_allclose(adata.uns["perturbsim"]["de"]["scores"][0], expected, rtol=1e-8)
