from __future__ import annotations

import logging
import re
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import make_screen
from scipy import sparse

import perturbsim as ps
from perturbsim import PerturbsimError


def one_line_error(fn, match):
    with pytest.raises(PerturbsimError, match=match) as err:
        fn()
    assert "\n" not in str(err.value)
    return str(err.value)


def test_the_bundled_screen_loads_without_the_warning_of_its_unmeasured_targets(caplog):
    with caplog.at_level("WARNING", logger="perturbsim"):
        adata = ps.ds.norman2019_subset()
    assert "not measured in var" not in caplog.text  # CRISPRa targets, known
    assert len(adata.uns["perturbsim"]["setup"]["missing_targets"]) == 30
    with caplog.at_level("WARNING", logger="perturbsim"):  # as a user's screen: told
        ps.pp.setup(adata, perturbation_key="condition", control="control")
    assert "29 perturbed genes are not measured in var (expected of CRISPRa targets" in caplog.text
    # a real gene the bundled GO does not annotate: told apart, the models know nothing of it
    assert "1 perturbed gene is neither measured in var nor named by the GO annotations" in (
        caplog.text
    )
    assert "IER5L" in caplog.text.split("nor named by the GO annotations")[1]


def test_bundled_norman_parses_to_18_singles_15_pairs_and_control(norman):
    table = ps.pp.condition_table(norman)
    assert table["kind"].value_counts().to_dict() == {"single": 18, "combo": 15, "control": 1}
    assert table.loc["ctrl", "n_cells"] == 100
    assert "KLF1+SET" in table.index  # raw label SET+KLF1, canonicalised
    setup = norman.uns["perturbsim"]["setup"]
    assert setup["control"] == "control"
    assert len(setup["perturbed_genes"]) == 31


def test_gears_labels_and_gene_name_column_work_unchanged(caplog):
    adata = make_screen(["ctrl", "G1+ctrl", "ctrl+G2", "G2+G1"])
    adata.var["gene_name"] = adata.var_names
    adata.var_names = [f"ENSG{i:05d}" for i in range(adata.n_vars)]
    with caplog.at_level("WARNING", logger="perturbsim.pp._setup"):
        ps.pp.setup(adata)
    assert (  # renamed without being asked: said
        "var_names are now the symbols of adata.var['gene_name'] (the former names kept in "
        "var['perturbsim_original_id']; gene_symbols=False keeps them)" in caplog.text
    )
    assert list(adata.var_names[:2]) == ["G0", "G1"]
    assert adata.var["perturbsim_original_id"].iloc[0] == "ENSG00000"
    assert set(adata.obs["perturbsim_condition"]) == {"ctrl", "G1", "G2", "G1+G2"}
    assert (
        adata.obs.loc[adata.obs["perturbsim_condition"] == "G1+G2", "perturbsim_n_targets"]
        .eq(2)
        .all()
    )


def test_user_separator_and_explicit_control():
    adata = make_screen(["NT", "G1", "G1_G3"])
    ps.pp.setup(adata, control="NT", sep="_")
    assert set(adata.obs["perturbsim_condition"]) == {"ctrl", "G1", "G1+G3"}


def test_missing_perturbation_key():
    adata = make_screen(["ctrl", "G1"])
    one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key="guide"), "'guide' not found in adata.obs"
    )
    message = one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key="cond"), "'cond' not found in adata.obs"
    )
    assert message.endswith("; did you mean 'condition'?")


def test_a_column_of_numbers_is_not_taken_for_the_labels():
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    adata.obs["n_counts"] = np.arange(adata.n_obs) + 1000
    adata.obs["batch"] = pd.Categorical(["b1"] * adata.n_obs)
    adata.obs["score"] = pd.Series(1.5, index=adata.obs_names, dtype=object)  # not text
    message = one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key="n_counts"),
        "perturbation_key 'n_counts' is a column of numbers",
    )
    assert message.endswith(
        "(1000, 1001, 1002), not perturbation labels such as 'ctrl', 'KLF1' or "
        "'KLF1+MAP2K6' (labels coded as numbers: write them as text first, "
        "adata.obs['n_counts'] = adata.obs['n_counts'].astype(str)); columns of text: "
        "['condition', 'batch']"
    )
    adata.obs["codes"] = pd.Categorical(np.arange(adata.n_obs) % 2)  # numbers as categories
    one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key="codes"),
        r"^perturbation_key 'codes' is a column of numbers \(0, 1\)",
    )


@pytest.mark.parametrize("written", ["perturbsim_condition", "perturbsim_n_targets"])
def test_a_column_perturbsim_writes_is_not_taken_for_the_labels(written):
    adata = make_screen(["control", "G1", "G1+G2"])
    adata.obs[written] = adata.obs.pop("condition")
    one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key=written, control="control"),
        f"perturbation_key '{written}' is a column perturbsim writes",
    )
    assert set(adata.obs[written]) == {"control", "G1", "G1+G2"}  # the labels are kept
    # nor offered for a column that is not there
    message = one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key="condition"), "'condition' not found"
    )
    assert "did you mean" not in message


def test_a_set_up_screen_names_the_column_its_labels_came_from():
    adata = make_screen(["control", "G1", "G1+G2"])
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    message = one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key="perturbsim_condition", control="ctrl"),
        "is a column perturbsim writes",
    )
    assert message.endswith("pass 'condition', the column its labels were set up from")


def test_no_control_cells():
    adata = make_screen(["G1", "G2"])
    one_line_error(lambda: ps.pp.setup(adata), "no control cells")
    one_line_error(lambda: ps.pp.setup(adata, control="ctrl"), "'ctrl' not found")
    adata = make_screen(["control", "G1"])
    message = one_line_error(lambda: ps.pp.setup(adata, control="ctrl"), "'ctrl' not found")
    assert message.endswith("; did you mean 'control'?")


def test_labels_controls_separators_and_annotations_of_the_wrong_kind_are_named():
    adata = make_screen(["ctrl", "G1"])
    adata.obs["condition"] = np.where(adata.obs["condition"] == "ctrl", 0, 1)
    one_line_error(
        lambda: ps.pp.setup(adata, control="0"),
        r"^perturbation_key 'condition' is a column of numbers \(0, 1\), .* write them as "
        r"text first",
    )
    adata.obs["condition"] = adata.obs["condition"].astype(object)  # numbers among objects
    one_line_error(
        lambda: ps.pp.setup(adata, control="0"),
        r"^obs\['condition'\] holds labels of type int, not text: write them as text first",
    )
    adata = make_screen(["ctrl", "G1"])
    for options, message in (
        ({"control": 0}, r"^control must be a non-empty string \(e.g. 'NTC'\), got 0$"),
        ({"sep": ""}, r"^sep must be a non-empty string \(e.g. '_'\), got ''$"),
        ({"go_annotations": ["G1"]}, r"^go_annotations must be a DataFrame .*, got list$"),
    ):
        one_line_error(lambda options=options: ps.pp.setup(adata, **options), message)
    assert "perturbsim_condition" not in adata.obs  # refused before any change


def test_empty_and_malformed_labels():
    adata = make_screen(["ctrl", "G1", "G1++G2"])
    one_line_error(lambda: ps.pp.setup(adata), "malformed perturbation label 'G1\\+\\+G2'")
    adata = make_screen(["ctrl", "G1"])
    adata.obs.loc[adata.obs_names[-1], "condition"] = np.nan
    told = one_line_error(lambda: ps.pp.setup(adata), "missing or blank for 1 cell \\(first")
    advice = told.split("leave them out first (", 1)[1][:-1]
    scope = {"adata": adata}
    exec(advice, scope)  # as told, the cells without a label left out, it sets up
    ps.pp.setup(scope["adata"])
    assert scope["adata"].n_obs == adata.n_obs - 1
    for blank in ("", "  "):  # how many writers store a missing label
        adata = make_screen(["ctrl", "G1"])
        adata.obs["condition"] = adata.obs["condition"].astype(str)
        adata.obs.loc[adata.obs_names[-2:], "condition"] = blank
        cell = adata.obs_names[-2]
        one_line_error(
            lambda screen=adata: ps.pp.setup(screen), f"blank for 2 cells \\(first: '{cell}'\\)"
        )


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("layout", [np.asarray, sparse.csr_matrix, sparse.csc_matrix])
def test_non_finite_values_are_named_by_their_first_cell_and_gene(bad, layout):
    adata = make_screen(["ctrl", "G1"], sparse_x=False)
    adata.X[3, 2] = adata.X[5, 1] = bad
    adata.X = layout(adata.X)
    message = one_line_error(lambda: ps.pp.setup(adata), "non-finite")
    assert message == (
        f"adata.X contains {bad} at cell 'c3' gene 'G2' (2 non-finite values); remove or "
        "impute them first"
    )


