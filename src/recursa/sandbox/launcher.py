"""The sandbox's supervisor: a standalone script, run as `python -I -S -B launcher.py SPEC`.

It is started by the sandbox (inside fresh namespaces when the machine allows) and must not
import recursa: it runs before any isolation exists. It
1. reads the run's spec (a JSON file in the real working directory);
2. with `mounts`, makes the filesystem read-only, hides private directories behind empty
   read-only tmpfs mounts (re-exposing the interpreter's installation read-only) and puts a
   size-limited tmpfs on the working directory, into which it copies the run's files;
3. forks the program: the child takes stdin from the input file, applies the resource
   limits, drops to the run's uid (or, as mapped root in a user namespace, drops every
   capability), forbids privilege gain and execs the interpreter with a scrubbed environment;
4. waits (reaping orphans, as the init of a pid namespace must; outside one, as a child
   subreaper, it kills what the program left behind), then writes its report (exit code or
   signal, CPU seconds, peak memory) as JSON to the pipe `status_fd`, which the program
   never holds.
When it is pid 1 of a pid namespace, its exit makes the kernel kill every process left there.
A failure before the program starts is reported as {"error": ...}.
"""

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import sys
from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
# SECBIT_NOROOT, NOROOT_LOCKED, NO_SETUID_FIXUP(+_LOCKED), KEEP_CAPS_LOCKED,
# NO_CAP_AMBIENT_RAISE(+_LOCKED): uid 0 gains no capabilities at exec, for good.
SECURE_BITS = 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x40 | 0x80
RLIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "nproc": resource.RLIMIT_NPROC,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_MACHINE = os.uname().machine
#: pivot_root, keyctl, add_key, request_key numbers and the seccomp audit arch, per machine.
_SYSCALLS = {
    "x86_64": (155, (248, 249, 250), 0xC000003E),
    "aarch64": (41, (217, 218, 219), 0xC00000B7),
}
SYS_PIVOT_ROOT, KEY_SYSCALLS, AUDIT_ARCH = _SYSCALLS.get(_MACHINE, (155, (), 0))


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


_STATVFS_FLAGS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}
MNT_DETACH = 2


def _mount_flags(path: str) -> int:
    """The per-mount flags of the mount holding `path` (a read-only remount of a bind must
    keep them: in a user namespace they are locked)."""
    found = os.statvfs(path).f_flag
    return sum(ms for st, ms in _STATVFS_FLAGS.items() if found & st)


def _bind_read_only(source: str, target: str) -> None:
    flags = _mount_flags(source)
    _mount(source, target, None, MS_BIND)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


def _place(root: str, path: str, is_dir: bool) -> str:
    target = root + path
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    return target


def _build_root(spec: dict[str, Any], root: str) -> None:
    """The allow-list view under `root`: the interpreter's installation read-only, a
    minimal /dev, /proc with its kernel interfaces read-only, and the run's own tmpfs."""
    for op in spec["view"]:
        if op[0] == "link":
            os.makedirs(os.path.dirname(root + op[1]), exist_ok=True)
            if not os.path.lexists(root + op[1]):
                os.symlink(op[2], root + op[1])
        elif os.path.exists(op[1]):
            _bind_read_only(op[1], _place(root, op[1], op[0] == "dir"))
    dev = _place(root, "/dev", True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=755")
    for name in spec["devices"]:
        if os.path.exists(f"/dev/{name}"):
            _bind_read_only(f"/dev/{name}", _place(root, f"/dev/{name}", False))
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"{dev}/{name}")
    os.symlink("/proc/self/fd/1", f"{dev}/stdout")
    os.symlink("/proc/self/fd/2", f"{dev}/stderr")
    _read_only(dev, MS_NOSUID | MS_NOEXEC)
    proc = _place(root, "/proc", True)
    _mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in spec["proc_read_only"]:
        path = f"{proc}/{name}"
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _read_only(path, MS_NOSUID | MS_NODEV | MS_NOEXEC)
    workdir = _place(root, spec["workdir"], True)
    uid, gid = spec.get("uid") or 0, spec.get("gid") or 0
    _mount(
        "tmpfs",
        workdir,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={spec['disk_mb']}m,nr_inodes={spec['inodes']},mode=700,uid={uid},gid={gid}",
    )


