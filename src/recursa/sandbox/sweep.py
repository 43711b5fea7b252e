"""After a run: kill any process it left behind, found by its uid or its marker."""

from __future__ import annotations

import os
import signal
import time


def _uid_of(pid: str) -> int | None:
    """The real uid of a live process (None for zombies, which are already dead)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"State:") and b"Z" in line.split()[1]:
                    return None
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _has_marker(pid: str, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read()
    except OSError:
        return False


def leftovers(uid: int | None, marker: str) -> list[int]:
    """Live processes running as `uid` (when given) or whose environment holds `marker`."""
    me = os.getpid()
    needle = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        if (uid is not None and _uid_of(entry) == uid) or _has_marker(entry, needle):
            found.append(int(entry))
    return found


def sweep(uid: int | None, marker: str, deadline_s: float = 5.0) -> int:
    """SIGKILL every leftover until none is found (or the deadline passes); how many."""
    killed = 0
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        pids = leftovers(uid, marker)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.01)
    return killed
