"""Gene regulatory network of the Perturb-seq simulator: structure, kinetics and steady state.

The network is a sparse directed graph with a hierarchy of roles:

``master``
    a few top regulators, wired to each other (toggles, feedback) and to module regulators;
    also the heads of the cell-state programs (below);
``regulator``
    one or two per module; they drive a tightly co-regulated program (the module);
``member``
    the genes of a module, driven by the module's regulators (with AND- or OR-like logic),
    sometimes by a second regulator (cross-talk); some feed back on their regulator;
``free``
    genes outside any module: unregulated or weakly regulated by one regulator.

Cell-state programs. Besides the modules, a few broad programs (as the differentiation or
proliferation programs of a cell line) each have a head gene. An OR program's head
integrates regulators of several modules (each feeding two to four programs) and scales the
production of most genes that regulate nothing themselves, a few strongly and many weakly,
up or down, along a direction partly shared by all programs (as differentiation programs all
slow proliferation); its effect on a gene is bounded (at most ``1 / (1 - w)``-fold). The genes
of a screen converge on these programs, and the programs shape how pairs interact:

- OR heads combine their inputs with saturating logic, each input far below
  half-saturation in control: one activated input drives the head a good part of the way to
  its maximum (how far: the input's weight), a second adds less, so a pair sharing a program
  changes it less than the sum of the singles (buffering, ``c1 + c2 < 2``); the program's
  targets saturate as well, having at most ``1 / (1 - w)`` to give;
- the two regulators of an OR module are paralog-like: they drive the same genes and, when
  one feeds programs, usually both feed the same ones, so their singles look alike and their
  pair saturates (redundancy);
- an input that represses a head, or the head itself, masks the other genes of the program:
  with the head saturated or shut, a second gene's effect on the program is gone (epistasis;
  also upstream and downstream genes of one pathway, as a regulator that drives another);
- a quarter of the programs are AND programs: a combined state of two OR programs that no
  gene feeds together (as two alternative lineages), with low basal production and high
  thresholds, switching on a set of genes of its own only when both OR programs are active;
  one gene alone barely moves it, a pair with one gene on each side switches it on
  (neomorphism where these genes are new, synergy where the singles moved them a little);
- genes on different programs or modules act on different genes, or on the same genes by
  independent factors: additive on the log scale.

Kinetics. Gene ``g`` is produced at rate ``s_g (beta_g + (1 - beta_g) H_g(x))`` and degraded at
rate ``d_g``, so its steady state is ``x_g = s_g / d_g (beta_g + (1 - beta_g) H_g(x))``.
``H_g`` combines Hill terms ``h = x^n / (K^n + x^n)`` of its inputs: activators by product
(``and``: all needed, cooperative) or by ``1 - prod(1 - w h)`` (``or``: any suffices,
saturating; ``w < 1`` for the inputs of OR heads, else 1), repressors by ``prod(1 - h)``. A
program head scales the whole production of each of its targets (basal included) by a factor
``1 - w (1 - h)`` (activation) or ``1 - w h`` (repression) with weight ``w < 1``. A
perturbation changes the target's production: CRISPRa adds ``efficacy * boost * s_g / d_g``,
CRISPRi and knockout multiply it by ``1 - efficacy``. The steady state is found by damped
fixed-point iteration started from the control state, on all conditions at once; only genes
with outgoing edges (the "core") need iterating, the other genes follow in one pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

logger = logging.getLogger(__name__)

_TINY = 1e-30
_INPUTS_PER_PROGRAM = 9
"""Genes chosen as inputs per OR program (each feeds two to four programs)."""
_PROGRAM_SHARED = 0.6
"""Weight of the direction shared by all OR programs in each program's targets."""
_PROGRAM_MAX_WEIGHT = 0.45
"""Largest weight of an OR program on a target: it changes the target at most 1.8-fold."""
_PROGRAM_FULL_Z = 2.5
"""Loading (standard normal) at which a target gets the largest weight."""
_PROGRAM_POWER = 0.5
"""Exponent of the weight on the loading: below 1, many targets get a moderate weight."""
_PROGRAM_MIN_WEIGHT = 0.02
"""Weights below this are left out (no edge)."""


