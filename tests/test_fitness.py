"""Cell fitness: reading growth screens, the GO-graph fitness model, evaluation and CLI."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

import perturbsim as ps
from perturbsim.cli import main
from perturbsim.ds._fitness import EMAP_FILE, PAIRS_FILE, SINGLES_FILE

GI_DIR = "norman2019/gi"
FAST = {"max_epochs": 150}
METHODS = ["fitness_model", "additive", "mean"]


# -- synthetic growth screens -----------------------------------------------------------------
def module_screen(
    *,
    n_modules: int = 4,
    size: int = 8,
    interaction: float = 0.0,
    module_singles: bool = False,
    seed: int = 0,
) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """Singles, pair matrix and GO table of genes in GO modules (one term per module).

    ``f_AB = f_A + f_B + interaction`` when A and B share their module, else additive
    (plus noise of sd 0.005). Singles are drawn independently of the module (sd 0.1), or
    with ``module_singles`` are the module's level plus noise of sd 0.03.
    """
    rng = np.random.default_rng(seed)
    genes = [f"M{m}G{i}" for m in range(n_modules) for i in range(size)]
    module = np.repeat(np.arange(n_modules), size)
    if module_singles:
        values = np.linspace(-0.4, -0.05, n_modules)[module] + rng.normal(0, 0.03, module.size)
    else:
        values = rng.normal(-0.2, 0.1, module.size)
    singles = pd.Series(values, index=genes)
    same = module[:, None] == module[None, :]
    noise = rng.normal(0, 0.005, (module.size, module.size))
    values = np.add.outer(singles.to_numpy(), singles.to_numpy()) + interaction * same
    values += np.triu(noise, 1) + np.triu(noise, 1).T
    pairs = pd.DataFrame(values, index=genes, columns=genes)
    go = pd.DataFrame({"gene": genes, "term": [f"GO:{m:07d}" for m in module]})
    return singles, pairs, go


def write_folder(
    folder: Path, singles: pd.Series, pairs: pd.DataFrame, *, control: bool = True
) -> Path:
    """Write the tables in Norman's layout (with a ``negative`` control row and column)."""
    folder.mkdir(parents=True, exist_ok=True)
    if control:
        singles = pd.concat([singles, pd.Series({"negative": 0.0})])
        pairs = pairs.copy()
        pairs["negative"] = singles.drop("negative")
        pairs.loc["negative"] = [*pairs["negative"].tolist(), 0.0]
    table = pd.DataFrame({"average_fitness": singles, "chosen_guide_fitness": singles})
    table.rename_axis("guide_target").to_csv(folder / SINGLES_FILE)
    pairs.rename_axis("gene").to_csv(folder / PAIRS_FILE)
    return folder


def r2(result: ps.tl.FitnessResult, method: str, subgroup: str) -> float:
    summary = result.summary()
    row = summary[
        (summary["method"] == method)
        & (summary["subgroup"] == subgroup)
        & (summary["metric"] == "r2")
        & (summary["scope"] == "all")
    ]
    return float(row["mean"].iloc[0])


# -- reading --------------------------------------------------------------------------------
def test_read_round_trip_drops_control(tmp_path):
    singles, pairs, _ = module_screen()
    screen = ps.ds.read_fitness(write_folder(tmp_path / "gi", singles, pairs))
    assert screen.genes == singles.index.tolist()
    assert "negative" not in screen.singles.index and screen.control == "negative"
    assert screen.emap is None
    table = screen.pair_table()
    assert len(table) == len(singles) * (len(singles) - 1) // 2
    a, b = table.iloc[0][["gene_a", "gene_b"]]
    assert table["fitness"].iloc[0] == pytest.approx(pairs.loc[a, b])


def test_unmeasured_pairs_are_left_out(tmp_path):
    singles, pairs, _ = module_screen()
    pairs.loc["M0G0", "M0G1"] = pairs.loc["M0G1", "M0G0"] = np.nan
    screen = ps.ds.read_fitness(write_folder(tmp_path / "gi", singles, pairs))
    assert "M0G0+M0G1" not in screen.pair_table().index
    assert len(screen.pair_table()) == len(singles) * (len(singles) - 1) // 2 - 1


def _error(folder: Path) -> str:
    with pytest.raises(ps.PerturbsimError) as info:
        ps.ds.read_fitness(folder)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_folder_and_table(tmp_path):
    assert "no such folder" in _error(tmp_path / "absent")
    (tmp_path / "screen.h5ad").write_text("")
    assert "is a file, not a fitness folder" in _error(tmp_path / "screen.h5ad")
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs)
    (folder / PAIRS_FILE).unlink()
    assert f"has no {PAIRS_FILE}" in _error(folder)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("gene,A,B\nA,1,2,3,4\n", "cannot read"),
        ("", "cannot read"),
        ("gene,A,B\nA,0,abc\nB,abc,0\n", "'abc' of row 'A', column 'B' is not a finite number"),
        ("gene,A,B\nA,0,1\nB,1,0\nC,1,1\n", "not a gene x gene matrix"),
        ("gene,A,B\nA,0,-0.5\nB,-0.25,0\n", "not symmetric: row 'A', column 'B' holds -0.5"),
        ("gene,A,B\nA,0,-0.5\nB,,0\n", "'B' holds -0.5 but row 'B', column 'A' is empty (a matrix"),
        ("gene,A,B,A\nA,0,1,0\nB,1,0,1\n", "names genes twice"),
        ("gene,A,B\nA,0,1\n   ,1,0\n", "line 3 has no gene name"),  # blank once stripped
        ("gene,A,B+X\nA,0,1\nB+X,1,0\n", "gene 'B+X' holds '+', which joins the genes of a pair"),
        ("gene;A;B\nA;0;1\nB;1;0\n", "(its header is separated by semicolons: write the table"),
        ("gene\tA\tB\nA\t0\t1\nB\t1\t0\n", "(its header is separated by tabs: write the"),
    ],
)
def test_malformed_pair_matrix(tmp_path, content, expected):
    singles = pd.Series({"A": -0.1, "B": -0.2})
    folder = write_folder(tmp_path / "gi", singles, pd.DataFrame(), control=False)
    (folder / PAIRS_FILE).write_text(content)
    assert expected in _error(folder)


def test_genes_without_fitness(tmp_path):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "a", singles.drop(["M1G2", "M3G0"]), pairs, control=False)
    assert "2 genes of processed_fitnesses.csv have no fitness value" in _error(folder)
    assert "M1G2, M3G0" in _error(folder)
    singles["M2G5"] = np.nan
    folder = write_folder(tmp_path / "b", singles, pairs)
    table = pd.read_csv(folder / SINGLES_FILE, index_col=0)
    table.loc["negative"] = np.nan  # the control's row may be empty: it is dropped
    table.to_csv(folder / SINGLES_FILE)
    assert _error(folder).startswith("1 gene has no fitness value in ")
    assert _error(folder).endswith(": M2G5")
    singles = singles.astype(object)
    singles["M2G5"] = "-33%"  # not a number: every gene needs one
    folder = write_folder(tmp_path / "c", singles, pairs)
    assert _error(folder).endswith("(every gene needs its fitness: leave out a gene not measured)")
    lower = singles.drop("M2G5").rename(index=str.lower)  # named in another case
    folder = write_folder(tmp_path / "d", lower, pairs, control=False)
    assert "(did you mean 'm0g0' for 'M0G0'? gene names are case-sensitive)" in _error(folder)


