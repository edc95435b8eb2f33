from __future__ import annotations

import gzip
import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import perturbsim as ps
from perturbsim import PerturbsimError
from perturbsim.graphs import GeneGraph, coexpression_graph, go_graph, read_annotations
from perturbsim.graphs import _go as go_module
from perturbsim.graphs import _graph as graph_module

# Published GEARS GO-graph weights (Jaccard over direct annotations).
PUBLISHED = [
    ("CKS1B", "CKS2", 0.706),
    ("GYPC", "GYPB", 0.600),
    ("ENO1", "LDHA", 0.184),
    ("FEV", "PITX1", 0.308),
]


@pytest.fixture(scope="module")
def human_go() -> pd.DataFrame:
    return ps.ds.human_go()


@pytest.fixture(scope="module")
def human_alias() -> pd.DataFrame:
    return ps.ds.human_gene_alias()


@pytest.fixture(scope="module")
def full_graph(human_go, human_alias) -> GeneGraph:
    return go_graph(human_go["gene"].unique(), annotations=human_go, aliases=human_alias)


def edge_weights(graph: GeneGraph) -> dict[tuple[str, str], float]:
    frame = graph.to_frame()
    return dict(
        zip(zip(frame["source"], frame["target"], strict=True), frame["weight"], strict=True)
    )


def brute_force_top_k(
    scores: dict[tuple[int, int], float], n: int, *, top_k: int, threshold: float
) -> dict[tuple[int, int], float]:
    """(src, dst) -> weight: each dst keeps its top_k src by score, ties to the lower index."""
    edges = {}
    for i in range(n):
        partners = [(j, scores[(i, j)]) for j in range(n) if j != i and scores[(i, j)] > threshold]
        partners.sort(key=lambda p: (-p[1], p[0]))
        for j, w in partners[:top_k]:
            edges[(j, i)] = w
    return edges


# --- GO graph -----------------------------------------------------------------------------


def test_published_gears_weights(human_go, human_alias):
    genes = [g for pair in PUBLISHED for g in pair[:2]]
    graph = go_graph(genes, annotations=human_go, aliases=human_alias, top_k=len(genes))
    weights = edge_weights(graph)
    for a, b, published in PUBLISHED:
        assert weights[(a, b)] == pytest.approx(published, abs=0.05)
        assert weights[(b, a)] == weights[(a, b)]
    # exact values on the bundled annotation (org.Hs.eg.db 3.16)
    assert weights[("CKS1B", "CKS2")] == pytest.approx(12 / 17, abs=1e-6)
    assert weights[("ENO1", "LDHA")] == pytest.approx(7 / 38, abs=1e-6)


def test_default_annotations_are_bundled_human():
    graph = go_graph(["CKS1B", "CKS2", "NOT_A_GENE"])
    assert graph.nodes.tolist() == ["CKS1B", "CKS2"]
    assert graph.unannotated.tolist() == ["NOT_A_GENE"]
    assert graph.n_edges == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("small_blocks", [False, True])
def test_sparse_jaccard_matches_python_sets(seed, small_blocks, monkeypatch):
    if small_blocks:  # many row blocks, and the histogram pruning on every block
        monkeypatch.setattr(go_module, "_BLOCK_WORK", 50)
        monkeypatch.setattr(graph_module, "_PRUNE_ABOVE", 0)
    rng = np.random.default_rng(seed)
    n_genes, n_terms = 70, 25
    rows = []
    for g in range(n_genes - 3):  # the last 3 genes get no term
        size = rng.integers(1, 8)
        for t in rng.choice(n_terms, size=size, replace=False, p=None):
            rows.append((f"g{g}", f"GO:{t:07d}"))
    rows += rows[:5]  # duplicated annotations must not count twice
    table = pd.DataFrame(rows, columns=["gene", "term"])
    genes = [f"g{g}" for g in rng.permutation(n_genes)]
    top_k, threshold = 4, 0.15
    graph = go_graph(genes, annotations=table, top_k=top_k, threshold=threshold)

    sets = table.groupby("gene")["term"].apply(set).to_dict()
    nodes = [g for g in genes if g in sets]
    assert graph.nodes.tolist() == nodes
    assert sorted(graph.unannotated) == ["g67", "g68", "g69"]
    n = len(nodes)
    scores = {
        (i, j): len(sets[nodes[i]] & sets[nodes[j]]) / len(sets[nodes[i]] | sets[nodes[j]])
        for i in range(n)
        for j in range(n)
    }
    expected = brute_force_top_k(scores, n, top_k=top_k, threshold=threshold)
    got = {
        (int(s), int(d)): float(w)
        for s, d, w in zip(graph.src, graph.dst, graph.weight, strict=True)
    }
    assert got.keys() == expected.keys()
    for edge, w in expected.items():
        assert got[edge] == pytest.approx(w, abs=1e-6)


