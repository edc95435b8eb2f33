"""How two measured singles combine in a pair: Norman's coefficients, predicted from the singles.

Norman et al. (Science 2019) describe a pair ``A+B`` by fitting its change as
``c1·ΔA + c2·ΔB``: ``c`` near 1 is additive, below 1 buffering (the pair moves genes less than
the sum), above 1 synergy. The coefficients differ between pairs, so the sum of the singles
(the additive baseline) carries no interaction at all. Here they are *predicted* from the two
measured singles, with a handful of coefficients fitted on the training pairs:

- on each gene the two singles play two **roles**, the one with the larger change there
  (``big``) and the other (``small``): buffering keeps the stronger effect and damps the
  weaker, so each role has its own coefficient;
- each role's coefficient is linear in three **features** of the pair: 1, the cosine
  similarity of the two singles' changes (genes acting in one programme buffer each other
  when they reach it together; unrelated ones add) and ``|log(|ΔA| / |ΔB|)|`` (a pair of
  unequal strength is dominated by its stronger member).

Both the fit and the features read each pair on its :data:`ROLE_GENES` genes where the singles
change most (off the pair's targets): the genes where neither single moves out of its noise
decide nothing of how the two combine, and on all genes they outweigh the rest. The six
coefficients are fitted by least squares on every training pair whose two genes were measured
alone (each pair's own targets left out), corrected for the noise of the measured singles when
their error variances are given (:func:`noise_gram`: errors in variables attenuate the weaker
single's coefficient, and with it the interaction of unequal pairs; :func:`selection_noise` and
:func:`selection_equations`: the role genes are chosen on those same noisy singles, which adds a
term at the choice's threshold to both sides of the equations; corrected in the moments only, as
until the fiftieth pass, it attenuated a real interaction towards the sum: true ``c_big`` 0.70
read at 0.71 from the expected equations where the roles are clear, 0.70 with the gram corrected
too), with a ridge penalty pulling them towards the sum of the singles (coefficients 1, 0, 0 for
both roles). The penalty is chosen by the held-out error among :data:`RIDGES`, each pair held
out together with every pair sharing one of its genes (pairs sharing a gene are not independent:
held out alone, a pair is predicted by coefficients fitted on its genes' other pairs, an
optimistic test when few genes make many pairs), and an infinite penalty (the sum itself) is
kept unless some penalty predicts the held-out pairs better, consistently: the mean over pairs
of each pair's held-out gain must pass a one-sided t-test at level :data:`LEVEL` (a lower
held-out error alone is too easy a bar for six coefficients on a handful of noisy pairs; the
bar, :func:`gain_bar`, is 4.3 standard errors for 3 pairs, 2.8 for 5, 2.0 for many). With no
interaction to learn, or too few pairs to tell, the prediction is the additive baseline (with
``shared_change``, see below: a small shared coefficient may remain; at the noise of real
singles a role fit close to the sum is still chosen on most draws of pairs without interaction,
its error on their strongest genes 0.99-1.01 times the sum's,
``benchmarks/bench_additive_pairs.py``). The held-out fits reuse per-pair normal equations, so
the choice costs little more than one fit.

With ``shared_change`` (on in the default model, :class:`~perturbsim.models.Stacked`, for its
pairs of measured singles; opt-in for :class:`PairInteraction`, ``interaction_shared`` in the
catalogue; how it was chosen: ``benchmarks/RESULTS.md``) one more candidate competes with the
role fits on the same held-out error and bar: the pair as its singles' sum less a share
``shared`` of the change they **share** gene by gene (:func:`shared_part`: where both singles
move a gene the same way, the smaller of the two moves; 0 where they disagree). One coefficient:
``shared`` 0 is the sum, 1 the larger single wherever the two agree (a pathway both reach
saturates, so the pair moves its genes no further than its stronger member), and pairs whose
singles are alike lose the most, unlike ones nothing. It is fitted by least squares on the same
genes, its moment corrected for the singles' noise as the role fit's is (:func:`shared_noise`,
:func:`selection_noise`; its gram is not, so the noise attenuates the coefficient towards the
sum; where the singles' shared part varies no more than their noise says it would, the fit is
undefined and does not compete). Uncorrected (until the forty-ninth pass) the singles' noise
inflated it: the measured pair's residual about the sum of its singles carries minus their
errors, which the shared part of two noisy singles shares, so the fit damped the singles'
co-directional noise and read it as buffering (on exactly additive pairs built from simulated
singles at their own noise, ``benchmarks/bench_additive_pairs.py``, a shared coefficient of
0.2-1.1 and 1.07-1.6 times the sum's error on their strongest genes; with the corrections -0.01
to 0.02 and 0.99-1.01; ``benchmarks/RESULTS.md``). Nothing bounds it: above 1 a pair moves the
genes both singles move alike less than its stronger single does, below 0 more than their sum.

Where no fit passes the bar, the shared-change fit is not dropped but **shrunk by its noise**
(:func:`~perturbsim.models._stacking.james_stein_factor`, as the default model's weights are:
its coefficient times ``max(0, 1 - σ² / shared²)``, ``σ²`` the jackknife variance of the
coefficient refitted without each pair's held-out group), so that a buffering the training
pairs agree on but cannot yet show in held-out error still shapes the pairs, in proportion
to how well it is determined; a coefficient within its noise is 0, the sum (on pairs with
no interaction a small share remains one time in three to five: in synthetic tests of 5 to
30 pairs, ``|shared|`` at most 0.07, its median 0.005-0.02). Each refit leaves out a pair's
held-out group (the pair and every pair sharing a gene), several pairs, and strays the
further the more it leaves out, so ``σ²`` is the delete-d jackknife's: each refit's squared
deviation weighted by ``(n - d) / d``, ``d`` the pairs it left out (the plain delete-one
formula, with every ``d`` 1, overstated ``σ²`` by about the groups' size). A refit left with
no pair (a group holding every pair) defines nothing, and the sum stands. Both the shrinkage
and its delete-d jackknife were chosen by rules written before their runs, on screens no
earlier choice had used (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from scipy.stats import t as student_t

from .._checks import check_flag
from .._errors import PerturbsimError
from ..pp import genes_of
from ._base import GeneSet
from ._data import ScreenData
from ._simple import Additive
from ._stacking import james_stein_factor, strongest

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

RIDGES: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""Ridge penalties tried, relative to the mean diagonal of the normal equations."""
ADDITIVE = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
"""The coefficients of the sum of the singles: ``big`` and ``small`` both at 1."""
MIN_PAIRS = 3
"""Fewest training pairs that fit coefficients; with fewer the sum of the singles is kept."""
ROLE_GENES = 100
"""Genes of a pair its role coefficients are fitted on and its features computed from: those
where its larger single change is largest (:func:`role_genes`). Least squares over every gene
is decided by the thousands that barely move, on which the singles are noise and the
weaker one's coefficient is attenuated the more, the weaker it is (errors in variables), so
that an unequal pair looks damped. The number is the default model's ``FIT_GENES``, for
the same reason. Chosen on development screens (simulated Norman-sized, simulator seeds
1-3, never the scoreboard's 0; ``combo`` split; the test pairs judged against the
simulator's noiseless truth on their top-20 genes): fitting ``interaction`` on these genes
instead of all lowered that error on all 8 splits tried (seed 1, splits 1-2: 0.040 to
0.027; seeds 2 and 3, splits 1-3: 0.074 to 0.065 and 0.095 to 0.080; on 300 genes, seed 1:
0.030). It did not rank genetic interactions better on seeds 2 and 3 (precision@10 of
suppression 0.03 and 0.07 against 0.03 and 0.13 on all genes), only on seed 1."""
BOUNDARY_GENES = 20
"""Candidate genes either side of the :data:`ROLE_GENES`-th whose larger changes estimate the
density at the role genes' threshold (:func:`selection_noise`). Chosen on development screens
(simulated ``small`` seed 57 and Norman-sized seed 37, pairs built without interaction): the
shared coefficient left by 5, 10 and 20 either side -0.036, -0.024 and -0.011 on ``small``,
-0.012, -0.007 and -0.003 on Norman-sized (0.169 and 0.050 without the term), with the density
then read as ``n / span``, which a review found overstates it by about ``n / (n - 2)`` (5 % at
40 genes, 25 % at 10) and likely made most of that trend; the density has been ``(n - 2) /
span`` since the fiftieth pass (rule H50, ``benchmarks/RESULTS.md``), the window as chosen."""
LEVEL = 0.025
"""Level of the one-sided t-test the mean held-out gain over pairs must pass for a fit to be
kept."""


