"""The sub-commands of ``perturbsim``: each registers its arguments and a ``run`` function."""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import textwrap
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .._atomic import atomic_write_all, check_results_dir, check_writable_place
from .._errors import PerturbsimError, counted, shown_list
from .._keys import (
    CELL_EVAL_CONTROL,
    CELL_EVAL_PERT_COL,
    CONDITION,
    SEP,
    SPLIT_UNS,
    UNS,
    VARIANCE_LAYER,
)
from .._settings import check_seed, switched_off
from ..models import (
    DEFAULT_MODELS,
    DEMO_MODELS,
    MODEL_REGISTRY,
    PerturbationModel,
    build_model,
    list_models,
    model_names,
    resolve_model,
    takes_option,
)
from ..models._gears import resolve_device
from ..models._store import check_replaceable
from ..pp import canonical_label
from ..pp._labels import singles_of
from ..pp._pseudobulk import MIN_REPLICATE_CELLS
from ..pp._split import subgroups_note
from ..pp._validate import WARN_NOT_COUNTS
from ..tl._metrics import HEADLINE_METRICS, METRICS, full_depth_note
from ._design import register_design
from ._fitness import register_fitness
from ._gi import register_gi, register_measured_gi
from ._parser import (
    add_command,
    add_overwrite,
    output_file,
    path_argument,
    read_list,
    refuse_existing,
    refuse_model_folder,
    refuse_output_file,
    refuse_outputs,
)
from ._screen import (
    add_query_control,
    add_screen_options,
    every_cell_read,
    go_annotations,
    read_screen,
    screen_queries,
    where_of,
    where_text,
)

if TYPE_CHECKING:
    from ..tl import EvaluationResult

logger = logging.getLogger(__name__)

SPLITS = ("simulation", "single", "combo", "custom")
"""Held-out designs of ``export`` and ``evaluate`` (``train`` also
``none``: every condition in training and validation)."""
TRAIN_SEED = 1
"""Default seed of ``train``'s split and model (GEARS's first split seed)."""
PERTURBATION = "perturbation"
"""Header of the first column (the perturbation labels) of ``predict``'s CSV files."""
MODEL_FLAGS = (
    ("--n-models", "n_models", "n_models", False),
    ("--device", "device", "device", False),
    ("--epochs", "epochs", "max_epochs", True),
)
"""Options of ``perturbsim train`` given to the model: flag, argparse name, model option and
whether it is a fit option (else a constructor argument)."""


def _split(adata: AnnData, args: argparse.Namespace, test: list[str] | None) -> None:
    """Split ``adata`` as ``--split`` and ``--seed`` say (``test``: ``--test``'s conditions)."""
    from ..pp import split

    split(adata, kind=args.split, seed=args.seed, test_conditions=test)


def _test_conditions(args: argparse.Namespace) -> list[str] | None:
    """The conditions of ``--test`` (``--split custom``), refusing the options' misuse.

    Called before the screen is read too, so that a wrong flag or list fails at once.
    """
    if args.test is not None and args.split != "custom":
        given = "" if args.split is None else f", not --split {args.split}"
        raise PerturbsimError(f"--test is for --split custom{given}")
    if args.split != "custom":
        return None
    if args.test is None:
        raise PerturbsimError("--split custom needs --test FILE (one condition a line)")
    return read_list(args.test, "--test", "test conditions")


def _check_seed(args: argparse.Namespace) -> None:
    """Refuse a ``--seed`` out of ``[0, 2**32)`` in one line naming the flag."""
    if args.seed is not None:
        check_seed("--seed", args.seed)


def _add_split_options(
    parser: argparse.ArgumentParser,
    choices: Sequence[str],
    default: str | None,
    help_text: str,
) -> None:
    """Add ``--split`` (``choices``, ``default``, ``help_text``) and ``--test`` (custom)."""
    parser.add_argument("--split", choices=choices, default=default, help=help_text)
    parser.add_argument(
        "--test",
        type=path_argument,
        metavar="FILE",
        help="file of test conditions, one a line (custom)",
    )


def _takers(option: str, *, fit: bool = False) -> str:
    """Help text naming the registered models that take an option."""
    names = [name for name in MODEL_REGISTRY if takes_option(name, option, fit=fit)]
    return f" (for {', '.join(names)} and their variants that train GEARS)" if names else ""


