"""``perturbsim fitness``: predict the growth of held-out gene pairs and score it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._atomic import RESULTS_MARKER, atomic_write, check_results_dir, write_results_dir
from .._errors import PerturbsimError
from ._parser import FIGURE_DPI, add_command, add_overwrite, path_argument, refuse_outputs
from ._screen import add_go_option, go_annotations

if TYPE_CHECKING:
    from ..tl import FitnessResult

TABLES = ("scores.csv", "summary.csv", "predictions.csv", "r2.csv")
"""The tables written to ``--out``, besides a plot per method and ``settings.json``."""
NO_GO = "no_go"
"""The ablation printed beside the model: the same network without the GO graph, each gene
only its learned embedding. What the GO graph adds is the difference; on Norman et al.'s
screen nothing (``benchmarks/RESULTS.md``, "Cell fitness")."""


def _check_options(args: argparse.Namespace) -> None:
    model = args.expression_model
    if model is not None and not model.is_dir():
        what = "is a file, not a model folder" if model.exists() else "no such model folder"
        raise PerturbsimError(f"--expression-model {str(model)!r}: {what}")


def _plotted(result: FitnessResult) -> list[str]:
    """The methods drawn as a scatter plot: all but ``mean`` (one constant for every pair)."""
    from ..tl._fitness import MEAN

    return [method for method in result.methods if method != MEAN]


FEW_PAIRS = 10
"""Below this many test pairs per split, a subgroup's printed R² is said to mean little."""


def _few_pairs_note(tables: pd.DataFrame) -> str:
    """A note naming the printed subgroups scored on fewer than :data:`FEW_PAIRS` pairs."""
    few = tables[tables["pairs_per_seed"] < FEW_PAIRS]
    if few.empty:
        return ""
    named = "; ".join(
        f"{row.subgroup} ({row.scope}): {row.pairs_per_seed}" for row in few.itertuples()
    )
    return (
        f"\nnote: R² over fewer than {FEW_PAIRS} test pairs a split says little (test pairs "
        f"per split: {named})"
    )


def _r2_table(result: FitnessResult) -> pd.DataFrame:
    """The R² tables printed, one per scope, as one table with the ``scope`` first."""
    tables = []
    for scope in result.scopes:
        table = result.table("r2", scope=scope).reset_index()
        table.insert(0, "scope", scope)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _write(
    folder: Path, result: FitnessResult, r2: pd.DataFrame, settings: dict[str, Any]
) -> dict[str, Path]:
    """Write the tables, a scatter plot per :func:`_plotted` method and the settings.

    ``r2`` is :func:`_r2_table` of ``result``, built once for the file and the printed note.
    """
    from ..pl import fitness_scatter

    contents = (result.scores, result.summary(), result.predictions, r2)
    tables = dict(zip(TABLES, contents, strict=True))
    written = {
        name: atomic_write(folder / name, lambda path, t=table: t.to_csv(path, index=False))
        for name, table in tables.items()
    }
    for method in _plotted(result):
        figure = fitness_scatter(result, method=method).figure
        written[f"{method}.png"] = atomic_write(
            folder / f"{method}.png",
            lambda path, f=figure: f.savefig(path, format="png", dpi=FIGURE_DPI),
        )
    text = json.dumps(settings, indent=2, default=str) + "\n"
    written[RESULTS_MARKER] = atomic_write(
        folder / RESULTS_MARKER, lambda path: path.write_text(text, encoding="utf-8")
    )
    return written


def _seeds_text(seeds: list[int]) -> str:
    """How the printed R² are taken over the split ``seeds`` (``1 .. N``), with what interval."""
    if len(seeds) == 1:
        return f"split seed {seeds[0]} (one seed: no interval)"
    return (
        f"mean over split seeds {seeds[0]}-{seeds[-1]} [95% t-interval over seeds, cut at 1, "
        "the largest R² can be]"
    )


