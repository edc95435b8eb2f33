"""Train / validation / test splits of the perturbation conditions of a screen.

Every split assigns whole conditions (never single cells) to ``train``, ``val`` or ``test``;
control (``ctrl``) is always in ``train``. Test conditions fall into *subgroups* by how many of
their genes are *seen*:

==================  ==========================================================
``unseen_single``   a single-gene perturbation of an unseen gene
``seen_single``     a single-gene perturbation of a seen gene (``custom`` only)
``combo_seen0/1/2`` a two-gene perturbation with 0, 1 or 2 seen genes
``combo{n}_seen{k}`` a perturbation of ``n >= 3`` genes with ``k`` seen genes
==================  ==========================================================

What *seen* means depends on the kind of split (see :func:`split`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from anndata import AnnData

from .._checks import check_fraction
from .._errors import PerturbsimError, counted, suggestion
from .._keys import CONDITION, CONTROL, SEP, SETUP, SPLIT, SPLIT_UNS, SUBGROUP, UNS
from .._settings import resolve_seed
from ._labels import canonical_label, genes_of, is_control_word, ordered_conditions, parse_label
from ._setup import check_setup
from ._writes import store_uns, written_screen

logger = logging.getLogger(__name__)

KINDS = ("simulation", "single", "combo", "custom", "none")
SETS = ("train", "val", "test")
EXCLUDED = "excluded"
MAX_DRAWS = 1000
"""Gene draws tried by the ``simulation`` and ``single`` splits before settling (see split)."""

_TEST_STAGE, _VAL_STAGE = 0, 1


def subgroup_name(n_genes: int, n_seen: int) -> str:
    """Name of the subgroup of a condition of ``n_genes`` genes of which ``n_seen`` are seen.

    Examples
    --------
    >>> subgroup_name(1, 0), subgroup_name(2, 1), subgroup_name(3, 3)
    ('unseen_single', 'combo_seen1', 'combo3_seen3')
    """
    if n_genes < 1 or not 0 <= n_seen <= n_genes:
        raise PerturbsimError(f"no subgroup for {n_seen} seen of {n_genes} genes")
    if n_genes == 1:
        return "seen_single" if n_seen else "unseen_single"
    if n_genes == 2:
        return f"combo_seen{n_seen}"
    return f"combo{n_genes}_seen{n_seen}"


def subgroups_note(code: Callable[[str], str] = str) -> str:
    """What the test subgroups are, in one sentence for a report; names formatted by ``code``.

    Examples
    --------
    >>> subgroups_note(lambda name: f"`{name}`").split(";")[0]
    '`unseen_single`: a single of a gene the split held out'
    """
    return (
        f"{code('unseen_single')}: a single of a gene the split held out; "
        f"{code('combo_seen0/1/2')}: a pair with 0, 1 or 2 of its genes seen, which for the "
        "simulation split (GEARS's) means drawn as seen, not necessarily perturbed in "
        "training (the combo split: measured alone; see perturbsim.pp.split)"
    )


def _kind_name(n_genes: int) -> str:
    return {0: CONTROL, 1: "single", 2: "combo"}.get(n_genes, f"combo{n_genes}")


def _n_seen(seen: set[str] | frozenset[str], condition: str) -> int:
    return sum(g in seen for g in genes_of(condition))


def _add(groups: dict[str, list[str]], name: str, condition: str) -> None:
    groups.setdefault(name, []).append(condition)


def _sorted_groups(groups: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: ordered_conditions(v) for k, v in sorted(groups.items()) if v}


# --------------------------------------------------------------------------------------
# The split object
# --------------------------------------------------------------------------------------


@dataclass
class Split:
    """A split of the conditions of a screen into train, validation and test.

    Attributes
    ----------
    kind
        ``"simulation"``, ``"single"``, ``"combo"``, ``"custom"`` or ``"none"``.
    seed
        Seed the split was drawn with.
    train, val, test
        Canonical conditions of each set; ``ctrl`` is always in ``train``.
    subgroups
        Test subgroup -> its conditions (non-empty groups only).
    val_subgroups
        Validation subgroup -> its conditions (non-empty groups only).
    seen_genes
        The genes counted as seen when naming the test subgroups.
    excluded
        Conditions in no set (the multi-gene conditions of a ``single`` split).
    control, sep
        The screen's control label and gene separator (its set-up), with which
        :meth:`set_of` and :meth:`subgroup_of` read its own labels.
    """

    kind: str
    seed: int
    train: list[str]
    val: list[str]
    test: list[str]
    subgroups: dict[str, list[str]]
    val_subgroups: dict[str, list[str]]
    seen_genes: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    control: str = CONTROL
    sep: str = SEP

    def set_of(self, condition: str) -> str:
        """``"train"``, ``"val"``, ``"test"`` or ``"excluded"`` for a condition label.

        Parameters
        ----------
        condition
            A condition label: canonical (``"A"``, ``"A+B"``), ``+``-joined with ``ctrl``
            (``"A+ctrl"``, ``"B+A"``), or as the screen writes it (its :attr:`control` and
            :attr:`sep`: ``"A_NegCtrl0"``).

        Returns
        -------
        The name of the set holding the condition: ``"train"``, ``"val"``, ``"test"`` or
        ``"excluded"``.
        """
        cond = _screen_canonical(condition, self.control, self.sep)
        for name, members in (
            ("train", self.train),
            ("val", self.val),
            ("test", self.test),
            (EXCLUDED, self.excluded),
        ):
            if cond in members:
                return name
        raise PerturbsimError(f"condition {condition!r} is not part of this split")

    def subgroup_of(self, condition: str) -> str:
        """Subgroup of a condition: its test subgroup, ``"train"``, ``"val"`` or ``"excluded"``.

        Parameters
        ----------
        condition
            A condition label in any form :meth:`set_of` reads (``"SET+KLF1"`` and
            ``"KLF1+SET"`` are the same).

        Returns
        -------
        For a test condition, the name of its test subgroup (a key of :attr:`subgroups`,
        e.g. ``"combo_seen1"``); otherwise its set as :meth:`set_of` names it.
        """
        where = self.set_of(condition)
        if where != "test":
            return where
        cond = _screen_canonical(condition, self.control, self.sep)
        return next(name for name, members in self.subgroups.items() if cond in members)

    def to_adata(self, adata: AnnData) -> None:
        """Write the split into ``adata`` (see :func:`split` for the fields written).

        Parameters
        ----------
        adata
            A set-up screen holding the split's conditions.
        """
        check_setup(adata)
        present = _present_conditions(adata)
        lookup: dict[str, tuple[str, str]] = {}
        for cond in self.train:
            lookup[cond] = ("train", "train")
        for cond in self.val:
            lookup[cond] = ("val", "val")
        for name, members in self.subgroups.items():
            for cond in members:
                lookup[cond] = ("test", name)
        for cond in self.excluded:
            lookup[cond] = (EXCLUDED, EXCLUDED)
        unknown = [c for c in present if c not in lookup]
        if unknown:
            raise PerturbsimError(
                f"condition {unknown[0]!r} of adata is in no set of the split "
                f"({len(unknown)} such conditions)"
            )
        codes = adata.obs[CONDITION].astype(str)
        sets = [*SETS, EXCLUDED] if self.excluded else list(SETS)
        groups = ["train", "val", *self.subgroups, *([EXCLUDED] if self.excluded else [])]
        adata.obs[SPLIT] = pd.Categorical(
            codes.map(lambda c: lookup[c][0]).to_numpy(), categories=sets
        )
        adata.obs[SUBGROUP] = pd.Categorical(
            codes.map(lambda c: lookup[c][1]).to_numpy(), categories=groups
        )

        def arr(values: Sequence[str]) -> np.ndarray:
            return np.asarray(list(values), dtype=object)

        store_uns(
            adata,
            SPLIT_UNS,
            {
                "kind": self.kind,
                "seed": int(self.seed),
                "train": arr(self.train),
                "val": arr(self.val),
                "test": arr(self.test),
                "subgroups": {k: arr(v) for k, v in self.subgroups.items()},
                "val_subgroups": {k: arr(v) for k, v in self.val_subgroups.items()},
                "seen_genes": arr(self.seen_genes),
                "excluded": arr(self.excluded),
            },
        )
        logger.info("added .obs[%r], .obs[%r] and .uns[%r][%r]", SPLIT, SUBGROUP, UNS, SPLIT_UNS)

    @classmethod
    def from_adata(cls, adata: AnnData) -> Split:
        """Read the split written by :func:`split` (or :meth:`to_adata`).

        Parameters
        ----------
        adata
            The screen it was written into.

        Returns
        -------
        The split as stored (``seen_genes`` and ``excluded`` empty where the store lacks
        them).
        """
        data = adata.uns.get(UNS, {}).get(SPLIT_UNS)
        if data is None:
            raise PerturbsimError("no split: run perturbsim.pp.split(adata)")

        def lst(values: object) -> list[str]:
            return [str(v) for v in np.asarray(values, dtype=object).ravel()]

        return cls(
            kind=str(data["kind"]),
            seed=int(data["seed"]),
            train=lst(data["train"]),
            val=lst(data["val"]),
            test=lst(data["test"]),
            subgroups={str(k): lst(v) for k, v in data["subgroups"].items()},
            val_subgroups={str(k): lst(v) for k, v in data["val_subgroups"].items()},
            seen_genes=lst(data.get("seen_genes", [])),
            excluded=lst(data.get("excluded", [])),
            **_screen_words(adata),
        )

    def summary(self, adata: AnnData) -> pd.DataFrame:
        """Conditions and cells per set and subgroup.

        Parameters
        ----------
        adata
            The set-up screen the split was made on (its cells are counted).

        Returns
        -------
        One row per (``set``, ``subgroup``) with ``n_conditions`` and ``n_cells``. Training
        rows are broken down by kind (``ctrl``, ``single``, ``combo``, ``combo3``, ...);
        validation and test rows by subgroup.
        """
        counts = adata.obs[CONDITION].astype(str).value_counts()
        rows: list[tuple[str, str, list[str]]] = []
        by_kind: dict[str, list[str]] = {}
        for cond in self.train:
            _add(by_kind, _kind_name(len(genes_of(cond))), cond)
        kinds = sorted(by_kind, key=lambda k: len(genes_of(by_kind[k][0])))
        rows += [("train", k, by_kind[k]) for k in kinds]
        rows += [("val", k, v) for k, v in self.val_subgroups.items()]
        rows += [("test", k, v) for k, v in self.subgroups.items()]
        if self.excluded:
            rows.append((EXCLUDED, EXCLUDED, self.excluded))
        return pd.DataFrame(
            {
                "set": [r[0] for r in rows],
                "subgroup": [r[1] for r in rows],
                "n_conditions": [len(r[2]) for r in rows],
                "n_cells": [int(sum(counts.get(c, 0) for c in r[2])) for r in rows],
            }
        )


def _present_conditions(adata: AnnData) -> list[str]:
    counts = adata.obs[CONDITION].astype(str).value_counts()
    return ordered_conditions(counts.index[counts > 0])


# --------------------------------------------------------------------------------------
# Gene-level hold-out (GEARS's simulation procedure)
# --------------------------------------------------------------------------------------


@dataclass
class _Holdout:
    seen: frozenset[str]
    kept: list[str]
    held: dict[str, list[str]]


def _n_seen_genes(n_genes: int, fraction: float) -> int:
    """GEARS's ``int(n * fraction)`` seen genes, kept within ``[1, n - 1]``."""
    return min(max(int(n_genes * fraction), 1), n_genes - 1)


