"""Reading a growth (cell fitness) screen of single genes and gene pairs from CSV tables.

The layout is the one of Norman et al. 2019's published tables (``docs/fitness.md``):

``single_fitnesses.csv``
    One row per gene: the gene name in the first column, its fitness in the column
    ``average_fitness`` (or in the only other column).
``processed_fitnesses.csv``
    The gene x gene matrix of pair fitnesses: gene names as row labels (first column) and as
    header, the same genes in both, symmetric. An empty cell (on both sides) is a pair
    that was not measured; the diagonal (a gene targeted twice) is not a pair and is ignored.
``processed_emap.csv`` (optional)
    Genetic-interaction (E-MAP) scores of the pairs, in the same matrix layout.

The control row and column (``negative`` in Norman's tables: each gene paired with a
non-targeting guide, i.e. the single) are dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .._checks import as_path, shown
from .._errors import PerturbsimError, counted, error_reason, first_case_hint, shown_list
from .._keys import SEP
from ..pp._labels import canonical_label

logger = logging.getLogger(__name__)

SINGLES_FILE = "single_fitnesses.csv"
PAIRS_FILE = "processed_fitnesses.csv"
EMAP_FILE = "processed_emap.csv"
DEFAULT_CONTROL = "negative"
"""The control row and column of Norman's tables."""
SINGLE_COLUMN = "average_fitness"
"""Column of the single fitness when ``single_fitnesses.csv`` has several value columns."""
_RTOL, _ATOL = 1e-6, 1e-9
"""Tolerance of the symmetry check: published matrices differ from their transpose by 1e-12."""
_NAMED = 10
"""Genes named by an error before "and N more"."""


def check_screen(screen: object) -> None:
    """Refuse, in one line, anything but a :class:`FitnessScreen` (a folder's path, say)."""
    if not isinstance(screen, FitnessScreen):
        raise PerturbsimError(
            "screen must be a growth screen (ps.ds.read_fitness(folder)), got "
            f"{type(screen).__name__}"
        )


