from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_baselines import exact_screen

import perturbsim as ps
from perturbsim.graphs import GeneGraph, go_graph
from perturbsim.models import MODEL_REGISTRY, LinearGO, PerturbationModel, TrainMean, build_model
from perturbsim.models._linear_go import spectral_embedding


# -- a screen whose changes are a linear function of the GO embedding --------------------
def _modular_go(n_genes: int, n_modules: int, seed: int) -> pd.DataFrame:
    """Each gene annotated with its module's term and a few of a pool of shared terms."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_genes):
        gene = f"P{i}"
        rows.append((gene, f"MODULE{i % n_modules}"))
        rows += [(gene, f"SHARED{t}") for t in rng.choice(8, size=2, replace=False)]
    return pd.DataFrame(rows, columns=["gene", "term"])


def _planted_go_screen(
    *, related: bool = True, n_targets: int = 30, n_genes: int = 40, k: int = 4, seed: int = 5
):
    """Singles of unmeasured targets P*, change ``offset + C p_g`` with ``p_g`` their GO rows.

    ``related=False``: the changes are drawn independently of the GO rows. Returns the
    screen, its annotations, the true change of every target and the training conditions
    (the first two thirds of the targets).
    """
    rng = np.random.default_rng(seed)
    go = _modular_go(n_targets, n_modules=5, seed=seed)
    targets = sorted(f"P{i}" for i in range(n_targets))  # the model's candidate order
    graph = go_graph(targets, annotations=go)
    embedding = dict(zip(graph.nodes, spectral_embedding(graph, k), strict=True))
    loadings = rng.normal(0.0, 0.3, size=(n_genes, k))
    offset = rng.normal(0.0, 0.1, size=n_genes)
    change = {
        g: offset + (loadings @ embedding[g] if related else rng.normal(0.0, 0.3, n_genes))
        for g in targets
    }
    control = rng.uniform(3.0, 5.0, size=n_genes)
    means = {"ctrl": control, **{g: control + change[g] for g in targets}}
    return exact_screen(means, eps=1e-4), go, change, targets[: 2 * n_targets // 3]


def test_recovers_planted_structure_for_unseen_unmeasured_genes():
    adata, go, change, train = _planted_go_screen()
    held_out = sorted(set(change) - set(train))  # never perturbed in training, not measured
    assert not set(change) & set(adata.var_names)
    model = LinearGO(adata, go_annotations=go, n_components=4, go_components=4, ridge=1e-8)
    model.fit(train_conditions=train)
    assert model.covers(held_out).all()
    assert model.shrinkage > 0.9  # held-out training genes are predicted well
    truth = np.vstack([change[g] for g in held_out])
    pred = model.predict(held_out).layers["delta"]
    mean = TrainMean(adata).fit(train_conditions=train).predict(held_out).layers["delta"]
    error, mean_error = ((pred - truth) ** 2).sum(), ((mean - truth) ** 2).sum()
    assert error < 0.05 * mean_error
    # a pair is the mean perturbation plus the two predicted deviations
    pair = model.predict(f"{held_out[0]}+{held_out[1]}").layers["delta"][0]
    np.testing.assert_allclose(pair, pred[0] + pred[1] - model.offset, atol=1e-5)


def test_shrinks_to_the_mean_when_go_does_not_predict():
    adata, go, change, train = _planted_go_screen(related=False)
    options = {"go_annotations": go, "n_components": 4, "go_components": 4}
    model = LinearGO(adata, **options).fit(train_conditions=train)
    unshrunk = LinearGO(adata, shrink=False, **options).fit(train_conditions=train)
    assert model.shrinkage < 0.2
    held_out = sorted(set(change) - set(train))
    gap = np.abs(model.predict(held_out).layers["delta"] - model.offset).max()
    unshrunk_gap = np.abs(unshrunk.predict(held_out).layers["delta"] - unshrunk.offset).max()
    assert gap <= model.shrinkage * unshrunk_gap + 1e-6


def test_genes_outside_the_screen_are_placed_by_their_go_terms(tmp_path):
    adata, go, change, train = _planted_go_screen()
    held_out = sorted(set(change) - set(train))
    twin = go[go["gene"] == train[0]].assign(gene="TWIN")  # the GO terms of a screen gene
    no_term = pd.DataFrame({"gene": ["NOTERM"], "term": [np.nan]})  # a row without a term
    annotations = pd.concat([go, twin, no_term], ignore_index=True)
    in_screen = adata.obs["perturbsim_condition"].astype(str).isin(["ctrl", *train]).to_numpy()
    screen = adata[in_screen].copy()  # the held-out genes are neither perturbed nor measured
    options = {"go_annotations": annotations, "n_components": 4, "go_components": 4}
    model = LinearGO(screen, ridge=1e-8, **options).fit()
    assert not set(held_out) & set(model.go_nodes)
    assert model.covers([*held_out, "TWIN"]).all()
    assert not model.covers(["NOTERM"]).any()  # named, but with no term to place it by
    truth = np.vstack([change[g] for g in held_out])
    pred = model.predict(held_out).layers["delta"]
    mean = TrainMean(screen).fit().predict(held_out).layers["delta"]
    assert ((pred - truth) ** 2).sum() < ((mean - truth) ** 2).sum()
    twin_pred, screen_pred = model.predict(["TWIN", train[0]]).layers["delta"]
    np.testing.assert_allclose(twin_pred, screen_pred, atol=1e-8)
    assert np.abs(screen_pred - model.offset).max() > 0.1
    # the screen's genes keep the rows they have without the twin's annotations
    alone = LinearGO(screen, ridge=1e-8, **{**options, "go_annotations": go}).fit()
    np.testing.assert_array_equal(alone.predict(train).X, model.predict(train).X)
    # custom annotations are not saved, so a loaded model covers only its graph's genes
    model.save(tmp_path / "custom")
    loaded = PerturbationModel.load(tmp_path / "custom")
    assert not loaded.covers(held_out).any()
    with pytest.raises(ps.PerturbsimError, match=held_out[0]):
        loaded.predict(held_out[0])


def test_a_placed_gene_is_predicted_alike_whatever_is_asked_with_it(norman):
    ps.pp.split(norman, kind="simulation", seed=3)
    genes = ["HOXA1", "HOXB1", "HOXA4"]  # outside the screen, sharing GO terms
    model = LinearGO(norman).fit()
    assert not set(genes) & set(model.go_nodes)
    each = np.vstack([model.predict(g).layers["delta"] for g in genes])
    again = LinearGO(norman).fit()  # nothing placed yet: all three placed at once
    np.testing.assert_array_equal(again.predict(genes).layers["delta"], each)
    pairs = [again.predict_pairs(genes, gi=False, batch_size=b).X for b in (1, 100)]
    np.testing.assert_array_equal(*pairs)


# -- coverage, determinism, persistence ----------------------------------------------------
@pytest.fixture
def norman_split(norman):
    ps.pp.split(norman, kind="simulation", seed=0)
    return norman


def test_a_fit_shrunk_to_the_mean_is_warned_of(norman, caplog):
    ps.pp.split(norman, kind="simulation", seed=1)
    with caplog.at_level("WARNING", logger="perturbsim"):
        model = LinearGO(norman).fit()  # GO predicts no training perturbation of this split
    assert model.shrinkage == 0
    assert "linear_go: held out gene by gene, its embedding predicts" in caplog.text
    delta = model.predict(["KLF1", "CEBPE"]).layers["delta"]
    np.testing.assert_allclose(delta, np.broadcast_to(model.offset, delta.shape), atol=1e-6)


def test_covers_annotated_genes_measured_or_not(norman_split):
    model = LinearGO(norman_split).fit()
    conditions = list(norman_split.obs["perturbsim_condition"].cat.categories)
    covered = model.covers(conditions)
    # every condition whose genes have a GO annotation; IER5L has none
    expected = ["IER5L" not in ps.pp.genes_of(c) for c in conditions]
    np.testing.assert_array_equal(covered, expected)
    assert model.covers(["KLF1", "CEBPE+KLF1"]).all()  # CRISPRa targets, not measured
    assert "KLF1" not in norman_split.var_names
    with pytest.raises(ps.PerturbsimError, match=r"IER5L, NOT_A_GENE \(no GO annotation") as err:
        model.predict(["KLF1", "IER5L", "NOT_A_GENE"])
    assert "\n" not in str(err.value)
    pred = model.predict(["ctrl", "KLF1"])
    np.testing.assert_allclose(pred.layers["delta"][0], 0.0, atol=1e-6)
    assert np.isfinite(pred.layers["delta"]).all()


def test_fit_is_deterministic(tiny, tiny_go):
    ps.pp.split(tiny, kind="simulation", seed=1)
    first = LinearGO(tiny, go_annotations=tiny_go, seed=1).fit()
    second = LinearGO(tiny, go_annotations=tiny_go.sample(frac=1.0, random_state=3), seed=2)
    second.fit()
    for key, value in first._arrays().items():
        np.testing.assert_array_equal(second._arrays()[key], value)
    assert first.shrinkage == second.shrinkage
    # each eigenvector's entry of largest magnitude is positive
    columns = np.arange(first.go_embedding.shape[1])
    peaks = first.go_embedding[np.abs(first.go_embedding).argmax(axis=0), columns]
    assert (peaks > 0).all()


def test_spectral_embedding_approximates_the_similarity():
    # two triangles joined by one weak edge, a pendant gene and an isolated gene
    src = [0, 1, 0, 3, 4, 3, 2, 5]
    dst = [1, 2, 2, 4, 5, 5, 3, 6]
    weight = [0.9, 0.8, 0.7, 0.9, 0.8, 0.7, 0.2, 0.5]
    graph = GeneGraph(nodes=[f"g{i}" for i in range(8)], src=src, dst=dst, weight=weight)
    similarity = np.eye(8)
    similarity[src, dst] = similarity[dst, src] = weight
    assert np.linalg.eigvalsh(similarity).min() > 0
    full = spectral_embedding(graph, 8)  # all components: exact
    np.testing.assert_allclose(full @ full.T, similarity, atol=1e-10)
    leading = spectral_embedding(graph, 2)
    np.testing.assert_allclose(leading, full[:, :2], atol=1e-12)
    assert spectral_embedding(graph, 20).shape == (8, 8)


def test_save_load_round_trip(norman_split, tmp_path):
    model = LinearGO(norman_split, go_components=12, ridge=0.2, top_k=10).fit()
    queries = ["ctrl", "KLF1", "CBL+CNN1", "TMSB4X"]
    before = model.predict(queries)
    model.save(tmp_path / "model")
    loaded = PerturbationModel.load(tmp_path / "model")
    assert type(loaded) is LinearGO
    assert (loaded.go_components, loaded.ridge, loaded.top_k) == (12, 0.2, 10)
    assert loaded.shrinkage == model.shrinkage
    np.testing.assert_array_equal(loaded.predict(queries).X, before.X)
    np.testing.assert_array_equal(loaded.predict(queries).layers["delta"], before.layers["delta"])
    np.testing.assert_array_equal(loaded.covers(["KLF1", "IER5L", "MYC"]), [True, False, True])
    assert "MYC" not in set(model.go_nodes)  # outside the screen, placed by its GO terms
    np.testing.assert_array_equal(loaded.predict("MYC").X, model.predict("MYC").X)


def test_registered_and_built_by_name(tiny, tiny_go):
    assert MODEL_REGISTRY["linear_go"] is LinearGO
    model = build_model("linear_go", tiny, go_annotations=tiny_go, seed=4)
    assert isinstance(model, LinearGO) and model.seed == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_components": 0}, "n_components must be a whole number >= 1"),
        ({"go_components": 2.5}, "go_components must be a whole number >= 1"),
        ({"top_k": 0}, "top_k must be a whole number >= 1"),
        ({"ridge": -1.0}, "ridge must be a finite number >= 0"),
        ({"ridge": float("nan")}, "ridge must be a finite number >= 0"),
        ({"threshold": -0.1}, "threshold must be a finite number >= 0"),
        ({"threshold": 2}, r"threshold must be below 1 \(edges are kept above it"),
        ({"go_annotations": "go.tsv"}, "go_annotations must be None or a table"),
    ],
)
def test_bad_options_give_one_line_errors(tiny, options, message):
    with pytest.raises(ps.PerturbsimError, match=message) as err:
        LinearGO(tiny, **options)
    assert "\n" not in str(err.value)


def test_annotations_that_cover_nothing(tiny):
    unrelated = pd.DataFrame({"gene": ["NOPE1", "NOPE2"], "term": ["T1", "T1"]})
    with pytest.raises(ps.PerturbsimError, match="none of the .* has a GO annotation"):
        LinearGO(tiny, go_annotations=unrelated).fit()
    with pytest.raises(ps.PerturbsimError, match=r"^no columns \[.term.\] in go_annotations"):
        LinearGO(tiny, go_annotations=unrelated.rename(columns={"term": "go"}))  # when built


def test_a_former_gene_name_is_pointed_to_the_current_one(norman):
    model = ps.models.LinearGO(norman).fit()
    assert model.covers(["MIDEAS"]).all() and not model.covers(["ELMSAN1"]).any()
    with pytest.raises(ps.PerturbsimError, match="did you mean 'MIDEAS'\\? 'ELMSAN1' is a former"):
        model.predict(["ELMSAN1"])


def test_a_fallback_to_the_mean_is_a_warning_alone_and_a_note_inside_the_default(norman, caplog):
    ps.pp.split(norman, seed=1)  # CRISPRa: no training perturbation targets a measured gene
    with caplog.at_level("INFO", logger="perturbsim.models._linear"):
        build_model("linear", norman, seed=0).fit()
    alone = [r for r in caplog.records if "mean training perturbation" in r.getMessage()]
    assert [r.levelname for r in alone] == ["WARNING"]
    caplog.clear()
    with caplog.at_level("INFO", logger="perturbsim.models._linear"):
        build_model("stacked_no_gears", norman, seed=0).fit()
    inside = [r for r in caplog.records if "mean training perturbation" in r.getMessage()]
    assert len(inside) == 2 and {r.levelname for r in inside} == {"INFO"}  # linear, linear_go
    assert all("(a part of stacked_no_gears, which weighs it" in r.getMessage() for r in inside)


def test_predictions_do_not_depend_on_the_order_of_the_genes(norman):
    # the GO graph breaks ties by node order: its measured genes are taken by name
    reversed_genes = norman[:, norman.var_names[::-1]].copy()
    for adata in (norman, reversed_genes):
        ps.pp.setup(adata, perturbation_key="condition", control="control")
        ps.pp.split(adata, kind="simulation", seed=1)
    query = ["KLF1", "KLF1+MAP2K6", "TMSB4X"]
    first, second = (
        LinearGO(adata, shrink=False).fit().predict(query).to_df(layer="delta")
        for adata in (norman, reversed_genes)
    )
    assert np.abs(first).to_numpy().max() > 0.5  # a real change to compare
    pd.testing.assert_frame_equal(second[first.columns], first, atol=1e-9)


def test_an_edge_kept_by_one_gene_only_links_both_ways():
    # B kept A, C kept B (each edge listed once): the similarity is symmetric all the same
    one_way = GeneGraph(nodes=["A", "B", "C"], src=[1, 2], dst=[0, 1], weight=[0.5, 0.8])
    both = GeneGraph(
        nodes=["A", "B", "C"], src=[1, 0, 2, 1], dst=[0, 1, 1, 2], weight=[0.5, 0.5, 0.8, 0.8]
    )
    embedding = spectral_embedding(one_way, 3)
    np.testing.assert_allclose(embedding, spectral_embedding(both, 3))
    similarity = [[1.0, 0.5, 0.0], [0.5, 1.0, 0.8], [0.0, 0.8, 1.0]]
    np.testing.assert_allclose(embedding @ embedding.T, similarity, atol=1e-9)


def test_a_model_of_custom_annotations_loads_without_the_bundled_ones(tmp_path):
    # KLF1 has bundled (human) GO terms but none in the custom table: the model built on
    # that table cannot place it, and neither can the model loaded from its file, which
    # does not fall back to the bundled annotations it was not built with
    adata, go, _, train = _planted_go_screen()
    model = LinearGO(adata, go_annotations=go, n_components=4, go_components=4)
    model.fit(train_conditions=train)
    assert not model.covers(["KLF1"])[0]
    model.save(tmp_path / "custom")
    loaded = PerturbationModel.load(tmp_path / "custom")
    assert not loaded.places_unseen_genes
    assert loaded.covers([train[0], "KLF1"]).tolist() == [True, False]
