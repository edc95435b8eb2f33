"""How measured singles combine in a pair: the role coefficients and the ``interaction`` model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import split_small

import perturbsim as ps
from perturbsim.models import _pair_roles
from perturbsim.models._data import ScreenData
from perturbsim.models._pair_roles import (
    ADDITIVE,
    ROLE_GENES,
    PairInteraction,
    PairRoles,
    _penalised_solve,
    fit_pair_roles,
    gain_bar,
    noise_gram,
    pair_features,
    role_design,
    role_genes,
    roles,
    selection_equations,
    selection_noise,
    shared_noise,
    shared_part,
)
from perturbsim.models._simple import Additive


def _singles(rng: np.random.Generator, n_pairs: int, n_genes: int = ROLE_GENES):
    a = rng.normal(size=(n_pairs, n_genes)) * rng.uniform(0.5, 2.0, size=(n_pairs, 1))
    b = rng.normal(size=(n_pairs, n_genes)) * rng.uniform(0.5, 2.0, size=(n_pairs, 1))
    return a, b


def test_roles_and_features():
    big, small = roles(np.array([1.0, -3.0, 2.0]), np.array([-2.0, 1.0, 2.0]))
    np.testing.assert_array_equal(big, [-2.0, -3.0, 2.0])
    np.testing.assert_array_equal(small, [1.0, 1.0, 2.0])
    np.testing.assert_allclose(
        pair_features(np.array([1.0, 0.0]), np.array([2.0, 0.0])), [1.0, 1.0, np.log(2.0)]
    )
    np.testing.assert_array_equal(pair_features(np.zeros(2), np.ones(2)), [1.0, 0.0, 0.0])


def test_buffering_is_learned_and_predicts_held_out_pairs():
    rng = np.random.default_rng(0)
    a, b = _singles(rng, 40)
    truth = [big + 0.3 * small for big, small in (roles(x, y) for x, y in zip(a, b, strict=True))]
    measured = np.array(truth) + rng.normal(scale=0.1, size=a.shape)
    keep = np.ones(a.shape, dtype=bool)
    fitted = fit_pair_roles(a[:30], b[:30], measured[:30], keep[:30])
    assert np.isfinite(fitted.ridge) and fitted.loo_gain > 0.5
    assert fitted.coefficients[0] == pytest.approx(1.0, abs=0.05)
    assert fitted.coefficients[3] == pytest.approx(0.3, abs=0.05)
    # the weaker single damped on every gene, moved alike or not: what the roles say and the
    # shared change cannot (it leaves genes moved oppositely as their sum), so competing with
    # it the role fit is kept as it was
    competing = fit_pair_roles(a[:30], b[:30], measured[:30], keep[:30], shared_change=True)
    assert competing.shared == 0.0 and competing.to_dict() == fitted.to_dict()
    for x, y, target in zip(a[30:], b[30:], truth[30:], strict=True):
        interaction_error = np.mean((fitted.predict(x, y) - target) ** 2)
        additive_error = np.mean((x + y - target) ** 2)
        assert interaction_error < 0.05 * additive_error


def test_saturating_pairs_are_learned_by_the_shared_change():
    # pairs that move each gene both singles move alike no further than 40 % of the smaller
    # single beyond the larger: the sum less 0.6 of their shared change; where the singles
    # disagree they add. The six role coefficients cannot say this (the larger single's
    # coefficient would apply to genes moved alike and oppositely both), one coefficient can
    rng = np.random.default_rng(11)
    a, b = _singles(rng, 40)
    b[:, :50] = np.abs(b[:, :50]) * np.sign(a[:, :50])  # half the genes moved alike
    truth = a + b - 0.6 * shared_part(a, b)
    measured = truth + rng.normal(scale=0.1, size=a.shape)
    keep = np.ones(a.shape, dtype=bool)
    fitted = fit_pair_roles(a[:30], b[:30], measured[:30], keep[:30], shared_change=True)
    np.testing.assert_array_equal(fitted.coefficients, ADDITIVE)
    assert fitted.ridge == 0.0 and fitted.shared == pytest.approx(0.6, abs=0.02)
    assert not fitted.is_additive and fitted.loo_gain > 0.5
    for x, y, target in zip(a[30:], b[30:], truth[30:], strict=True):
        assert np.mean((fitted.predict(x, y) - target) ** 2) < 0.01 * np.mean((x + y - target) ** 2)


@pytest.mark.parametrize("grouped", [False, True])
def test_a_shared_change_no_fit_can_show_held_out_is_kept_shrunk_by_its_noise(grouped):
    # 8 noisy pairs that buffer a little (0.4 of their shared change): neither the role fits
    # nor the shared-change fit pass the held-out bar, but the shared coefficient is
    # positive across the held-out refits, so it is kept at the share its spread allows
    rng = np.random.default_rng(8)
    a, b = _singles(rng, 8)
    b[:, :50] = np.abs(b[:, :50]) * np.sign(a[:, :50])
    measured = a + b - 0.4 * shared_part(a, b) + rng.normal(scale=1.5, size=a.shape)
    keep = np.ones(a.shape, dtype=bool)
    genes = [(f"g{i}", f"g{(i + 1) % 8 if i % 2 else i + 8}") for i in range(8)]
    groups = [[j for j in range(8) if set(genes[j]) & set(genes[i])] for i in range(8)]
    if not grouped:
        genes, groups = None, [[i] for i in range(8)]
    assert fit_pair_roles(a, b, measured, keep, genes).is_additive
    fitted = fit_pair_roles(a, b, measured, keep, genes, shared_change=True)
    np.testing.assert_array_equal(fitted.coefficients, ADDITIVE)
    assert fitted.ridge == 0.0 and 0.0 < fitted.shrink < 1.0
    # the least-squares coefficient and its jackknife over the held-out refits, by hand
    columns = np.array([-shared_part(x, y) for x, y in zip(a, b, strict=True)])
    residuals = measured - a - b
    products, squares = (columns * residuals).sum(axis=1), (columns**2).sum(axis=1)
    plain = products.sum() / squares.sum()
    refits = np.array(
        [(products.sum() - products[g].sum()) / (squares.sum() - squares[g].sum()) for g in groups]
    )
    left_out = np.array([len(g) for g in groups])  # the delete-d jackknife
    variance = np.sum((8 - left_out) / left_out * (refits - refits.mean()) ** 2) / 8 * 7 / 5
    assert fitted.shrink == pytest.approx(1.0 - variance / plain**2, rel=1e-9)
    assert fitted.shared == pytest.approx(fitted.shrink * plain, rel=1e-9)
    assert 0.0 < fitted.shared < 0.4
    # each pair scored by its refit, shrunk by the same factor
    steps = fitted.shrink * refits
    gain = np.sum(2 * steps * products - steps**2 * squares) / np.sum(residuals**2)
    assert fitted.loo_gain == pytest.approx(gain, rel=1e-9)
    again = PairRoles.from_dict(fitted.to_dict())
    assert (again.shared, again.shrink) == (fitted.shared, fitted.shrink)


def test_role_genes_are_the_strongest_off_the_targets():
    a = np.ones(ROLE_GENES + 20)  # every gene moves a little
    b = np.zeros(ROLE_GENES + 20)
    a[:60] = 100.0 + np.arange(60)  # 60 genes moved by a, most
    b[60:ROLE_GENES] = -50.0 - np.arange(ROLE_GENES - 60)  # 40 by b alone
    keep = np.ones(a.size, dtype=bool)
    keep[0] = False  # a target
    chosen = role_genes(a, b, keep)
    # the 99 strong genes off the target, then the first of the equally weak ones
    assert chosen.sum() == ROLE_GENES and not chosen[0]
    assert chosen[1 : ROLE_GENES + 1].all() and not chosen[ROLE_GENES + 1 :].any()
    few = np.zeros(a.size, dtype=bool)
    few[:5] = True
    np.testing.assert_array_equal(role_genes(a, b, few), few)


def test_genes_where_nothing_moves_do_not_dilute_the_roles():
    # buffering on 100 responding genes; on 2,000 more nothing happens but the measured
    # singles carry noise, so fitted on every gene both roles look damped (errors in
    # variables); fitted on the genes where the singles move most they do not
    rng = np.random.default_rng(4)
    n_pairs, quiet = 30, 2_000
    a, b = (3.0 * x for x in _singles(rng, n_pairs))
    truth = np.array([big + 0.5 * small for big, small in map(roles, a, b)])
    a_all = np.hstack([a, rng.normal(scale=0.3, size=(n_pairs, quiet))])
    b_all = np.hstack([b, rng.normal(scale=0.3, size=(n_pairs, quiet))])
    measured = np.hstack([truth, rng.normal(scale=0.3, size=(n_pairs, quiet))])
    measured += rng.normal(scale=0.1, size=measured.shape)
    keep = np.ones(a_all.shape, dtype=bool)
    fitted = fit_pair_roles(a_all, b_all, measured, keep)
    np.testing.assert_allclose(fitted.coefficients, [1.0, 0.0, 0.0, 0.5, 0.0, 0.0], atol=0.05)


def test_noise_gram_is_what_the_singles_noise_adds_to_the_normal_equations():
    rng = np.random.default_rng(5)
    a, b = (x[0] for x in _singles(rng, 1, n_genes=40))
    a[:20] *= 4.0  # a is the larger single on most genes: the roles hold under the noise
    var_a, var_b = rng.uniform(0.0, 0.02, size=40), rng.uniform(0.0, 0.02, size=40)
    exact = role_design(a, b)
    bias = noise_gram(a, b, var_a, var_b)
    draws = 5_000
    total = np.zeros((6, 6))
    features = pair_features(a, b)
    big, small = roles(a, b)
    a_bigger = np.abs(a) >= np.abs(b)
    for _ in range(draws):
        noise_a = rng.normal(scale=np.sqrt(var_a))
        noise_b = rng.normal(scale=np.sqrt(var_b))
        # the roles and features as given, each role's change measured with its own noise;
        # each draw and its mirror image, so that the noise's cross terms cancel exactly
        for sign in (1.0, -1.0):
            noisy_big = big + sign * np.where(a_bigger, noise_a, noise_b)
            noisy_small = small + sign * np.where(a_bigger, noise_b, noise_a)
            design = np.concatenate(
                [noisy_big[:, None] * features, noisy_small[:, None] * features], axis=1
            )
            total += design.T @ design / 2
    np.testing.assert_allclose(
        total / draws - exact.T @ exact, bias, atol=0.02 * np.abs(bias).max()
    )
    assert bias[:3, 3:].sum() == 0.0  # the two singles' noises are independent
    assert bias[0, 0] == pytest.approx(np.where(a_bigger, var_a, var_b).sum())


def _effective(fitted: PairRoles, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each role's coefficient averaged over the pairs, features included, ``(2,)``."""
    features = np.array([pair_features(x, y) for x, y in zip(a, b, strict=True)])
    return (features @ fitted.coefficients.reshape(2, 3).T).mean(axis=0)