@dataclass
class _Edges:
    """Edges of one kind into a set of target genes, arranged for vectorised evaluation."""

    src: np.ndarray  # index into the core genes
    n: np.ndarray
    log_k: np.ndarray
    weight: np.ndarray
    incidence: sp.csr_matrix  # (n_edges, n_targets)

    @property
    def size(self) -> int:
        """Number of edges."""
        return int(self.src.size)

    def exponent(self, log_x: np.ndarray) -> np.ndarray:
        """``n (log x_source - log K)`` per condition and edge; ``h`` is its logistic."""
        a = log_x[:, self.src]
        a -= self.log_k
        a *= self.n
        return a

    def total(self, terms: np.ndarray) -> np.ndarray:
        """Per-edge ``terms`` summed over the edges of each target."""
        return np.asarray(terms @ self.incidence)


@dataclass
class _Modulation:
    """Program edges of one sign into a set of target genes.

    A program edge with Hill term ``h = x^n / (x^n + K^n)`` scales its target's production by
    ``1 - w (1 - h) = 1 - w K^n / (x^n + K^n)`` (activating) or ``1 - w h`` (repressing);
    ``x^n`` is computed once per distinct source and Hill coefficient, not per edge.
    """

    activating: bool
    class_src: np.ndarray  # (n_classes,) index into the core genes
    class_n: np.ndarray  # (n_classes,) Hill coefficient
    edge_class: np.ndarray  # (n_edges,)
    k_n: np.ndarray  # (n_edges,) K^n
    weight: np.ndarray  # (n_edges,)
    incidence: sp.csr_matrix  # (n_edges, n_targets)

    @property
    def size(self) -> int:
        """Number of edges."""
        return int(self.edge_class.size)

    def log_factor(self, log_x: np.ndarray) -> np.ndarray:
        """Log of the product of the factors on each target, ``(n_conditions, n_targets)``."""
        x_n = np.exp(log_x[:, self.class_src] * self.class_n)
        t = x_n[:, self.edge_class]
        t += self.k_n
        # activating: w K^n / (x^n + K^n); repressing: w x^n / (x^n + K^n) = w - w K^n / (...)
        np.divide(self.weight * self.k_n, t, out=t)
        if not self.activating:
            np.subtract(self.weight, t, out=t)
        np.negative(t, out=t)
        return np.asarray(np.log1p(t, out=t) @ self.incidence)


@dataclass
class _EdgeBlock:
    """Edges into one set of target genes, by the way they combine."""

    rep: _Edges
    act_and: _Edges
    act_or: _Edges
    mod_act: _Modulation
    mod_rep: _Modulation
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
    weight: np.ndarray  # (E,) w of a program's modulation or of a program input, else 1
    kind: np.ndarray  # (E,) str: "module", "crosstalk", "hierarchy", "feedback", "free",
    # "program_input" (into a program head), "program" (head -> target, modulating)
    program: np.ndarray  # (G,) int: the program a head leads, -1 for the other genes
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
                "weight": self.weight.astype(np.float32),
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
        is_mod = self.kind[sel] == "program"
        is_rep = (self.sign[sel] < 0) & ~is_mod
        is_and = ~is_rep & ~is_mod & self.logic_and[self.tgt[sel]]
        is_or = ~is_rep & ~is_mod & ~is_and

        def edges(mask: np.ndarray) -> _Edges:
            rows = np.arange(int(mask.sum()))
            return _Edges(
                src=core_pos[self.src[sel[mask]]],
                n=self.hill_n[sel[mask]],
                log_k=np.log(self.half_sat[sel[mask]]),
                weight=self.weight[sel[mask]],
                incidence=sp.csr_matrix(
                    (np.ones(rows.size), (rows, local_t[mask])), shape=(rows.size, targets.size)
                ),
            )

        def modulation(activating: bool) -> _Modulation:
            mask = is_mod & ((self.sign[sel] > 0) == activating)
            e = sel[mask]
            keys = np.stack([core_pos[self.src[e]], self.hill_n[e]], axis=1)
            classes, edge_class = np.unique(keys, axis=0, return_inverse=True)
            rows = np.arange(e.size)
            return _Modulation(
                activating=activating,
                class_src=classes[:, 0].astype(np.int64),
                class_n=classes[:, 1],
                edge_class=edge_class.ravel(),
                k_n=self.half_sat[e] ** self.hill_n[e],
                weight=self.weight[e],
                incidence=sp.csr_matrix(
                    (np.ones(e.size), (rows, local_t[mask])), shape=(e.size, targets.size)
                ),
            )

        has_or = np.zeros(targets.size, dtype=bool)
        has_or[local_t[is_or]] = True
        return _EdgeBlock(
            rep=edges(is_rep),
            act_and=edges(is_and),
            act_or=edges(is_or),
            mod_act=modulation(True),
            mod_rep=modulation(False),
            has_or=has_or,
        )

    def blocks(self) -> tuple[_EdgeBlock, _EdgeBlock]:
        """Edge blocks into the core genes and into the leaf genes."""
        return self._block(self.core), self._block(self.leaf)

    def production(self, x_core: np.ndarray, block: _EdgeBlock, targets: np.ndarray) -> np.ndarray:
        """Unperturbed steady-state level of ``targets`` given the core levels ``x_core``."""
        log_x = np.log(np.maximum(x_core, _TINY))
        log_s = np.zeros((x_core.shape[0], targets.size))
        if block.rep.size:
            log_s -= block.rep.total(np.logaddexp(0.0, block.rep.exponent(log_x)))
        if block.act_and.size:
            log_s -= block.act_and.total(np.logaddexp(0.0, -block.act_and.exponent(log_x)))
        h = np.exp(log_s)
        if block.act_or.size:
            # none of the OR inputs active: prod(1 - w h), w = 1 but for program inputs
            none = expit(block.act_or.exponent(log_x))
            none *= -block.act_or.weight
            log_none = block.act_or.total(np.log1p(none, out=none))
            h *= np.where(block.has_or, -np.expm1(log_none), 1.0)
        beta = self.basal[targets]
        out = self.vmax[targets] * (beta + (1.0 - beta) * h)
        # programs scale the whole production, basal included
        for modulation in (block.mod_act, block.mod_rep):
            if modulation.size:
                out *= np.exp(modulation.log_factor(log_x))
        return out


