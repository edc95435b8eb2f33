"""perturbsim's default: the strongest simple baseline, corrected as far as held-out data supports.

Simple baselines are hard to beat (Ahlmann-Eltze, Huber & Anders, Nat. Methods 2025): the
mean of the training perturbations for a gene never perturbed, the sum of the measured
singles for a pair of measured genes. :class:`Stacked` starts from that baseline and adds
the departures of knowledge-based models from it (GEARS's network, the linear models), each
scaled by a weight fitted on held-out conditions only (stacked generalisation, Wolpert
1992; Breiman 1996). Where held-out data show no gain the weight is 0 and the prediction
is the baseline. The measurement noise of the singles is accounted for where it biases a
fit (the role coefficients of pairs, corrected for it) and where it would otherwise teach
(the mean training change, scaled by how far it predicts held-out conditions).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from anndata import AnnData

from .._checks import check_flag
from .._errors import PerturbsimError, counted, shown_list, suggestion
from .._keys import PRED_GENERIC, PRED_SUPPORT, PRED_UNSUPPORTED
from ..graphs import GeneGraph
from ..pp import genes_of
from ._base import WARN_UNSUPPORTED, GeneSet, PerturbationModel
from ._catalogue import MODEL_REGISTRY
from ._data import NoGOAnnotation, ScreenData, screen_go_annotations, screen_go_graph
from ._error_model import ErrorScale, error_ratio, fit_error_scales, gene_scale
from ._gears import FIT_OPTIONS, GEARS
from ._gears_config import GEARSConfig
from ._go_neighbours import GONeighbours
from ._inferred_singles import infer_singles
from ._linear import EMBEDDINGS
from ._pair_neighbours import SPARSITY, PairNeighbours
from ._pair_roles import PairRoles, fit_pair_roles_on
from ._simple import CoverageMixin
from ._stacking import (
    FitRow,
    Fitted,
    fit_per_kind,
    fitted_from_dict,
    fitted_to_dict,
    strongest,
)
from ._target_effect import fit_target_effect, target_effect_shape

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2")
"""Kinds of perturbation with their own weights (named as the test subgroups). A single
measured alone (``seen_single``) is predicted by its measurement."""
POOLED: tuple[str, ...] = ("combo_seen0", "combo_seen1")
"""Kinds whose scales may share a fit: combinations with a gene not measured alone, whose
baseline may take the mean training change for those genes (a pair with one measured gene;
a set of three genes or more none of which was measured; a pair of two such genes is its
predicted singles combined, with no scale). What holds for pairs says little of unseen
singles (a pair moves more genes than a single, so the mean fits it at another scale), and
pairs of measured singles (``combo_seen2``) have no mean in their baseline. The
corrections' weights are never pooled (see :class:`Stacked`). Only with
``partial_sum=False`` can a pool form: by default a pair with one measured gene is that
single plus the other gene's predicted single, with no scale of its own, so only
``combo_seen0`` rows reach the scales' fit."""
ERROR_POOLED: tuple[str, ...] = ("unseen_single", "combo_seen0", "combo_seen1")
"""Kinds whose error scales may share a fit: those with a gene not measured alone, whose
error falls with support. Pairs of measured singles have support 1 and an error of
another nature (the interaction)."""
CORRECTIONS: tuple[str, ...] = ("gears", "linear", "linear_go", "go_neighbours")
"""Models whose departures from the baseline can be weighted in (catalogue names)."""
DEFAULT_CORRECTIONS: tuple[str, ...] = ("gears", "linear", "linear_go")
"""The corrections of the default. ``go_neighbours`` is opt-in (the variant
``stacked_go_neighbours``): it gained on development screens, lost on two fresh ones
(rule I) and, gated by its leave-one-out fit of the training singles, gained nothing on two
more (rule J): ``benchmarks/RESULTS.md``."""
GEARS_HIDDEN = 32
"""Embedding size of the GEARS correction (the standalone :class:`GEARS` keeps the
reference's 64). Chosen on validation: GEARS with the additive residual, fitted at 16, 32 and
64 on 15 screen x split-seed pairs (the Norman subset, the simulated ``small`` and
Norman-sized screens, split seeds 1-5), reached best validation errors whose log ratio to
64's was +0.028 [-0.057, +0.113] at 32 and +0.034 [-0.058, +0.126] at 16 (mean [95 %
interval], medians -0.001 and -0.008): no width is distinguishable on validation. 32 is the
narrower of the two that match 64 on the Norman-sized screen (-0.001 there; 16: +0.017) and
it halves the time of an epoch (Norman-sized fit 19 s against 50 s on two cores)."""
GEARS_MAX_EPOCHS = 40
"""Most epochs the GEARS correction trains (``fit(max_epochs=...)`` overrides it; the
standalone :class:`GEARS` allows 200). Chosen on the validation loss of development screens
(simulated Norman-sized screens, simulator seeds 1 and 3, split seeds 1-5, never the
scoreboard's seed 0): with early stopping alone (patience 20) the correction trained 21 to
97 epochs, its best validation epoch 1 to 77; stopped at 40, its best validation loss was
0.8 % above the uncapped one on average (5.3 % at most, on the one split whose best epoch
was 77; 0 on seven of ten). The correction's departures enter the default with weights of
0 to 0.25 on those splits, so the cap moves the default's predictions little while it
bounds the fit's time (each epoch 0.55-0.8 s of a 2-core Norman-sized fit that is 16-20 s
besides). Inside the default the correction has since trained without the validation
conditions (:class:`Stacked`), stopping on its training loss: on simulator seeds 1-3 it
then trained 26-29 epochs on average against 33-37."""
NEIGHBOURS = "pair_neighbours"
"""Name of the part lending a pair of measured singles the residual of training pairs whose
genes act alike (:mod:`perturbsim.models._pair_neighbours`), weighted in after the
corrections, on what they leave."""
SUPPORT_GRAPH = "support_go"
"""Key prefix of :attr:`Stacked.support_graph`'s arrays in a saved model."""
FIT_GENES = 100
"""Genes of each held-out condition the weights are fitted on: its largest measured changes
off its targets. Least squares over every gene is decided by the thousands that barely move,
where any shrinkage towards 0 wins; the responses that matter, and that the scores judge (a
condition's top differentially expressed genes), are the strong ones. On the Norman-sized
simulation (5 split seeds), fitting on all genes scaled the mean to 0.63 for unseen singles
and lost to ``linear`` in normalised MSE on them (-0.03 [-0.06, -0.00] calibrated); on the
strongest 50, 100 or 300 it kept the mean at 1, the loss went (the default then predicted
those singles as ``linear`` does), and pairs with one measured gene gained (0.38 -> 0.42)."""
NO_EVIDENCE = Fitted(np.zeros(1), 0, pooled=False)
"""The :data:`NEIGHBOURS` weight where there is no evidence: 0, no residual lent."""
NO_EVIDENCE.weights.setflags(write=False)  # shared by every kind without evidence
SCALE = "scale"
"""Name of the factor on the baseline's part for genes not measured alone (the mean)."""
SCALE_LINEAR = "scale_linear"
"""Name of the factor on ``linear``'s departure from the mean, where it is the baseline."""
SCALES: tuple[str, ...] = (SCALE, SCALE_LINEAR)
"""The scaled parts of the baseline, in the order of their weights."""
NO_DEPARTURE = 1e-4
"""A departure from the mean training change under this share of the mean change's largest
entry is none: the prediction is the mean (a warning says so of supported genes)."""
SCALE_DEFAULT = np.array([1.0, 1.0])
"""Their weights without evidence: the mean and ``linear`` as they are."""
SCALE_DEFAULT.setflags(write=False)  # shared by every kind without evidence


def kind_of(genes: GeneSet, measured: set[str] | dict[str, Any]) -> str:
    """The kind of a perturbation, by how many of its genes were measured alone.

    ``"seen_single"``, ``"unseen_single"``, or for sets of two genes or more
    ``"combo_seen0"`` (none measured), ``"combo_seen2"`` (all) or ``"combo_seen1"`` (some).
    The control (empty set) is ``"control"``.
    """
    if not genes:
        return "control"
    n_seen = sum(g in measured for g in genes)
    if len(genes) == 1:
        return "seen_single" if n_seen else "unseen_single"
    if n_seen == 0:
        return "combo_seen0"
    return "combo_seen2" if n_seen == len(genes) else "combo_seen1"


def unmeasured_count(genes: GeneSet, measured: set[str] | dict[str, Any]) -> int:
    """How many of a perturbation's genes were not measured alone, at least 1.

    The error of a set of genes predicted without their measurements grows with their
    number (a pair of two genes never measured alone is two predicted singles): the error
    scales of the kinds with such genes (:data:`ERROR_POOLED`) are fitted per gene.
    """
    return max(1, sum(g not in measured for g in genes))