def _gene_holdout(
    conditions: list[str], seen_fraction: float, keep_fraction: float, rng: np.random.Generator
) -> _Holdout:
    """One draw: seen genes, then the conditions kept (all genes seen) and held out."""
    genes = sorted({g for c in conditions for g in genes_of(c)})
    seen = frozenset(rng.permutation(genes)[: _n_seen_genes(len(genes), seen_fraction)].tolist())
    kept: list[str] = []
    held: dict[str, list[str]] = {}
    fully_seen: dict[int, list[str]] = {}
    for cond in conditions:
        n, k = len(genes_of(cond)), _n_seen(seen, cond)
        if k < n:
            _add(held, subgroup_name(n, k), cond)
        elif n == 1:
            kept.append(cond)
        else:
            fully_seen.setdefault(n, []).append(cond)
    for n, members in sorted(fully_seen.items()):
        shuffled = rng.permutation(members).tolist()
        n_keep = int(len(members) * keep_fraction)
        kept += shuffled[:n_keep]
        for cond in shuffled[n_keep:]:
            _add(held, subgroup_name(n, n), cond)
    return _Holdout(seen=seen, kept=ordered_conditions(kept), held=_sorted_groups(held))


def _possible_groups(
    conditions: list[str], seen_fraction: float, keep_fraction: float
) -> tuple[dict[int, set[str]], dict[int, int], set[int]]:
    """Subgroups some draw can hold out, per set size, by gene counts.

    Also how many of them one draw can hold (no more than the conditions of that size) and
    the kinds some draw may keep. A kind of set stays in train only when enough of its sets
    are fully seen (``int(m * keep_fraction) >= 1``); ``m`` is bounded by the sets no unseen
    gene can avoid: unseen genes beyond those in no set of the kind fall in at least one set
    per ``n`` of them (two pairs of four genes, one unseen: at most one pair fully seen).
    """
    genes = {g for c in conditions for g in genes_of(c)}
    n_seen = _n_seen_genes(len(genes), seen_fraction)
    n_unseen = len(genes) - n_seen
    by_size: dict[int, list[str]] = {}
    for cond in conditions:
        by_size.setdefault(len(genes_of(cond)), []).append(cond)
    groups: dict[int, set[str]] = {}
    reachable: dict[int, int] = {}
    keepable: set[int] = set()
    for n, members in sorted(by_size.items()):
        groups[n] = {
            subgroup_name(n, k)
            for k in range(max(0, n - n_unseen), min(n, n_seen) + 1)
            if n > 1 or k == 0
        }
        reachable[n] = min(len(groups[n]), len(members))
        outside = len(genes - {g for c in members for g in genes_of(c)})
        fully_seen = len(members) - math.ceil(max(0, n_unseen - outside) / n)
        if n <= n_seen and (n == 1 or int(fully_seen * keep_fraction) >= 1):
            keepable.add(n)
    return groups, reachable, keepable


