"""Read a Perturb-seq screen from an h5ad file or a zarr store and set it up."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._checks import as_path, check_flag
from .._errors import PerturbsimError, shown_list, suggestion
from .._keys import SETUP, UNS
from ..pp._setup import check_perturbation_key, setup
from ._stores import open_screen

logger = logging.getLogger(__name__)


def read(
    path: str | Path,
    *,
    perturbation_key: str = "condition",
    control: str | None = None,
    sep: str | None = None,
    gene_symbols: str | bool | None = None,
    normalize: bool = False,
    go_annotations: pd.DataFrame | None = None,
    pool_datasets: bool = False,
    backed: bool | Literal["r"] = False,
    where: Mapping[str, str | Sequence[str]] | None = None,
) -> ad.AnnData:
    """Read a screen (an h5ad file or a zarr store) and set it up with :func:`perturbsim.pp.setup`.

    A GEARS-format file (``condition`` = ``A+ctrl``, symbols in ``var['gene_name']``) works
    unchanged.

    Parameters
    ----------
    path
        The ``.h5ad`` file, or the ``.zarr`` store (a folder, as ``AnnData.write_zarr``
        writes it).
    perturbation_key, control, sep, gene_symbols, normalize, go_annotations, pool_datasets
        Passed to :func:`perturbsim.pp.setup`.
    backed
        Leave the expression on disk (``"r"``, anndata's spelling, is ``True``; a screen is
        only ever read) so that a screen larger than memory works: an h5ad
        file is opened read-only (``backed="r"``; with ``where``, only the kept cells are
        then read, into memory); a zarr store's ``X`` and layers are read lazily as dask
        arrays (needs the ``dask`` extra), its annotations into memory. The statistics
        pass (:func:`perturbsim.pp.pseudobulk`) then reads them a block of rows at a time.
    where
        Keep only the cells whose ``.obs`` column (the key) holds the value, or one of the
        values, given, before the set-up; several columns: all must match (compared as
        text, or as numbers in a numeric column; cells with no value never match). For a
        file that mixes screens or cell types, e.g. ``{"dataset": "norman19"}`` or
        ``{"cell_type": ["A172", "T98G"]}``. Recorded in
        ``.uns["perturbsim"]["setup"]["where"]``: a model fitted on the screen keeps it, and
        ``perturbsim export`` reads the same cells.

    Returns
    -------
    The set-up AnnData.

    Raises
    ------
    PerturbsimError
        If ``path`` is no path, the file or store is missing, not named ``.h5ad`` or
        ``.zarr`` or cannot be read as AnnData, ``backed`` is neither a bool nor ``"r"``, if
        ``where`` is not a mapping, names a column or value ``.obs`` does not hold or keeps
        no cell, or if
        :func:`perturbsim.pp.setup` rejects the screen.

    Examples
    --------
    >>> import perturbsim as ps
    >>> from perturbsim.ds._paths import bundled_path
    >>> adata = ps.ds.read(bundled_path("norman2019_subset.h5ad"), control="control")
    >>> adata.n_obs
    3375
    >>> ps.ds.read(
    ...     bundled_path("norman2019_subset.h5ad"), control="control",
    ...     where={"condition": ["control", "KLF1", "MAP2K6", "KLF1+MAP2K6"]},
    ... ).obs["perturbsim_condition"].nunique()
    4
    """
    if where is not None and not isinstance(where, Mapping):
        mask = " (a mask? give the column and its values)" if hasattr(where, "shape") else ""
        raise PerturbsimError(
            f"where must map obs columns to values, e.g. {{'dataset': 'norman19'}}, got a "
            f"{type(where).__name__}{mask}"
        )
    if isinstance(backed, str) and backed != "r":  # "r+" would write into the file
        raise PerturbsimError(f"backed must be True, False or 'r' (read-only), got {backed!r}")
    backed = True if isinstance(backed, str) else check_flag("backed", backed)
    adata = open_screen(as_path("path", path), backed=backed)
    if adata.isbacked and len(adata.layers) and not where:
        logger.warning(
            "backed=True leaves X of %r on disk, but anndata reads its layers (%s) into memory "
            "whole: to keep memory to a block of cells, write the file without them "
            "(simulate_to_disk(counts=False) for a simulated one)",
            str(path),
            ", ".join(map(str, adata.layers)),
        )
    if where:  # a column the screen lacks is no fault of the filter: said without its count
        check_perturbation_key(adata, perturbation_key)
        kept = kept_cells(adata.obs, where)
        logger.info("kept %d of %d cells (where=%s)", kept.sum(), kept.size, dict(where))
        if adata.isbacked:
            logger.warning(
                "backed=True with where: the %d kept cells are read into memory (setup writes "
                "into a screen, which a subset of a backed file cannot take)",
                kept.sum(),
            )
        adata = adata[kept].to_memory() if adata.isbacked else adata[kept].copy()
    try:
        setup(
            adata,
            perturbation_key=perturbation_key,
            control=control,
            sep=sep,
            gene_symbols=gene_symbols,
            normalize=normalize,
            go_annotations=go_annotations,
            pool_datasets=pool_datasets,
        )
    except PerturbsimError as err:
        if not where:
            raise
        raise PerturbsimError(f"{err} (where kept {kept.sum()} of {kept.size} cells)") from err
    if where:  # models fitted on the screen keep it, so that `export` reads the same cells
        adata.uns[UNS][SETUP]["where"] = {str(c): _values_of(c, v) for c, v in where.items()}
    return adata


def kept_cells(obs: pd.DataFrame, where: Mapping[str, object]) -> np.ndarray:
    """Mask of the cells whose ``obs`` columns hold the values of ``where``.

    Parameters
    ----------
    obs
        The cells' annotations.
    where
        Column -> the value, or a list of values, to keep; every column must match. Values
        are compared as text, or as numbers in a numeric column (``1`` matches ``1.0``);
        cells with no value (NaN) never match.

    Returns
    -------
    Boolean array of one value per row of ``obs``, ``(len(obs),)``: True where the cell
    matches every column; at least one is True (every one for an empty ``where``).

    Raises
    ------
    PerturbsimError
        If a column is not in ``obs``, is given no value, a value is held by no cell (with
        the closest one) or is not a number in a numeric column, or if no cell matches every
        column.

    Examples
    --------
    >>> import pandas as pd
    >>> obs = pd.DataFrame({"dataset": ["a", "a", "b"], "cell_type": ["K562", "A549", "K562"]})
    >>> kept_cells(obs, {"dataset": "a", "cell_type": "K562"}).tolist()
    [True, False, False]
    >>> kept_cells(obs, {"dataset": "a", "cell_type": ["K562", "RPE1"]}).tolist()
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: where: no cell has obs['cell_type'] 'RPE1' (its values: ...
    """
    kept = np.ones(len(obs), dtype=bool)
    counts = []
    for column, wanted in where.items():
        if column not in obs.columns:
            columns = list(map(str, obs.columns))
            lower = {c.lower(): c for c in reversed(columns)}  # the first of equal ones
            close = difflib.get_close_matches(str(column).strip().lower(), list(lower), n=1)
            hint = f"; did you mean {lower[close[0]]!r}?" if close else ""
            raise PerturbsimError(
                f"where: obs has no column {column!r} (its columns: "
                f"{shown_list(columns, 12)}){hint}"
            )
        values = _values_of(column, wanted)
        matching = _matching(obs[column], column, values)
        counts.append(f"{column}={' or '.join(values)}: {matching.sum()}")
        kept &= matching
    if not kept.any():
        raise PerturbsimError(
            f"where: no cell matches every column at once (cells each keeps alone: "
            f"{'; '.join(counts)})"
        )
    return kept


def _values_of(column: str, wanted: object) -> list[str]:
    """The values ``where`` gives a column, as text: one value or a list of them."""
    if isinstance(wanted, str | bytes) or (np.ndim(wanted) == 0 and not isinstance(wanted, set)):
        return [str(wanted)]  # one value; any other collection (a list, an Index) lists them
    values = [str(w) for w in wanted]
    if not values:
        raise PerturbsimError(f"where: no value given for obs[{column!r}]")
    return values


def _matching(values: pd.Series, column: str, wanted: list[str]) -> np.ndarray:
    """Cells whose ``values`` are among ``wanted`` (numbers in a numeric column, equal exactly).

    A numeric column's values are compared as numbers at the column's precision: ``"1"``
    matches 1.0, ``"100000"`` never 100001; a categorical column of numbers too.
    """
    present = values.notna().to_numpy()
    text = values.astype(str).to_numpy()
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = values.cat.categories
        if pd.api.types.is_numeric_dtype(categories) and not pd.api.types.is_bool_dtype(categories):
            as_numbers = categories.to_numpy()[values.cat.codes.to_numpy()]  # -1: missing
            if not present.all():  # a missing value as NaN, at float precision
                as_numbers = np.where(present, as_numbers, np.nan)
            values = pd.Series(as_numbers, index=values.index)
    for value in wanted:
        parts = [part.strip() for part in value.split(",")]
        if len(parts) > 1 and not (text == value).any():
            raise PerturbsimError(
                f"where: no cell has obs[{column!r}] {value!r}; several values? give them as a "
                f"list: where={{{column!r}: {parts!r}}}"
            )
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = pd.to_numeric(pd.Series(wanted), errors="coerce")
        if numbers.isna().any():
            raise PerturbsimError(
                f"where: obs[{column!r}] holds numbers; {wanted[int(numbers.isna().argmax())]!r} "
                "is not one"
            )
        # exactly, at the column's own precision (float32 values as float32): 100000 is not
        # 100001, nor 1e-9 zero; 1 matches 1.0
        precision = np.float32 if values.dtype == np.float32 else np.float64
        held = values.to_numpy(dtype=precision, na_value=np.nan)
        found = [(held == precision(n)) & present for n in numbers]
        shown = sorted(set(values.dropna().tolist()))
    else:
        found = [(text == w) & present for w in wanted]
        shown = sorted(set(text[present]))
    for value, cells in zip(wanted, found, strict=True):
        if not cells.any():
            raise PerturbsimError(
                f"where: no cell has obs[{column!r}] {value!r} (its values: "
                f"{shown_list(shown, 12)}){suggestion(value, shown)}"
            )
    return np.logical_or.reduce(found)
