"""Plots of genetic interactions: GI map, a pair's prediction, the phenotype landscape.

Figures are matplotlib ``Figure`` objects (no pyplot), saved to PNG through Agg.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import rgb_to_hsv, to_rgba
from matplotlib.figure import Figure

import perturbsim as ps
from perturbsim import pl


@pytest.fixture(scope="module")
def gears(_tiny_cached) -> ps.GEARS:
    progress, ps.settings.progress = ps.settings.progress, False
    try:
        go = _tiny_cached.uns["simulation"]["go"]
        return ps.GEARS(_tiny_cached, seed=0, go_annotations=go).fit(max_epochs=2)
    finally:
        ps.settings.progress = progress


@pytest.fixture(scope="module")
def pairs(gears, _tiny_cached):
    """Every single and pair of the tiny screen's perturbable genes, with GI scores."""
    genes = list(_tiny_cached.var_names[_tiny_cached.var["perturbable"].to_numpy()])
    return gears.predict_pairs(genes)


@pytest.fixture(scope="module")
def measured_pair(_tiny_cached) -> str:
    """A measured pair of the tiny screen whose two singles are measured too."""
    conditions = set(_tiny_cached.obs["perturbsim_condition"].astype(str))
    return next(c for c in sorted(conditions) if "+" in c and set(ps.pp.genes_of(c)) <= conditions)


def test_gi_map_counts_each_reason_once_and_wraps_a_long_note(pairs):
    table = pairs.obs[pairs.obs["flag"] == ""].copy()  # scored pairs, and five left out
    left = table.iloc[:5].copy()
    left.index = [f"X{i}+Y{i}" for i in range(5)]
    left["flag"] = [
        "missing single X0",
        "missing singles X1, Y1; too few DE genes (0 <= 0)",  # its own kind before
        "too few DE genes (2 <= 0)",
        "few cells (X3+Y3 2)",
        "generic single Y4",
    ]
    ax = pl.gi_map(pd.concat([table, left]))
    title = ax.get_title()
    assert title.replace("\n", " ") == (
        "genetic interaction map left out: 5 pairs not scored (2 missing single(s), 2 no more "
        "DE genes than min_de, 1 a mean of fewer cells than min_cells, 1 a single the model's "
        "generic guess)"
    )
    assert title.count("\n") >= 2  # wider than the figure on one line: cut at both edges
    ax.figure.draw_without_rendering()
    extent = ax.title.get_window_extent()
    assert extent.x0 >= 0 and extent.x1 <= ax.figure.bbox.x1


