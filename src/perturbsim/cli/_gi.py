"""``perturbsim gi`` and ``perturbsim measured-gi``: genetic interactions of pairs.

``gi`` predicts every single and pair of a gene list with a trained model and scores the
predicted interactions; ``measured-gi`` scores the pairs a screen measured, from their
measured means. Both write ``gi_scores.csv`` (:func:`perturbsim.tl.gi_scores`) and
``gi_map.png`` (:func:`perturbsim.pl.gi_map`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._atomic import atomic_write_all
from .._checks import check_nonnegative
from .._errors import PerturbsimError, counted, shown_list
from .._keys import CONTROL, PRED_N_TARGETS
from .._settings import switched_off
from ..models import PerturbationModel
from ..models._base import WARN_SUMMED
from ..pp import genes_of
from ..pp._gi import (
    FEW_GENES,
    MIN_RELIABILITY,
    SUM_OF_SINGLES,
    WARN_NOISY_SINGLES,
    GIRules,
    flag_kind,
    gi_split_half,
    is_scored,
    is_summed,
    resolve_abundance,
    unscored_for_few_de_only,
)
from ..pp._labels import singles_of
from ..pp._pseudobulk import MIN_REPLICATE_CELLS, PseudobulkStats, current_stats
from ._parser import (
    FIGURE_DPI,
    add_command,
    add_overwrite,
    path_argument,
    read_list,
    refuse_outputs,
)
from ._screen import add_screen_options, cli_wording, go_annotations, read_screen

if TYPE_CHECKING:
    from anndata import AnnData

MAGNITUDE_SCORES = {"gears": "magnitude", "norman": "mean_abs_coef"}
"""``--magnitude`` -> the score column the subtype rules read (:class:`GIRules`)."""
MEASURED_GI_FILES = ("gi_scores.csv", "gi_per_gene.csv", "gi_map.png")
"""What ``perturbsim measured-gi`` writes into its ``--out``."""
PER_GENE_FDR = 0.05
"""False discovery rate of ``measured-gi``'s per-gene calls (:func:`~perturbsim.tl.gi_per_gene`)."""
PER_GENE_TOP = 20
"""Genes of each pair ``measured-gi`` lists in ``gi_per_gene.csv`` beside the ones it calls:
those of the smallest p-values, called or not."""


