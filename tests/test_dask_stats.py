"""The statistics pass on dask: the in-memory numbers, on a LocalCluster too; clean faults."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import anndata as ad
import h5py
import numpy as np
import pytest

import perturbsim as ps
from perturbsim import PerturbsimError

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

CHUNK = 100


def assert_same(stats, reference):
    assert list(stats.conditions) == list(reference.conditions)
    assert (stats.coexpr_n, stats.coexpr_cells) == (reference.coexpr_n, reference.coexpr_cells)
    for field in ("n_cells", "moments", "half_n", "half_moments", "coexpr_sum", "coexpr_gram"):
        np.testing.assert_allclose(
            getattr(stats, field), getattr(reference, field), rtol=1e-6, atol=1e-6, err_msg=field
        )


@pytest.fixture(scope="module")
def reference(_tiny_cached):
    return ps.pp.compute_pseudobulk(_tiny_cached, chunk_size=CHUNK)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, forked so they start with the package imported."""
    with (
        dask.config.set({"distributed.worker.multiprocessing-method": "fork"}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
        distributed.Client(local, set_as_default=False) as client,
    ):
        yield local, client


def _slow(block):
    """A block that takes a while to read, so that a worker can be killed mid-pass."""
    time.sleep(0.2)
    return block


def _kill_a_busy_worker(client) -> None:
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = [worker for worker, keys in client.processing().items() if keys]
        if busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            return
        time.sleep(0.02)
    pytest.fail("no task of the pass started")


@pytest.mark.parametrize("layout", ["sparse", "dense, chunked by genes too"])
def test_dask_array_gives_the_in_memory_statistics(tiny, reference, layout):
    x = tiny.X if layout == "sparse" else tiny.X.toarray()
    tiny.X = da.from_array(x, chunks=(CHUNK, -1 if layout == "sparse" else 30))
    assert_same(ps.pp.compute_pseudobulk(tiny), reference)


def test_a_dask_array_is_summed_in_this_process_unless_dask_names_a_scheduler(
    tiny, reference, cluster, monkeypatch
):
    from perturbsim.pp import _pseudobulk

    tiny.X = da.from_array(tiny.X, chunks=(CHUNK, -1))
    on_dask = []
    tasks = _pseudobulk.dask_sums
    monkeypatch.setattr(
        _pseudobulk,
        "dask_sums",
        lambda *args, **kwargs: on_dask.append(1) or tasks(*args, **kwargs),
    )
    # a lazily read store on one machine: one block at a time (dask held every task's sums)
    assert_same(ps.pp.compute_pseudobulk(tiny), reference)
    assert on_dask == []
    local, _ = cluster
    with distributed.Client(local):  # dask's default scheduler now: the pass runs on it
        assert_same(ps.pp.compute_pseudobulk(tiny), reference)
    assert on_dask == [1]
    with dask.config.set(scheduler="threads"):  # chosen in dask's configuration: used too
        assert_same(ps.pp.compute_pseudobulk(tiny), reference)
    assert on_dask == [1, 1]


def test_x_read_lazily_by_anndata_gives_the_in_memory_statistics(tiny, reference, tmp_path):
    path = tmp_path / "screen.h5ad"
    tiny.write_h5ad(path)
    with h5py.File(path, "r") as file:
        tiny.X = ad.experimental.read_elem_lazy(file["X"], chunks=(CHUNK, -1))
    assert_same(ps.pp.compute_pseudobulk(tiny, scheduler="sync"), reference)


def test_a_view_of_a_backed_file_gives_its_own_cells_statistics(tiny, tmp_path):
    path = tmp_path / "screen.h5ad"
    tiny.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    for view in (backed[np.arange(backed.n_obs)[::-1]], backed[: backed.n_obs // 2]):
        expected = ps.pp.compute_pseudobulk(view.to_memory(), chunk_size=CHUNK)
        assert_same(ps.pp.compute_pseudobulk(view, scheduler="sync", chunk_size=CHUNK), expected)
    backed.file.close()


def test_a_screen_read_lazily_is_set_up_and_checked_block_by_block(
    _tiny_cached, reference, tmp_path
):
    path = tmp_path / "screen.h5ad"
    raw = _tiny_cached.copy()
    raw.obs = raw.obs[["condition"]]
    del raw.uns["perturbsim"]
    raw.write_h5ad(path)
    with h5py.File(path, "r") as file:
        lazy = ad.AnnData(
            X=ad.experimental.read_elem_lazy(file["X"], chunks=(CHUNK, -1)),
            obs=raw.obs.copy(),
            var=raw.var.copy(),
        )
        ps.pp.setup(lazy, perturbation_key="condition", control="control")
        assert_same(ps.pp.compute_pseudobulk(lazy, scheduler="sync"), reference)
        bad = ad.AnnData(
            X=da.from_array(np.full((raw.n_obs, raw.n_vars), np.nan), chunks=(CHUNK, -1)),
            obs=raw.obs.copy(),
            var=raw.var.copy(),
        )
    with pytest.raises(PerturbsimError, match="first") as err:
        ps.pp.setup(bad, perturbation_key="condition", control="control")
    assert "\n" not in str(err.value)


def test_local_cluster_gives_the_in_memory_statistics(tiny, reference, tmp_path, cluster):
    local, client = cluster
    path = tmp_path / "screen.h5ad"
    tiny.write_h5ad(path)
    backed = ps.ds.read(path, control="control", backed=True)
    assert_same(ps.pp.compute_pseudobulk(backed, chunk_size=CHUNK, scheduler=client), reference)
    # in memory, through the scheduler's address
    stats = ps.pp.compute_pseudobulk(tiny, chunk_size=CHUNK, scheduler=local.scheduler_address)
    assert_same(stats, reference)


def test_killed_worker_is_retried_or_the_pass_fails_in_one_line(tiny, reference, cluster):
    local, client = cluster
    tiny.X = da.from_array(tiny.X, chunks=(CHUNK // 2, -1)).map_blocks(_slow, dtype=np.float32)
    allowed = local.scheduler.allowed_failures
    with ThreadPoolExecutor(1) as pool:
        # distributed reruns the tasks of a dead worker elsewhere
        client.wait_for_workers(2, timeout=60)
        running = pool.submit(ps.pp.compute_pseudobulk, tiny, scheduler=client)
        _kill_a_busy_worker(client)
        assert_same(running.result(timeout=120), reference)
        # with no rerun allowed, the pass fails naming the chunk
        local.scheduler.allowed_failures = 0
        try:
            client.wait_for_workers(2, timeout=60)
            running = pool.submit(ps.pp.compute_pseudobulk, tiny, scheduler=client)
            _kill_a_busy_worker(client)
            # the chunk whose worker died, or (rarely) every row: the reader all chunks share
            died = r"(summed|held the reader of) adata.X rows \d+-\d+ died"
            with pytest.raises(PerturbsimError, match=died) as err:
                running.result(timeout=120)
        finally:
            local.scheduler.allowed_failures = allowed
    assert "\n" not in str(err.value)
    client.wait_for_workers(2, timeout=60)
    assert_same(ps.pp.compute_pseudobulk(tiny, scheduler=client), reference)


@pytest.mark.parametrize("where", ["in this process", "threads", "local cluster"])
def test_truncated_file_fails_naming_file_and_chunk(tiny, reference, tmp_path, where, request):
    scheduler = {"in this process": None, "threads": "threads"}.get(where)
    if where == "local cluster":
        scheduler = request.getfixturevalue("cluster")[1]
    path = tmp_path / "screen.h5ad"
    tiny.write_h5ad(path)
    backed = ps.ds.read(path, control="control", backed=True)
    os.truncate(path, path.stat().st_size // 2)
    message = rf"cannot read adata.X rows \d+-\d+ of {re.escape(repr(str(path)))}: "
    with pytest.raises(PerturbsimError, match=message) as err:
        ps.pp.pseudobulk(backed, chunk_size=CHUNK, scheduler=scheduler)
    assert "\n" not in str(err.value)
    assert "pseudobulk" not in backed.uns.get("perturbsim", {})
    # rerun on the complete file (another path: tasks of the failed pass may still be reading)
    tiny.write_h5ad(tmp_path / "complete.h5ad")
    backed = ps.ds.read(tmp_path / "complete.h5ad", control="control", backed=True)
    assert_same(ps.pp.compute_pseudobulk(backed, chunk_size=CHUNK, scheduler=scheduler), reference)


@pytest.mark.parametrize("where", ["threads", "local cluster"])
def test_a_task_names_the_cell_and_gene_of_a_bad_value(tiny, where, request):
    scheduler = "threads" if where == "threads" else request.getfixturevalue("cluster")[1]
    x = tiny.X.toarray()
    x[CHUNK + 7, 3] = np.inf  # after setup: the task of the second chunk finds it
    tiny.X = x
    cell, gene = tiny.obs_names[CHUNK + 7], tiny.var_names[3]
    with pytest.raises(PerturbsimError) as err:
        ps.pp.compute_pseudobulk(tiny, chunk_size=CHUNK, scheduler=scheduler)
    assert str(err.value) == (
        f"adata.X contains inf at cell {cell!r} gene {gene!r} (1 non-finite value); remove or "
        "impute them first"
    )


def test_dask_path_without_dask_says_how_to_install(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(PerturbsimError, match=r"needs 'dask': pip install 'perturbsim\[dask\]'"):
        ps.pp.compute_pseudobulk(tiny, scheduler="threads")


def test_bad_schedulers_are_one_line_errors(tiny):
    with pytest.raises(PerturbsimError, match="unusable dask scheduler 'nonsense'"):
        ps.pp.compute_pseudobulk(tiny, scheduler="nonsense")
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(PerturbsimError, match="cannot connect to the dask scheduler"),
    ):
        ps.pp.compute_pseudobulk(tiny, scheduler="tcp://127.0.0.1:9")


def test_a_file_stored_by_column_says_how_to_read_it(tiny, reference, tmp_path):
    by_column = tiny.copy()
    by_column.X = by_column.X.tocsc()
    path = tmp_path / "csc.h5ad"
    by_column.write_h5ad(path)
    backed = ps.ds.read(path, control="control", backed=True)
    with pytest.raises(PerturbsimError, match=r"stored by column \(CSC\).*run without scheduler="):
        ps.pp.compute_pseudobulk(backed, chunk_size=CHUNK, scheduler="sync")
    assert_same(ps.pp.compute_pseudobulk(backed, chunk_size=CHUNK), reference)


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_cells_drawn_from_a_dask_array_are_the_in_memory_ones(tiny, layout):
    from perturbsim.pp._cells import draw_cells

    conditions = list(tiny.obs["perturbsim_condition"].cat.categories[:3])
    expected = draw_cells(tiny, conditions, max_cells=5, seed=2)
    x = tiny.X if layout == "sparse" else tiny.X.toarray()
    tiny.X = da.from_array(x, chunks=(CHUNK, -1))
    drawn = draw_cells(tiny, conditions, max_cells=5, seed=2)
    for condition in conditions:
        np.testing.assert_array_equal(drawn[condition], expected[condition])