def test_gi_map_shows_standardised_scores_of_the_scored_pairs_clustered(pairs, tmp_path):
    ax = pl.gi_map(pairs, max_labels=100)
    assert isinstance(ax, Axes)
    scored = pairs.obs[pairs.obs["flag"] == ""]
    scores, calls = ax.images[0].get_array(), ax.images[1].get_array()
    assert scores.shape == (len(scored), len(pl._gi.GI_MAP_COLUMNS))
    assert calls.shape == (len(scored), 6)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(scored.index)  # every scored pair, in clustered order
    row = labels.index(scored.index[0])
    magnitude = scored["magnitude"].to_numpy(dtype=float)
    z = (magnitude[0] - magnitude.mean()) / magnitude.std()
    assert scores[row, 0] == pytest.approx(np.clip(z, -3, 3), rel=1e-6)
    assert calls[row, 0] == float(scored["is_synergy"].iloc[0])
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    values = scored[list(pl._gi.GI_MAP_COLUMNS)].astype(float)
    negligible = values.std(ddof=0) <= pl._gi.NEGLIGIBLE_SPREAD * values.abs().max().clip(1.0)
    expected = [
        f"{c} (constant)"
        if negligible[c]
        else f"{c} ({values[c].min():.3g} to {values[c].max():.3g})"  # what the z hides
        for c in pl._gi.GI_MAP_COLUMNS
    ]
    assert ticks[:5] == expected and "synergy" in ticks
    assert not negligible["magnitude"]  # GEARS's pairs differ in magnitude
    assert "called" in ax.get_xlabel()  # the calls' grey scale is explained
    flagged = int((pairs.obs["flag"].isin(["", "single"])).__invert__().sum())
    assert flagged > 0  # the tiny screen has pairs left unscored
    assert ax.get_ylabel() == f"{len(scored)} pairs (clustered)"
    unscored = pairs.obs.loc[~pairs.obs["flag"].isin(["", "single"]), "flag"]
    # each kind of reason once, with the pairs it holds for (a pair may have several)
    kinds = unscored.map(ps.pp._gi.flag_kind).str.split("; ").explode().value_counts()
    why = ", ".join(f"{n} {kind}" if n < flagged else kind for kind, n in kinds.items())
    not_scored = f"{flagged} pair{'s' if flagged > 1 else ''} not scored ({why})"
    title = ax.get_title()
    assert title.startswith("genetic interaction map\n")
    assert title.replace("\n", " ") == f"genetic interaction map left out: {not_scored}"
    ax.figure.draw_without_rendering()  # wrapped to the figure: never cut at its edges
    assert ax.title.get_window_extent().x0 >= 0
    assert ax.title.get_window_extent().x1 <= ax.figure.bbox.x1
    assert why and "+" not in why  # a kind of reason, not each pair's genes
    only_scored = pairs.obs[pairs.obs["flag"] == ""].copy()
    assert pl.gi_map(only_scored).get_title() == "genetic interaction map"
    only_scored.iloc[0, only_scored.columns.get_loc("magnitude")] = np.inf
    ax = pl.gi_map(only_scored)
    assert ax.get_ylabel() == f"{len(scored) - 1} pairs (clustered)"
    assert ax.get_title() == "genetic interaction map\nleft out: 1 with a non-finite score"
    ax.figure.savefig(tmp_path / "gi_map.png")
    few = pl.gi_map(pairs, max_labels=10)  # more pairs than labels: one in k named
    n_pairs = int(few.get_ylabel().split()[0])
    step = -(-n_pairs // 10)
    assert 0 < len(few.get_yticklabels()) <= 10
    assert few.get_ylabel() == f"{n_pairs} pairs (clustered, one in {step} named)"
    assert not pl.gi_map(pairs, max_labels=0).get_yticklabels()
    summed = only_scored.assign(sum_of_singles=True)  # as an additive prediction's pairs
    assert (
        pl.gi_map(summed)
        .get_title()
        .replace("\n", " ")
        .endswith(
            f" {len(scored) - 1} of {len(scored) - 1} predicted as their singles summed: "
            "the additive model's calls"
        )
    )


def test_gi_map_draws_a_column_of_rounding_differences_neutral(pairs):
    table = pairs.obs[pairs.obs["flag"] == ""].copy()
    table["fit_corr"] = 1.0 - np.linspace(2e-5, 1.1e-3, len(table))  # summed pairs' fit_corr
    table["dominance"] = np.linspace(1e-11, 1e-8, len(table))  # |log(c1 / c2)| of c1 = c2
    ax = pl.gi_map(table)
    scores = ax.images[0].get_array()
    column = list(pl._gi.GI_MAP_COLUMNS).index("fit_corr")
    assert np.all(scores[:, column] == 0.0)
    assert np.all(scores[:, list(pl._gi.GI_MAP_COLUMNS).index("dominance")] == 0.0)
    assert np.ptp(scores[:, list(pl._gi.GI_MAP_COLUMNS).index("magnitude")]) > 1.0
    ticks = [t.get_text() for t in ax.get_xticklabels()]  # said, not drawn as "not called"
    assert ticks[column] == "fit_corr (constant)" and ticks[0].startswith("magnitude (")
    table["magnitude"] = np.linspace(100.0, 100.49, len(table))  # "100 to 100" at 3 digits
    assert pl.gi_map(table).get_xticklabels()[0].get_text() == "magnitude (100 to 100.5)"


def test_gi_map_needs_scores(pairs):
    with pytest.raises(ps.PerturbsimError, match="'flag' column"):
        pl.gi_map(pairs.obs.drop(columns="flag"))
    with pytest.raises(ps.PerturbsimError, match="not found"):
        pl.gi_map(pairs, columns=["magnitude", "nonsense"])
    with pytest.raises(ps.PerturbsimError, match="at least 2 scored pairs"):
        pl.gi_map(pairs.obs.iloc[:15])
    with pytest.raises(ps.PerturbsimError, match="max_labels must be a whole number >= 0"):
        pl.gi_map(pairs, max_labels="10")
    with pytest.raises(ps.PerturbsimError, match="ax must be a matplotlib Axes .* got str 'left'"):
        pl.gi_map(pairs, ax="left")
    with pytest.raises(ps.PerturbsimError, match="^columns must be a list of GI score columns"):
        pl.gi_map(pairs, columns="magnitude")  # read as its letters before
    with pytest.raises(ps.PerturbsimError, match=r"must hold numbers; not numeric: \['flag'\]"):
        pl.gi_map(pairs, columns=["magnitude", "flag"])
    with pytest.raises(ps.PerturbsimError, match="^columns is empty"):
        pl.gi_map(pairs, columns=[])


def test_pair_prediction_shows_singles_prediction_measurement_and_sum(
    gears, _tiny_cached, measured_pair, tmp_path
):
    a, b = ps.pp.genes_of(measured_pair)
    ax = pl.pair_prediction(gears, measured_pair, measured=_tiny_cached, n_genes=6)
    labels = [c.get_label() for c in ax.containers]
    assert labels == [
        f"{a} (measured)",
        f"{b} (measured)",
        f"{measured_pair} predicted",
        f"{measured_pair} measured",
    ]
    genes = [t.get_text() for t in ax.get_xticklabels()]
    assert len(genes) == 6 and a not in genes and b not in genes
    assert ax.get_xlabel() == "genes where the pair departs most from additive"
    ax.figure.draw_without_rendering()  # the y label within the figure, not cut at its top
    label = ax.yaxis.label.get_window_extent()
    assert ax.figure.bbox.y0 <= label.y0 and label.y1 <= ax.figure.bbox.y1
    predicted = gears.predict(measured_pair).to_df(layer="delta").iloc[0]
    heights = [p.get_height() for p in ax.containers[2].patches]
    np.testing.assert_allclose(heights, predicted[genes], rtol=1e-5, atol=1e-7)
    stats = ps.pp.compute_pseudobulk(_tiny_cached, coexpression="none")
    rows = stats.index([a, b])
    columns = [list(stats.genes).index(g) for g in genes]
    additive = stats.delta[rows][:, columns].sum(axis=0)
    tick = ax.collections[0].get_segments()
    np.testing.assert_allclose([s[0][1] for s in tick], additive, rtol=1e-6)
    ax.figure.savefig(tmp_path / "pair.png")


def test_pair_prediction_shows_genes_that_change_not_clipped_near_zero_ones(norman):
    model = ps.Additive(norman).fit()  # no interaction: deviations only where clipped at 0
    ax = pl.pair_prediction(model, "KLF1+MAP2K6", n_genes=8)
    genes = [t.get_text() for t in ax.get_xticklabels()]
    change = model.predict("KLF1+MAP2K6").to_df(layer="delta").iloc[0].abs()
    # summed: nothing deviates, so the genes it changes most, and the title says why
    assert genes == change.drop(["KLF1", "MAP2K6"], errors="ignore").nlargest(8).index.tolist()
    assert ax.get_title() == "KLF1+MAP2K6\n(predicted as its singles summed)"
    assert ax.get_xlabel() == "genes the pair changes most"
    # measured statistics as the source: nothing predicted, nothing summed
    stats = ps.pp.compute_pseudobulk(norman)
    assert pl.pair_prediction(stats, "KLF1+MAP2K6").get_title() == "KLF1+MAP2K6"


def test_pair_prediction_of_a_summed_pair_shows_where_the_measurement_deviates(norman):
    model = ps.Additive(norman).fit()  # the prediction deviates nowhere: the data choose
    ax = pl.pair_prediction(model, "KLF1+MAP2K6", measured=norman, n_genes=4)
    genes = [t.get_text() for t in ax.get_xticklabels()]
    measured = ps.pp.measured_profiles(norman).to_df(layer="delta")
    deviation = (measured.loc["KLF1+MAP2K6"] - measured.loc["KLF1"] - measured.loc["MAP2K6"]).abs()
    changing = measured.loc["KLF1+MAP2K6"].abs().drop(["KLF1", "MAP2K6"], errors="ignore")
    candidates = changing.nlargest(5 * 4).index
    top = deviation[candidates].nlargest(4).index
    assert len(set(top) & set(genes)) >= 3  # the rest: clipped at 0 in the prediction
    alone = pl.pair_prediction(model, "KLF1+MAP2K6", n_genes=4)
    assert len(set(top) & {t.get_text() for t in alone.get_xticklabels()}) < 3


def test_pair_prediction_from_profiles_without_measurement_uses_predicted_singles(pairs):
    pair = pairs.obs_names[pairs.obs["n_targets"] == 2][0]
    a, _ = ps.pp.genes_of(pair)
    genes = list(pairs.var_names[:3])
    ax = pl.pair_prediction(pairs, pair, genes=genes)
    assert ax.containers[0].get_label() == f"{a} (predicted)"
    assert len(ax.containers) == 3
    heights = [p.get_height() for p in ax.containers[0].patches]
    np.testing.assert_allclose(heights, pairs[a, genes].layers["delta"][0], rtol=1e-6)


def test_pair_prediction_says_what_makes_a_prediction_weak(norman):
    model = ps.Stacked(norman, seed=0).fit()  # every condition: the pairs are fitted on
    generic = model.predict(["TP53"]).obs  # in no GO graph of the screen: a generic guess
    assert bool(generic["unsupported"].iloc[0]) and bool(generic["generic"].iloc[0])
    ax = pl.pair_prediction(model, "KLF1+TP53", measured=norman)
    labels = [c.get_label() for c in ax.containers]
    assert labels == ["KLF1 (measured)", "TP53 (predicted: a generic guess)", "KLF1+TP53 predicted"]
    assert ax.get_title() == (  # drawn, its measured single shown
        "KLF1+TP53\n(predicted as its singles summed)\n(the pair was not measured)"
    )
    assert pl.pair_prediction(model, "KLF1+TP53").containers[0].get_label() == "KLF1 (predicted)"
    additive = ps.Additive(norman).fit()  # a sum, the pair unmeasured: the genes it changes most
    summed = pl.pair_prediction(additive, "FOXO4+HK2", measured=norman, n_genes=6)
    assert summed.get_title() == (
        "FOXO4+HK2\n(predicted as its singles summed)\n(the pair was not measured)"
    )
    change = additive.predict("FOXO4+HK2").to_df(layer="delta").iloc[0].abs()
    genes = [t.get_text() for t in summed.get_xticklabels()]
    assert genes == change.drop(["FOXO4", "HK2"], errors="ignore").nlargest(6).index.tolist()
    with pytest.raises(ps.PerturbsimError, match="measured has no profile of FOXO4, HK2 or"):
        pl.pair_prediction(
            additive, "FOXO4+HK2", measured=norman[norman.obs["perturbsim_condition"] == "ctrl"]
        )
    trained = pl.pair_prediction(model, "CEBPE+RUNX1T1", measured=norman)
    assert trained.get_title() == (  # agreement by construction, not a test
        "CEBPE+RUNX1T1: predicted and measured change\n(the model was fitted on this measured pair)"
    )
    ps.pp.split(norman, kind="simulation", seed=1)
    held = ps.Stacked(norman, seed=0).fit()
    pair = next(c for c in held.held_out_conditions if "+" in c)
    title = pl.pair_prediction(held, pair, measured=norman).get_title()
    assert title == f"{pair}: predicted and measured change"


def test_pair_prediction_errors(gears, pairs, _tiny_cached):
    with pytest.raises(ps.PerturbsimError, match="two distinct genes"):
        pl.pair_prediction(gears, "G1")
    with pytest.raises(ps.PerturbsimError, match=r"^pair must name two distinct genes, got \("):
        pl.pair_prediction(gears, ("G1", "G1"))
    pair = pairs.obs_names[-1]
    with pytest.raises(ps.PerturbsimError, match=r"^genes not in the prediction: \['NOTAGENE'\]$"):
        pl.pair_prediction(pairs, pair, genes=["NOTAGENE"])  # no measurement was given
    with pytest.raises(ps.PerturbsimError, match="^genes must be a list of genes, got the string"):
        pl.pair_prediction(pairs, pair, genes="G1")
    with pytest.raises(
        ps.PerturbsimError, match="^pair must be a label such as 'A\\+B' or two genes"
    ):
        pl.pair_prediction(pairs, None)
    a, b = ps.pp.genes_of(pair)
    reversed_rows = pairs[[a, b, pair]].copy()  # the pair's row named the other way round
    reversed_rows.obs_names = [a, b, f"{b}+{a}"]
    assert pl.pair_prediction(reversed_rows, pair).containers


def test_phenotype_landscape_embeds_both_sets_and_flags_new_clusters(
    pairs, _tiny_cached, measured_pair, tmp_path
):
    programmes = {measured_pair: "programme X", ps.pp.genes_of(measured_pair)[0] + "+ctrl": "Y"}
    ax = pl.phenotype_landscape(_tiny_cached, pairs, clusters=programmes, n_neighbors=8)
    n_measured = _tiny_cached.obs["perturbsim_condition"].nunique() - 1  # without control
    measured, predicted = ax.collections[0], ax.collections[1]
    assert len(measured.get_offsets()) == n_measured
    assert len(predicted.get_offsets()) == pairs.n_obs
    assert predicted.get_sizes()[0] >= 0.8 * measured.get_sizes()[0]  # not dots beside circles
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"programme X", "Y", "no programme"} <= set(legend)
    colours = {tuple(c[:3]) for c in predicted.get_facecolors()}
    assert to_rgba("0.8")[:3] in colours  # predicted conditions without a programme
    # igraph's Leiden clusters (a dependency: never a fallback) label the map, and the title
    # says the colours are the programmes given
    assert re.match(r"colours: the programmes given; labels: Leiden's \d+ clusters", ax.get_title())
    n_new = int(re.search(r"(\d+) with no measured profile", ax.get_title()).group(1))
    rings = len(ax.collections[2].get_offsets())  # profiles of the new clusters
    assert (rings > 0) == (n_new > 0) and rings <= pairs.n_obs
    assert ("in a new cluster" in legend) == (n_new > 0)  # no legend entry for nothing
    ax.figure.savefig(tmp_path / "landscape.png")
    norman_style = {  # the keys as Norman's manifold writes them
        measured_pair.replace("+", "_"): "programme X",
        ps.pp.genes_of(measured_pair)[0] + "_NegCtrl0": "Y",
    }
    again = pl.phenotype_landscape(
        _tiny_cached, pairs, clusters=norman_style, control="NegCtrl0", sep="_", n_neighbors=8
    )
    assert {"programme X", "Y"} <= {t.get_text() for t in again.get_legend().get_texts()}
    with pytest.raises(ps.PerturbsimError, match="pass sep='_' and control='NegCtrl0'"):
        pl.phenotype_landscape(_tiny_cached, pairs, clusters=norman_style, n_neighbors=8)
    with pytest.raises(ps.PerturbsimError, match="^measured holds a model's predictions and"):
        pl.phenotype_landscape(pairs, _tiny_cached, n_neighbors=8)  # swapped: PCA on guesses


