from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import make_screen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.pp._labels import genes_of
from perturbsim.pp._split import Split, make_split, split, subgroup_name

PAIR_GROUPS = {"unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"}


def all_conditions(adata):
    return set(adata.obs["perturbsim_condition"].astype(str))


def check_invariants(adata, s: Split):
    """Partition, ctrl in train, obs columns consistent with uns, subgroups consistent."""
    train, val, test, excl = map(set, (s.train, s.val, s.test, s.excluded))
    assert not (train & val or train & test or val & test or excl & (train | val | test))
    assert train | val | test | excl == all_conditions(adata)
    assert "ctrl" in train
    assert set().union(*map(set, s.subgroups.values())) == test if s.subgroups else not test
    assert set().union(*map(set, s.val_subgroups.values())) == val if s.val_subgroups else not val
    assert all(s.subgroups.values()) and all(s.val_subgroups.values())
    cond = adata.obs["perturbsim_condition"].astype(str)
    assert (adata.obs["perturbsim_split"].astype(str) == cond.map(s.set_of)).all()
    assert (adata.obs["perturbsim_subgroup"].astype(str) == cond.map(s.subgroup_of)).all()
    assert Split.from_adata(adata) == s


def seen_count(cond, seen):
    return sum(g in seen for g in genes_of(cond))


def test_simulation_on_norman_represents_every_subgroup_over_seeds(norman):
    for seed in range(5):
        assert split(norman, kind="simulation", seed=seed) is None
        table = ps.pp.split_summary(norman)
        s = Split.from_adata(norman)
        check_invariants(norman, s)
        assert set(s.subgroups) == PAIR_GROUPS, seed
        test_rows = table[table["set"] == "test"]
        assert sorted(test_rows["subgroup"]) == sorted(s.subgroups)
        # train keeps control, singles and pairs; validation exists
        assert set(table.loc[table["set"] == "train", "subgroup"]) == {"ctrl", "single", "combo"}
        assert s.val


def test_simulation_subgroups_follow_gears_seen_genes(norman):
    split(norman, kind="simulation", seed=2)
    s = Split.from_adata(norman)
    seen = set(s.seen_genes)
    perturbed = {g for c in all_conditions(norman) for g in genes_of(c)}
    assert len(perturbed) == 31 and len(seen) == int(31 * 0.75)
    for name, members in s.subgroups.items():
        for cond in members:
            assert subgroup_name(len(genes_of(cond)), seen_count(cond, seen)) == name
    for cond in s.train + s.val:  # nothing with an unseen gene is trained on
        assert set(genes_of(cond)) <= seen
    singles = {c for c in all_conditions(norman) if len(genes_of(c)) == 1}
    for cond in singles:  # singles of seen genes are never tested
        assert (cond in s.test) == (cond not in seen)
    # the held-out pairs with both genes seen are a quarter (int(m * 0.75) stay in train)
    both_seen = [
        c for c in all_conditions(norman) if len(genes_of(c)) == 2 and seen_count(c, seen) == 2
    ]
    train_val_pairs = [c for c in both_seen if c not in s.test]
    assert len(train_val_pairs) == int(len(both_seen) * 0.75)


def test_validation_mimics_test_within_training_genes(norman):
    split(norman, kind="simulation", seed=4)
    s = Split.from_adata(norman)
    train_genes = {g for c in s.train for g in genes_of(c)}
    assert set(s.val_subgroups) >= {"unseen_single", "combo_seen1"}
    for name, members in s.val_subgroups.items():
        n_seen = 0 if name == "unseen_single" else int(name[-1])  # combo_seenK: K
        for cond in members:  # genes unseen by the validation draw are absent from train
            assert sum(g in train_genes for g in genes_of(cond)) <= n_seen
            assert set(genes_of(cond)) <= set(s.seen_genes)


def test_same_seed_same_split_different_seeds_differ(norman):
    first = make_split(norman, seed=7)
    assert make_split(norman.copy(), seed=7) == first
    others = [make_split(norman, seed=s) for s in (8, 9)]
    assert any(o.test != first.test for o in others)
    ps.settings.seed = 7
    try:
        assert make_split(norman) == first
    finally:
        ps.settings.seed = 0
    for bad in (-1, "a", 1.5, True):  # refused when set, not by a library at the next draw
        with pytest.raises(
            PerturbsimError, match=r"^settings.seed must be a whole number >= 0 and < 2\*\*32"
        ):
            ps.settings.seed = bad
    assert ps.settings.seed == 0


