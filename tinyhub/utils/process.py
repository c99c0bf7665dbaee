"""How long this process has been running: what a user waits for includes the interpreter and the imports."""

from __future__ import annotations

import os
from pathlib import Path


def process_age() -> float | None:
    """Seconds since this process started, from /proc (Linux, to 10 ms); None where the platform does not say."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()  # after the command's name
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): start time after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return round(max(0.0, uptime - started), 2)
