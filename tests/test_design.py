"""Experiment design: ranking, strategies, learning curves, plot and command line."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

import perturbsim as ps
from perturbsim.cli import main
from perturbsim.graphs import GeneGraph
from perturbsim.pp import genes_of
from perturbsim.tl._design import DESIGN_COLUMNS, _Coverage, _Diversity


@pytest.fixture(scope="module")
def screen(_tiny_cached) -> ad.AnnData:
    adata = _tiny_cached.copy()
    ps.pp.split(adata, kind="simulation", seed=0)
    return adata


@pytest.fixture(scope="module")
def model(screen) -> ps.GEARS:
    """A small GEARS ensemble: its spread is a predictive variance."""
    go = screen.uns["simulation"]["go"]
    gears = ps.GEARS(screen, go_annotations=go, n_models=2, hidden=16, seed=0)
    return gears.fit(max_epochs=2)


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("design") / "gears"
    model.save(path)
    return str(path)


def test_design_ranks_budget_untested_covered_candidates(model):
    measured = ps.tl.measured_conditions(model)
    ranked = ps.tl.design(model, budget=6)
    assert ranked.columns.tolist() == list(DESIGN_COLUMNS)
    assert ranked["rank"].tolist() == list(range(1, 7))
    assert ranked["perturbation"].is_unique
    assert not set(ranked["perturbation"]) & set(measured)
    assert set(ranked["perturbation"]) <= set(ps.tl.default_candidates(model, measured))
    assert ranked["n_targets"].tolist() == [len(genes_of(c)) for c in ranked["perturbation"]]
    # the score is its parts, weighted
    parts = ranked["uncertainty"] + ranked["coverage"] - 0.5 * ranked["diversity_penalty"]
    np.testing.assert_allclose(ranked["score"], parts)


def test_default_candidates_are_covered_singles_and_panel_pairs(model):
    measured = ps.tl.measured_conditions(model)
    candidates = ps.tl.default_candidates(model, measured)
    singles = [c for c in candidates if len(genes_of(c)) == 1]
    pairs = [c for c in candidates if len(genes_of(c)) == 2]
    assert len(singles) + len(pairs) == len(candidates) and pairs
    assert model.covers(candidates).all() and not set(candidates) & set(measured)
    panel = {g for c in pairs for g in genes_of(c)}
    assert panel <= {g for c in model.data.stats.conditions for g in genes_of(c)}
    few = ps.tl.default_candidates(model, measured, max_pair_genes=3)
    assert sum(len(genes_of(c)) == 2 for c in few) <= 3
    assert [c for c in few if len(genes_of(c)) == 1] == singles
    assert ps.tl.default_candidates(model) == candidates  # measured: what the model knows


def test_default_candidates_read_measured_labels_as_design_does(model):
    measured = ps.tl.measured_conditions(model)
    candidates = ps.tl.default_candidates(model, measured)
    pair = next(c for c in measured if len(genes_of(c)) == 2)
    reversed_pair = "+".join(reversed(genes_of(pair)))
    given = [c for c in measured if c != pair] + [reversed_pair]
    assert ps.tl.default_candidates(model, iter(given)) == candidates  # a generator, read once
    with pytest.raises(ps.PerturbsimError, match="measured must be a list of labels, got the s"):
        ps.tl.default_candidates(model, measured[0])


def test_measured_conditions_are_never_proposed(model, screen, model_dir, caplog):
    split = ps.pp.Split.from_adata(screen)
    measured = ps.tl.measured_conditions(model)
    assert set(model.fitted_conditions) == set(split.train + split.val) - {"ctrl"}
    assert split.test and set(measured) == set(split.train + split.val + split.test) - {"ctrl"}
    loaded = ps.models.PerturbationModel.load(model_dir)  # held-out conditions saved too
    assert ps.tl.measured_conditions(loaded) == measured
    untested = ps.tl.default_candidates(model, measured)[:2]
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ranked = ps.tl.design(model, [*measured[:3], *untested], budget=2, strategy="random")
    assert set(ranked["perturbation"]) == set(untested)
    assert f"left out 3 candidates already measured: {', '.join(measured[:3])}" in caplog.text
    caplog.clear()
    lower = untested[0].lower()  # a gene written in another case is named with the one meant
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.tl.design(model, [lower, untested[1]], budget=1, strategy="random")
    assert f"cannot predict: {lower} (did you mean" in caplog.text
    # an explicit measured list replaces the model's, with a warning of what it then proposes
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ranked = ps.tl.design(model, [*measured[:3], *untested], budget=4, measured=untested[:1])
    assert set(ranked["perturbation"]) == {*measured[:3], untested[1]}
    fitted = [c for c in ranked["perturbation"] if c in set(model.fitted_conditions)]
    assert fitted and "that the model was fitted on (measured), left out of measured=" in (
        caplog.text
    )
    assert ", ".join(fitted) in caplog.text
    # a list of only names the model cannot place replaces its record all the same: said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        ps.tl.design(model, [*measured[:3], *untested], budget=4, measured=["NOTAGENE"])
    assert "left out of measured=" in caplog.text


def test_a_seed_another_strategy_does_not_use_is_warned_of(model, caplog):
    ranked = ps.tl.design(model, budget=3, seed=5)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "seed=5 is not used: only strategy='random' draws at random; 'combined' ranks the "
        "same way every time"
    ]
    pd.testing.assert_frame_equal(ranked, ps.tl.design(model, budget=3))


def test_design_is_deterministic_under_a_seed(model):
    first = ps.tl.design(model, budget=5, strategy="random", seed=3)
    pd.testing.assert_frame_equal(first, ps.tl.design(model, budget=5, strategy="random", seed=3))
    other = ps.tl.design(model, budget=5, strategy="random", seed=4)
    assert first["perturbation"].tolist() != other["perturbation"].tolist()
    pd.testing.assert_frame_equal(ps.tl.design(model, budget=5), ps.tl.design(model, budget=5))


def test_uncertainty_strategy_picks_the_highest_variance(model):
    candidates = ps.tl.default_candidates(model, ps.tl.measured_conditions(model))
    variance = pd.Series(model.predict(candidates).layers["variance"].mean(axis=1), candidates)
    ranked = ps.tl.design(model, budget=5, strategy="uncertainty")
    assert ranked["perturbation"].tolist() == variance.nlargest(5).index.tolist()
    assert ranked["uncertainty"].iloc[0] == pytest.approx(1.0)
    assert ranked["uncertainty"].is_monotonic_decreasing


def test_uncertainty_ties_are_said_when_they_decide_the_ranking(norman, caplog):
    ps.pp.split(norman, kind="simulation", seed=1)
    model = ps.Stacked(norman, seed=0).fit()
    unmeasured = ["ZNF10", "A2M", "ABCA1", "ABI3BP"]  # human genes outside the screen
    ranked = ps.tl.design(model, unmeasured, budget=2, strategy="uncertainty")
    assert ranked["perturbation"].tolist() == ["ZNF10", "A2M"]  # candidate order
    assert "the last pick tied in uncertainty with 2 other candidates" in caplog.text
    assert "neither measured" not in caplog.text  # unsupported: what design is for, not news
    caplog.clear()
    ps.tl.design(model, budget=2, strategy="uncertainty")  # measured neighbours: no tie
    assert "tied in" not in caplog.text
    # every weight 0: every score ties, which is said so, not blamed on the uncertainty
    weightless = {f"{w}_weight": 0 for w in ("uncertainty", "coverage", "diversity")}
    ps.tl.design(model, unmeasured, budget=2, **weightless)
    assert (
        "tied in score with" in caplog.text
        and "every weight is 0, so every score is 0" in caplog.text
    )


def test_a_model_that_tells_candidates_apart_no_better_is_said_to(norman, caplog):
    ps.pp.split(norman, kind="simulation", seed=1)
    model = ps.models.build_model("linear", norman).fit()  # no variance, no GO graph
    ranked = ps.tl.design(model, budget=3)
    assert ranked["score"].nunique() == 1  # every gene covers only itself
    assert "the last pick tied in score with" in caplog.text


def test_diversity_spreads_the_chosen_predictions(model):
    measured = model.fitted_conditions  # the split's test conditions among the candidates
    candidates = ps.tl.default_candidates(model, measured)
    delta = model.predict(candidates).layers["delta"].astype(float)
    centred = pd.DataFrame(delta - delta.mean(axis=0), index=candidates)

    def mean_similarity(labels: list[str]) -> float:
        rows = centred.loc[labels].to_numpy()
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        cosine = unit @ unit.T
        return float(cosine[np.triu_indices(len(labels), 1)].mean())

    plain, spread = (
        ps.tl.design(model, budget=8, measured=measured, coverage_weight=0.0, diversity_weight=w)
        for w in (0.0, 3.0)
    )
    assert mean_similarity(spread["perturbation"].tolist()) < mean_similarity(
        plain["perturbation"].tolist()
    )
    assert spread["diversity_penalty"].mean() < plain["diversity_penalty"].mean()
    for given in (np.array(measured), pd.Index(measured), pd.Series(measured)):  # any sequence
        again = ps.tl.design(
            model, budget=8, measured=given, coverage_weight=0.0, diversity_weight=3.0
        )
        pd.testing.assert_frame_equal(again, spread)


def test_coverage_spreads_over_the_go_graph():
    graph = GeneGraph(nodes=["A", "B", "C"], src=[0, 1], dst=[1, 0], weight=[0.5, 0.5])
    sets = [("A",), ("B",), ("C",), ("A", "B")]
    coverage = _Coverage(sets, set(), graph)
    # A covers itself (in 2 candidates) and half of B (in 2): 2 + 1
    np.testing.assert_allclose(coverage.gains(), [3.0, 3.0, 1.0, 0.0])
    coverage.add(0)
    np.testing.assert_allclose(coverage.gains(), [0.0, 1.0, 1.0, 0.0])
    # a gene measured alone covers from the start
    np.testing.assert_allclose(_Coverage(sets, {"C"}, graph).gains(), [3.0, 3.0, 0.0, 0.0])


def test_coverage_keeps_the_closest_measured_neighbour():
    # B is covered 0.8 by A, then C, a weaker neighbour of B (0.3), takes none of it away
    graph = GeneGraph(nodes=["A", "B", "C"], src=[0, 2], dst=[1, 1], weight=[0.8, 0.3])
    coverage = _Coverage([("A",), ("B",), ("C",)], set(), graph)
    coverage.add(0)
    np.testing.assert_allclose(coverage.gains(), [0.0, 0.2, 1.0])
    coverage.add(2)
    np.testing.assert_allclose(coverage.gains(), [0.0, 0.2, 0.0])


def test_diversity_penalises_likeness_to_chosen_and_measured():
    candidates = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    diversity = _Diversity(candidates, np.zeros((0, 3)))
    np.testing.assert_allclose(diversity.penalty, 0.0)
    diversity.add(0)
    assert diversity.penalty[1] > 0.9 > diversity.penalty[2]
    measured = _Diversity(candidates, candidates[2:] + 0.01)
    assert measured.penalty[2] > 0.9
    # float32 predictions (as models give) all alike: nothing is left after centring
    same = _Diversity(np.tile(np.float32([0.3, -0.2, 0.1]), (3, 1)), np.zeros((0, 3)))
    assert not same.unit.any()
    np.testing.assert_allclose(same.penalty, 0.0)
    same.add(1)
    np.testing.assert_allclose(same.penalty, 1.0)  # alike all the same
    rounding = _Diversity(
        np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32), np.zeros((0, 7))
    )
    for i in range(4):  # a row's cosine with itself can round above 1
        rounding.add(i)
    assert 0.0 <= rounding.penalty.min() and rounding.penalty.max() <= 1.0


def test_two_alike_candidates_are_alike_however_few_are_ranked():
    # two candidates centred on their own mean are always opposite: too few to centre on
    alike = np.array([[1.0, 0.5, 0.0], [1.0, 0.52, 0.01]])
    diversity = _Diversity(alike, np.zeros((0, 3)))
    diversity.add(0)
    assert diversity.penalty[1] > 0.99
    # with measured conditions, the two are centred on the mean of all: still alike
    measured = np.array([[0.0, 0.0, 1.0], [0.2, -1.0, 0.0]])
    beside = _Diversity(alike, measured)
    beside.add(0)
    assert beside.penalty[1] > 0.99
    unlike = _Diversity(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.zeros((0, 3)))
    unlike.add(0)
    assert unlike.penalty[1] == pytest.approx(0.0)


def test_candidates_given_must_be_an_ordered_list_of_perturbations(model):
    cases = {
        "candidates must be an ordered list .* got a set": {"G0001", "G0002"},
        "candidates is empty": [],
        "candidates hold 'control', the control, not a perturbation to rank": [
            "control",
            "G0001",
        ],
    }
    for message, candidates in cases.items():
        with pytest.raises(ps.PerturbsimError, match=message):
            ps.tl.design(model, candidates, budget=1)


def test_model_without_variance_falls_back_to_coverage(screen, caplog):
    additive = ps.Additive(screen).fit()
    with caplog.at_level(logging.WARNING, logger="perturbsim.tl._design"):
        ranked = ps.tl.design(additive, budget=4)
    assert "no predictive variance" in caplog.text
    assert ranked["uncertainty"].isna().all()
    pd.testing.assert_frame_equal(ranked, ps.tl.design(additive, budget=4, strategy="coverage"))
    with pytest.raises(ps.PerturbsimError, match="needs a model whose predictions"):
        ps.tl.design(additive, budget=4, strategy="uncertainty")


def test_bad_budget_and_strategy_are_one_line_errors(model):
    n = len(ps.tl.default_candidates(model, ps.tl.measured_conditions(model)))
    with pytest.raises(ps.PerturbsimError, match=f"budget {n + 1} exceeds the {n} untested"):
        ps.tl.design(model, budget=n + 1)
    with pytest.raises(ps.PerturbsimError, match="whole number >= 1"):
        ps.tl.design(model, budget=0)
    with pytest.raises(ps.PerturbsimError, match="strategy must be one of"):
        ps.tl.design(model, budget=1, strategy="greedy")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("uncertainty_weight", -1),
        ("coverage_weight", -0.5),
        ("diversity_weight", float("nan")),
        ("uncertainty_weight", float("inf")),
    ],
)
def test_a_negative_or_non_finite_weight_is_a_one_line_error(model, option, value):
    with pytest.raises(ps.PerturbsimError) as err:
        ps.tl.design(model, budget=1, **{option: value})
    assert str(err.value) == f"{option} must be a finite number >= 0, got {value!r}"


def test_learning_curves_summary_and_plot():
    curves = pd.DataFrame(
        {
            "strategy": ["combined"] * 6 + ["random"] * 6,
            "seed": [0, 0, 1, 1, 2, 2] * 2,
            "n_measured": [8, 16] * 6,
            "error": [0.9, 0.5, 0.8, 0.6, 0.7, 0.4, 0.9, 0.7, 0.8, 0.8, 0.7, 0.6],
        }
    )
    summary = ps.tl.active_learning_summary(curves)
    row = summary[(summary["strategy"] == "combined") & (summary["n_measured"] == 16)].iloc[0]
    half = 4.302653 * 0.1 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert row["mean"] == pytest.approx(0.5)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.5 - half, 0.5 + half))
    ax = ps.pl.design_curves(curves)
    assert isinstance(ax, Axes)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["combined", "random", "random at 16"]
    assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(0.7)  # random's mean at 16
    # one seed of random ran a round further: the mark stays where all three seeds were
    longer = pd.concat(
        [
            curves,
            pd.DataFrame({"strategy": ["random"], "seed": [0], "n_measured": [24], "error": [0.1]}),
        ]
    )
    ax = ps.pl.design_curves(longer)
    assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(0.7)
    assert ax.get_title().endswith("over 3 seeds (fewer at some points)")
    with pytest.raises(ps.PerturbsimError, match=r"no columns \['seed'\] in curves"):
        ps.tl.active_learning_summary(curves.drop(columns="seed"))
    with pytest.raises(ps.PerturbsimError, match="must be a DataFrame of learning curves"):
        ps.tl.active_learning_summary(curves.to_dict())
    # a round that could not be scored (NaN) leaves its seed out of that point only
    unscored = ps.tl.active_learning_summary(
        curves.assign(
            error=curves["error"].where(~((curves["seed"] == 2) & (curves["n_measured"] == 16)))
        )
    )
    row = unscored[(unscored["strategy"] == "combined") & (unscored["n_measured"] == 16)].iloc[0]
    assert row["mean"] == pytest.approx(0.55) and row["n_seeds"] == 2
    assert unscored["n_seeds"].tolist() == [3, 2, 3, 2]
    never_scored = curves.assign(error=curves["error"].where(curves["strategy"] != "random"))
    with pytest.raises(ps.PerturbsimError, match="reference 'random' has no finite error at"):
        ps.pl.design_curves(never_scored)  # a line at NaN, labelled "random at 16", before
    assert len(ps.pl.design_curves(never_scored, reference=None).get_lines()) == 2
    with pytest.raises(ps.PerturbsimError) as err:  # the same curves twice are not 6 seeds
        ps.tl.active_learning_summary(pd.concat([curves, curves]))
    assert str(err.value) == (
        "curves repeat a strategy, seed and number measured (each seed counts once): "
        "'combined', seed 0, 8 measured"
    )
    with pytest.raises(ps.PerturbsimError, match="^curves' error column must be numeric, got 'x'"):
        ps.tl.active_learning_summary(curves.assign(error=["x"] + [0.5] * 11))
    for column, value, words in (
        ("n_measured", 8.5, "n_measured column counts conditions .* got 8.5"),
        ("n_measured", "a", "n_measured column counts conditions .* got 'a'"),
        ("error", np.inf, "error column holds inf: an error is finite"),
        ("strategy", None, "strategy column has missing values"),
    ):
        odd = curves.astype({column: object}).copy()
        odd.loc[0, column] = value
        with pytest.raises(ps.PerturbsimError, match=f"^curves' {words}"):
            ps.tl.active_learning_summary(odd)
    as_text = curves.astype({"n_measured": str})  # read from a text file: counts as text
    assert ps.tl.active_learning_summary(as_text).equals(summary)  # 8 before 16, as numbers
    twice = as_text.assign(n_measured=["8", "16.0"] * 6)
    twice.loc[1, "n_measured"] = "8.0"  # seed 0 at 8 measured given as '8' and '8.0'
    with pytest.raises(ps.PerturbsimError, match="'combined', seed 0, 8 measured"):
        ps.tl.active_learning_summary(twice)


def test_cli_reads_a_control_guide_named_by_control(model_dir, tmp_path, capsys):
    measured = tmp_path / "measured.txt"
    measured.write_text("NegCtrl\nG0024\n")  # the lab's name of the control cells
    args = ["design", model_dir, "--budget", "2", "--measured", str(measured), "--out"]
    assert main([*args, str(tmp_path / "a.csv")]) == 2
    err = capsys.readouterr().err
    assert "('NegCtrl' looks like a control label: pass --control 'NegCtrl' if it is" in err
    assert main([*args, str(tmp_path / "b.csv"), "--control", "NegCtrl"]) == 0
    assert "G0024" not in set(pd.read_csv(tmp_path / "b.csv")["perturbation"])


def test_cli_prints_and_writes_the_ranked_list(model_dir, tmp_path, capsys):
    out = tmp_path / "next.csv"
    measured = tmp_path / "measured.txt"
    measured.write_text("G0019+G0024  # a measured pair\nG0024\n")
    args = ["design", model_dir, "--budget", "3", "--out", str(out), "--measured", str(measured)]
    assert main(args) == 0
    table = pd.read_csv(out)
    assert table["rank"].tolist() == [1, 2, 3]
    assert not {"G0019+G0024", "G0024"} & set(table["perturbation"])
    printed = capsys.readouterr().out
    assert all(label in printed for label in table["perturbation"])
    assert main([*args[:3], "2", *args[4:]]) == 2  # the list is not replaced unasked
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert len(pd.read_csv(out)) == 3
    assert main([*args[:3], "2", *args[4:], "--overwrite"]) == 0
    assert len(pd.read_csv(out)) == 2
    measured.write_text("# nothing measured yet\n")  # an empty list: every candidate is open
    assert main([*args, "--overwrite"]) == 0
    loaded = ps.models.PerturbationModel.load(model_dir)  # the CLI's: no screen with it
    expected = ps.tl.design(loaded, budget=3, measured=[], seed=0)["perturbation"]
    assert pd.read_csv(out)["perturbation"].tolist() == expected.tolist()


def test_cli_seed_only_with_the_random_strategy(model_dir, tmp_path, capsys, caplog):
    out = tmp_path / "next.csv"
    args = ["design", model_dir, "--budget", "3", "--out", str(out), "--seed", "5"]
    assert main(args) == 0  # a seed the ranking does not use: said, not ignored (nor refused)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (  # worded with the options, the strategy's name too
        "--seed 5 is not used: only --strategy random draws at random; --strategy combined ranks "
        "the same way every time"
    ) in warned
    caplog.clear()
    assert main([*args, "--strategy", "random", "--overwrite"]) == 0
    assert not [r for r in caplog.records if "is not used" in r.getMessage()]
    loaded = ps.models.PerturbationModel.load(model_dir)
    expected = ps.tl.design(loaded, budget=3, strategy="random", seed=5)["perturbation"]
    assert pd.read_csv(out)["perturbation"].tolist() == expected.tolist()
    assert main([*args[:-2], "--seed", "-1", "--strategy", "random", "--overwrite"]) == 2
    assert "--seed must be a whole number >= 0" in capsys.readouterr().err


def test_cli_says_what_the_default_candidates_are(model_dir, tmp_path, capsys):
    args = ["design", model_dir, "--budget", "2", "--out", str(tmp_path / "next.csv")]
    assert main(args) == 0
    assert "to rank a library of your own, give --candidates FILE" in capsys.readouterr().out
    library = tmp_path / "library.txt"
    loaded = ps.models.PerturbationModel.load(model_dir)
    library.write_text("\n".join(ps.tl.default_candidates(loaded)[:3]) + "\n")
    assert main([*args, "--overwrite", "--candidates", str(library)]) == 0
    assert "--candidates FILE" not in capsys.readouterr().out


def test_cli_ranks_only_the_candidates_given(model_dir, tmp_path, capsys):
    loaded = ps.models.PerturbationModel.load(model_dir)
    offered = ps.tl.default_candidates(loaded, loaded.screen_conditions)[::7][:4]
    library = tmp_path / "library.txt"
    library.write_text("\n".join([*offered, "NOPE1"]) + "\n")
    out = tmp_path / "next.csv"
    args = ["design", model_dir, "--budget", "2", "--candidates", str(library), "--out", str(out)]
    assert main(args) == 2  # a gene the model cannot predict: named, not left out in silence
    assert "cannot predict 1 of the perturbations in" in capsys.readouterr().err
    control = loaded.screen_labels.get("control", "ctrl")
    library.write_text("\n".join([*offered, control]) + "\n")
    assert main(args) == 2  # nor the control
    assert f"{control!r} in" in capsys.readouterr().err
    library.write_text("\n".join(offered) + "\n")
    assert main(args) == 0
    ranked = pd.read_csv(out)["perturbation"].tolist()
    assert len(ranked) == 2 and set(ranked) <= set(offered)


def test_cli_never_writes_over_what_it_reads(model_dir, tmp_path, capsys):
    config = Path(model_dir) / "config.json"
    before = config.read_bytes()
    measured = tmp_path / "measured.csv"
    measured.write_text("G0024\n")
    (tmp_path / "folder.csv").mkdir()
    run = ["design", model_dir, "--budget", "2", "--measured", str(measured), "--overwrite"]
    for out, message in [
        (str(tmp_path / "next.h5ad"), "--out must be a file name ending in .csv, got"),
        (".csv", "--out must be a file name ending in .csv, got"),
        (str(Path(model_dir) / "next.csv"), "would write over or into"),  # its folder
        (str(measured), "would write over or into"),  # the list it reads
        (str(tmp_path / "folder.csv"), "is a folder; give a file name"),
        (f"{tmp_path / 'new'}/", "ends in a separator; give a file name"),
    ]:
        assert main([*run, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    assert config.read_bytes() == before and measured.read_text() == "G0024\n"
    assert not (tmp_path / "new").exists() and not (Path(model_dir) / "next.csv").exists()


@pytest.mark.parametrize(
    ("budget", "message"),
    [("100000", "--budget 100000 exceeds the"), ("0", "--budget must be at least 1")],
)
def test_cli_bad_budget_is_one_line(model_dir, tmp_path, capsys, budget, message):
    out = tmp_path / "next.csv"
    assert main(["design", model_dir, "--budget", budget, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert message in err
    assert not out.exists()


def test_cli_missing_model_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("design.csv").write_text("an earlier list\n")  # the model is named first all the same
    assert main(["design", str(tmp_path / "absent"), "--budget", "2"]) == 2
    assert "no model directory" in capsys.readouterr().err


def test_measured_conditions_the_model_cannot_predict_warn_in_the_api_and_stop_the_cli(
    model, model_dir, tmp_path, capsys, caplog
):
    measured = ps.tl.measured_conditions(model)
    with caplog.at_level("WARNING", logger="perturbsim.tl._design"):
        ranked = ps.tl.design(model, budget=2, measured=[*measured, "NOTAGENE"])
    assert "cannot predict: left out of diversity and coverage: NOTAGENE" in caplog.text
    assert len(ranked) == 2
    single = next(c for c in measured if "+" not in c)
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim.tl._design"):  # a hint, as the CLI's
        ps.tl.design(model, budget=2, measured=[*measured, single.lower()])
    assert f"did you mean {single!r} for {single.lower()!r}?" in caplog.text
    listed = tmp_path / "measured.txt"
    listed.write_text("\n".join([*measured[:2], "NOTAGENE"]))
    out = tmp_path / "next.csv"
    args = ["design", model_dir, "--budget", "2", "--measured", str(listed), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--measured: gears cannot predict 1 of the conditions" in err
    assert "'NOTAGENE'" in err and not out.exists()
    lower = next(c for c in measured if "+" not in c).lower()  # named with the gene meant
    listed.write_text(f"{lower}\n")
    assert main(args) == 2
    assert f"'{lower}' (did you mean" in capsys.readouterr().err
    assert main([*args[:-2], "--seed", "-1", "--out", str(out)]) == 2
    assert "--seed must be a whole number >= 0 and < 2**32, got -1" in capsys.readouterr().err


def test_the_cli_leaves_out_measured_conditions_of_the_screen_the_model_cannot_predict(
    screen, tmp_path, capsys, caplog
):
    additive = ps.Additive(screen).fit()  # predicts no held-out single: it never saw it
    additive.save(tmp_path / "additive")
    measured = ps.tl.measured_conditions(additive)
    covered = additive.covers(measured)
    unpredictable = [c for c, ok in zip(measured, covered, strict=True) if not ok]
    assert unpredictable  # the held-out singles, measured in the screen
    listed = tmp_path / "measured.txt"
    listed.write_text("\n".join(measured))
    out = tmp_path / "next.csv"
    args = ["design", str(tmp_path / "additive"), "--budget", "1", "--measured", str(listed)]
    with caplog.at_level("WARNING", logger="perturbsim.tl._design"):
        assert main([*args, "--out", str(out)]) == 0  # as ps.tl.design(measured=...) does
    assert f"cannot predict: left out of diversity and coverage: {unpredictable[0]}" in caplog.text
    assert out.is_file()
    # a condition its screen never measured is still refused: a typo, or news to check
    never = next(g for g in additive.genes if g not in additive.perturbed_genes())
    listed.write_text(f"{never}\n")
    assert main([*args, "--out", str(tmp_path / "other.csv")]) == 2


def test_a_loaded_model_offers_the_candidates_of_the_model_in_memory(model, model_dir):
    loaded = ps.models.PerturbationModel.load(model_dir)  # no screen: the one it recorded
    assert loaded.data is None
    assert ps.tl.default_candidates(loaded, []) == ps.tl.default_candidates(model, [])


def test_a_measured_list_that_is_a_folder_is_named_as_such(model_dir, tmp_path, capsys):
    out = tmp_path / "next.csv"  # inside the folder given as --measured
    args = ["design", model_dir, "--budget", "2", "--measured", str(tmp_path), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--measured: conditions file {str(tmp_path)!r} is a folder" in err
    assert "--out" not in err


def test_ranking_candidates_warns_of_nothing_about_their_predictions(norman, caplog):
    ps.pp.split(norman, kind="simulation", seed=1)  # no training target measured
    model = ps.Stacked(norman, seed=0, corrections=()).fit()
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.tl.design(model, budget=3)
    assert "direct effect" not in caplog.text  # untested candidates: work on the way
    caplog.clear()  # a measured set is predicted only to keep the picks apart: no warning
    measured = [*ps.tl.measured_conditions(model), "CEBPE+PTPN9+SET"]
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.tl.design(model, ["SET"], budget=1, measured=measured)
    assert "more genes than any condition" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"):  # but a set larger than any fitted
        ps.tl.design(model, ["CEBPE+PTPN9+SET", "SET"], budget=2)
    assert "1 prediction is of a set of more genes than any condition" in caplog.text
    assert "CEBPE+PTPN9+SET" in caplog.text


def test_three_candidates_are_centred_on_their_own_mean_beside_measured_ones():
    # three candidates are enough to centre on: their mean (0), not that of all four changes
    candidates = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    diversity = _Diversity(candidates, np.array([[10.0, 10.0]]))
    # cosine of each candidate with the measured (1, 1) direction, clipped at 0
    np.testing.assert_allclose(diversity.penalty, [2**-0.5, 2**-0.5, 0.0])


def test_coverage_strategy_scores_without_the_uncertainty(model):
    ranked = ps.tl.design(model, budget=4, strategy="coverage")
    assert (ranked["uncertainty"] > 0).any()  # reported, not scored
    parts = ranked["coverage"] - 0.5 * ranked["diversity_penalty"]
    np.testing.assert_allclose(ranked["score"], parts)


def test_the_pair_panel_takes_the_genes_of_the_most_measured_conditions(model):
    x, y, z = sorted(g for g in map(str, model.genes) if model.covers([g])[0])[:3]
    # x is in two measured conditions, y and z in one each (ties by name: y first)
    measured = [x, f"{x}+{z}", y]
    candidates = ps.tl.default_candidates(model, measured, max_pair_genes=2)
    assert [c for c in candidates if len(genes_of(c)) == 2] == [f"{x}+{y}"]


def test_a_learning_curve_may_start_from_nothing_measured():
    curves = pd.DataFrame(
        {
            "strategy": ["random"] * 4,
            "seed": [0, 1, 0, 1],
            "n_measured": [0, 0, 5, 5],
            "error": [1.0, 3.0, 0.5, 1.5],
        }
    )
    summary = ps.tl.active_learning_summary(curves)
    assert summary["n_measured"].tolist() == [0, 5]
    assert summary["mean"].tolist() == pytest.approx([2.0, 1.0])
    assert summary["n_seeds"].tolist() == [2, 2]
