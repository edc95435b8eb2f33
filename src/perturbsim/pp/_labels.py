"""Parse perturbation labels into canonical gene sets.

Accepted forms: GEARS (``ctrl``, ``A+ctrl``, ``ctrl+A``, ``A+B``), pertpy/scPerturb
(``control``, ``A``, ``A+B``) and any user separator. Sets of any size are representable.
The canonical form is the sorted gene set joined by ``+`` (``A+B`` == ``B+A``) and ``ctrl``
for control cells.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence, Set

import numpy as np
import pandas as pd

from .._checks import check_label_part, check_list
from .._errors import PerturbsimError, shown_list
from .._keys import CONTROL, SEP

CONTROL_CANDIDATES: tuple[str, ...] = ("ctrl", "control", "non-targeting", "NT", "NTC")
"""Control labels recognised automatically (case-insensitive)."""
CONTROL_LOOKALIKE_GENES: frozenset[str] = frozenset({"CTRL"})
"""Human gene symbols spelt like a control word (``CTRL``, chymotrypsin-like elastase): so
spelt, a gene in a query too, as in a screen's labels (:func:`is_control_word`)."""
SEPARATORS: tuple[str, ...] = ("_", "-", "|", ",", ";", ":", "/", ".")
"""Separators other than ``+`` that labels are tried with when they look joined by one."""
CONTROL_WORDS: tuple[str, ...] = ("ctrl", "control", "targeting", "negative", "scrambl", "safe")
"""Parts of a word that mark a control guide (``NegCtrl0``, ``non-targeting_2``)."""
_CONTROL_AFFIXES = frozenset({"non", "neg"})
"""Words of a control guide's name that are no gene (``non`` of ``non-targeting``)."""

_GEARS_CONTROL_TOKEN = "ctrl"


def _white_space_hint(label: str, sep: str) -> str:
    """A hint for white space in ``label``: a spaced separator, or padding around it.

    A spaced separator (``" + "``, ``"; "``, ``", "``: ``sep`` or one of :data:`SEPARATORS`,
    else ``" "``) the label splits cleanly at, or
    padding around a label with no white space inside.

    Examples
    --------
    >>> _white_space_hint("A + B", "+")
    " (genes joined by ' + '? pass sep=' + ')"
    >>> _white_space_hint("A; B", ";")
    " (genes joined by '; '? pass sep='; ')"
    >>> _white_space_hint("A, B", "+")
    " (genes joined by ', '? pass sep=', ')"
    >>> _white_space_hint(" A+B ", "+")
    ' (white space around the label: strip the labels first, e.g. with .str.strip())'
    >>> _white_space_hint(" A + B ", " + ")
    ' (white space around the label: strip the labels first, e.g. with .str.strip())'
    """
    bare = sep.strip()

    def is_gene(token: str) -> bool:
        inside = SEP in token or (bare and bare in token) or any(ch.isspace() for ch in token)
        return bool(token) and not inside

    seps = [bare, *(s for s in SEPARATORS if s != bare)]
    spaced_seps = [f"{before}{s} " for s in seps for before in (" ", "")]  # "A + B", "A, B"
    for spaced in dict.fromkeys([*spaced_seps, " "]):  # last, "A B"
        tokens = label.split(spaced)
        if spaced != sep and len(tokens) > 1 and all(map(is_gene, tokens)):
            return f" (genes joined by {spaced!r}? pass sep={spaced!r})"
    stripped = label.strip()
    if stripped != label and all(map(is_gene, stripped.split(sep))):
        return " (white space around the label: strip the labels first, e.g. with .str.strip())"
    return ""


