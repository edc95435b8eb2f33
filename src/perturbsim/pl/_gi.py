"""Plots of genetic interactions: the GI map, one pair's prediction, the phenotype landscape.

As for the other plots, every function takes its data first, draws on ``ax`` (a new figure
when ``None``) and returns the Axes.
"""

from __future__ import annotations

import logging
import math
import re
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, rgb_to_hsv
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox
from scipy.cluster import hierarchy

from .._checks import check_count, check_label_part, check_list, check_positive
from .._errors import PerturbsimError, counted
from .._keys import CONTROL, DELTA_LAYER, PRED_MODEL, SEP, UNS
from .._settings import resolve_seed
from .._threads import torch_threads_kept
from ..models import PerturbationModel
from ..pp import canonical_label, parse_label
from ..pp._gi import (
    SUBTYPES,
    GIRules,
    flag_kind,
    generic_guesses,
    is_scored,
    is_summed,
    summed_pairs,
    true_values,
)
from ..pp._labels import label_sep
from ._plots import UNIT, ProfileSource, _axes, checked_genes, delta_table

logger = logging.getLogger(__name__)

GI_MAP_COLUMNS = GIRules().map_columns()
"""Score columns of :func:`perturbsim.tl.gi_scores` that :func:`gi_map` shows by default:
those the default :class:`~perturbsim.tl.GIRules` read (``GIRules.map_columns``)."""
_Z_LIMIT = 3.0
"""Colour range of the GI map, in standard deviations over pairs."""
NEGLIGIBLE_SPREAD = 1e-3
"""A GI map column whose standard deviation over pairs is below this share of its largest
absolute value, or below this itself for values near 0 (such as the ``dominance`` of pairs
with equal coefficients), is drawn neutral: its differences are negligible for scores of the
scale of 1 as the map's are (floating-point rounding, or the Theil-Sen fit's subsampling:
the ``fit_corr`` of pairs that are their singles summed spans 0.9989 to 0.99998)."""
_MAX_LEGEND = 20
"""Colour legend entries of :func:`phenotype_landscape` (the most frequent first)."""

_LABEL_STEPS = 12
"""Label heights a cluster label of :func:`phenotype_landscape` may move each way to clear
the labels placed before it."""
_LABEL_GAP = 3.0
"""Points kept between two cluster labels of :func:`phenotype_landscape`."""

NEW_CLUSTER_COLOUR = "red"
"""The mark of a candidate new phenotype in :func:`phenotype_landscape` (rings and label)."""


def _reads_as_red(colour: tuple[float, float, float]) -> bool:
    """Whether a colour's hue is red's (within 15 degrees) and not washed out to grey."""
    hue, saturation, _ = rgb_to_hsv(colour)
    return min(hue, 1 - hue) < 15 / 360 and saturation > 0.3


_SHADES = colormaps["tab20b"].colors  # five hues, four shades each, darkest first
_PALETTE = [
    colour
    for colour in (
        *colormaps["tab10"].colors,
        # one shade of every hue before the next shade of any: neighbours differ in hue
        *(_SHADES[4 * hue + shade] for shade in (0, 2, 1, 3) for hue in range(5)),
    )
    # no grey (grey is "no programme"), no red (red marks a new cluster)
    if max(colour) - min(colour) > 0.05 and not _reads_as_red(colour)
]
"""Colours of programmes or clusters in :func:`phenotype_landscape` (23, then repeated):
tab10's and tab20b's but their greys and reds, tab20b's a shade of each hue in turn."""
_PREDICTED_MARKER = {
    "marker": "^",
    "s": 60,
    "alpha": 0.9,
    "edgecolors": "white",
    "linewidths": 0.5,
    "zorder": 2,
}
"""How :func:`phenotype_landscape` draws a predicted profile: a white-edged triangle about
the size of a measured circle (a triangle fills half its marker's box), below the circles."""