def test_a_control_that_is_no_label_is_refused(tmp_path):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs)
    with pytest.raises(
        ps.PerturbsimError, match=r"^control must be the control's row label .* got \['A'\]"
    ):
        ps.ds.read_fitness(folder, control=["A"])


def test_norman_s_control_kept_as_a_gene_is_warned_of(tmp_path, caplog):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs)  # with a 'negative' control
    gene = str(pairs.index[0])
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.ds.read_fitness(folder)
    assert "Norman's control" not in caplog.text  # dropped, as it should be
    with caplog.at_level("WARNING", logger="perturbsim"):
        screen = ps.ds.read_fitness(folder, control=gene)  # another label: 'negative' stays
    assert "negative" in screen.genes
    assert "a row and column 'negative', Norman's control, read as a gene" in caplog.text
    assert f"(control={gene!r})" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.ds.read_fitness(folder, control=None)
    assert "read as a gene (no control given)" in caplog.text
    # a control in no table is a typo, whose real row would be read as a gene
    with pytest.raises(ps.PerturbsimError) as info:
        ps.ds.read_fitness(folder, control="Negative")
    assert str(info.value) == (
        f"control='Negative' is neither a row of {SINGLES_FILE} nor of {PAIRS_FILE} in "
        f"{str(folder)!r} (did you mean 'negative' for 'Negative'? gene names are case-sensitive); "
        "control=None reads a screen without one"
    )
    assert (
        ps.ds.read_fitness(write_folder(tmp_path / "none", singles, pairs, control=False)).control
        is None
    )  # the default absent: no control


def test_a_comma_ending_every_line_reads_as_nothing(tmp_path):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs)
    expected = ps.ds.read_fitness(folder)
    for name in (SINGLES_FILE, PAIRS_FILE):  # as some spreadsheets export them
        path = folder / name
        path.write_text("".join(line + ",\n" for line in path.read_text().splitlines()))
    screen = ps.ds.read_fitness(folder)
    pd.testing.assert_series_equal(screen.singles, expected.singles)
    pd.testing.assert_frame_equal(screen.pairs, expected.pairs)


def test_only_an_empty_cell_is_a_missing_value(tmp_path):
    singles, pairs, _ = module_screen()
    pairs.loc["M0G1", "M0G2"] = pairs.loc["M0G2", "M0G1"] = np.nan  # written empty
    folder = write_folder(tmp_path / "gi", singles, pairs)
    assert ps.ds.read_fitness(folder).pairs.isna().to_numpy().sum() == 2  # unmeasured
    text = (folder / PAIRS_FILE).read_text().splitlines()
    row = next(i for i, line in enumerate(text) if line.startswith("M0G1,"))
    column = text[0].split(",").index("M0G2")
    cells = text[row].split(",")
    cells[column] = "NaN"
    text[row] = ",".join(cells)
    (folder / PAIRS_FILE).write_text("\n".join(text) + "\n")
    assert "the value 'NaN' of row 'M0G1', column 'M0G2' is not a finite number" in _error(folder)


def test_singles_without_a_fitness_column(tmp_path):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs)
    table = pd.DataFrame({"x": singles, "y": singles}).rename_axis("gene")
    table.to_csv(folder / SINGLES_FILE)
    assert "no column 'average_fitness'" in _error(folder)
    named = pd.DataFrame({"average_fitness": singles, "guide_target": singles.index})
    named.to_csv(folder / SINGLES_FILE, index=False)  # the fitness first, the genes after
    assert "its first column ('average_fitness') holds numbers (" in _error(folder)
    assert "not gene names: the first column names the genes" in _error(folder)
    indexed = pd.DataFrame({"gene": singles.index, "average_fitness": singles.to_numpy()})
    indexed.to_csv(folder / SINGLES_FILE)  # pandas writes its row index 0, 1, 2, ... first
    assert "its first column (unnamed) holds numbers (0, 1, 2, ...)" in _error(folder)
    assert "(a row index written with the table? write it without)" in _error(folder)


def _with(table: pd.DataFrame | pd.Series, key: tuple[str, str] | str, value: object):
    """A copy of ``table``, as objects, with the cell ``key`` set to ``value``."""
    changed = table.astype(object)
    changed.loc[key] = value
    return changed


def _renamed(pairs: pd.DataFrame, names: dict) -> pd.DataFrame:
    return pairs.rename(index=names, columns=names)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s, p: (s.drop("M0G1"), p), "1 gene of pairs has no single fitness: M0G1"),
        (
            lambda s, p: (_with(s, "M0G1", np.nan), p),
            "singles: the fitness nan of gene 'M0G1' is not a finite number",
        ),
        (lambda s, p: (_with(s, "M0G1", "abc"), p), "singles: the fitness 'abc' of gene 'M0G1'"),
        (lambda s, p: (pd.concat([s, s[:1]]), p), "singles name genes twice: M0G0"),
        (lambda s, p: (s.to_dict(), p), "singles must be a Series of fitness by gene, got dict"),
        (
            lambda s, p: (s, p.to_numpy()),
            "pairs must be a gene x gene DataFrame (genes as row and column labels), got ndarray",
        ),
        (
            lambda s, p: (s, p.drop(columns="M1G2")),
            "pairs is not a gene x gene matrix (6 rows, 5 columns): rows only: M1G2",
        ),
        (
            lambda s, p: (s, _renamed(p, {"M0G1": "M0G0"})),
            "pairs names genes twice as rows: M0G0",
        ),
        (
            lambda s, p: (s, _with(p, ("M0G0", "M0G1"), 5.0)),
            "pairs is not symmetric: row 'M0G0', column 'M0G1' holds 5 but row 'M0G1', column "
            "'M0G0' holds",
        ),
        (
            lambda s, p: (s, _with(p, ("M0G1", "M0G0"), "x")),
            "pairs: the value 'x' of row 'M0G1', column 'M0G0' is not a finite number (NaN is "
            "a pair not measured)",
        ),
        (
            lambda s, p: (s, _with(p, ("M0G1", "M0G0"), np.inf)),
            "pairs: the value inf of row 'M0G1', column 'M0G0' is not a finite number",
        ),
        (
            lambda s, p: (s, _renamed(p, {"M0G1": 1})),
            "pairs: the row label 1 is not a gene name (genes are named by non-empty text "
            "without '+')",
        ),
        (
            lambda s, p: (s, _renamed(p, {"M0G1": "M0G1+M1G1"})),
            "pairs: the row label 'M0G1+M1G1' is not a gene name",
        ),
        (
            lambda s, p: (s > 0, p),  # read as 1 and 0 before
            "singles hold True/False values, not fitness",
        ),
        (
            lambda s, p: (s, p.where(np.eye(len(p), dtype=bool))),  # the split blamed fractions
            "fitness screen: no pair measured (every value of pairs off the diagonal is NaN or",
        ),
    ],
    ids=[
        "single missing",
        "single nan",
        "single text",
        "single twice",
        "singles a dict",
        "pairs an array",
        "column missing",
        "gene twice",
        "asymmetric",
        "pair text",
        "pair infinite",
        "label a number",
        "label a pair",
        "singles true or false",
        "no pair measured",
    ],
)
def test_a_screen_built_in_python_is_checked_in_one_line(change, words):
    singles, pairs, _ = module_screen(n_modules=2, size=3)
    with pytest.raises(ps.PerturbsimError, match=f"^{re.escape(words)}") as info:
        ps.ds.FitnessScreen(*change(singles, pairs))
    assert "\n" not in str(info.value)


