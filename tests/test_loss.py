from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import Tensor

import perturbsim as ps
from perturbsim._errors import PerturbsimError
from perturbsim.module._loss import (
    GEARSLoss,
    _check_exponent,
    _heteroscedastic,
    _pad_cells,
    cell_error,
    difference_moments,
    direction_loss,
    masked_mean,
    moment_error,
    variance_from_log_moment,
)


def _autofocus_moment_loss(effect: Tensor, diff_moments: Tensor, mask: Tensor | None) -> Tensor:
    """The autofocus term as GEARSLoss forms it from moments (mean over masked genes)."""
    return masked_mean(moment_error(effect, diff_moments), mask).to(effect.dtype)


def _autofocus_cell_loss(effect, pert_cells, control_cells, mask, *, exponent=4.0, **pairing):
    """The autofocus term as GEARSLoss forms it from cells with random control pairing."""
    err = cell_error(effect, pert_cells, control_cells, exponent=exponent, **pairing)
    return masked_mean(err, mask)


def _uncertainty_moment_loss(effect, log_var, diff_moments, mask) -> Tensor:
    """The uncertainty term as GEARSLoss forms it from moments."""
    return _heteroscedastic(moment_error(effect, diff_moments), log_var, mask).to(effect.dtype)


def _zero_inflated(rng: np.random.Generator, n: int, rate: np.ndarray, dropout: float):
    """log1p counts of a Poisson-Gamma with extra dropout: non-negative, many exact zeros."""
    lam = rng.gamma(2.0, rate / 2.0, size=(n, rate.size))
    counts = rng.poisson(lam) * (rng.random((n, rate.size)) > dropout)
    return np.log1p(counts)


def _screen(seed: int = 0, n_cond: int = 5, n_genes: int = 40, n_ctrl: int = 17):
    rng = np.random.default_rng(seed)
    base = rng.gamma(1.0, 3.0, n_genes)
    ctrl = _zero_inflated(rng, n_ctrl, base, 0.3)
    cells = []
    for _ in range(n_cond):
        fold = np.exp(rng.normal(0, 0.7, n_genes))
        cells.append(_zero_inflated(rng, int(rng.integers(3, 12)), base * fold, 0.3))
    mask = rng.random((n_cond, n_genes)) < 0.7
    mask[0, :] = True
    effect = rng.normal(0, 0.8, (n_cond, n_genes))
    return cells, ctrl, mask, effect


def _raw_moments(x: np.ndarray, k: int) -> np.ndarray:
    return np.stack([np.mean(x**j, axis=0) for j in range(1, k + 1)])


def _diff(cells, ctrl, order):
    pm = np.stack([_raw_moments(c, 4) for c in cells], axis=1)  # (4, C, G)
    return difference_moments(pm, _raw_moments(ctrl, 4), order)


def autofocus_all_pairs(
    effect: Tensor,
    pert_cells: Sequence[Tensor] | Tensor,
    control_cells: Tensor,
    mask: Tensor | None,
    *,
    exponent: float = 4.0,
    counts: Tensor | Sequence[int] | None = None,
) -> Tensor:
    """Brute-force autofocus loss averaged over ALL (perturbed cell, control cell) pairs.

    The reference the moment and per-cell losses are checked against: memory grows as
    n_b x m x G per condition.
    """
    exponent = _check_exponent(exponent)
    cells, counts_t = _pad_cells(pert_cells, counts, effect.shape[0])
    ctrl = control_cells.to(effect.dtype)
    rows = []
    for b in range(effect.shape[0]):
        y = cells[b, : int(counts_t[b])].to(effect.dtype)
        resid = y[:, None, :] - ctrl[None, :, :] - effect[b]
        rows.append(resid.abs().pow(exponent).mean(dim=(0, 1)))
    return masked_mean(torch.stack(rows), mask)


@pytest.mark.parametrize("q", [2, 4])
def test_moment_loss_equals_all_pairings_and_gradient(q):
    cells, ctrl, mask, effect = _screen()
    dm = torch.from_numpy(_diff(cells, ctrl, q))
    m = torch.from_numpy(mask)
    z1 = torch.tensor(effect, requires_grad=True)
    z2 = torch.tensor(effect, requires_grad=True)
    fast = _autofocus_moment_loss(z1, dm, m)
    brute = autofocus_all_pairs(
        z2, [torch.from_numpy(c) for c in cells], torch.from_numpy(ctrl), m, exponent=q
    )
    assert fast.item() == pytest.approx(brute.item(), rel=1e-10)
    (g1,) = torch.autograd.grad(fast, z1)
    (g2,) = torch.autograd.grad(brute, z2)
    torch.testing.assert_close(g1, g2, rtol=1e-9, atol=1e-12)
    # genes outside the mask get no gradient, genes inside do
    assert torch.all(g1[~m] == 0)
    assert torch.all(g1[m] != 0)


