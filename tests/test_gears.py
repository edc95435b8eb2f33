from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import screen_of
from torch import nn

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.models import MODEL_REGISTRY
from perturbsim.models._gears_config import GEARSConfig
from perturbsim.models._store import _config_sha256
from perturbsim.module import GEARSLoss, GEARSNetwork
from perturbsim.pp import PseudobulkStats
from perturbsim.pp._pseudobulk import current_stats
from perturbsim.train import TrainConfig, TrainingPlan
from perturbsim.train._plan import Validation

PAIR = "G0010+G0016"  # the training pair of the tiny screen's split (seed 1)
SINGLE = "G0024"  # a training single
UNSEEN = "G0030"  # an unseen single


@pytest.fixture
def split_tiny(tiny):
    ps.pp.split(tiny, kind="simulation", seed=1)
    return tiny


@pytest.fixture
def gears(split_tiny, tiny_go):
    """GEARS on the split tiny screen with its GO-like terms; options as keyword arguments."""

    def build(**options):
        return ps.GEARS(split_tiny, go_annotations=tiny_go, **{"seed": 0, **options})

    return build


@pytest.fixture(scope="module")
def trained(_tiny_cached):
    adata = _tiny_cached.copy()
    ps.pp.split(adata, kind="simulation", seed=1)
    go = adata.uns["simulation"]["go"]
    return ps.GEARS(adata, seed=0, go_annotations=go).fit(max_epochs=8)


def test_predict_returns_labelled_non_negative_anndata(trained):
    pred = trained.predict([["G0016", "G0010"], [SINGLE], []])
    assert list(pred.obs_names) == [PAIR, SINGLE, "ctrl"]
    assert list(pred.var_names) == list(trained.genes)
    assert (pred.X >= 0).all()
    np.testing.assert_allclose(pred.layers["delta"][2], 0, atol=1e-6)
    np.testing.assert_allclose(pred.X - trained.control_mean, pred.layers["delta"], atol=1e-5)
    assert list(pred.obs["n_targets"]) == [2, 1, 0]
    assert not np.allclose(pred.layers["delta"][0], pred.layers["delta"][1])


def test_history_logs_every_loss_term_and_the_best_epoch(trained):
    history = trained.history
    assert list(history.columns) == [
        "member",
        "epoch",
        "train_loss",
        "autofocus",
        "direction",
        "val_loss",
        "lr",
    ]
    assert len(history) >= 1
    best = trained.results[0].best_epoch
    assert history.loc[history["epoch"] == best, "val_loss"].item() == history["val_loss"].min()
    # the total is the weighted sum of the logged terms
    weight = trained.config.direction_weight
    np.testing.assert_allclose(
        history["train_loss"], history["autofocus"] + weight * history["direction"], rtol=1e-5
    )


def test_ensemble_and_uncertainty_give_variance_and_log_the_uncertainty_term(gears):
    model = gears(n_models=2, uncertainty=True).fit(max_epochs=3)
    pred = model.predict([PAIR, UNSEEN, "ctrl"])
    assert "variance" in pred.layers
    assert (pred.layers["variance"][:2] > 0).all()
    # control is predicted unchanged, with certainty
    assert not pred.layers["delta"][2].any() and not pred.layers["variance"][2].any()
    history = model.history
    assert sorted(history["member"].unique()) == [0, 1]
    assert np.isfinite(history["uncertainty"]).all()


def test_training_and_loading_leave_the_global_torch_rngs_alone(gears, tmp_path, monkeypatch):
    torch.manual_seed(123)
    reseeded = []  # torch.manual_seed would reseed every CUDA generator too, never restored
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)
    before = torch.get_rng_state().clone()
    model = gears().fit(max_epochs=2)
    assert torch.equal(torch.get_rng_state(), before)
    model.save(tmp_path / "model")
    loaded = ps.PerturbationModel.load(tmp_path / "model")  # a network is built to load into
    assert torch.equal(torch.get_rng_state(), before) and reseeded == []
    np.testing.assert_array_equal(
        loaded.predict([[UNSEEN]]).layers["delta"], model.predict([[UNSEEN]]).layers["delta"]
    )


