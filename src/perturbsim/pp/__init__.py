"""Preprocessing: perturbation labels, validation, pseudobulk statistics, DE genes, splits."""

from ._labels import canonical_label, genes_of, parse_label, parse_perturbations
from ._pseudobulk import PseudobulkStats, pseudobulk
from ._setup import condition_table, setup

__all__ = [
    "PseudobulkStats",
    "canonical_label",
    "condition_table",
    "genes_of",
    "parse_label",
    "parse_perturbations",
    "pseudobulk",
    "setup",
]
