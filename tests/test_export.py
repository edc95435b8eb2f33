from __future__ import annotations

import copy
import json
import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import make_screen
from scipy import sparse

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim._errors import counted
from perturbsim._keys import CELL_EVAL_CONTROL, CELL_EVAL_PERT_COL, CONDITION
from perturbsim.cli import main

MEAN_TOLERANCE = 1e-5
"""Sampled per-gene means equal predicted means to float32 rounding."""


@pytest.fixture
def split_tiny(tiny):
    ps.pp.split(tiny, kind="simulation", seed=1)
    return tiny


@pytest.fixture(scope="module")
def gears(_tiny_cached):
    adata = _tiny_cached.copy()
    ps.pp.split(adata, kind="simulation", seed=1)
    return ps.GEARS(adata, seed=0, go_annotations=adata.uns["simulation"]["go"]).fit(max_epochs=2)


def _test_conditions(adata) -> list[str]:
    return ps.pp.Split.from_adata(adata).test


def _means(cells: ad.AnnData, labels: list[str], key: str = "perturbation") -> np.ndarray:
    x = cells.X.toarray() if sparse.issparse(cells.X) else cells.X
    perturbation = cells.obs[key].astype(str).to_numpy()
    return np.vstack([x[perturbation == label].mean(axis=0) for label in labels])


def _control(adata) -> np.ndarray:
    return adata[adata.obs["perturbsim_condition"] == "ctrl"].X.toarray()


def test_sampled_means_equal_predicted_means_on_sparse_and_dense_x(gears, split_tiny):
    labels = [*_test_conditions(split_tiny), "ctrl"]
    dense = split_tiny.copy()
    dense.X = dense.X.toarray()
    cells = gears.sample(labels, split_tiny, n_cells=40, seed=3)
    assert cells.shape == (40 * len(labels), split_tiny.n_vars)
    assert cells.X.dtype == np.float32 and (cells.X >= 0).all()
    # the screen's genes with their annotations, and the model named, as predict() does
    annotated = split_tiny.copy()
    annotated.var["symbol"] = [f"S{i}" for i in range(annotated.n_vars)]
    named = gears.sample(labels[:1], annotated, n_cells=2, seed=3)
    pd.testing.assert_frame_equal(named.var, annotated.var)
    assert cells.uns["perturbsim"] == gears.predict(labels).uns["perturbsim"]
    np.testing.assert_allclose(
        _means(cells, labels), gears.predict(labels).X, rtol=0, atol=MEAN_TOLERANCE
    )
    np.testing.assert_array_equal(gears.sample(labels, dense, n_cells=40, seed=3).X, cells.X)


def test_sampling_is_deterministic_under_its_seed(gears, split_tiny):
    labels = _test_conditions(split_tiny)
    cells = gears.sample(labels, split_tiny, n_cells=20, seed=0)
    np.testing.assert_array_equal(gears.sample(labels, split_tiny, n_cells=20, seed=0).X, cells.X)
    assert not np.array_equal(gears.sample(labels, split_tiny, n_cells=20, seed=1).X, cells.X)


def test_sampled_cells_keep_the_zeros_a_constant_shift_would_fill(gears, split_tiny):
    labels = _test_conditions(split_tiny)
    control = _control(split_tiny)
    cells = gears.sample(labels, split_tiny, n_cells=50, seed=0)
    shifted = control[:50] + gears.predict(labels).layers["delta"][:, None, :]
    zeros = (control == 0).mean()
    assert (np.clip(shifted, 0, None) == 0).mean() < zeros / 2  # the shift fills most zeros
    assert abs((cells.X == 0).mean() - zeros) < 0.1


def test_a_gene_rising_from_zero_gets_positive_cells_and_a_gene_at_zero_stays_zero():
    adata = make_screen(["control", "G1", "G2"], cells=20, sparse_x=False)
    control = (adata.obs["condition"] == "control").to_numpy()
    adata.X[control, 5] = 0  # G5: never detected in control, expressed after G1 and G2
    adata.X[:, 6] = 0  # G6: never detected anywhere
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    model = ps.TrainMean(adata).fit()
    cells = model.sample("G1", adata, n_cells=30, seed=0)
    predicted = model.predict("G1").X[0]
    assert predicted[5] > 0 and predicted[6] == 0
    assert 0 < (cells.X[:, 5] > 0).sum() < 30  # some zeros turn positive, not all
    assert (cells.X[:, 6] == 0).all()
    np.testing.assert_allclose(cells.X.mean(axis=0), predicted, rtol=0, atol=MEAN_TOLERANCE)


