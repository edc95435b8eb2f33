"""Set up an AnnData for perturbsim: validate it and parse perturbation labels."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from contextvars import ContextVar

import numpy as np
import pandas as pd
from anndata import AnnData
from anndata.utils import make_index_unique

from .._checks import check_flag, check_label_part, checked_table
from .._errors import PerturbsimError, counted, shown_list, suggestion
from .._keys import (
    CONDITION,
    CONTROL,
    DE_FIELDS,
    GRAM,
    N_TARGETS,
    ORIGINAL_ID,
    PSEUDOBULK,
    SEP,
    SETUP,
    SPLIT,
    SPLIT_UNS,
    SUBGROUP,
    UNS,
)
from ._label_hint import annotated_genes, joined_labels_hint, label_hint
from ._labels import (
    CONTROL_CANDIDATES,
    CONTROL_WORDS,
    detect_control,
    genes_of,
    is_control_word,
    looks_like_control,
    ordered_conditions,
    parse_labels,
)
from ._validate import check_not_empty, check_unpadded, validate_expression
from ._writes import written_screen

logger = logging.getLogger(__name__)

GEARS_GENE_COLUMN = "gene_name"

WARN_UNMEASURED_TARGETS: ContextVar[bool] = ContextVar(
    "perturbsim_warn_unmeasured_targets", default=True
)
"""Whether :func:`setup` warns of perturbed genes not measured in ``var``: switched off
(:func:`perturbsim._settings.switched_off`) for a screen where that is known and intended
(the bundled CRISPRa subset)."""


def _unique_symbols(symbols: pd.Series, ids: pd.Index, where: str) -> pd.Index:
    """Gene symbols usable as names: a missing one replaced by its id, duplicates suffixed.

    A symbol shared by several ids keeps its name on its first id; the others get ``-1``,
    ``-2``, ... (:func:`anndata.utils.make_index_unique`; a warning names them: a target
    among them is the first id's gene).
    """
    names = symbols.astype(object).to_numpy().copy()
    missing = pd.isna(names) | np.array([str(n).strip() == "" for n in names])
    names[missing] = ids.to_numpy()[missing]
    names = pd.Index(names.astype(str), dtype=object)
    check_unpadded(names, where, f"{where} = {where}.str.strip()")
    shared = sorted(set(names[names.duplicated()]))
    if missing.any():
        logger.warning(
            "%s no symbol in %s: named by var_names instead (e.g. %r)",
            counted(int(missing.sum()), "gene has", "genes have"),
            where,
            str(ids[np.flatnonzero(missing)[0]]),
        )
    if shared:
        logger.warning(
            "%s has %s naming more than one gene: the first keeps the symbol, the others get "
            "-1, -2, ... (%s)",
            where,
            counted(len(shared), "symbol"),
            shown_list(shared, 5),
        )
    return make_index_unique(names)


def _refuse_joined_labels(
    adata: AnnData, mapping: dict[object, str], annotated: set[str] | None, sep: str, control: str
) -> None:
    """Raise when the labels look joined by another separator than the default ``sep``.

    Also when they join genes by ``sep`` and by another (``KLF1+MAP2K6``, ``CEBPB_FOXA1``).
    """
    perturbed = sorted({g for c in mapping.values() for g in genes_of(c)})
    if set(perturbed) <= set(map(str, adata.var_names)):
        return
    combined = [str(label) for label, c in mapping.items() if len(genes_of(c)) > 1]
    joined = joined_labels_hint(
        adata, perturbed, annotated, sep=sep, control=control, combined=combined
    )
    if joined is not None:
        raise PerturbsimError(f"{joined}, or sep={sep!r} to keep the labels as they are")


def numbered_alike(label: str, control: str) -> bool:
    """Whether ``label`` is ``control`` with other numbers: a sibling control guide.

    Examples
    --------
    >>> numbered_alike("INTERGENIC393453", "INTERGENIC1144056")
    True
    >>> numbered_alike("NonTarget2", "NonTarget1"), numbered_alike("KLF1", "NonTarget1")
    (True, False)
    >>> numbered_alike("CTRL", "CTRL")  # no number: nothing to tell siblings by
    False
    """
    stem = re.sub(r"\d+", "#", control.lower())
    return "#" in stem and re.sub(r"\d+", "#", label.lower()) == stem


def _refuse_other_controls(
    adata: AnnData,
    mapping: dict[object, str],
    control: str,
    key: str,
    sep: str,
    annotated: set[str] | None,
) -> None:
    """Raise when labels besides ``control`` read as control, or name a control guide as a gene.

    ``ctrl`` beside the control ``control`` would join its cells silently; ``NegCtrl1`` of
    ``NegCtrl1_NegCtrl0`` beside the control ``NegCtrl0_NegCtrl0`` would be read as a gene
    perturbed (a word of a control guide, :func:`~perturbsim.pp._labels.looks_like_control`,
    that no gene measured or annotated bears; or a label numbered as the control is,
    ``INTERGENIC393453`` beside ``INTERGENIC1144056``: :func:`numbered_alike`), and ``NT``
    beside the control ``ctrl`` as a gene that queries read as control
    (:func:`~perturbsim.pp._labels.is_control_word`).
    """
    also = sorted(str(label) for label, c in mapping.items() if c == CONTROL and label != control)
    if also:
        raise PerturbsimError(
            f"{shown_list([repr(label) for label in also], 3)} of obs[{key!r}] read as control "
            f"too, beside the control {control!r}: give all control cells one label first "
            f"(adata.obs[{key!r}] = adata.obs[{key!r}].replace({{{also[0]!r}: {control!r}}}))"
        )
    perturbed = {g for c in mapping.values() for g in genes_of(c)}
    siblings = {  # INTERGENIC393453 beside the control INTERGENIC1144056
        g
        for label, c in mapping.items()
        if label != control and numbered_alike(str(label), control)
        for g in genes_of(c)
    }
    suspects = {g for g in perturbed if looks_like_control(g) or g in siblings}
    suspects -= set(map(str, adata.var_names))
    if suspects:  # the annotations are read only when a name needs them
        suspects -= annotated_genes(adata) if annotated is None else annotated
    guides = sorted({g for g in perturbed if is_control_word(g)} | suspects)
    if guides:
        label = next(str(lab) for lab, c in mapping.items() if guides[0] in genes_of(c))
        others = f" (as are {shown_list(guides[1:], 5)})" if len(guides) > 1 else ""
        escape = "" if is_control_word(guides[0]) else " (genes? give GO annotations naming them)"
        raise PerturbsimError(
            f"label {label!r} of obs[{key!r}] reads as a perturbation of {guides[0]!r}, which "
            f"by its name is a control guide{others}, beside the control {control!r}: label all "
            f"control cells {control!r} first, and write the control guide of a pair as "
            f"{control.split(sep)[0]!r}{escape}"
        )


def _refuse_gene_as_control(
    adata: AnnData, control: str, labels: list, key: str, sep: str, annotated: set[str] | None
) -> None:
    """Raise when the ``control`` given is a gene name, not a control label.

    A label that looks like a control (a word of :data:`CONTROL_CANDIDATES` or
    :data:`CONTROL_WORDS` in one of its parts) passes; so does one that names no gene
    measured or annotated (by its symbol: an alias, such as the safe-harbour ``AAVS1``,
    passes). Otherwise its cells would be read as unperturbed, and every
    label naming the gene (``KLF1+MAP2K6``) as its other genes (``MAP2K6``), silently.
    """
    parts = {part for part in (control, *control.split(sep)) if part}
    words = {word.lower() for word in CONTROL_CANDIDATES}
    if any(p.lower() in words or any(w in p.lower() for w in CONTROL_WORDS) for p in parts):
        return
    measured = set(map(str, adata.var_names))
    # a gene's symbol, not a former name or alias (AAVS1, a safe-harbour control, is one)
    known = measured | (annotated_genes(adata, aliases=False) if annotated is None else annotated)
    gene = next((part for part in sorted(parts) if part in known), None)
    if gene is None:
        return
    try:
        hint = f"; the screen's control label looks like {detect_control(labels, key=key)!r}"
    except PerturbsimError:
        hint = ""
    where = "measured" if gene in measured else "in the GO annotations"
    raise PerturbsimError(
        f"control {control!r} names the gene {gene!r} ({where}), not a label of control "
        f"cells: its cells would be read as unperturbed and every label naming it as its "
        f"other genes{hint}"
    )


def _gene_symbols(
    adata: AnnData, gene_symbols: str | bool | None, perturbed: set[str]
) -> tuple[pd.Index, str] | None:
    """The symbols of ``adata.var[gene_symbols]`` to name the genes by, and their column.

    ``None`` when the genes keep their names (see :func:`setup`); nothing is changed yet.
    """
    if gene_symbols is False:
        return None
    if gene_symbols is True:
        raise PerturbsimError("gene_symbols must be a column of adata.var, None or False, got True")
    column = gene_symbols
    automatic = column is None and GEARS_GENE_COLUMN in adata.var.columns
    if automatic:
        column = GEARS_GENE_COLUMN
    if column is None:
        return None
    if column not in adata.var.columns:
        raise PerturbsimError(
            f"gene_symbols={column!r} not found in adata.var; columns: {list(adata.var.columns)} "
            "(gene_symbols=False: the var_names as they are)"
        )
    where = f"adata.var[{column!r}]"
    symbols = _unique_symbols(adata.var[column], adata.var_names, where)
    if (symbols.values == adata.var_names.values).all():
        return None
    by_symbol = len(perturbed & set(symbols))
    by_name = len(perturbed & set(map(str, adata.var_names)))
    if automatic and by_name > by_symbol:
        logger.warning(
            "kept var_names as gene names: they name %d of the %d perturbed genes, %s %d "
            "(pass gene_symbols=%r to use it anyway)",
            by_name,
            len(perturbed),
            where,
            by_symbol,
            column,
        )
        return None
    return pd.Index(symbols.values, name=None), column


def _screen_as_read(adata: AnnData) -> tuple[list[str], list[str], np.ndarray] | None:
    """The genes, conditions and each cell's condition code a setup left, if any."""
    if CONDITION not in adata.obs.columns or adata.obs[CONDITION].dtype != "category":
        return None
    labels = adata.obs[CONDITION].cat
    return (
        list(map(str, adata.var_names)),
        list(map(str, labels.categories)),
        labels.codes.to_numpy().copy(),
    )


def _same_screen(
    before: tuple[list[str], list[str], np.ndarray], now: tuple[list[str], list[str], np.ndarray]
) -> bool:
    """Whether two :func:`_screen_as_read` give the same genes and the same cells' labels."""
    (genes, conditions, codes), (genes_now, conditions_now, codes_now) = before, now
    return genes == genes_now and conditions == conditions_now and np.array_equal(codes, codes_now)


def _drop_derived(adata: AnnData) -> None:
    """Drop what an earlier setup's labels gave: the split, the statistics, the DE genes.

    The DE rankings stored under any ``key_added`` of :func:`~perturbsim.pp.rank_de` go
    with them (their conditions are the old labels'); other entries of
    ``.uns["perturbsim"]`` (a user's own) stay.
    """
    uns = adata.uns.get(UNS, {})
    derived = [
        key
        for key, entry in uns.items()
        if key in (SPLIT_UNS, PSEUDOBULK)
        or (isinstance(entry, Mapping) and set(DE_FIELDS) <= set(entry))
    ]
    dropped = [f"uns[{UNS!r}][{key!r}]" for key in derived]
    for key in derived:
        del uns[key]
    for column in (SPLIT, SUBGROUP):
        if column in adata.obs.columns:
            del adata.obs[column]
            dropped.append(f"obs[{column!r}]")
    if GRAM in adata.varp:
        del adata.varp[GRAM]
        dropped.append(f"varp[{GRAM!r}]")
    if dropped:
        logger.info("dropped what the earlier labels gave (rerun it): %s", ", ".join(dropped))


MIXED_COLUMNS = ("dataset", "cell_type", "celltype", "cell_line")
"""``.obs`` columns that name where cells come from: more than one value, and conditions
would pool cells of different screens or cell types."""


BATCH_COLUMNS = ("batch", "sample", "gem_group", "donor", "lane", "plate", "library")
"""``.obs`` columns that commonly name a technical batch: a condition whose cells all lie in
batches without control cells has its changes measured across batches."""
MIN_APART_CELLS = 4
"""Cells a condition needs before its lying apart from the control's batches is warned of."""


MISSING_AS_TEXT = ("nan", "none", "<na>", "null", "na", "n/a")
"""Labels that are most likely a missing value written as text (``astype(str)`` of NaN)."""


def _warn_unmeasured(missing: list[str], adata: AnnData, annotated: set[str] | None) -> None:
    """Warn of perturbed genes not measured in var, apart from those no annotation names.

    An unmeasured target is expected of CRISPRa (its target need not be expressed); on a
    knockdown screen it was left out of var, its own change unseen. Either way the models
    know nothing of one that no GO annotation names either: named on its own, with the
    closest measured gene where one is close (a typo), and a word on labels of cells
    without a clear guide (``"unassigned"``), which read as perturbations too.
    """
    known = annotated_genes(adata) if annotated is None else annotated
    unknown = [g for g in missing if g not in known]
    named = [g for g in missing if g in known]
    if named:
        logger.warning(
            "%s not measured in var (expected of CRISPRa targets; on a CRISPRi or knockout "
            "screen, targets left out of var, e.g. by a variable-gene filter, their own "
            "knockdown unseen): %s",
            counted(len(named), "perturbed gene is", "perturbed genes are"),
            shown_list(named, 10),
        )
    if unknown:
        unlike = [g for g in unknown if not _looks_like_a_gene(g)]
        logger.warning(
            "%s neither measured in var nor named by the GO annotations (the models learn "
            "of such a gene from its own conditions alone): %s%s%s",
            counted(len(unknown), "perturbed gene is", "perturbed genes are"),
            shown_list(unknown, 10),
            suggestion(unknown[0], list(map(str, adata.var_names))),
            f" ({shown_list([repr(g) for g in unlike], 3)}: a label of cells without a clear "
            "guide, such as 'unassigned', is read as a perturbation too: drop such cells)"
            if unlike
            else "",
        )


NOT_GENE_WORDS = frozenset(
    {
        "unassigned",
        "multiplet",
        "doublet",
        "negative",
        "unknown",
        "ambiguous",
        "multiple",
        "undetermined",
        "blank",
        "empty",
        "nontargeting",
        "targeting",
    }
)
"""Words of labels that demultiplexers and guide callers give cells without a clear guide."""


def _looks_like_a_gene(name: str) -> bool:
    """Whether ``name`` could be a gene symbol: no space, no ``_``, none of :data:`NOT_GENE_WORDS`.

    ``"IER5L"``, ``"Klf1"``, ``"unc-22"``, ``"HLA-A"`` could; ``"Unassigned"``,
    ``"multiple guides"``, ``"NegCtrl0_NegCtrl0"`` not.
    """
    words = re.split(r"[^a-z0-9]+", name.lower())
    return not re.search(r"[\s_]", name) and NOT_GENE_WORDS.isdisjoint(words)


def _warn_missing_as_text(raw: pd.Series, distinct: list, key: str) -> None:
    """Warn of labels such as ``"nan"``: read as a gene of that name, not as missing."""
    for label in distinct:
        if isinstance(label, str) and label.strip().lower() in MISSING_AS_TEXT:
            logger.warning(
                "obs[%r] labels %s %r: a missing value written as text? It is read as "
                "a gene of that name; drop or relabel those cells",
                key,
                counted(int((raw.astype(object) == label).sum()), "cell"),
                label,
            )


def mixed_sources(adata: AnnData) -> dict[str, list[str]]:
    """The :data:`MIXED_COLUMNS` of ``adata.obs`` that hold more than one value, and those.

    Examples
    --------
    >>> import perturbsim as ps
    >>> mixed_sources(ps.ds.norman2019_subset())
    {}
    """
    mixed = {}
    for column in MIXED_COLUMNS:
        if column in adata.obs.columns:
            values = sorted(map(str, pd.unique(adata.obs[column].dropna())))
            if len(values) > 1:
                mixed[column] = values
    return mixed


DATASET_COLUMN = "dataset"
"""The ``.obs`` column naming the screen each cell comes from: a file pooling several is
refused unless asked (``pool_datasets``; the CLI's ``--pool-datasets``). Cell types are only
warned of: ``cell_type`` may also label subpopulations of one line."""


def _check_mixed_sources(adata: AnnData, pool_datasets: bool) -> bool:
    """Refuse cells of several screens unless ``pool_datasets``; warn of other mixes.

    Several cell types are warned of: each condition pools them (datasets pooled on
    purpose are not). Returns whether several screens are pooled.
    """
    mixed = mixed_sources(adata)
    datasets = mixed.get(DATASET_COLUMN, [])
    if datasets and not pool_datasets:  # the CLI words it (cli_wording)
        raise PerturbsimError(
            f"obs[{DATASET_COLUMN!r}] names {len(datasets)} screens "
            f"({shown_list(datasets, 5)}): pooled, each condition (control included) would mix "
            "their cells and read their differences as effects; pick one of them "
            f"(ps.ds.read(..., where={{{DATASET_COLUMN!r}: VALUE}})), or pass "
            "pool_datasets=True"
        )
    for column, values in mixed.items():
        if column == DATASET_COLUMN:  # pooled on purpose
            continue
        logger.warning(
            "obs[%r] holds %d values (%s): each condition, control included, pools "
            "their cells; subset to one first (ps.ds.read(..., where={%r: VALUE}))",
            column,
            len(values),
            shown_list(values, 5),
            column,
        )
    return bool(datasets)


def _warn_confounded_batches(obs: pd.DataFrame, canonical: pd.Series) -> None:
    """Warn of conditions whose cells all lie in batches that hold no control cell.

    A change is measured against the control's mean; where a condition and the control
    never share a batch (:data:`BATCH_COLUMNS`), the batches' difference reads as its
    effect. Batches that each hold control cells pool without a word, and so do conditions
    of fewer than :data:`MIN_APART_CELLS` cells (outside the control's batches by chance).
    """
    control = (canonical == CONTROL).to_numpy()
    for column in [c for c in BATCH_COLUMNS if c in obs.columns]:
        batch = obs[column].astype(str).to_numpy()
        if len(set(batch)) < 2:
            continue
        with_control = set(batch[control])
        away = pd.Series(~np.isin(batch, list(with_control))).groupby(canonical.to_numpy())
        alone = away.all() & (away.size() >= MIN_APART_CELLS)  # not a few cells' chance
        apart = sorted(str(c) for c, only in alone.items() if only and c != CONTROL)
        if apart:
            logger.warning(
                "obs[%r]: %s no cell in a batch the control cells are in (%s): their "
                "changes over the control carry the batches' difference; subset to batches "
                "holding both (ps.ds.read(..., where={%r: VALUE}))",
                column,
                counted(len(apart), "condition has", "conditions have"),
                shown_list(apart, 5),
                column,
            )


def _warn_repeated_cell_names(names: pd.Index) -> None:
    """Warn of cell names given to more than one cell (files concatenated without a suffix).

    The split halves and the co-expression cells are drawn by name; cells of one name are
    told apart by their order among themselves, so the same file draws the same, but the
    same cells stored in another order may not.
    """
    repeated = names[names.duplicated()]
    if len(repeated):
        logger.warning(
            "%s the name of an earlier cell (e.g. %r): cells are drawn into halves by name, "
            "these by their order among those of one name; make the names unique first "
            "(adata.obs_names_make_unique(), or index_unique= when concatenating)",
            counted(len(repeated), "cell has", "cells have"),
            str(repeated[0]),
        )


def _warn_case_clashes(perturbed: list[str], measured: list[str]) -> None:
    """Warn of perturbed genes whose names differ from another gene's only in case.

    ``Klf1`` beside ``KLF1`` is most likely one gene written two ways; perturbsim, like the
    labels, tells them apart, so each would be learnt on its own.
    """
    names: dict[str, set[str]] = {}
    for gene in [*perturbed, *measured]:
        names.setdefault(gene.lower(), set()).add(gene)
    clashes = [sorted(names[g.lower()]) for g in perturbed if len(names[g.lower()]) > 1]
    clashes = list(dict.fromkeys(map(tuple, clashes)))
    if clashes:
        logger.warning(
            "gene names differing only in case count as different genes (a typo in the "
            "labels?), perturbed ones among them (%s): %s",
            counted(len(clashes), "group"),
            "; ".join(" and ".join(c) for c in clashes[:5]),
        )


WRITTEN_OBS = (CONDITION, N_TARGETS, SPLIT, SUBGROUP)
"""The ``.obs`` columns perturbsim writes into a screen: never its labels' column."""


def check_perturbation_key(adata: AnnData, perturbation_key: str) -> None:
    """Refuse a ``perturbation_key`` that is not a column of ``adata.obs``, naming the columns.

    Also refuse one of the columns :func:`setup` and :func:`~perturbsim.pp.split` write: the
    labels would be overwritten by their canonical form, and a file saved after it could not
    be read again with the options recorded. The column an earlier setup read the labels
    from is named as the one to pass, where it is still there. And refuse a column of
    numbers (counts, a QC metric), naming the columns of text.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> from perturbsim._errors import PerturbsimError
    >>> screen = ad.AnnData(np.zeros((1, 1)), obs=pd.DataFrame({"condition": ["control"]}))
    >>> try:
    ...     check_perturbation_key(screen, "conditon")
    ... except PerturbsimError as err:
    ...     print(str(err).split("; ")[-1])
    did you mean 'condition'?
    """
    obs = adata.obs
    recorded = adata.uns.get(UNS, {}).get(SETUP, {}).get("perturbation_key")
    if perturbation_key not in obs.columns:
        labels = [c for c in obs.columns if c not in WRITTEN_OBS]
        raise PerturbsimError(
            f"perturbation_key {perturbation_key!r} not found in adata.obs; "
            f"columns: {list(obs.columns)}{suggestion(perturbation_key, labels)}"
        )
    if perturbation_key in WRITTEN_OBS:
        fix = (
            f"pass {recorded!r}, the column its labels were set up from"
            if recorded in obs.columns and recorded not in WRITTEN_OBS
            else "copy the labels to a column of another name (e.g. adata.obs['condition'] = "
            f"adata.obs[{perturbation_key!r}]) and pass that one"
        )
        raise PerturbsimError(
            f"perturbation_key {perturbation_key!r} is a column perturbsim writes (setup "
            f"would overwrite the labels with their canonical form): {fix}"
        )
    column = obs[perturbation_key]
    values = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else column
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        texts = [c for c in obs.columns if c not in WRITTEN_OBS and _holds_text(obs[c])]
        first = pd.Series(values).drop_duplicates().head(3).tolist()
        raise PerturbsimError(
            f"perturbation_key {perturbation_key!r} is a column of numbers "
            f"({shown_list(first, 3)}), not perturbation "
            "labels such as 'ctrl', 'KLF1' or 'KLF1+MAP2K6' (labels coded as numbers: write "
            f"them as text first, adata.obs[{perturbation_key!r}] = "
            f"adata.obs[{perturbation_key!r}].astype(str)); columns of text: "
            f"{texts if texts else 'none'}"
        )


def _holds_text(column: pd.Series) -> bool:
    """Whether an ``obs`` column holds text (strings, or categories of strings)."""
    values = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else column
    return pd.api.types.infer_dtype(values, skipna=True) == "string"


def setup(
    adata: AnnData,
    *,
    perturbation_key: str = "condition",
    control: str | None = None,
    sep: str | None = None,
    gene_symbols: str | bool | None = None,
    normalize: bool = False,
    copy: bool = False,
    go_annotations: pd.DataFrame | None = None,
    pool_datasets: bool = False,
) -> AnnData | None:
    """Validate a Perturb-seq screen and parse its perturbation labels.

    Parameters
    ----------
    adata
        Cells x genes, log-normalised (or raw counts with ``normalize=True``); may be backed.
    perturbation_key
        Column of ``adata.obs`` holding the perturbation label of each cell.
    control
        Label of control cells; detected among ``ctrl``, ``control``, ``non-targeting``,
        ``NT``, ``NTC`` (any case) when ``None``.
    sep
        Separator of the genes of a combination in the raw labels (default ``+``). Not
        given, when most perturbed genes that are neither measured nor GO-annotated look
        like genes joined by another separator (``KLF1_MAP2K6``), the set-up refuses,
        naming it, before changing ``adata``; ``sep="+"`` keeps such labels as they are.
    gene_symbols
        Column of ``adata.var`` with gene symbols to use as gene names. ``None``: a
        ``gene_name`` column (where GEARS files keep them) is used when present, unless
        ``var_names`` name more of the perturbed genes (a warning says so); ``False``: keep
        ``var_names``. A gene with no symbol keeps its ``var_names`` entry; a symbol shared
        by several genes names the first, the others get ``-1``, ``-2``, ... (both warned).
    normalize
        Normalise raw counts (``normalize_total`` + ``log1p``) instead of raising.
    copy
        Work on a copy and return it.
    go_annotations
        GO annotations (columns ``gene``, ``term``) the label check knows genes by, as the
        models will (default: a simulated screen's own table, else the bundled human GO):
        perturbed genes neither measured nor annotated get a warning naming the likely
        fix (:func:`~perturbsim.pp._label_hint.label_hint`).
    pool_datasets
        Pool the cells of a screen whose ``obs["dataset"]`` names several screens (refused
        otherwise: each condition, control included, would mix them). Several values of
        ``obs["cell_type"]`` (or ``celltype``, ``cell_line``) are warned of.

    Returns
    -------
    The set-up copy with ``copy=True``, else ``None``. Writes

    - ``adata.obs["perturbsim_condition"]``: canonical label (sorted genes joined by ``+``,
      ``ctrl`` for control), categorical;
    - ``adata.obs["perturbsim_n_targets"]``: number of perturbed genes;
    - ``adata.uns["perturbsim"]["setup"]``: options, perturbed genes, targets missing from
      ``var`` (allowed, e.g. CRISPRa of unmeasured genes) and single-cell conditions;
      ``normalize`` is whether this setup normalised raw counts in ``X`` and
      ``pooled_datasets`` whether it pooled several screens (so that a model fitted on it
      reads the file again alike);
    - ``adata.var["perturbsim_original_id"]``: the original ``var_names``, when
      ``gene_symbols`` (or a ``gene_name`` column) replaces them.
    - with ``normalize=True`` and raw counts in ``X``: ``X`` log-normalised in place
      (``normalize_total`` + ``log1p``; scanpy records ``uns["log1p"]``), the counts kept in
      ``adata.layers["counts"]`` (a layer of that name already there must hold the same
      counts, else an error).

    When the labels, the genes or (``normalize``) the values differ from an earlier setup's,
    what that setup gave is dropped (logged), to be recomputed: the split
    (``obs["perturbsim_split"]``, ``obs["perturbsim_subgroup"]``, ``uns["perturbsim"]["split"]``),
    the statistics (``uns["perturbsim"]["pseudobulk"]``, ``varp["perturbsim_gram"]``) and the
    DE genes (``uns["perturbsim"]["de"]``, and those under any other ``key_added``); a screen
    set up, processed and saved keeps them when it is read back.

    Warned of (logged, kept): conditions of a single cell; a control of fewer cells than
    the typical (median) condition, whose noise every change then shares as much as its
    own or more; several cell types; perturbed genes not measured in ``var``.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.setup(adata, perturbation_key="condition", control="control")
    >>> adata.obs["perturbsim_condition"].nunique()
    34
    """
    check_anndata(adata)
    check_not_empty(adata)
    check_perturbation_key(adata, perturbation_key)
    adata = written_screen(adata, copy=copy, what="setup")
    if control is not None:
        check_label_part("control", control, "NTC")
    if sep is not None:
        check_label_part("sep", sep, "_")
    if go_annotations is not None:
        checked_table(go_annotations, ("gene", "term"), "go_annotations")
    pool_datasets = check_flag("pool_datasets", pool_datasets)
    normalize = check_flag("normalize", normalize)
    before = _screen_as_read(adata)
    raw = adata.obs[perturbation_key]
    blanks = [v for v in pd.unique(raw.dropna()) if isinstance(v, str) and not v.strip()]
    missing = (raw.isna() | raw.isin(blanks)).to_numpy()
    if missing.any():
        first = adata.obs_names[missing][0]
        raise PerturbsimError(
            f"malformed perturbation label: obs[{perturbation_key!r}] is missing or blank for "
            f"{counted(int(missing.sum()), 'cell')} (first: {first!r}); cells of no known "
            f"perturbation cannot be placed: leave them out first (adata = adata["
            f"adata.obs[{perturbation_key!r}].astype(str).str.strip().ne('') & "
            f"adata.obs[{perturbation_key!r}].notna()].copy())"
        )
    distinct = list(pd.unique(raw.astype(object)))
    _warn_missing_as_text(raw, distinct, perturbation_key)
    chosen_sep, sep = sep is not None, SEP if sep is None else sep
    if control is None:
        control = detect_control(distinct, key=perturbation_key, sep=sep)
    elif control not in distinct and control in map(str, distinct):
        kind = type(next(d for d in distinct if str(d) == control)).__name__
        raise PerturbsimError(
            f"obs[{perturbation_key!r}] holds labels of type {kind}, not text: write them as "
            f"text first (adata.obs[{perturbation_key!r}] = "
            f"adata.obs[{perturbation_key!r}].astype(str))"
        )
    elif control not in distinct:
        raise PerturbsimError(
            f"no control cells: control label {control!r} not found in obs[{perturbation_key!r}] "
            f"(labels include {distinct[:5]}){suggestion(control, distinct)}"
        )
    annotated = None if go_annotations is None else set(go_annotations["gene"].astype(str))
    _refuse_gene_as_control(adata, control, distinct, perturbation_key, sep, annotated)
    mapping = parse_labels(distinct, control=control, sep=sep)
    if not chosen_sep:  # first: control guides joined by another separator read as genes
        _refuse_joined_labels(adata, mapping, annotated, sep, control)
    _refuse_other_controls(adata, mapping, control, perturbation_key, sep, annotated)
    canonical = raw.astype(object).map(mapping).astype(str)
    if not (canonical == CONTROL).any():
        raise PerturbsimError(f"no control cells labelled {control!r} in obs[{perturbation_key!r}]")
    pooled = _check_mixed_sources(adata, pool_datasets)
    _warn_confounded_batches(adata.obs, canonical)
    _warn_repeated_cell_names(adata.obs_names)
    symbols = _gene_symbols(adata, gene_symbols, {g for c in mapping.values() for g in genes_of(c)})
    normalised = validate_expression(adata, normalize=normalize)
    if symbols is not None:  # once the values passed: a refused screen keeps its names
        adata.var[ORIGINAL_ID] = adata.var_names.astype(str)
        adata.var_names, where = symbols[0], f"adata.var[{symbols[1]!r}]"
        logger.log(
            logging.INFO if gene_symbols else logging.WARNING,  # warned when not asked
            "var_names are now the symbols of %s (the former names kept in var[%r]; "
            "gene_symbols=False keeps them)",
            where,
            ORIGINAL_ID,
        )

    conditions = ordered_conditions(mapping.values())
    adata.obs[CONDITION] = pd.Categorical(canonical.to_numpy(), categories=conditions)
    adata.obs[N_TARGETS] = canonical.map(lambda c: len(genes_of(c))).astype(np.int64).to_numpy()

    perturbed = sorted({g for c in conditions for g in genes_of(c)})
    missing = sorted(set(perturbed) - set(adata.var_names))
    # labels joined by another separator were refused above unless sep was chosen
    hint = label_hint(adata, annotated, sep=sep, joined=False) if missing else None
    if hint is not None:  # the likely fix, genes known in another case among them
        logger.warning(hint)
    # every perturbed gene with a twin in another case that the hint did not name
    unnamed = [g for g in perturbed if hint is None or f"'{g}'" not in hint]
    _warn_case_clashes(unnamed, list(map(str, adata.var_names)))
    if hint is None and missing and WARN_UNMEASURED_TARGETS.get():
        _warn_unmeasured(missing, adata, annotated)
    counts = adata.obs[CONDITION].value_counts()
    single_cell = sorted(counts.index[counts == 1].astype(str))
    if single_cell:
        logger.warning(
            "%s a single cell (kept, flagged): %s",
            counted(len(single_cell), "condition has", "conditions have"),
            shown_list(single_cell, 10),
        )
    _warn_few_control_cells(counts)
    uns = adata.uns.setdefault(UNS, {})
    # the file's counts normalised now or by an earlier setup: what re-reading it needs
    from_counts = normalised or bool(uns.get(SETUP, {}).get("normalize", False))
    now = _screen_as_read(adata)
    if normalised or before is None or now is None or not _same_screen(before, now):
        _drop_derived(adata)
    uns[SETUP] = {
        "perturbation_key": perturbation_key,
        "gene_key": "none" if symbols is None else symbols[1],
        "control": control,
        "sep": sep,
        "normalize": from_counts,
        "pooled_datasets": pooled,
        "perturbed_genes": np.array(perturbed, dtype=object),
        "missing_targets": np.array(missing, dtype=object),
        "single_cell_conditions": np.array(single_cell, dtype=object),
    }
    logger.info("added .obs[%r], .obs[%r] and .uns[%r][%r]", CONDITION, N_TARGETS, UNS, SETUP)
    return adata if copy else None


def _warn_few_control_cells(counts: pd.Series) -> None:
    """Warn when the control has fewer cells than the typical perturbed condition.

    Every change is measured against the control's mean, so its noise is shared by every
    condition: a model's error, the replicate's and the DE tests all read it, and with a
    control smaller than the conditions it dominates them (on a simulated screen of 150
    control cells cut to 10, the mean baseline's Pearson correlation rose from 0.42 to 0.60
    and the replicate's fell from 0.83 to 0.66).
    """
    control = int(counts.get(CONTROL, 0))
    perturbed = counts.drop(index=CONTROL, errors="ignore")
    typical = float(perturbed.median()) if len(perturbed) else 0.0
    if control < typical:
        logger.warning(
            "the control has %s, fewer than the typical condition (median %g): every change "
            "is measured against its mean, whose noise then weighs on every change, score "
            "and DE test as much as the condition's own or more",
            counted(control, "cell"),
            typical,
        )


def check_anndata(value: object, name: str = "adata", rows: str = "cells") -> None:
    """Raise naming the type when ``value`` is not an AnnData (e.g. a matrix).

    ``name`` and ``rows`` (what its rows are) word the error.

    Examples
    --------
    >>> import numpy as np
    >>> check_anndata(np.zeros((2, 3)))
    Traceback (most recent call last):
    ...
    perturbsim._errors.PerturbsimError: adata must be an AnnData (cells x genes), got ndarray
    """
    if not isinstance(value, AnnData):
        raise PerturbsimError(
            f"{name} must be an AnnData ({rows} x genes), got {type(value).__name__}"
        )


def check_setup(adata: AnnData) -> None:
    """Raise if ``adata`` is not an AnnData on which :func:`setup` has been run."""
    check_anndata(adata)
    if CONDITION not in adata.obs.columns or SETUP not in adata.uns.get(UNS, {}):
        raise PerturbsimError(
            "adata is not set up: run perturbsim.pp.setup(adata, perturbation_key=..., control=...)"
        )
    if not isinstance(adata.obs[CONDITION].dtype, pd.CategoricalDtype):
        raise PerturbsimError(
            f"obs[{CONDITION!r}] is no longer categorical, as setup wrote it: run "
            "perturbsim.pp.setup(adata, ...) again"
        )
    unlabelled = np.flatnonzero(adata.obs[CONDITION].cat.codes.to_numpy() < 0)
    if unlabelled.size:
        raise PerturbsimError(
            f"{counted(unlabelled.size, 'cell')} of adata lost their condition label since "
            f"setup (obs[{CONDITION!r}] missing, e.g. cell "
            f"{str(adata.obs_names[unlabelled[0]])!r}): run perturbsim.pp.setup(adata, ...) again"
        )


def condition_table(adata: AnnData) -> pd.DataFrame:
    """Summarise the conditions of a set-up screen.

    Parameters
    ----------
    adata
        A screen after :func:`setup`.

    Returns
    -------
    One row per canonical condition with ``n_cells``, ``n_targets`` and ``kind``
    (``control``, ``single``, ``combo`` for pairs, ``higher`` for larger sets).

    Examples
    --------
    >>> import perturbsim as ps
    >>> table = ps.pp.condition_table(ps.ds.norman2019_subset())
    >>> table["kind"].value_counts().to_dict()
    {'single': 18, 'combo': 15, 'control': 1}
    """
    check_setup(adata)
    counts = adata.obs[CONDITION].value_counts(sort=False)
    n_targets = np.array([len(genes_of(c)) for c in counts.index])
    kind = np.select(
        [n_targets == 0, n_targets == 1, n_targets == 2],
        ["control", "single", "combo"],
        default="higher",
    )
    return pd.DataFrame(
        {"n_cells": counts.to_numpy(), "n_targets": n_targets, "kind": kind},
        index=pd.Index(counts.index.astype(str), name="condition"),
    )
