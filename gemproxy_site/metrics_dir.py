"""The directory several gateway processes of one machine share for their metrics.

prometheus-client's multiprocess mode keeps each process's counters in memory-mapped
files named after its pid, and ``/metrics`` in any process sums them all. It reads
``PROMETHEUS_MULTIPROC_DIR`` once, when it is first imported, so this runs from the
settings, before anything imports it.

Files of processes that are gone are removed at start: otherwise a restarted
install would keep counting its dead processes' live gauges, and the directory
would grow with every restart. To Prometheus a dead process's counters leaving
the sum looks like a counter reset, as a restart of a single process does, and
``rate()`` and ``increase()`` handle that.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# counter_123.db, histogram_123.db, gauge_livesum_123.db, ...
_FILE_OF_PID = re.compile(r"[a-z_]+_(\d+)\.db")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_dead_processes(directory: Path, pattern: str = "*.db") -> list[Path]:
    """Delete the metric files (of ``pattern``) of processes no longer running; return what was deleted."""
    removed = []
    for path in directory.glob(pattern):
        match = _FILE_OF_PID.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            try:
                path.unlink()
            except FileNotFoundError:  # another process starting at the same time was quicker
                continue
            removed.append(path)
    return removed


def remove_dead_live_gauges(directory: Path) -> list[Path]:
    """At each scrape: a gauge of the processes alive (a queue's depth) must not count a dead one's last value."""
    return remove_dead_processes(directory, "gauge_live*.db")


def prepare(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    remove_dead_processes(directory)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
