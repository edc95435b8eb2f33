from __future__ import annotations

from dataclasses import replace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import point_stats

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.pp import DEGenes, PseudobulkStats
from perturbsim.tl import Metric, MetricInputs, list_metrics, register_metric, score
from perturbsim.tl._metrics import METRICS, OPTIONAL_INPUTS, pearson

GENES = ["g0", "g1", "g2", "g3"]
CONTROL = np.array([1.0, 1.0, 1.0, 1.0])
TRUE = np.array([2.0, 0.0, 1.0, 3.0])  # change [1, -1, 0, 2]
PRED = np.array([1.5, 1.0, 1.2, 2.0])  # change [0.5, 0, 0.2, 1]
REFERENCE = np.array([1.5, 0.5, 1.0, 2.5])
DE = ["g0", "g1", "g3"]
# measured means of three other conditions; PRED minus each:
OTHERS = np.array(
    [
        [1.5, 1.0, 1.0, 2.0],  # [0, 0, .2, 0]: L1 .2, L2 .2
        [2.0, 0.0, 1.0, 4.0],  # [-.5, 1, .2, -2]: L1 3.7, L2 sqrt(5.29) = 2.3
        [2.2, 1.7, 1.9, 2.7],  # [-.7, -.7, -.7, -.7]: L1 2.8, L2 sqrt(1.96) = 1.4
    ]
)
# PRED minus TRUE is [-.5, 1, .2, -1]: L1 2.7, L2 sqrt(2.29) = 1.51

# Worked by hand (see the comments) for PRED against TRUE.
EXPECTED = {
    # squared errors 0.25, 1, 0.04, 1
    "mse": 2.29 / 4,
    "mse_de": (0.25 + 1 + 1) / 3,
    # control's squared errors 1, 1, 0, 4
    "nmse": (2.29 / 4) / (6 / 4),
    "nmse_de": 0.75 / 2,
    # centred changes x = [.075, -.425, -.225, .575], y = [.5, -1.5, -.5, 1.5]
    "pearson_delta": 1.65 / np.sqrt(0.5675 * 5),
    # on g0, g1, g3: x = [0, -.5, .5], y = [1/3, -5/3, 4/3]
    "pearson_delta_de": 1.5 / np.sqrt(0.5 * 42 / 9),
    # g1 predicted 0, measured -1: no direction named, half wrong; the other two right
    "direction_error_de": 0.5 / 3,
    # top 3 predicted {g3, g0, g2} vs {g0, g1, g3}: 2 shared of 4
    "de_jaccard": 0.5,
    # ... 2 of the 3 measured DE genes found
    "de_overlap": 2 / 3,
    # centred vs reference a = [-.05, .45, .15, -.55], b = [.375, -.625, -.125, .375]
    "pearson_delta_pert": -0.525 / np.sqrt(0.53 * 0.6875),
    # L1: only OTHERS[0] is closer than its own (2.7): rank 1 of n - 1 = 3 others
    "discrimination_l1": 1 - 1 / 3,
    # L2: OTHERS[0] and OTHERS[2] are closer than its own (1.51): rank 2
    "discrimination_l2": 1 - 2 / 3,
    # L2: one of the three others (OTHERS[1]) is farther than its own
    "centroid_accuracy": 1 / 3,
}


def _pred(rows: dict[str, np.ndarray], genes=GENES, variance=None) -> ad.AnnData:
    pred = ad.AnnData(
        X=np.vstack(list(rows.values())).astype(np.float32),
        obs=pd.DataFrame(index=list(rows)),
        var=pd.DataFrame(index=genes),
    )
    if variance is not None:
        pred.layers["variance"] = np.asarray(variance, dtype=np.float32)
    return pred


def _stats(rows: dict[str, np.ndarray]) -> PseudobulkStats:
    return point_stats(rows, GENES)


def _table(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(r.condition, r.metric): r.value for r in frame.itertuples()}