def parse_label(label: object, *, control: str = CONTROL, sep: str = SEP) -> tuple[str, ...]:
    """Parse one perturbation label into a sorted tuple of gene names.

    Parameters
    ----------
    label
        The label, e.g. ``"KLF1"``, ``"KLF1+ctrl"``, ``"MAP2K6+KLF1"`` or the control label.
    control
        The label of control cells; it may also stand as a token inside a label
        (``"ctrl+KLF1"``), as may GEARS's ``"ctrl"`` and each token of the control label
        itself (Norman et al.'s ``"KLF1_NegCtrl0"`` beside the control
        ``"NegCtrl0_NegCtrl0"``, with ``sep="_"``).
    sep
        Separator between the genes of a combination.

    Returns
    -------
    The sorted gene names; the empty tuple for control.

    Raises
    ------
    PerturbsimError
        If the label is missing, empty, not a string, has an empty or padded token or one
        holding an invisible character (a zero-width space, a byte-order mark), names a
        gene twice, or (with a separator other than ``+``) has a gene containing ``+``; or
        if ``control`` is not a non-empty string.

    Examples
    --------
    >>> import perturbsim as ps
    >>> ps.pp.parse_label("MAP2K6+KLF1")
    ('KLF1', 'MAP2K6')
    >>> ps.pp.parse_label("KLF1+ctrl")
    ('KLF1',)
    >>> ps.pp.parse_label("control", control="control")
    ()
    >>> ps.pp.parse_label("KLF1_NegCtrl0", control="NegCtrl0_NegCtrl0", sep="_")
    ('KLF1',)
    """
    if not isinstance(label, str):
        if isinstance(label, float) and math.isnan(label):
            raise PerturbsimError("malformed perturbation label: missing value (NaN)")
        raise PerturbsimError(
            f"malformed perturbation label {label!r}: expected a string, got {type(label).__name__}"
        )
    if not sep:
        raise PerturbsimError(f"the label separator must be a non-empty string, got {sep!r}")
    check_label_part("control", control, "NTC")
    if label.strip() == "":
        raise PerturbsimError(f"malformed perturbation label {label!r}: empty")
    if label == control:
        return ()
    controls = {control, _GEARS_CONTROL_TOKEN, *control.split(sep)}
    genes: list[str] = []
    for token in label.split(sep):
        if token == "":
            raise PerturbsimError(
                f"malformed perturbation label {label!r}: empty gene name around {sep!r}"
            )
        if token != token.strip() or any(ch.isspace() for ch in token):
            raise PerturbsimError(
                f"malformed perturbation label {label!r}: gene name {token!r} contains white "
                f"space{_white_space_hint(label, sep)}"
            )
        if (hidden := _invisible(token)) is not None:
            raise PerturbsimError(
                f"malformed perturbation label {label!r}: gene name {token!r} holds the "
                f"invisible character {hidden}: remove it"
            )
        if token in controls:
            continue
        if SEP in token:
            raise PerturbsimError(
                f"malformed perturbation label {label!r}: gene name {token!r} contains {SEP!r}, "
                f"which perturbsim reserves to join genes (labels joined by {SEP!r}: drop "
                f"sep={sep!r})"
            )
        if token in genes:
            raise PerturbsimError(
                f"malformed perturbation label {label!r}: gene {token!r} appears twice"
                + (
                    f" (it looks like a control label: pass control={label!r} if it is the "
                    "screen's)"
                    if looks_like_control(label)
                    else ""
                )
            )
        genes.append(token)
    return tuple(sorted(genes))


def canonical_label(genes: Iterable[str]) -> str:
    """Return the canonical label of a gene set: sorted genes joined by ``+``, or ``ctrl``.

    Parameters
    ----------
    genes
        Gene names (duplicates count once); none for the control.

    Returns
    -------
    The distinct genes, sorted, joined by ``+``; ``"ctrl"`` when there is none.

    Examples
    --------
    >>> import perturbsim as ps
    >>> ps.pp.canonical_label(["MAP2K6", "KLF1"])
    'KLF1+MAP2K6'
    >>> ps.pp.canonical_label([])
    'ctrl'
    """
    check_list("genes", genes, "genes")
    genes = list(genes)
    for gene in genes:
        _check_gene_name(gene, genes)
    return SEP.join(sorted(set(genes))) if genes else CONTROL