def test_a_screen_reads_its_pairs_whatever_the_order_of_the_columns():
    singles, pairs, _ = module_screen(n_modules=2, size=3)
    pairs.loc["M0G1", "M1G0"] = pairs.loc["M1G0", "M0G1"] = np.nan  # not measured
    screen = ps.ds.FitnessScreen(singles.astype(object), pairs.iloc[:, ::-1].astype(object))
    assert screen.pairs.columns.tolist() == screen.genes == pairs.index.tolist()
    assert screen.pairs.dtypes.eq(np.float64).all() and screen.singles.dtype == np.float64
    table = screen.pair_table()
    assert len(table) == 6 * 5 // 2 - 1 and "M0G1+M1G0" not in table.index
    for label, row in table.iterrows():
        assert row["fitness"] == pairs.loc[row["gene_a"], row["gene_b"]], label


def test_emap_is_read_and_checked(tmp_path, caplog):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs)
    emap = pairs.iloc[:5, :5] * 10
    emap.rename_axis("gene").to_csv(folder / EMAP_FILE)
    screen = ps.ds.read_fitness(folder)
    assert screen.emap.shape == (len(singles), len(singles))
    assert screen.emap.iloc[:5, :5].to_numpy() == pytest.approx(emap.to_numpy())
    emap.iloc[0, 1] += 1.0
    emap.rename_axis("gene").to_csv(folder / EMAP_FILE)
    with caplog.at_level("WARNING", logger="perturbsim"):  # no part of perturbsim reads it
        assert ps.ds.read_fitness(folder).emap is None
    assert (
        f"E-MAP scores not read, the screen read without them: {folder / EMAP_FILE}" in caplog.text
    )
    assert f"{EMAP_FILE} is not symmetric" in caplog.text


# -- the model ------------------------------------------------------------------------------
def interacting_screen(folder: Path, **options) -> tuple[ps.ds.FitnessScreen, pd.DataFrame]:
    """A screen where pairs within a GO module grow worse than additive (synergy)."""
    singles, pairs, go = module_screen(interaction=-0.25, **options)
    return ps.ds.read_fitness(write_folder(folder, singles, pairs)), go


@pytest.fixture
def interacting(tmp_path):
    return interacting_screen(tmp_path / "gi")


def test_additive_fitness_is_learned_as_additive(tmp_path):
    singles, pairs, go = module_screen(interaction=0.0)
    screen = ps.ds.read_fitness(write_folder(tmp_path / "gi", singles, pairs))
    result = ps.tl.fitness_evaluate(screen, seeds=1, go_annotations=go)
    for subgroup in ps.tl._fitness.SUBGROUPS:
        assert r2(result, "additive", subgroup) > 0.97
        assert r2(result, "fitness_model", subgroup) > 0.93
        assert r2(result, "mean", subgroup) < 0.05


def test_go_interaction_beats_additive(interacting):
    screen, go = interacting
    models = {"fitness_model": {}, "no_go": {"go": False}}
    result = ps.tl.fitness_evaluate(screen, seeds=5, go_annotations=go, models=models)
    scores = result.scores.query("metric == 'r2' and scope == 'all'")
    median = scores.groupby(["method", "subgroup"])["value"].median()
    for subgroup in ps.tl._fitness.SUBGROUPS:
        assert r2(result, "additive", subgroup) < 0.8
        # near 1 on most splits (one of these five draws its unseen genes worse: 0.45 there)
        assert median[("fitness_model", subgroup)] > 0.9
        # without GO (singles say nothing of the module), unseen genes' modules are unknown
        assert r2(result, "no_go", subgroup) < r2(result, "fitness_model", subgroup) - 0.2
    table = result.table("r2")
    assert table.index.tolist() == list(ps.tl._fitness.SUBGROUPS)
    assert table.columns.tolist() == [
        "pairs_per_seed",
        "fitness_model",
        "no_go",
        "additive",
        "mean",
    ]
    assert "expression_covered" not in result.predictions.columns  # no expression model
    assert result.scopes == ["all"]


def test_hidden_singles_are_predicted_from_go(tmp_path):
    screen, go = interacting_screen(tmp_path / "gi", module_singles=True)
    split = ps.tl.fitness_split(screen, seed=0)
    model = ps.models.FitnessModel(screen, go_annotations=go, seed=0)
    model.fit(split.train, val_pairs=split.val, known_singles=split.seen_genes, **FAST)
    unseen = [g for g in screen.genes if g not in split.seen_genes]
    predicted = model.predict(unseen)
    error = np.abs(predicted.to_numpy() - screen.singles[unseen].to_numpy())
    spread = screen.singles.std()
    assert error.mean() < 0.5 * spread  # the module's level, from GO alone
    seen = split.seen_genes[:3]
    assert model.predict(seen).to_numpy() == pytest.approx(screen.singles[seen].to_numpy())
    # every single known, named or not: one model; validation checked on the last epoch too
    named, default = (
        ps.models.FitnessModel(screen, go_annotations=go, seed=0).fit(
            split.train, val_pairs=split.val, known_singles=known, max_epochs=25
        )
        for known in (list(screen.genes), None)
    )
    assert named.best_epoch == default.best_epoch and named.val_loss == default.val_loss
    assert np.isfinite(default.val_loss) and default.best_epoch in (10, 20, 25)


def test_go_annotations_missing_most_genes_are_warned_of(interacting, caplog):
    screen, go = interacting
    split = ps.tl.fitness_split(screen, seed=0)
    few = go[go["gene"].isin(screen.genes[:8])]  # one module of four
    model = ps.models.FitnessModel(screen, go_annotations=few, seed=0)
    model.fit(split.train, val_pairs=split.val, max_epochs=10)
    assert "24 of the 32 genes of " in caplog.text
    assert "have no GO annotation, and no GO features (e.g. M1G0, " in caplog.text
    caplog.clear()
    ps.models.FitnessModel(screen, go_annotations=go, seed=0).fit(split.train, max_epochs=10)
    assert "no GO annotation" not in caplog.text


def test_loo_ridge_picks_the_penalty_of_least_leave_one_out_error():
    # brute force: refit the ridge with an intercept without each point in turn
    rng = np.random.default_rng(3)
    n, p = 8, 3
    x = rng.normal(size=(n, p))
    y = x @ rng.normal(size=p) * 0.3 + rng.normal(size=n)
    x, y = x - x.mean(axis=0), y - y.mean()
    grid = (1e-3, 1e-2, 1e-1, 0.3, 1.0, 3.0)
    top = np.linalg.svd(x, compute_uv=False)[0] ** 2
    errors = []
    for relative in grid:
        residuals = []
        for i in range(n):
            keep = np.arange(n) != i
            xk, yk = x[keep], y[keep]
            mx, my = xk.mean(axis=0), yk.mean()
            w = np.linalg.solve(
                (xk - mx).T @ (xk - mx) + relative * top * np.eye(p), (xk - mx).T @ (yk - my)
            )
            residuals.append(y[i] - my - (x[i] - mx) @ w)
        errors.append(np.mean(np.square(residuals)))
    best = grid[int(np.argmin(errors))]
    weights, alpha = ps.models._fitness.loo_ridge(x, y, grid)
    assert alpha == pytest.approx(best * top)
    assert weights == pytest.approx(np.linalg.solve(x.T @ x + alpha * np.eye(p), x.T @ y))


