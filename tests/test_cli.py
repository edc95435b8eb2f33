from __future__ import annotations

from perturbsim.cli import main


def test_demo_summarises_trains_and_scores_the_bundled_screen(capsys, tmp_path):
    assert main(["--no-progress", "demo", "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "3375 cells x 500 genes" in out
    assert "top DE genes of KLF1:" in out
    for subgroup in ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"):
        assert subgroup in out
    for model in ("gears", "gears_residual_ensemble", "additive", "mean", "no_perturb"):
        assert model in out
    assert (tmp_path / "report" / "report.md").is_file()


def test_unknown_model_is_a_one_line_error(capsys, tmp_path):
    from perturbsim.ds._paths import bundled_path

    code = main(
        [
            "evaluate",
            str(bundled_path("norman2019_subset.h5ad")),
            "--control",
            "control",
            "--models",
            "gears,magic",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "unknown model 'magic'" in err and "\n" not in err