def test_noisy_singles_attenuate_the_weaker_role_unless_their_noise_is_given():
    # pairs buffer the weaker single by half; on every gene the first single is the larger
    # by far (roles the noise cannot swap); the singles are measured with noise of half the
    # weaker one's typical change, so fitted on them as measured the weaker role looks more
    # damped than it is (errors in variables), by var(b) / (var(b) + noise) = 0.8
    rng = np.random.default_rng(0)
    n_pairs = 60
    a = rng.choice([-1.0, 1.0], size=(n_pairs, ROLE_GENES)) * (
        3.0 + np.abs(rng.normal(size=(n_pairs, ROLE_GENES)))
    )
    b = rng.normal(size=(n_pairs, ROLE_GENES))
    truth = np.array([big + 0.5 * small for big, small in map(roles, a, b)])
    variance = np.full(a.shape, 0.25)
    noisy_a = a + rng.normal(scale=0.5, size=a.shape)
    noisy_b = b + rng.normal(scale=0.5, size=b.shape)
    measured = truth + rng.normal(scale=0.1, size=a.shape)
    keep = np.ones(a.shape, dtype=bool)
    naive = fit_pair_roles(noisy_a, noisy_b, measured, keep)
    corrected = fit_pair_roles(noisy_a, noisy_b, measured, keep, noise=(variance, variance))
    assert _effective(naive, noisy_a, noisy_b)[1] == pytest.approx(0.4, abs=0.04)
    np.testing.assert_allclose(_effective(corrected, noisy_a, noisy_b), [1.0, 0.5], atol=0.05)