def test_moment_loss_on_real_norman_cells(_norman_cached):
    adata = _norman_cached
    x = adata.X[:, :60].toarray().astype(np.float64)
    cond = adata.obs["perturbsim_condition"].to_numpy()
    names = ["KLF1", "KLF1+MAP2K6"]
    assert all((cond == n).sum() > 10 for n in names)
    cells = [x[cond == n] for n in names]
    ctrl = x[cond == "ctrl"]
    dm = torch.from_numpy(_diff(cells, ctrl, 4))
    effect = torch.from_numpy(cells[0].mean(0) - ctrl.mean(0))[None].repeat(len(names), 1)
    mask = torch.from_numpy(np.stack([c.mean(0) > 0 for c in cells]))
    fast = _autofocus_moment_loss(effect, dm, mask)
    brute = autofocus_all_pairs(
        effect, [torch.from_numpy(c) for c in cells], torch.from_numpy(ctrl), mask, exponent=4
    )
    assert fast.item() == pytest.approx(brute.item(), rel=1e-9)


def test_difference_moments_from_pseudobulk_stats(_norman_cached):
    stats = ps.pp.compute_pseudobulk(_norman_cached.copy())
    ci = stats.control_index
    dm = difference_moments(stats.moments, stats.moments[:, ci], 4)
    assert dm.shape == (5, len(stats.conditions), len(stats.genes))
    np.testing.assert_allclose(dm[0], 1.0)
    # E[a] is the pseudobulk change; the control's own E[a] is zero
    np.testing.assert_allclose(dm[1], stats.moments[0] - stats.moments[0, ci], atol=1e-12)
    np.testing.assert_allclose(dm[1, ci], 0.0, atol=1e-12)
    # E[a^2] = Var(y) + Var(c) + (E y - E c)^2 >= 0
    var = stats.moments[1] - stats.moments[0] ** 2
    expect = var + var[ci] + dm[1] ** 2
    np.testing.assert_allclose(dm[2], expect, rtol=1e-6, atol=1e-6)


def test_difference_moments_match_brute_force_and_accept_torch():
    cells, ctrl, _, _ = _screen(seed=3)
    dm = _diff(cells, ctrl, 4)
    for b, y in enumerate(cells):
        a = y[:, None, :] - ctrl[None, :, :]
        for k in range(5):
            np.testing.assert_allclose(dm[k, b], np.mean(a**k, axis=(0, 1)), rtol=1e-10, atol=1e-10)
    pm = np.stack([_raw_moments(c, 4) for c in cells], axis=1)
    ctrl_t = torch.from_numpy(_raw_moments(ctrl, 4))
    dt = difference_moments(torch.from_numpy(pm).float(), ctrl_t, 2)
    assert isinstance(dt, torch.Tensor) and dt.dtype == torch.float64 and dt.shape[0] == 3
    np.testing.assert_allclose(dt.numpy(), dm[:3], rtol=1e-5)
    with pytest.raises(PerturbsimError, match="order"):
        difference_moments(pm, _raw_moments(ctrl, 4), 5)


def test_moment_loss_float32_effect_is_accurate():
    cells, ctrl, mask, effect = _screen(seed=5)
    dm = torch.from_numpy(_diff(cells, ctrl, 4))
    z32 = torch.tensor(effect, dtype=torch.float32, requires_grad=True)
    loss = _autofocus_moment_loss(z32, dm, torch.from_numpy(mask))
    assert loss.dtype == torch.float32
    ref = _autofocus_moment_loss(torch.from_numpy(effect), dm, torch.from_numpy(mask))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    loss.backward()
    assert z32.grad.dtype == torch.float32 and torch.isfinite(z32.grad).all()


def test_moment_loss_rejects_odd_order():
    cells, ctrl, mask, effect = _screen()
    dm = torch.from_numpy(_diff(cells, ctrl, 3))
    with pytest.raises(PerturbsimError, match="even"):
        _autofocus_moment_loss(torch.from_numpy(effect), dm, torch.from_numpy(mask))


def test_empty_mask_rows_are_left_out():
    cells, ctrl, mask, effect = _screen()
    dm = torch.from_numpy(_diff(cells, ctrl, 4))
    z = torch.from_numpy(effect)
    m = torch.from_numpy(mask).clone()
    m[1] = False
    full = _autofocus_moment_loss(z, dm, m)
    keep = [0, 2, 3, 4]
    sub = _autofocus_moment_loss(z[keep], dm[:, keep], m[keep])
    assert full.item() == pytest.approx(sub.item(), rel=1e-12)