def test_a_screen_without_values_is_named():
    adata = make_screen(["ctrl", "G1"])
    adata.X = None
    one_line_error(lambda: ps.pp.setup(adata), r"^adata.X is empty \(None\): the screen holds no")


def test_negative_values():
    adata = make_screen(["ctrl", "G1"])
    adata.X = adata.X.toarray()
    adata.X[1, 2] = -1.5
    adata.X[3, 0] = -0.5
    cell, gene = adata.obs_names[1], adata.var_names[2]  # the first, by row then column
    one_line_error(
        lambda: ps.pp.setup(adata), f"negative values .*first at cell '{cell}' gene '{gene}'"
    )


def test_duplicated_gene_names():
    adata = make_screen(["ctrl", "G1"])
    adata.var_names = ["G0"] * 2 + [f"G{i}" for i in range(2, adata.n_vars)]
    one_line_error(lambda: ps.pp.setup(adata), "duplicated gene names.*'G0'")


@pytest.mark.parametrize("normalize", [False, True])
def test_setting_up_a_view_says_that_the_anndata_it_was_cut_from_is_left(caplog, normalize):
    adata = make_screen(["ctrl", "G1", "G2"])
    if normalize:
        counts = np.random.default_rng(1).poisson(20, size=adata.shape)
        adata.X = sparse.csr_matrix(counts.astype(np.float32))
    parent = adata.X.copy()
    view = adata[adata.obs_names[: adata.n_obs // 2 + 5]]
    with caplog.at_level(logging.WARNING, logger="perturbsim"), warnings.catch_warnings():
        warnings.simplefilter("error")  # anndata's own note of the same is not repeated
        ps.pp.setup(view, normalize=normalize)
    assert "adata is a view (a subset of another AnnData): setup makes it" in caplog.text
    assert not view.is_view and "perturbsim" not in adata.uns
    assert "counts" not in adata.layers and (adata.X != parent).nnz == 0


def test_every_perturbed_gene_with_a_twin_in_another_case_is_named(caplog):
    # a hint names the genes GO does not know either; the others, which GO knows, were
    # left unsaid, though each is as unmeasured (its target read in another case)
    adata = ps.ds.simulate(size="small", seed=101)
    adata.var_names = [g.lower() for g in adata.var_names]
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.pp.setup(adata, perturbation_key="condition", control="control")
    assert "but are there in another case ('g0060' for 'G0060'" in caplog.text
    assert "differing only in case count as different genes" in caplog.text
    assert "(28 groups): G0003 and g0003" in caplog.text  # the 3 the hint named left out


def test_gene_names_padded_with_white_space_are_refused_naming_the_fix():
    # a label never names a padded gene, so its target would count as unmeasured in silence
    adata = make_screen(["ctrl", "G1"])
    adata.var_names = [f"G{i} " if i == 1 else f"G{i}" for i in range(adata.n_vars)]
    one_line_error(
        lambda: ps.pp.setup(adata),
        r"1 gene name in var_names with white space around it, e.g. 'G1 ' .*"
        r"adata.var_names = adata.var_names.str.strip\(\)",
    )
    symbols = make_screen(["ctrl", "G1"])
    symbols.var["symbol"] = list(symbols.var_names)
    symbols.var_names = [f"ID{i}" for i in range(symbols.n_vars)]
    symbols.var.loc["ID1", "symbol"] = "\xa0G1"
    one_line_error(
        lambda: ps.pp.setup(symbols, gene_symbols="symbol"),
        r"in adata.var\['symbol'\] with white space around it, e.g. '\\xa0G1'",
    )


def test_gene_symbols_missing_or_duplicated_keep_their_ids_or_get_suffixes(caplog):
    adata = make_screen(["ctrl", "G1", "G2"])
    ids = [f"ENSG{i:05d}" for i in range(adata.n_vars)]
    adata.var["symbol"] = [None, "G1", "G2", "G2", "", *adata.var_names[5:]]
    adata.var_names = ids
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.pp.setup(adata, gene_symbols="symbol")
    assert list(adata.var_names[:5]) == ["ENSG00000", "G1", "G2", "G2-1", "ENSG00004"]
    assert "2 genes have no symbol in adata.var['symbol']" in caplog.text
    assert "adata.var['symbol'] has 1 symbol naming more than one gene" in caplog.text
    assert {"G1", "G2"} <= set(adata.var_names)  # the targets are measured


def test_a_gene_name_column_naming_fewer_targets_than_var_names_is_not_used(caplog):
    adata = make_screen(["ctrl", "G1", "G2", "G1+G2"])
    adata.var["gene_name"] = [name.lower() for name in adata.var_names]  # another casing
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.pp.setup(adata)
    assert adata.var_names[1] == "G1" and "perturbsim_original_id" not in adata.var
    assert "kept var_names as gene names: they name 2 of the 2 perturbed genes" in caplog.text
    ps.pp.setup(adata, gene_symbols="gene_name")  # asked for: used
    assert adata.var_names[1] == "g1"
    other = make_screen(["ctrl", "G1"])
    other.var["gene_name"] = [f"ENSG{i}" for i in range(other.n_vars)]
    ps.pp.setup(other, gene_symbols=False)  # opted out
    assert other.var_names[1] == "G1"


def test_setup_again_drops_what_the_old_labels_gave(caplog):
    adata = make_screen(["ctrl", "G1_G2", "G1", "G2"], cells=10)
    ps.pp.setup(adata, sep="+")  # "G1_G2" kept as one gene
    ps.pp.split(adata, kind="simulation", seed=1)
    ps.pp.pseudobulk(adata, coexpression="all")
    ps.pp.rank_de(adata, n_genes=3)
    ps.pp.rank_de(adata, n_genes=3, key_added="de_t")  # a ranking of the old labels too
    adata.uns["perturbsim"]["notes"] = {"screen": "pilot"}  # a user's own entry
    with caplog.at_level("INFO", logger="perturbsim.pp._setup"):
        ps.pp.setup(adata, sep="_")  # as the label hint advises
    assert "dropped what the earlier labels gave" in caplog.text
    assert set(adata.uns["perturbsim"]) == {"setup", "notes"}
    assert "perturbsim_split" not in adata.obs and "perturbsim_gram" not in adata.varp
    ps.pp.rank_de(adata, n_genes=3)
    assert "G1+G2" in ps.pp.DEGenes.from_adata(adata).conditions
    assert ps.pp.measured_profiles(adata, ["G1_G2"]).obs_names.tolist() == ["G1+G2"]


def test_a_processed_screen_read_back_keeps_its_split_and_statistics(norman, tmp_path):
    ps.pp.split(norman, kind="simulation", seed=3)
    ps.pp.pseudobulk(norman)
    ps.pp.rank_de(norman)
    norman.write_h5ad(tmp_path / "screen.h5ad")
    again = ps.ds.read(tmp_path / "screen.h5ad", control="control")  # runs setup again
    assert {"split", "pseudobulk", "de"} <= set(again.uns["perturbsim"])
    assert "perturbsim_gram" in again.varp
    assert (again.obs["perturbsim_split"] == norman.obs["perturbsim_split"]).all()


def test_a_missing_value_written_as_text_is_warned_of(caplog):
    adata = make_screen(["ctrl", "G1", "nan"])
    with caplog.at_level("WARNING", logger="perturbsim.pp._setup"):
        ps.pp.setup(adata)
    assert "obs['condition'] labels 6 cells 'nan': a missing value written as text?" in caplog.text


def test_cells_of_several_cell_types_are_warned_of(caplog):
    adata = make_screen(["ctrl", "G1"])
    adata.obs["cell_type"] = ["K562", "A172"] * (adata.n_obs // 2)
    with caplog.at_level("WARNING", logger="perturbsim.pp._setup"):
        ps.pp.setup(adata)
    assert "obs['cell_type'] holds 2 values (A172, K562): each condition" in caplog.text


@pytest.mark.parametrize("backed", [False, True])
def test_read_keeps_only_the_cells_where_obs_says(tmp_path, caplog, backed):
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    adata.obs["cell_type"] = ["K562", "A172"] * (adata.n_obs // 2)
    path = tmp_path / "mixed.h5ad"
    adata.write_h5ad(path)
    with caplog.at_level("WARNING", logger="perturbsim"):
        kept = ps.ds.read(path, where={"cell_type": "K562"}, backed=backed)
    assert "holds 2 values" not in caplog.text  # one cell type left: nothing pooled
    assert not kept.isbacked and kept.n_obs == adata.n_obs // 2
    # asked for a backed screen, given one in memory: said
    assert (f"the {kept.n_obs} kept cells are read into memory" in caplog.text) == backed
    assert set(kept.obs["cell_type"]) == {"K562"}
    assert set(kept.obs["perturbsim_condition"]) == {"ctrl", "G1", "G1+G2"}
    both = ps.ds.read(path, where={"cell_type": ["K562", "A172"], "condition": ["ctrl", "G1"]})
    assert both.n_obs == 12 and set(both.obs["perturbsim_condition"]) == {"ctrl", "G1"}
    for values in (pd.Index(["K562"]), pd.Series(["K562"]), pd.Categorical(["K562"])):
        assert ps.ds.read(path, where={"cell_type": values}).n_obs == kept.n_obs


def test_a_sparse_matrix_with_corrupted_indices_is_refused_not_crashed_on():
    # a damaged file's gene index beyond the genes: scipy's products would read outside
    # the arrays (a segmentation fault); refused in one line before any
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    matrix = sparse.csr_matrix(adata.X)
    matrix.indices[len(matrix.indices) // 2] = adata.n_vars + 1000
    adata.X = matrix
    one_line_error(
        lambda: ps.pp.setup(adata),
        r"^adata.X is a sparse matrix whose index arrays are corrupted .* write it again",
    )


def test_read_keeps_only_cells_holding_exactly_the_numbers_asked(tmp_path):
    # an integer id, a float id and a float32 measure: each matched exactly (1 is 1.0), never
    # within a tolerance that mixed plates 100000 and 100001, or 0 and 1e-9
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    half = np.arange(adata.n_obs) % 2 == 0
    adata.obs["plate"] = np.where(half, 100000, 100001)
    adata.obs["dose"] = np.where(half, 0.0, 1e-9)
    adata.obs["size"] = np.where(half, 2974.15, 2974.1533).astype(np.float32)
    adata.obs["batch"] = pd.Categorical(np.where(half, 1, 2))  # numbers as categories
    path = tmp_path / "numbers.h5ad"
    adata.write_h5ad(path)
    for where in (
        {"plate": 100000},
        {"plate": "100000.0"},
        {"dose": 0},
        {"size": 2974.15},
        {"batch": 1.0},
    ):
        kept = ps.ds.read(path, where=where)
        assert kept.n_obs == half.sum(), where
    one_line_error(
        lambda: ps.ds.read(path, where={"batch": 3}),
        r"^where: no cell has obs\['batch'\] '3' \(its values: 1, 2\)",
    )


def test_setup_refuses_a_subset_of_a_backed_file_in_one_line(tmp_path):
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    path = tmp_path / "screen.h5ad"
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    one_line_error(
        lambda: ps.pp.setup(backed[:6], perturbation_key="condition"),
        r"adata is a subset \(view\) of a backed file, which setup cannot write into: load it",
    )
    one_line_error(
        lambda: ps.pp.setup(backed, perturbation_key="condition", copy=True),
        r"^setup\(copy=True\) cannot copy a backed screen: leave copy=False",
    )
    backed.file.close()
    screen = ps.ds.read(path, backed=True)  # set up: each later step refuses the same way
    for step in (ps.pp.pseudobulk, ps.pp.rank_de, ps.pp.split):
        name = step.__name__
        one_line_error(lambda step=step: step(screen[:6]), f"which {name} cannot write into")
        one_line_error(lambda step=step: step(screen, copy=True), rf"^{name}\(copy=True\) cannot")


def test_read_names_what_where_cannot_find(tmp_path):
    adata = make_screen(["ctrl", "G1"])
    adata.obs["cell_type"] = ["K562"] * 6 + ["A172"] * 6
    path = tmp_path / "mixed.h5ad"
    adata.write_h5ad(path)
    one_line_error(
        lambda: ps.ds.read(path, where={"celltype": "K562"}),
        r"where: obs has no column 'celltype' \(its columns: condition, cell_type\)",
    )
    one_line_error(
        lambda: ps.ds.read(path, where={"cell_type": "K526"}),
        r"no cell has obs\['cell_type'\] 'K526' \(its values: A172, K562\); did you mean 'K562'",
    )
    one_line_error(  # each value is held, but not together
        lambda: ps.ds.read(path, where={"cell_type": "K562", "condition": "G1"}),
        r"where: no cell matches every column at once \(cells each keeps alone: "
        r"cell_type=K562: 6; condition=G1: 6\)",
    )
    one_line_error(lambda: ps.ds.read(path, where={"cell_type": []}), "no value given for")
    one_line_error(
        lambda: ps.ds.read(path, where={"Cell_type": "K562"}), "did you mean 'cell_type'"
    )
    one_line_error(  # a comma-separated list is one value: the fix is a list
        lambda: ps.ds.read(path, where={"cell_type": "K562,A172"}),
        r"several values\? give them as a list: where=\{'cell_type': \['K562', 'A172'\]\}",
    )
    one_line_error(lambda: ps.ds.read(path, where="cell_type=K562"), "where must map obs columns")
    one_line_error(  # what is left must still be a screen: said with what where kept
        lambda: ps.ds.read(path, where={"condition": "G1"}),
        r"control.*\(where kept 6 of 12 cells\)$",
    )
    one_line_error(  # a key the file lacks is no fault of the filter: said without it
        lambda: ps.ds.read(path, perturbation_key="conditon", where={"cell_type": "K562"}),
        r"^perturbation_key 'conditon' not found in adata\.obs.*did you mean 'condition'",
    )
    adata.obs["lane"] = [1.0] * 6 + [np.nan] * 6
    adata.write_h5ad(path)
    assert ps.ds.read(path, where={"lane": 1}).n_obs == 6  # numbers compared as numbers
    one_line_error(lambda: ps.ds.read(path, where={"lane": "one"}), "holds numbers; 'one'")
    one_line_error(  # a missing value is no value to keep
        lambda: ps.ds.read(path, where={"lane": "nan"}), "holds numbers; 'nan'"
    )


def test_labels_padded_with_white_space_are_told_the_fix_that_works():
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    adata.obs["condition"] = [f" {c} " for c in adata.obs["condition"].astype(str)]
    told = one_line_error(lambda: ps.pp.setup(adata.copy(), control=" ctrl "), "' G1 '")
    assert "white space around the label: strip the labels first" in told
    told = one_line_error(lambda: ps.pp.setup(adata.copy()), "no control cells")
    fix = re.search(r"\((adata\.obs\[.*\.str\.strip\(\))\)", told)[1]
    exec(fix, {"adata": adata})  # the fix, run as written, works
    ps.pp.setup(adata)
    assert set(adata.obs["perturbsim_condition"].astype(str)) == {"ctrl", "G1", "G1+G2"}


def test_raw_counts_error_or_normalise():
    adata = make_screen(["ctrl", "G1"])
    rng = np.random.default_rng(1)
    adata.X = sparse.csr_matrix(rng.poisson(20, size=adata.shape).astype(np.float32))
    told = one_line_error(lambda: ps.pp.setup(adata), "raw integer counts; pass normalize=True")
    assert "layer" not in told
    logged = adata.copy()  # the log-normalised values kept in a layer: pointed to
    logged.layers["counts"] = logged.X.copy()  # counts are no such layer, by name or values
    logged.layers["raw"] = logged.X.copy()
    logged.layers["log"] = logged.X.log1p()
    told = one_line_error(lambda: ps.pp.setup(logged), "raw integer counts; pass normalize=True")
    assert told.endswith("make it X first (adata.X = adata.layers['log']; layers: log)")
    logged.X = logged.layers["log"]
    ps.pp.setup(logged)  # as told, it reads
    ps.pp.setup(adata, normalize=True)
    assert "counts" in adata.layers
    assert adata.X.max() < 10
    row = adata.layers["counts"][0].toarray().ravel()
    np.testing.assert_allclose(
        adata.X[0].toarray().ravel(),
        np.log1p(row / row.sum() * np.median(np.asarray(adata.layers["counts"].sum(1)).ravel())),
        rtol=1e-5,
    )


def test_counts_read_lazily_are_told_the_fix_that_works_lazily(tmp_path):
    adata = make_screen(["ctrl", "G1"])
    adata.X = np.random.default_rng(1).poisson(20, size=adata.shape).astype(np.float32)
    path = tmp_path / "counts.h5ad"
    adata.write_h5ad(path)
    told = one_line_error(lambda: ps.ds.read(path, backed=True), "raw integer counts")
    assert "without backed=True" in told and "pass normalize=True (" not in told
    # the advice works: normalised in memory, as the message says
    assert ps.ds.read(path, normalize=True).X.max() < 10
    one_line_error(lambda: ps.ds.read(path, backed=True, normalize=True), "without backed=True")


def test_a_refused_screen_keeps_its_gene_names_and_a_second_setup_its_normalisation():
    adata = make_screen(["ctrl", "G1"])
    adata.var["gene_name"] = adata.var_names
    adata.var_names = ids = [f"ENSG{i:05d}" for i in range(adata.n_vars)]
    rng = np.random.default_rng(1)
    adata.X = sparse.csr_matrix(rng.poisson(20, size=adata.shape).astype(np.float32))
    one_line_error(lambda: ps.pp.setup(adata), "raw integer counts; pass normalize=True")
    assert list(adata.var_names) == ids and "perturbsim_original_id" not in adata.var
    ps.pp.setup(adata, normalize=True)
    assert adata.var_names[0] == "G0" and adata.uns["perturbsim"]["setup"]["normalize"]
    ps.pp.pseudobulk(adata)
    ps.pp.setup(adata, gene_symbols=False)  # the same screen again: values normalised before
    assert adata.uns["perturbsim"]["setup"]["normalize"]  # as re-reading the file needs
    assert "pseudobulk" in adata.uns["perturbsim"]  # the same values: statistics kept


def test_normalize_keeps_a_counts_layer_that_holds_x_and_refuses_to_overwrite_another():
    rng = np.random.default_rng(2)
    counts = sparse.csr_matrix(rng.poisson(20, size=(12, 12)).astype(np.float32))
    same = make_screen(["ctrl", "G1"])
    same.X, same.layers["counts"] = counts.copy(), counts.copy()
    ps.pp.setup(same, normalize=True)  # the layer already holds X's counts: kept
    assert (same.layers["counts"] != counts).nnz == 0 and same.X.max() < 10
    for matrix in (counts.copy(), counts.toarray()):  # the layer X itself: normalised with X
        shared = make_screen(["ctrl", "G1"])
        shared.X = matrix
        shared.layers["counts"] = shared.X  # a common idiom: one object for both
        ps.pp.setup(shared, normalize=True)
        kept = shared.layers["counts"]
        kept = kept.toarray() if sparse.issparse(kept) else kept
        np.testing.assert_array_equal(kept, counts.toarray())  # the counts, as promised
    other = make_screen(["ctrl", "G1"])
    other.X, other.layers["counts"] = counts.copy(), counts * 2
    one_line_error(
        lambda: ps.pp.setup(other, normalize=True),
        r"would overwrite .layers\['counts'\], which differs from X's counts",
    )
    assert (other.layers["counts"] != counts * 2).nnz == 0 and other.X.max() > 10  # untouched


def test_normalised_but_not_logged_data_is_an_error_and_normalize_leaves_logged_data(caplog):
    adata = make_screen(["ctrl", "G1"])
    logged = adata.X.copy()
    adata.X = logged.expm1() * 1000  # counts per 1,000 of a cell's reads, not log-transformed
    one_line_error(lambda: ps.pp.setup(adata), "above any log1p-normalised value")
    adata.X = logged.copy()
    with caplog.at_level("WARNING", logger="perturbsim.pp._validate"):
        ps.pp.setup(adata, normalize=True)
    assert "looks log-normalised (non-integer, at most" in caplog.text
    assert (adata.X != logged).nnz == 0 and "counts" not in adata.layers
    shallow = make_screen(["ctrl", "G1"])
    shallow.X = logged.expm1().rint()  # counts whose largest is under 30: still counts
    assert shallow.X.max() < 30
    one_line_error(lambda: ps.pp.setup(shallow), "raw integer counts; pass normalize=True")
    ps.pp.setup(shallow, normalize=True)
    assert "counts" in shallow.layers and (shallow.X != shallow.layers["counts"]).nnz > 0


def test_proportions_normalised_to_one_total_without_a_log_are_an_error():
    adata = make_screen(["ctrl", "G1"])
    counts = adata.X.expm1()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    adata.X = sparse.csr_matrix(counts.multiply(1.0 / totals[:, None]))  # every cell sums to 1
    assert adata.X.max() < 1
    one_line_error(lambda: ps.pp.setup(adata), "every cell of adata.X sums to 1: normalised")
    ps.pp.setup(adata, normalize=True)  # normalised again to one total, then logged
    assert "counts" in adata.layers and np.asarray(adata.X.sum(axis=1)).std() > 0
    alike = make_screen(["ctrl", "G1"], sparse_x=False)
    alike.X[:] = alike.X[0]  # identical logged cells share their sum, and so do their counts
    ps.pp.setup(alike)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_counts_per_ten_thousand_without_a_log_are_an_error_without_numpy_warnings():
    adata = make_screen(["ctrl", "G1"], sparse_x=False)
    counts = np.expm1(np.asarray(adata.X, dtype=np.float64))
    adata.X = counts / counts.sum(axis=1, keepdims=True) * 1e4  # expm1 of it overflows
    assert adata.X.max() > np.log(np.finfo(np.float64).max)  # its expm1 overflows
    one_line_error(lambda: ps.pp.setup(adata), "above any log1p-normalised value")
    ps.pp.setup(adata, normalize=True)  # normalised again from these values, then logged
    assert adata.X.max() < 30


def test_perturbed_genes_differing_only_in_case_are_named(caplog):
    adata = make_screen(["ctrl", "G1", "g1", "G2+g3", "G3"])
    with caplog.at_level("WARNING", logger="perturbsim.pp._setup"):
        ps.pp.setup(adata)
    (warning,) = caplog.records  # one warning says it, with the fix
    assert "but are there in another case ('G1' for 'g1', 'G3' for 'g3'" in warning.getMessage()
    caplog.clear()
    adata = make_screen(["ctrl", "G1", "g1", "G2+g3", "G3"])
    adata.var_names = ["G0", "G1", "G2", "G3", "g1", "g3", *adata.var_names[6:]]  # all measured
    with caplog.at_level("WARNING", logger="perturbsim.pp._setup"):
        ps.pp.setup(adata)
    assert "differing only in case count as different genes" in caplog.text
    assert "perturbed ones among them (2 groups): " in caplog.text
    assert "G1 and g1; G3 and g3" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim.pp._setup"):
        ps.pp.setup(make_screen(["ctrl", "G1", "G1+G2"]))
    assert "only in case" not in caplog.text


def test_targets_missing_from_var_are_reported_once(caplog):
    adata = make_screen(["ctrl", "G1", "NOTMEASURED", "G1+NOTMEASURED"])
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.pp.setup(adata)
    messages = [r.getMessage() for r in caplog.records if "measured in var" in r.getMessage()]
    assert len(messages) == 1 and "NOTMEASURED" in messages[0]
    assert list(adata.uns["perturbsim"]["setup"]["missing_targets"]) == ["NOTMEASURED"]


def test_single_cell_condition_is_kept_and_flagged():
    adata = make_screen(["ctrl", "G1", "G2"], cells=5)
    adata = adata[np.r_[0:11]].copy()  # G2 keeps one cell
    ps.pp.setup(adata)
    assert list(adata.uns["perturbsim"]["setup"]["single_cell_conditions"]) == ["G2"]
    stats = ps.pp.compute_pseudobulk(adata)
    assert np.isfinite(stats.variance()).all()


def test_read_rejects_missing_and_wrong_files(tmp_path):
    one_line_error(lambda: ps.ds.read(tmp_path / "nope.h5ad"), "no such file")
    other = tmp_path / "x.csv"
    other.write_text("a,b\n")
    one_line_error(lambda: ps.ds.read(other), "expected an .h5ad file")


def test_read_takes_a_path_in_the_home_folder_as_a_shell_does(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    make_screen(["ctrl", "G1", "G1+G2"]).write_h5ad(tmp_path / "screen.h5ad")
    for backed in (False, True):
        adata = ps.ds.read("~/screen.h5ad", backed=backed)
        assert set(adata.obs["perturbsim_condition"]) == {"ctrl", "G1", "G1+G2"}


def test_read_gears_format_file(tmp_path):
    adata = make_screen(["ctrl", "G1+ctrl", "G1+G2"])
    adata.var["gene_name"] = adata.var_names
    adata.var_names = [f"ENSG{i}" for i in range(adata.n_vars)]
    path = tmp_path / "gears.h5ad"
    adata.write_h5ad(path)
    loaded = ps.ds.read(path)
    assert set(loaded.obs["perturbsim_condition"]) == {"ctrl", "G1", "G1+G2"}
    assert loaded.var_names[0] == "G0"


def test_a_word_of_every_label_is_an_affix_to_strip_not_a_separator_to_pass():
    adata = ps.ds.norman2019_subset()  # 'KLF1_KD': 'KD' is a gene's alias, but of every label
    adata.obs["condition"] = [
        c if c == "control" else "+".join(f"{g}_KD" for g in c.split("+"))
        for c in adata.obs["condition"].astype(str)
    ]
    message = one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key="condition", control="control"),
        "30 of 31 perturbed genes carry 'KD' joined by '_'",
    )
    assert "strip it from the labels first (sep='_' would read each as a pair with 'KD')" in (
        message
    )


def test_pairs_of_one_measured_gene_with_every_other_are_joined_labels_not_an_affix():
    anchored = make_screen(
        ["ctrl", "G2", "G3", "G4", "G5", "G1_G2", "G1_G3", "G1_G4", "G1_G5"], cells=20
    )
    message = one_line_error(
        lambda: ps.pp.setup(anchored), "4 of 8 perturbed genes look like genes joined by '_'"
    )  # G1 is a measured gene in every pair: a pair screen, not an affix to strip
    assert "pass sep='_'" in message and "strip" not in message


def test_guide_level_labels_are_told_to_be_labelled_by_their_gene(caplog):
    adata = ps.ds.norman2019_subset()
    singles = ~adata.obs["condition"].astype(str).str.contains("+", regex=False)
    adata = adata[singles].copy()
    guide = np.arange(adata.n_obs) % 2 + 1  # two guides of every gene
    adata.obs["condition"] = [
        c if c == "control" else f"{c}_sg{g}"
        for c, g in zip(adata.obs["condition"].astype(str), guide, strict=True)
    ]
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata, perturbation_key="condition", control="control")
    assert "perturbed genes look like guides of a gene (e.g. " in caplog.text
    assert "strip the guide's number, e.g. '_sg1'" in caplog.text


def test_labels_joined_by_another_separator_are_refused_unless_sep_is_given(caplog):
    adata = ps.ds.norman2019_subset()  # CRISPRa: its targets are named by GO, not measured
    raw = adata.obs["condition"].astype(str).str.replace("+", "_", regex=False)
    adata.obs["condition"] = raw
    before = adata.copy()
    message = one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key="condition", control="control"),
        "15 of 33 perturbed genes look like genes joined by '_'",
    )
    assert message.endswith(": pass sep='_', or sep='+' to keep the labels as they are")
    assert list(adata.obs.columns) == list(before.obs.columns)  # refused before any change
    assert (adata.var_names == before.var_names).all()
    caplog.clear()  # the default separator chosen: the labels are kept, no more advice
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata, perturbation_key="condition", control="control", sep="+")
    assert "joined by" not in caplog.text and "KLF1_MAP2K6" in caplog.text  # not measured
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata, perturbation_key="condition", control="control", sep="_")
    assert "joined by" not in caplog.text
    assert adata.obs["perturbsim_condition"].nunique() == 34
    # singles written with a control guide ('KLF1_NegCtrl0') count as joined labels too
    guides = ps.ds.norman2019_subset()
    labels = guides.obs["condition"].astype(str)
    guides.obs["condition"] = [
        "NegCtrl0_NegCtrl0"
        if c == "control"
        else c.replace("+", "_")
        if "+" in c
        else c + "_NegCtrl0"
        for c in labels
    ]
    one_line_error(
        lambda: ps.pp.setup(guides, perturbation_key="condition", control="NegCtrl0_NegCtrl0"),
        "32 of 33 perturbed genes look like genes joined by '_'",
    )
    # a gene named with '-' (NKX2-1) among them: no word of it is read as a control guide's
    hyphen = guides.copy()
    hyphen.obs["condition"] = hyphen.obs["condition"].str.replace("KLF1", "NKX2-1")
    message = one_line_error(
        lambda: ps.pp.setup(hyphen, perturbation_key="condition", control="NegCtrl0_NegCtrl0"),
        "32 of 33 perturbed genes look like genes joined by '_'",
    )
    assert "write" not in message
    # a sibling control guide beside the control is no label joined by '-': named as such
    siblings = make_screen(["non-targeting_1", "non-targeting_2", "G1", "G2", "G1+G2"])
    one_line_error(
        lambda: ps.pp.setup(siblings, control="non-targeting_1"),
        "label 'non-targeting_2' of obs\\['condition'\\] reads as a perturbation of "
        "'non-targeting_2', which by its name is a control guide",
    )


