"""Readers for gene -> GO term annotation files (GAF 2.x, NCBI gene2go, two-column TSV)."""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterator, Mapping
from os import PathLike
from pathlib import Path

import pandas as pd

from .._checks import as_path
from .._errors import PerturbsimError, counted, error_reason

logger = logging.getLogger(__name__)

FORMATS = ("auto", "gaf", "gene2go", "tsv")
GENE2GO_COLUMNS = ("#tax_id", "GeneID", "GO_ID", "Qualifier")
_GENE_HEADERS = ("gene", "symbol", "gene_symbol", "gene_name", "db_object_symbol")
_TERM_HEADERS = ("term", "go_id", "go", "go_term", "term_id", "go id")
_READ_ERRORS = (
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
    UnicodeDecodeError,
    OSError,  # gzip.BadGzipFile among them
    EOFError,  # a truncated gzip stream
)
"""What reading a file that is not UTF-8, tab-separated, gzipped whole text raises."""


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _first_line(path: Path) -> str:
    with _open_text(path) as handle:
        for line in handle:
            if line.strip():
                return line
    raise PerturbsimError(f"annotation file {str(path)!r} is empty")


def _detect_format(path: Path) -> str:
    first = _first_line(path)
    if first.startswith("!"):
        return "gaf"
    if first.startswith("#") and "GeneID" in first and "GO_ID" in first:
        return "gene2go"
    return "tsv"


def _is_not(qualifier: str) -> bool:
    return "NOT" in qualifier.replace("|", " ").split()


def _gaf_rows(path: Path, taxon: int | None) -> Iterator[tuple[str, str]]:
    wanted = None if taxon is None else f"taxon:{taxon}"
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("!") or not line.strip():
                continue
            fields = line.rstrip("\n\r").split("\t")
            if len(fields) < 5 or (wanted is not None and len(fields) < 13):
                raise PerturbsimError(
                    f"line {number} of {str(path)!r} has {len(fields)} tab-separated columns, "
                    "a GAF line needs 15-17"
                )
            if _is_not(fields[3]):
                continue
            if wanted is not None and fields[12].split("|")[0] != wanted:
                continue
            yield fields[2], fields[4]


def _read_gaf(path: Path, taxon: int | None) -> pd.DataFrame:
    return pd.DataFrame(list(_gaf_rows(path, taxon)), columns=["gene", "term"], dtype=str)


def _read_gene2go(
    path: Path, taxon: int | None, gene_ids: Mapping[str, str] | pd.Series | None
) -> pd.DataFrame:
    with _open_text(path) as handle:
        table = pd.read_csv(handle, sep="\t", dtype=str, usecols=lambda c: c in GENE2GO_COLUMNS)
    missing = [c for c in GENE2GO_COLUMNS if c not in table.columns]
    if missing:
        raise PerturbsimError(f"gene2go file {str(path)!r} lacks columns {missing}")
    if taxon is not None:
        table = table[table["#tax_id"] == str(taxon)]
    table = table[~table["Qualifier"].fillna("").map(_is_not)]
    if gene_ids is None:
        logger.warning(
            "gene2go has no gene symbols: genes are NCBI GeneIDs; pass gene_ids= to map them"
        )
        genes = table["GeneID"]
    else:
        mapping = {str(k): str(v) for k, v in dict(gene_ids).items()}
        genes = table["GeneID"].map(mapping)
        n_unmapped = int(genes.isna().sum())
        if n_unmapped:
            logger.info("%d gene2go rows with a GeneID not in gene_ids were dropped", n_unmapped)
    return pd.DataFrame({"gene": genes.to_numpy(), "term": table["GO_ID"].to_numpy()})


def _read_tsv(path: Path) -> pd.DataFrame:
    with _open_text(path) as handle:
        table = pd.read_csv(handle, sep="\t", header=None, dtype=str)
    first = [str(v).strip().lower() for v in table.iloc[0]] if len(table) else []
    gene_col = next((first.index(h) for h in _GENE_HEADERS if h in first), None)
    term_col = next((first.index(h) for h in _TERM_HEADERS if h in first), None)
    if gene_col is not None and term_col is not None:
        table = table.iloc[1:, [gene_col, term_col]]
    elif table.shape[1] == 2:
        if first and (first[0] in _GENE_HEADERS or first[1] in _TERM_HEADERS):
            table = table.iloc[1:]
    else:
        raise PerturbsimError(
            f"{str(path)!r} has {counted(table.shape[1], 'column')}: a TSV of annotations "
            "needs two "
            "(gene, term) or a header naming a gene and a term column"
        )
    table.columns = ["gene", "term"]
    return table