def _check_gene_name(gene: object, genes: list) -> None:
    """Refuse what cannot be one gene of a set: not a string, empty, padded, joined, control."""
    if not isinstance(gene, str):
        raise PerturbsimError(
            f"genes holds {gene!r} ({type(gene).__name__}): name each gene by a string"
        )
    if gene == "":
        raise PerturbsimError(
            f"genes holds an empty name: {sorted(set(genes), key=str)!r} (a label with a stray "
            "separator, e.g. 'KLF1+'? give each gene once, by name)"
        )
    if gene != gene.strip() or any(ch.isspace() for ch in gene):
        raise PerturbsimError(f"genes holds {gene!r}, a name with white space")
    if (hidden := _invisible(gene)) is not None:
        raise PerturbsimError(f"genes holds {gene!r}, a name with the invisible character {hidden}")
    if SEP in gene:
        raise PerturbsimError(
            f"genes holds {gene!r}, several genes joined by {SEP!r}: give them one by one "
            "(perturbsim.pp.parse_label splits a label)"
        )
    if gene == CONTROL:
        raise PerturbsimError(
            f"genes holds the control label {CONTROL!r}: the control is the set of no gene"
        )


def genes_of(condition: str) -> tuple[str, ...]:
    """Return the genes of a canonical condition label (empty for ``ctrl``).

    Parameters
    ----------
    condition
        A canonical label (:func:`canonical_label`), e.g. ``"KLF1+MAP2K6"`` or ``"ctrl"``.

    Returns
    -------
    The parts of ``condition`` split at ``+``, in its order (sorted for a canonical label);
    the empty tuple for ``"ctrl"``.
    """
    if not isinstance(condition, str):
        raise PerturbsimError(
            f"condition must be a label such as 'KLF1+MAP2K6', got {type(condition).__name__}"
        )
    return () if condition == CONTROL else tuple(condition.split(SEP))


def singles_of(conditions: Iterable[str]) -> list[str]:
    """The genes of the single perturbations among canonical ``conditions``, sorted.

    Examples
    --------
    >>> singles_of(["ctrl", "KLF1", "KLF1+MAP2K6", "CEBPE"])
    ['CEBPE', 'KLF1']
    """
    return sorted(genes[0] for genes in map(genes_of, map(str, conditions)) if len(genes) == 1)


def ordered_conditions(conditions: Iterable[str]) -> list[str]:
    """Canonical conditions, each once, by number of genes (control first), then name.

    Examples
    --------
    >>> ordered_conditions(["KLF1+MAP2K6", "ctrl", "KLF1", "KLF1"])
    ['ctrl', 'KLF1', 'KLF1+MAP2K6']
    """
    return sorted(set(conditions), key=lambda c: (len(genes_of(c)), c))


def split_at_separators(gene: str) -> list[tuple[str, list[str]]]:
    """Each separator of :data:`SEPARATORS` that cuts ``gene`` into names, with the names.

    Examples
    --------
    >>> split_at_separators("KLF1_MAP2K6")
    [('_', ['KLF1', 'MAP2K6'])]
    >>> split_at_separators("HLA-A"), split_at_separators("KLF1_")
    ([('-', ['HLA', 'A'])], [])
    """
    cuts = [(sep, gene.split(sep)) for sep in SEPARATORS]
    return [(sep, parts) for sep, parts in cuts if len(parts) > 1 and all(parts)]