def test_registry_lists_every_metric():
    table = list_metrics()
    expected = set(EXPECTED)
    assert set(table.index) == expected == set(METRICS)
    assert list(table.columns) == ["description", "best", "needs", "full_depth"]
    assert table.loc["pearson_delta_de", "full_depth"] == "spearman_brown"
    assert table.loc["nmse_de", "full_depth"] == "halve_relative"
    assert table.loc["discrimination_l1", "full_depth"] == "none"
    assert set(table["best"]) == {"higher", "lower"}
    assert table.loc["mse", "best"] == "lower"
    assert table.loc["pearson_delta", "best"] == "higher"
    assert table["description"].str.len().min() > 10
    assert table.loc["mse", "needs"] == ""
    assert table.loc["de_jaccard", "needs"] == "de_idx"
    assert table.loc["pearson_delta_pert", "needs"] == "reference"
    assert table.loc["de_overlap", "needs"] == "de_idx"
    for name in ("discrimination_l1", "discrimination_l2", "centroid_accuracy"):
        assert table.loc[name, "needs"] == "others"
        assert table.loc[name, "best"] == "higher"
    assert OPTIONAL_INPUTS == ("variance", "de_idx", "targets", "reference", "others")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_metric_matches_hand_computation(name):
    de_idx = np.array([GENES.index(g) for g in DE])
    inputs = MetricInputs(
        predicted=PRED,
        measured=TRUE,
        control=CONTROL,
        de_idx=de_idx,
        reference=REFERENCE,
        others=OTHERS,
    )
    assert METRICS[name].func(inputs) == pytest.approx(EXPECTED[name], rel=1e-9)


def test_register_metric_rejects_unknown_inputs():
    with pytest.raises(ps.PerturbsimError, match="needs unknown input 'cells'"):
        register_metric("bad", description="uses cells", best="lower", needs=("cells",))
    with pytest.raises(ps.PerturbsimError, match="'mse' is already registered"):
        register_metric("mse", description="again", best="lower")(lambda x: 0.0)
    assert "bad" not in METRICS


def test_score_fills_the_inputs_a_metric_needs(monkeypatch):
    """score() hands a metric the variance, DE genes, measured targets, reference, others."""
    seen: dict[str, MetricInputs] = {}

    def probe(x: MetricInputs) -> float:
        seen[GENES[int(x.targets[0])]] = x
        return float(x.targets.size)

    monkeypatch.setitem(
        METRICS, "probe", Metric("probe", "records its inputs", "lower", probe, OPTIONAL_INPUTS)
    )
    truth = _stats({"ctrl": CONTROL, "g1": TRUE, "g0+gX": TRUE + 1})
    variance = [[0.25, 0.5, 1.0, 2.0], [4.0, 8.0, 16.0, 32.0]]
    pred = _pred({"g1": PRED, "g0+gX": PRED + 1}, variance=variance)
    frame = score(
        pred,
        truth,
        de_genes={"g1": DE, "g0+gX": ["g2"]},
        reference_mean=REFERENCE,
        metrics=["probe"],
        exclude_targets=False,
    )
    # the targets of g0+gX are g0 alone: gX is not measured
    assert frame["value"].tolist() == [1.0, 1.0]
    one, pair = seen["g1"], seen["g0"]
    np.testing.assert_array_equal(one.targets, [1])
    np.testing.assert_array_equal(pair.targets, [0])
    np.testing.assert_array_equal(one.variance, variance[0])
    np.testing.assert_array_equal(pair.variance, variance[1])
    assert one.variance.dtype == np.float64
    np.testing.assert_array_equal(one.de_idx, [0, 1, 3])
    np.testing.assert_array_equal(pair.de_idx, [2])
    np.testing.assert_array_equal(one.others, [TRUE + 1])
    np.testing.assert_array_equal(pair.others, [TRUE])
    np.testing.assert_array_equal(one.measured, TRUE)
    np.testing.assert_array_equal(one.predicted, PRED.astype(np.float32))  # as predict stores
    np.testing.assert_array_equal(pair.control, CONTROL)
    np.testing.assert_array_equal(pair.reference, REFERENCE)

    # without a variance layer the probe is skipped by default, and an error when asked for
    plain = _pred({"g1": PRED})
    default = score(plain, truth, de_genes={"g1": DE}, reference_mean=REFERENCE)
    assert "probe" not in set(default["metric"])
    with pytest.raises(ps.PerturbsimError, match=r"'probe' needs a predicted variance"):
        score(plain, truth, de_genes={"g1": DE}, reference_mean=REFERENCE, metrics=["probe"])