def test_labels_mixing_two_separators_are_told_to_use_one(caplog):
    adata = ps.ds.norman2019_subset()
    labels = adata.obs["condition"].astype(str)
    pairs = sorted({c for c in labels if "+" in c})
    rewritten = pairs[:3]  # three pairs written with '_', the rest with '+'
    adata.obs["condition"] = [c.replace("+", "_") if c in rewritten else c for c in labels]
    message = one_line_error(
        lambda: ps.pp.setup(adata, perturbation_key="condition", control="control"),
        "the labels join genes by two separators, '\\+' ",
    )
    read = adata.obs["condition"].unique()
    n_genes = len({g for c in read if c != "control" for g in c.split("+")})  # as '+' reads
    read_as_one = rewritten[0].replace("+", "_")
    assert (
        f"and '_' (3 of {n_genes} perturbed genes read as one gene, e.g. {read_as_one!r}" in message
    )
    assert "pass sep='_'" not in message  # it would read the other pairs as one gene each
    caplog.clear()  # '+' chosen: the labels are kept as they are, and the mix is warned of
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata, perturbation_key="condition", control="control", sep="+")
    assert "write every label with one separator first" in caplog.text
    assert adata.obs["perturbsim_condition"].nunique() == 34
    # a read-through gene (HSPE1-MOB4: both halves genes, itself in no GO table) beside '+'
    # pairs is one gene: '-' and '.' stand inside gene symbols, so one such label is no mix
    read_through = ps.ds.norman2019_subset()
    labels = read_through.obs["condition"].astype(str).to_numpy().copy()
    labels[np.flatnonzero(labels == "KLF1")[:10]] = "HSPE1-MOB4"
    read_through.obs["condition"] = labels
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(read_through, perturbation_key="condition", control="control")
    assert "HSPE1-MOB4" in set(read_through.obs["perturbsim_condition"])


