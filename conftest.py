"""Set-up shared by the tests and the doctests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from hypothesis import settings

settings.register_profile("derandomized", derandomize=True)
settings.load_profile("derandomized")  # property tests draw the same examples on every run


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_worker() -> Iterator[None]:
    """One torch thread per test process.

    The suite runs in two pytest-xdist workers (``-n 2`` in ``pyproject.toml``): with torch's
    default of a thread per core in each, their threads outnumber the cores of a two-core
    machine, and the small networks of the tests train up to ten times slower while the
    other worker runs (measured on two cores).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
