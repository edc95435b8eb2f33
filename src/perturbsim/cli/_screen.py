"""Reading a screen on the command line: its options and errors in CLI words."""

from __future__ import annotations

import argparse
import ast
import logging
import re
import shlex
from pathlib import Path

import pandas as pd
from anndata import AnnData

from .._errors import PerturbsimError, counted
from .._keys import CONTROL, SEP
from ..pp import parse_perturbations
from ..pp._labels import CONTROL_CANDIDATES, label_sep
from ._parser import holds_saved_model, path_argument

logger = logging.getLogger(__name__)

_CLI_WORDS = (
    (
        re.compile(
            r"load it into memory \(adata\.to_memory\(\), or perturbsim\.ds\.read without "
            r"backed=True\) and normalise it there \(normalize=True\)"
        ),
        "leave out --backed to normalise it in memory (--normalize)",
    ),
    (
        re.compile(
            r"or run scanpy\.pp\.log1p first if they are normalised but not log-transformed"
        ),
        "or log-transform X in the file first if they are normalised but not log-transformed",
    ),
    (re.compile(r"\bwithout strict=True\b"), "without --strict"),
    (re.compile(r"\bnormalize=True\b"), "--normalize"),
    (re.compile(r"\boverwrite=True\b"), "--overwrite"),
    (re.compile(r"\bpass sep='([^']*)'"), lambda m: f"pass --sep {shlex.quote(m[1])}"),
    (re.compile(r"\bcheck sep\b"), "check --sep"),
    (re.compile(r"\bdrop sep='([^']*)'"), lambda m: f"drop --sep {shlex.quote(m[1])}"),
    (re.compile(r"\bor sep='([^']*)'"), lambda m: f"or --sep {shlex.quote(m[1])}"),
    (
        re.compile(
            r"joined by '([^']+)': write '[^']*', a list of genes or (?:sep='[^']*'|--sep [^\s)]+)"
        ),
        lambda m: f"joined by '{m[1]}': pass --sep {shlex.quote(m[1])}",
    ),
    (re.compile(r"\bgene_symbols and the GO annotations\b"), "--gene-key and --go"),
    (re.compile(r"^the genes of adata \("), "the genes of the file ("),
    (
        re.compile(r"\bpass gene_symbols='([^']*)'"),
        lambda m: f"pass --gene-key {shlex.quote(m[1])}",
    ),
    (re.compile(r"\bgene_symbols=False\b"), "--gene-key none"),
    (re.compile(r"\bgene_symbols="), "--gene-key "),
    (
        re.compile(r"\bcontrol=None reads a screen without one\b"),
        "--control '' reads a screen without one",
    ),
    (re.compile(r"\bcontrol="), "--control "),
    (re.compile(r"\bbacked=True with where\b"), "--backed with --where"),
    (re.compile(r"\bbacked=True\b|\bbacked=(?=,)"), "--backed"),
    (re.compile(r"^(sep|control) must be a non-empty string"), r"--\1 must be a non-empty string"),
    (re.compile(r"\bkind='([a-z]+)'"), lambda m: f"--split {m[1]}"),
    (re.compile(r"\(evaluate's gi_k sets k\)"), "(perturbsim evaluate's --gi-k sets k)"),
    (
        re.compile(r"^seed=(\S+) is not used: only strategy='random' draws at random; '(\w+)'"),
        r"--seed \1 is not used: only --strategy random draws at random; --strategy \2",
    ),
    (re.compile(r"\(its kind and seed as for training;"), "(--split and --seed as for training;"),
    (
        re.compile(
            r", or pass conditions=model\.held_out_conditions \(the (.+?) its fit held out\)"
        ),
        lambda m: f", or leave out --split to export the {m[1]} its fit held out",
    ),
    (re.compile(r"\bunseen_fraction\b"), "--unseen-fraction"),
    (re.compile(r"^annotation file "), "--go: annotation file "),
    (re.compile(r"^device (must be\b|(?='))"), r"--device \1"),
    (re.compile(r"\bmin_cells\b"), "--min-cells"),
    (re.compile(r"\bmin_de\b"), "--min-de"),
    (re.compile(r"\bperturbation_key\b"), "--perturbation-key"),
    (re.compile(r"\bpass go_annotations\b"), "pass --go annotations"),
    (re.compile(r"\bpass skip_unknown=True\b"), "pass --skip-unknown"),
    (re.compile(r"\bstrict=True\b"), "--strict"),
    (re.compile(r"\babundance=(?=\d)"), "--abundance "),
    (re.compile(r"\bpass a lower abundance\b"), "pass a lower --abundance"),
    (re.compile(r" \(covers\(\) tells what it can predict\)"), ""),
    (
        re.compile(r"write them as text first \((adata\.obs\[.+\.astype\(str\))\)"),
        lambda m: f"write them as text in the file first (in Python: {m[1]}, then write_h5ad)",
    ),
    (re.compile(r"\bleft out of measured=, which"), "left out of --measured FILE, which"),
    (
        re.compile(r"\bpass them with tl\.measured_conditions\(model\)"),
        "list the model's conditions in the file too",
    ),
    (
        re.compile(r"\(ps\.ds\.read\(\.\.\., where=\{(.+?): VALUE\}\)\)"),
        lambda m: _pooling_hint(m[1]),
    ),
    (re.compile(r"\bpool_datasets=True\b"), "--pool-datasets"),
    (
        re.compile(r"several values\? give them as a list: where=(\{.*\})$"),
        lambda m: _list_hint(m[1]),
    ),
    (re.compile(r"^where: "), "--where: "),
    (re.compile(r"\((where kept \d+ of \d+ cells)\)"), r"(--\1)"),
)
"""Keyword arguments as errors name them -> CLI options (:func:`perturbsim.ds.read`'s, the
models' GO annotations, ``predict_pairs``'s ``skip_unknown``, ``predict``'s ``strict``): every
error the CLI prints goes through :func:`cli_wording`, as do the warnings logged while a
command runs."""