def _best_holdout(
    conditions: list[str],
    *,
    seen_fraction: float,
    keep_fraction: float,
    seed: int,
    stage: int,
    what: str,
) -> _Holdout:
    """Return the first of up to :data:`MAX_DRAWS` draws representing every possible subgroup.

    Draw ``i`` uses ``numpy.random.default_rng([seed, stage, i])``. A draw is complete when
    it holds out as many of the subgroups some draw could produce as the conditions allow
    (each condition is in one subgroup: one pair cannot stand for ``combo_seen1`` and
    ``combo_seen2`` at once), and keeps every kind of condition (single, pair, ...) that
    could stay. Without a complete draw the best one is used: most subgroups, then most
    kinds kept for the test stage; the reverse for the validation stage (train keeping
    every kind matters more there); earliest on ties.
    """
    possible, reachable, keepable = _possible_groups(conditions, seen_fraction, keep_fraction)
    complete = (sum(reachable.values()), len(keepable))
    best, best_score = None, (-1, -1)
    for attempt in range(MAX_DRAWS):
        rng = np.random.default_rng([seed, stage, attempt])
        draw = _gene_holdout(conditions, seen_fraction, keep_fraction, rng)
        kinds = {len(genes_of(c)) for c in draw.kept}
        held = sum(
            min(len(groups & set(draw.held)), reachable[n]) for n, groups in possible.items()
        )
        score = (held, len(keepable & kinds))
        if score == complete:
            if attempt:
                logger.info("%s: draw %d is the first to represent every subgroup", what, attempt)
            return draw
        ranked = score if stage == _TEST_STAGE else score[::-1]
        if ranked > best_score:
            best, best_score = draw, ranked
    assert best is not None
    missing = sorted(set().union(*possible.values()) - set(best.held))
    lost = sorted(_kind_name(n) for n in keepable - {len(genes_of(c)) for c in best.kept})
    logger.log(
        logging.WARNING if stage == _TEST_STAGE else logging.INFO,
        "%s: none of %d draws holds out every possible subgroup while keeping every kind; "
        "using the best (subgroups missing: %s; kinds not kept: %s)",
        what,
        MAX_DRAWS,
        ", ".join(missing) or "none",
        ", ".join(lost) or "none",
    )
    return best


