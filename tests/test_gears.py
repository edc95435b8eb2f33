from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.cli import main


@pytest.fixture
def split_norman(norman):
    ps.pp.split(norman, kind="simulation", seed=1)
    return norman


@pytest.fixture
def trained(split_norman):
    return ps.GEARS(split_norman, seed=0).train(max_epochs=8)


def test_predict_returns_labelled_non_negative_anndata(trained, split_norman):
    pred = trained.predict([["MAP2K6", "KLF1"], ["KLF1"], []])
    assert list(pred.obs_names) == ["KLF1+MAP2K6", "KLF1", "ctrl"]
    assert list(pred.var_names) == list(split_norman.var_names)
    assert (pred.X >= 0).all()
    np.testing.assert_allclose(pred.layers["delta"][2], 0, atol=1e-6)
    control = trained.control_mean
    np.testing.assert_allclose(pred.X - control, pred.layers["delta"], atol=1e-5)
    assert list(pred.obs["n_targets"]) == [2, 1, 0]
    assert not np.allclose(pred.layers["delta"][0], pred.layers["delta"][1])


def test_history_and_best_epoch(trained):
    history = trained.history
    assert list(history.columns) == ["model", "epoch", "train_loss", "val_loss", "lr"]
    assert len(history) >= 1
    best = trained.results[0].best_epoch
    assert history.loc[history["epoch"] == best, "val_loss"].item() == history["val_loss"].min()


def test_training_lowers_the_loss_and_fits_training_perturbations(split_norman):
    def fit_to_training(model):
        stats = model.data.stats
        train = [c for c in model.data.train if c != "ctrl"]
        predicted = model.predict(train).layers["delta"]
        measured = stats.delta[stats.index(train)]
        return np.mean([np.corrcoef(p, m)[0, 1] for p, m in zip(predicted, measured, strict=True)])

    untrained = ps.GEARS(split_norman, seed=0, prior="none").train(max_epochs=1)
    model = ps.GEARS(split_norman, seed=0, prior="none").train(max_epochs=40, patience=100)
    losses = model.history["train_loss"].to_numpy()
    assert losses[-5:].mean() < 0.9 * losses[0]
    assert fit_to_training(model) > max(0.3, fit_to_training(untrained) + 0.2)


def test_unknown_genes_raise_one_error_listing_them(trained):
    with pytest.raises(PerturbsimError, match=r"not in the GO graph.*\['NOTAGENE1', 'NOTAGENE2'\]"):
        trained.predict(["NOTAGENE1+KLF1", "NOTAGENE2"])
    assert trained.covers(["KLF1", "NOTAGENE1"]).tolist() == [True, False]


def test_unseen_measured_gene_with_go_terms_is_predictable(trained, split_norman):
    never_perturbed = [g for g in split_norman.var_names if g in set(trained.go_graph.nodes)][:2]
    pred = trained.predict([never_perturbed])
    assert np.isfinite(pred.X).all()


def test_deterministic_under_seed(split_norman):
    a = ps.GEARS(split_norman, seed=3).train(max_epochs=3).predict("KLF1+MAP2K6")
    b = ps.GEARS(split_norman, seed=3).train(max_epochs=3).predict("KLF1+MAP2K6")
    c = ps.GEARS(split_norman, seed=4).train(max_epochs=3).predict("KLF1+MAP2K6")
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


def test_save_load_predict_identical(trained, tmp_path, split_norman):
    path = tmp_path / "model"
    trained.save(path)
    loaded = ps.GEARS.load(path, adata=split_norman)
    queries = ["KLF1+MAP2K6", "FOXO4", "ctrl"]
    np.testing.assert_array_equal(trained.predict(queries).X, loaded.predict(queries).X)
    assert len(loaded.history) == len(trained.history)
    with pytest.raises(PerturbsimError, match="already exists"):
        trained.save(path)
    trained.save(path, overwrite=True)