def joined_genes_hint(gene: str, sep: str, parts: Sequence[str], *, takes_sep: bool) -> str:
    """The hint for a queried ``gene`` that is genes ``parts`` joined by ``sep``.

    With ``takes_sep``, the query also reads labels joined by its ``sep=`` argument.

    Examples
    --------
    >>> joined_genes_hint("KLF1_MAP2K6", "_", ["KLF1", "MAP2K6"], takes_sep=False)
    " ('KLF1_MAP2K6' looks like genes joined by '_': write 'KLF1+MAP2K6' or a list of genes)"
    >>> joined_genes_hint("KLF1_MAP2K6", "_", ["KLF1", "MAP2K6"], takes_sep=True)[-48:]
    "write 'KLF1+MAP2K6', a list of genes or sep='_')"
    """
    joined = SEP.join(parts)
    ways = (
        f"{joined!r}, a list of genes or sep={sep!r}"
        if takes_sep
        else f"{joined!r} or a list of genes"
    )
    return f" ({gene!r} looks like genes joined by {sep!r}: write {ways})"


def looks_like_control(text: str) -> bool:
    """Whether ``text`` names a control guide: a control word and no gene.

    Its words (split by ``+`` and :data:`SEPARATORS`) are each a control word (holding one
    of :data:`CONTROL_WORDS`, or one of :data:`CONTROL_CANDIDATES` such as ``NT``), a
    number or an affix such as ``non``, and one at least is a control word:
    ``NegCtrl0_NegCtrl0``, ``non-targeting_2``, ``NT_5``; not ``KLF1_NegCtrl0``.
    """
    words = re.split("|".join(map(re.escape, (SEP, *SEPARATORS))), text.lower())
    candidates = {c.lower() for c in CONTROL_CANDIDATES}
    control = [any(c in word for c in CONTROL_WORDS) or word in candidates for word in words]
    return any(control) and all(
        is_control or not any(ch.isalpha() for ch in word) or word in _CONTROL_AFFIXES
        for word, is_control in zip(words, control, strict=True)
    )


def _joining_sep(control: str, labels: Sequence[str], sep: str) -> tuple[str, str] | None:
    """A separator joining two control guides in ``control`` and a gene to one elsewhere.

    The separator (not ``sep``) and the first label where it joins a gene to a control
    guide (``NegCtrl0_NegCtrl0`` and ``KLF1_NegCtrl0``: ``_``); None when there is none.
    """
    for joiner in SEPARATORS:
        parts = control.split(joiner)
        if joiner == sep or len(parts) < 2 or not all(map(looks_like_control, parts)):
            continue
        for label in labels:
            if not isinstance(label, str):
                continue
            alike = [looks_like_control(part) for part in label.split(joiner)]
            if any(alike) and not all(alike):
                return joiner, label
    return None


def _control_hint(labels: Sequence[str], sep: str) -> str:
    """How to name the control cells, from the labels that look like control guides."""
    likely = sorted(
        label for label in labels if isinstance(label, str) and looks_like_control(label)
    )
    if not likely:
        return "pass control='<label of your control cells>'"
    joining = _joining_sep(likely[0], labels, sep)
    joined = (
        ""
        if joining is None
        else f" ({joining[0]!r} joins genes in other labels, as in {joining[1]!r}: pass "
        f"sep={joining[0]!r} too)"
    )
    if len(likely) == 1:
        return f"{likely[0]!r} looks like control: pass control={likely[0]!r}{joined}"
    kept = _most_joined(likely, labels)
    return (
        f"{len(likely)} labels look like control ({shown_list([repr(c) for c in likely], 3)}): "
        f"give their cells one label, e.g. {kept!r}, and pass control={kept!r}{joined}; with "
        "one of them as the control, the others would read as perturbations"
    )


def _most_joined(likely: Sequence[str], labels: Sequence[object]) -> str:
    """Of the control guides ``likely``, the one whose words most other labels hold.

    ``NegCtrl0_NegCtrl0``, whose ``NegCtrl0`` the pairs ``KLF1_NegCtrl0`` hold: as the
    control label, its words read as control in them too.
    """
    split = re.compile("|".join(map(re.escape, (SEP, *SEPARATORS))))
    others = [set(split.split(lab)) for lab in labels if isinstance(lab, str) and lab not in likely]

    def shared(guide: str) -> int:
        return sum(bool(set(split.split(guide)) & words) for words in others)

    return max(likely, key=lambda guide: (shared(guide), -likely.index(guide)))


