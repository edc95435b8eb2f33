"""Preprocessing: perturbation labels, validation, pseudobulk statistics, DE genes, splits."""

from ._de import DEGenes, non_dropout_mask, rank_de
from ._labels import canonical_label, genes_of, parse_label, parse_perturbations
from ._pseudobulk import PseudobulkStats, pseudobulk
from ._setup import condition_table, setup
from ._split import Split, split

__all__ = [
    "DEGenes",
    "PseudobulkStats",
    "Split",
    "canonical_label",
    "condition_table",
    "genes_of",
    "non_dropout_mask",
    "parse_label",
    "parse_perturbations",
    "pseudobulk",
    "rank_de",
    "setup",
    "split",
]
