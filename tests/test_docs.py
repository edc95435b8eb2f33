"""The Python examples of the README and docs/ run as written.

Each file's ```python blocks run in order in one namespace, in a fresh working folder, as a
reader pasting them would; the files they name are put there first (the README reads a
``screen.h5ad``; docs/fitness.md reads the shared data folder). To keep the suite short,
evaluations run over 1 split seed where the text asks for 5: the same code path.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import anndata as ad
import matplotlib
import pytest

import perturbsim as ps

ROOT = Path(__file__).resolve().parents[1]
SHARED_FITNESS = "../shared/data/norman2019/gi"
"""Where docs/fitness.md reads the growth screen (relative to the repository root)."""


def python_blocks(name: str) -> list[str]:
    """The ```python blocks of a Markdown file of the repository, in order (1 seed for 5)."""
    text = (ROOT / name).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    return [b.replace("seeds=5", "seeds=1") for b in blocks]


def run_blocks(blocks: list[str], name: str) -> dict:
    namespace: dict = {"__name__": "__main__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{name} block {i + 1}", "exec"), namespace)
    return namespace


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    matplotlib.use("Agg")
    return tmp_path


def write_gears_style_screen(path: Path) -> None:
    """The bundled subset as a user's file: GEARS labels (``ctrl``, ``A+ctrl``, ``A+B``)."""
    adata = ps.ds.norman2019_subset()
    labels = adata.obs["condition"].astype(str)
    relabel = {c: "ctrl" if c == "control" else c if "+" in c else f"{c}+ctrl" for c in labels}
    obs = labels.map(relabel).to_frame("condition")
    ad.AnnData(adata.X, obs=obs, var=adata.var[[]]).write_h5ad(path)


def test_every_document_with_python_examples_is_run_here():
    documents = {
        str(path.relative_to(ROOT))
        for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
        if python_blocks(str(path.relative_to(ROOT)))
    }
    assert documents == {
        "README.md",
        "docs/design.md",
        "docs/fitness.md",
        "docs/gi.md",
        "docs/scaling.md",
    }


def test_readme_examples_run(in_tmp):
    write_gears_style_screen(in_tmp / "screen.h5ad")
    blocks = python_blocks("README.md")
    assert len(blocks) == 2
    run_blocks(blocks, "README.md")  # a reader runs them again, in the same folder
    namespace = run_blocks(blocks, "README.md")
    assert (in_tmp / "report" / "report.html").is_file()
    assert {"pred.h5ad", "real.h5ad"} <= {p.name for p in (in_tmp / "for_cell_eval").iterdir()}
    assert namespace["pred"].n_obs == 2 and namespace["cells"].n_obs == 100
    assert "magnitude" in namespace["scores"].columns and namespace["pairs"].n_obs == 6


def test_design_doc_example_runs(in_tmp):
    namespace = run_blocks(python_blocks("docs/design.md"), "docs/design.md")
    assert len(namespace["ranked"]) == 8


def test_fitness_doc_example_runs(in_tmp, shared_data):
    blocks = python_blocks("docs/fitness.md")
    assert blocks and SHARED_FITNESS in blocks[0]  # the first block reads the shared data
    blocks = [b.replace(SHARED_FITNESS, str(shared_data / "norman2019" / "gi")) for b in blocks]
    run_blocks(blocks, "docs/fitness.md")
    assert (in_tmp / "fitness_model.png").is_file()


def test_scaling_doc_examples_run(in_tmp):
    namespace = run_blocks(python_blocks("docs/scaling.md"), "docs/scaling.md")
    assert abs(namespace["on_cluster"].moments - namespace["in_memory"].moments).max() < 1e-9
    assert namespace["stats"].moments.shape == namespace["in_memory"].moments.shape
    assert type(namespace["lazy_zarr"].X).__module__.startswith("dask")
    assert abs(namespace["from_zarr"].moments - namespace["in_memory"].moments).max() < 1e-9
    screen, scores = namespace["screen"], namespace["result"].scores
    assert screen.isbacked and screen.file.is_open
    assert {"stacked", "additive", "mean", "replicate"} <= set(scores["model"])


def test_gi_doc_examples_run(in_tmp):
    namespace = run_blocks(python_blocks("docs/gi.md"), "docs/gi.md")
    scored = namespace["scored"]
    assert list(scored.index) == ["KLF1+MAP2K6", "KLF1+TGFBR2", "MAPK1+TGFBR2"]  # as the text says
    assert (scored["subtype"] == "redundancy").all() and scored["is_suppression"].all()
    assert set(scored["n_de"]) <= {2, 3} and scored["magnitude"].round(2).between(0.6, 0.79).all()
    assert (namespace["scores"]["flag"].str.startswith("too few DE genes")).sum() == 2
    tested = namespace["per_gene"]["p"].dropna()
    assert tested.min() > 0.005 and len(tested) == 427  # as the text says
    untested = namespace["per_gene"]["call"] == "untested"
    assert untested.sum() == 1073 and namespace["per_gene"].loc[untested, "p"].isna().all()
    assert namespace["replicated"].round(2).tolist() == [-0.19, 0.06, 0.04]  # as the text says
    pairs = namespace["pred"].obs[namespace["pred"].obs["n_targets"] == 2]
    assert pairs["sum_of_singles"].all()
    assert (in_tmp / "gi_map.png").is_file() and (in_tmp / "pair_prediction.png").is_file()


def test_the_api_reference_is_current_and_says_what_each_name_is():
    spec = importlib.util.spec_from_file_location(
        "api_reference", ROOT / "scripts/api_reference.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    text = script.api_text()
    written = (ROOT / script.PAGE).read_text(encoding="utf-8")
    assert written == text, "docs/api.md is stale: run python scripts/api_reference.py"
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    names = {ns: importlib.import_module(ns).__all__ for ns in script.NAMESPACES}
    assert len(rows) == sum(map(len, names.values()))  # every public name, once a namespace
    assert all(not row.endswith("|  |") for row in rows), "a public name without a summary"
    assert "| `evaluate()` | Train every model on every split seed" in text
