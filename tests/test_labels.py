from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perturbsim import PerturbsimError
from perturbsim.pp import canonical_label, genes_of, parse_label, parse_perturbations
from perturbsim.pp._labels import detect_control, parse_labels


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("ctrl", ()),
        ("KLF1+ctrl", ("KLF1",)),
        ("ctrl+KLF1", ("KLF1",)),
        ("MAP2K6+KLF1", ("KLF1", "MAP2K6")),
        ("A+B+C", ("A", "B", "C")),
        ("KLF1", ("KLF1",)),
    ],
)
def test_parse_gears_and_pertpy_labels(label, expected):
    assert parse_label(label) == expected


def test_tokens_of_the_control_label_are_control_tokens():
    labels = ["NegCtrl0_NegCtrl0", "FOXO4_NegCtrl0", "NegCtrl0_KLF1", "FOXO4_KLF1"]
    mapping = parse_labels(labels, control="NegCtrl0_NegCtrl0", sep="_")
    assert list(mapping.values()) == ["ctrl", "FOXO4", "KLF1", "FOXO4+KLF1"]


def test_control_label_and_user_separator():
    assert parse_label("control", control="control") == ()
    assert parse_label("B_A", sep="_", control="control") == ("A", "B")
    assert canonical_label(parse_label("B_A", sep="_")) == "A+B"


@pytest.mark.parametrize(
    ("label", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("A++B", "empty gene name"),
        ("+A", "empty gene name"),
        ("A+", "empty gene name"),
        ("A+A", "appears twice"),
        ("A +B", "white space$"),  # no clean split: no hint
        ("A + B", r"white space \(genes joined by ' \+ '\? pass sep=' \+ '\)"),
        ("A B", r"white space \(genes joined by ' '\? pass sep=' '\)"),
        ("A, B", r"white space \(genes joined by ', '\? pass sep=', '\)"),  # not ' '
        ("A / B", r"white space \(genes joined by ' / '\? pass sep=' / '\)"),
        (float("nan"), "NaN"),
        (3, "expected a string"),
        # a second gene that reads as the first: a byte-order mark, a zero-width space
        ("\ufeffKLF1", r"holds the invisible character U\+FEFF \(ZERO WIDTH NO-BREAK SPACE\)"),
        ("KLF1\u200b+MAP2K6", r"gene name 'KLF1\\u200b' holds the invisible character U\+200B"),
    ],
)
def test_malformed_labels_name_the_problem(label, fragment):
    with pytest.raises(PerturbsimError, match=fragment) as err:
        parse_label(label)
    assert "\n" not in str(err.value)


def test_a_padded_gene_of_a_list_and_a_missing_control_are_named():
    with pytest.raises(PerturbsimError) as err:  # the list's gene, not a label never written
        parse_perturbations([["KLF1", " MAP2K6"]])
    assert str(err.value) == (
        "malformed gene list ['KLF1', ' MAP2K6']: gene name ' MAP2K6' contains white space "
        "(strip it: 'MAP2K6')"
    )
    with pytest.raises(PerturbsimError, match="control must be a non-empty string .* got None"):
        parse_label("KLF1", control=None)
    with pytest.raises(PerturbsimError, match=r"'MAP 2K6' contains white space \(a gene name"):
        parse_perturbations([["KLF1", "MAP 2K6"]])  # stripping would not help: not advised
    # a gene with an invisible character, however the set is given: named as given
    with pytest.raises(PerturbsimError, match=r"^malformed gene list \['KLF1', '\\ufeffKLF1'\]"):
        parse_perturbations([["KLF1", "\ufeffKLF1"]])
    with pytest.raises(PerturbsimError, match=r"^genes holds 'KLF1\\u200b', a name with the inv"):
        canonical_label(["KLF1", "KLF1\u200b"])


def test_gene_with_reserved_plus_under_other_separator():
    with pytest.raises(PerturbsimError, match="reserves"):
        parse_label("A+1_B", sep="_")