# -- inputs ---------------------------------------------------------------------------------
def _score_table(
    data: AnnData | pd.DataFrame, columns: Sequence[str]
) -> tuple[pd.DataFrame, list[str]]:
    """The scored pairs (``flag`` empty) of GI scores with ``columns`` all finite.

    Also what was left out, in words: pairs not scored (and why), scored pairs with a
    non-finite score.
    """
    table = data.obs if isinstance(data, AnnData) else data
    if not isinstance(table, pd.DataFrame) or "flag" not in table.columns:
        raise PerturbsimError(
            "data must be GI scores (perturbsim.tl.gi_scores) or an AnnData of "
            "predict_pairs(gi=True), with a 'flag' column"
        )
    if not len(columns):
        raise PerturbsimError("columns is empty: name at least one GI score column")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PerturbsimError(f"GI score columns not found: {missing}")
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(table[c])]
    if text:
        raise PerturbsimError(
            f"GI score columns must hold numbers; not numeric: {text} (scores such as "
            f"{', '.join(GI_MAP_COLUMNS)}; subtype calls are drawn beside them)"
        )
    scored_rows = is_scored(table)
    flags = table["flag"].astype(str)
    unscored = flags[~scored_rows & (flags != "single")]
    # each reason counted once over the pairs it holds for (a pair may have several)
    reasons = unscored.map(flag_kind).str.split("; ").explode()
    why = ", ".join(
        f"{count} {kind}" if count < len(unscored) else kind
        for kind, count in reasons.value_counts().items()
    )
    scored = table[scored_rows]
    finite = np.isfinite(scored[list(columns)].to_numpy(dtype=float)).all(axis=1)
    left_out = [
        *([f"{counted(len(unscored), 'pair')} not scored ({why})"] if len(unscored) else []),
        *([f"{int((~finite).sum())} with a non-finite score"] if (~finite).any() else []),
    ]
    return scored[finite], left_out


# -- GI map ---------------------------------------------------------------------------------
def gi_map(
    data: AnnData | pd.DataFrame,
    *,
    columns: Sequence[str] = GI_MAP_COLUMNS,
    max_labels: int = 60,
    ax: Axes | None = None,
) -> Axes:
    """Heat map of interaction scores, pairs clustered by their scores (GEARS Fig. 5b).

    Each score column is standardised over the scored pairs (z-score, coloured from -3 to
    +3); a column whose spread is below :data:`NEGLIGIBLE_SPREAD` of its largest absolute value,
    or below it for values near 0 (e.g. ``fit_corr`` of 0.9989 and 0.99998, or ``dominance``
    of 1e-11 and 1e-9, for sums of singles: rounding and fitting noise, not a difference)
    is drawn neutral (0) rather than stretched over the colour scale, its label marked
    ``(constant)``; every other column's label gives the range of its values over the pairs
    drawn (``fit_corr (0.985 to 0.999)``), since the colours only rank the pairs against
    each other (a z of -2.7 in such a column is still an excellent fit). The pairs (rows)
    are ordered by average-linkage hierarchical clustering
    (:func:`scipy.cluster.hierarchy.linkage`, Euclidean distance) of the standardised
    scores. To the right, one column per subtype call (the ``is_<subtype>`` columns)
    shows in dark grey the pairs it calls (light grey: not called; the x-axis label says
    so). Pairs flagged by the scoring (too few DE genes, singles missing) or with a
    non-finite score are left out, and the title says how many; with the ``sum_of_singles``
    column of :meth:`~perturbsim.models.PerturbationModel.predict_pairs`, it also says how
    many pairs are their singles summed (predicted with no interaction, so called as the
    additive model calls them).

    Parameters
    ----------
    data
        Scores of :func:`perturbsim.tl.gi_scores`, or the AnnData of
        :meth:`~perturbsim.models.PerturbationModel.predict_pairs` (scores in ``.obs``).
    columns
        Score columns to show.
    max_labels
        Most pair labels written: every pair's when there are at most this many pairs,
        else every k-th pair's, k the smallest that keeps them within it (0: none).
    ax
        Axes to draw on.

    Returns
    -------
    The Axes; ``ax.images[0]`` holds the standardised scores (pairs x columns, in the
    clustered order), ``ax.images[1]`` the subtype calls.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.simulate(size="tiny", seed=0)
    >>> ps.pp.setup(adata, perturbation_key="condition", control="control")
    >>> model = ps.Additive(adata).fit()
    >>> genes = sorted({g for c in adata.obs["perturbsim_condition"].unique()
    ...                 for g in ps.pp.genes_of(c) if model.covers(g)[0]})
    >>> pred = model.predict_pairs(genes[:6])
    >>> ax = ps.pl.gi_map(pred)
    >>> ax.images[0].get_array().shape[1]
    5
    """
    check_list("columns", columns, "GI score columns")
    columns = list(columns)
    max_labels = check_count("max_labels", max_labels, minimum=0)
    table, left_out = _score_table(data, columns)
    if len(table) < 2:
        raise PerturbsimError(f"the GI map needs at least 2 scored pairs, got {len(table)}")
    values = table[columns].to_numpy(dtype=np.float64)
    spread = values.std(axis=0)
    varies = spread > NEGLIGIBLE_SPREAD * np.maximum(np.abs(values).max(axis=0), 1.0)
    z = np.divide(values - values.mean(axis=0), spread, out=np.zeros_like(values), where=varies)
    order = hierarchy.leaves_list(hierarchy.linkage(z, method="average", metric="euclidean"))
    z, table = z[order], table.iloc[order]
    calls = [f"is_{subtype}" for subtype in SUBTYPES if f"is_{subtype}" in table.columns]
    n, k = z.shape
    # the rotated column names take about 2 inches below the rows: room for the colour bar
    ax = _axes(ax, (1.6 + 0.45 * (k + len(calls)), 3.6 + min(n, max_labels) * 0.14))
    image = ax.imshow(
        np.clip(z, -_Z_LIMIT, _Z_LIMIT),
        aspect="auto",
        cmap="RdBu_r",
        vmin=-_Z_LIMIT,
        vmax=_Z_LIMIT,
        interpolation="nearest",
        extent=(-0.5, k - 0.5, n - 0.5, -0.5),
    )
    gap = 0.4
    called = [true_values(table[c]) for c in calls]  # as a CSV gives them back too
    ax.imshow(
        np.column_stack(called).astype(float) if called else np.zeros((n, 0)),
        aspect="auto",
        cmap=ListedColormap(["0.92", "0.15"]),
        vmin=0,
        vmax=1,
        interpolation="nearest",
        extent=(k - 0.5 + gap, k - 0.5 + gap + len(calls), n - 0.5, -0.5),
    )
    ax.set_xlim(-0.5, k - 0.5 + gap + len(calls))
    ax.set_xticks(
        [*range(k), *(k + gap + j for j in range(len(calls)))],
        [
            *(
                _column_label(c, values[:, j], vary)
                for j, (c, vary) in enumerate(zip(columns, varies, strict=True))
            ),
            *(c.removeprefix("is_") for c in calls),
        ],
        rotation=90,
    )
    step = 1 if n <= max_labels else (math.ceil(n / max_labels) if max_labels else 0)
    shown = range(0, n, step) if step else range(0)
    ax.set_yticks(list(shown), table.index.astype(str)[list(shown)], fontsize="small")
    ax.set_ylabel(f"{n} pairs (clustered" + (f", one in {step} named)" if step > 1 else ")"))
    if calls:
        ax.set_xlabel("subtype columns: dark = the pair is called, light = not")
    summed = int(is_summed(table).sum())
    notes = [
        *([f"left out: {', '.join(left_out)}"] if left_out else []),
        *(
            [f"{summed} of {n} predicted as their singles summed: the additive model's calls"]
            if summed
            else []
        ),
    ]
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="score, z over pairs")
    # about eleven characters an inch of the axes once the colour bar took its room: a long
    # note (many kinds of pairs left out) wraps rather than running off the figure
    ax.figure.draw_without_rendering()
    width = max(30, int(11 * ax.get_position().width * ax.figure.get_figwidth()))
    lines = [line for note in notes for line in textwrap.wrap(note, width)]
    ax.set_title("\n".join(["genetic interaction map", *lines]), fontsize="medium")
    return ax


