"""The red team's second round: each hole is first shown open (the attack works without the
defence: outside the sandbox or in the `process` tier), then closed in every namespace tier
available here. Probes that touch kernel settings only ever write the value already there."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recursa.sandbox import Sandbox, SandboxConfig, SandboxUnavailable, Status
from recursa.sandbox import isolation as isolation_module
from recursa.sandbox.isolation import interpreter
from recursa.sandbox.runner import run_blocking
from recursa.sandbox.view import allow_list
from recursa.tasks.code_grading import grade_code

pytestmark = pytest.mark.reliability

ROOT = os.geteuid() == 0


def _config(mode: str, **kw: object) -> SandboxConfig:
    values: dict[str, object] = {
        "isolation": mode,
        "test_timeout": 4.0,
        "memory_mb": 256,
        "max_processes": 16,
        "max_output_mb": 1.0,
        "max_parallel_tests": 1,
        **kw,
    }
    return SandboxConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["namespaces", "userns"])
def box(request: pytest.FixtureRequest) -> Sandbox:
    if request.param == "namespaces" and not ROOT:
        pytest.skip("the namespaces tier needs root")
    sandbox = Sandbox(_config(request.param))
    try:
        run_blocking(sandbox.isolation())
    except SandboxUnavailable as exc:
        pytest.skip(f"{request.param} isolation is not available here: {exc}")
    return sandbox


# -- the kernel keyring -------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
KEYCTL, ADD_KEY = 250, 248
SESSION = -3

KEYRING_PROGRAM = """\
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def find(name):
    return libc.syscall(250, 10, -3, b"user", name, 0)   # KEYCTL_SEARCH in @s
def read(key):
    buf = ctypes.create_string_buffer(4096)
    n = libc.syscall(250, 11, key, buf, 4096)           # KEYCTL_READ
    return buf.raw[:n].decode() if n > 0 else None
secret = find(b"recursa-test-secret")
print("secret:", read(secret) if secret > 0 else None)
counter = find(b"recursa-test-counter")
value = int(read(counter) or 0) + 1 if counter > 0 else 1
data = str(value).encode()
libc.syscall(248, b"user", b"recursa-test-counter", data, len(data), -3)   # add_key
print(value)
"""


@pytest.fixture
def session_keyring() -> Iterator[str]:
    """This process in a fresh session keyring holding a secret (as under pam_keyinit)."""
    if os.uname().machine != "x86_64":
        pytest.skip("the probe uses x86_64 syscall numbers")
    if _libc.syscall(KEYCTL, 1, None) < 0:  # KEYCTL_JOIN_SESSION_KEYRING
        pytest.skip(f"no kernel keyring here (errno {ctypes.get_errno()})")
    secret = f"key-{secrets.token_hex(12)}"
    data = secret.encode()
    assert _libc.syscall(ADD_KEY, b"user", b"recursa-test-secret", data, len(data), SESSION) > 0
    yield secret
    _libc.syscall(KEYCTL, 1, None)  # leave it behind for a new, empty one


def test_the_session_keyring_is_out_of_reach(box: Sandbox, session_keyring: str) -> None:
    # Open without the defence: a plain child of this process reads the secret and counts.
    plain = [sys.executable, "-I", "-c", KEYRING_PROGRAM]
    outs = [subprocess.run(plain, capture_output=True, text=True).stdout for _ in range(2)]
    assert session_keyring in outs[0] and outs[1].split()[-1] == "2"
    _libc.syscall(KEYCTL, 1, None)  # a fresh keyring for the sandboxed part
    data = session_keyring.encode()
    _libc.syscall(ADD_KEY, b"user", b"recursa-test-secret", data, len(data), SESSION)
    # Closed: three tests with the same input expecting 1, 2, 3 cannot all pass, and the
    # secret is never read.
    tests = [
        {"input": "", "output": f"secret: None\n{i}\n", "testtype": "stdin"} for i in (1, 2, 3)
    ]
    grade = grade_code(KEYRING_PROGRAM, tests, sandbox=box, extract=False)
    assert grade.score == 0.0
    for _ in range(2):
        run = box.run_sync(KEYRING_PROGRAM)
        assert run.ok, run.message
        assert session_keyring not in run.stdout
        assert run.stdout.split() == ["secret:", "None", "1"]


# -- the filesystem view -------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path: Path) -> Iterator[Path]:
    """A world-readable benchmark file under an ordinary path (the checkout when this user
    may write there: a path no deny-list hides)."""
    repo = Path(__file__).resolve().parents[2]
    base = repo if os.access(repo, os.W_OK) else tmp_path
    folder = base / f".hostile-data-{secrets.token_hex(4)}"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    path = folder / "lcb.jsonl"
    path.write_text(json.dumps({"private_tests": f"answer-{secrets.token_hex(8)}"}) + "\n")
    os.chmod(path, 0o644)
    try:
        yield path
    finally:
        path.unlink()
        folder.rmdir()


def test_only_the_allow_list_is_visible(box: Sandbox, dataset: Path) -> None:
    token = json.loads(dataset.read_text())["private_tests"]
    repo = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen(["sh", "-c", "sleep 30", "holder", f"--api-key={token}"])
    allowed = sorted(op[1] for op in allow_list(interpreter(box.config.python)))
    program = f"""\
