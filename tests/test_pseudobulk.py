from __future__ import annotations

import logging
from dataclasses import replace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import make_screen, screen_of
from scipy import sparse

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.pp import PseudobulkStats
from perturbsim.pp._chunk_sums import CellLabels, ChunkSums
from perturbsim.pp._pseudobulk import half_labels


def dense_reference(adata):
    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    x = x.astype(np.float64)
    cond = adata.obs["perturbsim_condition"].astype(str).to_numpy()
    conditions = list(adata.obs["perturbsim_condition"].cat.categories)
    moments = np.stack(
        [[np.mean(x[cond == c] ** k, axis=0) for c in conditions] for k in range(1, 5)]
    )
    return conditions, moments, x


def check_against_dense(stats, adata, train_mask=None):
    conditions, moments, x = dense_reference(adata)
    assert list(stats.conditions) == conditions
    np.testing.assert_allclose(stats.moments, moments, rtol=1e-6, atol=1e-6)
    sub = x if train_mask is None else x[train_mask]
    np.testing.assert_allclose(stats.coexpr_gram, sub.T @ sub, rtol=1e-5, atol=1e-4)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(sub.T))
    np.fill_diagonal(corr, np.where(sub.std(0) > 0, 1.0, 0.0))
    np.testing.assert_allclose(stats.coexpression(), corr, atol=1e-5)


def test_moments_equal_dense_numpy_in_memory(norman):
    stats = ps.pp.compute_pseudobulk(norman, chunk_size=700)
    check_against_dense(stats, norman)
    ctrl = stats.control_index
    np.testing.assert_allclose(stats.delta[ctrl], 0)
    klf1 = stats.index(["KLF1"])[0]
    cells = norman.obs["perturbsim_condition"] == "KLF1"
    np.testing.assert_allclose(
        stats.variance()[klf1], norman.X[cells.to_numpy()].toarray().var(0, ddof=1), atol=1e-6
    )


def test_moments_dense_matrix_equal_sparse(norman):
    dense = norman.copy()
    dense.X = dense.X.toarray()
    a = ps.pp.compute_pseudobulk(dense, chunk_size=1000)
    b = ps.pp.compute_pseudobulk(norman)
    np.testing.assert_allclose(a.moments, b.moments, rtol=1e-10, atol=1e-10)


def test_gram_of_a_dense_matrix_equals_numpy(norman):
    dense = norman.copy()
    dense.X = dense.X.toarray()  # the float32 BLAS path, not the sparse product
    check_against_dense(ps.pp.compute_pseudobulk(dense, chunk_size=1000), dense)


@pytest.mark.parametrize("layout", [np.asarray, sparse.csr_matrix])
def test_chunk_sums_keep_the_lower_triangle_of_the_gram_of_the_masked_cells(layout, capfd):
    x = np.array([[1.0, 2.0, 0.0], [0.5, 0.0, 3.0], [2.0, 1.0, 1.0], [0.0, 4.0, 0.0]])
    labels = CellLabels(
        codes=np.array([0, 1, 1, 0]),
        halves=np.array([0, 1, 0, 1]),
        gram_mask=np.array([True, False, True, True]),
        n_conditions=2,
        names=pd.Index(list("abcd")),
    )
    sums = ChunkSums.zeros(2, 3, gram=True)
    sums.add_block(layout(x), labels)
    sub = x[[0, 2, 3]]
    np.testing.assert_allclose(sums.gram, np.tril(sub.T @ sub), rtol=1e-6)
    np.testing.assert_allclose(sums.coexpr_sum, sub.sum(axis=0))
    np.testing.assert_allclose(sums.second_half[0], [[0.0, 4.0, 0.0], [0.5, 0.0, 3.0]])
    # a chunk without co-expression cells adds nothing (and BLAS is not called on 0 rows)
    before = sums.gram.copy()
    sums.add_block(layout(x[1:2]), labels.rows(1, 2))
    np.testing.assert_array_equal(sums.gram, before)
    printed = capfd.readouterr()  # BLAS reports an illegal argument on stdout
    assert printed.out == "" and printed.err == ""


