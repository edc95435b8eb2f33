from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from unittest import mock

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import UNCALIBRATED, make_screen, one_condition_result

import perturbsim as ps
from perturbsim.cli import main
from perturbsim.cli._commands import _headline
from perturbsim.pp._label_hint import label_hint


@pytest.fixture
def screen(tiny) -> ad.AnnData:
    """The ``tiny`` simulated screen as a user's file holds it: labels, X and raw counts."""
    return ad.AnnData(
        X=tiny.X.copy(),
        obs=tiny.obs[["condition"]].astype(str),
        var=pd.DataFrame(index=tiny.var_names.copy()),
        layers={"counts": tiny.layers["counts"].copy()},
    )


@pytest.fixture
def go_file(tiny_go, tmp_path) -> Path:
    """The GO-like annotations of the simulated genes as a two-column TSV."""
    path = tmp_path / "go.tsv"
    tiny_go.to_csv(path, sep="\t", index=False)
    return path


def _write(adata: ad.AnnData, path: Path) -> str:
    adata.write_h5ad(path)
    return str(path)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def _underscore_labels(adata: ad.AnnData) -> ad.AnnData:
    adata.obs["condition"] = adata.obs["condition"].str.replace("+", "_", regex=False)
    return adata


def _train(data: str, out: Path, *options: str) -> int:
    return main(["train", data, "--out", str(out), "--control", "control", *options])


def test_a_file_of_several_screens_is_refused_unless_one_is_picked_or_pooled(capsys, tmp_path):
    screen = ps.ds.simulate(size="tiny", seed=0)
    screen.obs["dataset"] = np.where(np.arange(screen.n_obs) % 3 == 0, "other19", "mine23")
    data = _write(screen, tmp_path / "two.h5ad")
    assert _train(data, tmp_path / "m", "--model", "mean") == 2
    assert _one_line_error(capsys) == (
        "perturbsim train: error: obs['dataset'] names 2 screens (mine23, other19): pooled, "
        "each condition (control included) would mix their cells and read their differences "
        "as effects; pick one of them (--where dataset=VALUE), or pass --pool-datasets"
    )
    assert not (tmp_path / "m").exists()
    assert _train(data, tmp_path / "one", "--model", "mean", "--where", "dataset=mine23") == 0
    assert _train(data, tmp_path / "both", "--model", "mean", "--pool-datasets") == 0
    # a model trained on one screen's own file, exported from the file of both: refused too
    screen[screen.obs["dataset"] == "mine23"].copy().write_h5ad(tmp_path / "mine.h5ad")
    assert _train(str(tmp_path / "mine.h5ad"), tmp_path / "own", "--model", "mean") == 0
    capsys.readouterr()
    export = ["export", str(tmp_path / "own"), data, "--out", str(tmp_path / "export")]
    assert main(export) == 2
    assert "obs['dataset'] names 2 screens" in _one_line_error(capsys)
    assert main([*export, "--where", "dataset=mine23"]) == 0
    # a model trained on both, pooled, exports both by default
    pooled = ["export", str(tmp_path / "both"), data, "--out", str(tmp_path / "pooled")]
    assert main(pooled) == 0
    # the cells of one screen in a file of their own, without the column the model was
    # filtered by: --where none reads every cell of it
    alone = screen[screen.obs["dataset"] == "mine23"].copy()
    del alone.obs["dataset"]
    alone.write_h5ad(tmp_path / "alone.h5ad")
    capsys.readouterr()
    from_alone = ["export", str(tmp_path / "one"), str(tmp_path / "alone.h5ad")]
    assert main([*from_alone, "--out", str(tmp_path / "e1")]) == 2
    assert "obs has no column 'dataset'" in _one_line_error(capsys)
    assert main([*from_alone, "--out", str(tmp_path / "e2"), "--where", "none"]) == 0
    assert (
        main([*from_alone, "--out", str(tmp_path / "e3"), "--where", "none", "--where", "a=b"]) == 2
    )
    assert "--where none keeps every cell: give it alone" in _one_line_error(capsys)


def test_where_trains_on_the_cells_of_one_cell_type(capsys, tmp_path, caplog):
    screen = ps.ds.simulate(size="tiny", seed=0)
    screen.obs["cell_type"] = np.where(np.arange(screen.n_obs) % 3 == 0, "A172", "K562")
    data = _write(screen, tmp_path / "mixed.h5ad")
    assert _train(data, tmp_path / "bad", "--model", "mean", "--where", "cell_type=K652") == 2
    assert _one_line_error(capsys) == (
        "perturbsim train: error: --where: no cell has obs['cell_type'] 'K652' "
        "(its values: A172, K562); did you mean 'K562'?"
    )
    with caplog.at_level("WARNING"):
        assert _train(data, tmp_path / "m", "--model", "mean", "--where", "cell_type=K562") == 0
    assert "holds 2 values" not in caplog.text
    model = ps.models.PerturbationModel.load(tmp_path / "m")

    def control_mean(cells: ad.AnnData) -> np.ndarray:
        control = cells[cells.obs["perturbsim_condition"] == "ctrl"].X
        return np.asarray(control.mean(axis=0)).ravel()

    kept = ps.ds.read(data, control="control", where={"cell_type": "K562"})
    everything = ps.ds.read(data, control="control")
    np.testing.assert_allclose(model.control_mean, control_mean(kept), rtol=1e-5)
    assert not np.allclose(model.control_mean, control_mean(everything), rtol=1e-5)
    assert model.screen_where == {"cell_type": ["K562"]}
    # export reads the cells the model was trained on unless told otherwise
    model_dir = str(tmp_path / "m")
    capsys.readouterr()
    assert main(["export", model_dir, data, "--out", str(tmp_path / "x")]) == 0
    assert capsys.readouterr().out.startswith(
        f"read the {kept.n_obs} cells kept by --where cell_type=K562 (the cells {model_dir} "
        "was trained on)"
    )
    both = ["--where", "cell_type=K562", "--where", "cell_type=A172"]
    with caplog.at_level("WARNING"):
        assert main(["export", model_dir, data, "--out", str(tmp_path / "y"), *both]) == 0
    assert "keeps other cells than" in caplog.text  # told it differs from the training cells
    caplog.clear()
    same = ["--where", "cell_type=K562", "--where", "cell_type=K562"]  # written otherwise
    with caplog.at_level("WARNING"):
        assert main(["export", model_dir, data, "--out", str(tmp_path / "z"), *same]) == 0
    assert "keeps other cells" not in caplog.text
    kept_real, all_real = (ad.read_h5ad(tmp_path / d / "real.h5ad") for d in ("x", "y"))
    assert kept_real.n_obs < all_real.n_obs  # a third of each condition's cells are A172
    other = screen.copy()  # a file without the column: the error says whose --where it was
    del other.obs["cell_type"]
    other_file = _write(other, tmp_path / "other.h5ad")
    assert main(["export", model_dir, other_file, "--out", str(tmp_path / "w")]) == 2
    error = _one_line_error(capsys)
    assert "--where: obs has no column 'cell_type'" in error
    assert (
        f"(this --where is the one {model_dir!r} was trained with, --where cell_type=K562;" in error
    )
    missing = str(tmp_path / "missing.h5ad")  # no fault of the filter: not said to be
    assert main(["export", model_dir, missing, "--out", str(tmp_path / "w")]) == 2
    error = _one_line_error(capsys)
    assert "missing.h5ad" in error and "this --where" not in error
    assert kept_real.n_obs / all_real.n_obs == pytest.approx(kept.n_obs / everything.n_obs, 0.05)
    # a filter that leaves out the held-out conditions: named, with the fix
    export = ["export", model_dir, data, "--out", str(tmp_path / "w")]
    assert main([*export, "--where", "condition=control"]) == 2
    n_held_out = len(model.held_out_conditions)
    assert re.fullmatch(
        "perturbsim export: error: no cells among those kept by --where condition=control for "
        f"{n_held_out} of the {n_held_out} conditions held out by {re.escape(model_dir)} "
        f"\\(e\\.g\\. '[^']+'\\); leave out --where to read the cells {re.escape(model_dir)} "
        "was trained on",
        _one_line_error(capsys),
    )
    # a comma-separated list is one value: the fix is named in CLI words
    assert _train(data, tmp_path / "c", "--model", "mean", "--where", "cell_type=K562,A172") == 2
    assert _one_line_error(capsys).endswith(
        "several values? repeat it: --where cell_type=K562 --where cell_type=A172"
    )
    # an evaluation says which cells it read, in its settings and its report's title
    report = tmp_path / "report"
    run = ["evaluate", data, "--control", "control", "--models", "mean", "--seeds", "1"]
    assert main([*run, "--where", "cell_type=K562", "--no-gi", "--out", str(report)]) == 0
    screen_read = json.loads((report / "settings.json").read_text())["screen"]
    assert screen_read["file"] == data and screen_read["where"] == {"cell_type": ["K562"]}
    assert "(--where cell_type=K562)" in (report / "report.md").read_text().splitlines()[0]


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_export_reads_the_screen_by_the_columns_the_model_was_trained_on(screen, tmp_path):
    screen.obs = screen.obs.rename(columns={"condition": "guide"})
    screen.var["symbol"] = list(screen.var_names)
    screen.var_names = [f"ENSG{i:05d}" for i in range(screen.n_vars)]
    data = _write(screen, tmp_path / "ids.h5ad")
    options = ["--model", "mean", "--perturbation-key", "guide", "--gene-key", "symbol"]
    assert _train(data, tmp_path / "model", *options) == 0
    labels = ps.models.PerturbationModel.load(tmp_path / "model").screen_labels
    assert labels["perturbation_key"] == "guide" and labels["gene_key"] == "symbol"
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "model"), data, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".h5ad")