def test_excluded_targets_are_out_of_every_input(monkeypatch):
    """By default a metric sees no target: its own, or any scored condition's if it compares."""
    seen: list[MetricInputs] = []

    def probe(x: MetricInputs) -> float:
        seen.append(x)
        return 0.0

    own_needs = ("de_idx", "targets", "reference")
    monkeypatch.setitem(METRICS, "own", Metric("own", "records", "lower", probe, own_needs))
    monkeypatch.setitem(METRICS, "cross", Metric("cross", "records", "lower", probe, ("others",)))
    truth = _stats({"ctrl": CONTROL, "g1": TRUE, "g0+gX": TRUE + 1})
    score(
        _pred({"g1": PRED, "g0+gX": PRED}),
        truth,
        de_genes={"g1": DE, "g0+gX": ["g2", "g0"]},
        reference_mean=REFERENCE,
        metrics=["own", "cross"],
    )
    one, one_cross, pair, _ = seen  # condition by condition, metrics in the order asked
    # g1 on its non-target genes g0, g2, g3; its DE genes g0, g3 renumbered, g1 dropped
    np.testing.assert_array_equal(one.measured, TRUE[[0, 2, 3]])
    np.testing.assert_array_equal(one.predicted, PRED.astype(np.float32)[[0, 2, 3]])
    np.testing.assert_array_equal(one.control, CONTROL[[0, 2, 3]])
    np.testing.assert_array_equal(one.reference, REFERENCE[[0, 2, 3]])
    np.testing.assert_array_equal(one.de_idx, [0, 2])
    assert one.targets.size == 0
    # g0+gX on g1, g2, g3 (gX is not measured): its DE gene g2 becomes index 1, g0 drops
    np.testing.assert_array_equal(pair.measured, TRUE[[1, 2, 3]] + 1)
    np.testing.assert_array_equal(pair.de_idx, [1])
    # compared with the other condition, g1 is seen on g2 and g3 only: no target of either
    np.testing.assert_array_equal(one_cross.measured, TRUE[[2, 3]])
    np.testing.assert_array_equal(one_cross.others, [TRUE[[2, 3]] + 1])


def test_excluding_targets_changes_the_scores_as_by_hand():
    """Condition g1 perturbs the measured gene g1: scored on g0, g2 and g3 by default."""
    truth = _stats({"ctrl": CONTROL, "g1": TRUE})
    pred = _pred({"g1": PRED})
    chosen = ["mse", "nmse", "pearson_delta", "mse_de", "de_jaccard", "de_overlap"]
    kept = _table(score(pred, truth, de_genes={"g1": DE}, metrics=chosen, exclude_targets=False))
    for name in chosen:
        assert kept[("g1", name)] == pytest.approx(EXPECTED[name], rel=1e-6), name

    values = _table(score(pred, truth, de_genes={"g1": DE}, metrics=chosen))
    # on g0, g2, g3: squared errors .25, .04, 1; control's 1, 0, 4
    assert values[("g1", "mse")] == pytest.approx(1.29 / 3, rel=1e-6)
    assert values[("g1", "nmse")] == pytest.approx(1.29 / 5, rel=1e-6)
    # changes x = [.5, .2, 1], y = [1, 0, 2]; centred x = [-2, -11, 13] / 30, y = [0, -1, 1]:
    # sum xy = 24/30, sum xx = 294/900, sum yy = 2
    assert values[("g1", "pearson_delta")] == pytest.approx(0.8 / np.sqrt(294 / 450), rel=1e-6)
    # DE genes g0, g3 (g1 dropped): squared errors .25, 1; top 2 predicted {g3, g0}
    assert values[("g1", "mse_de")] == pytest.approx(1.25 / 2, rel=1e-6)
    assert values[("g1", "de_jaccard")] == pytest.approx(1.0)
    assert values[("g1", "de_overlap")] == pytest.approx(1.0)


def test_genes_tied_in_predicted_change_share_the_top_places():
    """A constant prediction overlaps the k DE genes by k/G whatever the order of the genes."""
    rng = np.random.default_rng(0)
    control = rng.uniform(1.0, 3.0, size=20)
    perturbed = control + rng.normal(0, 1, 20)
    de = ["g3", "g7", "g11", "g15"]
    values = []
    for order in (np.arange(20), rng.permutation(20)):
        genes = [f"g{i}" for i in order]
        means = np.vstack([control[order], perturbed[order]])
        truth = PseudobulkStats(
            conditions=np.array(["ctrl", "g0"]),
            genes=np.array(genes),
            n_cells=np.full(2, 10),
            moments=np.stack([means**k for k in range(1, 5)]),
            coexpr_n=0,
            coexpr_sum=np.zeros(20),
            coexpr_gram=None,
        )
        pred = _pred({"g0": control[order]}, genes=genes)  # no change predicted
        table = _table(score(pred, truth, de_genes={"g0": de}, metrics=["de_overlap"]))
        values.append(table[("g0", "de_overlap")])
    # 4 places shared by the 19 genes left once g0, the condition's own target, is out
    assert values[0] == pytest.approx(values[1]) == pytest.approx(4 / 19)