def test_a_sparse_matrix_storing_values_in_parts_reads_as_its_values(norman):
    # each value stored as two halves (duplicate entries): the same matrix to scipy
    x = norman.X.tocsr()
    counts = np.diff(x.indptr)
    parts = norman.copy()
    parts.X = sparse.csr_matrix(
        (np.repeat(x.data / 2, 2), np.repeat(x.indices, 2), np.r_[0, np.cumsum(2 * counts)]),
        shape=x.shape,
    )
    assert not parts.X.has_canonical_format and abs(parts.X - x).max() == 0
    a = ps.pp.compute_pseudobulk(parts, coexpression="none")
    b = ps.pp.compute_pseudobulk(norman, coexpression="none")
    np.testing.assert_allclose(a.moments, b.moments, rtol=1e-10, atol=1e-12)


def test_moments_from_backed_file_equal_in_memory(norman, tmp_path):
    path = tmp_path / "screen.h5ad"
    norman.write_h5ad(path)
    backed = ps.ds.read(path, control="control", backed=True)
    assert backed.isbacked
    stats = ps.pp.compute_pseudobulk(backed, chunk_size=512)
    check_against_dense(stats, norman)


def test_a_backed_file_stored_by_column_is_read_alike_and_warned_of(norman, tmp_path, caplog):
    path = tmp_path / "columns.h5ad"
    by_column = norman.copy()
    by_column.X = by_column.X.tocsc()
    by_column.write_h5ad(path)
    backed = ps.ds.read(path, control="control", backed=True)
    with caplog.at_level("WARNING", logger="perturbsim.pp._chunk_sums"):
        stats = ps.pp.compute_pseudobulk(backed, chunk_size=512)
    assert "is stored by column (CSC): every chunk of cells reads the whole matrix" in caplog.text
    check_against_dense(stats, norman)


def test_coexpression_uses_training_cells_only(norman):
    norman.obs["perturbsim_split"] = np.where(
        norman.obs["perturbsim_condition"].isin(["KLF1", "MAPK1", "KLF1+MAP2K6"]), "test", "train"
    )
    stats = ps.pp.compute_pseudobulk(norman)
    train = (norman.obs["perturbsim_split"] == "train").to_numpy()
    assert stats.coexpr_n == train.sum()
    check_against_dense(stats, norman, train_mask=train)


def test_stored_in_adata_and_read_back(norman, tmp_path):
    ps.pp.pseudobulk(norman)
    path = tmp_path / "with_stats.h5ad"
    norman.write_h5ad(path)
    import anndata as ad

    stored = ad.read_h5ad(path)
    again = PseudobulkStats.from_adata(stored)
    np.testing.assert_array_equal(stored.uns["perturbsim"]["pseudobulk"]["delta"], again.delta)
    direct = ps.pp.compute_pseudobulk(norman)
    np.testing.assert_array_equal(again.moments, direct.moments)
    np.testing.assert_array_equal(again.coexpr_gram, direct.coexpr_gram)
    assert list(again.conditions) == list(direct.conditions)


def test_streaming_pass_names_the_first_bad_cell_and_gene():
    adata = make_screen(["ctrl", "G1", "G2"], sparse_x=False)
    ps.pp.setup(adata)
    adata.X[15, 1] = adata.X[12, 4] = np.nan  # after setup: caught by the streaming pass
    with pytest.raises(PerturbsimError) as err:
        ps.pp.pseudobulk(adata, chunk_size=8)
    assert str(err.value) == (  # the first bad cell of the chunk, not the chunk's rows
        "adata.X contains nan at cell 'c12' gene 'G4' (2 non-finite values); remove or impute "
        "them first"
    )


@pytest.mark.parametrize("layout", ["csr", "csc"])
def test_a_bad_value_of_a_matrix_with_a_wider_index_pointer_is_named(layout):
    # h5ad files (simulate_to_disk's) hold a 64-bit indptr beside 32-bit indices, which
    # scipy's conversion refused: a traceback instead of the cell and gene
    adata = make_screen(["ctrl", "G1", "G2"])
    x = adata.X.asformat(layout)
    x.data[np.flatnonzero(x.toarray().ravel(order="C" if layout == "csr" else "F"))[5]] = -2.0
    dense = x.toarray()
    row, column = np.argwhere(dense < 0)[0]
    x.indptr, x.indices = x.indptr.astype(np.int64), x.indices.astype(np.int32)
    adata.X = x
    with pytest.raises(PerturbsimError) as err:
        ps.pp.setup(adata)
    assert f"the first at cell 'c{row}' gene 'G{column}'" in str(err.value)


