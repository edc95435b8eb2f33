"""One colour per model and per test subgroup, the same in every figure."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from matplotlib import colormaps

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
OTHER_COLOURS: tuple[tuple[float, ...], ...] = tuple(colormaps["tab20b"].colors)
"""Colours of the other models (variants, a user's): each drawn from its name."""
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
    beside the same models, in whatever order.

    Examples
    --------
    >>> model_colours(["mean", "stacked"])
    {'mean': 'C4', 'stacked': 'C0'}
    >>> model_colours(["m0", "m9"]) == model_colours(["m9", "m0"])
    True
    """
    colours: dict[str, object] = {m: MODEL_COLOURS[m] for m in models if m in MODEL_COLOURS}
    taken = set(colours.values())
    for model in sorted(set(models) - set(colours), key=str):
        start = zlib.crc32(str(model).encode())
        for step in range(len(OTHER_COLOURS)):
            colour = OTHER_COLOURS[(start + step) % len(OTHER_COLOURS)]
            if colour not in taken or step == len(OTHER_COLOURS) - 1:
                break
        colours[model] = colour
        taken.add(colour)
    return {m: colours[m] for m in models}


def subgroup_colour(subgroup: object) -> str:
    """The colour of a test subgroup (:data:`SUBGROUP_COLOURS`; grey for any other)."""
    return SUBGROUP_COLOURS.get(str(subgroup), "0.5")