def test_detect_control():
    assert detect_control(["KLF1", "Control", "A+B"], key="c") == "Control"
    with pytest.raises(PerturbsimError, match="no control cells") as err:
        detect_control(["KLF1", "KLF1+ctrl"], key="condition")
    assert str(err.value).endswith("; pass control='<label of your control cells>'")
    norman = ["KLF1_NegCtrl0", "NegCtrl0_NegCtrl0", "KLF1_MAP2K6"]  # guides joined by _
    with pytest.raises(PerturbsimError) as err:
        detect_control(norman, key="guide")
    assert str(err.value).endswith(
        "; 'NegCtrl0_NegCtrl0' looks like control: pass control='NegCtrl0_NegCtrl0' ('_' joins "
        "genes in other labels, as in 'KLF1_NegCtrl0': pass sep='_' too)"
    )
    with pytest.raises(PerturbsimError) as err:  # sep already given: not said again
        detect_control(norman, key="guide", sep="_")
    assert str(err.value).endswith("pass control='NegCtrl0_NegCtrl0'")
    with pytest.raises(PerturbsimError) as err:  # numbered guides, no label joining a gene
        detect_control(["KLF1", "non-targeting_2"], key="guide")
    assert str(err.value).endswith(
        "; 'non-targeting_2' looks like control: pass control='non-targeting_2'"
    )
    with pytest.raises(PerturbsimError) as err:  # several: one label for all of them
        detect_control(["KLF1", "Scrambled_1", "NegCtrl_1", "safe-targeting", "NT_5"], key="g")
    assert str(err.value).endswith(
        "; 4 labels look like control ('NT_5', 'NegCtrl_1', 'Scrambled_1' and 1 more): give "
        "their cells one label, e.g. 'NT_5', and pass control='NT_5'; with one of them as the "
        "control, the others would read as perturbations"
    )
    norman = ["NegCtrl1_NegCtrl0", "NegCtrl0_NegCtrl0", "NegCtrl10_NegCtrl0", "KLF1_NegCtrl0"]
    with pytest.raises(PerturbsimError) as err:  # the one whose words the pairs hold
        detect_control([*norman, "KLF1_MAP2K6"], key="guide", sep="_")
    assert "e.g. 'NegCtrl0_NegCtrl0', and pass control='NegCtrl0_NegCtrl0'" in str(err.value)
    with pytest.raises(PerturbsimError, match=r"ambiguous.*\['NT', 'ctrl'\]; give their cells"):
        detect_control(["ctrl", "NT", "A"], key="condition")
    with pytest.raises(PerturbsimError) as err:  # CTRL may be the control or the gene
        detect_control(["CTRL", "non-targeting", "KLF1"], key="g")
    assert str(err.value).endswith(
        "replace({'CTRL': 'non-targeting'})): with one as the control, the others would read as "
        "perturbations; where one is a gene perturbed (CTRL), pass control= the other "
        "(control='non-targeting')"
    )  # the merge names the label that cannot be a gene, not the gene CTRL
    with pytest.raises(PerturbsimError, match=r"label 'ctrl ' of obs\['c'\] has white space"):
        detect_control(["ctrl ", "A"], key="c")


def test_parse_perturbations_forms():
    assert parse_perturbations("FOSB+CEBPB") == [("CEBPB", "FOSB")]
    assert parse_perturbations(["FOSB+CEBPB", "KLF1"]) == [("CEBPB", "FOSB"), ("KLF1",)]
    assert parse_perturbations([["FOSB", "CEBPB"], ["KLF1"], []]) == [
        ("CEBPB", "FOSB"),
        ("KLF1",),
        (),
    ]
    with pytest.raises(PerturbsimError, match="no perturbations"):
        parse_perturbations([])
    with pytest.raises(PerturbsimError, match="malformed perturbation"):
        parse_perturbations([3])
    # a column's unique values (a Categorical) are a list of labels; bytes are not text
    assert parse_perturbations(pd.Categorical(["KLF1", "A+B"])) == [("KLF1",), ("A", "B")]
    with pytest.raises(PerturbsimError, match=r"^perturbations must be labels as text, got bytes"):
        parse_perturbations(b"KLF1")
    assert parse_perturbations([["Control", "A"], ["NT"]]) == [("A",), ()]
    with pytest.raises(PerturbsimError, match=r"gene 'A\+B' of \['A\+B'\] holds '\+'"):
        parse_perturbations([["A+B"]])
    # the words of a joined control name no gene in a list, as in a label
    ntc = {"control": "NegCtrl0_NegCtrl0", "sep": "_"}
    assert parse_perturbations(["KLF1_NegCtrl0", ["KLF1", "NegCtrl0"]], **ntc) == [("KLF1",)] * 2
    # a list's faults are named in the list's words, not in a label the caller never wrote
    for genes, fault in ((["A", "A"], "gene 'A' appears twice"), (["A", ""], "name is empty")):
        with pytest.raises(PerturbsimError, match=rf"^malformed gene list .*{fault}"):
            parse_perturbations([genes])
    # the rows of a 2-D array of genes are gene lists
    assert parse_perturbations(np.array([["A", "B"], ["C", "D"]])) == [("A", "B"), ("C", "D")]
    # CTRL is a human gene: so spelt it is one, in queries as in a screen's labels
    assert parse_perturbations(["CTRL", "KLF1+CTRL", ["CTRL"], "ctrl", "Ntc"]) == [
        ("CTRL",),
        ("CTRL", "KLF1"),
        ("CTRL",),
        (),
        (),
    ]
    assert parse_label("KLF1+CTRL") == ("CTRL", "KLF1")


