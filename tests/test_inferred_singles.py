"""Singles of genes measured only in pairs, inferred from those pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import split_small

import perturbsim as ps
from perturbsim.models._inferred_singles import infer_singles


def test_a_single_is_the_mean_of_its_pairs_minus_their_measured_partners():
    rng = np.random.default_rng(0)
    a, b, x = (rng.normal(size=8) for _ in range(3))
    interaction = rng.normal(scale=0.1, size=(2, 8))
    pairs = [("A", "X"), ("X", "B"), ("X", "Y"), ("A", "B"), ("A", "X", "Z")]
    changes = np.stack([a + x + interaction[0], b + x + interaction[1], x, a + b, a + x + 5.0])
    inferred = infer_singles(pairs, changes, {"A": a, "B": b})
    # Y's one pair has no measured partner; a triple and a pair of measured genes are no use
    assert inferred.n_pairs == {"X": 2}
    np.testing.assert_allclose(inferred.changes["X"], x + interaction.mean(axis=0))


def test_without_measured_partners_nothing_is_inferred():
    inferred = infer_singles([("X", "Y")], np.ones((1, 3)), {})
    assert inferred.changes == {} and inferred.n_pairs == {}


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
    known = data.perturbed(data.train + data.val)
    denoised = dict(zip(known, data.denoised_changes(known), strict=True))
    np.testing.assert_allclose(
        model.singles["G0217"],
        np.mean([denoised[f"{g}+G0217"] - denoised[g] for g in ("G0178", "G0197")], axis=0),
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
    assert model.inferred == {} and "G0217" not in model.singles


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
    config_path.write_text(json.dumps(config))
    older = ps.models.PerturbationModel.load(tmp_path / "stacked")
    assert older.infer_singles is False and older.inferred == {}