def add_screen_options(
    parser: argparse.ArgumentParser, *, loads_model: bool = False, streams: bool = False
) -> None:
    """Add the screen file and the options of :func:`perturbsim.ds.read` to ``parser``.

    For a command that builds models, also ``--go``; for one that loads a model
    (``loads_model``), whose GO graph was saved with it, none, and ``--control``, ``--sep``,
    ``--where`` and ``--normalize`` default to what the model was trained on. For a command
    that reads the cells only in streaming passes (``streams``), also ``--backed``.
    """
    as_trained = "the model's training screen's, else " if loads_model else ""
    parser.add_argument(
        "data",
        type=path_argument,
        help="screen as an .h5ad file or a .zarr store (cells x genes, log-normalised or "
        "raw counts)",
    )
    parser.add_argument(
        "--perturbation-key",
        default=None,
        metavar="KEY",
        help=f"obs column of perturbation labels (default: {as_trained}condition)",
    )
    parser.add_argument(
        "--control",
        default=None,
        metavar="LABEL",
        help=f"label of control cells (default: {as_trained}detect "
        f"{', '.join(CONTROL_CANDIDATES)}, in any case)",
    )
    parser.add_argument(
        "--sep",
        default=None,
        help=f"separator of the genes of a combination in the labels (default: {as_trained}"
        f"{SEP}; e.g. _ for KLF1_MAP2K6)",
    )
    parser.add_argument(
        "--gene-key",
        default=None,
        metavar="COLUMN",
        help=f"var column of gene symbols to use as gene names (default: {as_trained}"
        "var_names, or var['gene_name'] when present, unless var_names name more perturbed "
        "genes; 'none': var_names)",
    )
    parser.add_argument(
        "--normalize",
        action="store_true",
        help="X holds raw counts: normalise them (normalize_total + log1p) first"
        + (
            " (also without it when the model's training screen was read so)" if loads_model else ""
        ),
    )
    parser.add_argument(
        "--where",
        action="append",
        default=None,
        metavar="COLUMN=VALUE",
        type=_where_item,
        help="keep only the cells whose obs COLUMN holds VALUE (case-sensitive); repeat it for "
        "more columns (all must match) or more values of one column (any may match), e.g. "
        "--where dataset=norman19"
        + (
            " (default: the cells the model was trained on; --where none: every cell)"
            if loads_model
            else ""
        ),
    )
    parser.add_argument(
        "--pool-datasets",
        action="store_true",
        help="pool the cells of a file whose obs['dataset'] names several screens "
        "(refused without it: pick one with --where dataset=NAME)"
        + (
            " (also without it when the model's training screen was read so)" if loads_model else ""
        ),
    )
    if streams:
        parser.add_argument(
            "--backed",
            action="store_true",
            help="leave X on disk, for a screen larger than memory: an .h5ad file's is read "
            "block by block (its layers are read into memory), a .zarr store's X and layers "
            "with dask",
        )
    if not loads_model:
        add_go_option(
            parser,
            "for the check of the perturbed genes' names and for the models with a GO graph; "
            "default: a simulated screen's own table, else the bundled human annotations",
        )


