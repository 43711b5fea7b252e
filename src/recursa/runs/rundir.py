"""A run directory: where each artefact lives, one process at a time, atomic JSON writes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from recursa.errors import RecursaError, UsageError

SETTINGS = "settings.json"
JOURNAL = "journal.sqlite"
METRICS = "metrics.jsonl"
PROBLEMS = "problems.jsonl"
SUMMARY = "summary.json"
REPORT = "report.md"
LOCK = ".lock"


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text_atomic(
        path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
    )


def sort_records(path: Path) -> None:
    """Rewrite a JSON-lines file of records in the order of their "index", holding only
    (index, offset) pairs in memory, never the records."""
    order: list[tuple[int, int]] = []
    with path.open("rb") as fh:
        offset = 0
        for line in fh:
            if line.strip():
                order.append((int(json.loads(line)["index"]), offset))
            offset += len(line)
    order.sort()
    tmp = path.with_name(path.name + ".tmp")
    with path.open("rb") as src, tmp.open("wb") as dst:
        for _, start in order:
            src.seek(start)
            dst.write(src.readline())
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise RecursaError(f"{path} line {n} is not valid JSON") from exc
    return rows


class RunDir:
    """The files of one evaluation run (see docs/EVALUATION.md)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: IO[str] | None = None

    def file(self, name: str) -> Path:
        return self.path / name

    def holds_run(self) -> bool:
        return self.file(JOURNAL).exists() or self.file(SETTINGS).exists()

    def prepare(self, resume: bool) -> None:
        """Create the directory; refuse to overwrite a run, or to resume nothing."""
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"--out {self.path} exists and is not a directory")
        if resume and not self.holds_run():
            raise UsageError(
                f"{self.path} holds no run to resume; run without --resume to start one"
            )
        if not resume and self.holds_run():
            raise UsageError(
                f"{self.path} already holds a run; add --resume to continue it, or choose "
                "another --out"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the run directory {self.path}: {exc}") from exc

    def lock(self) -> None:
        """Hold an exclusive lock while running: two processes must not share a journal."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no advisory locks
            return
        fh = self.file(LOCK).open("a", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            raise RecursaError(
                f"another recursa process is running in {self.path}; wait for it or stop it"
            ) from exc
        self._lock = fh

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def require_settings(self) -> dict[str, Any]:
        """The settings of the run here; a UsageError when this is no run directory."""
        if not self.path.is_dir():
            raise UsageError(f"{self.path} is not a directory")
        settings = self.read_settings()
        if settings is None:
            raise UsageError(f"{self.path} holds no recursa run (no settings.json)")
        return settings

    def read_settings(self) -> dict[str, Any] | None:
        path = self.file(SETTINGS)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RecursaError(f"{path} is not valid JSON") from exc
        return data if isinstance(data, dict) else None
