"""Process-wide C allocator settings for short commands (no torch import)."""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
RETAIN_BYTES = 1 << 30
_CAPPED_MMAP_MAX = 32 << 20  # malloc(3): the documented upper limit on 64-bit; some glibc versions enforce it


def retain_freed_memory(limit_bytes: int = RETAIN_BYTES) -> bool:
    """Have glibc's malloc serve large arrays from the heap and keep what is freed, up to ``limit_bytes``.

    Why: a sampling loop allocates and frees the same large activations at every step. By default glibc
    maps large arrays afresh (above 128 KB at first; the threshold rises only as mapped chunks are freed)
    and unmaps them when freed, so the first clip's steps keep faulting in new zeroed pages; kept heap
    memory is reused instead. That is about 0.25 s of the first 5 s clip on a 2-core CPU
    (docs/runtime.md). It changes the whole process, so only commands call it, never the library.
    Returns False where the C library has no ``mallopt`` (not glibc); nothing changes then.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_TRIM_THRESHOLD, limit_bytes) == 1 and (
        mallopt(_M_MMAP_THRESHOLD, limit_bytes) == 1
        or mallopt(_M_MMAP_THRESHOLD, _CAPPED_MMAP_MAX) == 1)
    if not ok:
        log.debug("mallopt refused the thresholds; the allocator keeps its defaults")
    return ok