@dataclass(frozen=True, eq=False)
class FitnessScreen:
    """A growth screen: the fitness of single-gene and two-gene perturbations.

    Attributes
    ----------
    singles
        Fitness of each single-gene perturbation, indexed by gene (float, every value
        finite). It covers every gene of ``pairs`` and may hold more.
    pairs
        Symmetric gene x gene DataFrame of pair fitnesses (float); NaN where a pair was not
        measured. The diagonal is not used. Given with its columns in another order than its
        rows, they are put in the order of the rows.
    emap
        Genetic-interaction scores in the layout of ``pairs`` (NaN where absent), or
        ``None`` when the folder has none.
    source
        Where the screen was read from (for messages).
    control
        Label of the control row and column dropped when read (``None``: none was).

    Raises
    ------
    PerturbsimError
        One line naming the problem: ``pairs`` is not a DataFrame or ``singles`` not a
        Series; a gene label is not text, is empty or holds ``"+"``; a gene is named twice;
        the rows and columns of ``pairs`` are different genes (both lists named); a value is
        not a number, or infinite (``pairs``: NaN is a pair not measured); ``pairs`` is not
        symmetric (the first differing pair named with both values); a gene of ``pairs`` has
        no single fitness, or a single fitness is not finite (the gene named).

    Examples
    --------
    >>> import pandas as pd
    >>> from perturbsim.ds import FitnessScreen
    >>> pairs = pd.DataFrame([[0.0, -0.5], [-0.5, 0.0]], index=["A", "B"], columns=["A", "B"])
    >>> screen = FitnessScreen(pd.Series({"A": -0.2, "B": -0.1}), pairs)
    >>> screen.pair_table()["fitness"].to_dict()
    {'A+B': -0.5}
    >>> screen
    FitnessScreen from fitness screen: 2 singles, 1 measured pair of 2 genes, without E-MAP scores
    """

    singles: pd.Series
    pairs: pd.DataFrame
    emap: pd.DataFrame | None = None
    source: str = "fitness screen"
    control: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pairs, pd.DataFrame):
            raise PerturbsimError(
                "pairs must be a gene x gene DataFrame (genes as row and column labels), got "
                f"{type(self.pairs).__name__}"
            )
        if not isinstance(self.singles, pd.Series):
            raise PerturbsimError(
                f"singles must be a Series of fitness by gene, got {type(self.singles).__name__}"
            )
        for axis, labels in (("row", self.pairs.index), ("column", self.pairs.columns)):
            named = [g for g in labels if not isinstance(g, str) or not g or SEP in g]
            if named:
                raise PerturbsimError(
                    f"pairs: the {axis} label {named[0]!r} is not a gene name (genes are "
                    f"named by non-empty text without {SEP!r})"
                )
        for name, table in (("singles", self.singles), ("pairs", self.pairs)):
            dtypes = [table.dtype] if isinstance(table, pd.Series) else list(table.dtypes)
            if any(pd.api.types.is_bool_dtype(dtype) for dtype in dtypes):
                raise PerturbsimError(
                    f"{name} hold True/False values, not fitness: give each gene's (or pair's) "
                    "measured growth as a number"
                )
        genes = self.pairs.index
        _check_gene_labels(genes, self.pairs.columns, "pairs")
        pairs = _numeric(self.pairs.loc[:, list(genes)], "pairs", "NaN is a pair not measured")
        _check_symmetric(pairs, "pairs")
        twice = self.singles.index[self.singles.index.duplicated()].unique().tolist()
        if twice:
            raise PerturbsimError(f"singles name genes twice: {shown_list(twice, _NAMED)}")
        singles = pd.to_numeric(self.singles, errors="coerce").astype(np.float64)
        unmatched = [g for g in genes if g not in singles.index]
        if unmatched:
            raise PerturbsimError(
                f"{counted(len(unmatched), 'gene')} of pairs "
                f"{'has' if len(unmatched) == 1 else 'have'} no single fitness: "
                f"{shown_list(unmatched, _NAMED)}"
                f"{first_case_hint(unmatched, [str(g) for g in singles.index])}"
            )
        not_finite = ~np.isfinite(singles.to_numpy())
        if not_finite.any():
            gene = singles.index[not_finite.argmax()]
            raise PerturbsimError(
                f"singles: the fitness {shown(self.singles[gene])} of gene {gene!r} is not a "
                "finite number (every single needs one: leave out a gene not measured)"
            )
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "singles", singles)
        if self._table.empty:
            raise PerturbsimError(
                f"{self.source}: no pair measured (every value of pairs off the diagonal is NaN "
                "or empty); a fitness screen needs measured pairs to learn and score"
            )

    def __repr__(self) -> str:
        emap = "with" if self.emap is not None else "without"
        pairs = len(self.pair_table())
        return (
            f"FitnessScreen from {self.source}: {len(self.singles)} singles, {pairs} measured "
            f"pair{'s' * (pairs != 1)} of {len(self.genes)} genes, {emap} E-MAP scores"
        )

    @property
    def genes(self) -> list[str]:
        """Genes of the pair matrix, in its order."""
        return [str(g) for g in self.pairs.index]

    @cached_property
    def _table(self) -> pd.DataFrame:
        genes = self.genes
        rows, cols = np.triu_indices(len(genes), k=1)
        values = self.pairs.to_numpy(dtype=np.float64)[rows, cols]
        measured = np.isfinite(values)
        a = [genes[i] for i in rows[measured]]
        b = [genes[j] for j in cols[measured]]
        index = pd.Index([canonical_label((x, y)) for x, y in zip(a, b, strict=True)], name="pair")
        return pd.DataFrame({"gene_a": a, "gene_b": b, "fitness": values[measured]}, index=index)

    def pair_table(self) -> pd.DataFrame:
        """Measured pairs, one row each.

        Returns
        -------
        DataFrame indexed by the canonical pair label (``"A+B"``, genes sorted) with columns
        ``gene_a``, ``gene_b`` (in the matrix's gene order) and ``fitness``.
        """
        return self._table.copy()


