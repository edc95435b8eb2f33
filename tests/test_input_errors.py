"""Wrong types and values at the API's entry points: one PerturbsimError naming them."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.models._grn import GRN


@pytest.fixture(scope="module")
def split_norman():
    adata = ps.ds.norman2019_subset()
    ps.pp.split(adata, kind="simulation", seed=1)
    return adata


@pytest.fixture(scope="module")
def additive(split_norman):
    return ps.Additive(split_norman).fit()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: ps.Stacked(a.X), "adata must be an AnnData (cells x genes), got csr_matrix"),
        (lambda a: ps.pp.setup(a.X), "adata must be an AnnData (cells x genes), got csr_matrix"),
        (lambda a: ps.tl.gi_scores(np.zeros((2, 3))), "profiles must be an AnnData (conditions"),
        (
            lambda a: ps.Additive(a, seed="abc"),
            "seed must be a whole number >= 0 and < 2**32, got 'abc'",
        ),
        (
            lambda a: ps.Additive(a, seed=1.5),
            "seed must be a whole number >= 0 and < 2**32, got 1.5",
        ),
        (
            lambda a: ps.Additive(a, seed=-3),
            "seed must be a whole number >= 0 and < 2**32, got -3",
        ),
        (
            lambda a: ps.Additive(a, seed=2**70),
            f"seed must be a whole number >= 0 and < 2**32, got {2**70}",
        ),
        (lambda a: ps.Stacked(a).weights, "stacked is not fitted: call .fit() first"),
        (lambda a: ps.GEARS(a).fit(max_epochs=0), "max_epochs must be a whole number >= 1, got 0"),
        (lambda a: ps.GEARS(a).fit(lr=0), "lr must be a number in (0, inf), got 0"),
        (lambda a: ps.GEARS(a).fit(lr_decay=2.0), "lr_decay must be a number in (0, 1], got 2.0"),
        (lambda a: ps.GEARS(a).fit(lr=1e-6), "lr must be above 1e-05, the rate below which"),
    ],
)
def test_wrong_input_is_one_line_naming_it(split_norman, call, message):
    with pytest.raises(PerturbsimError) as err:
        call(split_norman)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("query", "kind"), [(None, "NoneType"), ({"KLF1"}, "set"), ({"A": 1}, "dict")]
)
def test_predict_refuses_unordered_or_missing_queries(additive, query, kind):
    with pytest.raises(PerturbsimError, match=f"list of labels or gene lists .*got {kind}"):
        additive.predict(query)


def test_predict_reads_every_control_label_and_hints_at_case(additive, split_norman):
    for label in ("control", "Control", "non-targeting", "NT", "ctrl"):
        assert additive.predict([label]).obs_names.tolist() == ["ctrl"]
    with pytest.raises(PerturbsimError, match="did you mean 'KLF1' for 'klf1'"):
        additive.predict(["klf1"])
    with pytest.raises(PerturbsimError, match="adata must be an AnnData"):
        additive.sample("KLF1", split_norman.X)
    with pytest.raises(PerturbsimError, match="strict must be True or False, got 'no'"):
        additive.predict(["KLF1"], strict="no")
    with pytest.raises(PerturbsimError, match="skip_unknown must be True or False, got 1"):
        additive.predict_pairs(["KLF1", "MAP2K6"], skip_unknown=1)


def test_simulated_screens_bring_their_own_go_to_every_model():
    adata = ps.ds.simulate(size="tiny", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    ps.pp.split(adata, kind="simulation", seed=1)
    go = adata.uns["simulation"]["go"]
    assert ps.LinearGO(adata).go_annotations is go
    assert ps.GEARS(adata).go_annotations is go
    model = ps.Stacked(adata, seed=0).fit(max_epochs=2)  # no human GO gene: needs its own
    assert model.corrections["linear_go"].go_annotations is go
    result = ps.tl.evaluate(adata, models=["linear_go", "mean"], seeds=[1], replicate=False)
    assert set(result.scores["model"]) == {"linear_go", "mean"}


def test_predict_names_genes_joined_by_another_separator(additive):
    with pytest.raises(PerturbsimError) as err:
        additive.predict(["KLF1_MAP2K6"])
    assert str(err.value).endswith(
        "('KLF1_MAP2K6' looks like genes joined by '_': write 'KLF1+MAP2K6', a list of genes or "
        "sep='_')"
    )
    assert additive.predict(["KLF1_MAP2K6"], sep="_").obs_names.tolist() == ["KLF1+MAP2K6"]


def test_an_ensembl_id_is_pointed_to_the_gene_symbol(additive, split_norman):
    with pytest.raises(PerturbsimError) as err:
        additive.predict(["ENSG00000105610+KLF1"])  # KLF1's own ID, on a screen of symbols
    assert str(err.value).endswith(
        "('ENSG00000105610' looks like an Ensembl gene ID, and the model names its genes by "
        "symbol, as the screen's var_names: 'BPGM', 'CBL', ...; query the gene's symbol)"
    )
    # a screen measured by Ensembl IDs: an ID is no mistake there, so no such hint
    by_id = split_norman.copy()
    by_id.var_names = [f"ENSG{i:011d}" for i in range(by_id.n_vars)]
    model = ps.models.build_model("additive", by_id).fit()
    with pytest.raises(PerturbsimError) as err:
        model.predict(["ENSG99999999999+KLF1"])
    assert "Ensembl" not in str(err.value)


def test_a_control_guide_name_is_pointed_to_the_control_option(additive):
    with pytest.raises(PerturbsimError) as err:
        additive.predict(["NegCtrl"])
    assert str(err.value).endswith(
        "('NegCtrl' looks like a control label: pass control='NegCtrl' if it is the control's name)"
    )
    assert additive.predict(["NegCtrl"], control="NegCtrl").obs_names.tolist() == ["ctrl"]
    with pytest.raises(PerturbsimError) as err:  # no control= option there: left out
        additive.predict_pairs(["KLF1", "NegCtrl"])
    assert "('NegCtrl' looks like a control label, not a gene: leave it out)" in str(err.value)
    with pytest.raises(PerturbsimError) as err:  # nor sep=: written as genes
        additive.predict_pairs(["SLC38A2", "KLF1_MAP2K6"])
    assert "write 'KLF1+MAP2K6' or a list of genes)" in str(err.value)
    with pytest.raises(PerturbsimError) as err:  # CTRL is a gene: the typo is the fault
        additive.predict(["CTRL+KFL1"])
    assert str(err.value).endswith("(did you mean 'KLF1' for 'KFL1'?)")
    with pytest.raises(PerturbsimError) as err:  # two guides joined: one word twice
        additive.predict(["NegCtrl0_NegCtrl0"], sep="_")
    assert str(err.value).endswith(
        "gene 'NegCtrl0' appears twice (it looks like a control label: pass "
        "control='NegCtrl0_NegCtrl0' if it is the screen's)"
    )


def test_a_misspelt_perturbed_gene_is_named_with_the_gene_meant(additive):
    with pytest.raises(PerturbsimError, match=r"did you mean 'KLF1' for 'KFL1'\?\)"):
        additive.predict(["KFL1+MAP2K6"])
    with pytest.raises(PerturbsimError, match=r"KFL1 \(did you mean 'KLF1' for 'KFL1'\?\)"):
        additive.predict_pairs(["KFL1", "MAP2K6"])
    with pytest.raises(PerturbsimError, match=r"NOTAGENE1 \(never perturbed.*\)$"):
        additive.predict(["NOTAGENE1"])  # nothing close: no guess
    with pytest.raises(PerturbsimError, match="of KLF2") as err:
        additive.predict(["KLF2"])
    assert "did you mean" not in str(err.value)  # a human gene, not a misspelt KLF1
    assert additive._typo_hint(["KLF1X"]) == " (did you mean 'KLF1' for 'KLF1X'?)"  # no gene
    assert additive._typo_hint(["SLC38"]) == ""  # a short name inside SLC38A2: no misspelling


def test_a_control_label_in_another_case_is_named():
    adata = ps.ds.norman2019_subset()
    with pytest.raises(PerturbsimError, match=r"'CONTROL' not found.*did you mean 'control'\?"):
        ps.pp.setup(adata, perturbation_key="condition", control="CONTROL")


def test_sample_without_control_cells_says_so(additive, split_norman):
    perturbed = split_norman[split_norman.obs["perturbsim_condition"] != "ctrl"].copy()
    with pytest.raises(PerturbsimError, match="^adata has no control cells"):
        additive.sample(["KLF1"], perturbed, n_cells=2)


def test_strict_names_a_gene_it_cannot_predict_before_refusing_unsupported_ones(split_norman):
    model = ps.models.build_model("stacked_no_gears", split_norman, seed=0).fit()
    with pytest.raises(PerturbsimError, match="cannot predict perturbations of NOTAGENE1"):
        model.predict(["NOTAGENE1", "A2M"], strict=True)
    with pytest.raises(PerturbsimError, match="strict: 1 perturbation.*A2M") as err:
        model.predict(["A2M", "KLF1"], strict=True)
    assert str(err.value).endswith(
        "; leave it out, or predict it without strict=True (flagged unsupported)"
    )


def test_gi_scores_read_back_from_csv_still_plot(split_norman, tmp_path):
    profiles = ps.pp.measured_profiles(split_norman)
    scores = ps.tl.gi_scores(profiles, abundance=0.05)
    scores.to_csv(tmp_path / "gi.csv")
    again = pd.read_csv(tmp_path / "gi.csv", index_col=0)  # empty flags come back as NaN
    assert again["is_synergy"].isna().any()  # and the calls of the pairs not scored
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no downcasting of those columns
        ax = ps.pl.gi_map(again)
    assert len(ax.get_yticklabels()) == int((scores["flag"] == "").sum())


def test_design_reads_a_generator_as_the_list_it_yields(additive):
    listed = ps.tl.design(additive, ["KLF1", "MAP2K6"], budget=1, measured=["CBL"])
    generated = ps.tl.design(
        additive, (c for c in ["KLF1", "MAP2K6"]), budget=1, measured=(c for c in ["CBL"])
    )
    pd.testing.assert_frame_equal(generated, listed)


def test_design_proposes_singles_known_only_from_pairs(split_norman):
    model = ps.Stacked(split_norman, seed=0).fit()
    inferred = sorted(model.inferred)  # measured only in pairs; singles inferred
    assert inferred and not set(inferred) & set(ps.tl.measured_conditions(model))
    ranked = ps.tl.design(model, inferred, budget=len(inferred), strategy="coverage")
    assert sorted(ranked["perturbation"]) == inferred


def test_whole_numbers_are_counts_in_any_numeric_type(norman):
    import numpy as np

    from perturbsim._checks import check_count

    assert [check_count("n", v) for v in (3, np.int64(3), 3.0, np.float64(3.0))] == [3] * 4
    for bad, shown in ((2.5, "2.5"), (np.int64(0), "0"), (float("nan"), "nan"), (True, "True")):
        with pytest.raises(ps.PerturbsimError, match=rf"must be a whole number >= 1, got {shown}$"):
            check_count("n", bad)
    stats = ps.pp.compute_pseudobulk(norman)
    assert ps.graphs.coexpression_graph(stats, top_k=5.0).n_edges == (
        ps.graphs.coexpression_graph(stats, top_k=5).n_edges
    )
    ps.pp.rank_de(norman, n_genes=np.float64(5.0))
    assert len(ps.pp.DEGenes.from_adata(norman).top_genes("KLF1")) == 5


def _screen_with(**changes):
    """The bundled screen with some of its parts replaced (before setup)."""
    adata = ps.ds.norman2019_subset()
    for name, value in changes.items():
        setattr(adata, name, value)
    return adata


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda a: ps.Stacked(a, hiden=8),
            "Stacked has no option 'hiden'; did you mean 'hidden'? (its own: ",
        ),
        (
            lambda a: ps.models.build_model("mean", a, n_components=3),
            "model 'mean' has no option 'n_components' (its options: seed)",
        ),
        (lambda a: GRN(a, ridge=float("nan")), "ridge must be a finite number > 0, got nan"),
        (lambda a: GRN(a, ridge=0), "ridge must be a finite number > 0, got 0"),
        (lambda a: GRN(a, n_steps=2.5), "n_steps must be a whole number >= 1 and <= 100, got 2.5"),
        (lambda a: GRN(a, default_step="x"), "default_step must be a finite number, got 'x'"),
        (lambda a: GRN(a, ridge=10**400), "ridge must be a finite number > 0, got 1000"),
        (lambda a: GRN(a, default_step=-(10**400)), "default_step must be a finite number, got"),
        (lambda a: GRN(a, regulators="G0001"), "regulators must be a list of genes, got the str"),
        (
            lambda a: ps.Stacked(a, partial_linear=False),
            "partial_linear=False given with partial_sum=True:",
        ),
        (
            lambda a: ps.Stacked(a, corrections=None),
            "corrections must be a list of correction names",
        ),
        (
            lambda a: ps.models.build_model("linear", a, n_componentz=8),
            "model 'linear' has no option 'n_componentz' (its options: n_components, ridge, ",
        ),
        (lambda a: ps.Additive(a).save("never"), "additive is not fitted: nothing to save"),
        (
            lambda a: ps.pp.setup(_screen_with(X=np.full(a.shape, "x", dtype=object))),
            "adata.X is not numeric (dtype object)",
        ),
        (
            lambda a: ps.pp.setup(_screen_with(X=np.ones(a.shape, dtype=complex))),
            "adata.X holds complex numbers (dtype complex128), not expression",
        ),
        (
            lambda a: ps.pp.setup(_screen_with(X=sparse.csr_matrix(a.shape))),
            "adata.X holds no non-zero value: the screen measured nothing",
        ),
        (
            lambda a: ps.pp.setup(_screen_with(X=np.zeros(a.shape)), normalize=True),
            "adata.X holds no non-zero value",
        ),
        (
            lambda a: ps.pp.rank_de(a, key_added="split"),
            "key_added must name a new entry of .uns['perturbsim'] (default 'de'), not "
            "'split', which setup, split or pseudobulk writes",
        ),
        (lambda a: ps.pp.setup(a[:0].copy()), "empty AnnData: 0 cells x 500 genes"),
        (
            lambda a: ps.pp.setup(_screen_with(var=pd.DataFrame(index=["", *a.var_names[1:]]))),
            "1 empty gene names in var_names",
        ),
        (
            lambda a: ps.pp.parse_label("KLF1", sep=""),
            "separator must be a non-empty string, got ''",
        ),
        (
            lambda a: ps.pp.setup(a.copy(), gene_symbols=True),
            "gene_symbols must be a column of adata.var, None or False",
        ),
        (lambda a: GRN(a, regulators=0), "regulators must be a list of genes, got 0"),
        (
            lambda a: ps.pp.canonical_label("KLF1"),
            "genes must be a list of genes, got the string 'KLF1'",
        ),
        (lambda a: ps.pp.canonical_label(["B", ""]), "genes holds an empty name: ['', 'B']"),
        (
            lambda a: ps.graphs.with_isolated_nodes(_chain(), "KLF1"),
            "genes must be a list of genes, got the string 'KLF1'",
        ),
        (
            lambda a: ps.graphs.reached_nodes(_chain(), ["C"], hops=-1),
            "hops must be a whole number >= 0, got -1",
        ),
        (
            lambda a: ps.GEARS(a).fit(train_conditions=["ctrl"]),
            "no perturbed training conditions: the split, or the train_conditions given to fit,",
        ),
        (
            lambda a: ps.TrainMean(a).fit(train_conditions=[]),
            "no perturbed training conditions: the split, or the train_conditions given to fit,",
        ),
        (lambda a: ps.tl.design("x", budget=2), "model must be a fitted perturbsim model"),
        (lambda a: ps.tl.measured_conditions(ps.TrainMean(a)), "mean is not fitted"),
        (lambda a: ps.TrainMean(a).fit().check_genes_of(a.X), "adata must be an AnnData"),
        (lambda a: ps.io.write_report("x", "out"), "result must be what perturbsim.tl.evaluate"),
        (lambda a: ps.graphs.coexpression_graph(a), "stats must be statistics of a screen"),
        (lambda a: ps.pp.rank_de(a.copy(), stats="x"), "stats must be statistics of a screen"),
        (lambda a: ps.tl.gi_per_gene("x"), "profiles must be an AnnData (conditions x genes)"),
        (lambda a: ps.pp.genes_of(5), "condition must be a label such as 'KLF1+MAP2K6', got int"),
        (lambda a: ps.tl.gi_scores(_pairs(a)[:0]), "profiles has no rows: nothing to score"),
        (lambda a: ps.tl.gi_scores(_pairs(a), n_de=0), "n_de must map pairs to their DE gene"),
        (
            lambda a: ps.tl.gi_scores(_pairs(a), control_mean="x"),
            "control_mean must be numbers, one per gene, got 'x'",
        ),
        (
            lambda a: ps.tl.gi_scores(_pairs(a), control_mean=np.full(a.n_vars, np.nan)),
            "control_mean holds 500 NaN or infinite values",
        ),
        (
            lambda a: ps.tl.evaluate(a, models=["mean"], split_kwargs={"seed": 3}),
            "split_kwargs cannot give seed, which evaluate sets itself (split=, seeds=); it takes",
        ),
        (
            lambda a: ps.tl.evaluate(a, models=["mean"], split_kwargs={"test_fraction": 0.3}),
            "split_kwargs cannot give test_fraction, which perturbsim.pp.split does not take",
        ),
        (
            lambda a: ps.tl.evaluate(a, models=["mean"], model_kwargs={"mean": 3}),
            "model_kwargs must map model names to dicts of their options",
        ),
        (lambda a: ps.TrainMean(a).fit().save(None), "path must be a path (a str or os.PathLike)"),
        (lambda a: ps.ds.read(""), "path must be a path (a str or os.PathLike), got ''"),
        (
            lambda a: ps.pp.split(a.copy(), kind="custom", test_conditions=["FOXO44"]),
            "test condition 'FOXO44' is not a condition of the screen; did you mean 'FOXO4'?",
        ),
        (
            lambda a: ps.pp.split(a.copy(), kind="custom", test_conditions=["map2k6+klf1"]),
            "did you mean 'KLF1+MAP2K6'? (labels are case-sensitive)",
        ),
    ],
)
def test_untried_inputs_are_one_line_naming_them(split_norman, call, message):
    with pytest.raises(PerturbsimError) as err:
        call(split_norman)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_model_directory_that_is_incomplete_or_of_another_model_is_refused(additive, tmp_path):
    additive.save(tmp_path / "additive")
    with pytest.raises(PerturbsimError, match=r"holds a additive model, not linear$"):
        ps.Linear.load(tmp_path / "additive")
    (tmp_path / "additive" / "weights.safetensors").unlink()
    with pytest.raises(PerturbsimError, match=r"additive' lacks weights.safetensors$"):
        ps.PerturbationModel.load(tmp_path / "additive")


def test_a_screen_subset_after_its_split_is_told_to_split_again(split_norman):
    train = [c for c in split_norman.uns["perturbsim"]["split"]["train"] if c != "ctrl"]
    subset = split_norman[split_norman.obs["perturbsim_condition"] != train[0]].copy()
    with pytest.raises(
        PerturbsimError, match=rf"split names 1 condition no longer in adata \({train[0]};"
    ):
        ps.Additive(subset).fit()
    ps.pp.split(subset, kind="simulation", seed=1)  # as the error says
    assert train[0] not in ps.Additive(subset).fit().fitted_conditions


def test_a_model_saved_where_no_folder_can_be_made_says_so(additive, tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    with pytest.raises(PerturbsimError, match=r"cannot write a model to '.*notes.txt/model': "):
        additive.save(tmp_path / "notes.txt" / "model")
    with pytest.raises(PerturbsimError, match="n_cells must be whole numbers >= 1, got '10'"):
        additive.sample("KLF1", ps.ds.norman2019_subset(), n_cells="10")


def test_sampling_more_cells_than_memory_holds_says_so(additive, split_norman, monkeypatch):
    real_empty = np.empty

    def refuse_large(shape, *args, **kwargs):
        if isinstance(shape, tuple) and shape[0] >= 1000:  # as a machine out of memory would
            raise MemoryError
        return real_empty(shape, *args, **kwargs)

    monkeypatch.setattr(np, "empty", refuse_large)
    with pytest.raises(
        PerturbsimError, match=r"n_cells asks for 2,000 cells x 500 genes \(0.0 GiB"
    ):
        additive.sample(["KLF1", "MAP2K6"], split_norman, n_cells=1000)
    assert additive.sample(["KLF1"], split_norman, n_cells=3).shape == (3, 500)


def test_a_set_larger_than_any_fitted_condition_is_named(additive, caplog):
    with caplog.at_level("WARNING", logger="perturbsim"):
        pred = additive.predict(["HK2+KLF1+MAP2K6", "KLF1+MAP2K6"])
    assert pred.n_obs == 2  # predicted all the same, as the singles summed
    (warning,) = [r.getMessage() for r in caplog.records if "more genes than any" in r.getMessage()]
    assert warning.startswith("1 prediction is of a set of more genes than any condition the")
    assert warning.endswith("(at most 2), combined as it learnt to combine fewer: HK2+KLF1+MAP2K6")


def test_sampled_cells_and_pair_maps_of_larger_sets_are_named_too(split_norman, caplog):
    singles = [c for c in ps.pp.Split.from_adata(split_norman).train if c.count("+") == 0]
    model = ps.TrainMean(split_norman).fit(train_conditions=singles)  # never saw a pair
    with caplog.at_level("WARNING", logger="perturbsim"):
        model.sample(["KLF1+MAP2K6"], split_norman, n_cells=2)
    assert "1 prediction is of a set of more genes than any condition" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"):
        model.predict_pairs(["KLF1", "MAP2K6", "HK2"])
    assert "3 predictions are of sets of more genes than any condition" in caplog.text


def test_seeds_as_a_numpy_count_and_a_whole_float_seed_are_read_as_numbers():
    from perturbsim._settings import resolve_seed, resolve_seeds

    assert resolve_seeds(np.array(3), first=1) == [1, 2, 3]
    assert resolve_seeds(np.int64(2), first=0) == [0, 1]
    assert resolve_seed(3.0) == 3  # as settings.seed takes it


def test_a_file_behind_a_folder_that_cannot_be_entered_is_one_line(tmp_path, monkeypatch):
    from pathlib import Path

    def no_entry(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_file", no_entry)  # as for a user without rights on the folder
    with pytest.raises(PerturbsimError, match=r"^cannot read file '.*x.h5ad': Permission denied$"):
        ps.ds.read(tmp_path / "locked" / "x.h5ad")


def test_a_folder_of_results_given_as_a_model_says_what_it_is(tmp_path):
    (tmp_path / "settings.json").write_text("{}")  # as evaluate's report folder holds
    with pytest.raises(PerturbsimError, match=r"lacks config.json \(it holds results, not a model"):
        ps.PerturbationModel.load(tmp_path)


def test_a_screen_not_set_up_or_with_its_labels_rewritten_is_told_to_set_up(split_norman):
    import anndata as ad

    raw = ad.AnnData(
        split_norman.X.copy(), obs=split_norman.obs[["condition"]].copy(), var=split_norman.var[[]]
    )
    prediction = ps.Additive(split_norman).fit().predict("KLF1")
    with pytest.raises(PerturbsimError, match=r"\(a screen of cells\? set it up first"):
        ps.tl.score(prediction, raw)
    rewritten = split_norman.copy()
    rewritten.obs["perturbsim_condition"] = rewritten.obs["perturbsim_condition"].astype(str)
    with pytest.raises(PerturbsimError, match="is no longer categorical, as setup wrote it"):
        ps.pp.pseudobulk(rewritten)


@pytest.mark.parametrize(
    ("flag", "call"),
    [
        ("copy", lambda a, m, t: ps.pp.pseudobulk(a.copy(), copy="no")),
        ("copy", lambda a, m, t: ps.pp.rank_de(a.copy(), copy="no")),
        ("copy", lambda a, m, t: ps.pp.split(a.copy(), copy="False")),
        ("normalize", lambda a, m, t: ps.pp.setup(a.copy(), normalize="False")),
        (
            "exclude_targets",
            lambda a, m, t: ps.tl.evaluate(a, models=["mean"], exclude_targets="no"),
        ),
        ("replicate", lambda a, m, t: ps.tl.evaluate(a, models=["mean"], replicate="no")),
        ("gi", lambda a, m, t: ps.tl.evaluate(a, models=["mean"], gi="no")),
        (
            "exclude_targets",
            lambda a, m, t: ps.tl.gi_scores(m.predict(["KLF1"]), exclude_targets="0"),
        ),
        (
            "exclude_targets",
            lambda a, m, t: ps.tl.score(m.predict(["KLF1"]), a, exclude_targets="no"),
        ),
        ("backed", lambda a, m, t: ps.ds.read(_bundled_file(), control="control", backed="no")),
        ("overwrite", lambda a, m, t: (m.save(t / "m"), m.save(t / "m", overwrite="no"))),
        ("overwrite", lambda a, m, t: ps.io.export_cell_eval(m, a, t / "e", overwrite="no")),
    ],
)
def test_an_on_off_argument_given_as_text_is_refused_not_read_as_true(
    split_norman, additive, tmp_path, flag, call
):
    # backed also takes anndata's 'r' (read-only)
    expected = rf"^{flag} must be True(,| or) False( or 'r' \(read-only\))?, got '"
    with pytest.raises(PerturbsimError, match=expected) as err:
        call(split_norman, additive, tmp_path)
    assert "\n" not in str(err.value)


def _bundled_file():
    from perturbsim.ds._paths import bundled_path

    return bundled_path("norman2019_subset.h5ad")


def _chain() -> ps.graphs.GeneGraph:
    return ps.graphs.GeneGraph(nodes=["A", "B", "C"], src=[0, 1], dst=[1, 2], weight=[1, 1])


def _pairs(adata):
    return ps.Additive(adata).fit().predict_pairs(["KLF1", "MAP2K6", "SLC38A2"], gi=False)


def test_results_written_under_a_file_are_one_line_naming_it(split_norman, additive, tmp_path):
    (tmp_path / "file").write_text("")
    result = ps.tl.evaluate(split_norman, models=["mean"], seeds=1)
    with pytest.raises(PerturbsimError, match=r"cannot write results to '.*file/sub'"):
        result.write(tmp_path / "file" / "sub")
    with pytest.raises(PerturbsimError, match=r"cannot export into '.*file/sub': '.*file' is a"):
        ps.io.export_cell_eval(additive, split_norman, tmp_path / "file" / "sub")


def test_what_the_checks_must_still_accept(split_norman):
    # a model that needs only the control fits on it alone
    assert ps.models.build_model("no_perturb", split_norman).fit(train_conditions=["ctrl"])
    # count_de's Series as n_de; names as any collection; numpy bools as flags
    stats = ps.pp.compute_pseudobulk(split_norman, coexpression="none")
    profiles = ps.pp.measured_profiles(split_norman)
    n_de = ps.pp.count_de(stats, [c for c in profiles.obs_names if "+" in c])
    scores = ps.tl.gi_scores(profiles, n_de=n_de, exclude_targets=np.True_)
    assert scores["n_de"].notna().all()
    assert ps.pp.canonical_label(np.array(["MAP2K6", "KLF1"])) == "KLF1+MAP2K6"
    assert ps.pp.canonical_label(g for g in ("B", "A")) == "A+B"


def test_a_missing_combination_is_offered_only_combinations_sharing_a_gene(split_norman):
    conditions = set(split_norman.obs["perturbsim_condition"].astype(str))
    singles = sorted(c for c in conditions if c != "ctrl" and "+" not in c)
    missing = next(
        f"{a}+{b}" for a in singles for b in singles if a < b and f"{a}+{b}" not in conditions
    )
    with pytest.raises(PerturbsimError, match="is not a condition of the screen") as error:
        ps.pp.split(split_norman.copy(), kind="custom", test_conditions=[missing])
    a, b = missing.split("+")
    assert str(error.value).endswith(f"; the screen perturbs {a} and {b} alone, not together")
    unmeasured = f"{a}+NOTAGENE"  # offered only a pair sharing a gene with it, if any
    with pytest.raises(PerturbsimError, match="is not a condition of the screen") as error:
        ps.pp.split(split_norman.copy(), kind="custom", test_conditions=[unmeasured])
    offered = re.findall(r"did you mean '([^']+)'", str(error.value))
    assert all(len(o.split("+")) == 2 and a in o.split("+") for o in offered)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda c: c.check_edge_threshold("go_threshold", 1.0), "go_threshold must be below 1"),
        (lambda c: c.check_fraction("val_fraction", 1.0), r"must lie in \(0, 1\), got 1.0"),
        (lambda c: c.check_fraction("f", 1, allow_zero=True), r"must lie in \[0, 1\), got 1"),
        (lambda c: c.as_path("out_dir", "res\x00ults"), "out_dir holds a NUL character"),
        (
            lambda c: c.checked_table(
                pd.DataFrame({"mean": [True]}), ["mean"], "s", numeric=["mean"]
            ),
            "s's column 'mean' must hold numbers, got True",
        ),
        (
            lambda c: c.gene_selection(
                pd.Series([True, False, True], index=["A", "B", "A"]), ["A", "B"], "g"
            ),
            "its index repeats genes",
        ),
        (
            lambda c: c.gene_selection(np.array([True, False, True]), ["A", "B"], "g"),
            r"one value per gene of g \(2\), got shape \(3,\)",
        ),
        (
            lambda c: c.check_list("genes", np.array("KLF1"), "genes"),
            "genes must be a list of genes, got",
        ),
        (lambda c: c.check_count("seeds", 2.5), "seeds must be a whole number >= 1, got 2.5"),
        (lambda c: c.check_finite("gamma", True), "gamma must be a finite number, got True"),
        (lambda c: c.check_positive("ridge", False), "ridge must be a finite number > 0"),
    ],
)
def test_argument_checks_refuse_values_at_and_past_their_bounds(check, message):
    from perturbsim import _checks

    with pytest.raises(PerturbsimError, match=message):
        check(_checks)


def test_argument_checks_take_numpy_flags_and_values_just_inside_their_bounds():
    from perturbsim import _checks

    assert _checks.check_flag("denoise", np.bool_(True)) is True
    assert _checks.check_edge_threshold("go_threshold", 0.999) == 0.999
    assert _checks.check_fraction("val_fraction", 0.999) == 0.999
    assert _checks.check_count("seeds", 3.0) == 3