def build_grn(
    n_genes: int, rng: np.random.Generator, *, min_modules: int = 6, n_programs: int = 2
) -> RegulatoryNetwork:
    """Draw the structure and kinetic parameters of a network (half-saturations uncalibrated).

    Parameters
    ----------
    n_genes
        Number of genes.
    rng
        Source of all random draws.
    min_modules
        Fewest modules (otherwise one per 50 genes).
    n_programs
        Number of cell-state programs; a quarter of them (rounded) are AND programs, the
        others OR programs.

    Returns
    -------
    The network, its half-saturations provisional (:func:`calibrate` sets them).
    """
    g = n_genes
    n_modules = max(min_modules, round(g / 50))
    n_master = max(3, round(n_modules / 10))
    perm = rng.permutation(g)
    masters = perm[:n_master]
    heads = perm[n_master : n_master + n_programs]
    first_reg = n_master + n_programs
    regs_per_module = 1 + (rng.random(n_modules) < 0.45).astype(int)
    n_reg = int(regs_per_module.sum())
    regs = perm[first_reg : first_reg + n_reg]
    reg_module = np.repeat(np.arange(n_modules), regs_per_module)
    rest = perm[first_reg + n_reg :]
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
    role[heads] = "master"
    module = np.full(g, -1, dtype=np.int64)
    module[regs] = reg_module
    module[members] = member_module
    module_regs = [regs[reg_module == k] for k in range(n_modules)]

    src: list[int] = []
    tgt: list[int] = []
    sign: list[int] = []
    kind: list[str] = []
    hill: list[float] = []
    weight: list[float] = []

    def add(
        s: int,
        t: int,
        sg: int,
        kd: str,
        choices=(1, 2, 3, 4),
        p=(0.1, 0.35, 0.35, 0.2),
        w: float = 1.0,
    ) -> None:
        src.append(int(s))
        tgt.append(int(t))
        sign.append(int(sg))
        kind.append(kd)
        hill.append(float(rng.choice(choices, p=p)))
        weight.append(float(w))

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

    # cell-state programs: each head integrates regulators of several modules and modulates a
    # broad set of genes that regulate nothing themselves
    program = np.full(g, -1, dtype=np.int64)
    program[heads] = np.arange(n_programs)
    and_program = np.zeros(n_programs, dtype=bool)
    and_program[rng.choice(n_programs, size=round(0.25 * n_programs), replace=False)] = True
    # paralog-like pairs: the two regulators of an OR module drive the same genes
    paralog = np.full(g, -1, dtype=np.int64)
    for k in np.flatnonzero((regs_per_module == 2) & ~module_and):
        a, b = module_regs[k]
        paralog[a], paralog[b] = b, a
    # AND programs: a combined state of two OR programs that no gene drives together (as two
    # alternative lineages), switched on when the two genes of a pair drive one each
    or_heads = heads[~and_program]
    exclusive = np.zeros((or_heads.size, or_heads.size), dtype=bool)
    for head in heads[and_program]:
        pair = rng.choice(or_heads.size, size=2, replace=False)
        exclusive[pair[0], pair[1]] = exclusive[pair[1], pair[0]] = True
        for i in pair:
            add(or_heads[i], head, 1, "program_input")
        logic_and[head] = True
    # inputs: regulators (and a few masters) feeding two to four OR programs each, so that
    # two genes often share a program and differ in others; paralogs feed the same ones
    candidates = np.concatenate([regs, masters])
    pref = np.where(role[candidates] == "master", 0.3, 1.0)
    n_inputs = min(candidates.size, _INPUTS_PER_PROGRAM * or_heads.size)
    chosen = rng.choice(candidates, size=n_inputs, replace=False, p=pref / pref.sum())
    feeds: dict[int, list[tuple[int, int]]] = {}
    for i, c in enumerate(chosen.tolist()):
        if c in feeds:
            continue
        fed = [i % or_heads.size]  # every program gets inputs
        for _ in range(1 + int(rng.binomial(2, 0.4))):
            allowed = np.flatnonzero(~exclusive[fed].any(axis=0))
            allowed = np.setdiff1d(allowed, fed)
            if allowed.size:
                fed.append(int(rng.choice(allowed)))
        signs = np.where(rng.random(len(fed)) < 0.8, 1, -1)
        feeds[c] = list(zip(or_heads[fed].tolist(), signs.tolist(), strict=True))
        q = int(paralog[c])
        if q >= 0 and q not in feeds and rng.random() < 0.7:
            feeds[q] = feeds[c]
    # an activating input drives its head's activity at most to its weight: strong and weak
    # members of a program
    for c, programs in feeds.items():
        for head, sg in programs:
            add(c, head, sg, "program_input", w=rng.uniform(0.3, 1.0) if sg > 0 else 1.0)
    # targets: genes that regulate nothing themselves. An OR program modulates most of them,
    # a few strongly and many weakly, along a direction partly shared by all programs (as
    # differentiation programs all slow proliferation); an AND program switches on a few
    # genes of its own
    has_out = np.zeros(g, dtype=bool)
    has_out[src] = True
    pool = np.flatnonzero(~has_out & (program < 0))
    shared = rng.standard_normal(pool.size)
    for p_idx, head in enumerate(heads):
        if and_program[p_idx]:
            size = min(pool.size, max(3, round(rng.uniform(0.1, 0.2) * pool.size)))
            targets = np.sort(rng.choice(pool, size=size, replace=False))
            sg_t = np.where(rng.random(size) < 0.8, 1, -1)
            w_t = rng.uniform(0.6, 0.95, size)
            n_t = rng.choice((2, 3, 4), size=size, p=(0.3, 0.4, 0.3))
        else:
            z = _PROGRAM_SHARED * shared + np.sqrt(1 - _PROGRAM_SHARED**2) * rng.standard_normal(
                pool.size
            )
            w_all = (
                _PROGRAM_MAX_WEIGHT * np.minimum(1.0, np.abs(z) / _PROGRAM_FULL_Z) ** _PROGRAM_POWER
            )
            keep = w_all > _PROGRAM_MIN_WEIGHT
            targets, w_t = pool[keep], w_all[keep]
            sg_t = np.where(z[keep] > 0, 1, -1)
            n_t = rng.choice((1, 2, 3), size=targets.size, p=(0.3, 0.5, 0.2))
        src.extend([int(head)] * targets.size)
        tgt.extend(targets.tolist())
        sign.extend(sg_t.tolist())
        kind.extend(["program"] * targets.size)
        hill.extend(n_t.astype(float).tolist())
        weight.extend(w_t.tolist())

    scale = np.exp(np.clip(rng.normal(0.0, 2.5, g), -8.0, 4.5))
    scale[np.isin(role, ("master", "regulator"))] *= 0.3
    degradation = np.exp(rng.uniform(np.log(0.5), np.log(2.0), g))
    basal = np.exp(rng.uniform(np.log(0.005), np.log(0.3), g))
    basal[masters] = np.exp(rng.uniform(np.log(0.05), np.log(0.5), n_master))
    basal[heads] = np.exp(rng.uniform(np.log(0.03), np.log(0.15), n_programs))
    basal[role == "free"] = np.exp(rng.uniform(np.log(0.1), np.log(0.6), free.size))
    # cooperative genes: the control state sits near the basal floor, so one input alone
    # moves them a little and two inputs together a lot (synergy)
    basal[logic_and] = np.exp(rng.uniform(np.log(0.03), np.log(0.2), int(logic_and.sum())))
    and_heads = heads[and_program]
    basal[and_heads] = np.exp(rng.uniform(np.log(0.01), np.log(0.04), and_heads.size))
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
        weight=np.asarray(weight),
        kind=np.asarray(kind, dtype=object),
        program=program,
    )


