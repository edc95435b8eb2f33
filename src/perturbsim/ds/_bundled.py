"""Real data shipped inside the package (see ``data/PROVENANCE.md``)."""

from __future__ import annotations

from functools import lru_cache

import anndata as ad
import pandas as pd

from .._settings import switched_off
from ..pp._setup import WARN_UNMEASURED_TARGETS, setup
from ._paths import bundled_path


def norman2019_subset() -> ad.AnnData:
    """Load the bundled Norman et al. 2019 K562 CRISPRa subset, set up for perturbsim.

    3,375 cells x 500 genes, log1p-normalised: control, 18 single-gene and 15 two-gene
    perturbations, ~100 cells each. Source: the perturbench development fixture (BSD-3).

    Returns
    -------
    AnnData after :func:`perturbsim.pp.setup` (``perturbation_key="condition"``,
    ``control="control"``), without its warning of perturbed genes not measured in ``var``:
    30 of the CRISPRa targets here, as expected (listed in
    ``.uns["perturbsim"]["setup"]["missing_targets"]``).

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> adata.shape
    (3375, 500)
    """
    adata = ad.read_h5ad(bundled_path("norman2019_subset.h5ad"))
    with switched_off(WARN_UNMEASURED_TARGETS):  # 30 CRISPRa targets, known: no news
        setup(adata, perturbation_key="condition", control="control")
    return adata


@lru_cache(maxsize=1)
def _read_go() -> pd.DataFrame:
    return pd.read_csv(bundled_path("human_gene2go.tsv.gz"), sep="\t")


@lru_cache(maxsize=1)
def _read_alias() -> pd.DataFrame:
    return pd.read_csv(bundled_path("human_gene_alias.tsv.gz"), sep="\t")


def human_go() -> pd.DataFrame:
    """Human gene -> GO term annotations (direct, all ontologies).

    Returns
    -------
    DataFrame with columns ``gene`` (official symbol) and ``term`` (GO id), one row per
    annotation, from org.Hs.eg.db 3.16 (Entrez gene2go of 2022-09-12).

    Examples
    --------
    >>> import perturbsim as ps
    >>> go = ps.ds.human_go()
    >>> list(go.columns)
    ['gene', 'term']
    """
    return _read_go().rename(columns={"symbol": "gene", "go_id": "term"}).copy()


def human_gene_alias() -> pd.DataFrame:
    """Human gene alias -> official symbol table.

    Returns
    -------
    DataFrame with columns ``alias`` and ``symbol`` (e.g. ``ELMSAN1`` -> ``MIDEAS``).

    Examples
    --------
    >>> import perturbsim as ps
    >>> alias = ps.ds.human_gene_alias()
    >>> alias.loc[alias["alias"] == "ELMSAN1", "symbol"].tolist()
    ['MIDEAS']
    """
    return _read_alias().copy()
