from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import screen_of

import perturbsim as ps
from perturbsim.models._data import ScreenData
from perturbsim.models._go_neighbours import measured_go_neighbours


@pytest.fixture
def split_tiny(tiny):
    ps.pp.split(tiny, kind="simulation", seed=1)
    return tiny


def _jaccard(go, a, b):
    terms = go.groupby("gene")["term"].apply(set)
    first, second = terms.get(a, set()), terms.get(b, set())
    return len(first & second) / len(first | second)


def test_a_gene_departs_from_the_mean_as_its_go_neighbours_measured_alone_do(split_tiny, tiny_go):
    model = ps.models.GONeighbours(split_tiny, n_neighbours=3, shrink=False).fit()
    assert model.shrinkage == 1.0
    data = ScreenData.from_adata(split_tiny)
    singles = data.single_changes()
    mean = data.mean_training_change()
    unseen = [str(c) for c in split_tiny.uns["perturbsim"]["split"]["subgroups"]["unseen_single"]]
    gene = next(g for g in unseen if model.covers([g])[0])
    near = model.neighbours[gene]
    assert 1 <= len(near) <= 3 and all(s in singles for s, _ in near)
    # the most similar measured singles, by the Jaccard index of their GO terms
    scores = {s: _jaccard(tiny_go, gene, s) for s in singles}
    top = sorted((v for v in scores.values() if v > 0), reverse=True)[: len(near)]
    np.testing.assert_allclose([w for _, w in near], top, rtol=1e-6)  # float32 products
    weights = np.array([w for _, w in near])
    expected = mean + weights @ np.array([singles[s] - mean for s, _ in near]) / weights.sum()
    delta = model.predict([gene]).layers["delta"][0]
    control = model.control_mean  # predicted expression is never below 0
    np.testing.assert_allclose(delta, np.clip(control + expected, 0, None) - control, atol=1e-6)
    # a set is additive in the departures; control is unchanged
    other = next(g for g in unseen if g != gene and model.covers([g])[0])
    change, _ = model._predict_change([(gene, other), (gene,), (other,), ()])
    np.testing.assert_allclose(change[0], change[1] + change[2] - mean, atol=1e-12)
    assert not change[3].any()


def test_a_measured_single_is_predicted_from_the_others_not_itself(split_tiny):
    model = ps.models.GONeighbours(split_tiny).fit()
    measured = [g for g in model.single_genes if g in model.neighbours]
    assert measured and all(g not in [s for s, _ in model.neighbours[g]] for g in measured)


def test_genes_without_a_measured_go_neighbour_are_refused_and_a_saved_model_predicts_alike(
    norman, tmp_path
):
    ps.pp.split(norman, seed=1)
    model = ps.models.GONeighbours(norman).fit()
    assert model.covers(["FOXO4", "NOT_A_GENE"]).tolist() == [True, False]
    with pytest.raises(ps.PerturbsimError, match=r"go_neighbours cannot predict perturbations of "):
        model.predict(["NOT_A_GENE"])
    model.save(tmp_path / "model")
    loaded = ps.PerturbationModel.load(tmp_path / "model")
    queries = ["FOXO4", "KLF1+MAP2K6", "TP53"]  # TP53: outside the screen, placed by human GO
    assert loaded.covers(queries).all()
    np.testing.assert_array_equal(
        loaded.predict(queries).layers["delta"], model.predict(queries).layers["delta"]
    )


def test_a_saved_model_of_custom_annotations_keeps_the_screen_s_measured_genes(tmp_path):
    adata = ps.ds.simulate(size="small", seed=25)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    ps.pp.split(adata, kind="simulation", seed=2)
    go = adata.uns["simulation"]["go"]
    model = ps.models.GONeighbours(adata, go_annotations=go, shrink=False).fit()
    perturbed = {g for c in adata.obs["perturbsim_condition"].unique() for g in ps.pp.genes_of(c)}
    measured_only = [g for g in adata.var_names if g not in perturbed]
    placed = [g for g, ok in zip(measured_only, model.covers(measured_only), strict=True) if ok]
    assert placed  # genes measured, never perturbed, with measured GO neighbours
    model.save(tmp_path / "model")  # the annotations are not saved: the neighbours are
    loaded = ps.PerturbationModel.load(tmp_path / "model")
    assert loaded.covers(placed).all()
    np.testing.assert_array_equal(
        loaded.departures_of([(g,) for g in placed]), model.departures_of([(g,) for g in placed])
    )


def test_neighbours_are_ranked_by_similarity_ties_to_the_earlier_measured_gene():
    near = measured_go_neighbours(
        ["CKS2", "LDHA"], ["CKS1B", "ENO1"], None, n_neighbours=2, threshold=0.0
    )
    assert near["CKS2"][0][0] == "CKS1B" and round(near["CKS2"][0][1], 3) == 0.706
    assert near["LDHA"][0] == ("ENO1", pytest.approx(0.184, abs=1e-3))
    # Q shares one of its two terms with each of M1 and M2 (Jaccard 1/2 both), and B's
    # single term with M3 (1): ranked by similarity, the tie to the earlier measured gene
    go = pd.DataFrame(
        {
            "gene": ["Q", "Q", "M1", "M2", "B", "M3"],
            "term": ["t1", "t2", "t1", "t2", "t3", "t3"],
        }
    )
    for measured in (["M1", "M2", "M3"], ["M2", "M1", "M3"]):
        ties = measured_go_neighbours(["Q"], measured, go, n_neighbours=2, threshold=0.0)
        assert [g for g, _ in ties["Q"]] == measured[:2]
        assert [w for _, w in ties["Q"]] == pytest.approx([0.5, 0.5])