class Stacked(CoverageMixin, PerturbationModel):
    r"""The default: the strongest simple baseline plus corrections weighted on held-out data.

    **Baseline.** A perturbation's baseline change is the sum of the measured changes of
    its genes perturbed alone (in training or validation; validation singles join only
    after the weights below are fitted, so that the weights are fitted on predictions made
    without them), plus, when some of its genes were not perturbed alone, the mean change
    of the training perturbations and the direct effect of each such gene on its own
    expression (:func:`~perturbsim.models.fit_target_effect`, for measured targets; both
    scaled, below). So a
    measured single is its measurement, an unseen single gets the mean (the ``mean``
    baseline), a pair of measured singles their sum (``additive``), a pair with one
    measured single that single plus the mean (the partial additive model; by default,
    below, plus the whole prediction of the other gene alone). With
    ``interaction`` (default) a pair of measured singles gets them combined as the training
    pairs teach instead of their sum (:class:`~perturbsim.models.PairInteraction`'s role
    coefficients, fitted on the training pairs with the measured singles, corrected for
    their measurement noise (their squared standard errors: errors in variables attenuate
    the weaker single's role), chosen by their error on pairs held out with the pairs
    sharing a gene: without ``shared_change``, the sum itself when no interaction holds
    out; :attr:`pair_roles`; with ``shared_change`` (default) also the sum less a fitted
    share of the change the two singles share, kept shrunk by its noise where no fit holds
    out clearly). Where the
    ``linear`` model (Ahlmann-Eltze et al.; its own leave-one-gene-out shrinkage falls back
    on the mean when its embeddings predict nothing) covers a single or a set of three
    genes or more none of whose genes was measured alone, its prediction replaces the
    mean: the strongest applicable baseline. Its perturbation embedding is
    ``linear_embedding``: by default (``"auto"``) the paper's or the cells' co-expression,
    whichever predicts the training perturbations better held out gene by gene
    (:class:`~perturbsim.models.Linear`). With ``partial_sum`` (default) a set with genes
    measured alone and genes not (a pair with one measured single) is their measured
    singles plus the model's own prediction of the others, summed (a gene alone as an
    unseen single is predicted, corrections included; two or more as a set of genes never
    measured alone is), with no scales or weights of its kind: its predicted interaction
    is 0, as nothing held out supports one. Weighted on that kind's validation conditions
    instead (the ablation ``stacked_no_partial_sum``, the default before), such a set took
    its kind's own scales and corrections, and its predicted interaction was whatever
    their difference from the unseen singles' made of it (on a development screen,
    magnitudes of 0.98 to 1.69 uncorrelated with the true ones); on ten simulated
    Norman-sized screens the sum predicted those pairs' expression as well or better on
    average, and the interaction rankings no worse (rules L and M,
    ``benchmarks/RESULTS.md``). So weighted, with ``partial_linear`` (its default) such a
    set takes ``linear``'s prediction for
    the latter: their measured singles plus ``linear``'s prediction of the others as a set
    (for a pair, its unmeasured gene as its single is predicted: the partial additive model
    on the strongest baseline; two unmeasured genes of a larger set are predicted together,
    not as a pair of them alone would be, from their combined predicted singles). The
    training conditions held out one at a time for the scale (below) keep the mean alone,
    ``linear`` having been fitted on them, as unseen singles do. Without
    it (the ablation ``stacked_no_partial_linear``, without ``partial_sum`` either) such a
    set takes the mean alone, and
    its predicted interaction (the pair less its predicted singles) is then ``linear``'s
    departure for the unmeasured gene, taken away: on development screens (simulated
    Norman-sized, simulator seeds 10-12, simulation splits 1-5) giving it raised those
    pairs' calibrated Pearson by 0.006 to 0.06 and put the interaction precision@10 above
    random in 13 (screen, subtype) cells of 18 against 10; how it was adopted:
    ``benchmarks/RESULTS.md``. A pair of two genes never measured alone is
    predicted from its two genes' predicted singles (each predicted as an unseen single
    is, corrections included), combined by the role coefficients as measured singles are
    (never by the shared-change fit: :attr:`predicted_pair_roles`):
    the sum of two unseen singles' departures from the mean overshoots the pairs of one
    program, which buffer, and the mean of single perturbations undershoots a pair, which
    moves more genes (on the Norman-sized simulation, 5 split seeds, this raised the
    calibrated nMSE of such pairs from -0.05, the mean with ``linear``'s departure, to 0.12).
    With ``infer_singles`` (default), once the weights are fitted, a gene never measured
    alone but perturbed in measured pairs (training or validation) gets the single those
    pairs imply under the additive model, a pair being the sum of its two singles, the
    gene's prediction as an unseen single (with that prediction's variance) its prior
    (:mod:`perturbsim.models._inferred_singles`; :attr:`inferred` counts the pairs): the
    pairs are taken as exact sums where they pin the single down, so that with measured
    partners it is the mean over its pairs of the pair's change minus its partner's
    single, whatever the prior; a pair of two genes never measured alone splits what
    their priors leave of it between them by their prior variances. Such a gene
    counts as measured from then on: a pair of it and a measured (or
    inferred) gene is predicted as a pair of measured singles, with that kind's
    corrections, neighbours and weights (fitted on pairs of genes measured alone: GEARS
    and ``linear`` know no inferred single, so their departures there also carry their
    own guess of it; on the Norman-sized simulation, 5 split seeds, the default with
    inferred singles gained +0.07 in calibrated nMSE on pairs of two seen genes over
    ``infer_singles=False`` and +0.03 on pairs with one, both significant),
    the gene alone by its inferred single, and its GO support is a measured gene's. An
    inferred single carries the mean interaction of its pairs, so the interactions
    predicted for a pair it was inferred from lean towards additivity (with one such pair
    and pairs combined by their sum, that pair's predicted interaction is 0).

    **Noise.** A measured change is an estimate with a standard error. The role
    coefficients are fitted with the singles' noise removed from their normal equations
    (above), the mean training change is weighed by the scale below (on a screen where
    nothing beyond the targets replicates, the baseline of a gene not measured alone is
    close to no change), and every weight is shrunk towards its default by its standard
    error. With ``denoise=True`` the measured singles (and the measured pairs the inferred
    singles come from) are also shrunk towards the mean change by their standard errors
    (empirical Bayes, :meth:`~perturbsim.models._data.ScreenData.denoised`; the role fit
    then corrected by their posterior variances). It is off by default: on development screens
    (simulated Norman-sized, simulator seeds 1-3, never the scoreboard's 0) the shrunk
    singles share the mean change on their weak genes, so that a pair's interaction is
    read off two nearly collinear profiles, and the default ranked the synergistic,
    suppressive and additive held-out pairs less well with them (precision@10 0.72 / 0.05 /
    0.40 shrunk against 0.79 / 0.09 / 0.53 as measured, mean of 3 screens x 5 ``combo``
    splits, GEARS left out; the other subtypes within 0.02), at the same calibrated error
    (every subgroup within 0.004).

    **Corrections.** The models of ``corrections`` (default: GEARS with the additive
    residual, whose network supplies only the interaction on top of measured singles; the
    ``linear`` baseline; the GO linear model ``linear_go``, which covers every annotated
    gene) each predict the perturbation. With ``neighbours`` (default) a pair of measured
    singles is also lent the residual of the training pairs whose genes act alike (their
    measured change minus their singles combined), the part of it beyond the pair's own
    singles (how strongly each acts is the role coefficients' to say; :attr:`pair_neighbours`,
    :mod:`perturbsim.models._pair_neighbours`), only its entries beyond three robust standard
    deviations of its bulk and shrunk by them (``sparse_neighbours``: the bulk is mostly
    noise, which the interaction scores read as a change of how strongly each single acts),
    a part (:data:`NEIGHBOURS`) whose weight
    is fitted as the corrections' are, once they are weighted, on what they leave of the
    validation pairs and on the training pairs each lent the residual of the others. With
    :math:`s`, :math:`u` and :math:`l` the baseline's parts (measured singles; mean and
    target effects for the genes not measured alone; ``linear``'s departure from the mean
    where it is the baseline), the calibrated baseline is :math:`b = s + c_k u + c'_k l`
    and the prediction

    .. math:: b + \sum_j w_{k,j} (m_j - b),

    where :math:`m_j` are the models' predictions (:math:`b` where a model cannot predict
    the set; for the opt-in ``go_neighbours``, :math:`m_j - b` is instead its departure of
    the set's genes not measured alone from the mean,
    :meth:`~perturbsim.models.GONeighbours.departures_of`: added to the baseline, not in
    place of ``linear``'s part of it; none for a pair of two genes never measured alone,
    whose predicted singles carry it already) and every weight lies in :math:`[0, 1]`, fitted per
    kind :math:`k` of perturbation (:data:`KINDS`; with ``partial_sum``, not
    ``combo_seen1``, which is summed) by bounded least squares on held-out
    measured changes, on each condition's :data:`FIT_GENES` largest measured changes off
    its own targets (:mod:`perturbsim.models._stacking`):

    - the scale :math:`c_k`, how far the mean of the training perturbations predicts a
      perturbation it was not computed from, on the training conditions held out one at a
      time (their mean computed without them) and the validation conditions: on a screen
      where nothing beyond the targets replicates it is close to 0; and, fitted with it on
      the validation conditions, :math:`c'_k`, how far ``linear``'s departure from the mean
      holds there (default 1: ``linear`` already shrinks its departures by their
      leave-one-gene-out error; :math:`c_k` is the mean's factor and says nothing of
      them);
    - the corrections' :math:`w_{k,j}`, how far each model's departure from the
      calibrated baseline improves on it, on the validation conditions only (the models
      were fitted on the training conditions, GEARS stopping and decaying its learning
      rate on its training loss, so that no choice of theirs saw a validation condition;
      for pairs of two genes never measured
      alone, with ``infer_singles``, on the validation pairs neither of whose genes a
      training condition perturbs: the weights then serve pairs of genes no measured
      condition perturbs, a gene of a measured pair getting its single inferred from the
      pairs (never from sets of three genes or more), and the correcting models learnt
      the other validation pairs' genes from their training pairs); then, for
      pairs of measured singles, the weight of :data:`NEIGHBOURS`, on what the weighted
      corrections leave of the validation pairs and on the training pairs each lent the
      residual of the other training pairs (their own evidence: they do not count towards
      the corrections'; the correcting models were trained on the training pairs, so their
      departures there are not held out and only the validation pairs' targets have the
      corrections removed).

    A combination with a gene not measured alone (:data:`POOLED`) whose kind has one to
    three held-out conditions borrows the scales fitted over those kinds together (with
    ``partial_sum=False`` only: by default ``combo_seen1`` fits no scale, so there is no
    pool); any other kind with fewer than four keeps the baseline's scales (:math:`c = 1`).
    The corrections' weights are never pooled: each kind's baseline is of its own nature (a
    measured single plus the mean or ``linear``; two predicted singles combined; two
    measured singles combined), so a correction's departure from one says little of its
    departure from another; a kind with fewer than four validation conditions it is fitted
    on keeps :math:`w = 0` (for pairs of genes never measured alone, fewer than four of
    those pairs of untrained genes; on the Norman-sized simulation, 5 split seeds, that left
    the kind's weights at 0 on every split; a set of three genes or more none of whose genes
    was measured alone, which shares that kind, takes these weights too: the pairs' fit
    replaces its own), as does the :data:`NEIGHBOURS` weight with fewer than four pairs
    (validation and training together) or when the neighbours lend nothing: no departure
    without evidence. Every fitted weight is also shrunk towards its default by its standard
    error (:func:`~perturbsim.models._stacking.shrunk_fit`; four conditions are the fewest
    whose jackknife standard error has a finite posterior mean). :attr:`weights` reports
    them.

    **Uncertainty.** Each prediction carries a predictive variance per gene
    (``.layers["variance"]``), its expected squared error fitted on the validation
    conditions (:mod:`perturbsim.models._error_model`): the share of each gene's spread
    over perturbations that the prediction left unexplained there, per kind (for the kinds
    with genes not measured alone, per such gene, :func:`unmeasured_count`: a pair of two
    is two predicted singles, and errs about twice as much as one; without it such a pair,
    whose kind mostly borrows the pooled fit of the unseen singles, was given a single's
    variance for 1.3 to 2.4 times its error: rule V47, ``benchmarks/RESULTS.md``), falling with
    the *support* of the perturbation, how closely its genes are tied to genes measured
    alone in GEARS's GO graph (mean over its genes; 1 for a measured or inferred gene), a
    line whose slope is shrunk by its noise and which is never extrapolated past the
    supports that fitted it. The held-out
    conditions are the validation ones and the training ones held out one at a time (as
    for the scale); a kind with fewer than three of its own shares the fit of the kinds
    with a gene not measured alone (with three or four it keeps its own, flat: too few
    to gauge a slope's noise), except pairs of measured singles (``combo_seen2``,
    always of support 1), fitted on their own: the validation ones and the training ones
    as their combined singles predict them (without evidence, the full spread of each
    gene; the pair fit (role coefficients or shared change) saw those pairs, a slight optimism). A
    measured single's variance is its change's error variance, its own squared standard
    error plus the control's, each moderated towards the gene's pooled variance (so that a
    gene none of its cells detected is not certain; with ``denoise`` too, whose posterior
    variance, from a prior estimated on the same measurement, is 0 for a departure shrunk
    to nothing; in files saved before it was kept, the median squared standard error of
    the training conditions, :attr:`noise`); an inferred single's is that median, plus
    its own error variance, which it adds to every set that includes it (with
    measured partners, a pair's interaction error over the number of pairs; each inferred
    gene's independently, though two inferred from the same pair err together). A set of
    genes is never given less variance, gene by gene, than its genes' own as singles summed
    (a pair of a measured gene and one never measured had read less uncertain than the
    latter alone; rule V57, ``benchmarks/RESULTS.md``). ``.obs["support"]``
    and ``.obs["unsupported"]`` report the support (see
    :meth:`~perturbsim.models.PerturbationModel.predict`); :attr:`error_scales` the fits.

    Parameters
    ----------
    adata
        A set-up, split screen (the split's validation conditions fit the corrections).
    go_annotations
        GO annotations of GEARS and ``linear_go`` (default: a simulated screen's own table,
        ``.uns["simulation"]["go"]``, else the bundled human GO).
    seed
        Seed of GEARS (the other parts are deterministic).
    device
        Device of GEARS (any other than ``"auto"`` is an error without GEARS).
    denoise
        Shrink the measured changes (singles, and pairs behind inferred singles) towards the
        mean change by their noise (default off: see **Noise**).
    interaction
        Combine the measured singles of a pair by the role coefficients the training pairs
        teach, not by their sum.
    shared_change
        Let the training pairs also be fitted as their singles' sum less a share of the
        change the two share gene by gene, kept for pairs of measured (or inferred) singles
        where it holds out better than the role fits, and shrunk by its noise where no fit
        passes the held-out bar (:mod:`perturbsim.models._pair_roles`); pairs of two genes
        never measured alone keep the role fit
        (:attr:`predicted_pair_roles`). Default (``None``): on with ``interaction``;
        ``False`` is the ablation ``stacked_no_shared``; ``True`` is an error without
        ``interaction``.
    neighbours
        Lend a pair of measured singles the residual of the training pairs alike, the part
        beyond its own singles, weighted on held-out pairs.
    sparse_neighbours
        Lend only that residual's entries beyond three robust standard deviations of its
        bulk, shrunk by them (:func:`~perturbsim.models._pair_neighbours.soft_threshold`).
        Default (``None``): on with ``neighbours``; ``False`` (the residual lent whole) is
        the ablation ``stacked_dense_neighbours``; ``True`` is an error without
        ``neighbours``.
    infer_singles
        Infer the singles of genes measured only in pairs, once the weights are fitted: from
        their pairs with measured genes, and by splitting a pair of two such genes between
        them by their priors' variances.
    partial_linear
        Give a set with genes measured alone and genes not ``linear``'s departure from the
        mean for the latter, as their singles have (no effect without ``linear`` among the
        corrections; ``False`` needs ``partial_sum=False``, under which it applies).
    partial_sum
        Predict a set with genes measured alone and genes not as their measured singles
        plus the model's own prediction of the others, summed; its kind
        (``combo_seen1``) then has no scales or weights, and its held-out conditions fit
        none (its validation conditions, as predicted, and its training conditions held out
        one at a time, as the unseen singles' scales predict their unseen part, fit its
        error scale alone). ``False`` is the ablation ``stacked_no_partial_sum``.
    corrections
        Catalogue names of the correcting models, among :data:`CORRECTIONS` (default
        :data:`DEFAULT_CORRECTIONS`); empty: the calibrated baseline alone. On a screen none
        of whose genes GO annotates (mouse names, Ensembl IDs without ``go_annotations`` that
        name them) ``linear_go`` is left out when fitted, with a warning (GEARS stays, and
        predicts only genes perturbed in training).
    linear_embedding
        ``perturbation_embedding`` of the ``linear`` correction: ``"auto"``, ``"training"``
        (the paper's) or ``"coexpression"``.
    **gears_options
        Options of :class:`~perturbsim.models.GEARS` (defaults ``additive_residual=True``
        and ``hidden=`` :data:`GEARS_HIDDEN`). ``fit(**options)`` takes GEARS's schedule
        for its GEARS part, ``max_epochs`` defaulting to :data:`GEARS_MAX_EPOCHS`.

    Attributes
    ----------
    weights
        Each part's weight per kind of perturbation, fitted on held-out conditions.
    pair_roles
        How two measured (or inferred) singles combine in a pair
        (:class:`~perturbsim.models.PairRoles`): role coefficients, a shared-change fit or
        the sum.
    predicted_pair_roles
        How two predicted singles combine (a pair of genes never measured alone).
    history
        The GEARS part's training history (no validation loss: it trains without the
        validation conditions).

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.split(adata, seed=1)
    >>> model = ps.models.Stacked(adata, seed=0).fit(max_epochs=2)
    >>> sorted(model.weights["part"].unique())
    ['gears', 'linear', 'linear_go', 'pair_neighbours', 'scale', 'scale_linear']
    """

    name = "stacked"
    fit_options: ClassVar[tuple[str, ...]] = FIT_OPTIONS

    def __init__(
        self,
        adata: AnnData | ScreenData | None = None,
        *,
        go_annotations: pd.DataFrame | None = None,
        seed: int | None = None,
        device: str = "auto",
        denoise: bool = False,
        interaction: bool = True,
        shared_change: bool | None = None,
        neighbours: bool = True,
        sparse_neighbours: bool | None = None,
        infer_singles: bool = True,
        partial_linear: bool = True,
        partial_sum: bool = True,
        corrections: Sequence[str] = DEFAULT_CORRECTIONS,
        linear_embedding: str = "auto",
        **gears_options: Any,
    ) -> None:
        denoise = check_flag("denoise", denoise)
        interaction = check_flag("interaction", interaction)
        neighbours = check_flag("neighbours", neighbours)
        infer_singles = check_flag("infer_singles", infer_singles)
        partial_linear = check_flag("partial_linear", partial_linear)
        partial_sum = check_flag("partial_sum", partial_sum)
        if shared_change is not None:
            shared_change = check_flag("shared_change", shared_change)
        if sparse_neighbours is not None:
            sparse_neighbours = check_flag("sparse_neighbours", sparse_neighbours)
        wrong = f"corrections must be a list of correction names among {list(CORRECTIONS)}, got "
        if isinstance(corrections, str) or not isinstance(corrections, Iterable):
            raise PerturbsimError(f"{wrong}{corrections!r}")
        corrections = tuple(corrections)  # a generator is read once
        if not all(isinstance(c, str) and c in CORRECTIONS for c in corrections):
            raise PerturbsimError(f"{wrong}{list(corrections)!r}")
        if linear_embedding not in EMBEDDINGS:
            raise PerturbsimError(
                f"linear_embedding must be one of {list(EMBEDDINGS)}, got {linear_embedding!r}"
            )
        if shared_change and not interaction:
            raise PerturbsimError(
                "shared_change=True given with interaction=False: the shared-change fit is one "
                "way of combining a pair's singles; pass interaction=True"
            )
        if not partial_linear and partial_sum:
            raise PerturbsimError(
                "partial_linear=False given with partial_sum=True: a set with genes measured "
                "alone is then its singles plus the model's own prediction of the others, "
                "with no linear part to drop; pass partial_sum=False too"
            )
        if sparse_neighbours and not neighbours:
            raise PerturbsimError(
                "sparse_neighbours=True given with neighbours=False: it says how the pair "
                "neighbours lend their residual; pass neighbours=True"
            )
        if linear_embedding != "auto" and "linear" not in corrections:
            raise PerturbsimError(
                f"linear_embedding={linear_embedding!r} given without 'linear' in corrections"
            )
        unknown = sorted(set(gears_options) - set(GEARS.option_names()))
        if unknown:
            hint = suggestion(unknown[0], self.option_names())
            raise PerturbsimError(
                f"Stacked has no option {unknown[0]!r}{hint} (its own: "
                f"{', '.join(super().option_names())}; and GEARS's: help(perturbsim.GEARS))"
            )
        if gears_options and "gears" not in corrections:
            raise PerturbsimError(
                f"GEARS options {sorted(gears_options)} given without 'gears' in corrections"
            )
        if device != "auto" and "gears" not in corrections:
            raise PerturbsimError(
                f"device={device!r} given without 'gears' in corrections (only GEARS runs on "
                "a device; the other parts run on the CPU)"
            )
        gears_options.setdefault("additive_residual", True)
        gears_options.setdefault("hidden", GEARS_HIDDEN)
        go_annotations = screen_go_annotations(adata, go_annotations)
        super().__init__(adata, seed=seed)  # an AnnData: a split drawn in it since is told
        self.go_annotations = go_annotations
        self.support_graph: GeneGraph | None = None
        """The GO graph that ties genes to measured ones (:meth:`_support_of`) when GEARS,
        whose graph it otherwise is, is not among the corrections."""
        self.denoise = denoise
        self.interaction = interaction
        self.shared_change = interaction if shared_change is None else shared_change
        self.pair_roles = PairRoles.additive()
        """How two measured (or inferred) singles combine in a pair, fitted on the training pairs:
        the role fit, the shared-change fit (shrunk by its noise where no fit holds out) or the
        sum (:class:`~perturbsim.models.PairRoles`; before :meth:`fit`, and where nothing
        holds out nor is kept shrunk, the sum with ``n_pairs`` counting the pairs seen)."""
        self.predicted_pair_roles = PairRoles.additive()
        """How two predicted singles combine (a pair of genes never measured alone): the
        role fit alone, never the shared-change fit (:meth:`_combined_predicted_singles`)."""
        self.neighbours = neighbours
        self.sparse_neighbours = neighbours if sparse_neighbours is None else sparse_neighbours
        self.pair_neighbours: PairNeighbours | None = None
        self.infer_singles = infer_singles
        self.partial_linear = partial_linear
        self.partial_sum = partial_sum
        self.inferred: dict[str, int] = {}
        self.inferred_variance: dict[str, np.ndarray] = {}
        self.error_per_gene = True
        """Whether the error scales of :data:`ERROR_POOLED` are per gene not measured alone
        (:func:`unmeasured_count`; files saved before: per perturbation)."""
        self.corrections: dict[str, PerturbationModel] = {}
        """Name -> the correcting model: those asked for, less any left out when fitted."""
        for name in CORRECTIONS if self.data is not None else ():
            if name not in corrections:
                continue
            if name == "gears":
                # the statistics are shared, unless the loss trains on the AnnData's cells
                gamma = GEARSConfig(**gears_options).gamma
                on_cells = not GEARS.loss_class(gamma=gamma).uses_moments
                self.corrections[name] = GEARS(
                    adata if on_cells and isinstance(adata, AnnData) else self.data,
                    go_annotations=go_annotations,
                    seed=self.seed,
                    device=device,
                    **gears_options,
                )
                continue
            cls = MODEL_REGISTRY[name]
            options: dict[str, Any] = (
                {"go_annotations": go_annotations} if "go_annotations" in cls.option_names() else {}
            )
            if name == "linear":
                options["perturbation_embedding"] = linear_embedding
            self.corrections[name] = cls(self.data, seed=self.seed, **options)
        self.linear_embedding = linear_embedding
        self.mean_change = np.zeros(0)
        self.target_effect = np.zeros(0)
        self.singles: dict[str, np.ndarray] = {}
        self.screen_genes: list[str] = []
        self._scale: dict[str, Fitted] = {}
        self._corrections_fit: dict[str, Fitted] = {}
        self._neighbours_fit = NO_EVIDENCE
        self._error: dict[str, ErrorScale] = {}
        self.gene_scale = np.zeros(0)
        self.noise = np.zeros(0)
        self.single_noise: dict[str, np.ndarray] = {}
        """Each measured single's own error variance (float32), its predictive variance: its
        change's (:meth:`ScreenData.change_variances`: its squared standard error and the
        control's, moderated), with ``denoise`` too."""

    @classmethod
    def option_names(cls) -> list[str]:
        """Its own keyword arguments and GEARS's."""
        own = super().option_names()
        return [*own, *(o for o in GEARS.option_names() if o not in own)]

    @classmethod
    def option_names_of(cls, options: Mapping[str, Any]) -> list[str]:
        """:meth:`option_names`, without GEARS's and ``device`` when GEARS is left out."""
        if "gears" in options.get("corrections", DEFAULT_CORRECTIONS):
            return cls.option_names()
        return [o for o in super().option_names() if o != "device"]

    @classmethod
    def fit_options_of(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """GEARS's fit options, or none when ``corrections`` leaves GEARS out."""
        return cls.fit_options if "gears" in options.get("corrections", DEFAULT_CORRECTIONS) else ()

    @property
    def _uncovered_reason(self) -> str:
        """Why a gene outside :meth:`_coverable` is refused, with the fix if there is one."""
        if {"gears", "linear_go"} & set(self.corrections):
            return "neither measured, perturbed in the screen, nor GO-annotated for this model"
        return (
            "neither measured nor perturbed in the screen; without 'gears' or 'linear_go' among "
            "its corrections this model places no other gene by its GO annotations"
        )

    def _coverable(self) -> set[str]:
        """Genes with something to go on: measured, perturbed, in a graph, or GO-annotated.

        GO-annotated: any gene ``linear_go``'s annotations name, which it places among the
        screen's genes by their shared GO terms.

        A gene none of these know would get the mean of the training perturbations on no
        evidence: it is refused instead (``covers`` says so, ``predict`` names it).
        """
        genes = set(map(str, self.genes)) | set(self.singles) | set(self.screen_genes)
        for model in self.corrections.values():
            if isinstance(model, GEARS):
                genes |= set(map(str, model.go_graph.nodes))
            elif isinstance(model, CoverageMixin):
                genes |= model._coverable()
        return genes

    @cached_property
    def _gene_column(self) -> dict[str, int]:
        return {str(g): i for i, g in enumerate(self.genes)}

    # -- parts -----------------------------------------------------------------------------
    def _baseline(self, sets: list[GeneSet]) -> tuple[np.ndarray, np.ndarray]:
        """The parts of each set's baseline change (see the class documentation).

        Returns
        -------
        ``(seen, scaled)``: ``seen`` ``(len(sets), G)``, the measured singles of the set's
        genes combined (:meth:`_measured_part`), or for a pair of genes never measured alone
        their predicted singles combined (:meth:`_combined_predicted_singles`); ``scaled``
        ``(len(sets), G, 2)``, the parts weighted by the scales of :data:`SCALES`: for other
        sets with genes not measured alone the mean training change with those genes' direct
        effects on themselves; where the ``linear`` model (when it is a correction) covers
        such a set's genes not measured alone (:meth:`_linear_baseline`), its predicted
        departure of them from the mean training change, off the set's own targets; 0 for
        the other sets.
        """
        column = self._gene_column
        seen = np.zeros((len(sets), len(self.genes)))
        scaled = np.zeros((len(sets), len(self.genes), len(SCALES)))
        pairs = [row for row, genes in enumerate(sets) if self._unmeasured_pair(genes)]
        if pairs:
            seen[pairs] = self._combined_predicted_singles([sets[row] for row in pairs])
        others = sorted(set(range(len(sets))) - set(pairs))
        for row in others:
            seen[row] = self._measured_part(sets[row])
            if any(g not in self.singles for g in sets[row]):
                scaled[row, :, 0] = self.mean_change
        rows, changes = self._linear_baseline([sets[row] for row in others])
        rows = np.asarray(others, dtype=int)[rows]
        scaled[rows, :, 1] = changes - self.mean_change
        for row in others:
            for gene in sets[row]:
                if gene not in self.singles and gene in column and self.target_effect.size:
                    scaled[row, column[gene], 1] = 0.0
                    scaled[row, column[gene], 0] = (
                        self.mean_change[column[gene]] + self.target_effect[column[gene]]
                    )
        return seen, scaled

    def _unmeasured_pair(self, genes: GeneSet) -> bool:
        """Whether ``genes`` is a pair neither of whose genes was measured alone."""
        return len(genes) == 2 and not any(g in self.singles for g in genes)

    def _measured_pair(self, genes: GeneSet) -> bool:
        """Whether ``genes`` is a pair both of whose genes were measured alone."""
        return len(genes) == 2 and all(g in self.singles for g in genes)

    def _combined_predicted_singles(self, pairs: list[GeneSet]) -> np.ndarray:
        """Pairs of genes never measured alone: their predicted singles, combined.

        Each gene's single is predicted as an unseen single is (:meth:`_point_change`), and
        the two are combined by :attr:`predicted_pair_roles`: the role fit, as measured
        singles are when it is chosen for them, but never the shared-change fit, whose
        coefficient is fitted on measured singles, and which would read the mean change
        both predicted singles are built on as a shared pathway.
        Returns ``(len(pairs), G)``.
        """
        genes = sorted({g for pair in pairs for g in pair})
        predicted = dict(zip(genes, self._point_change([(g,) for g in genes]), strict=True))
        return np.array(
            [
                self.predicted_pair_roles.predict(
                    predicted[a], predicted[b], self._fitted_genes((a, b))
                )
                for a, b in pairs
            ]
        ).reshape(len(pairs), len(self.genes))

    def _measured_part(self, genes: GeneSet) -> np.ndarray:
        """The measured singles of a set's genes combined.

        A pair of measured singles by :attr:`pair_roles`, anything else by their sum.
        """
        if self._measured_pair(genes):
            a, b = (self.singles[g] for g in genes)
            return self.pair_roles.predict(a, b, self._fitted_genes(genes))
        return sum((self.singles[g] for g in genes if g in self.singles), np.zeros(len(self.genes)))

    def _linear_baseline(self, sets: list[GeneSet]) -> tuple[np.ndarray, np.ndarray]:
        """Sets whose baseline includes the ``linear`` model's prediction, and that prediction.

        ``linear`` predicts each set's genes not measured alone, as a set: all of a set none
        of whose genes was measured alone; with ``partial_linear``, also those of a set
        with genes measured alone, whose baseline is then their measured singles plus what
        the strongest baseline predicts of the others (as it predicts their singles).

        Returns
        -------
        ``(rows, changes)``: the indices of the sets whose unmeasured genes ``linear``
        covers (none when it is not a correction), and its predicted changes of them.
        """
        linear = self.corrections.get("linear")
        empty = np.zeros(0, dtype=int), np.zeros((0, len(self.genes)))
        if linear is None or not sets:
            return empty
        unmeasured: dict[int, GeneSet] = {}
        for row, genes in enumerate(sets):
            missing = tuple(g for g in genes if g not in self.singles)
            if missing and (self.partial_linear or len(missing) == len(genes)):
                unmeasured[row] = missing
        if not unmeasured:
            return empty
        distinct = list(dict.fromkeys(unmeasured.values()))  # predict each set once
        covered = dict(zip(distinct, linear.covers([list(s) for s in distinct]), strict=True))
        predicted = [s for s in distinct if covered[s]]
        if not predicted:
            return empty
        changes = linear.predict([list(s) for s in predicted]).layers["delta"]
        of_set = dict(zip(predicted, changes, strict=True))
        rows = np.array([row for row, s in unmeasured.items() if covered[s]], dtype=int)
        return rows, np.array([of_set[unmeasured[row]] for row in rows])

    @property
    def part_names(self) -> list[str]:
        """The weighted parts: the correcting models, then :data:`NEIGHBOURS` if used."""
        return [*self.corrections, *([NEIGHBOURS] if self.pair_neighbours is not None else [])]

    def _departures(self, sets: list[GeneSet], baseline: np.ndarray) -> dict[str, np.ndarray]:
        """Each part's departure from the baseline (0 where it cannot predict).

        A correcting model's is its prediction minus the baseline; :data:`NEIGHBOURS`'s, for a
        pair of measured singles, the residual of the training pairs alike, the part beyond
        the pair's singles.
        """
        departures = {name: np.zeros_like(baseline) for name in self.part_names}
        if not sets:  # e.g. no validation conditions
            return departures
        for name, model in self.corrections.items():
            if isinstance(model, GONeighbours):  # added to the baseline, as its genes need
                # a pair of two genes never measured alone is built from predicted singles,
                # which carry it already
                unmeasured = [
                    () if self._unmeasured_pair(s) else tuple(g for g in s if g not in self.singles)
                    for s in sets
                ]
                departures[name] = model.departures_of(unmeasured)
                continue
            covered = np.flatnonzero(model.covers([list(s) for s in sets]))
            if covered.size:
                pred = model.predict([list(sets[i]) for i in covered])
                departures[name][covered] = pred.layers["delta"] - baseline[covered]
        if self.pair_neighbours is not None:
            pairs = [i for i, s in enumerate(sets) if self._measured_pair(s)]
            if pairs:
                off_target = np.array([self._fitted_genes(sets[i]) for i in pairs])
                lent = self.pair_neighbours.residual(
                    [sets[i] for i in pairs], self.singles, off_target
                )
                departures[NEIGHBOURS][pairs] = lent * off_target
        return departures

    def _support_graph(self) -> GeneGraph | None:
        """The graph of :meth:`_support_of`: GEARS's GO graph, else :attr:`support_graph`.

        Without GEARS among the corrections, the same graph built for the purpose;
        ``None`` in files saved before it (every gene not known then has support 0).
        """
        gears = self.corrections.get("gears")
        return gears.go_graph if isinstance(gears, GEARS) else self.support_graph

    def _gene_support(self, genes: list[str]) -> np.ndarray:
        """Support of each gene with respect to the genes of :attr:`singles`.

        Those measured alone and those whose single was inferred from their pairs: both
        are predicted from their own measurements.
        """
        return self._support_of(genes, set(self.singles))

    def _fitted_genes(self, genes: GeneSet) -> np.ndarray:
        """Mask of the genes a condition's weights are fitted on: all but its own targets."""
        keep = np.ones(len(self.genes), dtype=bool)
        keep[[self._gene_column[g] for g in genes if g in self._gene_column]] = False
        return keep

    # -- fit -------------------------------------------------------------------------------
    def _fit(self, data: ScreenData, **options: Any) -> None:
        if options and "gears" not in self.corrections:
            raise PerturbsimError(f"fit options {sorted(options)} need 'gears' in corrections")
        for name, model in list(self.corrections.items()):
            model.part_of = self.label  # its fallbacks are this model's to weigh
            fit_options = {"max_epochs": GEARS_MAX_EPOCHS, **options} if name == "gears" else {}
            # GEARS stops and decays on its training loss: its departures on the validation
            # conditions, which fit its weight, are then out of sample in every respect
            val = [] if name == "gears" else data.val
            try:
                model.fit(train_conditions=data.train, val_conditions=val, **fit_options)
            except NoGOAnnotation as err:  # a screen of genes GO does not name: mouse, IDs
                logger.warning("%s; %s leaves the correction out", err, self.label)
                del self.corrections[name]
        if "gears" not in self.corrections:
            config = GEARSConfig()  # the graph GEARS would tie genes by
            self.support_graph = screen_go_graph(
                data, self.go_annotations, top_k=config.go_top_k, threshold=config.go_threshold
            )
        train = data.perturbed(data.train)
        measured = train + data.perturbed(data.val)
        measured_changes, measured_noise = self._measured(data, measured)
        changes = dict(zip(measured, measured_changes, strict=True))
        self.mean_change = data.mean_training_change()
        self.screen_genes = sorted({g for c in data.stats.conditions for g in genes_of(c)})
        squared_se = data.squared_standard_errors(train)
        self.noise = np.median(squared_se, axis=0)
        self.gene_scale = gene_scale(data.changes(train), squared_se)
        self.target_effect = fit_target_effect(
            data.stats.delta[data.stats.index(train)],
            [genes_of(c) for c in train],
            self.genes,
            data.stats.control_mean,
            self.mean_change,
        )
        self.singles = {c: changes[c] for c in train if len(genes_of(c)) == 1}
        noise = dict(zip(measured, measured_noise, strict=True))
        measured_singles = [c for c in measured if len(genes_of(c)) == 1]
        self.single_noise = dict(
            zip(
                measured_singles,
                data.change_variances(measured_singles).astype(np.float32),
                strict=True,
            )
        )
        self.inferred = {}
        self.inferred_variance = {}
        if self.interaction:
            single_noise = {c: noise[c] for c in self.singles}
            self.pair_roles = fit_pair_roles_on(
                self.singles, train, data, single_noise, self.shared_change
            )
            self.predicted_pair_roles = (
                fit_pair_roles_on(self.singles, train, data, single_noise)
                if self.pair_roles.shared != 0.0
                else self.pair_roles
            )
        self.pair_neighbours = self._fit_pair_neighbours(data, train) if self.neighbours else None
        self._fit_weights(data)
        # validation singles were measured too: predictions use them once the weights are set
        self.singles.update({c: changes[c] for c in measured if len(genes_of(c)) == 1})
        if self.infer_singles:
            self._infer_singles([c for c in measured if len(genes_of(c)) == 2], changes)

    def _infer_singles(self, pairs: list[str], changes: dict[str, np.ndarray]) -> None:
        """Join the singles inferred from the measured pairs to the measured singles.

        Each gene never measured alone but perturbed in measured pairs gets the single
        those pairs imply as exact sums, its prediction as an unseen single (with that
        prediction's variance) filling what they leave open
        (:mod:`perturbsim.models._inferred_singles`); its variance counts a pair's
        interaction error (``combo_seen2``'s, at full support).
        """
        pair_changes = np.array([changes[c] for c in pairs]).reshape(len(pairs), len(self.genes))
        inferred = infer_singles(
            [genes_of(c) for c in pairs],
            pair_changes,
            self.singles,
            prior=self._unseen_single_prior,
            pair_variance=self._pair_interaction_variance(),
        )
        self.singles.update(inferred.changes)
        self.inferred = inferred.n_pairs
        self.inferred_variance = inferred.variance
        if self.inferred:
            logger.info(
                "%s: singles of %d genes inferred from their pairs", self.label, len(self.inferred)
            )

    def _unseen_single_prior(self, genes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each gene's single as an unseen single is predicted, and that prediction's variance."""
        sets = [(g,) for g in genes]
        return self._point_change(sets), self._variance(sets)

    def _pair_interaction_variance(self) -> np.ndarray:
        """Variance of a pair's change about its singles combined, per gene ``(G,)``."""
        return self._error["combo_seen2"].ratio(np.array(1.0)) * self.gene_scale

    def _fit_pair_neighbours(self, data: ScreenData, train: list[str]) -> PairNeighbours:
        """The training pairs of measured singles and their residuals.

        A pair's residual is its measured change minus its singles combined
        (:meth:`_measured_part`), 0 on its own targets; kept whole (a pair it is lent to is
        lent the part beyond its own singles).
        """
        sparsity = SPARSITY if self.sparse_neighbours else None
        conditions = [c for c in train if self._measured_pair(genes_of(c))]
        if not conditions:
            return PairNeighbours.none(len(self.genes), sparsity)
        pairs = [genes_of(c) for c in conditions]
        residuals = np.array(
            [
                (change - self._measured_part(genes)) * self._fitted_genes(genes)
                for genes, change in zip(pairs, data.changes(conditions), strict=True)
            ]
        )
        fitted = PairNeighbours.fit(pairs, residuals, self.singles, sparsity=sparsity)
        logger.info(
            "%s: pair neighbours of %d training pairs, power %s, held-out gain %.3f "
            "(whole residuals), %s",
            self.label,
            len(pairs),
            fitted.power,
            fitted.held_out_gain,
            "lent whole"
            if fitted.sparsity is None
            else f"lent beyond {fitted.sparsity:g} robust SDs of their bulk",
        )
        return fitted

    def _measured(self, data: ScreenData, conditions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Measured changes of ``conditions`` and their error variances.

        As measured, with their squared standard errors; with ``denoise``, shrunk, with
        their posterior variances (:meth:`ScreenData.denoised`).
        """
        if self.denoise:
            return data.denoised(conditions)
        return data.changes(conditions), data.squared_standard_errors(conditions)

    def _fit_weights(self, data: ScreenData) -> None:
        """Fit the scale, the corrections' and the neighbours' weights, per kind; then the errors.

        The scale on held-out training conditions and the validation conditions; the
        corrections on the validation conditions (the models were trained on the others);
        the neighbours on what the corrections leave of the validation pairs of measured
        singles and on the training pairs each lent the others' residual. Validation pairs
        of genes never measured alone are predicted from predicted singles, so their
        corrections are weighted once the other kinds' weights are set. With
        ``partial_sum``, the validation sets with genes measured alone and genes not fit no
        weight: they are predicted once every weight is set, for the error model.
        """
        val = data.perturbed(data.val)
        held_out = self._held_out_training_rows(data)
        later = [c for c in val if self._unmeasured_pair(genes_of(c))]
        summed = [c for c in val if self._summed(genes_of(c))]
        apart = set(later) | set(summed)
        first = [c for c in val if c not in apart]
        residuals = dict(zip(first, self._fit_weights_on(data, first, held_out), strict=True))
        residuals.update(zip(later, self._fit_unmeasured_pairs(data, later), strict=True))
        if summed:
            predicted = self._summed_partial([genes_of(c) for c in summed])
            residuals.update(zip(summed, data.changes(summed) - predicted, strict=True))
        val_residuals = np.array([residuals[c] for c in val]).reshape(len(val), len(self.genes))
        self._fit_error_model(data, held_out, val, val_residuals)
        logger.info("%s weights (fitted on held-out conditions):\n%s", self.label, self.weights)

    def _targets(
        self, data: ScreenData, conditions: list[str]
    ) -> tuple[list[GeneSet], list[np.ndarray], np.ndarray, list[np.ndarray]]:
        """Held-out conditions as the weights are fitted on them.

        Returns each condition's genes, the mask of its fitted genes (off its targets), the
        measured changes ``(len(conditions), G)`` and the indices of each condition's
        :data:`FIT_GENES` strongest fitted genes.
        """
        sets = [genes_of(c) for c in conditions]
        keep = [self._fitted_genes(s) for s in sets]
        measured = data.changes(conditions)
        focus = [strongest(measured[i, keep[i]], FIT_GENES) for i in range(len(conditions))]
        return sets, keep, measured, focus

    def _fit_weights_on(
        self, data: ScreenData, val: list[str], held_out: list[tuple[str, FitRow]]
    ) -> np.ndarray:
        """Fit the scale on ``val`` and ``held_out``, the corrections' weights on ``val``.

        Then the :data:`NEIGHBOURS` weight on what the corrections leave of the pairs of
        measured singles of ``val``, and on the training pairs each lent the others'
        residual (:meth:`_held_out_pair_rows`).

        Returns the residuals (measured minus predicted changes) of ``val``.
        """
        sets, keep, measured, focus = self._targets(data, val)
        kinds = [kind_of(s, self.singles) for s in sets]
        seen, scaled = self._baseline(sets)
        scale_rows = [
            FitRow(kinds[i], scaled[i, keep[i]], measured[i, keep[i]] - seen[i, keep[i]], focus[i])
            for i in range(len(val))
            if scaled[i, :, 0].any()
        ]
        self._scale = fit_per_kind(
            [row for _, row in held_out if self._scale_kind(row.kind) == row.kind] + scale_rows,
            KINDS,
            SCALE_DEFAULT,
            pooled_kinds=POOLED,
        )
        scales = np.array([self._scale_of(k) for k in kinds]).reshape(len(kinds), len(SCALES))
        baseline = seen + np.einsum("ngp,np->ng", scaled, scales)
        departures = self._departures(sets, baseline)
        lent = departures.pop(NEIGHBOURS, None)
        self._corrections_fit = {}
        predicted = self._fit_corrections(kinds, keep, measured, baseline, departures, focus, KINDS)
        self._neighbours_fit = NO_EVIDENCE
        pair_rows = self._held_out_pair_rows()
        if lent is not None and pair_rows:  # rows only when the neighbours lend a residual
            # the residual is lent to pairs only, not to larger sets of measured singles
            pairs = [i for i, genes in enumerate(sets) if self._measured_pair(genes)]
            neighbour_rows = [
                FitRow(
                    "combo_seen2",
                    lent[i, keep[i], None],
                    measured[i, keep[i]] - predicted[i, keep[i]],
                    focus[i],
                )
                for i in pairs
            ]
            self._neighbours_fit = fit_per_kind(
                neighbour_rows + pair_rows, ("combo_seen2",), np.zeros(1), pooled_kinds=()
            )["combo_seen2"]
            predicted[pairs] += self._neighbours_fit.weights[0] * lent[pairs]
        return measured - predicted

    def _fit_unmeasured_pairs(self, data: ScreenData, pairs: list[str]) -> np.ndarray:
        """Fit the corrections' weights of pairs of genes never measured alone.

        Their baseline is their genes' predicted singles combined, with the other kinds'
        weights already set (no scale; no residual lent). With ``infer_singles`` the weights
        are fitted only on those of ``pairs`` neither of whose genes a training condition
        perturbs: a gene of a measured pair gets its single inferred from that pair once the
        weights are set, so the weights serve pairs of genes no measured condition perturbs,
        while the correcting models learnt the other validation pairs' genes from their
        training pairs. Without it, on every one of ``pairs``. Returns the residuals of
        ``pairs``, every one predicted with those weights.
        """
        sets, keep, measured, focus = self._targets(data, pairs)
        baseline, _ = self._baseline(sets)
        departures = self._departures(sets, baseline)
        departures.pop(NEIGHBOURS, None)
        kinds = ["combo_seen0"] * len(pairs)
        fit_on = None
        if self.infer_singles:
            trained = {g for c in data.perturbed(data.train) for g in genes_of(c)}
            fit_on = [i for i, genes in enumerate(sets) if trained.isdisjoint(genes)]
        predicted = self._fit_corrections(
            kinds, keep, measured, baseline, departures, focus, ("combo_seen0",), fit_on
        )
        return measured - predicted

    def _fit_corrections(
        self,
        kinds: list[str],
        keep: list[np.ndarray],
        measured: np.ndarray,
        baseline: np.ndarray,
        departures: dict[str, np.ndarray],
        focus: list[np.ndarray],
        fitted_kinds: tuple[str, ...],
        fit_on: list[int] | None = None,
    ) -> np.ndarray:
        """Fit the correcting models' weights of ``fitted_kinds``; return the predictions.

        Each kind on its own held-out conditions (never pooled; those of ``fit_on`` when
        given, else all), by the departures of the models from ``baseline`` on each
        condition's fitted genes (``keep``, ``focus``). Returns ``baseline`` plus the
        weighted departures, ``(len(kinds), G)``, for every condition.
        """
        rows = [
            FitRow(
                kinds[i],
                np.stack([d[i, keep[i]] for d in departures.values()], axis=-1)
                if departures
                else np.zeros((int(keep[i].sum()), 0)),
                measured[i, keep[i]] - baseline[i, keep[i]],
                focus[i],
            )
            for i in (range(len(kinds)) if fit_on is None else fit_on)
        ]
        no_weights = np.zeros(len(departures))
        fitted = fit_per_kind(rows, fitted_kinds, no_weights, pooled_kinds=())
        self._corrections_fit.update(fitted)
        predicted = baseline.copy()
        for i, kind in enumerate(kinds):
            if kind in fitted:
                for j, departure in enumerate(departures.values()):
                    predicted[i] += fitted[kind].weights[j] * departure[i]
        return predicted

    def _fit_error_model(
        self,
        data: ScreenData,
        held_out: list[tuple[str, FitRow]],
        val: list[str],
        val_residuals: np.ndarray,
    ) -> None:
        """Fit the error scales on every held-out prediction, per kind.

        The validation conditions as predicted (weights included; every validation pair
        of genes never measured alone, also those its weights were not fitted on, each a
        held-out prediction of its kind: a few more rows for a kind that has few); the
        training conditions held out one at a time as the calibrated baseline predicts them
        (the corrections were trained on them; pairs of genes never measured alone left
        out, see :meth:`_held_out_training_rows`), each with the support it has without
        itself; and the training pairs of measured singles as their combined singles
        predict them (the singles never saw the pair; the pair fit did).
        """
        ratios, supports, kinds = [], [], []
        known = set(self.singles)
        train = data.perturbed(data.train)
        pairs = [c for c in train if kind_of(genes_of(c), known) == "combo_seen2"]
        raw = data.changes(pairs)
        for condition, measured in zip(pairs, raw, strict=True):
            genes = genes_of(condition)
            keep = self._fitted_genes(genes)
            residual = measured - self._measured_part(genes)
            ratios.append(error_ratio(residual[keep], self.gene_scale[keep]))
            supports.append(1.0)
            kinds.append("combo_seen2")
        for condition, row in held_out:
            genes = genes_of(condition)
            residual = row.target - row.parts @ self._scale_of(self._scale_kind(row.kind))
            scale = self.gene_scale[self._fitted_genes(genes)]
            others = known - {condition}  # measured alone, the held-out single aside
            ratios.append(error_ratio(residual, scale) / unmeasured_count(genes, others))
            supports.append(self._support_of(genes, others).mean())
            kinds.append(row.kind)
        for i, condition in enumerate(val):
            genes = genes_of(condition)
            keep = self._fitted_genes(genes)
            ratio = error_ratio(val_residuals[i, keep], self.gene_scale[keep])
            ratios.append(ratio / unmeasured_count(genes, known))
            supports.append(self._support_of(genes, known).mean())
            kinds.append(kind_of(genes, known))
        self._error = fit_error_scales(
            np.array(ratios), np.array(supports), kinds, all_kinds=KINDS, pooled_kinds=ERROR_POOLED
        )

    def _held_out_pair_rows(self) -> list[FitRow]:
        """Training pairs of measured singles, each lent the residual of the other pairs alike.

        Rows for the :data:`NEIGHBOURS` weight of pairs of measured singles, its one part the
        lent residual, beyond the pair's own singles as at prediction (the correcting models
        were trained on these pairs: they fit only on the validation pairs); none without
        pair neighbours.
        """
        neighbours = self.pair_neighbours
        if neighbours is None or neighbours.power is None:
            return []
        rows = []
        lent = neighbours.held_out(
            self.singles, np.array([self._fitted_genes(genes) for genes in neighbours.pairs])
        )
        for genes, residual, lent_residual in zip(
            neighbours.pairs, neighbours.residuals, lent, strict=True
        ):
            keep = self._fitted_genes(genes)
            measured = residual[keep] + self._measured_part(genes)[keep]
            rows.append(
                FitRow(
                    "combo_seen2",
                    lent_residual[keep, None],
                    residual[keep],
                    strongest(measured, FIT_GENES),
                )
            )
        return rows

    def _held_out_training_rows(self, data: ScreenData) -> list[tuple[str, FitRow]]:
        """Training conditions held out one at a time, for the scale of the unseen part.

        Each perturbed training condition with genes not measured alone (by the other
        training conditions) is predicted by the mean of the other training conditions,
        except a pair neither of whose genes was measured alone: the default predicts such a
        pair from its genes' predicted singles, not the mean, so its error would say nothing
        of the scale nor of the default's error. With ``partial_sum``, a set with genes
        measured alone and genes not fits no scale (it is summed): its row serves the error
        model alone, as the unseen singles' scale predicts its unseen part
        (:meth:`_scale_kind`). Returns each condition with its row.
        """
        train = data.perturbed(data.train)
        if len(train) < 2:
            return []
        raw = data.changes(train)
        total = raw.sum(axis=0)
        rows = []
        for i, condition in enumerate(train):
            genes = genes_of(condition)
            others = {g: c for g, c in self.singles.items() if g != condition}
            kind = kind_of(genes, others)  # a single held out of itself: unseen_single
            if kind == "combo_seen2" or self._unmeasured_pair(genes):
                continue
            keep = self._fitted_genes(genes)
            seen = sum((others[g] for g in genes if g in others), np.zeros(len(self.genes)))
            loo_mean = (total - raw[i]) / (len(train) - 1)
            parts = np.stack([loo_mean[keep], np.zeros(int(keep.sum()))], axis=-1)
            focus = strongest(raw[i, keep], FIT_GENES)
            rows.append((condition, FitRow(kind, parts, raw[i, keep] - seen[keep], focus)))
        return rows

    @property
    def weights(self) -> pd.DataFrame:
        """The weights, per kind of perturbation.

        Columns ``kind``, ``part`` (:data:`SCALES`: ``"scale"``, the factor on the
        baseline's mean part, and ``"scale_linear"``, on ``linear``'s departure from it;
        then one row per correcting model, and :data:`NEIGHBOURS` when used), ``weight``,
        ``n_conditions`` (the held-out conditions that fitted it; 0 means the default was
        kept) and ``pooled`` (fitted on the conditions of several kinds, the kind having too
        few of its own). With ``partial_sum``, sets with genes measured alone and genes
        not (``combo_seen1``) have no weights and no rows.
        """
        if not self._scale:  # read while fitting too, once the scales are fitted
            self.require_fitted()
        rows = []
        for kind in KINDS:
            if self._summed_kind(kind):
                continue
            fits: list[tuple[str, Fitted, int]] = [
                (name, self._scale[kind], j) for j, name in enumerate(SCALES)
            ]
            corrections, *neighbours = self._parts_fit(kind)
            fits += [(name, corrections, j) for j, name in enumerate(self.corrections)]
            fits += [(NEIGHBOURS, fitted, 0) for fitted in neighbours]
            rows += [
                {
                    "kind": kind,
                    "part": part,
                    "weight": float(fitted.weights[j]),
                    "n_conditions": fitted.n_conditions,
                    "pooled": fitted.pooled,
                }
                for part, fitted, j in fits
            ]
        return pd.DataFrame(rows, columns=["kind", "part", "weight", "n_conditions", "pooled"])

    @property
    def error_scales(self) -> pd.DataFrame:
        """The fitted error model per kind (:class:`~perturbsim.models._error_model.ErrorScale`).

        A prediction of a kind with support ``s`` (0 to 1: how closely its genes are tied to
        genes measured alone, see the class's Uncertainty section) has expected squared
        error ``n · max(intercept - slope·s', 0.05·intercept)`` times each gene's scale (its
        spread over the training perturbations), its variance in ``.layers["variance"]``,
        where ``s'`` is ``s`` clipped to ``[support_low, support_high]`` and ``n`` is the
        number of its genes not measured alone, at least 1 (:func:`unmeasured_count`; 1 in
        files saved before it was counted, ``error_per_gene`` false), plus, for a set with
        an inferred single, that single's error variance.

        Columns ``kind``, ``intercept`` (the line's expected squared error, in gene scales,
        at support 0: no measured gene near the perturbation), ``slope`` (how much a unit
        of support removes, shrunk by its noise; it may exceed ``intercept``, the floor then
        holds; both read only within the supports below), ``support_low`` and
        ``support_high`` (the supports of the conditions that fitted the line, which is not
        extrapolated past them; NaN for the default), ``n_conditions`` (the
        held-out predictions that fitted it, those of every pooled kind for a pooled row:
        validation conditions, and training conditions held out one at a time, each
        counted once, its error divided by its genes not measured alone; 0: the default,
        intercept 1, the error of the mean) and ``pooled`` (fitted on the conditions
        of the unseen singles and the pairs with a gene not measured alone together, the
        kind having fewer than three of its own; pairs of measured singles never are).
        """
        if not self._error:
            self.require_fitted()
        rows = []
        for kind in KINDS:
            fitted = self._error[kind]
            low, high = fitted.support_range or (np.nan, np.nan)
            rows.append(
                {
                    "kind": kind,
                    **fitted.to_dict(),
                    "support_low": float(low),
                    "support_high": float(high),
                    "pooled": fitted.pooled,
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "kind",
                "intercept",
                "slope",
                "support_low",
                "support_high",
                "n_conditions",
                "pooled",
            ],
        )

    @property
    def history(self) -> pd.DataFrame:
        """GEARS's training history (:attr:`perturbsim.models.GEARS.history`).

        Empty without GEARS among the corrections; an error before :meth:`fit`.
        """
        self.require_fitted()
        gears = self.corrections.get("gears")
        return gears.history if isinstance(gears, GEARS) else pd.DataFrame()

    # -- predict ---------------------------------------------------------------------------
    def _scale_kind(self, kind: str) -> str:
        """The kind whose scales predict the unseen part of a held-out condition of ``kind``.

        Its own, but with ``partial_sum`` for a set with genes measured alone and genes not
        (``combo_seen1``): it is summed, its genes not measured alone predicted as such
        genes are, so the unseen singles' scales.
        """
        return "unseen_single" if self._summed_kind(kind) else kind

    def _scale_of(self, kind: str) -> np.ndarray:
        """The scales of a kind (:data:`SCALES`; :data:`SCALE_DEFAULT` for other kinds)."""
        return self._scale[kind].weights if kind in KINDS else SCALE_DEFAULT

    def _parts_fit(self, kind: str) -> list[Fitted]:
        """How the weights of a kind's corrections, then of :data:`NEIGHBOURS`, were fitted.

        :data:`NEIGHBOURS` lends a residual to pairs of measured singles only: its weight is
        that kind's, 0 elsewhere.
        """
        fitted = [self._corrections_fit[kind]]
        if self.pair_neighbours is not None:
            fitted.append(self._neighbours_fit if kind == "combo_seen2" else NO_EVIDENCE)
        return fitted

    def _weights_of(self, genes: GeneSet) -> tuple[np.ndarray, np.ndarray]:
        """The scales and the parts' weights of a set (the baseline's for other kinds)."""
        kind = kind_of(genes, self.singles)
        if kind not in KINDS:
            return SCALE_DEFAULT, np.zeros(len(self.part_names))
        return self._scale_of(kind), np.concatenate([f.weights for f in self._parts_fit(kind)])

    def _warn_of(self, prediction: AnnData, fix: str = "") -> None:
        """Also name the supported perturbations of unmeasured genes predicted as the mean.

        A single of a gene not measured alone is the scaled mean training change (and the
        gene's direct effect on itself) when no correction of unseen singles held out on
        the validation conditions and ``linear``'s departure from the mean is none for it
        (it does not cover the gene, its own shrinkage or the fitted scale of its departure
        leave nothing: under :data:`NO_DEPARTURE` of the mean change's largest entry); a
        set of such genes, none measured alone, is their predicted singles combined, and
        with ``partial_sum`` a set of such genes and measured ones is those genes' singles
        plus that mean. A perturbation with such a gene rests on that guess for it, as one
        with an unsupported gene does, however closely GO ties its genes to measured ones
        (its ``support``): flagged in ``.obs["generic"]`` (:meth:`_predicted_generically`)
        and named here. Genes measured alone but held out by the model's split are named as
        such.
        """
        super()._warn_of(prediction, fix)
        if not WARN_UNSUPPORTED.get():  # work on the way (design's candidates, say)
            return
        self._warn_of_no_direct_effect(prediction.obs.index)
        obs = prediction.obs
        # predict flags them (this model always gives support); the unsupported are warned of
        # already
        named = obs[PRED_GENERIC].to_numpy(dtype=bool) & ~obs[PRED_UNSUPPORTED].to_numpy(dtype=bool)
        alike = [str(label) for label in obs.index[named]]
        if not alike:
            return
        held = self._held_out_note(alike)
        which = counted(
            len(alike),
            "perturbation of genes the model never saw alone is",
            "perturbations of genes the model never saw alone are",
        )
        self._warn_once(
            f"{which} tied by GO to measured genes but predicted, as unsupported ones are, "
            "from the scaled mean change of the training perturbations (no correction of "
            "unseen singles held out on validation, and linear departs from the mean by "
            f"nothing for those genes): {shown_list(alike, 20)}" + (f"; {held}" if held else "")
        )

    def _predicted_generically(self, labels: Sequence[str]) -> np.ndarray:
        """Which ``labels`` have a gene whose single is the scaled mean change, GO aside.

        A gene not measured alone that :meth:`_predicted_as_mean` names, as
        :meth:`predict`'s ``.obs["generic"]`` (which ``gi_scores`` flags pairs by) and
        :meth:`_warn_of` read it.
        """
        unmeasured = [
            [g for g in genes_of(str(label)) if g not in self.singles] for label in labels
        ]
        as_mean = self._predicted_as_mean({g for genes in unmeasured for g in genes})
        return np.array([bool(as_mean.intersection(genes)) for genes in unmeasured], dtype=bool)

    def _warn_of_no_direct_effect(self, labels: Iterable[object]) -> None:
        """Name the perturbed genes the screen measures whose own change no effect predicts.

        A gene not measured alone gets the mean change on its own expression plus the direct
        effect :func:`~perturbsim.models.fit_target_effect` learnt from the training
        conditions' measured targets; with none measured, that effect is 0, and a CRISPRa
        or CRISPRi target's own change (often the largest) is missed.
        """
        if self.target_effect.size == 0 or self.target_effect.any():
            return
        measured = set(self.genes)
        own = sorted(
            {
                g
                for label in labels
                for g in genes_of(str(label))
                if g in measured and g not in self.singles
            }
        )
        if own:
            self._warn_once(
                f"no training perturbation's target gene is measured, so no direct effect of "
                f"a perturbation on its own gene was learnt: the own expression of "
                f"{shown_list(own, 10)} is predicted as the mean change there (its measured "
                "change may be far larger; the scores leave targets out by default)"
            )

    def _predicted_as_mean(self, genes: Iterable[str]) -> set[str]:
        """Those of ``genes`` not measured alone whose single is the scaled mean change.

        That is, when no correction of unseen singles holds out on the validation conditions
        and ``linear``'s departure from the mean for the gene is none (under
        :data:`NO_DEPARTURE` of the mean change's largest entry, after its fitted scale);
        empty when a correction of unseen singles has weight.
        """
        genes = sorted({g for g in genes if g not in self.singles})
        if not genes or self._parts_fit("unseen_single")[0].weights.any():
            return set()
        _, scaled = self._baseline([(gene,) for gene in genes])
        departure = (
            np.abs(scaled[:, :, 1]).max(axis=1, initial=0.0) * self._scale_of("unseen_single")[1]
        )
        floor = NO_DEPARTURE * np.abs(self.mean_change).max(initial=0.0)
        return {gene for gene, size in zip(genes, departure, strict=True) if size <= floor}

    def _predict_change(self, sets: list[GeneSet]) -> tuple[np.ndarray, np.ndarray]:
        self._require_covered(sets)
        return self._point_change(sets), self._variance(sets)

    def _point_change(self, sets: list[GeneSet]) -> np.ndarray:
        """Each set's predicted change, ``(len(sets), G)`` (0 for the control).

        With ``partial_sum``, a set with genes measured alone and genes not is summed
        (:meth:`_summed_partial`); every other set is weighted (:meth:`_weighted_change`).
        """
        summed = [i for i, s in enumerate(sets) if self._summed(s)]
        if not summed:
            return self._weighted_change(sets)
        weighted = sorted(set(range(len(sets))) - set(summed))
        change = np.zeros((len(sets), len(self.genes)))
        change[weighted] = self._weighted_change([sets[i] for i in weighted])
        change[summed] = self._summed_partial([sets[i] for i in summed])
        return change

    def _summed_kind(self, kind: str) -> bool:
        """Whether sets of ``kind`` are summed, not weighted (``partial_sum``: ``combo_seen1``)."""
        return self.partial_sum and kind == "combo_seen1"

    def _summed(self, genes: GeneSet) -> bool:
        """Whether ``genes`` is predicted by :meth:`_summed_partial`."""
        return self._summed_kind(kind_of(genes, self.singles))

    def _summed_partial(self, sets: list[GeneSet]) -> np.ndarray:
        """Sets with genes measured alone and genes not: the measured singles plus the rest.

        The rest, the genes not measured alone, as a set, predicted as such a set is (an
        unseen single, or a set none of whose genes was measured alone). Returns
        ``(len(sets), G)``.
        """
        rests = [tuple(g for g in genes if g not in self.singles) for genes in sets]
        distinct = list(dict.fromkeys(rests))  # predict each rest once
        predicted = dict(zip(distinct, self._weighted_change(distinct), strict=True))
        return np.array(
            [
                self._measured_part(genes) + predicted[rest]
                for genes, rest in zip(sets, rests, strict=True)
            ]
        ).reshape(len(sets), len(self.genes))

    def _weighted_change(self, sets: list[GeneSet]) -> np.ndarray:
        """Each set's baseline plus its kind's weighted departures, ``(len(sets), G)``."""
        if not sets:
            return np.zeros((0, len(self.genes)))
        seen, scaled = self._baseline(sets)
        fitted = [self._weights_of(s) for s in sets]
        scales = np.array([scales for scales, _ in fitted]).reshape(len(sets), len(SCALES))
        baseline = seen + np.einsum("ngp,np->ng", scaled, scales)
        departures = self._departures(sets, baseline)
        weights = np.array([w for _, w in fitted]).reshape(len(sets), len(departures))
        change = baseline.copy()
        for j, departure in enumerate(departures.values()):
            change += weights[:, j, None] * departure
        change[[not s for s in sets]] = 0.0
        return change

    def _variance(self, sets: list[GeneSet]) -> np.ndarray:
        """Predictive variance of each set's change: see the class documentation."""
        variance = np.zeros((len(sets), len(self.genes)))
        support = self._support_columns(sets)[PRED_SUPPORT]
        for row, genes in enumerate(sets):
            kind = kind_of(genes, self.singles)
            if kind == "seen_single":
                variance[row] = self.single_noise.get(genes[0], self.noise)
            elif kind in KINDS:
                ratio = self._error[kind].ratio(support[row])
                if self.error_per_gene:
                    ratio = ratio * unmeasured_count(genes, self.singles)
                variance[row] = ratio * self.gene_scale
            for gene in genes:
                if gene in self.inferred_variance:
                    variance[row] += self.inferred_variance[gene]
        several = [row for row, genes in enumerate(sets) if len(genes) > 1]
        if several:  # a set errs at least as its parts do: their variances as singles, summed
            genes = sorted({g for row in several for g in sets[row]})
            part = dict(zip(genes, self._variance([(g,) for g in genes]), strict=True))
            for row in several:
                floor = sum(part[g] for g in sets[row])
                variance[row] = np.maximum(variance[row], floor)
        return variance

    # -- persistence -----------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        def as_dict(fitted: dict[str, Fitted]) -> dict[str, Any]:
            return {kind: fitted_to_dict(f) for kind, f in fitted.items()}

        return {
            "denoise": self.denoise,
            "interaction": self.interaction,
            "shared_change": self.shared_change,
            "neighbours": self.neighbours,
            "neighbours_beyond_singles": True,
            "sparse_neighbours": self.sparse_neighbours,
            "infer_singles": self.infer_singles,
            "partial_linear": self.partial_linear,
            "partial_sum": self.partial_sum,
            "inferred": self.inferred,
            "pair_neighbours": None
            if self.pair_neighbours is None
            else self.pair_neighbours.to_dict(),
            "linear_embedding": self.linear_embedding,
            "pair_roles": self.pair_roles.to_dict(),
            "predicted_pair_roles": self.predicted_pair_roles.to_dict(),
            "scale": as_dict(self._scale),
            "corrections": as_dict(self._corrections_fit),
            "neighbours_weight": fitted_to_dict(self._neighbours_fit),
            "error": {kind: fitted.to_dict() for kind, fitted in self._error.items()},
            "error_per_gene": self.error_per_gene,
            # apart from "error", which files of earlier versions read field by field
            "error_pooled": [kind for kind, fitted in self._error.items() if fitted.pooled],
            "error_support": {
                kind: list(fitted.support_range)
                for kind, fitted in self._error.items()
                if fitted.support_range is not None
            },
            "single_genes": list(self.singles),
            "screen_genes": self.screen_genes,
            "parts": {name: model._options() for name, model in self.corrections.items()},
            "support_nodes": None
            if self.support_graph is None
            else self.support_graph.nodes.tolist(),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "mean_change": self.mean_change,
            "target_effect": self.target_effect,
            "gene_scale": self.gene_scale,
            "noise": self.noise,
        }
        arrays.update({f"single.{g}": change for g, change in self.singles.items()})
        arrays.update({f"single_noise.{g}": v for g, v in self.single_noise.items()})
        arrays.update({f"inferred_variance.{g}": v for g, v in self.inferred_variance.items()})
        if self.pair_neighbours is not None:
            arrays[f"{NEIGHBOURS}/residuals"] = self.pair_neighbours.residuals
        if self.support_graph is not None:
            arrays.update(self.support_graph.to_arrays(SUPPORT_GRAPH))
        for name, model in self.corrections.items():
            arrays.update({f"{name}/{key}": value for key, value in model._arrays().items()})
        return arrays

    def _array_shapes(self) -> dict[str, tuple[int | str, ...]]:
        """Its own gene-sized arrays (its parts' are checked as each part is restored)."""
        n_genes = len(self.genes)
        shapes: dict[str, tuple[int | str, ...]] = {
            "mean_change": (n_genes,),
            "target_effect": target_effect_shape(self.target_effect, n_genes),
            "gene_scale": (n_genes,),
            "noise": (n_genes,),
        }
        for prefix, genes in (
            ("single", self.singles),
            ("single_noise", self.single_noise),
            ("inferred_variance", self.inferred_variance),
        ):
            shapes.update({f"{prefix}.{gene}": (n_genes,) for gene in genes})
        if self.pair_neighbours is not None:
            pairs = len(self.pair_neighbours.pairs)
            shapes[f"{NEIGHBOURS}/residuals"] = (pairs, n_genes)
        return shapes

    def _restore(self, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        def from_dict(saved: dict[str, Any]) -> dict[str, Fitted]:
            return {kind: fitted_from_dict(f) for kind, f in saved.items()}

        def saved_flag(name: str) -> bool:  # False in files saved before the option existed
            return check_flag(name, options.get(name, False))

        self.denoise = check_flag("denoise", options["denoise"])
        # files saved before the role coefficients existed combine pairs by their sum
        self.interaction = saved_flag("interaction")
        self.shared_change = saved_flag("shared_change")
        # files saved before the pair neighbours lent no residual
        self.neighbours = saved_flag("neighbours")
        # files saved before lent whole residuals (their pair_neighbours say so too)
        self.sparse_neighbours = saved_flag("sparse_neighbours")
        # files saved before singles were inferred from pairs hold none
        self.infer_singles = saved_flag("infer_singles")
        # files saved before gave linear's prediction only to sets of no measured gene
        self.partial_linear = saved_flag("partial_linear")
        # files saved before weighted every set with genes measured alone and genes not
        self.partial_sum = saved_flag("partial_sum")
        self.inferred = {str(g): int(n) for g, n in options.get("inferred", {}).items()}
        if "neighbours" not in options:
            logger.warning(
                "%s was saved before pairs of genes never measured alone were predicted from "
                "their predicted singles: its weights for them were fitted otherwise; refit it",
                self.label,
            )
        saved_neighbours = options.get("pair_neighbours")
        if saved_neighbours is not None and "neighbours_beyond_singles" not in options:
            logger.warning(
                "%s was saved before the pair neighbours lent only the part of a residual "
                "beyond a pair's singles: their weight was fitted on whole residuals; refit it",
                self.label,
            )
        self.pair_neighbours = (
            None
            if saved_neighbours is None
            else PairNeighbours.from_dict(saved_neighbours, arrays[f"{NEIGHBOURS}/residuals"])
        )
        # files saved before the co-expression embedding used the paper's
        self.linear_embedding = str(options.get("linear_embedding", "training"))
        saved_roles = options.get("pair_roles")
        self.pair_roles = PairRoles.from_dict(saved_roles) if saved_roles else PairRoles.additive()
        saved_predicted = options.get("predicted_pair_roles")  # files saved before: the same
        self.predicted_pair_roles = (
            PairRoles.from_dict(saved_predicted) if saved_predicted else self.pair_roles
        )
        self._scale = from_dict(options["scale"])
        for kind, fitted in self._scale.items():  # files saved before the later scales
            if fitted.weights.size < len(SCALES):
                weights = np.append(fitted.weights, SCALE_DEFAULT[fitted.weights.size :])
                self._scale[kind] = Fitted(weights, fitted.n_conditions, fitted.pooled)
        self._corrections_fit = from_dict(options["corrections"])
        self._neighbours_fit = NO_EVIDENCE
        if "neighbours_weight" in options:
            self._neighbours_fit = fitted_from_dict(options["neighbours_weight"])
        elif self.pair_neighbours is not None:
            # saved when the corrections' weights ended with the neighbours' (fitted jointly)
            joint = self._corrections_fit
            pairs = joint["combo_seen2"]
            self._neighbours_fit = Fitted(pairs.weights[-1:], pairs.n_conditions, pairs.pooled)
            self._corrections_fit = {
                kind: Fitted(f.weights[:-1], f.n_conditions, f.pooled) for kind, f in joint.items()
            }
        pooled = set(options.get("error_pooled", []))  # files saved before it: not known
        self.error_per_gene = bool(options.get("error_per_gene", False))
        support = options.get("error_support", {})  # files saved before it: extrapolated
        self._error = {
            kind: ErrorScale.from_dict(
                fitted, pooled=kind in pooled, support_range=support.get(kind)
            )
            for kind, fitted in options["error"].items()
        }
        self.gene_scale = np.asarray(arrays["gene_scale"], dtype=np.float64)
        self.noise = np.asarray(arrays["noise"], dtype=np.float64)
        self.mean_change = np.asarray(arrays["mean_change"], dtype=np.float64)
        self.target_effect = np.asarray(arrays["target_effect"], dtype=np.float32)  # as fitted
        self.singles = {g: np.asarray(arrays[f"single.{g}"]) for g in options["single_genes"]}
        self.single_noise = {  # absent from files saved before it was kept
            g: np.asarray(arrays[f"single_noise.{g}"], dtype=np.float32)
            for g in self.singles
            if f"single_noise.{g}" in arrays
        }
        self.inferred_variance = {
            g: np.asarray(arrays[f"inferred_variance.{g}"], dtype=np.float64)
            for g in self.inferred
            if f"inferred_variance.{g}" in arrays
        }
        for gene in set(self.inferred) - set(self.inferred_variance):
            # files saved before joint inference: a pair's interaction over the pairs averaged
            self.inferred_variance[gene] = self._pair_interaction_variance() / self.inferred[gene]
        self.screen_genes = [str(g) for g in options["screen_genes"]]
        support_nodes = options.get("support_nodes")  # absent from files saved before it
        self.support_graph = (
            None
            if support_nodes is None
            else GeneGraph.from_arrays(support_nodes, arrays, SUPPORT_GRAPH)
        )
        self.go_annotations = None
        self.corrections = {}
        for name, part_options in options["parts"].items():
            if name not in CORRECTIONS:
                raise PerturbsimError(f"unknown part {name!r} of a saved {self.label} model")
            prefix = f"{name}/"
            part_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            self.corrections[name] = MODEL_REGISTRY[name].from_state(
                self.genes, self.control_mean, part_options, part_arrays, seed=self.seed
            )
