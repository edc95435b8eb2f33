"""``perturbsim fitness``: predict the growth of held-out gene pairs and score it."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._atomic import atomic_write
from .._errors import PerturbsimError
from ._parser import add_command

FIGURE_DPI = 110


def _check_options(args: argparse.Namespace) -> None:
    if args.expression_model is not None and not args.expression_model.is_dir():
        raise PerturbsimError(
            f"--expression-model: no such model folder {str(args.expression_model)!r}"
        )


def _run_fitness(args: argparse.Namespace) -> None:
    from ..ds import read_fitness
    from ..ds._fitness import DEFAULT_CONTROL, PAIRS_FILE, SINGLES_FILE
    from ..models import PerturbationModel
    from ..pl import fitness_scatter
    from ..tl import fitness_evaluate
    from ..tl._fitness import ADDITIVE, ALL, COVERED, MODEL
    from ._screen import go_annotations

    _check_options(args)
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
        unseen_fraction=args.unseen_fraction,
        hide_unseen_singles=args.hide_unseen_singles,
        fit_options=None if args.epochs is None else {"max_epochs": args.epochs},
        go_annotations=go_annotations(args),
        expression_model=expression,
    )
    out: Path = args.out
    tables = {
        "scores.csv": (result.scores, False),
        "summary.csv": (result.summary(), False),
        "predictions.csv": (result.predictions, False),
        "r2.csv": (result.table("r2"), True),
    }
    for name, (table, index) in tables.items():
        atomic_write(out / name, lambda path, t=table, i=index: t.to_csv(path, index=i))
    for method in (MODEL, ADDITIVE):
        figure = fitness_scatter(result, method=method).figure
        atomic_write(
            out / f"{method}.png",
            lambda path, f=figure: f.savefig(path, format="png", dpi=FIGURE_DPI),
        )
    singles = "predicted from GO" if args.hide_unseen_singles else "measured"
    print(
        f"R² of the fitness of held-out pairs ({len(screen.genes)} genes, "
        f"{len(screen.pair_table())} pairs; unseen genes' singles {singles}), "
        f"mean over {args.seeds} split seeds with a 95% t-interval:"
    )
    print(result.table("r2", scope=ALL).to_string())
    if expression is not None:
        print(
            "\nR² on the test pairs the expression model covers (second route: expression_ridge):"
        )
        print(result.table("r2", scope=COVERED).to_string())
    print(f"\nwrote scores.csv, summary.csv, predictions.csv, r2.csv and plots to {out}")


def register_fitness(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim fitness``."""
    parser = add_command(
        commands,
        "fitness",
        help="predict the growth (fitness) of held-out gene pairs and score it",
        description="Read a growth screen (single_fitnesses.csv, processed_fitnesses.csv, "
        "optional processed_emap.csv; see docs/fitness.md), hold out pairs by gene over "
        "several split seeds and score the GO-graph fitness model against the additive "
        "(f_A + f_B) and mean baselines.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="folder of fitness tables")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="OUT", help="folder for tables and plots"
    )
    parser.add_argument("--seeds", type=int, default=5, help="split seeds (default 5)")
    parser.add_argument(
        "--unseen-fraction",
        type=float,
        default=0.25,
        metavar="F",
        help="share of genes held out of every training pair (default 0.25)",
    )
    parser.add_argument(
        "--hide-unseen-singles",
        action="store_true",
        help="treat the unseen genes' single fitnesses as unknown (predicted from GO)",
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
        type=Path,
        metavar="MODEL_DIR",
        help="a saved perturbsim expression model: also score fitness predicted from its "
        "predicted expression (ridge)",
    )
    parser.add_argument(
        "--go",
        type=Path,
        default=None,
        metavar="GO_FILE",
        help="gene -> GO term file (GAF, gene2go or two-column TSV); default: bundled human",
    )
    parser.set_defaults(run=_run_fitness)