def test_fit_takes_explicit_conditions_and_never_writes_into_adata(gears, split_tiny):
    uns_before = set(split_tiny.uns["perturbsim"])
    obs_before = list(split_tiny.obs.columns)
    model = gears()
    split = ps.pp.Split.from_adata(split_tiny)
    singles = [c for c in split.train if "+" not in c]
    model.fit(train_conditions=singles, max_epochs=2)
    assert set(model.single_changes) == {c for c in singles if c != "ctrl"}
    assert model.results[0].best_loss == model.history["train_loss"].min()  # no validation
    assert model.history["val_loss"].isna().all()  # none recorded, none drawn
    model.fit(max_epochs=2)  # back to the stored split, without a new model
    assert set(model.single_changes) == {c for c in split.train if c.count("+") == 0} - {"ctrl"}
    assert set(split_tiny.uns["perturbsim"]) == uns_before  # no statistics stored
    assert list(split_tiny.obs.columns) == obs_before
    with pytest.raises(PerturbsimError, match=r"not in the screen: \['NOPE'\]"):
        model.fit(train_conditions=["NOPE"])
    with pytest.raises(PerturbsimError, match="no fit option 'epochs'"):
        model.fit(epochs=3)


def test_training_lowers_the_loss_and_fits_training_perturbations(gears):
    def fit_to_training(model):
        stats = model.data.stats
        train = [c for c in model.data.train if c != "ctrl"]
        predicted = model.predict(train).layers["delta"]
        measured = stats.delta[stats.index(train)]
        return np.mean([np.corrcoef(p, m)[0, 1] for p, m in zip(predicted, measured, strict=True)])

    untrained = gears(prior="none", target_prior=False).fit(max_epochs=1)
    model = gears(prior="none", target_prior=False).fit(max_epochs=60, patience=100)
    losses = model.history["train_loss"].to_numpy()
    assert losses[-5:].mean() < 0.9 * losses[0]
    assert fit_to_training(model) > max(0.3, fit_to_training(untrained) + 0.2)


def test_unknown_genes_raise_one_error_listing_them(trained):
    with pytest.raises(
        PerturbsimError, match=r"not in the model's GO graph.*\['NOTAGENE1', 'NOTAGENE2'\]"
    ):
        trained.predict([f"NOTAGENE1+{SINGLE}", "NOTAGENE2"])
    assert trained.covers([SINGLE, "NOTAGENE1"]).tolist() == [True, False]


def test_never_perturbed_gene_on_the_real_screen_is_predicted_through_go(norman):
    ps.pp.split(norman, kind="simulation", seed=1)
    model = ps.GEARS(norman, seed=0).fit(max_epochs=3)  # bundled human GO
    perturbed = {g for c in norman.obs["perturbsim_condition"].cat.categories for g in c.split("+")}
    never = [g for g in model.go_graph.nodes if g in set(norman.var_names) and g not in perturbed]
    pred = model.predict([never[:2], ["KLF1", "MAP2K6"]])
    assert np.isfinite(pred.X).all()
    assert not np.allclose(pred.layers["delta"][0], pred.layers["delta"][1])


def test_a_screen_without_go_annotated_genes_is_warned_of(split_tiny, caplog):
    no_go = pd.DataFrame({"gene": ["NOT_IN_SCREEN"], "term": ["GO:0000001"]})
    with caplog.at_level("WARNING", logger="perturbsim"):
        model = ps.GEARS(split_tiny, seed=0, go_annotations=no_go).fit(max_epochs=1)
    assert "no gene of the screen has a GO annotation" in caplog.text
    # a table was passed: the advice is about that table, not to pass one
    assert "the go_annotations given name none of its genes" in caplog.text
    assert "pass go_annotations" not in caplog.text
    assert model.go_graph.n_edges == 0


def test_deterministic_under_seed(gears):
    a = gears(seed=3).fit(max_epochs=3).predict(PAIR)
    b = gears(seed=3).fit(max_epochs=3).predict(PAIR)
    c = gears(seed=4).fit(max_epochs=3).predict(PAIR)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