# --------------------------------------------------------------------------------------
# The kinds of split
# --------------------------------------------------------------------------------------


def _carve_val(
    pool: list[str], *, val_fraction: float, seed: int, keep_training: bool = True
) -> tuple[list[str], dict[str, list[str]]]:
    """Apply the gene-level hold-out to training conditions; return (train, val groups).

    With ``keep_training``, no validation set that would leave no perturbed training
    condition (a screen of a pair or two): none is carved out then, with a warning. The
    simulation split goes without: a screen its validation empties has no single-gene
    perturbation, and is told to split by ``combo``.
    """
    if val_fraction == 0:
        return pool, {}
    genes = {g for c in pool for g in genes_of(c)}
    if len(genes) < 2:
        logger.warning("too few training genes (%d) to carve out validation: none", len(genes))
        return pool, {}
    draw = _best_holdout(
        pool,
        seen_fraction=1 - val_fraction,
        keep_fraction=1 - val_fraction,
        seed=seed,
        stage=_VAL_STAGE,
        what="validation split",
    )
    if keep_training and not any(genes_of(c) for c in draw.kept):
        logger.warning(
            "a validation set would leave no perturbed training condition (%d to share): none "
            "carved out",
            sum(1 for c in pool if genes_of(c)),
        )
        return pool, {}
    return draw.kept, draw.held