def test_n_cells_per_perturbation_and_its_errors(gears, split_tiny):
    labels = _test_conditions(split_tiny)[:2]
    cells = gears.sample(labels, split_tiny, n_cells=[3, 5], seed=0)
    assert cells.obs["perturbation"].astype(str).tolist() == [labels[0]] * 3 + [labels[1]] * 5
    with pytest.raises(PerturbsimError, match="gives 1 counts for 2 distinct perturbations"):
        gears.sample(labels, split_tiny, n_cells=[3])
    with pytest.raises(PerturbsimError, match="n_cells must be whole numbers >= 1"):
        gears.sample(labels, split_tiny, n_cells=0)


def test_export_writes_what_cell_eval_reads(gears, split_tiny, tmp_path):
    annotated = split_tiny.copy()
    annotated.var["ensembl_id"] = [f"ENSG{i:011d}" for i in range(annotated.n_vars)]
    pred_path, real_path = ps.io.export_cell_eval(gears, annotated, tmp_path / "out", seed=0)
    assert (pred_path.name, real_path.name) == ("pred.h5ad", "real.h5ad")
    pred, real = ad.read_h5ad(pred_path), ad.read_h5ad(real_path)
    labels = _test_conditions(split_tiny)
    codes = split_tiny.obs["perturbsim_condition"].astype(str).to_numpy()
    for cells in (pred, real):
        pd.testing.assert_frame_equal(cells.var, annotated.var)  # the genes' annotations kept
        assert set(cells.obs[CELL_EVAL_PERT_COL]) == {CELL_EVAL_CONTROL, *labels}
        for label in labels:  # as many predicted cells as measured ones
            assert (cells.obs[CELL_EVAL_PERT_COL] == label).sum() == (codes == label).sum()
        control = cells[cells.obs[CELL_EVAL_PERT_COL] == CELL_EVAL_CONTROL]
        np.testing.assert_array_equal(control.X.toarray(), _control(split_tiny))
    measured = real[real.obs[CELL_EVAL_PERT_COL] == labels[0]].X.toarray()
    np.testing.assert_array_equal(measured, split_tiny[codes == labels[0]].X.toarray())
    np.testing.assert_allclose(
        _means(pred, labels, CELL_EVAL_PERT_COL),
        gears.predict(labels).X,
        rtol=0,
        atol=MEAN_TOLERANCE,
    )
    mixed = annotated.copy()  # a column h5ad cannot hold: left out, said, the rest written
    mixed.var["chrom"] = [1 if i % 2 else "X" for i in range(mixed.n_vars)]
    pred_path, _ = ps.io.export_cell_eval(gears, mixed, tmp_path / "mixed", seed=0)
    assert list(ad.read_h5ad(pred_path).var.columns) == list(annotated.var.columns)


def test_export_of_chosen_conditions_and_cell_count_from_dense_x(gears, split_tiny, tmp_path):
    split_tiny.X = split_tiny.X.toarray()
    pred_path, real_path = ps.io.export_cell_eval(
        gears, split_tiny, tmp_path, conditions=["G0030", "G0026+G0024"], n_cells=7
    )
    pred, real = ad.read_h5ad(pred_path), ad.read_h5ad(real_path)
    assert isinstance(pred.X, np.ndarray) and isinstance(real.X, np.ndarray)
    expected = {CELL_EVAL_CONTROL, "G0030", "G0024+G0026"}  # canonical labels
    assert set(pred.obs[CELL_EVAL_PERT_COL]) == set(real.obs[CELL_EVAL_PERT_COL]) == expected
    assert (pred.obs[CELL_EVAL_PERT_COL] == "G0030").sum() == 7
    with pytest.raises(PerturbsimError, match="pred.h5ad' already exists; pass overwrite=True"):
        ps.io.export_cell_eval(gears, split_tiny, tmp_path, conditions=["G0030"])
    ps.io.export_cell_eval(gears, split_tiny, tmp_path, conditions=["G0030"], overwrite=True)
    assert set(ad.read_h5ad(real_path).obs[CELL_EVAL_PERT_COL]) == {CELL_EVAL_CONTROL, "G0030"}
    pred_path.unlink()
    pred_path.mkdir()  # a folder in the way: refused before any work, not after the cells
    with pytest.raises(PerturbsimError, match="pred.h5ad' is a folder, where the export writes"):
        ps.io.export_cell_eval(gears, split_tiny, tmp_path, conditions=["G0030"], overwrite=True)


