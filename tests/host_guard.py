"""Keeps the sandbox tests off the host's mounts. As root, the test process moves into a
mount namespace of its own, with every mount private, before any sandbox test runs: a
launcher whose isolation flags were broken would then remount (say /dev read-only) in that
throw-away copy, which ends with the test process, never on the machine itself."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def enter_private_mount_namespace() -> str:
    """Moves this process into a new mount namespace with private propagation; returns what
    was done (or why not), for the test header."""
    if not sys.platform.startswith("linux"):
        return "not Linux: nothing to guard"
    if os.geteuid() != 0:
        return "not root: a program cannot change the host's mounts"
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        return f"could not enter a private mount namespace ({os.strerror(err)})"
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        err = ctypes.get_errno()
        return f"entered a mount namespace but could not make it private ({os.strerror(err)})"
    return "tests run in a private mount namespace"