def _simulation(
    conditions: list[str],
    *,
    seed: int,
    train_gene_fraction: float,
    combo_seen2_train_fraction: float,
    val_fraction: float,
) -> Split:
    genes = {g for c in conditions for g in genes_of(c)}
    if len(genes) < 2:
        raise PerturbsimError(
            f"kind='simulation' needs at least 2 perturbed genes, found {len(genes)}"
        )
    draw = _best_holdout(
        conditions,
        seen_fraction=train_gene_fraction,
        keep_fraction=combo_seen2_train_fraction,
        seed=seed,
        stage=_TEST_STAGE,
        what="simulation split",
    )
    train, val_groups = _carve_val(
        draw.kept, val_fraction=val_fraction, seed=seed, keep_training=False
    )
    return _assemble("simulation", seed, train, val_groups, draw.held, sorted(draw.seen))


def _single(
    conditions: list[str], *, seed: int, train_gene_fraction: float, val_fraction: float
) -> Split:
    singles = [c for c in conditions if len(genes_of(c)) == 1]
    excluded = [c for c in conditions if len(genes_of(c)) > 1]
    if len(singles) < 2:
        raise PerturbsimError(
            f"kind='single' needs at least 2 single-gene perturbations, found {len(singles)}"
        )
    if excluded:
        logger.info("kind='single': %d multi-gene conditions are excluded", len(excluded))
    draw = _best_holdout(
        singles,
        seen_fraction=train_gene_fraction,
        keep_fraction=1.0,
        seed=seed,
        stage=_TEST_STAGE,
        what="single split",
    )
    train, val_groups = _carve_val(draw.kept, val_fraction=val_fraction, seed=seed)
    return _assemble("single", seed, train, val_groups, draw.held, sorted(draw.seen), excluded)


def _stratified_pick(
    groups: dict[str, list[str]], fraction: float, rng: np.random.Generator
) -> tuple[list[str], dict[str, list[str]]]:
    """Pick ``int(m * fraction)`` (at least 1) conditions of each group; return rest, picked."""
    rest: list[str] = []
    picked: dict[str, list[str]] = {}
    for name, members in sorted(groups.items()):
        shuffled = rng.permutation(members).tolist()
        n_pick = min(max(int(len(members) * fraction), 1), len(members))
        picked[name] = shuffled[:n_pick]
        rest += shuffled[n_pick:]
    return rest, picked


def _combo(
    conditions: list[str], *, seed: int, combo_test_fraction: float, val_fraction: float
) -> Split:
    singles = [c for c in conditions if len(genes_of(c)) == 1]
    combos = [c for c in conditions if len(genes_of(c)) > 1]
    if not combos:
        raise PerturbsimError("kind='combo' needs perturbations of two or more genes, found none")
    measured = frozenset(g for c in singles for g in genes_of(c))
    groups: dict[str, list[str]] = {}
    for cond in combos:
        _add(groups, subgroup_name(len(genes_of(cond)), _n_seen(measured, cond)), cond)
    rng = np.random.default_rng([seed, _TEST_STAGE])
    train_combos, test_groups = _stratified_pick(groups, combo_test_fraction, rng)
    val_groups: dict[str, list[str]] = {}
    if val_fraction > 0 and len(train_combos) >= 2:
        n_val = min(max(int(len(train_combos) * val_fraction), 1), len(train_combos) - 1)
        val_rng = np.random.default_rng([seed, _VAL_STAGE])
        for cond in val_rng.permutation(ordered_conditions(train_combos))[:n_val].tolist():
            _add(val_groups, subgroup_name(len(genes_of(cond)), _n_seen(measured, cond)), cond)
    val = {c for v in val_groups.values() for c in v}
    train = singles + [c for c in train_combos if c not in val]
    return _assemble("combo", seed, train, val_groups, test_groups, sorted(measured))


def _screen_words(adata: AnnData) -> dict[str, str]:
    """The screen's ``control`` label and ``sep``arator, as its set-up stored them."""
    setup = adata.uns.get(UNS, {}).get(SETUP, {})
    return {"control": str(setup.get("control", CONTROL)), "sep": str(setup.get("sep", SEP))}


