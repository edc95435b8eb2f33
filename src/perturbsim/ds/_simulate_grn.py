"""Gene regulatory network of the Perturb-seq simulator: structure, kinetics and steady state.

The network is a sparse directed graph with a hierarchy of roles:

``master``
    a few top regulators, wired to each other (toggles, feedback) and to module regulators;
``regulator``
    one or two per module; they drive a tightly co-regulated program (the module);
``member``
    the genes of a module, driven by the module's regulators (with AND- or OR-like logic),
    sometimes by a second regulator (cross-talk); some feed back on their regulator;
``free``
    genes outside any module: unregulated or weakly regulated by one regulator.

Kinetics. Gene ``g`` is produced at rate ``s_g (beta_g + (1 - beta_g) H_g(x))`` and degraded at
rate ``d_g``, so its steady state is ``x_g = s_g / d_g (beta_g + (1 - beta_g) H_g(x))``.
``H_g`` combines Hill terms ``h = x^n / (K^n + x^n)`` of its inputs: activators by product
(``and``: all needed, cooperative) or by ``1 - prod(1 - h)`` (``or``: any suffices, saturating),
repressors by ``prod(1 - h)``. A perturbation changes the target's production: CRISPRa adds
``efficacy * boost * s_g / d_g``, CRISPRi and knockout multiply it by ``1 - efficacy``.
The steady state is found by damped fixed-point iteration started from the control state, on
all conditions at once; only genes with outgoing edges (the "core") need iterating, the other
genes follow in one pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

logger = logging.getLogger(__name__)

ROLES = ("master", "regulator", "member", "free")
_TINY = 1e-30


@dataclass
class _EdgeBlock:
    """Edges into one set of target genes, arranged for vectorised evaluation."""

    src: np.ndarray  # index into the core genes
    n: np.ndarray
    log_k: np.ndarray
    rep: np.ndarray  # edge positions of each kind
    act_and: np.ndarray
    act_or: np.ndarray
    m_rep: sp.csr_matrix  # (n_edges_kind, n_targets) incidence
    m_and: sp.csr_matrix
    m_or: sp.csr_matrix
    has_or: np.ndarray  # (n_targets,)


@dataclass
class RegulatoryNetwork:
    """A simulated gene regulatory network with its kinetic parameters."""

    role: np.ndarray  # (G,) str
    module: np.ndarray  # (G,) int, -1 outside modules
    vmax: np.ndarray  # (G,) s / d, the level at full activation
    basal: np.ndarray  # (G,) beta, basal fraction of vmax
    logic_and: np.ndarray  # (G,) bool: activators combine by product
    src: np.ndarray  # (E,) edges
    tgt: np.ndarray
    sign: np.ndarray  # +1 activation, -1 repression
    hill_n: np.ndarray
    half_sat: np.ndarray  # K of the Hill term, set relative to the control level of the source
    kind: np.ndarray  # (E,) str: "module", "crosstalk", "hierarchy", "feedback", "free"
    core: np.ndarray = field(init=False)  # genes with outgoing edges (iterated)
    leaf: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        out = np.zeros(self.n_genes, dtype=bool)
        out[self.src] = True
        self.core = np.flatnonzero(out)
        self.leaf = np.flatnonzero(~out)

    def on_cycle(self) -> np.ndarray:
        """Boolean (G,): the gene lies on a directed feedback cycle."""
        g = self.n_genes
        adj = sp.csr_matrix((np.ones(self.src.size), (self.src, self.tgt)), shape=(g, g))
        _, labels = connected_components(adj, directed=True, connection="strong")
        sizes = np.bincount(labels)
        cyc = sizes[labels] > 1
        cyc[self.src[self.src == self.tgt]] = True
        return cyc

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return int(self.role.shape[0])

    def edges_frame(self, names: np.ndarray) -> pd.DataFrame:
        """The edges as a DataFrame with gene names."""
        return pd.DataFrame(
            {
                "source": names[self.src],
                "target": names[self.tgt],
                "sign": self.sign.astype(np.int8),
                "hill_n": self.hill_n.astype(np.float32),
                "half_saturation": self.half_sat.astype(np.float32),
                "kind": self.kind.astype(str),
            }
        )

    # ---- evaluation -----------------------------------------------------------------------
    def _block(self, targets: np.ndarray) -> _EdgeBlock:
        core_pos = np.full(self.n_genes, -1, dtype=np.int64)
        core_pos[self.core] = np.arange(self.core.size)
        tpos = np.full(self.n_genes, -1, dtype=np.int64)
        tpos[targets] = np.arange(targets.size)
        sel = np.flatnonzero(tpos[self.tgt] >= 0)
        local_t = tpos[self.tgt[sel]]
        is_rep = self.sign[sel] < 0
        is_and = ~is_rep & self.logic_and[self.tgt[sel]]
        is_or = ~is_rep & ~is_and

        def incidence(mask: np.ndarray) -> sp.csr_matrix:
            rows = np.arange(int(mask.sum()))
            return sp.csr_matrix(
                (np.ones(rows.size), (rows, local_t[mask])), shape=(rows.size, targets.size)
            )

        has_or = np.zeros(targets.size, dtype=bool)
        has_or[local_t[is_or]] = True
        return _EdgeBlock(
            src=core_pos[self.src[sel]],
            n=self.hill_n[sel],
            log_k=np.log(self.half_sat[sel]),
            rep=np.flatnonzero(is_rep),
            act_and=np.flatnonzero(is_and),
            act_or=np.flatnonzero(is_or),
            m_rep=incidence(is_rep),
            m_and=incidence(is_and),
            m_or=incidence(is_or),
            has_or=has_or,
        )

    def blocks(self) -> tuple[_EdgeBlock, _EdgeBlock]:
        """Edge blocks into the core genes and into the leaf genes."""
        return self._block(self.core), self._block(self.leaf)

    def production(self, x_core: np.ndarray, block: _EdgeBlock, targets: np.ndarray) -> np.ndarray:
        """Unperturbed steady-state level of ``targets`` given the core levels ``x_core``."""
        a = block.n * (np.log(np.maximum(x_core[:, block.src], _TINY)) - block.log_k)
        log_s = np.zeros((a.shape[0], targets.size))
        if block.rep.size:
            log_s += np.asarray(-np.logaddexp(0.0, a[:, block.rep]) @ block.m_rep)
        if block.act_and.size:
            log_s += np.asarray(-np.logaddexp(0.0, -a[:, block.act_and]) @ block.m_and)
        h = np.exp(log_s)
        if block.act_or.size:
            log_none = np.asarray(-np.logaddexp(0.0, a[:, block.act_or]) @ block.m_or)
            h *= np.where(block.has_or, -np.expm1(log_none), 1.0)
        beta = self.basal[targets]
        return self.vmax[targets] * (beta + (1.0 - beta) * h)


def build_grn(n_genes: int, rng: np.random.Generator, *, min_modules: int = 6) -> RegulatoryNetwork:
    """Draw the structure and kinetic parameters of a network (half-saturations uncalibrated)."""
    g = n_genes
    n_modules = max(min_modules, round(g / 50))
    n_master = max(3, round(n_modules / 10))
    perm = rng.permutation(g)
    masters = perm[:n_master]
    regs_per_module = 1 + (rng.random(n_modules) < 0.45).astype(int)
    n_reg = int(regs_per_module.sum())
    regs = perm[n_master : n_master + n_reg]
    reg_module = np.repeat(np.arange(n_modules), regs_per_module)
    rest = perm[n_master + n_reg :]
    n_member = round(0.7 * rest.size)
    min_size = 3
    if n_member < min_size * n_modules:
        n_member = min(rest.size, min_size * n_modules)
    members, free = rest[:n_member], rest[n_member:]
    props = rng.dirichlet(np.full(n_modules, 2.0))
    sizes = np.full(n_modules, min(min_size, n_member // n_modules))
    sizes += rng.multinomial(n_member - sizes.sum(), props)
    member_module = np.repeat(np.arange(n_modules), sizes)

    role = np.empty(g, dtype=object)
    role[masters], role[regs], role[members], role[free] = "master", "regulator", "member", "free"
    module = np.full(g, -1, dtype=np.int64)
    module[regs] = reg_module
    module[members] = member_module
    module_regs = [regs[reg_module == k] for k in range(n_modules)]

    src: list[int] = []
    tgt: list[int] = []
    sign: list[int] = []
    kind: list[str] = []
    hill: list[float] = []

    def add(s: int, t: int, sg: int, kd: str, choices=(1, 2, 3, 4), p=(0.1, 0.35, 0.35, 0.2)):
        src.append(int(s))
        tgt.append(int(t))
        sign.append(int(sg))
        kind.append(kd)
        hill.append(float(rng.choice(choices, p=p)))

    logic_and = np.zeros(g, dtype=bool)
    # masters: a sparse web among themselves (toggles, feedback); the first is at the top
    for i, m in enumerate(masters[1:], start=1):
        if rng.random() < 0.7:
            other = masters[rng.integers(0, i)]
            add(other, m, -1 if rng.random() < 0.5 else 1, "hierarchy")
        if rng.random() < 0.25:
            other = masters[rng.integers(0, n_master)]
            if other != m:
                add(other, m, -1, "feedback", (1, 2), (0.6, 0.4))
    # module regulators: inputs from masters or from regulators of earlier modules
    for r, k in zip(regs, reg_module, strict=True):
        n_in = 1 + int(rng.random() < 0.55) + int(rng.random() < 0.15)
        for _ in range(n_in):
            earlier = regs[reg_module < k]
            if earlier.size and rng.random() < 0.55:
                s = earlier[rng.integers(0, earlier.size)]
            else:
                s = masters[rng.integers(0, n_master)]
            add(s, r, 1 if rng.random() < 0.7 else -1, "hierarchy")
        logic_and[r] = n_in > 1 and rng.random() < 0.4
    # module members: driven by the module's regulators, sometimes cross-talk
    module_sign = np.where(rng.random(n_modules) < 0.75, 1, -1)
    module_and = (rng.random(n_modules) < 0.5) & (regs_per_module > 1)
    upstream = np.concatenate([masters, regs])
    partners = []
    for k in range(n_modules):
        pool = upstream[module[upstream] != k]
        partners.append(
            rng.choice(pool, size=min(pool.size, 1 + int(rng.random() < 0.5)), replace=False)
        )
    partner_sign = np.where(rng.random(n_modules) < 0.65, 1, -1)
    for m, k in zip(members, member_module, strict=True):
        drivers = module_regs[k]
        if drivers.size > 1 and rng.random() < 0.15:
            drivers = drivers[rng.integers(0, drivers.size, 1)]
        sg = module_sign[k] * (-1 if rng.random() < 0.08 else 1)
        for d in drivers:
            add(d, m, sg, "module")
        logic_and[m] = module_and[k]
        if rng.random() < 0.5:
            # combinatorial control: a partner regulator of the module joins in
            s = partners[k][rng.integers(0, len(partners[k]))]
            add(s, m, partner_sign[k], "crosstalk")
            if drivers.size == 1 and rng.random() < 0.5:
                logic_and[m] = True
        elif rng.random() < 0.15:
            s = upstream[rng.integers(0, upstream.size)]
            if module[s] != k:
                add(s, m, 1 if rng.random() < 0.6 else -1, "crosstalk")
    # feedback of a module member on its regulator
    for k in range(n_modules):
        if rng.random() < 0.35:
            mk = members[member_module == k]
            if mk.size == 0:
                continue
            m = mk[rng.integers(0, mk.size)]
            r = module_regs[k][0]
            sg = -module_sign[k] if rng.random() < 0.75 else module_sign[k]
            add(m, r, sg, "feedback", (1, 2), (0.6, 0.4))
    # a few members are hubs of a small secondary program in other modules or free genes
    for m in members[rng.random(members.size) < 0.08]:
        pool = np.flatnonzero(module != module[m])
        for t in rng.choice(pool, size=int(rng.integers(3, 11)), replace=False):
            if role[t] in ("member", "free"):
                add(m, t, 1 if rng.random() < 0.6 else -1, "crosstalk", (1, 2), (0.4, 0.6))
    # free genes: half unregulated, half weakly regulated by one regulator
    for f in free:
        if rng.random() < 0.5:
            s = upstream[rng.integers(0, upstream.size)]
            add(s, f, 1 if rng.random() < 0.6 else -1, "free", (1, 2), (0.5, 0.5))

    scale = np.exp(np.clip(rng.normal(0.0, 2.5, g), -8.0, 4.5))
    scale[np.isin(role, ("master", "regulator"))] *= 0.3
    degradation = np.exp(rng.uniform(np.log(0.5), np.log(2.0), g))
    basal = np.exp(rng.uniform(np.log(0.005), np.log(0.3), g))
    basal[role == "master"] = np.exp(rng.uniform(np.log(0.05), np.log(0.5), n_master))
    basal[role == "free"] = np.exp(rng.uniform(np.log(0.1), np.log(0.6), free.size))
    # cooperative genes: the control state sits near the basal floor, so one input alone
    # moves them a little and two inputs together a lot (synergy)
    basal[logic_and] = np.exp(rng.uniform(np.log(0.03), np.log(0.2), int(logic_and.sum())))
    src_a = np.asarray(src, dtype=np.int64)
    return RegulatoryNetwork(
        role=role.astype(str),
        module=module,
        vmax=scale / degradation,
        basal=basal,
        logic_and=logic_and,
        src=src_a,
        tgt=np.asarray(tgt, dtype=np.int64),
        sign=np.asarray(sign, dtype=np.int64),
        hill_n=np.asarray(hill),
        half_sat=0.4 * (scale / degradation)[src_a],
        kind=np.asarray(kind, dtype=object),
    )


@dataclass
class Perturbations:
    """Per-condition changes of production: ``x_g <- x_g * mult + add`` for listed genes."""

    cond: np.ndarray  # (n,) condition index
    gene: np.ndarray  # (n,) gene index
    mult: np.ndarray
    add: np.ndarray


def solve(
    grn: RegulatoryNetwork,
    n_conditions: int,
    pert: Perturbations,
    *,
    x0_core: np.ndarray | None = None,
    damping: float = 0.5,
    tol: float = 1e-6,
    max_iter: int = 3000,
    chunk: int = 512,
) -> tuple[np.ndarray, int]:
    """Steady state of every condition, ``(n_conditions, n_genes)``, and non-converged count."""
    core_block, leaf_block = grn.blocks()
    nc = grn.core.size
    core_pos = np.full(grn.n_genes, -1, dtype=np.int64)
    core_pos[grn.core] = np.arange(nc)
    mult = np.ones((n_conditions, nc))
    add = np.zeros((n_conditions, nc))
    in_core = core_pos[pert.gene] >= 0
    mult[pert.cond[in_core], core_pos[pert.gene[in_core]]] = pert.mult[in_core]
    add[pert.cond[in_core], core_pos[pert.gene[in_core]]] = pert.add[in_core]

    if x0_core is None:
        x0_core = grn.vmax[grn.core] * (grn.basal[grn.core] + 0.5 * (1 - grn.basal[grn.core]))
    # genes on feedback cycles are damped; the acyclic rest settles in as many steps as the
    # hierarchy is deep
    alpha = np.where(grn.on_cycle()[grn.core], damping, 1.0)
    x = np.tile(x0_core, (n_conditions, 1))
    active = np.arange(n_conditions)
    n_iter = 0
    while active.size and n_iter < max_iter:
        xa = x[active]
        f = grn.production(xa, core_block, grn.core) * mult[active] + add[active]
        new = xa + alpha * (f - xa)
        diff = np.max(np.abs(new - xa) / np.maximum(xa, _TINY), axis=1)
        x[active] = new
        active = active[diff > tol]
        n_iter += 1
    n_bad = int(active.size)
    if n_bad:
        logger.warning(
            "steady state not reached for %d conditions after %d iterations", n_bad, max_iter
        )

    out = np.empty((n_conditions, grn.n_genes))
    out[:, grn.core] = x
    leaf_pos = np.full(grn.n_genes, -1, dtype=np.int64)
    leaf_pos[grn.leaf] = np.arange(grn.leaf.size)
    for start in range(0, n_conditions, chunk):
        stop = min(start + chunk, n_conditions)
        out[start:stop, grn.leaf] = grn.production(x[start:stop], leaf_block, grn.leaf)
    in_leaf = ~in_core
    rows, cols = pert.cond[in_leaf], pert.gene[in_leaf]
    out[rows, cols] = out[rows, cols] * pert.mult[in_leaf] + pert.add[in_leaf]
    return out, n_bad


def calibrate(grn: RegulatoryNetwork, rng: np.random.Generator) -> np.ndarray:
    """Set half-saturations near the control level of each source; return the control state.

    Inputs of ``and`` genes get higher thresholds (the gene is mostly off in control and needs
    its inputs together), so that cooperative logic creates synergy.
    """
    empty = Perturbations(*(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0), np.zeros(0))
    x_ctrl, _ = solve(grn, 1, empty)
    spread = np.exp(rng.normal(0.6, 0.5, grn.src.size))
    cooperative = grn.logic_and[grn.tgt] & (grn.sign > 0)
    spread[cooperative] = np.exp(rng.uniform(0.4, 1.4, int(cooperative.sum())))
    grn.half_sat = x_ctrl[0, grn.src] * spread
    x_ctrl, _ = solve(grn, 1, empty, x0_core=x_ctrl[0, grn.core])
    return x_ctrl[0]