def test_phenotype_landscape_legend_names_new_clusters_only_when_there_are(pairs, _tiny_cached):
    far = pairs.copy()  # predictions unlike anything measured: clusters of their own
    shift = np.random.default_rng(0).normal(size=(1, far.n_vars)) * 5
    far.layers["delta"] = far.layers["delta"] + shift
    far.X = far.X + shift
    for predicted in (far, _tiny_cached):  # measured profiles again: nothing new
        ax = pl.phenotype_landscape(_tiny_cached, predicted, n_neighbors=8)
        n_new = int(re.search(r"(\d+) with no measured profile", ax.get_title()).group(1))
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert ("in a new cluster" in legend) == (n_new > 0)
        assert (n_new > 0) == (predicted is far)
        assert re.match(r"Leiden: \d+ clusters\n", ax.get_title())  # colours and labels both
        # the new clusters' red is no cluster's colour: hues at least 15 degrees from red
        points = np.concatenate(
            [ax.collections[0].get_facecolors()[:, :3], ax.collections[1].get_facecolors()[:, :3]]
        )
        hue = np.array([rgb_to_hsv(c)[0] for c in points])
        coloured = points.max(axis=1) - points.min(axis=1) > 0.05
        assert np.all(np.minimum(hue, 1 - hue)[coloured] >= 15 / 360)