def _column_label(name: str, values: np.ndarray, varies: bool) -> str:
    """A score column's tick label: its name and the range of its values, or ``(constant)``.

    The ends are written to 3 significant digits, or as many more (up to 6) as tell them
    apart (``99.95 to 100``, not ``100 to 100``).
    """
    if not varies:
        return f"{name} (constant)"
    low, high = float(values.min()), float(values.max())
    digits = next((d for d in range(3, 7) if f"{low:.{d}g}" != f"{high:.{d}g}"), 6)
    return f"{name} ({low:.{digits}g} to {high:.{digits}g})"


# -- one pair -------------------------------------------------------------------------------
def _pair_genes(pair: str | Sequence[str]) -> tuple[str, str]:
    """The two genes of a pair given as ``"A+B"`` or ``("A", "B")``, sorted."""
    listed = isinstance(pair, Sequence) and all(isinstance(g, str) for g in pair)
    if not isinstance(pair, str) and not listed:
        raise PerturbsimError(f"pair must be a label such as 'A+B' or two genes, got {pair!r}")
    genes = parse_label(pair) if isinstance(pair, str) else tuple(sorted(pair))
    if len(genes) != 2 or genes[0] == genes[1]:
        raise PerturbsimError(f"pair must name two distinct genes, got {pair!r}")
    return genes[0], genes[1]