def gain_bar(n_pairs: int) -> float:
    """How many standard errors the mean held-out gain of ``n_pairs`` pairs must exceed.

    The ``1 - LEVEL`` quantile of Student's t with ``n_pairs - 1`` degrees of freedom: 2.0
    for many pairs, more for a few (4.3 for 3), whose spread is itself poorly known.
    """
    return float(student_t.ppf(1.0 - LEVEL, n_pairs - 1))


def pair_features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The features of a pair from its singles' changes: 1, cosine, ``|log(|a| / |b|)|``.

    Parameters
    ----------
    a, b
        ``(G,)`` the two singles' changes (on the genes the pair is fitted on).

    Returns
    -------
    ``(3,)`` float64; 0 for the cosine and the log ratio when a single has no change.
    """
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if norm_a == 0.0 or norm_b == 0.0:
        return np.array([1.0, 0.0, 0.0])
    return np.array([1.0, float(a @ b) / (norm_a * norm_b), abs(np.log(norm_a / norm_b))])


def role_genes(a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Mask of the :data:`ROLE_GENES` genes among ``keep`` where ``max(|a|, |b|)`` is largest.

    Parameters
    ----------
    a, b
        ``(G,)`` the two singles' changes.
    keep
        ``(G,)`` mask of the genes to choose from (default all; a pair's targets left out).

    Returns
    -------
    ``(G,)`` bool; every gene of ``keep`` when it holds fewer.
    """
    candidates = np.flatnonzero(keep) if keep is not None else np.arange(len(a))
    larger = np.maximum(np.abs(a[candidates]), np.abs(b[candidates]))
    mask = np.zeros(len(a), dtype=bool)
    mask[candidates[strongest(larger, ROLE_GENES)]] = True
    return mask


