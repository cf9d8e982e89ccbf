"""Keep the C allocator from paging the model's working memory in and out, yet idle near its needs.

Each window's attention buffers are tens to hundreds of MB. By default glibc serves blocks that big
with fresh ``mmap`` calls (and threads other than the main one from their own arenas, which do the
same), so every batch page-faults its buffers in again: about 300 MB of faults per window, which took
a quarter of a request's time in the kernel on a 2-core VM. ``tune_malloc`` makes every thread use
one arena that keeps freed memory for the next batch; ``release_free_memory`` hands it back to the
operating system once the model is idle. Both are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018  (glibc only)
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def tune_malloc() -> None:
    """One arena, no per-block ``mmap``, no trimming while busy; call before any thread starts."""
    if (libc := _libc()) is not None:
        libc.mallopt(_M_ARENA_MAX, 1)
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))


def release_free_memory() -> None:
    """Return the memory that finished batches freed to the operating system."""
    if (libc := _libc()) is not None:
        with contextlib.suppress(OSError):
            libc.malloc_trim(0)