def _canonical_rows(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its rows named by canonical labels (``MAP2K6+KLF1`` as ``KLF1+MAP2K6``)."""
    names = [str(name) for name in table.index]
    canonical = [canonical_label(parse_label(name)) if SEP in name else name for name in names]
    return table.set_axis(pd.Index(canonical), axis=0)


CANDIDATES_PER_GENE = 5
"""Genes the pair changes most, per gene shown, among which :func:`pair_prediction` picks."""


def _deviating_genes(
    profiles: Sequence[pd.Series], additive: pd.Series, targets: Sequence[str], n_genes: int
) -> list[str]:
    """The ``n_genes`` genes of most non-additive change among those the pair changes most.

    ``profiles`` are the pair's changes (predicted, and measured where known): a gene is a
    candidate when one of them changes it most, and ranked by its largest deviation.
    """
    candidates: list[str] = []
    for pair in profiles:
        changing = pair.abs().drop(list(targets), errors="ignore")
        candidates.extend(changing.nlargest(CANDIDATES_PER_GENE * n_genes).index)
    candidates = list(dict.fromkeys(candidates))
    deviation = pd.concat([(pair - additive).abs()[candidates] for pair in profiles], axis=1)
    return deviation.max(axis=1).nlargest(n_genes).index.tolist()


def pair_prediction(
    source: PerturbationModel | AnnData,
    pair: str | Sequence[str],
    *,
    measured: ProfileSource | None = None,
    genes: Sequence[str] | None = None,
    n_genes: int = 10,
    ax: Axes | None = None,
) -> Axes:
    """Predicted change of a pair beside its two singles and the measured change (GEARS Fig. 3d).

    For each gene, four bars: the change after single ``A``, after single ``B``, the
    predicted change after ``A+B`` and, with ``measured``, the measured change after
    ``A+B``; a black tick marks the additive expectation ``ΔA + ΔB`` of the singles shown.
    The singles are the measured ones when ``measured`` holds them, else the predicted ones
    (the legend says which, and marks a predicted single that is the model's generic guess:
    ``.obs["unsupported"]`` or ``.obs["generic"]`` of its prediction). Given a model, the
    title says when it was fitted on the measured pair itself and predicts more than its
    singles' sum (its prediction then agrees with the measurement by construction, not as a
    test; profiles given as ``source`` do not say what they were fitted on).

    Parameters
    ----------
    source
        A fitted model (it predicts ``A``, ``B`` and ``A+B``) or profiles with these rows
        (e.g. from :meth:`~perturbsim.models.PerturbationModel.predict_pairs`).
    pair
        ``"A+B"`` or ``("A", "B")``.
    measured
        Measured profiles, :class:`~perturbsim.pp.PseudobulkStats` or a set-up screen,
        holding the pair or one of its singles. A pair it does not hold is drawn without
        a measured bar (the title says so), its measured singles still shown.
    genes
        Genes to show; default: of the ``CANDIDATES_PER_GENE * n_genes`` genes, other than
        ``A`` and ``B``, that the predicted pair changes most (and, with ``measured``, those
        the measured pair changes most), the ``n_genes`` whose change deviates most from
        the additive expectation in the prediction or the measurement (genes the pair
        barely changes are left out: there a deviation is mostly expression clipped at 0;
        a prediction that is its singles summed deviates nowhere, and the measurement then
        chooses; without one, the genes it changes most are shown, and the title says so).
    n_genes
        Number of genes chosen when ``genes`` is ``None``.
    ax
        Axes to draw on.

    Returns
    -------
    The Axes; one :class:`~matplotlib.container.BarContainer` per bar kind in
    ``ax.containers``, with one bar per gene.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> model = ps.Additive(adata).fit()
    >>> ax = ps.pl.pair_prediction(model, "KLF1+MAP2K6", measured=adata, n_genes=8)
    >>> [bars.get_label() for bars in ax.containers]
    ['KLF1 (measured)', 'MAP2K6 (measured)', 'KLF1+MAP2K6 predicted', 'KLF1+MAP2K6 measured']
    """
    a, b = _pair_genes(pair)
    n_genes = check_count("n_genes", n_genes)
    label = canonical_label((a, b))
    fitted_on_pair = False
    if isinstance(source, PerturbationModel):
        fitted_on_pair = label in (source.fitted_conditions or [])
        source = source.predict([a, b, label])
    predicted = _canonical_rows(delta_table(source, "source"))
    absent = [c for c in (a, b, label) if c not in predicted.index]
    if absent:
        raise PerturbsimError(f"source has no profile of {absent}")
    generic = _generic_guesses(source, (a, b))
    predicted_sum = (  # a prediction that deviates nowhere; measured means never are summed
        isinstance(source, AnnData)
        and DELTA_LAYER in source.layers
        and bool(summed_pairs(source, [label]).iloc[0])
    )
    truth = None if measured is None else _canonical_rows(delta_table(measured, "measured"))
    if truth is not None and not {a, b, label} & set(truth.index):
        raise PerturbsimError(
            f"measured has no profile of {a}, {b} or {label} (another screen, or labels "
            "written otherwise?)"
        )
    pair_measured = truth is not None and label in truth.index
    summed = not pair_measured and predicted_sum  # a measured pair chooses the genes
    shared = predicted.columns if truth is None else predicted.columns.intersection(truth.columns)
    singles, kinds = [], []
    for gene in (a, b):
        from_truth = truth is not None and gene in truth.index
        singles.append((truth if from_truth else predicted).loc[gene, shared])
        guess = not from_truth and gene in generic
        kinds.append(
            "measured" if from_truth else "predicted: a generic guess" if guess else "predicted"
        )
    additive = singles[0] + singles[1]
    if genes is None:
        profiles = [predicted.loc[label, shared]]
        if pair_measured:
            profiles.append(truth.loc[label, shared])
        if summed:  # it deviates nowhere: the genes it changes most
            changing = profiles[0].abs().drop([a, b], errors="ignore")
            genes = changing.nlargest(n_genes).index.tolist()
            chosen_by = "genes the pair changes most"
        else:
            genes = _deviating_genes(profiles, additive, [a, b], n_genes)
            chosen_by = "genes where the pair departs most from additive"
    else:
        genes = checked_genes(genes)
        chosen_by = "genes"
    unknown = [g for g in genes if g not in shared]
    if unknown:
        where = "both the prediction and the measurement" if truth is not None else "the prediction"
        raise PerturbsimError(f"genes not in {where}: {unknown}")
    bars = [
        (f"{a} ({kinds[0]})", singles[0][genes], {"color": "goldenrod", "hatch": "\\\\"}),
        (f"{b} ({kinds[1]})", singles[1][genes], {"color": "khaki", "hatch": "//"}),
        (f"{label} predicted", predicted.loc[label, genes], {"color": "firebrick"}),
    ]
    if pair_measured:
        bars.append((f"{label} measured", truth.loc[label, genes], {"color": "0.35"}))
    ax = _axes(ax, (max(4.5, 1.5 + 0.75 * len(genes)), 3.6))  # room for the legend beside
    x = np.arange(len(genes), dtype=float)
    width = 0.8 / len(bars)
    left = x - 0.4  # left edge of each gene's group of bars
    for i, (name, values, style) in enumerate(bars):
        ax.bar(
            left + (i + 0.5) * width,
            values.to_numpy(),
            width=width,
            label=name,
            edgecolor="black",
            linewidth=0.6,
            **style,
        )
    additive_tick = ax.hlines(  # over the pair's bars, from the third bar to the last
        additive[genes].to_numpy(),
        left + 2 * width,
        left + len(bars) * width,
        color="black",
        linewidth=2,
        label=f"{a} + {b} (additive)",
    )
    ax.axhline(0.0, color="0.2", linewidth=0.8)
    ax.set_xticks(x, genes, rotation=90)
    ax.set_xlabel(chosen_by)
    ax.set_ylabel(f"change over control\n({UNIT})")
    notes = [
        *(["(predicted as its singles summed)"] if summed else []),
        *(  # a sum of singles learnt nothing from the pair
            ["(the model was fitted on this measured pair)"]
            if fitted_on_pair and not predicted_sum
            else []
        ),
        *(["(the pair was not measured)"] if truth is not None and not pair_measured else []),
    ]
    title = f"{label}: predicted and measured change" if pair_measured else label
    ax.set_title("\n".join([title, *notes]))
    ax.legend(
        handles=[*ax.containers, additive_tick],
        fontsize="small",
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    return ax


def _predicted_by_a_model(profiles: object) -> bool:
    """Whether ``profiles`` are a model's predictions (they name it in ``.uns``)."""
    return isinstance(profiles, AnnData) and PRED_MODEL in profiles.uns.get(UNS, {})