def test_phenotype_landscape_names_no_nan_programme_and_counts_those_it_leaves_unnamed(
    pairs, _tiny_cached
):
    measured = [c for c in _tiny_cached.obs["perturbsim_condition"].unique() if c != "ctrl"]
    conditions = list(dict.fromkeys([*measured, *pairs.obs_names[:10]]))
    own = {c: f"programme {i}" for i, c in enumerate(conditions)}  # one each: over 20
    own[conditions[0]] = np.nan  # no programme, as a table with gaps reads
    own[conditions[1]] = pd.NA  # as a nullable column holds it
    ax = pl.phenotype_landscape(_tiny_cached, pairs, clusters=own, n_neighbors=8)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "nan" not in legend
    named = len(conditions) - 2
    assert "<NA>" not in legend
    assert f"and {named - 20} more, unnamed" in legend and "programme 2" in legend


def test_numbered_programmes_are_named_apart_from_the_maps_clusters(pairs, _tiny_cached):
    measured = [c for c in _tiny_cached.obs["perturbsim_condition"].unique() if c != "ctrl"]
    numbered = {c: i % 3 for i, c in enumerate(measured)}  # Norman's programmes are numbers
    ax = pl.phenotype_landscape(_tiny_cached, pairs, clusters=numbered, n_neighbors=8)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"programme 0", "programme 1", "programme 2"} <= set(legend)
    assert not {"0", "1", "2"} & set(legend)  # the map's labels are Leiden clusters
    many = {c: min(i, 11) for i, c in enumerate(measured)}  # listed by number, not by size
    legend = [
        t.get_text()
        for t in pl.phenotype_landscape(_tiny_cached, pairs, clusters=many, n_neighbors=8)
        .get_legend()
        .get_texts()
    ]
    listed = [name for name in legend if name.startswith("programme ")]
    assert listed == [f"programme {i}" for i in range(12)]
    # the colours of consecutive programmes or clusters beyond tab10 differ in hue
    from itertools import pairwise

    from matplotlib.colors import rgb_to_hsv

    hues = [rgb_to_hsv(colour)[0] for colour in pl._gi._PALETTE[8:]]
    assert all(abs(a - b) > 0.05 for a, b in pairwise(hues))


