"""Gene Ontology similarity graph: Jaccard index of shared GO terms."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from .._checks import check_list, checked_table
from .._errors import PerturbsimError, counted
from ._graph import GeneGraph, _check_selection, _select_top_k

logger = logging.getLogger(__name__)

#: Upper bound on the gene pairs sharing a term handled per block (bounds memory).
_BLOCK_WORK = 10_000_000
ANNOTATIONS_KIND = "a DataFrame of GO annotations (perturbsim.graphs.read_annotations)"
"""What ``annotations`` must be, as errors say."""


def _unique_ordered(genes: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(str(g) for g in genes))


def _resolve_symbols(
    genes: list[str], annotated: set[str], aliases: pd.DataFrame | None
) -> dict[str, str]:
    """Map each requested gene to the annotated symbol whose terms it takes."""
    resolved = {g: g for g in genes if g in annotated}
    if aliases is None:
        return resolved
    pending = [g for g in genes if g not in resolved]
    if not pending:
        return resolved
    table = aliases.loc[
        aliases["alias"].isin(pending) & aliases["symbol"].isin(annotated), ["alias", "symbol"]
    ].drop_duplicates()
    n_symbols = table.groupby("alias")["symbol"].nunique()
    ambiguous = n_symbols.index[n_symbols > 1].tolist()
    if ambiguous:
        logger.info("aliases naming several annotated symbols, not used: %s", ambiguous[:20])
    unique = table[table["alias"].isin(n_symbols.index[n_symbols == 1])]
    for alias, symbol in zip(unique["alias"], unique["symbol"], strict=True):
        resolved[alias] = symbol
        logger.debug("GO graph: %s takes the GO terms of its official symbol %s", alias, symbol)
    return resolved


def go_graph(
    genes: Sequence[str],
    *,
    annotations: pd.DataFrame | None = None,
    aliases: pd.DataFrame | None = None,
    top_k: int = 20,
    threshold: float = 0.1,
    require: Sequence[str] | None = None,
) -> GeneGraph:
    """Gene similarity graph from shared Gene Ontology terms, as in GEARS.

    The weight between genes ``a`` and ``b`` is the Jaccard index of their GO term sets,
    ``|A ∩ B| / |A ∪ B|`` over direct annotations. Each gene keeps its ``top_k`` most similar
    other genes with weight above ``threshold`` (ties go to the earlier gene in node order);
    edges point from the neighbour to the gene that kept it. Self-edges are excluded.
    Computed with sparse products of the gene x term incidence matrix, block by block, so the
    whole human annotation (~20k genes) takes seconds and never a dense genes x genes matrix.

    Parameters
    ----------
    genes
        Candidate node genes, typically the perturbed genes plus all measured genes, so that
        genes never perturbed in training can still be predicted. Duplicates are ignored.
    annotations
        Gene -> GO term table with columns ``gene`` and ``term`` (see
        :func:`read_annotations`). Default: the bundled human annotations,
        :func:`perturbsim.ds.human_go`.
    aliases
        Alias -> official symbol table with columns ``alias`` and ``symbol``. A requested
        gene that is not an annotated symbol, but is the alias of exactly one annotated
        symbol, takes that symbol's terms and keeps its own name as node name (``ELMSAN1``
        gets the terms of ``MIDEAS``). Default: the bundled human table
        (:func:`perturbsim.ds.human_gene_alias`) when ``annotations`` is also the default,
        no alias matching otherwise.
    top_k
        Neighbours kept per gene (GEARS: 20).
    threshold
        Edges with weight ``<= threshold`` are dropped (GEARS: 0.1).
    require
        Genes that must be nodes, e.g. the perturbed genes; they are added to the
        candidates, and a :class:`~perturbsim._errors.PerturbsimError` naming those without
        any GO term is raised.

    Returns
    -------
    :class:`GeneGraph` whose nodes are the candidate genes with at least one GO term, in the
    order given; ``unannotated`` lists the candidates left out.

    Examples
    --------
    >>> from perturbsim.graphs import go_graph
    >>> g = go_graph(["CKS1B", "CKS2", "ENO1", "LDHA", "NOT_A_GENE"])
    >>> g.to_frame().round(3).iloc[:2]
      source target  weight
    0   CKS2  CKS1B   0.706
    1  CKS1B   CKS2   0.706
    >>> g.unannotated.tolist()
    ['NOT_A_GENE']
    """
    top_k = _check_selection(top_k, threshold, minimum=0.0)
    for name, given in (("genes", genes), ("require", require)):
        check_list(name, given, "genes", optional=True)
    started = time.perf_counter()
    candidates = _unique_ordered(genes)
    required = _unique_ordered(require) if require is not None else []
    seen = set(candidates)
    candidates += [g for g in required if g not in seen]
    if not candidates:
        raise PerturbsimError("go_graph needs at least one gene, got none")

    if annotations is None:
        from .. import ds

        annotations = ds.human_go()
        if aliases is None:
            aliases = ds.human_gene_alias()
    checked_table(annotations, ("gene", "term"), "annotations", kind=ANNOTATIONS_KIND)
    if aliases is not None:
        checked_table(aliases, ("alias", "symbol"), "aliases")
    annotations = annotations[["gene", "term"]].dropna().astype(str)

    resolved = _resolve_symbols(candidates, set(annotations["gene"].unique()), aliases)
    nodes = [g for g in candidates if g in resolved]
    unannotated = [g for g in candidates if g not in resolved]
    if unannotated:
        logger.info(
            "%d of %d genes have no GO annotation and are not in the GO graph",
            len(unannotated),
            len(candidates),
        )
    absent = [g for g in required if g not in resolved]
    if absent:
        shown = ", ".join(absent[:30]) + (" ..." if len(absent) > 30 else "")
        raise PerturbsimError(
            f"{counted(len(absent), 'required gene has', 'required genes have')} no GO "
            "annotation, so no node in the GO graph: "
            f"{shown}; pass annotations covering them (see perturbsim.graphs.read_annotations)"
        )
    if not nodes:
        example = annotations["gene"].iloc[0] if len(annotations) else None
        logger.warning(
            "none of the %d genes has a GO annotation (e.g. %r; the annotations name genes "
            "such as %r): the GO graph is empty; gene names of another kind than the "
            "annotations'?",
            len(candidates),
            candidates[0],
            example,
        )
        return GeneGraph(nodes=[], src=[], dst=[], weight=[], unannotated=unannotated)

    # gene x term incidence, one row per node (alias nodes repeat their symbol's row)
    symbols = pd.Index(sorted(set(resolved.values())))
    used = annotations[annotations["gene"].isin(symbols)].drop_duplicates()
    term_codes, _ = pd.factorize(used["term"])
    sym_rows = symbols.get_indexer(used["gene"])
    n_terms = int(term_codes.max()) + 1
    by_symbol = sparse.csr_matrix(
        (np.ones(sym_rows.size), (sym_rows, term_codes)), shape=(symbols.size, n_terms)
    )
    incidence = by_symbol[symbols.get_indexer([resolved[g] for g in nodes])].tocsr()
    incidence.sum_duplicates()
    incidence.data[:] = 1.0
    incidence = incidence.astype(np.float32)
    sizes = np.asarray(incidence.sum(axis=1), dtype=np.float32).ravel()
    transposed = incidence.T.tocsr()

    # split rows into blocks whose number of gene pairs sharing a term stays bounded
    term_counts = np.asarray(incidence.sum(axis=0), dtype=np.float64).ravel()
    bounds = _blocks(np.cumsum(incidence @ term_counts), _BLOCK_WORK)
    kept_rows, kept_cols, kept_vals = [], [], []
    for start, stop in itertools.pairwise(bounds):
        shared = incidence[start:stop] @ transposed  # CSR, data = shared term counts
        inter = shared.data
        union = np.repeat(sizes[start:stop], np.diff(shared.indptr))
        union += sizes[shared.indices]
        union -= inter
        passing = np.flatnonzero(inter > (threshold - 1e-6) * union)  # exact test below
        rows = np.searchsorted(shared.indptr, passing, side="right").astype(np.int64) - 1
        jaccard = inter[passing].astype(np.float64) / union[passing]
        r, c, v = _select_top_k(
            rows + start,
            shared.indices[passing].astype(np.int64),
            jaccard,
            top_k=top_k,
            threshold=threshold,
        )
        kept_rows.append(r)
        kept_cols.append(c)
        kept_vals.append(v)
        del shared, inter, union
    graph = GeneGraph(
        nodes=nodes,
        src=np.concatenate(kept_cols),
        dst=np.concatenate(kept_rows),
        weight=np.concatenate(kept_vals),
        unannotated=unannotated,
    )
    logger.info(
        "GO graph: %d nodes, %d edges in %.1f s (%d blocks)",
        graph.n_nodes,
        graph.n_edges,
        time.perf_counter() - started,
        len(bounds) - 1,
    )
    return graph


def _blocks(cumulative_work: np.ndarray, budget: float) -> list[int]:
    """Row boundaries such that each block's work stays under ``budget`` (>= 1 row)."""
    bounds = [0]
    n = cumulative_work.size
    while bounds[-1] < n:
        done = cumulative_work[bounds[-1] - 1] if bounds[-1] else 0.0
        stop = int(np.searchsorted(cumulative_work, done + budget, side="right"))
        bounds.append(min(max(stop, bounds[-1] + 1), n))
    return bounds
