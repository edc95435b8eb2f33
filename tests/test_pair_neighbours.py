"""Pair neighbours: a pair's interaction lent from the training pairs whose genes act alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

import perturbsim as ps
from perturbsim.models._pair_neighbours import (
    MIN_PAIRS,
    SPARSITY,
    PairNeighbours,
    beyond_singles,
    check_sparsity,
    cosine_similarity,
    pair_similarity,
    soft_threshold,
)

N_GENES = 60


def _every_gene(n_pairs: int) -> np.ndarray:
    """The fitted genes' mask of ``n_pairs`` pairs: every gene."""
    return np.ones((n_pairs, N_GENES), dtype=bool)


def _modules(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Singles of three modules (x, y, z) of four genes: each module moves its own genes."""
    singles = {}
    for m, module in enumerate("xyz"):
        pattern = np.zeros(N_GENES)
        pattern[10 * m : 10 * m + 10] = 1.0
        for i in range(4):
            singles[f"{module}{i}"] = pattern + 0.05 * rng.standard_normal(N_GENES)
    return singles


def _planted(rng: np.random.Generator) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """Training pairs: x with y switch on genes 40-49 (a new program); other pairs do nothing."""
    new_program = np.zeros(N_GENES)
    new_program[40:50] = 2.0
    pairs, residuals = [], []
    for a, b in [("x0", "y0"), ("x1", "y1"), ("x2", "y0"), ("x0", "y2"), ("x1", "y3")]:
        pairs.append((a, b))
        residuals.append(new_program + 0.1 * rng.standard_normal(N_GENES))
    for a, b in [("x0", "z0"), ("x2", "z1"), ("y1", "z2"), ("y2", "z3"), ("x3", "z3")]:
        pairs.append((a, b))
        residuals.append(0.1 * rng.standard_normal(N_GENES))
    return pairs, np.array(residuals), new_program


def test_a_pair_of_genes_alike_to_neomorphic_pairs_is_lent_their_new_program():
    rng = np.random.default_rng(0)
    singles = _modules(rng)
    pairs, residuals, new_program = _planted(rng)
    fitted = PairNeighbours.fit(pairs, residuals, singles, sparsity=None)
    assert fitted.power is not None and fitted.held_out_gain > 0.5
    lent = fitted.residual([("x3", "y3"), ("y3", "z1")], singles, _every_gene(2))
    # x3 and y3 were never paired with each other, but genes like them switch the program on
    assert np.corrcoef(lent[0], new_program)[0, 1] > 0.95
    assert lent[0][40:50].mean() > 1.5
    # a pair of y and z genes is like the pairs that did nothing
    assert np.abs(lent[1][40:50]).mean() < 0.2
    # the order of a pair's genes does not matter
    np.testing.assert_allclose(
        fitted.residual([("y3", "x3")], singles, _every_gene(1))[0], lent[0], atol=1e-12
    )


def test_without_structure_no_power_is_kept_and_nothing_is_lent():
    rng = np.random.default_rng(1)
    singles = _modules(rng)
    pairs, _, _ = _planted(rng)
    noise = rng.standard_normal((len(pairs), N_GENES))
    fitted = PairNeighbours.fit(pairs, noise, singles)
    assert fitted.power is None and fitted.held_out_gain == 0.0
    assert not fitted.residual([("x3", "y3")], singles, _every_gene(1)).any()
    assert not fitted.held_out(singles, _every_gene(len(pairs))).any()


def test_each_training_pair_is_held_out_from_its_own_residual():
    rng = np.random.default_rng(2)
    singles = _modules(rng)
    pairs, residuals, _ = _planted(rng)
    fitted = PairNeighbours.fit(pairs, residuals, singles, sparsity=None)
    held_out = fitted.held_out(singles, _every_gene(len(pairs)))
    # predicted from the others: close to its group's program, never its own noise exactly
    assert not np.allclose(held_out, residuals)
    similarity = pair_similarity(
        pairs,
        pairs,
        cosine_similarity(np.stack(list(singles.values()))),
        {g: i for i, g in enumerate(singles)},
    )
    np.fill_diagonal(similarity, 0.0)
    weights = similarity[0] ** fitted.power
    lent = weights @ residuals / weights.sum()
    a, b = (singles[g] for g in pairs[0])
    np.testing.assert_allclose(held_out[0], beyond_singles(lent, a, b, np.ones(N_GENES, bool)))


def test_only_what_lies_beyond_the_query_singles_is_lent():
    """A residual along the singles (how strongly they act) is the role coefficients' part."""
    rng = np.random.default_rng(4)
    singles = _modules(rng)
    pairs, residuals, new_program = _planted(rng)
    # every pair also buffers: each is damped by 30 % along its own singles
    damped = np.array(
        [r - 0.3 * (singles[a] + singles[b]) for (a, b), r in zip(pairs, residuals, strict=True)]
    )
    fitted = PairNeighbours.fit(pairs, damped, singles, sparsity=None)
    fitted_genes = _every_gene(1)
    fitted_genes[0, :5] = False  # e.g. the pair's targets
    lent = fitted.residual([("x3", "y3")], singles, fitted_genes)[0]
    # nothing along the query's singles on its fitted genes; the new program is still lent
    for gene in ("x3", "y3"):
        assert abs(lent[5:] @ singles[gene][5:]) < 1e-9
    assert np.corrcoef(lent[20:], new_program[20:])[0, 1] > 0.95
    assert lent[40:50].mean() > 1.5
    with pytest.raises(ps.PerturbsimError, match=r"mask has shape \(2, 60\), expected \(1, 60\)"):
        fitted.residual([("x3", "y3")], singles, _every_gene(2))


def test_cosine_similarity_clips_opposite_profiles_and_zero_rows():
    profiles = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    similarity = cosine_similarity(profiles)
    assert similarity[0, 1] == 0.0  # opposite changes are not alike
    assert not similarity[2].any()  # a single without change is like nothing
    assert similarity[0, 3] == pytest.approx(np.sqrt(0.5))


def test_bad_input_is_refused_and_saved_fields_round_trip():
    rng = np.random.default_rng(3)
    singles = _modules(rng)
    pairs, residuals, _ = _planted(rng)
    with pytest.raises(ps.PerturbsimError, match="one residual per pair"):
        PairNeighbours.fit(pairs[:-1], residuals, singles)
    bad = residuals.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ps.PerturbsimError, match="NaN"):
        PairNeighbours.fit(pairs, bad, singles)
    fitted = PairNeighbours.fit(pairs, residuals, singles)
    with pytest.raises(ps.PerturbsimError, match="'w0' of a pair was not measured alone"):
        fitted.residual([("x0", "w0")], singles, _every_gene(1))
    restored = PairNeighbours.from_dict(fitted.to_dict(), fitted.residuals)
    np.testing.assert_array_equal(
        restored.residual([("x3", "y3")], singles, _every_gene(1)),
        fitted.residual([("x3", "y3")], singles, _every_gene(1)),
    )
    with pytest.raises(ps.PerturbsimError, match="10 pairs but 9 residuals"):
        PairNeighbours.from_dict(fitted.to_dict(), fitted.residuals[:-1])
    few = PairNeighbours.fit(pairs[:2], residuals[:2], singles)
    assert few.power is None


