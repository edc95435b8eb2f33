"""Reading a screen on the command line: its options, errors in CLI words, a label check."""

from __future__ import annotations

import argparse
import logging
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from anndata import AnnData

from .._keys import CONDITION, CONTROL, ORIGINAL_ID, SEP
from ..pp import genes_of

logger = logging.getLogger(__name__)

ENSEMBL_ID = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
"""An Ensembl gene ID (``ENSG00000105610``, ``ENSMUSG00000054191.3``)."""
SEPARATORS = ("_", "-", "|", ",", ";", ":", "/", ".")
"""Separators the label check tries on labels that name no known gene."""

_CLI_WORDS = (
    (re.compile(r"\bnormalize=True\b"), "--normalize"),
    (re.compile(r"\bgene_symbols="), "--gene-key "),
    (re.compile(r"\bcontrol="), "--control "),
    (re.compile(r"\bperturbation_key\b"), "--perturbation-key"),
    (re.compile(r"\bpass go_annotations\b"), "pass --go annotations"),
    (re.compile(r"\bpass skip_unknown=True\b"), "pass --skip-unknown"),
    (re.compile(r"\babundance=(?=\d)"), "--abundance "),
    (re.compile(r"\bpass a lower abundance\b"), "pass a lower --abundance"),
    (re.compile(r" \(covers\(\) tells what it can predict\)"), ""),
)
"""Keyword arguments as errors name them -> CLI options (:func:`perturbsim.ds.read`'s, the
models' GO annotations, ``predict_pairs``'s ``skip_unknown``): every error the CLI prints
goes through :func:`cli_wording`."""


def add_screen_options(parser: argparse.ArgumentParser, *, go: bool = True) -> None:
    """Add the screen file and the options of :func:`perturbsim.ds.read` to ``parser``.

    With ``go``, also ``--go`` (for the commands that build models; not for those that
    load one, whose GO graph was saved with it).
    """
    parser.add_argument(
        "data", type=Path, help="screen as .h5ad (cells x genes, log-normalised or raw counts)"
    )
    parser.add_argument(
        "--perturbation-key",
        default="condition",
        metavar="KEY",
        help="obs column of perturbation labels (default: condition)",
    )
    parser.add_argument(
        "--control",
        default=None,
        metavar="LABEL",
        help="label of control cells (default: detect ctrl, control, non-targeting or NT)",
    )
    parser.add_argument(
        "--sep",
        default=SEP,
        help=f"separator of the genes of a combination in the labels (default: {SEP}; "
        "e.g. _ for KLF1_MAP2K6)",
    )
    parser.add_argument(
        "--gene-key",
        default=None,
        metavar="COLUMN",
        help="var column of gene symbols to use as gene names (default: var_names, or "
        "var['gene_name'] when present)",
    )
    parser.add_argument(
        "--normalize",
        action="store_true",
        help="X holds raw counts: normalise them (normalize_total + log1p) first",
    )
    if go:
        parser.add_argument(
            "--go",
            type=Path,
            default=None,
            metavar="GO_FILE",
            help="gene -> GO term file (GAF, gene2go or two-column TSV) for the models with a GO "
            "graph and the label check; default: a simulated screen's own table, else the "
            "bundled human annotations",
        )


def cli_wording(message: str) -> str:
    """Name the CLI options where an error names a Python argument (:data:`_CLI_WORDS`).

    Examples
    --------
    >>> cli_wording("adata.X holds raw integer counts; pass normalize=True")
    'adata.X holds raw integer counts; pass --normalize'
    >>> cli_wording("leave them out (covers() tells what it can predict)")
    'leave them out'
    """
    for pattern, option in _CLI_WORDS:
        message = pattern.sub(option, message)
    return message


def read_screen(args: argparse.Namespace) -> AnnData:
    """Read and set up the screen given by :func:`add_screen_options`'s arguments.

    Returns
    -------
    The set-up screen, in memory.

    Raises
    ------
    PerturbsimError
        The error of :func:`perturbsim.ds.read` (the CLI words it with its options:
        :func:`cli_wording`).
    """
    from ..ds import read

    return read(
        args.data,
        perturbation_key=args.perturbation_key,
        control=args.control,
        sep=args.sep,
        gene_symbols=args.gene_key,
        normalize=args.normalize,
    )


def go_annotations(args: argparse.Namespace, adata: AnnData | None = None) -> pd.DataFrame | None:
    """The GO annotations the models get (columns ``gene``, ``term``).

    Those of ``--go``; without it, a simulated screen's own GO-like table
    (``adata.uns["simulation"]["go"]``: its genes are in no real annotation), else ``None``
    (the models' default, the bundled human GO).
    """
    from ..graphs import read_annotations
    from ..models._data import screen_go_annotations

    if args.go is not None:
        return read_annotations(args.go)
    return screen_go_annotations(adata, None)


def annotated_genes(annotations: pd.DataFrame | None) -> set[str]:
    """Genes of a GO table; of the bundled human table and its aliases when ``None``."""
    if annotations is not None:
        return set(annotations["gene"].astype(str))
    from ..ds import human_gene_alias, human_go

    return set(human_go()["gene"].astype(str)) | set(human_gene_alias()["alias"].astype(str))