def test_single_split_excludes_combinations(norman):
    assert split(norman, kind="single", seed=0) is None
    table = ps.pp.split_summary(norman)
    s = Split.from_adata(norman)
    check_invariants(norman, s)
    assert set(s.excluded) == {c for c in all_conditions(norman) if len(genes_of(c)) == 2}
    assert set(s.subgroups) == {"unseen_single"} and len(s.test) == 18 - int(18 * 0.75)
    assert set(s.val_subgroups) == {"unseen_single"}
    assert not set(s.test) & set(s.seen_genes)
    assert (norman.obs["perturbsim_split"] == "excluded").sum() == 1480
    assert table.loc[table["set"] == "excluded", "n_conditions"].item() == 15


def test_combo_split_keeps_singles_and_holds_out_pairs_by_measured_singles(norman):
    split(norman, kind="combo", seed=3)
    s = Split.from_adata(norman)
    check_invariants(norman, s)
    singles = {c for c in all_conditions(norman) if len(genes_of(c)) == 1}
    assert singles <= set(s.train)
    assert set(s.seen_genes) == singles
    # Norman subset: 5 pairs with both singles measured, 3 with one, 7 with none
    assert {k: len(v) for k, v in s.subgroups.items()} == {
        "combo_seen0": 3,
        "combo_seen1": 1,
        "combo_seen2": 2,
    }
    for name, members in s.subgroups.items():
        for cond in members:
            assert name == subgroup_name(2, seen_count(cond, singles))
    assert len(s.val) == 1 and all(len(genes_of(c)) == 2 for c in s.val)


def test_custom_split_canonicalises_labels_and_names_subgroups(norman):
    assert split(norman, kind="custom", test_conditions=["SET+KLF1", "KLF1+ctrl", "FOXO4"]) is None
    table = ps.pp.split_summary(norman)
    s = Split.from_adata(norman)
    check_invariants(norman, s)
    assert s.test == ["FOXO4", "KLF1", "KLF1+SET"]
    # KLF1 is perturbed in training pairs (KLF1+MAP2K6, ...); FOXO4 only alone; SET only here
    assert s.subgroups == {
        "combo_seen1": ["KLF1+SET"],
        "seen_single": ["KLF1"],
        "unseen_single": ["FOXO4"],
    }
    assert set(table.loc[table["set"] == "test", "subgroup"]) == set(s.subgroups)
    with pytest.raises(PerturbsimError, match="'NOPE\\+KLF1'"):
        split(norman, kind="custom", test_conditions=["KLF1", "NOPE+KLF1"])
    with pytest.raises(PerturbsimError, match="control"):
        split(norman, kind="custom", test_conditions=["control"])
    with pytest.raises(PerturbsimError, match=r"'klf1' is not .*; did you mean 'KLF1'\? \(labels"):
        split(norman, kind="custom", test_conditions=["klf1"])
    with pytest.raises(PerturbsimError, match=r"'map2k6\+klf1' .*did you mean 'KLF1\+MAP2K6'"):
        split(norman, kind="custom", test_conditions=["map2k6+klf1"])
    with pytest.raises(PerturbsimError, match=r"'klf1\+MAP2K6' .*did you mean 'KLF1\+MAP2K6'"):
        split(norman, kind="custom", test_conditions=["klf1+MAP2K6"])  # sorted otherwise
    with pytest.raises(PerturbsimError, match="test_conditions"):
        split(norman, kind="custom")
    with pytest.raises(PerturbsimError, match=r"a string: give \['FOXO4'\]"):
        split(norman, kind="custom", test_conditions="FOXO4")
    # the split reads a condition as the screen writes it, canonical or with '+' and 'ctrl'
    assert [s.set_of(c) for c in ("control", "Control", "ctrl", "SET+KLF1")] == [
        "train",
        "train",
        "train",
        "test",
    ]
    assert s.subgroup_of("KLF1+control") == s.subgroup_of("KLF1+ctrl") == "seen_single"
    with pytest.raises(PerturbsimError, match="'NOPE' is not part of this split"):
        s.set_of("NOPE")
    with pytest.raises(PerturbsimError, match="'KLF1\\+KLF1': gene 'KLF1' appears twice"):
        s.set_of("KLF1+KLF1")  # a malformed label is told so, not sought
    labels = ["SET+KLF1", "KLF1+ctrl", "FOXO4"]
    for test in (np.array(labels), pd.Series(labels), pd.Index(labels)):  # any sequence
        split(norman, kind="custom", test_conditions=test)
        assert Split.from_adata(norman).test == ["FOXO4", "KLF1", "KLF1+SET"]