_OTHER_SEPARATORS = ((";", "semicolons"), ("\t", "tabs"))
"""Separators a spreadsheet may write instead of commas, and their names in errors."""


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV table of strings: gene names in the first column, value names in the header.

    The header is read as a row of values, so that a gene named twice in it is caught
    rather than renamed by pandas; any problem is a one-line error. Empty columns without
    a name (a comma at the end of every line, as some spreadsheets write) are dropped.
    """
    try:
        # only an empty cell is missing: a written "NaN" or "NA" is a value, refused below
        raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise PerturbsimError(f"cannot read {path} as a CSV table: {error_reason(err)}") from None
    if raw.shape[0] < 2 or raw.shape[1] < 2:
        header = str(raw.iloc[0, 0]) if raw.size else ""
        other = next((name for sep, name in _OTHER_SEPARATORS if sep in header), None)
        hint = f" (its header is separated by {other}: write the table comma-separated)"
        raise PerturbsimError(
            f"{path} needs a header, a gene column and at least one row and column of values"
            + (hint if raw.shape[1] == 1 and other else "")
        )
    genes = raw.iloc[1:, 0].str.strip()
    if (genes.isna() | (genes == "")).any():
        line = int((genes.isna() | (genes == "")).to_numpy().argmax()) + 2
        raise PerturbsimError(f"{path}: line {line} has no gene name")
    as_numbers = pd.to_numeric(genes, errors="coerce")
    fractions = as_numbers.notna().all() and (as_numbers % 1 != 0).any()
    counting = as_numbers.tolist() == list(range(len(genes)))  # a row index written along
    if fractions or counting:
        header = raw.iat[0, 0]
        name = repr(header) if isinstance(header, str) else "unnamed"
        raise PerturbsimError(
            f"{path}: its first column ({name}) holds numbers "
            f"({', '.join(genes.iloc[:3])}, ...), not gene names: the first column names the "
            "genes"
            + (" (a row index written with the table? write it without)" if counting else "")
        )
    joined = genes[genes.str.contains(SEP, regex=False)]
    if len(joined):
        raise PerturbsimError(
            f"{path}: gene {joined.iloc[0]!r} holds {SEP!r}, which joins the genes of a pair: "
            "each row names one gene"
        )
    table = pd.DataFrame(
        raw.iloc[1:, 1:].to_numpy(),
        index=pd.Index(genes.tolist()),
        columns=pd.Index(raw.iloc[0, 1:].fillna("").str.strip().tolist()),
    )
    trailing = [i for i, name in enumerate(table.columns) if not name]
    if trailing and table.iloc[:, trailing].isna().all().all():  # a comma ending every line
        table = table.drop(columns=table.columns[trailing])
    for axis, labels in (("row", table.index), ("column", table.columns)):
        duplicated = labels[labels.duplicated()].unique().tolist()
        if duplicated:
            raise PerturbsimError(
                f"{path} names genes twice as {axis}s: {shown_list(duplicated, _NAMED)}"
            )
    return table


def _numeric(table: pd.DataFrame, where: Path | str, missing: str) -> pd.DataFrame:
    """The table as float64; an error naming the first cell that is not a finite number.

    ``where`` (a file, or the name of the table) begins the error; ``missing`` says in it
    what a missing cell means in this table.
    """
    values = table.apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & table.notna()
    bad |= np.isinf(values.fillna(0.0))
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise PerturbsimError(
            f"{where}: the value {shown(table.iat[row, col])} of row {table.index[row]!r}, "
            f"column {table.columns[col]!r} is not a finite number ({missing})"
        )
    return values.astype(np.float64)


def _singles(path: Path, control: str | None) -> tuple[pd.Series, bool]:
    """The single fitnesses, ``control``'s row left out, and whether the file had that row.

    Every other gene must have a fitness.
    """
    table = _read_csv(path)
    has_control = control is not None and control in table.index
    if has_control:
        table = table.drop(index=control)
    if SINGLE_COLUMN in table.columns:
        column = SINGLE_COLUMN
    elif table.shape[1] == 1:
        column = table.columns[0]
    else:
        raise PerturbsimError(
            f"{path} has no column {SINGLE_COLUMN!r} and several value columns "
            f"{list(table.columns)}: name the fitness column {SINGLE_COLUMN!r}"
        )
    values = _numeric(
        table[[column]], path, "every gene needs its fitness: leave out a gene not measured"
    )[column]
    missing = values.index[values.isna()].tolist()
    if missing:
        raise PerturbsimError(
            f"{counted(len(missing), 'gene has', 'genes have')} no fitness value in {path}: "
            f"{shown_list(missing, _NAMED)}"
        )
    return values.rename("fitness"), has_control


def _check_gene_labels(rows: pd.Index, cols: pd.Index, where: Path | str) -> None:
    """Refuse a gene named twice as row or column, or other genes as rows than as columns."""
    for axis, labels in (("row", rows), ("column", cols)):
        duplicated = labels[labels.duplicated()].unique().tolist()
        if duplicated:
            raise PerturbsimError(
                f"{where} names genes twice as {axis}s: {shown_list(duplicated, _NAMED)}"
            )
    if set(rows) != set(cols):
        only_rows = [g for g in rows if g not in set(cols)]
        only_cols = [g for g in cols if g not in set(rows)]
        raise PerturbsimError(
            f"{where} is not a gene x gene matrix ({len(rows)} rows, {len(cols)} columns): "
            + "; ".join(
                f"{what} {shown_list(genes, _NAMED)}"
                for what, genes in (("rows only:", only_rows), ("columns only:", only_cols))
                if genes
            )
        )


def _check_symmetric(matrix: pd.DataFrame, where: Path | str) -> None:
    """Refuse a gene x gene matrix (same genes, same order) that is not symmetric.

    The error names the first differing pair with both values, or the value and the empty
    (NaN) cell facing it.
    """
    rows, values = matrix.index, matrix.to_numpy()
    both_nan = np.isnan(values) & np.isnan(values.T)
    close = np.isclose(values, values.T, rtol=_RTOL, atol=_ATOL) | both_nan
    if close.all():
        return
    i, j = np.argwhere(~close)[0]
    if np.isnan(values[i, j]) or np.isnan(values[j, i]):
        i, j = (i, j) if np.isnan(values[j, i]) else (j, i)  # (i, j) holds the value
        raise PerturbsimError(
            f"{where} is not symmetric: row {rows[i]!r}, column {rows[j]!r} holds "
            f"{values[i, j]:.6g} but row {rows[j]!r}, column {rows[i]!r} is empty (a "
            "matrix of one triangle?): fill both halves, each pair's value in both cells"
        )
    raise PerturbsimError(
        f"{where} is not symmetric: row {rows[i]!r}, column {rows[j]!r} holds "
        f"{values[i, j]:.6g} but row {rows[j]!r}, column {rows[i]!r} holds {values[j, i]:.6g}"
    )


def _matrix(path: Path) -> pd.DataFrame:
    """A symmetric gene x gene matrix, columns in row order; errors name the offending genes."""
    table = _read_csv(path)
    _check_gene_labels(table.index, table.columns, path)
    matrix = _numeric(table.loc[:, list(table.index)], path, "leave empty a pair not measured")
    _check_symmetric(matrix, path)
    return matrix


def _emap(path: Path) -> pd.DataFrame | None:
    """The optional E-MAP matrix, or ``None`` when absent or unreadable (warned).

    No part of perturbsim reads the E-MAP scores (they are kept for the user, as
    :attr:`FitnessScreen.emap`), so a malformed file does not stop the screen being read.
    """
    if not path.is_file():
        return None
    try:
        return _matrix(path)
    except PerturbsimError as err:
        logger.warning("E-MAP scores not read, the screen read without them: %s", err)
        return None


def read_fitness(directory: str | Path, *, control: str | None = DEFAULT_CONTROL) -> FitnessScreen:
    """Read a growth screen from a folder of CSV tables (layout of Norman et al. 2019).

    The folder holds ``single_fitnesses.csv``, ``processed_fitnesses.csv`` and, optionally,
    ``processed_emap.csv``; their layout is described in ``docs/fitness.md`` and in this
    module's docstring. Gene names are used as written: the GO graph of
    :class:`~perturbsim.models.FitnessModel` matches aliases to official symbols (Norman's
    ``ELMSAN1`` takes the GO terms of ``MIDEAS``). The old symbols C3orf72 and C19orf26 of
    Norman's per-pair fits do not occur in these three tables, which already use FOXL2NB
    and CBARP.

    Parameters
    ----------
    directory
        The folder, e.g. ``../shared/data/norman2019/gi``.
    control
        Row and column label of the non-targeting control, dropped from the singles and the
        matrices (``None``: none). Norman's ``"negative"``, the default, may be absent
        (:attr:`FitnessScreen.control` says whether it was found); another label must be
        a row of one of the tables.

    Returns
    -------
    :class:`FitnessScreen` over the genes of the pair matrix.

    Raises
    ------
    PerturbsimError
        One line naming the problem: the folder or a required file is missing; a table
        cannot be read as CSV, has no rows, names a gene twice or holds a value that is not
        a finite number; ``single_fitnesses.csv`` has no single value column or genes with
        no fitness value; the pair matrix has different genes as rows and columns or is not
        symmetric (the first differing pair is named with both
        values); genes of the pair matrix have no single fitness; fewer than two genes or no
        pair is measured. A malformed ``processed_emap.csv`` is warned of and left out
        (no part of perturbsim reads it).

    Examples
    --------
    >>> import perturbsim as ps
    >>> screen = ps.ds.read_fitness("../shared/data/norman2019/gi")  # doctest: +SKIP
    >>> len(screen.genes), len(screen.pair_table())  # doctest: +SKIP
    (112, 6216)
    """
    folder = as_path("directory", directory)
    if control is not None and (not isinstance(control, str) or not control):
        raise PerturbsimError(
            f"control must be the control's row label (text) or None, got {control!r}"
        )
    if folder.exists() and not folder.is_dir():
        raise PerturbsimError(
            f"{str(folder)!r} is a file, not a fitness folder (one holding {SINGLES_FILE} and "
            f"{PAIRS_FILE})"
        )
    if not folder.is_dir():
        raise PerturbsimError(f"no such folder: {str(folder)!r}")
    for name in (SINGLES_FILE, PAIRS_FILE):
        if not (folder / name).is_file():
            raise PerturbsimError(
                f"{str(folder)!r} has no {name}: a fitness folder holds {SINGLES_FILE}, "
                f"{PAIRS_FILE} and optionally {EMAP_FILE} (see docs/fitness.md)"
            )
    singles, control_single = _singles(folder / SINGLES_FILE, control)
    pairs = _matrix(folder / PAIRS_FILE)
    found = control_single or control in pairs.index
    if control not in (None, DEFAULT_CONTROL) and not found:  # a typo: its row read as a gene
        raise PerturbsimError(
            f"control={control!r} is neither a row of {SINGLES_FILE} nor of {PAIRS_FILE} in "
            f"{str(folder)!r}{first_case_hint([control], [*pairs.index, *singles.index])}; "
            "control=None reads a screen without one"
        )
    if control != DEFAULT_CONTROL and DEFAULT_CONTROL in pairs.index:
        logger.warning(
            "%s has a row and column %r, Norman's control, read as a gene (%s): its "
            "'pairs' are singles; pass control=%r to drop it",
            PAIRS_FILE,
            DEFAULT_CONTROL,
            "no control given" if control is None else f"control={control!r}",
            DEFAULT_CONTROL,
        )
    if not found:
        control = None
    if control is not None:
        pairs = pairs.drop(index=control, columns=control, errors="ignore")
    unmatched = [g for g in pairs.index if g not in singles.index]
    if unmatched:
        raise PerturbsimError(
            f"{counted(len(unmatched), 'gene')} of {PAIRS_FILE} "
            f"{'has' if len(unmatched) == 1 else 'have'} no fitness value in "
            f"{SINGLES_FILE}: {shown_list(unmatched, _NAMED)}"
            f"{first_case_hint(unmatched, list(singles.index))}"
        )
    if len(pairs) < 2:
        raise PerturbsimError(f"{folder / PAIRS_FILE} needs at least two genes, got {len(pairs)}")
    emap = _emap(folder / EMAP_FILE)
    if emap is not None:
        if control is not None:
            emap = emap.drop(index=control, columns=control, errors="ignore")
        extra = [g for g in emap.index if g not in set(pairs.index)]
        if extra:
            logger.warning(
                "%s: genes not in %s ignored: %s", EMAP_FILE, PAIRS_FILE, shown_list(extra, _NAMED)
            )
        emap = emap.reindex(index=pairs.index, columns=pairs.index)
    screen = FitnessScreen(
        singles=singles, pairs=pairs, emap=emap, source=str(folder), control=control
    )
    logger.info(
        "read %d genes and %d measured pairs from %s", len(pairs), len(screen.pair_table()), folder
    )
    return screen