def test_bad_options(norman):
    with pytest.raises(PerturbsimError, match="coexpression must be"):
        ps.pp.pseudobulk(norman, coexpression="some")
    with pytest.raises(PerturbsimError, match="needs a split"):
        ps.pp.pseudobulk(norman, coexpression="train")
    with pytest.raises(PerturbsimError, match="not found in adata.layers"):
        ps.pp.pseudobulk(norman, layer="counts")
    with pytest.raises(PerturbsimError, match="not set up"):
        ps.pp.pseudobulk(make_screen(["ctrl", "G1"]))
    perturbed_only = norman[norman.obs["perturbsim_condition"] != "ctrl"].copy()
    with pytest.raises(PerturbsimError, match="^adata has no control cells \\('ctrl'\\)"):
        ps.pp.pseudobulk(perturbed_only)
    unlabelled = norman.copy()
    cell = unlabelled.obs_names[3]
    unlabelled.obs.loc[cell, "perturbsim_condition"] = np.nan
    with pytest.raises(PerturbsimError, match=f"1 cell of adata lost .*'{cell}'"):
        ps.pp.pseudobulk(unlabelled)
    stats = ps.pp.compute_pseudobulk(norman, coexpression="none")
    for rows, shown in (([100], "100"), (["KLF1"], "'KLF1'"), ([1.5], "1.5")):
        with pytest.raises(PerturbsimError, match=f"pooled_over must hold indices .*got {shown}"):
            stats.moderated_variance(pooled_over=rows)
    with pytest.raises(PerturbsimError, match="ddof must be a whole number >= 0, got 'a'"):
        stats.variance(ddof="a")
    with pytest.raises(PerturbsimError, match="half_seed must be below 2\\*\\*63"):
        ps.pp.compute_pseudobulk(norman, half_seed=2**70)
    without_x = norman.copy()
    without_x.X = None
    with pytest.raises(PerturbsimError, match="^adata.X is None"):
        ps.pp.compute_pseudobulk(without_x)
    for option, value in (
        ("coexpr_max_cells", 0),
        ("coexpr_max_cells", -1),
        ("chunk_size", "100"),
        ("half_seed", -1),
    ):
        with pytest.raises(PerturbsimError, match=f"{option} must be a whole number"):
            ps.pp.compute_pseudobulk(norman, **{option: value})
    for half in (1.0, True, 2):  # 1.0 failed in numpy's indexing, True read as half 1
        with pytest.raises(PerturbsimError, match=f"^which must be 0 or 1, got {half}$"):
            stats.half(half)
    with pytest.raises(PerturbsimError, match="^conditions must be a list of condition labels"):
        stats.index("ctrl")  # read as its letters before
    complex_x = norman.copy()  # set after setup: the pass cast it to its real part
    complex_x.X = complex_x.X.toarray() + 5j
    with pytest.raises(PerturbsimError, match=r"^adata.X holds complex numbers \(dtype complex"):
        ps.pp.compute_pseudobulk(complex_x, coexpression="none")


def test_statistics_without_a_control_row_are_summarised_and_not_listed_as_measured(norman):
    stats = ps.pp.compute_pseudobulk(norman, coexpression="none")
    sliced = replace(stats, conditions=stats.conditions[1:], n_cells=stats.n_cells[1:])
    assert "cells (no control)" in repr(sliced)  # raised the missing control's error before
    empty = norman.copy()  # a condition of no cell: its mean is no measurement
    empty.obs["perturbsim_condition"] = empty.obs["perturbsim_condition"].cat.add_categories("X")
    assert "X" not in ps.pp.measured_profiles(empty).obs_names


def test_statistics_without_gene_moments_drop_an_earlier_pass_s(norman):
    from perturbsim.graphs import coexpression_graph

    ps.pp.pseudobulk(norman, coexpression="all")
    ps.pp.pseudobulk(norman, coexpression="none")
    assert "perturbsim_gram" not in norman.varp
    stats = ps.pp.PseudobulkStats.from_adata(norman)
    with pytest.raises(PerturbsimError, match="gene x gene moments were not computed"):
        coexpression_graph(stats)