def _generic_guesses(profiles: AnnData | object, genes: Sequence[str]) -> set[str]:
    """The ``genes`` whose predicted single is the model's generic guess.

    Those :func:`~perturbsim.pp._gi.generic_guesses` finds; none for measured profiles or a
    table.
    """
    if not isinstance(profiles, AnnData):
        return set()
    return set(genes) & generic_guesses(profiles)


# -- phenotype landscape --------------------------------------------------------------------
def _cluster(adata: AnnData, resolution: float, seed: int) -> np.ndarray:
    """Leiden cluster labels of the neighbour graph of ``adata`` (scanpy, igraph's Leiden)."""
    import scanpy as sc

    sc.tl.leiden(
        adata,
        resolution=resolution,
        random_state=seed,
        flavor="igraph",
        n_iterations=2,
        directed=False,
        key_added="cluster",
    )
    return adata.obs["cluster"].astype(str).to_numpy()


def _landscape(
    measured: pd.DataFrame,
    predicted: pd.DataFrame,
    *,
    n_neighbors: int,
    n_pcs: int,
    resolution: float,
    seed: int,
) -> pd.DataFrame:
    """UMAP coordinates and clusters of measured and predicted changes, one row per profile.

    Returns a table (``condition``, ``source``, ``x``, ``y``, ``cluster``, ``new``: the
    cluster has no measured member).
    """
    import scanpy as sc
    from sklearn.decomposition import PCA

    n_comps = min(n_pcs, len(measured) - 1, measured.shape[1] - 1)
    pca = PCA(n_components=n_comps, random_state=seed).fit(measured.to_numpy())
    obs = pd.DataFrame(
        {
            "condition": [*measured.index, *predicted.index],
            "source": ["measured"] * len(measured) + ["predicted"] * len(predicted),
        }
    )
    obs.index = obs.index.astype(str)
    profiles = AnnData(obs=obs)
    profiles.obsm["X_pca"] = pca.transform(np.vstack([measured.to_numpy(), predicted.to_numpy()]))
    with torch_threads_kept():
        sc.pp.neighbors(
            profiles,
            n_neighbors=min(n_neighbors, profiles.n_obs - 1),
            use_rep="X_pca",
            random_state=seed,
        )
        sc.tl.umap(profiles, random_state=seed)
        clusters = _cluster(profiles, resolution, seed)
    table = obs.assign(x=profiles.obsm["X_umap"][:, 0], y=profiles.obsm["X_umap"][:, 1])
    table["cluster"] = clusters
    seen = set(table.loc[table["source"] == "measured", "cluster"])
    table["new"] = ~table["cluster"].isin(seen)
    return table


