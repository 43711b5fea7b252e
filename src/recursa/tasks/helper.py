"""A helper process with a hard deadline per request, for grading work that may not finish.

Some graders run code that no timer inside the process can stop (a C-level big-integer power
holds the GIL; `signal.alarm` works only on the main thread) or that must not run in the
caller's process at all (third-party scorers that evaluate answer text). They run in a child
process instead: one JSON line in, one JSON line out. If the child does not answer in time it
is killed, the request has no result (None), and the next request starts a new child.

The child's own stdout is redirected to its stderr (which is discarded) before any grader
runs, so nothing a grader prints can corrupt the protocol. The child gets the parent's
environment without variables that look like secrets (API keys, tokens, passwords).
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
from collections.abc import Callable
from typing import IO, Any

log = logging.getLogger("recursa.tasks")

_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not any(w in k.upper() for w in _SECRET_WORDS)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _readline(stream: IO[bytes], timeout: float) -> bytes | None:
    """One line from the child, or None if none arrives in time."""
    ready, _, _ = select.select([stream], [], [], max(timeout, 0.0))
    if not ready:
        return None
    return stream.readline() or None


class HelperProcess:
    """The parent's handle on one helper module (`python -m MODULE`), started on first use."""

    def __init__(self, module: str, startup_s: float = 120.0) -> None:
        self.module = module
        self.startup_s = startup_s
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        atexit.register(self.shutdown)

    def _start(self) -> subprocess.Popen[bytes] | None:
        proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_child_env(),
        )
        assert proc.stdout is not None
        if _readline(proc.stdout, self.startup_s) != b"ready\n":
            _kill(proc)
            return None
        return proc

    def shutdown(self) -> None:
        """Stop the child (it also exits by itself when its stdin closes)."""
        with self._lock:
            if self._child is not None:
                _kill(self._child)
                self._child = None

    def ask(self, request: list[Any], deadline_s: float) -> Any:
        """The child's answer to `request`, or None when it did not answer within
        `deadline_s` seconds (or could not start); the child is then replaced."""
        with self._lock:
            if self._child is None or self._child.poll() is not None:
                self._child = self._start()
                if self._child is None:
                    log.warning("the grading helper %s did not start", self.module)
                    return None
            proc = self._child
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps(request).encode() + b"\n")
                proc.stdin.flush()
            except OSError:
                _kill(proc)
                self._child = None
                return None
            started = time.monotonic()
            line = _readline(proc.stdout, deadline_s - (time.monotonic() - started))
            try:
                return json.loads(line) if line is not None else _timed_out(self, proc)
            except ValueError:
                return _timed_out(self, proc)


def _timed_out(helper: HelperProcess, proc: subprocess.Popen[bytes]) -> None:
    _kill(proc)
    helper._child = None
    return None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


def serve(handle: Callable[[list[Any]], Any], warm_up: Callable[[], None]) -> None:
    """The child's loop: `warm_up()` (imports), then `handle(request)` for each line. An
    exception in `handle` answers ["error", ExceptionName]."""
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # from here on, whatever a grader prints goes to stderr (discarded)
    sys.stdout = sys.stderr
    logging.disable(logging.CRITICAL)
    warm_up()
    protocol.write(b"ready\n")
    protocol.flush()
    for raw in sys.stdin.buffer:
        try:
            answer = handle(json.loads(raw))
        except Exception as exc:  # a malformed request or a grader's failure
            answer = ["error", type(exc).__name__]
        protocol.write(json.dumps(answer).encode() + b"\n")
        protocol.flush()