def test_draw_cells_refuses_conditions_not_in_the_screen(norman):
    from perturbsim.pp._cells import draw_cells

    cells = draw_cells(norman, ["KLF1", "ctrl"], max_cells=5, seed=0)
    assert {c: a.shape for c, a in cells.items()} == {"KLF1": (5, 500), "ctrl": (5, 500)}
    with pytest.raises(PerturbsimError, match=r"1 condition\(s\) not in the screen: \['NOPE'\]"):
        draw_cells(norman, ["NOPE", "KLF1"], max_cells=5, seed=0)
    with pytest.raises(PerturbsimError, match="max_cells must be a whole number >= 1, got -1"):
        draw_cells(norman, ["KLF1"], max_cells=-1, seed=0)
    with pytest.raises(PerturbsimError, match="^conditions must be a list of labels, got the str"):
        draw_cells(norman, "KLF1", max_cells=5, seed=0)
    with pytest.raises(PerturbsimError, match="^seed must be"):
        draw_cells(norman, ["KLF1"], max_cells=5, seed=-1)
    with pytest.raises(PerturbsimError, match="not set up"):
        draw_cells(make_screen(["ctrl", "G1"]), ["G1"], max_cells=5, seed=0)


def test_coexpression_subsample_is_drawn_by_name_and_recorded(norman):
    a = ps.pp.compute_pseudobulk(norman, coexpr_max_cells=1000)
    b = ps.pp.compute_pseudobulk(norman, coexpr_max_cells=1000)
    assert a.coexpr_n == 1000 and a.coexpr_cells == "all:named-sample1000"
    np.testing.assert_array_equal(a.coexpr_gram, b.coexpr_gram)
    # the same cells in another order: the same subset, so the same moments
    order = np.random.default_rng(3).permutation(norman.n_obs)
    shuffled = ps.pp.compute_pseudobulk(norman[order].copy(), coexpr_max_cells=1000)
    np.testing.assert_allclose(shuffled.coexpr_gram, a.coexpr_gram, rtol=1e-10, atol=1e-8)
    full = ps.pp.compute_pseudobulk(norman)
    assert np.corrcoef(a.coexpression().ravel(), full.coexpression().ravel())[0, 1] > 0.7


def test_stored_coexpression_cap_is_kept_by_what_reads_the_statistics(norman, caplog):
    from perturbsim.pp._pseudobulk import current_stats

    screen = norman.copy()
    ps.pp.pseudobulk(screen, coexpr_max_cells=1000)
    stored = ps.pp.PseudobulkStats.from_adata(screen)
    assert stored.coexpr_max_cells == 1000
    with caplog.at_level(logging.INFO, logger="perturbsim"):
        used = current_stats(screen, coexpression="auto")  # the user's cap: still current
    assert "not using the stored statistics" not in caplog.text
    assert used.coexpr_n == 1000
    np.testing.assert_array_equal(used.coexpr_gram, stored.coexpr_gram)
    ps.pp.split(screen, kind="simulation", seed=1)  # a split since: afresh, with the same cap
    fresh = current_stats(screen, coexpression="auto")
    assert fresh.coexpr_cells.endswith(":named-sample1000") and fresh.coexpr_n == 1000