def test_top_k_and_threshold_respected(full_graph):
    assert full_graph.n_nodes == 20728
    assert full_graph.degree().max() == 20
    assert full_graph.weight.min() > 0.1
    assert not np.any(full_graph.src == full_graph.dst)
    # no duplicate edges
    assert len(set(zip(full_graph.src, full_graph.dst, strict=True))) == full_graph.n_edges


def test_full_graph_rows_match_python_sets(full_graph, human_go):
    sets = human_go.groupby("gene")["term"].apply(frozenset).to_dict()
    frame = full_graph.to_frame()
    position = {g: i for i, g in enumerate(full_graph.nodes)}
    for gene in ["CKS1B", "KLF1", "MAP2K6", "FEV", "TP53"]:
        own = sets[gene]
        scores = sorted(
            ((len(own & s) / len(own | s), other) for other, s in sets.items() if other != gene),
            key=lambda p: (-p[0], position[p[1]]),
        )
        expected = [(o, w) for w, o in scores if w > 0.1][:20]
        kept = frame[frame["target"] == gene]
        assert kept["source"].tolist() == [o for o, _ in expected]
        np.testing.assert_allclose(kept["weight"], [w for _, w in expected], atol=1e-6)


def test_alias_takes_official_symbol_terms(human_go, human_alias):
    assert "ELMSAN1" not in set(human_go["gene"])
    graph = go_graph(["ELMSAN1", "MIDEAS", "KLF1"], annotations=human_go, aliases=human_alias)
    assert graph.nodes.tolist() == ["ELMSAN1", "MIDEAS", "KLF1"]
    weights = edge_weights(graph)
    assert weights[("MIDEAS", "ELMSAN1")] == pytest.approx(1.0)
    # without an alias table ELMSAN1 has no terms
    no_alias = go_graph(["ELMSAN1", "MIDEAS"], annotations=human_go, aliases=human_alias.iloc[:0])
    assert no_alias.unannotated.tolist() == ["ELMSAN1"]


def test_an_alias_of_several_annotated_symbols_takes_none_of_their_terms():
    # X is an alias of both S1 and S2: which gene it names is unknown, so it gets no terms;
    # Y names S1 alone and takes S1's terms
    annotations = pd.DataFrame(
        {"gene": ["S1", "S1", "S2", "S2"], "term": ["GO:1", "GO:2", "GO:3", "GO:4"]}
    )
    aliases = pd.DataFrame({"alias": ["X", "X", "Y"], "symbol": ["S1", "S2", "S1"]})
    graph = go_graph(["X", "Y", "S1", "S2"], annotations=annotations, aliases=aliases)
    assert graph.unannotated.tolist() == ["X"]
    assert graph.nodes.tolist() == ["Y", "S1", "S2"]
    assert edge_weights(graph) == {("S1", "Y"): 1.0, ("Y", "S1"): 1.0}  # same terms: Jaccard 1


def test_require_names_missing_genes(human_go):
    graph = go_graph(["KLF1"], annotations=human_go, require=["CKS1B"])
    assert graph.nodes.tolist() == ["KLF1", "CKS1B"]  # required genes join the candidates
    with pytest.raises(ps.PerturbsimError, match="FAKE1, FAKE2"):
        go_graph(["KLF1", "FAKE1"], annotations=human_go, require=["KLF1", "FAKE1", "FAKE2"])


