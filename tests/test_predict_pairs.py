"""Every single and pair of a gene set: predict_pairs and ``perturbsim gi``."""

from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import perturbsim as ps
from perturbsim.cli import main
from perturbsim.pp._gi import gi_scores


@pytest.fixture(scope="module")
def gears(_tiny_cached) -> ps.GEARS:
    """GEARS with an uncertainty head (so predictions carry a variance), 2 epochs."""
    progress, ps.settings.progress = ps.settings.progress, False
    try:
        go = _tiny_cached.uns["simulation"]["go"]
        model = ps.GEARS(_tiny_cached, seed=0, go_annotations=go, uncertainty=True)
        return model.fit(max_epochs=2)
    finally:
        ps.settings.progress = progress


@pytest.fixture(scope="module")
def genes(_tiny_cached) -> list[str]:
    """The perturbable genes of the tiny screen (all GO-annotated: GEARS covers them)."""
    return list(_tiny_cached.var_names[_tiny_cached.var["perturbable"].to_numpy()])


@pytest.fixture(scope="module")
def additive(_tiny_cached) -> ps.Additive:
    return ps.Additive(_tiny_cached).fit()


def test_rows_are_the_singles_then_every_pair_in_canonical_labels(additive, genes):
    known = [g for g in genes if additive.covers(g)[0]][:5]
    pred = additive.predict_pairs(known, gi=False)
    pairs = [ps.pp.canonical_label(p) for p in itertools.combinations(known, 2)]
    assert list(pred.obs_names) == known + pairs
    assert pred.shape == (5 + 10, additive.genes.size)
    assert pred.obs["n_targets"].tolist() == [1] * 5 + [2] * 10
    single = additive.predict(pred.obs_names.tolist())
    np.testing.assert_array_equal(pred.X, single.X)
    np.testing.assert_array_equal(pred.layers["delta"], single.layers["delta"])
    assert pred.uns["perturbsim"]["model"] == "additive"


def test_batches_give_the_numbers_of_one_call(gears, genes):
    small = gears.predict_pairs(genes, batch_size=7, gi=False)
    one = gears.predict_pairs(genes, batch_size=10_000, gi=False)
    direct = gears.predict(small.obs_names.tolist())
    assert small.n_obs == len(genes) + len(genes) * (len(genes) - 1) // 2
    for layer in ("delta", "variance"):
        np.testing.assert_allclose(small.layers[layer], one.layers[layer], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(small.layers[layer], direct.layers[layer], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small.X, direct.X, rtol=1e-5, atol=1e-6)


def test_gi_scores_of_every_pair_are_joined_and_singles_marked(gears, genes):
    pred = gears.predict_pairs(genes[:6])
    singles, pairs = pred.obs.iloc[:6], pred.obs.iloc[6:]
    assert (singles["flag"] == "single").all()
    assert singles["magnitude"].isna().all() and singles["is_synergy"].isna().all()
    assert (singles["subtype"] == "").all()
    expected = gi_scores(
        gears.predict(pairs.index.tolist() + genes[:6]), control_mean=gears.control_mean
    )
    np.testing.assert_allclose(
        pairs["magnitude"].to_numpy(dtype=float),
        expected.loc[pairs.index, "magnitude"].to_numpy(dtype=float),
    )
    assert pairs["subtype"].tolist() == expected.loc[pairs.index, "subtype"].tolist()
    assert pairs["is_synergy"].dtype == "boolean"  # called for the scored pairs only
    assert pairs["is_synergy"].notna().tolist() == (pairs["flag"] == "").tolist()
    assert pairs["n_genes"].dtype == "Int64"


def test_pairs_predicted_as_their_singles_summed_are_marked(_tiny_cached, gears, genes, caplog):
    additive = ps.Additive(_tiny_cached).fit()  # its own: a repeated warning is INFO
    known = [g for g in genes if additive.covers(g)[0]][:4]
    with caplog.at_level("WARNING", logger="perturbsim"):
        summed = additive.predict_pairs(known).obs
    assert summed["sum_of_singles"].iloc[4:].eq(True).all()  # every pair, scored or not
    assert summed["sum_of_singles"].iloc[:4].isna().all()  # singles: not a pair
    scored = int((summed["flag"].iloc[4:] == "").sum())
    assert f"{scored} of the {scored} scored pairs predicted as their singles summed" in (
        caplog.text
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"):
        learnt = gears.predict_pairs(genes[:6]).obs.iloc[6:]  # the network's interactions
    assert learnt["sum_of_singles"].eq(False).all()
    assert "singles summed" not in caplog.text
    assert learnt["sum_of_singles"].dtype == "boolean"


def test_gi_options_reach_the_scoring(gears, genes):
    pred = gears.predict_pairs(genes[:4], genes=list(gears.genes[:20]))
    assert (pred.obs["n_genes"].iloc[4:] <= 20).all()


def test_unknown_genes_are_listed_on_one_line_or_skipped(gears, genes, caplog):
    query = [genes[0], "NOTAGENE1", genes[1], "NOTAGENE2"]
    with pytest.raises(ps.PerturbsimError) as err:
        gears.predict_pairs(query, gi=False)
    message = str(err.value)
    assert "\n" not in message
    assert "NOTAGENE1, NOTAGENE2" in message and "skip_unknown=True" in message
    with caplog.at_level(logging.WARNING, logger="perturbsim"):
        pred = gears.predict_pairs(query, gi=False, skip_unknown=True)
    assert list(pred.obs_names) == [genes[0], genes[1], ps.pp.canonical_label(genes[:2])]
    assert "NOTAGENE1" in caplog.text
    with pytest.raises(ps.PerturbsimError, match="fewer than two of the genes"):
        gears.predict_pairs([genes[0], "NOTAGENE1"], skip_unknown=True)
    with pytest.raises(ps.PerturbsimError, match=f"did you mean '{genes[1]}' for"):
        gears.predict_pairs([genes[0], genes[1].lower()], gi=False)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ([], "at least two genes, got []"),
        (["G1"], "at least two genes, got ['G1']"),
        (["G1", "G2", "G1"], "more than once: G1"),
        (["G1", "G1+G2"], "not single gene names: 'G1+G2'"),
        (["G1", "ctrl"], "'ctrl' is a control label, not a gene: leave it out"),
        (["G1", "Non-Targeting"], "'Non-Targeting' is a control label, not a gene"),
        (["NT", "G1"], "'NT' is a control label, not a gene"),
        ("G1", "got the string"),
    ],
)
def test_bad_gene_lists_are_one_line_errors(additive, query, words):
    with pytest.raises(ps.PerturbsimError, match=re.escape(words)) as err:
        additive.predict_pairs(query, gi=False)
    assert "\n" not in str(err.value)