def _examples(genes: Iterable[str], n: int = 3) -> str:
    return ", ".join(repr(g) for g in list(genes)[:n])


def _joined_by(genes: list[str], known: set[str], exclude: str) -> tuple[str, list[str]]:
    """The separator of :data:`SEPARATORS` that splits most ``genes`` into known names."""

    def joins(gene: str, sep: str) -> bool:
        tokens = gene.split(sep)
        return len(tokens) > 1 and all(t in known for t in tokens)

    found = {s: [g for g in genes if joins(g, s)] for s in SEPARATORS if s != exclude}
    return max(found.items(), key=lambda item: len(item[1]))


def _symbol_column(adata: AnnData, genes: list[str]) -> tuple[str, list[str]] | None:
    """The ``var`` column holding the most of ``genes`` and those genes; ``None`` if none."""
    best = None
    for column in adata.var.columns.drop(ORIGINAL_ID, errors="ignore"):
        values = adata.var[column]
        if values.dtype.kind not in "OSU" and not isinstance(values.dtype, pd.CategoricalDtype):
            continue
        names = set(values.astype(str))
        hits = [g for g in genes if g in names]
        if hits and (best is None or len(hits) > len(best[1])):
            best = (str(column), hits)
    return best


def _ensembl_hint(adata: AnnData, perturbed: list[str], annotated: set[str]) -> str | None:
    """The ``--gene-key`` hint of a screen measured by Ensembl IDs and perturbed by names."""
    ids = [g for g in map(str, adata.var_names) if ENSEMBL_ID.match(g)]
    named = [g for g in perturbed if not ENSEMBL_ID.match(g)]
    if 2 * len(ids) <= adata.n_vars or 2 * len(named) <= len(perturbed):
        return None
    column = _symbol_column(adata, sorted(annotated))
    option = f"--gene-key {shlex.quote(column[0])}" if column else "--gene-key COLUMN"
    return (
        f"var_names are Ensembl IDs (e.g. {_examples(ids, 1)}) but the perturbed genes are "
        f"named (e.g. {_examples(named, 2)}): pass {option} to name the measured genes alike"
    )


def label_hint(adata: AnnData, annotated: set[str], *, sep: str = SEP) -> str | None:
    """Say what is likely wrong when the perturbed genes of a screen are not gene names.

    A perturbed gene is *known* when it is measured (``var_names``) or in ``annotated``.
    In order, the hint names:

    - a separator of :data:`SEPARATORS` that splits most unknown genes into known ones
      (``KLF1_MAP2K6`` read as one gene): pass ``--sep``;
    - when most perturbed genes are not measured, a ``var`` column holding most of them:
      pass ``--gene-key``;
    - when most ``var_names`` are Ensembl IDs and most perturbed genes are not, the
      ``var`` column of most GO-annotated names (CRISPRa targets, rarely measured, are in
      no ``var`` column): pass ``--gene-key``;
    - when most perturbed genes are unknown: check ``--sep``, ``--gene-key`` and ``--go``.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`.
    annotated
        Genes of the GO annotations (see :func:`annotated_genes`).
    sep
        The separator the labels were parsed with.

    Returns
    -------
    One line, or ``None`` when nothing looks wrong.
    """
    perturbed = sorted({g for c in adata.obs[CONDITION].cat.categories for g in genes_of(c)})
    measured = set(map(str, adata.var_names))
    unknown = [g for g in perturbed if g not in measured and g not in annotated]
    n = len(perturbed)
    if unknown:
        other, joined = _joined_by(unknown, measured | annotated | {CONTROL}, exclude=sep)
        if 2 * len(joined) > len(unknown):
            return (
                f"{len(joined)} of {n} perturbed genes look like genes joined by {other!r} "
                f"(e.g. {_examples(joined)}): pass --sep {shlex.quote(other)}"
            )
    unmeasured = [g for g in perturbed if g not in measured]
    column = _symbol_column(adata, unmeasured) if 2 * len(unmeasured) > n else None
    if column is not None and 2 * len(column[1]) > len(unmeasured):
        name, hits = column
        return (
            f"{len(hits)} of {n} perturbed genes are not in var_names but in var[{name!r}] "
            f"(e.g. {_examples(hits)}): pass --gene-key {shlex.quote(name)}"
        )
    ids = _ensembl_hint(adata, perturbed, annotated)
    if ids is not None:
        return ids
    if 2 * len(unknown) > n:
        return (
            f"{len(unknown)} of {n} perturbed genes are neither measured (var_names) nor in the "
            f"GO annotations (e.g. {_examples(unknown)}): check --sep (genes joined by "
            f"something other than {sep!r}?), --gene-key and --go"
        )
    return None


def check_labels(adata: AnnData, annotations: pd.DataFrame | None, *, sep: str) -> None:
    """Log :func:`label_hint` of a set-up screen as a warning, if there is one."""
    hint = label_hint(adata, annotated_genes(annotations), sep=sep)
    if hint is not None:
        logger.warning(hint)