import os
WALK = len(os.listdir("/")) < 12  # in a namespace tier: walk the whole (small) view
found = []
for path in [{str(dataset)!r}, {str(repo / "pyproject.toml")!r}, "/etc/passwd", "/home",
             "/sys/kernel", "/run", "/var", "/srv", "/etc", "/root/.bashrc"]:
    if os.path.exists(path):
        found.append(path)
here = os.getcwd()
parent = os.path.dirname(here)
# Beside the run directory only the way to an allow-listed path may exist (a venv under /tmp,
# say, when the run directory is in /tmp too): nothing that is not on the list.
ALLOWED = {allowed!r}
for name in os.listdir(parent) if WALK else ():
    path = os.path.join(parent, name)
    if path != here and not any(a == path or a.startswith(path + "/") for a in ALLOWED):
        found.append("the run directory's parent holds " + name)
for top in ("/",) if WALK else ():
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath.startswith(("/proc", "/usr", "/dev", here)) or "site-packages" in dirpath:
            dirnames[:] = []
            continue
        for name in filenames:
            try:
                with open(os.path.join(dirpath, name), "rb") as f:
                    if {token.encode()!r} in f.read(1 << 20):
                        found.append(os.path.join(dirpath, name))
            except OSError:
                pass
for pid in os.listdir("/proc"):
    try:
        if {token.encode()!r} in open(f"/proc/{{pid}}/cmdline", "rb").read():
            found.append("cmdline of " + pid)
    except OSError:
        pass
print(found)
"""
    try:
        # Open without the defence: the process tier sees the dataset and the command line.
        if ROOT:
            naked = Sandbox(_config("process")).run_sync(program)
            assert str(dataset) in naked.stdout and "cmdline of" in naked.stdout
        run = box.run_sync(program)
    finally:
        holder.kill()
        holder.wait()
    assert run.ok, run.message + run.stderr_tail
    assert run.stdout.strip() == "[]"


PROC_SYS_PROBE = """\
import os
written = []
for path in ["/proc/sys/kernel/core_pattern", "/proc/sys/vm/overcommit_memory",
             "/proc/sysrq-trigger", "/sys/kernel/mm/transparent_hugepage/enabled"]:
    try:
        current = open(path).read() if path != "/proc/sysrq-trigger" else ""
        if path.endswith("enabled"):
            current = current.split("[")[1].split("]")[0]
        if current:
            with open(path, "w") as f:   # the value already there: harmless if it works
                f.write(current)
            written.append(path)
    except (OSError, IndexError):
        pass
print(written)
"""


def test_kernel_settings_are_read_only(box: Sandbox) -> None:
    run = box.run_sync(PROC_SYS_PROBE)
    assert run.ok, run.message
    assert run.stdout.strip() == "[]"


# -- limits for the whole run ---------------------------------------------------------------

CHILDREN_BOMB = """\
import os, time
for _ in range(6):
    if os.fork() == 0:
        block = b"x" * (150 << 20)   # within the per-process address-space limit
        time.sleep(5)
        os._exit(0)
time.sleep(5)
print("all six kept their memory")
"""


def test_a_runs_children_are_bounded_together(box: Sandbox) -> None:
    run = box.run_sync(CHILDREN_BOMB)
    assert run.status is Status.MEMORY, (run.status, run.message)
    assert "together" in run.message
    assert "all six" not in run.stdout


INODE_BOMB = """\
made = 0
try:
    for i in range(200000):
        open(f"f{i}", "w").close()
        made += 1
except OSError as exc:
    print(made, exc.errno)
"""


PTY_BOMB = """\
import os
opened = []
try:
    for _ in range(50):
        opened.append(os.openpty())
except OSError as exc:
    print(len(opened), exc.errno)
"""


def test_inodes_and_ptys_are_capped(box: Sandbox) -> None:
    run = box.run_sync(INODE_BOMB)
    made, errno = run.stdout.split()
    assert int(made) <= box.config.max_files and errno == "28"  # ENOSPC
    ptys = box.run_sync(PTY_BOMB)
    assert ptys.stdout.split()[0] == "0"


SUPERVISOR_KILLER = """\
import os, signal
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT,
            signal.SIGKILL):
    try:
        os.kill(1, sig)
    except OSError:
        pass
print("supervisor signalled")
"""


def test_the_supervisor_cannot_be_killed_from_inside(box: Sandbox) -> None:
    run = box.run_sync(SUPERVISOR_KILLER)
    assert run.status is Status.OK, run.message
    assert run.exit_code == 0 and "supervisor signalled" in run.stdout


# -- the process tier ----------------------------------------------------------------------


def test_auto_never_falls_back_to_the_process_tier(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(isolation_module, "unshare_binary", lambda: None)
    auto = Sandbox(_config("auto"))
    with pytest.raises(SandboxUnavailable, match="--isolation process"):
        run_blocking(auto.isolation())
    grade = grade_code("print(3)", [{"input": "", "output": "3"}], sandbox=auto, extract=False)
    assert grade.score == 0.0 and "--isolation process" in grade.reason
    # Asked for by name, it runs, and says once what it does not protect.
    monkeypatch.setattr("recursa.sandbox.runner._WARNED", set())
    with caplog.at_level(logging.WARNING, logger="recursa"):
        for _ in range(2):
            explicit = Sandbox(_config("process"))
            assert explicit.run_sync("print(3)").stdout.strip() == "3"
    warnings = [
        r for r in caplog.records if "does not" in r.getMessage() or "without" in r.getMessage()
    ]
    assert len(warnings) == 1
