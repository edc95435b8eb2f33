"""Package-wide settings: verbosity, progress bars and the default seed."""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass

from ._errors import PerturbsimError

_LOGGER_NAME = "perturbsim"


@dataclass
class Settings:
    """Settings that apply to every function of perturbsim.

    Attributes
    ----------
    seed
        Default seed used when a function is called with ``seed=None``.
    progress
        Show tqdm progress bars on long work (streaming passes, training, evaluation).
    verbosity
        Logging level name of the ``perturbsim`` logger (``"WARNING"``, ``"INFO"``, ``"DEBUG"``).
    """

    seed: int = 0
    progress: bool = True
    _verbosity: str = "WARNING"

    @property
    def verbosity(self) -> str:
        """Logging level of the ``perturbsim`` logger."""
        return self._verbosity

    @verbosity.setter
    def verbosity(self, level: str) -> None:
        level = level.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"verbosity must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        self._verbosity = level
        logging.getLogger(_LOGGER_NAME).setLevel(level)


settings = Settings()


def resolve_seed(seed: int | None) -> int:
    """Return ``seed``, or the package default when it is ``None``; raise if not an integer."""
    if seed is None:
        return settings.seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise PerturbsimError(f"seed must be an integer or None, got {seed!r}")
    return int(seed)


def progress_disabled() -> bool | None:
    """Value for tqdm's ``disable``: off when the setting says so, else only on a terminal."""
    return None if settings.progress else True