def test_ensembl_measured_screen_perturbed_by_names_is_pointed_to_its_symbols(caplog, tiny):
    adata = tiny.copy()
    adata.var["symbol"] = adata.var_names
    adata.var_names = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata, perturbation_key="condition", control="control")
    assert "perturbed genes are not in var_names but in var['symbol']" in caplog.text
    assert "pass gene_symbols='symbol'" in caplog.text


def test_a_mouse_screen_by_ensembl_ids_is_pointed_to_its_symbols_not_to_another_case(caplog):
    adata = make_screen(["ctrl", "Klf1", "Gata1", "Spi1", "Gata1+Klf1"], n_genes=4)
    adata.var["symbol"] = ["Klf1", "Gata1", "Spi1", "Actb"]
    adata.var_names = [f"ENSMUSG{i:011d}" for i in range(adata.n_vars)]
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata)  # the bundled human GO has KLF1, GATA1, SPI1
    assert "pass gene_symbols='symbol'" in caplog.text and "another case" not in caplog.text


def test_a_gene_of_the_annotations_given_in_every_label_is_a_pair_partner_not_an_affix():
    # mouse labels pairing four genes with Tal1, which is perturbed alone nowhere and is no
    # human symbol: a gene of the mouse annotations given, so the labels are pairs
    labels = ["ctrl", "Gata1_Tal1", "Klf1_Tal1", "Spi1_Tal1", "Cebpa_Tal1"]
    adata = make_screen(labels)
    adata.var_names = ["Gata1", "Klf1", "Spi1", "Cebpa", *adata.var_names[4:]]
    mouse_go = pd.DataFrame({"gene": ["Gata1", "Klf1", "Tal1"], "term": ["GO:1"] * 3})
    message = one_line_error(
        lambda: ps.pp.setup(adata, go_annotations=mouse_go),
        "4 of 4 perturbed genes look like genes joined by '_'",
    )
    assert "pass sep='_'" in message and "strip" not in message


