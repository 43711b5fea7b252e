"""The hostile-program catalogue: each program is contained and graded as a failure, while
the test process and the machine are unaffected. Run in every isolation tier available
here; a tier is only held to what it promises (docs/SANDBOX.md)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recursa.sandbox import Sandbox, SandboxConfig, SandboxUnavailable, Status
from recursa.sandbox.isolation import UID_RANGE, world_runnable
from recursa.sandbox.runner import run_blocking
from recursa.tasks.code_grading import grade_code
from tests.sandbox_tiers import ORDER as TIERS
from tests.sandbox_tiers import expected_tier

pytestmark = pytest.mark.reliability

SUM_TESTS = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]


@dataclass
class Tier:
    box: Sandbox
    mode: str
    own_uid: bool

    @property
    def namespaces(self) -> bool:
        return self.mode in ("namespaces", "userns")

    @property
    def limits_processes(self) -> bool:
        """RLIMIT_NPROC binds only a uid that is not root."""
        return self.own_uid or os.geteuid() != 0

    @property
    def guards_files(self) -> bool:
        return self.namespaces or self.own_uid


def _config(mode: str, **kw: object) -> SandboxConfig:
    python = None
    if mode == "process" and os.geteuid() == 0 and not world_runnable(sys.executable):
        # A throw-away uid needs an interpreter other users may run.
        python = next(
            (p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if world_runnable(p)), None
        )
    values: dict[str, object] = {
        "isolation": mode,
        "test_timeout": 2.0,
        "memory_mb": 256,
        "max_processes": 16,
        "max_output_mb": 1.0,
        "max_parallel_tests": 2,
        "python": python,
        **kw,
    }
    return SandboxConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["namespaces", "userns", "process"])
def tier(request: pytest.FixtureRequest) -> Tier:
    box = Sandbox(_config(request.param))
    try:
        iso = run_blocking(box.isolation())
    except SandboxUnavailable as exc:
        # The tier this machine must support is never skipped (tests/test_sandbox_tier.py).
        if TIERS.index(request.param) <= TIERS.index(expected_tier()):
            pytest.fail(f"{request.param} isolation should work here but does not: {exc}")
        pytest.skip(f"{request.param} isolation is not available here: {exc}")
    return Tier(box, iso.mode, iso.own_uid)


# Tag this session's sandbox runs: other test sessions on the same machine (other checkouts)
# run sandboxes too, and their processes are not this session's to judge.
SESSION_TAG = f"pytest{os.getpid()}"
os.environ["RECURSA_SANDBOX_TAG"] = SESSION_TAG
OURS = f"RECURSA_SANDBOX=recursa-sandbox-{SESSION_TAG}-".encode()


def _sandbox_processes() -> list[int]:
    """Live processes of this session's sandbox runs: their marker, or a sandbox uid with no
    marker at all (a program that cleared its environment cannot hide that way)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            lines = status.splitlines()
            uid = int(next(x for x in lines if x.startswith("Uid:")).split()[1])
            state = next(x for x in lines if x.startswith("State:"))
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except (OSError, StopIteration, ValueError):
            continue
        if " Z " in state + " ":
            continue
        marked = b"RECURSA_SANDBOX=recursa-sandbox-" in environ
        if OURS in environ or (UID_RANGE[0] <= uid < UID_RANGE[1] and not marked):
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def machine_unaffected() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 5
    while _sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sandbox_processes() == [], "a sandboxed process outlived its run"


def _grade(tier: Tier, code: str) -> dict[str, object]:
    grade = grade_code(code, SUM_TESTS, sandbox=tier.box, extract=False)
    assert grade.score == 0.0
    assert grade.reason
    return grade.detail


INFINITE_LOOP = "while True:\n    pass\n"
SLEEPER = "import time\ntime.sleep(60)\nprint(3)\n"
MEMORY_BOMB = "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n"
HUGE_OUTPUT = "while True:\n    print('x' * 100000)\n"
FORK_BOMB = """\
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


def test_infinite_loop_times_out(tier: Tier) -> None:
    start = time.monotonic()
    detail = _grade(tier, INFINITE_LOOP)
    assert detail["status"] == Status.TIMEOUT.value
    assert time.monotonic() - start < 15


def test_sleeping_past_the_timeout(tier: Tier) -> None:
    start = time.monotonic()
    detail = _grade(tier, SLEEPER)
    assert detail["status"] == Status.TIMEOUT.value
    assert "wall-clock" in str(detail["message"])
    assert time.monotonic() - start < 15


def test_memory_bomb(tier: Tier) -> None:
    detail = _grade(tier, MEMORY_BOMB)
    assert detail["status"] == Status.MEMORY.value


def test_huge_output(tier: Tier) -> None:
    run = tier.box.run_sync(HUGE_OUTPUT)
    assert run.status is Status.OUTPUT_LIMIT
    assert len(run.stdout.encode()) <= 1024 * 1024
    assert _grade(tier, HUGE_OUTPUT)["status"] == Status.OUTPUT_LIMIT.value


def test_fork_bomb(tier: Tier) -> None:
    if not tier.limits_processes:
        pytest.skip("as root without its own uid, RLIMIT_NPROC does not bind (see SANDBOX.md)")
    start = time.monotonic()
    detail = _grade(tier, FORK_BOMB)
    assert detail["status"] in (Status.TIMEOUT.value, Status.RUNTIME_ERROR.value)
    assert time.monotonic() - start < 30


def test_writing_outside_its_directory(tier: Tier, tmp_path: Path) -> None:
    if not tier.guards_files:
        pytest.skip("this tier has neither a read-only filesystem nor its own uid")
    os.chmod(tmp_path, stat.S_IRWXU)
    targets = [tmp_path / "escaped.txt", Path.home() / f"escaped-{secrets.token_hex(4)}.txt"]
    if tier.namespaces:  # /tmp is world-writable: only the mount namespace hides it
        targets.append(Path("/tmp") / f"recursa-escaped-{secrets.token_hex(4)}.txt")
    program = (
        "written = []\n"
        f"for path in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        open(path, 'w').write('escaped')\n"
        "        written.append(path)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(written)\n"
        "assert not written\n"
    )
    run = tier.box.run_sync(program)
    assert run.stdout.strip() == "[]", run.stdout
    for target in targets:
        assert not target.exists(), f"the program wrote {target}"
    assert _grade(tier, program)["status"] == Status.WRONG_ANSWER.value


def test_reading_environment_secrets(tier: Tier, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-test-{secrets.token_hex(16)}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("RECURSA_TEST_TOKEN", secret)
    # A process whose exec environment holds the secret, as a server started with it would.
    holder = subprocess.Popen(["sleep", "30"], env={**os.environ, "HOLDER_SECRET": secret})
    program = f"""\