def test_noise_beyond_what_the_singles_vary_keeps_the_sum_not_a_wild_fit():
    # buffering pairs whose singles are declared far noisier than they vary: the corrected
    # normal equations are indefinite for every penalty, so no role fit is defined, and the
    # held-out pairs, scored by their realised error from the singles as measured, give no
    # gain to a saddle point of them: the sum of the singles is kept (the same pairs with
    # their true noise do fit); the shared-change fit, whose moment the declared noise
    # corrects, is undefined too (its shared part varies less than that noise): no wild
    # coefficient, the sum
    rng = np.random.default_rng(7)
    a, b = _singles(rng, 30)
    truth = np.array([big + 0.5 * small for big, small in map(roles, a, b)])
    measured = truth + rng.normal(scale=0.1, size=a.shape)
    keep = np.ones(a.shape, dtype=bool)
    assert not fit_pair_roles(a, b, measured, keep, noise=(np.zeros(a.shape),) * 2).is_additive
    huge = np.full(a.shape, 100.0)
    fitted = fit_pair_roles(a, b, measured, keep, noise=(huge, huge))
    assert fitted.is_additive and fitted.ridge == float("inf")
    shared = fit_pair_roles(a, b, measured, keep, noise=(huge, huge), shared_change=True)
    assert shared.is_additive and shared.ridge == float("inf")


def test_shared_noise_leaves_out_genes_neither_single_moves():
    # gene 0: both singles raise it, b less: b's error variance 0.1 is the shared part's.
    # gene 1: neither moves it, so it has no shared part (0 whatever the noise) and adds
    # nothing, though both signs are equal (0) and its variances are the largest
    a, b = np.array([2.0, 0.0]), np.array([1.0, 0.0])
    var_a, var_b = np.array([0.3, 0.5]), np.array([0.1, 0.5])
    assert shared_noise(a, b, var_a, var_b) == pytest.approx(0.1)


def test_penalised_solve_refuses_equations_with_no_minimum():
    gram = np.array([[2.0, 0.0], [0.0, -1.0]])  # what an over-corrected gram can be
    moment = np.array([1.0, 1.0])
    assert _penalised_solve(gram, moment, 0.5) is None  # -1 + 0.5: still no minimum
    np.testing.assert_allclose(_penalised_solve(gram, moment, 2.0), [0.25, 1.0])


def test_no_interaction_keeps_the_sum_of_the_singles():
    rng = np.random.default_rng(1)
    a, b = _singles(rng, 30)
    measured = a + b + rng.normal(scale=0.3, size=a.shape)
    keep = np.ones(a.shape, dtype=bool)
    fitted = fit_pair_roles(a, b, measured, keep)
    assert fitted.is_additive and fitted.ridge == float("inf") and fitted.loo_gain == 0.0
    # with the shared-change fit a share within its noise may remain, never much of one
    competing = fit_pair_roles(a, b, measured, keep, shared_change=True)
    np.testing.assert_array_equal(competing.coefficients, ADDITIVE)
    assert abs(competing.shared) < 0.05
    opposite = -np.abs(a) * np.sign(b)  # no gene moved alike: the shared fit is undefined
    assert fit_pair_roles(opposite, b, opposite + b, keep, shared_change=True).is_additive
    too_few = fit_pair_roles(a[:2], b[:2], measured[:2], np.ones((2, a.shape[1]), dtype=bool))
    assert too_few.is_additive and too_few.n_pairs == 2
    np.testing.assert_array_equal(too_few.predict(a[0], b[0]), a[0] + b[0])


