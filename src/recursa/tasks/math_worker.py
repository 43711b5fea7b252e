"""math-verify off the main thread: a child process with a hard deadline.

math-verify bounds its own work with `signal.alarm`, which only works on a process's main
thread; called from any other thread with its time limits on, it raises, and with them off
an adversarial answer (a power tower such as 9^{9^{9^9}}) can run forever while holding the
GIL. So callers off the main thread send the comparison to a child process whose main thread
runs math-verify with its usual limits; if the child does not answer within `DEADLINE_S` it is
killed (and started again on the next call) and the pair counts as not equal.

Protocol: one JSON line `[gold, target]` in, one line `1`/`0` out; `ready` once at start.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from typing import IO

log = logging.getLogger("recursa.tasks.math")

#: Seconds the child may take for one comparison (math-verify's own limits are 5 s per parse
#: and 5 s per comparison, so this only fires when those fail to interrupt).
DEADLINE_S = 30.0
#: Seconds the child may take to start (importing sympy and math-verify).
STARTUP_S = 120.0

_lock = threading.Lock()
_child: subprocess.Popen[bytes] | None = None


def _readline(stream: IO[bytes], timeout: float) -> bytes | None:
    """One line from the child, or None if none arrives in time."""
    ready, _, _ = select.select([stream], [], [], max(timeout, 0.0))
    if not ready:
        return None
    return stream.readline() or None


def _start() -> subprocess.Popen[bytes] | None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "recursa.tasks.math_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    if _readline(proc.stdout, STARTUP_S) != b"ready\n":
        _kill(proc)
        return None
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


@atexit.register
def shutdown() -> None:
    """Stop the child (it also exits by itself when its stdin closes)."""
    global _child
    with _lock:
        if _child is not None:
            _kill(_child)
            _child = None


def verify_in_child(gold: str, target: str, deadline_s: float = DEADLINE_S) -> bool | None:
    """math-verify's verdict computed in the child; None when it did not answer in time
    (or could not start), in which case the child is replaced on the next call."""
    global _child
    with _lock:
        if _child is None or _child.poll() is not None:
            _child = _start()
            if _child is None:
                log.warning("the math-verify helper process did not start")
                return None
        proc = _child
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps([gold, target]).encode() + b"\n")
            proc.stdin.flush()
        except OSError:
            _kill(proc)
            _child = None
            return None
        started = time.monotonic()
        line = _readline(proc.stdout, deadline_s - (time.monotonic() - started))
        if line is None or line.strip() not in (b"0", b"1"):
            log.warning(
                "math-verify did not answer within %.0f s; the answers count as not equal",
                deadline_s,
            )
            _kill(proc)
            _child = None
            return None
        return line.strip() == b"1"


def _serve() -> None:
    """The child's loop: its main thread runs math-verify with its signal-based limits."""
    logging.disable(logging.CRITICAL)
    from recursa.tasks.math import math_verify_here

    math_verify_here("1", "1")  # import sympy and the LaTeX parser before saying ready
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for raw in sys.stdin.buffer:
        try:
            gold, target = json.loads(raw)
            ok = math_verify_here(str(gold), str(target))
        except Exception:  # a malformed request or a math-verify failure: not equal
            ok = False
        out.write(b"1\n" if ok else b"0\n")
        out.flush()


if __name__ == "__main__":
    _serve()