@dataclass
class Perturbations:
    """Per-condition changes of production: ``x_g <- x_g * mult + add`` for listed genes."""

    cond: np.ndarray  # (n,) condition index
    gene: np.ndarray  # (n,) gene index
    mult: np.ndarray
    add: np.ndarray


MIN_DAMPING = 0.02
"""Smallest damping :func:`solve` steps the genes of feedback cycles with."""


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
    """Steady state of every condition, ``(n_conditions, n_genes)``, and non-converged count.

    The genes on feedback cycles move ``damping`` of the way to their production at each
    step. A condition that has not settled after ``max_iter`` steps (a damped step can
    overshoot into a lasting oscillation between two states) is solved on from where it
    is with a quarter of the damping, down to :data:`MIN_DAMPING`; the conditions that
    settled are not touched again. Those that never settle are counted and warned of.
    """
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
    on_cycle = grn.on_cycle()[grn.core]
    x = np.tile(x0_core, (n_conditions, 1))
    active = np.arange(n_conditions)
    while True:
        alpha = np.where(on_cycle, damping, 1.0)
        n_iter = 0
        while active.size and n_iter < max_iter:
            xa = x[active]
            f = grn.production(xa, core_block, grn.core) * mult[active] + add[active]
            new = xa + alpha * (f - xa)
            diff = np.max(np.abs(new - xa) / np.maximum(xa, _TINY), axis=1)
            x[active] = new
            active = active[diff > tol]
            n_iter += 1
        if not active.size or damping / 4 < MIN_DAMPING:
            break
        damping /= 4
    n_bad = int(active.size)
    if n_bad:
        logger.warning(
            "steady state not reached for %d conditions after %d iterations at damping down to %g",
            n_bad,
            max_iter,
            damping,
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
    its inputs together), so that cooperative logic creates synergy. Program heads are
    calibrated after the genes that feed them, their inputs' thresholds set so that a head's
    activity ``H`` in control is low (OR heads: 0.1-0.3, far from saturation by any one
    input; AND heads: each of the two inputs' Hill terms 0.02-0.06, so ``H``, their
    product, about 0.001); then the program targets, near their head's control level
    (OR programs: they follow the head both ways) or far above it (AND programs: switch-like).
    """
    empty = Perturbations(*(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0), np.zeros(0))
    x_ctrl, _ = solve(grn, 1, empty)
    spread = np.exp(rng.normal(0.6, 0.5, grn.src.size))
    cooperative = grn.logic_and[grn.tgt] & (grn.sign > 0)
    spread[cooperative] = np.exp(rng.uniform(0.4, 1.4, int(cooperative.sum())))
    to_head = grn.kind == "program_input"
    program = grn.kind == "program"
    regular = ~to_head & ~program
    grn.half_sat[regular] = x_ctrl[0, grn.src[regular]] * spread[regular]
    x_ctrl, _ = solve(grn, 1, empty, x0_core=x_ctrl[0, grn.core])
    heads = np.flatnonzero(grn.program >= 0)
    # OR heads first: the AND heads integrate them
    for stage in (heads[~grn.logic_and[heads]], heads[grn.logic_and[heads]]):
        for head in stage:
            edges = np.flatnonzero(to_head & (grn.tgt == head))
            act, rep = edges[grn.sign[edges] > 0], edges[grn.sign[edges] < 0]
            if grn.logic_and[head]:
                h0 = rng.uniform(0.02, 0.06, act.size)
            else:
                share = 1 - (1 - rng.uniform(0.1, 0.3)) ** (1 / max(act.size, 1))
                h0 = np.minimum(share / grn.weight[act], 0.5)
            h0 = np.concatenate([h0, rng.uniform(0.02, 0.1, rep.size)])
            both = np.concatenate([act, rep])
            ratio = ((1 - h0) / h0) ** (1 / grn.hill_n[both])
            grn.half_sat[both] = x_ctrl[0, grn.src[both]] * ratio
        x_ctrl, _ = solve(grn, 1, empty, x0_core=x_ctrl[0, grn.core])
    switch = program & grn.logic_and[grn.src]
    follow = program & ~switch
    grn.half_sat[follow] = x_ctrl[0, grn.src[follow]] * np.exp(
        rng.normal(0.4, 0.8, int(follow.sum()))
    )
    grn.half_sat[switch] = x_ctrl[0, grn.src[switch]] * np.exp(
        rng.uniform(1.2, 2.2, int(switch.sum()))
    )
    x_ctrl, _ = solve(grn, 1, empty, x0_core=x_ctrl[0, grn.core])
    return x_ctrl[0]
