"""The models read nothing of the held-out conditions' cells: scrambled, the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

import perturbsim as ps


@pytest.mark.slow
def test_scrambling_the_test_cells_changes_no_prediction(norman):
    ps.pp.split(norman, kind="simulation", seed=1)
    test = ps.pp.Split.from_adata(norman).test
    scrambled = norman.copy()
    held_out = np.flatnonzero(scrambled.obs["perturbsim_split"].to_numpy() == "test")
    rng = np.random.default_rng(0)
    x = scrambled.X.tocsr().astype(np.float64)
    rows = x[held_out].toarray()
    x = sparse.lil_matrix(x)
    x[held_out] = rows[rng.permutation(len(held_out))] * 3.0 + rng.uniform(0, 1, rows.shape)
    scrambled.X = sparse.csr_matrix(x, dtype=norman.X.dtype)  # the training cells as they were
    kept = np.setdiff1d(np.arange(norman.n_obs), held_out)
    assert abs(scrambled.X[kept] - norman.X[kept]).max() == 0  # every other cell bit for bit
    for name in ("stacked", "additive", "linear", "linear_go", "mean", "interaction"):
        predictions = []
        for screen in (norman, scrambled):
            model = ps.models.build_model(name, screen, seed=0).fit()
            covered = [c for c, ok in zip(test, model.covers(test), strict=True) if ok]
            predictions.append(model.predict(covered).layers["delta"] if covered else None)
        if predictions[0] is not None:
            np.testing.assert_array_equal(predictions[1], predictions[0], err_msg=name)
    # the cells did change: the statistics of a held-out condition read them
    first, second = (ps.pp.compute_pseudobulk(s, coexpression="none") for s in (norman, scrambled))
    rows = first.index(test)
    assert not np.allclose(first.mean[rows], second.mean[rows])
