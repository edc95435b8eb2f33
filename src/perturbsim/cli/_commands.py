"""The sub-commands of ``perturbsim``: each registers its arguments and a ``run`` function."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from .._atomic import atomic_write
from .._errors import PerturbsimError
from ..tl._evaluate import DEFAULT_MODELS

logger = logging.getLogger(__name__)

SPLITS = ("simulation", "single", "combo", "custom")
DEMO_MODELS = ("gears", "gears_reference", "gears_residual_ensemble", *DEFAULT_MODELS[1:])
HEADLINE_METRICS = ("pearson_delta_de", "nmse_de", "direction_error_de")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="screen as .h5ad (cells x genes, log-normalised)")
    parser.add_argument("--perturbation-key", default="condition", help="obs column of labels")
    parser.add_argument("--control", default=None, help="control label (default: auto-detect)")
    parser.add_argument("--split", choices=SPLITS, default="simulation", help="held-out design")
    parser.add_argument("--test", type=Path, help="file of test conditions, one a line (custom)")
    parser.add_argument("--seed", type=int, default=1, help="seed of split and training")


def _read_split(args: argparse.Namespace):
    from ..ds import read
    from ..pp import split

    adata = read(args.data, perturbation_key=args.perturbation_key, control=args.control)
    test = None
    if args.split == "custom":
        if args.test is None:
            raise PerturbsimError("--split custom needs --test FILE (one condition a line)")
        if not args.test.is_file():
            raise PerturbsimError(f"no such file: {str(args.test)!r}")
        test = [line.strip() for line in args.test.read_text().splitlines() if line.strip()]
    table = split(adata, kind=args.split, seed=args.seed, test_conditions=test)
    logger.info("split:\n%s", table.to_string())
    return adata


def _add_go_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--go",
        type=Path,
        default=None,
        help="gene -> GO term file (GAF, gene2go or two-column TSV); default: bundled human",
    )


def _go_annotations(args: argparse.Namespace) -> pd.DataFrame | None:
    from ..graphs import read_annotations

    return None if args.go is None else read_annotations(args.go)


# -- train ----------------------------------------------------------------------------------
def _run_train(args: argparse.Namespace) -> None:
    from ..models import GEARS

    adata = _read_split(args)
    model = GEARS(
        adata,
        seed=args.seed,
        device=args.device,
        n_models=args.n_models,
        go_annotations=_go_annotations(args),
    )
    model.train(max_epochs=args.epochs)
    model.save(args.out, overwrite=args.overwrite)
    best = model.results[0]
    print(
        f"trained GEARS ({len(best.history)} epochs, best {best.best_epoch}); saved to {args.out}"
    )


def register_train(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim train``."""
    parser = commands.add_parser("train", help="train GEARS on a screen and save it")
    _add_data_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--epochs", type=int, default=200, help="maximum epochs (early stopping)")
    parser.add_argument("--n-models", type=int, default=1, help="ensemble size")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _add_go_option(parser)
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
def _run_evaluate(args: argparse.Namespace) -> None:
    from ..ds import read
    from ..pl import write_report
    from ..tl import evaluate

    adata = read(args.data, perturbation_key=args.perturbation_key, control=args.control)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    go = _go_annotations(args)
    gears = [m for m in models if m.startswith("gears")]
    model_kwargs = {m: {"go_annotations": go} for m in gears} if go is not None else None
    result = evaluate(
        adata, models=models, split=args.split, seeds=args.seeds, model_kwargs=model_kwargs
    )
    write_report(result, args.out)
    print(_headline(result.summary()).to_string())
    print(f"\nwrote scores, summary, report and plots to {args.out}")


def register_evaluate(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim evaluate``."""
    parser = commands.add_parser("evaluate", help="GEARS against every baseline, seeds x splits")
    parser.add_argument("data", help="screen as .h5ad")
    parser.add_argument("--perturbation-key", default="condition")
    parser.add_argument("--control", default=None)
    parser.add_argument("--split", choices=SPLITS[:3], default="simulation")
    parser.add_argument("--seeds", type=int, default=5, help="number of split seeds")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated registry names or GEARS variants (gears_reference, "
        "gears_cold_start, gears_residual, gears_ensemble, gears_residual_ensemble)",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the report")
    _add_go_option(parser)
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
    from ..pl import write_report
    from ..pp import DEGenes, condition_table, rank_de, split
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
    print(split(adata.copy(), kind="simulation", seed=1).to_string(index=False))
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


REGISTRARS = (register_demo, register_train, register_predict, register_evaluate)