def _canonical_keys(
    clusters: Mapping[str, object] | pd.Series, control: str, sep: str
) -> dict[str, str]:
    """A condition -> programme mapping keyed by canonical labels (``A+B``).

    Keys are read with ``control`` and ``sep`` (:func:`~perturbsim.pp.parse_label`); two
    naming one condition (``A+B``, ``B+A``) must give it one programme.
    """
    if not isinstance(clusters, Mapping | pd.Series):
        raise PerturbsimError(
            "clusters must map conditions to programmes (a dict or a Series indexed by "
            f"condition), got {type(clusters).__name__}"
        )
    keyed: dict[str, str] = {}
    for key, programme in clusters.items():
        if not pd.api.types.is_scalar(programme):
            raise PerturbsimError(
                f"clusters gives {key!r} the programme {programme!r}: a programme is one name "
                "or number"
            )
        if pd.isna(programme):
            continue  # no programme: drawn grey, as a condition not named
        text = str(key)
        label = canonical_label(parse_label(text, control=control, sep=label_sep(text, sep)))
        if keyed.setdefault(label, str(programme)) != str(programme):
            raise PerturbsimError(
                f"clusters gives {label!r} two programmes: {keyed[label]!r} and "
                f"{str(programme)!r} (under {key!r})"
            )
    return keyed