def _held_out_gene_split(screen: ps.ds.FitnessScreen) -> tuple[list[str], list[str]]:
    """Training pairs among genes G0-G5 of every module; validation pairs of G6 or G7."""
    genes = sorted(screen.genes)
    seen = [g for g in genes if int(g[-1]) < 6]
    train = [f"{a}+{b}" for a, b in itertools.combinations(seen, 2)][::3]
    val = [f"{a}+{b}" for a, b in itertools.combinations(genes, 2) if int(b[-1]) >= 6][::4]
    return train, val


def test_validation_is_checked_on_the_last_epoch_before_the_tenth(interacting):
    screen, go = interacting
    train, val = _held_out_gene_split(screen)
    model = ps.models.FitnessModel(screen, go_annotations=go, seed=0)
    model.fit(train, val_pairs=val, max_epochs=5)
    assert model.best_epoch == 5 and np.isfinite(model.val_loss)


def test_val_loss_is_the_validation_error_scaled_by_the_spread_of_known_singles(interacting):
    # every single known: a gene of the validation pairs only keeps its measured single,
    # so val_loss is the kept network's error on them, over the singles' variance
    screen, go = interacting
    train, val = _held_out_gene_split(screen)
    model = ps.models.FitnessModel(screen, go_annotations=go, seed=0)
    model.fit(train, val_pairs=val, max_epochs=30)
    measured = screen.pair_table().loc[val, "fitness"].to_numpy()
    mse = np.mean((model.predict(val).to_numpy() - measured) ** 2)
    assert model.val_loss == pytest.approx(mse / np.var(screen.singles.to_numpy()), rel=1e-6)


def test_known_singles_of_one_gene_are_refused(interacting):
    screen, go = interacting
    model = ps.models.FitnessModel(screen, go_annotations=go)
    for known in (["M0G0"], ["M0G0", "M0G0"]):
        with pytest.raises(ps.PerturbsimError, match="^known_singles needs at least two genes$"):
            model.fit(["M0G0+M0G1"], known_singles=known, max_epochs=5)


def test_model_is_deterministic_symmetric_and_leaves_torch_state(interacting, caplog, monkeypatch):
    screen, go = interacting
    reseeded = []  # torch.manual_seed would reseed every CUDA generator too, never restored
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)
    split = ps.tl.fitness_split(screen, seed=1)
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    torch.set_num_threads(2)  # not the test session's one thread, which fitting uses
    try:
        fits = [
            ps.models.FitnessModel(screen, go_annotations=go, seed=3).fit(
                split.train, max_epochs=30
            )
            for _ in range(2)
        ]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(state, torch.random.get_rng_state()) and reseeded == []
    pairs = split.test["combo_seen1"][:20]
    assert fits[0].predict(pairs).to_numpy() == pytest.approx(fits[1].predict(pairs).to_numpy())
    a, b = pairs[0].split("+")
    assert fits[0].predict([[b, a]]).iloc[0] == pytest.approx(fits[0].predict(pairs[0]).iloc[0])
    with caplog.at_level("WARNING", logger="perturbsim.models._base"):
        repeated = fits[0].predict([pairs[0], f"{b}+{a}", pairs[1], pairs[0]])
    assert repeated.index.tolist() == [pairs[0], pairs[1]]  # canonical labels, each once
    assert f"1 repeated perturbation, each predicted once: {pairs[0]}" in caplog.text
    # a training pair given twice (as A+B and B+A) counts once, as predict's queries do
    train = list(split.train)
    first, second = ps.pp.genes_of(train[0])
    with caplog.at_level("WARNING", logger="perturbsim.models._fitness"):
        twice = ps.models.FitnessModel(screen, go_annotations=go, seed=3).fit(
            [*train, f"{second}+{first}"], max_epochs=30
        )
    assert (
        f"1 pair given more than once (as A+B and B+A, say), counted once: {train[0]}"
        in caplog.text
    )
    once = ps.models.FitnessModel(screen, go_annotations=go, seed=3).fit(train, max_epochs=30)
    assert twice.predict(pairs).to_numpy() == pytest.approx(once.predict(pairs).to_numpy())


def test_a_real_gene_is_no_misspelling_of_a_screen_gene(tmp_path):
    singles, pairs, go = module_screen()
    names = {"M0G0": "MAP2K6", "M0G1": "KLF1"}  # a screen of real symbols
    singles, pairs = singles.rename(names), pairs.rename(index=names, columns=names)
    screen = ps.ds.read_fitness(write_folder(tmp_path / "gi", singles, pairs))
    model = ps.models.FitnessModel(screen, go_annotations=go, seed=0).fit(
        ["MAP2K6+KLF1", "M1G0+M1G1"], max_epochs=5
    )
    with pytest.raises(ps.PerturbsimError, match=r": MAP2K7$"):  # another real gene: no guess
        model.predict(["MAP2K7+KLF1"])
    with pytest.raises(ps.PerturbsimError, match=r"did you mean 'MAP2K6' for 'MAP2K66'\?"):
        model.predict(["MAP2K66+KLF1"])