def _add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--magnitude`` and ``--abundance``, how the pairs are scored and called."""
    parser.add_argument(
        "--magnitude",
        choices=tuple(MAGNITUDE_SCORES),
        default="gears",
        help="scale of the magnitude rules: gears (default, sqrt(c1² + c2²), the GEARS "
        "paper's thresholds: an exactly additive pair, magnitude 1.41, is a synergy) or "
        "norman ((|c1| + |c2|) / 2, Norman's published scale: an additive pair is 1 and "
        "is_additive, though its primary subtype may be another that holds too)",
    )
    parser.add_argument(
        "--abundance",
        type=float,
        default=None,
        metavar="X",
        help="fit each pair on the genes whose mean control expression exceeds X (0 keeps "
        "every expressed gene); default: Norman's 0.5 (on UMI counts) where at least "
        f"{FEW_GENES} genes exceed it, else 0, as perturbsim evaluate does",
    )


def _rules_of(args: argparse.Namespace) -> GIRules:
    """The subtype rules of ``--magnitude``, once ``--abundance`` is checked."""
    if args.abundance is not None:
        check_nonnegative("--abundance", args.abundance)
    return GIRules(magnitude_score=MAGNITUDE_SCORES[args.magnitude])


def _print_scores(
    args: argparse.Namespace,
    scores: pd.DataFrame,
    n_genes: int,
    control_mean: np.ndarray,
    whose: str,
) -> None:
    """Print what was scored (:func:`_gi_summary`) and on which genes (``whose`` genes)."""
    print(_gi_summary(scores, n_genes, args.magnitude))
    if not is_scored(scores).any():
        return
    abundance = resolve_abundance(control_mean, args.abundance)
    given = args.abundance is not None
    print(_fitted_genes_text(scores, control_mean.size, abundance, given, whose=whose))


# -- gi -------------------------------------------------------------------------------------
def _gi_summary(scores: pd.DataFrame, n_genes: int, magnitude: str) -> str:
    """What ``gi`` and ``measured-gi`` print: pairs scored, flagged by reason, subtypes."""
    flags = scores["flag"].astype(str)
    scored = int((flags == "").sum())
    lines = [f"{counted(n_genes, 'gene')} in {counted(len(scores), 'pair')}: {scored} scored"]
    reasons = flags[flags != ""].map(lambda flag: cli_wording(flag_kind(flag)))
    for reason, count in reasons.value_counts().items():
        lines.append(f"  not scored ({reason}): {count}")
    if not scored:
        return "\n".join(lines)
    summed = is_summed(scores) & (flags == "")  # predictions only
    shown = scores[(flags == "") & ~summed]
    if summed.any():
        lines.append(
            f"  {int(summed.sum())} of the {scored} predicted as the sum of their singles "
            f"(column {SUM_OF_SINGLES} of gi_scores.csv; exactly so but where a predicted "
            "expression is floored at 0): no interaction predicted, their "
            "subtypes are those of the additive model"
            + (", not counted below" if len(shown) else "")
            + " (for pairs the screen measured, score their measured means: perturbsim "
            "measured-gi DATA.h5ad)"
        )
    subtypes = [c for c in scores.columns if c.startswith("is_")]
    counts = ", ".join(f"{c[3:]} {int(shown[c].sum())}" for c in subtypes)
    which = (
        f"the {counted(len(shown), 'pair')} with a predicted interaction"
        if summed.any()
        else "the scored pairs"
    )
    if len(shown):
        lines.append(f"subtypes of {which} (a pair may have several): {counts}")
    signs = shown.reindex(columns=["c1", "c2"]).astype(float)  # a table without them: none
    reversing = shown[(signs < 0).any(axis=1)]
    if len(reversing):
        lines.append(
            f"  {counted(len(reversing), 'of them has', 'of them have')} a negative coefficient "
            f"(e.g. {reversing.index[0]}: a single's change reversed in the pair): the "
            "magnitude drops the sign, so read c1 and c2 before its synergy or additive call"
        )
    if magnitude == "gears":
        lines.append(
            "  (--magnitude gears, the GEARS paper's scale: an exactly additive pair counts as "
            "a synergy; with --magnitude norman it is additive: is_additive; subtypes "
            "overlap, and the primary one may be another that holds too)"
        )
    return "\n".join(lines)


def _fitted_genes_text(
    scores: pd.DataFrame, n_genes: int, abundance: float, given: bool, whose: str = "model"
) -> str:
    """What ``perturbsim gi`` says of the genes each pair was fitted on.

    ``given``: the threshold was ``--abundance``'s, not the default's choice; ``whose``
    genes they are (the model's, or the screen's).
    """
    fitted = int(scores["n_genes"].max())
    if given:
        why = "--abundance"
    elif abundance == 0:
        why = (
            f"every expressed gene, as fewer than {FEW_GENES} exceed Norman's 0.5; "
            "--abundance sets another"
        )
    else:
        why = "Norman's threshold; --abundance sets another"
    return (
        f"each pair fitted on up to {fitted} of the {whose}'s {n_genes} genes: those whose "
        f"mean control expression exceeds {abundance:g} ({why}), the pair's own genes left out"
    )


GI_FILES = ("predictions.h5ad", "gi_scores.csv", "gi_map.png")
"""What ``perturbsim gi`` writes into its ``--out`` (the map with two scored pairs or more)."""


def _write_gi_files(
    out: Path,
    tables: dict[str, Callable[[Path], object]],
    map_name: str,
    scores: pd.DataFrame,
    rules: GIRules,
    what: str,
) -> str:
    """Write ``tables`` (file name -> writer) and the GI map of ``scores`` into ``out``.

    The map shows the scores ``rules`` read (:meth:`GIRules.map_columns`); its title says
    the pairs are ``what`` (``"predicted"``, ``"measured"``) and, of measured ones, how
    many have singles too noisy to read (reliability below :data:`MIN_RELIABILITY`).

    All are written before any replaces an earlier run's (:func:`atomic_write_all`). With
    fewer than two scored pairs there is nothing to cluster: no map, and a map of an earlier
    run there (replaced with ``--overwrite``) is removed rather than left stale. Returns
    what the map adds to the list of files written.
    """
    from ..pl import gi_map

    writes = {out / name: write for name, write in tables.items()}
    drawn = int(is_scored(scores).sum()) >= 2
    if drawn:
        ax = gi_map(scores, columns=rules.map_columns())
        lines = ax.get_title().split("\n")
        lines[0] = f"genetic interaction map of {what} pairs"
        noisy, rated = _noisy_singles(scores)
        if what == "measured" and noisy:
            lines.append(
                f"{noisy} of {rated} scored pairs with singles' reliability below "
                f"{MIN_RELIABILITY}: read their scores as noise"
            )
        ax.set_title("\n".join(lines), fontsize="medium")
        writes[out / map_name] = partial(ax.figure.savefig, format="png", dpi=FIGURE_DPI)
    atomic_write_all(writes)
    if not drawn:
        (out / map_name).unlink(missing_ok=True)
        print("no GI map: fewer than 2 pairs were scored")
    return f", {map_name}" if drawn else ""


def _gene_list(value: Path) -> list[str]:
    """``--genes``: the genes of a file, one a line, or the genes themselves joined by commas.

    A value holding a comma that names no file and no folder (no ``/``: a gene name holds
    none) is read as the genes; anything else as a file (:func:`read_list`), whose
    missing-file error then says both forms.
    """
    text = str(value)
    if "," in text and "/" not in text and os.sep not in text and not value.exists():
        genes = [gene.strip() for gene in text.split(",")]
        if not all(genes):
            raise PerturbsimError(f"--genes {text!r}: an empty gene name between commas")
        return genes
    try:
        return read_list(value, "--genes", "genes", joiners=",; \t")
    except PerturbsimError as error:
        if value.exists() or value.is_symlink():
            raise
        if not any(c in text for c in "/.; \t" + os.sep):  # one gene's name?
            raise PerturbsimError(
                f"--genes {text!r}: no such file, and one gene makes no pair: give at least "
                "two genes joined by commas (KLF1,MAP2K6) or a file of genes, one a line"
            ) from None
        raise PerturbsimError(
            f"{error} (give a file of genes, one a line, or the genes joined by commas: "
            "KLF1,MAP2K6,CEBPE)"
        ) from None


def _run_gi(args: argparse.Namespace) -> None:
    rules = _rules_of(args)
    genes = _gene_list(args.genes)  # a folder given is named as such, not as an output clash
    refuse_outputs(args.out, GI_FILES, args.overwrite, inputs=[args.model, args.genes])
    model = PerturbationModel.load(args.model)
    with switched_off(WARN_SUMMED):  # printed below, with the scores
        pred = model.predict_pairs(
            genes, skip_unknown=args.skip_unknown, abundance=args.abundance, rules=rules
        )
    pairs = pred.obs[PRED_N_TARGETS] == 2
    scores = pred.obs.loc[pairs].drop(columns=PRED_N_TARGETS)
    tables = {GI_FILES[0]: pred.write_h5ad, GI_FILES[1]: partial(scores.to_csv, index_label="pair")}
    drawn = _write_gi_files(args.out, tables, GI_FILES[2], scores, rules, "predicted")
    _print_scores(args, scores, int((~pairs).sum()), np.asarray(model.control_mean), "model")
    held = set(singles_of(model.held_out_conditions or [])).intersection(pred.obs_names)
    if held:
        print(
            f"warning: {counted(len(held), 'gene was', 'genes were')} measured alone but held "
            f"out by the model's split: {shown_list(sorted(held), 10)}; the singles of such "
            "genes, and so their pairs' interactions, are predicted without those "
            "measurements (train with --split none to fit on every condition)"
        )
    held_pairs = scores.index.intersection(model.held_out_conditions or [])
    if len(held_pairs):
        print(
            f"warning: {counted(len(held_pairs), 'of these pairs was', 'of these pairs were')} "
            f"measured by the screen but held out by the model's split: "
            f"{shown_list(list(held_pairs), 10)}; their rows are predictions made without "
            "those measurements (score the measured means with perturbsim measured-gi; train "
            "with --split none to fit on them)"
        )
    measured = scores.index.intersection(model.fitted_conditions or [])
    if len(measured):
        print(
            f"{counted(len(measured), 'of these pairs was', 'of these pairs were')} measured "
            "in the model's fit (e.g. "
            f"{measured[0]}): their rows too are its predictions, not the measurements "
            "(score measured means with perturbsim measured-gi)"
        )
    print(f"wrote predictions.h5ad, gi_scores.csv{drawn} to {args.out}")


def register_gi(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim gi``."""
    parser = add_command(
        commands,
        "gi",
        help="predict every single and pair of a gene list and score their interactions",
    )
    parser.add_argument("model", type=path_argument, help="model directory from `perturbsim train`")
    parser.add_argument(
        "--genes",
        type=path_argument,
        required=True,
        metavar="GENES",
        help="the genes: a file, one a line (# starts a comment), or genes joined by commas "
        "(KLF1,MAP2K6,CEBPE)",
    )
    parser.add_argument(
        "--out",
        type=path_argument,
        required=True,
        metavar="DIR",
        help="directory for predictions.h5ad, gi_scores.csv and, with 2 scored pairs or more, "
        "gi_map.png (the pairs' scores clustered, as perturbsim.pl.gi_map draws them)",
    )
    add_overwrite(parser, "the files of an earlier run in --out")
    parser.add_argument(
        "--skip-unknown",
        action="store_true",
        help="leave out the genes the model cannot predict instead of stopping",
    )
    _add_scoring_options(parser)
    parser.set_defaults(run=_run_gi)


