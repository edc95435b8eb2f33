"""Preprocessing: labels, validation, statistics, DE genes, splits, profiles and cells."""

from ._cells import draw_cells
from ._de import DEGenes, count_de, non_dropout_mask, rank_de
from ._labels import canonical_label, genes_of, parse_label, parse_perturbations
from ._profiles import measured_profiles
from ._pseudobulk import PseudobulkStats, compute_pseudobulk, pseudobulk
from ._setup import condition_table, setup
from ._split import Split, split, split_summary

__all__ = [
    "DEGenes",
    "PseudobulkStats",
    "Split",
    "canonical_label",
    "compute_pseudobulk",
    "condition_table",
    "count_de",
    "draw_cells",
    "genes_of",
    "measured_profiles",
    "non_dropout_mask",
    "parse_label",
    "parse_perturbations",
    "pseudobulk",
    "rank_de",
    "setup",
    "split",
    "split_summary",
]