def test_top_places_rank_nan_last_and_tie_values_within_the_tolerance():
    from perturbsim._ranking import top_k_share

    # NaN ranks last, never first nor beside the k-th
    np.testing.assert_array_equal(top_k_share(np.array([np.nan, 3.0, 1.0]), 1, 1e-9), [0, 1, 0])
    np.testing.assert_array_equal(top_k_share(np.array([2.0, np.nan, 1.0]), 2, 1e-9), [1, 0, 1])
    # 0.1 + 0.2 and 0.3 differ by 6e-17: one tie, sharing the one place
    share = top_k_share(np.array([0.1 + 0.2, 0.3, 0.0]), 1, 1e-9)
    np.testing.assert_allclose(share, [0.5, 0.5, 0.0])
    # 2e-12 apart across a rounding boundary (6 decimals would read 1.000002 and 1.000001)
    share = top_k_share(np.array([1.0000015 + 1e-12, 1.0000015 - 1e-12, 0.0]), 1, 1e-6)
    np.testing.assert_allclose(share, [0.5, 0.5, 0.0])
    # the tolerance is relative beyond 1: 100 and 100.00005 tie at 1e-6, 1 and 1.00005 do not
    np.testing.assert_allclose(top_k_share(np.array([100.00005, 100.0]), 1, 1e-6), [0.5, 0.5])
    np.testing.assert_allclose(top_k_share(np.array([1.00005, 1.0]), 1, 1e-6), [1.0, 0.0])
    # all NaN: every item tied last
    np.testing.assert_allclose(top_k_share(np.array([np.nan, np.nan]), 1, 1e-6), [0.5, 0.5])


def test_discrimination_leaves_out_every_scored_target():
    """Two activations whose targets dominate; only the off-target change tells them apart.

    g0 raises g0 (+4) and g2 (+.5); g1 raises g1 (+4) and g3 (+.5). The prediction of g0 is
    its off-target change alone; that of g1 is "no change". Without g0 and g1, g0's own
    profile is at L1 distance 0 and g1's at 1; g1's prediction (control) is at .5 from both
    (a tie: half a rank in discrimination, against it in centroid accuracy). Leaving out only
    a condition's own target (cell-eval) would put the other condition 4.5 away from "no
    change" and its own .5 away: a no-change prediction would look perfect.
    """
    truth = _stats({"ctrl": CONTROL, "g0": [5.0, 1.0, 1.5, 1.0], "g1": [1.0, 5.0, 1.0, 1.5]})
    pred = _pred({"g0": [1.0, 1.0, 1.5, 1.0], "g1": CONTROL})
    chosen = ["discrimination_l1", "discrimination_l2", "centroid_accuracy", "mse"]
    values = _table(score(pred, truth, metrics=chosen))
    assert values[("g0", "discrimination_l1")] == 1.0
    assert values[("g0", "discrimination_l2")] == 1.0
    assert values[("g0", "centroid_accuracy")] == 1.0
    assert values[("g1", "discrimination_l1")] == 0.5
    assert values[("g1", "discrimination_l2")] == 0.5
    assert values[("g1", "centroid_accuracy")] == 0.0
    # per-condition metrics leave out only their own target: g0 on g1, g2, g3 is exact;
    # g1 on g0, g2, g3 misses .5 on g3
    assert values[("g0", "mse")] == 0.0
    assert values[("g1", "mse")] == pytest.approx(0.25 / 3)

    # with every gene: g0's own is at L1 4 (its target), g1's at 4 + .5 + .5 = 5; g1's
    # prediction is at 4.5 from both, still a tie
    kept = _table(score(pred, truth, metrics=chosen, exclude_targets=False))
    assert kept[("g0", "discrimination_l1")] == 1.0
    assert kept[("g1", "discrimination_l1")] == 0.5
    assert kept[("g0", "mse")] == pytest.approx(16 / 4)


def test_comparisons_need_a_second_condition():
    truth = _stats({"ctrl": CONTROL, "A": TRUE})
    values = _table(score(_pred({"A": PRED}), truth))
    for name in ("discrimination_l1", "discrimination_l2", "centroid_accuracy"):
        assert np.isnan(values[("A", name)])


def test_top_genes_ranked_without_excluded_genes():
    """The DE list keeps n_genes genes: the next-ranked genes replace the excluded ones."""
    de = DEGenes(
        method="t-test",
        n_genes=2,
        conditions=np.array(["G0"]),
        genes=np.array(["G0", "G1", "G2", "G3"]),
        top=np.array([["G0", "G1"]]),  # by |score|: G0 5, G1 4, G2 3, G3 1
        top_non_dropout=np.array([["G0", "G1"]]),
        non_dropout=np.array([[True, True, False, True]]),
        scores=np.array([[5.0, -4.0, 3.0, 1.0]]),
    )
    assert de.top_genes("G0") == ["G0", "G1"]
    assert de.top_genes("G0", exclude=ps.pp.genes_of("G0")) == ["G1", "G2"]
    assert de.top_genes("G0", non_dropout=True, exclude=["G0"]) == ["G1", "G3"]  # G2 drops out
    assert de.top_genes("G0", exclude=["KLF1"]) == ["G0", "G1"]  # not measured: ignored
    with pytest.raises(ps.PerturbsimError, match="'G0'"):
        de.top_genes("G0", exclude="G0")


