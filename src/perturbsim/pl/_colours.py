"""One colour per model, design strategy and test subgroup, the same in every figure."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

MODEL_COLOURS: dict[str, str] = {
    "stacked": "C0",
    "additive": "C1",
    "linear": "C2",
    "linear_go": "C3",
    "mean": "C4",
    "grn": "C5",
    "gears": "C6",
    "no_perturb": "C8",
    "gears_residual": "C9",
}
"""The default, the baselines and GEARS: matplotlib's first colours (grey, ``C7``, is left
to the replicate's hatched bars)."""
OTHER_COLOURS: tuple[str, ...] = (
    "#ffbb78",
    "#a1d99b",
    "#f0027f",
    "#637939",
    "#fb9a99",
    "#1b9e77",
    "#b15928",
    "#393b79",
    "#e6ab02",
    "#9e9ac8",
    "#b3de69",
    "#8c6d31",
    "#7b4173",
    "#bd9e39",
    "#f7b6d2",
    "#dbdb8d",
    "#fc8d62",
    "#c49c94",
    "#8dd3c7",
    "#6baed6",
    "#d6616b",
)
"""Colours of the other models (variants, a user's): each drawn from its name.

Picked from matplotlib's qualitative palettes (tab20, tab20b, tab20c, Dark2, Set2, Set3,
Paired, Accent), none lighter than a CIELAB lightness of 88, each in turn the one farthest
from :data:`MODEL_COLOURS`, the greys, white and those picked before it: any two of these
and :data:`MODEL_COLOURS` are at least 20 apart in CIELAB (tab20b, drawn from before, holds
four close shades of each hue)."""
STRATEGY_COLOURS: dict[str, str] = {
    "combined": "C0",
    "uncertainty": "C1",
    "coverage": "C2",
    "random": "C3",
}
"""The design strategies (:data:`perturbsim.tl._design.STRATEGIES`); any other is drawn
from its name as a model is."""
SUBGROUP_COLOURS: dict[str, str] = {
    "unseen_single": "#1b9e77",
    "combo_seen0": "#d95f02",
    "combo_seen1": "#7570b3",
    "combo_seen2": "#e7298a",
    "seen_single": "#66a61e",
}
"""Test subgroups (ColorBrewer's Dark2); any other is grey."""


def model_colours(models: Sequence[str]) -> dict[str, object]:
    """The colour of each model: its own (:data:`MODEL_COLOURS`), else one from its name.

    A model outside :data:`MODEL_COLOURS` takes the colour of :data:`OTHER_COLOURS` its
    name's checksum points to, or the next one no other model of ``models`` holds (such
    models served in the order of their names): the same in every figure that draws it
    beside the same models, in whatever order. Up to 30 models (21 outside
    :data:`MODEL_COLOURS`) take distinct colours; more share some.

    Examples
    --------
    >>> model_colours(["mean", "stacked"])
    {'mean': 'C4', 'stacked': 'C0'}
    >>> model_colours(["m0", "m9"]) == model_colours(["m9", "m0"])
    True
    """
    return _colours_by_name(models, MODEL_COLOURS)


def strategy_colours(strategies: Sequence[str]) -> dict[str, object]:
    """The colour of each design strategy: its own (:data:`STRATEGY_COLOURS`), else by name.

    A strategy outside :data:`STRATEGY_COLOURS` takes its colour as a model outside
    :data:`MODEL_COLOURS` does (:func:`model_colours`).

    Examples
    --------
    >>> strategy_colours(["random", "coverage"])
    {'random': 'C3', 'coverage': 'C2'}
    """
    return _colours_by_name(strategies, STRATEGY_COLOURS)


def _colours_by_name(names: Sequence[str], own: dict[str, str]) -> dict[str, object]:
    """The colour of each of ``names``: ``own``'s, else one of :data:`OTHER_COLOURS`.

    See :func:`model_colours`.
    """
    colours: dict[str, object] = {name: own[name] for name in names if name in own}
    taken = set(colours.values())
    for name in sorted(set(names) - set(colours), key=str):
        start = zlib.crc32(str(name).encode())
        for step in range(len(OTHER_COLOURS)):
            colour = OTHER_COLOURS[(start + step) % len(OTHER_COLOURS)]
            if colour not in taken or step == len(OTHER_COLOURS) - 1:
                break
        colours[name] = colour
        taken.add(colour)
    return {name: colours[name] for name in names}


def subgroup_colour(subgroup: object) -> str:
    """The colour of a test subgroup (:data:`SUBGROUP_COLOURS`; grey for any other)."""
    return SUBGROUP_COLOURS.get(str(subgroup), "0.5")
