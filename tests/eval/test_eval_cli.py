"""`recursa eval` as a process: its files, one-sentence refusals, and surviving SIGKILL/Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from recursa import evaluate
from recursa.backends.mock import MockBackend
from recursa.config import BackendConfig
from tests.helpers.evalkit import outputs

BENCH = ["rg:basic_arithmetic", "--size", "8"]
RSA = ["--backend", "mock", "-n", "4", "-k", "2", "-t", "3", "--seed", "5"]
TOTAL = 8 * 4 * 3


def recursa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recursa", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recursa", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def journal_rows(run_dir: Path) -> int:
    path = run_dir / "journal.sqlite"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])
        finally:
            db.close()
    except sqlite3.OperationalError:  # the writer has not created the table yet
        return 0


def wait_for_rows(proc: subprocess.Popen[str], run_dir: Path, rows: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = journal_rows(run_dir)
        if seen >= rows:
            return seen
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    raise AssertionError(f"the run journaled fewer than {rows} completions in 120 s")


def session_rows(run_dir: Path) -> list[int]:
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        rows = db.execute("SELECT session, COUNT(*) FROM completions GROUP BY session").fetchall()
    finally:
        db.close()
    return [n for _, n in sorted(rows)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    proc = recursa("eval", *BENCH, *RSA, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_eval_prints_a_summary_and_leaves_the_run_files(uninterrupted: Path) -> None:
    names = {p.name for p in uninterrupted.iterdir()}
    assert names >= {
        "settings.json",
        "journal.sqlite",
        "metrics.jsonl",
        "problems.jsonl",
        "summary.json",
        "report.md",
    }
    settings = json.loads((uninterrupted / "settings.json").read_text())
    assert settings["benchmark"] == "rg:basic_arithmetic"
    assert settings["eval"]["size"] == 8 and settings["eval"]["method"] == "rsa"
    assert settings["rsa"]["n"] == 4 and settings["backend"]["backend"] == "mock"
    assert settings["dataset"]["problems"] == 8
    assert journal_rows(uninterrupted) == TOTAL


def test_refusals_are_one_sentence_with_exit_code_2(uninterrupted: Path) -> None:
    again = recursa("eval", *BENCH, *RSA, "--out", str(uninterrupted))
    assert again.returncode == 2 and "already holds a run" in again.stderr
    changed = recursa("eval", *BENCH, *RSA, "-t", "4", "--out", str(uninterrupted), "--resume")
    assert changed.returncode == 2
    assert "t=3" in changed.stderr and "t=4" in changed.stderr
    for proc in (again, changed):
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_sigkill_then_resume_matches_the_uninterrupted_run(
    mock_backend: Callable[..., MockBackend], uninterrupted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    slow = ["--mock-latency", "0.05", "--concurrency", "2"]
    proc = start("eval", *BENCH, *RSA, *slow, "--out", str(out))
    try:
        wait_for_rows(proc, out, 20)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    kept = journal_rows(out)
    assert 20 <= kept < TOTAL
    assert not (out / "summary.json").exists()
    # Resume in process, so every call the backend gets is counted.
    backend = mock_backend()
    result = evaluate(
        "rg:basic_arithmetic",
        out=out,
        resume=True,
        size=8,
        n=4,
        k=2,
        t=3,
        seed=5,
        backend=backend,
        backend_config=BackendConfig(backend="mock"),
    )
    assert len(backend.calls) == TOTAL - kept  # nothing journaled was asked again
    assert result.summary["run"]["reused_from_journal"] == kept
    assert session_rows(out) == [kept, TOTAL - kept]
    assert outputs(out) == outputs(uninterrupted)


def test_ctrl_c_then_resume_matches_the_uninterrupted_run(
    uninterrupted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    slow = ["--mock-latency", "0.05", "--concurrency", "2"]
    proc = start("eval", *BENCH, *RSA, *slow, "--out", str(out))
    try:
        wait_for_rows(proc, out, 20)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    kept = journal_rows(out)
    resumed = recursa("eval", *BENCH, *RSA, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert session_rows(out) == [kept, TOTAL - kept]
    assert outputs(out) == outputs(uninterrupted)


def test_a_damaged_journal_stops_the_resume_with_one_sentence(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert recursa("eval", *BENCH, *RSA, "--out", str(out)).returncode == 0
    (out / "journal.sqlite").write_bytes(b"this is not a database" * 100)
    proc = recursa("eval", *BENCH, *RSA, "--out", str(out), "--resume")
    assert proc.returncode == 1
    assert "damaged" in proc.stderr and "Traceback" not in proc.stderr
