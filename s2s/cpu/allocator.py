"""Keep freed CPU memory in the process instead of returning it to the kernel, and back
long-lived weights with huge pages.

glibc serves allocations above its mmap threshold (at most 32 MiB) with fresh ``mmap`` pages
and unmaps them on free, so every large activation of every batch is faulted in page by page
again. On the benchmark RNN that cost about a quarter of the update time; in the runtime's beam
search, every step's reordered key/value caches (a few MB each) paid the same. Turning off mmap
allocation and heap trimming makes the heap keep and reuse those pages, like the caching
allocator does on GPU. Peak RSS stays what the peak batch needs.

Standard library only, so training and the torch-free runtime both use it.

:func:`back_with_huge_pages` serves the runtime: a decoder step reads every weight of the step
graph once (about 19 MB on the benchmark transformer), which with 4 KiB pages is some 4,600
pages per step, more than the TLB holds. After the onnxruntime sessions are built, the heap range
they filled is advised for transparent huge pages and collapsed into 2 MiB pages
(``MADV_COLLAPSE``, Linux 6.1+).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from functools import lru_cache

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25
HUGE_PAGE = 2 << 20
log = logging.getLogger(__name__)
_done = False


@lru_cache(maxsize=1)
def _libc():
    """The C library with ``sbrk`` and ``madvise`` typed, or None off Linux or where it has neither."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_long]
        libc.madvise.restype, libc.madvise.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Apply the glibc settings once; returns whether they took effect (Linux + glibc only)."""
    global _done
    libc = _libc()
    if _done or libc is None:
        return _done
    try:
        _done = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))
    except AttributeError:  # not glibc (musl): nothing to tune
        _done = False
    log.debug("glibc heap tuning %s", "applied" if _done else "unavailable")
    return _done


def heap_top() -> int | None:
    """The current end of the glibc heap (``sbrk(0)``), or None where there is none to ask."""
    libc = _libc()
    if libc is None:
        return None
    top = libc.sbrk(0)
    return top if top and top != ctypes.c_void_p(-1).value else None


def back_with_huge_pages(start: int | None, end: int | None) -> int:
    """Advise the whole 2 MiB pages within [start, end) for transparent huge pages and collapse
    them now; returns the bytes collapsed (0 where the kernel or platform cannot: then, with
    transparent huge pages in ``madvise`` mode, the kernel's background thread may still collapse
    them later). Call it on memory that stays allocated, such as the heap range that loading a
    model filled."""
    libc = _libc()
    if libc is None or start is None or end is None:
        return 0
    lo, hi = -(-start // HUGE_PAGE) * HUGE_PAGE, end // HUGE_PAGE * HUGE_PAGE
    if hi <= lo or libc.madvise(lo, hi - lo, MADV_HUGEPAGE) != 0:
        return 0
    done = libc.madvise(lo, hi - lo, MADV_COLLAPSE) == 0
    log.debug("huge pages for %d MiB of heap: %s", (hi - lo) >> 20, "collapsed" if done else "advised")
    return hi - lo if done else 0