def test_conditions_of_few_cells_are_left_out_of_the_export_unless_asked(
    gears, split_tiny, tmp_path, caplog
):
    codes = split_tiny.obs["perturbsim_condition"].astype(str).to_numpy()
    keep = np.ones(split_tiny.n_obs, dtype=bool)
    keep[np.flatnonzero(codes == "G0030")[2:]] = False  # G0030 keeps 2 cells
    few = split_tiny[keep].copy()
    chosen = ["G0030", "G0026+G0024"]
    with caplog.at_level("WARNING", logger="perturbsim.io._export"):
        _, real_path = ps.io.export_cell_eval(gears, few, tmp_path / "a", conditions=chosen)
    assert "left out 1 condition of fewer than 4 cells (min_cells): G0030" in caplog.text
    assert "G0030" not in set(ad.read_h5ad(real_path).obs[CELL_EVAL_PERT_COL])
    pred, every = ps.io.export_cell_eval(gears, few, tmp_path / "b", conditions=chosen, min_cells=1)
    assert (ad.read_h5ad(every).obs[CELL_EVAL_PERT_COL] == "G0030").sum() == 2
    # each condition predicted as many cells as were measured of it (2 and 30)
    sizes = [ad.read_h5ad(p).obs[CELL_EVAL_PERT_COL].value_counts() for p in (pred, every)]
    assert sizes[0].to_dict() == sizes[1].to_dict() and sizes[1]["G0030"] == 2
    # at min_cells exactly, a condition is exported, unwarned
    keep[np.flatnonzero(codes == "G0030")[2:4]] = True  # G0030 keeps 4 cells
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim.io._export"):
        _, four = ps.io.export_cell_eval(
            gears, split_tiny[keep].copy(), tmp_path / "d", conditions=chosen
        )
    assert (ad.read_h5ad(four).obs[CELL_EVAL_PERT_COL] == "G0030").sum() == 4
    assert "left out" not in caplog.text
    with pytest.raises(PerturbsimError, match="every condition to export has fewer than 4 cells"):
        ps.io.export_cell_eval(gears, few, tmp_path / "c", conditions=["G0030"])


def test_a_failed_export_replaces_neither_file(gears, split_tiny, tmp_path, monkeypatch):
    first = ps.io.export_cell_eval(gears, split_tiny, tmp_path, conditions=["G0030"])
    before = [path.read_bytes() for path in first]
    write = ad.AnnData.write_h5ad

    def full_disk_on_real(self, filename, **kwargs):  # the second file's write fails
        if ".real.h5ad." in str(filename):
            raise OSError("No space left on device")
        return write(self, filename, **kwargs)

    monkeypatch.setattr(ad.AnnData, "write_h5ad", full_disk_on_real)
    with pytest.raises(OSError, match="No space left"):
        ps.io.export_cell_eval(
            gears, split_tiny, tmp_path, conditions=["G0026+G0024"], overwrite=True
        )
    assert [path.read_bytes() for path in first] == before  # pred.h5ad too stays the first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.h5ad", "real.h5ad"]


def test_an_out_dir_that_is_a_file_is_a_one_line_error(gears, split_tiny, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(PerturbsimError) as err:
        ps.io.export_cell_eval(gears, split_tiny, afile, conditions=["G0030"])
    assert str(err.value) == f"{str(afile)!r} is a file, not a folder to export into"


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        (["G0030", "NOTAGENE"], "condition 'NOTAGENE' has no cells in adata"),
        (["ctrl"], "ctrl is exported with every condition"),
        ([], "no perturbations given"),
    ],
)
def test_bad_conditions_are_one_line_errors(gears, split_tiny, tmp_path, conditions, message):
    with pytest.raises(PerturbsimError, match=message):
        ps.io.export_cell_eval(gears, split_tiny, tmp_path, conditions=conditions)
    assert not any(tmp_path.iterdir())


