"""The noiseless truth of a simulated screen as per-condition profiles.

:func:`perturbsim.ds.simulate` stores the noiseless mean of every condition of its
perturbable genes (control, every single, every pair) in ``.uns["simulation"]``.
:func:`truth_profiles` lays it out as :func:`gi_scores` reads profiles, so that the
scores of the truth define each pair's true interaction subtype.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from anndata import AnnData

from .._errors import PerturbsimError
from .._keys import CONTROL, DELTA_LAYER, PRED_N_TARGETS, SIMULATION
from ..pp import genes_of
from ..pp._setup import check_anndata

logger = logging.getLogger(__name__)


def truth_profiles(adata: AnnData) -> AnnData:
    """Noiseless per-condition profiles of a simulated screen, for :func:`gi_scores`.

    Parameters
    ----------
    adata
        A screen from :func:`perturbsim.ds.simulate` (read only: its
        ``.uns["simulation"]["truth_conditions"]``, ``["truth_mean"]`` and
        ``["truth_genes"]``), or a subset of its genes in any order: the truth is read by
        gene name.

    Returns
    -------
    AnnData with one row per truth condition (``obs_names``: canonical labels, ``ctrl``
    first, then every single and every pair of the perturbable genes) and the genes of
    ``adata`` as columns: the noiseless mean expression in ``X`` (float32, on the scale
    of ``adata.X``), its change over the ``ctrl`` row in ``.layers["delta"]`` and the
    number of perturbed genes in ``.obs["n_targets"]``.

    Examples
    --------
    >>> import perturbsim as ps
    >>> truth = ps.tl.truth_profiles(ps.ds.simulate(size="tiny", seed=0))
    >>> truth.obs_names[0], float(abs(truth.layers["delta"][0]).max())
    ('ctrl', 0.0)
    """
    check_anndata(adata)
    record = adata.uns.get(SIMULATION)
    if not isinstance(record, dict) or not {"truth_conditions", "truth_mean"} <= record.keys():
        raise PerturbsimError(
            "adata has no .uns['simulation'] truth: pass a screen from perturbsim.ds.simulate"
        )
    labels = [str(label) for label in np.asarray(record["truth_conditions"]).ravel()]
    mean = np.asarray(record["truth_mean"], dtype=np.float32)
    if "truth_genes" in record:  # by name: the screen's genes may since be reordered or cut
        column = {str(g): i for i, g in enumerate(np.asarray(record["truth_genes"]).ravel())}
        missing = [str(g) for g in adata.var_names if str(g) not in column]
        if missing:
            raise PerturbsimError(
                f"gene {missing[0]!r} of adata has no truth (.uns['simulation']['truth_genes']"
                f"; {len(missing)} such): pass the simulated screen's genes"
            )
        mean = mean[:, [column[str(g)] for g in adata.var_names]]
    elif mean.shape != (len(labels), adata.n_vars):  # a screen simulated before names were kept
        raise PerturbsimError(
            f"truth_mean has shape {mean.shape}, expected ({len(labels)}, {adata.n_vars})"
        )
    if CONTROL not in labels:
        raise PerturbsimError(f"truth_conditions has no {CONTROL!r} row")
    n_targets = [len(genes_of(label)) for label in labels]
    profiles = AnnData(
        X=mean.copy(),
        obs=pd.DataFrame({PRED_N_TARGETS: n_targets}, index=pd.Index(labels)),
        var=pd.DataFrame(index=pd.Index(adata.var_names)),
    )
    profiles.layers[DELTA_LAYER] = mean - mean[labels.index(CONTROL)]
    logger.info("built %d truth profiles x %d genes", len(labels), adata.n_vars)
    return profiles
