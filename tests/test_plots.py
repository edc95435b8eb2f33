"""Plot functions: each returns its Axes, draws what the data says and accepts ax=."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

import perturbsim as ps
from perturbsim import pl
from perturbsim.models import TrainMean
from perturbsim.models._catalogue import VARIANTS
from perturbsim.pl._colours import MODEL_COLOURS, OTHER_COLOURS, model_colours
from perturbsim.tl import evaluate

MODELS = ("additive", "mean", "no_perturb")


@pytest.fixture(scope="module")
def split_tiny(_tiny_cached):
    adata = _tiny_cached.copy()
    ps.pp.split(adata, kind="simulation", seed=1)
    ps.pp.pseudobulk(adata)
    ps.pp.rank_de(adata, n_genes=20)
    return adata


@pytest.fixture(scope="module")
def pair(split_tiny) -> str:
    """A test pair of the split."""
    return ps.pp.Split.from_adata(split_tiny).subgroups["combo_seen2"][0]


@pytest.fixture(scope="module")
def result(_tiny_cached):
    progress, ps.settings.progress = ps.settings.progress, False
    try:
        return evaluate(_tiny_cached, models=MODELS, seeds=2)
    finally:
        ps.settings.progress = progress


def test_metric_bars(result):
    ax = pl.metric_bars(result, metric="nmse_de")
    assert isinstance(ax, Axes)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in bars] == [*MODELS, "replicate"]
    subgroups = [t.get_text() for t in ax.get_xticklabels()]
    assert subgroups == ["unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"]
    summary = result.summary().set_index(["model", "subgroup", "metric"])
    for container, model in zip(bars, [*MODELS, "replicate"], strict=True):
        assert len(container.patches) == len(subgroups)
        heights = [p.get_height() for p in container.patches]
        for group, height in zip(subgroups, heights, strict=True):
            key = (model, group, "nmse_de")
            expected = summary.loc[key, "mean"] if key in summary.index else np.nan
            assert height == pytest.approx(expected, nan_ok=True)
    # additive covers no unseen single: a gap, not a zero bar, marked as none
    assert np.isnan(bars[0].patches[0].get_height())
    assert any(t.get_text() == "–" for t in ax.texts)  # as the tables mark it
    for text in ax.texts:  # a dash lying down (upright it reads as a tick), over the whiskers
        assert text.get_rotation() == (0 if text.get_text() == "–" else 90)
        assert text.get_zorder() > max(line.get_zorder() for line in ax.lines)
    assert ax.get_title().endswith("\nmean of 2 seeds")
    assert ax.get_xlim() == (-0.5, 3.5)  # every note inside the frame, the edge ones too
    # from the summary table alone: a subgroup without a row is not covered, not undefined
    alone = pl.metric_bars(result.summary(), metric="nmse_de")
    notes = [t.get_text() for t in alone.texts]
    assert "–" in notes and not any(note.startswith("n/a") for note in notes)


def test_metric_bars_title_gives_the_range_of_seeds_where_models_had_different_numbers(result):
    # a model whose run failed in one seed is a mean of fewer seeds: the title says 1–2, not 2
    summary = result.summary()
    summary.loc[summary["model"] == "additive", "n_seeds"] = 1
    assert pl.metric_bars(summary, metric="nmse_de").get_title().endswith("\nmean of 1–2 seeds")
    shown = pl.metric_bars(summary, metric="nmse_de", models=["mean", "no_perturb"])
    assert shown.get_title().endswith("\nmean of 2 seeds")  # of the bars drawn only
    one = pl.metric_bars(summary, metric="nmse_de", models=["additive"])
    assert one.get_title().endswith("\nmean of 1 seed")
    plt.close("all")


def test_metric_bars_refuse_a_coverage_table_that_is_none(result):
    coverage = result.coverage_table()
    for bad, words in (
        (coverage.drop(columns="n_total"), r"^no columns \['n_total'\] in coverage"),
        (coverage.to_dict(), "^coverage must be a DataFrame with the columns"),
        (coverage.assign(n_covered=float("nan")), "^coverage's n_covered and n_total count"),
    ):
        with pytest.raises(ps.PerturbsimError, match=words):
            pl.metric_bars(result, metric="nmse_de", coverage=bad)


def test_plots_refuse_tables_of_words_or_of_repeated_rows(result):
    # a summary whose numbers are words, or that holds a model's subgroup twice (two
    # summaries concatenated), is refused in one line naming it, not drawn from numpy's error;
    # so is a training history whose losses are text
    summary = result.summary()
    worded = summary.astype({"mean": object, "ci_low": object})
    worded.loc[worded.index[0], "mean"] = "high"
    with pytest.raises(ps.PerturbsimError, match=r"^data's column 'mean' must hold numbers"):
        pl.metric_bars(worded, metric="nmse_de")
    worded = summary.astype({"ci_low": object})
    worded.loc[worded.index[0], "ci_low"] = "x"
    with pytest.raises(ps.PerturbsimError, match=r"^data's column 'ci_low' .* got 'x'$"):
        pl.metric_bars(worded, metric="nmse_de")
    with pytest.raises(ps.PerturbsimError, match="more than once: pass one summary"):
        pl.metric_bars(pd.concat([summary, summary]), metric="nmse_de")
    assert isinstance(pl.metric_bars(summary, metric="nmse_de"), Axes)
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": ["4.5", "4.2"], "val_loss": 0.1})
    words = "column 'train_loss' must hold numbers, got '4.5'"
    with pytest.raises(ps.PerturbsimError, match=words):
        pl.training_history(history)
    plt.close("all")


def test_metric_bars_fit_the_value_axis_to_the_bars_not_to_wide_intervals(result):
    summary = result.summary()
    rows = summary[summary["metric"] == "nmse_de"].copy()
    first = rows.index[rows["mean"].notna()][0]
    rows.loc[first, "ci_high"] = 50 * rows["mean"].abs().max() + 10  # two seeds can do this
    ax = pl.metric_bars(rows, metric="nmse_de")
    low, high = ax.get_ylim()
    assert max(rows["mean"].max(), 1.0) < high < rows.loc[first, "ci_high"]
    assert low <= min(rows["mean"].min(), 0.0)
    assert ax.get_title() == "nmse_de (intervals cut at the axis)\nmean of 2 seeds"
    bounded = pl.metric_bars(result, metric="pearson_delta_de")
    assert bounded.get_ylim() == pytest.approx((-1.05, 1.05))
    pearson = summary[summary["metric"] == "pearson_delta_de"].copy()
    pearson.loc[pearson.index[0], "ci_low"] = -1.0  # as the summary clips a wide interval
    clipped = pl.metric_bars(pearson, metric="pearson_delta_de")
    assert clipped.get_title().replace("\n", " ") == (  # wrapped to the axes, never in a range
        "pearson_delta_de (intervals cut at the metric's range, -1\u00a0to\u00a01) mean of 2 seeds"
    )
    pearson["ci_low"], pearson["ci_high"] = pearson["mean"] - 0.01, pearson["mean"] + 0.01
    assert pl.metric_bars(pearson, metric="pearson_delta_de").get_title() == (
        "pearson_delta_de\nmean of 2 seeds"
    )


def test_metric_bars_on_given_axes_and_summary(result):
    ax = Figure().add_subplot()
    out = pl.metric_bars(result.summary(), metric="pearson_delta_de", models=["mean"], ax=ax)
    assert out is ax
    assert len([c for c in ax.containers if isinstance(c, BarContainer)]) == 1
    with pytest.raises(ps.PerturbsimError, match="metric 'nope' not in the summary"):
        pl.metric_bars(result, metric="nope")


def test_predicted_vs_true(split_tiny, pair):
    stats = ps.pp.PseudobulkStats.from_adata(split_tiny)
    genes = ps.pp.DEGenes.from_adata(split_tiny).top_genes(pair)
    pred = TrainMean(split_tiny).fit().predict(pair)
    ax = pl.predicted_vs_true(pred, stats, genes=genes)
    assert isinstance(ax, Axes)
    assert ax.get_title() == f"{pair}: {len(genes)} genes"
    assert ax.get_xlabel() == "measured change over control\n(log-normalised expression)"
    assert ax.get_ylabel() == "predicted change over control\n(log-normalised expression)"
    ax.figure.draw_without_rendering()  # each label within the figure, not cut at its edge
    box = ax.figure.bbox
    for label in (ax.xaxis.label, ax.yaxis.label):
        extent = label.get_window_extent()
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0
    points = ax.collections[0].get_offsets()
    assert points.shape == (len(genes), 2)
    cols = [list(stats.genes).index(g) for g in genes]
    row = stats.index([pair])[0]
    np.testing.assert_allclose(points[:, 0], stats.delta[row, cols], rtol=1e-6)
    np.testing.assert_allclose(points[:, 1], pred[:, genes].layers["delta"][0], rtol=1e-6)
    # the identity line spans the axes
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), line.get_ydata())
    # one gene given as a string is refused, not read as its letters
    with pytest.raises(ps.PerturbsimError, match="genes must be a list of genes, got the string"):
        pl.predicted_vs_true(pred, stats, genes=genes[0])


def test_predicted_vs_true_reads_a_set_up_screen_or_profiles(split_tiny, pair):
    stats = ps.pp.PseudobulkStats.from_adata(split_tiny)
    genes = ps.pp.DEGenes.from_adata(split_tiny).top_genes(pair)
    pred = TrainMean(split_tiny).fit().predict(pair)
    expected = pl.predicted_vs_true(pred, stats, genes=genes).collections[0].get_offsets()
    profiles = ps.pp.measured_profiles(split_tiny)
    for measured in (split_tiny, profiles, profiles[[pair]]):
        ax = pl.predicted_vs_true(pred, measured, genes=genes)
        assert ax.get_title() == f"{pair}: {len(genes)} genes"
        np.testing.assert_allclose(ax.collections[0].get_offsets(), expected, rtol=1e-6)
    changes = pred.to_df(layer="delta").iloc[0]  # a Series names no condition
    with pytest.raises(ps.PerturbsimError, match=r"^measured holds \d+ profiles: pass condition="):
        pl.predicted_vs_true(changes, split_tiny)
    ax = pl.predicted_vs_true(changes, split_tiny, condition=pair, genes=genes)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), expected, rtol=1e-6)
    with pytest.raises(ps.PerturbsimError, match=r"^measured has no profile of 'NOPE' \(it holds"):
        pl.predicted_vs_true(changes, split_tiny, condition="NOPE")


def test_predicted_vs_true_names_a_bare_array_by_the_other_side(split_tiny, pair):
    stats = ps.pp.PseudobulkStats.from_adata(split_tiny)
    genes = ps.pp.DEGenes.from_adata(split_tiny).top_genes(pair)[:3]
    pred = TrainMean(split_tiny).fit().predict(pair)
    expected = pl.predicted_vs_true(pred, stats, genes=genes).collections[0].get_offsets()
    measured = stats.delta[stats.index([pair])[0]]  # a bare array, in the screen's gene order
    ax = pl.predicted_vs_true(pred, measured, genes=genes)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), expected, rtol=1e-6)
    changes = np.asarray(pred.layers["delta"][0])  # the bare array on the predicted side
    ax = pl.predicted_vs_true(changes, stats, condition=pair, genes=genes)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), expected, rtol=1e-6)
    with pytest.raises(ps.PerturbsimError, match=r"^predicted \(3\) and measured \(4\) differ"):
        pl.predicted_vs_true(np.zeros(3), np.zeros(4))
    with pytest.raises(ps.PerturbsimError, match="^genes= needs named values"):
        pl.predicted_vs_true(np.zeros(3), np.zeros(3), genes=["G0001"])


def test_predicted_vs_true_draws_the_row_of_a_prediction_condition_names(norman):
    pred = TrainMean(norman).fit().predict(["KLF1", "MAP2K6", "MAP2K3+MAP2K6", "CBL", "FOXO4"])
    genes = ["HBZ", "HBG2", "NPPA"]
    ax = pl.predicted_vs_true(pred, norman, condition="MAP2K3+MAP2K6", genes=genes)
    expected = pl.predicted_vs_true(pred[["MAP2K3+MAP2K6"]], norman, genes=genes)
    points = expected.collections[0].get_offsets()
    np.testing.assert_allclose(ax.collections[0].get_offsets(), points)
    assert ax.get_title() == "MAP2K3+MAP2K6: 3 genes"
    every_gene = pl.predicted_vs_true(pred[["KLF1"]], norman)  # genes=None: all of them
    assert every_gene.get_title() == f"KLF1: all {pred.n_vars} genes"
    with pytest.raises(ps.PerturbsimError) as err:
        pl.predicted_vs_true(pred, norman)
    assert str(err.value) == (
        "predicted holds 5 profiles: pass condition= to choose one of them "
        "(KLF1, MAP2K6, MAP2K3+MAP2K6, CBL, FOXO4)"
    )
    with pytest.raises(ps.PerturbsimError, match=r"^predicted has no profile of 'TP53' \(it holds"):
        pl.predicted_vs_true(pred, norman, condition="TP53")
    # a lone row that is not the condition named is not drawn against that condition
    with pytest.raises(ps.PerturbsimError, match=r"^predicted has no profile of 'MAP2K6'"):
        pl.predicted_vs_true(pred[["KLF1"]], norman, condition="MAP2K6")


def test_predicted_vs_true_refuses_nothing_to_draw():
    with pytest.raises(ps.PerturbsimError) as err:
        pl.predicted_vs_true(np.full(3, np.nan), np.array([0.1, np.nan, np.inf]))
    assert str(err.value) == (
        "nothing to draw: none of the 3 genes has both a finite predicted and a finite "
        "measured change (3 predicted and 2 measured are NaN or infinite)"
    )
    ax = pl.predicted_vs_true(np.array([np.nan, 1.0]), np.array([0.5, 0.8]))  # one is enough
    assert len(ax.collections[0].get_offsets()) == 2


def test_predicted_vs_true_arrays_and_ax():
    ax = Figure().add_subplot()
    out = pl.predicted_vs_true(np.array([0.5, -1.0, 2.0]), np.array([0.4, -0.8, 1.5]), ax=ax)
    assert out is ax and len(ax.collections[0].get_offsets()) == 3
    with pytest.raises(ps.PerturbsimError, match="differ in length"):
        pl.predicted_vs_true(np.zeros(3), np.zeros(4))
    with pytest.raises(ps.PerturbsimError, match="genes= needs named values"):
        pl.predicted_vs_true(np.zeros(3), np.zeros(3), genes=["A"])
    series = pd.Series([1.0, 2.0], index=["A", "B"])
    with pytest.raises(ps.PerturbsimError, match="genes missing from measured"):
        pl.predicted_vs_true(series, pd.Series([1.0], index=["A"]))


def test_training_history(split_tiny, tiny_go):
    model = ps.GEARS(split_tiny, seed=0, go_annotations=tiny_go).fit(max_epochs=3)
    ax = pl.training_history(model)
    assert isinstance(ax, Axes)
    twin = ax.figure.axes[1]  # the validation error on its own scale
    assert len(ax.lines) == 1 and len(twin.lines) == 1
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(twin.lines[0].get_ydata(), model.history["val_loss"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "training loss",
        "validation error",
    ]
    other = Figure().add_subplot()
    # one train and one validation line per seed of an evaluation
    histories = pd.concat([model.history.assign(seed=s) for s in (1, 2)], ignore_index=True)
    assert pl.training_history(histories, ax=other) is other
    assert len(other.lines) == 2 and len(other.figure.axes[1].lines) == 2
    assert ax.get_title() == "training history: gears"
    named = pl.training_history(histories.assign(model="stacked"))
    assert named.get_title() == "training history: stacked"
    three = pd.concat([model.history.assign(seed=s) for s in (1, 2, 3)], ignore_index=True)
    many = pl.training_history(three)
    many.figure.draw_without_rendering()  # three seeds' legend beside the curves, not on them
    legend = many.get_legend().get_window_extent()
    twin_labels = many.figure.axes[1].yaxis.label.get_window_extent()
    assert len(many.lines) == 3 and legend.x0 > twin_labels.x1
    assert other.get_legend().get_window_extent().x1 <= other.get_window_extent().x1


def test_training_history_of_the_default_names_its_gears_part_and_its_weight(
    split_tiny, tiny_go, monkeypatch
):
    model = ps.Stacked(split_tiny, seed=0, go_annotations=tiny_go).fit(max_epochs=2)
    gears = model.weights.query("part == 'gears'")["weight"]
    unused = " (weight 0 in every kind: no part of its predictions)"
    title = pl.training_history(model).get_title().replace("\n", " ")
    assert title == "training history: stacked's GEARS part" + (unused if gears.eq(0).all() else "")
    weights = model.weights
    for weight in (0.0, 0.3):  # weighed nowhere, or somewhere
        changed = weights.assign(weight=np.where(weights["part"] == "gears", weight, 1.0))
        monkeypatch.setattr(type(model), "weights", property(lambda self, w=changed: w))
        title = pl.training_history(model).get_title().replace("\n", " ")
        assert title.endswith("GEARS part" + (unused if weight == 0 else ""))


def _shown_tick_labels(ax: Axes) -> set[str]:
    low, high = ax.get_ylim()
    return {
        t.get_text()
        for t in [*ax.get_yticklabels(), *ax.get_yticklabels(minor=True)]
        if t.get_text() and low <= t.get_position()[1] <= high
    }


def test_training_history_gives_loss_and_validation_error_their_own_scales():
    # levels a decade apart: on one axis the training loss's course would be a flat line
    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [4.5, 4.2, 4.0], "val_loss": [0.09, 0.06, 0.035]}
    )
    ax = pl.training_history(history)
    ax.figure.draw_without_rendering()
    twin = ax.figure.axes[1]
    low, high = ax.get_ylim()
    assert 3.5 < low < 4.0 and 4.5 < high < 5.0  # the loss's own range fills its axis
    assert twin.get_ylim()[0] < 0.035 and twin.get_ylim()[1] < 0.2
    assert ax.get_yscale() == twin.get_yscale() == "log"
    assert "4" in _shown_tick_labels(ax) and "0.05" in _shown_tick_labels(twin)
    assert ax.get_ylabel() == "training loss (solid)"
    assert twin.get_ylabel() == "validation error (dashed)"
    unvalidated = pl.training_history(history.assign(val_loss=np.nan))
    assert unvalidated.get_ylabel() == "training loss"  # no validation curve, none named
    assert len(unvalidated.figure.axes) == 1


def test_training_history_says_why_there_is_none(split_tiny, tiny_go, result):
    # an evaluation of baselines only: its histories are empty, as no model trained a network
    assert result.histories.empty
    with pytest.raises(ps.PerturbsimError, match=r"^the history table is empty: none of the "):
        pl.training_history(result.histories)
    with pytest.raises(ps.PerturbsimError, match=r"^gears has no training history: it is not fit"):
        pl.training_history(ps.GEARS(split_tiny, seed=0, go_annotations=tiny_go))
    with pytest.raises(ps.PerturbsimError, match=r"^mean has no training history: it trained no "):
        pl.training_history(TrainMean(split_tiny).fit())  # a baseline keeps no history at all
    table = pd.DataFrame({"epoch": [1, 2], "loss": [0.5, 0.4]})
    with pytest.raises(ps.PerturbsimError) as err:
        pl.training_history(table)
    assert str(err.value) == (
        "no columns ['train_loss', 'val_loss'] in the history table (it has epoch, loss): it "
        "must be a DataFrame with the columns ['epoch', 'train_loss', 'val_loss']"
    )


def test_uncertainty_axes_are_labelled_plainly_without_crowded_minor_ticks():
    table = pd.DataFrame(
        {
            "model": "m",
            "subgroup": "unseen_single",
            "uncertainty": np.linspace(0.012, 0.15, 12),
            "error_de": np.linspace(0.002, 0.9, 12),
        }
    )
    ax = pl.uncertainty_vs_error(table, model="m")
    ax.figure.canvas.draw()
    labelled = [
        t
        for t in [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)]
        if t.get_text() and 0.012 <= t.get_position()[0] <= 0.15
    ]
    # the decade and 2 and 5 times one: not every minor tick, which overlapped
    assert sorted(t.get_text() for t in labelled) == ["0.02", "0.05", "0.1"]


def test_uncertainty_title_says_its_spearman_is_pooled_over_conditions_and_seeds():
    table = pd.DataFrame(
        {
            "model": "m",
            "seed": [0, 0, 0, 1, 1, 1],
            "subgroup": "unseen_single",
            "uncertainty": [0.1, 0.2, 0.3, 0.1, 0.2, 0.3],
            "error_de": [0.1, 0.2, 0.3, 1.3, 1.1, 1.2],
        }
    )
    # per seed the correlations are 1 and -0.5, their mean (the summary's) 0.25; the title
    # gives the one pooled over all 6 points, and says so
    ax = pl.uncertainty_vs_error(table, model="m")
    assert ax.get_title() == "m: Spearman 0.12\npooled over 6 test conditions of 2 seeds"
    one_seed = pl.uncertainty_vs_error(table[table["seed"] == 0], model="m")
    assert one_seed.get_title() == "m: Spearman 1.00\npooled over 3 test conditions"
    # a point at 0 cannot be drawn on log axes: the title says how many are not
    exact = table[table["seed"] == 0].assign(error_de=[0.0, 0.2, 0.3])
    assert (
        pl.uncertainty_vs_error(exact, model="m")
        .get_title()
        .endswith("pooled over 3 test conditions (1 at 0, not drawn on log axes)")
    )


def test_curves_keep_their_legend_off_the_lines_on_a_figure_of_their_own():
    table = pd.DataFrame(
        {
            "model": np.repeat(["a_long_model_name", "another_long_model_name"], 6),
            "genes": np.tile(np.repeat(["de", "all"], 3), 2),
            "nominal": np.tile([0.5, 0.8, 0.9], 4),
            "observed": np.linspace(0.1, 0.95, 12),
        }
    )
    for ax in (pl.calibration_curve(table), pl.design_curves(CURVES)):
        ax.figure.draw_without_rendering()  # inside, lines ran through the legend
        legend = ax.get_legend().get_window_extent()
        assert legend.x0 >= ax.get_window_extent().x1 and legend.x1 <= ax.figure.bbox.x1
    given = Figure().add_subplot()  # an Axes given: the legend stays inside it
    pl.calibration_curve(table, ax=given)
    assert given.get_legend().get_window_extent().x1 <= given.get_window_extent().x1


def test_calibration_curve_refuses_gene_sets_and_values_it_cannot_label():
    table = pd.DataFrame(
        {"model": "m", "genes": ["de", "xx"], "nominal": [0.5, 0.9], "observed": [0.4, 0.8]}
    )
    with pytest.raises(ps.PerturbsimError, match=r"'genes' must hold 'de' or 'all', got \['xx'\]"):
        pl.calibration_curve(table)  # it was drawn and labelled "all genes"
    with pytest.raises(ps.PerturbsimError, match="column 'observed' must hold numbers"):
        pl.calibration_curve(table.assign(genes="de", observed=["a", "b"]))


def test_uncertainty_plots_name_the_columns_they_need_and_the_models_there():
    table = pd.DataFrame({"x": [1]})
    with pytest.raises(ps.PerturbsimError) as err:
        pl.calibration_curve(table)
    assert str(err.value) == (
        "no columns ['model', 'genes', 'nominal', 'observed'] in data (it has x): it must be "
        "an EvaluationResult or its calibration table with the columns ['model', 'genes', "
        "'nominal', 'observed']"
    )
    needed = r"\['model', 'subgroup', 'uncertainty', 'error_all'\]"
    with pytest.raises(ps.PerturbsimError, match=rf"^no columns {needed} in data \(it has x\)"):
        pl.uncertainty_vs_error(table, model="x", genes="all")
    with pytest.raises(ps.PerturbsimError, match=r"its uncertainty table .* got str$"):
        pl.uncertainty_vs_error("table.csv", model="x")
    rows = pd.DataFrame(
        {"model": "m", "subgroup": "unseen_single", "uncertainty": [0.1], "error_de": [0.2]}
    )
    with pytest.raises(ps.PerturbsimError, match=r"^model 'x' has no uncertainty rows; .*\['m'\]"):
        pl.uncertainty_vs_error(rows, model="x")


def test_an_evaluation_without_uncertainty_is_said_so(result):
    for plot in (pl.calibration_curve, lambda data: pl.uncertainty_vs_error(data, model="mean")):
        with pytest.raises(ps.PerturbsimError, match="^no model of this evaluation has a predic"):
            plot(result)


CURVES = pd.DataFrame(
    {
        "strategy": ["combined"] * 4 + ["random"] * 4,
        "seed": [0, 0, 1, 1] * 2,
        "n_measured": [8, 16] * 4,
        "error": [0.9, 0.5, 0.8, 0.6, 0.9, 0.7, 0.8, 0.8],
    }
)


def test_design_curves_refuse_what_is_not_learning_curves():
    with pytest.raises(ps.PerturbsimError) as err:
        pl.design_curves("curves.csv")
    assert str(err.value) == (
        "curves must be a DataFrame of learning curves with the columns ['strategy', 'seed', "
        "'n_measured', 'error'], got str"
    )
    with pytest.raises(ps.PerturbsimError, match=r"^no columns \['seed'\] in curves"):
        pl.design_curves(CURVES.drop(columns="seed"))


def test_design_curves_bands_stop_at_zero_for_an_error_that_cannot_be_negative():
    wide = CURVES.assign(error=[0.9, 0.02, 0.8, 0.9, 0.9, 0.02, 0.8, 0.9])  # 2 seeds far apart
    bands = [c.get_paths()[0].vertices[:, 1] for c in pl.design_curves(wide).collections]
    assert min(b.min() for b in bands) == 0.0
    signed = pl.design_curves(wide.assign(error=wide["error"] - 0.5)).collections
    assert min(c.get_paths()[0].vertices[:, 1].min() for c in signed) < -0.5
    # a round that could not be scored keeps the floor
    unscored = wide.assign(error=wide["error"].where(wide.index != 0))
    bands = [c.get_paths()[0].vertices[:, 1] for c in pl.design_curves(unscored).collections]
    assert np.nanmin([b.min() for b in bands]) == 0.0


def test_metric_bars_of_many_models_grow_the_figure_not_shrink_the_axes(result):
    summary = result.summary()
    many = pd.concat([summary.assign(model=summary["model"] + f"_{i}") for i in range(10)])
    ax = pl.metric_bars(many, metric="pearson_delta_de")
    ax.figure.draw_without_rendering()  # a fixed 3.6 inches collapsed the axes to a strip
    legend = ax.get_legend().get_window_extent()
    assert legend.y0 >= 0 and legend.y1 <= ax.figure.bbox.y1  # every entry inside
    assert ax.get_position().height * ax.figure.get_figheight() > 2.0  # inches of axes


def test_design_curves_and_metric_bars_take_one_name_as_a_string(result):
    ax = pl.design_curves(CURVES, strategies="random")
    assert [line.get_label() for line in ax.get_lines()] == ["random", "random at 16"]
    ax = pl.metric_bars(result, metric="pearson_delta_de", models="mean")
    assert len([c for c in ax.containers if isinstance(c, BarContainer)]) == 1


def test_design_curves_refuse_an_unknown_reference():
    with pytest.raises(ps.PerturbsimError) as err:
        pl.design_curves(CURVES, reference="nope")
    assert str(err.value) == (
        "reference 'nope' is not a strategy of the curves (have: ['combined', 'random']); "
        "pass reference=None to mark none"
    )
    combined = CURVES[CURVES["strategy"] == "combined"]
    for reference in ({}, {"reference": None}):  # the default, random, only where it is
        ax = pl.design_curves(combined, **reference)
        assert [line.get_label() for line in ax.get_lines()] == ["combined"]
    ax = pl.design_curves(CURVES, reference="combined")
    assert ax.get_lines()[-1].get_label() == "combined at 16"
    assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(0.55)  # mean of 0.5 and 0.6


def test_metric_bars_refuse_unknown_names_and_mark_partial_coverage(result):
    with pytest.raises(ps.PerturbsimError, match=r"no scores of the models \['mea'\]"):
        pl.metric_bars(result, metric="nmse_de", models=["mea", "additive"])
    with pytest.raises(ps.PerturbsimError, match=r"no subgroups \['combo_seen_2'\]"):
        pl.metric_bars(result, metric="nmse_de", subgroups=["combo_seen_2"])
    ax = pl.metric_bars(result, metric="nmse_de", models=["additive", "mean"])
    coverage = result.coverage_table().set_index(["model", "subgroup"])
    subgroups = [t.get_text() for t in ax.get_xticklabels()]
    summary = result.summary().set_index(["model", "subgroup", "metric"])
    expected = []
    for model in ("additive", "mean"):
        for group in subgroups:
            covered, total = coverage.loc[(model, group), ["n_covered", "n_total"]]
            note = f"{covered}/{total}" if 0 < covered < total else ""
            key = (model, group, "nmse_de")
            if covered == 0:
                note = "–"  # predicts none of them, as the tables mark it
            elif key not in summary.index or np.isnan(summary.loc[key, "mean"]):
                note = "n/a" + (f" ({note})" if note else "")  # a gap says why
            if note:
                expected.append(note)
    assert [t.get_text() for t in ax.texts] == expected
    assert any("/" in note for note in expected)  # additive covers only some pairs
    assert "–" in expected  # and no unseen single
    # a bar of some conditions only is faded, every other one drawn solid
    for container in (c for c in ax.containers if isinstance(c, BarContainer)):
        for group, bar in zip(subgroups, container.patches, strict=True):
            covered, total = coverage.loc[(container.get_label(), group), ["n_covered", "n_total"]]
            partial = 0 < covered < total and np.isfinite(bar.get_height())
            assert bar.get_alpha() == (pl._plots.PARTIAL_ALPHA if partial else None)
    assert any(bar.get_alpha() for bar in ax.patches)
    assert all(h.get_alpha() is None for h in ax.get_legend().legend_handles)  # full colours
    # each note stands past its bar's end (nMSE's axis has no room below 0), never over it
    for text in ax.texts:
        x, y = text.xy  # where it stands (its text a few points off)
        bar = min(ax.patches, key=lambda b: abs(b.get_x() + b.get_width() / 2 - x))
        height = bar.get_height()
        assert y == pytest.approx(height if np.isfinite(height) else 0.0)
        assert text.get_va() == "bottom"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "additive",
        "mean",
        "no change (1)",
        "k/n: faded, k of\nn conditions",
        "–: predicts none",
    ]  # what the notes and the dotted line mean, under the models
    undefined = result.summary().copy()  # a gap of no score alone: n/a, not k/n, explained
    undefined = undefined[undefined["metric"] == "pearson_delta_de"]
    undefined = undefined[undefined["subgroup"] == "combo_seen2"]
    undefined.loc[undefined["model"] == "mean", "mean"] = np.nan
    key = [
        t.get_text()
        for t in pl.metric_bars(undefined, metric="pearson_delta_de").get_legend().get_texts()
    ]
    assert key[-1] == "n/a: undefined" and not any(k.startswith("k/n") for k in key)
    pearson = pl.metric_bars(result, metric="pearson_delta_de", models=["additive", "mean"])
    for text in pearson.texts:  # room below 0: the note hangs from 0, away from the bar
        if not text.get_text().startswith(("n/a", "–")):
            assert text.xy[1] == 0.0 and text.get_va() == "top"


@pytest.mark.parametrize(
    ("low", "high", "labels"),
    [
        (0.39, 0.452, ["0.4"]),  # within a decade and under three-fold: every tick
        (0.045, 0.5, ["0.05", "0.1", "0.2", "0.5"]),  # one decade inside: 2 and 5 too
        (0.01, 3.0, ["0.01", "0.1", "1"]),  # decades enough: only they
        (1.2, 1.43, []),  # between the ticks of a log axis: plain ticks, each labelled
        (0.11, 0.14, []),
    ],
)
def test_log_axes_are_labelled_plainly_and_never_with_a_lone_label(low, high, labels):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [low, high])
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    pl._plots.plain_log_labels(ax.yaxis)
    fig.canvas.draw()
    shown = [
        t.get_text()
        for t in [*ax.yaxis.get_majorticklabels(), *ax.yaxis.get_minorticklabels()]
        if t.get_text() and low <= float(t.get_text()) <= high
    ]
    assert all(label in shown for label in labels) and len(shown) >= 2
    assert not any("10" in label and "^" in label for label in shown)
    plt.close(fig)


def test_an_x_log_axis_under_ten_fold_labels_three_times_a_decade_too():
    fig, ax = plt.subplots()
    ax.plot([0.022, 0.15], [0, 1])
    ax.set_xscale("log")
    ax.set_xlim(0.022, 0.15)  # uncertainties of 0.025 sat left of any labelled tick
    pl._plots.plain_log_labels(ax.xaxis)
    fig.canvas.draw()
    shown = {
        t.get_text() for t in [*ax.xaxis.get_majorticklabels(), *ax.xaxis.get_minorticklabels()]
    }
    assert {"0.03", "0.05", "0.1"} <= shown
    plt.close(fig)


def test_a_model_and_a_subgroup_keep_their_colours_across_figures(result):
    def bar_colours(ax):
        handles, labels = ax.get_legend_handles_labels()
        pairs = zip(handles, labels, strict=True)
        return {
            label: tuple(handle.patches[0].get_facecolor())
            for handle, label in pairs
            if hasattr(handle, "patches")  # a model's bars, not the dotted line at 1
        }

    both = bar_colours(pl.metric_bars(result, metric="nmse_de", models=["additive", "mean"]))
    alone = bar_colours(pl.metric_bars(result, metric="nmse_de", models=["mean"]))
    assert both["mean"] == alone["mean"] != both["additive"]
    narrow = pl.metric_bars(result, metric="nmse_de", models=["mean"], subgroups="unseen_single")
    narrow.figure.draw_without_rendering()
    title = narrow.title.get_window_extent()
    assert narrow.figure.bbox.x0 <= title.x0 and title.x1 <= narrow.figure.bbox.x1  # not cut
    histories = pd.concat(
        [
            pd.DataFrame(
                {"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_loss": [1.5, 1.2]}
            ).assign(model=model, seed=seed)
            for model in ("stacked", "gears_residual")
            for seed in (1, 2, 3)
        ],
        ignore_index=True,
    )
    ax = pl.training_history(histories)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [  # each model named once, in its own colour; each seed by its marker
        "training loss (stacked)",
        "training loss (gears_residual)",
        "validation error (stacked)",
        "validation error (gears_residual)",
        "seed 1",
        "seed 2",
        "seed 3",
    ]
    markers = [line.get_marker() for line in ax.get_lines()]  # stacked's seeds, then gears'
    assert markers[:3] == markers[3:6] and len(set(markers[:3])) == 3
    twin = ax.figure.axes[1]
    assert {line.get_color() for line in [*ax.get_lines()[:3], *twin.get_lines()[:3]]} == {"C0"}


def test_metric_bars_read_a_written_result_s_coverage_and_refuse_an_interval_off_its_mean(
    result, tmp_path
):
    result.write(tmp_path / "res")
    summary = pd.read_csv(tmp_path / "res" / "summary.csv")
    per_seed = pd.read_csv(tmp_path / "res" / "coverage.csv")  # one row per seed
    assert per_seed.duplicated(["model", "subgroup"]).any()
    given = pl.metric_bars(summary, metric="nmse_de", coverage=per_seed)
    own = pl.metric_bars(result, metric="nmse_de")
    assert [t.get_text() for t in given.texts] == [t.get_text() for t in own.texts]
    assert any("/" in t.get_text() for t in own.texts)
    moved = summary.copy()
    row = (moved["model"] == "mean") & (moved["metric"] == "nmse_de")
    moved.loc[row, "ci_low"] = moved.loc[row, "mean"] + 0.1
    with pytest.raises(ps.PerturbsimError, match="interval of model 'mean' .* does not hold"):
        pl.metric_bars(moved, metric="nmse_de")


def test_lines_run_in_order_of_their_x_whatever_the_rows_order():
    table = pd.DataFrame(
        {"model": "m", "genes": "de", "nominal": [0.9, 0.5, 0.7], "observed": [0.8, 0.4, 0.6]}
    )
    line = pl.calibration_curve(table).get_lines()[1]
    assert list(line.get_xdata()) == [0.5, 0.7, 0.9] and list(line.get_ydata()) == [0.4, 0.6, 0.8]
    history = pd.DataFrame({"epoch": [2, 0, 1], "train_loss": [1.0, 3.0, 2.0], "val_loss": np.nan})
    line = pl.training_history(history).get_lines()[0]
    assert list(line.get_xdata()) == [0, 1, 2] and list(line.get_ydata()) == [3.0, 2.0, 1.0]
    plt.close("all")


def test_uncertainty_vs_error_counts_the_points_it_draws():
    table = pd.DataFrame(
        {
            "model": "m",
            "subgroup": "unseen_single",
            "uncertainty": [0.1, 0.2, 0.3, np.nan],
            "error_de": [0.01, 0.03, 0.02, 0.5],
        }
    )
    title = pl.uncertainty_vs_error(table, model="m").get_title()
    assert "pooled over 3 test conditions" in title and "1 without a value, left out" in title
    one = pl.uncertainty_vs_error(table.iloc[2:], model="m").get_title()
    assert "Spearman n/a" in one and "pooled over 1 test condition " in one
    two = pl.uncertainty_vs_error(table.iloc[:2], model="m").get_title()
    assert "Spearman n/a" in two  # two points rank +-1 whatever they are: read 1.00 before
    assert "Spearman 0.50" in title  # three: a correlation
    with pytest.raises(ps.PerturbsimError, match="no test condition with a finite"):
        pl.uncertainty_vs_error(table.iloc[3:], model="m")
    plt.close("all")


def test_chosen_genes_are_refused_when_empty_repeated_or_not_numbers(split_tiny, pair):
    model = TrainMean(split_tiny).fit()
    with pytest.raises(ps.PerturbsimError, match="genes is empty"):
        pl.pair_prediction(model, pair, genes=[])
    pred = pd.Series([1.0, 2.0, 3.0], index=["x", "y", "w"])
    with pytest.raises(ps.PerturbsimError, match=r"genes names x more than once"):
        pl.predicted_vs_true(pred, pred, genes=["x", "x"])
    words = pd.Series([1.0, np.nan, "z"], index=["x", "y", "w"])
    with pytest.raises(ps.PerturbsimError, match="gene 'w' holds 'z'"):
        pl.predicted_vs_true(words, pred)
    plt.close("all")


def test_metric_bars_centre_a_subgroup_s_bars_on_it_and_keep_no_change_of_nmse_in_sight():
    summary = pd.DataFrame(
        {
            "model": ["a", "b"],
            "subgroup": "unseen_single",
            "metric": "nmse_de",
            "mean": [0.2, 0.3],
            "ci_low": np.nan,
            "ci_high": np.nan,
            "n_seeds": 1,
        }
    )
    ax = pl.metric_bars(summary, metric="nmse_de")
    assert ax.get_ylim() == pytest.approx((0.0, 1.15))  # 1, no change, shown with a margin
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    centres = [p.get_x() + p.get_width() / 2 for c in bars for p in c.patches]
    assert centres == pytest.approx([-0.2, 0.2])  # either side of the subgroup's tick at 0


def test_metric_bars_say_a_whisker_cut_at_the_bottom_of_the_axis():
    summary = pd.DataFrame(
        {
            "model": ["a", "b"],
            "subgroup": "unseen_single",
            "metric": "score",  # no metric of the registry: unbounded both ways
            "mean": [-0.2, -0.3],
            "ci_low": [-10.0, -0.4],
            "ci_high": [0.0, -0.2],
            "n_seeds": 3,
        }
    )
    ax = pl.metric_bars(summary, metric="score")
    assert ax.get_ylim()[0] > -10.0
    title = ax.get_title().replace("\n", " ")  # wrapped to the axes' width
    assert title == "score (intervals cut at the axis) mean of 3 seeds"


def test_predicted_vs_true_pairs_changes_by_gene_and_keeps_falling_ones_in_sight():
    predicted = pd.Series([-1.0, -3.0], index=["A", "B"])
    measured = pd.Series([-2.0, -0.5], index=["B", "A"])  # another order
    ax = pl.predicted_vs_true(predicted, measured)
    assert ax.collections[0].get_offsets().tolist() == [[-0.5, -1.0], [-2.0, -3.0]]
    assert ax.get_xlim() == pytest.approx((-3.24, 3.24))
    assert ax.get_ylim() == pytest.approx((-3.24, 3.24))


def test_a_plot_of_one_profile_refuses_to_pick_among_several_unnamed():
    import anndata as ad

    two = ad.AnnData(
        np.zeros((2, 2)), obs=pd.DataFrame(index=["A", "B"]), var=pd.DataFrame(index=["g1", "g2"])
    )
    two.layers["delta"] = np.array([[1.0, 2.0], [3.0, 4.0]])
    measured = pd.Series([1.0, 2.0], index=["g1", "g2"])
    with pytest.raises(ps.PerturbsimError, match="holds 2 profiles: pass condition="):
        pl.predicted_vs_true(two, measured)
    ax = pl.predicted_vs_true(two, measured, condition="B")
    assert ax.collections[0].get_offsets().tolist() == [[1.0, 3.0], [2.0, 4.0]]


def test_metric_bars_refuse_an_empty_choice_of_models(result):
    with pytest.raises(ps.PerturbsimError, match="no scores of the models chosen"):
        pl.metric_bars(result, metric="nmse_de", models=[])


def test_training_history_lays_its_training_lines_and_legend_over_the_twin_axis():
    table = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [2.0, 1.5]})
    ax = pl.training_history(table)
    twin = next(other for other in ax.figure.axes if other is not ax)
    assert twin.lines and ax.get_zorder() > twin.get_zorder()
    assert not ax.patch.get_visible()  # seen through


def _cielab(colour) -> np.ndarray:
    """CIELAB coordinates (D65) of a matplotlib colour: distances there are perceived ones."""
    rgb = np.asarray(to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = (xyz @ linear) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_twenty_models_take_colours_told_apart():
    # the catalogue's baselines beside its variants, and 20 names of a user's: tab20b's close
    # shades of one hue gave two of them colours 7 apart in CIELAB (gears' pink and another)
    variants = [name for name in VARIANTS if name not in MODEL_COLOURS]
    catalogue = [*MODEL_COLOURS, *variants[:11]]
    for names in (catalogue, [f"model_{i}" for i in range(20)]):
        colours = model_colours(names)
        assert len(colours) == 20
        lab = {name: _cielab(colour) for name, colour in colours.items()}
        closest = min(np.linalg.norm(lab[a] - lab[b]) for a, b in itertools.combinations(names, 2))
        assert closest >= 20
    # as OTHER_COLOURS says: all 30 colours of models apart, none lighter than L 88
    palette = [_cielab(c) for c in (*MODEL_COLOURS.values(), *OTHER_COLOURS)]
    assert len(palette) == 30 and max(lab[0] for lab in palette) <= 88
    assert min(np.linalg.norm(a - b) for a, b in itertools.combinations(palette, 2)) >= 20


def test_training_history_tells_eight_seeds_apart_by_marker_and_more_by_filling():
    def history(n_seeds):
        return pd.concat(
            [
                pd.DataFrame(
                    {"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_loss": [1.5, 1.2]}
                ).assign(model=model, seed=seed)
                for model in ("stacked", "gears")
                for seed in range(n_seeds)
            ],
            ignore_index=True,
        )

    ax = pl.training_history(history(8))
    runs = ax.get_lines()  # stacked's eight seeds, then gears'
    assert len({line.get_marker() for line in runs[:8]}) == 8
    assert [line.get_marker() for line in runs[:8]] == [line.get_marker() for line in runs[8:]]
    keys = [h for h in ax.get_legend().legend_handles if h.get_label().startswith("seed")]
    assert len({h.get_marker() for h in keys}) == 8  # six markers drew seeds 0 and 6 alike
    ax = pl.training_history(history(20))
    styles = {(line.get_marker(), line.get_fillstyle()) for line in ax.get_lines()[:20]}
    assert len(styles) == 20  # past the twelve shapes, the same hollow


def test_design_curves_keep_a_strategy_s_colour_whatever_others_are_drawn():
    def colours(ax):
        return {line.get_label(): to_rgb(line.get_color()) for line in ax.get_lines()}

    both = colours(pl.design_curves(CURVES))
    alone = pl.design_curves(CURVES, strategies="random")
    assert colours(alone)["random"] == both["random"] != both["combined"]  # not by order
    band = alone.collections[0].get_facecolor()[0]
    assert tuple(band[:3]) == pytest.approx(both["random"])  # the band in its line's colour
    reordered = colours(pl.design_curves(CURVES, strategies=["random", "combined"]))
    assert reordered["random"] == both["random"] and reordered["combined"] == both["combined"]


def test_metric_bars_keep_coverage_notes_off_the_zero_line(result):
    ax = pl.metric_bars(result, metric="pearson_delta")  # notes on 0: '–', 'n/a', and 3/4
    ax.figure.draw_without_rendering()
    zero = next(line for line in ax.get_lines() if list(line.get_ydata()) == [0, 0])
    y = ax.transData.transform((0, 0))[1]
    half = zero.get_linewidth() * ax.figure.dpi / 72 / 2  # the line's half width, in pixels
    assert ax.texts
    for note in ax.texts:  # its white ground neither cut the line nor touched it
        ground = note.get_bbox_patch().get_window_extent()
        assert ground.y0 > y + half or ground.y1 < y - half, note.get_text()