def test_export_errors_name_the_mismatch(gears, split_tiny, _tiny_cached, tmp_path):
    with pytest.raises(PerturbsimError, match=r"genes of adata \(10\) do not match"):
        ps.io.export_cell_eval(gears, split_tiny[:, :10].copy(), tmp_path)
    unsplit = _tiny_cached.copy()  # no split: the conditions the model's fit held out
    _, real = ps.io.export_cell_eval(gears, unsplit, tmp_path / "unsplit")
    exported = set(ad.read_h5ad(real).obs["target_gene"].astype(str)) - {"non-targeting"}
    assert exported == set(gears.held_out_conditions) == set(_test_conditions(split_tiny))
    without = unsplit[unsplit.obs["perturbsim_condition"] != gears.held_out_conditions[0]].copy()
    with pytest.raises(PerturbsimError, match="one of the .* conditions the model's fit held out"):
        ps.io.export_cell_eval(gears, without, tmp_path / "without")
    forgotten = copy.copy(gears)
    forgotten.fitted_conditions = None  # as saved before perturbsim recorded them
    with pytest.raises(PerturbsimError, match="no split in adata, and the model does not record"):
        ps.io.export_cell_eval(forgotten, unsplit, tmp_path / "forgotten")
    additive = ps.models.build_model("additive", split_tiny).fit()
    with pytest.raises(PerturbsimError, match="'additive' cannot predict condition 'G0030'"):
        ps.io.export_cell_eval(additive, split_tiny, tmp_path)