def _screen_canonical(label: str, control: str, sep: str) -> str:
    """The canonical condition of ``label``, written as the screen writes it or with ``+``.

    ``ctrl`` for a control word in any case.

    Raises
    ------
    PerturbsimError
        Where the label reads as neither: the screen's reading's error (a gene twice, an
        empty name).
    """
    label = str(label)
    if is_control_word(label, control, sep):
        return CONTROL
    first: PerturbsimError | None = None
    for ctl, s in ((control, sep), (control, SEP), (CONTROL, SEP)):
        try:
            return canonical_label(parse_label(label, control=ctl, sep=s))
        except PerturbsimError as err:
            first = first or err
    assert first is not None
    raise first


def _canonical_test_conditions(adata: AnnData, labels: Sequence[str]) -> list[str]:
    present = set(_present_conditions(adata))
    words = _screen_words(adata)
    out: list[str] = []
    for label in labels:
        cond = str(label) if str(label) in present else _screen_canonical(label, **words)
        if cond == CONTROL:
            raise PerturbsimError(f"test condition {label!r} is the control: ctrl stays in train")
        if cond not in present:
            raise PerturbsimError(
                f"test condition {label!r} is not a condition of the screen"
                f"{_case_hint(cond, present)}"
            )
        out.append(cond)
    return ordered_conditions(out)


def _case_hint(condition: str | None, present: set[str]) -> str:
    """The hint naming the condition of ``present`` meant: its genes in another case, or close.

    ``"; did you mean 'KLF1+MAP2K6'? ..."`` for ``klf1+MAP2K6``; else the closest spelling
    (``"; did you mean 'FOXO4'?"`` for ``FOXO44``; for a combination, among those of as many
    genes sharing one with it; a combination of genes perturbed alone says so), or ``""``.
    """
    if condition is None:
        return ""
    by_case = {frozenset(g.lower() for g in genes_of(c)): c for c in present}
    meant = by_case.get(frozenset(g.lower() for g in genes_of(condition)))
    if meant:
        return f"; did you mean {meant!r}? (labels are case-sensitive)"
    genes = set(genes_of(condition))
    if len(genes) > 1 and genes <= present:
        return f"; the screen perturbs {' and '.join(sorted(genes))} alone, not together"
    alike = [  # a combination is offered one of as many genes sharing a gene with it
        c
        for c in sorted(present - {CONTROL})
        if len(genes) == 1 or (len(genes_of(c)) == len(genes) and genes & set(genes_of(c)))
    ]
    return suggestion(condition, alike)


def _custom(
    conditions: list[str], test: list[str], *, seed: int, val_fraction: float, kind: str = "custom"
) -> Split:
    pool = [c for c in conditions if c not in set(test)]
    seen = frozenset(g for c in pool for g in genes_of(c))
    groups: dict[str, list[str]] = {}
    for cond in test:
        _add(groups, subgroup_name(len(genes_of(cond)), _n_seen(seen, cond)), cond)
    train, val_groups = _carve_val(pool, val_fraction=val_fraction, seed=seed)
    return _assemble(kind, seed, train, val_groups, groups, sorted(seen))


def _assemble(
    kind: str,
    seed: int,
    train: list[str],
    val_groups: dict[str, list[str]],
    test_groups: dict[str, list[str]],
    seen: list[str],
    excluded: list[str] | None = None,
) -> Split:
    val_groups, test_groups = _sorted_groups(val_groups), _sorted_groups(test_groups)
    return Split(
        kind=kind,
        seed=seed,
        train=[CONTROL, *ordered_conditions(c for c in train if c != CONTROL)],
        val=ordered_conditions(c for v in val_groups.values() for c in v),
        test=ordered_conditions(c for v in test_groups.values() for c in v),
        subgroups=test_groups,
        val_subgroups=val_groups,
        seen_genes=list(seen),
        excluded=ordered_conditions(excluded or []),
    )