def test_batch_size_must_be_positive(additive, genes):
    with pytest.raises(ps.PerturbsimError, match="batch_size"):
        additive.predict_pairs(genes[1:3], batch_size=0, gi=False)


# -- perturbsim gi --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(gears, tmp_path_factory):
    path = tmp_path_factory.mktemp("gi") / "gears"
    gears.save(path)
    return path


def _gene_file(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _saved_titles(monkeypatch) -> list[str]:
    """The titles of the figures saved from now on (``Figure.savefig`` still saves them)."""
    titles: list[str] = []
    save = Figure.savefig

    def spy(figure, *args, **kwargs):
        titles.append(figure.axes[0].get_title())
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return titles


def test_cli_gi_writes_predictions_and_scores(model_dir, genes, tmp_path, capsys, monkeypatch):
    gene_file = _gene_file(tmp_path / "genes.txt", ["# genes to pair", *genes[:5], "", "  "])
    out = tmp_path / "out"
    titles = _saved_titles(monkeypatch)
    assert (
        main(["--no-progress", "gi", str(model_dir), "--genes", gene_file, "--out", str(out)]) == 0
    )
    assert titles[0].startswith("genetic interaction map of predicted pairs")
    pred = ad.read_h5ad(out / "predictions.h5ad")
    assert pred.n_obs == 5 + 10
    assert (pred.obs["flag"].iloc[:5] == "single").all()
    scores = pd.read_csv(out / "gi_scores.csv", index_col=0, keep_default_na=False)
    assert list(scores.index) == list(pred.obs_names[5:])
    assert {"magnitude", "fit_corr", "subtype", "is_synergy", "flag"} <= set(scores.columns)
    printed = capsys.readouterr().out
    assert "5 genes in 10 pairs:" in printed and "subtypes of the scored pairs" in printed
    assert "an exactly additive pair counts as a synergy" in printed
    # the map of the scored pairs, as perturbsim.pl.gi_map draws it
    assert (scores["flag"] == "").sum() >= 2
    assert (out / "gi_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote predictions.h5ad, gi_scores.csv, gi_map.png to {out}" in printed


def test_cli_gi_draws_no_map_of_fewer_than_two_scored_pairs(model_dir, genes, tmp_path, capsys):
    out = tmp_path / "out"
    run = ["--no-progress", "gi", str(model_dir), "--out", str(out), "--overwrite", "--genes"]
    assert main([*run, _gene_file(tmp_path / "five.txt", genes[:5])]) == 0
    assert (out / "gi_map.png").exists()
    capsys.readouterr()
    assert main([*run, _gene_file(tmp_path / "two.txt", genes[:2])]) == 0  # one pair
    printed = capsys.readouterr().out
    assert "no GI map: fewer than 2 pairs were scored" in printed
    assert not (out / "gi_map.png").exists()  # the earlier run's is not left stale
    assert f"wrote predictions.h5ad, gi_scores.csv to {out}" in printed


def test_cli_gi_draws_no_map_of_one_scored_pair(model_dir, genes, tmp_path, capsys):
    run = ["--no-progress", "gi", str(model_dir), "--overwrite", "--genes"]
    assert main([*run, _gene_file(tmp_path / "five.txt", genes[:5]), "--out", str(tmp_path)]) == 0
    scores = pd.read_csv(tmp_path / "gi_scores.csv", index_col=0, keep_default_na=False)
    pair = ps.pp.genes_of(scores.index[scores["flag"] == ""][0])
    out = tmp_path / "one"
    capsys.readouterr()
    assert main([*run, _gene_file(tmp_path / "two.txt", list(pair)), "--out", str(out)]) == 0
    scored = pd.read_csv(out / "gi_scores.csv", index_col=0, keep_default_na=False)
    assert (scored["flag"] == "").sum() == 1  # one pair, scored: nothing to cluster
    assert "no GI map: fewer than 2 pairs were scored" in capsys.readouterr().out
    assert not (out / "gi_map.png").exists()


def test_gi_says_the_most_genes_a_pair_was_fitted_on():
    from perturbsim.cli._gi import _fitted_genes_text

    scores = pd.DataFrame({"n_genes": [7, 3, 5]}, index=["A+B", "A+C", "B+C"])
    text = _fitted_genes_text(scores, 20, 0.5, given=False)
    assert text.startswith("each pair fitted on up to 7 of the model's 20 genes: those whose")


def test_gi_counts_singles_of_reliability_at_its_threshold_as_reliable():
    from perturbsim.cli._gi import _reliability_text
    from perturbsim.pp._gi import MIN_RELIABILITY

    scores = pd.DataFrame(
        {"flag": ["", "", ""], "reliability": [MIN_RELIABILITY, 0.9, MIN_RELIABILITY - 0.1]},
        index=["A+B", "A+C", "B+C"],
    )
    assert f": 1 of 3 scored pairs below {MIN_RELIABILITY}" in _reliability_text(scores)


def test_cli_gi_counts_flags_by_kind_not_by_gene():
    from perturbsim.cli._gi import _gi_summary

    scores = pd.DataFrame(
        {
            "flag": [
                "",
                "generic single B",
                "generic single C, D",
                "missing singles D, F; generic single F",
            ],
            "is_synergy": [True, False, False, False],
        }
    )
    text = _gi_summary(scores, 5, "norman")
    assert "  not scored (a single the model's generic guess): 2" in text
    assert "  not scored (missing single(s); a single the model's generic guess): 1" in text
    assert "synergy 1" in text and "counts as a synergy" not in text
    assert "sum of their singles" not in text  # no coefficients to tell


def test_cli_gi_says_how_many_pairs_are_their_singles_summed():
    from perturbsim.cli._gi import _gi_summary

    scores = pd.DataFrame(
        {
            "flag": ["", "", "", "missing singles D"],
            "is_synergy": [True, False, True, False],
            "sum_of_singles": ["True", "False", "True", ""],  # as read back from CSV
        }
    )
    text = _gi_summary(scores, 4, "gears")
    assert "2 of the 3 predicted as the sum of their singles (column sum_of_singles" in text
    # the summed pairs' subtypes (the additive model's) are not counted as predicted ones
    assert "subtypes of the 1 pair with a predicted interaction (a pair may have" in text
    assert "several): synergy 0" in text
    assert "sum of their singles" not in _gi_summary(scores.drop(columns="sum_of_singles"), 4, "")


def _profiles(changes: dict[str, np.ndarray], control: np.ndarray) -> ad.AnnData:
    delta = np.stack(list(changes.values()))
    profiles = ad.AnnData(np.clip(control + delta, 0, None), obs=pd.DataFrame(index=list(changes)))
    profiles.var_names = [f"g{i}" for i in range(control.size)]
    profiles.layers["delta"] = profiles.X - control
    return profiles


def test_summed_pairs_reads_the_profiles_not_a_robust_fit_of_them():
    rng = np.random.default_rng(0)
    control = rng.uniform(0.5, 2.0, 200)
    a, b = rng.normal(0, 0.5, 200), rng.normal(0, 0.5, 200)
    a[:5] = -3.0  # clipped at 0 in A and in the pair: no sum to compare there
    sparse = a + b
    sparse[100:130] += 1.0  # an interaction on 15 % of the genes
    profiles = _profiles({"A": a, "B": b, "A+B": a + b, "C": b, "A+C": sparse}, control)
    summed = ps.tl.summed_pairs(profiles)
    assert summed.to_dict() == {"A+B": True, "A+C": False}
    scores = ps.tl.gi_scores(profiles, genes=list(profiles.var_names))
    assert scores.loc["A+C", ["c1", "c2"]].tolist() == pytest.approx([1.0, 1.0])  # a robust fit
    assert not ps.tl.summed_pairs(profiles, ["A+D"]).any()  # a single missing: not summed


def test_cli_gi_comments_after_genes_are_ignored(model_dir, genes, tmp_path):
    gene_file = _gene_file(tmp_path / "genes.txt", [f"{genes[0]}  # first", genes[1]])
    out = tmp_path / "out"
    assert (
        main(["--no-progress", "gi", str(model_dir), "--genes", gene_file, "--out", str(out)]) == 0
    )
    assert ad.read_h5ad(out / "predictions.h5ad").n_obs == 3


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (None, "--genes: no such genes file: '"),
        (["# nothing here", ""], "no genes in"),
        (["{0}", "NOTAGENE1", "{1}"], "NOTAGENE1; pass --skip-unknown"),
        (b"\x89HDF\r\n\x1a\n\xff\xfe", "as a list of genes, one a line (it is not UTF-8 text)"),
        (b"KLF1\x00\x00\x00", "(it holds NUL bytes: a binary file)"),
        ("folder", "genes.txt' is a folder"),
        ("device", "--genes: genes file '/dev/null' is not a regular file"),
        (["{0},{1},{2}"], "holds several genes joined by ',': give one a line"),
        (["{0} {1}"], "holds several genes joined by ' ': give one a line"),
    ],
)
def test_cli_gi_errors_are_one_line_with_status_2(model_dir, genes, tmp_path, capsys, lines, words):
    gene_file = tmp_path / "genes.txt"
    if isinstance(lines, bytes):  # e.g. an h5ad given by mistake
        gene_file.write_bytes(lines)
    elif lines == "folder":
        gene_file.mkdir()
    elif lines == "device":
        gene_file = Path("/dev/null")
    elif lines is not None:
        _gene_file(gene_file, [line.format(*genes) for line in lines])
    code = main(["gi", str(model_dir), "--genes", str(gene_file), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("perturbsim gi: error:") and words in err
    assert not (tmp_path / "o").exists()


def test_cli_gi_keeps_earlier_results_and_its_inputs(model_dir, genes, tmp_path, capsys):
    gene_file = tmp_path / "genes.txt"
    gene_file.write_text("\ufeff" + "\n".join(genes[:3]) + "\n", encoding="utf-8")  # a BOM
    out = tmp_path / "out"
    args = ["--no-progress", "gi", str(model_dir), "--genes", str(gene_file), "--out", str(out)]
    assert main(args) == 0
    assert ad.read_h5ad(out / "predictions.h5ad").obs_names[0] == genes[0]  # BOM dropped
    assert main(args) == 2
    assert "predictions.h5ad' already exists; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    into_model = ["gi", str(model_dir), "--genes", str(gene_file), "--out", str(model_dir)]
    assert main([*into_model, "--overwrite"]) == 2
    assert "would write over or into" in capsys.readouterr().err
    assert main([*into_model[:-1], str(model_dir / "gi")]) == 2  # nor into a folder inside
    assert "would write over or into" in capsys.readouterr().err
    assert not (model_dir / "gi_scores.csv").exists() and not (model_dir / "gi").exists()


def test_cli_gi_skip_unknown_goes_on(model_dir, genes, tmp_path):
    gene_file = _gene_file(tmp_path / "genes.txt", [genes[0], "NOTAGENE1", genes[1]])
    out = tmp_path / "out"
    args = ["--no-progress", "gi", str(model_dir), "--genes", gene_file, "--out", str(out)]
    assert main([*args, "--skip-unknown"]) == 0
    assert ad.read_h5ad(out / "predictions.h5ad").n_obs == 3


def test_an_abundance_no_gene_reaches_is_refused_before_predicting(additive, genes, monkeypatch):
    known = [g for g in genes if additive.covers(g)[0]][:3]
    monkeypatch.setattr(additive, "_predict_batches", None)  # never reached
    above = float(np.max(additive.control_mean)) + 1
    with pytest.raises(ps.PerturbsimError, match=r"no gene has a mean control expression above"):
        additive.predict_pairs(known, abundance=above)


@pytest.mark.parametrize("abundance", [-1, float("nan"), float("inf"), "0.5", True])
def test_bad_abundance_is_refused_before_predicting(additive, genes, abundance):
    known = [g for g in genes if additive.covers(g)[0]][:3]
    with pytest.raises(ps.PerturbsimError, match=r"abundance must be a finite number >= 0, got"):
        additive.predict_pairs(known, abundance=abundance)
    with pytest.raises(ps.PerturbsimError, match=r"abundance must be a finite number >= 0"):
        gi_scores(additive.predict_pairs(known, gi=False), abundance=abundance)


def test_unknown_gi_options_are_refused(additive, genes):
    known = [g for g in genes if additive.covers(g)[0]][:3]
    with pytest.raises(ps.PerturbsimError, match=r"unknown GI options \['abundence'\]"):
        additive.predict_pairs(known, abundence=0.1)
    with pytest.raises(ps.PerturbsimError, match=r"GI options \['abundance'\] given with gi=Fa"):
        additive.predict_pairs(known, gi=False, abundance=0.1)


def test_pairs_of_an_unsupported_gene_are_flagged_not_called(norman, caplog):
    """The bundled screen's genes outside it are predicted by the default's generic guess."""
    progress, ps.settings.progress = ps.settings.progress, False
    try:
        ps.pp.split(norman, kind="simulation", seed=1)
        model = ps.Stacked(norman, seed=0, corrections=["linear", "linear_go"]).fit()
    finally:
        ps.settings.progress = progress
    with caplog.at_level("WARNING", logger="perturbsim"):
        pred = model.predict_pairs(["KLF1", "MAP2K6", "TP53", "GATA1"], batch_size=2)
    assert pred.obs.loc[["TP53", "GATA1"], "unsupported"].all()
    # one warning for the whole set, not one per batch of predictions
    (warning,) = [r.getMessage() for r in caplog.records if "neither measured" in r.getMessage()]
    assert warning.startswith("7 predictions have a gene neither measured alone")
    caplog.clear()  # the same predictions again (e.g. in a loop): no new warning, INFO only
    with caplog.at_level("INFO", logger="perturbsim"):
        model.predict_pairs(["KLF1", "MAP2K6", "TP53", "GATA1"], batch_size=2)
        model.predict(["TP53"])  # other predictions: a warning of their own
    repeats = [r for r in caplog.records if "neither measured" in r.getMessage()]
    assert [r.levelname for r in repeats] == ["INFO", "WARNING"]
    assert repeats[0].getMessage() == f"{warning} (again)"
    calls = [c for c in pred.obs if c.startswith("is_")]
    for pair in ("KLF1+TP53", "GATA1+MAP2K6"):
        row = pred.obs.loc[pair]
        assert row["flag"].startswith("generic single") and np.isnan(row["c1"])
        assert row[calls].isna().all()  # not called either way: missing, not False
    pairs = pred.obs[pred.obs["n_targets"] == 2]
    scored = (pairs["flag"] == "").sum()
    assert ((~pairs["is_synergy"]).sum() + pairs["is_synergy"].sum()) == scored == 1
    assert pred.obs.loc["KLF1+MAP2K6", "flag"] == "" and np.isfinite(
        pred.obs.loc["KLF1+MAP2K6", "c1"]
    )
    kept = model.predict_pairs(["KLF1", "MAP2K6", "TP53"], unsupported=[])
    assert kept.obs.loc["KLF1+TP53", "flag"] == ""  # asked for: scored all the same


def test_pairs_of_a_gene_the_default_predicts_as_the_mean_are_flagged_not_called(norman):
    """GO ties MAPK1 to measured genes, but no correction of unseen singles holds out on this
    split: its single is the scaled mean change, as the default warns, so its pairs read
    that guess's scale, not MAPK1's."""
    progress, ps.settings.progress = ps.settings.progress, False
    try:
        ps.pp.split(norman, kind="simulation", seed=1)
        model = ps.Stacked(norman, seed=0).fit()
    finally:
        ps.settings.progress = progress
    pred = model.predict_pairs(["KLF1", "MAP2K6", "SLC38A2", "MAPK1"])
    assert not pred.obs.loc["MAPK1", "unsupported"]  # tied by GO: supported
    for pair in ("KLF1+MAPK1", "MAP2K6+MAPK1", "MAPK1+SLC38A2"):
        assert pred.obs.loc[pair, "flag"] == "generic single MAPK1"
    assert pred.obs.loc["KLF1+MAP2K6", "flag"] == ""
    # gi_scores of predict's own output reads the same flags from its .obs
    plain = model.predict(["KLF1", "MAP2K6", "MAPK1", "KLF1+MAP2K6", "KLF1+MAPK1"])
    scores = gi_scores(plain)
    assert scores.loc["KLF1+MAPK1", "flag"] == "generic single MAPK1"
    assert scores.loc["KLF1+MAP2K6", "flag"] == ""
    assert gi_scores(plain, unsupported=[]).loc["KLF1+MAPK1", "flag"] == ""  # asked for


def test_gi_scores_refuses_a_string_of_unsupported_genes(gears, genes):
    profiles = gears.predict([*genes[:2], "+".join(genes[:2])])
    with pytest.raises(ps.PerturbsimError, match="unsupported must be a list of genes"):
        gi_scores(profiles, unsupported="G1")


def test_cli_measured_gi_scores_the_pairs_the_screen_measured(
    norman, tmp_path, capsys, monkeypatch
):
    from perturbsim.ds._paths import bundled_path

    data = str(bundled_path("norman2019_subset.h5ad"))
    out = tmp_path / "measured"
    run = ["--no-progress", "measured-gi", data, "--control", "control", "--out", str(out)]
    titles = _saved_titles(monkeypatch)
    assert main(run) == 0
    scores = pd.read_csv(out / "gi_scores.csv", index_col=0, keep_default_na=False)
    # the map says its pairs are measured, and how many are too noisy to read
    reliability = pd.to_numeric(scores.loc[scores["flag"] == "", "reliability"])
    noisy = int((reliability < 0.5).sum())
    assert 0 < noisy <= len(reliability)  # the subset's few cells: all 3, as printed
    assert titles[0].startswith("genetic interaction map of measured pairs")
    assert titles[0].endswith(
        f"\n{noisy} of {len(reliability)} scored pairs with singles' reliability below 0.5: "
        "read their scores as noise"
    )
    profiles = ps.pp.measured_profiles(norman)
    stats_ = ps.pp.compute_pseudobulk(norman, coexpression="none")
    pairs = [p for p in profiles.obs_names if p.count("+") == 1]
    n_de = ps.pp.count_de(stats_, pairs, genes=stats_.control_mean > 0)  # every expressed gene
    assert scores["n_de"].astype(int).tolist() == n_de[scores.index].tolist()
    # the same scores as the Python route; pairs that change no gene are not scored
    expected = ps.tl.gi_scores(profiles, n_de=n_de.to_dict(), min_de=0)
    assert list(scores.index) == list(expected.index)
    assert (scores["flag"] == expected["flag"]).all()
    assert "too few DE genes (0 <= 0)" in set(scores["flag"])
    np.testing.assert_allclose(
        scores["magnitude"].replace("", np.nan).astype(float),
        expected["magnitude"].astype(float),
    )
    assert scores["n_cells"].tolist() == profiles.obs.loc[scores.index, "n_cells"].tolist()
    printed = capsys.readouterr().out
    assert f"{len(scores)} pairs: {int((scores['flag'] == '').sum())} scored" in printed
    assert "of the screen's 500 genes" in printed and "cells of the scored pairs:" in printed
    replicated = re.search(r"split-half check: .* median r = (-?[0-9.]+) .*\((\d+) pairs", printed)
    assert replicated and -1 <= float(replicated[1]) <= 1
    weak = scores["flag"].str.fullmatch(r"too few DE genes \(.*\)")  # checked too
    checked = (scores["flag"] == "") | weak
    assert int(replicated[2]) == int(checked.sum())
    each = pd.to_numeric(scores["split_half_r"], errors="coerce")  # each pair's r, written
    assert each[checked].notna().all() and each[~checked].isna().all()
    assert f"median r = {each[checked].median():.2f}" in printed
    assert (out / "gi_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # per-gene calls: the Python route's, counted per pair, the called genes listed
    scored = list(scores.index[scores["flag"] == ""])
    per_gene = ps.tl.gi_per_gene(profiles, pairs=scored, se=stats_)
    listed = pd.read_csv(out / "gi_per_gene.csv")
    assert list(listed.columns) == list(per_gene.columns)
    calls = per_gene[per_gene["call"].isin(["synergy", "buffering"])]
    called = set(zip(calls["pair"], calls["gene"], strict=True))
    assert called <= set(zip(listed["pair"], listed["gene"], strict=True))
    for pair, rows in listed.groupby("pair"):  # its 20 most significant genes, called or not
        top = per_gene[per_gene["pair"] == pair].nsmallest(20, "p")
        assert set(top["gene"]) <= set(rows["gene"]) and rows["p"].is_monotonic_increasing
    assert set(listed["pair"]) == set(scored)
    for call in ("synergy", "buffering"):
        counts = per_gene[per_gene["call"] == call].groupby("pair").size()
        assert scores.loc[scored, f"n_{call}_genes"].astype(int).tolist() == (
            counts.reindex(scored, fill_value=0).tolist()
        )
        assert (scores.loc[scores["flag"] != "", f"n_{call}_genes"] == "").all()
    tested = int(per_gene["p"].notna().sum())
    assert f": {len(calls)} of {tested} off the sum" in printed
    # each scored pair's reliability, the noisy ones counted and what they do said
    reliability = pd.to_numeric(scores.loc[scored, "reliability"])
    noisy = int((reliability < 0.5).sum())
    assert noisy and f"{noisy} of {len(scored)} scored pairs below 0.5; noise draws" in printed
    assert main(run) == 2  # an earlier run's files are kept unasked
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    where = ["--where", "condition=control", "--where", "condition=KLF1"]  # singles only
    assert main([*run[:-2], *where, "--out", str(tmp_path / "none")]) == 2
    assert "measured no pair of two genes: nothing to score" in capsys.readouterr().err
    # a pair of 2 cells is left unscored unless --min-cells says otherwise
    screen = ad.read_h5ad(data)
    in_pair = np.flatnonzero(screen.obs["condition"].to_numpy() == "KLF1+MAP2K6")
    few = tmp_path / "few.h5ad"
    screen[np.setdiff1d(np.arange(screen.n_obs), in_pair[2:])].copy().write_h5ad(few)
    run = [*run[:2], str(few), *run[3:-1]]
    assert main([*run, str(tmp_path / "few")]) == 0
    both = "a mean of fewer cells than --min-cells; no more DE genes than --min-de"
    assert f"not scored ({both}): 1" in capsys.readouterr().out
    flagged = pd.read_csv(tmp_path / "few" / "gi_scores.csv", index_col=0, keep_default_na=False)
    assert flagged.loc["KLF1+MAP2K6", "flag"].startswith("few cells (KLF1+MAP2K6 2)")
    assert flagged.loc["KLF1+MAP2K6", ["n_synergy_genes", "n_buffering_genes"]].eq("").all()
    assert main([*run, str(tmp_path / "every"), "--min-cells", "1"]) == 0
    assert "fewer cells than --min-cells" not in capsys.readouterr().out
    assert main([*run, str(tmp_path / "unscored"), "--min-cells", "1000"]) == 0
    assert "per-gene calls: none, no pair was scored" in capsys.readouterr().out
    empty = pd.read_csv(tmp_path / "unscored" / "gi_per_gene.csv")
    assert empty.empty and list(empty.columns) == list(listed.columns)
    assert main([*run, str(tmp_path / "zero"), "--min-cells", "0"]) == 2
    assert "--min-cells must be at least 1, got 0" in capsys.readouterr().err
    # Norman's filter: pairs of at most 10 DE genes unscored (here every pair: 500 genes)
    assert main([*run, str(tmp_path / "norman_de"), "--min-de", "10"]) == 0
    strict = pd.read_csv(tmp_path / "norman_de" / "gi_scores.csv", index_col=0)
    assert strict.loc[strict["n_de"] <= 10, "flag"].str.contains("too few DE genes").all()
    assert "15 pairs: 0 scored" in capsys.readouterr().out
    assert main([*run, str(tmp_path / "negative"), "--min-de", "-1"]) == 2
    assert "--min-de must be at least 0, got -1" in capsys.readouterr().err


def test_summed_pairs_refuses_a_score_table():
    with pytest.raises(ps.PerturbsimError, match="profiles must be an AnnData .* got DataFrame"):
        ps.tl.summed_pairs(pd.DataFrame({"c1": [1.0], "c2": [1.0]}))


def test_measured_gi_says_a_screen_of_few_cells_a_pair_does_not_replicate(
    shared_data, tmp_path, capsys
):
    # Gasperini's CRISPRi pairs: 4 to 15 cells each, their departures from the sum are noise
    data = shared_data / "gasperini2019" / "gasperini2019_highmoi_tss_subset.h5ad"
    run = ["--no-progress", "measured-gi", str(data), "--normalize", "--out", str(tmp_path)]
    assert main(run) == 0
    printed = capsys.readouterr().out
    median = float(re.search(r"correlate at a median r = (-?[0-9.]+)", printed)[1])
    assert abs(median) < 0.2
    assert "14 conditions of three genes or more not scored" in printed
    # no pair changes a gene significantly: none is scored (they read as neomorphisms)
    assert "45 pairs: 0 scored" in printed and "(no more DE genes than --min-de): 36" in printed
    assert "per-gene calls: none, no pair was scored" in printed
    # nor does any gene of a pair depart significantly from its singles' sum
    screen = ps.ds.read(data, perturbation_key="condition", control="control", normalize=True)
    table = ps.tl.gi_per_gene(ps.pp.measured_profiles(screen), se=ps.pp.compute_pseudobulk(screen))
    tested = table["p"].notna()
    assert tested.sum() > 10_000 and (table.loc[tested, "call"] == "additive").mean() > 0.99
    # with every pair's cells: one of a single cell has no two halves to compare
    every = [*run[:-1], str(tmp_path / "every"), "--min-cells", "1"]
    assert main(every) == 0
    assert re.search(r"split-half check: .*\(44 pairs,", capsys.readouterr().out)
    # the same check on a simulated screen of 60 cells a condition finds its interactions
    screen = ps.ds.simulate(size="small", seed=0)
    screen.write_h5ad(tmp_path / "sim.h5ad")
    assert main([*run[:2], str(tmp_path / "sim.h5ad"), "--out", str(tmp_path / "sim")]) == 0
    printed = capsys.readouterr().out
    assert float(re.search(r"correlate at a median r = (-?[0-9.]+)", printed)[1]) > median + 0.2
    calls = re.search(r"per-gene calls .*: (\d+) of (\d+) off the sum", printed)
    assert int(calls[1]) > 0.02 * int(calls[2])


def test_cli_measured_gi_corrects_reliable_pairs_for_noise_when_asked(tmp_path, capsys):
    adata = ps.ds.simulate(size="small", seed=25, cells_per_condition=60, n_control_cells=300)
    data = tmp_path / "screen.h5ad"
    adata.write_h5ad(data)
    run = ["--no-progress", "measured-gi", str(data), "--control", "control", "--out"]
    assert main([*run, str(tmp_path / "fitted")]) == 0
    fitted = pd.read_csv(tmp_path / "fitted" / "gi_scores.csv", index_col=0)
    assert "corrected" not in fitted
    reliable = int((fitted["reliability"] >= 0.5).sum())
    assert 0 < reliable < fitted["reliability"].notna().sum()
    printed = capsys.readouterr().out
    assert f"--correct-noise corrects the coefficients of the {reliable} at or above it" in printed
    assert main([*run, str(tmp_path / "corrected"), "--correct-noise"]) == 0
    corrected = pd.read_csv(tmp_path / "corrected" / "gi_scores.csv", index_col=0)
    assert corrected["corrected"].sum() == reliable
    np.testing.assert_array_equal(corrected["c1_uncorrected"], fitted["c1"])
    moved = corrected["corrected"].astype(bool)
    assert (corrected.loc[moved, "c1"] != fitted.loc[moved, "c1"]).all()
    printed = capsys.readouterr().out
    assert f"; {reliable} at or above it corrected for the noise (--correct-noise" in printed
