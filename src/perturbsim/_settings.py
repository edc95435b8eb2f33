"""Package-wide settings: verbosity, progress bars and the default seed."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ._checks import as_whole, check_count, check_flag, shown
from ._errors import PerturbsimError

_LOGGER_NAME = "perturbsim"


SEED_LIMIT = 2**32
"""Seeds lie in ``[0, SEED_LIMIT)``: numpy's generators take no negative seed, and
scikit-learn's (PCA, UMAP) none from ``2**32`` up."""


def check_seed(name: str, seed: object) -> int:
    """``seed`` as an int if it is a whole number in ``[0, 2**32)``; else one line naming it.

    Examples
    --------
    >>> check_seed("--seed", 7)
    7
    """
    whole = as_whole(seed)
    if whole is None or not 0 <= whole < SEED_LIMIT:
        raise PerturbsimError(f"{name} must be a whole number >= 0 and < 2**32, got {shown(seed)}")
    return whole


VERBOSITIES: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The levels ``settings.verbosity`` takes, from the most verbose."""
_SETTINGS = ("seed", "progress", "verbosity")
"""The names of the settings."""


@dataclass(repr=False)
class Settings:
    """Settings that apply to every function of perturbsim.

    Attributes
    ----------
    seed
        Default seed used when a function is called with ``seed=None``.
    progress
        Show tqdm progress bars on long work (streaming passes, training, evaluation).
    verbosity
        Logging level name of the ``perturbsim`` logger (:data:`VERBOSITIES`: ``"DEBUG"``,
        ``"INFO"``, ``"WARNING"``, ``"ERROR"`` or ``"CRITICAL"``). Until it is set, the
        logger's effective level is read: the level its parents give it (Python's default:
        ``"WARNING"``).
    """

    seed: int = 0
    progress: bool = True

    def __setattr__(self, name: str, value: object) -> None:
        """Check a seed, the progress switch (True or False) and the name of the setting."""
        if name not in _SETTINGS:
            raise PerturbsimError(f"settings has no {name!r}; its settings: {', '.join(_SETTINGS)}")
        if name == "seed":
            value = check_seed("settings.seed", value)
        elif name == "progress":
            value = check_flag("settings.progress", value)
        super().__setattr__(name, value)

    @property
    def verbosity(self) -> str:
        """Logging level of the ``perturbsim`` logger: set here, else inherited.

        A level between the named ones (set on the logger directly) reads as the named
        level below it, so that it can be set back. What passes is printed by logging's
        handlers: without one configured (``logging.basicConfig()``), Python's last resort
        prints warnings and errors only.
        """
        level = logging.getLogger(_LOGGER_NAME).getEffectiveLevel()
        names = [name for name in VERBOSITIES if logging.getLevelName(name) <= level]
        return names[-1] if names else VERBOSITIES[0]

    @verbosity.setter
    def verbosity(self, level: str) -> None:
        if not isinstance(level, str) or level.upper() not in VERBOSITIES:
            raise PerturbsimError(
                f"settings.verbosity must be one of {', '.join(map(repr, VERBOSITIES))}, "
                f"got {shown(level)}"
            )
        logging.getLogger(_LOGGER_NAME).setLevel(level.upper())

    def __repr__(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in _SETTINGS).join(
            ("Settings(", ")")
        )


settings = Settings()
"""The package's settings, ``perturbsim.settings``: seed, verbosity, progress bars."""


@contextmanager
def each_warning_once() -> Iterator[None]:
    """Within the block, a warning perturbsim logged already is not logged again.

    For work that repeats itself (the same models fitted on every split seed of an
    evaluation): each distinct warning, by logger and text, is shown the first time only.
    Messages below WARNING pass unchanged. It covers the ``perturbsim`` loggers that exist
    on entry (every module's, once the package is imported).
    """
    seen: set[tuple[str, str]] = set()

    def first_time(record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in seen:
            return False
        seen.add(key)
        return True

    names = [_LOGGER_NAME, *logging.Logger.manager.loggerDict]
    loggers = {
        logging.getLogger(name)
        for name in names
        if name == _LOGGER_NAME or name.startswith(_LOGGER_NAME + ".")
    }
    for logger in loggers:
        logger.addFilter(first_time)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(first_time)


@contextmanager
def switched_off(switch: ContextVar[bool]) -> Iterator[None]:
    """Within the block, ``switch`` reads False (in this thread or task only).

    For a warning that work done on the way to something else must not give, e.g.
    :data:`perturbsim.models._base.WARN_UNSUPPORTED`.
    """
    token = switch.set(False)
    try:
        yield
    finally:
        switch.reset(token)


def resolve_seed(seed: int | None) -> int:
    """``seed``, or the package default when it is ``None``; raise unless in ``[0, 2**32)``.

    numpy's generators take no negative seed and scikit-learn's none from ``2**32`` up, so
    none such is accepted anywhere (:func:`check_seed`).
    """
    return settings.seed if seed is None else check_seed("seed", seed)


def resolve_seeds(seeds: int | Sequence[int], *, first: int) -> list[int]:
    """Split seeds from a count (``first, first + 1, ...``) or a list of distinct whole numbers.

    Raises
    ------
    PerturbsimError
        One line: a count below 1, an empty list, a seed that is not a whole number >= 0, or a
        seed given twice (its scores would count twice, as if from two splits).
    """
    if getattr(seeds, "ndim", None) == 0:  # a numpy number or 0-d array: a count
        seeds = seeds.item()  # type: ignore[union-attr]
    if isinstance(seeds, str) or not isinstance(seeds, Iterable):
        count = check_count("seeds", seeds)
        return list(range(first, first + count))
    listed = list(seeds)
    if not listed:
        raise PerturbsimError("seeds is empty: give a count or at least one seed")
    bad = [
        seed for seed in listed if as_whole(seed) is None or not 0 <= as_whole(seed) < SEED_LIMIT
    ]
    if bad:
        raise PerturbsimError(
            f"seeds must be whole numbers >= 0 and < 2**32, got {shown(bad[0])} in {listed!r}"
        )
    resolved = [int(seed) for seed in listed]
    if len(set(resolved)) != len(resolved):
        raise PerturbsimError(f"seeds repeat: {resolved}")
    return resolved


def progress_disabled() -> bool | None:
    """Value for tqdm's ``disable``: off when the setting says so, else only on a terminal."""
    return None if settings.progress else True