def test_the_label_check_knows_genes_by_the_annotations_given(caplog):
    adata = make_screen(["ctrl", "Klf1", "Gata1", "Gata1+Klf1"])  # targets not measured
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata.copy())  # the bundled human GO has no 'Klf1', but has 'KLF1'
    assert "neither measured (var_names) nor in the GO annotations" in caplog.text
    assert "are there in another case ('GATA1' for 'Gata1', 'KLF1' for 'Klf1';" in caplog.text
    assert "else give GO annotations of the screen's species" in caplog.text
    caplog.clear()
    mouse_go = pd.DataFrame({"gene": ["Klf1", "Gata1"], "term": ["GO:1", "GO:1"]})
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata, go_annotations=mouse_go)
    assert "GO annotations" not in caplog.text and "expected of CRISPRa targets" in caplog.text


def test_a_gene_given_as_the_control_is_refused_naming_the_control_label():
    adata = ps.ds.norman2019_subset()
    before = adata.obs.copy()
    with pytest.raises(PerturbsimError) as err:
        ps.pp.setup(adata, perturbation_key="condition", control="KLF1")
    assert str(err.value) == (
        "control 'KLF1' names the gene 'KLF1' (in the GO annotations), not a label of control "
        "cells: its cells would be read as unperturbed and every label naming it as its other "
        "genes; the screen's control label looks like 'control'"
    )
    pd.testing.assert_frame_equal(adata.obs, before)  # refused before any change