def test_a_split_reads_the_labels_of_a_screen_with_its_own_control_and_separator():
    adata = make_screen(["NegCtrl0_NegCtrl0", "KLF1_NegCtrl0", "NegCtrl0_FOXO4", "FOXO4_KLF1"])
    ps.pp.setup(adata, control="NegCtrl0_NegCtrl0", sep="_")
    s = make_split(adata, kind="custom", test_conditions=["KLF1_FOXO4"], val_fraction=0)
    assert (s.control, s.sep) == ("NegCtrl0_NegCtrl0", "_")
    assert s.set_of("KLF1_FOXO4") == s.set_of("FOXO4+KLF1") == "test"
    assert s.subgroup_of("FOXO4_KLF1") == "combo_seen2"
    assert s.set_of("NegCtrl0_KLF1") == s.set_of("NegCtrl0_NegCtrl0") == "train"
    with pytest.raises(PerturbsimError, match="'Control' is the control"):
        make_split(adata, kind="custom", test_conditions=["Control"])
    split(adata, kind="custom", test_conditions=["KLF1_FOXO4"], val_fraction=0)
    assert Split.from_adata(adata) == s  # read back with the screen's words


def test_custom_split_reproduces_reference_test_set(norman, shared_data):
    ref = json.loads((shared_data / "norman2019" / "reference_split.json").read_text())
    split(norman, kind="custom", test_conditions=ref["test"], val_fraction=0)
    s = Split.from_adata(norman)
    assert len(s.test) == len(ref["test"]) == 16
    assert "KLF1+SET" in s.test and "KLF1" in s.test  # from 'SET+KLF1' and 'KLF1+ctrl'
    assert not s.val
    # the reference also trained on the single IER5L-free conditions it kept
    assert set(s.train) >= {"ctrl", "MAP4K5", "CEBPE+RUNX1T1"}


def test_summary_table_has_a_row_per_subgroup_and_counts_every_cell(norman):
    assert split(norman, kind="simulation", seed=1) is None
    table = ps.pp.split_summary(norman)
    s = Split.from_adata(norman)
    assert list(table.columns) == ["set", "subgroup", "n_conditions", "n_cells"]
    assert set(table.loc[table["set"] == "val", "subgroup"]) == set(s.val_subgroups)
    assert not table.duplicated(["set", "subgroup"]).any()
    assert table["n_cells"].sum() == norman.n_obs
    assert table["n_conditions"].sum() == 34
    for _, row in table[table["set"] == "test"].iterrows():
        assert row["n_conditions"] == len(s.subgroups[row["subgroup"]])
        cells = norman.obs["perturbsim_subgroup"] == row["subgroup"]
        assert row["n_cells"] == cells.sum()


def test_split_round_trips_through_h5ad(norman, tmp_path):
    split(norman, kind="simulation", seed=5)
    path = tmp_path / "split.h5ad"
    norman.write_h5ad(path)
    again = ad.read_h5ad(path)
    assert Split.from_adata(again) == Split.from_adata(norman)
    np.testing.assert_array_equal(again.obs["perturbsim_split"], norman.obs["perturbsim_split"])
    split(norman, kind="single", seed=5, val_fraction=0)  # empty val, excluded conditions
    norman.write_h5ad(path)
    again = ad.read_h5ad(path)
    assert Split.from_adata(again) == Split.from_adata(norman)
    assert Split.from_adata(again).val == []