def _screen(labels: list[str]):
    import anndata as ad
    import numpy as np
    import pandas as pd

    cells = np.random.default_rng(0).poisson(2, (20 * len(labels), 4)) + 0.5
    adata = ad.AnnData(np.log1p(cells), var=pd.DataFrame(index=["KLF1", "A", "B", "C"]))
    adata.obs["guide"] = np.repeat(labels, 20)
    return adata


@pytest.mark.parametrize(
    ("labels", "options", "message"),
    [
        (
            ["NegCtrl0_NegCtrl0", "NegCtrl1_NegCtrl0", "KLF1_NegCtrl0"],
            {"control": "NegCtrl0_NegCtrl0", "sep": "_"},
            "label 'NegCtrl1_NegCtrl0' of obs['guide'] reads as a perturbation of 'NegCtrl1', "
            "which by its name is a control guide, beside the control 'NegCtrl0_NegCtrl0': label "
            "all control cells 'NegCtrl0_NegCtrl0' first, and write the control guide of a pair "
            "as 'NegCtrl0'",
        ),
        (
            ["non-targeting_1", "non-targeting_2", "NT_3", "KLF1"],
            {"control": "non-targeting_1"},
            "reads as a perturbation of 'NT_3', which by its name is a control guide (as are "
            "non-targeting_2)",
        ),
        (
            ["INTERGENIC1144056", "INTERGENIC393453", "KLF1"],
            {"control": "INTERGENIC1144056"},
            "label 'INTERGENIC393453' of obs['guide'] reads as a perturbation of "
            "'INTERGENIC393453', which by its name is a control guide",
        ),
        (
            ["ctrl", "KLF1_NegCtrl0", "KLF1_A", "A_NegCtrl0"],
            {},  # not KLF1_NegCtrl0 read as one gene; the fix named works (below)
            "pass sep='_' and write 'NegCtrl0' in them as 'ctrl' (a control guide's word",
        ),
        (
            ["control", "ctrl", "KLF1"],
            {"control": "control"},
            "'ctrl' of obs['guide'] read as control too, beside the control 'control': give all "
            "control cells one label first (adata.obs['guide'] = "
            "adata.obs['guide'].replace({'ctrl': 'control'}))",
        ),
    ],
)
def test_other_control_guides_beside_the_control_given_are_refused(labels, options, message):
    from perturbsim.pp import setup

    with pytest.raises(PerturbsimError) as err:
        setup(_screen(labels), perturbation_key="guide", **options)
    assert message in str(err.value)


def test_ntc_is_found_as_the_control():
    from perturbsim.pp import setup

    adata = _screen(["NTC", "KLF1", "A+KLF1"])
    setup(adata, perturbation_key="guide")
    assert adata.uns["perturbsim"]["setup"]["control"] == "NTC"


gene = st.text(  # no character that prints as nothing (refused: a gene read as another)
    alphabet=st.characters(codec="utf-8", exclude_characters="+", exclude_categories=("Cf", "Cc")),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(gene, min_size=1, max_size=5), st.randoms())
def test_canonical_form_is_order_free_and_round_trips(genes, rnd):
    clean = [g for g in genes if g.strip() == g and not any(c.isspace() for c in g) and g != "ctrl"]
    if len(set(clean)) != len(clean) or not clean:
        return
    shuffled = clean[:]
    rnd.shuffle(shuffled)
    label = canonical_label(clean)
    assert parse_label("+".join(shuffled)) == tuple(sorted(clean))
    assert canonical_label(parse_label("+".join(shuffled))) == label
    assert genes_of(label) == tuple(sorted(clean))


@pytest.mark.parametrize(
    ("genes", "words"),
    [
        (["A+B", "C"], "genes holds 'A+B', several genes joined by '+'"),
        (["ctrl", "A"], "genes holds the control label 'ctrl'"),
        ([" A", "B"], "genes holds ' A', a name with white space"),
        (["A", 3], "genes holds 3 (int): name each gene by a string"),
    ],
)
def test_canonical_label_refuses_what_is_no_gene_in_one_line(genes, words):
    # each of these came back as a label parse_label reads otherwise, or a TypeError
    with pytest.raises(PerturbsimError, match=re.escape(words)) as err:
        canonical_label(genes)
    assert "\n" not in str(err.value)