def test_cells_of_several_screens_are_refused_unless_pooled_on_purpose(caplog):
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    adata.obs["dataset"] = np.where(np.arange(adata.n_obs) % 2, "mine23", "other19")
    message = one_line_error(lambda: ps.pp.setup(adata), "names 2 screens")
    assert message == (
        "obs['dataset'] names 2 screens (mine23, other19): pooled, each condition (control "
        "included) would mix their cells and read their differences as effects; pick one of them "
        "(ps.ds.read(..., where={'dataset': VALUE})), or pass pool_datasets=True"
    )
    assert "perturbsim_condition" not in adata.obs  # refused before anything was written
    with caplog.at_level("WARNING", logger="perturbsim.pp._setup"):
        ps.pp.setup(adata, pool_datasets=True)
    assert "obs['dataset']" not in caplog.text  # pooled on purpose: no warning
    one = make_screen(["ctrl", "G1", "G1+G2"])  # one screen, some cells not named: no mix
    one.obs["dataset"] = np.where(np.arange(one.n_obs) % 2, "mine23", None)
    ps.pp.setup(one)


def test_a_control_smaller_than_the_conditions_is_warned_of(caplog):
    screen = ps.ds.simulate(size="tiny", seed=0)
    labels = screen.obs["condition"].to_numpy()
    control = np.flatnonzero(labels == "control")
    few = screen[np.r_[control[:5], np.flatnonzero(labels != "control")]].copy()
    for adata, warned in ((screen, False), (few, True)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="perturbsim"):
            ps.pp.setup(adata, perturbation_key="condition", control="control")
        assert ("the control has 5 cells, fewer than the typical" in caplog.text) == warned


def test_a_perturbed_gene_no_annotation_names_is_told_apart_from_an_unmeasured_target(caplog):
    adata = ps.ds.norman2019_subset()
    labels = adata.obs["condition"].astype(str).to_numpy().copy()
    pair = "KLF1+MAP2K6"
    typo = "FSOB+MAP2K6"  # FOSB mistyped
    labels[np.flatnonzero(labels == pair)[:5]] = typo
    labels[np.flatnonzero(labels == pair)[5:10]] = "unassigned"
    adata.obs["condition"] = labels
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.pp.setup(adata, perturbation_key="condition", control="control")
    text = caplog.text
    assert "perturbed genes are not measured in var (expected of CRISPRa targets" in text
    assert "3 perturbed genes are neither measured in var nor named by the GO annotations" in (text)
    assert "FSOB, IER5L, unassigned" in text
    fine = text.split("knockdown unseen):")[1].split("\n")[0]
    assert "FSOB" not in fine and "unassigned" not in fine
    # the word on labels of cells without a clear guide names the one that is no symbol
    assert "('unassigned': a label of cells without a clear guide" in text
    adata = ps.ds.norman2019_subset()  # IER5L alone: a gene, no such word
    with caplog.at_level("WARNING", logger="perturbsim"):
        caplog.clear()
        ps.pp.setup(adata, perturbation_key="condition", control="control")
    assert "IER5L" in caplog.text and "clear guide" not in caplog.text
    from perturbsim.pp._setup import _looks_like_a_gene

    assert all(map(_looks_like_a_gene, ["IER5L", "Klf1", "unc-22", "HLA-A", "sox2"]))
    assert not any(map(_looks_like_a_gene, ["Unassigned", "Multiplet", "NegCtrl0_NegCtrl0"]))