def test_split_to_adata_rejects_foreign_conditions(norman):
    s = make_split(norman, seed=0)
    other = make_screen(["ctrl", "A", "B"])
    ps.pp.setup(other, control="ctrl")
    with pytest.raises(PerturbsimError, match="in no set"):
        s.to_adata(other)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "random"}, "'random'"),
        ({"train_gene_fraction": 1.0}, "train_gene_fraction"),
        ({"combo_seen2_train_fraction": 0}, "combo_seen2_train_fraction"),
        ({"val_fraction": -0.1}, r"^val_fraction must lie in \[0, 1\), got -0.1$"),
        ({"val_fraction": "0.1"}, r"^val_fraction must lie in \[0, 1\), got '0.1'$"),
        ({"combo_test_fraction": 1.5}, "combo_test_fraction"),
        ({"test_conditions": ["KLF1"]}, "custom"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_one_line_errors(norman, kwargs, match):
    with pytest.raises(PerturbsimError, match=match) as err:
        split(norman, **kwargs)
    assert "\n" not in str(err.value)


def test_not_set_up_and_too_small_screens_raise():
    with pytest.raises(PerturbsimError, match="not set up"):
        split(make_screen(["ctrl", "A", "B"]))
    tiny = make_screen(["ctrl", "A"])
    ps.pp.setup(tiny, control="ctrl")
    with pytest.raises(PerturbsimError, match="at least 2"):
        split(tiny)
    with pytest.raises(PerturbsimError, match="two or more genes"):
        split(tiny, kind="combo")


# ---------------------------------------------------------------------------------------
# Property test on random small screens
# ---------------------------------------------------------------------------------------

GENES = list("ABCDEFG")
label_sets = st.lists(
    st.frozensets(st.sampled_from(GENES), min_size=1, max_size=3),
    min_size=1,
    max_size=10,
    unique=True,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sets=label_sets,
    kind=st.sampled_from(["simulation", "single", "combo", "custom", "none"]),
    seed=st.integers(0, 2**31),
    val_fraction=st.sampled_from([0.0, 0.1, 0.3]),
    pick=st.integers(0, 2**16),
)
def test_split_invariants_on_random_screens(sets, kind, seed, val_fraction, pick):
    labels = ["+".join(sorted(s)) for s in sets]
    adata = make_screen(["ctrl", *labels], n_genes=4, cells=2)
    ps.pp.setup(adata, control="ctrl")
    genes = {g for s in sets for g in s}
    singles = [lab for lab in labels if "+" not in lab]
    combos = [lab for lab in labels if "+" in lab]
    test_conditions = None
    if kind == "custom":
        chosen = [lab for i, lab in enumerate(labels) if (pick >> i) & 1]
        test_conditions = chosen or labels[:1]
    infeasible = {
        "simulation": len(genes) < 2,
        "single": len({g for lab in singles for g in genes_of(lab)}) < 2,
        "combo": not combos,
        "custom": False,
        "none": False,
    }[kind]
    if infeasible:
        with pytest.raises(PerturbsimError, match=f"^kind='{kind}' needs "):
            split(adata, kind=kind, seed=seed, test_conditions=test_conditions)
        return
    split(adata, kind=kind, seed=seed, val_fraction=val_fraction, test_conditions=test_conditions)
    s = Split.from_adata(adata)
    check_invariants(adata, s)
    assert bool(s.test) == (kind != "none")
    if val_fraction == 0:
        assert not s.val
    seen = set(s.seen_genes)
    for name, members in s.subgroups.items():
        for cond in members:
            assert name == subgroup_name(len(genes_of(cond)), seen_count(cond, seen))
    if kind in {"simulation", "single"}:
        assert all(set(genes_of(c)) <= seen for c in s.train + s.val)
        pool = genes if kind == "simulation" else {g for lab in singles for g in genes_of(lab)}
        assert seen < pool and seen
    if kind == "single":
        assert set(s.excluded) == set(combos)
    if kind == "combo":
        assert set(singles) <= set(s.train)
    if kind == "custom":
        assert set(s.test) == set(test_conditions)


def test_none_split_holds_nothing_out_and_keeps_a_validation_set(norman, tmp_path):
    split(norman, kind="none", seed=1)
    norman.write_h5ad(tmp_path / "none.h5ad")  # empty test and subgroups survive a file
    result = Split.from_adata(ad.read_h5ad(tmp_path / "none.h5ad"))
    assert result.kind == "none" and result.test == [] and result.subgroups == {}
    assert result.val and not set(result.val) & set(result.train)
    conditions = set(norman.obs["perturbsim_condition"].astype(str))
    assert set(result.train) | set(result.val) == conditions
    assert set(norman.obs["perturbsim_split"]) == {"train", "val"}
    with pytest.raises(PerturbsimError, match="test_conditions is for kind='custom'"):
        split(norman, kind="none", test_conditions=["KLF1"])
    with pytest.raises(PerturbsimError, match="split='none' holds nothing out"):
        ps.tl.evaluate(norman, models=["mean"], split="none")


def test_a_screen_of_a_pair_or_two_still_trains_and_is_told_why_not_held_out(tiny, caplog):
    pairs = [c for c in tiny.obs["condition"].unique() if "+" in c]
    for n_pairs in (1, 2):
        screen = tiny[tiny.obs["condition"].isin(["control", *pairs[:n_pairs]])].copy()
        caplog.clear()
        with caplog.at_level("WARNING", logger="perturbsim"):
            trained = ps.pp.split(screen, kind="none", seed=1, copy=True)
        assert ps.pp.Split.from_adata(trained).train == ["ctrl", *sorted(pairs[:n_pairs])]
        assert "none carved out" in caplog.text
        assert ps.TrainMean(trained).fit().is_fitted
    with caplog.at_level("WARNING", logger="perturbsim"):
        ps.pp.split(screen[screen.obs["condition"] != pairs[1]].copy(), kind="combo", seed=1)
    assert "it holds 1 perturbed condition (kind='custom' chooses what to hold out" in caplog.text


def test_no_warning_when_the_conditions_are_too_few_for_every_subgroup(caplog):
    # one pair stands for one subgroup: no draw can hold out combo_seen1 and combo_seen2
    adata = make_screen(["ctrl", "G0", "G1", "G2", "G3", "G0+G1"])
    ps.pp.setup(adata)
    with caplog.at_level("WARNING", logger="perturbsim.pp._split"):
        s = make_split(adata, kind="simulation", seed=0)
    assert "none of 1000 draws" not in caplog.text
    assert len(s.subgroups) == 2 and "unseen_single" in s.subgroups  # one single, the pair


@pytest.mark.parametrize(
    "labels",
    [
        # four genes, one unseen: at most one pair fully seen, too few to keep one
        ["ctrl", "G0", "G1", "G2", "G3", "G0+G1", "G2+G3"],
        # five genes, two unseen, one of them (G4) in no pair: the other leaves one pair
        ["ctrl", "G0", "G1", "G2", "G3", "G4", "G0+G1", "G2+G3"],
    ],
)
def test_no_warning_of_a_kind_no_draw_can_keep_in_train(labels, caplog):
    adata = make_screen(labels)
    ps.pp.setup(adata)
    with caplog.at_level("WARNING", logger="perturbsim.pp._split"):
        s = make_split(adata, kind="simulation", seed=0)
    assert "none of 1000 draws" not in caplog.text
    assert not any("+" in c for c in s.train) and len(s.subgroups) == 3


def test_a_kind_one_draw_in_several_can_keep_is_kept_in_train():
    # six genes in three pairs, two of them unseen: only a draw leaving both unseen genes in
    # one pair keeps two pairs fully seen, one of which trains (the other is held out); no
    # draw holds out every subgroup, and the best one keeps the pairs' kind in train
    labels = ["ctrl", *(f"G{i}" for i in range(6)), "G0+G1", "G2+G3", "G4+G5"]
    adata = make_screen(labels)
    ps.pp.setup(adata)
    for seed in range(3):
        s = make_split(adata, kind="simulation", seed=seed, val_fraction=0.0)
        assert any("+" in c for c in s.train), seed


def test_validation_prefers_keeping_every_kind_in_train_to_holding_every_subgroup():
    # no validation draw both keeps a pair in train and holds out every subgroup: training
    # keeps its pairs, the validation set does with fewer subgroups
    labels = ["ctrl", *(f"G{i}" for i in range(6)), "G0+G2", "G1+G4"]
    adata = make_screen(labels)
    ps.pp.setup(adata)
    s = make_split(adata, kind="none", seed=0, val_fraction=0.1)
    assert s.val and any("+" in c for c in s.train)


def test_a_screen_of_pairs_alone_is_split_by_simulation_as_documented_and_told_to_use_combo(
    caplog,
):
    # the simulation split's validation set goes without the guard that keeps training
    # conditions: the pairs it keeps validate, and the screen is told to split by combo
    labels = ["ctrl", "G0+G1", "G2+G3", "G4+G5", "G6+G7"]
    adata = make_screen(labels)
    ps.pp.setup(adata)
    with caplog.at_level("WARNING", logger="perturbsim.pp._split"):
        s = make_split(adata, kind="simulation", seed=0)
    assert s.train == ["ctrl"] and s.val
    assert "use kind='combo'" in caplog.text


def test_the_combo_split_holds_out_the_share_of_pairs_asked_for():
    # six pairs of four measured singles: a quarter of them (1) tested, the rest trained
    labels = ["ctrl", "G0", "G1", "G2", "G3"]
    labels += [f"G{i}+G{j}" for i in range(4) for j in range(i + 1, 4)]
    adata = make_screen(labels)
    ps.pp.setup(adata)
    s = make_split(adata, kind="combo", seed=0, combo_test_fraction=0.25, val_fraction=0.0)
    assert len(s.subgroups["combo_seen2"]) == 1
    assert sum("+" in c for c in s.train) == 5