def test_the_bar_for_a_gain_rises_as_pairs_get_few(monkeypatch):
    assert gain_bar(3) == pytest.approx(4.303, abs=1e-3)  # Student's t, 2 df, one-sided 2.5 %
    assert gain_bar(1000) == pytest.approx(1.962, abs=1e-3)
    assert gain_bar(5) > gain_bar(10) > gain_bar(50)
    # buffering pairs, 4 of them and noisy: their held-out gains are too spread to trust
    rng = np.random.default_rng(16)
    a, b = _singles(rng, 4)
    truth = np.array([big + 0.5 * small for big, small in map(roles, a, b)])
    measured = truth + rng.normal(scale=2.0, size=a.shape)
    keep = np.ones(a.shape, dtype=bool)
    assert fit_pair_roles(a, b, measured, keep).is_additive
    # a fixed bar of 2 standard errors would have kept the fit
    monkeypatch.setattr(_pair_roles, "gain_bar", lambda n_pairs: 2.0)
    assert not fit_pair_roles(a, b, measured, keep).is_additive


@pytest.mark.parametrize("grouped", [False, True])
def test_held_out_gain_equals_refitting_without_each_pair_and_its_gene_neighbours(grouped):
    rng = np.random.default_rng(2)
    a, b = _singles(rng, 12, n_genes=60)
    measured = np.array([big + 0.5 * small for big, small in map(roles, a, b)])
    measured += rng.normal(scale=0.3, size=a.shape)
    keep = rng.random(a.shape) > 0.1  # each pair leaves some genes out
    # 12 pairs of 8 genes: most pairs share a gene with others
    genes = [(f"g{i % 8}", f"g{(3 * i + 1) % 8}") for i in range(12)]
    fitted = fit_pair_roles(a, b, measured, keep, genes if grouped else None)
    assert np.isfinite(fitted.ridge)
    designs = [role_design(x[k], y[k]) for x, y, k in zip(a, b, keep, strict=True)]
    residuals = [m[k] - d @ ADDITIVE for m, k, d in zip(measured, keep, designs, strict=True)]
    gram = sum(d.T @ d for d in designs)
    penalty = fitted.ridge * np.trace(gram) / 6 * np.eye(6)
    held_out = additive = 0.0
    for i in range(len(designs)):
        shared = [j for j in range(len(designs)) if grouped and set(genes[j]) & set(genes[i])]
        rest = [j for j in range(len(designs)) if j != i and j not in shared]
        design = np.vstack([designs[j] for j in rest])
        target = np.concatenate([residuals[j] for j in rest])
        step = np.linalg.solve(design.T @ design + penalty, design.T @ target)
        held_out += np.sum((residuals[i] - designs[i] @ step) ** 2)
        additive += np.sum(residuals[i] ** 2)
    assert fitted.loo_gain == pytest.approx((additive - held_out) / additive, rel=1e-9)


def test_held_out_gain_of_the_shared_change_equals_refitting_it_without_each_group():
    rng = np.random.default_rng(12)
    a, b = _singles(rng, 12, n_genes=60)
    b[:, :30] = np.abs(b[:, :30]) * np.sign(a[:, :30])
    measured = a + b - 0.8 * shared_part(a, b) + rng.normal(scale=0.3, size=a.shape)
    genes = [(f"g{i % 8}", f"g{(3 * i + 1) % 8}") for i in range(12)]
    fitted = fit_pair_roles(a, b, measured, np.ones(a.shape, dtype=bool), genes, None, True)
    assert fitted.ridge == 0.0 and fitted.shared > 0
    columns = [-shared_part(x, y) for x, y in zip(a, b, strict=True)]
    residuals = measured - a - b
    held_out = additive = 0.0
    for i in range(12):
        rest = [j for j in range(12) if not set(genes[j]) & set(genes[i])]
        column, target = np.concatenate([columns[j] for j in rest]), residuals[rest].ravel()
        step = column @ target / (column @ column)
        held_out += np.sum((residuals[i] - step * columns[i]) ** 2)
        additive += np.sum(residuals[i] ** 2)
    assert fitted.loo_gain == pytest.approx((additive - held_out) / additive, rel=1e-9)


def test_non_finite_input_is_refused_in_one_line():
    a, b = _singles(np.random.default_rng(3), 4)
    measured = a + b
    measured[1, 3] = np.nan
    with pytest.raises(ps.PerturbsimError, match="pairs hold NaN"):
        fit_pair_roles(a, b, measured, np.ones(a.shape, dtype=bool))
    noise = np.zeros(a.shape)
    noise[0, 0] = np.inf
    with pytest.raises(ps.PerturbsimError, match="singles' noise of the training pairs hold NaN"):
        fit_pair_roles(a, b, a + b, np.ones(a.shape, dtype=bool), noise=(noise, noise))
    noise[0, 0] = -1.0
    with pytest.raises(ps.PerturbsimError, match="noise variances of the training pairs hold neg"):
        fit_pair_roles(a, b, a + b, np.ones(a.shape, dtype=bool), noise=(noise, noise))
    with pytest.raises(ps.PerturbsimError, match="need 6 coefficients"):
        PairRoles.from_dict({"coefficients": [1.0], "ridge": 1.0, "n_pairs": 3, "loo_gain": 0})


