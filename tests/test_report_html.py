"""The HTML report: parsed with the standard library, on a small evaluation of the tiny screen."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Sequence
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import UNCALIBRATED, one_condition_result

import perturbsim as ps
from perturbsim.cli import main
from perturbsim.io import _html
from perturbsim.io._html import _calibrated_section, _colour
from perturbsim.models import Additive, NoPerturbation, TrainMean

ODD = '<script>alert("x")</script> & co'
"""A model name that must come out escaped."""
MODELS = {"mean": TrainMean, "additive": Additive, "no_perturb": NoPerturbation, ODD: Additive}
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "wbr", "source"}
CELL = re.compile(r"^-?\d+\.\d{2}( \[-?\d+\.\d{2}, -?\d+\.\d{2}\])?$|^–$|^n/a$")


class Page(HTMLParser):
    """Tables, images and link targets of a page; fails on tags that do not nest."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.tables: list[dict] = []
        self.images: list[str] = []
        self.targets: list[str] = []
        self._cell: dict | None = None
        self._in_share = False  # inside the <span class="share"> of a partly covered score
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed tags: {self.stack}"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)
        self.targets += [attrs[k] for k in ("href", "src") if k in attrs]
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self.tables.append({"class": attrs.get("class", ""), "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append({"class": attrs.get("class", ""), "cells": []})
        elif tag == "span":
            self._in_share = attrs.get("class") == "share"
        elif tag in ("th", "td") and self.tables:
            self._cell = {
                "tag": tag,
                "text": "",
                "style": attrs.get("style", ""),
                "share": "",
                "class": attrs.get("class", ""),
            }
            self.tables[-1]["rows"][-1]["cells"].append(self._cell)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        self._in_share = False
        if tag in ("th", "td") and self._cell is not None:
            self._cell["text"] = self._cell["text"].strip()
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["share" if self._in_share else "text"] += data


def _header(table: dict) -> list[str]:
    return [c["text"] for c in table["rows"][0]["cells"]]


def _model_rows(table: dict) -> list[dict]:
    """Rows of models: a row header and one cell per subgroup (metric rows skipped)."""
    return [r for r in table["rows"][1:] if r["class"] != "metric"]


def _name(row: dict) -> str:
    """The model of a row, less the anchor tag (``baseline``, ``ceiling``)."""
    return re.sub(r"(baseline|ceiling)$", "", row["cells"][0]["text"])


@pytest.fixture(scope="module")
def result(_tiny_cached):
    progress, ps.settings.progress = ps.settings.progress, False
    try:
        return ps.tl.evaluate(_tiny_cached, models=MODELS, seeds=2)
    finally:
        ps.settings.progress = progress


@pytest.fixture(scope="module")
def report(result, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    ps.io.write_report(result, out, title="tiny & <small>")
    return out


@pytest.fixture(scope="module")
def text(report) -> str:
    return (report / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(text) -> Page:
    return Page(text)


def test_first_table_is_the_calibrated_one(result, page):
    table = page.tables[0]
    assert "calibrated" in table["class"]
    assert _header(table) == ["model", *result.subgroups]
    metrics = [r["cells"][0]["text"].split()[0] for r in table["rows"] if r["class"] == "metric"]
    assert metrics == ["pearson_delta_de", "nmse_de", "direction_error_de"]
    rows = _model_rows(table)
    assert [_name(r) for r in rows] == ["additive", "no_perturb", ODD] * len(metrics)
    cells = [c for r in rows for c in r["cells"][1:]]
    assert all(CELL.match(c["text"]) for c in cells), [c["text"] for c in cells]
    assert any("[" in c["text"] for c in cells), "two seeds give intervals"
    assert all(c["style"].startswith("background:#") for c in cells if c["text"][0].isdigit())
    coverage = result.coverage_table().set_index(["model", "subgroup"])
    for row in rows:
        for group, cell in zip(result.subgroups, row["cells"][1:], strict=True):
            covered, total = coverage.loc[(_name(row), group), ["n_covered", "n_total"]]
            partial = cell["text"] not in ("–", "n/a") and 0 < covered < total
            assert cell["share"] == (f"{covered}/{total}" if partial else "")

    calibrated = result.calibrated().set_index(["model", "subgroup", "metric"])
    expected = calibrated.loc[("no_perturb", "unseen_single", "nmse_de")]
    row = rows[len(rows) // len(metrics) + 1]  # nmse_de block, no_perturb
    assert _name(row) == "no_perturb"
    assert row["cells"][1]["text"] == (
        f"{expected['mean']:.2f} [{expected['ci_low']:.2f}, {expected['ci_high']:.2f}]"
    )


def test_coverage_then_one_raw_table_per_metric_with_both_anchors(result, page):
    kinds = [t["class"] for t in page.tables]
    assert kinds[:2] == ["calibrated", "calibrated"]  # headline metrics, then the others folded
    coverage = page.tables[2]
    assert coverage["class"] == "coverage"
    assert [_name(r) for r in _model_rows(coverage)] == result.models
    raw = [t for t in page.tables if "raw" in t["class"]]
    assert len(raw) == result.summary()["metric"].nunique()
    for table in raw:
        assert _header(table) == ["model", *result.subgroups]
        rows = {_name(r): r for r in _model_rows(table)}
        assert list(rows) == [*MODELS, "replicate"]
        assert rows["replicate"]["class"] == "ceiling"
        assert rows["replicate"]["cells"][0]["text"] == "replicateceiling"
        assert rows["mean"]["class"] == "baseline"
        assert rows["mean"]["cells"][0]["text"] == "meanbaseline"
    # the additive model covers no unseen single; the replicate covers every test condition
    first = {_name(r): r for r in _model_rows(raw[0])}
    assert first["additive"]["cells"][1]["text"] == "–"
    assert all(re.match(r"^\d", c["text"]) for c in first["replicate"]["cells"][1:])
    # each raw value with its interval as [low, high]: clipped to the metric's range, it is
    # not symmetric, so never "mean ± half-width"
    raw_cell = re.compile(r"^-?\d+\.\d{3}( \[-?\d+\.\d{3}, -?\d+\.\d{3}\])?$|^–$|^n/a$")
    texts = [c["text"] for t in raw for r in _model_rows(t) for c in r["cells"][1:]]
    assert all(raw_cell.match(text) for text in texts), texts
    assert not any(text.startswith("-0.000") for text in texts)


def test_models_tied_for_the_best_score_are_all_bold(result, page):
    # ODD is another additive model: the same predictions, the same scores, tied wherever
    # the additive model is best, and bold with it there
    summary = result.summary().set_index(["model", "subgroup", "metric"])["mean"]
    assert summary.xs("additive").equals(summary.xs(ODD))
    raw = [t for t in page.tables if "raw" in t["class"]]
    bold = [
        [("best" in c["class"].split()) for c in r["cells"][1:]]
        for t in raw
        for r in _model_rows(t)
        if _name(r) in ("additive", ODD)
    ]
    assert len(bold) == 2 * len(raw)
    assert bold[0::2] == bold[1::2]  # additive's row, then ODD's, of each table
    # a mean over part of a subgroup's conditions is of other conditions: never the best
    cells = [c for t in raw for r in _model_rows(t) for c in r["cells"][1:]]
    assert any(c["share"] for c in cells)
    assert not any(c["share"] and "best" in c["class"].split() for c in cells)
    assert any("best" in c["class"].split() for c in cells)


def test_plots_are_embedded_and_nothing_is_fetched(result, page, report):
    assert page.images
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    n_metrics = result.summary()["metric"].nunique()
    assert len(page.images) == len(list(report.glob("*.png"))) > n_metrics
    assert all(t.startswith(("#", "data:image/png;base64,")) for t in page.targets)
    assert not {"script", "link", "iframe", "object"} & set(page.tags)


def test_text_is_escaped(page, text):
    assert ODD not in text and escape(ODD) in text
    assert "<title>tiny &amp; &lt;small&gt;</title>" in text
    assert "script" not in page.tags


def test_report_html_is_written_beside_report_md(report):
    assert (report / "report.md").is_file()
    assert not list(report.glob(".*")), "temporary files left behind"
    markdown = (report / "report.md").read_text()
    assert markdown.index("## Calibrated scores") < markdown.index("## Coverage")
    assert "report.html" in markdown


def test_settings_written_in_the_page_are_escaped(result, tmp_path):
    odd = dataclasses.replace(result, settings={**result.settings, "n_cells": ODD})
    text = ps.io.write_html_report(odd, tmp_path / "page.html").read_text(encoding="utf-8")
    assert ODD not in text and escape(ODD) in text


def test_write_html_report_alone(result, tmp_path):
    path = ps.io.write_html_report(result, tmp_path / "new" / "page.html")
    assert path == tmp_path / "new" / "page.html"
    assert [p.name for p in path.parent.iterdir()] == ["page.html"]
    assert "calibrated" in Page(path.read_text(encoding="utf-8")).tables[0]["class"]
    # an existing page is kept unless told to replace it, as every other writer does
    path.write_text("mine")
    with pytest.raises(ps.PerturbsimError, match="page.html' already exists; pass overwrite=True"):
        ps.io.write_html_report(result, path)
    assert path.read_text() == "mine"
    assert ps.io.write_html_report(result, path, overwrite=True).read_text() != "mine"


def test_write_html_report_checks_its_input_and_path_as_write_report_does(
    result, tmp_path, monkeypatch
):
    # refused in one line before any plot is drawn, as write_report refuses its folder
    monkeypatch.setattr("perturbsim.io._report.report_plots", lambda *a, **k: pytest.fail())
    (tmp_path / "file").write_text("")
    for args, words in (
        (("x", tmp_path / "page.html"), "^result must be what perturbsim.tl.evaluate returns"),
        ((result, None), r"^path must be a path \(a str or os.PathLike\), got None"),
        ((result, tmp_path), f"^path {re.escape(repr(str(tmp_path)))} is a folder: give the"),
        ((result, tmp_path / "file" / "page.html"), "^cannot write the report .*'.*file' is a"),
    ):
        with pytest.raises(ps.PerturbsimError, match=words) as error:
            ps.io.write_html_report(*args)
        assert "\n" not in str(error.value)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_without_anchors_a_note_replaces_the_calibrated_table(_tiny_cached, tmp_path):
    result = ps.tl.evaluate(_tiny_cached, models=["no_perturb"], seeds=1, replicate=False)
    text = ps.io.write_html_report(result, tmp_path / "report.html").read_text()
    page = Page(text)
    assert "No calibrated scores" in text and "<code>mean</code>, <code>replicate</code>" in text
    assert "coverage" in page.tables[0]["class"]


def test_colour_scale_is_white_at_the_baseline_and_saturates():
    assert _colour(0.0) == ("#f7f7f7", "#1d232a")
    assert _colour(1.0)[0] == "#2166ac" and _colour(1.0)[1] == "#fff"
    assert _colour(-7.0) == _colour(-1.0) and _colour(9.0) == _colour(2.0)


def test_evaluate_prints_calibrated_scores_first(capsys, _tiny_cached, tmp_path):
    screen = ad.AnnData(
        X=_tiny_cached.X.copy(),
        obs=_tiny_cached.obs[["condition"]].astype(str),
        var=pd.DataFrame(index=_tiny_cached.var_names.copy()),
    )
    screen.write_h5ad(tmp_path / "screen.h5ad")
    args = ["--models", "additive,mean", "--seeds", "1", "--out", str(tmp_path / "out")]
    assert main(["evaluate", str(tmp_path / "screen.h5ad"), "--control", "control", *args]) == 0
    out = capsys.readouterr().out
    assert (
        out.index("calibrated scores") < out.index("mean over held-out") < out.index("can predict")
    )
    assert "report.html" in out and (tmp_path / "out" / "report.html").is_file()


def test_an_empty_calibrated_table_is_explained_by_what_the_evaluation_lacks():
    empty = pd.DataFrame()

    def note(models: list[str]) -> str:
        return " ".join(_calibrated_section(empty, ["mse"], models, ["unseen_single"], None))

    assert "lacks <code>replicate</code>" in note(["mean", "additive"])
    # both anchors there, no model to place between them (it said "lacks finite anchors")
    assert "ran no model but the anchors" in note(["mean", "replicate"])
    assert "no score of its models had two finite anchors" in note(["mean", "replicate", "gears"])


def test_models_tied_at_the_digits_shown_are_all_bold():
    # two means that read alike at the column's decimals are both the best there, as the
    # reader sees them; one a shown digit behind is not
    score = _html._Score  # one summary row: mean, interval, seeds, conditions
    scores = {
        (model, "single", "mse"): score(mean, mean - 0.1, mean + 0.1, 5, 20)
        for model, mean in (("a", 0.12341), ("b", 0.12349), ("c", 0.1251), ("mean", 0.2))
    }
    rows = _html._score_rows(
        scores,
        "mse",
        ["a", "b", "c", "mean"],
        ["single"],
        {},
        lambda s, best, share, digits: f"<td>{_html.number_text(s.mean, digits)}{'*' * best}</td>",
        better="lower",
        digits=lambda means: 3,
    )
    assert [re.findall(r"<td>([^<]*)</td>", row) for row in rows] == [
        ["0.123*"],
        ["0.123*"],
        ["0.125"],
        ["0.200"],
    ]


def test_a_report_without_anchors_says_so_once(_tiny_cached, tmp_path, caplog):
    result = ps.tl.evaluate(_tiny_cached, models=["no_perturb"], seeds=1, replicate=False)
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.io.write_report(result, tmp_path / "report")
    assert caplog.text.count("no calibrated scores") == 1


def test_an_undefined_uncertainty_summary_reads_n_a_not_nan():
    import numpy as np

    from perturbsim.tl import EvaluationResult
    from perturbsim.tl._uncertainty import UNCERTAINTY_COLUMNS

    rng = np.random.default_rng(0)
    rows = [  # one condition a subgroup: nothing to rank within a subgroup
        ["m", seed, group, condition, *rng.random(len(UNCERTAINTY_COLUMNS) - 4)]
        for seed in (1, 2)
        for group, condition in (
            ("unseen_single", "A"),
            ("combo_seen1", "B+C"),
            ("combo_seen0", "A+B"),
        )
    ]
    result = EvaluationResult(
        scores=pd.DataFrame(),
        coverage=pd.DataFrame(),
        uncertainty=pd.DataFrame(rows, columns=UNCERTAINTY_COLUMNS),
    )
    table = _html.uncertainty_table(result).set_index("model")
    assert table.loc["m", "Spearman within subgroups (DE)"] == "n/a"
    assert re.fullmatch(r"-?\d\.\d\d \[.*\]", table.loc["m", "Spearman (DE)"])


def test_models_whose_names_share_a_file_name_keep_a_figure_each():
    from perturbsim.io._report import _file_stems

    stems = _file_stems(["g u", "g_u", "KLF1+MAP2K6", "g u"])
    assert stems["KLF1+MAP2K6"] == "KLF1_MAP2K6"  # alone with its slug: as it reads
    assert len({stems["g u"], stems["g_u"]}) == 2
    assert all(stems[name].startswith("g_u-") for name in ("g u", "g_u"))
    assert _file_stems(["g_u", "g u"]) == {k: stems[k] for k in ("g_u", "g u")}  # any order


def test_a_report_of_the_anchors_alone_says_so_in_both_forms(norman):
    from perturbsim.io._report import markdown_report

    anchors = ps.tl.evaluate(norman, models=["mean"], seeds=1, gi=False)
    why = "this evaluation ran no model but the anchors, which they place models between"
    assert f"## Calibrated scores\n\nNone: {why}." in markdown_report(anchors)
    assert f"No calibrated scores: {why}." in _html.html_report(anchors)


def _uncertainty_rows(
    model: str, seeds: int, inside: dict[str, float], spread: Sequence[float] = ()
) -> pd.DataFrame:
    """Rows of ``result.uncertainty``: 4 conditions per seed, shares ``inside`` (+/- 0.01).

    ``spread``: a shift of every share of each seed (none by default).
    """
    from perturbsim.tl._uncertainty import GENE_SETS, LEVELS, UNCERTAINTY_COLUMNS, inside_column

    rows = []
    for seed in range(1, seeds + 1):
        for i in range(4):
            row = {"model": model, "seed": seed, "subgroup": "g", "condition": f"c{i}"}
            row |= {"uncertainty": 1.0 + i, "error_de": 1.0 + i, "error_all": 1.0 + i}
            for genes in GENE_SETS:
                for level in LEVELS:
                    share = inside.get(f"{genes}_{round(100 * level)}", level)
                    shift = spread[seed - 1] if spread else 0.0
                    row[inside_column(genes, level)] = share + 0.01 * (i - 1.5) + shift
            rows.append(row)
    return pd.DataFrame(rows, columns=UNCERTAINTY_COLUMNS)


def _reported_with(uncertainty: pd.DataFrame) -> ps.tl.EvaluationResult:
    """A result of 3 seeds of 4 conditions, anchors included, with ``uncertainty``'s rows."""
    models = list(dict.fromkeys(uncertainty["model"]))
    scores = pd.DataFrame(
        [
            (m, seed, "g", f"c{i}", "pearson_delta_de", value)
            for seed in (1, 2, 3)
            for i in range(4)
            for m, value in [
                *((m, 0.5) for m in models),
                ("mean", 0.1 * i),
                ("replicate", 0.6 + 0.1 * i),
            ]
        ],
        columns=["model", "seed", "subgroup", "condition", "metric", "value"],
    )
    return dataclasses.replace(
        ps.tl.EvaluationResult(
            scores=scores,
            coverage=pd.DataFrame(columns=["model", "seed", "subgroup", "n_covered", "n_total"]),
            settings={"models": [*models, "mean", "replicate"]},
        ),
        uncertainty=uncertainty,
    )


def test_the_report_says_plainly_where_intervals_miss_their_level():
    narrow = _uncertainty_rows("narrow", 3, {"de_50": 0.27, "de_90": 0.64})
    wide = _uncertainty_rows("wide", 1, {"all_50": 0.75, "all_90": 0.99})
    mixed = _uncertainty_rows("mixed", 3, {"de_50": 0.6, "de_90": 0.8})
    near = _uncertainty_rows("near", 3, {"de_50": 0.54, "all_90": 0.83})  # held; missed
    # 0.07 from its level on average, but seeds this far apart leave the level inside
    loose = _uncertainty_rows("loose", 3, {"de_50": 0.43, "all_90": 0.83}, [-0.07, 0.0, 0.07])
    result = dataclasses.replace(
        ps.tl.EvaluationResult(scores=pd.DataFrame(), coverage=pd.DataFrame()),
        uncertainty=pd.concat([narrow, wide, mixed, near, loose], ignore_index=True),
    )
    verdicts = _html.calibration_verdicts(result)
    assert verdicts[0] == (
        "narrow: intervals too narrow on the top DE genes (0.27 inside the 50 % intervals, "
        "0.64 inside the 90 % intervals)"
    )
    assert verdicts[1].startswith("wide: intervals too wide on all genes (0.75 inside")
    assert verdicts[2].startswith("mixed: intervals not normal in shape on the top DE genes")
    assert len(verdicts) == 4  # near's 50 % intervals hold their level: only the miss is said
    assert verdicts[3] == "near: intervals too narrow on all genes (0.83 inside the 90 % intervals)"
    # both forms of the report say them, under the uncertainty table
    from perturbsim.io._report import markdown_report

    reported = _reported_with(narrow)
    text = markdown_report(reported)
    assert f"- {verdicts[0]}." in text[text.index("## Uncertainty") :]
    page = _html.html_report(reported)
    assert f'<p class="note">{escape(verdicts[0])}.</p>' in page[page.index('id="uncertainty"') :]


def test_a_model_with_no_point_to_draw_gets_no_uncertainty_plot(tmp_path):
    drawn = _uncertainty_rows("drawn", 3, {})
    blind = _uncertainty_rows("blind", 3, {})
    blind["error_de"] = np.nan  # no DE gene left to score any condition on
    ps.io.write_report(_reported_with(pd.concat([drawn, blind], ignore_index=True)), tmp_path)
    assert (tmp_path / "uncertainty_drawn.png").is_file()
    assert not (tmp_path / "uncertainty_blind.png").exists()


def test_a_value_scored_on_fewer_conditions_than_covered_says_on_how_many():
    from perturbsim.io._report import markdown_report
    from perturbsim.pl._plots import metric_bars

    # 'flat' covers the 4 unseen singles of each of 2 seeds, but its correlation is defined
    # on one a seed (a change predicted as none elsewhere): 2 of 8 scores
    rows = []
    for seed in (1, 2):
        for i in range(4):
            condition = f"G{seed}{i}"
            values = {"flat": 0.4 if i == 0 else float("nan"), "full": 0.3}
            values |= {"mean": 0.1 * i, "replicate": 0.5 + 0.1 * i}  # the anchors
            for model, value in values.items():
                rows.append((model, seed, "unseen_single", condition, "pearson_delta_de", value))
    scores = pd.DataFrame(
        rows, columns=["model", "seed", "subgroup", "condition", "metric", "value"]
    )
    models = ["flat", "full", "mean", "replicate"]
    coverage = pd.DataFrame(
        [(m, seed, "unseen_single", 4, 4) for m in models for seed in (1, 2)],
        columns=["model", "seed", "subgroup", "n_covered", "n_total"],
    )
    result = ps.tl.EvaluationResult(scores=scores, coverage=coverage, settings={"models": models})
    text = markdown_report(result)
    raw = text[text.index("## Results") :]
    assert "| 0.400 [0.400, 0.400] (2/8) | 0.300 [0.300, 0.300] |" in raw
    calibrated = text[text.index("## Calibrated scores") : text.index("## Coverage")]
    assert calibrated.count("(2/8)") == 1  # flat's alone, in the headline table too
    page = _html.html_report(result)
    for section in ('id="metrics"', 'id="calibrated"'):
        part = page[page.index(section) :]
        flat = re.search(r"<th>flat</th><td[^>]*>(.*?)</td>", part)
        assert flat is not None and '<span class="share">2/8</span>' in flat.group(1)
    assert "scored on 2 of 8 test conditions only" in page
    table = page[page.index('id="metrics"') :].split("</table>")[0]
    assert re.search(r"<th>flat</th><td class=\"num\"", table)  # above full's, on fewer
    assert re.search(r"<th>full</th><td class=\"num best\"", table)
    ax = metric_bars(result, metric="pearson_delta_de")
    assert "2/8" in [t.get_text() for t in ax.texts]


def test_the_interaction_table_says_when_a_seed_had_no_pairs_to_compare():
    def rows(seeds, n_pairs):
        return pd.DataFrame(
            {
                "model": "stacked",
                "seed": seeds,
                "subtype": "synergy",
                "n_pairs": n_pairs,
                "n_genes": 100,
                "precision_at_k": 0.5,
                "random_precision": 0.4,
                "top_k_accuracy": 0.0,
                "r2": 0.1,
                "truth": "simulated",
            }
        )

    def table(gi, seeds):
        result = ps.tl.EvaluationResult(
            scores=pd.DataFrame(), coverage=pd.DataFrame(), gi=gi, settings={"seeds": seeds}
        )
        return _html.gi_precision_table(result).set_index("model")

    # seed 3 held no pair out: the mean of 2 and 3 pairs is over two seeds of three
    assert table(rows([1, 2], [2, 3]), [1, 2, 3]).loc["stacked", "pairs per seed"] == (
        "2.5 (2 of 3 seeds with pairs scored)"
    )
    assert table(rows([1, 2], [2, 3]), [1, 2]).loc["stacked", "pairs per seed"] == "2.5"


def test_a_calibrated_score_is_pale_only_where_its_interval_spans_both_anchors():
    # pale: the colour mixed with 70 % white (the replicate's blue #2166ac -> #bcd1e6),
    # and only where the interval holds both 0 and 1, not where it reaches one of them
    assert _colour(1.0, pale=True) == ("#bcd1e6", "#1d232a")
    score = _html._Score  # mean, interval, seeds, conditions

    def style(low, high):
        cell = _html._calibrated_cell(score(0.5, low, high, 3, 10), False, "", 2)
        return re.search(r'style="([^"]*)"', cell).group(1), "spans both anchors" in cell

    plain = (f"background:{_colour(0.5)[0]};color:{_colour(0.5)[1]}", False)
    assert style(0.2, 0.8) == style(-0.2, 0.8) == style(0.2, 1.3) == plain
    assert style(-0.2, 1.3) == (f"background:{_colour(0.5, pale=True)[0]};color:#1d232a", True)


def test_a_column_where_one_model_alone_is_scored_on_all_conditions_has_no_best():
    # a best needs a rival: where the others were scored on part of the conditions only,
    # the one model scored on all of them is not marked best by default
    score = _html._Score
    scores = {
        (model, group, "mse"): score(mean, mean - 0.1, mean + 0.1, 2, 8)
        for group in ("alone", "rivals")
        for model, mean in (("a", 0.1), ("b", 0.3), ("mean", 0.2))
    }
    shares = {("a", "alone"): (2, 8), ("b", "alone"): (3, 8), ("mean", "alone"): (8, 8)}
    shares |= {(m, "rivals"): (8, 8) for m in ("a", "b", "mean")}
    rows = _html._score_rows(
        scores,
        "mse",
        ["a", "b", "mean"],
        ["alone", "rivals"],
        shares,
        lambda s, best, share, digits: f"<td>{_html.number_text(s.mean, digits)}{'*' * best}</td>",
        better="lower",
        digits=lambda means: 3,
    )
    assert [re.findall(r"<td>([^<]*)</td>", row) for row in rows] == [
        ["0.100", "0.100*"],
        ["0.300", "0.300"],
        ["0.200", "0.200"],
    ]


def test_a_subtype_that_every_pair_or_no_pair_truly_has_ranks_nothing():
    assert _html._precision_cell(1.0, 1.0) == "– (all true)"
    assert _html._precision_cell(0.0, 0.0) == "– (none true)"
    assert _html._precision_cell(0.7, 0.63) == "0.70 (0.63)"


def test_coverage_cells_mark_partial_and_missing_coverage():
    shares = {("all", "g"): (4, 4), ("part", "g"): (2, 4), ("none", "g"): (0, 4)}
    table = Page(_html._coverage_table(shares, ["all", "part", "none"], ["g"])).tables[0]
    cells = [r["cells"][1] for r in _model_rows(table)]
    assert [(c["text"], c["class"]) for c in cells] == [
        ("4 / 4", "num"),
        ("2 / 4", "num partial"),
        ("0 / 4", "num none"),
    ]


def _changes(*conditions):
    """Rows of ``result.changes``: (seed, subgroup, condition, models, measured change)."""
    rows = [
        (model, seed, group, condition, gene, 0.5 * value, value)
        for seed, group, condition, models, measured in conditions
        for model in models
        for gene, value in zip(("g1", "g2"), measured, strict=True)
    ]
    columns = ["model", "seed", "subgroup", "condition", "gene", "predicted", "measured"]
    return pd.DataFrame(rows, columns=columns)


def test_the_plotted_conditions_are_those_most_models_predict_then_the_clearest():
    from perturbsim.io._report import chosen_conditions

    changes = _changes(
        (2, "combo_seen0", "X+Y", ["a"], [0.5, 0.5]),
        (2, "unseen_single", "A", ["a", "b"], [0.1, -0.1]),
        (2, "unseen_single", "B", ["a"], [3.0, -3.0]),  # the clearest, of one model only
        (2, "unseen_single", "D", ["a", "b"], [1.0, -1.0]),
        (2, "unseen_single", "C", ["a", "b"], [-1.0, 1.0]),  # as clear as D: the label decides
        (1, "unseen_single", "E", ["a", "b", "c"], [2.0, 2.0]),  # of the second seed
    )
    result = ps.tl.EvaluationResult(
        scores=pd.DataFrame(), coverage=pd.DataFrame(), changes=changes, settings={"seeds": [2, 1]}
    )
    assert chosen_conditions(result).values.tolist() == [
        [2, "unseen_single", "C"],
        [2, "combo_seen0", "X+Y"],
    ]


def test_a_scatter_of_falling_genes_keeps_every_point_in_square_limits():
    from perturbsim.io._report import _scatter_figure

    changes = _changes((1, "unseen_single", "A", ["a", "b"], [-3.0, -1.0]))
    result = ps.tl.EvaluationResult(
        scores=pd.DataFrame(),
        coverage=pd.DataFrame(),
        changes=changes,
        settings={"seeds": [1], "models": ["a", "b"]},
    )
    figure = _scatter_figure(result, 1, "unseen_single", "A")
    for ax in figure.axes:
        assert ax.get_xlim() == pytest.approx((-3.24, 3.24))
        assert ax.get_ylim() == pytest.approx((-3.24, 3.24))


def test_markdown_cells_keep_a_pipe_inside_their_column():
    from perturbsim.io._report import _markdown_table

    table = _markdown_table(["model", "error"], [["a|b", "ValueError: x | y"]])
    assert table.splitlines()[-1] == "| a\\|b | ValueError: x \\| y |"


def test_markdown_raw_values_take_the_digits_of_their_size_calibrated_ones_three():
    from perturbsim.io._report import _summary_table

    table = pd.DataFrame(
        {
            "model": ["a", "b"],
            "subgroup": "g",
            "metric": "mse_de",
            "mean": [0.0004, 0.0012],
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "n_conditions": 4,
        }
    )
    covered = {("a", "g"): (4, 4), ("b", "g"): (4, 4)}
    raw = _summary_table(table, ["mse_de"], ["a", "b"], ["g"], covered)
    assert raw.splitlines()[-1] == "| g | 0.00040 | 0.00120 |"
    calibrated = _summary_table(table, ["mse_de"], ["a", "b"], ["g"], covered, raw=False)
    assert calibrated.splitlines()[-1] == "| g | 0.000 | 0.001 |"


def test_the_markdown_report_names_and_calibrates_the_models_apart_from_the_replicate():
    from perturbsim.io._report import markdown_report

    values = {"a": lambda i: 0.4, "mean": lambda i: 0.1 * i, "replicate": lambda i: 0.5 + 0.1 * i}
    scores = pd.DataFrame(
        [
            (m, seed, "unseen_single", f"G{seed}{i}", "pearson_delta_de", value(i))
            for seed in (1, 2)
            for i in range(4)
            for m, value in values.items()
        ],
        columns=["model", "seed", "subgroup", "condition", "metric", "value"],
    )
    coverage = pd.DataFrame(
        [(m, seed, "unseen_single", 4, 4) for m in values for seed in (1, 2)],
        columns=["model", "seed", "subgroup", "n_covered", "n_total"],
    )
    result = ps.tl.EvaluationResult(
        scores=scores, coverage=coverage, settings={"models": list(values)}
    )
    text = markdown_report(result)
    assert "Models: `a`, `mean`.  " in text.splitlines()
    calibrated = text[text.index("## Calibrated scores") : text.index("## Coverage")]
    assert [line for line in calibrated.splitlines() if line.startswith("| metric")] == [
        "| metric | subgroup | `a` |"
    ]


def test_the_replicate_s_scatter_names_its_axes_as_halves_of_the_cells():
    from perturbsim.io._report import _scatter_figure

    models = ["a", "b", "replicate"]
    result = ps.tl.EvaluationResult(
        scores=pd.DataFrame(),
        coverage=pd.DataFrame(),
        changes=_changes((1, "unseen_single", "A", models, [1.0, -1.0])),
        settings={"seeds": [1], "models": models},
    )
    axes = [ax for ax in _scatter_figure(result, 1, "unseen_single", "A").axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == models
    # the models' shared axes named briefly at the grid's edges, the unit in the title
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in axes[:2]] == [
        ("measured change", "predicted change"),
        ("measured change", ""),  # the row's axis is named once, at its left
    ]
    title = axes[0].figure.get_suptitle()
    assert title.endswith("top DE genes, change over control (log-normalised expression)")
    assert (axes[2].get_xlabel(), axes[2].get_ylabel()) == (
        "change in the other half",
        "change in one half",
    )


@pytest.mark.parametrize("replicate_rows", [True, False])
def test_a_metric_calibrated_nowhere_is_named_not_tabled(tmp_path, replicate_rows):
    # direction_error_de: the replicate's halves worse than the mean everywhere, or no
    # replicate rows of it at all: either way no calibrated score
    result = one_condition_result(UNCALIBRATED)
    if not replicate_rows:
        kept = result.scores.query("not (model == 'replicate' and metric == 'direction_error_de')")
        result = dataclasses.replace(result, scores=kept.reset_index(drop=True))
    assert "direction_error_de" not in set(result.calibrated().dropna(subset=["mean"])["metric"])
    ps.io.write_report(result, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    section = markdown.split("## Calibrated scores")[1].split("## Coverage")[0]
    # the one metric left is named in its table (0.5 / 0.75 at full depth)
    assert "| `pearson_delta_de` | unseen_single | 0.667 [0.667, 0.667] |" in section
    assert "| `direction_error_de` |" not in section
    assert "Not shown, undefined for every model and subgroup: `direction_error_de`." in section
    page = Page((tmp_path / "report" / "report.html").read_text(encoding="utf-8"))
    table = page.tables[0]
    assert "calibrated" in table["class"]
    metrics = [r["cells"][0]["text"].split()[0] for r in table["rows"] if r["class"] == "metric"]
    assert metrics == ["pearson_delta_de"]
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "undefined for every model and subgroup: <code>direction_error_de</code>" in html


def test_both_reports_show_the_default_head_to_head_with_each_model(_tiny_cached):
    from perturbsim.io._report import markdown_report

    progress, ps.settings.progress = ps.settings.progress, False
    try:
        result = ps.tl.evaluate(_tiny_cached, models=["stacked", "additive", "mean"], seeds=2)
    finally:
        ps.settings.progress = progress
    duel = result.head_to_head("stacked").set_index(["model", "metric", "subgroup"])
    cell = duel.loc[("additive", "pearson_delta_de", "combo_seen2")]
    expected = _html.difference_text(cell["mean"], cell["ci_low"], cell["ci_high"])
    assert re.fullmatch(r"[+-]\d\.\d\d \[[+-]\d\.\d\d, [+-]\d\.\d\d\]", expected)
    markdown = markdown_report(result)
    assert markdown.index("## Coverage") < markdown.index("## Head to head")

    def cells_of(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    lines = markdown.splitlines()
    row = cells_of(next(line for line in lines if "| `additive` | `pearson_delta" in line))
    header = cells_of(next(line for line in lines if line.startswith("| model | metric")))
    assert row[header.index("combo_seen2")] == expected
    page = Page(_html.html_report(result))
    assert "#head-to-head" in page.targets  # the section is in the page's links
    plain = [t for t in page.tables if t["class"] == "plain"]
    cells = [[c["text"] for c in r["cells"]] for t in plain for r in t["rows"]]
    assert ["additive", "pearson_delta_de"] == next(c[:2] for c in cells if c[0] == "additive")
    assert expected in {text for row in cells for text in row}


def test_a_default_model_s_history_is_titled_as_its_gears_part():
    from perturbsim.io._report import _history_title

    for name in ("stacked", "stacked_no_partial_sum"):  # the default and its variants
        assert _history_title(name) == (
            f"{name}'s GEARS part: training\n(weighted on held-out conditions, possibly 0)"
        )
    assert _history_title("gears") == "gears training"
    assert _history_title("a_model_of_mine") == "a_model_of_mine training"  # no claim on it