def test_export_compares_the_cells_a_filter_keeps_not_their_names(tmp_path, caplog):
    screen = ps.ds.simulate(size="tiny", seed=0)
    screen.obs["lane"] = np.where(np.arange(screen.n_obs) % 2 == 0, "L1", "L2")
    screen.obs_names = [f"c{i % (screen.n_obs // 2)}" for i in range(screen.n_obs)]  # reused
    data = _write(screen, tmp_path / "lanes.h5ad")
    assert _train(data, tmp_path / "all", "--model", "mean") == 0  # every cell
    assert _train(data, tmp_path / "l1", "--model", "mean", "--where", "lane=L1") == 0
    exports = {
        "all, one lane": ("all", ["--where", "lane=L1"]),
        "one lane, both": ("l1", ["--where", "lane=L1", "--where", "lane=L2"]),
        "one lane, the same": ("l1", ["--where", "lane=L1"]),
    }
    warned = {}
    for name, (model, where) in exports.items():
        caplog.clear()
        out = str(tmp_path / name.replace(" ", "_").replace(",", ""))
        with caplog.at_level("WARNING"):
            assert main(["export", str(tmp_path / model), data, "--out", out, *where]) == 0
        warned[name] = "keeps other cells than" in caplog.text
    # the same names in both lanes: told apart by the cells, not by their names
    assert warned == {"all, one lane": True, "one lane, both": True, "one lane, the same": False}


def test_scores_text_explains_scores_above_the_replicate_and_far_from_the_anchors():
    from perturbsim.cli._commands import _scores_text
    from perturbsim.tl import EvaluationResult

    # pearson_delta_de on one unseen single a seed; the mean 0, the replicate's halves 0.6
    # (0.75 at full depth, Spearman-Brown): the anchors' span
    values = {"stacked": 0.9, "wild": -3.0, "linear": 0.3, "mean": 0.0, "replicate": 0.6}
    scores = pd.DataFrame(
        [
            (model, seed, "unseen_single", f"G{seed}", "pearson_delta_de", value)
            for seed in (1, 2, 3)
            for model, value in values.items()
        ],
        columns=["model", "seed", "subgroup", "condition", "metric", "value"],
    )
    coverage = pd.DataFrame(
        [(model, seed, "unseen_single", 1, 1) for model in values for seed in (1, 2, 3)],
        columns=["model", "seed", "subgroup", "n_covered", "n_total"],
    )
    result = EvaluationResult(scores=scores, coverage=coverage, settings={"models": list(values)})
    text = _scores_text(result.summary(), result.calibrated(), result.coverage_table())
    # the default's 0.9 / 0.75 = 1.2: beyond the replicate, explained
    assert "above 1: better than the replicate, the split-half estimate" in text
    # wild's -3.0 / 0.75 = -4: named with its score; linear's 0.4 is not
    far = "far outside the anchors (|score| > 3): wild pearson_delta_de unseen_single -4.00;"
    assert far in text
    assert "linear pearson_delta_de" not in text
    sensible = scores[scores["model"].isin(["linear", "mean", "replicate"])]
    quiet = EvaluationResult(scores=sensible, coverage=coverage, settings={"models": ["linear"]})
    text = _scores_text(quiet.summary(), quiet.calibrated(), quiet.coverage_table())
    assert "above 1" not in text and "far outside" not in text
    # a model no better than the mean prints 0.00, as the others print two decimals
    flat = scores.assign(value=scores["value"].where(scores["model"] != "linear", 0.0))
    level = EvaluationResult(scores=flat, coverage=coverage, settings={"models": list(values)})
    text = _scores_text(level.summary(), level.calibrated(), level.coverage_table())
    row = next(line for line in text.splitlines() if line.startswith("pearson_delta_de"))
    assert " 0.00 " in f"{row} " and " 0.0 " not in f"{row} "


def test_scores_text_leaves_out_a_metric_no_model_is_calibrated_on():
    from perturbsim.cli._commands import _scores_text
    from perturbsim.tl import EvaluationResult

    result = one_condition_result(UNCALIBRATED)
    scores, coverage = result.scores, result.coverage
    text = _scores_text(result.summary(), result.calibrated(), result.coverage_table())
    calibrated, raw = text.split("mean over held-out conditions")
    assert "pearson_delta_de" in calibrated and "NaN" not in calibrated
    assert "not shown: undefined for every model and subgroup in direction_error_de" in text
    assert "direction_error_de" in raw  # its raw means still shown
    # no metric calibrated anywhere: said, no empty table
    undefined = scores[scores["metric"] == "direction_error_de"]
    result = EvaluationResult(scores=undefined, coverage=coverage, settings={"models": ["stacked"]})
    text = _scores_text(result.summary(), result.calibrated(), result.coverage_table())
    assert "none: undefined for every model and subgroup in direction_error_de" in text
    assert "Empty DataFrame" not in text
    # a metric with no calibrated row at all (undefined for the model itself) is named too
    constant = scores[scores["metric"] == "pearson_delta_de"].assign(
        value=lambda t: t["value"].where(t["model"] != "stacked")
    )
    both = pd.concat([constant, undefined.assign(value=0.1)]).query("model != 'replicate'")
    both = pd.concat([both, scores.query("model == 'replicate'")])
    result = EvaluationResult(scores=both, coverage=coverage, settings={"models": ["stacked"]})
    calibrated = result.calibrated()
    assert "pearson_delta_de" not in set(calibrated["metric"])
    text = _scores_text(result.summary(), calibrated, result.coverage_table())
    assert "pearson_delta_de" in text.split("mean over held-out conditions")[0]


def test_scores_text_marks_a_raw_mean_of_part_of_a_subgroup(norman):
    from perturbsim.cli._commands import _scores_text

    result = ps.tl.evaluate(norman, models=["linear", "mean"], seeds=1, gi=False)
    coverage = result.coverage_table()
    part = coverage.query("model == 'linear' and 0 < n_covered < n_total").iloc[0]
    text = _scores_text(result.summary(), result.calibrated(), coverage)
    raw = text.split("mean over held-out conditions")[1].split("held-out conditions each")[0]
    marked = f"linear {part.subgroup} {part.n_covered}/{part.n_total}"
    assert f"part of its subgroup's conditions only, not comparable with the others: {marked}" in (
        raw
    )


def test_train_says_which_held_out_conditions_are_too_small_to_score(norman):
    from perturbsim.cli._commands import _held_out_text

    screen = ps.pp.split(norman, kind="simulation", seed=1, copy=True)
    test = [str(c) for c in screen.uns["perturbsim"]["split"]["test"]]
    assert "too few to score" not in _held_out_text(screen)
    rows = np.flatnonzero(screen.obs["perturbsim_condition"] == test[0])
    kept = np.setdiff1d(np.arange(screen.n_obs), rows[2:])  # 2 cells of the first test condition
    text = _held_out_text(screen[kept].copy())
    assert text.endswith(
        f"; 1 held-out condition has fewer than 4 cells, too few to score (perturbsim evaluate "
        f"leaves it "
        f"out by default): {test[0]}"
    )


def test_train_counts_only_the_conditions_it_fitted_on(norman):
    from perturbsim.cli._commands import _held_out_text

    screen = ps.pp.split(norman, kind="simulation", seed=1, copy=True)
    split = screen.uns["perturbsim"]["split"]
    train = [str(c) for c in split["train"] if str(c) != "ctrl"]
    rows = np.flatnonzero(screen.obs["perturbsim_condition"] == train[0])
    kept = np.setdiff1d(np.arange(screen.n_obs), rows[2:])  # 2 cells: left out of training
    few = screen[kept].copy()
    model = ps.Additive(few).fit()
    assert model.few_cell_conditions == [train[0]]
    assert _held_out_text(few, model.few_cell_conditions).startswith(
        f"split: {len(train) - 1} training and {len(split['val'])} validation conditions "
        "besides control fitted on, 1 more of fewer than 4 cells left out (how a model"
    )