def roles(
    a: np.ndarray, b: np.ndarray, values: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Gene by gene, the single with the larger absolute change and the other.

    Returns ``(big, small)``; ``a`` is ``big`` on ties. With ``values``, a pair ``(x, y)``
    belonging to ``a`` and ``b`` (e.g. their error variances), returns those instead, in
    the same roles.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([1.0, -3.0]), np.array([-2.0, 1.0])
    >>> roles(a, b)
    (array([-2., -3.]), array([1., 1.]))
    >>> roles(a, b, (np.array([0.1, 0.1]), np.array([0.2, 0.2])))
    (array([0.2, 0.1]), array([0.1, 0.2]))
    """
    x, y = (a, b) if values is None else values
    a_bigger = np.abs(a) >= np.abs(b)
    return np.where(a_bigger, x, y), np.where(a_bigger, y, x)


def shared_part(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Gene by gene, the change two singles share: the smaller one where both move a gene alike.

    0 where they move it in opposite directions or either leaves it unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> shared_part(np.array([2.0, -1.0, 3.0, 0.0]), np.array([0.5, -4.0, -3.0, 1.0]))
    array([ 0.5, -1. ,  0. ,  0. ])
    """
    alike = np.sign(a) == np.sign(b)
    return np.where(alike, np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)


def shared_noise(a: np.ndarray, b: np.ndarray, var_a: np.ndarray, var_b: np.ndarray) -> float:
    """What the singles' noise adds, in expectation, to their :func:`shared_part`'s product with it.

    With singles measured with independent Gaussian errors of variances ``var_a`` and
    ``var_b``, the shared part's expected product with the sum of those errors is, by
    Stein's lemma (the shared part is continuous and, almost everywhere, moves one for one
    with the smaller single where both move a gene alike, else not at all), the smaller
    single's error variance summed over the genes both move alike. Its estimate, that sum
    read off the measured singles, is what :func:`fit_pair_roles` removes from the
    shared-change fit's moment: the measured pair's residual about the sum of the singles
    carries minus their errors, so without it a pair with no interaction looks buffered
    (the fit damps the singles' shared noise).

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([2.0, -1.0, 3.0, 0.0]), np.array([0.5, -4.0, -3.0, 1.0])
    >>> round(shared_noise(a, b, np.full(4, 0.1), np.full(4, 0.2)), 6)  # b smaller, then a
    0.3
    """
    alike = (np.sign(a) == np.sign(b)) & (a != 0.0)
    _, smaller = roles(a, b, (var_a, var_b))
    return float(smaller[alike].sum())


def selection_noise(
    a: np.ndarray,
    b: np.ndarray,
    var_a: np.ndarray,
    var_b: np.ndarray,
    keep: np.ndarray,
    pair: np.ndarray,
) -> np.ndarray:
    """What choosing the :func:`role_genes` on the noisy singles adds to the fits' products.

    The role genes are those whose larger change ``m = max(|a|, |b|)`` passes a threshold
    ``t`` read off the same singles, so the noise that lifts a gene over ``t`` is the noise
    the fits then multiply. Stein's lemma on a product ``g`` of the measured values,
    restricted to ``m > t``, gives beside the terms of :func:`noise_gram` and
    :func:`shared_noise` one at the threshold: the larger single's error variance times
    ``g``'s derivative in that single, times the sign of the larger single, times the
    density of ``m`` at ``t``. Each term returned is that of a product of the larger
    single's error with a column, summed over the genes about the threshold: the ``big``
    role's column (:func:`roles`; its square's term is twice it, and the role fit's
    product of the two roles' columns reads the ``small`` one's), the ``small`` role's, the
    :func:`shared_part` (the shared-change fit's) and the measured pair (the role fit's
    product with it). :func:`selection_equations` assembles the role fit's. The density is
    estimated from the :data:`BOUNDARY_GENES` candidates ranked either side of the
    :data:`ROLE_GENES`-th: ``n`` of them span ``n - 1`` gaps of the ordered ``m``, so
    ``(n - 2) / span`` estimates it without bias (of an exponential gap's rate), and the
    products are their mean. On pairs without interaction, omitting the term left the
    noise-corrected shared coefficient at 0.05-0.17 (:data:`BOUNDARY_GENES`).

    Parameters
    ----------
    a, b
        ``(G,)`` the two singles' changes.
    var_a, var_b
        ``(G,)`` their error variances.
    keep
        ``(G,)`` mask of the genes the role genes are chosen from.
    pair
        ``(G,)`` the measured change of the pair (measured in other cells than the singles).

    Returns
    -------
    ``(4,)``: the threshold's term of the larger single's error times the ``big`` role's
    column (before its features), the ``small`` role's, the :func:`shared_part` and the
    measured pair, each taken with the larger single's sign; 0 where every candidate is a
    role gene or the span is 0.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.linspace(3.0, 0.1, 300), np.linspace(2.0, 0.05, 300)
    >>> noise, keep = np.full(300, 0.01), np.ones(300, dtype=bool)
    >>> selection_noise(a, b, noise, noise, keep, 0.5 * (a + b)).round(4)
    array([2.0443, 1.3573, 1.3573, 1.7008])
    >>> selection_noise(a[:50], b[:50], noise[:50], noise[:50], keep[:50], a[:50] + b[:50])
    array([0., 0., 0., 0.])
    """
    candidates = np.flatnonzero(keep)
    if len(candidates) <= ROLE_GENES:
        return np.zeros(4)
    larger = np.maximum(np.abs(a[candidates]), np.abs(b[candidates]))
    order = np.argsort(-larger, kind="stable")
    window = order[max(0, ROLE_GENES - BOUNDARY_GENES) : ROLE_GENES + BOUNDARY_GENES]
    span = float(larger[window[0]] - larger[window[-1]])
    if span <= 0.0:
        return np.zeros(4)
    genes = candidates[window]
    big, small = roles(a[genes], b[genes])
    variance, _ = roles(a[genes], b[genes], (var_a[genes], var_b[genes]))
    side = np.sign(big)
    columns = [np.abs(big), small * side, np.abs(shared_part(big, small)), pair[genes] * side]
    return np.stack(columns) @ variance * (len(window) - 2) / (len(window) * span)


def selection_equations(
    threshold: np.ndarray, features: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What choosing the role genes on the noisy singles adds to the role fit's equations.

    From :func:`selection_noise`'s ``threshold`` terms ``(t_big, t_small, _, t_pair)`` and
    the pair's :func:`pair_features` ``f``: the gram of :func:`role_design` gains ``2·t_big
    f fᵀ`` in the ``big`` role's block and ``t_small f fᵀ`` in the two cross blocks (the
    choice reads the larger change only, so the ``small`` role's own block gains nothing);
    its product with the measured pair gains ``t_pair f`` in the ``big`` role's rows, and
    the moment about the sum (``designᵀ (pair - design · sum)``) that less the gram's gain
    times the sum's coefficients. On pairs with no interaction ``t_pair`` is about ``t_big
    + t_small`` and the moment's gain ``(-t_big f, -t_small f)``; leaving out the gram's
    gain (as until the fiftieth pass) attenuated a real interaction towards the sum.

    Returns
    -------
    ``(gram (6, 6), moment (6,))``: the expected excess of each over that of the true
    singles, both to subtract.

    Examples
    --------
    >>> import numpy as np
    >>> gram, moment = selection_equations(np.array([2.0, 1.0, 0.0, 3.0]), np.array([1.0, 0, 0]))
    >>> gram[[0, 0, 3], [0, 3, 3]], moment[[0, 3]]  # big-big, big-small, small-small
    (array([4., 1., 0.]), array([-2., -1.]))
    """
    block = np.array([[2.0 * threshold[0], threshold[1]], [threshold[1], 0.0]])
    gram = np.kron(block, np.outer(features, features))
    with_pair = np.concatenate([threshold[3] * features, np.zeros_like(features)])
    return gram, with_pair - gram @ ADDITIVE


def role_design(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The pair's design matrix: each role's change times each feature, ``(G, 6)``.

    Columns ``big·f`` then ``small·f`` (:func:`roles`) for the features ``f`` of
    :func:`pair_features`.
    """
    big, small = roles(a, b)
    features = pair_features(a, b)
    return np.concatenate([big[:, None] * features, small[:, None] * features], axis=1)


def noise_gram(a: np.ndarray, b: np.ndarray, var_a: np.ndarray, var_b: np.ndarray) -> np.ndarray:
    """What the singles' noise adds to a pair's normal equations, ``(6, 6)``.

    With singles measured with independent errors of variances ``var_a`` and ``var_b``
    (and the pair measured in other cells), the expected ``designᵀ design`` of
    :func:`role_design` exceeds that of the true singles by the features' outer product
    times each role's summed error variance, the roles and features taken as given, while
    ``designᵀ measured`` is unbiased. Subtracting it from the normal equations, and
    correcting the additive residual alike, is the method-of-moments correction for
    errors in variables: without it the coefficients are attenuated by each role's noise
    share, the weaker single's of an unequal pair most, so that unequal pairs look damped.
    The control's noise, which every change shares, is left out: with many control cells
    it is small beside each condition's own.

    The roles are read from the noisy singles, so on a gene where the two are of similar
    size the noise also decides which is ``small``, and the value it gives that role is the
    smaller one: its excess variance is less than its error variance and the correction
    overshoots (on synthetic pairs whose roles swap gene by gene, a true ``small``
    coefficient of 0.5 is estimated at 0.71, at 0.50 without the correction; with roles
    that noise cannot swap, 0.51 against 0.41). On development screens (simulated
    Norman-sized, simulator seeds 2-5) correcting only the genes whose roles are clear
    (sizes 2 standard errors apart) ranked interactions less well than correcting every
    gene (Spearman correlation of the predicted with the true magnitude 0.18 against 0.20,
    ``interaction``, in a first version of the fit).

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([2.0, 3.0]), np.array([0.0, 1.0])  # a is the bigger on both genes
    >>> bias = noise_gram(a, b, var_a=np.full(2, 0.25), var_b=np.full(2, 0.5))
    >>> float(bias[0, 0]), float(bias[3, 3]), float(bias[0, 3])  # big, small, no cross term
    (0.5, 1.0, 0.0)
    """
    big, small = (float(v.sum()) for v in roles(a, b, (var_a, var_b)))
    features = pair_features(a, b)
    n = features.size
    bias = np.zeros((2 * n, 2 * n))
    bias[:n, :n] = big * np.outer(features, features)
    bias[n:, n:] = small * np.outer(features, features)
    return bias


@dataclass(frozen=True, eq=False)
class PairRoles:
    """How two singles combine, as fitted (role coefficients or shared change), and how chosen.

    Attributes
    ----------
    coefficients
        ``(6,)``: the role fit. On each gene the pair is ``c_big · big + c_small · small``,
        ``big`` the single with the larger change on that gene and ``small`` the other
        (:func:`roles`); ``c_big`` is the first three coefficients and ``c_small`` the last
        three, each dotted with the pair's features 1, the cosine of its two singles and
        ``|log(|ΔA| / |ΔB|)|``, computed on its :func:`role_genes`
        (:func:`pair_features`). ``[1, 0, 0, 1, 0, 0]`` is the sum.
    ridge
        Which fit was chosen: ``inf`` the sum of the singles; a positive value the role fit
        at that relative penalty; 0 the shared-change fit (one coefficient, unpenalised,
        shrunk by its noise where ``shrink`` is below 1).
    n_pairs
        Training pairs that fitted them.
    loo_gain
        Held-out squared error of the sum of the singles minus that of the chosen fit,
        relative to the former (0 when the sum was kept); each pair held out with the pairs
        sharing a gene with it and predicted from its measured singles as given, noise and
        all (:func:`fit_pair_roles`). For a shrunk shared-change fit (``shrink`` below 1)
        the shrinkage factor saw the held-out pairs, so the figure is optimistic.
    shared
        Share of the singles' :func:`shared_part` the pair loses (0 unless the
        shared-change fit was chosen, whose ``coefficients`` are then the sum's).
    shrink
        Share of the fitted shared coefficient kept in ``shared``: below 1 where no fit
        passed the held-out bar and the shared-change fit was kept shrunk by its noise
        (:func:`fit_pair_roles`), 1 otherwise (also where nothing of it was kept and the
        sum stands).
    """

    coefficients: np.ndarray
    ridge: float
    n_pairs: int
    loo_gain: float
    shared: float = 0.0
    shrink: float = 1.0

    @classmethod
    def additive(cls, n_pairs: int = 0) -> PairRoles:
        """The sum of the singles (no interaction)."""
        return cls(ADDITIVE.copy(), float("inf"), n_pairs, 0.0)

    @property
    def is_additive(self) -> bool:
        """Whether a pair is predicted as its singles' sum (the sum's coefficients, no share)."""
        return bool(np.array_equal(self.coefficients, ADDITIVE)) and self.shared == 0.0

    def predict(self, a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        """The pair's predicted change from its singles' changes ``a`` and ``b``, ``(G,)``.

        ``keep`` marks the genes the features may be computed on (default all; a pair's own
        targets are left out of them, as in the fit); they are computed on the pair's
        :func:`role_genes` among them, and every gene is predicted. The shared-change fit
        (``shared`` not 0) reads no feature: ``keep`` is unused, and every gene both singles
        move alike loses its share, the weak ones the fit never saw included.
        """
        if self.is_additive:
            return a + b
        if self.shared != 0.0:
            return a + b - self.shared * shared_part(a, b)
        chosen = role_genes(a, b, keep)
        features = pair_features(a[chosen], b[chosen])
        big, small = roles(a, b)
        return big * (self.coefficients[:3] @ features) + small * (self.coefficients[3:] @ features)

    def to_dict(self) -> dict[str, float | int | list[float] | None]:
        """JSON-ready fields; an infinite ``ridge`` (the sum) as ``None``: JSON has no inf."""
        return {
            "coefficients": self.coefficients.tolist(),
            "ridge": None if np.isinf(self.ridge) else self.ridge,
            "n_pairs": self.n_pairs,
            "loo_gain": self.loo_gain,
            "shared": self.shared,
            "shrink": self.shrink,
        }

    @classmethod
    def from_dict(cls, fields: dict) -> PairRoles:
        """Inverse of :meth:`to_dict` (older files: ``shared`` 0, ``shrink`` 1, ``Infinity``)."""
        coefficients = np.asarray(fields["coefficients"], dtype=np.float64)
        if coefficients.shape != ADDITIVE.shape:
            raise PerturbsimError(
                f"saved pair roles need {ADDITIVE.size} coefficients, got {coefficients.size}"
            )
        shared = float(fields.get("shared", 0.0))
        if shared != 0.0 and not np.array_equal(coefficients, ADDITIVE):
            raise PerturbsimError(
                f"saved pair roles hold a shared change ({shared}) with role coefficients other "
                "than the sum's: one fit or the other, never both; save the model again"
            )
        return cls(
            coefficients,
            np.inf if fields["ridge"] is None else float(fields["ridge"]),
            int(fields["n_pairs"]),
            float(fields["loo_gain"]),
            shared,
            float(fields.get("shrink", 1.0)),
        )


def fit_pair_roles(
    singles_a: np.ndarray,
    singles_b: np.ndarray,
    measured: np.ndarray,
    keep: np.ndarray,
    genes: Sequence[GeneSet] | None = None,
    noise: tuple[np.ndarray, np.ndarray] | None = None,
    shared_change: bool = False,
) -> PairRoles:
    """Fit the role coefficients on training pairs (see the module documentation).

    Each pair is held out with every pair sharing one of its ``genes``: a pair held out
    alone is predicted by coefficients fitted on its genes' other pairs, which share its
    singles' noise and quirks, and on a screen where a few genes make all the pairs (the
    Gasperini pairs) that gain is a mirage.

    Parameters
    ----------
    singles_a, singles_b
        ``(P, G)`` measured changes of each pair's two genes perturbed alone.
    measured
        ``(P, G)`` measured changes of the pairs.
    keep
        ``(P, G)`` genes each pair may be fitted on (its own targets left out); it is
        fitted on its :func:`role_genes` among them.
    genes
        The two genes of each pair; ``None``: each pair held out alone.
    noise
        ``(P, G)`` each, the error variances of ``singles_a`` and ``singles_b`` (their
        squared standard errors); ``None``: the singles are taken as exact. Both fits are
        then corrected for errors in the variables: the role fit's equations
        (:func:`noise_gram`) and for the role genes' choice on the noisy singles
        (:func:`selection_equations`), the shared-change fit's moment for both
        (:func:`shared_noise`, :func:`selection_noise`).
    shared_change
        Whether the shared-change fit competes with the role fits, and is kept shrunk by
        its noise where none passes the bar (default: role fits only; see the module
        documentation).

    Returns
    -------
    :class:`PairRoles`: of the role fit at each penalty of :data:`RIDGES` (and with
    ``shared_change`` the shared-change fit), the one with the lowest held-out error among
    those improving on the sum by :func:`gain_bar` standard errors; where none does, with
    ``shared_change`` the shared-change fit shrunk by its noise (from
    :data:`~perturbsim.models._stacking.MIN_CONDITIONS` pairs), else the sum of the singles,
    which fewer than :data:`MIN_PAIRS` pairs also keep (a penalty that leaves the
    noise-corrected normal equations indefinite does not count).
    """
    noise_a, noise_b = noise if noise is not None else (np.zeros_like(singles_a),) * 2
    checked = (("singles", singles_a), ("singles", singles_b), ("pairs", measured))
    for name, values in (*checked, ("singles' noise", noise_a), ("singles' noise", noise_b)):
        if not np.isfinite(values).all():
            raise PerturbsimError(f"the measured {name} of the training pairs hold NaN or inf")
    if (noise_a < 0).any() or (noise_b < 0).any():
        raise PerturbsimError("the singles' noise variances of the training pairs hold negatives")
    n_pairs = len(measured)
    if n_pairs < MIN_PAIRS:
        return PairRoles.additive(n_pairs)
    # per pair: the normal equations of its measured singles, and what their noise adds;
    # and those of the shared-change fit, whose one column is minus the shared part
    grams, moments, energies, excess_grams, excess_moments = [], [], [], [], []
    shared_grams, shared_moments, shared_excess = [], [], []
    for a, b, y, kept, var_a, var_b in zip(
        singles_a, singles_b, measured, keep, noise_a, noise_b, strict=True
    ):
        k = role_genes(a, b, kept)
        design = role_design(a[k], b[k])
        residual = y[k] - design @ ADDITIVE
        grams.append(design.T @ design)
        moments.append(design.T @ residual)
        energies.append(float(residual @ residual))
        noise_excess = noise_gram(a[k], b[k], var_a[k], var_b[k])
        threshold = selection_noise(a, b, var_a, var_b, kept, y)
        choice_gram, choice_moment = selection_equations(threshold, pair_features(a[k], b[k]))
        excess_grams.append(noise_excess + choice_gram)
        excess_moments.append(choice_moment - noise_excess @ ADDITIVE)
        if shared_change:
            column = -shared_part(a[k], b[k])
            shared_grams.append([[column @ column]])
            shared_moments.append([column @ residual])
            shared_excess.append([shared_noise(a[k], b[k], var_a[k], var_b[k]) + threshold[2]])
    grams_arr, moments_arr = np.stack(grams), np.stack(moments)
    scale = float(np.trace(grams_arr.sum(axis=0))) / grams_arr.shape[1]
    additive_error = float(np.sum(energies))
    if scale == 0.0 or additive_error == 0.0:
        return PairRoles.additive(n_pairs)
    # the role fit's normal equations, corrected for the singles' noise (errors in variables)
    # and for the role genes' choice on that noise
    fit_grams = grams_arr - np.array(excess_grams)
    fit_moments = moments_arr - np.array(excess_moments)
    candidates = [
        _Candidate(ridge, fit_grams, fit_moments, grams_arr, moments_arr, ridge * scale)
        for ridge in RIDGES
    ]
    # the shared-change fit: one coefficient, unpenalised, its moment corrected for the noise;
    # undefined where the singles' shared part varies no more than their noise says it would
    excess = np.array(shared_excess)
    if shared_change and float(np.sum(shared_grams) - excess.sum()) > 0.0:
        shared_gram, shared_moment = np.array(shared_grams), np.array(shared_moments)
        candidates.append(
            _Candidate(None, shared_gram, shared_moment - excess, shared_gram, shared_moment, 0.0)
        )
    held_out = _held_out_with(genes, n_pairs)
    bar = gain_bar(n_pairs)
    best, best_error, shared_fit = None, additive_error, None
    for candidate in candidates:
        steps = _held_out_steps(candidate, held_out)
        if steps is None:
            continue
        if candidate.ridge is None:
            shared_fit = candidate, steps, np.array([len(group) for group in held_out])
        gains = _gains(candidate, steps)
        standard_error = gains.std(ddof=1) / np.sqrt(n_pairs)
        error = additive_error - float(gains.sum())
        if gains.mean() > bar * standard_error and error < best_error:
            best, best_error = candidate, error
    if best is None:
        if shared_fit is not None:
            return _shrunk_shared(*shared_fit, additive_error)
        return PairRoles.additive(n_pairs)
    step = _penalised_solve(best.fit_grams.sum(axis=0), best.fit_moments.sum(axis=0), best.penalty)
    if step is None:
        return PairRoles.additive(n_pairs)
    gain = float((additive_error - best_error) / additive_error)
    if best.ridge is None:
        return PairRoles(ADDITIVE.copy(), 0.0, n_pairs, gain, shared=float(step[0]))
    return PairRoles(ADDITIVE + step, best.ridge, n_pairs, gain)


class _Candidate(NamedTuple):
    """One fit :func:`fit_pair_roles` weighs: its per-pair normal equations and penalty.

    ``ridge`` is the role fit's relative penalty, ``None`` for the shared-change fit;
    ``fit_grams`` and ``fit_moments`` solve the fit (corrected for the singles' noise),
    ``grams`` and ``moments`` score a held-out pair from its singles as measured.
    """

    ridge: float | None
    fit_grams: np.ndarray
    fit_moments: np.ndarray
    grams: np.ndarray
    moments: np.ndarray
    penalty: float


def _held_out_steps(candidate: _Candidate, held_out: list[np.ndarray]) -> np.ndarray | None:
    """Each pair's step from the sum, fitted without its held-out group; ``None`` if one fails.

    Row ``i`` is solved from every pair's normal equations but those of ``held_out[i]``.
    """
    gram, moment = candidate.fit_grams.sum(axis=0), candidate.fit_moments.sum(axis=0)
    steps = []
    for rest in held_out:
        step = _penalised_solve(
            gram - candidate.fit_grams[rest].sum(axis=0),
            moment - candidate.fit_moments[rest].sum(axis=0),
            candidate.penalty,
        )
        if step is None:
            return None
        steps.append(step)
    return np.array(steps)


def _gains(candidate: _Candidate, steps: np.ndarray) -> np.ndarray:
    """Each pair's held-out gain over the sum of its singles, given its held-out ``steps``.

    Scored from its singles as measured: its squared error about the sum minus the step's,
    ``2 step·m - step·g·step``.
    """
    return 2.0 * np.einsum("pk,pk->p", steps, candidate.moments) - np.einsum(
        "pk,pkl,pl->p", steps, candidate.grams, steps
    )


def _shrunk_shared(
    candidate: _Candidate, steps: np.ndarray, left_out: np.ndarray, additive_error: float
) -> PairRoles:
    """The shared-change fit shrunk by its noise, from its held-out ``steps`` (the sum if 0).

    Its coefficient keeps :func:`~perturbsim.models._stacking.james_stein_factor` of itself,
    the delete-d jackknife taken over the held-out refits, each of which left out
    ``left_out`` pairs. ``loo_gain`` is that of the refits shrunk by the same factor, which
    was fitted on every pair, the held-out ones included: it is optimistic (on synthetic
    pairs without interaction it came out positive wherever a share was kept).
    """
    n_pairs = len(steps)  # steps exist, so the gram is positive; fewer than 4 pairs keep 0
    gram, moment = candidate.fit_grams.sum(axis=0), candidate.fit_moments.sum(axis=0)
    shared = float(moment[0] / gram[0, 0])
    factor = float(james_stein_factor(np.array([shared]), steps, left_out)[0])
    if factor == 0.0:
        return PairRoles.additive(n_pairs)
    gain = float(_gains(candidate, factor * steps).sum()) / additive_error
    return PairRoles(ADDITIVE.copy(), 0.0, n_pairs, gain, shared=shared * factor, shrink=factor)


def _penalised_solve(gram: np.ndarray, moment: np.ndarray, penalty: float) -> np.ndarray | None:
    """``(gram + penalty · I)⁻¹ moment``, or ``None`` when that matrix is not positive definite.

    A gram corrected for the singles' noise may have lost its positive definiteness (a pair
    whose weaker single is within its noise); a penalty too small to restore it defines no
    least-squares fit, and the caller treats it as failing.
    """
    matrix = gram + penalty * np.eye(gram.shape[0])
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return None
    return np.linalg.solve(matrix, moment)


def _held_out_with(genes: Sequence[GeneSet] | None, n_pairs: int) -> list[np.ndarray]:
    """For each pair, the pairs held out with it: itself and those sharing one of its genes."""
    if genes is None:
        return [np.array([i]) for i in range(n_pairs)]
    sets = [set(g) for g in genes]
    return [np.flatnonzero([bool(s & other) for other in sets]) for s in sets]


def off_targets(genes: Sequence[str], targets: GeneSet) -> np.ndarray:
    """Mask of ``genes`` that are not among a perturbation's ``targets``."""
    return ~np.isin(np.asarray(genes, dtype=str), list(targets))


def fit_pair_roles_on(
    singles: Mapping[str, np.ndarray],
    conditions: Sequence[str],
    data: ScreenData,
    noise: Mapping[str, np.ndarray] | None = None,
    shared_change: bool = False,
) -> PairRoles:
    """Fit the role coefficients on the pairs among ``conditions`` of two measured singles.

    Parameters
    ----------
    singles
        Gene -> its measured single change ``(G,)`` (raw or denoised).
    conditions
        Candidate conditions (e.g. the training ones); pairs of two genes in ``singles`` fit.
    data
        The screen: the pairs' measured changes and the measured genes.
    noise
        Gene -> the error variance of its single ``(G,)``, for every gene of ``singles``
        (the squared standard errors of raw singles); ``None``: singles taken as exact.
    shared_change
        Whether the shared-change fit competes with the role fits.

    Returns
    -------
    :func:`fit_pair_roles` on those pairs, each pair's own targets left out, each held out
    with the pairs sharing a gene with it, the role fit corrected for the singles' ``noise``.
    """
    pairs = [
        c for c in conditions if len(genes_of(c)) == 2 and all(g in singles for g in genes_of(c))
    ]
    if not pairs:
        return PairRoles.additive()

    def of_pairs(per_gene: Mapping[str, np.ndarray], position: int) -> np.ndarray:
        return np.array([per_gene[genes_of(c)[position]] for c in pairs])

    return fit_pair_roles(
        of_pairs(singles, 0),
        of_pairs(singles, 1),
        data.changes(pairs),
        np.array([off_targets(data.genes, genes_of(c)) for c in pairs]),
        [genes_of(c) for c in pairs],
        None if noise is None else (of_pairs(noise, 0), of_pairs(noise, 1)),
        shared_change,
    )


class PairInteraction(Additive):
    """The additive baseline with the interaction the training pairs teach.

    The catalogue's ``interaction``.

    A single is predicted by its measurement, a pair of genes measured alone by their
    singles combined with the role coefficients fitted on the training pairs, corrected for
    the singles' measurement noise (their squared standard errors; with ``shared_change``,
    or by the shared-change fit where it holds out better; see
    :mod:`perturbsim.models._pair_roles`), a larger set by the sum of its singles. It covers
    what :class:`~perturbsim.models.Additive` covers and equals it when the training pairs
    show no interaction that holds out (:attr:`roles` then has ``ridge`` ``inf``; with
    ``shared_change``, when the shared-change fit is also within its noise).

    Parameters
    ----------
    adata
        The screen, set up and split.
    shared_change
        Let the pairs also be fitted as their singles' sum less a share of the change the
        two share gene by gene, kept where it holds out better than the role fits and
        shrunk by its noise where no fit passes the held-out bar (opt-in,
        ``interaction_shared``; see :mod:`perturbsim.models._pair_roles`).
    seed
        Unused (the fit is deterministic); kept for the common interface.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.simulate(size="small", seed=0)
    >>> ps.pp.setup(adata, perturbation_key="condition", control="control")
    >>> ps.pp.split(adata, kind="combo", seed=0)
    >>> model = ps.models.PairInteraction(adata).fit()
    >>> model.roles.is_additive  # the training pairs buffer: not their sum
    False
    """

    name = "interaction"

    def __init__(
        self,
        adata: AnnData | ScreenData | None = None,
        *,
        shared_change: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(adata, seed=seed)
        self.shared_change = check_flag("shared_change", shared_change)

    def _fit(self, data: ScreenData) -> None:
        super()._fit(data)
        singles = dict(zip(self.single_genes, self.single_delta, strict=True))
        noise = dict(zip(singles, data.squared_standard_errors(list(singles)), strict=True))
        train = data.perturbed(data.train)
        self.roles = fit_pair_roles_on(singles, train, data, noise, self.shared_change)
        logger.info("%s: role coefficients %s", self.label, self.roles.to_dict())

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, None]:
        change, _ = super()._predict_change(sets)
        row = {g: i for i, g in enumerate(self.single_genes)}
        for i, genes in enumerate(sets):
            if len(genes) == 2:
                a, b = (self.single_delta[row[g]] for g in genes)
                change[i] = self.roles.predict(a, b, off_targets(self.genes, genes))
        return change, None

    def _options(self) -> dict[str, Any]:
        options = {"roles": self.roles.to_dict(), "shared_change": self.shared_change}
        return {**super()._options(), **options}

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._restore(options, arrays)
        self.roles = PairRoles.from_dict(options["roles"])
        self.shared_change = bool(options.get("shared_change", False))