@pytest.mark.parametrize("q", [3.0, 4.0])
def test_random_pairing_is_unbiased_for_the_all_pairs_loss(q):
    cells, ctrl, mask, effect = _screen(seed=1, n_cond=3, n_genes=20, n_ctrl=9)
    ct = [torch.from_numpy(c) for c in cells]
    cc = torch.from_numpy(ctrl)
    z = torch.from_numpy(effect)
    m = torch.from_numpy(mask)
    exact = autofocus_all_pairs(z, ct, cc, m, exponent=q).item()
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [_autofocus_cell_loss(z, ct, cc, m, exponent=q, generator=gen) for _ in range(3000)]
    )
    se = draws.std().item() / math.sqrt(draws.numel())
    assert draws.std().item() > 0  # pairing is random
    assert abs(draws.mean().item() - exact) < 5 * se
    # reproducible with the same generator seed
    a = _autofocus_cell_loss(z, ct, cc, m, exponent=q, generator=torch.Generator().manual_seed(7))
    b = _autofocus_cell_loss(z, ct, cc, m, exponent=q, generator=torch.Generator().manual_seed(7))
    assert a.item() == b.item()


def test_cell_loss_padded_input_and_single_control_is_exact():
    cells, ctrl, mask, effect = _screen(seed=2)
    ctrl1 = torch.from_numpy(ctrl[:1])
    ct = [torch.from_numpy(c) for c in cells]
    padded = torch.nn.utils.rnn.pad_sequence(ct, batch_first=True, padding_value=99.0)
    counts = [c.shape[0] for c in cells]
    z = torch.from_numpy(effect)
    m = torch.from_numpy(mask)
    gen = torch.Generator().manual_seed(0)
    via_list = _autofocus_cell_loss(z, ct, ctrl1, m, exponent=2.5, generator=gen)
    via_pad = _autofocus_cell_loss(z, padded, ctrl1, m, exponent=2.5, generator=gen, counts=counts)
    exact = autofocus_all_pairs(z, ct, ctrl1, m, exponent=2.5)
    assert via_list.item() == pytest.approx(exact.item(), rel=1e-12)
    assert via_pad.item() == pytest.approx(exact.item(), rel=1e-12)


def test_direction_surrogate_has_gradient_where_sign_has_none():
    cells, ctrl, mask, effect = _screen()
    dm = torch.from_numpy(_diff(cells, ctrl, 2))
    target = torch.sign(dm[1])
    z = torch.tensor(effect * 0.1, requires_grad=True)
    loss = direction_loss(z, target, torch.from_numpy(mask), temperature=0.1)
    (g,) = torch.autograd.grad(loss, z)
    assert g.abs().sum() > 0
    # the reference's sign-based form has zero gradient
    z2 = torch.tensor(effect * 0.1, requires_grad=True)
    ref = (target - torch.sign(z2)).square().mean()
    (g2,) = torch.autograd.grad(ref, z2)
    assert g2.abs().sum() == 0
    # the gradient points the prediction towards the target sign
    m = torch.from_numpy(mask) & (target != 0)
    assert torch.all((-g[m]) * target[m] > 0)
    # perfectly aligned, confident predictions give a near-zero loss
    aligned = direction_loss(target * 10.0, target, None, temperature=0.1)
    assert aligned.item() < 1e-6
    with pytest.raises(PerturbsimError, match="temperature"):
        direction_loss(z, target, None, temperature=0.0)


@pytest.mark.parametrize("q", [2.0, 3.0, 4.0, 2.5])
def test_the_heads_moment_reads_back_as_the_variance_of_a_normal_error(q):
    rng = np.random.default_rng(0)
    sigma = np.array([0.1, 0.5, 2.0])
    errors = rng.normal(size=(200_000, 1)) * sigma
    log_moment = np.log(np.mean(np.abs(errors) ** q, axis=0))
    np.testing.assert_allclose(variance_from_log_moment(log_moment, q), sigma**2, rtol=0.02)
    with pytest.raises(PerturbsimError, match="exponent must be"):
        variance_from_log_moment(log_moment, 0.5)