def _read_only(point: str, flags: int) -> None:
    _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


def _isolate_filesystem(spec: dict[str, Any]) -> None:
    """Pivot into a fresh root that holds only the allow-list (see sandbox/view.py)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = os.path.join(spec["realdir"], "root")
    os.mkdir(root, 0o755)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=755")
    _build_root(spec, root)
    os.chdir(root)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    _read_only("/", MS_NOSUID | MS_NODEV)


def _drop_capabilities() -> None:
    """As (mapped) root without a uid to switch to: lose every capability for good."""
    _check(_libc.prctl(PR_SET_SECUREBITS, SECURE_BITS, 0, 0, 0), "securebits")
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1


KEYCTL_JOIN_SESSION_KEYRING = 1
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM, ENOSYS = 1, 38


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp_program() -> list[tuple[int, int, int, int]]:
    """BPF: a foreign syscall ABI (32-bit, x32) gets ENOSYS for everything; keyctl, add_key
    and request_key get EPERM; everything else is allowed."""
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    errno_nosys, errno_perm = SECCOMP_RET_ERRNO | ENOSYS, SECCOMP_RET_ERRNO | EPERM
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, AUDIT_ARCH), (ret, 0, 0, errno_nosys), (ld, 0, 0, 0)]
    if _MACHINE == "x86_64":
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, errno_nosys)]
    for number in KEY_SYSCALLS:
        prog += [(jeq, 0, 1, number), (ret, 0, 0, errno_perm)]
    return [*prog, (ret, 0, 0, SECCOMP_RET_ALLOW)]


def _install_seccomp() -> bool:
    """Block the kernel keyring syscalls; False where no filter can be installed."""
    if not KEY_SYSCALLS:
        return False
    prog = _seccomp_program()
    filters = (_SockFilter * len(prog))(*[_SockFilter(*op) for op in prog])
    fprog = _SockFprog(len(prog), filters)
    return _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0


def _fresh_keyring() -> None:
    """Join a new, empty session keyring: the caller's session keys are out of reach (and
    nothing a program stores there survives its run)."""
    if KEY_SYSCALLS:
        _libc.syscall(KEY_SYSCALLS[2], KEYCTL_JOIN_SESSION_KEYRING, None)


#: Signals the supervisor ignores, so nothing inside its namespace can stop it (SIGKILL
#: and SIGSTOP never reach the init of a pid namespace from inside).
_IGNORED = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD)]


def _start_program(spec: dict[str, Any], stdin_fd: int, error_w: int) -> None:
    """In the forked child: limits, identity, exec. Never returns."""
    try:
        for sig in _IGNORED:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)
        os.dup2(stdin_fd, 0)
        for name, (soft, hard) in spec["rlimits"].items():
            resource.setrlimit(RLIMITS[name], (soft, hard))
        os.chdir(spec["workdir"])
        os.umask(0o077)
        if spec.get("uid") is not None:
            os.setgroups([])
            os.setgid(spec["gid"])
            os.setuid(spec["uid"])
        elif spec.get("drop_caps"):
            _drop_capabilities()
        _fresh_keyring()
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        if spec.get("seccomp") and not _install_seccomp():
            raise OSError(ctypes.get_errno(), "cannot install the seccomp filter")
        os.execve(spec["argv"][0], spec["argv"], spec["env"])
    except BaseException as exc:
        os.write(error_w, f"{type(exc).__name__}: {exc}".encode())
    os._exit(127)


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (orphans of the program are re-parented to us)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _kill_descendants() -> None:
    """Outside a pid namespace: kill whatever the program left behind. As a child subreaper
    we inherit every orphan, even one that double-forked into a new session."""
    me = os.getpid()
    for _ in range(1000):
        kids = _children(me)
        if not kids:
            return
        for kid in kids:
            with contextlib.suppress(OSError):
                os.kill(kid, 9)
        for kid in kids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(kid, 0)


def _run_memory_kb() -> int:
    """Private resident memory (resident minus file-backed shared pages) of every process
    of the run: all of this pid namespace but us, or outside one, our descendants."""
    me = os.getpid()
    inside = me == 1
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me or inside:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            parents[int(entry)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    if inside:
        pids = [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != me]
    else:
        pids, frontier = [], [me]
        while frontier:
            parent = frontier.pop()
            kids = [p for p, pp in parents.items() if pp == parent]
            pids += kids
            frontier += kids
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                fields = f.read().split()
            total += (int(fields[1]) - int(fields[2])) * page_kb
        except (OSError, ValueError, IndexError):
            continue
    return total


def _kill_run() -> None:
    if os.getpid() == 1:
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)  # every process in the namespace but init
    else:
        _kill_descendants()


MEMORY_POLL_S = 0.05


def _wait(pid: int, limit_kb: int | None) -> tuple[int, Any, int] | None:
    """Wait for the program, reaping orphans; every MEMORY_POLL_S check the run's total
    memory and kill the whole run past `limit_kb`. (wait status, rusage, the total that
    was over the limit or 0), or None if the program vanished."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    over = 0
    while True:
        try:
            done, wait_status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if done == pid:
            return wait_status, usage, over
        if done:
            continue
        if limit_kb and not over:
            used = _run_memory_kb()
            if used > limit_kb:
                over = used
                _kill_run()
                continue
        select.select([wake_r], [], [], MEMORY_POLL_S)
        with contextlib.suppress(BlockingIOError):
            os.read(wake_r, 4096)


