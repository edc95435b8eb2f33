"""Measured per-condition profiles: the screen's own means and changes, in prediction form.

A model's :meth:`~perturbsim.models.PerturbationModel.predict` returns one row per
perturbation with the mean expression in ``X`` and the change over control in
``.layers["delta"]``. :func:`measured_profiles` gives the measured conditions of a screen in
the same form, so that genetic interactions, plots and comparisons take either (or a mix of
the two: measured singles with a predicted pair).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from .._errors import PerturbsimError
from .._keys import (
    CONTROL,
    CONTROL_MEAN_VARIANCE,
    DELTA_LAYER,
    MEAN_VARIANCE_LAYER,
    PRED_N_TARGETS,
    SEP,
    SETUP,
    UNS,
)
from ._labels import genes_of, query_items, read_measured
from ._pseudobulk import PseudobulkStats, current_stats
from ._setup import check_setup

logger = logging.getLogger(__name__)

N_CELLS = "n_cells"
"""``.obs`` column of :func:`measured_profiles`: the cells behind each condition's mean."""


def _canonical(conditions: object, measured: set[str], setup: dict) -> list[str]:
    """``conditions`` as canonical labels, each measured; raise naming one that is not.

    A label is taken as it is when measured (canonical labels join genes by ``+``), else
    read as :func:`~perturbsim.pp.setup` read the screen's (its control label and
    separator), else with ``+``; a control word (the screen's control label or
    one of ``ctrl``, ``control``, ``non-targeting``, ``NT``, in any case) names no gene
    (:func:`parse_query`).
    """
    control, sep = str(setup.get("control", CONTROL)), str(setup.get("sep", SEP))
    labels, missing = [], []
    for item in query_items(conditions):
        if not isinstance(item, str):
            raise PerturbsimError(f"conditions must be labels, got {item!r}")
        label = read_measured(item, measured, control=control, sep=sep)
        if label is None:
            missing.append(item)
        else:
            labels.append(label)
    if missing:
        raise PerturbsimError(
            f"{len(missing)} condition(s) not measured in the screen: {missing[:5]}"
        )
    return list(dict.fromkeys(labels))


def profiles_of(stats: PseudobulkStats, conditions: Sequence[str]) -> AnnData:
    """The profiles of :func:`measured_profiles` for canonical ``conditions`` of ``stats``."""
    rows = stats.index(list(conditions))
    mean = stats.mean[rows].astype(np.float64)
    obs = pd.DataFrame(
        {
            PRED_N_TARGETS: [len(genes_of(c)) for c in conditions],
            N_CELLS: stats.n_cells[rows].astype(np.int64),
        },
        index=pd.Index(list(conditions)),
    )
    profiles = AnnData(
        X=mean,
        obs=obs,
        var=pd.DataFrame(index=pd.Index(np.asarray(stats.genes, dtype=str))),
    )
    profiles.layers[DELTA_LAYER] = mean - stats.control_mean.astype(np.float64)
    n = stats.n_cells.astype(np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):  # under 2 cells: unknown, NaN
        squared_se = np.where(n >= 2, stats.variance(ddof=1) / n, np.nan)
    profiles.layers[MEAN_VARIANCE_LAYER] = squared_se[rows]
    profiles.var[CONTROL_MEAN_VARIANCE] = squared_se[stats.control_index]
    return profiles


def measured_profiles(adata: AnnData, conditions: str | Sequence[str] | None = None) -> AnnData:
    """The measured mean profile of each condition, as a prediction of it would be laid out.

    Parameters
    ----------
    adata
        A screen set up by :func:`~perturbsim.pp.setup`. Its stored statistics
        (:func:`~perturbsim.pp.pseudobulk`) are used when present; otherwise they are
        computed in one pass over the cells (nothing is written into ``adata``).
    conditions
        A perturbation label or a list of them, in any form the screen's labels were read
        in (``"A+B"``, ``"B+A"``, ``"A+ctrl"``, with the separator and control label given
        to :func:`~perturbsim.pp.setup`); default every measured condition, control first.
        Each must have been measured.

    Returns
    -------
    AnnData with one row per condition (``obs_names`` canonical labels): the mean
    expression in ``X``, the change over the control mean in ``.layers["delta"]`` (0 for
    ``ctrl``), the squared standard error of each mean in ``.layers["mean_variance"]``
    (the cells' variance over their number; NaN under 2 cells) and the control's in
    ``.var["control_mean_variance"]``, and ``.obs["n_targets"]`` and ``.obs["n_cells"]``.
    It goes wherever a prediction does, e.g. :func:`perturbsim.tl.gi_scores` for the
    screen's measured genetic interactions.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> profiles = ps.pp.measured_profiles(adata, ["ctrl", "KLF1", "MAP2K6", "MAP2K6+KLF1"])
    >>> profiles.obs_names.tolist()
    ['ctrl', 'KLF1', 'MAP2K6', 'KLF1+MAP2K6']
    >>> profiles.obs["n_cells"].tolist()
    [100, 100, 100, 100]
    >>> float(abs(profiles["ctrl"].layers["delta"]).max())
    0.0
    """
    check_setup(adata)
    stats = current_stats(adata)
    measured = [str(c) for c, n in zip(stats.conditions, stats.n_cells, strict=True) if n > 0]
    if conditions is None:
        labels = [CONTROL, *(c for c in measured if c != CONTROL)]
    else:
        labels = _canonical(conditions, set(measured), adata.uns[UNS][SETUP])
    if CONTROL not in measured or stats.n_cells[stats.control_index] == 0:
        raise PerturbsimError(f"no control cells ({CONTROL!r}) in the screen")
    return profiles_of(stats, labels)
