"""The one run-session helper: a locked run directory and a journal session in it.

`recursa eval` and `recursa rl build-data` both work in a run directory that a second process
must not share (`run_directory`: prepared for a new run or a resume, locked, unlocked at
the end) and journal every completion in one session of its journal (`journal_session`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recursa.runs.journal import Journal
from recursa.runs.rundir import RunDir


@contextmanager
def run_directory(out: str | Path, resume: bool) -> Iterator[RunDir]:
    """The run directory, prepared (new, or resumable when `resume`) and locked meanwhile."""
    run_dir = RunDir(out)
    run_dir.prepare(resume)
    run_dir.lock()
    try:
        yield run_dir
    finally:
        run_dir.unlock()


@contextmanager
def journal_session(path: Path, settings: dict[str, Any] | None = None) -> Iterator[Journal]:
    """The journal at `path`, in a new session; `settings` are recorded in it the first time
    (what a later resume is checked against)."""
    journal = Journal(path)
    try:
        if settings is not None and journal.get_meta("settings") is None:
            journal.set_meta("settings", json.dumps(settings, sort_keys=True))
        journal.begin_session()
        yield journal
    finally:
        journal.end_session()
        journal.close()