def _natural_order(name: str) -> tuple:
    """Sort key reading a name's numbers as numbers: ``programme 2`` before ``programme 10``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", name)
        if part
    )


def phenotype_landscape(
    measured: ProfileSource,
    predicted: ProfileSource,
    *,
    clusters: Mapping[str, object] | pd.Series | None = None,
    control: str = CONTROL,
    sep: str = SEP,
    resolution: float = 1.0,
    n_neighbors: int = 15,
    n_pcs: int = 30,
    seed: int | None = None,
    ax: Axes | None = None,
) -> Axes:
    """UMAP of measured and predicted profiles with their clusters (GEARS Fig. 4c).

    The changes over control (control left out; the genes both sets share) are projected
    on the principal components of the measured profiles (the measured phenotype space, as
    GEARS maps its predictions onto the measured screen's UMAP), then embedded together: a
    neighbour graph, UMAP and Leiden clusters (igraph's), with scanpy. A cluster with no
    measured member is a candidate new phenotype: its label (at its member nearest the
    cluster's median) is written in red with "new" and its points are ringed in red. A
    label that would overlap another is moved up or down, clear of it, joined to its point
    by a thin line (placed for the figure as drawn: resized later, labels may meet again).
    Measured profiles are circles with a black edge, predicted ones triangles nearly as
    large, edged in white.

    Parameters
    ----------
    measured
        Measured profiles (an AnnData with ``.layers["delta"]``),
        :class:`~perturbsim.pp.PseudobulkStats` or a set-up screen.
    predicted
        Predicted profiles, e.g. from
        :meth:`~perturbsim.models.PerturbationModel.predict_pairs`.
    clusters
        Optional programme of known conditions (condition label -> programme), such as the
        ``cluster`` column of Norman et al.'s GI manifold; labels are parsed as
        :func:`~perturbsim.pp.parse_label` does (``A+B``, ``A+ctrl``) with ``control`` and
        ``sep``. Profiles are then coloured by programme (grey: none), and the labels on
        the map are still the Leiden clusters (the title says which is which); else both
        colours and labels are the clusters. The legend names the largest programmes or
        clusters in the order of their names (``programme 2`` before ``programme 10``).
    control, sep
        How the keys of ``clusters`` are written: their control token and the separator
        of their genes (Norman's manifold: ``control="NegCtrl0"``, ``sep="_"`` for
        ``AHR_NegCtrl0`` and ``AHR_FEV``; leave out its unclustered rows, cluster ``-1``,
        which would read as a programme, and which name some singles a second time, as
        ``NegCtrl0_CDKN1B``, under another cluster than ``CDKN1B_NegCtrl0``'s).
    resolution
        Resolution of the clustering, a finite number > 0 (higher: more clusters).
    n_neighbors, n_pcs
        Neighbours of the graph and principal components of the measured profiles it is
        built on (at most one less than the measured profiles).
    seed
        Seed of PCA, UMAP and clustering (default :attr:`perturbsim.settings.seed`).
    ax
        Axes to draw on.

    Returns
    -------
    The Axes; ``ax.collections[0]`` holds the measured points, ``ax.collections[1]`` the
    predicted ones, ``ax.collections[2]`` the rings of the new clusters' points, and the
    title the numbers of clusters.

    Examples
    --------
    >>> import perturbsim as ps
    >>> adata = ps.ds.norman2019_subset()
    >>> model = ps.Additive(adata).fit()
    >>> pred = model.predict_pairs(["KLF1", "MAP2K6", "SLC38A2", "MAPK1", "TGFBR2"], gi=False)
    >>> programmes = {"KLF1": "erythroid", "KLF1+MAP2K6": "erythroid"}
    >>> ax = ps.pl.phenotype_landscape(adata, pred, clusters=programmes, n_neighbors=5)
    >>> len(ax.collections[0].get_offsets()), len(ax.collections[1].get_offsets())
    (33, 15)
    """
    if _predicted_by_a_model(measured) and not _predicted_by_a_model(predicted):
        raise PerturbsimError(
            "measured holds a model's predictions and predicted does not: given in each "
            "other's place? phenotype_landscape takes the measured profiles first"
        )
    truth = delta_table(measured, "measured").drop(index=CONTROL, errors="ignore")
    guess = delta_table(predicted, "predicted").drop(index=CONTROL, errors="ignore")
    genes = truth.columns.intersection(guess.columns)
    if len(genes) < 2 or len(truth) < 2 or guess.empty or len(truth) + len(guess) < 4:
        raise PerturbsimError(
            f"the landscape needs 2 measured profiles, 1 predicted, 4 in all and 2 shared "
            f"genes, got {len(truth)} measured and {len(guess)} predicted over {len(genes)} "
            "shared genes"
        )
    n_neighbors = check_count("n_neighbors", n_neighbors, minimum=2)
    n_pcs = check_count("n_pcs", n_pcs)
    check_positive("resolution", resolution)
    table = _landscape(
        truth[genes],
        guess[genes],
        n_neighbors=n_neighbors,
        n_pcs=n_pcs,
        resolution=resolution,
        seed=resolve_seed(seed),
    )
    if clusters is not None:
        check_label_part("control", control, "NegCtrl0")
        check_label_part("sep", sep, "_")
        programmes = _canonical_keys(clusters, control, sep)
        absent = sorted(set(programmes) - set(table["condition"]))
        if len(absent) == len(programmes):
            raise PerturbsimError(
                f"clusters names no condition of the landscape (it holds {absent[:3]}); its "
                "keys are condition labels such as 'A+B' (written otherwise, as 'AHR_NegCtrl0'? "
                "pass sep='_' and control='NegCtrl0')"
            )
        if absent:
            logger.warning(
                "clusters names %s not in the landscape", counted(len(absent), "condition")
            )
        programme = table["condition"].map(programmes)
        # a numbered programme reads 'programme 1', not as the map's cluster '1'
        named = programme.dropna().astype(str)
        named = named.where(~named.str.fullmatch(r"-?\d+(\.0)?"), "programme " + named)
        colour_by = named.reindex(programme.index).fillna("")
        missing = ""
    else:
        colour_by, missing = "cluster " + table["cluster"], None
    names = colour_by[colour_by != missing].value_counts().index.tolist()  # largest first
    if clusters is None:  # Leiden's clusters in their numbers' order
        names = sorted(names, key=lambda name: int(name.removeprefix("cluster ")))
    palette = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}
    colours = colour_by.map(palette).fillna("0.8").tolist()
    ax = _axes(ax, (6.4, 5.0))
    for source, style in (
        ("measured", {"s": 40, "edgecolors": "black", "linewidths": 0.8, "zorder": 3}),
        ("predicted", _PREDICTED_MARKER),
    ):
        rows = (table["source"] == source).to_numpy()
        ax.scatter(
            table.loc[rows, "x"],
            table.loc[rows, "y"],
            c=[colours[i] for i in np.flatnonzero(rows)],
            **style,
        )
    new_rows = table["new"].to_numpy()  # a red ring around each profile of a new cluster
    ax.scatter(
        table.loc[new_rows, "x"],
        table.loc[new_rows, "y"],
        s=90,
        facecolors="none",
        edgecolors=NEW_CLUSTER_COLOUR,
        linewidths=0.8,
        zorder=2,
    )
    labels = []
    for cluster, members in table.groupby("cluster"):
        new = bool(members["new"].iloc[0])
        points = members[["x", "y"]]
        centre = points.loc[((points - points.median()) ** 2).sum(axis=1).idxmin()]
        colour = NEW_CLUSTER_COLOUR if new else "0.15"
        label = ax.annotate(
            f"{cluster} new" if new else cluster,
            (centre["x"], centre["y"]),
            xytext=(0, 0),
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize="medium",
            fontweight="bold",
            color=colour,
            zorder=4,
            # a box, not a halo: the label sits on a member's point and must read over it
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.85, "lw": 0},
            arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.6},  # shown once moved
        )
        labels.append(label)
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="white",
            markeredgecolor="black",
            label=f"measured ({(table['source'] == 'measured').sum()})",
        ),
        Line2D(
            [],
            [],
            marker=_PREDICTED_MARKER["marker"],
            markersize=8,
            linestyle="",
            color="0.4",
            markeredgecolor="white",
            label=f"predicted ({(table['source'] == 'predicted').sum()})",
        ),
    ]
    if new_rows.any():
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="none",
                markeredgecolor=NEW_CLUSTER_COLOUR,
                label="in a new cluster",
            )
        )
    handles += [  # the largest named, listed in the order of their names
        Line2D([], [], marker="o", linestyle="", color=palette[name], label=name)
        for name in sorted(names[:_MAX_LEGEND], key=_natural_order)
    ]
    if len(names) > _MAX_LEGEND:  # the smallest, in their colours on the plot but unnamed
        more = len(names) - _MAX_LEGEND
        handles.append(Line2D([], [], linestyle="", label=f"and {more} more, unnamed"))
    if clusters is not None:
        handles.append(Line2D([], [], marker="o", linestyle="", color="0.8", label="no programme"))
    ax.legend(
        handles=handles,
        fontsize="small",
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    n_clusters = table["cluster"].nunique()
    n_new = table.loc[table["new"], "cluster"].nunique()
    coloured = (
        f"Leiden: {n_clusters} clusters"
        if clusters is None
        else f"colours: the programmes given; labels: Leiden's {n_clusters} clusters"
    )
    ax.set_title(
        f"{coloured}\n{n_new} with no measured profile (candidate new phenotypes, labelled 'new')",
        fontsize="medium",
    )
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_xticks([])
    ax.set_yticks([])
    _spread_labels(ax, labels)
    return ax


def _spread_labels(ax: Axes, labels: Sequence[Annotation]) -> None:
    """Move each label off those placed before it, up or down from its point.

    A label that would overlap one placed before it (or come within :data:`_LABEL_GAP` of
    it) moves by whole label heights (1 up, 1 down, 2 up, ...: at most
    :data:`_LABEL_STEPS` each way) to the first place clear of them and inside the axes,
    joined to its point by a thin line; with none clear, it stays on its point. Placed for
    the figure as laid out now (drawn once, without rendering); the labels then take no
    part in its layout, so that moving them does not change it.
    """
    for label in labels:
        label.set_in_layout(False)
    figure = ax.figure
    figure.draw_without_rendering()
    gap = _LABEL_GAP * figure.dpi / 72  # points to pixels
    shifts = [0, *(sign * k for k in range(1, _LABEL_STEPS + 1) for sign in (1, -1))]
    placed: list[Bbox] = []
    for label in labels:
        box = label.get_window_extent()
        step = box.height + gap
        clear = (
            shift
            for shift in shifts
            if _inside_clear(box.translated(0, shift * step), ax.bbox, placed, gap)
        )
        shift = next(clear, 0)
        label.xyann = (0, shift * step * 72 / figure.dpi)  # pixels to points
        label.arrow_patch.set_visible(shift != 0)
        placed.append(box.translated(0, shift * step))


def _inside_clear(box: Bbox, frame: Bbox, others: Sequence[Bbox], gap: float) -> bool:
    """Whether ``box`` lies within ``frame``'s height and ``gap`` or more from ``others``."""
    inside = frame.y0 <= box.y0 and box.y1 <= frame.y1
    return inside and not any(box.padded(gap).overlaps(other) for other in others)
