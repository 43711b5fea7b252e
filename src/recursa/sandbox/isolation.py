"""Isolation tiers: what this machine allows, the command that starts a run, its uid.

- `namespaces` (root): new pid, network, mount, IPC and UTS namespaces (util-linux
  `unshare`), a read-only filesystem with private directories hidden, and a throw-away uid
  that owns nothing, so the kernel's process limit and file permissions apply.
- `userns` (unprivileged users): the same namespaces inside a new user namespace; the
  program runs as the caller's uid with every capability dropped.
- `process`: resource limits, a new session and the supervisor's clean-up only (plus a
  throw-away uid when running as root with an interpreter other users may run).
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

NAMESPACE_FLAGS = ["--fork", "--kill-child", "--pid", "--mount-proc", "--net", "--ipc", "--uts"]
#: Throw-away uids (and gids) come from this range; a uid is never shared by two live runs.
UID_RANGE = (52000, 60000)


@dataclass(frozen=True)
class Isolation:
    """The tier a sandbox runs programs in."""

    mode: str
    #: Whether programs run under a throw-away uid of their own.
    own_uid: bool

    @property
    def namespaces(self) -> bool:
        return self.mode in ("namespaces", "userns")

    def describe(self) -> str:
        if self.mode == "namespaces":
            return "pid/net/mount namespaces, read-only filesystem, throw-away uid"
        if self.mode == "userns":
            return "user+pid/net/mount namespaces, read-only filesystem, no capabilities"
        extra = ", throw-away uid" if self.own_uid else ""
        return f"resource limits and process clean-up only{extra} (no namespaces)"


def is_root() -> bool:
    return os.geteuid() == 0


def unshare_binary() -> str | None:
    return shutil.which("unshare") or next(
        (p for p in ("/usr/bin/unshare", "/bin/unshare") if os.path.exists(p)), None
    )


def candidate_modes(requested: str) -> list[str]:
    """Tiers to try, strongest first, for a requested isolation setting. `auto` tries only
    the namespace tiers: the `process` tier is never chosen unless asked for by name."""
    if requested != "auto":
        return [requested]
    modes = []
    if unshare_binary():
        modes += ["namespaces"] if is_root() else []
        modes += ["userns"]
    return modes


#: What the `process` tier leaves open, said once when it is asked for.
PROCESS_TIER_GAPS = (
    "isolation 'process' runs untrusted programs without namespaces: a program can read "
    "every file its uid can (datasets, the caller's processes' command lines and memory "
    "when it shares the caller's uid), write where that uid may (the caller's files and "
    "virtual environment), use the network through ctypes, open ptys and signal or kill "
    "its supervisor; only the resource limits and the process clean-up hold"
)


def world_runnable(path: str) -> bool:
    """Whether a user with no special rights can reach and execute `path`."""
    real = os.path.realpath(path)
    for candidate in (path, real):
        parts = Path(os.path.abspath(candidate)).parents
        for parent in parts:
            try:
                if not os.stat(parent).st_mode & stat.S_IXOTH:
                    return False
            except OSError:
                return False
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return False
    return bool(mode & stat.S_IXOTH and mode & stat.S_IROTH)


def interpreter(configured: str | None) -> str:
    return configured or sys.executable


def launcher_command(mode: str) -> list[str]:
    """The command that starts the supervisor for a run in this tier."""
    launcher = str(Path(__file__).with_name("launcher.py"))
    base = [sys.executable, "-I", "-S", "-B", launcher]
    if mode == "process":
        return base
    unshare = unshare_binary() or "unshare"
    user = ["--user", "--map-root-user"] if mode == "userns" else []
    return [unshare, *user, *NAMESPACE_FLAGS, *base]


class UidPool:
    """Throw-away uids for concurrent runs: random within UID_RANGE, skipping accounts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: set[int] = set()

    def acquire(self) -> int:
        with self._lock:
            for _ in range(1000):
                uid = random.randrange(*UID_RANGE)
                if uid in self._busy or _has_account(uid):
                    continue
                self._busy.add(uid)
                return uid
        raise RuntimeError("no free sandbox uid")

    def release(self, uid: int) -> None:
        with self._lock:
            self._busy.discard(uid)


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


UIDS = UidPool()