def test_head_to_head_text_names_a_comparison_one_seed_defines_apart():
    from perturbsim.cli._commands import _head_to_head_text
    from perturbsim.tl import EvaluationResult

    rows = []
    for seed in (1, 2, 3):
        values = {  # pearson_delta_de on one unseen single a seed; the mean 0, the replicate 1
            "stacked": 0.5 + 0.01 * seed,
            "linear": 0.7 - 0.01 * seed,  # ahead of the default on every seed: clearly worse
            "twin": 0.502 + 0.01 * seed,  # ahead by a hair on every seed: alike, not worse
            "weak": 0.2 + 0.01 * seed,  # behind the default on every seed: a clear win, named
            "mean": 0.0,
            "replicate": 1.0,
        }
        for model, value in values.items():
            rows.append((model, seed, "unseen_single", f"G{seed}", "pearson_delta_de", value))
    # two pairs of seed 1 only; the replicate as a full-depth repeat spans about 0.97 there
    for condition, replicate in (("G1+G2", 1.0), ("G1+G3", 0.9)):
        for model, value in (("stacked", 0.2), ("linear", 0.6), ("mean", 0.0)):
            rows.append((model, 1, "combo_seen0", condition, "pearson_delta_de", value))
        rows.append(("replicate", 1, "combo_seen0", condition, "pearson_delta_de", replicate))
    scores = pd.DataFrame(
        rows, columns=["model", "seed", "subgroup", "condition", "metric", "value"]
    )
    result = EvaluationResult(
        scores=scores,
        coverage=pd.DataFrame(columns=["model", "subgroup"]),
        settings={"models": ["stacked", "linear", "twin", "weak", "mean", "replicate"]},
    )
    text = _head_to_head_text(result).replace("\n", " ")
    assert text.lstrip().startswith("stacked head to head with linear, twin, weak (each model")
    assert "clearly better in 1 of 4 comparisons (weak pearson_delta_de unseen_single +0.30" in text
    assert "clearly worse in 1: linear" in text
    assert "twin pearson" not in text  # alike: neither a win nor a loss
    assert "pearson_delta_de unseen_single -0.16 [" in text
    assert "behind within noise" not in text
    assert (
        "behind where one seed alone defines the difference (no interval) in 1: linear "
        "pearson_delta_de combo_seen0 -0.41" in text
    )