def test_round_trip_of_the_coefficients():
    roles_ = PairRoles(np.arange(6.0), 0.1, 12, 0.2)
    again = PairRoles.from_dict(roles_.to_dict())
    np.testing.assert_array_equal(again.coefficients, roles_.coefficients)
    assert (again.ridge, again.n_pairs, again.loo_gain, again.shared) == (0.1, 12, 0.2, 0.0)
    saturating = PairRoles.from_dict(PairRoles(ADDITIVE, 0.0, 9, 0.3, shared=0.7).to_dict())
    assert saturating.shared == 0.7 and not saturating.is_additive
    older = {"coefficients": ADDITIVE.tolist(), "ridge": 0.1, "n_pairs": 3, "loo_gain": 0.1}
    assert PairRoles.from_dict(older).shared == 0.0  # files saved before the shared change
    both = {**roles_.to_dict(), "shared": 0.5}
    with pytest.raises(ps.PerturbsimError, match="one fit or the other"):
        PairRoles.from_dict(both)


def test_on_the_simulated_screen_it_beats_the_sum_on_held_out_pairs():
    adata = split_small("combo", 0)
    interaction = PairInteraction(adata).fit()
    additive = Additive(adata).fit()
    assert not interaction.roles.is_additive and interaction.roles.loo_gain > 0
    test = [c for c in adata.uns["perturbsim"]["split"]["test"] if "+" in c]
    pairs = [c for c, ok in zip(test, additive.covers(test), strict=True) if ok]
    assert len(pairs) >= 5
    stats = ps.pp.compute_pseudobulk(adata)
    measured = stats.delta[stats.index(pairs)]
    errors = {
        name: np.mean((model.predict(pairs).layers["delta"] - measured) ** 2)
        for name, model in (("interaction", interaction), ("additive", additive))
    }
    assert errors["interaction"] < 0.9 * errors["additive"]


def test_the_shared_change_variant_fits_saves_and_loads_by_its_catalogue_name(tmp_path):
    # on this split the training pairs are best fitted as their sum less a share of the
    # change their singles share (the role fit holds out less well; on splits 0-3 the role fit wins)
    adata = split_small("combo", 4)
    model = ps.models.build_model("interaction_shared", adata).fit()
    assert model.shared_change and model.roles.shared > 0.5 and model.roles.ridge == 0.0
    assert PairInteraction(adata).fit().roles.shared == 0.0  # the default: role fits only
    test = [c for c in map(str, adata.uns["perturbsim"]["split"]["test"]) if "+" in c]
    pair = next(c for c, ok in zip(test, model.covers(test), strict=True) if ok)
    a, b = ps.pp.genes_of(pair)
    row = {g: i for i, g in enumerate(model.single_genes)}
    single_a, single_b = model.single_delta[row[a]], model.single_delta[row[b]]
    pred = model.predict([pair])
    unclipped = np.asarray(pred.X)[0] > 0  # predicted expression is floored at 0
    expected = single_a + single_b - model.roles.shared * shared_part(single_a, single_b)
    np.testing.assert_allclose(pred.layers["delta"][0][unclipped], expected[unclipped], atol=1e-5)
    model.save(tmp_path / "model")
    loaded = ps.models.PerturbationModel.load(tmp_path / "model")
    assert loaded.variant == "interaction_shared" and loaded.shared_change
    np.testing.assert_array_equal(loaded.predict([pair]).X, pred.X)


def _sparse_singles(rng: np.random.Generator, n: int, n_genes: int = 400) -> np.ndarray:
    """``n`` true singles, each moving a random fifth of the genes, the rest not at all."""
    moved = rng.random((n, n_genes)) < 0.2
    return np.where(moved, rng.normal(scale=0.6, size=(n, n_genes)), 0.0)


def test_stein_terms_are_what_the_singles_noise_adds_to_the_products_with_it():
    # fixed true singles measured many times with Gaussian noise: the products of the fits'
    # columns on the role genes with the singles' errors average what shared_noise,
    # selection_noise and noise_gram say (the threshold's term included: without it the
    # shared part's product is understated by about 40 %). The small role's is overstated
    # (by about 15 % here): on genes where the two singles are of like size and opposite
    # sign, noise swaps which is small, a jump Stein's lemma for a smooth column misses
    # (noise_gram's documentation)
    rng = np.random.default_rng(3)
    true_a, true_b = _sparse_singles(rng, 2)
    var_a, var_b = np.full(400, 0.04), np.full(400, 0.09)
    keep = np.ones(400, dtype=bool)
    realised, predicted, without_threshold = [], [], []
    for _ in range(3000):
        error_a = rng.normal(size=400) * np.sqrt(var_a)
        error_b = rng.normal(size=400) * np.sqrt(var_b)
        a, b = true_a + error_a, true_b + error_b
        k = role_genes(a, b, keep)
        big, small = roles(a[k], b[k])
        errors = (error_a + error_b)[k]
        realised.append([big @ errors, small @ errors, shared_part(a[k], b[k]) @ errors])
        stein = noise_gram(a[k], b[k], var_a[k], var_b[k])[[0, 3], [0, 3]]
        base = [*stein, shared_noise(a[k], b[k], var_a[k], var_b[k])]
        without_threshold.append(base)
        predicted.append(np.array(base) + selection_noise(a, b, var_a, var_b, keep, a + b)[:3])
    realised, predicted = np.mean(realised, axis=0), np.mean(predicted, axis=0)
    np.testing.assert_allclose(predicted[[0, 2]], realised[[0, 2]], rtol=0.05)
    assert realised[1] < predicted[1] < 1.25 * realised[1]
    assert np.mean(without_threshold, axis=0)[2] < 0.8 * realised[2]