def test_go_graph_bad_arguments(human_go):
    with pytest.raises(ps.PerturbsimError, match="top_k"):
        go_graph(["KLF1"], annotations=human_go, top_k=0)
    with pytest.raises(ps.PerturbsimError, match="threshold"):
        go_graph(["KLF1"], annotations=human_go, threshold=-0.5)
    with pytest.raises(ps.PerturbsimError, match=r"^no columns \['term'\] in annotations \(it has"):
        go_graph(["KLF1"], annotations=human_go.rename(columns={"term": "go"}))


# --- GeneGraph ------------------------------------------------------------------------------


def test_node_index_names_unknown_genes(full_graph):
    idx = full_graph.node_index(["KLF1", "CKS1B"])
    assert full_graph.nodes[idx].tolist() == ["KLF1", "CKS1B"]
    with pytest.raises(ps.PerturbsimError, match=r"2 genes .*NOPE1, NOPE2"):
        full_graph.node_index(["KLF1", "NOPE1", "NOPE2"])


def test_gene_graph_round_trip(tmp_path):
    from safetensors.numpy import load_file, save_file

    graph = go_graph(["CKS1B", "CKS2", "GYPC", "GYPB", "XYZ"])
    arrays = graph.to_arrays("go")
    assert set(arrays) == {"go.src", "go.dst", "go.weight"}
    save_file(arrays, tmp_path / "graph.safetensors")
    (tmp_path / "nodes.json").write_text(json.dumps(graph.nodes.tolist()))
    loaded = GeneGraph.from_arrays(
        json.loads((tmp_path / "nodes.json").read_text()),
        load_file(tmp_path / "graph.safetensors"),
        "go",
    )
    pd.testing.assert_frame_equal(loaded.to_frame(), graph.to_frame())
    assert loaded.degree().tolist() == [1, 1, 1, 1]
    with pytest.raises(PerturbsimError, match="lack the 'coexpr' graph's arrays"):
        GeneGraph.from_arrays(graph.nodes, arrays, "coexpr")
    assert loaded.src.dtype == np.int64 and loaded.weight.dtype == np.float32


def test_gene_graph_validates():
    with pytest.raises(ps.PerturbsimError, match="outside"):
        GeneGraph(nodes=["A", "B"], src=[2], dst=[0], weight=[1.0])
    with pytest.raises(ps.PerturbsimError, match="same length"):
        GeneGraph(nodes=["A", "B"], src=[1, 0], dst=[0], weight=[1.0])
    with pytest.raises(ps.PerturbsimError, match="unique"):
        GeneGraph(nodes=["A", "A"], src=[], dst=[], weight=[])


# --- co-expression graph ---------------------------------------------------------------------


@pytest.mark.parametrize(("top_k", "threshold", "min_edges"), [(20, 0.4, 50), (2, 0.1, 200)])
def test_coexpression_matches_corrcoef(norman, top_k, threshold, min_edges):
    stats = ps.pp.compute_pseudobulk(norman)
    graph = coexpression_graph(stats, top_k=top_k, threshold=threshold)
    assert graph.nodes.tolist() == norman.var_names.tolist()

    x = norman.X.toarray() if hasattr(norman.X, "toarray") else np.asarray(norman.X)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(x, rowvar=False)
    strength = np.abs(np.nan_to_num(corr))
    n_expected = 0
    for i in range(strength.shape[0]):
        row = strength[i].copy()
        row[i] = -1.0
        best = np.sort(row[row > threshold])[::-1][:top_k]  # reference top-k |r| of gene i
        n_expected += best.size
        kept = graph.src[graph.dst == i]
        # same top-k values (genes with exactly tied |r| may be swapped), each |r| correct
        np.testing.assert_allclose(graph.weight[graph.dst == i], best, atol=1e-6)
        np.testing.assert_allclose(graph.weight[graph.dst == i], row[kept], atol=1e-6)
    assert n_expected > min_edges  # the subset has real co-expression structure
    assert graph.n_edges == n_expected
    above = (strength > threshold).sum(axis=1) - (np.diag(strength) > threshold)
    assert graph.degree().tolist() == np.minimum(above, top_k).tolist()