def test_score_leaves_unneeded_inputs_empty(monkeypatch):
    seen: list[MetricInputs] = []

    def probe(x: MetricInputs) -> float:
        seen.append(x)
        return 0.0

    monkeypatch.setitem(METRICS, "probe", Metric("probe", "records its inputs", "lower", probe))
    truth = _stats({"ctrl": CONTROL, "g1": TRUE})
    score(_pred({"g1": PRED}, variance=[np.ones(4)]), truth, de_genes={"g1": DE}, metrics=["probe"])
    (inputs,) = seen
    assert all(getattr(inputs, name) is None for name in OPTIONAL_INPUTS)


def test_score_with_pseudobulk_stats_is_tidy_and_matches():
    # A as in EXPECTED; B, C, D are the three other conditions (predicted exactly)
    others = dict(zip(["B", "C", "D"], OTHERS, strict=True))
    truth = _stats({"ctrl": CONTROL, "A": TRUE, **others})
    pred = _pred({"A": PRED, **others})
    frame = score(
        pred,
        truth,
        de_genes={c: DE for c in ["A", *others]},
        reference_mean=REFERENCE,
    )
    assert list(frame.columns) == ["condition", "metric", "value"]
    assert len(frame) == 4 * len(METRICS)
    assert list(pd.unique(frame["condition"])) == ["A", "B", "C", "D"]
    values = _table(frame)
    for name, expected in EXPECTED.items():
        assert values[("A", name)] == pytest.approx(expected, rel=1e-6), name
    assert values[("B", "mse")] == 0.0

    # shifted by +1 everywhere: errors unchanged, changes over control shifted
    shifted = _table(
        score(
            _pred({"A": PRED + 1}),
            _stats({"ctrl": CONTROL, "A": TRUE + 1}),
            metrics=["mse", "pearson_delta"],
        )
    )
    assert shifted[("A", "mse")] == pytest.approx(EXPECTED["mse"], rel=1e-6)
    assert shifted[("A", "pearson_delta")] == pytest.approx(EXPECTED["pearson_delta"], rel=1e-6)


def test_score_with_anndata_truth_matches_genes_by_name():
    order = [3, 1, 0, 2]
    truth = ad.AnnData(
        X=np.vstack([CONTROL, TRUE])[:, order],
        obs=pd.DataFrame(index=["ctrl", "A"]),
        var=pd.DataFrame(index=[GENES[i] for i in order]),
    )
    frame = score(_pred({"A": PRED}), truth, de_genes={"A": DE}, metrics=["mse_de", "nmse"])
    values = _table(frame)
    assert values[("A", "mse_de")] == pytest.approx(EXPECTED["mse_de"], rel=1e-6)
    assert values[("A", "nmse")] == pytest.approx(EXPECTED["nmse"], rel=1e-6)


def test_default_metrics_depend_on_inputs_given():
    truth = _stats({"ctrl": CONTROL, "A": TRUE})
    frame = score(_pred({"A": PRED}), truth)
    assert set(frame["metric"]) == {
        "mse",
        "nmse",
        "pearson_delta",
        "discrimination_l1",
        "discrimination_l2",
        "centroid_accuracy",
    }


def test_explicit_control_mean_overrides_truth():
    truth = _stats({"A": TRUE})  # no ctrl row
    with pytest.raises(ps.PerturbsimError, match="control_mean"):
        score(_pred({"A": PRED}), truth)
    frame = score(_pred({"A": PRED}), truth, control_mean=CONTROL, metrics=["nmse"])
    assert frame["value"].iloc[0] == pytest.approx(EXPECTED["nmse"])


def test_no_change_prediction_gives_nan_pearson_nmse_one_and_half_the_directions():
    truth = _stats({"ctrl": CONTROL, "A": TRUE})
    frame = score(_pred({"A": CONTROL}), truth, de_genes={"A": DE})
    values = _table(frame)
    assert np.isnan(values[("A", "pearson_delta")])
    assert np.isnan(values[("A", "pearson_delta_de")])
    assert values[("A", "nmse")] == pytest.approx(1.0)
    # no direction named: half wrong, as a coin (counted wrong, it would read worse than one)
    assert values[("A", "direction_error_de")] == pytest.approx(0.5)


