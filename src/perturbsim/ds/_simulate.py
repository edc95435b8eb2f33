"""A biologically grounded Perturb-seq simulator with ground truth.

A sparse gene regulatory network (master regulators, modules of co-regulated genes, feedback,
Hill-type cooperative or saturating logic, broad cell-state programs; :mod:`._simulate_grn`) is
solved to steady state for control, every single perturbation of the perturbable genes and
every pair among them. Cells of the measured conditions are drawn with extrinsic noise, a
cell-cycle program, library sizes and negative-binomial counts (:mod:`._simulate_cells`). The
noiseless truth of every condition and GO-like annotations derived from the network modules
and programs are returned with the screen.

The design follows Norman et al. (2019), whose genes came from a growth screen (strong
phenotypes) and whose pairs were chosen mostly among genes of related function: the
perturbable genes are mostly the heads and inputs of the cell-state programs, and a measured
pair most often shares a program (:func:`_related`). Such pairs interact through the network
as in the real screen: mostly buffering (saturating programs), some additive (unrelated
programs), synergistic or neomorphic (AND programs), epistatic (masking) or redundant
(paralog-like regulators); ``benchmarks/REALISM.md`` sets the scores of simulated pairs beside
Norman's published ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._checks import check_count, check_fraction, check_nonnegative
from .._errors import PerturbsimError
from .._keys import CONTROL, COUNTS_LAYER, SEP, SIMULATION
from .._settings import resolve_seed
from ._simulate_cells import CellModel, sample_cells, truth_mean
from ._simulate_grn import Perturbations, RegulatoryNetwork, build_grn, calibrate, solve

logger = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, int]] = {
    "tiny": {
        "n_genes": 70,
        "n_perturbable": 14,
        "n_singles": 10,
        "n_pairs": 10,
        "cells_per_condition": 30,
        "n_control_cells": 150,
    },
    "small": {
        "n_genes": 400,
        "n_perturbable": 36,
        "n_singles": 26,
        "n_pairs": 26,
        "cells_per_condition": 60,
        "n_control_cells": 300,
    },
    "norman": {
        "n_genes": 5000,
        "n_perturbable": 110,
        "n_singles": 100,
        "n_pairs": 130,
        "cells_per_condition": 400,
        "n_control_cells": 7000,
    },
    "genome": {
        "n_genes": 8000,
        "n_perturbable": 160,
        "n_singles": 150,
        "n_pairs": 1850,
        "cells_per_condition": 480,
        "n_control_cells": 40_000,
    },
}
"""Screen designs of ``size``: ``tiny`` (a fraction of a second, fast tests), ``small`` (seconds,
tests), ``norman`` (Norman et al. 2019) and ``genome`` (1,000,000 cells x 8,000 genes x 2,000
perturbations: write it to disk with :func:`perturbsim.ds.simulate_to_disk`)."""

MODALITIES = ("crispra", "crispri", "knockout")
CONTROL_LABEL = "control"
TARGET_SUM = 1e4
_LIBRARY_PER_GENE = 1.0
_LIBRARY_MIN = 2500.0
_LIBRARY_SIGMA = 0.35
_MODULE_NOISE = 0.25
_CYCLE_AMPLITUDE = 0.7
_DISPERSIONS = (1.5, 3.0, 8.0)
_RELATED_WEIGHT = 10.0
"""How much more likely a pair is measured per unit of relatedness (:func:`_related`)."""
_PERTURBABLE_PER_PROGRAM = 14
"""One cell-state program per this many perturbable genes (at least four)."""


def _gene_names(n: int) -> np.ndarray:
    width = max(4, len(str(n)))
    return np.array([f"G{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _pair_label(a: str, b: str) -> str:
    return SEP.join(sorted((a, b)))


def _choose_perturbable(grn: RegulatoryNetwork, n: int, rng: np.random.Generator) -> np.ndarray:
    """Mostly genes converging on shared programs (as real screens choose them), some others.

    Program heads and their inputs first, then other regulators and masters, module members
    with targets of their own (hubs), and a few genes without targets, whose perturbations do
    little.
    """
    out_degree = np.bincount(grn.src, minlength=grn.n_genes)
    heads = np.flatnonzero(grn.program >= 0)
    inputs = np.setdiff1d(grn.src[grn.kind == "program_input"], heads)
    other = np.ones(grn.n_genes, dtype=bool)
    other[heads] = other[inputs] = False
    pools = {
        "head": heads,
        "input": inputs,
        "master": np.flatnonzero(other & (grn.role == "master")),
        "regulator": np.flatnonzero(other & (grn.role == "regulator")),
        "hub": np.flatnonzero(other & (grn.role == "member") & (out_degree > 0)),
        "member": np.flatnonzero((grn.role == "member") & (out_degree == 0)),
        "free": np.flatnonzero(grn.role == "free"),
    }
    want = {
        "head": round(0.07 * n),
        "input": round(0.65 * n),
        "master": round(0.08 * n),
        "regulator": round(0.1 * n),
        "hub": round(0.04 * n),
        "member": round(0.03 * n),
    }
    want["free"] = n - sum(want.values())
    chosen: list[int] = []
    for name, k in want.items():
        pool = rng.permutation(pools[name])
        chosen.extend(pool[: max(0, k)].tolist())
    if len(chosen) < n:
        rest = np.setdiff1d(np.arange(grn.n_genes), chosen)
        order = np.argsort(-out_degree[rest] + rng.random(rest.size), kind="stable")
        chosen.extend(rest[order][: n - len(chosen)].tolist())
    return np.sort(np.asarray(chosen[:n], dtype=np.int64))


def _efficacy(modality: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene efficacy (fraction of production removed, or of boost added) and boost."""
    poor = rng.random(n) < 0.12
    if modality == "crispra":
        eff = rng.beta(5.0, 2.0, n)
        eff[poor] = rng.uniform(0.02, 0.15, int(poor.sum()))
    elif modality == "crispri":
        eff = rng.beta(6.0, 1.5, n)
        eff[poor] = rng.uniform(0.05, 0.25, int(poor.sum()))
    else:
        eff = rng.uniform(0.9, 1.0, n)
        eff[poor] = rng.uniform(0.1, 0.4, int(poor.sum()))
    boost = np.exp(rng.normal(np.log(6.0), 0.5, n))
    return eff, boost