def test_phenotype_landscape_clusters_must_map_conditions(pairs, _tiny_cached):
    with pytest.raises(ps.PerturbsimError, match="^clusters must map conditions .* got list$"):
        pl.phenotype_landscape(_tiny_cached, pairs, clusters=["a", "b"], n_neighbors=8)
    first = next(iter(pairs.obs_names))
    with pytest.raises(ps.PerturbsimError, match=r"the programme \['a', 'b'\]: a programme is one"):
        pl.phenotype_landscape(_tiny_cached, pairs, clusters={first: ["a", "b"]}, n_neighbors=8)


def test_phenotype_landscape_needs_profiles(pairs):
    with pytest.raises(ps.PerturbsimError, match="must be profiles"):
        pl.phenotype_landscape(np.zeros((3, 3)), pairs)
    with pytest.raises(ps.PerturbsimError, match="2 measured profiles"):
        pl.phenotype_landscape(pairs[:1], pairs)
    with pytest.raises(ps.PerturbsimError, match="4 in all"):  # too few for UMAP's layout
        pl.phenotype_landscape(pairs[:2], pairs[2:3])


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"n_pcs": 0}, "n_pcs must be a whole number >= 1, got 0"),
        ({"n_neighbors": 1}, "n_neighbors must be a whole number >= 2, got 1"),
        ({"clusters": {"NOPE+ctrl": "x"}}, r"clusters names no condition of the landscape"),
        ({"clusters": {}}, r"clusters names no condition of the landscape \(it holds \[\]\)"),
        (
            {"clusters": {"G1+G2": "a", "G2+G1": "b"}},
            r"^clusters gives 'G1\+G2' two programmes: 'a' and 'b' \(under 'G2\+G1'\)$",
        ),
        ({"resolution": -1}, r"^resolution must be a finite number > 0, got -1$"),
        ({"resolution": 0.0}, r"^resolution must be a finite number > 0, got 0.0$"),
        ({"resolution": float("nan")}, r"^resolution must be a finite number > 0, got nan$"),
        ({"resolution": "1"}, r"^resolution must be a finite number > 0, got '1'$"),
    ],
)
def test_phenotype_landscape_options_are_checked(pairs, _tiny_cached, options, words):
    with pytest.raises(ps.PerturbsimError, match=words):
        pl.phenotype_landscape(_tiny_cached, pairs, **options)


