from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import perturbsim as ps
from perturbsim.pp import PseudobulkStats


@pytest.fixture(autouse=True)
def _quiet_progress():
    ps.settings.progress = False
    yield
    ps.settings.progress = True


@pytest.fixture(scope="session")
def _norman_cached() -> ad.AnnData:
    return ps.ds.norman2019_subset()


@pytest.fixture
def norman(_norman_cached) -> ad.AnnData:
    """The bundled Norman 2019 subset, set up (a fresh copy per test)."""
    return _norman_cached.copy()


@pytest.fixture(scope="session")
def _tiny_cached() -> ad.AnnData:
    adata = ps.ds.simulate(size="tiny", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    return adata


@pytest.fixture
def tiny(_tiny_cached) -> ad.AnnData:
    """The ``tiny`` simulated screen (seed 0), set up (a fresh copy per test)."""
    return _tiny_cached.copy()


@pytest.fixture
def tiny_go(_tiny_cached) -> pd.DataFrame:
    """GO-like annotations (``gene``, ``term``) of ``tiny``, to pass as ``go_annotations=``."""
    return _tiny_cached.uns["simulation"]["go"].copy()


@pytest.fixture
def shared_data():
    path = ps.ds.shared_data_dir()
    if path is None:
        pytest.skip("shared data folder absent (set PERTURBSIM_SHARED_DATA)")
    return path


def split_small(kind: str, seed: int, **split_options) -> ad.AnnData:
    """The simulated ``small`` screen (seed 0), set up and split by ``kind`` with ``seed``."""
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    ps.pp.split(adata, kind=kind, seed=seed, **split_options)
    return adata


def make_screen(
    labels: list[str], *, n_genes: int = 12, cells: int = 6, seed: int = 0, sparse_x: bool = True
) -> ad.AnnData:
    """A small log-normalised screen with one block of ``cells`` per label."""
    rng = np.random.default_rng(seed)
    obs_labels = np.repeat(labels, cells)
    x = np.log1p(rng.poisson(2.0, size=(len(obs_labels), n_genes)).astype(np.float32))
    x[rng.random(x.shape) < 0.3] = 0
    genes = [f"G{i}" for i in range(n_genes)]
    return ad.AnnData(
        X=sparse.csr_matrix(x) if sparse_x else x,
        obs=pd.DataFrame(
            {"condition": obs_labels}, index=[f"c{i}" for i in range(len(obs_labels))]
        ),
        var=pd.DataFrame(index=genes),
    )


def point_stats(means: dict[str, np.ndarray], genes: list[str]) -> PseudobulkStats:
    """Statistics of conditions whose every cell is its row of ``means`` (10 cells each)."""
    rows = np.vstack(list(means.values())).astype(np.float64)
    return PseudobulkStats(
        conditions=np.array(list(means)),
        genes=np.array(genes),
        n_cells=np.full(len(means), 10),
        moments=np.stack([rows**k for k in range(1, 5)]),
        coexpr_n=0,
        coexpr_sum=np.zeros(len(genes)),
        coexpr_gram=None,
    )


def screen_of(x: np.ndarray, labels: list[str], genes: list[str]) -> ad.AnnData:
    """A screen of cells ``x`` labelled ``labels`` (control ``ctrl``), set up; genes ``genes``."""
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame({"condition": labels}, index=[f"c{i}" for i in range(len(labels))]),
        var=pd.DataFrame(index=genes),
    )
    ps.pp.setup(adata, perturbation_key="condition", control="ctrl")
    return adata


UNCALIBRATED = {
    "pearson_delta_de": {"stacked": 0.5, "mean": 0.0, "replicate": 0.6},
    "direction_error_de": {"stacked": 0.1, "mean": 0.2, "replicate": 0.4},
}
"""One unseen single a seed: ``direction_error_de``'s replicate halves (0.4) worse than the
mean (0.2), so no span to calibrate it on; ``pearson_delta_de`` calibrated (0.5 / 0.75)."""


def one_condition_result(values: dict[str, dict[str, float]], seeds=(1, 2, 3)):
    """An evaluation of one unseen single a seed: ``values[metric][model]`` in every seed."""
    scores = pd.DataFrame(
        [
            (model, seed, "unseen_single", f"G{seed}", metric, value)
            for seed in seeds
            for metric, by_model in values.items()
            for model, value in by_model.items()
        ],
        columns=["model", "seed", "subgroup", "condition", "metric", "value"],
    )
    models = list(dict.fromkeys(m for by_model in values.values() for m in by_model))
    coverage = pd.DataFrame(
        [(model, seed, "unseen_single", 1, 1) for model in models for seed in seeds],
        columns=["model", "seed", "subgroup", "n_covered", "n_total"],
    )
    return ps.tl.EvaluationResult(scores=scores, coverage=coverage, settings={"models": models})
