"""Read a Perturb-seq screen from an h5ad file and set it up."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import pandas as pd

from .._errors import PerturbsimError, error_reason
from .._keys import SEP
from ..pp import setup

_READ_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError, AttributeError)
"""What h5py and anndata raise on a file that is not a complete h5ad file (not HDF5,
truncated, corrupted, or HDF5 without AnnData's groups)."""


def read(
    path: str | Path,
    *,
    perturbation_key: str = "condition",
    control: str | None = None,
    sep: str = SEP,
    gene_symbols: str | bool | None = None,
    normalize: bool = False,
    backed: bool = False,
    go_annotations: pd.DataFrame | None = None,
) -> ad.AnnData:
    """Read an h5ad screen and validate it with :func:`perturbsim.pp.setup`.

    A GEARS-format file (``condition`` = ``A+ctrl``, symbols in ``var['gene_name']``) works
    unchanged.

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    perturbation_key, control, sep, gene_symbols, normalize, go_annotations
        Passed to :func:`perturbsim.pp.setup`.
    backed
        Open read-only on disk (``backed="r"``) so that a screen larger than memory works.

    Returns
    -------
    The set-up AnnData.

    Raises
    ------
    PerturbsimError
        If the file is missing, not named ``.h5ad`` or cannot be read as AnnData, or if
        :func:`perturbsim.pp.setup` rejects the screen.

    Examples
    --------
    >>> import perturbsim as ps
    >>> from perturbsim.ds._paths import bundled_path
    >>> adata = ps.ds.read(bundled_path("norman2019_subset.h5ad"), control="control")
    >>> adata.n_obs
    3375
    """
    path = Path(path)
    if not path.is_file():
        raise PerturbsimError(f"no such file: {str(path)!r}")
    if path.suffix != ".h5ad":
        raise PerturbsimError(f"expected an .h5ad file, got {str(path)!r}")
    try:
        adata = ad.read_h5ad(path, backed="r" if backed else None)
    except _READ_ERRORS as err:
        raise PerturbsimError(
            f"cannot read {str(path)!r} as AnnData (not an h5ad file, or truncated?): "
            f"{error_reason(err)}"
        ) from err
    setup(
        adata,
        perturbation_key=perturbation_key,
        control=control,
        sep=sep,
        gene_symbols=gene_symbols,
        normalize=normalize,
        go_annotations=go_annotations,
    )
    return adata
