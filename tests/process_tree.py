"""The processes of a command under test: everything in its session.

Tests start the command with ``start_new_session=True``, so its session id is
its pid, and every process it starts (workers, loky's resource tracker, a Dask
LocalCluster's processes) stays in that session even once orphaned.
"""

from __future__ import annotations

import os
import time

import psutil


def session(sid: int) -> list[str]:
    """The live processes of session ``sid``, as "pid cmdline" (zombies are gone)."""
    found = []
    for proc in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            if os.getsid(proc.pid) == sid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:120]}")
        except (OSError, psutil.Error):
            continue  # gone meanwhile
    return found


def wait_all_gone(sid: int, timeout: float = 30.0) -> float:
    """Seconds until no process of the session is left; fails naming those that stay."""
    started = time.monotonic()
    while left := session(sid):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"processes of the run still there after {timeout:g} s: {left}")
        time.sleep(0.02)
    return time.monotonic() - started