def test_uncertainty_loss_minimum_is_log_expected_error():
    cells, ctrl, mask, effect = _screen(seed=4)
    dm = torch.from_numpy(_diff(cells, ctrl, 4))
    z = torch.from_numpy(effect)
    m = torch.from_numpy(mask)
    s_star = torch.log(moment_error(z, dm))
    for shift, sign in [(0.0, 0), (1.0, 1), (-1.0, -1)]:
        s = (s_star + shift).clone().requires_grad_(True)
        loss = _uncertainty_moment_loss(z, s, dm, m)
        (g,) = torch.autograd.grad(loss, s)
        if sign == 0:
            assert g.abs().max().item() < 1e-12
        else:
            assert torch.all(torch.sign(g[m]) == sign)
    at_min = _uncertainty_moment_loss(z, s_star, dm, m)
    assert at_min < _uncertainty_moment_loss(z, s_star + 0.3, dm, m)
    assert at_min < _uncertainty_moment_loss(z, s_star - 0.3, dm, m)
    # gradient descent on s alone converges to s*
    s = torch.zeros_like(z, requires_grad=True)
    opt = torch.optim.LBFGS([s], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = _uncertainty_moment_loss(z, s, dm, None)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    torch.testing.assert_close(s.detach(), s_star, atol=1e-3, rtol=0)


def test_gears_loss_combines_terms():
    cells, ctrl, mask, effect = _screen()
    dm = torch.from_numpy(_diff(cells, ctrl, 4))
    z = torch.tensor(effect, requires_grad=True)
    m = torch.from_numpy(mask)
    s = torch.zeros_like(z, requires_grad=True)
    fn = GEARSLoss(direction_weight=0.5)
    assert fn.uses_moments and fn.order == 4
    terms = fn(z, s, mask=m, diff_moments=dm)
    af = _autofocus_moment_loss(z, dm, m)
    dr = direction_loss(z, torch.sign(dm[1]), m, temperature=0.1)
    un = _uncertainty_moment_loss(z, s, dm, m)
    assert terms.autofocus.item() == pytest.approx(af.item(), rel=1e-12)
    assert terms.direction.item() == pytest.approx(dr.item(), rel=1e-12)
    assert terms.uncertainty.item() == pytest.approx(un.item(), rel=1e-12)
    assert terms.total.item() == pytest.approx((af + 0.5 * dr + un).item(), rel=1e-12)
    terms.total.backward()
    assert z.grad.abs().sum() > 0 and s.grad.abs().sum() > 0
    # the q = 2 loss reads the first three moment rows of an order-4 table
    t2 = GEARSLoss(gamma=0.0)(z, mask=m, diff_moments=dm)
    assert t2.uncertainty is None
    assert t2.autofocus.item() == pytest.approx(
        _autofocus_moment_loss(z, dm[:3], m).item(), rel=1e-12
    )


def test_gears_loss_cell_path_for_odd_exponent():
    cells, ctrl, mask, effect = _screen()
    fn = GEARSLoss(gamma=1.0)
    assert not fn.uses_moments
    z = torch.from_numpy(effect)
    m = torch.from_numpy(mask)
    ct = [torch.from_numpy(c) for c in cells]
    with pytest.raises(PerturbsimError, match="pert_cells"):
        fn(z, mask=m, diff_moments=torch.from_numpy(_diff(cells, ctrl, 4)))
    terms = fn(
        z,
        mask=m,
        direction=torch.sign(z),
        pert_cells=ct,
        control_cells=torch.from_numpy(ctrl),
        generator=torch.Generator().manual_seed(0),
    )
    expect = _autofocus_cell_loss(
        z, ct, torch.from_numpy(ctrl), m, exponent=3.0, generator=torch.Generator().manual_seed(0)
    )
    assert terms.autofocus.item() == pytest.approx(expect.item(), rel=1e-12)
    with pytest.raises(PerturbsimError, match=r"^exponent 3.0 is not an even integer"):
        fn.order  # noqa: B018


def test_masked_mean_averages_each_condition_first_and_leaves_empty_ones_out():
    values = torch.tensor([[1.0, 2.0, 3.0], [10.0, 0.0, 0.0], [7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    # (mean(1, 2, 3) + mean(10)) / 2, not the pooled (1 + 2 + 3 + 10) / 4
    assert float(masked_mean(values, mask)) == pytest.approx(6.0)
    assert float(masked_mean(values[:2], mask[:2])) == pytest.approx(6.0)


def test_direction_loss_is_the_mean_squared_miss_of_the_smoothed_sign():
    effect = torch.tensor([[0.05, -0.2, 0.0], [0.3, 0.01, -0.02]], dtype=torch.float64)
    direction = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    loss = direction_loss(effect, direction, mask, temperature=0.1)
    missed = (direction - torch.tanh(effect / 0.1)).square()
    expected = (missed[0, :2].mean() + missed[1].mean()) / 2  # each condition first
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