def _write_status(status_fd: int, status: dict[str, Any]) -> None:
    os.write(status_fd, json.dumps(status).encode())
    os.close(status_fd)


def main() -> int:
    spec_path = sys.argv[1]
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    status_fd = spec["status_fd"]
    os.set_inheritable(status_fd, False)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for sig in _IGNORED:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_IGN)
    try:
        stdin_fd = os.open(os.path.join(spec["realdir"], spec["stdin"]), os.O_RDONLY)
        files: dict[str, bytes] = {}
        for name in spec["files"]:
            with open(os.path.join(spec["realdir"], name), "rb") as f:
                files[name] = f.read()
        if spec["mounts"]:
            _isolate_filesystem(spec)
            for name, data in files.items():
                path = os.path.join(spec["workdir"], name)
                with open(path, "wb") as f:
                    f.write(data)
                os.chmod(path, 0o644)
        error_r, error_w = os.pipe()
        pid = os.fork()
    except BaseException as exc:
        _write_status(status_fd, {"error": f"{type(exc).__name__}: {exc}"})
        return 0
    if pid == 0:
        os.close(error_r)
        _start_program(spec, stdin_fd, error_w)
    os.close(error_w)
    os.close(stdin_fd)
    failure = b""
    while chunk := os.read(error_r, 4096):
        failure += chunk
    if failure:
        os.waitpid(pid, 0)
        _write_status(status_fd, {"error": "cannot start the program: " + failure.decode()})
        return 0
    ended = _wait(pid, spec.get("total_memory_kb"))
    if ended is None:
        _write_status(status_fd, {"error": "the program vanished"})
        return 0
    wait_status, usage, over_memory = ended
    status: dict[str, Any] = {"cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}
    if over_memory:
        status["over_memory_kb"] = over_memory
    if os.WIFSIGNALED(wait_status):
        status["signal"] = os.WTERMSIG(wait_status)
    else:
        status["exit"] = os.WEXITSTATUS(wait_status)
    if os.getpid() != 1:
        _kill_descendants()
    _write_status(status_fd, status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