def detect_control(labels: Sequence[str], *, key: str, sep: str = SEP) -> str:
    """Find the control label among ``labels``.

    Parameters
    ----------
    labels
        The distinct labels of the perturbation column.
    key
        Name of the column, for the error message.
    sep
        The labels' gene separator, for the error message's hint.

    Returns
    -------
    The one label among :data:`CONTROL_CANDIDATES` (case-insensitive) present in ``labels``.

    Raises
    ------
    PerturbsimError
        If none or several candidates are present. With none, the message names the labels
        that look like control guides (a :data:`CONTROL_WORDS` word and no gene, e.g.
        ``NegCtrl0_NegCtrl0``) and, where another separator than ``sep`` joins a gene to
        such a guide in some label (``KLF1_NegCtrl0``), that separator.
    """
    wanted = {c.lower() for c in CONTROL_CANDIDATES}
    found = sorted({lab for lab in labels if isinstance(lab, str) and lab.lower() in wanted})
    if not found:
        padded = sorted(
            lab for lab in labels if isinstance(lab, str) and lab.strip().lower() in wanted
        )
        if padded:
            raise PerturbsimError(
                f"no control cells: label {padded[0]!r} of obs[{key!r}] has white space around "
                f"it; strip the labels (adata.obs[{key!r}] = adata.obs[{key!r}].str.strip()) or "
                f"pass control={padded[0]!r}"
            )
        raise PerturbsimError(
            f"no control cells: none of {list(CONTROL_CANDIDATES)} is a label of obs[{key!r}]; "
            f"{_control_hint(labels, sep)}"
        )
    if len(found) > 1:
        # merge into a label that cannot be a gene: CTRL, so spelt, is one
        target = min(found, key=lambda lab: (lab in CONTROL_LOOKALIKE_GENES, lab))
        others = [lab for lab in found if lab != target]
        raise PerturbsimError(
            f"ambiguous control label in obs[{key!r}]: candidates {found}; give their cells "
            f"one label first (adata.obs[{key!r}] = adata.obs[{key!r}].astype(str).replace("
            f"{dict.fromkeys(others, target)!r})): with one as the control, the others "
            "would read as perturbations; where one is a gene perturbed (CTRL), pass control= "
            f"the other (control={target!r})"
        )
    return found[0]


def parse_labels(labels: Sequence[object], *, control: str, sep: str = SEP) -> dict[object, str]:
    """Map each distinct raw label to its canonical condition.

    Parameters
    ----------
    labels
        Distinct raw labels.
    control
        The control label.
    sep
        Separator between genes in the raw labels.

    Returns
    -------
    Mapping raw label -> canonical label.
    """
    return {lab: canonical_label(parse_label(lab, control=control, sep=sep)) for lab in labels}


def is_control_word(token: str, control: str = CONTROL, sep: str = SEP) -> bool:
    """Whether a queried ``token`` names no gene.

    It does when it is ``control`` or a token of it (``NegCtrl0`` of ``NegCtrl0_NegCtrl0``
    with ``sep="_"``, as :func:`parse_label` reads them), or, in any case, one of these or
    of :data:`CONTROL_CANDIDATES`, unless it is spelt as a gene of
    :data:`CONTROL_LOOKALIKE_GENES`.

    Examples
    --------
    >>> is_control_word("Control"), is_control_word("ntc"), is_control_word("CTRL")
    (True, True, False)
    """
    if token == control or token in control.split(sep):
        return True
    words = {c.lower() for c in (*CONTROL_CANDIDATES, control, *control.split(sep))}
    return token.lower() in words and token not in CONTROL_LOOKALIKE_GENES