def test_conditions_apart_from_the_control_s_batches_are_warned_of(caplog):
    apart = ps.ds.norman2019_subset()
    apart.obs["batch"] = np.where(apart.obs["condition"].isin(["KLF1", "FOXO4"]), "b2", "b1")
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.pp.setup(apart, perturbation_key="condition", control="control")
    assert "obs['batch']: 2 conditions have no cell in a batch the control cells are in " in (
        caplog.text
    )
    assert "(FOXO4, KLF1)" in caplog.text
    caplog.clear()
    mixed = ps.ds.norman2019_subset()  # both batches hold control cells: pooled quietly
    mixed.obs["batch"] = np.where(np.arange(mixed.n_obs) % 2, "b2", "b1")
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.pp.setup(mixed, perturbation_key="condition", control="control")
    assert "batch" not in caplog.text


def test_log1p_of_counts_not_normalised_to_a_depth_is_warned_of(caplog):
    counts = make_screen(["ctrl", "G1", "G2"], n_genes=100, cells=40)
    rng = np.random.default_rng(3)
    raw = rng.poisson(3.0, size=counts.shape).astype(np.float64)
    counts.X = sparse.csr_matrix(np.log1p(raw))  # log1p without normalize_total
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.pp.setup(counts)
    assert "adata.X looks like log1p of raw counts (expm1 of its values is whole)" in caplog.text
    for total in (1e4, 1e6):  # normalised first, to any depth (one count: 1e6 / 300): quiet
        caplog.clear()
        depth = raw / raw.sum(axis=1, keepdims=True) * total
        counts.X = sparse.csr_matrix(np.log1p(depth))
        with caplog.at_level(logging.WARNING, logger="perturbsim"):
            ps.pp.setup(counts)
        assert "log1p of raw counts" not in caplog.text


def test_cell_names_given_twice_are_warned_of(caplog):
    adata = make_screen(["ctrl", "G1", "G2"])
    adata.obs_names = [f"c{i % 9}" for i in range(adata.n_obs)]  # 18 cells, 9 names
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.pp.setup(adata)
    assert "9 cells have the name of an earlier cell (e.g. 'c0')" in caplog.text


def test_a_sparse_matrix_with_a_gene_index_just_past_the_genes_or_short_pointers_is_refused():
    # the gene index n_vars is one past the last gene; row pointers whose end passes the
    # stored values read beyond them: both refused in one line, never handed to scipy
    for damage in ("index", "pointers"):
        adata = make_screen(["ctrl", "G1", "G1+G2"])
        matrix = sparse.csr_matrix(adata.X)
        if damage == "index":
            matrix.indices[len(matrix.indices) // 2] = adata.n_vars
        else:
            matrix.data, matrix.indices = matrix.data[:-3], matrix.indices[:-3]
        adata.X = matrix
        one_line_error(
            lambda adata=adata: ps.pp.setup(adata),
            r"^adata.X is a sparse matrix whose index arrays are corrupted .* write it again",
        )


def test_log_normalised_cells_whose_sums_are_close_but_not_equal_are_not_told_unlogged():
    # cells of log values summing within 1% of each other (their counts do not): log data
    adata = make_screen(["ctrl", "G1"], sparse_x=False)
    x = np.asarray(adata.X, dtype=np.float64)
    sums = x.sum(axis=1)
    x *= (sums.mean() * (1 + 0.004 * np.linspace(-1, 1, len(sums))) / sums)[:, None]
    adata.X = x.astype(np.float32)
    ps.pp.setup(adata)  # read as the log-normalised values they are


def test_a_counts_layer_of_non_integer_counts_is_never_offered_as_the_log_values():
    # ambient-corrected counts (non-integer, above 30) in X and kept in .layers["counts"]
    adata = make_screen(["ctrl", "G1"])
    rng = np.random.default_rng(3)
    adata.X = sparse.csr_matrix(rng.poisson(60, size=adata.shape) * 0.9 + 0.05)
    adata.layers["counts"] = adata.X.copy()
    told = one_line_error(lambda: ps.pp.setup(adata), "above any log1p-normalised value")
    assert "layer" not in told


def test_a_condition_partly_in_the_control_s_batches_or_of_few_cells_is_not_warned_of(caplog):
    screen = make_screen(["ctrl", "G1", "G2", "G3"], cells=4)
    labels = screen.obs["condition"].to_numpy()
    batch = np.full(screen.n_obs, "b1", dtype=object)
    batch[labels == "G1"] = "b2"  # all 4 cells apart from the control's batch: warned
    batch[np.flatnonzero(labels == "G2")[:3]] = "b2"  # one cell beside the control: quiet
    screen.obs["batch"] = batch
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.pp.setup(screen)
    assert "obs['batch']: 1 condition has no cell in a batch the control cells are in (G1)" in (
        caplog.text
    )
    caplog.clear()
    few = screen[np.r_[np.flatnonzero(labels != "G1"), np.flatnonzero(labels == "G1")[:3]]].copy()
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.pp.setup(few)  # 3 cells apart: by chance, not warned of
    assert "batch" not in caplog.text


def test_a_gene_name_column_is_used_when_var_names_name_no_more_of_the_targets(caplog):
    adata = make_screen(["ctrl", "T1", "T1+T2"])  # CRISPRa: targets measured by no name
    adata.var["gene_name"] = [f"SYM{i}" for i in range(adata.n_vars)]
    adata.var_names = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.pp.setup(adata)
    assert list(adata.var_names[:2]) == ["SYM0", "SYM1"]
    assert adata.uns["perturbsim"]["setup"]["gene_key"] == "gene_name"
    assert "kept var_names" not in caplog.text


def test_setup_again_with_a_condition_renamed_drops_its_statistics(caplog):
    adata = make_screen(["ctrl", "G1", "G2"], cells=10)
    ps.pp.setup(adata)
    ps.pp.pseudobulk(adata)
    codes = adata.obs["perturbsim_condition"].cat.codes.to_numpy().copy()
    adata.obs["condition"] = adata.obs["condition"].replace({"G2": "G3"})  # a typo fixed
    with caplog.at_level("INFO", logger="perturbsim.pp._setup"):
        ps.pp.setup(adata)
    assert (adata.obs["perturbsim_condition"].cat.codes.to_numpy() == codes).all()
    assert "dropped what the earlier labels gave" in caplog.text
    assert "pseudobulk" not in adata.uns["perturbsim"]


def test_setup_normalising_counts_put_back_into_x_drops_the_old_statistics():
    adata = make_screen(["ctrl", "G1", "G2"], cells=10)
    rng = np.random.default_rng(1)
    counts = sparse.csr_matrix(rng.poisson(5, size=adata.shape).astype(np.float32))
    ps.pp.setup(adata)
    ps.pp.pseudobulk(adata)
    adata.X = counts  # the same cells and labels, their values now counts
    ps.pp.setup(adata, normalize=True)
    assert "pseudobulk" not in adata.uns["perturbsim"]
    assert adata.uns["perturbsim"]["setup"]["normalize"]


def test_the_condition_table_calls_sets_of_three_genes_higher_not_combo():
    adata = make_screen(["ctrl", "G1", "G1+G2", "G1+G2+G3"])
    ps.pp.setup(adata)
    table = ps.pp.condition_table(adata)
    assert table["kind"].to_dict() == {
        "ctrl": "control",
        "G1": "single",
        "G1+G2": "combo",
        "G1+G2+G3": "higher",
    }
    assert table["n_targets"].tolist() == [0, 1, 2, 3]


def test_a_gene_symbol_of_white_space_alone_keeps_its_id(caplog):
    adata = make_screen(["ctrl", "G1", "G2"])
    adata.var["symbol"] = ["  ", *adata.var_names[1:]]
    adata.var_names = [f"ENSG{i:05d}" for i in range(adata.n_vars)]
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.pp.setup(adata, gene_symbols="symbol")
    assert list(adata.var_names[:2]) == ["ENSG00000", "G1"]
    assert "1 gene has no symbol in adata.var['symbol']" in caplog.text


def test_cells_that_lost_their_condition_since_setup_are_refused_naming_the_first():
    adata = make_screen(["ctrl", "G1", "G2"])
    ps.pp.setup(adata)
    adata.obs.loc["c7", "perturbsim_condition"] = np.nan  # e.g. a label outside the categories
    one_line_error(
        lambda: ps.pp.pseudobulk(adata), r"1 cell of adata lost their condition label .*'c7'"
    )


def test_a_word_of_three_labels_is_an_affix_and_of_eight_in_ten_a_partner(caplog):
    three = make_screen(["ctrl", "G1_KD", "G2_KD", "G3_KD"])  # 'KD': a gene's alias
    one_line_error(lambda: ps.pp.setup(three), "3 of 3 perturbed genes carry 'KD' joined by '_'")
    singles = [f"G{i}_KD" for i in range(1, 10)]
    nine = make_screen(["ctrl", *singles, "G1_G2"])  # 'KD' in 9 of 10 labels: an affix
    one_line_error(lambda: ps.pp.setup(nine), "9 of 10 perturbed genes carry 'KD' joined by '_'")
    eight = make_screen(["ctrl", *singles[:8], "G1_G2", "G3_G4"])  # in 8 of 10: pairs
    message = one_line_error(
        lambda: ps.pp.setup(eight), "10 of 10 perturbed genes look like genes joined by '_'"
    )
    assert "pass sep='_'" in message and "strip" not in message


def test_singles_joined_to_ctrl_by_another_separator_are_told_apart_from_the_pairs(caplog):
    adata = ps.ds.norman2019_subset()
    labels = adata.obs["condition"].astype(str)
    adata.obs["condition"] = [f"{c}_ctrl" if c in ("KLF1", "FOXO4") else c for c in labels]
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata, perturbation_key="condition", control="control", sep="+")
    assert "the labels join genes by two separators, '+' (e.g. " in caplog.text
    assert "and '_' (2 of 32 perturbed genes read as one gene, e.g. 'FOXO4_ctrl'" in (caplog.text)


