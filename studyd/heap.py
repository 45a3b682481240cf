"""Handing free heap pages back to the OS, for the API after a cold summary and a worker after a
big trial: glibc keeps freed pages in its arenas, `malloc_trim(0)` returns them (glibc only;
elsewhere a no-op)."""

from __future__ import annotations

import ctypes


def return_free_pages() -> None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc's, if glibc
    except (OSError, AttributeError):
        return
    trim(0)