import os
print(dict(os.environ))
for pid in [{holder.pid}, {os.getpid()}, os.getppid()] + os.listdir('/proc'):
    try:
        print(open(f'/proc/{{pid}}/environ', 'rb').read())
    except (OSError, ValueError):
        pass
"""
    try:
        run = tier.box.run_sync(program)
    finally:
        holder.kill()
        holder.wait()
    if not tier.guards_files:
        # Same uid, no namespaces: /proc/PID/environ of the caller's processes is readable.
        assert secret not in run.stdout.split("\n")[0]
        return
    assert run.ok, run.message
    assert secret not in run.stdout and secret not in run.stderr_tail
    assert _grade(tier, program)["status"] == Status.WRONG_ANSWER.value


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection and byte it gets."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(0.5)
            with contextlib.suppress(OSError):
                self.received += conn.recv(1024)
            conn.close()

    def close(self) -> None:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_opening_a_network_connection(tier: Tier) -> None:
    listener = Listener()
    raw_connect = f"""
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.socket(2, 1, 0)
address = struct.pack('=H', 2) + struct.pack('!H', {listener.port})
address += bytes([127, 0, 0, 1]) + bytes(8)
if fd >= 0 and libc.connect(fd, address, 16) == 0:
    libc.send(fd, b'leak-raw', 8, 0)
    print('raw connect succeeded')
"""
    program = f"""\
import socket, _socket
for attempt in (
    lambda: socket.create_connection(('127.0.0.1', {listener.port}), timeout=1).sendall(b'leak'),
    lambda: socket.socket().connect(('127.0.0.1', {listener.port})),
    lambda: _socket.socket().connect(('127.0.0.1', {listener.port})),
):
    try:
        attempt()
        print('connected')
    except OSError as exc:
        print('refused', exc)
{raw_connect if tier.namespaces else ""}
"""
    try:
        run = tier.box.run_sync(program)
        detail = _grade(tier, program)
    finally:
        listener.close()
    assert "connected" not in run.stdout and "succeeded" not in run.stdout
    # Every attempt ran and was refused: a program that crashed before trying proves nothing.
    assert run.ok and run.stdout.count("refused") == 3, (run.status, run.stdout)
    assert listener.connections == 0 and listener.received == b""
    assert detail["status"] == Status.WRONG_ANSWER.value


def test_killing_its_parent(tier: Tier) -> None:
    if not (tier.namespaces or tier.own_uid):
        pytest.skip("with the caller's own uid and no pid namespace, the caller is killable")
    me = os.getpid()
    program = f"""\
import os, signal
for action in (
    lambda: os.kill(os.getppid(), signal.SIGKILL),
    lambda: os.kill({me}, signal.SIGKILL),
    lambda: os.killpg(os.getpgid({me}), signal.SIGKILL),
    lambda: os.kill(1, signal.SIGKILL),
):
    try:
        action()
    except OSError:
        pass
print('still here')
"""
    run = tier.box.run_sync(program)
    assert os.getpid() == me  # this process lives on
    assert run.status in (Status.OK, Status.RUNTIME_ERROR)
    assert _grade(tier, program)["status"] in (
        Status.WRONG_ANSWER.value,
        Status.RUNTIME_ERROR.value,
    )
    # The sandbox still works afterwards.
    assert tier.box.run_sync("print(1 + 1)").stdout.strip() == "2"


def _running_with(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def test_background_process_does_not_outlive_the_run(tier: Tier) -> None:
    token = f"{secrets.randbelow(10**6) + 10**6}.{secrets.randbelow(10**6)}"
    program = f"""\
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', '{token}'])
    os._exit(0)
time.sleep(0.5)
print('daemon started')
"""
    run = tier.box.run_sync(program)
    assert run.ok and "daemon started" in run.stdout
    assert _running_with(token) == []
    assert _grade(tier, program)["status"] == Status.WRONG_ANSWER.value
    assert _running_with(token) == []


def test_background_process_of_a_timed_out_run_is_gone(tier: Tier) -> None:
    token = f"{secrets.randbelow(10**6) + 10**6}.{secrets.randbelow(10**6)}"
    program = f"""\
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', '{token}'])
    os._exit(0)
time.sleep(60)
"""
    run = tier.box.run_sync(program)
    assert run.status is Status.TIMEOUT
    assert _running_with(token) == []