def _perturbations(
    grn: RegulatoryNetwork,
    genes_of_cond: list[tuple[int, ...]],
    modality: str,
    eff: np.ndarray,
    boost: np.ndarray,
) -> Perturbations:
    cond, gene = [], []
    for ci, genes in enumerate(genes_of_cond):
        for g in genes:
            cond.append(ci)
            gene.append(g)
    cond_a, gene_a = np.asarray(cond, dtype=np.int64), np.asarray(gene, dtype=np.int64)
    e = eff[gene_a]
    if modality == "crispra":
        mult, add = np.ones(gene_a.size), e * boost[gene_a] * grn.vmax[gene_a]
    else:
        mult, add = 1.0 - e, np.zeros(gene_a.size)
    return Perturbations(cond_a, gene_a, mult, add)


def _related(grn: RegulatoryNetwork, perturbable: np.ndarray) -> np.ndarray:
    """(P, P) relatedness: a shared program, overlapping targets, or a direct link.

    1 when both genes feed one program (are its head, or reach it within two steps: its
    inputs and their direct regulators), plus the Jaccard index of the genes they reach
    within three steps outside the programs (shared modules and their regulators), plus a
    quarter for a direct edge or a shared module.
    """
    g = grn.n_genes
    regular = grn.kind != "program"
    adj = sp.csr_matrix(
        (np.ones(int(regular.sum())), (grn.src[regular], grn.tgt[regular])), shape=(g, g)
    )
    step = adj[perturbable]
    two = step @ adj
    reach = ((step + two + two @ adj) > 0).astype(np.float64).tocsr()
    shared = (reach @ reach.T).toarray()
    size = np.asarray(reach.sum(axis=1)).ravel()
    union = size[:, None] + size[None, :] - shared
    jaccard = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
    heads = np.flatnonzero(grn.program >= 0)
    feeds = (step + two)[:, heads].toarray() > 0
    feeds |= perturbable[:, None] == heads[None, :]
    same_program = (feeds.astype(np.int64) @ feeds.T.astype(np.int64)) > 0
    direct = adj[perturbable][:, perturbable].toarray() > 0
    mod = grn.module[perturbable]
    same_module = (mod[:, None] == mod[None, :]) & (mod[:, None] >= 0)
    rel = same_program + jaccard + 0.25 * (direct | direct.T | same_module)
    np.fill_diagonal(rel, 0.0)
    return rel