def test_the_mean_baseline_has_no_change_over_the_reference_it_predicts(norman):
    # the mean of the training perturbations is both the "mean" model's prediction (stored
    # in float32) and pearson_delta_pert's reference (float64): its change over the
    # reference is none, not their rounding difference correlated with the measured change
    split = norman.copy()
    ps.pp.split(split, seed=1)
    stats = ps.pp.compute_pseudobulk(split)
    train = [c for c in split.uns["perturbsim"]["split"]["train"] if c != "ctrl"]
    test = [str(c) for c in split.uns["perturbsim"]["split"]["test"]]
    reference = stats.mean[stats.index(train)].mean(axis=0)
    prediction = ps.TrainMean(split).fit().predict(test)
    assert prediction.X.dtype == np.float32
    assert np.abs(np.asarray(prediction.X, dtype=np.float64) - reference).max() > 0
    frame = score(prediction, stats, reference_mean=reference, metrics=["pearson_delta_pert"])
    assert frame["value"].isna().all()
    # a prediction off the reference by more than rounding keeps its correlation
    prediction.X = prediction.X + np.float32(0.01) * (stats.delta[stats.index(test)] > 0)
    frame = score(prediction, stats, reference_mean=reference, metrics=["pearson_delta_pert"])
    assert frame["value"].notna().all() and (frame["value"] > 0).all()


def test_pearson_constant_is_nan():
    assert np.isnan(pearson(np.ones(5), np.arange(5.0)))
    assert np.isnan(pearson(np.array([1.0]), np.array([2.0])))
    assert pearson(np.arange(5.0), 2 * np.arange(5.0) + 1) == pytest.approx(1.0)


def test_errors_name_the_offending_value():
    truth = _stats({"ctrl": CONTROL, "A": TRUE})
    with pytest.raises(ps.PerturbsimError, match="'nope'"):
        score(_pred({"A": PRED}), truth, metrics=["nope"])
    with pytest.raises(ps.PerturbsimError, match="needs de_genes"):
        score(_pred({"A": PRED}), truth, metrics=["mse_de"])
    with pytest.raises(ps.PerturbsimError, match="needs reference_mean"):
        score(_pred({"A": PRED}), truth, metrics=["pearson_delta_pert"])
    with pytest.raises(ps.PerturbsimError, match="'Z'"):
        score(_pred({"Z": PRED}), truth)
    with pytest.raises(ps.PerturbsimError, match="'A'"):
        score(_pred({"A": PRED}), truth, de_genes={"B": DE})
    with pytest.raises(ps.PerturbsimError, match="'gX'"):
        score(_pred({"A": PRED}), truth, de_genes={"A": ["g0", "gX"]})
    with pytest.raises(ps.PerturbsimError, match="gZ"):
        score(_pred({"A": PRED}, genes=["g0", "g1", "g2", "gZ"]), truth)
    with pytest.raises(ps.PerturbsimError, match="^metrics name 'mse' more than once"):
        score(_pred({"A": PRED}), truth, metrics=["mse", "mse"])
    with pytest.raises(ps.PerturbsimError, match="^DE genes of 'A' name 'g0' more than once"):
        score(_pred({"A": PRED}), truth, de_genes={"A": ["g0", "g0", "g3"]})
    with pytest.raises(ps.PerturbsimError, match="must be a list of genes, got the string 'g0'"):
        score(_pred({"A": PRED}), truth, de_genes={"A": "g0"})
    twice = _pred({"A": PRED})
    twice = ad.AnnData(np.vstack([twice.X, twice.X]), var=twice.var)
    twice.obs_names = ["A", "A"]
    with pytest.raises(ps.PerturbsimError, match="^pred holds condition 'A' more than once"):
        score(twice, truth)
    # a NaN anywhere it would silently turn the scores into NaN: named
    broken = np.array(TRUE, dtype=float)
    broken[1] = np.nan
    with pytest.raises(ps.PerturbsimError, match=r"^the truth holds 1 non-finite .* 'A' at gene"):
        score(_pred({"A": PRED}), _stats({"ctrl": CONTROL, "A": broken}))
    with pytest.raises(ps.PerturbsimError, match="^control_mean is nan at gene number 1"):
        score(_pred({"A": PRED}), truth, control_mean=broken)


def test_padding_in_de_lists_is_ignored():
    truth = _stats({"ctrl": CONTROL, "A": TRUE})
    frame = score(_pred({"A": PRED}), truth, de_genes={"A": [*DE, "", ""]}, metrics=["mse_de"])
    assert frame["value"].iloc[0] == pytest.approx(EXPECTED["mse_de"])


