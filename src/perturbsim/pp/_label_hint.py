"""What is likely wrong when the perturbed genes of a screen are not gene names.

:func:`perturbsim.pp.setup` logs the hint as a warning: labels joined by another separator
(``KLF1_MAP2K6`` read as one gene), genes in another case (``klf1``), genes named in a
``var`` column other than ``var_names``, or a screen measured by Ensembl IDs and perturbed
by names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import pandas as pd
from anndata import AnnData

from .._keys import CONDITION, CONTROL, ORIGINAL_ID, SEP, SIMULATION
from ._labels import SEPARATORS, genes_of, looks_like_control

ENSEMBL_ID = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
"""An Ensembl gene ID (``ENSG00000105610``, ``ENSMUSG00000054191.3``)."""
GUIDE_ID = re.compile(r"^(sg|sgrna|g|grna|guide|sh|shrna)?\d+$", re.IGNORECASE)
"""A guide's number after its gene in a guide-level label (``sg1`` of ``KLF1_sg1``)."""


def annotated_genes(adata: AnnData, *, aliases: bool = True) -> set[str]:
    """Genes the models' GO annotations name by default for ``adata``.

    A simulated screen's own table (``adata.uns["simulation"]["go"]``); else the bundled
    human GO, with its aliases unless ``aliases=False``.
    """
    own = adata.uns.get(SIMULATION, {}).get("go")
    if isinstance(own, pd.DataFrame):
        return set(own["gene"].astype(str))
    from ..ds import human_gene_alias, human_go  # the reader imports this package

    symbols = set(human_go()["gene"].astype(str))
    return symbols | set(human_gene_alias()["alias"].astype(str)) if aliases else symbols


def _examples(genes: Iterable[str], n: int = 3) -> str:
    return ", ".join(repr(g) for g in list(genes)[:n])


WITHIN_SYMBOLS: tuple[str, ...] = ("-", ".")
"""Separators that gene symbols themselves hold (the read-through gene ``HSPE1-MOB4``, whose
halves are genes too; ``RP11-1000B6.3``): one such label alone says nothing of a mix."""


def _joined_by(
    genes: list[str], known: set[str], exclude: str, separators: tuple[str, ...] = SEPARATORS
) -> tuple[str, list[str]]:
    """The separator of ``separators`` that splits most ``genes`` into known names."""

    def joins(gene: str, sep: str) -> bool:
        tokens = gene.split(sep)
        return len(tokens) > 1 and all(t in known for t in tokens)

    found = {s: [g for g in genes if joins(g, s)] for s in separators if s != exclude}
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
    """The ``gene_symbols`` hint of a screen measured by Ensembl IDs and perturbed by names."""
    ids = [g for g in map(str, adata.var_names) if ENSEMBL_ID.match(g)]
    named = [g for g in perturbed if not ENSEMBL_ID.match(g)]
    if 2 * len(ids) <= adata.n_vars or 2 * len(named) <= len(perturbed):
        return None
    column = _symbol_column(adata, sorted(annotated))
    option = f"gene_symbols={column[0]!r}" if column else "gene_symbols=COLUMN"
    return (
        f"var_names are Ensembl IDs (e.g. {_examples(ids, 1)}) but the perturbed genes are "
        f"named (e.g. {_examples(named, 2)}): pass {option} to name the measured genes alike"
    )


def _known(
    adata: AnnData, annotated: set[str] | None, perturbed: list[str] | None = None
) -> tuple[list[str], set[str], set[str], list[str], list[str]]:
    """Perturbed genes; measured and annotated genes; the perturbed unmeasured and unknown.

    ``perturbed`` defaults to the genes of the set-up screen's conditions.
    """
    if perturbed is None:
        perturbed = sorted({g for c in adata.obs[CONDITION].cat.categories for g in genes_of(c)})
    measured = set(map(str, adata.var_names))
    unmeasured = [g for g in perturbed if g not in measured]
    if annotated is None:
        annotated = annotated_genes(adata) if unmeasured else set()
    unknown = [g for g in unmeasured if g not in annotated]
    return perturbed, measured, annotated, unmeasured, unknown


def _official_symbols(adata: AnnData, annotated: set[str] | None) -> set[str]:
    """Genes named by their official symbol: ``annotated`` when given, else the default GO's.

    The default's aliases are left out (``KD`` is an alias, no gene's symbol).
    """
    return annotated_genes(adata, aliases=False) if annotated is None else set(annotated)


def _joined_hint(
    adata: AnnData,
    given: set[str] | None,
    perturbed: list[str],
    measured: set[str],
    annotated: set[str],
    unknown: list[str],
    sep: str,
    combined: list[str],
) -> str | None:
    """The ``sep`` hint when most unknown perturbed genes split into known ones by another.

    ``given``: the annotations' genes the caller was given, if any (else the default's).
    With ``combined`` labels (genes joined by ``sep``), one such gene is enough: the labels
    mix two separators (see :func:`_joined_split`).
    """
    found = _joined_split(measured | annotated, unknown, sep, mixed=bool(combined))
    if found is None:
        return None
    genes = measured | _official_symbols(adata, given)
    return _joined_text(perturbed, *found, genes, mixed=(sep, combined) if combined else None)