def test_stored_statistics_are_used_only_while_they_describe_the_screen(norman):
    from perturbsim.models import Additive
    from perturbsim.pp._pseudobulk import current_stats

    ps.pp.pseudobulk(norman)
    norman.uns["perturbsim"]["pseudobulk"]["moments"][0, 0, 0] += 1.0  # a mark on the stored
    marked = current_stats(norman, coexpression="auto")
    assert marked.moments[0, 0, 0] == norman.uns["perturbsim"]["pseudobulk"]["moments"][0, 0, 0]
    assert marked.moments[0, 0, 0] != ps.pp.compute_pseudobulk(norman).moments[0, 0, 0]

    genes = norman[:, 50:100].copy()  # subset after pseudobulk: the stored stats are stale
    stats = current_stats(genes)
    assert list(stats.genes) == list(genes.var_names)
    ps.pp.rank_de(genes, n_genes=5)  # read its own genes (refused the stored ones before)
    assert set(ps.pp.DEGenes.from_adata(genes).top_genes("KLF1")) <= set(genes.var_names)
    assert Additive(genes).fit().predict(["ctrl"]).n_vars == 50

    with pytest.raises(PerturbsimError, match="stored in adata are of other cells, genes or"):
        ps.pp.PseudobulkStats.from_adata(genes)  # read as they are, they would be stale
    half = norman[np.flatnonzero(norman.obs["perturbsim_condition"] != "KLF1")].copy()
    with pytest.raises(PerturbsimError, match="subset or relabelled since"):
        ps.pp.PseudobulkStats.from_adata(half)

    relabelled = norman.copy()  # the same cells and genes, some labelled otherwise
    klf1 = np.flatnonzero(relabelled.obs["perturbsim_condition"] == "KLF1")[:10]
    relabelled.obs.iloc[klf1, relabelled.obs.columns.get_loc("perturbsim_condition")] = "ctrl"
    counts = current_stats(relabelled).n_cells
    assert counts[list(marked.conditions).index("ctrl")] == 110
    swapped = norman.copy()  # two conditions of 100 cells each, their labels swapped
    labels = swapped.obs["perturbsim_condition"]
    is_klf1, is_map2k6 = (labels == "KLF1").to_numpy(), (labels == "MAP2K6").to_numpy()
    labels = labels.to_numpy().copy()
    labels[is_klf1], labels[is_map2k6] = "MAP2K6", "KLF1"
    swapped.obs["perturbsim_condition"] = pd.Categorical(labels, categories=marked.conditions)
    with pytest.raises(PerturbsimError, match="subset or relabelled since"):
        ps.pp.PseudobulkStats.from_adata(swapped)  # the counts alone read as the same
    reordered = norman[np.random.default_rng(0).permutation(norman.n_obs)].copy()
    assert ps.pp.PseudobulkStats.from_adata(reordered).n_cells.sum() == norman.n_obs  # its own
    row = list(marked.conditions).index("KLF1")
    np.testing.assert_allclose(
        current_stats(swapped).mean[row], marked.mean[list(marked.conditions).index("MAP2K6")]
    )

    ps.pp.split(norman, kind="simulation", seed=1)  # co-expression now of training cells only
    fresh = current_stats(norman, coexpression="auto")
    assert fresh.coexpr_n < norman.n_obs
    assert fresh.moments[0, 0, 0] != marked.moments[0, 0, 0]
    assert current_stats(norman).moments[0, 0, 0] == marked.moments[0, 0, 0]
    with pytest.raises(PerturbsimError, match="coexpression must be 'none' or 'auto', got 'all'"):
        current_stats(norman, coexpression="all")


def test_a_backed_file_deleted_after_it_was_opened_is_named(norman, tmp_path):
    from perturbsim.pp._chunk_sums import RowSource

    path = tmp_path / "screen.h5ad"
    norman.write_h5ad(path)
    backed = ps.ds.read(path, control="control", backed=True)
    source = RowSource.of(backed, None, backed.X)
    assert source.file == str(path.absolute())
    path.unlink()
    with pytest.raises(PerturbsimError, match="is not at that path any more"):
        ps.pp.pseudobulk(backed)
    # deleted during a pass: its next block says so
    with pytest.raises(PerturbsimError, match=r"rows 0-1 .*the file no longer exists"):
        source.read(lambda: backed.X[:2], 0, 2, backed.obs_names[:2])


def test_a_backed_file_read_by_a_relative_path_is_watched_by_its_absolute_path(
    norman, tmp_path, monkeypatch
):
    from perturbsim.pp._chunk_sums import RowSource

    (tmp_path / "a").mkdir()
    norman.write_h5ad(tmp_path / "a" / "screen.h5ad")
    monkeypatch.chdir(tmp_path / "a")
    backed = ps.ds.read("screen.h5ad", control="control", backed=True)
    source = RowSource.of(backed, None, backed.X)
    assert source.file == str(tmp_path / "a" / "screen.h5ad")
    # a block read after a change of the working folder (a dask worker's) still finds it
    monkeypatch.chdir(tmp_path)
    block = source.read(lambda: backed.X[:2], 0, 2, backed.obs_names[:2])
    assert block.shape == (2, norman.n_vars)
    # a pass begun there: no file by that name, said so (not "the file changed size")
    with pytest.raises(PerturbsimError, match="'screen.h5ad' is not at that path any more"):
        ps.pp.pseudobulk(backed)