def test_score_model_predictions_on_norman(norman):
    from perturbsim.models._simple import Additive, NoPerturbation
    from perturbsim.pp._de import DEGenes, rank_de

    ps.pp.pseudobulk(norman)
    rank_de(norman, n_genes=20)
    de = DEGenes.from_adata(norman)
    stats = PseudobulkStats.from_adata(norman)
    conditions = [c for c in stats.conditions if c != "ctrl"]
    de_genes = {c: de.top_genes(c) for c in conditions}
    reference = stats.delta[stats.index(conditions)].mean(axis=0) + stats.control_mean

    baseline = score(
        NoPerturbation(norman).fit().predict(conditions),
        stats,
        de_genes=de_genes,
        reference_mean=reference,
    )
    assert set(baseline["metric"]) == set(METRICS)
    by_metric = baseline.groupby("metric")["value"]
    assert np.allclose(by_metric.get_group("nmse"), 1.0)
    assert np.allclose(by_metric.get_group("nmse_de"), 1.0)
    assert by_metric.get_group("pearson_delta").isna().all()

    additive = Additive(norman).fit()  # trained on everything: exact on the singles
    singles = [c for c in conditions if "+" not in c]
    frame = score(
        additive.predict(singles), stats, de_genes=de_genes, metrics=["mse", "de_jaccard"]
    )
    values = frame.pivot(index="condition", columns="metric", values="value")
    assert (values["mse"] < 1e-10).all()
    # an exact prediction ranks genes by |measured change|, which a t-test ranking only
    # partly shares: its de_jaccard is the overlap of the two top-k lists, both without the
    # condition's target (TMSB4X is the one measured target: its DE list drops to 19 genes)
    genes = list(stats.genes)
    for cond in singles:
        targets = set(ps.pp.genes_of(cond))
        change = stats.delta[stats.index([cond])[0]]
        t_test = set(de_genes[cond]) - targets
        ranked = [genes[i] for i in np.argsort(-np.abs(change), kind="stable")]
        by_change = set([g for g in ranked if g not in targets][: len(t_test)])
        expected = len(by_change & t_test) / len(by_change | t_test)
        assert values.loc[cond, "de_jaccard"] == pytest.approx(expected)
    assert len(set(de_genes["TMSB4X"]) - {"TMSB4X"}) == 19


def test_evaluate_ranks_de_genes_without_the_targets(norman):
    """evaluate's DE lists keep n_de genes, without the target unless exclude_targets=False."""
    for exclude in (True, False):
        result = ps.tl.evaluate(
            norman, models=["mean"], seeds=[1], metrics=["mse_de"], exclude_targets=exclude
        )
        changes = result.changes[result.changes["model"] == "mean"]
        genes = changes[changes["condition"] == "TMSB4X"]["gene"].tolist()
        assert len(genes) == 20
        assert ("TMSB4X" in genes) is not exclude


def test_full_depth_maps_split_half_values_to_a_repeat_of_the_experiment():
    from perturbsim.tl._metrics import full_depth

    # Spearman-Brown by hand: r = 0.6 -> 1.2 / 1.6 = 0.75; r <= 0 is left as it is
    np.testing.assert_allclose(full_depth("pearson_delta", [0.6, 0.0, -0.4]), [0.75, 0.0, -0.4])
    np.testing.assert_allclose(full_depth("mse_de", [0.4, 0.1]), [0.2, 0.05])
    # relative to no change (its error holds the noise too): pure noise stays at 2
    np.testing.assert_allclose(full_depth("nmse_de", [0.0, 0.4, 2.0, 3.0]), [0, 0.2 / 0.9, 2, 2])
    np.testing.assert_allclose(full_depth("de_jaccard", [0.3]), [0.3])
    with pytest.raises(PerturbsimError, match="unknown metric 'nope'"):
        full_depth("nope", 0.5)
    with pytest.raises(PerturbsimError, match="full_depth must be one of"):
        register_metric("x_bad_depth", description="x", best="higher", full_depth="double")


def test_a_non_finite_prediction_is_named_not_scored(norman):
    pred = ps.TrainMean(norman).fit().predict(["KLF1", "KLF1+MAP2K6"])
    pred.X[1, 3] = np.inf
    stats = ps.pp.compute_pseudobulk(norman)
    gene = pred.var_names[3]
    with pytest.raises(ps.PerturbsimError, match=f"inf for 'KLF1\\+MAP2K6' at gene '{gene}'"):
        ps.tl.score(pred, stats)


def test_a_set_up_screen_is_its_own_truth(norman):
    import perturbsim as ps

    ps.pp.split(norman, kind="simulation", seed=1)
    prediction = ps.TrainMean(norman).fit().predict(["KLF1", "KLF1+MAP2K6"])
    on_screen = ps.tl.score(prediction, norman, metrics=["mse", "pearson_delta"])
    on_profiles = ps.tl.score(
        prediction, ps.pp.measured_profiles(norman), metrics=["mse", "pearson_delta"]
    )
    pd.testing.assert_frame_equal(on_screen, on_profiles)
    assert (on_screen["value"] > 0).all()