def test_singles_each_joined_to_a_control_guide_are_joined_labels_not_an_affix():
    guides = make_screen(["NegCtrl0_NegCtrl0", "G1_NegCtrl0", "G2_NegCtrl0", "G3_NegCtrl0"])
    message = one_line_error(
        lambda: ps.pp.setup(guides, control="NegCtrl0_NegCtrl0"),
        "3 of 3 perturbed genes look like genes joined by '_'",
    )  # 'NegCtrl0' is the control guide: sep='_' reads each label as its gene
    assert "pass sep='_'" in message and "strip" not in message
    ps.pp.setup(guides, control="NegCtrl0_NegCtrl0", sep="_")
    assert list(guides.obs["perturbsim_condition"].cat.categories) == ["ctrl", "G1", "G2", "G3"]


def test_most_perturbed_genes_unknown_are_not_told_that_none_is_known(caplog):
    adata = make_screen(["ctrl", "G1", "QQX1", "QQX2", "QQX3"])
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata)
    text = caplog.text
    assert "3 of 4 perturbed genes are neither measured (var_names) nor in the GO" in text
    assert "none is" not in text
    caplog.clear()
    labels = make_screen(["ctrl", "QQX1", "QQX2"])  # none known: the column of labels?
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(labels)
    assert "2 of 2 perturbed genes are neither measured (var_names) nor in the GO annotations " in (
        caplog.text
    )
    assert "(none is: is it the column of perturbation labels?)" in caplog.text


def test_labels_by_the_ids_gene_symbols_replaced_are_not_pointed_to_perturbsim_s_column(caplog):
    adata = make_screen(["ctrl", "G1", "G2", "G1+G2"])
    ids = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    adata.var["symbol"] = list(adata.var_names)
    adata.var_names = ids
    adata.obs["condition"] = adata.obs["condition"].replace(
        {"G1": ids[1], "G2": ids[2], "G1+G2": f"{ids[1]}+{ids[2]}"}
    )
    with caplog.at_level(logging.WARNING):
        ps.pp.setup(adata, gene_symbols="symbol")  # the labels name genes by their ids
    assert "2 of 2 perturbed genes are neither measured (var_names) nor in the GO" in caplog.text
    assert "perturbsim_original_id" not in caplog.text  # the column setup itself wrote


def test_setting_up_a_copy_leaves_the_screen_and_a_view_as_they_were(caplog):
    adata = make_screen(["ctrl", "G1", "G2"])
    copied = ps.pp.setup(adata, copy=True)
    assert "perturbsim_condition" in copied.obs and "perturbsim_condition" not in adata.obs
    assert "perturbsim" not in adata.uns
    view = adata[:12]  # the control's cells and G1's
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        copied = ps.pp.setup(view, copy=True)
    assert "adata is a view" not in caplog.text  # the view is left as it is: nothing to say
    assert view.is_view and "perturbsim_condition" not in view.obs
    assert copied.n_obs == view.n_obs and not copied.is_view
    assert set(copied.obs["perturbsim_condition"]) == {"ctrl", "G1"}


def test_read_takes_anndata_s_backed_r_for_backed(tmp_path):
    path = tmp_path / "screen.h5ad"
    make_screen(["ctrl", "G1", "G1+G2"]).write_h5ad(path)
    screen = ps.ds.read(path, backed="r")
    assert screen.isbacked
    screen.file.close()


def test_read_with_where_neither_warns_of_layers_it_loads_nor_sets_up_a_view(tmp_path, caplog):
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    adata.obs["cell_type"] = ["K562", "A172"] * (adata.n_obs // 2)
    adata.layers["counts"] = adata.X.copy()
    path = tmp_path / "mixed.h5ad"
    adata.write_h5ad(path)
    for backed in (False, True):
        caplog.clear()
        with caplog.at_level("INFO", logger="perturbsim"):
            kept = ps.ds.read(path, where={"cell_type": "K562"}, backed=backed)
        assert kept.n_obs == adata.n_obs // 2 and not kept.is_view
        assert "anndata reads its layers" not in caplog.text
        assert "adata is a view" not in caplog.text


def test_read_records_where_as_lists_of_text_and_writes_them(tmp_path):
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    adata.obs["cell_type"] = ["K562", "A172"] * (adata.n_obs // 2)
    adata.obs["plate"] = [1, 2] * (adata.n_obs // 2)
    path = tmp_path / "mixed.h5ad"
    adata.write_h5ad(path)
    where = {"cell_type": pd.Index(["K562"]), "plate": 1}
    kept = ps.ds.read(path, where=where)
    assert kept.uns["perturbsim"]["setup"]["where"] == {"cell_type": ["K562"], "plate": ["1"]}
    kept.write_h5ad(tmp_path / "kept.h5ad")


def test_where_matches_text_exactly_booleans_sets_and_values_holding_commas(tmp_path):
    adata = make_screen(["ctrl", "G1", "G1+G2"])
    adata.obs["cell_type"] = ["K562,A172", "RPE1"] * (adata.n_obs // 2)
    adata.obs["infected"] = [True, False] * (adata.n_obs // 2)
    path = tmp_path / "mixed.h5ad"
    adata.write_h5ad(path)
    half = adata.n_obs // 2
    assert ps.ds.read(path, where={"cell_type": "K562,A172"}).n_obs == half
    assert ps.ds.read(path, where={"infected": "True"}).n_obs == half
    assert ps.ds.read(path, where={"cell_type": {"RPE1"}}).n_obs == half


def test_where_never_matches_a_missing_value_by_its_text_nan():
    from perturbsim.ds._read import kept_cells

    obs = pd.DataFrame({"donor": ["d1", None, "d2", np.nan]})
    assert kept_cells(obs, {"donor": ["d1", "d2"]}).tolist() == [True, False, True, False]
    with pytest.raises(PerturbsimError, match=r"no cell has obs\['donor'\] 'nan'"):
        kept_cells(obs, {"donor": "nan"})


def test_where_s_column_hint_names_the_first_of_columns_equal_but_for_case():
    from perturbsim.ds._read import kept_cells

    obs = pd.DataFrame({"Cell_type": ["a"], "cell_TYPE": ["b"]})
    with pytest.raises(PerturbsimError, match=r"did you mean 'Cell_type'\?$"):
        kept_cells(obs, {"celltype": "a"})