def test_statistics_recomputed_after_a_split_read_the_layer_they_were_computed_from(norman):
    from perturbsim.models import Additive
    from perturbsim.pp._pseudobulk import current_stats

    norman.layers["doubled"] = norman.X * 2.0
    ps.pp.pseudobulk(norman, layer="doubled", half_seed=3)
    ps.pp.split(norman, kind="simulation", seed=1)  # the stored statistics are now stale
    fresh = current_stats(norman, coexpression="auto")
    on_x = ps.pp.compute_pseudobulk(norman)
    assert fresh.layer == "doubled" and fresh.half_seed == 3
    np.testing.assert_allclose(fresh.mean, 2.0 * on_x.mean, rtol=1e-6)
    klf1 = Additive(norman).fit().predict(["KLF1"]).layers["delta"][0]
    np.testing.assert_allclose(klf1, 2.0 * on_x.delta[list(on_x.conditions).index("KLF1")], 1e-5)
    from perturbsim.tl._evaluate import _working_copy

    norman.layers["counts"] = norman.X.expm1().ceil()
    with pytest.raises(PerturbsimError, match=r"adata.layers\['counts'\] holds raw integer"):
        ps.pp.pseudobulk(norman, layer="counts")

    assert _working_copy(norman).X is norman.layers["doubled"]  # evaluate scores the layer
    del norman.layers["doubled"]
    with pytest.raises(PerturbsimError, match="of layer 'doubled', which adata no longer has"):
        current_stats(norman)


def test_statistics_of_values_changed_in_place_are_not_reused(norman, caplog):
    from perturbsim.pp._pseudobulk import current_stats

    ps.pp.pseudobulk(norman)
    norman.X = norman.X * 3.0  # a new normalisation after pseudobulk: same cells and genes
    ps.pp.setup(norman, perturbation_key="condition")
    with caplog.at_level("WARNING", logger="perturbsim"):
        stats = current_stats(norman)
    assert "the values of adata.X changed since" in caplog.text
    np.testing.assert_allclose(stats.mean, ps.pp.compute_pseudobulk(norman).mean)
    profiles = ps.pp.measured_profiles(norman)
    klf1 = np.asarray(norman.X[(norman.obs["perturbsim_condition"] == "KLF1").to_numpy()].mean(0))
    control = norman.X[(norman.obs["perturbsim_condition"] == "ctrl").to_numpy()].mean(0)
    np.testing.assert_allclose(
        profiles["KLF1"].layers["delta"][0], np.ravel(klf1 - np.asarray(control)), atol=1e-4
    )


def test_cells_are_read_from_the_layer_the_statistics_describe(norman):
    from perturbsim.pp._cells import draw_cells

    rows = np.flatnonzero(norman.obs["perturbsim_condition"] == "KLF1")
    on_x = draw_cells(norman, ["KLF1"], max_cells=len(rows), seed=0)["KLF1"]
    np.testing.assert_allclose(on_x.sum(), norman.X[rows].sum(), rtol=1e-5)
    norman.layers["doubled"] = norman.X * 2.0
    ps.pp.pseudobulk(norman, layer="doubled")
    cells = draw_cells(norman, ["KLF1"], max_cells=len(rows), seed=0)["KLF1"]
    np.testing.assert_allclose(cells, 2.0 * on_x, rtol=1e-6)


@pytest.mark.filterwarnings("ignore::anndata.ImplicitModificationWarning")
def test_statistics_and_de_of_a_view_leave_its_parent_alone(norman):
    ps.pp.pseudobulk(norman)
    ps.pp.rank_de(norman)
    ps.pp.split(norman, kind="simulation", seed=1)
    stored = {key: norman.uns["perturbsim"][key] for key in ("pseudobulk", "de", "split")}
    keep = ~norman.obs["perturbsim_condition"].isin(["KLF1"]).to_numpy()
    view = norman[keep]
    ps.pp.pseudobulk(view, coexpression="none")
    ps.pp.rank_de(view)
    for key, value in stored.items():  # the very same entries, unchanged
        assert norman.uns["perturbsim"][key] is value
    assert int(norman.uns["perturbsim"]["pseudobulk"]["n_cells"].sum()) == norman.n_obs
    assert "KLF1" in norman.uns["perturbsim"]["de"]["conditions"]
    assert int(view.uns["perturbsim"]["pseudobulk"]["n_cells"].sum()) == int(keep.sum())
    assert "KLF1" not in view.uns["perturbsim"]["de"]["conditions"]