def _model_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Constructor and fit options of ``--model`` from the flags of :data:`MODEL_FLAGS`.

    A flag left out (``None``) keeps the model's default; a flag the model does not take,
    like an unknown model, is an error.
    """
    resolve_model(args.model)
    options: dict[str, Any] = {}
    fit_options: dict[str, Any] = {}
    for flag, dest, option, fit in MODEL_FLAGS:
        value = getattr(args, dest)
        if value is None:
            continue
        if not takes_option(args.model, option, fit=fit):
            kind = "fit option" if fit else "option"
            raise PerturbsimError(
                f"{flag} does not apply to model {args.model!r}, which has no {kind} {option!r}"
            )
        (fit_options if fit else options)[option] = value
    return options, fit_options


# -- train ----------------------------------------------------------------------------------
def _run_train(args: argparse.Namespace) -> None:
    check_replaceable(args.out)  # before training, not after; what --overwrite cannot replace
    refuse_existing(args.out, args.overwrite)
    check_writable_place(args.out, "the model to")
    refuse_model_folder(args.out.parent)
    test = _test_conditions(args)  # before reading: a wrong flag or list fails at once
    options, fit_options = _model_options(args)
    _check_seed(args)
    if args.device is not None:
        resolve_device(args.device)
    annotations = go_annotations(args)
    adata = read_screen(args, annotations)
    _split(adata, args, test)
    if annotations is not None and takes_option(args.model, "go_annotations"):
        options["go_annotations"] = annotations
    model = build_model(args.model, adata, seed=args.seed, **options)
    model.fit(**fit_options)
    model.save(args.out, overwrite=args.overwrite)
    runs = getattr(model, "results", [])  # training runs of the models that keep them
    epochs = f", best epoch {', '.join(str(r.best_epoch) for r in runs)}" if runs else ""
    print(f"trained {args.model}{epochs}; saved to {args.out}")
    print(_held_out_text(adata, model.few_cell_conditions))


def _held_out_text(adata: AnnData, few_cell: Sequence[str] = ()) -> str:
    """What ``perturbsim train`` says of the conditions its split kept from the model.

    ``few_cell``: the training and validation conditions the fit left out for their few
    cells (:attr:`~perturbsim.models.PerturbationModel.few_cell_conditions`), not counted.
    """
    from ..pp import split_summary

    table = split_summary(adata)
    counts = {
        name: table.loc[table["set"] == name].set_index("subgroup")["n_conditions"]
        for name in ("train", "val", "test")
    }
    split = adata.uns[UNS][SPLIT_UNS]
    left = set(few_cell)
    dropped = {name: sum(str(c) in left for c in split[name]) for name in ("train", "val")}
    text = (
        f"split: {int(counts['train'].sum()) - 1 - dropped['train']} training and "
        f"{int(counts['val'].sum()) - dropped['val']} validation conditions besides control "
        "fitted on"
        + (f", {len(left)} more of fewer than {MIN_REPLICATE_CELLS} cells left out" if left else "")
        + " (how a model uses validation is its own)"
    )
    if counts["test"].empty:
        return text + "; none held out (--split none)"
    held = ", ".join(f"{n} {group}" for group, n in counts["test"].items())
    test = adata.uns[UNS][SPLIT_UNS]["test"]
    singles = singles_of(test)
    cells = adata.obs[CONDITION].value_counts()
    few = [str(c) for c in test if cells.get(c, 0) < MIN_REPLICATE_CELLS]
    return (
        text + f"; held out for testing (conditions never trained on): {held} (a gene held "
        "out alone is predicted without its single: by the default from its training pairs "
        "where it has some, seen_single, else as never perturbed, unseen_single; combo_seenN: "
        "a pair N of whose genes were drawn as seen, GEARS's naming, though a seen gene may "
        "have no training single; --split none holds nothing out)"
        + (f"; genes held out alone: {shown_list(singles, 10)}" if singles else "")
        + (
            f"; {counted(len(few), 'held-out condition has', 'held-out conditions have')} "
            f"fewer than {MIN_REPLICATE_CELLS} cells, too few to score (perturbsim evaluate leaves "
            f"{'it' if len(few) == 1 else 'them'} out by default): {shown_list(few, 10)}"
            if few
            else ""
        )
    )


def register_train(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim train``."""
    parser = add_command(commands, "train", help="train a model on a screen and save it")
    add_screen_options(parser, streams=True)
    parser.add_argument(
        "--out", type=path_argument, required=True, metavar="DIR", help="model directory to write"
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODELS[0],
        metavar="NAME",
        help=f"model to train (default: {DEFAULT_MODELS[0]}): {', '.join(model_names())}",
    )
    _add_split_options(
        parser,
        (*SPLITS, "none"),
        "simulation",
        "held-out design (default simulation, as GEARS; none: hold nothing out, for a model to "
        "use rather than score)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=TRAIN_SEED,
        help=f"seed of split and training (default {TRAIN_SEED})",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="maximum epochs, early stopping on validation (on the training loss for "
        "stacked's GEARS part, which trains without the validation conditions; default: the "
        "model's, 40 for stacked's GEARS part, 200 for gears)" + _takers("max_epochs", fit=True),
    )
    parser.add_argument(
        "--n-models",
        type=int,
        metavar="N",
        help="ensemble size (default: the model's, 1; 5 for the *_ensemble variants)"
        + _takers("n_models"),
    )
    parser.add_argument(
        "--device",
        help="auto (default: cuda if available), cpu, cuda or cuda:N" + _takers("device"),
    )
    add_overwrite(
        parser, "an existing --out model directory (an empty one too; never another folder)"
    )
    parser.set_defaults(run=_run_train)