def test_cli_export_writes_both_files_and_reports_errors_in_one_line(capsys, tiny, tmp_path):
    screen = ad.AnnData(X=tiny.X, obs=tiny.obs[["condition"]].astype(str), var=tiny.var[[]])
    data = str(tmp_path / "screen.h5ad")
    screen.write_h5ad(data)
    model = str(tmp_path / "model")
    assert main(["train", data, "--out", model, "--control", "control", "--model", "mean"]) == 0
    out = tmp_path / "export"
    assert main(["export", model, data, "--control", "control", "--out", str(out)]) == 0
    assert "cell-eval run -ap" in capsys.readouterr().out
    assert (out / "pred.h5ad").is_file() and (out / "real.h5ad").is_file()
    again = ["export", model, data, "--control", "control", "--out", str(out)]
    assert main(again) == 2  # an earlier export is replaced only with --overwrite
    assert "pred.h5ad' already exists; pass --overwrite" in capsys.readouterr().err
    assert main([*again, "--overwrite", "--split", "combo", "--seed", "-1"]) == 2
    assert "--seed must be a whole number >= 0 and < 2**32, got -1" in capsys.readouterr().err
    screen[:, :10].copy().write_h5ad(data)
    assert main([*again, "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "the genes of the file (10) do not match the model's (70; 10" in err
    assert "10 shared; the model's G" in err and "and 57 more missing)" in err
    # another screen (none of the model's genes nor conditions): its genes are named first
    other = screen.copy()
    other.var_names = [f"OTHER{i}" for i in range(other.n_vars)]
    labels = other.obs["condition"].astype(str)
    other.obs["condition"] = labels.where(labels == "control", "Q" + labels)
    other.write_h5ad(data)
    assert main([*again, "--overwrite"]) == 2
    assert (
        "genes of the file (70) do not match the model's (70; 0 shared" in capsys.readouterr().err
    )
    # the model's genes in another order: exported in the model's (as a Python user is told)
    screen[:, ::-1].copy().write_h5ad(data)
    assert main([*again, "--overwrite"]) == 0
    genes = ps.PerturbationModel.load(model).genes
    assert list(ad.read_h5ad(out / "real.h5ad").var_names) == list(genes)
    assert list(ad.read_h5ad(out / "pred.h5ad").var_names) == list(genes)
    capsys.readouterr()

    beside = tmp_path / "beside"  # the screen read is never written over, --overwrite or not
    beside.mkdir()
    read = str(beside / "real.h5ad")
    screen.write_h5ad(read)
    args = ["export", model, read, "--control", "control", "--out", str(beside), "--overwrite"]
    assert main(args) == 2
    assert "would write over or into" in capsys.readouterr().err
    assert ad.read_h5ad(read).n_obs == screen.n_obs


def test_cli_export_counts_the_conditions_it_wrote(capsys, caplog, tiny, tmp_path):
    screen = ad.AnnData(X=tiny.X, obs=tiny.obs[["condition"]].astype(str), var=tiny.var[[]])
    labelled = screen.copy()
    ps.pp.setup(labelled, perturbation_key="condition", control="control")
    ps.pp.split(labelled, kind="combo", seed=2)
    test = [str(c) for c in labelled.uns["perturbsim"]["split"]["test"]]
    few = test[0]  # a held-out condition left with 5 cells: under --min-cells 10
    rows = np.flatnonzero(labelled.obs[CONDITION].astype(str).to_numpy() == few)
    screen = screen[np.setdiff1d(np.arange(screen.n_obs), rows[5:])].copy()
    data = str(tmp_path / "screen.h5ad")
    screen.write_h5ad(data)
    model = str(tmp_path / "model")
    train = ["train", data, "--control", "control", "--model", "mean", "--split", "combo"]
    assert main([*train, "--seed", "2", "--out", model]) == 0
    run = ["export", model, data, "--control", "control", "--out", str(tmp_path / "export")]
    assert main([*run, "--min-cells", "10"]) == 0
    printed = capsys.readouterr()
    assert f"the model predicts {len(test)} of the {len(test)} conditions" in printed.out
    assert f"({counted(len(test) - 1, 'condition')} and control)" in printed.out
    assert few in caplog.text  # named as left out for too few cells


def test_cli_export_takes_the_conditions_the_model_held_out(capsys, tiny, tmp_path):
    screen = ad.AnnData(X=tiny.X, obs=tiny.obs[["condition"]].astype(str), var=tiny.var[[]])
    data = str(tmp_path / "screen.h5ad")
    screen.write_h5ad(data)
    model = str(tmp_path / "combo")
    train = ["train", data, "--control", "control", "--model", "additive"]
    assert main([*train, "--out", model, "--split", "combo", "--seed", "2"]) == 0
    out = tmp_path / "export"
    assert main(["export", model, data, "--control", "control", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = screen.copy()
    ps.pp.setup(expected, perturbation_key="condition", control="control")
    ps.pp.split(expected, kind="combo", seed=2)
    test = [str(c) for c in expected.uns["perturbsim"]["split"]["test"]]
    # additive predicts the held-out pairs of measured singles only: the others are named
    loaded = ps.models.PerturbationModel.load(model)
    covered = {c for c, ok in zip(test, loaded.covers(test), strict=True) if ok}
    assert 0 < len(covered) < len(test)
    assert f"the model predicts {len(covered)} of the {len(test)} conditions it held out" in printed
    exported = set(ad.read_h5ad(out / "real.h5ad").obs["target_gene"].astype(str))
    assert exported - {"non-targeting"} == covered
    assert f"({counted(len(covered), 'condition')} and control)" in printed
    # another split named by hand is still checked against what the model was fitted on
    run = ["export", model, data, "--control", "control", "--overwrite", "--out", str(out)]
    assert main([*run, "--split", "simulation"]) == 2
    assert "the model was fitted on" in capsys.readouterr().err
    everything = str(tmp_path / "none")
    assert main([*train, "--out", everything, "--split", "none"]) == 0
    capsys.readouterr()
    assert main(["export", everything, *run[2:]]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds nothing out to export" in err


def test_cli_export_reads_the_screen_as_the_model_was_trained_on_it(capsys, caplog, tiny, tmp_path):
    labels = tiny.obs["condition"].astype(str).str.replace("+", "_").replace("control", "NTC")
    counts = tiny.layers["counts"]
    screen = ad.AnnData(X=counts, obs=pd.DataFrame({"condition": labels}), var=tiny.var[[]])
    data = str(tmp_path / "screen.h5ad")
    screen.write_h5ad(data)
    model = str(tmp_path / "model")
    train = ["train", data, "--control", "NTC", "--sep", "_", "--normalize", "--model", "additive"]
    assert main([*train, "--out", model, "--split", "combo"]) == 0
    out = tmp_path / "export"
    assert main(["export", model, data, "--out", str(out)]) == 0  # no --control, --sep, ...
    real = ad.read_h5ad(out / "real.h5ad")
    exported = set(real.obs["target_gene"].astype(str))
    assert "non-targeting" in exported and any("+" in c for c in exported)
    values = real.X.toarray() if hasattr(real.X, "toarray") else np.asarray(real.X)
    assert not np.allclose(values, np.round(values))  # ... nor --normalize: as trained on
    # the same cells log-normalised: read as they are, with no warning of a --normalize the
    # command line never gave
    logged = str(tmp_path / "logged.h5ad")
    ad.AnnData(X=tiny.X, obs=screen.obs, var=screen.var).write_h5ad(logged)
    again = ["export", model, logged, "--out", str(tmp_path / "again")]
    assert main(again) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert not any("looks log-normalised" in message for message in warned)
    caplog.clear()
    assert main([*again[:-1], str(tmp_path / "asked"), "--normalize"]) == 0  # asked: warned
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("normalize, but adata.X looks log-normalised" in m for m in warned)


def test_control_cells_without_any_detected_gene():
    adata = make_screen(["control", "G1"], cells=10, sparse_x=False)
    control = (adata.obs["condition"] == "control").to_numpy()
    adata.X[np.flatnonzero(control)[0]] = 0  # an empty control cell takes the others' level
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    model = ps.TrainMean(adata).fit()
    cells = model.sample("G1", adata, n_cells=40, seed=0)
    np.testing.assert_allclose(
        cells.X.mean(axis=0), model.predict("G1").X[0], rtol=0, atol=MEAN_TOLERANCE
    )
    adata.X[control] = 0
    with pytest.raises(PerturbsimError, match="control cells of adata express no gene"):
        model.sample("G1", adata)


def test_cli_export_refuses_a_split_whose_test_conditions_the_model_fitted(capsys, tiny, tmp_path):
    screen = ad.AnnData(X=tiny.X, obs=tiny.obs[["condition"]].astype(str), var=tiny.var[[]])
    data = str(tmp_path / "screen.h5ad")
    screen.write_h5ad(data)
    model = str(tmp_path / "model")
    options = ["--control", "control", "--split", "single"]
    assert (
        main(
            ["train", data, "--out", model, *options, "--model", "stacked_baseline", "--seed", "1"]
        )
        == 0
    )
    out = str(tmp_path / "export")
    assert main(["export", model, data, *options, "--out", out, "--seed", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "of this split (e.g. 'G" in err
    assert "(--split and --seed as for training; a model trained on every condition" in err
    assert err.endswith("or leave out --split to export the 3 conditions its fit held out")
    assert not (tmp_path / "export").exists()
    assert main(["export", model, data, *options, "--out", out, "--seed", "1"]) == 0
    other = str(tmp_path / "model_seed_2")
    train = ["train", data, "--out", other, *options, "--model", "stacked_baseline"]
    assert main([*train, "--seed", "2"]) == 0
    again = str(tmp_path / "export_seed_2")
    assert main(["export", other, data, *options, "--out", again]) == 0  # the model's seed


def test_export_refuses_held_out_conditions_the_model_was_fitted_on(split_tiny, tmp_path):
    model = ps.models.build_model("stacked_baseline", split_tiny).fit()
    resplit = ps.pp.split(split_tiny, kind="single", seed=7, copy=True)
    with pytest.raises(
        PerturbsimError, match=r"model was fitted on \d+ held-out conditions? of"
    ) as err:
        ps.io.export_cell_eval(model, resplit, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    n = len(model.held_out_conditions)
    assert f"pass conditions=model.held_out_conditions (the {n} conditions its fit held" in str(
        err.value
    )
    assert "the model's seed" not in str(err.value)  # no split seed is recorded to name


def test_a_saved_model_records_its_fitted_pairs_and_export_refuses_them(split_tiny, tmp_path):
    model = ps.models.build_model("additive", split_tiny).fit()
    split = ps.pp.Split.from_adata(split_tiny)
    fitted = [c for c in split.train + split.val if c != "ctrl"]
    assert model.fitted_conditions == fitted
    model.save(tmp_path / "model")
    loaded = ps.models.PerturbationModel.load(tmp_path / "model")
    assert loaded.fitted_conditions == fitted
    pair = next(c for c in fitted if "+" in c)
    assert pair in ps.tl.measured_conditions(loaded)
    config = tmp_path / "model" / "config.json"
    old = json.loads(config.read_text())
    del old["fitted_conditions"], old["config_sha256"]  # as a file saved before they were kept
    config.write_text(json.dumps(old))
    unknown = ps.models.PerturbationModel.load(tmp_path / "model")
    assert unknown.fitted_conditions is None
    assert set(ps.tl.measured_conditions(unknown)) == set(unknown.single_genes)
    resplit = ps.pp.split(split_tiny, kind="custom", test_conditions=[pair], copy=True)
    leaked = re.escape(f"fitted on 1 held-out condition of this split (e.g. '{pair}')")
    with pytest.raises(PerturbsimError, match=leaked):
        ps.io.export_cell_eval(loaded, resplit, tmp_path / "out")


def test_a_split_that_holds_nothing_out_has_nothing_to_export(tiny, tmp_path):
    ps.pp.split(tiny, kind="none", seed=1)
    model = ps.models.build_model("mean", tiny).fit()
    with pytest.raises(PerturbsimError, match="the none split of adata holds nothing out"):
        ps.io.export_cell_eval(model, tiny, tmp_path / "out")
    del tiny.uns["perturbsim"]["split"]
    with pytest.raises(PerturbsimError, match="fitted on every condition of its screen"):
        ps.io.export_cell_eval(model, tiny, tmp_path / "out")


def test_a_screen_with_the_models_genes_reordered_is_told_to_reorder(split_tiny):
    model = ps.TrainMean(split_tiny).fit()
    reordered = split_tiny[:, split_tiny.var_names[::-1]].copy()
    with pytest.raises(ps.PerturbsimError, match=r"the model's genes in another order: reorder"):
        model.sample(["ctrl"], reordered, n_cells=2)
    assert model.sample(["ctrl"], reordered[:, model.genes].copy(), n_cells=2).n_obs == 2


def test_exporting_held_out_conditions_gives_no_advice_to_train_on_them(norman, tmp_path, caplog):
    ps.pp.split(norman, kind="simulation", seed=1)  # holds out measured singles (FOXO4, ...)
    model = ps.Stacked(norman, seed=0, corrections=()).fit()
    with caplog.at_level("WARNING", logger="perturbsim"):
        model.predict(["FOXO4"])
    assert "held out by the model's split" in caplog.text  # predicting them: said
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.io.export_cell_eval(model, norman, tmp_path / "export")
    assert "held out by the model's split" not in caplog.text  # exporting them: on purpose


@pytest.fixture
def mean_model(tiny):
    ps.pp.split(tiny, kind="simulation", seed=1)
    return tiny, ps.TrainMean(tiny).fit()


def test_an_existing_real_file_alone_is_refused_without_overwrite(mean_model, tmp_path):
    adata, model = mean_model
    (tmp_path / "real.h5ad").write_text("an earlier export")
    with pytest.raises(PerturbsimError, match="real.h5ad' already exists; pass overwrite=True"):
        ps.io.export_cell_eval(model, adata, tmp_path, conditions=["G0030"])
    assert (tmp_path / "real.h5ad").read_text() == "an earlier export"
    assert not (tmp_path / "pred.h5ad").exists()


def test_a_condition_named_twice_is_exported_once(mean_model, tmp_path):
    adata, model = mean_model
    measured = int((adata.obs["perturbsim_condition"].astype(str) == "G0024+G0026").sum())
    pred_path, real_path = ps.io.export_cell_eval(
        model, adata, tmp_path, conditions=["G0026+G0024", "G0024+G0026"]
    )
    for path in (pred_path, real_path):
        labels = ad.read_h5ad(path).obs[CELL_EVAL_PERT_COL]
        assert (labels == "G0024+G0026").sum() == measured