@pytest.mark.parametrize("layout", ["dense", "sparse"])  # float32 sums; exact float64 ones
def test_genes_constant_over_the_cells_are_correlated_with_none(layout):
    rng = np.random.default_rng(1)
    n, n_genes = 3000, 40
    x = np.log1p(rng.poisson(0.02 if layout == "sparse" else 2.0, (n, n_genes)))
    x[:, :3] = [np.log1p(3.0), np.log1p(7.0), 0.1]  # read as r = +-1 from rounding before
    conditions = rng.choice(["control", "A", "B"], n)
    adata = ad.AnnData(
        sparse.csr_matrix(x.astype(np.float32)) if layout == "sparse" else x.astype(np.float32),
        obs=pd.DataFrame({"condition": conditions}, index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=["A", "B", *(f"G{i}" for i in range(n_genes - 2))]),
    )
    ps.pp.setup(adata, perturbation_key="condition", control="control")
    stats = ps.pp.compute_pseudobulk(adata, coexpression="all")
    corr = stats.coexpression()
    assert not corr[:3].any() and not corr[:, :3].any()
    varying = np.corrcoef(x[:, 3:], rowvar=False)
    np.testing.assert_allclose(corr[3:, 3:], varying, atol=1e-4)
    graph = coexpression_graph(stats, top_k=5, threshold=0.4)
    assert not np.isin(graph.src, [0, 1, 2]).any() and not np.isin(graph.dst, [0, 1, 2]).any()


def test_coexpression_uses_absolute_correlation():
    genes = np.array(["A", "B", "C"])
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    x = np.column_stack([a, -a + 0.01 * rng.normal(size=200), rng.normal(size=200)])
    stats = ps.pp.PseudobulkStats(
        conditions=np.array(["ctrl"]),
        genes=genes,
        n_cells=np.array([200]),
        moments=np.ones((4, 1, 3)),
        coexpr_n=200,
        coexpr_sum=x.sum(0),
        coexpr_gram=x.T @ x,
    )
    frame = coexpression_graph(stats, top_k=5, threshold=0.4).to_frame()
    assert sorted(zip(frame["source"], frame["target"], strict=True)) == [("A", "B"), ("B", "A")]
    assert frame["weight"].min() > 0.99


# --- annotation readers ----------------------------------------------------------------------

GAF_ROWS = [  # DB, id, symbol, qualifier, GO id, ..., column 13 taxon
    ("P1", "KLF1", "enables", "GO:0003700", "9606"),
    ("P1", "KLF1", "NOT|enables", "GO:0005515", "9606"),
    ("P1", "KLF1", "NOT located_in", "GO:0005737", "9606"),
    ("P2", "GATA1", "located_in", "GO:0005634", "9606"),
    ("P2", "GATA1", "located_in", "GO:0005634", "9606"),
    ("Q9", "Klf1", "enables", "GO:0003700", "10090"),
]
GAF = "!gaf-version: 2.2\n!generated-by: test\n" + "".join(
    "\t".join(
        [
            *("UniProtKB", acc, sym, qual, go, "PMID:1", "IDA", "", "F", "name", "", "protein"),
            *(f"taxon:{tax}", "20200101", "UniProt", "", ""),
        ]
    )
    + "\n"
    for acc, sym, qual, go, tax in GAF_ROWS
)

GENE2GO = """#tax_id\tGeneID\tGO_ID\tEvidence\tQualifier\tGO_term\tPubMed\tCategory
9606\t10661\tGO:0003700\tIDA\tenables\tDNA-binding TF activity\t1\tFunction
9606\t10661\tGO:0005515\tIPI\tNOT enables\tprotein binding\t2\tFunction
9606\t2623\tGO:0005634\tIDA\tlocated_in\tnucleus\t-\tComponent
10090\t16596\tGO:0003700\tIDA\tenables\tDNA-binding TF activity\t3\tFunction
"""


def pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    assert list(frame.columns) == ["gene", "term"]
    return set(zip(frame["gene"], frame["term"], strict=True))


