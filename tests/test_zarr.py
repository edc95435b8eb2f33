"""A screen stored as zarr: read in memory or lazily, it gives the h5ad file's results."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import make_screen
from scipy import sparse

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.cli import main
from perturbsim.tl import _evaluate

pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def stores(_tiny_cached, tmp_path_factory) -> dict[str, str]:
    """The ``tiny`` screen as written to disk (labels, X, raw counts, its GO): h5ad and zarr."""
    folder = tmp_path_factory.mktemp("stores")
    raw = ad.AnnData(
        X=_tiny_cached.X.copy(),
        obs=_tiny_cached.obs[["condition"]].astype(str),
        var=pd.DataFrame(index=_tiny_cached.var_names.copy()),
        layers={"counts": _tiny_cached.layers["counts"].copy()},
        uns={"simulation": {"go": _tiny_cached.uns["simulation"]["go"].copy()}},
    )
    raw.write_h5ad(folder / "screen.h5ad")
    raw.write_zarr(folder / "screen.zarr")
    return {name: str(folder / f"screen.{name}") for name in ("h5ad", "zarr")}


def _read(path: str, **kwargs) -> ad.AnnData:
    adata = ps.ds.read(path, control="control", **kwargs)
    ps.pp.split(adata, kind="simulation", seed=1)
    ps.pp.pseudobulk(adata, scheduler="sync" if kwargs.get("backed") else None)
    ps.pp.rank_de(adata)
    return adata


@pytest.mark.parametrize("backed", [False, True])
def test_a_zarr_store_gives_the_h5ad_file_s_statistics_model_and_cells(stores, backed):
    reference = _read(stores["h5ad"])
    screen = _read(stores["zarr"], backed=backed)
    assert type(screen.X).__module__.startswith("dask") == backed
    assert type(screen.layers["counts"]).__module__.startswith("dask") == backed
    stats, expected = (ps.pp.PseudobulkStats.from_adata(a) for a in (screen, reference))
    np.testing.assert_allclose(stats.moments, expected.moments, rtol=1e-6, atol=1e-9)
    de = ps.pp.PseudobulkStats.from_adata(screen)  # the t-test reads the statistics only
    assert de.conditions.tolist() == expected.conditions.tolist()
    models = [ps.Stacked(a, seed=0).fit() for a in (screen, reference)]
    queries = [["G0018", "G0024"], ["G0026"], ["G0001"]]
    deltas = [m.predict(queries).layers["delta"] for m in models]
    np.testing.assert_allclose(deltas[0], deltas[1], rtol=1e-5, atol=1e-7)
    # cells drawn from the control cells of a lazy X: read row by row, the same draws
    screens = (screen, reference)
    cells = [
        m.sample("G0018+G0024", a, n_cells=7, seed=3).X
        for m, a in zip(models, screens, strict=True)
    ]
    np.testing.assert_allclose(cells[0], cells[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("store", ["h5ad", "zarr"])
def test_evaluate_on_a_screen_left_on_disk_scores_as_in_memory(stores, store):
    reference = ps.ds.read(stores["h5ad"], control="control")
    screen = ps.ds.read(stores[store], control="control", backed=True)
    assert screen.isbacked == (store == "h5ad")
    before = screen.obs.copy()
    options = {"models": "stacked,additive,mean", "seeds": 2, "gi": False}
    results = [ps.tl.evaluate(a, **options) for a in (screen, reference)]
    scores = [r.scores.sort_values(list(r.scores.columns[:-1])) for r in results]
    assert len(scores[0]) > 100
    np.testing.assert_allclose(scores[0]["value"], scores[1]["value"], rtol=1e-5, atol=1e-7)
    pd.testing.assert_frame_equal(screen.obs, before)  # the user's screen: not written into
    if store == "h5ad":
        assert screen.file.is_open  # each seed closed its own handle, not the user's
        assert screen.X[:3].shape == (3, screen.n_vars)
        # a seed's copy: backed by the file, with the screen's labels, no layer read again
        copy = _evaluate._working_copy(screen)
        assert copy.isbacked and not copy.layers and copy.obs.equals(screen.obs)
        copy.file.close()
        opened = h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)
        perturbed = [c for c in screen.obs["perturbsim_condition"].unique() if c != "ctrl"]
        for failing, message in (
            ({"models": {"broken": lambda adata: object()}}, "failed to fit"),
            (
                {
                    "models": "mean",
                    "split": "custom",
                    "split_kwargs": {"test_conditions": perturbed},
                },
                "no perturbed training condition",
            ),  # after the split, before any model
        ):
            with pytest.raises(PerturbsimError, match=message) as failed:
                ps.tl.evaluate(screen, seeds=1, gi=False, **failing)
            # closed, not left to the collector: the traceback kept holds the working copy
            assert h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE) == opened
            assert failed.traceback
        screen.file.close()  # closed by the user: anndata opens it again by its name
        again = ps.tl.evaluate(screen, **options).scores
        np.testing.assert_allclose(
            again.sort_values(list(again.columns[:-1]))["value"], scores[1]["value"], rtol=1e-5
        )


def test_a_seed_s_copy_of_a_backed_screen_reads_the_layer_of_its_statistics(stores, tmp_path):
    stored = ad.read_h5ad(stores["h5ad"])
    stored.layers["halved"] = stored.X * 0.5
    stored.write_h5ad(tmp_path / "layered.h5ad")
    screen = ps.ds.read(tmp_path / "layered.h5ad", control="control", backed=True)
    ps.pp.pseudobulk(screen, layer="halved")
    # the statistics are of the layer, read into memory: so is the copy's X, not the file's
    copy = _evaluate._working_copy(screen)
    assert not copy.isbacked
    np.testing.assert_allclose(copy.X.toarray(), screen.layers["halved"].toarray())
    screen.file.close()


def test_evaluate_on_a_backed_screen_keeps_the_gene_symbols_read(stores, tmp_path):
    stored = ad.read_h5ad(stores["h5ad"])
    stored.var["gene_name"] = stored.var_names.to_numpy()
    stored.var_names = [f"ENSG{i:05d}" for i in range(stored.n_vars)]
    stored.write_h5ad(tmp_path / "ids.h5ad")
    screen = ps.ds.read(tmp_path / "ids.h5ad", control="control", backed=True)
    assert screen.var_names[0] == "G0001"  # the symbols, in memory only
    result = ps.tl.evaluate(screen, models="mean", seeds=1, gi=False)
    assert set(result.changes["gene"]) <= set(screen.var_names)


def test_evaluate_on_a_backed_file_read_by_a_relative_path_elsewhere_says_so(
    stores, tmp_path, monkeypatch
):
    folder = Path(stores["h5ad"]).parent
    monkeypatch.chdir(folder)
    screen = ps.ds.read("screen.h5ad", control="control", backed=True)
    (tmp_path / "screen.h5ad").write_bytes(b"another file of the same name")
    monkeypatch.chdir(tmp_path)  # 'screen.h5ad' here is another file
    with pytest.raises(PerturbsimError, match="'screen.h5ad' is not at that path any more"):
        ps.tl.evaluate(screen, models="mean", seeds=1, gi=False)
    monkeypatch.chdir(folder)
    assert len(ps.tl.evaluate(screen, models="mean", seeds=1, gi=False).scores)


def test_evaluate_on_a_view_of_a_backed_screen_says_it_reads_it_whole(stores, caplog):
    screen = ps.ds.read(stores["h5ad"], control="control", backed=True)
    view = screen[screen.obs["perturbsim_condition"] != "G0030"]
    assert view.is_view and view.isbacked
    whole, result = (ps.tl.evaluate(a, models="mean", seeds=1, gi=False) for a in (screen, view))
    assert "G0030" in set(whole.scores["condition"]) - set(result.scores["condition"])
    said = [m for m in caplog.messages if m.startswith("a view of a backed screen")]
    assert len(said) == 1 and "so evaluate cannot stream it" in said[0]


def test_evaluate_on_a_backed_file_truncated_since_it_was_opened_says_so(stores, tmp_path):
    path = tmp_path / "screen.h5ad"
    path.write_bytes(Path(stores["h5ad"]).read_bytes())
    screen = ps.ds.read(path, control="control", backed=True)
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(PerturbsimError, match="changed size since it was opened") as error:
        ps.tl.evaluate(screen, models="mean", seeds=1, gi=False)
    assert "\n" not in str(error.value)


def test_evaluate_on_a_backed_screen_closed_and_its_file_deleted_since_says_so(stores, tmp_path):
    path = tmp_path / "screen.h5ad"
    path.write_bytes(Path(stores["h5ad"]).read_bytes())
    screen = ps.ds.read(path, control="control", backed=True)
    screen.file.close()  # closed by the user: opened again by its name, if still there
    path.unlink()
    with pytest.raises(PerturbsimError, match="is not at that path any more"):
        ps.tl.evaluate(screen, models="mean", seeds=1, gi=False)


def test_a_seed_s_copy_of_a_backed_file_truncated_since_it_was_opened_is_refused(stores, tmp_path):
    from perturbsim.ds._stores import backed_copy

    path = tmp_path / "screen.h5ad"
    path.write_bytes(Path(stores["h5ad"]).read_bytes())
    screen = ps.ds.read(path, control="control", backed=True)
    os.truncate(path, path.stat().st_size // 2)
    # refused when copied, before the copy's own handle takes the truncated file as whole
    with pytest.raises(PerturbsimError, match=r"^the backed screen's file .* changed size since"):
        backed_copy(screen, {})


def test_a_seed_s_copy_of_a_backed_file_overwritten_in_place_is_a_one_line_error(stores, tmp_path):
    from perturbsim.ds._stores import backed_copy

    path = tmp_path / "screen.h5ad"
    path.write_bytes(Path(stores["h5ad"]).read_bytes())
    screen = ps.ds.read(path, control="control", backed=True)
    screen.file.close()  # closed by the user: opened again by its name
    with path.open("r+b") as file:  # the same file, of the same size: no longer HDF5
        file.write(b"\0" * 4096)
    with pytest.raises(PerturbsimError, match=r"^cannot read .*screen.h5ad' again: ") as error:
        backed_copy(screen, {})
    assert "\n" not in str(error.value)


def test_a_lazy_zarr_keeps_the_cells_of_where_lazily(stores):
    labels = ["control", "G0018", "G0024"]
    screen = ps.ds.read(stores["zarr"], control="control", backed=True, where={"condition": labels})
    assert type(screen.X).__module__.startswith("dask")
    assert sorted(screen.obs["condition"].unique()) == sorted(labels)
    in_memory = ps.ds.read(stores["h5ad"], control="control", where={"condition": labels})
    np.testing.assert_allclose(screen.X.compute().toarray(), in_memory.X.toarray())


def test_wilcoxon_on_a_lazy_x_says_how_to_read_it(stores):
    screen = _read(stores["zarr"], backed=True)
    message = r"method='wilcoxon' needs .*\(a dask array: compute"
    with pytest.raises(PerturbsimError, match=message) as err:
        ps.pp.rank_de(screen, method="wilcoxon", key_added="wilcoxon")
    assert "\n" not in str(err.value)


def test_a_lazy_zarr_without_dask_says_how_to_install(stores, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(
        PerturbsimError, match=r"^backed=True on a .zarr store .* 'perturbsim\[dask\]'"
    ):
        ps.ds.read(stores["zarr"], control="control", backed=True)


@pytest.mark.parametrize("backed", [False, True])
def test_what_is_not_a_zarr_store_is_a_one_line_error(tmp_path, backed):
    (tmp_path / "empty.zarr").mkdir()
    (tmp_path / "file.zarr").write_text("not a store")
    (tmp_path / "screen.loom").write_text("")
    make_screen(["control", "G1"]).write_h5ad(tmp_path / "renamed.zarr")
    cases = {
        "missing.zarr": "no such zarr store: '.*missing.zarr'",
        "file.zarr": "'.*file.zarr' is not a zarr store .a folder written by zarr.$",
        "renamed.zarr": "not a zarr store .a folder written by zarr.: it is an HDF5 file .an .h5ad",
        "empty.zarr": "cannot read '.*empty.zarr' as AnnData .not an AnnData zarr store",
        "screen.loom": "expected an .h5ad file or a .zarr store, got '.*screen.loom'",
    }
    for name, message in cases.items():
        with pytest.raises(PerturbsimError, match=message) as err:
            ps.ds.read(tmp_path / name, backed=backed)
        assert "\n" not in str(err.value)
    with pytest.raises(PerturbsimError, match=r"^backed must be True, False or 'r' \(read-only\)"):
        ps.ds.read(tmp_path / "renamed.zarr", backed="r+")  # would open the file to write


@pytest.mark.parametrize("backed", [False, True])
def test_a_zarr_store_without_obs_says_so(stores, tmp_path, backed):
    # obs removed: its consolidated metadata still names it (zarr read its arrays as fill
    # values: "Categorical categories must be unique"), or not (lazily, setup said no column
    # 'condition' in adata.obs)
    import shutil

    from perturbsim.ds._stores import read_obs

    for name, consolidated in (("named.zarr", True), ("unnamed.zarr", False)):
        store = tmp_path / name
        shutil.copytree(stores["zarr"], store)
        shutil.rmtree(store / "obs")
        if not consolidated:
            (store / ".zmetadata").unlink()
        message = f"^the zarr store {re.escape(repr(str(store)))} has no obs, the cells' anno"
        with pytest.raises(PerturbsimError, match=message) as error:
            ps.ds.read(store, control="control", backed=backed)
        assert "\n" not in str(error.value)
        with pytest.raises(PerturbsimError, match=message):  # as export reads the cells
            read_obs(store)


def test_the_cli_trains_on_a_zarr_store_and_exports_its_cells(stores, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", stores["zarr"], "--out", str(model), "--control", "control"]) == 0
    assert main(["export", str(model), stores["zarr"], "--out", str(tmp_path / "export")]) == 0
    real = ad.read_h5ad(tmp_path / "export" / "real.h5ad")
    held_out = set(real.obs["target_gene"]) - {"non-targeting"}
    assert held_out and held_out <= set(ps.ds.read(stores["zarr"]).obs["condition"])


def test_the_cli_trains_evaluates_scores_pairs_and_exports_with_x_left_on_disk(
    stores, tmp_path, caplog, capsys
):
    common = [stores["h5ad"], "--control", "control"]  # a zarr store's: the same read
    for how, extra in (("memory", []), ("disk", ["--backed"])):
        assert main(["train", *common, *extra, "--out", str(tmp_path / how / "model")]) == 0
        evaluated = ["evaluate", *common, *extra, "--models", "stacked,mean", "--seeds", "1"]
        assert main([*evaluated, "--no-gi", "--out", str(tmp_path / how / "scores")]) == 0
        assert main(["measured-gi", *common, *extra, "--out", str(tmp_path / how / "gi")]) == 0
        model = str(tmp_path / how / "model")
        assert main(["export", model, stores["h5ad"], *extra, "--out", str(tmp_path / how)]) == 0
    # anndata reads the layers of a backed file whole: said with the option's own name
    said = [m for m in caplog.messages if m.startswith("--backed leaves X of")]
    assert len(said) == 4  # one per command
    queries = [["G0018", "G0024"], ["G0026"]]
    deltas = [
        ps.models.PerturbationModel.load(tmp_path / how / "model").predict(queries).layers["delta"]
        for how in ("memory", "disk")
    ]
    np.testing.assert_allclose(deltas[0], deltas[1], rtol=1e-5, atol=1e-7)
    scores = [pd.read_csv(tmp_path / how / "scores" / "scores.csv") for how in ("memory", "disk")]
    pd.testing.assert_frame_equal(scores[0], scores[1], rtol=1e-5)
    gi = [pd.read_csv(tmp_path / how / "gi" / "gi_scores.csv") for how in ("memory", "disk")]
    assert len(gi[0]) > 0
    pd.testing.assert_frame_equal(gi[0], gi[1], rtol=1e-5)
    for name in ("real.h5ad", "pred.h5ad"):
        exported = [ad.read_h5ad(tmp_path / how / name) for how in ("memory", "disk")]
        assert exported[0].n_obs > 100 and exported[0].obs.equals(exported[1].obs)
        np.testing.assert_array_equal(exported[0].X.toarray(), exported[1].X.toarray())
    # a file of more genes than the model's: their columns would be read whole, so refused
    wider = ad.read_h5ad(stores["h5ad"])
    wider = ad.concat([wider, wider[:, :1]], axis=1, merge="first")
    wider.var_names = [*wider.var_names[:-1], "EXTRA"]
    wider.write_h5ad(tmp_path / "wider.h5ad")
    model = str(tmp_path / "disk" / "model")
    capsys.readouterr()
    export = ["export", model, str(tmp_path / "wider.h5ad"), "--backed", "--out", str(tmp_path)]
    assert main([*export, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"has {wider.n_vars} genes, of which" in err and "leave out --backed" in err


def test_the_cli_on_counts_left_on_disk_says_to_leave_out_backed(stores, tmp_path, capsys):
    counts = ad.read_h5ad(stores["h5ad"])
    counts.X = counts.layers.pop("counts")
    counts.write_h5ad(tmp_path / "counts.h5ad")
    train = ["train", str(tmp_path / "counts.h5ad"), "--control", "control", "--backed"]
    assert main([*train, "--normalize", "--out", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err
    assert "leave out --backed to normalise it in memory (--normalize)" in err
    assert "backed=" not in err and "to_memory" not in err and err.count("\n") == 1


def test_cells_exported_from_a_lazy_zarr_are_the_h5ad_file_s(stores, tmp_path):
    written = {}
    for name, backed in (("h5ad", False), ("zarr", True)):
        screen = _read(stores[name], backed=backed)
        model = ps.TrainMean(screen).fit()
        out = tmp_path / name
        ps.io.export_cell_eval(model, screen, out, seed=0)
        written[name] = [ad.read_h5ad(out / f) for f in ("real.h5ad", "pred.h5ad")]
    for lazy, in_memory in zip(written["zarr"], written["h5ad"], strict=True):
        assert lazy.obs_names.equals(in_memory.obs_names)
        np.testing.assert_allclose(lazy.X.toarray(), in_memory.X.toarray(), atol=1e-6)


def test_a_zarr_stored_by_column_says_how_to_read_it(stores, tmp_path, caplog):
    by_column = ad.read_zarr(stores["zarr"])
    by_column.layers["counts"] = by_column.layers["counts"].tocsc()
    by_column.write_zarr(tmp_path / "csc_layer.zarr")
    with caplog.at_level("WARNING"):
        screen = ps.ds.read(tmp_path / "csc_layer.zarr", control="control", backed=True)
    assert "counts" not in screen.layers and "stored by column (CSC)" in caplog.text
    assert ps.ds.read(tmp_path / "csc_layer.zarr", control="control").layers["counts"].nnz > 0
    by_column.X = by_column.X.tocsc()
    by_column.write_zarr(tmp_path / "csc.zarr")
    with pytest.raises(PerturbsimError, match=r"^X of .* is stored by column \(CSC\).*without"):
        ps.ds.read(tmp_path / "csc.zarr", control="control", backed=True)


def test_a_zarr_store_with_missing_chunks_is_warned_of_and_one_removed_later_refused(
    stores, tmp_path, caplog
):
    import shutil

    store = tmp_path / "cut.zarr"
    shutil.copytree(stores["zarr"], store)
    chunks = sorted(
        p for p in (store / "X" / "data").rglob("*") if p.is_file() and p.name[0] != "."
    )
    chunks = [p for p in chunks if p.name not in {"zarr.json", ".zarray", ".zattrs"}]
    assert chunks
    chunks[-1].unlink()  # a copy cut short: one chunk of the values missing
    with caplog.at_level("WARNING", logger="perturbsim"), contextlib.suppress(PerturbsimError):
        ps.ds.read(store, control="control", backed=True)  # (its zeros may fail a check too)
    assert re.search(r"X of the zarr store .* has \d+ of its \d+ chunks on disk", caplog.text)
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"), contextlib.suppress(PerturbsimError):
        ps.ds.read(store, control="control")  # in memory, as the CLI reads: warned alike
    assert re.search(r"X of the zarr store .* has \d+ of its \d+ chunks on disk", caplog.text)
    caplog.clear()
    empty = tmp_path / "empty.zarr"  # an empty layer: no chunk written, nothing missing
    screen = ad.read_zarr(stores["zarr"])
    screen.layers["placeholder"] = sparse.csr_matrix(screen.shape, dtype=np.float32)
    screen.write_zarr(empty)
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.ds.read(empty, control="control", backed=True)
    assert "chunks on disk" not in caplog.text
    whole = tmp_path / "whole.zarr"
    shutil.copytree(stores["zarr"], whole)
    screen = ps.ds.read(whole, control="control", backed=True)
    shutil.rmtree(whole)  # removed after it was opened
    with pytest.raises(PerturbsimError, match="it no longer exists") as error:
        ps.pp.compute_pseudobulk(screen)
    assert "\n" not in str(error.value)
    later = tmp_path / "later.zarr"  # one chunk file removed after it was opened
    shutil.copytree(stores["zarr"], later)
    screen = ps.ds.read(later, control="control", backed=True)
    (later / "X" / "data" / chunks[0].relative_to(store / "X" / "data")).unlink()
    with pytest.raises(PerturbsimError, match="the files of X changed since it was opened"):
        ps.pp.compute_pseudobulk(screen)


def test_a_lazy_zarr_store_whose_chunks_were_rewritten_since_it_was_opened_is_refused(
    stores, tmp_path
):
    import shutil

    from perturbsim.ds._stores import _files_on_disk

    store = tmp_path / "s.zarr"
    shutil.copytree(stores["zarr"], store)
    screen = ps.ds.read(store, control="control", backed=True)
    doubled = ad.read_zarr(stores["zarr"])
    doubled.X = doubled.X * 2
    doubled.write_zarr(tmp_path / "doubled.zarr")
    shutil.rmtree(store / "X")  # rewritten: as many chunk files, other values
    shutil.copytree(tmp_path / "doubled.zarr" / "X", store / "X")
    count, size = _files_on_disk(store / "X")
    assert (count, size) != _files_on_disk(Path(stores["zarr"]) / "X")
    assert count == _files_on_disk(Path(stores["zarr"]) / "X")[0]
    # said once, as the store's check says it (not behind "cannot read adata.X rows ...")
    told = r"^cannot read the zarr store .*: the files of X changed since it was opened"
    with pytest.raises(PerturbsimError, match=told):
        ps.pp.compute_pseudobulk(screen, scheduler="sync")


def test_a_corrupted_chunk_of_a_lazy_zarr_store_is_one_line(stores, tmp_path):
    import shutil

    store = tmp_path / "corrupt.zarr"
    shutil.copytree(stores["zarr"], store)
    chunks = [
        p
        for p in (store / "X" / "data").rglob("*")
        if p.is_file() and p.name not in {"zarr.json", ".zarray", ".zattrs"}
    ]
    chunks[0].write_bytes(b"garbage")
    named = re.escape(repr(str(store)))  # the store, not only the matrix
    with pytest.raises(
        PerturbsimError, match=rf"^cannot read adata.X \(first 10000 cells\) of {named}: "
    ) as e:
        ps.ds.read(store, control="control", backed=True)
    assert "\n" not in str(e.value)


def test_errors_computing_on_a_lazily_read_store_name_it(stores, tmp_path):
    import shutil

    # a NaN in the first cells, found by the set-up: named with the file it is in
    screen = ad.read_zarr(stores["zarr"])
    screen.X = screen.X.tocsr(copy=True)
    screen.X.data[0] = np.nan
    for suffix, write in ((".zarr", screen.write_zarr), (".h5ad", screen.write_h5ad)):
        path = tmp_path / f"nan{suffix}"
        write(path)
        named = re.escape(repr(str(path)))
        with pytest.raises(
            PerturbsimError, match=rf"^adata.X \(first 10000 cells\) of {named} contains nan at"
        ) as e:
            ps.ds.read(path, control="control", backed=True)
        assert "\n" not in str(e.value)
    # a chunk corrupted after the set-up, found by the statistics pass: named with the store
    store = tmp_path / "later.zarr"
    shutil.copytree(stores["zarr"], store)
    lazy = ps.ds.read(store, control="control", backed=True, where={"condition": ["control"]})
    for chunk in (store / "X" / "data").rglob("*"):
        if chunk.is_file() and chunk.name not in {"zarr.json", ".zarray", ".zattrs"}:
            chunk.write_bytes(b"garbage")
    named = re.escape(repr(str(store)))
    with pytest.raises(PerturbsimError, match=rf"^cannot read adata.X rows 0-\d+ of {named}: "):
        ps.pp.compute_pseudobulk(lazy, scheduler="sync")


def test_a_lazy_zarr_read_by_a_relative_path_keeps_its_store_after_a_change_of_folder(
    stores, tmp_path, monkeypatch
):
    import shutil

    # two stores of one name in two folders, the second's values doubled: each lazily read
    # screen computes its own store's values, whatever the working folder is by then
    first, second = tmp_path / "a", tmp_path / "b"
    shutil.copytree(stores["zarr"], first / "s.zarr")
    doubled = ad.read_zarr(stores["zarr"])
    doubled.X = doubled.X * 2
    second.mkdir()
    doubled.write_zarr(second / "s.zarr")
    monkeypatch.chdir(first)
    one = ps.ds.read("s.zarr", control="control", backed=True)
    monkeypatch.chdir(second)
    two = ps.ds.read("s.zarr", control="control", backed=True)

    def summed(screen: ad.AnnData) -> float:
        return float(screen.X.compute().sum())

    total = summed(one)
    assert summed(two) == pytest.approx(2 * total)
    monkeypatch.chdir(tmp_path)
    assert summed(one) == pytest.approx(total) and summed(two) == pytest.approx(2 * total)


def test_a_lazy_zarr_keeps_its_embeddings_and_names_a_store_whose_path_holds_colons(
    stores, tmp_path
):
    from perturbsim.ds._stores import lazy_store_path

    screen = ad.read_zarr(stores["zarr"])
    screen.obsm["X_pca"] = np.arange(screen.n_obs * 2, dtype=np.float32).reshape(-1, 2)
    screen.varm["loadings"] = np.ones((screen.n_vars, 2), dtype=np.float32)
    path = tmp_path / "run::1" / "screen.zarr"
    screen.write_zarr(path)
    lazy = ps.ds.read(path, control="control", backed=True)
    np.testing.assert_array_equal(lazy.obsm["X_pca"], screen.obsm["X_pca"])
    assert lazy.varm["loadings"].shape == (screen.n_vars, 2)
    assert lazy_store_path(lazy.X) == str(path.absolute())


@pytest.mark.parametrize("suffix", ["h5ad", "zarr"])
def test_a_store_named_in_upper_case_is_read(stores, tmp_path, suffix):
    import shutil

    path = tmp_path / f"screen.{suffix.upper()}"
    (shutil.copytree if suffix == "zarr" else shutil.copy)(stores[suffix], path)
    assert ps.ds.read(path, control="control").n_obs == 750


def test_duplicate_gene_names_are_refused_in_one_line_without_anndata_s_warning(tmp_path):
    import warnings

    adata = ad.read_h5ad(ps.ds.simulate_to_disk(tmp_path / "x.h5ad", size="tiny", counts=False))
    adata.var_names = ["G1"] * 2 + list(adata.var_names[2:])
    for suffix in ("h5ad", "zarr"):
        path = tmp_path / f"dup.{suffix}"
        getattr(adata, f"write_{suffix}")(path)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", "Variable names are not unique")
            with pytest.raises(PerturbsimError, match="G1"):
                ps.ds.read(path, control="control")