@pytest.mark.slow
def test_demo_summarises_trains_and_scores_the_bundled_screen(capsys, tmp_path):
    assert main(["--no-progress", "demo", "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "3375 cells x 500 genes" in out
    assert "top DE genes of KLF1:" in out
    for subgroup in ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"):
        assert subgroup in out
    for model in ("stacked", "additive", "linear_go", "mean", "no_perturb"):
        assert model in out
    # grn covers one of the five unseen singles of split seed 1: its score is marked
    assert "scored on part of a subgroup's conditions only" in out
    assert "grn unseen_single 1/5" in out
    assert "calibrated scores, mean over seeds" in out.split("\n\n")[1]
    assert "subgroups: unseen_single: a single of a gene the split held out" in out
    # where the default stands against each model on shared conditions (one seed: no interval)
    head = out[out.index("stacked head to head") :].split("\n\n")[0].replace("\n", " ")
    assert "one seed: no interval): ahead in" in head
    if "behind in" in head:  # each comparison it loses named, with the difference
        assert re.search(r"behind in \d+: \w+ \w+ \w+ -\d", head)
    assert (tmp_path / "report" / "report.md").is_file()


def test_unknown_model_is_a_one_line_error(capsys, tmp_path):
    from perturbsim.ds._paths import bundled_path

    code = main(
        [
            "evaluate",
            str(bundled_path("norman2019_subset.h5ad")),
            "--control",
            "control",
            "--models",
            "gears,magic",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = _one_line_error(capsys)
    assert "unknown model 'magic'" in err
    missing = str(tmp_path / "absent.h5ad")  # refused before the screen is read
    assert main(["evaluate", missing, "--models", "mean,mean", "--out", str(tmp_path)]) == 2
    assert "--models names mean more than once: 'mean,mean'" in _one_line_error(capsys)


def test_unknown_model_of_train_is_a_one_line_error(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "magic") == 2
    assert "unknown model 'magic'; available:" in _one_line_error(capsys)  # nothing close
    assert _train(data, tmp_path / "model", "--model", "stacked_nogears") == 2
    assert "unknown model 'stacked_nogears' (did you mean 'stacked_no_gears'?)" in (
        _one_line_error(capsys)
    )
    assert _train(data, tmp_path / "model", "--model", "GEARS") == 2  # the class's spelling
    assert "unknown model 'GEARS' (did you mean 'gears'?)" in _one_line_error(capsys)
    # a retired name says what replaced it
    assert _train(data, tmp_path / "model", "--model", "stacked_shared") == 2
    err = _one_line_error(capsys)
    assert "'stacked_shared' is no longer a name" in err and "'stacked_no_shared'" in err
    assert not (tmp_path / "model").exists()


def test_models_lists_the_catalogue(capsys):
    from perturbsim.models._catalogue import model_names

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in model_names():
        assert name in out
    assert "``" not in out and ":class:" not in out  # plain text, not the docstrings' markup


def test_help_of_models_lists_the_catalogue(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "gears_residual_ensemble" in out and "no_perturb" in out


def _help(capsys, *command: str) -> str:
    """The help text of ``perturbsim COMMAND``, its lines joined."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_says_what_each_command_does_with_its_own_defaults(capsys):
    top = _help(capsys)
    assert "evaluate score the default model, GEARS and the baselines (or --models)" in top
    train = _help(capsys, "train")
    assert "--control LABEL label of control cells (default: detect ctrl," in train
    assert "(default: +; e.g. _ for KLF1_MAP2K6)" in train and "saved model" not in train
    export = _help(capsys, "export")  # it loads a model: the screen it was trained on
    assert "label of control cells (default: the model's training screen's, else" in export
    assert "(default: the model's training screen's, else +;" in export


def test_mean_model_trains_saves_and_predicts(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "mean") == 0
    assert "trained mean" in capsys.readouterr().out
    out = tmp_path / "pred.csv"
    gene = screen.obs["condition"].iloc[-1].split("+")[0]
    assert main(["predict", str(tmp_path / "model"), gene, "--out", str(out)]) == 0
    prediction = pd.read_csv(out, index_col=0)
    assert prediction.index.tolist() == [gene] and prediction.index.name == "perturbation"
    assert prediction.columns.tolist() == screen.var_names.tolist()
    obs = pd.read_csv(out.with_name("pred.obs.csv"), index_col=0)
    assert obs.index.name == "perturbation" and obs.index.tolist() == [gene]


def test_gears_residual_trains_saves_and_predicts(capsys, screen, go_file, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    options = ["--model", "gears_residual", "--epochs", "2", "--device", "cpu"]
    assert _train(data, tmp_path / "model", *options, "--go", str(go_file)) == 0
    assert "trained gears_residual, best epoch" in capsys.readouterr().out
    pair = next(c for c in screen.obs["condition"] if "+" in c)
    out = tmp_path / "pred.h5ad"
    assert main(["predict", str(tmp_path / "model"), pair, "--out", str(out)]) == 0
    prediction = ad.read_h5ad(out)
    assert prediction.obs_names.tolist() == [pair] and prediction.n_vars == screen.n_vars
    assert main(["predict", str(tmp_path / "model"), "NOTAGENE", "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in _one_line_error(capsys)  # before any work
    again = ["predict", str(tmp_path / "model"), "NOTAGENE", "--out", str(out), "--overwrite"]
    assert main(again) == 2
    assert "not in the model's GO graph" in _one_line_error(capsys)
    assert ad.read_h5ad(out).obs_names.tolist() == [pair]  # a failed run leaves it
    upper = tmp_path / "PRED.H5AD"  # the format follows the suffix in any case
    assert main(["predict", str(tmp_path / "model"), pair, "--out", str(upper)]) == 0
    assert ad.read_h5ad(upper).obs_names.tolist() == [pair]
    assert not (tmp_path / "PRED.obs.csv").exists()


def test_missing_go_file_and_custom_split_without_test_file_are_one_line_errors(
    capsys, screen, tmp_path
):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "m", "--go", str(tmp_path / "no.tsv")) == 2
    assert "no.tsv' not found" in _one_line_error(capsys)
    assert _train(data, tmp_path / "m", "--split", "custom") == 2
    assert "--test FILE" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("flag", "value"), [("--epochs", "2"), ("--n-models", "2"), ("--device", "cpu")]
)
def test_flag_a_model_does_not_take_is_a_one_line_error(capsys, screen, tmp_path, flag, value):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "mean", flag, value) == 2
    assert f"{flag} does not apply to model 'mean'" in _one_line_error(capsys)
    assert not (tmp_path / "model").exists()


def test_epochs_for_the_default_without_its_network_is_a_one_line_error(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    model = ["--model", "stacked_no_gears", "--epochs", "2"]
    assert _train(data, tmp_path / "model", *model) == 2
    assert "--epochs does not apply to model 'stacked_no_gears'" in _one_line_error(capsys)
    assert not (tmp_path / "model").exists()


def test_existing_out_is_an_error_before_training(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    (tmp_path / "model").mkdir()
    assert _train(data, tmp_path / "model", "--model", "mean") == 2
    assert "already exists; pass --overwrite" in _one_line_error(capsys)
    assert _train(data, tmp_path / "model", "--model", "mean", "--overwrite") == 0


def test_overwrite_replaces_only_a_model_directory(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    report = tmp_path / "report"
    report.mkdir()
    (report / "notes.txt").write_text("keep me\n")
    for overwrite in ([], ["--overwrite"]):  # not told to pass --overwrite, which cannot help
        assert _train(data, report, "--model", "mean", *overwrite) == 2
        assert "is not a model directory (no config.json)" in _one_line_error(capsys)
    assert (report / "notes.txt").read_text() == "keep me\n"
    assert _train(data, tmp_path / "screen.h5ad", "--model", "mean", "--overwrite") == 2
    assert "is a file, not a model directory" in _one_line_error(capsys)
    # a model directory is replaced
    assert _train(data, tmp_path / "model", "--model", "mean") == 0
    assert _train(data, tmp_path / "model", "--model", "mean", "--overwrite") == 0
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json",
        "weights.safetensors",
    ]
    # the model and the screen given in each other's place: each named for what it is
    assert main(["evaluate", str(tmp_path / "model"), "--out", str(tmp_path / "ev")]) == 2
    assert "'model' is a saved model's folder, not a screen: give the screen's" in (
        _one_line_error(capsys).replace(str(tmp_path) + "/", "")
    )
    assert main(["predict", data, "A", "--out", str(tmp_path / "p.h5ad")]) == 2
    assert "(a screen's file: give the folder of a saved model here)" in _one_line_error(capsys)
    screen.write_zarr(tmp_path / "screen.zarr")  # a store is a folder: told apart all the same
    assert (
        main(["predict", str(tmp_path / "screen.zarr"), "A", "--out", str(tmp_path / "q.csv")]) == 2
    )
    assert "(a screen's file: give the folder of a saved model here)" in _one_line_error(capsys)


def test_overwrite_replaces_a_prediction_never_a_screen_or_a_read_only_file(
    capsys, screen, tmp_path
):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "mean") == 0
    gene = screen.obs["condition"].iloc[-1].split("+")[0]
    predict = ["predict", str(tmp_path / "model"), gene, "--overwrite", "--out"]
    assert main([*predict, str(tmp_path / "pred.h5ad")]) == 0
    assert main([*predict, str(tmp_path / "pred.h5ad")]) == 0  # a prediction is replaced
    capsys.readouterr()
    other = _write(screen, tmp_path / "other.h5ad")  # a screen the command does not read
    assert main([*predict, other]) == 2
    assert "of no perturbsim prediction (a screen?)" in _one_line_error(capsys)
    assert ad.read_h5ad(other).n_obs == screen.n_obs
    kept = tmp_path / "kept.csv"
    kept.write_text("a,b\n1,2\n")
    kept.chmod(0o444)
    assert main([*predict, str(kept)]) == 2
    assert "is read-only, which perturbsim never replaces" in _one_line_error(capsys)
    assert kept.read_text() == "a,b\n1,2\n"
    # a link is replaced itself, never what it points to
    link = tmp_path / "link.csv"
    link.symlink_to(kept)
    assert main([*predict, str(link)]) == 0
    assert not link.is_symlink() and kept.read_text() == "a,b\n1,2\n"
    # an HDF5 file that cannot be read to tell what it holds is kept; one of no HDF5 is not
    broken = tmp_path / "broken.h5ad"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    assert main([*predict, str(broken)]) == 2
    assert "cannot read" in _one_line_error(capsys) and broken.stat().st_size == 108
    text = tmp_path / "text.h5ad"
    text.write_text("not HDF5")
    assert main([*predict, str(text)]) == 0


def test_an_output_path_the_system_refuses_is_a_one_line_error(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "mean") == 0
    capsys.readouterr()
    folder = tmp_path / "pred.csv"
    folder.mkdir()
    gene = screen.obs["condition"].iloc[-1].split("+")[0]
    assert main(["predict", str(tmp_path / "model"), gene, "--out", str(folder)]) == 2
    assert "pred.csv" in _one_line_error(capsys)


def test_raw_counts_error_names_the_normalize_option(capsys, screen, tmp_path):
    screen.X = screen.layers["counts"]
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "mean") == 2
    err = _one_line_error(capsys)
    assert "raw integer counts" in err and "--normalize" in err and "normalize=True" not in err
    assert "or log-transform X in the file first" in err and "scanpy" not in err


def test_normalize_trains_on_raw_counts(screen, tmp_path):
    screen.X = screen.layers["counts"]
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "mean", "--normalize") == 0
    assert (tmp_path / "model").is_dir()


def test_normalize_evaluates_raw_counts(capsys, screen, tmp_path):
    screen.X = screen.layers["counts"]
    data = _write(screen, tmp_path / "screen.h5ad")
    args = ["--models", "additive,mean", "--seeds", "1", "--out", str(tmp_path / "report")]
    assert main(["evaluate", data, "--control", "control", "--normalize", *args]) == 0
    assert "additive" in capsys.readouterr().out


def test_undetected_control_error_names_the_control_option(capsys, screen, tmp_path):
    screen.obs["condition"] = screen.obs["condition"].replace("control", "safe-targeting")
    data = _write(screen, tmp_path / "screen.h5ad")
    assert main(["train", data, "--out", str(tmp_path / "model"), "--model", "mean"]) == 2
    assert "'safe-targeting' looks like control: pass --control 'safe-targeting'" in (
        _one_line_error(capsys)
    )
    screen.obs["condition"] = screen.obs["condition"].astype(str).replace("safe-targeting", "base")
    data = _write(screen, tmp_path / "screen2.h5ad")
    assert main(["train", data, "--out", str(tmp_path / "model"), "--model", "mean"]) == 2
    assert "pass --control '<label" in _one_line_error(capsys)


@pytest.mark.parametrize("model_name", ["additive", "stacked_no_gears"])
def test_sep_reads_underscore_labels(caplog, screen, go_file, tmp_path, model_name):
    data = _write(_underscore_labels(screen), tmp_path / "screen.h5ad")
    options = ["--model", model_name, "--split", "combo", "--sep", "_", "--go", str(go_file)]
    assert _train(data, tmp_path / "model", *options) == 0
    assert "--sep" not in caplog.text
    labels = set(screen.obs["condition"])
    pair = next(c for c in labels if "_" in c and set(c.split("_")) <= labels)
    out = tmp_path / "pred.csv"  # additive predicts pairs of singles seen in training
    model = str(tmp_path / "model")
    assert main(["predict", model, pair, "control", "--out", str(out)]) == 0  # the screen's
    predicted = pd.read_csv(out, index_col=0)
    assert predicted.shape == (2, screen.n_vars)
    assert predicted.index.tolist() == [pair.replace("_", "+"), "ctrl"]
    plus = pair.replace("_", "+")  # as predictions name it: read without --sep too
    assert main(["predict", model, plus, "--out", str(out), "--overwrite"]) == 0
    assert pd.read_csv(out, index_col=0).index.tolist() == [plus]
    if model_name == "stacked_no_gears":  # additive has no untested candidate to rank
        measured = tmp_path / "measured.txt"  # in the screen's own form, as predict reads it
        measured.write_text(f"control\n{pair}\n")
        ranked = tmp_path / "design.csv"
        run = ["design", model, "--budget", "40", "--measured", str(measured)]
        assert main([*run, "--out", str(ranked)]) == 0
        proposed = pd.read_csv(ranked)["perturbation"].tolist()
        assert len(proposed) == 40 and plus not in proposed and "ctrl" not in proposed


def test_a_separator_holding_plus_reads_the_screen_s_labels_back(screen, tmp_path, caplog):
    screen.obs["condition"] = screen.obs["condition"].str.replace("+", " + ", regex=False)
    data = _write(screen, tmp_path / "screen.h5ad")
    model = str(tmp_path / "model")
    assert _train(data, model, "--model", "mean", "--sep", " + ") == 0
    pair = next(c for c in screen.obs["condition"] if " + " in c)
    out = tmp_path / "pred.csv"
    assert main(["predict", model, pair, pair.replace(" + ", "+"), "--out", str(out)]) == 0
    assert pd.read_csv(out, index_col=0).index.tolist() == [pair.replace(" + ", "+")]
    # both read as one pair, named
    assert (
        f"1 repeated perturbation, each predicted once: {pair.replace(' + ', '+')}" in caplog.text
    )


def test_double_dash_as_an_option_value_is_refused_in_one_line(screen, tmp_path, capsys):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--sep=--") == 2
    assert _one_line_error(capsys).startswith(
        "perturbsim: error: --sep: '--' cannot be given as a value on the command line"
    )
    assert not (tmp_path / "model").exists()
    where = ["--where=condition=--", "--model", "mean"]  # a value ending in '--' is kept
    assert _train(data, tmp_path / "model", *where) == 2
    assert "cannot be given as a value" not in capsys.readouterr().err


def test_underscore_labels_without_sep_are_refused_with_the_fix(capsys, caplog, screen, tmp_path):
    data = _write(_underscore_labels(screen), tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "mean") == 2
    error = _one_line_error(capsys)
    assert "look like genes joined by '_'" in error
    assert error.endswith("pass --sep _, or --sep + to keep the labels as they are")
    assert not (tmp_path / "model").exists()
    caplog.clear()
    assert _train(data, tmp_path / "model", "--model", "mean", "--sep", "+") == 0  # as they are
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert not any("joined by" in w for w in warnings)  # chosen: no more advice


def test_log_records_print_as_the_commands_own_notes(capsys, screen, tmp_path, monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a plain shell: the command sets up logging
    screen.var["symbol"] = screen.var_names
    screen.var_names = [f"ENSG{i:011d}" for i in range(screen.n_vars)]
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "ids", "--model", "mean") == 0
    printed = [line for line in capsys.readouterr().err.splitlines() if "--gene-key" in line]
    assert printed and printed[0].startswith("warning: ")  # as `warning: ...` notes, no module
    assert "perturbsim." not in printed[0] and "WARNING" not in printed[0]
    formatter = root.handlers[0].formatter  # another library's records keep their names
    other = logging.LogRecord("anndata", logging.WARNING, "", 0, "a note", None, None)
    assert formatter.format(other) == "WARNING anndata: a note"


def test_gene_key_names_genes_by_a_var_column(caplog, screen, tmp_path):
    screen.var["symbol"] = screen.var_names
    screen.var_names = [f"ENSG{i:011d}" for i in range(screen.n_vars)]
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "ids", "--model", "mean") == 0
    assert "pass --gene-key symbol" in caplog.text
    caplog.clear()
    assert _train(data, tmp_path / "model", "--model", "mean", "--gene-key", "symbol") == 0
    assert "--gene-key" not in caplog.text
    out = tmp_path / "pred.csv"
    gene = screen.var["symbol"].iloc[0]
    assert main(["predict", str(tmp_path / "model"), gene, "--out", str(out)]) == 0
    assert pd.read_csv(out, index_col=0).columns.tolist() == screen.var["symbol"].tolist()


def test_gene_key_none_keeps_var_names_over_a_gene_name_column(caplog, screen, tmp_path):
    perturbed = {g for c in screen.obs["condition"] for g in c.split("+")}
    screen.var["gene_name"] = [g if g in perturbed else f"{g}.1" for g in screen.var_names]
    data = _write(screen, tmp_path / "screen.h5ad")
    with caplog.at_level("WARNING"):
        assert _train(data, tmp_path / "auto", "--model", "mean") == 0  # names as many: used
    assert "--gene-key none keeps them" in caplog.text  # the option as the CLI spells it
    assert ps.models.PerturbationModel.load(tmp_path / "auto").genes[-1].endswith(".1")
    assert _train(data, tmp_path / "model", "--model", "mean", "--gene-key", "none") == 0
    out = tmp_path / "pred.csv"
    gene = str(screen.var_names[0])
    assert main(["predict", str(tmp_path / "model"), gene, "--out", str(out)]) == 0
    assert pd.read_csv(out, index_col=0).columns.tolist() == list(map(str, screen.var_names))


def test_a_screen_of_pairs_only_under_the_default_split_is_told_to_split_by_combo(capsys, tmp_path):
    pairs = make_screen(["control", "G1+G2", "G3+G4", "G5+G6", "G1+G3", "G2+G4"])
    data = _write(pairs, tmp_path / "pairs.h5ad")
    assert _train(data, tmp_path / "model", "--model", "mean") == 2
    assert "needs --split combo, not --split simulation" in _one_line_error(capsys)
    assert _train(data, tmp_path / "model", "--model", "mean", "--split", "combo") == 0


def test_unknown_gene_key_is_a_one_line_error(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "mean", "--gene-key", "symbol") == 2
    err = _one_line_error(capsys)
    assert "--gene-key 'symbol' not found in adata.var" in err
    assert err.endswith("(--gene-key none: the var_names as they are)")


def test_label_hint_names_the_symbol_column_of_a_screen_measured_by_ensembl_ids(tiny):
    names = list(map(str, tiny.var_names))
    perturbed = {g for c in tiny.obs["perturbsim_condition"].cat.categories for g in c.split("+")}
    ids = tiny.copy()
    ids.var_names = [f"ENSG{i:011d}" for i in range(ids.n_vars)]
    # the targets of a CRISPRa screen are rarely measured: in no var column
    ids.var["gene_symbol"] = [f"X{i}" if g in perturbed else g for i, g in enumerate(names)]
    ids.var["biotype"] = "protein_coding"
    hint = label_hint(ids, set(names))
    assert hint.startswith("var_names are Ensembl IDs (e.g. 'ENSG00000000000')")
    assert hint.endswith("pass gene_symbols='gene_symbol' to name the measured genes alike")
    assert "gene_symbols=COLUMN" in label_hint(ids, set())  # no column of annotated names
    assert label_hint(tiny, set(names)) is None


def test_label_hint_is_quiet_on_gene_labels_and_vague_on_unknown_names(tiny):
    assert label_hint(tiny, set()) is None
    renamed = tiny.copy()
    renamed.var_names = [f"X{i}" for i in range(renamed.n_vars)]
    hint = label_hint(renamed, set())
    assert "are neither measured (var_names) nor in the GO annotations" in hint
    assert label_hint(renamed, set(tiny.var_names)) is None
    lower = set(map(str.lower, tiny.var_names))  # the perturbed genes, known in lower case
    assert "are there in another case ('g" in label_hint(renamed, lower | set(renamed.var_names))


@pytest.mark.parametrize(
    ("content", "told"),
    [
        (b"condition,gene\nctrl,G1\n", "as AnnData (not an h5ad file, or truncated?)"),
        (b"", "is empty (0 bytes): no h5ad file was written there"),
    ],
)
def test_file_that_is_not_h5ad_is_a_one_line_error(capsys, tmp_path, content, told):
    path = tmp_path / "screen.h5ad"
    path.write_bytes(content)
    assert _train(str(path), tmp_path / "model", "--model", "mean") == 2
    assert f"{str(path)!r} {told}" in _one_line_error(capsys)


def test_truncated_h5ad_is_a_one_line_error(capsys, screen, tmp_path):
    path = tmp_path / "screen.h5ad"
    _write(screen, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert _train(str(path), tmp_path / "model", "--model", "mean") == 2
    err = _one_line_error(capsys)
    assert f"cannot read {str(path)!r} as AnnData" in err and "truncated" in err


def test_file_without_h5ad_suffix_is_a_one_line_error(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    csv = Path(data).with_suffix(".csv")
    Path(data).rename(csv)
    assert _train(str(csv), tmp_path / "model", "--model", "mean") == 2
    assert f"expected an .h5ad file or a .zarr store, got {str(csv)!r}" in _one_line_error(capsys)


def test_evaluate_scores_interactions_of_test_pairs_unless_told_not(capsys, tiny, tmp_path):
    data = _write(tiny, tmp_path / "screen.h5ad")
    args = ["--control", "control", "--models", "additive,linear,mean", "--seeds", "1"]
    assert main(["evaluate", data, *args, "--gi-k", "3", "--out", str(tmp_path / "on")]) == 0
    out = capsys.readouterr().out
    assert "precision@3 per subtype" in out and "synergy" in out
    assert "The truth is the simulator's noiseless profiles" in out
    assert "the screen's noise ceiling" in out
    assert "direction_error_de keeps the split-half value" in out  # which a baseline may pass
    n_pairs = pd.read_csv(tmp_path / "on" / "gi_precision.csv")["n_pairs"]
    assert (n_pairs > 3).any()  # k ranks fewer than the pairs: no note that it takes them all
    assert "each ranking takes them all" not in out
    assert main(["evaluate", data, *args, "--gi-k", "100", "--out", str(tmp_path / "all")]) == 0
    assert "no seed has more than 100 test pairs" in capsys.readouterr().out
    # --no-gi: test_evaluate_replaces_only_a_previous_report
    few = ["evaluate", data, *args, "--min-cells", "100000", "--out", str(tmp_path / "few")]
    assert main(few) == 2  # the option reaches evaluate, and its error speaks of it
    assert "fewer than 100000 cells (--min-cells): nothing to score" in _one_line_error(capsys)
    assert main([*few[:-4], "--min-cells", "0", "--out", str(tmp_path / "zero")]) == 2
    assert "--min-cells must be at least 1, got 0" in _one_line_error(capsys)


def test_evaluate_on_a_custom_split(capsys, norman, tmp_path):
    data = _write(norman, tmp_path / "screen.h5ad")
    test = tmp_path / "test.txt"
    test.write_text("KLF1+MAP2K6\nFOXO4\n")
    args = ["evaluate", data, "--control", "control", "--models", "additive,mean", "--seeds", "2"]
    out = str(tmp_path / "report")
    assert main([*args, "--split", "custom", "--test", str(test), "--out", out]) == 0
    scores = pd.read_csv(tmp_path / "report" / "scores.csv")
    assert set(scores["condition"]) == {"KLF1+MAP2K6", "FOXO4"}
    screen = json.loads((tmp_path / "report" / "settings.json").read_text())["screen"]
    assert screen == {
        "file": data,
        "where": {},
        "normalize": False,
        "test_conditions": ["KLF1+MAP2K6", "FOXO4"],
    }
    capsys.readouterr()
    assert main([*args, "--test", str(test), "--out", str(tmp_path / "other")]) == 2
    assert "--test is for --split custom, not --split simulation" in capsys.readouterr().err


def test_python_dash_m_runs_the_command():
    # where the entry point is not on PATH (a notebook's kernel, a bare environment)
    done = subprocess.run(
        [sys.executable, "-m", "perturbsim", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("perturbsim ")
    done = subprocess.run(
        [sys.executable, "-m", "perturbsim", "nonsense"], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.startswith("perturbsim: error: argument command")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a process there")
def test_an_interrupt_is_one_line_with_the_status_a_shell_gives_it():
    command = [sys.executable, "-u", "-m", "perturbsim", "demo", "--seeds", "1", "--no-progress"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as running:
        assert running.stdout.readline().startswith("Norman et al. 2019")  # at work now
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=120)
    assert running.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "perturbsim demo: interrupted (a file it writes is written whole or not at all)"
    )


def test_version_and_common_options_after_the_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"perturbsim {ps.__version__}"
    assert main(["models", "-v", "--no-progress"]) == 0
    assert ps.settings.verbosity == "INFO" and not ps.settings.progress
    assert main(["-v", "models", "--no-progress"]) == 0  # before and after together
    assert ps.settings.verbosity == "INFO" and not ps.settings.progress
    assert main(["models"]) == 0  # given neither before nor after: the defaults
    assert ps.settings.verbosity == "WARNING" and ps.settings.progress


def test_verbosity_reads_the_level_the_logger_has_until_it_is_set():
    package, root = logging.getLogger("perturbsim"), logging.getLogger()
    levels = package.level, root.level
    try:
        package.setLevel(logging.NOTSET)  # never set: the root logger's level applies
        root.setLevel(logging.INFO)
        assert ps.settings.verbosity == "INFO"
        ps.settings.verbosity = "error"
        assert ps.settings.verbosity == "ERROR" and package.level == logging.ERROR
        with pytest.raises(ps.PerturbsimError, match="got 'loud'$"):
            ps.settings.verbosity = "loud"
        with pytest.raises(ps.PerturbsimError, match="got 3$"):
            ps.settings.verbosity = 3
        with pytest.raises(ps.PerturbsimError, match="^settings has no 'verbose'; its settings"):
            ps.settings.verbose = 3  # a typo would otherwise do nothing, silently
        assert repr(ps.settings).endswith(", verbosity='ERROR')")
        package.setLevel(logging.CRITICAL)  # set on the logger: read back as set, settable
        ps.settings.verbosity = ps.settings.verbosity
        package.setLevel(15)  # between DEBUG and INFO: the named level below it
        assert ps.settings.verbosity == "DEBUG"
    finally:
        package.setLevel(levels[0])
        root.setLevel(levels[1])


def test_train_says_what_it_held_out_and_split_none_holds_nothing(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "held", "--model", "additive") == 0
    out = capsys.readouterr().out
    assert "held out for testing (conditions never trained on):" in out and "unseen_single" in out
    assert _train(data, tmp_path / "all", "--model", "additive", "--split", "none") == 0
    assert "none held out (--split none)" in capsys.readouterr().out
    singles = {c for c in screen.obs["condition"] if "+" not in c and c != "control"}
    every = ps.models.PerturbationModel.load(tmp_path / "all")
    held = ps.models.PerturbationModel.load(tmp_path / "held")
    assert set(held.single_genes) < singles and set(every.single_genes) == singles
    kept_out = sorted(singles - set(held.single_genes))
    assert f"genes held out alone: {', '.join(kept_out[:10])}" in out


def test_train_refuses_an_out_it_cannot_write_before_training(capsys, screen, tmp_path):
    data = _write(screen, tmp_path / "screen.h5ad")
    (tmp_path / "afile").write_text("x")
    with mock.patch.object(ps.models.PerturbationModel, "fit") as fit:
        assert _train(data, tmp_path / "afile" / "model", "--model", "additive") == 2
    fit.assert_not_called()  # said before any work, not after training
    err = capsys.readouterr().err
    assert "cannot write the model to" in err and "afile' is a file, not a folder" in err
    assert err.count("\n") == 1


def test_gi_names_the_listed_genes_its_model_held_out(capsys, norman, tmp_path):
    ps.pp.split(norman, kind="simulation", seed=1)
    model = ps.TrainMean(norman).fit()
    model.save(tmp_path / "model")
    held = sorted(ps.pp.genes_of(c)[0] for c in model.held_out_conditions if "+" not in c)
    genes = tmp_path / "genes.txt"
    genes.write_text(f"KLF1\n{held[0]}\n")
    run = ["gi", str(tmp_path / "model"), "--genes", str(genes), "--abundance", "0", "--out"]
    assert main([*run, str(tmp_path / "gi")]) == 0
    out = capsys.readouterr().out
    assert held[0] != "KLF1" and "KLF1" not in held
    assert f"1 gene was measured alone but held out by the model's split: {held[0]}" in out
    pairs = sorted(c for c in model.held_out_conditions if "+" in c)  # measured pairs held out
    genes.write_text("\n".join(ps.pp.genes_of(pairs[0])) + "\n")
    assert main([*run, str(tmp_path / "pair")]) == 0
    out = capsys.readouterr().out
    assert (
        f"1 of these pairs was measured by the screen but held out by the model's split: {pairs[0]}"
        in out
    )
    trained = sorted(c for c in model.fitted_conditions if "+" in c)  # a pair and its singles
    genes.write_text("\n".join(ps.pp.genes_of(trained[0])) + "\n")  # trained: nothing to warn of
    assert main([*run, str(tmp_path / "trained")]) == 0
    assert "held out by the model's split" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--test", "t.txt"], "--test is for --split custom, not --split simulation"),
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--n-models", "-1"], "--n-models must be at least 1, got -1"),
        (["--seed", "-3"], "--seed must be a whole number >= 0 and < 2**32, got -3"),
        (["--seed", str(2**70)], f"--seed must be a whole number >= 0 and < 2**32, got {2**70}"),
        (
            ["--model", "stacked_no_gears", "--device", "cuda"],
            "--device does not apply to model 'stacked_no_gears'",
        ),
    ],
)
def test_options_that_would_be_ignored_are_one_line_errors(
    capsys, screen, tmp_path, options, message
):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", *options) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "model").exists()


def test_a_simulated_screen_brings_its_own_go(capsys, tiny, tmp_path):
    data = _write(tiny, tmp_path / "screen.h5ad")  # with .uns["simulation"]["go"]
    assert _train(data, tmp_path / "model", "--model", "linear_go") == 0
    bare = tiny.copy()
    del bare.uns["simulation"]
    data = _write(bare, tmp_path / "bare.h5ad")
    assert _train(data, tmp_path / "bare", "--model", "linear_go") == 2
    err = _one_line_error(capsys)
    assert "pass --go annotations that cover them" in err and "go_annotations" not in err


def test_predict_replaces_its_files_together_or_not_at_all(screen, tmp_path, monkeypatch):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "additive", "--split", "none") == 0
    genes = [c for c in screen.obs["condition"].unique() if "+" not in c and c != "control"]
    out = tmp_path / "pred.csv"
    run = ["predict", str(tmp_path / "model"), "--out", str(out), "--overwrite"]
    assert main([*run[:2], genes[0], *run[2:]]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("pred*")}
    to_csv = pd.DataFrame.to_csv

    def full_disk_on_obs(self, path=None, **kwargs):  # the last file's write fails
        if ".pred.obs." in str(path):
            raise OSError(28, "No space left on device")
        return to_csv(self, path, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk_on_obs)
    assert main([*run[:2], genes[1], *run[2:]]) == 2
    assert {p.name: p.read_bytes() for p in tmp_path.glob("pred*")} == before


def test_predict_reads_control_labels_and_drops_a_stale_variance_file(
    capsys, caplog, screen, tmp_path
):
    data = _write(screen, tmp_path / "screen.h5ad")
    assert _train(data, tmp_path / "model", "--model", "additive", "--split", "none") == 0
    gene = next(c for c in screen.obs["condition"] if "+" not in c and c != "control")
    out = tmp_path / "pred.csv"
    stale = tmp_path / "pred.variance.csv"
    stale.write_text("from an earlier run\n")
    queries = ["Control", f"{gene}+non-targeting", "NONE"]
    run = ["predict", str(tmp_path / "model"), *queries, "--control", "NONE", "--out", str(out)]
    assert main(run) == 2  # the file written beside pred.csv is not replaced unasked
    assert "pred.variance.csv' already exists; pass --overwrite" in _one_line_error(capsys)
    assert main([*run, "--overwrite"]) == 0
    assert pd.read_csv(out, index_col=0).index.tolist() == ["ctrl", gene]
    printed = capsys.readouterr().out
    assert "1 repeated perturbation, each predicted once: ctrl" in caplog.text
    assert f"predicted 2 perturbations x {screen.n_vars} genes -> " in printed
    under = ["predict", str(tmp_path / "model"), f"NT_{gene}", "non-targeting", "--sep", "-"]
    replace = ["--out", str(out), "--overwrite"]
    assert main([*under[:3], "--sep", "_", *replace]) == 0
    assert pd.read_csv(out, index_col=0).index.tolist() == [gene]
    assert "predicted 1 perturbation x " in capsys.readouterr().out
    assert main([*under[:2], "non-targeting", "--sep", "-", *replace]) == 0
    assert main([*under[:3], "--sep", "", *replace]) == 2
    assert "--sep must be a non-empty string" in _one_line_error(capsys)
    assert pd.read_csv(out, index_col=0).index.tolist() == ["ctrl"]  # the whole label first
    assert not stale.exists()  # additive has no variance: no file of this run's
    assert main(["predict", str(tmp_path / "model"), "NONE", *replace]) == 2
    assert "NONE" in _one_line_error(capsys)
    assert main(["predict", str(tmp_path / "model"), gene.lower(), *replace]) == 2
    hint = f"did you mean {gene!r} for {gene.lower()!r}? gene names are case-sensitive"
    assert hint in _one_line_error(capsys)
    # a gene given as the control label would read as no perturbation: refused
    assert main(["predict", str(tmp_path / "model"), gene, "--control", gene, *replace]) == 2
    assert f"--control {gene!r} names a gene of the model" in _one_line_error(capsys)
    joined = f"{gene}+NegCtrl"  # every part of a control label reads as control
    assert main(["predict", str(tmp_path / "model"), gene, "--control", joined, *replace]) == 2
    assert f"--control {joined!r} names {gene!r}, a gene of the model" in _one_line_error(capsys)
    perturbed = {g for c in screen.obs["condition"] for g in c.split("+")}
    unperturbed = next(g for g in screen.var_names if g not in perturbed)  # measured only
    assert main(["predict", str(tmp_path / "model"), gene, "--control", unperturbed, *replace]) == 2
    assert f"--control {unperturbed!r} names a gene" in _one_line_error(capsys)
    into_model = ["--out", str(tmp_path / "model" / "pred.h5ad"), "--overwrite"]
    assert main(["predict", str(tmp_path / "model"), gene, *into_model]) == 2
    assert "would write over or into" in _one_line_error(capsys)
    assert not (tmp_path / "model" / "pred.h5ad").exists()


def test_gi_says_what_it_fits_on_and_warns_when_few_genes(capsys, caplog, norman, tmp_path):
    model = ps.Additive(norman).fit()
    model.save(tmp_path / "model")
    genes = tmp_path / "genes.txt"
    genes.write_text("KLF1\nMAP2K6\nSLC38A2\n")
    run = ["gi", str(tmp_path / "model"), "--genes", str(genes), "--out"]
    # log-normalised: fewer than 20 genes pass Norman's 0.5, so the default fits every
    # expressed gene, as evaluate does
    assert main([*run, str(tmp_path / "default")]) == 0
    out = capsys.readouterr().out
    expressed = int((model.control_mean > 0).sum())
    fitted = int(pd.read_csv(tmp_path / "default" / "gi_scores.csv")["n_genes"].max())
    assert 20 <= fitted <= expressed
    assert f"fitted on up to {fitted} of the model's 500 genes" in out
    assert "exceeds 0 (every expressed gene, as fewer than 20 exceed Norman's 0.5;" in out
    assert "1 of these pairs was measured in the model's fit (e.g. KLF1+MAP2K6)" in out
    assert "too few" not in caplog.text
    # summed pairs: said once, in the printed summary, not warned of again
    assert "3 of the 3 predicted as the sum of their singles" in out
    assert "singles summed" not in caplog.text
    assert main([*run, str(tmp_path / "few"), "--abundance", "0.5"]) == 0
    out = capsys.readouterr().out
    few = int(pd.read_csv(tmp_path / "few" / "gi_scores.csv")["n_genes"].max())
    assert few < 20 and f"fitted on up to {few} of the model's 500 genes" in out
    assert "mean control expression exceeds 0.5 (--abundance), the pair's own" in out
    assert "genes have a mean control expression above --abundance 0.5" in caplog.text
    assert "pass a lower --abundance (0 keeps every expressed gene)" in caplog.text
    caplog.clear()
    assert main([*run, str(tmp_path / "all"), "--abundance", "0"]) == 0
    assert "too few" not in caplog.text
    every = pd.read_csv(tmp_path / "all" / "gi_scores.csv")
    assert every["n_genes"].max() == fitted > few
    # additive predictions: a synergy on the GEARS paper's scale, additive on Norman's
    assert every["is_synergy"].all() and not every["is_additive"].any()
    assert main([*run, str(tmp_path / "norman"), "--abundance", "0", "--magnitude", "norman"]) == 0
    on_norman = pd.read_csv(tmp_path / "norman" / "gi_scores.csv")
    assert on_norman["is_additive"].all() and not on_norman["is_synergy"].any()
    assert main([*run, str(tmp_path / "bad"), "--abundance", "-1"]) == 2
    assert "--abundance must be a finite number >= 0, got -1" in _one_line_error(capsys)
    assert main([*run, str(tmp_path / "nan"), "--abundance", "nan"]) == 2
    assert "--abundance must be a finite number >= 0, got nan" in _one_line_error(capsys)
    # the genes joined by commas read as the file of them does
    listed = ["gi", str(tmp_path / "model"), "--genes", "KLF1, MAP2K6,SLC38A2", "--out"]
    assert main([*listed, str(tmp_path / "listed")]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "listed" / "gi_scores.csv"),
        pd.read_csv(tmp_path / "default" / "gi_scores.csv"),
    )
    assert main([*listed[:3], "KLF1,,MAP2K6", "--out", str(tmp_path / "empty")]) == 2
    assert "--genes 'KLF1,,MAP2K6': an empty gene name between commas" in _one_line_error(capsys)
    named = tmp_path / "my,genes.txt"  # a file whose name holds a comma is read as one
    assert main([*listed[:3], str(named), "--out", str(tmp_path / "comma")]) == 2
    assert f"no such genes file: {str(named)!r}" in _one_line_error(capsys)
    named.write_text("KLF1\nMAP2K6\nSLC38A2\n")
    assert main([*listed[:3], str(named), "--out", str(tmp_path / "comma")]) == 0
    assert main([*listed[:3], str(tmp_path), "--out", str(tmp_path / "in")]) == 2
    assert f"genes file {str(tmp_path)!r} is a folder" in _one_line_error(capsys)
    assert main([*listed[:3], "KLF1", "--out", str(tmp_path / "one")]) == 2
    error = _one_line_error(capsys)
    assert "--genes 'KLF1': no such file, and one gene makes no pair: give at least two" in error
    model.save(tmp_path / "other_model")  # another model's folder is no place for results
    assert main([*listed, str(tmp_path / "other_model")]) == 2
    assert "holds a saved model (config.json): write --out outside it" in _one_line_error(capsys)
    assert main([*listed, str(tmp_path / "other_model" / "gi")]) == 2  # nor a folder inside
    assert "other_model' holds a saved model (config.json)" in _one_line_error(capsys)
    into = ["predict", str(tmp_path / "model"), "KLF1", "--out"]  # a file beside a model too
    for inside in ("pred.csv", "sub/pred.csv"):
        assert main([*into, str(tmp_path / "other_model" / inside)]) == 2
        assert "other_model' holds a saved model (config.json)" in _one_line_error(capsys)
    (tmp_path / "project").mkdir()  # a config.json of something else is no model
    (tmp_path / "project" / "config.json").write_text('{"editor": 1}')
    assert main([*into, str(tmp_path / "project" / "pred.csv")]) == 0
    # both tables of pairs start with a named column of the pairs
    assert pd.read_csv(tmp_path / "listed" / "gi_scores.csv").columns[0] == "pair"


def test_evaluate_replaces_only_a_previous_report(capsys, tiny, tmp_path, monkeypatch):
    data = _write(tiny, tmp_path / "screen.h5ad")
    run = ["evaluate", data, "--models", "mean", "--seeds", "1", "--no-gi", "--out"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("not a report\n")
    for overwrite in ([], ["--overwrite"]):  # not told to pass --overwrite, which cannot help
        assert main([*run, str(other), *overwrite]) == 2
        assert "replaced: it holds 'mine.txt': choose another" in _one_line_error(capsys)
    (other / "mine.txt").rename(other / "mine.csv")
    assert main([*run, str(other), "--overwrite"]) == 2
    assert "replaced: it has no settings.json" in _one_line_error(capsys)
    (other / "settings.json").write_text("{}\n")  # among other things
    (other / "data").mkdir()
    assert main([*run, str(other), "--overwrite"]) == 2
    assert "replaced: it holds 'data'" in _one_line_error(capsys)
    assert (other / "mine.csv").is_file() and (other / "data").is_dir()
    assert main([*run, str(tmp_path), "--overwrite"]) == 2  # holds the screen read
    assert "is not a folder of earlier results" in _one_line_error(capsys)
    monkeypatch.chdir(other)
    assert main([*run, "."]) == 2  # not told to pass --overwrite, which could not help
    assert "never the working folder" in _one_line_error(capsys)
    assert main([*run, ".", "--overwrite"]) == 2
    assert "never the working folder" in _one_line_error(capsys)
    assert main([*run, str(tmp_path / "screen.h5ad"), "--overwrite"]) == 2
    assert "is a file or a link, not a folder of results" in _one_line_error(capsys)
    capsys.readouterr()
    assert main([*run, str(tmp_path / "screen.h5ad" / "ev")]) == 2  # told before any work
    assert capsys.readouterr().err.strip().endswith("screen.h5ad' is a file, not a folder")
    saved = tmp_path / "saved_model"  # a saved model's folder, and a folder inside it
    (saved / "sub").mkdir(parents=True)
    (saved / "config.json").write_text("{}")
    (saved / "weights.safetensors").write_bytes(b"")
    train = ["train", data, "--model", "mean", "--out", str(saved / "sub" / "model")]
    for args in ([*run, str(saved)], [*run, str(saved / "sub" / "ev")], train):
        assert main(args) == 2
        assert "saved_model' holds a saved model (config.json): write --out outside it" in (
            _one_line_error(capsys)
        )
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("an earlier report\n")
    (report / "settings.json").write_text("{}\n")
    (report / "gi_precision.csv").write_text("an earlier run's table\n")
    capsys.readouterr()
    assert main([*run, str(report), "--overwrite"]) == 0  # run has --no-gi
    printed = capsys.readouterr().out
    assert "no calibrated scores: no model but 'mean' was scored" in printed
    assert "precision@" not in printed
    assert not (report / "gi_precision.csv").exists()  # nothing of the earlier run is left
    assert "an earlier report" not in (report / "report.md").read_text()
    test = report / "test.csv"  # the --test list read from the folder: never replaced
    test.write_text("G0030\n")
    custom = ["--split", "custom", "--test", str(test), "--overwrite"]
    assert main([*run, str(report), *custom]) == 2
    assert "which alone are replaced: it holds 'test.csv'" in _one_line_error(capsys)
    assert test.read_text() == "G0030\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_list_files_keep_white_space_inside_a_condition_label(tmp_path):
    from perturbsim.cli._parser import read_list

    listed = tmp_path / "test.txt"
    listed.write_text("KLF1 + MAP2K6\nFOXO4\n")  # a screen whose separator is " + "
    assert read_list(listed, "--test", "test conditions") == ["KLF1 + MAP2K6", "FOXO4"]
    with pytest.raises(ps.PerturbsimError, match=r"holds several genes joined by ' '"):
        read_list(listed, "--genes", "genes", joiners=", ")


def test_list_files_may_be_pipes_but_not_devices(tmp_path):
    import os
    import threading

    from perturbsim.cli._parser import read_list

    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    fifo = tmp_path / "genes"
    os.mkfifo(fifo)  # what a shell's <(cat genes.txt) hands over

    def write() -> None:
        fifo.write_text("KLF1\n# a comment\nMAP2K6\n")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert read_list(fifo, "--genes", "genes") == ["KLF1", "MAP2K6"]
    finally:  # a writer still waiting after a while was refused unread: open the other end
        writer.join(timeout=10)  # (checked at once, a writer done but not yet ended would
        if writer.is_alive():  # make this read wait for a writer that never comes)
            fifo.read_text()
            writer.join()
    with pytest.raises(ps.PerturbsimError, match="'/dev/null' is not a regular file"):
        read_list(Path("/dev/null"), "--genes", "genes")


def test_printed_tables_never_show_minus_zero():
    table = pd.DataFrame(
        {
            "metric": ["pearson_delta_de"] * 2,
            "subgroup": ["unseen_single"] * 2,
            "model": ["stacked", "mean"],
            "mean": [-0.001, -0.25],
        }
    )
    rounded = _headline(table, ["unseen_single"], digits=2)
    assert not np.signbit(rounded.loc[("pearson_delta_de", "unseen_single"), "stacked"])
    assert re.search(r"-0\.0(?!\d)", rounded.to_string()) is None and "-0.25" in rounded.to_string()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "x.h5ad", "--out", "m", "--seed", "abc"], "argument --seed: invalid int"),
        (["trian"], "argument command: invalid choice: 'trian'"),
        (["train"], "the following arguments are required: data, --out"),
        (["evaluate", "x.h5ad", "--out", "r", "--where", "=KLF1"], "expected COLUMN=VALUE"),
        (["train", "x.h5ad", "--out", ""], "argument --out: an empty path"),
        (["train", "x.h5ad", "--out", "m", "--max-epochs", "3"], "(see perturbsim train --help)"),
    ],
)
def test_arguments_argparse_refuses_are_one_line_naming_the_help(capsys, argv, message):
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert message in err and err.endswith("--help)") and "usage:" not in err


def test_duplicated_gene_names_are_one_line_without_anndata_s_warning(capsys, screen, tmp_path):
    screen.var_names = [screen.var_names[1], *screen.var_names[1:]]
    data = _write(screen, tmp_path / "duplicated.h5ad")
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:  # printed on stderr by the CLI
        warnings.simplefilter("always")
        assert _train(data, tmp_path / "model", "--model", "mean") == 2
    assert "duplicated gene names in var_names" in _one_line_error(capsys)
    assert not [w for w in caught if "not unique" in str(w.message)]


def test_evaluate_of_a_screen_without_pairs_says_there_are_none_to_score(tmp_path, capsys):
    labels = ["ctrl", *(f"G{i}" for i in range(8))]
    screen = make_screen(labels, n_genes=30, cells=8)
    data = _write(screen, tmp_path / "singles.h5ad")
    argv = ["evaluate", data, "--models", "mean", "--seeds", "1", "--out", str(tmp_path / "e")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "genetic interactions: no pair of two genes among the test conditions" in out
    assert "none scored (a test pair is scored where" not in out  # no pair to blame


def test_an_option_is_never_read_from_its_prefix(capsys, tmp_path):
    from perturbsim.ds._paths import bundled_path

    data = str(bundled_path("norman2019_subset.h5ad"))
    # train's --seed is one seed; evaluate's --seeds a count: --seed 2 must not run two seeds
    argv = ["evaluate", data, "--models", "mean", "--seed", "2", "--out", str(tmp_path / "e")]
    assert main(argv) == 2
    assert _one_line_error(capsys) == (
        "perturbsim evaluate: error: unrecognized arguments: --seed 2 (see perturbsim evaluate "
        "--help)"
    )
    assert not (tmp_path / "e").exists()


def test_errors_of_the_go_file_and_the_device_name_their_options(capsys, tmp_path):
    from perturbsim.ds._paths import bundled_path

    data = str(bundled_path("norman2019_subset.h5ad"))
    absent = str(tmp_path / "absent.tsv")
    assert main(["train", data, "--out", str(tmp_path / "m1"), "--go", absent]) == 2
    assert f"--go: annotation file {absent!r} not found" in _one_line_error(capsys)
    assert main(["train", data, "--out", str(tmp_path / "m2"), "--device", "tpu"]) == 2
    assert "--device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'" in (
        _one_line_error(capsys)
    )
    if not torch.cuda.is_available():  # a device the machine lacks: named as the option
        assert main(["train", data, "--out", str(tmp_path / "m3"), "--device", "cuda:7"]) == 2
        assert "--device 'cuda:7' asked for, but no CUDA device is available" in (
            _one_line_error(capsys)
        )
