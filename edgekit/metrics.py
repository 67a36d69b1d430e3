"""Process memory readings, cheap enough to take around every generation."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import psutil

_STATUS = Path("/proc/self/status")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process image.

    On Linux this reads VmHWM: getrusage's ru_maxrss survives execve, so a process spawned by a
    large parent (a test runner holding a torch model, say) would report the parent's peak.
    The kernel updates VmHWM lazily, so the current RSS can be ahead of it.
    """
    if _STATUS.exists():
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return max(int(line.split()[1]) * 1024, rss_bytes())  # VmHWM is in kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)