def add_go_option(parser: argparse.ArgumentParser, use: str) -> None:
    """Add ``--go GO_FILE``, a file of GO annotations; ``use`` says what for and the default."""
    parser.add_argument(
        "--go",
        type=path_argument,
        default=None,
        metavar="GO_FILE",
        help=f"gene -> GO term file (GAF, gene2go or two-column TSV) {use}",
    )


def _pooling_hint(column: str) -> str:
    """``(--where COLUMN=VALUE)`` for the Python hint's quoted ``column``."""
    return f"({where_text([(ast.literal_eval(column), 'VALUE')])})"


def _list_hint(where: str) -> str:
    """The CLI form of the Python hint's ``where`` (a dict of one column and its values)."""
    ((column, values),) = ast.literal_eval(where).items()
    return f"several values? repeat it: {where_text([(column, v) for v in values])}"


EVERY_CELL = ("", "")
"""``--where none``: every cell of the file, whatever filter a model was trained with."""


def _where_item(text: str) -> tuple[str, str]:
    """One ``--where`` argument, ``COLUMN=VALUE``, as ``(column, value)``; ``none``: all."""
    if text.strip().lower() == "none":
        return EVERY_CELL
    column, equals, value = (part.strip() for part in text.partition("="))
    if not equals or not column or not value:
        raise argparse.ArgumentTypeError(f"expected COLUMN=VALUE, got {text!r}")
    return column, value


def every_cell_read(items: list[tuple[str, str]] | None) -> list[tuple[str, str]] | None:
    """``--where`` arguments with ``--where none`` read as no filter (``[]``), given alone."""
    if not items or EVERY_CELL not in items:
        return items
    if len(items) > 1:
        raise PerturbsimError("--where none keeps every cell: give it alone")
    return []


def where_of(items: list[tuple[str, str]] | None) -> dict[str, list[str]] | None:
    """The ``--where`` arguments as :func:`perturbsim.ds.read`'s ``where``.

    Examples
    --------
    >>> where_of([("dataset", "norman19"), ("cell_type", "K562"), ("cell_type", "A549")])
    {'dataset': ['norman19'], 'cell_type': ['K562', 'A549']}
    """
    items = every_cell_read(items)
    if not items:
        return None
    where: dict[str, list[str]] = {}
    for column, value in items:
        where.setdefault(column, []).append(value)
    return where


def where_text(items: list[tuple[str, str]]) -> str:
    """``--where`` arguments as they would be typed.

    Examples
    --------
    >>> where_text([("dataset", "norman19"), ("cell_type", "k562")])
    '--where dataset=norman19 --where cell_type=k562'
    """
    return " ".join(f"--where {shlex.quote(f'{column}={value}')}" for column, value in items)


def cli_wording(message: str) -> str:
    """Name the CLI options where an error names a Python argument (:data:`_CLI_WORDS`).

    Examples
    --------
    >>> cli_wording("adata.X holds raw integer counts; pass normalize=True")
    'adata.X holds raw integer counts; pass --normalize'
    >>> cli_wording("leave them out (covers() tells what it can predict)")
    'leave them out'
    >>> cli_wording("('A_B' looks like genes joined by '_': write 'A+B' or a list of genes)")
    "('A_B' looks like genes joined by '_': write 'A+B' or a list of genes)"
    >>> cli_wording("('A_B' looks like genes joined by '_': write 'A+B', a list of genes or "
    ...             "sep='_')")
    "('A_B' looks like genes joined by '_': pass --sep _)"
    >>> cli_wording("subset to one first (ps.ds.read(..., where={'cell type': VALUE}))")
    "subset to one first (--where 'cell type=VALUE')"
    >>> cli_wording("where: no cell has obs['c'] 'A 1,B'; several values? give them as a list: "
    ...             "where={'c': ['A 1', 'B']}")
    "--where: no cell has obs['c'] 'A 1,B'; several values? repeat it: --where 'c=A 1' --where c=B"
    >>> text = "write them as text first (adata.obs['c'] = adata.obs['c'].astype(str))"
    >>> first, python = cli_wording(text).split(" (in Python: ")
    >>> first
    'write them as text in the file first'
    >>> python
    "adata.obs['c'] = adata.obs['c'].astype(str), then write_h5ad)"
    >>> cli_wording("saying nothing of the ranking (evaluate's gi_k sets k)")
    "saying nothing of the ranking (perturbsim evaluate's --gi-k sets k)"
    >>> cli_wording("backed=True with where: the 5 kept cells are read into memory")
    '--backed with --where: the 5 kept cells are read into memory'
    >>> cli_wording("counts: load it into memory (adata.to_memory(), or perturbsim.ds.read "
    ...             "without backed=True) and normalise it there (normalize=True)")
    'counts: leave out --backed to normalise it in memory (--normalize)'
    >>> cli_wording("read the store without backed=, or write it by row (.tocsr()) first")
    'read the store without --backed, or write it by row (.tocsr()) first'
    >>> cli_wording("no control cells (where kept 7 of 12 cells)")
    'no control cells (--where kept 7 of 12 cells)'
    >>> cli_wording("no cells of 'A' (where kept 7 of 12 cells); is it the file trained on?")
    "no cells of 'A' (--where kept 7 of 12 cells); is it the file trained on?"
    """
    for pattern, option in _CLI_WORDS:
        message = pattern.sub(option, message)
    return message