def make_split(
    adata: AnnData,
    *,
    kind: str = "simulation",
    seed: int | None = None,
    train_gene_fraction: float = 0.75,
    combo_seen2_train_fraction: float = 0.75,
    val_fraction: float = 0.1,
    combo_test_fraction: float = 0.5,
    test_conditions: Sequence[str] | None = None,
) -> Split:
    """Draw a split without writing it; see :func:`split` for the parameters."""
    check_setup(adata)
    if kind not in KINDS:
        raise PerturbsimError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    check_fraction("train_gene_fraction", train_gene_fraction)
    check_fraction("combo_seen2_train_fraction", combo_seen2_train_fraction)
    check_fraction("combo_test_fraction", combo_test_fraction)
    check_fraction("val_fraction", val_fraction, allow_zero=True)
    seed = resolve_seed(seed)
    if kind != "custom" and test_conditions is not None:
        raise PerturbsimError(f"test_conditions is for kind='custom', not kind={kind!r}")
    conditions = [c for c in _present_conditions(adata) if c != CONTROL]
    if kind == "simulation":
        result = _simulation(
            conditions,
            seed=seed,
            train_gene_fraction=train_gene_fraction,
            combo_seen2_train_fraction=combo_seen2_train_fraction,
            val_fraction=val_fraction,
        )
    elif kind == "single":
        result = _single(
            conditions,
            seed=seed,
            train_gene_fraction=train_gene_fraction,
            val_fraction=val_fraction,
        )
    elif kind == "combo":
        result = _combo(
            conditions,
            seed=seed,
            combo_test_fraction=combo_test_fraction,
            val_fraction=val_fraction,
        )
    elif kind == "none":
        result = _custom(conditions, [], seed=seed, val_fraction=val_fraction, kind=kind)
    else:
        if test_conditions is not None and not isinstance(test_conditions, str):
            test_conditions = list(test_conditions)  # an array, Index or Series too
        if test_conditions is None or isinstance(test_conditions, str) or not test_conditions:
            raise PerturbsimError(
                "kind='custom' needs test_conditions, a non-empty list of condition labels, "
                f"got {test_conditions!r}"
                + (
                    f" (a string: give [{test_conditions!r}])"
                    if isinstance(test_conditions, str)
                    else ""
                )
            )
        test = _canonical_test_conditions(adata, test_conditions)
        result = _custom(conditions, test, seed=seed, val_fraction=val_fraction)
    result = replace(result, **_screen_words(adata))
    if result.train == [CONTROL]:
        singles = any(len(genes_of(c)) == 1 for c in conditions)
        perturbed = sum(1 for c in conditions if genes_of(c))
        hint = (
            ": the screen has no single-gene perturbation; use kind='combo'"
            if not singles and kind == "simulation"
            else f": it holds {counted(perturbed, 'perturbed condition')} (kind='custom' "
            "chooses what to hold out; kind='none' trains on them all)"
        )
        logger.warning("the %s split leaves no perturbed condition in train%s", kind, hint)
    return result


