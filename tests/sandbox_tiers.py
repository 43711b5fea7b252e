"""The sandbox tier this machine must support: RECURSA_EXPECT_SANDBOX_TIER when set (`.ci/run`
sets it), else what an independent probe with util-linux's `unshare` says works here."""

from __future__ import annotations

import os
import shutil
import subprocess

ORDER = ["process", "userns", "namespaces"]


def _works(*flags: str) -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    cmd = [unshare, *flags, "--pid", "--mount", "--net", "--ipc", "--uts", "--fork", "true"]
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


def expected_tier() -> str:
    stated = os.environ.get("RECURSA_EXPECT_SANDBOX_TIER")
    if stated:
        assert stated in ORDER, f"RECURSA_EXPECT_SANDBOX_TIER={stated!r} is not a tier"
        return stated
    if os.geteuid() == 0 and _works():
        return "namespaces"
    if _works("--user", "--map-root-user"):
        return "userns"
    return "process"
