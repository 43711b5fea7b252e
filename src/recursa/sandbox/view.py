"""The program's filesystem view: an allow-list, not a deny-list.

In the namespace tiers the supervisor builds a fresh root (an empty tmpfs) and puts into it,
read-only, only what the program's interpreter needs to start and import its installation:

- the interpreter executable (and every symlink on the way to it) and its ELF loader;
- the installation's import directories: the standard library, `lib-dynload`, the
  site-packages of the installation (a virtual environment as a whole), and any `sys.path`
  entry that lies inside one of the installation's prefixes (so an editable install's
  project checkout, which lies outside, stays out);
- the directories of the shared libraries the interpreter loads (found by running it once),
  plus the platform's multiarch library directories.

Then the run's own directory (a size- and inode-limited tmpfs), a minimal `/dev` (null,
zero, full, random, urandom; no ptys), and a `/proc` of the run's pid namespace with its
kernel interfaces read-only. Nothing else exists: no dataset, no home, no checkout, no
`/etc`, `/sys`, `/tmp` or `/run`, whatever their paths or permissions.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import subprocess
from pathlib import Path

#: Run by the program's interpreter (with -I) to list what it needs.
_PROBE = r"""
import json, os, sys, sysconfig
for name in ("ctypes", "decimal", "hashlib", "sqlite3", "ssl", "zlib", "lzma", "bz2", "array",
             "_json", "math", "select", "unicodedata", "_multiprocessing", "readline"):
    try:
        __import__(name)
    except Exception:
        pass
libs = set()
with open("/proc/self/maps") as f:
    for line in f:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
            libs.add(parts[5].strip())
paths = sysconfig.get_paths()
print(json.dumps({
    "executable": sys.executable,
    "prefixes": sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}),
    "venv": sys.prefix != sys.base_prefix,
    "prefix": sys.prefix,
    "dirs": [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    + [p for p in sys.path if p],
    "libs": sorted(libs),
    "multiarch": sysconfig.get_config_var("MULTIARCH") or "",
}))
"""

#: Device nodes the program may use (all harmless; no ptys, no disks).
DEVICES = ("null", "zero", "full", "random", "urandom")
#: Read-only inside /proc: the kernel's settings and triggers (as container runtimes do).
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi")


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def elf_interpreter(path: str) -> str | None:
    """The PT_INTERP (dynamic loader) path of an ELF executable, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF":
                return None
            is64, little = head[4] == 2, head[5] == 1
            end = "<" if little else ">"
            if is64:
                phoff, phentsize, phnum = struct.unpack_from(end + "32xQ14xHH", head)
            else:
                phoff, phentsize, phnum = struct.unpack_from(end + "28xI10xHH", head)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                entry = f.read(phentsize)
                p_type = struct.unpack_from(end + "I", entry)[0]
                if p_type != 3:  # PT_INTERP
                    continue
                if is64:
                    offset, size = struct.unpack_from(end + "8xQ16xQ", entry)
                else:
                    offset, size = struct.unpack_from(end + "4xI8xI", entry)
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def _chain(path: str, ops: dict[str, list[str]], depth: int = 0) -> None:
    """Ops that make `path` resolve in the new root: every symlink on the way recreated as
    a symlink (and its target followed), then the real file or directory bound."""
    if depth > 16 or not os.path.isabs(path):
        return
    parts = Path(path).parts
    current = "/"
    for index, part in enumerate(parts[1:], start=1):
        current = os.path.join(current, part)
        if os.path.islink(current):
            target = os.readlink(current)
            ops.setdefault(current, ["link", current, target])
            resolved = os.path.normpath(os.path.join(os.path.dirname(current), target))
            rest = os.path.join(resolved, *parts[index + 1 :])
            _chain(rest, ops, depth + 1)
            return
    real = os.path.realpath(path)
    if os.path.isdir(real):
        ops.setdefault(real, ["dir", real])
    elif os.path.exists(real):
        ops.setdefault(real, ["file", real])


@functools.lru_cache(maxsize=8)
def _probe(python: str) -> dict[str, object]:
    out = subprocess.run(
        [python, "-I", "-B", "-c", _PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        check=True,
    )
    data = json.loads(out.stdout)
    assert isinstance(data, dict)
    return data


def allow_list(python: str) -> list[list[str]]:
    """What the new root holds for this interpreter, as ops for the supervisor:
    ["dir", path] / ["file", path] (bound read-only) and ["link", path, target]."""
    info = _probe(python)
    prefixes = [os.path.realpath(str(p)) for p in info["prefixes"]]  # type: ignore[attr-defined]
    wanted: list[str] = [python, str(info["executable"])]
    loader = elf_interpreter(os.path.realpath(python))
    if loader:
        wanted.append(loader)
    if info.get("venv"):
        wanted.append(str(info["prefix"]))
    for entry in info["dirs"]:  # type: ignore[attr-defined]
        real = os.path.realpath(str(entry))
        if any(_under(real, p) for p in prefixes) and real not in ("/", "/usr"):
            wanted.append(str(entry))
    lib_dirs = {os.path.dirname(str(lib)) for lib in info["libs"]}  # type: ignore[attr-defined]
    multiarch = str(info.get("multiarch") or "")
    if multiarch:
        lib_dirs |= {f"/usr/lib/{multiarch}", f"/lib/{multiarch}"}
    wanted += sorted(lib_dirs)
    ops: dict[str, list[str]] = {}
    for path in wanted:
        if os.path.exists(path):
            _chain(os.path.abspath(path), ops)
    # Bind each directory once: one already inside another bound directory is visible.
    binds = sorted((op for op in ops.values() if op[0] != "link"), key=lambda op: len(op[1]))
    kept: list[list[str]] = []
    for op in binds:
        if not any(k[0] == "dir" and _under(op[1], k[1]) for k in kept):
            kept.append(op)
    links = [op for op in ops.values() if op[0] == "link"]
    links = [op for op in links if not any(k[0] == "dir" and _under(op[1], k[1]) for k in kept)]
    return kept + sorted(links, key=lambda op: len(op[1]))