def test_a_callers_default_dtype_changes_neither_the_network_nor_the_default(gears):
    first = gears().fit(max_epochs=2).predict(PAIR)
    torch.set_default_dtype(torch.float64)
    try:
        model = gears().fit(max_epochs=2)
        assert torch.get_default_dtype() == torch.float64  # the caller's, kept
    finally:
        torch.set_default_dtype(torch.float32)
    assert {p.dtype for p in model.networks[0].parameters()} == {torch.float32}
    np.testing.assert_array_equal(model.predict(PAIR).X, first.X)


def test_save_load_predict_identical(trained, tmp_path):
    path = tmp_path / "model"
    trained.save(path)
    loaded = ps.GEARS.load(path)
    queries = [PAIR, UNSEEN, "ctrl"]
    np.testing.assert_array_equal(trained.predict(queries).X, loaded.predict(queries).X)
    assert loaded.config == trained.config
    assert loaded.seed == trained.seed
    pd_equal = loaded.history.reset_index(drop=True).equals(trained.history.reset_index(drop=True))
    assert pd_equal
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
    config["options"]["config"]["hidden"] = 32
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PerturbsimError, match="was changed since the model was saved"):
        ps.GEARS.load(path)
    del config["config_sha256"]  # as in files saved before it was kept: checked deeper
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PerturbsimError, match="they hold hidden = 64 where the config gives 32"):
        ps.GEARS.load(path)
    config["options"]["config"]["hiddenn"] = 32
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PerturbsimError, match="unknown GEARS options in the saved config"):
        ps.GEARS.load(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(PerturbsimError, match="not valid JSON"):
        ps.GEARS.load(path)


def test_a_saved_model_is_readable_by_all_and_its_config_checked(trained, tmp_path):
    import os
    import stat

    path = tmp_path / "model"
    mask = os.umask(0o022)
    try:
        trained.save(path)
    finally:
        os.umask(mask)
    for name in ("weights.safetensors", "config.json"):
        assert stat.S_IMODE((path / name).stat().st_mode) == 0o644, name
    saved = json.loads((path / "config.json").read_text())
    edited = {**saved, "genes": saved["genes"][:-1]}
    (path / "config.json").write_text(json.dumps(edited))
    with pytest.raises(PerturbsimError, match="was changed since the model was saved"):
        ps.GEARS.load(path)
    del edited["config_sha256"]  # an older file: no checksum of its config
    (path / "config.json").write_text(json.dumps(edited))
    with pytest.raises(
        PerturbsimError, match=r"array 'control_mean' has shape \(70,\) where \(69,\) is due"
    ):
        ps.GEARS.load(path)
    (path / "config.json").write_text(json.dumps({**edited, "model": ["gears"]}))
    with pytest.raises(PerturbsimError, match=r"unknown model type \['gears'\]"):
        ps.GEARS.load(path)
    newer = {**saved, "format_version": 2}
    (path / "config.json").write_text(json.dumps(newer))
    with pytest.raises(
        PerturbsimError, match=r"newer perturbsim \(model format 2\).*reads format 1"
    ):
        ps.GEARS.load(path)
    # saved by another version, its checksum intact: an option this one does not read
    other = {**saved, "options": {**saved["options"], "future_option": True}}
    other["config_sha256"] = _config_sha256(other)
    (path / "config.json").write_text(json.dumps(other))
    with pytest.raises(PerturbsimError, match=r"options this version .* \(future_option\)"):
        ps.GEARS.load(path)
    unchecked = {k: v for k, v in saved.items() if k not in ("weights_sha256", "config_sha256")}
    (path / "config.json").write_text(json.dumps(unchecked))
    with pytest.raises(PerturbsimError, match="records no checksum of the weights"):
        ps.GEARS.load(path)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"hidden": 10**9}, r"network 0 .* hold hidden = \d+ where the config gives 1000000000"),
        ({"n_gene_layers": 10**6}, r"hold n_gene_layers = 1 where the config gives 1000000 "),
        ({"n_pert_layers": 0}, r"hold n_pert_layers = 1 where the config gives 0 "),
        ({"n_models": 2}, r"hold no network 1, which the config.s n_models = 2 asks for"),
    ],
)
def test_network_weights_are_checked_against_an_edited_config_before_it_is_built(
    trained, tmp_path, edit, expected
):
    """A network of 10**9 hidden units would take terabytes: its sizes read from its weights."""
    path = tmp_path / "model"
    trained.save(path)
    saved = json.loads((path / "config.json").read_text())
    del saved["config_sha256"]  # a hand edit: no checksum of the config to refuse it
    saved["options"]["config"].update(edit)
    (path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(PerturbsimError, match=expected):
        ps.GEARS.load(path)


def test_networks_beyond_an_edited_n_models_are_refused_not_dropped(gears, tmp_path):
    path = tmp_path / "model"
    gears(n_models=2).fit(max_epochs=1).save(path)
    saved = json.loads((path / "config.json").read_text())
    del saved["config_sha256"]
    saved["options"]["config"]["n_models"] = 1  # its second network would go unread
    (path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(PerturbsimError, match=r"hold net1, beyond the config's n_models = 1"):
        ps.GEARS.load(path)


def test_a_network_class_reads_the_sizes_of_its_own_weights(trained, tmp_path, monkeypatch):
    path = tmp_path / "model"
    trained.save(path)
    # a subclass naming its weights otherwise says so: its reading is the one asked
    sizes = {"hidden": 7, "n_gene_layers": 1, "n_pert_layers": 1}
    monkeypatch.setattr(ps.GEARS.network_class, "saved_sizes", staticmethod(lambda state: sizes))
    with pytest.raises(PerturbsimError, match="they hold hidden = 7 where the config gives"):
        ps.GEARS.load(path)
    sizes["hidden"] = None
    with pytest.raises(PerturbsimError, match="network 0 weights lack what gives its hidden"):
        ps.GEARS.load(path)


def test_load_checks_gene_match(trained, tmp_path, tiny):
    path = tmp_path / "model"
    trained.save(path)
    with pytest.raises(PerturbsimError, match="do not match"):
        ps.GEARS.load(path, adata=tiny[:, :10].copy())


def test_additive_residual_uses_measured_singles(gears):
    model = gears(additive_residual=True).fit(max_epochs=3)
    stats = model.data.stats
    measured = stats.delta[stats.index([SINGLE])[0]]
    pred = model.predict(SINGLE)
    np.testing.assert_allclose(
        pred.layers["delta"][0],
        np.clip(measured + model.control_mean, 0, None) - model.control_mean,
        atol=1e-5,
    )


@pytest.mark.parametrize("gamma", [1.0, 4.0])  # odd; even beyond the moments kept (4)
def test_exponents_without_a_moment_expansion_train_on_sampled_cells(gears, gamma):
    model = gears(gamma=gamma, max_cells_per_condition=16)
    assert {len(v) for v in model.cells.values()} == {16}
    model.fit(max_epochs=6, patience=100)
    losses = model.history["train_loss"].to_numpy()
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert np.isfinite(model.predict(PAIR).X).all()


def test_sample_gives_cells_whose_mean_is_the_prediction(trained, split_tiny):
    cells = trained.sample([PAIR, "ctrl"], split_tiny, n_cells=50, seed=0)
    assert cells.shape == (100, split_tiny.n_vars)
    assert list(cells.obs["perturbation"].cat.categories) == [PAIR, "ctrl"]
    assert (cells.X >= 0).all()
    predicted = trained.predict([PAIR, "ctrl"]).X
    for row, label in enumerate([PAIR, "ctrl"]):
        sampled = cells[cells.obs["perturbation"] == label].X.mean(axis=0)
        np.testing.assert_allclose(sampled, predicted[row], atol=1e-5)
    again = trained.sample([PAIR, "ctrl"], split_tiny, n_cells=50, seed=0)
    np.testing.assert_array_equal(cells.X, again.X)
    with pytest.raises(PerturbsimError, match="do not match"):
        trained.sample(SINGLE, split_tiny[:, :10].copy())


def test_bad_options_are_clear_errors(split_tiny):
    with pytest.raises(
        PerturbsimError, match="^device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu9'"
    ):
        ps.GEARS(split_tiny, device="tpu9")
    with pytest.raises(PerturbsimError, match="prior must be"):
        ps.GEARS(split_tiny, prior="median")
    with pytest.raises(PerturbsimError, match="n_models must be"):
        ps.GEARS(split_tiny, n_models=0)
    with pytest.raises(PerturbsimError, match=re.escape("cold_start must lie in [0, 1), got 1.0")):
        ps.GEARS(split_tiny, cold_start=1.0)
    with pytest.raises(PerturbsimError, match="GEARS has no option 'hiden'"):
        ps.GEARS(split_tiny, hiden=8)
    with pytest.raises(PerturbsimError) as err:  # the reference's name: told ours and the rest
        ps.GEARS(split_tiny, hidden_size=8)
    assert str(err.value).startswith(
        "GEARS has no option 'hidden_size'; did you mean 'hidden'? (its options: go_annotations,"
    )
    for option in ("go_threshold", "coexpr_threshold"):
        with pytest.raises(PerturbsimError, match=rf"^{option} must be below 1 \("):
            ps.GEARS(split_tiny, **{option: 1.0})
        # a model saved with one before the check was made still loads as saved
        assert getattr(GEARSConfig.from_dict({option: 1.0}), option) == 1.0
    for device in ("mps", "meta", None):  # devices the network is not written for
        with pytest.raises(PerturbsimError, match=r"^device must be 'auto', 'cpu', 'cuda' or"):
            ps.GEARS(split_tiny, device=device)
    for option, value, message in (  # checked, never coerced
        ("direction_weight", float("nan"), "direction_weight must be a finite number >= 0"),
        ("hidden", 1.7, "hidden must be a whole number >= 1, got 1.7"),
        ("uncertainty", "no", "uncertainty must be True or False, got 'no'"),
        ("n_gene_layers", -1, "n_gene_layers must be a whole number >= 0, got -1"),
    ):
        with pytest.raises(PerturbsimError, match=f"^{re.escape(message)}"):
            ps.GEARS(split_tiny, **{option: value})
    if not torch.cuda.is_available():
        with pytest.raises(PerturbsimError, match="no CUDA device"):
            ps.GEARS(split_tiny, device="cuda")


def test_network_loss_and_plan_are_swappable_class_attributes(split_tiny, tiny_go):
    class Recording(TrainingPlan):
        runs = 0

        def run(self, *args, **kwargs):
            Recording.runs += 1
            return super().run(*args, **kwargs)

    class Network(GEARSNetwork):
        built = 0

        def __init__(self, *args, **kwargs):
            Network.built += 1
            super().__init__(*args, **kwargs)

    class Loss(GEARSLoss):
        calls = 0

        def __call__(self, *args, **kwargs):
            Loss.calls += 1
            return super().__call__(*args, **kwargs)

    class Custom(ps.GEARS):
        name = "gears_recording_test"
        plan_class = Recording
        network_class = Network
        loss_class = Loss

    try:
        model = Custom(split_tiny, go_annotations=tiny_go, n_models=2).fit(max_epochs=1)
    finally:
        MODEL_REGISTRY.pop(Custom.name)
    assert Recording.runs == 2 and Network.built == 2 and Loss.calls > 0
    assert all(isinstance(network, Network) for network in model.networks)


@pytest.mark.slow
def test_target_prior_predicts_unseen_singles_better():
    adata = ps.ds.simulate(size="small", seed=0)
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    go = adata.uns["simulation"]["go"]
    models = {
        "with": lambda a, **kw: ps.GEARS(a, go_annotations=go, **kw),
        "without": lambda a, **kw: ps.GEARS(a, go_annotations=go, target_prior=False, **kw),
    }
    # the prior is about the targets' own change: score with the targets kept
    result = ps.tl.evaluate(
        adata,
        models=models,
        seeds=3,
        metrics=["pearson_delta_de", "nmse_de"],
        exclude_targets=False,
    )
    summary = result.summary()
    unseen = summary[summary["subgroup"] == "unseen_single"].set_index(["model", "metric"])
    score = unseen["mean"]
    assert score["with", "pearson_delta_de"] > score["without", "pearson_delta_de"] + 0.1
    assert score["with", "nmse_de"] < score["without", "nmse_de"]


def test_target_prior_raises_crispra_targets(gears):
    model = gears().fit(max_epochs=1)
    no_prior = gears(target_prior=False).fit(max_epochs=1)
    assert model.target_effect.shape == (len(model.genes),)
    assert no_prior.target_effect.size == 0
    # the simulated screen is CRISPRa: a target expressed at all is predicted to rise
    expressed = model.control_mean > 0.5
    assert (model.target_effect[expressed] > 0).all()
    column = next(i for i in np.flatnonzero(expressed) if model.covers(model.genes[i])[0])
    pred = model.predict(str(model.genes[column])).layers["delta"][0]
    assert pred[column] > 0.5 * model.target_effect[column]


def test_cold_start_is_deterministic_and_untrained_embeddings_are_unused(gears, split_tiny):
    first = gears(seed=3, cold_start=0.5).fit(max_epochs=4)
    again = gears(seed=3, cold_start=0.5).fit(max_epochs=4)
    queries = [UNSEEN, "G0030+G0067"]
    np.testing.assert_array_equal(first.predict(queries).X, again.predict(queries).X)
    network = first.networks[0]
    # the trained genes and their GO relays are known; embeddings training never reaches are not
    trained = {g for c in first.data.train for g in ps.pp.genes_of(c)}
    known = network.pert_known.numpy()
    assert known[first.go_graph.node_index(sorted(trained))].all()
    assert 0 < known.sum() < len(known)
    with torch.no_grad():
        network.pert_emb[torch.as_tensor(~known)] += 5.0
    np.testing.assert_allclose(first.predict(queries).X, again.predict(queries).X, atol=1e-6)


def test_without_a_go_layer_genes_never_perturbed_are_flagged_unsupported():
    # with no GO layer nothing carries a GO tie to a gene never perturbed: every such gene
    # is predicted alike, which its support (0) and the unsupported flag now say
    adata = ps.ds.simulate(size="tiny", seed=111)
    ps.pp.setup(adata)
    ps.pp.split(adata, kind="simulation", seed=111)
    go = adata.uns["simulation"]["go"]
    model = ps.GEARS(adata, go_annotations=go, hidden=16, n_pert_layers=0, seed=5)
    model.fit(max_epochs=2)
    measured = sorted(model.single_changes)[0]
    never = [g for g in ("G0014", "G0024") if g not in model.single_changes]
    assert never
    pred = model.predict([*never, measured])
    assert pred.obs["unsupported"].tolist() == [True] * len(never) + [False]
    assert pred.obs["support"].tolist() == [0.0] * len(never) + [1.0]
    with_layer = ps.GEARS(adata, go_annotations=go, hidden=16, seed=5).fit(max_epochs=2)
    assert with_layer.predict(never).obs["support"].gt(0).any()  # GO ties them otherwise


def test_the_history_of_a_model_not_yet_fitted_is_refused_in_one_line(split_tiny):
    with pytest.raises(PerturbsimError, match="^gears is not fitted: call .fit"):
        ps.GEARS(split_tiny, hidden=16).history  # noqa: B018  (a property read for its error)


# -- the training plan --------------------------------------------------------------------
def _plan_screen() -> tuple[PseudobulkStats, TrainingPlan]:
    """Stats of control (6 cells), A (1 cell) and B (6 cells) over 6 genes, and a plan."""
    rng = np.random.default_rng(0)
    sizes = {"ctrl": 6, "A": 1, "B": 6}
    labels = [label for label, n in sizes.items() for _ in range(n)]
    x = np.log1p(rng.poisson(5.0, size=(len(labels), 6)).astype(np.float64))
    x[[i for i, label in enumerate(labels) if label == "B"], :3] += 2.0
    adata = screen_of(x, labels, [f"G{i}" for i in range(6)])
    plan = TrainingPlan(GEARSLoss(), cold_start=0.0, device=torch.device("cpu"))
    return current_stats(adata), plan


def test_a_condition_of_one_cell_has_no_direction_target():
    # its Welch t is undefined (no variance of one cell): direction 0, not NaN
    stats, plan = _plan_screen()
    direction = plan.loss_inputs(stats, ["A", "B"]).direction.numpy()
    assert (direction[0] == 0).all()
    assert np.isfinite(direction).all() and (direction[1, :3] > 0.5).all()


def test_batch_loss_reads_the_inputs_of_its_rows():
    stats, plan = _plan_screen()
    sets = [("A",), ("B",)]
    inputs = plan.loss_inputs(stats, ["A", "B"])
    effect = torch.tensor(np.random.default_rng(1).normal(size=(2, 6)), dtype=torch.float32)
    table = {("A",): effect[0], ("B",): effect[1]}

    def forward(network, given, drop=None):
        return torch.stack([table[s] for s in given]), None

    rows = np.array([1, 0])
    terms = plan.batch_loss(nn.Linear(1, 1), forward, sets, inputs, rows, torch.Generator())
    expected = plan.loss(
        effect[rows],
        None,
        mask=inputs.mask[rows],
        diff_moments=inputs.diff[:, rows],
        direction=inputs.direction[rows],
    )
    assert float(terms.total) == pytest.approx(float(expected.total))
    assert float(terms.direction) == pytest.approx(float(expected.direction))


def test_cold_start_hides_about_its_fraction_of_the_nodes():
    stats, _ = _plan_screen()
    plan = TrainingPlan(GEARSLoss(), cold_start=0.2, device=torch.device("cpu"))
    inputs = plan.loss_inputs(stats, ["A", "B"])
    network = nn.Linear(1, 1)
    network.n_perts = 5000
    drops = []

    def forward(network, given, drop=None):
        drops.append(drop)
        return torch.zeros(len(given), 6), None

    generator = torch.Generator().manual_seed(0)
    plan.batch_loss(network, forward, [("A",), ("B",)], inputs, np.array([0, 1]), generator)
    assert drops[0].shape == (5000,)
    assert float(drops[0].float().mean()) == pytest.approx(0.2, abs=0.03)


def test_validation_error_averages_each_condition_s_top_genes_without_padding():
    effect = torch.tensor([[1.0, 2.0, 3.0], [0.0, 7.0, 0.0], [5.0, 5.0, 5.0]])
    target = torch.tensor([[0.0, 0.0, 0.0], [0.0, 7.0, 0.0], [0.0, 0.0, 0.0]])
    de = torch.tensor([[0, 2], [1, -1], [-1, -1]])  # -1: fewer top genes than asked
    validation = Validation(sets=[("A",), ("B",), ("C",)], target=target, de=de)
    # (1 + 9) / 2 on genes 0 and 2; 0 on gene 1; a condition of no top gene counts 0
    assert TrainingPlan.validation_error(effect, validation) == pytest.approx(5.0 / 3.0)


def test_the_validation_pass_predicts_the_validation_sets_in_their_order():
    stats, plan = _plan_screen()
    validation = plan.validation(stats, ["A", "B"])
    network = nn.Linear(1, 1)
    truth = dict(zip(validation.sets, validation.target, strict=True))

    def forward(network, given, drop=None):
        exact = torch.stack([truth[s] for s in given])
        return exact + 0.0 * network.weight.sum(), None

    result = plan.run(
        network,
        forward,
        train_sets=[("A",), ("B",)],
        inputs=plan.loss_inputs(stats, ["A", "B"]),
        validation=validation,
        config=TrainConfig(max_epochs=2, batch_size=2),
        generator=torch.Generator().manual_seed(0),
        desc="test",
    )
    assert [entry["val_loss"] for entry in result.history] == [0.0, 0.0]
