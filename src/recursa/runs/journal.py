"""The journal: every completion of a run, durable in SQLite the moment it arrives.

One row per (problem, phase, step, slot). Phase "generate" holds the RSA population's
completions (the engine's `CompletionStore`); phase "verify" holds self-verification
judgements, so a resumed run never asks the model again for anything it already answered.
Each row is its own transaction in WAL mode: a process killed at any point leaves a journal
holding every completion that had arrived (`synchronous=NORMAL`: safe against process crashes;
a power cut may lose the last few rows, which a resumed run simply requests again).
Requests hold no API key, and the journal stores no key: only a hash of the request messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from recursa.backends.base import Completion, GenerationRequest
from recursa.errors import RecursaError

SCHEMA_VERSION = "1"
GENERATE = "generate"
VERIFY = "verify"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, started REAL NOT NULL, ended REAL
);
CREATE TABLE IF NOT EXISTS completions (
    problem_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    step INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    request_key TEXT NOT NULL,
    request_seed INTEGER,
    request_hash TEXT NOT NULL,
    max_tokens INTEGER NOT NULL,
    temperature REAL NOT NULL,
    session INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (problem_id, phase, step, slot)
) WITHOUT ROWID;
"""


def request_hash(request: GenerationRequest) -> str:
    """A digest of what was asked (messages and sampling), for auditing a journal."""
    body = json.dumps(
        [request.messages, request.max_tokens, request.temperature, request.top_p, request.seed],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def _one_line(text: str, limit: int = 160) -> str:
    """SQLite's (possibly multi-line) report as one short clause."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class Journal:
    """A run's SQLite journal. Opening checks integrity: a damaged file is an error, never a
    silent restart."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        existed = self.path.is_file() and self.path.stat().st_size > 0
        self.session: int | None = None
        #: Completions requested from the model in this session, and their completion tokens.
        self.requested = 0
        self.requested_tokens = 0
        #: Completions found in the journal instead of asked for.
        self.reused = 0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc
        try:
            if existed:
                self._check_integrity()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            version = self.get_meta("schema")
            if version is None:
                self.set_meta("schema", SCHEMA_VERSION)
            elif version != SCHEMA_VERSION:
                raise RecursaError(
                    f"the journal {self.path} has schema version {version}; this recursa "
                    f"reads version {SCHEMA_VERSION}"
                )
        except sqlite3.Error as exc:
            self._db.close()
            raise self._failure(exc) from exc
        except RecursaError:
            self._db.close()
            raise

    def _damaged(self, detail: str) -> RecursaError:
        return RecursaError(
            f"the journal {self.path} is damaged ({detail}); move it aside to start the run "
            "again, or restore it from a copy"
        )

    def _failure(self, exc: sqlite3.Error) -> RecursaError:
        """A damaged file (not a database, corrupt pages) is named as such; anything else
        (a directory that cannot be written, a full disk, a lock) is a plain failure."""
        name = str(getattr(exc, "sqlite_errorname", ""))
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or (
            not name and not isinstance(exc, sqlite3.OperationalError)
        ):
            return self._damaged(_one_line(str(exc)))
        return RecursaError(f"cannot use the journal {self.path}: {_one_line(str(exc))}")

    def _sql(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        """One statement; an SQLite failure (a full disk, an I/O error) is a RecursaError."""
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc

    def _check_integrity(self) -> None:
        rows = self._db.execute("PRAGMA integrity_check(3)").fetchall()
        if not rows or rows[0][0] != "ok":
            detail = "; ".join(_one_line(str(r[0])) for r in rows[:3]) or "no answer"
            raise self._damaged(f"integrity check: {detail}")

    # -- metadata and sessions ----------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._sql("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._sql("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def begin_session(self) -> int:
        """Start a session (one process's work on the run); returns its number."""
        cur = self._sql("INSERT INTO sessions (started) VALUES (?)", (time.time(),))
        self.session = int(cur.lastrowid or 0)
        return self.session

    def end_session(self) -> None:
        """Record the session's end; best effort (a session without an end counts up to its
        last completion), so a failing disk never hides the error that stopped the run."""
        if self.session is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute(
                    "UPDATE sessions SET ended = ? WHERE id = ?", (time.time(), self.session)
                )

    def wall_seconds(self) -> float:
        """Working time over all sessions; a session that was killed counts up to its last
        journaled completion."""
        total = 0.0
        rows = self._sql(
            "SELECT s.started, s.ended, (SELECT MAX(created) FROM completions c "
            "WHERE c.session = s.id) FROM sessions s"
        ).fetchall()
        for started, ended, last in rows:
            end = ended if ended is not None else (last if last is not None else started)
            total += max(0.0, float(end) - float(started))
        return total

    def sessions(self) -> int:
        return int(self._sql("SELECT COUNT(*) FROM sessions").fetchone()[0])

    # -- completions --------------------------------------------------------------------
    def count(self, phase: str | None = None, session: int | None = None) -> int:
        """Journaled completions, optionally of one phase and/or one session."""
        sql, args = "SELECT COUNT(*) FROM completions WHERE 1 = 1", list[object]()
        if phase is not None:
            sql, args = sql + " AND phase = ?", [*args, phase]
        if session is not None:
            sql, args = sql + " AND session = ?", [*args, session]
        return int(self._sql(sql, args).fetchone()[0])

    def get(self, problem_id: str, phase: str, step: int, slot: int) -> Completion | None:
        row = self._sql(
            "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM completions "
            "WHERE problem_id = ? AND phase = ? AND step = ? AND slot = ?",
            (problem_id, phase, step, slot),
        ).fetchone()
        if row is None:
            return None
        self.reused += 1
        return Completion(
            text=row[0], finish_reason=row[1], prompt_tokens=row[2], completion_tokens=row[3]
        )

    def put(
        self,
        problem_id: str,
        phase: str,
        step: int,
        slot: int,
        request: GenerationRequest,
        completion: Completion,
    ) -> None:
        """Commit one completion now (its own transaction)."""
        try:
            self._db.execute(
                "INSERT INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    problem_id,
                    phase,
                    step,
                    slot,
                    completion.text,
                    completion.finish_reason,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    request.key,
                    request.seed,
                    request_hash(request),
                    request.max_tokens,
                    request.temperature,
                    self.session or 0,
                    time.time(),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise RecursaError(
                f"the journal {self.path} already holds {phase} step {step} slot {slot} of "
                f"problem {problem_id!r}: is another process writing to this run directory?"
            ) from exc
        except sqlite3.Error as exc:  # a full disk, an I/O error: the row is not stored
            raise self._failure(exc) from exc
        self.requested += 1
        self.requested_tokens += completion.completion_tokens

    # The engine's CompletionStore protocol (phase "generate").
    def lookup(self, problem_id: str, step: int, slot: int) -> Completion | None:
        return self.get(problem_id, GENERATE, step, slot)

    def record(
        self,
        problem_id: str,
        step: int,
        slot: int,
        request: GenerationRequest,
        completion: Completion,
    ) -> None:
        self.put(problem_id, GENERATE, step, slot, request, completion)

    def view(self, phase: str) -> JournalView:
        """A CompletionStore over another phase (self-verification judgements)."""
        return JournalView(self, phase)

    def close(self) -> None:
        self._db.close()


class JournalView:
    """The CompletionStore protocol bound to one phase of a journal."""

    def __init__(self, journal: Journal, phase: str) -> None:
        self.journal = journal
        self.phase = phase

    def lookup(self, problem_id: str, step: int, slot: int) -> Completion | None:
        return self.journal.get(problem_id, self.phase, step, slot)

    def record(
        self,
        problem_id: str,
        step: int,
        slot: int,
        request: GenerationRequest,
        completion: Completion,
    ) -> None:
        self.journal.put(problem_id, self.phase, step, slot, request, completion)


@dataclass(frozen=True)
class JournalRow:
    """One journaled completion with what the request was (for rebuilding its prompt)."""

    problem_id: str
    phase: str
    step: int
    slot: int
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    request_seed: int | None
    request_hash: str
    max_tokens: int
    temperature: float


class JournalReader:
    """Read-only access to a journal, also while `recursa eval` is writing it (in WAL mode a
    reader never blocks the writer and sees every committed row). No integrity check and no
    writes: the run's own process owns the file."""

    _COLUMNS = (
        "problem_id, phase, step, slot, text, finish_reason, prompt_tokens, "
        "completion_tokens, request_seed, request_hash, max_tokens, temperature"
    )

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RecursaError(f"there is no journal at {self.path}")
        uri = self.path.resolve().as_uri()
        #: True while the file has no tables yet (a run that is just starting).
        self.empty = False
        try:
            self._db = sqlite3.connect(f"{uri}?mode=ro", uri=True)
            self._probe()
        except sqlite3.Error:
            # A read-only directory (no -shm can be made): read the file as it stands.
            try:
                self._db = sqlite3.connect(f"{uri}?immutable=1", uri=True)
                self._probe()
            except sqlite3.Error as exc:
                raise RecursaError(
                    f"cannot read the journal {self.path}: {_one_line(str(exc))}"
                ) from exc

    def _probe(self) -> None:
        found = self._db.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'completions'"
        ).fetchone()
        self.empty = not found[0]

    def rows(self, problem_id: str | None = None) -> list[JournalRow]:
        """Every completion (of one problem when given), by problem, phase, step and slot."""
        if self.empty:
            return []
        sql = f"SELECT {self._COLUMNS} FROM completions"
        args: tuple[object, ...] = ()
        if problem_id is not None:
            sql, args = sql + " WHERE problem_id = ?", (problem_id,)
        try:
            found = self._db.execute(sql + " ORDER BY problem_id, phase, step, slot", args)
            return [JournalRow(*row) for row in found.fetchall()]
        except sqlite3.Error as exc:
            raise RecursaError(
                f"cannot read the journal {self.path}: {_one_line(str(exc))}"
            ) from exc

    def problem_ids(self) -> list[str]:
        """The problems that have at least one completion."""
        if self.empty:
            return []
        found = self._db.execute("SELECT DISTINCT problem_id FROM completions")
        return [str(r[0]) for r in found.fetchall()]

    def close(self) -> None:
        self._db.close()