# -- measured-gi ----------------------------------------------------------------------------
def _split_half_text(stats: PseudobulkStats, scores: pd.DataFrame, fitted: np.ndarray) -> str:
    """How well the pairs' departures from their singles' sum replicate (:func:`gi_split_half`).

    Checked: the pairs scored, and those unscored only for their few DE genes (the check
    is the evidence on those too), on the ``fitted`` genes. Adds each pair's ``r`` to
    ``scores`` (``split_half_r``, empty where not checked) and returns the line to print:
    the median; ``""`` when no pair could be checked or the statistics stored with the
    file lack the halves.
    """
    scores["split_half_r"] = np.nan
    if stats.half_moments is None or stats.half_n is None:
        return ""
    checked = scores.index[is_scored(scores) | unscored_for_few_de_only(scores)]
    replicated = gi_split_half(stats, list(checked), genes=fitted)
    scores.loc[checked, "split_half_r"] = replicated.to_numpy()
    correlations = replicated.dropna()
    if correlations.empty:
        return ""
    return (
        f"split-half check: the pairs' departures from their singles' sum (pairs scored or "
        f"unscored for --min-de only) correlate at a median r = {correlations.median():.2f} "
        f"between two random halves of the cells ({counted(len(correlations), 'pair')}, each in "
        "split_half_r; near 1: reproducible interactions, near 0: noise, and so are the "
        "subtypes)"
    )