# -- predict --------------------------------------------------------------------------------
def _csv_writer(table: pd.DataFrame) -> Callable[[Path], None]:
    """Writes ``table`` (a row per perturbation) to a path, its first column named."""
    return lambda target: table.to_csv(target, index_label=PERTURBATION)


def _run_predict(args: argparse.Namespace) -> None:
    out = output_file(args.out, (".h5ad", ".csv"))
    model = PerturbationModel.load(args.model)
    beside = [out.with_name(f"{out.stem}.{part}.csv") for part in ("variance", "obs")]
    for path in [out, *(beside if out.suffix.lower() == ".csv" else [])]:
        refuse_output_file(path, args.overwrite, inputs=[args.model])
    model.check_control_label(args.control, args.sep, option="--control")
    queries = screen_queries(
        args.perturbations, model.screen_labels, sep=args.sep, control=args.control
    )
    # repeats (A+B and B+A too) are predicted once, and named, by predict itself
    prediction = model.predict([canonical_label(q) for q in queries], strict=args.strict)
    if out.suffix.lower() == ".h5ad":
        written = atomic_write_all({out: prediction.write_h5ad})
    else:
        variance, obs = beside
        tables = {out: prediction.to_df(), obs: prediction.obs}
        if VARIANCE_LAYER in prediction.layers:
            tables[variance] = prediction.to_df(layer=VARIANCE_LAYER)
        # all or none replaced, then a previous run's variance not read as this one's
        written = atomic_write_all({path: _csv_writer(table) for path, table in tables.items()})
        if variance not in tables:
            variance.unlink(missing_ok=True)
    print(
        f"predicted {counted(prediction.n_obs, 'perturbation')} x "
        f"{counted(prediction.n_vars, 'gene')} -> " + ", ".join(map(str, written))
    )