def test_statistics_kept_without_the_cells_values_fit_and_predict(tiny, tiny_go):
    """A screen handed on as its statistics alone (no X), as at genome scale."""
    ps.pp.split(tiny, kind="simulation", seed=1)
    ps.pp.pseudobulk(tiny)
    ps.pp.rank_de(tiny)
    kept = ad.AnnData(
        obs=tiny.obs.copy(), var=tiny.var[[]].copy(), uns={"perturbsim": tiny.uns["perturbsim"]}
    )
    kept.varp["perturbsim_gram"] = tiny.varp["perturbsim_gram"]
    stats = ps.pp.PseudobulkStats.from_adata(kept)
    model = ps.Stacked(kept, go_annotations=tiny_go, seed=0).fit(max_epochs=2)
    single = next(c for c in ps.pp.Split.from_adata(kept).train if "+" not in c and c != "ctrl")
    row = list(stats.conditions).index(single)
    np.testing.assert_allclose(  # a measured single is predicted by its measurement
        model.predict([single]).layers["delta"][0],
        stats.moments[0, row] - stats.control_mean,
        atol=1e-5,
    )


def test_counts_among_log_normalised_cells_are_refused_where_they_are_read(norman):
    # the streaming pass checks every value it reads: counts written over some cells after
    # setup (or beyond the cells a backed file's setup reads) are named, not averaged in
    x = norman.X.toarray() if sparse.issparse(norman.X) else np.array(norman.X)
    x[-3:] = np.round(np.expm1(x[-3:]) * 20)
    norman.X = x
    cell = norman.obs_names[-3]
    gene = norman.var_names[int(np.argmax(x[-3] > 30))]
    with pytest.raises(PerturbsimError, match=f"at cell '{cell}' gene '{gene}', above any log1p"):
        ps.pp.pseudobulk(norman)


def test_reading_backed_warns_of_what_anndata_still_reads_into_memory(norman, tmp_path, caplog):
    path = tmp_path / "screen.h5ad"
    norman.layers["counts"] = norman.X.copy()
    norman.write_h5ad(path)
    with caplog.at_level("WARNING", logger="perturbsim"):
        backed = ps.ds.read(path, control="control", backed=True)
    assert "anndata reads its layers (counts) into memory whole" in caplog.text
    caplog.clear()
    view = backed[backed.obs["perturbsim_condition"] != "KLF1"]
    with caplog.at_level("WARNING", logger="perturbsim"):
        stats = ps.pp.compute_pseudobulk(view)
    assert "a view of a backed screen: anndata reads its X into memory whole" in caplog.text
    assert "KLF1" not in set(stats.conditions)


def test_the_pass_over_a_view_of_a_backed_screen_says_how_many_cells_it_reads_whole(
    norman, tmp_path, caplog
):
    norman.write_h5ad(tmp_path / "screen.h5ad")
    backed = ps.ds.read(tmp_path / "screen.h5ad", control="control", backed=True)
    view = backed[backed.obs["perturbsim_condition"] != "KLF1"]
    assert view.n_obs != view.n_vars
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.pp.compute_pseudobulk(view)
    said = [m for m in caplog.messages if m.startswith("a view of a backed screen")]
    assert len(said) == 1 and f"into memory whole ({view.n_obs} cells), so the pass" in said[0]