def split(
    adata: AnnData,
    *,
    kind: str = "simulation",
    seed: int | None = None,
    train_gene_fraction: float = 0.75,
    combo_seen2_train_fraction: float = 0.75,
    val_fraction: float = 0.1,
    combo_test_fraction: float = 0.5,
    test_conditions: Sequence[str] | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Split the conditions of a screen into train, validation and test sets.

    Kinds of split:

    ``"simulation"`` (GEARS)
        All perturbed genes (genes of any condition, including genes only perturbed in
        combinations) are shuffled and ``int(n * train_gene_fraction)`` of them (at least
        one, at most ``n - 1``) are *seen*. Singles of unseen genes go to test
        (``unseen_single``), as do combinations with an unseen gene (``combo_seen0``,
        ``combo_seen1``, ``combo{n}_seen{k}``). Of the combinations whose genes are all seen,
        ``int(m * combo_seen2_train_fraction)`` stay in train and the rest go to test
        (``combo_seen2``). *Seen* means drawn as seen, as in GEARS, not trained on: a seen
        gene may be perturbed only within a test pair, or alone only in validation (its
        single carved out of train below), so a ``combo_seen1`` pair may have no gene of a
        training condition (the default model predicts such a gene as one never measured:
        its predictions' ``unsupported`` and ``generic`` flags say how).
    ``"single"``
        For single-gene screens: the same procedure on the single-gene conditions only
        (test: ``unseen_single``). Multi-gene conditions are *excluded* (in no set).
    ``"combo"``
        All singles stay in train; within each subgroup of combinations (seen = genes whose
        single perturbation is measured: ``combo_seen2`` when both are), a share
        ``combo_test_fraction`` (``int(m * fraction)``, at least one) goes to test, as in the linear
        baselines benchmark (Ahlmann-Eltze et al. 2024).
    ``"custom"``
        Test is ``test_conditions`` (raw or canonical labels: ``"SET+KLF1"`` is
        ``"KLF1+SET"``, ``"KLF1+ctrl"`` is ``"KLF1"``); subgroups count the genes seen in the
        remaining (train and validation) conditions (``seen_single`` for a single whose gene
        is perturbed in a training combination).
    ``"none"``
        No test: every condition is in train or validation, for a model meant to be used
        rather than scored. Validation is carved out as for ``custom``; each model uses it
        as it would any validation set (GEARS to stop early, the default to fit its
        weights, after which it predicts validation singles by their measurements).

    Every subgroup that can occur is represented in test: the ``simulation`` and ``single``
    gene draws are repeated over derived seeds (draw ``i`` uses
    ``numpy.random.default_rng([seed, stage, i])``) and the first draw in which every
    possible subgroup is non-empty, and every kind of condition (singles, pairs, ...) that can
    stay in train does, is taken (warning if none of 1000 draws is complete: the best is
    used). ``combo`` stratifies by subgroup instead.

    Validation is carved out of train so that it mimics test. For ``simulation``,
    ``single``, ``custom`` and ``none`` the same gene-level procedure is applied to the training
    conditions with a share ``1 - val_fraction`` of their genes seen and of their fully seen
    combinations kept (GEARS uses 0.9, i.e. ``val_fraction=0.1``), preferring, as above, draws
    in which every possible validation subgroup occurs and train keeps every kind of
    condition. For ``combo``, ``int(val_fraction * m)`` (at least one when ``m >= 2``) of
    the ``m`` training combinations go to validation. ``val_fraction=0`` means no validation.
    ``ctrl`` always stays in train.

    Parameters
    ----------
    adata
        A screen after :func:`perturbsim.pp.setup`.
    kind
        ``"simulation"``, ``"single"``, ``"combo"``, ``"custom"`` or ``"none"``.
    seed
        Seed (default: ``perturbsim.settings.seed``); the same seed gives the same split.
    train_gene_fraction
        Share of perturbed genes seen (``simulation``, ``single``).
    combo_seen2_train_fraction
        Share of fully seen combinations kept in train (``simulation``).
    val_fraction
        Share of training genes (and fully seen combinations; for ``combo``: of training
        combinations) moved to validation, in ``[0, 1)``. A validation set that would leave
        no perturbed training condition (a screen of a pair or two) is not carved out, with
        a warning, except by ``simulation``, whose training set is then refused when fitted.
    combo_test_fraction
        Share of combinations of each subgroup put in test (``combo``).
    test_conditions
        The test conditions (``custom`` only).
    copy
        Work on a copy and return it.

    Returns
    -------
    The split copy with ``copy=True``, else ``None``. The summary table (see
    :func:`split_summary`) is logged. Writes

    - ``adata.obs["perturbsim_split"]``: ``train``, ``val`` or ``test`` (``excluded`` for
      conditions in no set), categorical;
    - ``adata.obs["perturbsim_subgroup"]``: the test subgroup of the cell's condition, or
      ``train``, ``val``, ``excluded``, categorical;
    - ``adata.uns["perturbsim"]["split"]``: ``kind``, ``seed``, ``train``, ``val``, ``test``,
      ``seen_genes``, ``excluded`` (string arrays), ``subgroups`` and ``val_subgroups``
      (dicts of non-empty string arrays). Read it back with :meth:`Split.from_adata`.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.split(adata, kind="simulation", seed=1)
    >>> sorted(adata.obs["perturbsim_subgroup"].unique())
    ['combo_seen0', 'combo_seen1', 'combo_seen2', 'train', 'unseen_single', 'val']
    """
    adata = written_screen(adata, copy=copy, what="split")
    result = make_split(
        adata,
        kind=kind,
        seed=seed,
        train_gene_fraction=train_gene_fraction,
        combo_seen2_train_fraction=combo_seen2_train_fraction,
        val_fraction=val_fraction,
        combo_test_fraction=combo_test_fraction,
        test_conditions=test_conditions,
    )
    result.to_adata(adata)
    table = result.summary(adata)
    logger.info("%s split (seed %d):\n%s", kind, result.seed, table.to_string(index=False))
    return adata if copy else None


def split_summary(adata: AnnData) -> pd.DataFrame:
    """Conditions and cells per set and subgroup of the split stored in ``adata``.

    Parameters
    ----------
    adata
        A screen after :func:`split`.

    Returns
    -------
    One row per set and subgroup: ``set``, ``subgroup``, ``n_conditions``, ``n_cells``;
    training rows by kind (``ctrl``, ``single``, ``combo``, ...).

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> ps.pp.split(adata, kind="simulation", seed=1)
    >>> table = ps.pp.split_summary(adata)
    >>> sorted(table.loc[table["set"] == "test", "subgroup"])
    ['combo_seen0', 'combo_seen1', 'combo_seen2', 'unseen_single']
    """
    return Split.from_adata(adata).summary(adata)