def read_measured(
    item: str, measured: set[str], *, control: str = CONTROL, sep: str = SEP
) -> str | None:
    """The label of ``measured`` that ``item`` reads as, else ``None``.

    ``item`` is taken as it is when measured, else read as a query (:func:`parse_query`)
    with ``control`` and ``sep`` (how :func:`~perturbsim.pp.setup` read the screen), then
    with ``+``.

    Examples
    --------
    >>> measured = {"KLF1", "KLF1+MAP2K6"}
    >>> read_measured("MAP2K6_KLF1", measured, sep="_"), read_measured("KLF1+ctrl", measured)
    ('KLF1+MAP2K6', 'KLF1')
    >>> read_measured("FOXO4", measured) is None
    True
    """
    if item in measured:
        return item
    for separator in dict.fromkeys((sep, SEP)):
        try:
            label = canonical_label(parse_query(item, control=control, sep=separator))
        except PerturbsimError:
            continue
        if label in measured:
            return label
    return None


def label_sep(label: str, sep: str) -> str:
    """The separator ``label`` is read with: ``+`` if it holds one (perturbsim's own form).

    A screen's ``sep`` that itself holds ``+`` (``" + "``) is kept where the label holds it.

    Examples
    --------
    >>> label_sep("A+B", "_"), label_sep("A_B", "_"), label_sep("A + B", " + ")
    ('+', '_', ' + ')
    """
    if SEP in sep and sep in label:
        return sep
    return SEP if SEP in label else sep


def parse_query(label: str, *, control: str = CONTROL, sep: str = SEP) -> tuple[str, ...]:
    """One queried label as a sorted gene tuple; control words name no gene.

    A token (or the whole label) that names no gene (:func:`is_control_word`: ``control``, a
    token of it, or one of :data:`CONTROL_CANDIDATES`, in any case) is the control:
    ``"Control"`` is the empty set, ``"KLF1+NT"`` is KLF1.

    Examples
    --------
    >>> parse_query("KLF1+control"), parse_query("Non-Targeting"), parse_query("B_A", sep="_")
    (('KLF1',), (), ('A', 'B'))
    """
    if is_control_word(label, control, sep):
        return ()
    tokens = label.split(sep)
    if any(is_control_word(t, control, sep) for t in tokens):
        label = sep.join(CONTROL if is_control_word(t, control, sep) else t for t in tokens)
    return parse_label(label, control=CONTROL, sep=sep)


def query_items(perturbations: object) -> list:
    """The items of a query: one label, or an ordered, non-empty collection of them.

    Raises
    ------
    PerturbsimError
        For an unordered collection (set, dict), bytes, ``None`` or another type, and for
        an empty one. (A :class:`pandas.Categorical`, as ``obs[column].unique()`` gives, is
        a list of labels.)
    """
    if isinstance(perturbations, str):
        return [perturbations]
    if isinstance(perturbations, bytes):  # a Sequence of numbers, not of labels
        raise PerturbsimError(
            f"perturbations must be labels as text, got bytes {perturbations!r}: decode them"
        )
    if isinstance(perturbations, Set | Mapping) or not isinstance(
        perturbations, Sequence | np.ndarray | pd.Index | pd.Series | pd.Categorical
    ):
        raise PerturbsimError(
            "perturbations must be a label or a list of labels or gene lists (in order), got "
            f"{type(perturbations).__name__}"
        )
    items = list(perturbations)
    if not items:
        raise PerturbsimError(
            "no perturbations given: pass e.g. 'FOSB+CEBPB' or [['FOSB'], ['KLF1']]"
        )
    return items