def _per_gene_calls(
    stats: PseudobulkStats, profiles: AnnData, scores: pd.DataFrame, args: argparse.Namespace
) -> tuple[pd.DataFrame, str]:
    """The genes of each scored pair off its singles' sum (:func:`~perturbsim.tl.gi_per_gene`).

    Adds each pair's counts of genes called ``synergy`` and ``buffering`` to ``scores``
    (``n_synergy_genes``, ``n_buffering_genes``; empty for the pairs not scored, whose
    flag says why) and returns the rows to write, with what to print of them: every gene
    called and each pair's :data:`PER_GENE_TOP` genes of the smallest p-values, most
    significant first.
    """
    from ..tl import gi_per_gene

    scored = list(scores.index[is_scored(scores)])
    table = gi_per_gene(  # no pair given: an empty table, its columns named
        profiles, pairs=scored, se=stats, fdr=PER_GENE_FDR, min_cells=args.min_cells
    )
    called = table[table["call"].isin(["synergy", "buffering"])]
    for call in ("synergy", "buffering"):
        counts = called.loc[called["call"] == call, "pair"].value_counts()
        scores[f"n_{call}_genes"] = (
            counts.reindex(scored, fill_value=0).reindex(scores.index).astype("Int64")
        )
    rank = table.groupby("pair")["p"].rank(method="first")
    listed = table[table.index.isin(called.index) | (rank <= PER_GENE_TOP)]
    listed = listed.sort_values(["pair", "p"], kind="stable")
    if not scored:
        return listed, "per-gene calls: none, no pair was scored"
    text = (
        "per-gene calls of the scored pairs (each gene's departure from the singles' sum, "
        f"Welch t on moderated variances, FDR {PER_GENE_FDR:g} over every pair and gene): "
        f"{len(called)} of {int(table['p'].notna().sum())} off the sum (synergy "
        f"{int((called['call'] == 'synergy').sum())}, buffering "
        f"{int((called['call'] == 'buffering').sum())}), in "
        f"{counted(called['pair'].nunique(), 'pair')}; each pair's counts in gi_scores.csv, "
        f"its calls and {PER_GENE_TOP} most significant genes in gi_per_gene.csv"
    )
    return listed, text


