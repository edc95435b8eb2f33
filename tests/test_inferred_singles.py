"""Singles of genes measured only in pairs, inferred from those pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

import perturbsim as ps
from perturbsim.models._inferred_singles import infer_singles


def test_a_single_is_the_mean_of_its_pairs_minus_their_measured_partners():
    rng = np.random.default_rng(0)
    a, b, x = (rng.normal(size=8) for _ in range(3))
    interaction = rng.normal(scale=0.1, size=(2, 8))
    pairs = [("A", "X"), ("B", "X"), ("X", "Y"), ("A", "B"), ("A", "X", "Z")]
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
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    ps.pp.split(adata, kind="simulation", seed=3)
    model = ps.models.Stacked(adata, corrections=("linear",)).fit()
    return adata, model


def test_a_pair_with_a_gene_measured_only_in_pairs_is_predicted_from_the_inferred_single(
    fitted_pairs_only,
):
    adata, model = fitted_pairs_only
    assert "G0217" not in set(adata.obs["condition"])  # never perturbed alone
    assert model.inferred["G0217"] == 2  # from G0178+G0217 and G0197+G0217
    without = ps.models.Stacked(adata, corrections=("linear",), infer_singles=False).fit()
    assert without.inferred == {}
    query = "G0217+G0374"
    measured = adata[adata.obs["condition"] == query].X.mean(axis=0) - adata[
        adata.obs["condition"] == "control"
    ].X.mean(axis=0)
    measured = np.asarray(measured).ravel()
    top = np.argsort(-np.abs(measured))[2:22]  # beyond the pair's own two targets, roughly

    def error(model: ps.models.Stacked) -> float:
        return float(np.mean((model.predict([query]).layers["delta"][0, top] - measured[top]) ** 2))

    assert error(model) < 0.7 * error(without)
    # the inferred single carries its pairs' interactions: it is less certain than a
    # measured single, whose variance is its noise
    variance = model.predict(["G0217"]).layers["variance"][0]
    assert (variance >= model.noise - 1e-9).all() and variance.sum() > 2 * model.noise.sum()


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