def test_beyond_singles_in_degenerate_cases():
    lent = np.array([1.0, -2.0, 3.0, 0.5])
    a = np.array([1.0, 1.0, 0.0, 0.0])
    every = np.ones(4, dtype=bool)
    # singles that move no fitted gene leave the residual as it is
    zero = np.zeros(4)
    np.testing.assert_array_equal(beyond_singles(lent, zero, zero, every), lent)
    np.testing.assert_array_equal(beyond_singles(lent, a, a, np.zeros(4, dtype=bool)), lent)
    # collinear singles: what is left is orthogonal to their one direction, and finite
    left = beyond_singles(lent, a, 2.0 * a, every)
    assert np.isfinite(left).all() and abs(left @ a) < 1e-12
    np.testing.assert_allclose(left, [1.5, -1.5, 3.0, 0.5])
    # a 0/1 mask counts as a mask, not as indices
    b = np.array([0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(
        beyond_singles(lent, a, b, np.array([1, 1, 1, 0])),
        beyond_singles(lent, a, b, every != [0, 0, 0, 1]),
    )


def test_only_the_largest_entries_are_lent_shrunk_by_the_bulk():
    """Sparse lending keeps a new program and lends none of the training pairs' noise."""
    rng = np.random.default_rng(5)
    singles = _modules(rng)
    pairs, residuals, new_program = _planted(rng)
    dense = PairNeighbours.fit(pairs, residuals, singles, sparsity=None)
    sparse = PairNeighbours.fit(pairs, residuals, singles)
    assert sparse.sparsity == SPARSITY and sparse.power == dense.power
    whole = dense.residual([("x3", "y3")], singles, _every_gene(1))[0]
    lent = sparse.residual([("x3", "y3")], singles, _every_gene(1))[0]
    program = new_program > 0
    # the noise off the program was lent whole before, and is not lent now
    assert np.count_nonzero(whole[~program]) == (~program).sum()
    assert not lent[~program].any()
    # the program is lent, each entry shrunk by the same amount towards 0
    assert (lent[program] > 1.5).all()
    shrink = whole[program] - lent[program]
    assert 0 < shrink.min() and np.ptp(shrink) < 1e-12
    # each pair's bulk is measured on its own fitted genes, at fit (held out) as at prediction
    masks = _every_gene(len(pairs))
    masks[::2, :30] = False  # every other pair leaves half the genes out
    for pair_masks, lend in (
        (masks, lambda model, m: model.held_out(singles, m)),
        (masks[:2], lambda model, m: model.residual(pairs[:2], singles, m)),
    ):
        whole_rows, sparse_rows = lend(dense, pair_masks), lend(sparse, pair_masks)
        expected = [
            soft_threshold(row, mask, SPARSITY)
            for row, mask in zip(whole_rows, pair_masks, strict=True)
        ]
        np.testing.assert_array_equal(sparse_rows, expected)
        everywhere = soft_threshold(whole_rows[0], np.ones(N_GENES, bool), SPARSITY)
        assert not np.array_equal(sparse_rows[0], everywhere)


def test_soft_threshold_measures_the_bulk_on_the_fitted_genes_only():
    lent = np.array([5.0, 0.1, -0.1, 0.2, -0.2, 0.0, 1.0])
    every = np.ones(7, dtype=bool)
    # sigma = 1.4826 x median |lent - median| = 1.4826 x 0.2 over every gene
    np.testing.assert_allclose(
        soft_threshold(lent, every, 2.0), [5.0 - 0.59304, 0, 0, 0, 0, 0, 1.0 - 0.59304]
    )
    # targets left out of the fitted genes do not count in the bulk, but are shrunk too
    targets_out = every.copy()
    targets_out[[0, 6]] = False
    sigma = 1.4826 * 0.1
    np.testing.assert_allclose(
        soft_threshold(lent, targets_out, 2.0)[[0, 3, 6]],
        [5.0 - 2 * sigma, 0.0, 1.0 - 2 * sigma],
    )
    # no bulk to measure (no fitted gene, or most entries equal): lent as it is
    np.testing.assert_array_equal(soft_threshold(lent, np.zeros(7, dtype=bool), 3.0), lent)
    mostly_zero = np.array([0.0, 0.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(soft_threshold(mostly_zero, np.ones(5, bool), 3.0), mostly_zero)
    # no negative zeros
    assert not np.signbit(soft_threshold(-np.abs(lent) * every, every, 3.0)[1:6]).any()


def test_sparsity_is_checked_saved_and_absent_from_earlier_files():
    rng = np.random.default_rng(6)
    singles = _modules(rng)
    pairs, residuals, _ = _planted(rng)
    for bad in (-1.0, np.nan, np.inf, "3", [3], True):
        with pytest.raises(ps.PerturbsimError, match=r"sparsity must be a number >= 0 or None"):
            PairNeighbours.fit(pairs, residuals, singles, sparsity=bad)
    fitted = PairNeighbours.fit(pairs, residuals, singles, sparsity=np.float32(2.5))
    assert type(fitted.sparsity) is float and json.loads(json.dumps(fitted.to_dict()))
    assert PairNeighbours.from_dict(fitted.to_dict(), fitted.residuals).sparsity == 2.5
    corrupt = {**fitted.to_dict(), "sparsity": -1}
    with pytest.raises(ps.PerturbsimError, match=r"sparsity must be a number >= 0 or None"):
        PairNeighbours.from_dict(corrupt, fitted.residuals)
    # no training pairs: nothing is lent, the threshold is kept for the record
    empty = PairNeighbours.none(N_GENES, 2)
    assert empty.sparsity == 2.0 and empty.power is None
    assert not empty.residual([("x0", "y0")], singles, _every_gene(1)).any()
    with pytest.raises(ps.PerturbsimError, match=r"sparsity must be a number >= 0 or None"):
        PairNeighbours.none(N_GENES, -2)
    earlier = {k: v for k, v in fitted.to_dict().items() if k != "sparsity"}
    assert PairNeighbours.from_dict(earlier, fitted.residuals).sparsity is None


def test_soft_threshold_measures_the_bulk_around_its_median():
    lent = np.array([1.0, 1.1, 0.9, 1.2, 0.8, 1.0, 5.0])
    # median 1.0; absolute deviations 0, .1, .1, .2, .2, 0, 4: their median 0.1
    threshold = 3.0 * 1.4826 * 0.1
    np.testing.assert_allclose(
        soft_threshold(lent, np.ones(7, dtype=bool), 3.0), np.maximum(lent - threshold, 0.0)
    )


def test_a_sparsity_of_zero_is_accepted_and_lends_whole():
    assert check_sparsity(0) == 0.0
    lent = np.array([0.1, -0.4, 2.0, 0.0])
    np.testing.assert_array_equal(soft_threshold(lent, np.ones(4, dtype=bool), 0.0), lent)


def test_the_fewest_pairs_can_choose_a_power():
    # A+B, A+C, A+D with B, C, D acting alike: each pair is its neighbours' twin, and
    # the residual they share is predicted exactly from the others'
    genes = np.eye(4)
    singles = {"A": genes[0], "B": genes[1], "C": genes[1], "D": genes[1]}
    pairs = [("A", "B"), ("A", "C"), ("A", "D")]
    assert len(pairs) == MIN_PAIRS  # the fewest that can predict a residual
    residuals = np.tile([0.0, 0.0, 1.0, -2.0], (len(pairs), 1))
    fitted = PairNeighbours.fit(pairs, residuals, singles, sparsity=None)
    assert fitted.power is not None
    assert fitted.held_out_gain == pytest.approx(1.0)


def test_no_power_is_kept_when_none_gains_above_zero():
    # pairs of six genes whose singles are orthogonal: no pair is like another, each is
    # predicted 0 and the gain is exactly 0 at every power: not above 0
    genes = np.eye(6)
    singles = {g: genes[i] for i, g in enumerate("ABCDEF")}
    pairs = [("A", "B"), ("C", "D"), ("E", "F")]
    residuals = np.random.default_rng(0).normal(size=(3, 6))
    fitted = PairNeighbours.fit(pairs, residuals, singles)
    assert fitted.power is None and fitted.held_out_gain == 0.0