def _noisy_singles(scores: pd.DataFrame) -> tuple[int, int]:
    """Scored pairs whose singles' reliability is below :data:`MIN_RELIABILITY`, of those rated."""
    reliability = scores.loc[is_scored(scores), "reliability"].dropna()
    return int((reliability < MIN_RELIABILITY).sum()), len(reliability)


def _reliability_text(scores: pd.DataFrame) -> str:
    """How many scored pairs have singles whose noise rivals their spread, and what it does.

    ``""`` when no scored pair has a reliability (none scored).
    """
    noisy, rated = _noisy_singles(scores)
    if not rated:
        return ""
    text = (
        f"singles' reliability (column reliability: the share of their spread over the "
        f"fitted genes that is not noise, below 0 where a single is all noise): {noisy} of "
        f"{rated} scored pairs below {MIN_RELIABILITY}"
    )
    if noisy:
        text += (
            "; noise draws their coefficients from the truth towards a fit of noise, so their "
            "subtypes lean to suppression and neomorphism: read them as noise"
        )
    if "corrected" in scores:
        corrected = int(scores.loc[is_scored(scores), "corrected"].sum())
        return text + (
            f"; {corrected} at or above it corrected for the noise (--correct-noise: c1, c2, "
            "the magnitudes and the subtypes; the fit's own in c1_uncorrected, "
            "c2_uncorrected; noise still lowers fit_corr: neomorphisms stay over-called)"
        )
    if rated > noisy:
        text += (
            f"; --correct-noise corrects the coefficients of the {rated - noisy} at "
            "or above it for the bias noise still puts in them"
        )
    return text


