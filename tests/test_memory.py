from __future__ import annotations

import platform
import sys

import pytest

from perturbsim._memory import _glibc, reuse_freed_memory

ON_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def test_allocator_is_tuned_on_glibc_only():
    with reuse_freed_memory() as tuned:
        assert tuned is ON_GLIBC
        big = bytearray(64 * 2**20)  # allocations still work while tuned
        assert len(big) == 64 * 2**20
    assert (_glibc() is not None) is ON_GLIBC


def test_errors_propagate_and_the_tuning_can_be_reapplied():
    with pytest.raises(RuntimeError, match="boom"), reuse_freed_memory():
        raise RuntimeError("boom")
    with reuse_freed_memory() as tuned:  # and can be applied again
        assert tuned is ON_GLIBC
