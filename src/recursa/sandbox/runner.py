"""The sandbox: run one untrusted Python program with a time, memory and output budget.

Every run gets a fresh working directory, a scrubbed environment, its own session (killed as
a whole on a limit) and a supervisor (launcher.py) that applies the limits and reports how
the program ended; see isolation.py for the tiers and docs/SANDBOX.md for the guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
import weakref
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from recursa.errors import RecursaError
from recursa.sandbox.execution import Execution, Status, classify
from recursa.sandbox.isolation import (
    PROCESS_TIER_GAPS,
    UIDS,
    Isolation,
    candidate_modes,
    interpreter,
    is_root,
    launcher_command,
    world_runnable,
)
from recursa.sandbox.settings import SandboxConfig
from recursa.sandbox.sweep import sweep
from recursa.sandbox.view import DEVICES, PROC_READ_ONLY, allow_list

log = logging.getLogger("recursa")
T = TypeVar("T")

PROGRAM = "program.py"
PREAMBLE = "_recursa_main.py"
PRELUDE = "_recursa_prelude.py"
STDIN = "stdin.txt"
SPEC = "spec.json"
STDERR_TAIL = 8192
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


def run_tag() -> str:
    """An optional tag (RECURSA_SANDBOX_TAG, letters, digits and '-') put in every marker of
    this process's runs, so an operator can tell whose sandboxed processes are whose."""
    tag = os.environ.get("RECURSA_SANDBOX_TAG", "")
    return "".join(ch for ch in tag if ch.isalnum() or ch == "-")[:32] + "-" if tag else ""


_WARNED: set[str] = set()


def _warn_process_tier() -> None:
    """Say once per process what the explicitly chosen `process` tier does not protect."""
    if "process" not in _WARNED:
        _WARNED.add("process")
        log.warning("%s (docs/SANDBOX.md)", PROCESS_TIER_GAPS)


class SandboxUnavailable(RecursaError):
    """No isolation tier could run even a trivial program on this machine."""


class _Capture:
    """Bytes read from one pipe: the head (stdout) or the tail (stderr), and the total."""

    def __init__(self, keep_tail: bool, keep: int) -> None:
        self.keep_tail = keep_tail
        self.keep = keep
        self.data = bytearray()
        self.total = 0

    async def drain(self, stream: asyncio.StreamReader, cap: int, over: asyncio.Event) -> None:
        while chunk := await stream.read(65536):
            self.total += len(chunk)
            if self.keep_tail:
                self.data += chunk
                del self.data[: max(0, len(self.data) - self.keep)]
            elif len(self.data) < self.keep:
                self.data += chunk[: self.keep - len(self.data)]
            if self.total > cap:
                over.set()

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", errors="replace")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop
    (then in a worker thread with its own loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, name="recursa-sandbox")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


