"""What one sandboxed run produced, and how its ending is classified."""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class Status(str, Enum):
    """How a run (or a test, once its output is compared) ended."""

    OK = "ok"
    WRONG_ANSWER = "wrong_answer"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_ERROR = "sandbox_error"


@dataclass(frozen=True)
class Execution:
    """One run of a program: how it ended, what it printed, how long it took."""

    status: Status
    stdout: str
    stderr_tail: str
    #: One line: the last traceback line, the limit that was hit, or empty when OK.
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    wall_s: float = 0.0
    cpu_s: float | None = None
    peak_memory_mb: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        return out


_MEMORY_MARKS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc")


def last_line(text: str) -> str:
    """The last non-empty line: for a Python traceback, the exception and its message."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify(
    *,
    timed_out: bool,
    output_over: bool,
    launcher: dict[str, Any] | None,
    stderr: str,
    wall_limit: float,
    cpu_limit: int,
    output_limit_mb: float,
) -> tuple[Status, str]:
    """The status and one-line message of a finished run.

    `launcher` is the supervisor's report (exit code or signal, CPU seconds), or None when
    the supervisor itself did not finish (killed on a limit, or by the program)."""
    if output_over:
        return Status.OUTPUT_LIMIT, f"printed more than {output_limit_mb:g} MiB"
    if timed_out:
        return Status.TIMEOUT, f"exceeded the wall-clock limit of {wall_limit:g} s"
    if launcher is None:
        return Status.RUNTIME_ERROR, "the sandbox supervisor was killed before the program ended"
    if "error" in launcher:
        return Status.SANDBOX_ERROR, str(launcher["error"])
    if launcher.get("over_memory_kb"):
        used = int(launcher["over_memory_kb"]) // 1024
        return Status.MEMORY, f"the run's processes together used more than the limit ({used} MiB)"
    tail = last_line(stderr)
    sig = launcher.get("signal")
    cpu = float(launcher.get("cpu") or 0.0)
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_limit - 0.05):
        return Status.TIMEOUT, f"exceeded the CPU-time limit of {cpu_limit} s"
    if launcher.get("exit") == 0:
        return Status.OK, ""
    if any(mark in tail for mark in _MEMORY_MARKS) or (
        not tail and any(mark in stderr for mark in _MEMORY_MARKS)
    ):
        return Status.MEMORY, tail or "ran out of memory"
    if tail:
        return Status.RUNTIME_ERROR, tail
    if sig is not None:
        return Status.RUNTIME_ERROR, f"killed by {signal_name(int(sig))}"
    return Status.RUNTIME_ERROR, f"exited with code {launcher.get('exit')}"