def test_pairs_that_do_not_interact_keep_their_sum_at_the_noise_of_their_singles(monkeypatch):
    # additive pairs of singles that share a programme, measured with their noise:
    # uncorrected, the shared-change fit damps the singles' shared noise and reads it as
    # buffering; corrected for the noise and for the role genes being chosen on it, it
    # keeps (nearly) the sum, and the whole fit predicts the genes that move most as well
    rng = np.random.default_rng(4)
    programme = _sparse_singles(rng, 1)[0]
    genes = rng.uniform(0.5, 1.5, size=(12, 1)) * programme + _sparse_singles(rng, 12)
    measured = genes + rng.normal(size=genes.shape) * np.sqrt(0.05)
    pairs = [(i, j) for i in range(12) for j in range(i + 1, 12)]
    order = rng.permutation(len(pairs))
    train = [pairs[p] for p in order[:30]]
    test = [pairs[p] for p in order[30:50]]
    first, second = (np.array([measured[p[side]] for p in train]) for side in (0, 1))
    measured_pairs = np.array([genes[i] + genes[j] for i, j in train])
    measured_pairs += rng.normal(size=measured_pairs.shape) * np.sqrt(0.05)
    noise = (np.full(first.shape, 0.05), np.full(first.shape, 0.05))
    keep = np.ones(first.shape, dtype=bool)
    names = [(f"g{i}", f"g{j}") for i, j in train]
    fitted = fit_pair_roles(first, second, measured_pairs, keep, names, noise, True)
    errors = {"fit": [], "sum": []}
    for i, j in test:
        truth = genes[i] + genes[j]
        strongest_genes = np.argsort(-np.abs(truth))[:20]
        for name, model in (("fit", fitted), ("sum", PairRoles.additive())):
            error = model.predict(measured[i], measured[j]) - truth
            errors[name].append(np.mean(error[strongest_genes] ** 2))
    assert np.mean(errors["fit"]) < 1.05 * np.mean(errors["sum"])
    monkeypatch.setattr(_pair_roles, "RIDGES", ())  # the shared-change fit alone
    shared = fit_pair_roles(first, second, measured_pairs, keep, names, noise, True)
    assert shared.ridge == 0.0 and abs(shared.shared) < 0.05  # 0.025
    monkeypatch.setattr(_pair_roles, "shared_noise", lambda *_: 0.0)
    monkeypatch.setattr(_pair_roles, "selection_noise", lambda *_: np.zeros(4))
    uncorrected = fit_pair_roles(first, second, measured_pairs, keep, names, noise, True)
    assert uncorrected.shared > 0.15  # 0.21


def _mean_role_equations(true_a: np.ndarray, true_b: np.ndarray, draws: int = 1500):
    """Mean role-fit equations of a pair 0.7 times its singles' sum, measured ``draws`` times.

    Returns ``(corrected, without_choice_gram, true)``, each a ``(gram, moment)``: from the
    noisy singles less what their noise and the role genes' choice add; the same but for
    the choice's part of the gram; and from the true singles on the same genes.
    """
    rng = np.random.default_rng(5)
    variance, keep = np.full(400, 0.04), np.ones(400, dtype=bool)
    true_pair = 0.7 * (true_a + true_b)
    corrected, without_choice_gram, true = [], [], []
    for _ in range(draws):
        a = true_a + rng.normal(size=400) * 0.2
        b = true_b + rng.normal(size=400) * 0.2
        pair = true_pair + rng.normal(size=400) * 0.2
        k = role_genes(a, b, keep)
        features = pair_features(a[k], b[k])
        design = role_design(a[k], b[k])
        noise = noise_gram(a[k], b[k], variance[k], variance[k])
        choice_gram, choice_moment = selection_equations(
            selection_noise(a, b, variance, variance, keep, pair), features
        )
        gram = design.T @ design - noise
        moment = design.T @ (pair[k] - design @ ADDITIVE) + noise @ ADDITIVE - choice_moment
        corrected.append((gram - choice_gram, moment))
        without_choice_gram.append((gram, moment))
        big, small = roles(true_a[k], true_b[k])
        exact = np.concatenate([big[:, None] * features, small[:, None] * features], axis=1)
        true.append((exact.T @ exact, exact.T @ (true_pair[k] - exact @ ADDITIVE)))
    return tuple(
        tuple(np.mean([e[i] for e in equations], axis=0) for i in (0, 1))
        for equations in (corrected, without_choice_gram, true)
    )


def _big_coefficient(gram: np.ndarray, moment: np.ndarray) -> float:
    """The ``big`` role's coefficient from the equations' intercept block (1 is the sum)."""
    block = np.ix_([0, 3], [0, 3])
    return 1.0 + float(np.linalg.solve(gram[block], moment[[0, 3]])[0])


def test_corrected_role_equations_average_those_of_the_true_singles():
    # a pair 0.7 times the sum of its singles, the second single far the weaker (roles the
    # noise cannot swap), measured many times: the role fit's normal equations from the noisy
    # singles, less what their noise and the role genes' choice on it add, average those of
    # the true singles on the same genes; without the choice's part of the gram the big
    # role's own entry is 6 % high, and the fitted coefficient (1.0 is the sum) too close to 1
    rng = np.random.default_rng(5)
    corrected, without, true = _mean_role_equations(
        rng.normal(size=400), 0.2 * rng.normal(size=400)
    )
    np.testing.assert_allclose(corrected[0][0, 0], true[0][0, 0], rtol=0.01)
    np.testing.assert_allclose(corrected[1][0], true[1][0], rtol=0.02)
    assert without[0][0, 0] > 1.04 * true[0][0, 0]
    assert _big_coefficient(*corrected) == pytest.approx(0.70, abs=0.005)
    assert _big_coefficient(*without) > 0.705


