"""``perturbsim design``: rank the untested perturbations worth measuring next."""

from __future__ import annotations

import argparse

from .._atomic import atomic_write
from .._errors import PerturbsimError, counted
from .._keys import SEP
from .._settings import check_seed
from ..pp import canonical_label, genes_of
from ..tl._design import MAX_PAIR_GENES, STRATEGIES
from ._parser import (
    add_command,
    add_overwrite,
    output_file,
    path_argument,
    read_list,
    refuse_output_file,
)
from ._screen import add_query_control, screen_queries


def _run_design(args: argparse.Namespace) -> None:
    from ..io._html import number_text
    from ..models import PerturbationModel
    from ..tl import design

    out = output_file(args.out, (".csv",))
    seed = None if args.seed is None else check_seed("--seed", args.seed)
    model = PerturbationModel.load(args.model)
    model.check_control_label(args.control, args.sep, option="--control")
    texts = None  # read before --out is checked against it: a folder is named as such
    if args.measured is not None:  # an empty file: nothing measured yet
        texts = read_list(args.measured, "--measured", "conditions", allow_empty=True)
    offered = None
    if args.candidates is not None:
        offered = read_list(args.candidates, "--candidates", "perturbations")
    files = [f for f in (args.measured, args.candidates) if f is not None]
    refuse_output_file(out, args.overwrite, inputs=[args.model, *files])
    measured = None
    if texts is not None:
        sets = screen_queries(texts, model.screen_labels, sep=args.sep, control=args.control)
        measured = [canonical_label(s) for s in sets]
    if measured:
        # a condition its screen measured but it cannot predict (held out, a gene outside its
        # graph) is left out, warned, as the API does; any other it cannot predict is refused
        screen = set(model.screen_conditions)
        covered = model.covers(measured)
        unknown = [c for c, ok in zip(measured, covered, strict=True) if not ok and c not in screen]
        if unknown:
            why = model.query_hint([genes_of(c) for c in unknown], labels=True) or (
                " (a misspelt gene? a gene outside the screen and the GO graph? leave it out)"
            )
            raise PerturbsimError(
                f"--measured: {model.label} cannot predict {len(unknown)} of the conditions in "
                f"{str(args.measured)!r}: {', '.join(map(repr, unknown[:5]))}{why}"
            )
    candidates = None
    if offered is not None:
        sets = screen_queries(offered, model.screen_labels, sep=args.sep, control=args.control)
        controls = [text for text, genes in zip(offered, sets, strict=True) if not genes]
        if controls:  # the control is no perturbation to run: named, not dropped in silence
            raise PerturbsimError(
                f"--candidates: {controls[0]!r} in {str(args.candidates)!r} is the control, "
                "not a perturbation to rank: leave it out"
            )
        candidates = [canonical_label(s) for s in sets]
        covered = model.covers(candidates)
        uncovered = [c for c, ok in zip(candidates, covered, strict=True) if not ok]
        if uncovered:  # a library's typo is named, not left out in silence
            why = model.query_hint([genes_of(c) for c in uncovered], labels=True) or ""
            raise PerturbsimError(
                f"--candidates: {model.label} cannot predict {len(uncovered)} of the "
                f"perturbations in {str(args.candidates)!r}: "
                f"{', '.join(map(repr, uncovered[:5]))}{why}"
            )
    try:
        ranked = design(
            model,
            candidates=candidates,
            budget=args.budget,
            strategy=args.strategy,
            measured=measured,
            seed=seed,
        )
    except PerturbsimError as err:
        raise PerturbsimError(str(err).replace("budget ", "--budget ", 1)) from err
    atomic_write(out, lambda path: ranked.to_csv(path, index=False))
    print(ranked.to_string(index=False, float_format=lambda x: number_text(x, 3)))
    if candidates is None:
        print(
            "\ncandidates: the untested singles of every gene the model can predict (readout "
            f"genes included) and the untested pairs among at most {MAX_PAIR_GENES} perturbed "
            "genes, those in the most measured conditions; to rank a library of your own, give "
            "--candidates FILE"
        )
    print(f"\nwrote the {counted(len(ranked), 'perturbation')} to measure next to {out}")


def register_design(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim design``."""
    parser = add_command(
        commands,
        "design",
        help="rank untested singles and pairs by how much measuring them should help the model",
    )
    parser.add_argument("model", type=path_argument, help="model directory from `perturbsim train`")
    parser.add_argument(
        "--budget", type=int, required=True, metavar="K", help="perturbations to propose"
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="combined",
        help="combined (default): uncertainty + GO coverage - redundancy; uncertainty alone; "
        "coverage: GO coverage - redundancy, without the uncertainty; or random",
    )
    parser.add_argument(
        "--measured",
        type=path_argument,
        metavar="FILE",
        help="conditions already measured, one a line; an empty file: none (default: the "
        "conditions of the screen the model was fitted on, held-out ones included, as its "
        "directory records them; a file replaces that record, so list those too)",
    )
    parser.add_argument(
        "--candidates",
        type=path_argument,
        metavar="FILE",
        help="the perturbations that could be measured, one a line (e.g. the genes of a guide "
        "library, and pairs of them); default: every covered gene alone and pairs of the "
        "screen's perturbed genes (the measured readout genes among them)",
    )
    add_query_control(parser)
    parser.add_argument(
        "--sep",
        help="separator of a combination's genes in --measured and --candidates (default: the "
        f"training screen's, else {SEP}; without --sep, a label joined by {SEP} reads as such)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of --strategy random (default 0; with another strategy, unused: warned)",
    )
    parser.add_argument(
        "--out",
        default="design.csv",
        metavar="FILE",
        help="CSV of the ranked list (default: design.csv)",
    )
    add_overwrite(parser, "an existing --out file (never the model's files or --measured)")
    parser.set_defaults(run=_run_design)