def read_screen(
    args: argparse.Namespace, annotations: pd.DataFrame | None = None, *, why: str = ""
) -> AnnData:
    """Read and set up the screen given by :func:`add_screen_options`'s arguments.

    ``annotations`` (those of ``--go``) are the genes its label check knows besides the
    measured ones (default: the screen's own or the bundled human GO). With ``--where``, how
    many cells were kept is printed, with ``why`` they were when given.

    Returns
    -------
    The set-up screen: in memory, or with ``--backed`` its ``X`` left on disk.

    Raises
    ------
    PerturbsimError
        The error of :func:`perturbsim.ds.read` (the CLI words it with its options:
        :func:`cli_wording`), among them a screen whose ``obs['dataset']`` names several
        screens, unless ``--pool-datasets`` is given.
    """
    from ..ds import read

    if holds_saved_model(Path(args.data)):
        raise PerturbsimError(
            f"{str(args.data)!r} is a saved model's folder, not a screen: give the screen's "
            ".h5ad file or .zarr store here"
        )
    args.where = every_cell_read(args.where)
    adata = read(
        args.data,
        perturbation_key=args.perturbation_key or "condition",
        control=args.control,
        sep=args.sep,
        gene_symbols=False if args.gene_key == "none" else args.gene_key,
        normalize=args.normalize,
        go_annotations=annotations,
        where=where_of(args.where),
        pool_datasets=args.pool_datasets,  # else refused, before any other warning
        backed=getattr(args, "backed", False),
    )
    if args.where:
        kept = counted(adata.n_obs, "cell")
        print(f"read the {kept} kept by {where_text(args.where)}{why and f' ({why})'}")
    return adata


def go_annotations(args: argparse.Namespace) -> pd.DataFrame | None:
    """The GO annotations of ``--go`` (columns ``gene``, ``term``), or ``None``.

    ``None`` leaves the models their default: a simulated screen's own GO-like table, else
    the bundled human GO.
    """
    from ..graphs import read_annotations

    go = getattr(args, "go", None)  # commands that load a model have no --go
    return read_annotations(go) if go is not None else None


def add_query_control(parser: argparse.ArgumentParser) -> None:
    """``--control LABEL``: another label meaning no perturbation in the labels queried."""
    parser.add_argument(
        "--control",
        metavar="LABEL",
        help="another label meaning no perturbation (default: the training screen's control "
        f"label; always, in any case: {', '.join(CONTROL_CANDIDATES)}, but CTRL spelt so, a gene)",
    )


def screen_queries(
    texts: list[str], screen_labels: dict[str, str], *, sep: str | None, control: str | None
) -> list[tuple[str, ...]]:
    """Labels given on the command line as gene sets, read in the screen's own label forms.

    ``sep`` and ``control`` default to those the model recorded of its screen
    (``screen_labels``); without ``sep``, a label joined by ``+`` (as predictions are
    named) reads as such.
    An empty ``sep`` (``--sep ""``) is an error.
    """
    if sep == "":
        raise PerturbsimError("--sep must be a non-empty string")
    control = control or screen_labels.get("control", CONTROL)
    screen_sep = screen_labels.get("sep", SEP)
    return [
        query
        for text in texts
        for query in parse_perturbations(
            [text], control=control, sep=sep or label_sep(text, screen_sep)
        )
    ]