def parse_perturbations(
    perturbations: str | Sequence[str] | Sequence[Sequence[str]],
    *,
    control: str = CONTROL,
    sep: str = SEP,
) -> list[tuple[str, ...]]:
    """Normalise a user's perturbation query into a list of sorted gene sets.

    Parameters
    ----------
    perturbations
        One label (``"FOSB+CEBPB"``), a list of labels (``["FOSB+CEBPB", "KLF1"]``) or a
        list of gene lists (``[["FOSB", "CEBPB"], ["KLF1"]]``). ``ctrl`` is the empty set.
    control
        A control word besides :data:`CONTROL_CANDIDATES` (e.g. ``"NTC"``).
    sep
        Separator of the genes of a label (e.g. ``"_"`` for ``"FOSB_CEBPB"``); a label
        holding ``+`` is read with ``+`` (:func:`label_sep`).

    Returns
    -------
    One sorted gene tuple per queried perturbation, in the order given; control words
    (:func:`is_control_word`) name no gene, as ``ctrl`` does
    (:func:`parse_query`), in labels and gene lists alike. A gene of a list holding ``+``
    is an error.

    Examples
    --------
    >>> import perturbsim as ps
    >>> ps.pp.parse_perturbations("FOSB+CEBPB")
    [('CEBPB', 'FOSB')]
    >>> ps.pp.parse_perturbations([["FOSB", "CEBPB"], ["KLF1"], "Control"])
    [('CEBPB', 'FOSB'), ('KLF1',), ()]
    >>> ps.pp.parse_perturbations(["FOSB_CEBPB", "NTC"], control="NTC", sep="_")
    [('CEBPB', 'FOSB'), ()]
    """
    check_label_part("control", control, "NTC")
    check_label_part("sep", sep, "_")
    items = query_items(perturbations)
    sets: list[tuple[str, ...]] = []
    for item in items:
        if isinstance(item, str):
            sets.append(parse_query(item, control=control, sep=label_sep(item, sep)))
        elif isinstance(item, Sequence | np.ndarray) and all(isinstance(g, str) for g in item):
            sets.append(_gene_list([str(g) for g in item], control, sep))
        else:
            raise PerturbsimError(
                f"malformed perturbation {item!r}: expected a label like 'A+B' or a list of genes"
            )
    return sets


def _invisible(name: str) -> str | None:
    """The first character of ``name`` that prints as nothing, described; None without one.

    A zero-width space or a byte-order mark (a file read in the wrong encoding, a copy from
    a spreadsheet) would make a second gene that reads as the first.
    """
    hidden = next((ch for ch in name if unicodedata.category(ch) in {"Cf", "Cc"}), None)
    if hidden is None:
        return None
    return f"U+{ord(hidden):04X} ({unicodedata.name(hidden, 'a control character')})"


def _gene_list(genes: Sequence[str], control: str, sep: str) -> tuple[str, ...]:
    """A queried list of genes as a sorted gene tuple; control words name no gene.

    A control word is ``control`` or one of its words as ``sep`` joins them.
    """
    joined = [g for g in genes if SEP in g]
    if joined:
        raise PerturbsimError(
            f"gene {joined[0]!r} of {list(genes)!r} holds {SEP!r}: give each gene of a list "
            f"on its own (e.g. {joined[0].split(SEP)!r}), or the label {joined[0]!r}"
        )
    kept = [g for g in genes if not is_control_word(g, control, sep)]
    if "" in [g.strip() for g in kept]:
        raise PerturbsimError(f"malformed gene list {list(genes)!r}: a gene name is empty")
    spaced = [g for g in kept if any(ch.isspace() for ch in g)]
    if spaced:
        padded = not any(ch.isspace() for ch in spaced[0].strip())
        advice = f"strip it: {spaced[0].strip()!r}" if padded else "a gene name has none"
        raise PerturbsimError(
            f"malformed gene list {list(genes)!r}: gene name {spaced[0]!r} contains white "
            f"space ({advice})"
        )
    hidden = next(((g, h) for g in kept if (h := _invisible(g)) is not None), None)
    if hidden is not None:
        raise PerturbsimError(
            f"malformed gene list {list(genes)!r}: gene name {hidden[0]!r} holds the "
            f"invisible character {hidden[1]}: remove it"
        )
    repeated = sorted({g for g in kept if kept.count(g) > 1})
    if repeated:
        raise PerturbsimError(
            f"malformed gene list {list(genes)!r}: gene {repeated[0]!r} appears twice"
        )
    return parse_label(SEP.join(kept)) if kept else ()