def test_moderated_variance_is_limma_s_towards_the_pooled_spread_never_below_its_own():
    adata = make_screen(["ctrl", "G1", "G2"], cells=5)
    keep = np.ones(adata.n_obs, dtype=bool)
    keep[np.flatnonzero(adata.obs["condition"].to_numpy() == "G2")[1:]] = False  # G2: 1 cell
    adata = adata[keep].copy()
    ps.pp.setup(adata, perturbation_key="condition", control="ctrl")
    stats = ps.pp.compute_pseudobulk(adata, coexpression="none")
    x = adata.X.toarray().astype(np.float64)
    labels = adata.obs["perturbsim_condition"].astype(str).to_numpy()
    own = {
        c: x[labels == c].var(axis=0, ddof=1) if (labels == c).sum() > 1 else None
        for c in map(str, stats.conditions)
    }
    pooled = (4 * own["ctrl"] + 4 * own["G1"]) / 8  # the one-cell condition adds nothing
    variance, df = stats.moderated_variance(prior_df=10)
    for c, row in zip(map(str, stats.conditions), variance, strict=True):
        n = int((labels == c).sum())
        expected = ((n - 1) * own[c] + 10 * pooled) / (n - 1 + 10) if own[c] is not None else pooled
        np.testing.assert_allclose(
            row, np.fmax(expected, own[c]) if own[c] is not None else expected
        )
    np.testing.assert_allclose(df, [n - 1 + 10 for n in stats.n_cells])
    with pytest.raises(PerturbsimError, match="no condition to pool the variance over has two"):
        stats.moderated_variance(pooled_over=[int(stats.index(["G2"])[0])])


def test_a_constant_gene_has_no_variance_never_a_negative_one():
    # E[x²] - E[x]² of a constant is 0 but may round below it (float sums of 100 cells):
    # the variance is clipped at 0, so the standard error is 0, never NaN
    n_genes, n_control = 50, 100
    x = np.tile(np.linspace(0.1, 5.0, n_genes, dtype=np.float32), (n_control + 4, 1))
    labels = ["ctrl"] * n_control + ["G0"] * 4
    adata = screen_of(x, labels, [f"G{i}" for i in range(n_genes)])
    stats = ps.pp.compute_pseudobulk(adata, coexpression="none")
    variance = stats.variance()
    assert (variance >= 0).all() and variance.max() < 1e-10
    assert np.isfinite(stats.standard_error()).all()


def test_each_half_keeps_its_own_cell_count_for_odd_conditions():
    # five cells a condition: the first 5 // 2 = 2 in half 0, the other 3 in half 1
    adata = make_screen(["ctrl", "G0"], cells=5, sparse_x=False)
    ps.pp.setup(adata, perturbation_key="condition", control="ctrl")
    stats = ps.pp.compute_pseudobulk(adata, coexpression="none")
    codes = adata.obs["perturbsim_condition"].cat.codes.to_numpy()
    halves = half_labels(codes, 2, adata.obs_names, seed=0)
    for which, size in ((0, 2), (1, 3)):
        half = stats.half(which)
        assert half.n_cells.tolist() == [size, size]
        for row in range(2):
            cells = np.asarray(adata.X, dtype=np.float64)[(codes == row) & (halves == which)]
            np.testing.assert_allclose(half.variance()[row], cells.var(axis=0, ddof=1), atol=1e-9)


def test_draw_cells_gives_distinct_cells_of_the_condition_in_screen_order(norman, tmp_path):
    from perturbsim.pp._cells import draw_cells

    x = norman.X.toarray().astype(np.float32)
    rows = np.flatnonzero(norman.obs["perturbsim_condition"] == "KLF1")
    every = draw_cells(norman, ["KLF1"], max_cells=len(rows), seed=0)["KLF1"]
    assert every.dtype == np.float32
    np.testing.assert_array_equal(every, x[rows])  # all, in screen order
    drawn = draw_cells(norman, ["KLF1", "ctrl"], max_cells=10, seed=4)
    where = [np.flatnonzero((x[rows] == cell).all(axis=1))[0] for cell in drawn["KLF1"]]
    assert len(set(where)) == 10 and where == sorted(where)  # distinct, in screen order
    again = draw_cells(norman, ["KLF1", "ctrl"], max_cells=10, seed=4)
    other = draw_cells(norman, ["KLF1", "ctrl"], max_cells=10, seed=5)
    np.testing.assert_array_equal(again["ctrl"], drawn["ctrl"])
    assert not np.array_equal(other["ctrl"], drawn["ctrl"])  # the seed draws the cells
    norman.write_h5ad(tmp_path / "screen.h5ad")
    backed = ps.ds.read(tmp_path / "screen.h5ad", control="control", backed=True)
    on_disk = draw_cells(backed, ["KLF1", "ctrl"], max_cells=10, seed=4)
    np.testing.assert_array_equal(on_disk["KLF1"], drawn["KLF1"])
