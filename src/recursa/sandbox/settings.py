"""The sandbox's limits and isolation settings."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

IsolationMode = Literal["auto", "namespaces", "userns", "process"]


def _default_parallel() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class SandboxConfig(BaseModel):
    """Limits for one run of an untrusted program (one test), and how to isolate it."""

    model_config = ConfigDict(extra="forbid")

    test_timeout: float = Field(
        6.0,
        gt=0,
        description="Wall-clock seconds one program run (one test) may take (the reference's).",
    )
    cpu_seconds: int | None = Field(
        None, ge=1, description="CPU seconds per run (default: the wall limit, rounded up)."
    )
    memory_mb: int = Field(
        4096,
        ge=64,
        description="Memory limit per run, in MiB: the address space of each process, and "
        "the resident memory of all the run's processes together (4 GiB: room for "
        "LiveCodeBench solutions, whose harness and the reference's set none; still a limit).",
    )
    max_output_mb: float = Field(
        16.0, gt=0, description="Stdout (and stderr) size per run, in MiB, before it is killed."
    )
    disk_mb: int = Field(
        64, ge=1, description="Largest file a run may write (and its scratch space), in MiB."
    )
    max_files: int = Field(
        4096, ge=16, description="Files and directories a run may create (its tmpfs inodes)."
    )
    max_processes: int = Field(
        32, ge=1, description="Processes and threads one run may have at once."
    )
    max_open_files: int = Field(256, ge=16, description="Open files per process of a run.")
    max_parallel_tests: int | None = Field(
        None, ge=1, description="Program runs (tests) at once (default: min(4, CPUs))."
    )
    isolation: IsolationMode = Field(
        "auto",
        description="How to isolate runs: 'namespaces' (root: new pid/net/mount namespaces "
        "and a throw-away uid), 'userns' (the same inside a user namespace), 'process' "
        "(limits only), or 'auto' (the strongest that works here).",
    )
    python: str | None = Field(
        None, description="Python interpreter that runs the programs (default: this one)."
    )

    @property
    def parallel_tests(self) -> int:
        """Runs at once: the setting, or min(4, CPUs)."""
        return self.max_parallel_tests or _default_parallel()

    @property
    def cpu_limit(self) -> int:
        """CPU seconds per run: the setting, or the wall limit rounded up."""
        return self.cpu_seconds or max(1, int(-(-self.test_timeout // 1)))
