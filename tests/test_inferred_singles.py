"""Singles of genes measured only in pairs, inferred from those pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import split_small

import perturbsim as ps
from perturbsim.models._inferred_singles import infer_singles


def vague_prior(genes: list[str], n_genes: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A prior that says nothing: mean 0, variance far above any change."""
    return np.zeros((len(genes), n_genes)), np.full((len(genes), n_genes), 1e12)


def test_a_single_is_the_mean_of_its_pairs_minus_their_measured_partners():
    rng = np.random.default_rng(0)
    a, b, x = (rng.normal(size=8) for _ in range(3))
    interaction = rng.normal(scale=0.1, size=(2, 8))
    pairs = [("A", "X"), ("X", "B"), ("A", "B"), ("A", "X", "Z")]
    changes = np.stack([a + x + interaction[0], b + x + interaction[1], a + b, a + x + 5.0])
    prior_variance = np.full(8, 0.02)

    def prior(genes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((len(genes), 8)), np.broadcast_to(prior_variance, (len(genes), 8))

    inferred = infer_singles(pairs, changes, {"A": a, "B": b}, prior, np.full(8, 0.01))
    # a triple and a pair of measured genes are no use
    assert inferred.n_pairs == {"X": 2}
    # the pairs pin X down whatever its prior: their mean, interactions included
    np.testing.assert_allclose(inferred.changes["X"], x + interaction.mean(axis=0), atol=1e-9)
    # its error variance: two pairs' interactions averaged, whatever the prior
    np.testing.assert_allclose(inferred.variance["X"], 0.01 / 2)
    vague = infer_singles(pairs, changes, {"A": a, "B": b}, vague_prior, np.full(8, 0.01))
    np.testing.assert_allclose(vague.changes["X"], inferred.changes["X"])
    np.testing.assert_allclose(vague.variance["X"], 0.01 / 2)


def test_a_pair_of_two_unmeasured_genes_is_split_between_them_by_their_priors():
    prior_mean = {"X": np.array([1.0, 0.0]), "Y": np.array([0.0, 2.0])}
    prior_variance = {"X": np.array([1.0, 3.0]), "Y": np.array([3.0, 1.0])}

    def prior(genes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        assert genes == ["X", "Y"]
        return np.stack([prior_mean[g] for g in genes]), np.stack(
            [prior_variance[g] for g in genes]
        )

    pair = np.array([5.0, 6.0])
    inferred = infer_singles([("X", "Y")], pair[None], {}, prior, np.zeros(2))
    # noiseless pair: each gene takes its prior's share of what the priors leave of it
    left = pair - prior_mean["X"] - prior_mean["Y"]
    share = prior_variance["X"] / (prior_variance["X"] + prior_variance["Y"])
    np.testing.assert_allclose(inferred.changes["X"], prior_mean["X"] + share * left)
    np.testing.assert_allclose(inferred.changes["Y"], prior_mean["Y"] + (1 - share) * left)
    np.testing.assert_allclose(inferred.changes["X"] + inferred.changes["Y"], pair)
    # what the pair leaves open: the prior's spread along X - Y
    product = prior_variance["X"] * prior_variance["Y"]
    open_spread = product / (prior_variance["X"] + prior_variance["Y"])
    np.testing.assert_allclose(inferred.variance["X"], open_spread)
    np.testing.assert_allclose(inferred.variance["Y"], open_spread)
    assert inferred.n_pairs == {"X": 1, "Y": 1}


def linked_system(n_genes: int = 5) -> dict:
    """Measured A and B; X pinned by two disagreeing routes (A+X, and B+Z through Y, Z);
    V+W a pair of two otherwise unknown genes; A+B of no use."""
    rng = np.random.default_rng(1)
    return {
        "pairs": [("A", "X"), ("X", "Y"), ("Y", "Z"), ("B", "Z"), ("V", "W"), ("A", "B")],
        "changes": rng.normal(size=(6, n_genes)),
        "singles": {"A": rng.normal(size=n_genes), "B": rng.normal(size=n_genes)},
        "means": rng.normal(size=(5, n_genes)),
        "variances": rng.uniform(0.5, 2.0, size=(5, n_genes)),
        "pair_variance": rng.uniform(0.1, 0.3, size=n_genes),
    }


def infer_linked(system: dict):
    return infer_singles(
        system["pairs"],
        system["changes"],
        system["singles"],
        lambda genes: (system["means"], system["variances"]),
        system["pair_variance"],
    )


def test_linked_singles_are_least_squares_where_pinned_and_the_exact_conditional_elsewhere():
    """Against the ``pairs x pairs`` form of the limit: ``K = T A'(A T A')^+``.

    The singles: ``p + K (r - A p)``, which for X, Y, Z (four pairs, three unknowns) is
    the least-squares solution of the additive model whatever the priors. Their
    variances: the estimate's error variance when singles scatter by ``T`` about ``p`` and
    pairs by the pair variance about their sums, ``(I-KA) T (I-KA)' + s K K'``.
    """
    system = linked_system()
    inferred = infer_linked(system)
    unknown = ["V", "W", "X", "Y", "Z"]
    used = system["pairs"][:5]
    design = np.array([[float(u in p) for u in unknown] for p in used])
    singles, changes = system["singles"], system["changes"]
    for g in range(changes.shape[1]):
        prior_cov = np.diag(system["variances"][:, g])
        offset = np.array([sum(singles[x][g] for x in p if x in singles) for p in used])
        residual = changes[:5, g] - offset
        gain = prior_cov @ design.T @ np.linalg.pinv(design @ prior_cov @ design.T)
        expected = system["means"][:, g] + gain @ (residual - design @ system["means"][:, g])
        off = np.eye(5) - gain @ design
        noise = system["pair_variance"][g]
        expected_var = np.diag(off @ prior_cov @ off.T + noise * gain @ gain.T)
        got = np.array([inferred.changes[u][g] for u in unknown])
        got_var = np.array([inferred.variance[u][g] for u in unknown])
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(got_var, expected_var, rtol=1e-7)
        pinned, *_ = np.linalg.lstsq(design[[0, 1, 2, 3]][:, 2:], residual[[0, 1, 2, 3]])
        np.testing.assert_allclose(got[2:], pinned, rtol=1e-7, atol=1e-9)
    assert inferred.n_pairs == {"V": 1, "W": 1, "X": 2, "Y": 2, "Z": 2}


def test_a_chain_of_pairs_joined_late_is_solved_as_one_group():
    # A+B and C+D are two groups until B+C joins them; D+E pins the whole chain down
    rng = np.random.default_rng(5)
    truth = {gene: rng.normal(size=8) for gene in "ABCDE"}
    pairs = [("A", "B"), ("C", "D"), ("B", "C"), ("D", "E")]
    changes = np.stack([truth[a] + truth[b] for a, b in pairs])
    inferred = infer_singles(pairs, changes, {"E": truth["E"]}, vague_prior, np.full(8, 0.01))
    for gene in "ABCD":
        np.testing.assert_allclose(inferred.changes[gene], truth[gene], atol=1e-6)


def test_solving_genes_in_chunks_changes_nothing(monkeypatch):
    system = linked_system(n_genes=7)
    whole = infer_linked(system)
    monkeypatch.setattr(
        "perturbsim.models._inferred_singles.CHUNK_ELEMENTS", 9
    )  # a gene or two at a time
    chunked = infer_linked(system)
    for gene in whole.changes:
        np.testing.assert_allclose(chunked.changes[gene], whole.changes[gene], rtol=1e-12)
        np.testing.assert_allclose(chunked.variance[gene], whole.variance[gene], rtol=1e-12)


def test_without_pairs_of_unmeasured_genes_nothing_is_inferred():
    inferred = infer_singles(
        [("A", "B")], np.ones((1, 3)), {"A": np.zeros(3), "B": np.zeros(3)}, vague_prior, np.ones(3)
    )
    assert inferred.changes == {} and inferred.n_pairs == {} and inferred.variance == {}


@pytest.fixture(scope="module")
def fitted_pairs_only():
    """``small``, whose G0217 is perturbed only in pairs; split seed 3 tests G0217+G0374."""
    adata = split_small("simulation", 3)
    model = ps.models.Stacked(adata, corrections=("linear",)).fit()
    return adata, model


def test_a_pair_with_a_gene_measured_only_in_pairs_is_predicted_from_the_inferred_single(
    fitted_pairs_only,
):
    adata, model = fitted_pairs_only
    assert "G0217" not in set(adata.obs["condition"])  # never perturbed alone
    assert model.inferred["G0217"] == 2  # from G0178+G0217 and G0197+G0217
    data = model.data

    def change(condition: str) -> np.ndarray:
        return data.stats.delta[data.stats.index([condition])[0]].astype(np.float64)

    np.testing.assert_allclose(
        model.singles["G0217"],
        np.mean([change(f"{g}+G0217") - change(g) for g in ("G0178", "G0197")], axis=0),
        atol=1e-9,
    )
    without = ps.models.build_model("stacked_no_inferred", adata, corrections=("linear",)).fit()
    assert without.inferred == {} and "G0217" not in without.singles
    query = "G0217+G0374"
    measured = data.stats.delta[data.stats.index([query])[0]]
    fitted = np.flatnonzero(model._fitted_genes(("G0217", "G0374")))
    top = fitted[np.argsort(-np.abs(measured[fitted]))[:20]]  # its top changes off its targets

    def error(model: ps.models.Stacked) -> float:
        return float(np.mean((model.predict([query]).layers["delta"][0, top] - measured[top]) ** 2))

    assert error(model) < 0.7 * error(without)
    # the inferred single carries its pairs' interactions: it is less certain than a
    # measured single, whose variance is its noise
    variance = model.predict(["G0217"]).layers["variance"][0]
    assert (variance >= model.noise - 1e-9).all() and variance.sum() > 2 * model.noise.sum()


def test_a_refit_without_inference_forgets_the_inferred_singles(fitted_pairs_only):
    adata, _ = fitted_pairs_only
    model = ps.models.Stacked(adata, corrections=("linear",)).fit()
    assert model.inferred
    model.infer_singles = False
    model.fit()
    assert model.inferred == {} and model.inferred_variance == {}
    assert "G0217" not in model.singles


def test_inferred_singles_are_saved_and_loaded(fitted_pairs_only, tmp_path):
    _, model = fitted_pairs_only
    model.save(tmp_path / "stacked")
    loaded = ps.models.PerturbationModel.load(tmp_path / "stacked")
    assert loaded.inferred == model.inferred
    query = ["G0217+G0374", "G0217", "G0027+G0057"]
    for layer in ("delta", "variance"):
        np.testing.assert_array_equal(
            loaded.predict(query).layers[layer], model.predict(query).layers[layer]
        )
    config_path = tmp_path / "stacked" / "config.json"
    config = json.loads(config_path.read_text())
    del config["options"]["infer_singles"], config["options"]["inferred"]  # an older file
    del config["config_sha256"]  # older files have no checksum of their config
    config_path.write_text(json.dumps(config))
    older = ps.models.PerturbationModel.load(tmp_path / "stacked")
    assert older.infer_singles is False and older.inferred == {}


def test_a_file_saved_before_the_posterior_variance_gets_the_pairs_interaction(
    fitted_pairs_only, tmp_path
):
    from perturbsim.models._store import read_model_dir, write_model_dir

    _, model = fitted_pairs_only
    model.save(tmp_path / "stacked")
    config, arrays = read_model_dir(tmp_path / "stacked")
    arrays = {k: v for k, v in arrays.items() if not k.startswith("inferred_variance.")}
    config = {k: v for k, v in config.items() if k not in ("format_version", "weights_sha256")}
    write_model_dir(tmp_path / "stacked", config=config, arrays=arrays, overwrite=True)
    older = ps.models.PerturbationModel.load(tmp_path / "stacked")
    interaction = older._error["combo_seen2"].ratio(np.array(1.0)) * older.gene_scale
    np.testing.assert_allclose(older.inferred_variance["G0217"], interaction / 2)
    assert (older.inferred_variance["G0217"] > 0).any()


def test_a_prior_of_zero_or_tiny_variance_does_not_overrule_the_pairs():
    # "whatever its prior": a gene certain of its prior on some measured genes (variance 0,
    # or merely small in absolute terms) still takes its pairs' mean there
    a = np.array([1.0, 2.0, 3.0])
    x = np.array([0.5, -1.0, 2.0])
    pairs = [("A", "X")]

    def prior(genes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        assert genes == ["X"]
        return np.full((1, 3), 7.0), np.array([[0.0, 1e-13, 1.0]])

    inferred = infer_singles(pairs, (a + x)[None], {"A": a}, prior, np.full(3, 0.01))
    np.testing.assert_allclose(inferred.changes["X"], x, atol=1e-9)
    np.testing.assert_allclose(inferred.variance["X"], 0.01)  # one pair's interaction