def _refusable(label: str) -> bool:
    """Whether a text is no label of genes: blank, an empty, spaced or invisibly marked name
    (a format or control character), a name twice."""
    tokens = [t for t in label.split("+") if t != "ctrl"]  # the control token may repeat
    hidden = {"Cf", "Cc"}
    return (
        label.strip() == ""
        or any(
            t == "" or any(ch.isspace() or unicodedata.category(ch) in hidden for ch in t)
            for t in label.split("+")
        )
        or len(set(tokens)) < len(tokens)
    )


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(st.text(max_size=20), st.none(), st.integers(), st.floats(), st.binary(max_size=5))
)
def test_hostile_labels_either_parse_or_raise_one_line_error(label):
    try:
        genes = parse_label(label)
    except PerturbsimError as err:
        assert "\n" not in str(err)
        # refused only what is no label of genes (a non-string, or what _refusable says)
        assert not isinstance(label, str) or _refusable(label), (label, str(err))
        return
    assert isinstance(genes, tuple)
    assert all(g and g.strip() == g and "+" not in g for g in genes)
    assert list(genes) == sorted(set(genes))


def test_a_screen_whose_control_is_spelt_ctrl_in_capitals_reads_it_so_in_queries():
    from perturbsim.models import Additive
    from perturbsim.pp import setup

    adata = _screen(["CTRL", "KLF1", "A", "A+KLF1", "KLF1+CTRL"])
    setup(adata, perturbation_key="guide")
    assert adata.uns["perturbsim"]["setup"]["control"] == "CTRL"
    model = Additive(adata).fit()
    assert model.predict(["CTRL", "KLF1+CTRL"]).obs_names.tolist() == ["ctrl", "KLF1"]


def test_a_safe_harbour_control_and_the_screen_s_own_labels_in_queries():
    from perturbsim.models import Additive
    from perturbsim.pp import setup

    adata = _screen(["AAVS1", "KLF1", "A", "A_KLF1", "KLF1_AAVS1"])
    setup(adata, perturbation_key="guide", control="AAVS1", sep="_")  # an alias: no gene
    model = Additive(adata).fit()  # the screen's labels, with its separator
    assert model.predict(["A_KLF1", "KLF1_AAVS1", "A+KLF1"], sep="_").obs_names.tolist() == [
        "A+KLF1",
        "KLF1",
    ]


def test_the_fix_named_for_a_control_guide_s_word_in_pairs_works():
    from perturbsim.pp import setup

    adata = _screen(["ctrl", "KLF1_NegCtrl0", "KLF1_A", "A_NegCtrl0"])
    adata.obs["guide"] = adata.obs["guide"].str.replace("NegCtrl0", "ctrl")
    setup(adata, perturbation_key="guide", sep="_")
    assert set(adata.obs["perturbsim_condition"]) == {"ctrl", "KLF1", "A", "A+KLF1"}


def test_canonical_label_counts_a_repeated_gene_once():
    assert canonical_label(["MAP2K6", "KLF1", "MAP2K6"]) == "KLF1+MAP2K6"
    assert canonical_label(("KLF1", "KLF1")) == "KLF1"


def test_a_label_of_numbers_and_affixes_alone_does_not_look_like_control():
    # a control guide holds a control word; "42" and "non_1" hold none
    with pytest.raises(PerturbsimError, match="no control cells") as err:
        detect_control(["KLF1", "42", "non_1"], key="guide")
    assert str(err.value).endswith("; pass control='<label of your control cells>'")


def test_the_control_hint_keeps_the_guide_the_pairs_hold_and_asks_sep_only_where_it_joins():
    # genes joined by '+': the control guide's own '_' joins no gene, so no sep is asked
    with pytest.raises(PerturbsimError) as err:
        detect_control(["NegCtrl0_NegCtrl0", "KLF1", "MAP2K6", "KLF1+MAP2K6"], key="guide")
    assert str(err.value).endswith(
        "; 'NegCtrl0_NegCtrl0' looks like control: pass control='NegCtrl0_NegCtrl0'"
    )
    # of two control guides, the one the pairs hold is kept, though it sorts second
    labels = ["NegCtrl0_NegCtrl0", "NegCtrl1_NegCtrl1", "KLF1_NegCtrl1", "MAP2K6_NegCtrl1"]
    with pytest.raises(PerturbsimError) as err:
        detect_control(labels, key="guide", sep="_")
    assert "e.g. 'NegCtrl1_NegCtrl1', and pass control='NegCtrl1_NegCtrl1'" in str(err.value)


def test_a_query_in_perturbsim_s_own_form_reads_on_a_screen_of_another_separator():
    from perturbsim.pp._labels import read_measured

    measured = {"ctrl", "KLF1", "KLF1+MAP2K6"}
    screen = {"control": "NegCtrl0_NegCtrl0", "sep": "_"}  # as setup read Norman's raw labels
    assert read_measured("MAP2K6_KLF1", measured, **screen) == "KLF1+MAP2K6"
    assert read_measured("KLF1_NegCtrl0", measured, **screen) == "KLF1"
    assert read_measured("MAP2K6+KLF1", measured, **screen) == "KLF1+MAP2K6"  # '+': its own
    assert read_measured("KLF1+ctrl", measured, **screen) == "KLF1"
    assert read_measured("FOXO4+KLF1", measured, **screen) is None