def _joined_split(
    known: set[str], unknown: list[str], sep: str, *, mixed: bool = False
) -> tuple[str, list[str]] | None:
    """The other separator most ``unknown`` genes split at into ``known`` ones, and those.

    With ``mixed``, a separator no gene symbol holds (not :data:`WITHIN_SYMBOLS`) splitting
    any of them, else as without.
    """
    if not unknown:
        return None
    known = known | {CONTROL}
    if mixed:
        between = tuple(s for s in SEPARATORS if s not in WITHIN_SYMBOLS)
        other, joined = _joined_by(unknown, known, exclude=sep, separators=between)
        if joined:
            return other, joined
    other, joined = _joined_by(unknown, known, exclude=sep)
    return (other, joined) if 2 * len(joined) > len(unknown) else None


def _joined_text(
    perturbed: list[str],
    other: str,
    joined: list[str],
    genes: set[str],
    *,
    mixed: tuple[str, list[str]] | None = None,
) -> str:
    """The ``sep`` hint, the hint to strip a word that is no gene, or to use one separator.

    Where one word stands in nearly every label the separator splits (``KLF1_KD``,
    ``FOXO4_KD``: 90 % or more, three labels at least), is perturbed alone nowhere, is
    none of ``genes`` (measured, or an official symbol: ``KD`` is only an alias) and no
    control guide's word, it is an affix: the separator would make every single a pair
    with it. Else, with ``mixed``, the separator the labels were read with and labels it
    joins genes of (``KLF1+MAP2K6``), the labels mix two separators.
    """
    words = Counter(w for gene in joined for w in set(gene.split(other)))
    common, count = words.most_common(1)[0]
    affix = common not in {*perturbed, *genes} and not looks_like_control(common)
    if len(joined) >= 3 and count >= 0.9 * len(joined) and affix:
        return (
            f"{count} of {len(perturbed)} perturbed genes carry {common!r} joined by "
            f"{other!r} (e.g. {_examples(joined)}): a word of every label, not a gene; strip "
            f"it from the labels first (sep={other!r} would read each as a pair with "
            f"{common!r})"
        )
    if mixed is not None:
        sep, combined = mixed
        return (
            f"the labels join genes by two separators, {sep!r} (e.g. {combined[0]!r}) and "
            f"{other!r} ({len(joined)} of {len(perturbed)} perturbed genes read as one gene, "
            f"e.g. {_examples(joined)}): write every label with one separator first"
        )
    return (
        f"{len(joined)} of {len(perturbed)} perturbed genes look like genes joined by "
        f"{other!r} (e.g. {_examples(joined)}): pass sep={other!r}"
    )


def _guide_hint(n: int, known: set[str], unknown: list[str]) -> str | None:
    """The hint for guide-level labels: most unknown genes a known gene and a guide's number."""
    guides = [
        (gene, sep)
        for gene in unknown
        for sep in SEPARATORS
        if len(parts := gene.split(sep)) == 2 and parts[0] in known and GUIDE_ID.match(parts[1])
    ]
    if 2 * len(guides) <= len(unknown):
        return None
    gene, sep = guides[0]
    return (
        f"{len(guides)} of {n} perturbed genes look like guides of a gene (e.g. "
        f"{_examples(g for g, _ in guides)}): label each cell by its gene first (strip the "
        f"guide's number, e.g. {sep + gene.split(sep)[1]!r}), so that a gene's guides are one "
        "perturbation, never split between training and test"
    )


def joined_labels_hint(
    adata: AnnData,
    perturbed: list[str],
    annotated: set[str] | None = None,
    *,
    sep: str = SEP,
    control: str = CONTROL,
    combined: list[str] | None = None,
) -> str | None:
    """The first hint of :func:`label_hint` alone: labels joined by another separator.

    ``None`` unless most of the ``perturbed`` genes (as parsed with ``sep``) that are
    neither measured in ``adata`` nor annotated split, by a separator of
    :data:`SEPARATORS` other than ``sep``, into genes that are, tokens of the ``control``
    label (``KLF1_NegCtrl0`` with control ``NegCtrl0_NegCtrl0``) or words of a control
    guide (``NegCtrl0`` with control ``ctrl``); where ``combined`` lists labels whose genes
    ``sep`` joins (``KLF1+MAP2K6``), one such gene (``CEBPB_FOXA1``) is enough, and the hint
    says the labels mix two separators. A label that is a control guide as a whole
    (``non-targeting_2`` beside the control ``non-targeting_1``) is no joined label: the
    check of other control guides names it. It needs no set-up.
    """
    given = annotated
    perturbed, measured, annotated, _, unknown = _known(adata, annotated, perturbed)
    unknown = [g for g in unknown if not looks_like_control(g)]
    tokens = {token for s in SEPARATORS for token in control.split(s)}
    guides = {  # control guides' words in a pair's label (KLF1_NegCtrl0 beside 'ctrl')
        token
        for gene in unknown
        for s in SEPARATORS
        for token in gene.split(s)
        if looks_like_control(token)
    }
    found = _joined_split(
        measured | annotated | tokens | guides, unknown, sep, mixed=bool(combined)
    )
    if found is None:
        return None
    other, joined = found
    # the guide words of the labels as the separator found splits them
    used = {token for gene in joined for token in gene.split(other) if looks_like_control(token)}
    words = sorted(used - set(control.split(other)) - measured - annotated)
    mixed = (sep, combined) if combined else None
    genes = measured | _official_symbols(adata, given)
    hint = _joined_text(perturbed, other, joined, genes, mixed=mixed)
    if not words:
        return hint
    return (
        f"{hint} and write {words[0]!r} in them as {CONTROL!r} (a control guide's word, read "
        "as a gene otherwise)"
    )