def test_the_choice_of_role_genes_corrects_the_product_of_the_two_roles():
    # singles that move genes together (the weaker a third of the stronger, plus its own):
    # the choice adds to the product of the two roles' columns, and the corrected entry and
    # the small role's moment average the true singles' (without that term 3 % and 7 % off)
    rng = np.random.default_rng(6)
    true_a = rng.normal(size=400)
    corrected, _, true = _mean_role_equations(true_a, 0.3 * true_a + 0.1 * rng.normal(size=400))
    np.testing.assert_allclose(corrected[0][0, 3], true[0][0, 3], rtol=0.01)
    np.testing.assert_allclose(corrected[1][3], true[1][3], rtol=0.015)


def test_the_role_fit_reads_a_real_interaction_through_noisy_singles(monkeypatch):
    # 60 pairs 0.7 times their singles' sum, singles measured with noise (variance 0.04):
    # fitted (near no penalty) with the noise and the role genes' choice corrected, the big
    # role's coefficient is 0.70; without the choice's correction it is attenuated (0.68)
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.7, 1.4, size=(60, 1))
    true_a, true_b = (rng.normal(size=(60, 400)) * scale * s for s in (1.0, 0.2))
    a, b = (x + rng.normal(size=x.shape) * 0.2 for x in (true_a, true_b))
    pairs = 0.7 * (true_a + true_b) + rng.normal(size=a.shape) * 0.2
    keep, noise = np.ones(a.shape, dtype=bool), (np.full(a.shape, 0.04),) * 2
    chosen = [role_genes(x, y) for x, y in zip(a, b, strict=True)]
    features = np.array([pair_features(x[k], y[k]) for x, y, k in zip(a, b, chosen, strict=True)])

    def big_role(fitted: PairRoles) -> float:  # averaged over the pairs, as they predict
        return float((features @ fitted.coefficients[:3]).mean())

    monkeypatch.setattr(_pair_roles, "RIDGES", (1e-6,))
    assert big_role(fit_pair_roles(a, b, pairs, keep, None, noise)) == pytest.approx(
        0.70, abs=0.008
    )
    no_choice = (np.zeros((6, 6)), np.zeros(6))
    monkeypatch.setattr(_pair_roles, "selection_equations", lambda *_: no_choice)
    assert big_role(fit_pair_roles(a, b, pairs, keep, None, noise)) < 0.69


def test_on_a_tie_the_first_single_is_the_bigger_one_and_its_values_follow():
    a, b = np.array([2.0, -1.5]), np.array([-2.0, 1.5])  # equal sizes on both genes
    big, small = roles(a, b)
    np.testing.assert_array_equal(big, a)
    np.testing.assert_array_equal(small, b)
    big_noise, small_noise = roles(a, b, (np.array([0.1, 0.1]), np.array([0.3, 0.3])))
    np.testing.assert_array_equal(big_noise, [0.1, 0.1])
    np.testing.assert_array_equal(small_noise, [0.3, 0.3])


def test_the_choice_adds_nothing_when_every_candidate_is_a_role_gene():
    a, b = np.linspace(3.0, 0.1, ROLE_GENES + 1), np.linspace(2.0, 0.05, ROLE_GENES + 1)
    noise = np.full(ROLE_GENES + 1, 0.01)
    keep = np.ones(ROLE_GENES + 1, dtype=bool)
    assert np.all(selection_noise(a, b, noise, noise, keep, a + b) > 0)
    # exactly ROLE_GENES candidates, the targets left out: all chosen, no threshold
    keep[0] = False
    np.testing.assert_array_equal(selection_noise(a, b, noise, noise, keep, a + b), np.zeros(4))


def test_the_bar_is_on_the_standard_error_of_the_pairs_mean_gain(monkeypatch):
    # one penalty, no noise, each pair held out alone: its held-out gains by hand, and the
    # bar set just above, then just below, their t statistic (sample standard deviation)
    monkeypatch.setattr(_pair_roles, "RIDGES", (0.1,))
    rng = np.random.default_rng(16)
    a, b = _singles(rng, 6, n_genes=60)
    measured = np.array([big + 0.5 * small for big, small in map(roles, a, b)])
    measured += rng.normal(scale=1.0, size=a.shape)
    keep = np.ones(a.shape, dtype=bool)
    designs = [role_design(x, y) for x, y in zip(a, b, strict=True)]
    residuals = [m - d @ ADDITIVE for m, d in zip(measured, designs, strict=True)]
    grams = [d.T @ d for d in designs]
    moments = [d.T @ r for d, r in zip(designs, residuals, strict=True)]
    penalty = 0.1 * np.trace(sum(grams)) / 6 * np.eye(6)
    gains = []
    for i in range(6):
        step = np.linalg.solve(sum(grams) - grams[i] + penalty, sum(moments) - moments[i])
        gains.append(2 * step @ moments[i] - step @ grams[i] @ step)
    gains = np.array(gains)
    t = gains.mean() / (gains.std(ddof=1) / np.sqrt(6))
    assert t > 0 and sum(gains) > 0
    monkeypatch.setattr(_pair_roles, "gain_bar", lambda n_pairs: 1.04 * t)
    assert fit_pair_roles(a, b, measured, keep).is_additive
    monkeypatch.setattr(_pair_roles, "gain_bar", lambda n_pairs: 0.96 * t)
    fitted = fit_pair_roles(a, b, measured, keep)
    assert fitted.ridge == 0.1
    assert fitted.loo_gain == pytest.approx(gains.sum() / sum(r @ r for r in residuals))


