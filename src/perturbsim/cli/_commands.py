"""The sub-commands of ``perturbsim``: each registers its arguments and a ``run`` function."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
from anndata import AnnData

from .._atomic import atomic_write
from .._errors import PerturbsimError
from ..models import (
    DEFAULT_MODELS,
    DEMO_MODELS,
    MODEL_REGISTRY,
    build_model,
    list_models,
    model_names,
    resolve_model,
    takes_option,
)
from ._screen import add_screen_options, check_labels, go_annotations, read_screen

SPLITS = ("simulation", "single", "combo", "custom")
HEADLINE_METRICS = ("pearson_delta_de", "nmse_de", "direction_error_de")
MODEL_FLAGS = (
    ("--n-models", "n_models", "n_models", False),
    ("--device", "device", "device", False),
    ("--epochs", "epochs", "max_epochs", True),
)
"""Options of ``perturbsim train`` given to the model: flag, argparse name, model option and
whether it is a fit option (else a constructor argument)."""


def _split(adata: AnnData, args: argparse.Namespace) -> None:
    from ..pp import split

    test = None
    if args.split == "custom":
        if args.test is None:
            raise PerturbsimError("--split custom needs --test FILE (one condition a line)")
        if not args.test.is_file():
            raise PerturbsimError(f"no such file: {str(args.test)!r}")
        test = [line.strip() for line in args.test.read_text().splitlines() if line.strip()]
    split(adata, kind=args.split, seed=args.seed, test_conditions=test)


def _applies(name: str, option: str, *, fit: bool) -> bool:
    """Whether the model behind a catalogue name takes a fit or constructor option."""
    return option in resolve_model(name)[0].fit_options if fit else takes_option(name, option)


def _takers(option: str, *, fit: bool = False) -> str:
    """Help text naming the registered models that take an option."""
    names = [name for name in MODEL_REGISTRY if _applies(name, option, fit=fit)]
    return f" (for {', '.join(names)} and variants)" if names else ""


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
        if not _applies(args.model, option, fit=fit):
            kind = "fit option" if fit else "option"
            raise PerturbsimError(
                f"{flag} does not apply to model {args.model!r}, which has no {kind} {option!r}"
            )
        (fit_options if fit else options)[option] = value
    return options, fit_options


# -- train ----------------------------------------------------------------------------------
def _run_train(args: argparse.Namespace) -> None:
    if args.out.exists() and not args.overwrite:  # before training, not after
        raise PerturbsimError(f"{str(args.out)!r} already exists; pass --overwrite to replace it")
    options, fit_options = _model_options(args)  # before reading: a wrong flag fails at once
    adata = read_screen(args)
    annotations = go_annotations(args)
    check_labels(adata, annotations, sep=args.sep)
    _split(adata, args)
    if annotations is not None and takes_option(args.model, "go_annotations"):
        options["go_annotations"] = annotations
    model = build_model(args.model, adata, seed=args.seed, **options)
    model.fit(**fit_options)
    model.save(args.out, overwrite=args.overwrite)
    runs = getattr(model, "results", [])  # training runs of the models that keep them
    epochs = f", best epoch {', '.join(str(r.best_epoch) for r in runs)}" if runs else ""
    print(f"trained {args.model}{epochs}; saved to {args.out}")


def register_train(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim train``."""
    parser = commands.add_parser("train", help="train a model on a screen and save it")
    add_screen_options(parser)
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="model directory to write"
    )
    parser.add_argument(
        "--model",
        default="gears",
        metavar="NAME",
        help=f"model to train (default: gears): {', '.join(model_names())}",
    )
    parser.add_argument("--split", choices=SPLITS, default="simulation", help="held-out design")
    parser.add_argument(
        "--test", type=Path, metavar="FILE", help="file of test conditions, one a line (custom)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of split and training")
    parser.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="maximum epochs, early stopping on validation" + _takers("max_epochs", fit=True),
    )
    parser.add_argument(
        "--n-models", type=int, metavar="N", help="ensemble size" + _takers("n_models")
    )
    parser.add_argument("--device", help="auto, cpu or cuda" + _takers("device"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(run=_run_train)


# -- predict --------------------------------------------------------------------------------
def _run_predict(args: argparse.Namespace) -> None:
    from ..models import PerturbationModel

    model = PerturbationModel.load(args.model)
    prediction = model.predict(args.perturbations)
    out: Path = args.out
    if out.suffix == ".h5ad":
        atomic_write(out, prediction.write_h5ad)
    elif out.suffix == ".csv":
        atomic_write(out, prediction.to_df().to_csv)
    else:
        raise PerturbsimError(f"--out must end in .h5ad or .csv, got {str(out)!r}")
    print(f"predicted {prediction.n_obs} perturbations x {prediction.n_vars} genes -> {out}")


def register_predict(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim predict``."""
    parser = commands.add_parser("predict", help="predict expression after perturbations")
    parser.add_argument("model", type=Path, help="model directory from `perturbsim train`")
    parser.add_argument("perturbations", nargs="+", help="labels such as FOSB+CEBPB KLF1")
    parser.add_argument("--out", type=Path, required=True, help="output .h5ad or .csv")
    parser.set_defaults(run=_run_predict)


# -- evaluate -------------------------------------------------------------------------------
def _model_list(text: str) -> list[str]:
    """The catalogue names of a comma-separated ``--models``; an unknown name is an error."""
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise PerturbsimError(f"--models names no model: {text!r}")
    for name in models:
        resolve_model(name)
    return models


def _run_evaluate(args: argparse.Namespace) -> None:
    from ..io import write_report
    from ..tl import evaluate

    models = _model_list(args.models)
    adata = read_screen(args)
    annotations = go_annotations(args)
    check_labels(adata, annotations, sep=args.sep)
    model_kwargs = {
        m: {"go_annotations": annotations}
        for m in models
        if annotations is not None and takes_option(m, "go_annotations")
    }
    result = evaluate(
        adata, models=models, split=args.split, seeds=args.seeds, model_kwargs=model_kwargs
    )
    write_report(result, args.out)
    print(_headline(result.summary()).to_string())
    print(f"\nwrote scores, summary, report and plots to {args.out}")


def register_evaluate(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim evaluate``."""
    parser = commands.add_parser(
        "evaluate", help="GEARS against the baselines on held-out perturbations, over seeds"
    )
    add_screen_options(parser)
    parser.add_argument("--split", choices=SPLITS[:3], default="simulation", help="held-out design")
    parser.add_argument("--seeds", type=int, default=5, metavar="N", help="number of split seeds")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        metavar="NAMES",
        help=f"comma-separated models (default: {','.join(DEFAULT_MODELS)}) among: "
        f"{', '.join(model_names())}",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="directory for the report"
    )
    parser.set_defaults(run=_run_evaluate)


# -- demo -----------------------------------------------------------------------------------
def _headline(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean of the headline metrics, subgroups as rows and models as columns."""
    rows = summary[summary["metric"].isin(HEADLINE_METRICS)]
    table = rows.pivot_table(index=["metric", "subgroup"], columns="model", values="mean")
    models = [m for m in pd.unique(summary["model"]) if m in table.columns]
    return table[models].round(3)


def _run_demo(args: argparse.Namespace) -> None:
    from ..ds import norman2019_subset
    from ..io import write_report
    from ..pp import DEGenes, condition_table, rank_de, split, split_summary
    from ..tl import evaluate

    adata = norman2019_subset()
    table = condition_table(adata)
    print(f"Norman et al. 2019 K562 CRISPRa subset: {adata.n_obs} cells x {adata.n_vars} genes")
    print(table.groupby("kind")["n_cells"].agg(conditions="size", cells="sum").to_string())
    rank_de(adata, n_genes=20)
    de = DEGenes.from_adata(adata)
    for condition in ("KLF1", "KLF1+MAP2K6", "TMSB4X"):
        print(f"top DE genes of {condition}: {', '.join(de.top_genes(condition)[:8])}")
    print("\nsimulation split (seed 1):")
    print(split_summary(split(adata, kind="simulation", seed=1, copy=True)).to_string(index=False))
    print(f"\ntraining GEARS and baselines over {args.seeds} split seed(s) ...")
    result = evaluate(adata, models=list(DEMO_MODELS), split="simulation", seeds=args.seeds)
    print(
        "\nmean over held-out conditions (pearson_delta_de: higher is better; "
        "nmse_de, direction_error_de: lower is better):"
    )
    print(_headline(result.summary()).to_string())
    coverage = result.coverage_table()
    coverage["covered"] = coverage["n_covered"].astype(str) + "/" + coverage["n_total"].astype(str)
    print("\nheld-out conditions each model can predict (it is scored on those only):")
    print(
        coverage.pivot(index="subgroup", columns="model", values="covered")[
            result.models
        ].to_string()
    )
    if args.out is not None:
        write_report(result, args.out)
        print(f"\nwrote the full report to {args.out}")


def register_demo(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim demo``."""
    parser = commands.add_parser("demo", help="train and evaluate on the bundled Norman screen")
    parser.add_argument("--seeds", type=int, default=1, help="number of split seeds")
    parser.add_argument("--out", type=Path, default=None, help="also write the full report here")
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
    parser = commands.add_parser("models", help="list the models --model and --models accept")
    parser.set_defaults(run=_run_models)


REGISTRARS = (
    register_demo,
    register_train,
    register_predict,
    register_evaluate,
    register_models,
)