def test_model_errors(interacting):
    screen, go = interacting
    model = ps.models.FitnessModel(screen, go_annotations=go)
    with pytest.raises(ps.PerturbsimError, match="not fitted"):
        model.predict("M0G0+M0G1")
    with pytest.raises(ps.PerturbsimError, match="^train_pairs name genes not in .*: NOPE$"):
        model.fit(["M0G0+NOPE"])
    with pytest.raises(ps.PerturbsimError, match="^train_pairs holds 'M0G0', not a pair of two"):
        model.fit(["M0G0"])
    with pytest.raises(ps.PerturbsimError, match=r"^train_pairs is empty: give measured pairs"):
        model.fit([])  # it suggested singles, which fit refuses
    model.fit(["M0G0+M0G1", "M1G0+M1G1"], max_epochs=5)
    with pytest.raises(ps.PerturbsimError, match="not in"):
        model.predict("M0G0+NOPE")
    with pytest.raises(ps.PerturbsimError, match=r"'M0G0\+M0G1\+M1G0' has 3 genes: .* pairs only"):
        model.predict("M0G0+M0G1+M1G0")
    for control in ("ctrl", ["M0G0", "ctrl"], "non-targeting"):
        given = control if isinstance(control, str) else control[1]
        with pytest.raises(ps.PerturbsimError, match=f"'{given}' is the control .* relative to"):
            model.predict(control)
    case = r"did you mean 'M0G0' for 'm0g0'\? gene names are case-sensitive"
    with pytest.raises(ps.PerturbsimError, match=r"1 gene is not in .*: m0g0 \(" + case):
        model.predict(["m0g0+M0G1"])
    typo = r"1 gene is not in .*: M0G00 \(did you mean 'M0G0' for 'M0G00'\?\)$"
    with pytest.raises(ps.PerturbsimError, match=typo):  # a letter too many: its likely intent
        model.predict(["M0G00+M0G1"])
    with pytest.raises(ps.PerturbsimError, match=r": NOPE$"):  # nothing close: no guess
        model.predict(["NOPE+M0G1"])
    joined = r"'M0G0_M1G0' looks like genes joined by '_': write 'M0G0\+M1G0'"
    with pytest.raises(ps.PerturbsimError, match=r"1 gene is not in .*: M0G0_M1G0 \(" + joined):
        model.predict("M0G0_M1G0")
    with pytest.raises(
        ps.PerturbsimError, match=r"train_pairs name genes not in .*: m0g0 \(" + case
    ):
        model.fit(["m0g0+M0G1"], max_epochs=5)
    listed = model.fit(["M0G0+M0G1"], known_singles=["M0G0", "M0G1", "M1G0"], max_epochs=5)
    expected = listed.predict(["M1G0+M1G1"])
    generated = model.fit(
        ["M0G0+M0G1"], known_singles=(g for g in ["M0G0", "M0G1", "M1G0"]), max_epochs=5
    )
    pd.testing.assert_series_equal(generated.predict(["M1G0+M1G1"]), expected)  # read once
    with pytest.raises(ps.PerturbsimError, match="known_singles; not there: M0G0, M0G1$"):
        model.fit(["M0G0+M0G1"], known_singles=["M1G0", "M1G1"], max_epochs=5)
    for options, message in (
        ({"known_singles": "M0G0"}, "known_singles must be a list of genes, got the string"),
        ({"lr": -1.0}, "lr must be a finite number > 0, got -1.0"),
        ({"lr": 0}, "lr must be a finite number > 0, got 0"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0, got nan"),
    ):
        with pytest.raises(ps.PerturbsimError, match=f"^{re.escape(message)}"):
            model.fit(["M0G0+M0G1"], max_epochs=5, **options)
    with pytest.raises(ps.PerturbsimError, match="^train_pairs must be a list of labels, got the"):
        model.fit("M0G0+M0G1", max_epochs=5)
    with pytest.raises(ps.PerturbsimError, match="embedding_dim"):
        ps.models.FitnessModel(screen, go=False, embedding_dim=0)
    with pytest.raises(ps.PerturbsimError, match=r"^screen must be a growth screen .* got str$"):
        ps.models.FitnessModel("gi")
    for call in (ps.tl.fitness_split, ps.tl.fitness_evaluate):  # a folder, not its screen
        with pytest.raises(ps.PerturbsimError, match=r"^screen must be a growth screen .* str$"):
            call("gi")
    for options, words in (
        ({"threshold": 2.0}, "threshold must lie in [0, 1), got 2.0"),
        ({"threshold": 1}, "threshold must lie in [0, 1), got 1"),  # no Jaccard index above
        ({"threshold": -0.1}, "threshold must lie in [0, 1), got -0.1"),
        ({"top_k": 0}, "top_k must be a whole number >= 1, got 0"),
    ):  # refused when the model is made, not at the first fit
        with pytest.raises(ps.PerturbsimError, match=f"^{re.escape(words)}$"):
            ps.models.FitnessModel(screen, go_annotations=go, **options)
    assert ps.models.FitnessModel(screen, go_annotations=go, threshold=0).threshold == 0.0
    with pytest.raises(ps.PerturbsimError, match="^val_pairs must be a list of labels, got 3"):
        model.fit(["M0G0+M0G1"], val_pairs=3, max_epochs=5)
    with pytest.raises(ps.PerturbsimError, match=r"1 validation pairs are training pairs too \(e"):
        model.fit(["M0G0+M0G1", "M1G0+M1G1"], val_pairs=["M0G1+M0G0"], max_epochs=5)
    for seeds, words in (([1, 1], r"seeds repeat: \[1, 1\]"), (0, ">= 1, got 0"), ([], "empty")):
        with pytest.raises(ps.PerturbsimError, match=words):
            ps.tl.fitness_evaluate(screen, seeds=seeds, go_annotations=go)
    for options, words in (
        (
            {"fit_options": {"epochs": 5}},
            r"^fit_options has no option 'epochs' \(its options: lr, max",
        ),
        ({"models": {"b": {"bogus": 1}}}, r"^model 'b' has no option 'bogus' \(its options: "),
        ({"models": {"b": {"seed": 1}}}, r"^model 'b' sets 'seed', which fitness_evaluate sets"),
        ({"models": {"b": 3}}, r"^models\['b'\] must be a dict of FitnessModel options, got int"),
        ({"models": {"b": {"hops": 0}}}, r"^fitness model 'b': hops must be"),  # its own check
        ({"hide_unseen_singles": "yes"}, r"^hide_unseen_singles must be True or False"),
        ({"models": ["a"]}, r"^models must map names to FitnessModel options .* got list"),
        ({"models": {None: {}}}, r"^models must be named by text, got the name None"),
        ({"fit_options": {1: 2, "lr": 0.1}}, r"^fit_options has no option 1 "),
    ):
        with pytest.raises(ps.PerturbsimError, match=words):
            ps.tl.fitness_evaluate(screen, seeds=1, go_annotations=go, **options)


@pytest.mark.parametrize(
    ("expression_model", "words"),
    [
        ("model1", r"'model1' is a path, not a model: .*PerturbationModel\.load\('model1'\)"),
        (Path("model1"), r"'model1' is a path"),
        (3, r"must be a fitted perturbsim expression model .*got int"),
    ],
)
def test_expression_model_that_is_no_model_is_refused_before_any_fit(
    interacting, monkeypatch, expression_model, words
):
    screen, go = interacting
    monkeypatch.setattr(ps.models.FitnessModel, "fit", None)  # a fit would fail otherwise
    with pytest.raises(ps.PerturbsimError, match=words):
        ps.tl.fitness_evaluate(
            screen, seeds=1, go_annotations=go, expression_model=expression_model
        )


def test_unfitted_expression_model_is_named(norman):
    with pytest.raises(ps.PerturbsimError, match="'additive' is not fitted: call .fit"):
        ps.models.ExpressionFitness(ps.Additive(norman))


def test_split_holds_out_by_gene(interacting):
    screen, _ = interacting
    split = ps.tl.fitness_split(screen, seed=2)
    seen = set(split.seen_genes)
    trained = {g for label in split.train for g in label.split("+")}
    assert split.seen_genes == sorted(trained)  # seen: in some training pair, nothing else
    # 8 of 32 genes held out, then the pairs of 2 of the other 24 all go to validation
    assert len(seen) == 22
    val_only = {g for label in split.val for g in label.split("+")} - trained
    assert len(val_only) == 2
    for k, name in enumerate(("combo_seen0", "combo_seen1", "combo_seen2")):
        assert split.test[name]
        assert all(len(set(p.split("+")) & seen) == k for p in split.test[name])
    # a validation gene's test pairs count it unseen: none is among the pairs of two seen genes
    assert any(set(p.split("+")) & val_only for p in split.test["combo_seen1"])
    assert not any(set(p.split("+")) & val_only for p in split.test["combo_seen2"])
    everything = split.train + split.val + [p for group in split.test.values() for p in group]
    assert sorted(everything) == sorted(screen.pair_table().index)
    with pytest.raises(ps.PerturbsimError, match="at least 2 held out and 2 others"):
        ps.tl.fitness_split(screen, unseen_fraction=0.01)
    with pytest.raises(
        ps.PerturbsimError, match=r"^unseen_fraction must lie in \(0, 1\), got '0.25'$"
    ):
        ps.tl.fitness_split(screen, unseen_fraction="0.25")
    with pytest.raises(ps.PerturbsimError, match=r"^val_fraction must lie in \[0, 1\), got None$"):
        ps.tl.fitness_split(screen, val_fraction=None)


def test_split_and_model_do_not_depend_on_the_order_of_the_genes(tmp_path):
    singles, pairs, go = module_screen(interaction=-0.25)
    order = np.random.default_rng(1).permutation(len(singles))
    screens = [
        ps.ds.read_fitness(write_folder(tmp_path / name, singles, matrix))
        for name, matrix in (("sorted", pairs), ("shuffled", pairs.iloc[order, order]))
    ]
    assert screens[0].genes != screens[1].genes
    first, second = (ps.tl.fitness_split(screen, seed=3) for screen in screens)
    assert (first.seen_genes, first.train, first.val) == (
        second.seen_genes,
        second.train,
        second.val,
    )
    assert first.test == second.test
    # top_k below a GO module's size: which of its tied neighbours (Jaccard 1) a gene keeps
    test = [p for group in first.test.values() for p in group]
    predicted = [
        ps.models.FitnessModel(screen, go_annotations=go, top_k=2, seed=0)
        .fit(first.train, val_pairs=first.val, max_epochs=40)
        .predict(test)
        for screen in screens
    ]
    # exactly: each pair's genes go in by name, so even the sums' rounding is the same
    np.testing.assert_array_equal(predicted[0].to_numpy(), predicted[1].to_numpy())


def test_split_repr_counts_each_set_with_a_few_examples(interacting):
    screen, _ = interacting
    split = ps.tl.fitness_split(screen, seed=2)
    text = repr(split)
    assert len(text) < 600  # not every pair name (thousands on Norman's screen)
    lines = text.splitlines()
    assert lines[0].startswith("FitnessSplit(seed=2): 22 seen genes (")
    sets = {"train": split.train, "val": split.val}
    sets.update({f"test {name}": pairs for name, pairs in split.test.items()})
    for line, (name, pairs) in zip(lines[1:], sets.items(), strict=True):
        assert line.split()[: len(name.split()) + 2] == [*name.split(), str(len(pairs)), "pairs:"]
        assert pairs[0] in line and f"and {len(pairs) - 3} more" in line


def test_a_screen_of_one_pair_is_refused_in_one_line(tmp_path):
    singles, pairs, _ = module_screen()
    one = pairs.where(pd.DataFrame(False, index=pairs.index, columns=pairs.columns))
    one.loc["M0G0", "M0G1"] = one.loc["M0G1", "M0G0"] = -0.2
    screen = ps.ds.read_fitness(write_folder(tmp_path / "gi", singles, one))
    with pytest.raises(ps.PerturbsimError, match=r"holds out no test pair \(pairs measured"):
        ps.tl.fitness_split(screen, seed=0)  # the pair is a training pair
    words = r"(no training pair|holds out no test pair) \(pairs measured in the screen: 1\)"
    for seed in range(1, 4):
        with pytest.raises(ps.PerturbsimError, match=words):
            ps.tl.fitness_split(screen, seed=seed)


# -- the expression route -------------------------------------------------------------------
def test_expression_ridge_recovers_a_linear_readout(norman):
    expression = ps.Additive(norman).fit()
    genes = sorted(
        {g for c in norman.obs["perturbsim_condition"].astype(str) for g in ps.pp.genes_of(c)}
    )
    labels = genes + [ps.pp.canonical_label(p) for p in itertools.combinations(genes, 2)]
    labels = [c for c, ok in zip(labels, expression.covers(labels), strict=True) if ok]
    change = expression.predict(labels).layers["delta"].astype(np.float64)
    readout = np.random.default_rng(0).normal(size=change.shape[1])
    fitness = pd.Series(change @ readout / np.sqrt(change.shape[1]) - 0.2, index=labels)
    singles = [c for c in labels if "+" not in c]
    pairs = [c for c in labels if "+" in c]
    train = singles + pairs[:50]
    route = ps.models.ExpressionFitness(expression).fit(fitness[train])
    predicted = route.predict(pairs[50:])
    truth = fitness[pairs[50:]].to_numpy()
    assert 1 - np.sum((predicted - truth) ** 2) / np.sum((truth - truth.mean()) ** 2) > 0.99
    with pytest.raises(ps.PerturbsimError, match="cannot predict"):
        route.predict("KLF1+NOT_A_GENE")
    for bad in (np.nan, "abc"):
        broken = fitness[train].astype(object)
        broken[singles[0]] = bad
        with pytest.raises(ps.PerturbsimError, match=f"^fitness of '{singles[0]}' is "):
            ps.models.ExpressionFitness(expression).fit(broken)
    a, b = ps.pp.genes_of(pairs[60])
    repeated = route.predict([pairs[60], f"{b}+{a}", pairs[61]])  # one row per query
    assert len(repeated) == 3 and repeated.iloc[0] == repeated.iloc[1]
    with pytest.raises(ps.PerturbsimError, match=r"^fitness of .* is nan: every fitness"):
        ps.models.ExpressionFitness(expression).fit(
            fitness[train].replace(fitness[train].iloc[0], np.nan)
        )
    reversed_pair = fitness[train].copy()  # one pair twice, as A+B and B+A, two values
    reversed_pair[f"{b}+{a}"] = 0.5
    given_twice = rf"more than once .*: {re.escape(pairs[60])}; give each"
    with pytest.raises(ps.PerturbsimError, match=given_twice):
        ps.models.ExpressionFitness(expression).fit(
            pd.concat([fitness[train], fitness[[pairs[60]]], reversed_pair[[f"{b}+{a}"]]])
        )
    with pytest.raises(
        ps.PerturbsimError,
        match=r"covers 0 of the 3 training conditions; .*none of their genes \(A, B\) is among",
    ):
        ps.models.ExpressionFitness(expression).fit(pd.Series({"A": 0.1, "B": 0.2, "A+B": 0.3}))
    with pytest.raises(ps.PerturbsimError, match="^the control has no fitness to predict"):
        route.predict(["ctrl"])
    with pytest.raises(ps.PerturbsimError, match="^fitness holds the control"):
        ps.models.ExpressionFitness(expression).fit(
            pd.concat([fitness[train], pd.Series({"ctrl": 0.0})])
        )


# -- the real growth screen -----------------------------------------------------------------
def test_real_growth_screen(shared_data):
    if not (shared_data / GI_DIR / PAIRS_FILE).is_file():
        pytest.skip("Norman growth tables absent")
    screen = ps.ds.read_fitness(shared_data / GI_DIR)
    assert len(screen.genes) == 112
    assert len(screen.pair_table()) == 6216
    assert screen.emap is not None
    result = ps.tl.fitness_evaluate(screen, seeds=1, fit_options=FAST)
    for subgroup in ps.tl._fitness.SUBGROUPS:
        additive = r2(result, "additive", subgroup)
        assert 0.5 < additive < 0.8  # pairs of strong hits buffer: sum overshoots
        assert r2(result, "fitness_model", subgroup) > additive + 0.15
        assert abs(r2(result, "mean", subgroup)) < 0.1


# -- command line ---------------------------------------------------------------------------
def cli_screen(tmp_path: Path, genes: tuple[str, ...] = (), size: int = 8) -> list[str]:
    """``fitness DIR --go FILE`` of a synthetic screen (4 GO modules of ``size`` genes), its
    first genes renamed ``genes``."""
    singles, pairs, go = module_screen(interaction=-0.25, size=size)
    names = dict(zip(singles.index[: len(genes)], genes, strict=True))
    singles, pairs = singles.rename(names), pairs.rename(index=names, columns=names)
    go["gene"] = go["gene"].replace(names)
    folder = write_folder(tmp_path / "gi", singles, pairs)
    go_file = tmp_path / "go.tsv"
    go.to_csv(go_file, sep="\t", index=False)
    return ["fitness", str(folder), "--go", str(go_file)]


CLI_METHODS = ["fitness_model", "no_go", "additive", "mean"]
"""The methods ``perturbsim fitness`` scores without an expression model, in its order."""


def settings_models(out) -> dict:
    """The models a ``perturbsim fitness`` run in ``out`` fitted, from its settings."""
    return json.loads((out / "settings.json").read_text())["models"]


def test_cli_fitness(tmp_path, capsys):
    out = tmp_path / "out"
    args = [*cli_screen(tmp_path), "--out", str(out), "--seeds", "2", "--epochs", "100"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "combo_seen0" in printed and "fitness_model" in printed and "additive" in printed
    assert "mean over split seeds 1-2 [95% t-interval over seeds, cut at 1" in printed
    assert "pairs_per_seed: the subgroup's test pairs in one split (mean over seeds)" in printed
    written = {"scores.csv", "summary.csv", "predictions.csv", "r2.csv", "settings.json"}
    written |= {"fitness_model.png", "no_go.png", "additive.png"}
    assert {p.name for p in out.iterdir()} == written
    table = pd.read_csv(out / "r2.csv")
    assert table.columns.tolist() == ["scope", "subgroup", "pairs_per_seed", *CLI_METHODS]
    # the ablation is the model without GO: on this screen, whose interactions follow GO
    # modules, the GO graph carries them to the pairs of unseen genes
    r2 = pd.read_csv(out / "summary.csv").query("metric == 'r2' and subgroup == 'combo_seen0'")
    by_method = r2.set_index("method")["mean"]
    assert by_method["fitness_model"] > by_method["no_go"] + 0.1
    assert settings_models(out) == {"fitness_model": {}, "no_go": {"go": False}}
    assert table["subgroup"].tolist() == ["combo_seen2", "combo_seen1", "combo_seen0"]
    assert (table["scope"] == "all").all()
    assert (table["pairs_per_seed"] >= 10).all() and "says little" not in printed
    assert "covered" not in pd.read_csv(out / "predictions.csv").columns  # no expression model
    summary = pd.read_csv(out / "summary.csv")
    assert (summary.loc[summary["metric"] == "r2", "ci_high"].dropna() <= 1).all()
    assert (summary.loc[summary["metric"] == "pearson", "ci_low"].dropna() >= -1).all()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["seeds"] == [1, 2] and settings["fit_options"] == {"max_epochs": 100}


def test_cli_notes_subgroups_of_few_pairs(tmp_path, capsys):
    out = tmp_path / "out"
    args = [*cli_screen(tmp_path, size=4), "--out", str(out), "--seeds", "1", "--epochs", "10"]
    assert main([*args, "--unseen-fraction", "0.1"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "r2.csv")
    few = table[table["pairs_per_seed"] < 10]
    assert not few.empty  # 2 of 16 genes held out, 1 for validation: 3 pairs of two unseen
    named = "; ".join(f"{r.subgroup} (all): {r.pairs_per_seed}" for r in few.itertuples())
    assert (
        "note: R² over fewer than 10 test pairs a split says little (test pairs per split: "
        f"{named})"
    ) in printed


def test_cli_fitness_shows_progress_over_seeds_unless_told_not_to(tmp_path, monkeypatch):
    bars = []

    def recording_bar(seeds, **options):  # stands for tqdm: records what it was given
        bars.append({"seeds": list(seeds), **options})
        return bars[-1]["seeds"]

    monkeypatch.setattr(ps.tl._fitness, "tqdm", recording_bar)
    args = [*cli_screen(tmp_path), "--seeds", "2", "--epochs", "5"]
    assert main([*args, "--out", str(tmp_path / "shown")]) == 0
    assert main(["--no-progress", *args, "--out", str(tmp_path / "hidden")]) == 0
    assert [bar["seeds"] for bar in bars] == [[1, 2], [1, 2]]
    assert [bar["disable"] for bar in bars] == [None, True]  # None: shown on a terminal
    assert bars[0]["desc"] == "fitness" and bars[0]["unit"] == "seed"


def test_cli_verbose_log_names_the_model_each_fit_is_of(tmp_path, caplog):
    args = [*cli_screen(tmp_path), "--seeds", "1", "--epochs", "5", "-v"]
    with caplog.at_level("INFO", logger="perturbsim"):
        assert main([*args, "--out", str(tmp_path / "out")]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("perturbsim")]
    named = [line for line in lines if line.startswith(("fitness: split", "FitnessModel: "))]
    # fitness_model and no_go, each named before its own fit's line
    assert [line.split(" epochs")[0] for line in named] == [
        "fitness: split seed 1, fitting fitness_model",
        "FitnessModel: 5",
        "fitness: split seed 1, fitting no_go",
        "FitnessModel: 5",
        "fitness: split seed 1 done",
    ]


def test_cli_one_seed_prints_no_interval(tmp_path, capsys):
    args = [*cli_screen(tmp_path), "--out", str(tmp_path / "out"), "--seeds", "1"]
    assert main([*args, "--epochs", "10"]) == 0
    printed = capsys.readouterr().out
    assert "split seed 1 (one seed: no interval):" in printed
    assert "t-interval" not in printed and "[" not in printed.split("pairs_per_seed")[1]


def test_cli_refuses_to_replace_results_or_write_into_its_inputs(tmp_path, capsys):
    out = tmp_path / "out"
    args = [*cli_screen(tmp_path), "--seeds", "1", "--epochs", "10"]
    assert main([*args, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already exists; pass --overwrite to replace it" in err and "\n" not in err.strip()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    for flag in ((), ("--overwrite",)):
        assert main([*args, "--out", str(tmp_path / "notes"), *flag]) == 2
    assert "it holds 'mine.txt'" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["mine.txt"]
    model = tmp_path / "model1"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "gi"
    inputs = sorted(p.name for p in data.iterdir())
    for where, read, extra in (
        (data, data, ()),
        (data / "results", data, ()),
        (model, model, ("--expression-model", str(model))),
    ):
        capsys.readouterr()
        assert main([*args, "--out", str(where), *extra, "--overwrite"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"would write over or into {str(read.resolve())!r}, which this command" in err
    assert sorted(p.name for p in data.iterdir()) == inputs
    assert [p.name for p in model.iterdir()] == ["config.json"]


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda f: (f / SINGLES_FILE).unlink(), f"has no {SINGLES_FILE}"),
        (lambda f: (f / PAIRS_FILE).write_text("gene,A\nA,0\nB,1\n"), "not a gene x gene"),
        (lambda f: (f / PAIRS_FILE).write_text("gene,A,B\nA,0,1\nB,2,0\n"), "not symmetric"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, break_it, expected):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs)
    break_it(folder)
    assert main(["fitness", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("perturbsim fitness: error:") and expected in err
    assert "\n" not in err and "Traceback" not in err


def test_cli_names_its_unseen_fraction_option(tmp_path, capsys):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs)
    out = str(tmp_path / "out")
    assert main(["fitness", str(folder), "--out", out, "--unseen-fraction", "1.5"]) == 2
    assert "--unseen-fraction must lie in" in capsys.readouterr().err


def test_cli_names_a_control_that_is_not_in_the_tables(tmp_path, capsys):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs, control=False)
    assert ps.ds.read_fitness(folder).control is None  # the default, absent: nothing dropped
    assert main(["fitness", str(folder), "--out", str(tmp_path / "out"), "--control", "NT"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"--control 'NT' is neither a row of {SINGLES_FILE}" in err
    assert err.endswith("; --control '' reads a screen without one")


def test_cli_expression_model_writes_both_tables_and_its_plot(tmp_path, capsys, norman):
    genes = ("FOXO4", "HK2", "KLF1", "KMT2A", "MAP2K3", "MAP2K6", "MAPK1", "MIDN")
    ps.Additive(norman).fit().save(tmp_path / "expression")
    out = tmp_path / "out"
    args = [*cli_screen(tmp_path, genes), "--out", str(out), "--seeds", "2", "--epochs", "10"]
    assert main([*args, "--expression-model", str(tmp_path / "expression")]) == 0
    printed = capsys.readouterr().out
    assert "R² on the test pairs the expression model covers" in printed
    assert (out / "expression_ridge.png").is_file()
    table = pd.read_csv(out / "r2.csv")
    assert table["scope"].unique().tolist() == ["all", "expression_covered"]
    assert table.columns.tolist() == [
        "scope",
        "subgroup",
        "pairs_per_seed",
        *CLI_METHODS,
        "expression_ridge",
    ]
    covered = table[table["scope"] == "expression_covered"]
    assert covered["expression_ridge"].notna().all()
    assert table.loc[table["scope"] == "all", "expression_ridge"].isna().all()
    predictions = pd.read_csv(out / "predictions.csv")
    assert set(predictions["expression_covered"]) == {True, False}  # pairs of other genes
    ridge = predictions[predictions["method"] == "expression_ridge"]
    assert ridge["predicted"].notna().tolist() == ridge["expression_covered"].tolist()


def test_scatter_default_seed_is_the_first_with_predictions():
    table = pd.DataFrame(
        {
            "seed": [0, 0, 1, 1],
            "subgroup": "combo_seen1",
            "method": "expression_ridge",
            "predicted": [np.nan, np.nan, -0.3, -0.1],
            "measured": [-0.2, -0.4, -0.25, -0.05],
        }
    )
    ax = ps.pl.fitness_scatter(table, method="expression_ridge")
    assert ax.get_title() == "expression_ridge\n(split seed 1)"
    as_text = ps.pl.fitness_scatter(table.astype({"seed": str}), method="expression_ridge", seed=1)
    assert len(as_text.collections[0].get_offsets()) == 2  # seeds written as text read as numbers
    with pytest.raises(ps.PerturbsimError, match=r"for split seed 0 \(its seeds: 1\)$"):
        ps.pl.fitness_scatter(table, method="expression_ridge", seed=0)
    unmeasured = table.assign(measured=np.nan)  # nothing to draw: said, not an empty plot
    with pytest.raises(ps.PerturbsimError, match="every one, or its measurement, is NaN"):
        ps.pl.fitness_scatter(unmeasured, method="expression_ridge")
    with pytest.raises(ps.PerturbsimError, match="^fitness predictions must be a DataFrame"):
        ps.pl.fitness_scatter({"a": 1}, method="additive")
    # a seed given as text, an infinite or a textual prediction: one line, not a traceback
    with pytest.raises(ps.PerturbsimError, match="seed must be a whole number >= 0, got '1'"):
        ps.pl.fitness_scatter(table, method="expression_ridge", seed="1")
    for column, value in (("predicted", np.inf), ("measured", "a"), ("seed", np.nan)):
        broken = table.assign(**{column: [value, *table[column].iloc[1:]]})
        with pytest.raises(ps.PerturbsimError, match=f"column '{column}' holds .*, not a finite"):
            ps.pl.fitness_scatter(broken, method="expression_ridge")


def test_scatter_legend_lists_subgroups_in_their_order_while_small_ones_draw_on_top():
    subgroups = ["combo_seen1"] * 6 + ["combo_seen2"] * 3 + ["combo_seen0"]
    table = pd.DataFrame(
        {
            "seed": 0,
            "subgroup": subgroups,
            "method": "additive",
            "predicted": np.linspace(-1, 0, 10),
            "measured": np.linspace(-1.1, 0.1, 10),
        }
    )
    ax = ps.pl.fitness_scatter(table, method="additive")
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    r2 = {  # each subgroup's R² on its drawn pairs, as the scores compute it
        name: 1
        - ((g["measured"] - g["predicted"]) ** 2).sum()
        / ((g["measured"] - g["measured"].mean()) ** 2).sum()
        for name, g in table.groupby("subgroup")
        if len(g) > 1
    }
    assert legend == [
        f"combo_seen2 (3, R² {r2['combo_seen2']:.3f})",
        f"combo_seen1 (6, R² {r2['combo_seen1']:.3f})",
        "combo_seen0 (1, R² n/a)",  # one pair has no spread to explain
    ]
    assert [c.get_offsets().shape[0] for c in ax.collections] == [6, 3, 1]  # largest first
    handles = ax.get_legend().legend_handles  # solid in the legend, the points faded
    assert [h.get_alpha() for h in handles] == [1.0] * 3 and ax.collections[0].get_alpha() == 0.5
    two_seeds = pd.concat([table, table.assign(seed=1)])  # one of them drawn: said
    assert ps.pl.fitness_scatter(two_seeds, method="additive").get_title() == (
        "additive\n(split seed 0, one of 2)"
    )
    # beside the points on a figure of its own (inside, it hid those under it), and the
    # title, wrapped, inside the figure
    long = table.assign(method="a_long_method_name", seed=10)
    seeds = pd.concat([long.assign(seed=seed) for seed in range(1, 11)])
    ax = ps.pl.fitness_scatter(seeds, method="a_long_method_name", seed=10)
    ax.figure.draw_without_rendering()
    figure = ax.figure.bbox
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1
    assert ax.get_legend().get_window_extent().x1 <= figure.x1
    assert ax.title.get_window_extent().x1 <= figure.x1
    inside = Figure().add_subplot()  # an Axes given: the legend stays inside it
    ps.pl.fitness_scatter(table, method="additive", ax=inside)
    assert inside.get_legend().get_window_extent().x1 <= inside.get_window_extent().x1


def test_cli_names_an_expression_model_folder_that_is_missing_or_a_file(tmp_path, capsys):
    singles, pairs, _ = module_screen()
    folder = write_folder(tmp_path / "gi", singles, pairs)
    (tmp_path / "model.txt").write_text("not a model")
    for given, what in (("missing", "no such model folder"), ("model.txt", "is a file, not")):
        args = ["fitness", str(folder), "--out", str(tmp_path / "out")]
        assert main([*args, "--expression-model", str(tmp_path / given)]) == 2
        err = capsys.readouterr().err.strip()
        assert f"--expression-model {str(tmp_path / given)!r}: {what}" in err
        assert not (tmp_path / "out").exists()  # refused before any work


def test_the_few_pairs_note_names_only_subgroups_below_ten_pairs_a_split():
    from perturbsim.cli._fitness import FEW_PAIRS, _few_pairs_note

    r2 = pd.DataFrame(
        {
            "scope": ["all", "all"],
            "subgroup": ["combo_seen0", "combo_seen1"],
            "pairs_per_seed": [FEW_PAIRS - 1, FEW_PAIRS],
        }
    )
    note = _few_pairs_note(r2)
    assert "(test pairs per split: combo_seen0 (all): 9)" in note
    assert _few_pairs_note(r2.iloc[1:]) == ""


def test_cli_says_when_the_unseen_genes_singles_are_predicted_from_go(tmp_path, capsys):
    args = [*cli_screen(tmp_path), "--out", str(tmp_path / "out"), "--seeds", "1"]
    assert main([*args, "--epochs", "5", "--hide-unseen-singles"]) == 0
    assert (
        "; unseen genes' singles predicted: from GO by fitness_model, as the known singles' mean "
        "by no_go and additive), split seed 1"
    ) in capsys.readouterr().out
