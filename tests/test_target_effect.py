"""The direct effect of a perturbation on its own target (fit_target_effect)."""

from __future__ import annotations

import numpy as np
import pytest

from perturbsim.models import fit_target_effect
from perturbsim.models._target_effect import target_features


def one_target_each(observed: np.ndarray) -> tuple[np.ndarray, list[list[str]], list[str]]:
    """Conditions ``t0``, ``t1`` ... each targeting its own gene, changed by ``observed``."""
    n = len(observed)
    genes = [f"t{i}" for i in range(n)]
    return np.diag(observed).astype(np.float64), [[g] for g in genes], genes


def test_target_features_are_the_level_and_its_negative_exponential():
    np.testing.assert_allclose(
        target_features(np.array([0.0, 1.0, 2.0])),
        [[0.0, 1.0], [1.0, np.exp(-1.0)], [2.0, np.exp(-2.0)]],
    )


def test_the_baseline_is_subtracted_from_each_observation():
    # two observations (fewer than the 3 coefficients): their mean is every gene's effect
    delta, sets, genes = one_target_each(np.array([2.0, 1.0]))
    effect = fit_target_effect(delta, sets, genes, np.zeros(2), baseline=np.array([0.5, 0.5]))
    np.testing.assert_allclose(effect, [1.0, 1.0])  # mean of 2 - 0.5 and 1 - 0.5


def test_three_observations_are_fitted_not_averaged():
    # as many observations as coefficients: the fit follows them (up to the small ridge)
    level = np.array([0.0, 1.0, 2.0])
    observed = 1.0 + 2.0 * level  # rises with the control level
    delta, sets, genes = one_target_each(observed)
    effect = fit_target_effect(delta, sets, genes, level, np.zeros(3))
    np.testing.assert_allclose(effect, observed, atol=0.05)


def test_a_constant_effect_is_recovered_exactly():
    # no spread to explain: the slopes are 0 and the unpenalised intercept is the effect
    level = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    delta, sets, genes = one_target_each(np.full(5, 100.0))
    effect = fit_target_effect(delta, sets, genes, level, np.zeros(5))
    np.testing.assert_allclose(effect, np.full(5, 100.0), rtol=1e-6)


def test_an_effect_linear_in_the_features_is_recovered():
    level = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
    observed = 1.0 + 0.5 * level + 3.0 * np.exp(-level)
    delta, sets, genes = one_target_each(observed)
    # a seventh, unperturbed gene at a level between the observed ones
    delta = np.column_stack([delta, np.zeros(6)])
    level7 = np.append(level, 1.5)
    effect = fit_target_effect(delta, sets, [*genes, "other"], level7, np.zeros(7))
    expected = 1.0 + 0.5 * level7 + 3.0 * np.exp(-level7)
    np.testing.assert_allclose(effect, expected, atol=0.02)


def test_levels_outside_the_observed_targets_are_clipped_to_their_range():
    level = np.array([1.0, 2.0, 3.0, 4.0])
    delta, sets, genes = one_target_each(1.0 + level)
    delta = np.column_stack([delta, np.zeros((4, 2))])
    levels = np.append(level, [0.0, 9.0])  # below and above the observed targets
    effect = fit_target_effect(delta, sets, [*genes, "low", "high"], levels, np.zeros(6))
    assert effect[4] == pytest.approx(effect[0])
    assert effect[5] == pytest.approx(effect[3])


def test_targets_all_at_one_level_give_their_mean_everywhere():
    # no spread of the features among the observed targets: nothing to regress on
    delta, sets, genes = one_target_each(np.array([1.0, 2.0, 3.0]))
    delta = np.column_stack([delta, np.zeros(3)])
    levels = np.array([1.0, 1.0, 1.0, 5.0])
    effect = fit_target_effect(delta, sets, [*genes, "other"], levels, np.zeros(4))
    np.testing.assert_allclose(effect, np.full(4, 2.0), rtol=1e-6)