def test_tampered_or_truncated_model_fails_clearly(trained, tmp_path):
    path = tmp_path / "model"
    trained.save(path)
    weights = path / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(PerturbsimError, match="tampered or truncated"):
        ps.GEARS.load(path)
    trained.save(path, overwrite=True)
    config = json.loads((path / "config.json").read_text())
    config["options"]["hidden"] = 32
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PerturbsimError, match="do not fit its config"):
        ps.GEARS.load(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(PerturbsimError, match="not valid JSON"):
        ps.GEARS.load(path)


def test_load_checks_gene_match(trained, tmp_path, split_norman):
    path = tmp_path / "model"
    trained.save(path)
    other = split_norman[:, :100].copy()
    with pytest.raises(PerturbsimError, match="do not match"):
        ps.GEARS.load(path, adata=other)


def test_ensemble_and_uncertainty_give_variance(split_norman):
    model = ps.GEARS(split_norman, seed=0, n_models=2, uncertainty=True).train(max_epochs=3)
    pred = model.predict(["KLF1+MAP2K6", "TMSB4X"])
    assert "variance" in pred.layers
    assert (pred.layers["variance"] > 0).all()


def test_additive_residual_uses_measured_singles(split_norman):
    split = ps.pp.Split.from_adata(split_norman)
    single = next(c for c in split.train if "+" not in c and c != "ctrl")
    model = ps.GEARS(split_norman, seed=0, additive_residual=True).train(max_epochs=3)
    stats = model.data.stats
    measured = stats.delta[stats.index([single])[0]]
    pred = model.predict(single)
    np.testing.assert_allclose(
        pred.layers["delta"][0],
        np.clip(measured + model.control_mean, 0, None) - model.control_mean,
        atol=1e-5,
    )


def test_odd_exponent_trains_on_sampled_cells(split_norman):
    model = ps.GEARS(split_norman, seed=0, gamma=1.0, max_cells_per_condition=32)
    assert {len(v) for k, v in model.cells.items()} == {32}
    model.train(max_epochs=4, patience=100)
    losses = model.history["train_loss"].to_numpy()
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert np.isfinite(model.predict("KLF1+MAP2K6").X).all()


def test_cli_train_and_predict(tmp_path, capsys):
    data = tmp_path / "norman.h5ad"
    raw = ps.ds.norman2019_subset()
    raw.obs = raw.obs[["condition"]]
    del raw.uns["perturbsim"]
    raw.write_h5ad(data)
    model_dir = tmp_path / "model"
    assert (
        main(
            [
                "--no-progress",
                "train",
                str(data),
                "--out",
                str(model_dir),
                "--epochs",
                "3",
                "--control",
                "control",
            ]
        )
        == 0
    )
    out = tmp_path / "pred.csv"
    assert (
        main(["--no-progress", "predict", str(model_dir), "KLF1+MAP2K6", "KLF1", "--out", str(out)])
        == 0
    )
    text = out.read_text().splitlines()
    assert text[1].startswith("KLF1+MAP2K6,") and text[2].startswith("KLF1,")
    assert main(["predict", str(model_dir), "NOTAGENE", "--out", str(out)]) == 2
    assert "not in the GO graph" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    data = tmp_path / "norman.h5ad"
    ps.ds.norman2019_subset().write_h5ad(data)
    code = main(
        ["train", str(data), "--out", str(tmp_path / "m"), "--go", str(tmp_path / "no.tsv")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no.tsv' not found" in err
    assert main(["train", str(data), "--out", str(tmp_path / "m"), "--control", "nope"]) == 2
    assert "'nope' not found" in capsys.readouterr().err
    assert main(["train", str(data), "--out", str(tmp_path / "m"), "--split", "custom"]) == 2
    assert "--test FILE" in capsys.readouterr().err


def test_sample_gives_control_cells_plus_the_predicted_change(trained, split_norman):
    cells = trained.sample(["KLF1+MAP2K6", "ctrl"], split_norman, n_cells=50, seed=0)
    assert cells.shape == (100, split_norman.n_vars)
    assert list(cells.obs["perturbation"].cat.categories) == ["KLF1+MAP2K6", "ctrl"]
    assert (cells.X >= 0).all()
    control = split_norman[split_norman.obs["perturbsim_condition"] == "ctrl"].X.toarray()
    ctrl_cells = cells[cells.obs["perturbation"] == "ctrl"].X
    assert all(np.abs(control - row).max(axis=1).min() < 1e-5 for row in ctrl_cells)
    again = trained.sample(["KLF1+MAP2K6", "ctrl"], split_norman, n_cells=50, seed=0)
    np.testing.assert_array_equal(cells.X, again.X)
    with pytest.raises(PerturbsimError, match="do not match"):
        trained.sample("KLF1", split_norman[:, :10].copy())


def test_bad_options_are_clear_errors(split_norman):
    with pytest.raises(PerturbsimError, match="unknown device 'tpu9'"):
        ps.GEARS(split_norman, device="tpu9")
    with pytest.raises(PerturbsimError, match="prior must be"):
        ps.GEARS(split_norman, prior="median")
    with pytest.raises(PerturbsimError, match="n_models must be"):
        ps.GEARS(split_norman, n_models=0)
    if not torch.cuda.is_available():
        with pytest.raises(PerturbsimError, match="no CUDA device"):
            ps.GEARS(split_norman, device="cuda")


@pytest.fixture(scope="module")
def small_screen():
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    ps.pp.split(adata, kind="simulation", seed=1)
    return adata


def test_target_prior_predicts_unseen_singles_better(small_screen):
    go = small_screen.uns["simulation"]["go"]
    models = {
        "with": lambda a, **kw: ps.GEARS(a, go_annotations=go, **kw),
        "without": lambda a, **kw: ps.GEARS(a, go_annotations=go, target_prior=False, **kw),
    }
    result = ps.tl.evaluate(
        small_screen, models=models, seeds=3, metrics=["pearson_delta_de", "nmse_de"]
    )
    summary = result.summary()
    unseen = summary[summary["subgroup"] == "unseen_single"].set_index(["model", "metric"])
    score = unseen["mean"]
    assert score["with", "pearson_delta_de"] > score["without", "pearson_delta_de"] + 0.1
    assert score["with", "nmse_de"] < score["without", "nmse_de"]


def test_target_prior_raises_crispra_targets(small_screen):
    go = small_screen.uns["simulation"]["go"]
    model = ps.GEARS(small_screen, seed=0, go_annotations=go).train(max_epochs=1)
    no_prior = ps.GEARS(small_screen, seed=0, go_annotations=go, target_prior=False)
    no_prior.train(max_epochs=1)
    assert model.target_effect.shape == (small_screen.n_vars,)
    assert no_prior.target_effect.size == 0
    # the simulated screen is CRISPRa: a target expressed at all is predicted to rise
    expressed = model.control_mean > 0.5
    assert (model.target_effect[expressed] > 0).all()
    column = next(i for i in np.flatnonzero(expressed) if model.covers(model.genes[i])[0])
    pred = model.predict(str(model.genes[column])).layers["delta"][0]
    assert pred[column] > 0.5 * model.target_effect[column]


def test_cold_start_is_deterministic_and_untrained_embeddings_are_unused(small_screen):
    go = small_screen.uns["simulation"]["go"]
    first = ps.GEARS(small_screen, seed=3, go_annotations=go, cold_start=0.5).train(max_epochs=4)
    again = ps.GEARS(small_screen, seed=3, go_annotations=go, cold_start=0.5).train(max_epochs=4)
    unseen = ps.pp.Split.from_adata(small_screen).subgroups["unseen_single"]
    unseen = [c for c in unseen if first.covers(c)[0]]
    np.testing.assert_array_equal(first.predict(unseen).X, again.predict(unseen).X)
    network = first.networks[0]
    # the trained genes and their GO relays are known; embeddings training never reaches are not
    trained = {g for c in first.data.train for g in ps.pp.genes_of(c)}
    known = network.pert_known.numpy()
    assert known[first.go_graph.node_index(sorted(trained))].all()
    assert 0 < known.sum() < len(known)
    with torch.no_grad():
        network.pert_emb[torch.as_tensor(~known)] += 5.0
    np.testing.assert_allclose(first.predict(unseen).X, again.predict(unseen).X, atol=1e-6)
    with pytest.raises(PerturbsimError, match="cold_start must be"):
        ps.GEARS(small_screen, cold_start=1.0)