def _run_measured_gi(args: argparse.Namespace) -> None:
    from ..pp import count_de, measured_profiles, pseudobulk
    from ..tl import gi_scores

    rules = _rules_of(args)
    if args.min_de < 0:
        raise PerturbsimError(f"--min-de must be at least 0, got {args.min_de}")
    refuse_outputs(args.out, MEASURED_GI_FILES, args.overwrite, inputs=[args.data])
    adata = read_screen(args, go_annotations(args))  # --go: the genes labels may name
    pseudobulk(adata, coexpression="none")  # one pass: the profiles and the halves read it
    profiles = measured_profiles(adata)
    n_targets = profiles.obs[PRED_N_TARGETS].to_numpy()
    pairs = profiles.obs_names[n_targets == 2]
    if (n_targets > 2).any():
        larger = list(profiles.obs_names[n_targets > 2])
        print(
            f"{counted(len(larger), 'condition')} of three genes or more not scored (the "
            f"interaction model is of pairs): {shown_list(larger, 5)}"
        )
    if len(pairs) == 0:
        raise PerturbsimError(f"{str(args.data)!r} measured no pair of two genes: nothing to score")
    stats = current_stats(adata)
    fitted = stats.control_mean > resolve_abundance(stats.control_mean, args.abundance)
    n_de = count_de(stats, list(pairs), genes=fitted)
    with switched_off(WARN_NOISY_SINGLES):  # printed below, with the scores
        scores = gi_scores(
            profiles,
            abundance=args.abundance,
            rules=rules,
            min_cells=args.min_cells,
            n_de=n_de.to_dict(),
            min_de=args.min_de,
            noise_correction=args.correct_noise,
        )
    scores["n_de"] = scores["n_de"].astype("Int64")
    scores.insert(0, "n_cells", profiles.obs.loc[scores.index, "n_cells"].to_numpy())
    listed, per_gene_text = _per_gene_calls(stats, profiles, scores, args)
    replicated = _split_half_text(stats, scores, fitted)
    tables = {
        MEASURED_GI_FILES[0]: scores.to_csv,
        MEASURED_GI_FILES[1]: partial(listed.to_csv, index=False),
    }
    drawn = _write_gi_files(args.out, tables, MEASURED_GI_FILES[2], scores, rules, "measured")
    n_genes = len({gene for pair in pairs for gene in genes_of(pair)})
    control_mean = np.asarray(profiles[CONTROL].X, dtype=float).ravel()
    _print_scores(args, scores, n_genes, control_mean, "screen")
    cells = scores.loc[is_scored(scores), "n_cells"]
    if len(cells):
        print(
            f"cells of the scored pairs: {int(cells.min())} to {int(cells.max())} (median "
            f"{int(cells.median())}): the fewer, the noisier a pair's mean and its scores"
        )
    if replicated:
        print(replicated)
    reliable = _reliability_text(scores)
    if reliable:
        print(reliable)
    print(per_gene_text)
    print(f"wrote gi_scores.csv, gi_per_gene.csv{drawn} to {args.out}")


def register_measured_gi(commands: argparse._SubParsersAction) -> None:
    """Register ``perturbsim measured-gi``."""
    parser = add_command(
        commands,
        "measured-gi",
        help="score the interactions of the pairs a screen measured, from their measured means",
    )
    add_screen_options(parser, streams=True)
    parser.add_argument(
        "--out",
        type=path_argument,
        required=True,
        metavar="DIR",
        help="directory for gi_scores.csv (a row per measured pair, its cells in n_cells), "
        f"gi_per_gene.csv (the genes whose change departs significantly from the singles' "
        f"sum, and each pair's {PER_GENE_TOP} most significant) and, with 2 scored pairs or "
        "more, gi_map.png",
    )
    add_overwrite(parser, "the files of an earlier run in --out")
    _add_scoring_options(parser)
    parser.add_argument(
        "--min-cells",
        type=int,
        default=MIN_REPLICATE_CELLS,
        metavar="N",
        help="leave unscored (flagged) the pairs whose own mean or a single's averages fewer "
        f"than N cells (default {MIN_REPLICATE_CELLS}: the mean of fewer cells is mostly "
        "noise, read as a neomorphism); 1 scores them all",
    )
    parser.add_argument(
        "--min-de",
        type=int,
        default=0,
        metavar="N",
        help="leave unscored (flagged) the pairs with at most N DE genes among the fitted "
        "genes (moderated Welch t against control, BH-adjusted p < 0.001; counts in n_de). "
        "Default 0: pairs that change no gene, whose fit reads noise; Norman et al. scored "
        "pairs with more than 10 (of a whole transcriptome)",
    )
    parser.add_argument(
        "--correct-noise",
        action="store_true",
        help=f"correct the coefficients of the pairs whose singles' reliability is at least "
        f"{MIN_RELIABILITY} for the bias the singles' measurement noise puts in the fit "
        "(simulation-extrapolation of Norman's Theil-Sen fit; about 80 fits a pair, so slower); "
        "magnitude, mean_abs_coef, dominance and the subtypes follow (fit_corr stays the fit's "
        "own), the fit's own coefficients are kept in c1_uncorrected and c2_uncorrected, and "
        "column corrected says which pairs were. It corrects the magnitude's bias reliably, "
        "each coefficient less so. Off by default (Norman's published scores are uncorrected)",
    )
    parser.set_defaults(run=_run_measured_gi)