def test_stacked_weighs_the_go_neighbours_on_held_out_conditions(split_tiny, tiny_go):
    model = ps.models.build_model("stacked_go_neighbours", split_tiny, go_annotations=tiny_go)
    model.fit(max_epochs=2)
    weights = model.weights
    assert "go_neighbours" in set(weights["part"])
    assert weights["weight"].between(0, 1).all()
    with pytest.raises(
        ps.PerturbsimError, match="corrections must be a list of correction names among"
    ):
        ps.Stacked(split_tiny, corrections=("go_nearest",))


def test_stacked_adds_no_go_departure_to_a_pair_built_from_predicted_singles():
    # a pair of two genes never measured alone is their predicted singles combined, each
    # with its weighted GO-neighbour departure: the pair's own part would count it twice
    adata = ps.ds.simulate(size="small", seed=1)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    ps.pp.split(adata, seed=1)
    model = ps.Stacked(adata, corrections=("linear", "go_neighbours"), seed=0).fit()
    model.corrections["go_neighbours"] = ps.models.GONeighbours(adata, shrink=False).fit()
    test = [ps.pp.genes_of(str(c)) for c in adata.uns["perturbsim"]["split"]["test"]]
    pair = next(g for g in test if len(g) == 2 and not set(g) & set(model.singles))
    sets = [pair, (pair[0],), (pair[1],)]
    departures = model._departures(sets, np.zeros((3, len(model.genes))))["go_neighbours"]
    assert not departures[0].any()
    assert np.abs(departures[1:]).max() > 0.01  # each gene alone departs


def test_the_departures_are_shrunk_by_how_well_they_predict_the_training_singles(norman):
    ps.pp.split(norman, seed=3)  # a split whose GO ties predict training singles in part
    whole = ps.models.GONeighbours(norman, shrink=False).fit()
    shrunk = ps.models.GONeighbours(norman).fit()
    # each training single from the others, least squares on its 20 largest departures
    guess = whole.departures_of([(g,) for g in whole.single_genes])
    fit = np.zeros(2)
    for measured, predicted in zip(whole.departures, guess, strict=True):
        top = np.argsort(-np.abs(measured), kind="stable")[:20]
        fit += measured[top] @ predicted[top], predicted[top] @ predicted[top]
    assert shrunk.shrinkage == pytest.approx(np.clip(fit[0] / fit[1], 0, 1))
    assert 0 < shrunk.shrinkage < 1
    genes = [("FOXO4",), ("FOXO4", "KLF1")]
    np.testing.assert_allclose(
        shrunk.departures_of(genes), shrunk.shrinkage * whole.departures_of(genes), atol=1e-12
    )


def _designed_screen() -> ad.AnnData:
    """Singles CKS1B, ENO1 and TP53 with set changes over control on 40 measured genes.

    CKS1B moves G01-G20 by +2; ENO1 moves them by +1 and H01-H20 by +3; TP53 moves every
    gene by minus their sum, so that the mean training change is 0 and each departure is the
    change itself.
    """
    rng = np.random.default_rng(0)
    genes = [f"G{i:02d}" for i in range(1, 21)] + [f"H{i:02d}" for i in range(1, 21)]
    first = np.r_[np.full(20, 2.0), np.zeros(20)]
    second = np.r_[np.full(20, 1.0), np.full(20, 3.0)]
    changes = {"ctrl": 0.0, "CKS1B": first, "ENO1": second, "TP53": -(first + second)}
    blocks, labels = [], []
    for label, change in changes.items():
        blocks.append(10.0 + change + 1e-3 * rng.normal(size=(5, len(genes))))
        labels += [label] * 5
    adata = screen_of(np.vstack(blocks), labels, genes)
    return adata


def test_the_shrinkage_is_at_most_one():
    # CKS1B and ENO1 share a term: on CKS1B's largest departures ENO1's guess is half of
    # them, on ENO1's (H01-H20) CKS1B's is 0; least squares gives 40 / 20 = 2, clipped to 1
    adata = _designed_screen()
    go = pd.DataFrame({"gene": ["CKS1B", "ENO1"], "term": ["t1", "t1"]})
    whole = ps.models.GONeighbours(adata, go_annotations=go, shrink=False).fit()
    guess = whole.departures_of([(g,) for g in whole.single_genes])
    fit = np.zeros(2)
    for measured, predicted in zip(whole.departures, guess, strict=True):
        top = np.argsort(-np.abs(measured), kind="stable")[:20]
        fit += measured[top] @ predicted[top], predicted[top] @ predicted[top]
    assert fit[0] / fit[1] == pytest.approx(2.0, rel=1e-2)
    shrunk = ps.models.GONeighbours(adata, go_annotations=go).fit()
    assert shrunk.shrinkage == 1.0


def test_the_shrinkage_is_zero_when_no_training_single_has_a_measured_neighbour(tmp_path):
    # only G01, a measured gene never perturbed, shares a term with a single (CKS1B)
    adata = _designed_screen()
    go = pd.DataFrame({"gene": ["CKS1B", "G01", "ENO1"], "term": ["t1", "t1", "t2"]})
    model = ps.models.GONeighbours(adata, go_annotations=go).fit()
    assert model.neighbours == {"G01": [("CKS1B", 1.0)]}
    assert model.shrinkage == 0.0
    assert model.covers(["G01"]).tolist() == [True]
    assert not model.departures_of([("G01",)]).any()
    # custom annotations are not saved: a loaded model places no new gene, not even one
    # the bundled human GO would tie to a single (CKS2 to CKS1B)
    assert ps.models.GONeighbours(adata).fit().covers(["CKS2"]).tolist() == [True]
    model.save(tmp_path / "model")
    loaded = ps.PerturbationModel.load(tmp_path / "model")
    assert loaded.covers(["G01", "CKS2"]).tolist() == [True, False]