@pytest.mark.parametrize("n_genes", [0, -3, 2.5])
def test_pair_prediction_refuses_a_bad_gene_count(gears, measured_pair, n_genes):
    with pytest.raises(ps.PerturbsimError, match=r"n_genes must be a whole number >= 1"):
        pl.pair_prediction(gears, measured_pair, n_genes=n_genes)


def test_gi_map_shows_the_scores_its_rules_read(pairs):
    assert pl._gi.GI_MAP_COLUMNS == ("magnitude", "fit_corr", "dcor", "dominance", "equality")
    norman = ps.tl.GIRules(magnitude_score="mean_abs_coef", redundancy_score="dcor_singles")
    ax = pl.gi_map(pairs, columns=norman.map_columns())
    shown = [t.get_text().split(" (")[0] for t in ax.get_xticklabels()][:5]
    assert shown == ["mean_abs_coef", "fit_corr", "dcor_singles", "dominance", "equality"]


def test_gi_map_reads_calls_as_a_csv_gives_them_back(pairs, tmp_path):
    scores = pairs.obs[pairs.obs["flag"] != "single"]
    scores.to_csv(tmp_path / "gi_scores.csv")
    read = pd.read_csv(tmp_path / "gi_scores.csv", index_col=0)  # calls as text, NaN
    read["is_weird"] = 3.5  # not a subtype: not drawn
    drawn, again = pl.gi_map(scores), pl.gi_map(read)
    np.testing.assert_array_equal(again.images[1].get_array(), drawn.images[1].get_array())
    assert "weird" not in [t.get_text() for t in again.get_xticklabels()]


