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
_OPTION_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}
RLIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "nproc": resource.RLIMIT_NPROC,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}

_libc = ctypes.CDLL(None, use_errno=True)


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


def _mount_points() -> list[tuple[str, int]]:
    """(mount point, per-mount flags) from /proc/self/mountinfo, outermost first."""
    points: list[tuple[str, int]] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            flags = 0
            for opt in fields[5].split(","):
                flags |= _OPTION_FLAGS.get(opt, 0)
            points.append((point, flags))
    return points


def _read_only(point: str, flags: int) -> None:
    _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _isolate_filesystem(spec: dict[str, Any]) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    workdir = spec["workdir"]
    hide = [p for p in spec["hide"] if os.path.isdir(p) and p != "/"]
    expose = [p for p in spec["expose"] if os.path.isdir(p) and any(_under(p, h) for h in hide)]
    expose_fds = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in expose]
    for point, flags in _mount_points():
        if _under(point, "/proc") or _under(point, "/sys"):
            continue
        try:
            _read_only(point, flags)
        except OSError:
            if point == "/":
                raise
    hidden: list[str] = []
    for path in sorted(hide, key=len):
        if not os.path.isdir(path) or any(_under(path, h) for h in hidden):
            continue
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        hidden.append(path)
    for path, fd in expose_fds:
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _read_only(path, MS_NOSUID | MS_NODEV)
        os.close(fd)
    os.makedirs(workdir, exist_ok=True)
    for path in hidden:
        _read_only(path, MS_NOSUID | MS_NODEV)
    uid, gid = spec.get("uid") or 0, spec.get("gid") or 0
    _mount(
        "tmpfs",
        workdir,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={spec['disk_mb']}m,mode=700,uid={uid},gid={gid}",
    )


def _drop_capabilities() -> None:
    """As (mapped) root without a uid to switch to: lose every capability for good."""
    _check(_libc.prctl(PR_SET_SECUREBITS, SECURE_BITS, 0, 0, 0), "securebits")
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1


def _start_program(spec: dict[str, Any], stdin_fd: int, error_w: int) -> None:
    """In the forked child: limits, identity, exec. Never returns."""
    try:
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
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
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
    while True:
        try:
            done, wait_status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            _write_status(status_fd, {"error": "the program vanished"})
            return 0
        if done == pid:
            break
    status = {"cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}
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