def test_a_prediction_of_some_conditions_is_told_apart_from_all_compared():
    # a model predicting g0 only, scored as one predicting g0 and g1 is: against both
    truth = _stats({"ctrl": CONTROL, "g0": [5.0, 1.0, 1.5, 1.0], "g1": [1.0, 5.0, 1.0, 1.5]})
    both = _pred({"g0": [1.0, 1.0, 1.5, 1.0], "g1": CONTROL})
    alone = _pred({"g0": [1.0, 1.0, 1.5, 1.0]})
    chosen = ["discrimination_l1", "discrimination_l2", "centroid_accuracy"]
    full = _table(score(both, truth, metrics=chosen))
    compared = _table(score(alone, truth, metrics=chosen, comparison=["g0", "g1"]))
    own = _table(score(alone, truth, metrics=chosen))
    for name in chosen:
        assert compared[("g0", name)] == full[("g0", name)] == 1.0
        assert np.isnan(own[("g0", name)])  # alone among its own rows: nothing to tell apart
    with pytest.raises(PerturbsimError, match="comparison must be a list"):
        score(alone, truth, metrics=chosen, comparison="g0")
    with pytest.raises(PerturbsimError, match=r"comparison conditions missing .*\['nope'\]"):
        score(alone, truth, metrics=["mse"], comparison=["g0", "nope"])
    with pytest.raises(PerturbsimError, match="comparison is empty"):
        score(alone, truth, metrics=chosen, comparison=[])
    # any form of a label, each condition once: as the plain list
    forms = _table(score(alone, truth, metrics=chosen, comparison=["g0+ctrl", "g1", "g1"]))
    assert forms == compared


def test_the_full_depth_nmse_of_a_split_half_is_a_full_repeats():
    # a change measured twice at full depth (n cells) and once split in halves (n / 2 each)
    rng = np.random.default_rng(0)
    signal, sd, n_genes, trials = rng.normal(0, 0.3, 200), 1.0, 200, 400
    control = np.zeros(n_genes)

    def measured(cells: int) -> np.ndarray:
        return signal + rng.normal(0, sd / np.sqrt(cells), (trials, n_genes))

    def nmse(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
        return ((predicted - truth) ** 2).mean(1) / ((control - truth) ** 2).mean(1)

    half = nmse(measured(10), measured(10)).mean()
    full = nmse(measured(20), measured(20)).mean()
    from perturbsim.tl._metrics import full_depth

    assert float(full_depth("nmse_de", half)) == pytest.approx(full, rel=0.03)
    assert half / 2 < 0.9 * full  # halving alone would read the repeat as better than it is


def test_pearson_of_two_genes_is_their_direction():
    assert pearson(np.array([1.0, 2.0]), np.array([0.0, 5.0])) == pytest.approx(1.0)
    assert pearson(np.array([1.0, 2.0]), np.array([5.0, 0.0])) == pytest.approx(-1.0)


def test_a_condition_measured_as_the_control_has_no_relative_error():
    # its no-change error is 0: nmse is undefined (NaN), not a division by zero
    inputs = MetricInputs(
        predicted=PRED, measured=CONTROL.copy(), control=CONTROL, de_idx=np.array([0, 1])
    )
    assert np.isnan(METRICS["nmse"].func(inputs))
    assert np.isnan(METRICS["nmse_de"].func(inputs))


def test_a_gene_neither_predicted_nor_measured_to_change_has_its_direction_right():
    control = np.array([1.0, 1.0, 1.0])
    measured = np.array([1.0, 2.0, 0.0])  # unchanged, up, down
    inputs = MetricInputs(
        predicted=np.array([1.0, 1.5, 0.5]),
        measured=measured,
        control=control,
        de_idx=np.array([0, 1, 2]),
    )
    assert METRICS["direction_error_de"].func(inputs) == 0.0
    # predicted unchanged where it moved: a coin's half
    undecided = replace(inputs, predicted=np.array([1.0, 1.0, 0.5]))
    assert METRICS["direction_error_de"].func(undecided) == pytest.approx(0.5 / 3)


def test_a_float64_prediction_is_scored_as_given_however_close_to_the_control():
    # only predictions stored below float64 are read as the control at their rounding
    truth = _stats({"ctrl": CONTROL, "A": TRUE})
    pred = _pred({"A": CONTROL})
    pred.X = np.asarray(CONTROL + np.array([1e-13, -1e-13, 0.0, 1e-13]))[None, :]
    assert pred.X.dtype == np.float64
    frame = score(pred, truth, de_genes={"A": DE}, metrics=["direction_error_de"])
    assert frame["value"].iloc[0] == 0.0  # g0 up, g1 down, g3 up: all three right