@pytest.mark.parametrize("compressed", [False, True])
def test_read_gaf(tmp_path, compressed):
    path = tmp_path / ("a.gaf.gz" if compressed else "a.gaf")
    if compressed:
        with gzip.open(path, "wt") as handle:
            handle.write(GAF)
    else:
        path.write_text(GAF)
    frame = read_annotations(path)
    assert pairs(frame) == {
        ("KLF1", "GO:0003700"),
        ("GATA1", "GO:0005634"),
        ("Klf1", "GO:0003700"),
    }
    assert len(frame) == 3  # duplicate GATA1 annotation collapsed
    human = read_annotations(path, format="gaf", taxon=9606)
    assert pairs(human) == {("KLF1", "GO:0003700"), ("GATA1", "GO:0005634")}
    with pytest.raises(ps.PerturbsimError, match="taxon 7227"):
        read_annotations(path, taxon=7227)


def test_read_gene2go(tmp_path):
    path = tmp_path / "gene2go"
    path.write_text(GENE2GO)
    ids = read_annotations(path, taxon=9606)
    assert pairs(ids) == {("10661", "GO:0003700"), ("2623", "GO:0005634")}
    named = read_annotations(path, format="gene2go", gene_ids={10661: "KLF1", 16596: "Klf1"})
    assert pairs(named) == {("KLF1", "GO:0003700"), ("Klf1", "GO:0003700")}


def test_read_tsv(tmp_path):
    plain = tmp_path / "plain.tsv"
    plain.write_text("KLF1\tGO:0003700\nKLF1\tGO:0005634\nGATA1\tGO:0005634\n")
    with pytest.raises(PerturbsimError, match=r"^gene_ids is for gene2go files; .* reads as tsv"):
        read_annotations(plain, gene_ids={"1": "KLF1"})  # would map nothing
    assert pairs(read_annotations(plain)) == {
        ("KLF1", "GO:0003700"),
        ("KLF1", "GO:0005634"),
        ("GATA1", "GO:0005634"),
    }
    header = tmp_path / "header.tsv"
    header.write_text("gene\tterm\nklf-1\tGO:0003700\n")
    assert pairs(read_annotations(header, format="tsv")) == {("klf-1", "GO:0003700")}
    wide = tmp_path / "wide.tsv"
    wide.write_text("entrez_id\tsymbol\tgo_id\tevidence\n10661\tKLF1\tGO:0003700\tIDA\n")
    assert pairs(read_annotations(wide)) == {("KLF1", "GO:0003700")}
    with pytest.raises(ps.PerturbsimError, match="taxon=9606"):
        read_annotations(plain, taxon=9606)


def test_read_annotations_errors(tmp_path):
    with pytest.raises(ps.PerturbsimError, match="not found"):
        read_annotations(tmp_path / "absent.gaf")
    path = tmp_path / "x.tsv"
    path.write_text("A\tGO:1\n")
    with pytest.raises(ps.PerturbsimError, match="format"):
        read_annotations(path, format="obo")
    bad = tmp_path / "bad.gaf"
    bad.write_text("!gaf-version: 2.2\nUniProtKB\tP1\tKLF1\n")
    with pytest.raises(ps.PerturbsimError, match="line 2"):
        read_annotations(bad)
    genes = tmp_path / "genes.tsv"  # a gene list given as annotations
    genes.write_text("KLF1\nMAP2K6\n")
    with pytest.raises(ps.PerturbsimError, match="has 1 column: a TSV of annotations needs two"):
        read_annotations(genes)
    swapped = tmp_path / "swapped.tsv"  # term, then gene: read as genes named GO:...
    swapped.write_text("GO:0003700\tKLF1\nGO:0005634\tGATA1\n")
    with pytest.raises(ps.PerturbsimError, match=r"are GO term IDs, e.g. 'GO:0003700': columns"):
        read_annotations(swapped)
    five = tmp_path / "five.tsv"  # another table forced to be read as GAF: GO IDs as genes
    five.write_text(  # as the shared data's human_gene2go.tsv.gz is laid out
        "entrez_id\tsymbol\tgo_id\tevidence\tontology\n"
        "10661\tKLF1\tGO:0003700\tIDA\tMF\n2623\tGATA1\tGO:0005634\tIDA\tCC\n"
    )
    with pytest.raises(ps.PerturbsimError, match=r"five.tsv' \(gaf\) are GO term IDs, e.g."):
        read_annotations(five, format="gaf")
    assert pairs(read_annotations(five)) == {("KLF1", "GO:0003700"), ("GATA1", "GO:0005634")}


