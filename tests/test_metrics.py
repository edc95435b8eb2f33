from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import perturbsim as ps
from perturbsim.pp import PseudobulkStats
from perturbsim.tl import Metric, MetricInputs, list_metrics, register_metric, score
from perturbsim.tl._metrics import METRICS, OPTIONAL_INPUTS, pearson

GENES = ["g0", "g1", "g2", "g3"]
CONTROL = np.array([1.0, 1.0, 1.0, 1.0])
TRUE = np.array([2.0, 0.0, 1.0, 3.0])  # change [1, -1, 0, 2]
PRED = np.array([1.5, 1.0, 1.2, 2.0])  # change [0.5, 0, 0.2, 1]
REFERENCE = np.array([1.5, 0.5, 1.0, 2.5])
DE = ["g0", "g1", "g3"]

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
    # g1 predicted 0, measured -1: one wrong sign of three
    "direction_error_de": 1 / 3,
    # top 3 predicted {g3, g0, g2} vs {g0, g1, g3}: 2 shared of 4
    "de_jaccard": 0.5,
    # centred vs reference a = [-.05, .45, .15, -.55], b = [.375, -.625, -.125, .375]
    "pearson_delta_pert": -0.525 / np.sqrt(0.53 * 0.6875),
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
    means = np.vstack(list(rows.values()))
    moments = np.stack([means**k for k in range(1, 5)])
    return PseudobulkStats(
        conditions=np.array(list(rows)),
        genes=np.array(GENES),
        n_cells=np.full(len(rows), 10),
        moments=moments,
        coexpr_n=0,
        coexpr_sum=np.zeros(len(GENES)),
        coexpr_gram=None,
    )


def _table(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(r.condition, r.metric): r.value for r in frame.itertuples()}


def test_registry_lists_every_metric():
    table = list_metrics()
    expected = set(EXPECTED)
    assert set(table.index) == expected == set(METRICS)
    assert list(table.columns) == ["description", "best", "needs"]
    assert set(table["best"]) == {"higher", "lower"}
    assert table.loc["mse", "best"] == "lower"
    assert table.loc["pearson_delta", "best"] == "higher"
    assert table["description"].str.len().min() > 10
    assert table.loc["mse", "needs"] == ""
    assert table.loc["de_jaccard", "needs"] == "de_idx"
    assert table.loc["pearson_delta_pert", "needs"] == "reference"
    assert OPTIONAL_INPUTS == ("variance", "de_idx", "targets", "reference", "others")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_metric_matches_hand_computation(name):
    de_idx = np.array([GENES.index(g) for g in DE])
    inputs = MetricInputs(
        predicted=PRED, measured=TRUE, control=CONTROL, de_idx=de_idx, reference=REFERENCE
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
    truth = _stats({"ctrl": CONTROL, "A": TRUE, "B": TRUE + 1})
    pred = _pred({"A": PRED, "B": PRED + 1})
    frame = score(
        pred,
        truth,
        de_genes={"A": DE, "B": DE},
        reference_mean=REFERENCE,
    )
    assert list(frame.columns) == ["condition", "metric", "value"]
    assert len(frame) == 2 * len(METRICS)
    assert list(pd.unique(frame["condition"])) == ["A", "B"]
    values = _table(frame)
    for name, expected in EXPECTED.items():
        assert values[("A", name)] == pytest.approx(expected, rel=1e-6), name
    # B is A shifted by +1 everywhere: errors unchanged, changes over control shifted
    assert values[("B", "mse")] == pytest.approx(EXPECTED["mse"], rel=1e-6)
    assert values[("B", "pearson_delta")] == pytest.approx(EXPECTED["pearson_delta"], rel=1e-6)


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
    assert set(frame["metric"]) == {"mse", "nmse", "pearson_delta"}


def test_explicit_control_mean_overrides_truth():
    truth = _stats({"A": TRUE})  # no ctrl row
    with pytest.raises(ps.PerturbsimError, match="control_mean"):
        score(_pred({"A": PRED}), truth)
    frame = score(_pred({"A": PRED}), truth, control_mean=CONTROL, metrics=["nmse"])
    assert frame["value"].iloc[0] == pytest.approx(EXPECTED["nmse"])


def test_no_change_prediction_gives_nan_pearson_and_nmse_one():
    truth = _stats({"ctrl": CONTROL, "A": TRUE})
    frame = score(_pred({"A": CONTROL}), truth, de_genes={"A": DE})
    values = _table(frame)
    assert np.isnan(values[("A", "pearson_delta")])
    assert np.isnan(values[("A", "pearson_delta_de")])
    assert values[("A", "nmse")] == pytest.approx(1.0)
    assert values[("A", "direction_error_de")] == pytest.approx(1.0)


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
    # partly shares: its de_jaccard is the overlap of the two top-20 lists
    genes = list(stats.genes)
    for cond in singles:
        change = stats.delta[stats.index([cond])[0]]
        by_change = {genes[i] for i in np.argsort(-np.abs(change), kind="stable")[:20]}
        t_test = set(de_genes[cond])
        expected = len(by_change & t_test) / len(by_change | t_test)
        assert values.loc[cond, "de_jaccard"] == pytest.approx(expected)