def test_a_shared_change_shrunk_to_nothing_is_the_plain_sum():
    # additive pairs: the shared-change fit competes but its jackknife noise swamps it, so
    # the sum stands, reported as the sum (infinite penalty, nothing shrunk)
    rng = np.random.default_rng(0)
    a, b = _singles(rng, 8)
    b[:, :50] = np.abs(b[:, :50]) * np.sign(a[:, :50])
    measured = a + b + rng.normal(scale=1.5, size=a.shape)
    keep = np.ones(a.shape, dtype=bool)
    fitted = fit_pair_roles(a, b, measured, keep, shared_change=True)
    assert fitted.to_dict() == PairRoles.additive(8).to_dict()


def test_only_pairs_fit_the_roles_not_larger_sets():
    # a triple of measured singles is no pair: it does not enter the role fit
    adata = ps.ds.simulate(size="small", seed=0)
    labels = list(adata.obs["condition"].astype(str).unique())
    singles = {c for c in labels if c != "control" and "+" not in c}
    pair = next(c for c in labels if "+" in c and set(c.split("+")) <= singles)
    third = next(c for c in sorted(singles) if c not in pair.split("+"))
    labels = adata.obs["condition"].astype(str)
    adata.obs["condition"] = labels.where(labels != pair, f"{pair}+{third}")
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    ps.pp.split(adata, kind="none", seed=0, val_fraction=0.0)
    data = ScreenData.from_adata(adata)
    conditions = list(data.perturbed(data.train))
    genes = sorted({g for c in conditions for g in ps.pp.genes_of(c)})
    alone = [g for g in genes if g in conditions]
    singles_of = dict(zip(alone, data.changes(alone), strict=True))
    pairs = [
        c
        for c in conditions
        if len(ps.pp.genes_of(c)) == 2 and all(g in singles_of for g in ps.pp.genes_of(c))
    ]
    assert [c for c in conditions if len(ps.pp.genes_of(c)) == 3]  # the triple trains
    assert all(g in singles_of for g in ps.pp.genes_of(f"{pair}+{third}"))
    with_triple = _pair_roles.fit_pair_roles_on(singles_of, conditions, data)
    without = _pair_roles.fit_pair_roles_on(singles_of, pairs, data)
    assert with_triple.n_pairs == len(pairs)
    assert with_triple.to_dict() == without.to_dict()


def test_a_pair_is_predicted_from_the_features_of_its_role_genes():
    # the features are those of the genes the fit reads them on, not of every gene
    rng = np.random.default_rng(5)
    a = rng.normal(size=300) * np.r_[np.full(100, 3.0), np.full(200, 0.2)]
    b = rng.normal(size=300) * np.r_[np.full(100, 1.0), np.full(200, 0.5)]
    fitted = PairRoles(np.array([0.9, -0.2, 0.1, 0.4, 0.3, -0.2]), 0.1, 10, 0.2)
    keep = np.ones(300, dtype=bool)
    keep[:2] = False  # the pair's targets
    chosen = role_genes(a, b, keep)
    coefficients = fitted.coefficients
    features = pair_features(a[chosen], b[chosen])
    big, small = roles(a, b)
    expected = big * (coefficients[:3] @ features) + small * (coefficients[3:] @ features)
    np.testing.assert_allclose(fitted.predict(a, b, keep), expected, rtol=1e-12)


def test_the_interaction_model_reads_a_pairs_features_off_its_targets():
    adata = split_small("combo", 0)
    model = PairInteraction(adata).fit()
    assert not model.roles.is_additive and model.roles.shared == 0.0
    test = [str(c) for c in adata.uns["perturbsim"]["split"]["test"] if "+" in str(c)]
    pair = next(c for c in test if all(g in model.single_genes for g in ps.pp.genes_of(c)))
    genes = ps.pp.genes_of(pair)
    a, b = (model.single_delta[list(model.single_genes).index(g)] for g in genes)
    expected = model.roles.predict(a, b, _pair_roles.off_targets(model.genes, genes))
    pred = model.predict([pair])
    unclipped = np.asarray(pred.X)[0] > 0
    np.testing.assert_allclose(pred.layers["delta"][0][unclipped], expected[unclipped], atol=1e-5)
    # the targets move most: read with them, the features (and the prediction) differ
    assert not np.allclose(model.roles.predict(a, b)[unclipped], expected[unclipped], atol=1e-5)


def test_a_negative_shared_coefficient_moves_the_pair_beyond_its_sum():
    # nothing bounds the shared coefficient: below 0 a pair moves the genes both singles
    # move alike more than their sum
    a, b = np.array([2.0, -1.0, 3.0, 0.0]), np.array([0.5, -4.0, -3.0, 1.0])
    roles_fit = PairRoles(ADDITIVE.copy(), 0.0, 8, 0.01, shared=-0.3, shrink=0.5)
    assert not roles_fit.is_additive
    np.testing.assert_allclose(roles_fit.predict(a, b), a + b + 0.3 * shared_part(a, b))
    np.testing.assert_allclose(roles_fit.predict(a, b), [2.65, -5.3, 0.0, 1.0])