def test_read_annotations_sniffs_gzip_and_unreadable_files_are_one_line_errors(tmp_path):
    import gzip

    text = "gene\tterm\nKLF1\tGO:1\nGATA1\tGO:1\n"
    for name in ("go_gz.tsv", "go"):  # gzipped, named as if it were not
        path = tmp_path / name
        path.write_bytes(gzip.compress(text.encode()))
        assert pairs(read_annotations(path)) == {("KLF1", "GO:1"), ("GATA1", "GO:1")}
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("A\tGO:1\nB\tGO:2\tGO:3\tx\n")
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("Caf\xe9\tGO:1\n".encode("latin-1"))
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    for path, kwargs in ((ragged, {}), (latin, {}), (empty, {"format": "tsv"})):
        with pytest.raises(ps.PerturbsimError, match=f"cannot read '{path}' as annotations") as err:
            read_annotations(path, **kwargs)
        assert "\n" not in str(err.value)


def test_read_annotations_feeds_go_graph(tmp_path):
    path = tmp_path / "worm.tsv"
    path.write_text("unc-1\tGO:1\nunc-1\tGO:2\nunc-2\tGO:1\nunc-2\tGO:2\nunc-3\tGO:3\n")
    graph = go_graph(["unc-1", "unc-2", "unc-3"], annotations=read_annotations(path))
    assert edge_weights(graph) == {("unc-2", "unc-1"): 1.0, ("unc-1", "unc-2"): 1.0}


def test_a_go_graph_of_no_annotated_gene_is_warned_of(tmp_path, caplog):
    path = tmp_path / "worm.tsv"
    path.write_text("unc-1\tGO:1\nunc-2\tGO:1\n")
    with caplog.at_level("WARNING", logger="perturbsim"):
        graph = go_graph(["UNC1", "UNC2"], annotations=read_annotations(path))
    assert graph.n_nodes == 0
    assert "none of the 2 genes has a GO annotation (e.g. 'UNC1'; the annotations name" in (
        caplog.text
    )


def test_gene_lists_given_as_one_string_and_text_thresholds_are_refused():
    with pytest.raises(PerturbsimError, match="^genes must be a list of genes, got the string"):
        go_graph("KLF1")
    with pytest.raises(PerturbsimError, match="^require must be a list of genes, got the str"):
        go_graph(["KLF1"], require="KLF1")
    with pytest.raises(
        PerturbsimError, match="^threshold must be a finite number >= 0, got '0.1'$"
    ):
        go_graph(["KLF1"], threshold="0.1")


@pytest.mark.parametrize("threshold", [1, 2.0])
def test_a_threshold_no_similarity_can_pass_is_refused(norman, threshold):
    # a Jaccard index and a correlation's |r| are at most 1: edges above 1 would be none
    message = rf"^threshold must be below 1 \(edges are kept above it.*got {threshold}$"
    with pytest.raises(PerturbsimError, match=message):
        go_graph(["CKS1B", "CKS2"], threshold=threshold)
    stats = ps.pp.compute_pseudobulk(norman)
    with pytest.raises(PerturbsimError, match=message):
        coexpression_graph(stats, threshold=threshold)
    assert coexpression_graph(stats, threshold=-1.0).n_edges > 0  # below 0: every pair


def test_annotations_that_are_not_a_table_are_a_one_line_error():
    with pytest.raises(PerturbsimError) as err:
        go_graph(["unc-1"], annotations={"unc-1": ["GO:1"]})
    assert str(err.value) == (
        "annotations must be a DataFrame of GO annotations (perturbsim.graphs.read_annotations) "
        "with the columns ['gene', 'term'], got dict"
    )


def test_shared_gene2go_table_reads_as_bundled(shared_data, human_go):
    frame = read_annotations(shared_data / "go" / "human_gene2go.tsv.gz")
    assert pairs(frame) == pairs(human_go)


def test_read_annotations_detects_the_format_on_the_first_non_blank_line(tmp_path):
    gaf = tmp_path / "blank_first.gaf"
    gaf.write_text("\n\n" + GAF)
    assert ("GATA1", "GO:0005634") in pairs(read_annotations(gaf))
    commented = tmp_path / "commented.tsv"  # a '#' header that is not gene2go's: a TSV
    commented.write_text("#gene\tterm\nKLF1\tGO:0003700\n")
    assert pairs(read_annotations(commented)) == {("KLF1", "GO:0003700")}