class Sandbox:
    """Runs untrusted Python programs, at most `max_parallel_tests` at once per event loop."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._isolation: Isolation | None = None
        self._unavailable: SandboxUnavailable | None = None
        self._limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._limits = weakref.WeakKeyDictionary()
        self._probe_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._probe_locks = weakref.WeakKeyDictionary()

    # -- isolation --------------------------------------------------------------------------
    def _tier(self, mode: str) -> Isolation:
        python = interpreter(self.config.python)
        own_uid = is_root() and (
            mode == "namespaces" or (mode == "process" and world_runnable(python))
        )
        return Isolation(mode, own_uid)

    async def isolation(self) -> Isolation:
        """The tier in use: the configured one, or with 'auto' the strongest that runs a
        trivial program here (probed once)."""
        if self._isolation is not None:
            return self._isolation
        if self._unavailable is not None:
            raise self._unavailable
        loop = asyncio.get_running_loop()
        lock = self._probe_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            if self._isolation is None and self._unavailable is None:
                try:
                    self._isolation = await self._probe()
                except SandboxUnavailable as exc:
                    self._unavailable = exc
        if self._unavailable is not None:
            raise self._unavailable
        assert self._isolation is not None
        return self._isolation

    async def _probe(self) -> Isolation:
        failures: list[str] = []
        if self.config.isolation == "process":
            _warn_process_tier()
        for mode in candidate_modes(self.config.isolation):
            tier = self._tier(mode)
            result = await self._execute(tier, "print('sandbox-ok')", "", {})
            if result.ok and result.stdout.strip() == "sandbox-ok":
                if failures:
                    log.warning(
                        "the code sandbox runs with weaker isolation (%s): %s",
                        tier.describe(),
                        "; ".join(failures),
                    )
                return tier
            failures.append(f"{mode} failed ({result.message or result.status.value})")
        if not failures:
            failures.append("util-linux unshare is not installed")
        hint = (
            "; without namespaces, untrusted code runs only with --isolation process, which "
            "does not isolate it from your files and processes (see docs/SANDBOX.md)"
            if self.config.isolation == "auto"
            else ""
        )
        raise SandboxUnavailable(
            "the code sandbox cannot run programs on this machine: " + "; ".join(failures) + hint
        )

    # -- runs -------------------------------------------------------------------------------
    def _limit(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._limits.get(loop)
        if sem is None:
            sem = self._limits[loop] = asyncio.Semaphore(self.config.parallel_tests)
        return sem

    async def run(
        self,
        source: str,
        stdin: str = "",
        files: Mapping[str, str] | None = None,
        prelude: str | None = None,
    ) -> Execution:
        """Run `source` as `__main__` with `stdin` as its standard input. `files` are extra
        files (name -> text) placed beside it; `prelude` is code run first whose names the
        program sees. Never raises for anything the program does."""
        tier = await self.isolation()
        extra = dict(files or {})
        if prelude is not None:
            extra[PRELUDE] = prelude
        async with self._limit():
            return await self._execute(tier, source, stdin, extra)

    def run_sync(
        self,
        source: str,
        stdin: str = "",
        files: Mapping[str, str] | None = None,
        prelude: str | None = None,
    ) -> Execution:
        """`run` for sync callers."""
        return run_blocking(self.run(source, stdin, files, prelude))

    def _spec(
        self, tier: Isolation, realdir: str, names: list[str], uid: int | None
    ) -> dict[str, Any]:
        cfg = self.config
        python = interpreter(cfg.python)
        mib = 1024 * 1024
        cpu = cfg.cpu_limit
        env = {
            "PATH": SAFE_PATH,
            "HOME": realdir,
            "TMPDIR": realdir,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
        }
        return {
            "realdir": realdir,
            "workdir": realdir,
            "files": names,
            "stdin": STDIN,
            "argv": [
                python,
                *("-I", "-B", "-X", "utf8", PREAMBLE, PROGRAM),
                *([PRELUDE] if PRELUDE in names else []),
            ],
            "env": env,
            "uid": uid,
            "gid": uid,
            "drop_caps": tier.mode == "userns",
            "mounts": tier.namespaces,
            "view": allow_list(python) if tier.namespaces else [],
            "devices": list(DEVICES),
            "proc_read_only": list(PROC_READ_ONLY),
            "disk_mb": cfg.disk_mb,
            "inodes": cfg.max_files,
            "seccomp": True,
            "total_memory_kb": cfg.memory_mb * 1024,
            "rlimits": {
                "as": [cfg.memory_mb * mib] * 2,
                "cpu": [cpu, cpu + 1],
                "fsize": [cfg.disk_mb * mib] * 2,
                "nproc": [cfg.max_processes] * 2,
                "nofile": [cfg.max_open_files] * 2,
                "core": [0, 0],
            },
        }

    async def _execute(
        self, tier: Isolation, source: str, stdin: str, files: dict[str, str]
    ) -> Execution:
        uid = UIDS.acquire() if tier.own_uid else None
        realdir = tempfile.mkdtemp(prefix="recursa-sandbox-")
        try:
            preamble = Path(__file__).with_name("preamble.py").read_text(encoding="utf-8")
            contents = {**files, PREAMBLE: preamble, PROGRAM: source}
            for name, text in contents.items():
                Path(realdir, name).write_text(text, encoding="utf-8")
                os.chmod(Path(realdir, name), 0o644)
            Path(realdir, STDIN).write_text(stdin, encoding="utf-8")
            spec = self._spec(tier, realdir, sorted(contents), uid)
            marker = f"recursa-sandbox-{run_tag()}{secrets.token_hex(12)}"
            spec["env"]["RECURSA_SANDBOX"] = marker
            if uid is not None and not tier.namespaces:
                os.chown(realdir, uid, uid)
            status_r, status_w = os.pipe()
            spec["status_fd"] = status_w
            Path(realdir, SPEC).write_text(json.dumps(spec), encoding="utf-8")
            try:
                return await self._spawn(tier, realdir, marker, uid, status_w, status_r)
            finally:
                os.close(status_r)
        finally:
            if uid is not None:
                UIDS.release(uid)
            shutil.rmtree(realdir, ignore_errors=True)

    async def _spawn(
        self,
        tier: Isolation,
        realdir: str,
        marker: str,
        uid: int | None,
        status_w: int,
        status_r: int,
    ) -> Execution:
        cfg = self.config
        cap = int(cfg.max_output_mb * 1024 * 1024)
        out, err = _Capture(False, cap), _Capture(True, STDERR_TAIL)
        over = asyncio.Event()
        env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "RECURSA_SANDBOX": marker}
        start = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *launcher_command(tier.mode),
                str(Path(realdir, SPEC)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=realdir,
                start_new_session=True,
                pass_fds=(status_w,),
            )
        except OSError as exc:
            return Execution(Status.SANDBOX_ERROR, "", "", f"cannot start the sandbox: {exc}")
        finally:
            os.close(status_w)
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            asyncio.ensure_future(out.drain(proc.stdout, cap, over)),
            asyncio.ensure_future(err.drain(proc.stderr, cap, over)),
        ]
        waiter = asyncio.ensure_future(proc.wait())
        watcher = asyncio.ensure_future(over.wait())
        timed_out = False
        try:
            await asyncio.wait(
                {waiter, watcher}, timeout=cfg.test_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not waiter.done():
                timed_out = not over.is_set()
                _kill_group(proc.pid)
                await asyncio.wait({waiter}, timeout=2.0)
            wall = time.monotonic() - start
        finally:
            _kill_group(proc.pid)
            # In a pid namespace the kernel has already killed everything; the marker sweep
            # is a second net. Outside one, the run's own uid is the unforgeable handle.
            await asyncio.to_thread(sweep, None if tier.namespaces else uid, marker)
            if not waiter.done():
                await asyncio.wait({waiter}, timeout=5.0)
            await asyncio.wait(readers, timeout=5.0)
            for task in [*readers, waiter, watcher]:
                task.cancel()
        report = _read_report(status_r)
        stderr = err.text()
        status, message = classify(
            timed_out=timed_out,
            output_over=over.is_set(),
            launcher=report,
            stderr=stderr,
            wall_limit=cfg.test_timeout,
            cpu_limit=cfg.cpu_limit,
            output_limit_mb=cfg.max_output_mb,
        )
        report = report or {}
        rss = report.get("maxrss_kb")
        return Execution(
            status=status,
            stdout=out.text(),
            stderr_tail=stderr,
            message=message,
            exit_code=report.get("exit"),
            signal=report.get("signal"),
            wall_s=wall,
            cpu_s=report.get("cpu"),
            peak_memory_mb=rss / 1024 if isinstance(rss, (int, float)) else None,
        )


def _read_report(fd: int) -> dict[str, Any] | None:
    """The supervisor's JSON report from the status pipe (None if it wrote none)."""
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    try:
        report = json.loads(data)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None