def _read(
    path: Path, format: str, taxon: int | None, gene_ids: Mapping[str, str] | pd.Series | None
) -> tuple[str, pd.DataFrame]:
    """The file's format (``format``, or detected for ``"auto"``) and its annotations."""
    kind = _detect_format(path) if format == "auto" else format
    if kind == "gene2go":
        return kind, _read_gene2go(path, taxon, gene_ids)
    if gene_ids is not None:  # detected as another format: the mapping would do nothing
        raise PerturbsimError(f"gene_ids is for gene2go files; {str(path)!r} reads as {kind}")
    if kind == "gaf":
        return kind, _read_gaf(path, taxon)
    if taxon is not None:
        raise PerturbsimError(
            f"taxon={taxon} needs a GAF or gene2go file; {str(path)!r} reads as a TSV"
        )
    return kind, _read_tsv(path)


def read_annotations(
    path: str | PathLike[str],
    *,
    format: str = "auto",
    taxon: int | None = None,
    gene_ids: Mapping[str, str] | pd.Series | None = None,
) -> pd.DataFrame:
    r"""Read gene -> GO term annotations for :func:`go_graph` (any organism).

    Files may be gzip-compressed (recognised by their first bytes, whatever their name);
    a file that cannot be read as UTF-8 tab-separated text is a one-line error.

    Parameters
    ----------
    path
        Annotation file.
    format
        ``"gaf"``: GO Annotation File 2.x (tab-separated, ``!`` comment lines; gene =
        column 3 ``DB_Object_Symbol``, term = column 5 ``GO ID``; rows whose column-4
        qualifier contains ``NOT`` are dropped). ``"gene2go"``: NCBI ``gene2go`` (columns
        ``#tax_id GeneID GO_ID Evidence Qualifier GO_term PubMed Category``; ``NOT``
        qualifiers dropped). ``"tsv"``: two tab-separated columns gene, term, with or
        without a header; a header naming a gene column (``gene``/``symbol``) and a term
        column (``term``/``go_id``) also selects those two out of more columns.
        ``"auto"``: GAF when the first line starts with ``!``, gene2go when it is the
        gene2go header, TSV otherwise.
    taxon
        Keep only this NCBI taxon id (GAF column 13, gene2go ``#tax_id``), e.g. ``9606``.
        Not available for TSV files.
    gene_ids
        gene2go only: NCBI GeneID -> gene symbol mapping (dict or Series). gene2go files carry
        no symbols, so without it the ``gene`` column holds GeneIDs (as strings), which only
        match datasets whose genes are named by GeneID; rows with GeneIDs absent from the
        mapping are dropped. NCBI's ``gene_info`` file gives the mapping.

    Returns
    -------
    DataFrame with str columns ``gene`` and ``term``, one row per distinct annotation.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from perturbsim.graphs import read_annotations
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "go.tsv"
    >>> _ = path.write_text("gene\tterm\nKLF1\tGO:0003700\nKLF1\tGO:0005634\n")
    >>> read_annotations(path).shape
    (2, 2)
    """
    path = as_path("path", path)
    if format not in FORMATS:
        raise PerturbsimError(f"format must be one of {list(FORMATS)}, got {format!r}")
    if not path.is_file():
        raise PerturbsimError(f"annotation file {str(path)!r} not found")
    if gene_ids is not None and format not in ("auto", "gene2go"):
        raise PerturbsimError(f"gene_ids is for gene2go files, got format={format!r}")
    try:
        kind, table = _read(path, format, taxon, gene_ids)
    except _READ_ERRORS as err:
        raise PerturbsimError(
            f"cannot read {str(path)!r} as annotations (UTF-8 text, gzipped or not, "
            f"tab-separated): {error_reason(err)}"
        ) from None
    table = table.dropna().astype(str).drop_duplicates().reset_index(drop=True)
    if table.empty:
        where = "" if taxon is None else f" for taxon {taxon}"
        raise PerturbsimError(f"no annotations read from {str(path)!r}{where}")
    as_terms = table["gene"].str.startswith("GO:")
    if as_terms.mean() > 0.5:
        advice = (
            "not a GAF file? read it with format='auto'"
            if kind == "gaf"
            else "columns swapped? a TSV holds the gene, then the term"
        )
        raise PerturbsimError(
            f"the genes read from {str(path)!r} ({kind}) are GO term IDs, e.g. "
            f"{table['gene'][as_terms].iloc[0]!r}: {advice}"
        )
    logger.info(
        "read %d annotations of %d genes (%s) from %s",
        len(table),
        table["gene"].nunique(),
        kind,
        path,
    )
    return table
