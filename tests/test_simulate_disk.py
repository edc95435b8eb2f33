"""Tests of simulated screens written to disk chunk by chunk (``ds.simulate_to_disk``)."""

from __future__ import annotations

import warnings

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

import perturbsim as ps
from perturbsim._errors import PerturbsimError
from perturbsim.ds import _simulate_disk

DESIGN = {"size": "tiny", "seed": 3, "cells_per_condition": 45, "n_control_cells": 200}
"""1,100 cells of 70 genes, written about 100 cells (a few conditions) at a time: 11 appends."""


@pytest.fixture(scope="module")
def in_memory() -> ad.AnnData:
    return ps.ds.simulate(**DESIGN)


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("disk") / "screen.h5ad"
    return str(ps.ds.simulate_to_disk(path, chunk_cells=100, **DESIGN))


def test_same_screen_as_in_memory(in_memory, on_disk):
    """Chunk sizes change nothing: the file holds the screen ``simulate`` returns."""
    back = ad.read_h5ad(on_disk)
    assert back.shape == in_memory.shape
    for disk, memory in (
        (back.X, in_memory.X),
        (back.layers["counts"], in_memory.layers["counts"]),
    ):
        assert disk.dtype == memory.dtype == np.float32
        np.testing.assert_array_equal(disk.indptr, memory.indptr)
        np.testing.assert_array_equal(disk.indices, memory.indices)
        np.testing.assert_array_equal(disk.data, memory.data)
    pd.testing.assert_frame_equal(back.obs, in_memory.obs)
    pd.testing.assert_frame_equal(back.var, in_memory.var)
    sim, ref = back.uns["simulation"], in_memory.uns["simulation"]
    assert sim.keys() == ref.keys()
    assert sim["params"] == ref["params"]
    np.testing.assert_array_equal(sim["truth_mean"], ref["truth_mean"])
    np.testing.assert_array_equal(sim["truth_conditions"], ref["truth_conditions"])
    np.testing.assert_array_equal(sim["measured"], ref["measured"])
    for frame in ("go", "grn"):
        pd.testing.assert_frame_equal(sim[frame], ref[frame])


def test_reads_backed_and_gives_the_same_statistics(in_memory, on_disk):
    assert ad.read_h5ad(on_disk, backed="r").isbacked
    with h5py.File(on_disk, "r") as f:
        assert f["X/indptr"].dtype == np.int64
    screen = ps.ds.read(on_disk, backed=True)
    memory = ps.pp.setup(in_memory, perturbation_key="condition", control="control", copy=True)
    disk_stats = ps.pp.compute_pseudobulk(screen, chunk_size=300)
    memory_stats = ps.pp.compute_pseudobulk(memory, chunk_size=300)
    for field in ("conditions", "n_cells", "moments", "half_moments", "coexpr_gram"):
        np.testing.assert_array_equal(getattr(disk_stats, field), getattr(memory_stats, field))


def test_without_counts(tmp_path, capfd, monkeypatch):
    # a bar counts the cells written (shown on a terminal only: here whatever the stream)
    monkeypatch.setattr(ps.ds._simulate_disk, "progress_disabled", lambda: False)
    path = ps.ds.simulate_to_disk(tmp_path / "x_only.h5ad", counts=False, size="tiny", seed=0)
    err = capfd.readouterr().err
    assert "simulate_to_disk: 100%" in err and "750/750" in err
    back = ad.read_h5ad(path)
    assert list(back.layers) == [] and back.n_obs == 750
    with pytest.raises(ps.PerturbsimError, match="^counts must be True or False, got 'no'"):
        ps.ds.simulate_to_disk(tmp_path / "never.h5ad", counts="no", size="tiny", seed=0)
    assert not (tmp_path / "never.h5ad").exists()


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    """An error mid-write leaves no file at the path (and no temporary file)."""
    appended = []
    batches = _simulate_disk._batches

    def failing(chunks, chunk_cells):
        for batch in batches(chunks, chunk_cells):
            if appended:
                raise KeyboardInterrupt
            appended.append(batch)
            yield batch

    monkeypatch.setattr(_simulate_disk, "_batches", failing)
    path = tmp_path / "screen.h5ad"
    with pytest.raises(KeyboardInterrupt):
        ps.ds.simulate_to_disk(path, size="tiny", seed=0, chunk_cells=100)
    assert appended and list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = ps.ds.simulate_to_disk(tmp_path / "screen.h5ad", size="tiny", seed=0)
    before = path.read_bytes()

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(_simulate_disk, "_obs", failing)
    with pytest.raises(OSError, match="disk full"):
        ps.ds.simulate_to_disk(path, size="tiny", seed=1)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["screen.h5ad"]


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(PerturbsimError, match=r"\.h5ad"):
        ps.ds.simulate_to_disk(tmp_path / "screen.zarr", size="tiny")
    with pytest.raises(PerturbsimError, match="chunk_cells"):
        ps.ds.simulate_to_disk(tmp_path / "screen.h5ad", size="tiny", chunk_cells=0)
    with pytest.raises(PerturbsimError, match="modality"):
        ps.ds.simulate_to_disk(tmp_path / "screen.h5ad", size="tiny", modality="rnai")
    assert list(tmp_path.iterdir()) == []
    # where nothing can be written: said before the simulation, not after it
    (tmp_path / "folder.h5ad").mkdir()
    (tmp_path / "file").write_text("")
    for path, why in (("folder.h5ad", "it is a folder"), ("file/x.h5ad", "is a file, not a")):
        with pytest.raises(PerturbsimError, match=f"^cannot write the simulated screen .*{why}"):
            ps.ds.simulate_to_disk(tmp_path / path, size="tiny")


def test_genome_preset_design():
    design = ps.ds._simulate.PRESETS["genome"]
    n_perturbations = design["n_singles"] + design["n_pairs"]
    n_cells = design["n_control_cells"] + n_perturbations * design["cells_per_condition"]
    assert (n_cells, design["n_genes"], n_perturbations) == (1_000_000, 8_000, 2_000)


def test_an_unknown_option_is_named(tmp_path):
    with pytest.raises(ps.PerturbsimError, match="simulate_to_disk has no option 'n_gene'"):
        ps.ds.simulate_to_disk(tmp_path / "x.h5ad", size="tiny", n_gene=80)
    assert not (tmp_path / "x.h5ad").exists()


def test_the_file_reads_without_format_warnings(on_disk):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ad.OldFormatWarning)
        assert "counts" in ad.read_h5ad(on_disk).layers
        ad.read_h5ad(on_disk, backed="r").file.close()


def test_cells_are_appended_in_batches_of_at_least_chunk_cells(tmp_path, monkeypatch):
    sizes = []
    batches = _simulate_disk._batches

    def recording(chunks, chunk_cells):
        for batch in batches(chunks, chunk_cells):
            sizes.append(sum(chunk.row_nnz.size for chunk in batch))
            yield batch

    monkeypatch.setattr(_simulate_disk, "_batches", recording)
    ps.ds.simulate_to_disk(tmp_path / "screen.h5ad", chunk_cells=100, **DESIGN)
    assert sum(sizes) == 1100 and len(sizes) > 2
    assert min(sizes[:-1]) >= 100


def test_an_upper_case_h5ad_suffix_is_accepted(tmp_path):
    path = ps.ds.simulate_to_disk(tmp_path / "screen.H5AD", size="tiny", seed=0, counts=False)
    assert path.name == "screen.H5AD" and ad.read_h5ad(path).n_obs == 750
