from __future__ import annotations

import ctypes
import platform
import sys
from collections.abc import Callable

import numpy as np
import pytest

from perturbsim._memory import _glibc, reuse_freed_memory

ON_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
BUFFER = 64 * 2**20
"""A training-sized buffer: above glibc's largest automatic mmap threshold (32 MiB)."""


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (mallinfo(3)): allocator statistics, in bytes."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # heap obtained with sbrk
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # held in mmapped blocks
            "usmblks",
            "fsmblks",
            "uordblks",  # in use in the heap
            "fordblks",  # free, kept in the heap
            "keepcost",
        )
    ]


@pytest.fixture
def mallinfo() -> Callable[[], _MallInfo2]:
    """glibc's ``mallinfo2``, the allocator's current statistics (skips elsewhere)."""
    libc = _glibc()
    if libc is None:
        pytest.skip("reuse_freed_memory tunes glibc's allocator only")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("mallinfo2 needs glibc 2.33 or later")
    libc.mallinfo2.argtypes = []
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2


def test_large_freed_buffers_stay_in_the_heap_for_reuse(mallinfo):
    with reuse_freed_memory() as tuned:
        assert tuned
        before = mallinfo()
        buffer = np.empty(BUFFER, dtype=np.uint8)
        held = mallinfo()
        assert held.hblkhd - before.hblkhd < BUFFER  # not a fresh mapping
        assert held.uordblks - before.uordblks >= BUFFER  # but a block of the heap
        del buffer
        freed = mallinfo()
        assert freed.fordblks - held.fordblks >= BUFFER  # kept, not given back
        buffer = np.empty(BUFFER, dtype=np.uint8)
        reused = mallinfo()
        assert reused.arena == freed.arena  # the next one reuses it: the heap did not grow
        assert reused.hblkhd - freed.hblkhd < BUFFER
        del buffer


def test_defaults_return_and_the_heap_is_trimmed_on_exit(mallinfo):
    with reuse_freed_memory():
        buffer = np.empty(BUFFER, dtype=np.uint8)
        held = mallinfo()
        del buffer
        freed = mallinfo()
        assert freed.fordblks - held.fordblks >= BUFFER  # retained while tuned
    after = mallinfo()
    assert freed.fordblks - after.fordblks >= BUFFER  # given back to the system on exit
    buffer = np.empty(BUFFER, dtype=np.uint8)
    assert mallinfo().hblkhd - after.hblkhd >= BUFFER  # large blocks are mmapped again
    del buffer


def test_errors_propagate_and_the_tuning_can_be_reapplied():
    with pytest.raises(RuntimeError, match="boom"), reuse_freed_memory():
        raise RuntimeError("boom")
    with reuse_freed_memory() as tuned:  # and can be applied again
        assert tuned is ON_GLIBC
