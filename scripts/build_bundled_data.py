"""Build the data files bundled in ``src/perturbsim/ds/data`` from ``../shared/data``.

Run from the repository root: ``python scripts/build_bundled_data.py [SHARED_DATA_DIR]``.

- ``norman2019_subset.h5ad``: the ``norman19`` cells of perturbench's development fixture
  (K562 CRISPRa, Norman et al. 2019), 500 genes, log1p-normalised, sparse.
- ``human_gene2go.tsv.gz``: symbol -> GO term (all three ontologies, direct annotations),
  from the gene2go table of Bioconductor's org.Hs.eg.db 3.16; entrez id and evidence dropped.
- ``human_gene_alias.tsv.gz``: alias -> official symbol from the same package.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import anndata as ad
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "src" / "perturbsim" / "ds" / "data"


def build(shared: Path) -> None:
    full = ad.read_h5ad(shared / "norman2019" / "perturbench_devel.h5ad")
    sub = full[full.obs["dataset"] == "norman19"].copy()
    sub.obs = sub.obs[["condition", "ncounts", "ngenes", "cell_type"]].copy()
    sub.obs["condition"] = sub.obs["condition"].astype(str).astype("category")
    sub.var = sub.var[[]]
    sub.uns = {}
    sub.write_h5ad(OUT / "norman2019_subset.h5ad", compression="gzip")

    go = pd.read_csv(shared / "go" / "human_gene2go.tsv.gz", sep="\t", usecols=["symbol", "go_id"])
    go = go.drop_duplicates().sort_values(["symbol", "go_id"])
    with gzip.open(OUT / "human_gene2go.tsv.gz", "wt", compresslevel=9) as handle:
        go.to_csv(handle, sep="\t", index=False)

    alias = pd.read_csv(
        shared / "go" / "human_gene_alias.tsv.gz", sep="\t", usecols=["alias", "symbol"]
    )
    alias = (
        alias[alias["alias"] != alias["symbol"]].drop_duplicates().sort_values(["alias", "symbol"])
    )
    with gzip.open(OUT / "human_gene_alias.tsv.gz", "wt", compresslevel=9) as handle:
        alias.to_csv(handle, sep="\t", index=False)


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data"))