def _run_fitness(args: argparse.Namespace) -> None:
    from ..ds import read_fitness
    from ..ds._fitness import DEFAULT_CONTROL, PAIRS_FILE, SINGLES_FILE
    from ..models import PerturbationModel
    from ..tl import fitness_evaluate
    from ..tl._fitness import ADDITIVE, ALL, COVERED, EXPRESSION, MODEL

    _check_options(args)
    inputs = [p for p in (args.directory, args.expression_model, args.go) if p is not None]
    methods = [MODEL, NO_GO, ADDITIVE] + ([EXPRESSION] if args.expression_model is not None else [])
    names = [*TABLES, *(f"{method}.png" for method in methods), RESULTS_MARKER]
    refuse_outputs(args.out, names, args.overwrite, inputs=inputs)  # before any work
    check_results_dir(args.out, overwrite=args.overwrite, keep=inputs)
    screen = read_fitness(
        args.directory, control=DEFAULT_CONTROL if args.control is None else args.control or None
    )
    if args.control and screen.control is None:
        raise PerturbsimError(
            f"--control {args.control!r} is neither a row of {SINGLES_FILE} nor of {PAIRS_FILE} "
            "('' for none)"
        )
    expression = None
    if args.expression_model is not None:
        expression = PerturbationModel.load(args.expression_model)
    result = fitness_evaluate(
        screen,
        seeds=args.seeds,
        models={MODEL: {}, NO_GO: {"go": False}},
        unseen_fraction=args.unseen_fraction,
        hide_unseen_singles=args.hide_unseen_singles,
        fit_options=None if args.epochs is None else {"max_epochs": args.epochs},
        go_annotations=go_annotations(args),
        expression_model=expression,
    )
    settings = {
        **result.settings,
        "directory": str(args.directory),
        "control": screen.control,
        "go": None if args.go is None else str(args.go),
        "expression_model_dir": None if expression is None else str(args.expression_model),
    }
    r2 = _r2_table(result)
    written = write_results_dir(
        args.out, lambda folder: _write(folder, result, r2, settings), overwrite=args.overwrite
    )
    singles = (
        "predicted: from GO by fitness_model, as the known singles' mean by no_go and additive"
        if args.hide_unseen_singles
        else "measured"
    )
    print(
        f"R² of the fitness of held-out pairs ({len(screen.genes)} genes, "
        f"{len(screen.pair_table())} pairs; unseen genes' singles {singles}), "
        f"{_seeds_text(result.settings['seeds'])}:"
    )
    print(result.table("r2", scope=ALL).to_string())
    if COVERED in result.scopes:
        print(
            "\nR² on the test pairs the expression model covers (second route: expression_ridge):"
        )
        print(result.table("r2", scope=COVERED).to_string())
    elif expression is not None:
        print(f"\nthe expression model covers no test pair: {EXPRESSION} is not scored")
    print(
        f"\npairs_per_seed: the subgroup's test pairs in one split (mean over seeds); {NO_GO}: "
        f"{MODEL} without the GO graph (where it scores as well, the gain over additive comes "
        "from the singles, not from GO); mean: the mean fitness of the training and "
        "validation pairs, one value for every pair (no plot)"
    )
    note = _few_pairs_note(r2)
    if note:
        print(note)
    print(f"\nwrote {', '.join(written)} to {args.out} (r2.csv: every table above)")


def register_fitness(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim fitness``."""
    parser = add_command(
        commands,
        "fitness",
        help="predict the growth (fitness) of held-out gene pairs and score it",
        description="Read a growth screen (single_fitnesses.csv, processed_fitnesses.csv, "
        "optional processed_emap.csv; see docs/fitness.md), hold out pairs by gene over "
        "several split seeds and score the GO-graph fitness model, and the same model without "
        "GO (no_go), against the additive (f_A + f_B) and mean baselines. Writes to --out: "
        "scores.csv, summary.csv, predictions.csv, r2.csv (the printed tables, a row per scope "
        "and subgroup), settings.json and a scatter plot per method but mean (e.g. "
        "fitness_model.png).",
    )
    parser.add_argument(
        "directory", type=path_argument, metavar="DIR", help="folder of fitness tables"
    )
    parser.add_argument(
        "--out",
        type=path_argument,
        required=True,
        metavar="OUT",
        help="folder for tables and plots: new or empty (never DIR, --expression-model or "
        "a folder in them)",
    )
    add_overwrite(
        parser,
        "earlier results in --out (tables and plots with their settings.json; never a folder "
        "holding anything else)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=5,
        metavar="N",
        help="number of split seeds: seeds 1 .. N (default 5: seeds 1-5), as perturbsim evaluate's",
    )
    parser.add_argument(
        "--unseen-fraction",
        type=float,
        default=0.25,
        metavar="F",
        help="share of genes held out of every training and validation pair (default 0.25); "
        "unseen in the test are these and the genes of validation pairs only",
    )
    parser.add_argument(
        "--hide-unseen-singles",
        action="store_true",
        help="treat the unseen genes' single fitnesses as unknown (fitness_model predicts "
        "them from GO; no_go and additive take the known singles' mean)",
    )
    parser.add_argument(
        "--epochs", type=int, metavar="N", help="most training epochs (default 400)"
    )
    parser.add_argument(
        "--control",
        default=None,
        metavar="NAME",
        help="label of the non-targeting control row/column, dropped (default: negative, "
        "when present; '' for none)",
    )
    parser.add_argument(
        "--expression-model",
        type=path_argument,
        metavar="MODEL_DIR",
        help="a saved perturbsim expression model: also score fitness predicted from its "
        "predicted expression (ridge)",
    )
    add_go_option(parser, "of the model's GO features; default: the bundled human annotations")
    parser.set_defaults(run=_run_fitness)
