"""Keep the server's resident memory near what the model needs, not what its busiest moment took.

glibc gives each thread that allocates its own malloc arena and keeps freed memory in them, so after
a burst of batches (attention buffers of tens of MB per window) an idle server would stay at its peak
RSS. Both calls are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools

_M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018  (glibc only)
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> None:
    """Cap the number of malloc arenas; call before threads start allocating."""
    if (libc := _libc()) is not None:
        libc.mallopt(_M_ARENA_MAX, arenas)


def release_free_memory() -> None:
    """Return memory freed by finished batches to the operating system."""
    if (libc := _libc()) is not None:
        with contextlib.suppress(OSError):
            libc.malloc_trim(0)