def register_predict(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim predict``."""
    parser = add_command(commands, "predict", help="predict expression after perturbations")
    parser.add_argument("model", type=path_argument, help="model directory from `perturbsim train`")
    parser.add_argument(
        "perturbations",
        nargs="+",
        help="labels such as FOSB+CEBPB KLF1; the rows written are named canonically (genes "
        "sorted, joined by '+'; the control 'ctrl'), one per distinct perturbation",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output .h5ad (predicted expression in X, the change over control in "
        ".layers['delta'], per-set columns in .obs) or .csv (predicted expression, a row per "
        "perturbation; beside it NAME.obs.csv, the per-set columns). The per-set columns: "
        "n_targets; with a model that has a predictive variance, uncertainty (the root mean "
        "variance over genes; the variance per gene in .layers['variance'] or "
        "NAME.variance.csv, on the log-normalised scale: the default's of the predicted mean "
        "change, gears_uncertainty's of a cell around it); with one that knows which genes "
        "it has "
        "support for, support, unsupported and generic (the model's generic guess for some "
        "gene)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse perturbations of a gene never measured alone with no measured GO "
        "neighbour, instead of predicting them with a flag",
    )
    add_query_control(parser)
    parser.add_argument(
        "--sep",
        help="separator of a combination's genes in the labels (default: the training "
        f"screen's, else {SEP}; e.g. _ for KLF1_MAP2K6)",
    )
    add_overwrite(parser, "an existing --out file (and its .variance.csv, .obs.csv)")
    parser.set_defaults(run=_run_predict)


def add_min_cells(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--min-cells N``: held-out conditions of fewer cells are left out (``verb``: 1 keeps)."""
    parser.add_argument(
        "--min-cells",
        type=int,
        default=MIN_REPLICATE_CELLS,
        metavar="N",
        help="leave out test conditions of fewer than N cells (default "
        f"{MIN_REPLICATE_CELLS}, what a split-half replicate needs: the mean of fewer cells "
        f"is mostly noise); 1 {verb}s them all",
    )


# -- export ---------------------------------------------------------------------------------
def _narrowed_by_where(message: str) -> bool:
    """Whether the error ``message`` of reading a screen may come of its ``where`` filter.

    It may where the filter found no cell, or kept fewer cells than the file holds; not
    where it kept them all, nor where the file itself failed.

    Examples
    --------
    >>> _narrowed_by_where("no control cells (where kept 3 of 12 cells)")
    True
    >>> _narrowed_by_where("no control cells (where kept 12 of 12 cells)")
    False
    >>> _narrowed_by_where("no such file: 'x.h5ad'")
    False
    """
    if message.startswith("where: "):
        return True
    kept = re.search(r"\(where kept (\d+) of (\d+) cells\)", message)
    return kept is not None and kept[1] != kept[2]


def _run_export(args: argparse.Namespace) -> None:
    from ..io import export_cell_eval
    from ..io._export import PRED_FILE, REAL_FILE

    test = _test_conditions(args)
    _check_seed(args)
    inputs = [args.model, args.data, *([args.test] if args.test is not None else [])]
    refuse_outputs(args.out, (PRED_FILE, REAL_FILE), args.overwrite, inputs=inputs)
    model = PerturbationModel.load(args.model)
    if args.seed is None:  # `train` seeds its split and its model alike
        args.seed = model.seed
    args.control = args.control or model.screen_labels.get("control")  # as it was trained on
    args.sep = args.sep or model.screen_labels.get("sep")
    args.perturbation_key = args.perturbation_key or model.screen_labels.get("perturbation_key")
    args.gene_key = args.gene_key or model.screen_labels.get("gene_key")
    carried = not args.normalize and model.screen_labels.get("normalize") == "true"
    args.normalize = args.normalize or carried  # counts normalised, log values left alone
    args.pool_datasets = args.pool_datasets or model.screen_labels.get("pooled_datasets") == "true"
    trained = [(c, v) for c, values in model.screen_where.items() for v in values]
    args.where = every_cell_read(args.where)  # none: [], every cell, not the model's filter
    defaulted = args.where is None and bool(trained)
    if defaulted:
        args.where = trained
    held_out = model.held_out_conditions if args.split is None else None
    if held_out is not None and not held_out:
        raise PerturbsimError(
            f"{str(args.model)!r} was fitted on every condition of its screen (--split none): "
            "it holds nothing out to export; train a model with --split (e.g. simulation) to "
            "hold conditions out"
        )
    try:
        with switched_off(WARN_NOT_COUNTS) if carried else nullcontext():
            why = f"the cells {args.model} was trained on" if defaulted else ""
            adata = read_screen(args, why=why)
    except PerturbsimError as error:
        if not (defaulted and _narrowed_by_where(str(error))):
            raise
        raise PerturbsimError(
            f"{error} (this --where is the one {str(args.model)!r} was trained with, "
            f"{where_text(trained)}; pass --where to choose the cells of this file)"
        ) from None
    genes = [str(g) for g in model.genes]
    if [str(g) for g in adata.var_names] != genes and set(genes) <= set(map(str, adata.var_names)):
        if adata.isbacked:
            raise PerturbsimError(
                f"--backed: {str(args.data)!r} has {adata.n_vars} genes, of which "
                f"{str(args.model)!r} has {len(genes)}; taking them out of a file left on "
                "disk reads all its cells into memory: leave out --backed, or write a file of "
                "the model's genes only"
            )
        logger.info("exporting the model's %d genes of the file's %d", len(genes), adata.n_vars)
        adata = adata[:, genes].copy()  # the model's genes in its order: what cell-eval compares
    model.check_genes_of(adata)  # another screen's genes: said before its conditions are sought
    as_trained = _keeps_as_trained(args.data, model.screen_where, where_of(args.where))
    if not as_trained:
        logger.warning(
            "%s keeps other cells than %s was trained on (%s): its held-out conditions are "
            "compared with the cells kept here",
            where_text(args.where or []) or "reading every cell",
            args.model,
            where_text(trained) or "every cell of its file",
        )
    if held_out is None:  # a file saved before the screen's conditions were recorded
        args.split = args.split or "simulation"
        _split(adata, args, test)
    else:
        absent = sorted(set(held_out) - set(adata.obs[CONDITION].astype(str)))
        if absent:
            fix = (
                f"is {str(args.data)!r} the file it was trained on?"
                if as_trained
                else f"leave out --where to read the cells {args.model} was trained on"
            )
            kept = f"among those kept by {where_text(args.where)} " if args.where else ""
            raise PerturbsimError(
                f"no cells {kept}for {len(absent)} of the "
                f"{counted(len(held_out), 'condition')} held out by {args.model} (e.g. "
                f"{absent[0]!r}); {fix}"
            )
        held_out = _covered_held_out(model, held_out)
    pred, real = export_cell_eval(
        model,
        adata,
        args.out,
        conditions=held_out,
        n_cells=args.n_cells,
        min_cells=args.min_cells,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    command = f"cell-eval run -ap {shlex.quote(str(pred))} -ar {shlex.quote(str(real))}"
    written = _exported_conditions(real)
    print(f"wrote {pred} and {real} ({written} and control); evaluate with: {command}")


def _exported_conditions(real: Path) -> str:
    """How many conditions beside control the exported ``real`` file holds, in words."""
    from ..ds._stores import read_obs

    labels = set(read_obs(real)[CELL_EVAL_PERT_COL].astype(str)) - {CELL_EVAL_CONTROL}
    return counted(len(labels), "condition")


def _keeps_as_trained(
    path: Path, trained: dict[str, list[str]], given: dict[str, list[str]] | None
) -> bool:
    """Whether the ``given`` filter keeps the cells of ``path`` the ``trained`` one kept.

    Compared cell by cell on the file's ``obs`` (no filter: every cell), not by name.
    """
    from ..ds._read import kept_cells
    from ..ds._stores import read_obs

    if not given and not trained:
        return True
    obs = read_obs(path)
    try:
        kept_then = kept_cells(obs, trained)
    except PerturbsimError:  # the model's filter names what this file does not hold
        return False
    return bool(np.array_equal(kept_then, kept_cells(obs, given or {})))


def _covered_held_out(model: PerturbationModel, held_out: list[str]) -> list[str]:
    """The held-out conditions ``model`` can predict, saying what it leaves out."""
    covered = [c for c, ok in zip(held_out, model.covers(held_out), strict=True) if ok]
    left = [c for c in held_out if c not in set(covered)]
    if not covered:
        raise PerturbsimError(
            f"{model.label} cannot predict any condition it held out ({shown_list(left, 3)})"
        )
    note = f"; it cannot predict {len(left)}: {shown_list(left, 3)}" if left else ""
    held = counted(len(held_out), "condition")
    print(f"the model predicts {len(covered)} of the {held} it held out{note}")
    return covered


def register_export(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim export``."""
    parser = add_command(
        commands,
        "export",
        help="write predicted and real cells of the held-out conditions for cell-eval",
    )
    parser.add_argument("model", type=path_argument, help="model directory from `perturbsim train`")
    add_screen_options(parser, loads_model=True, streams=True)
    parser.add_argument(
        "--out",
        type=path_argument,
        required=True,
        metavar="DIR",
        help="directory for pred/real.h5ad",
    )
    add_overwrite(parser, "pred.h5ad and real.h5ad of an earlier export in --out")
    _add_split_options(
        parser,
        SPLITS,
        None,
        "held-out design, as for train (default: the conditions the model held out, as its "
        "directory records them; simulation for a model saved before they were)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the split, as for train, and of the cells (default: the model's seed, "
        "which train gives its split too)",
    )
    parser.add_argument(
        "--n-cells",
        type=int,
        metavar="N",
        help="predicted cells per condition (default: as many as measured; control cells are all "
        "the measured ones, in both files)",
    )
    add_min_cells(parser, "export")
    parser.set_defaults(run=_run_export)


# -- evaluate -------------------------------------------------------------------------------
def _model_list(text: str) -> list[str]:
    """The catalogue names of a comma-separated ``--models``, checked before any reading.

    An unknown or a repeated name is an error.
    """
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise PerturbsimError(f"--models names no model: {text!r}")
    for name in models:
        resolve_model(name)
    repeated = sorted({m for m in models if models.count(m) > 1})
    if repeated:
        raise PerturbsimError(f"--models names {', '.join(repeated)} more than once: {text!r}")
    return models


def _run_evaluate(args: argparse.Namespace) -> None:
    from ..io import write_report
    from ..io._html import GI_TRUTH_NOTES, gi_precision_table
    from ..tl import evaluate

    models = _model_list(args.models)
    inputs = [path for path in (args.data, args.test, args.go) if path is not None]
    refuse_model_folder(args.out)  # before the work
    check_results_dir(args.out, overwrite=args.overwrite, keep=inputs)
    test = _test_conditions(args)  # before reading: a wrong flag or list fails at once
    annotations = go_annotations(args)
    adata = read_screen(args, annotations)
    model_kwargs = {
        m: {"go_annotations": annotations}
        for m in models
        if annotations is not None and takes_option(m, "go_annotations")
    }
    result = evaluate(
        adata,
        models=models,
        split=args.split,
        seeds=args.seeds,
        split_kwargs=None if test is None else {"test_conditions": test},
        model_kwargs=model_kwargs,
        gi=args.gi,
        gi_k=args.gi_k,
        min_cells=args.min_cells,
    )
    result.settings["screen"] = {  # the file as given, its filter, and what was held out
        "file": str(args.data),
        "where": where_of(args.where) or {},
        "normalize": bool(args.normalize),
        "test_conditions": test,
    }
    kept = f" ({where_text(args.where)})" if args.where else ""
    write_report(
        result,
        args.out,
        title=f"perturbsim evaluation of {args.data.name}{kept}",
        overwrite=args.overwrite,
    )
    print(_scores_text(result.summary(), result.calibrated(), result.coverage_table()))
    if head_to_head := _head_to_head_text(result):
        print(head_to_head)
    gi = gi_precision_table(result)
    if not gi.empty:
        print(
            f"\ngenetic interactions of the test pairs: precision@{args.gi_k} per subtype, "
            "mean over seeds (a random ranking's in brackets; pairs: compared per seed; "
            "genes: fitted per pair):"
        )
        print(gi.to_string(index=False))
        for truth in dict.fromkeys(result.gi["truth"]):
            print(textwrap.fill(GI_TRUTH_NOTES[truth], width=100))
        if (result.gi["n_pairs"] <= result.gi["k"]).all():
            print(
                f"no seed has more than {args.gi_k} test pairs: each ranking takes them all, "
                "so every precision equals the random one (a smaller --gi-k ranks them)"
            )
    elif args.gi and not any(group.startswith("combo_seen") for group in result.subgroups):
        print(
            "\ngenetic interactions: no pair of two genes among the test conditions, none to score"
        )
    elif args.gi:
        print(
            "\ngenetic interactions of the test pairs: none scored (a test pair is scored where "
            "both its singles were measured and, where the truth is the measured means, it "
            "changes a gene (ps.pp.count_de) in cells enough; -v logs each seed's)"
        )
    print(f"\nwrote scores, summary, plots, report.md and report.html to {args.out}")


def register_evaluate(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim evaluate``."""
    parser = add_command(
        commands,
        "evaluate",
        help="score the default model, GEARS and the baselines (or --models) on held-out "
        "perturbations, over seeds",
    )
    add_screen_options(parser, streams=True)
    _add_split_options(
        parser,
        SPLITS,
        "simulation",
        "held-out design (default simulation; custom: the conditions of --test, validation "
        "drawn by each seed)",
    )
    parser.add_argument(
        "--seeds", type=int, default=5, metavar="N", help="split seeds 1..N (default 5)"
    )
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        metavar="NAMES",
        help=f"comma-separated models (default: {', '.join(DEFAULT_MODELS)}) among: "
        f"{', '.join(model_names())}",
    )
    parser.add_argument(
        "--gi-k",
        type=int,
        default=10,
        metavar="K",
        help="precision@K of predicted interaction subtypes among the test pairs (default 10)",
    )
    parser.add_argument(
        "--no-gi",
        dest="gi",
        action="store_false",
        help="skip scoring the genetic interactions of the test pairs",
    )
    add_min_cells(parser, "score")
    parser.add_argument(
        "--out", type=path_argument, required=True, metavar="DIR", help="directory for the report"
    )
    add_overwrite(parser, "a previous report in --out (never another folder)")
    parser.set_defaults(run=_run_evaluate)


# -- demo -----------------------------------------------------------------------------------
def _fixed(table: pd.DataFrame, digits: int) -> str:
    """``table`` as text, every number with ``digits`` decimals (``0.00``, never ``0.0``)."""
    return table.to_string(float_format=lambda value: f"{value:.{digits}f}")


def _headline(table: pd.DataFrame, subgroups: list[str], *, digits: int = 3) -> pd.DataFrame:
    """Means of the headline metrics in a summary-like table, by metric and subgroup x model.

    Rounded to ``digits``; a mean that rounds to zero prints as 0, never as -0.
    """
    rows = table[table["metric"].isin(HEADLINE_METRICS)]
    wide = rows.pivot(index=["metric", "subgroup"], columns="model", values="mean")
    metrics = [m for m in HEADLINE_METRICS if m in set(rows["metric"])]
    order = pd.MultiIndex.from_product([metrics, subgroups], names=["metric", "subgroup"])
    rounded = wide.reindex(index=order, columns=list(pd.unique(rows["model"]))).round(digits)
    return rounded + 0.0  # -0.0 + 0.0 is 0.0


SHOWN_DIFFERENCE = 0.005
"""A head-to-head difference smaller than this reads 0.00 at two decimals: neither ahead nor
behind."""
SHOWN_WINS = 5
"""The clear wins of the default the head-to-head lines name (more: counted only)."""
FAR_FROM_ANCHORS = 3.0
"""A calibrated score beyond this (either sign) is named under the table: it lies several
anchor spans out, which a narrow span (the replicate barely beating the mean) makes easy."""


def _partly_scored(coverage: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """``model subgroup k/n`` of the rows of ``table`` scored on some of their conditions.

    ``coverage``: :meth:`~perturbsim.tl.EvaluationResult.coverage_table`; ``table`` a
    summary or calibrated table (its model and subgroup pairs).
    """
    partial = coverage[(coverage["n_covered"] > 0) & (coverage["n_covered"] < coverage["n_total"])]
    scored = set(zip(table["model"], table["subgroup"], strict=True))
    return [
        f"{r.model} {r.subgroup} {r.n_covered}/{r.n_total}"
        for r in partial.itertuples(index=False)
        if (r.model, r.subgroup) in scored
    ]


def _scores_text(summary: pd.DataFrame, calibrated: pd.DataFrame, coverage: pd.DataFrame) -> str:
    """What ``demo`` and ``evaluate`` print of an evaluation.

    Calibrated scores first, then raw means of the headline metrics, then coverage, from
    :class:`~perturbsim.tl.EvaluationResult`'s ``summary()``, ``calibrated()`` and
    ``coverage_table()``.
    """
    from ..tl._result import MEAN_BASELINE, REPLICATE, order_subgroups, undefined_metrics

    groups = order_subgroups(coverage["subgroup"].unique())
    if calibrated.empty:
        scored = set(summary["model"])
        if MEAN_BASELINE not in scored:
            why = f"they need the {MEAN_BASELINE!r} baseline among --models"
        elif REPLICATE not in scored:
            why = (
                f"they need test conditions of at least {MIN_REPLICATE_CELLS} cells (for the "
                "replicate)"
            )
        else:
            why = (
                f"no model but {MEAN_BASELINE!r} was scored on a test condition (see the "
                "coverage below)"
            )
        lines = [f"no calibrated scores: {why}"]
    else:
        table = _headline(calibrated, groups, digits=2)
        scored = [m for m in HEADLINE_METRICS if m in set(summary["metric"])]
        undefined = undefined_metrics(calibrated, scored)
        present = set(table.index.get_level_values("metric"))
        table = table.drop(index=[m for m in undefined if m in present], level="metric")
        lines = [
            "calibrated scores, mean over seeds (0 = no better than the mean of the training "
            "perturbations, 1 = as good as repeating the experiment; higher is better):"
        ]
        if not table.empty:
            lines.append(_fixed(table, 2))
        if undefined:
            lines.append(
                f"{'not shown' if not table.empty else 'none'}: undefined for every model and "
                f"subgroup in {', '.join(undefined)} (the replicate nowhere clearly better than "
                "the mean; see the raw means below)"
            )
        if table.isna().to_numpy().any():
            lines.append(
                "NaN: undefined there (a model not covering the subgroup, a correlation with "
                "a constant change, or a replicate not clearly better than the mean on the "
                "conditions scored: within noise of it, or a single condition)"
            )
        shown = _partly_scored(coverage, calibrated)
        if shown:
            lines.append(
                "scored on part of a subgroup's conditions only (few conditions can land a "
                f"score far from both anchors): {', '.join(shown)}"
            )
        if (table.stack() > 1).any():
            lines.append(
                "above 1: better than the replicate, the split-half estimate of repeating "
                "the experiment at full depth; a model predicting from many cells of other "
                "conditions, e.g. a pair from its measured singles, can pass it"
            )
        far = table.stack()[lambda values: values.abs() > FAR_FROM_ANCHORS]
        if not far.empty:
            cells = [
                f"{model} {metric} {group} {value:.2f}"
                for (metric, group, model), value in far.items()
            ]
            lines.append(
                f"far outside the anchors (|score| > {FAR_FROM_ANCHORS:g}): {', '.join(cells)}; "
                "a model's distance from the mean is several times the replicate's margin "
                "over the mean there, which can be small: read it with the raw means below"
            )
    best = "; ".join(f"{m}: {METRICS[m].best} is better" for m in HEADLINE_METRICS)
    lines += [
        f"\nmean over held-out conditions ({best}; {REPLICATE}: the screen's noise ceiling):",
        _fixed(_headline(summary, groups), 3),
        f"{REPLICATE}: {full_depth_note(HEADLINE_METRICS)}",
    ]
    part = _partly_scored(coverage, summary)
    if part:
        lines.append(
            "a mean of part of its subgroup's conditions only, not comparable with the "
            f"others: {', '.join(part)}"
        )
    lines.append(textwrap.fill(f"subgroups: {subgroups_note()}", width=100))
    lines.append("\nheld-out conditions each model can predict (it is scored on those only):")
    coverage = coverage.assign(
        covered=coverage["n_covered"].astype(str) + "/" + coverage["n_total"].astype(str)
    )
    wide = coverage.pivot(index="subgroup", columns="model", values="covered")
    lines.append(wide.loc[groups, list(pd.unique(coverage["model"]))].to_string())
    return "\n".join(lines)


def _head_to_head_text(result: EvaluationResult) -> str:
    """Where the default wins and loses against each model on the conditions both cover.

    From :meth:`~perturbsim.tl.EvaluationResult.head_to_head` on the headline metrics: the
    comparisons ahead and behind on average by more than :data:`SHOWN_DIFFERENCE` (a
    smaller difference is neither, whatever its interval: two models predicting alike)
    whose 95 % interval excludes 0 are counted, and named where behind; those behind
    within their interval are named too; with one seed (no interval), those ahead are
    counted and those behind named. In an evaluation over seeds, a comparison that only
    one seed defines (no interval) and is behind is named apart, as defined by one seed.
    ``""`` when the evaluation has no default or no calibration.
    """
    from ..io._html import difference_text
    from ..tl._result import MEAN_BASELINE

    default = DEFAULT_MODELS[0]
    if default not in result.models:
        return ""
    table = result.head_to_head(default)  # empty without the calibration's anchors
    table = table[table["metric"].isin(HEADLINE_METRICS) & table["mean"].notna()]
    if table.empty:
        return ""

    def named(rows: pd.DataFrame) -> str:
        return "; ".join(
            f"{r.model} {r.metric} {r.subgroup} {difference_text(r.mean, r.ci_low, r.ci_high)}"
            for r in rows.itertuples(index=False)
        )

    behind = table[table["mean"] < -SHOWN_DIFFERENCE]
    others = ", ".join(dict.fromkeys(table["model"]))
    head = (
        f"{default} head to head with {others} (each model with a calibrated score; the "
        f"{MEAN_BASELINE} anchor scores 0 by definition), on the conditions both cover "
        "(calibrated difference; > 0: the default better"
    )
    if table["ci_low"].isna().all():
        ahead = int((table["mean"] > SHOWN_DIFFERENCE).sum())
        lines = [
            f"{head}; one seed: no interval): ahead in {ahead} of {len(table)} comparisons, "
            f"behind in {len(behind)}" + (f": {named(behind)}" if len(behind) else "")
        ]
    else:
        ahead = table["mean"] > SHOWN_DIFFERENCE
        won, lost = table[ahead & (table["ci_low"] > 0)], behind[behind["ci_high"] < 0]
        one_seed = behind[behind["ci_high"].isna()]
        noise = behind[behind["ci_high"] >= 0]
        lines = [
            f"{head}, 95 % interval over seeds and the conditions scored): clearly better in "
            f"{len(won)} of {len(table)} comparisons"
            + (f" ({named(won)})" if 0 < len(won) <= SHOWN_WINS else "")
            + f", clearly worse in {len(lost)}"
            + (f": {named(lost)}" if len(lost) else "")
        ]
        if len(noise):
            lines.append(f"behind within noise in {len(noise)}: {named(noise)}")
        if len(one_seed):
            lines.append(
                f"behind where one seed alone defines the difference (no interval) in "
                f"{len(one_seed)}: {named(one_seed)}"
            )
    return "\n" + "\n".join(textwrap.fill(line, width=100) for line in lines)


def _run_demo(args: argparse.Namespace) -> None:
    from ..ds import norman2019_subset
    from ..io import write_report
    from ..pp import DEGenes, condition_table, rank_de, split, split_summary
    from ..tl import evaluate

    if args.out is not None:
        refuse_model_folder(args.out)  # before the work
        check_results_dir(args.out, overwrite=args.overwrite)
    adata = norman2019_subset()
    print(f"Norman et al. 2019 K562 CRISPRa subset: {adata.n_obs} cells x {adata.n_vars} genes")
    print(
        f"training the default model ({DEMO_MODELS[0]}) and the baselines over "
        f"{counted(args.seeds, 'split seed')} ..."
    )
    result = evaluate(  # interactions only for the report: the printout shows none
        adata,
        models=list(DEMO_MODELS),
        split="simulation",
        seeds=args.seeds,
        gi=args.out is not None,
    )
    print()
    print(_scores_text(result.summary(), result.calibrated(), result.coverage_table()))
    if head_to_head := _head_to_head_text(result):
        print(head_to_head)
    print("\nthe screen:")
    print(condition_table(adata).groupby("kind")["n_cells"].agg(conditions="size", cells="sum"))
    rank_de(adata, n_genes=20)
    de = DEGenes.from_adata(adata)
    for condition in ("KLF1", "KLF1+MAP2K6", "TMSB4X"):
        print(f"top DE genes of {condition}: {', '.join(de.top_genes(condition)[:8])}")
    print("\nsimulation split (seed 1):")
    print(split_summary(split(adata, kind="simulation", seed=1, copy=True)).to_string(index=False))
    if args.out is not None:
        write_report(
            result,
            args.out,
            title="Norman et al. 2019 K562 CRISPRa subset",
            overwrite=args.overwrite,
        )
        print(
            f"\nwrote the full report to {args.out}: open {args.out / 'report.html'} in a browser"
        )


def register_demo(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim demo``."""
    parser = add_command(
        commands,
        "demo",
        help="train and evaluate on the bundled Norman screen",
        description="Train the default model and the baselines on the bundled Norman 2019 "
        "subset, score them on held-out perturbations between the two anchors (the mean "
        "baseline, 0; the screen's split-half replicate, 1) and summarise the screen.",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, metavar="N", help="split seeds 1..N (default 1)"
    )
    parser.add_argument(
        "--out",
        type=path_argument,
        default=None,
        metavar="DIR",
        help="also write the full report (report.html, report.md, tables, plots) into this folder",
    )
    add_overwrite(parser, "a previous report in --out (never another folder)")
    parser.set_defaults(run=_run_demo)


# -- models ---------------------------------------------------------------------------------
def _run_models(args: argparse.Namespace) -> None:
    table = list_models()
    width = max(map(len, table.index))
    for name, row in table.iterrows():
        options = ", ".join(f"{k}={v}" for k, v in row["options"].items())
        variant = f" ({row['base']} with {options})" if options else ""
        mark = "*" if row["default"] else " "
        print(f"{name:<{width}} {mark} {row['description']}{variant}")
    print("\n* run by `perturbsim evaluate` unless --models says otherwise")


def register_models(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim models``."""
    parser = add_command(commands, "models", help="list the models --model and --models accept")
    parser.set_defaults(run=_run_models)


REGISTRARS = (
    register_demo,
    register_train,
    register_predict,
    register_gi,
    register_measured_gi,
    register_export,
    register_evaluate,
    register_models,
    register_design,
    register_fitness,
)