def test_gi_map_draws_a_called_pair_dark_and_one_not_called_light():
    columns = list(pl._gi.GI_MAP_COLUMNS)
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(
        rng.normal(size=(3, len(columns))), index=["A+B", "A+C", "B+C"], columns=columns
    )
    scores["flag"] = ""
    scores["is_synergy"] = [True, False, True]
    ax = pl.gi_map(scores)
    calls = ax.images[1]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    shown = calls.to_rgba(calls.get_array())[:, 0, :3]  # the one column, a pair a row
    for label, colour in zip(labels, shown, strict=True):
        grey = 0.15 if scores.loc[label, "is_synergy"] else 0.92  # dark: called
        assert colour == pytest.approx([grey] * 3, abs=0.01)


def test_phenotype_landscape_moves_its_cluster_labels_off_one_another():
    norman = ps.ds.norman2019_subset()
    genes = ["KLF1", "MAP2K6", "SLC38A2", "MAPK1", "TGFBR2"]
    pred = ps.Additive(norman).fit().predict_pairs(genes, gi=False)
    given = Figure(figsize=(4.5, 3.2), layout="constrained").add_subplot()  # clusters crowd
    ax = pl.phenotype_landscape(norman, pred, n_neighbors=5, resolution=3.0, seed=0, ax=given)
    ax.figure.draw_without_rendering()  # as saved: the layout the labels were placed in
    labels = ax.texts
    boxes = {label.get_text(): label.get_window_extent() for label in labels}
    assert len(boxes) > 5
    touching = [(a, b) for a, b in itertools.combinations(boxes, 2) if boxes[a].overlaps(boxes[b])]
    assert not touching  # on their points, '0' and '1' lay on each other
    moved = [label for label in labels if label.xyann != (0, 0)]
    assert moved and all(label.arrow_patch.get_visible() for label in moved)  # a line to its point
    assert not any(label.arrow_patch.get_visible() for label in labels if label not in moved)
    frame = ax.get_window_extent()
    assert all(frame.y0 <= box.y0 and box.y1 <= frame.y1 for box in boxes.values())
