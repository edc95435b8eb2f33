"""Where perturbsim finds data on disk: the bundled files and the optional shared folder."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

SHARED_DATA_ENV = "PERTURBSIM_SHARED_DATA"


def bundled_path(name: str) -> Path:
    """Path of a data file bundled inside the package."""
    return Path(str(files("perturbsim.ds").joinpath("data", name)))


def shared_data_dir() -> Path | None:
    """Return the shared real-data folder if it exists, else ``None``.

    The folder is ``$PERTURBSIM_SHARED_DATA`` when set, else ``../shared/data`` relative to
    the current directory. Tests and benchmarks skip when it is absent.
    """
    path = Path(os.environ.get(SHARED_DATA_ENV, "../shared/data"))
    return path if path.is_dir() else None
