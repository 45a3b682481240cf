"""Giving freed memory back after a big trial, as the API does after a cold summary.

A large network's weights, activations and optimiser state are freed when its trial ends, but
glibc keeps the pages in its arenas: an idle worker would hold a big trial's peak for good.
`gc.collect` frees what cycles held; `malloc_trim(0)` hands free pages back to the OS (glibc
only; elsewhere a no-op).
"""

from __future__ import annotations

import gc
import logging
import os

from studyd.heap import return_free_pages

logger = logging.getLogger(__name__)

# Trim once the resident set grew this much since the last trim: a small trial costs no
# collection (≈50-100 ms with torch loaded), a big one is given back.
TRIM_GROWTH_BYTES = 128 * 1024 * 1024


def resident_bytes() -> int | None:
    """This process's resident set (Linux `/proc/self/statm`); None where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def trim_heap() -> None:
    """Collect, then return free heap pages to the OS."""
    gc.collect()
    return_free_pages()


class HeapKeeper:
    """Trims after a slot when the resident set grew by TRIM_GROWTH_BYTES since the last trim."""

    def __init__(self) -> None:
        self.baseline = resident_bytes()

    def after_slot(self) -> None:
        now = resident_bytes()
        if now is None or self.baseline is None:
            return
        if now - self.baseline >= TRIM_GROWTH_BYTES:
            trim_heap()
            after = resident_bytes() or now
            logger.info("memory: %.0f MB given back", (now - after) / 2**20)
            self.baseline = after
        else:
            self.baseline = min(self.baseline, now)
