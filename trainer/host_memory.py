"""Host memory on the CPU: keep freed blocks in the process for the next step instead of giving them back.

By default glibc's malloc serves a block above a threshold (adapting up to 32 MiB) with its own mmap and unmaps it
when freed, and trims free memory off the top of its heap beyond twice that threshold. A training step frees and
allocates the same activations every batch, so every step may pay page faults for fresh, zeroed memory:
minimobilenet's step at batch 256 took about 14,000 (results/experiments/speed-freed-memory/page_faults.txt) and
its epoch 1.2-2.0x as long (docs: Speed). Raising both thresholds to 1 GiB keeps that memory for reuse. Only where memory comes from changes,
never a value computed in it. It is process-wide and lasts for the process's life, which suits a training process;
`training.keep_freed_memory=false` leaves the C library's defaults alone.
"""

from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's <malloc.h>
KEEP_UP_TO = 1 << 30  # bytes: blocks up to this size come from the heap, and this much freed memory is kept
_applied = False


def glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc, else None (macOS, Windows, musl: their mallopt, if any, means
    something else)."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it
        return libc
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return None


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse (see the module docstring). Returns whether the setting is in
    force in this process; False where the C library is not glibc, whose allocator is left as it is."""
    global _applied
    if _applied:
        return True
    libc = glibc()
    if libc is None:
        logger.debug("host memory: not glibc; the C library's allocator is left as it is")
        return False
    if libc.mallopt(_M_MMAP_THRESHOLD, KEEP_UP_TO) != 1 or libc.mallopt(_M_TRIM_THRESHOLD, KEEP_UP_TO) != 1:
        logger.debug("host memory: glibc refused mallopt; its defaults stay")
        return False
    _applied = True
    return True
