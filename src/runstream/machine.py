"""Facts about the machine this process runs on, for the parts that size themselves by it."""

from __future__ import annotations

import os


def physical_memory() -> int | None:
    """The machine's physical memory in bytes; None where the system does not say (not POSIX)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
