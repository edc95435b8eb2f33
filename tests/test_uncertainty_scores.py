"""The scores of tl._uncertainty on tables and statistics small enough to check by hand."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from perturbsim.pp._pseudobulk import PseudobulkStats
from perturbsim.tl._uncertainty import (
    _spearman,
    calibration_curve,
    inside_column,
    uncertainty_table,
    within_subgroups,
)

GENES = ["A", "B", "C"]


def stats_of(delta: np.ndarray) -> PseudobulkStats:
    """Statistics of ``ctrl`` (all zero) and one condition per row of ``delta``."""
    conditions = ["ctrl", *(GENES[: len(delta)])]
    mean = np.vstack([np.zeros(len(GENES)), delta])
    moments = np.stack([mean, mean**2, mean**3, mean**4])
    return PseudobulkStats(
        conditions=np.array(conditions),
        genes=np.array(GENES),
        n_cells=np.full(len(conditions), 10),
        moments=moments,
        coexpr_n=0,
        coexpr_sum=np.zeros(len(GENES)),
        coexpr_gram=None,
    )


def prediction(conditions: list[str], delta: np.ndarray, variance: np.ndarray) -> ad.AnnData:
    pred = ad.AnnData(
        X=np.zeros_like(delta),
        obs=pd.DataFrame(index=conditions),
        var=pd.DataFrame(index=GENES),
    )
    pred.layers["delta"] = delta
    pred.layers["variance"] = variance
    pred.obs["uncertainty"] = np.sqrt(variance.mean(axis=1))
    return pred


def test_a_condition_s_own_target_is_left_out_of_its_de_genes():
    stats = stats_of(np.array([[1.0, 1.0, 1.0]]))
    # condition A: its own gene A predicted 10 off, B 1 off; A and B are its DE genes
    pred = prediction(["A"], np.array([[11.0, 2.0, 1.0]]), np.ones((1, 3)))
    table = uncertainty_table(pred, stats, {"A": ["A", "B"]}, {"A": "x"}, model="m", seed=0)
    assert table["error_de"].iloc[0] == pytest.approx(1.0)  # B's alone
    assert table["error_all"].iloc[0] == pytest.approx(0.5)  # B's and C's (0), A left out


def test_a_gene_predicted_without_variance_is_inside_only_when_exact():
    stats = stats_of(np.array([[1.0, 2.0, 3.0]]))
    # zero variance everywhere; A is the target (left out), B exact, C 0.5 off
    pred = prediction(["A"], np.array([[1.0, 2.0, 3.5]]), np.zeros((1, 3)))
    table = uncertainty_table(pred, stats, {"A": ["B", "C"]}, {"A": "x"}, model="m", seed=0)
    for level in (0.1, 0.5, 0.9):
        assert table[inside_column("all", level)].iloc[0] == pytest.approx(0.5)
        assert table[inside_column("de", level)].iloc[0] == pytest.approx(0.5)


def test_spearman_needs_three_finite_pairs():
    assert np.isnan(_spearman(np.array([1.0, 2.0]), np.array([1.0, 2.0])))
    # a NaN pair is dropped: two finite pairs left
    assert np.isnan(_spearman(np.array([1.0, 2.0, np.nan]), np.array([1.0, 2.0, 3.0])))
    assert _spearman(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(1.0)


def test_within_subgroups_needs_two_subgroups():
    table = pd.DataFrame(
        {"subgroup": ["a"] * 4, "uncertainty": [1, 2, 3, 4], "error_de": [1, 2, 3, 4]}
    )
    assert np.isnan(within_subgroups(table, "de"))


def test_within_subgroups_weights_each_subgroup_by_its_conditions():
    table = pd.DataFrame(
        {
            "subgroup": ["a"] * 3 + ["b"] * 5,
            "uncertainty": [1, 2, 3, 1, 2, 3, 4, 5],
            "error_de": [1, 2, 3, 5, 4, 3, 2, 1],  # a: rho 1 over 3; b: rho -1 over 5
        }
    )
    assert within_subgroups(table, "de") == pytest.approx((3 * 1.0 + 5 * -1.0) / 8)


def test_calibration_curve_skips_conditions_without_a_share():
    table = pd.DataFrame({"model": ["m", "m", "m"]})
    for genes in ("de", "all"):
        for level in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            table[inside_column(genes, level)] = [0.2, 0.4, np.nan]  # the third: no DE gene
    curve = calibration_curve(table)
    assert curve["observed"].to_numpy() == pytest.approx(np.full(len(curve), 0.3))
    assert (curve["n_conditions"] == 2).all()
