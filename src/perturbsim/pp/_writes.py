"""Where the preprocessing functions write: the screen or its copy, and their ``uns`` entries."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from anndata import AnnData, ImplicitModificationWarning

from .._checks import check_flag
from .._errors import PerturbsimError
from .._keys import UNS

logger = logging.getLogger(__name__)


def written_screen(adata: AnnData, *, copy: bool, what: str) -> AnnData:
    """The screen that ``what`` writes its results into: ``adata``, or with ``copy`` a copy.

    Raises
    ------
    PerturbsimError
        For a backed screen that cannot be written so: a copy of it (anndata copies a
        backed screen only into a new file) or a subset (view) of one.

    A view of a screen in memory is written into as anndata does (it becomes an AnnData
    of its own, here and now), with one warning saying so (anndata's own is not repeated).
    """
    copy = check_flag("copy", copy)
    if adata.isbacked and adata.is_view:
        raise PerturbsimError(
            f"adata is a subset (view) of a backed file, which {what} cannot write into: load "
            "it with adata.to_memory(), or read only those cells with "
            "perturbsim.ds.read(path, where={column: values})"
        )
    if adata.isbacked and copy:
        raise PerturbsimError(
            f"{what}(copy=True) cannot copy a backed screen: leave copy=False (it writes only "
            "into memory, never into the file) or load it first with adata.to_memory()"
        )
    if adata.is_view and not copy:
        logger.warning(
            "adata is a view (a subset of another AnnData): %s makes it an AnnData of its own "
            "and writes there; the AnnData it was cut from is left as it was",
            what,
        )
        with warnings.catch_warnings():  # anndata's note of the same, said above
            warnings.simplefilter("ignore", ImplicitModificationWarning)
            adata.obs = adata.obs  # assigning to a view makes it an AnnData of its own
    return adata.copy() if copy else adata


def store_uns(adata: AnnData, key: str, value: Any) -> None:
    """Set ``adata.uns["perturbsim"][key] = value``.

    The ``"perturbsim"`` dict is replaced by a new one holding the entry, never changed in
    place: the nested dict of a view is its parent's, so writing into it would change the
    parent, while assigning to a view's ``uns`` makes the view a copy of its own (anndata's
    copy on write).

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> import warnings
    >>> view = adata[:100]
    >>> with warnings.catch_warnings():  # anndata's note that the view becomes a copy
    ...     warnings.simplefilter("ignore")
    ...     store_uns(view, "note", 1)
    >>> view.is_view, "note" in adata.uns["perturbsim"]
    (False, False)
    """
    own = dict(adata.uns.get(UNS, {}))
    own[key] = value
    adata.uns[UNS] = own
