"""Export for cell-eval: predicted and measured cells of held-out conditions, with control.

``cell-eval run`` (Arc Institute, PyPI ``cell-eval``) compares two h5ad files of cells, a
prediction and the real data, with the same genes in the same order and the same labels in an
``obs`` column: its ``--pert-col`` (default ``target_gene``), the control cells labelled with
its ``--control-pert`` (default ``non-targeting``) in both (``cell_eval/_cli/_const.py`` and
``PerturbationAnndataPair`` in ``cell_eval/_types/_anndata.py``, version 0.8.2). The files
written here use those defaults, so ``cell-eval run -ap pred.h5ad -ar real.h5ad`` reads them
without options.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._atomic import atomic_write_all
from .._checks import as_path, check_count, check_flag
from .._errors import PerturbsimError, counted, shown_list
from .._keys import (
    CELL_EVAL_CONTROL,
    CELL_EVAL_PERT_COL,
    CONDITION,
    CONTROL,
    SAMPLE_PERTURBATION,
    SPLIT_UNS,
    UNS,
)
from .._settings import switched_off
from ..models import PerturbationModel
from ..models._base import WARN_UNSUPPORTED, check_fitted_model
from ..pp import Split, canonical_label, parse_perturbations
from ..pp._cells import matrix_rows
from ..pp._pseudobulk import MIN_REPLICATE_CELLS, cell_matrix
from ..pp._setup import check_setup
from ..tl._design import known_fitted_conditions

logger = logging.getLogger(__name__)

PRED_FILE = "pred.h5ad"
REAL_FILE = "real.h5ad"


def _conditions(
    model: PerturbationModel, adata: AnnData, conditions: str | Sequence[str] | None
) -> list[str]:
    """Canonical labels of the conditions to export, each with cells and predictable.

    By default the split's test conditions, none of which the model may have been fitted
    on (a model fitted on another split of the screen would leak them); for a screen
    without a split, the conditions the model records its fit held out.
    """
    if conditions is None and SPLIT_UNS not in adata.uns.get(UNS, {}):
        conditions = _held_out_by_the_fit(model, adata)
    elif conditions is None:
        split = Split.from_adata(adata)
        if not split.test:
            raise PerturbsimError(
                f"the {split.kind} split of adata holds nothing out: pass conditions= to export"
            )
        conditions = split.test
        _refuse_fitted(model, conditions)
    labels = list(dict.fromkeys(canonical_label(s) for s in parse_perturbations(conditions)))
    present = set(adata.obs[CONDITION].astype(str))
    for label in labels:
        if label == CONTROL:
            raise PerturbsimError(
                "ctrl is exported with every condition: pass perturbed conditions only"
            )
        if label not in present:
            raise PerturbsimError(f"condition {label!r} has no cells in adata")
    for label, covered in zip(labels, model.covers(labels), strict=True):
        if not covered:
            raise PerturbsimError(f"model {model.label!r} cannot predict condition {label!r}")
    return labels


def _held_out_by_the_fit(model: PerturbationModel, adata: AnnData) -> list[str]:
    """The conditions the model's fit held out, for a screen without a split; refused if none.

    Only a model that records its screen's conditions knows them (one saved before that:
    the screen must be split as it was for training); each must have cells in ``adata``.
    """
    held_out = model.held_out_conditions
    if held_out is None:
        raise PerturbsimError(
            "no split in adata, and the model does not record the conditions its fit held out "
            "(saved by an earlier perturbsim): split adata as it was for training "
            "(perturbsim.pp.split), or pass conditions="
        )
    if not held_out:
        raise PerturbsimError(
            "the model was fitted on every condition of its screen (split 'none'): it holds "
            "nothing out to export; pass conditions=, or fit a model on a split"
        )
    present = set(adata.obs[CONDITION].astype(str))
    absent = [c for c in held_out if c not in present]
    if absent:
        raise PerturbsimError(
            f"{absent[0]!r}, one of the {counted(len(held_out), 'condition')} the model's fit "
            "held out (adata has no split), has no cells in adata: pass the screen it was "
            "fitted on, or conditions="
        )
    logger.info(
        "no split in adata: exporting the %s the model's fit held out",
        counted(len(held_out), "condition"),
    )
    return held_out


def _refuse_fitted(model: PerturbationModel, held_out: Sequence[str]) -> None:
    """Refuse held-out conditions the model records as fitted (:func:`known_fitted_conditions`).

    A model saved before its fitted conditions were recorded knows only its measured
    singles, so a leaked pair of such a file goes unseen.
    """
    fitted = set(known_fitted_conditions(model))
    leaked = [c for c in held_out if c in fitted]
    if leaked:
        recorded = model.held_out_conditions
        own = (
            f", or pass conditions=model.held_out_conditions (the "
            f"{counted(len(recorded), 'condition')} its fit held out)"
            if recorded
            else ""
        )
        raise PerturbsimError(
            f"the model was fitted on {counted(len(leaked), 'held-out condition')} of this split "
            f"(e.g. {leaked[0]!r}): export with the split it was trained on (its kind and "
            f"seed as for training; a model trained on every condition has none to export){own}"
        )


def _writable_var(var: pd.DataFrame) -> pd.DataFrame:
    """The screen's ``var`` as an h5ad file can hold it: a column it cannot is left out.

    h5ad writes a column named by text, of numbers, booleans, categories or text (missing
    values allowed), whose name is not the index's; others are named in a warning.
    """

    def writable(name: object) -> bool:
        column = var[name]
        if not isinstance(name, str) or name == var.index.name:
            return False
        if column.dtype != object:
            return True
        return all(isinstance(v, str) for v in column.dropna())

    kept = [name for name in var.columns if writable(name)]
    dropped = [str(name) for name in var.columns if name not in kept]
    if dropped:
        logger.warning(
            "var columns an h5ad file cannot hold (names that are no text, or a mix of text "
            "and other values) left out of the export: %s",
            shown_list(dropped, 5),
        )
    return var[kept].copy()


def _cells(x: object, labels: np.ndarray, names: Sequence[str], var: pd.DataFrame) -> AnnData:
    """Cells labelled as cell-eval reads them (``obs["target_gene"]``, ``non-targeting``).

    ``var``: the screen's as :func:`_writable_var` keeps it (gene annotations such as
    Ensembl IDs travel with the cells).
    """
    labels = np.where(labels == CONTROL, CELL_EVAL_CONTROL, labels)
    return AnnData(
        X=x,
        obs=pd.DataFrame(
            {CELL_EVAL_PERT_COL: pd.Categorical(labels)}, index=pd.Index(names, dtype=str)
        ),
        var=var,
    )


def export_cell_eval(
    model: PerturbationModel,
    adata: AnnData,
    out_dir: str | Path,
    *,
    conditions: str | Sequence[str] | None = None,
    n_cells: int | None = None,
    min_cells: int = MIN_REPLICATE_CELLS,
    seed: int | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write predicted and measured cells of held-out conditions in ``cell-eval run``'s layout.

    Two h5ad files, each holding the genes of ``adata`` in its order (with its ``var``) and
    every control cell of ``adata`` as measured, labelled ``non-targeting`` in
    ``obs["target_gene"]``; the other cells are labelled with their condition's canonical
    label (``KLF1``, ``KLF1+MAP2K6``):

    - ``real.h5ad``: the measured cells of each condition, as in ``adata.X`` (or in the
      layer the stored statistics were computed from, which the model was fitted on);
    - ``pred.h5ad``: cells of each condition made by
      :meth:`~perturbsim.models.PerturbationModel.sample` (their per-gene mean is the
      predicted mean), as many as were measured unless ``n_cells`` is given.

    Since both hold the same control cells, cell-eval's predicted change of a condition is
    the model's predicted mean minus the measured control mean. Evaluate with
    ``cell-eval run -ap OUT/pred.h5ad -ar OUT/real.h5ad`` (its defaults ``--pert-col
    target_gene --control-pert non-targeting``). The two files are written together: neither
    replaces an earlier one before both are written.

    Parameters
    ----------
    model
        A fitted model with the genes of ``adata``.
    adata
        A set-up screen (:func:`perturbsim.pp.setup`), split (:func:`perturbsim.pp.split`)
        unless ``conditions`` is given or the model records what its fit held out;
        log-normalised, as cell-eval expects by default.
    out_dir
        Directory to write the two files into (created if absent).
    conditions
        Labels of the conditions to export, as :meth:`~perturbsim.models.PerturbationModel.predict`
        takes them; default: the test conditions of the split of ``adata``, refused if
        the model records any of them as fitted (a model fitted on another split); for
        ``adata`` without a split, the conditions the model records its fit held out
        (:attr:`~perturbsim.models.PerturbationModel.held_out_conditions`).
    n_cells
        Predicted cells per condition; default: as many as the condition's measured cells,
        so that DE tests on both files have the same power.
    min_cells
        Conditions of fewer measured cells are left out, with a warning naming them (the
        mean and a DE test of one to three cells are mostly noise; :func:`perturbsim.tl.evaluate`
        leaves them out alike); 1 exports them all.
    seed
        Seed of the sampled cells (default: ``perturbsim.settings.seed``).
    overwrite
        Replace ``pred.h5ad`` and ``real.h5ad`` of an earlier export in ``out_dir``;
        without it either file existing is an error, raised before any work.

    Returns
    -------
    The paths of ``pred.h5ad`` and ``real.h5ad``.

    Raises
    ------
    PerturbsimError
        Bad input: ``out_dir`` a file, a file or folder in the way of the two files
        (without ``overwrite``), a model without the screen's genes, unknown conditions.
    OSError
        A write the system refuses (a full disk, no permission); the earlier files, if
        any, stay as they were.

    Examples
    --------
    >>> import tempfile
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.split(adata, kind="simulation", seed=1)
    >>> model = ps.TrainMean(adata).fit()
    >>> with tempfile.TemporaryDirectory() as out:
    ...     pred, real = ps.io.export_cell_eval(model, adata, out)
    >>> pred.name, real.name
    ('pred.h5ad', 'real.h5ad')
    """
    check_fitted_model(model)
    overwrite = check_flag("overwrite", overwrite)
    out = as_path("out_dir", out_dir)
    if out.exists() and not out.is_dir():
        raise PerturbsimError(f"{str(out)!r} is a file, not a folder to export into")
    on_the_way = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if on_the_way is not None:
        raise PerturbsimError(f"cannot export into {str(out)!r}: {str(on_the_way)!r} is a file")
    folder = next((name for name in (PRED_FILE, REAL_FILE) if (out / name).is_dir()), None)
    if folder is not None:
        raise PerturbsimError(
            f"{str(out / folder)!r} is a folder, where the export writes a file: move it away"
        )
    existing = [name for name in (PRED_FILE, REAL_FILE) if (out / name).exists()]
    if existing and not overwrite:
        raise PerturbsimError(
            f"{str(out / existing[0])!r} already exists; pass overwrite=True to replace it"
        )
    check_setup(adata)
    model.check_genes_of(adata)
    min_cells = check_count("min_cells", min_cells)
    labels = _conditions(model, adata, conditions)
    codes = adata.obs[CONDITION].astype(str).to_numpy()
    few = [label for label in labels if int((codes == label).sum()) < min_cells]
    if few:
        logger.warning(
            "left out %s of fewer than %d cells (min_cells): %s",
            counted(len(few), "condition"),
            min_cells,
            shown_list(few, 10),
        )
        labels = [label for label in labels if label not in set(few)]
        if not labels:
            raise PerturbsimError(
                f"every condition to export has fewer than {min_cells} cells (min_cells); "
                "pass min_cells=1 to export them anyway"
            )
    sizes = [int((codes == label).sum()) for label in labels]
    counts = sizes if n_cells is None else n_cells
    var = _writable_var(adata.var)  # before the work: what cannot be written is said
    with switched_off(WARN_UNSUPPORTED):  # held out on purpose: no advice to train on them
        sampled = model.sample(labels, adata, n_cells=counts, seed=seed)

    matrix = cell_matrix(adata)  # the values the model and its sampled cells describe
    control_rows = np.flatnonzero(codes == CONTROL)
    control = matrix_rows(matrix, control_rows)
    if sparse.issparse(control):
        x = sparse.vstack([control, sparse.csr_matrix(sampled.X)], format="csr")
    else:
        x = np.vstack([control, sampled.X])
    pred = _cells(
        x,
        np.concatenate([codes[control_rows], sampled.obs[SAMPLE_PERTURBATION].astype(str)]),
        [*adata.obs_names[control_rows], *sampled.obs_names],
        var,
    )
    real_rows = np.flatnonzero(np.isin(codes, [CONTROL, *labels]))
    real = _cells(
        matrix_rows(matrix, real_rows),
        codes[real_rows],
        adata.obs_names[real_rows],
        var,
    )

    pred_path, real_path = atomic_write_all(
        {out / PRED_FILE: pred.write_h5ad, out / REAL_FILE: real.write_h5ad}
    )
    logger.info(
        "wrote %d conditions to %s: %d predicted and %d measured cells, %d control cells in each",
        len(labels),
        out,
        sampled.n_obs,
        sum(sizes),
        control_rows.size,
    )
    return pred_path, real_path