def _choose_design(
    grn: RegulatoryNetwork,
    perturbable: np.ndarray,
    n_singles: int,
    n_pairs: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Measured singles and pairs (positions in ``perturbable``)."""
    p = perturbable.size
    singles = np.sort(rng.choice(p, size=n_singles, replace=False))
    seen = np.zeros(p, dtype=bool)
    seen[singles] = True
    rel = _related(grn, perturbable)
    iu, ju = np.triu_indices(p, k=1)
    n_seen = seen[iu].astype(int) + seen[ju].astype(int)
    # aim: most pairs with both singles measured, some with one or none (when possible)
    quota = {2: n_pairs, 1: 0, 0: 0}
    if seen.sum() < p:
        quota[0] = min(int((n_seen == 0).sum()), round(0.08 * n_pairs))
        quota[1] = min(int((n_seen == 1).sum()), round(0.2 * n_pairs))
        quota[2] = n_pairs - quota[0] - quota[1]
    chosen: list[int] = []
    for level in (0, 1, 2):
        cand = np.flatnonzero(n_seen == level)
        k = min(quota[level], cand.size)
        if k == 0:
            continue
        # mostly pairs converging on shared programs (as chosen in real screens), some at random
        weights = 1.0 + _RELATED_WEIGHT * rel[iu[cand], ju[cand]]
        pick = rng.choice(cand, size=k, replace=False, p=weights / weights.sum())
        chosen.extend(pick.tolist())
    if len(chosen) < n_pairs:  # too few of a level: the rest from any level, alike
        rest = np.setdiff1d(np.arange(iu.size), chosen)
        weights = 1.0 + _RELATED_WEIGHT * rel[iu[rest], ju[rest]]
        k = n_pairs - len(chosen)
        chosen.extend(rng.choice(rest, size=k, replace=False, p=weights / weights.sum()).tolist())
    chosen_a = np.sort(np.asarray(chosen, dtype=np.int64))
    return singles, [(int(iu[c]), int(ju[c])) for c in chosen_a]


def _go_annotations(
    grn: RegulatoryNetwork,
    names: np.ndarray,
    go_noise: float,
    unannotated_fraction: float,
    rng_terms: np.random.Generator,
    rng_shuffle: np.random.Generator,
    rng_missing: np.random.Generator,
) -> pd.DataFrame:
    """GO-like gene -> term annotations derived from the network modules."""
    terms: list[np.ndarray] = []
    n_modules = int(grn.module.max()) + 1
    for k in range(n_modules):
        genes = np.flatnonzero(grn.module == k)
        n_terms = 2 + rng_terms.poisson(1.0)
        k_terms = []
        for _ in range(n_terms):
            sel = genes[rng_terms.random(genes.size) < rng_terms.uniform(0.5, 0.95)]
            if sel.size >= 2:
                k_terms.append(sel)
        if not k_terms:
            k_terms.append(genes)
        covered = np.unique(np.concatenate(k_terms))
        missing = np.setdiff1d(genes, covered)
        k_terms[0] = np.union1d(k_terms[0], missing)
        terms.extend(k_terms)
    # process terms of the masters: the modules under a master
    masters = np.flatnonzero((grn.role == "master") & (grn.program < 0))
    for m in masters:
        regs = np.unique(grn.tgt[(grn.src == m) & (grn.role[grn.tgt] == "regulator")])
        mods = np.unique(grn.module[regs])
        genes = np.flatnonzero(np.isin(grn.module, mods))
        genes = genes[rng_terms.random(genes.size) < 0.3]
        terms.append(np.union1d(genes, [m]))
    # "regulation of <program>" terms: a regulator is annotated with the modules it controls
    # directly, so that genes with similar downstream programs share process terms
    for k in range(n_modules):
        regs = np.unique(grn.src[(grn.module[grn.tgt] == k) & (grn.kind != "program")])
        regs = regs[rng_terms.random(regs.size) < 0.8]
        if regs.size >= 2:
            terms.append(regs)
    # programs: "regulation of <program>" (the head and its inputs) and a process term of
    # part of its targets
    for head in np.flatnonzero(grn.program >= 0):
        inputs = np.unique(grn.src[(grn.tgt == head) & (grn.kind == "program_input")])
        terms.append(np.union1d(inputs[rng_terms.random(inputs.size) < 0.8], [head]))
        targets = grn.tgt[grn.src == head]
        terms.append(np.union1d(targets[rng_terms.random(targets.size) < 0.3], [head]))
    # regulators share "transcription factor activity"-like terms
    tfs = np.flatnonzero(np.isin(grn.role, ("master", "regulator")))
    for _ in range(2):
        terms.append(tfs[rng_terms.random(tfs.size) < 0.6])
    # broad, unspecific terms
    g = grn.n_genes
    for _ in range(6):
        terms.append(np.flatnonzero(rng_terms.random(g) < rng_terms.uniform(0.02, 0.06)))
    # free genes: small miscellaneous terms
    free = np.flatnonzero(grn.role == "free")
    n_misc = max(3, free.size // 15)
    misc: list[list[int]] = [[] for _ in range(n_misc)]
    for f in free:
        for t in rng_terms.choice(n_misc, size=1 + int(rng_terms.random() < 0.4), replace=False):
            misc[t].append(int(f))
    terms.extend(np.asarray(t, dtype=np.int64) for t in misc if t)

    gene_idx = np.concatenate(terms).astype(np.int64)
    term_idx = np.repeat(np.arange(len(terms)), [t.size for t in terms])
    # go_noise: term sets of a random fraction of the annotated genes are permuted among them
    annotated = np.unique(gene_idx)
    perm_order = rng_shuffle.permutation(annotated.size)
    n_shuffle = round(go_noise * annotated.size)
    chosen = annotated[perm_order[:n_shuffle]]
    mapping = np.arange(g)
    mapping[chosen] = rng_shuffle.permutation(chosen)
    gene_idx = mapping[gene_idx]
    # genes without any annotation
    drop = rng_missing.permutation(g)[: round(unannotated_fraction * g)]
    keep = ~np.isin(gene_idx, drop)
    frame = pd.DataFrame(
        {
            "gene": names[gene_idx[keep]].astype(str),
            "term": np.array([f"GO:9{t:06d}" for t in term_idx[keep]], dtype=object),
        }
    ).drop_duplicates()
    return frame.sort_values(["gene", "term"], kind="stable").reset_index(drop=True)


MAX_TRUTH_VALUES = 500_000_000
"""Largest truth (conditions x genes) :func:`simulate` computes: 4 GB while it is solved in
float64 (the Norman-sized preset's is 28 million)."""
MAX_CELLS = 50_000_000
"""Most cells :func:`simulate` draws."""
LARGE_IN_MEMORY = 2_000_000_000
"""Cells x genes above which :func:`simulate` warns and points to ``simulate_to_disk`` (the
``norman`` preset draws 495 million, ``genome`` 8 billion)."""
MIN_GENES = 50
"""Fewest genes a simulated screen has."""


def _resolve(size: str, **overrides: int | None) -> dict[str, int]:
    if not isinstance(size, str) or size not in PRESETS:
        raise PerturbsimError(f"size={size!r} is not a preset; choose one of {list(PRESETS)}")
    design = dict(PRESETS[size])
    for key, value in overrides.items():
        if value is not None:
            design[key] = check_count(key, value, minimum=MIN_GENES if key == "n_genes" else 0)
    if not 2 <= design["n_perturbable"] <= design["n_genes"] // 2:
        raise PerturbsimError(
            f"n_perturbable={design['n_perturbable']} must be between 2 and n_genes/2"
        )
    p = design["n_perturbable"]
    if design["n_singles"] > p:
        raise PerturbsimError(f"n_singles={design['n_singles']} exceeds n_perturbable={p}")
    if design["n_pairs"] > p * (p - 1) // 2:
        raise PerturbsimError(
            f"n_pairs={design['n_pairs']} exceeds the {p * (p - 1) // 2} pairs of "
            f"{p} perturbable genes"
        )
    if design["n_control_cells"] < 1:
        raise PerturbsimError("n_control_cells=0: a screen needs control cells")
    if design["n_singles"] + design["n_pairs"] > 0 and design["cells_per_condition"] < 1:
        raise PerturbsimError("cells_per_condition=0: measured conditions need cells")
    n_truth = 1 + p + p * (p - 1) // 2  # control, every single and every pair
    if n_truth * design["n_genes"] > MAX_TRUTH_VALUES:
        raise PerturbsimError(
            f"n_perturbable={p} and n_genes={design['n_genes']} ask for a truth of {n_truth:,} "
            f"conditions (control, every single and pair) x {design['n_genes']:,} genes, "
            f"more than the {MAX_TRUTH_VALUES:,} values this simulator holds in memory: "
            "choose fewer perturbable genes or genes"
        )
    n_cells = design["n_control_cells"] + (
        (design["n_singles"] + design["n_pairs"]) * design["cells_per_condition"]
    )
    if n_cells > MAX_CELLS:
        raise PerturbsimError(
            f"the design asks for {n_cells:,} cells, more than {MAX_CELLS:,}: choose fewer "
            "cells per condition or conditions (perturbsim.ds.simulate_to_disk writes large "
            "screens in chunks, up to the same limit)"
        )
    return design


@dataclass
class _Screen:
    """A simulated screen but its cells: network, design, truth and measurement model."""

    params: dict[str, Any]
    """The scalars of ``uns["simulation"]["params"]``."""
    names: np.ndarray
    grn: RegulatoryNetwork
    perturbable: np.ndarray
    efficacy: np.ndarray
    """``(G,)``, NaN where not perturbable."""
    model: CellModel
    truth_labels: np.ndarray
    truth_mean: np.ndarray
    measured: list[str]
    """Canonical labels of the measured conditions, control first."""
    steady: np.ndarray
    """Steady states of the measured conditions, ``(M, G)``."""
    n_cells: np.ndarray
    """Cells of each measured condition, ``(M,)``."""
    go: pd.DataFrame
    cell_seed: np.random.SeedSequence
    """Seed of the cells (:func:`._simulate_cells.cell_chunks`)."""


def _draw_screen(
    *,
    size: str = "norman",
    n_genes: int | None = None,
    n_perturbable: int | None = None,
    n_singles: int | None = None,
    n_pairs: int | None = None,
    cells_per_condition: int | None = None,
    n_control_cells: int | None = None,
    modality: str = "crispra",
    go_noise: float = 0.0,
    unannotated_fraction: float = 0.1,
    seed: int | None = None,
) -> _Screen:
    """Everything :func:`simulate` draws before the cells (arguments as there)."""
    if modality not in MODALITIES:
        raise PerturbsimError(f"modality={modality!r} is not one of {list(MODALITIES)}")
    if check_nonnegative("go_noise", go_noise) > 1.0:
        raise PerturbsimError(f"go_noise must lie in [0, 1], got {go_noise!r}")
    check_fraction("unannotated_fraction", unannotated_fraction, allow_zero=True)
    design = _resolve(
        size,
        n_genes=n_genes,
        n_perturbable=n_perturbable,
        n_singles=n_singles,
        n_pairs=n_pairs,
        cells_per_condition=cells_per_condition,
        n_control_cells=n_control_cells,
    )
    seed = resolve_seed(seed)
    t0 = time.perf_counter()
    ss_grn, ss_design, ss_go, ss_cells, ss_noise = np.random.SeedSequence(seed).spawn(5)
    rng_grn, rng_design = np.random.default_rng(ss_grn), np.random.default_rng(ss_design)
    g = design["n_genes"]
    names = _gene_names(g)

    n_programs = max(4, round(design["n_perturbable"] / _PERTURBABLE_PER_PROGRAM))
    grn = build_grn(
        g,
        rng_grn,
        min_modules=max(6, -(-4 * design["n_perturbable"] // 10)),
        n_programs=n_programs,
    )
    x_ctrl = calibrate(grn, rng_grn)
    perturbable = _choose_perturbable(grn, design["n_perturbable"], rng_design)
    eff_p, boost_p = _efficacy(modality, perturbable.size, rng_design)
    eff = np.full(g, np.nan)
    boost = np.ones(g)
    eff[perturbable], boost[perturbable] = eff_p, boost_p
    singles, pairs = _choose_design(
        grn, perturbable, design["n_singles"], design["n_pairs"], rng_design
    )

    # truth: control, every single and every pair of the perturbable genes
    order = perturbable[np.argsort(names[perturbable])]  # alphabetical
    truth_genes: list[tuple[int, ...]] = [()]
    truth_genes += [(int(a),) for a in order]
    truth_genes += [(int(a), int(b)) for a, b in combinations(order, 2)]
    truth_labels = np.array(
        [CONTROL if not t else SEP.join(names[list(t)]) for t in truth_genes], dtype=object
    )
    pert = _perturbations(grn, truth_genes, modality, eff, boost)
    x_truth, n_bad = solve(grn, len(truth_genes), pert, x0_core=x_ctrl[grn.core])
    logger.info("solved %d conditions (%.1fs)", len(truth_genes), time.perf_counter() - t0)

    # measurement model
    rng_noise = np.random.default_rng(ss_noise)
    module = grn.module.copy()
    n_modules = int(module.max()) + 1
    cycle_modules = rng_noise.choice(n_modules, size=min(2, n_modules), replace=False)
    amp = np.where(np.isin(module, cycle_modules), _CYCLE_AMPLITUDE, 0.0)
    phase = np.where(module == cycle_modules[-1], np.pi / 2, 0.0) * (amp > 0)
    model = CellModel(
        sigma=np.where(module >= 0, _MODULE_NOISE, 0.0),
        amp=amp,
        phase=phase,
        dispersion=rng_noise.choice(_DISPERSIONS, size=g, p=(0.3, 0.45, 0.25)),
        module=np.where(module >= 0, module, n_modules),
        n_modules=n_modules,
        library_median=max(_LIBRARY_PER_GENE * g, _LIBRARY_MIN),
        library_sigma=_LIBRARY_SIGMA,
        target_sum=TARGET_SUM,
    )
    tmean = truth_mean(x_truth, model)

    # measured conditions and their cells
    index = {lab: i for i, lab in enumerate(truth_labels)}
    p_names = names[perturbable]
    measured = [CONTROL] + [str(p_names[s]) for s in singles]
    measured += [_pair_label(p_names[a], p_names[b]) for a, b in pairs]
    measured_idx = np.array([index[m] for m in measured])
    n_cells = [design["n_control_cells"]] + [design["cells_per_condition"]] * (len(measured) - 1)
    r_terms, r_shuffle, r_missing = (np.random.default_rng(s) for s in ss_go.spawn(3))
    go = _go_annotations(grn, names, go_noise, unannotated_fraction, r_terms, r_shuffle, r_missing)
    params = {
        "size": size,
        **design,
        "modality": modality,
        "go_noise": float(go_noise),
        "unannotated_fraction": float(unannotated_fraction),
        "seed": int(seed),
        "n_modules": n_modules,
        "n_programs": n_programs,
        "n_edges": int(grn.src.size),
        "n_truth_conditions": len(truth_genes),
        "library_median": float(model.library_median),
        "target_sum": TARGET_SUM,
        "n_unconverged": n_bad,
        "truth_method": "quadrature",
    }
    return _Screen(
        params=params,
        names=names,
        grn=grn,
        perturbable=perturbable,
        efficacy=eff,
        model=model,
        truth_labels=truth_labels,
        truth_mean=tmean,
        measured=measured,
        steady=x_truth[measured_idx],
        n_cells=np.asarray(n_cells),
        go=go,
        cell_seed=ss_cells,
    )


def _obs(screen: _Screen, cells: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """``obs`` of the screen's cells.

    ``cells`` holds their ``ncounts``, ``ngenes``, ``library_size`` and ``cell_cycle_phase``.
    """
    row_cond = np.repeat(np.arange(len(screen.measured)), screen.n_cells)
    width = len(str(row_cond.size))
    return pd.DataFrame(
        {
            "condition": pd.Categorical.from_codes(
                row_cond, categories=[CONTROL_LABEL, *screen.measured[1:]]
            ),
            "ncounts": np.asarray(cells["ncounts"], dtype=np.float32),
            "ngenes": np.asarray(cells["ngenes"]).astype(np.int32),
            "library_size": np.asarray(cells["library_size"], dtype=np.float32),
            "cell_cycle_phase": np.asarray(cells["cell_cycle_phase"], dtype=np.float32),
        },
        index=pd.Index([f"cell{i:0{width}d}" for i in range(row_cond.size)]),
    )


def _var(screen: _Screen) -> pd.DataFrame:
    """``var``: the genes' roles in the network and their measurement parameters."""
    grn = screen.grn
    is_regulator = np.zeros(grn.n_genes, dtype=bool)
    is_regulator[grn.src] = True
    is_pert = np.zeros(grn.n_genes, dtype=bool)
    is_pert[screen.perturbable] = True
    return pd.DataFrame(
        {
            "perturbable": is_pert,
            "module": grn.module.astype(np.int64),
            "is_regulator": is_regulator,
            "role": pd.Categorical(grn.role, categories=["master", "regulator", "member", "free"]),
            "efficacy": screen.efficacy.astype(np.float32),
            "dispersion": screen.model.dispersion.astype(np.float32),
            "cell_cycle": screen.model.amp > 0,
        },
        index=pd.Index(screen.names.astype(str)),
    )


def _uns(screen: _Screen) -> dict[str, Any]:
    """``uns["simulation"]``: parameters, GO-like terms, network and truth."""
    return {
        "params": screen.params,
        "go": screen.go,
        "grn": screen.grn.edges_frame(screen.names),
        "truth_conditions": screen.truth_labels.astype(str),
        "truth_mean": screen.truth_mean,
        "truth_genes": screen.names.astype(str),
        "measured": np.array(screen.measured, dtype=str),
    }


def simulate(
    *,
    size: str = "norman",
    n_genes: int | None = None,
    n_perturbable: int | None = None,
    n_singles: int | None = None,
    n_pairs: int | None = None,
    cells_per_condition: int | None = None,
    n_control_cells: int | None = None,
    modality: str = "crispra",
    go_noise: float = 0.0,
    unannotated_fraction: float = 0.1,
    seed: int | None = None,
) -> AnnData:
    """Simulate a Perturb-seq screen of single and paired perturbations, with ground truth.

    A sparse gene regulatory network is drawn: a few master regulators wired to each other
    (toggles, feedback), modules of tightly co-regulated genes driven by one or two module
    regulators with cooperative (AND-like, product of Hill terms, high thresholds) or
    saturating (OR-like) logic, cross-talk, feedback of module members on their regulator,
    free genes (unregulated or weakly regulated), and a few broad cell-state programs: a head
    gene integrating regulators of several modules (saturating OR logic, or AND logic over two
    other programs) that scales the production of most genes without targets of their own by
    a bounded factor. Each gene has basal production, Hill activation/repression and
    degradation; the steady state is solved by damped fixed-point iteration from the control
    state, for all conditions at once. CRISPRa adds production to the target (``efficacy *
    boost`` times its maximal natural level), CRISPRi and knockout scale production by ``1 -
    efficacy``; a pair acts through the same network, so buffering (saturation), synergy and
    new effects (AND logic), epistasis (masking) and redundancy (paralog-like regulators)
    arise from the dynamics (see :mod:`perturbsim.ds._simulate_grn`). Most perturbable genes
    feed the programs and most measured pairs share one, as in Norman et al.'s screen; some
    perturbable genes regulate nothing and some guides are poor: such perturbations do almost
    nothing.

    Cells carry extrinsic noise (module-wide rate noise, a cell-cycle program), lognormal
    library sizes and negative-binomial counts (see :mod:`perturbsim.ds._simulate_cells`).

    Parameters
    ----------
    size
        Preset design: ``"tiny"`` (70 genes, 14 perturbable, 10 singles, 10 pairs, 30 cells
        per condition, 150 control cells: 750 cells, 106 truth conditions; about 0.3 s, yet
        every subgroup of a ``kind="simulation"`` split occurs), ``"small"`` (400 genes, 36
        perturbable, 26 singles, 26 pairs, 60 cells per condition, 300 control cells; about a
        second) or ``"norman"`` (5,000 genes, 110 perturbable, 100 singles, 130 pairs, 400
        cells per condition, 7,000 control cells: 99,000 cells, like Norman et al. 2019) or
        ``"genome"`` (8,000 genes, 160 perturbable, 150 singles, 1,850 pairs, 480 cells per
        condition, 40,000 control cells: 1,000,000 cells, about 13 GB as an h5ad file; draw
        it with :func:`perturbsim.ds.simulate_to_disk`). Explicit arguments override the
        preset.
    n_genes
        Number of genes (all measured), at least :data:`MIN_GENES` (50).
    n_perturbable
        Number of genes that can be perturbed, 2 to ``n_genes // 2``; the truth covers all
        their singles and pairs.
    n_singles
        Number of measured single perturbations, at most ``n_perturbable`` (the others
        appear only in pairs, if at all).
    n_pairs
        Number of measured pairs, at most the pairs of the perturbable genes; most with both
        singles measured, some with one or none.
    cells_per_condition
        Cells of each measured perturbation.
    n_control_cells
        Control cells.
    modality
        ``"crispra"`` (activation), ``"crispri"`` (interference) or ``"knockout"``.
    go_noise
        0: GO-like terms follow the network modules; 1: term sets shuffled between genes.
    unannotated_fraction
        Fraction of genes without any term.
    seed
        Seed of everything (default: ``perturbsim.settings.seed``): the same seed gives an
        identical AnnData, another seed another network.

    Returns
    -------
    Cells x genes AnnData with

    - ``X``: float32 CSR, ``log1p(normalize_total(counts, target_sum=1e4))``;
    - ``layers["counts"]``: raw counts (float32 CSR, integer values);
    - ``obs["condition"]``: ``"control"``, ``"A"`` or ``"A+B"`` (genes sorted), categorical;
      ``obs["ncounts"]``, ``obs["ngenes"]`` (total counts, detected genes),
      ``obs["library_size"]`` (expected total) and ``obs["cell_cycle_phase"]`` (radians);
    - ``var``: ``perturbable``, ``module`` (-1 outside modules), ``is_regulator`` (has
      targets), ``role`` (``master``, ``regulator``, ``member``, ``free``), ``efficacy``
      (NaN if not perturbable), ``dispersion``, ``cell_cycle``;
    - ``uns["simulation"]``: ``params`` (scalars), ``go`` (DataFrame ``gene``, ``term``),
      ``grn`` (DataFrame ``source``, ``target``, ``sign``, ``hill_n``, ``half_saturation``,
      ``weight`` (a program's modulation or a program input's largest contribution, else 1),
      ``kind``: ``module``, ``crosstalk``, ``hierarchy``, ``feedback``, ``free``,
      ``program_input`` or ``program``), ``truth_conditions`` (canonical labels ``ctrl``,
      ``A``, ``A+B``: control, every single and every pair of the perturbable genes),
      ``truth_mean`` (float32 ``(n_truth, n_genes)``, the noiseless mean of ``X`` per
      condition, computed by quadrature over library size, extrinsic noise, cell cycle and
      counts, not from the sampled cells: its changes over control are the limit of the
      pseudobulk's with infinitely many cells (within the sampling noise of thousands of
      cells; a knocked-down target's change reads about 0.04 smaller than the cells'
      limit), its levels lie up to about 0.08 below that limit, since the quadrature takes
      the rest of a cell's counts at their expectation and leaves out the rescaling of
      each cell's extrinsic noise to its library size), ``truth_genes`` (the genes of its
      columns, ``var_names`` as simulated), ``measured`` (canonical labels of the measured
      conditions).
    - ``uns["simulation"]["params"]["n_unconverged"]``: conditions whose steady state was
      not reached (warned of; 0 on every preset and seed checked, since a condition
      oscillating under the solver's damping is solved on with less).

    The screen is not set up: before splitting or training, name its labels with
    ``ps.pp.setup(adata, perturbation_key="condition", control="control")``.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.simulate(size="small", seed=0)
    >>> adata.obs["condition"].nunique()
    53
    >>> ps.pp.setup(adata, perturbation_key="condition", control="control")
    >>> ps.pp.split(adata, seed=1)
    """
    t0 = time.perf_counter()
    screen = _draw_screen(
        size=size,
        n_genes=n_genes,
        n_perturbable=n_perturbable,
        n_singles=n_singles,
        n_pairs=n_pairs,
        cells_per_condition=cells_per_condition,
        n_control_cells=n_control_cells,
        modality=modality,
        go_noise=go_noise,
        unannotated_fraction=unannotated_fraction,
        seed=seed,
    )
    n_values = int(screen.n_cells.sum()) * screen.steady.shape[1]
    if n_values > LARGE_IN_MEMORY:
        logger.warning(
            "drawing %s cells x %s genes in memory (tens of GB for the size 'genome'): "
            "perturbsim.ds.simulate_to_disk writes a screen this large in chunks",
            f"{int(screen.n_cells.sum()):,}",
            f"{screen.steady.shape[1]:,}",
        )
    cells = sample_cells(screen.steady, screen.n_cells, screen.model, screen.cell_seed)
    counts: sp.csr_matrix = cells["counts"]  # type: ignore[assignment]
    obs = _obs(screen, {**cells, "ngenes": np.diff(counts.indptr)})  # type: ignore[dict-item]
    adata = AnnData(X=cells["X"], obs=obs, var=_var(screen))
    adata.layers[COUNTS_LAYER] = counts
    adata.uns[SIMULATION] = _uns(screen)
    logger.info(
        "simulated %d cells x %d genes, %d measured conditions, %d truth conditions (%.1fs)",
        adata.n_obs,
        adata.n_vars,
        len(screen.measured),
        len(screen.truth_labels),
        time.perf_counter() - t0,
    )
    return adata