def test_read_gaf_filters_on_the_first_taxon_and_names_a_short_line(tmp_path):
    rows = [*GAF_ROWS, ("P3", "HOSTGENE", "enables", "GO:0000001", "10090|taxon:9606")]
    path = tmp_path / "interacting.gaf"
    path.write_text(
        "!gaf-version: 2.2\n"
        + "".join(
            "\t".join(
                [
                    *(
                        "UniProtKB",
                        acc,
                        sym,
                        qual,
                        go,
                        "PMID:1",
                        "IDA",
                        "",
                        "F",
                        "n",
                        "",
                        "protein",
                    ),
                    *(f"taxon:{tax}", "20200101", "UniProt", "", ""),
                ]
            )
            + "\n"
            for acc, sym, qual, go, tax in rows
        )
    )
    human = read_annotations(path, taxon=9606)
    assert pairs(human) == {("KLF1", "GO:0003700"), ("GATA1", "GO:0005634")}
    assert ("HOSTGENE", "GO:0000001") in pairs(read_annotations(path, taxon=10090))
    short = tmp_path / "short.gaf"
    short.write_text("!gaf-version: 2.2\nUniProtKB\tP1\tKLF1\tenables\tGO:0003700\tPMID:1\n")
    assert pairs(read_annotations(short)) == {("KLF1", "GO:0003700")}
    with pytest.raises(PerturbsimError, match="line 2 of .* has 6 tab-separated columns"):
        read_annotations(short, taxon=9606)


def test_read_gene2go_keeps_rows_without_a_qualifier(tmp_path):
    path = tmp_path / "gene2go"
    path.write_text(GENE2GO + "9606\t2623\tGO:0005737\tIDA\t\tcytoplasm\t-\tComponent\n")
    assert ("2623", "GO:0005737") in pairs(read_annotations(path, taxon=9606))


def test_read_tsv_knows_every_term_header_and_a_lone_gene_header(tmp_path):
    for term in ("go", "go_term", "term_id", "GO ID"):
        wide = tmp_path / "wide.tsv"
        wide.write_text(f"symbol\tevidence\t{term}\nKLF1\tIDA\tGO:0003700\n")
        assert pairs(read_annotations(wide)) == {("KLF1", "GO:0003700")}, term
    header = tmp_path / "header.tsv"
    header.write_text("gene\tannotation\nKLF1\tGO:0003700\n")
    assert pairs(read_annotations(header)) == {("KLF1", "GO:0003700")}


def test_gene_ids_with_a_format_other_than_gene2go_is_refused_naming_it(tmp_path):
    plain = tmp_path / "plain.tsv"
    plain.write_text("KLF1\tGO:0003700\n")
    for format in ("tsv", "gaf"):
        with pytest.raises(
            PerturbsimError, match=f"^gene_ids is for gene2go files, got format='{format}'"
        ):
            read_annotations(plain, format=format, gene_ids={"1": "KLF1"})


def test_with_isolated_nodes_appends_each_missing_gene_once_and_keeps_the_edges():
    from perturbsim.graphs import with_isolated_nodes

    chain = GeneGraph(
        nodes=["A", "B", "C"], src=[0, 1], dst=[1, 2], weight=[0.5, 0.25], unannotated=["D", "E"]
    )
    assert with_isolated_nodes(chain, ["C", "A"]) is chain  # nothing missing: itself
    grown = with_isolated_nodes(chain, iter(["D", "B", "F", "D"]))
    assert grown.nodes.tolist() == ["A", "B", "C", "D", "F"]
    np.testing.assert_array_equal(grown.src, chain.src)
    np.testing.assert_array_equal(grown.dst, chain.dst)
    np.testing.assert_array_equal(grown.weight, chain.weight)
    assert grown.unannotated.tolist() == ["E"]  # D is a node now
    assert ps.graphs.reached_nodes(grown, ["C"], hops=2).tolist() == [
        True,
        True,
        True,
        False,
        False,
    ]
