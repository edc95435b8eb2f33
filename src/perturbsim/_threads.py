"""torch's thread count, kept across code that resets it (scanpy's numba kernels)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads_kept(threads: int | None = None) -> Iterator[None]:
    """Run the block, then restore torch's thread count to what it was before.

    numba's OpenMP threading layer, which scanpy's kernels start on first use (Wilcoxon
    ranks, ``normalize_total``, neighbours, UMAP), sets the OpenMP thread count torch reads
    to the number of cores, whatever ``OMP_NUM_THREADS`` says; a model fitted after it then
    sums in another order and differs in its last digits (up to 0.02 after 20 GEARS epochs).
    Calls into such code are wrapped in this, so that a fit under a seed gives the same
    numbers whatever ran before it.

    Parameters
    ----------
    threads
        Threads for torch inside the block (unchanged when None).

    Yields
    ------
    Nothing (``None``). The block starts with torch's thread count set to ``threads`` (as
    it was when None); whatever the block sets it to, the count from before the ``with`` is
    restored on leaving it, by an exception too.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads_kept(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    kept = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(kept)