def _case_hint(n: int, known: set[str], unknown: list[str]) -> str | None:
    """The hint naming unknown perturbed genes known in another case (``klf1`` for ``KLF1``)."""
    by_case = {g.lower(): g for g in sorted(known)}
    matches = {g: by_case[g.lower()] for g in unknown if g.lower() in by_case}
    if not matches:
        return None
    named = ", ".join(f"{known_as!r} for {gene!r}" for gene, known_as in list(matches.items())[:3])
    return (
        f"{len(matches)} of {n} perturbed genes are neither measured (var_names) nor in the GO "
        f"annotations, but are there in another case ({named}; gene names are "
        "case-sensitive): fix the labels if they mean those genes, else give GO annotations "
        "of the screen's species"
    )


def label_hint(
    adata: AnnData, annotated: set[str] | None = None, *, sep: str = SEP, joined: bool = True
) -> str | None:
    """Say what is likely wrong when the perturbed genes of a screen are not gene names.

    A perturbed gene is *known* when it is measured (``var_names``) or in ``annotated``.
    In order, the hint names:

    - a separator of :data:`SEPARATORS` that splits most unknown genes into known ones
      (``KLF1_MAP2K6`` read as one gene): pass ``sep``; where ``sep`` joins the genes of
      other labels (``KLF1+MAP2K6`` beside ``CEBPB_FOXA1``), one such gene is enough, and the
      hint says to write every label with one separator (even when ``joined`` is off);
    - when most perturbed genes are not measured, a ``var`` column holding most of them:
      pass ``gene_symbols``;
    - when most ``var_names`` are Ensembl IDs and most perturbed genes are not, the
      ``var`` column of most annotated names (CRISPRa targets, rarely measured, are in
      no ``var`` column): pass ``gene_symbols``;
    - unknown genes known in another case (``klf1`` for ``KLF1``): fix the labels (or
      give the species' GO annotations: mouse ``Klf1`` against the bundled human GO);
    - when most perturbed genes are unknown: check ``sep``, ``gene_symbols`` and the GO
      annotations.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`.
    annotated
        Genes of the GO annotations; default :func:`annotated_genes` (read only when a
        perturbed gene is not measured).
    sep
        The separator the labels were parsed with.
    joined
        Give the first hint (another separator) for labels ``sep`` joins none of; ``False``
        when ``sep`` was chosen.

    Returns
    -------
    One line, or ``None`` when nothing looks wrong.
    """
    given = annotated
    perturbed, measured, annotated, unmeasured, unknown = _known(adata, annotated)
    n = len(perturbed)
    combined = [
        sep.join(genes)
        for c in adata.obs[CONDITION].cat.categories
        if len(genes := genes_of(c)) > 1
    ]
    other = (
        _joined_hint(adata, given, perturbed, measured, annotated, unknown, sep, combined)
        if joined or combined
        else None
    )
    if other is not None:
        return other
    column = _symbol_column(adata, unmeasured) if 2 * len(unmeasured) > n else None
    if column is not None and 2 * len(column[1]) > len(unmeasured):
        name, hits = column
        return (
            f"{len(hits)} of {n} perturbed genes are not in var_names but in var[{name!r}] "
            f"(e.g. {_examples(hits)}): pass gene_symbols={name!r}"
        )
    ids = _ensembl_hint(adata, perturbed, annotated)
    if ids is not None:
        return ids
    case = _case_hint(n, measured | annotated, unknown)
    if case is not None:
        return case
    guide = _guide_hint(n, measured | annotated, unknown)
    if guide is not None:
        return guide
    if 2 * len(unknown) > n:
        column = " (none is: is it the column of perturbation labels?)" if len(unknown) == n else ""
        return (
            f"{len(unknown)} of {n} perturbed genes are neither measured (var_names) nor in the "
            f"GO annotations{column} (e.g. {_examples(unknown)}): check sep (genes joined by "
            f"something other than {sep!r}?), gene_symbols and the GO annotations"
        )
    return None
