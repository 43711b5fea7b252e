"""Crashes: SIGKILL at random points and resume, a kill in the middle of journal writes, and
damaged journals that stop a resume with one sentence instead of silently starting over."""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from recursa import evaluate
from recursa.backends.mock import MockBackend
from recursa.config import BackendConfig
from recursa.errors import RecursaError
from recursa.runs.journal import Journal
from tests.evalkit import outputs
from tests.fault_server import sum_dataset

pytestmark = pytest.mark.reliability

PROBLEMS, N, K, T = 10, 4, 2, 3
TOTAL = PROBLEMS * N * T
RSA = ["--backend", "mock", "-n", str(N), "-k", str(K), "-t", str(T), "--seed", "7"]
SLOW = ["--mock-latency", "0.02", "--concurrency", "2"]
KILLS = 5
#: The kill points are drawn from a fixed seed, so every run kills at the same points (set
#: RECURSA_CRASH_SEED to explore others); the seed is printed so a failure can be replayed.
SEED = int(os.environ.get("RECURSA_CRASH_SEED", "20261201"))


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recursa", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(run_dir: Path) -> int:
    path = run_dir / "journal.sqlite"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])
        finally:
            db.close()
    except sqlite3.OperationalError:  # the table does not exist yet
        return 0


def session_rows(run_dir: Path) -> list[int]:
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        found = db.execute("SELECT session, COUNT(*) FROM completions GROUP BY session")
        return [n for _, n in sorted(found.fetchall())]
    finally:
        db.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sums.jsonl"
    sum_dataset(path, PROBLEMS, seed=1)
    return path


@pytest.fixture(scope="module")
def uninterrupted(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "recursa", "-q", "eval", str(data), *RSA, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_five_sigkills_at_random_points_then_resume_match_the_uninterrupted_run(
    data: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    print(f"kill points drawn with RECURSA_CRASH_SEED={SEED}")
    rng = random.Random(SEED)
    out = tmp_path / "run"
    planned = sorted(rng.sample(range(2, TOTAL - 30), KILLS))
    seen = 0
    for i, target in enumerate(planned):
        resume = ["--resume"] if i else []
        proc = start("eval", str(data), *RSA, *SLOW, "--out", str(out), *resume)
        try:
            goal = max(target, seen + 1)
            deadline = time.monotonic() + 120
            while rows(out) < goal:
                assert proc.poll() is None, f"finished before kill {i + 1}: {proc.stderr}"
                assert time.monotonic() < deadline, f"no progress to {goal} rows"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.03))  # land anywhere, in a write or between writes
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        journal = Journal(out / "journal.sqlite")  # integrity check passes after the kill
        journal.close()
        now = rows(out)
        assert seen < now < TOTAL
        assert not (out / "summary.json").exists()
        seen = now
    # The last resume runs here, so every call the model gets is counted.
    backend = MockBackend()
    result = evaluate(
        str(data),
        out=out,
        resume=True,
        n=N,
        k=K,
        t=T,
        seed=7,
        backend=backend,
        backend_config=BackendConfig(backend="mock"),
    )
    assert len(backend.calls) == TOTAL - seen  # nothing journaled was asked for again
    assert result.summary["run"]["reused_from_journal"] == seen
    per_session = session_rows(out)
    assert sum(per_session) == TOTAL and per_session[-1] == TOTAL - seen
    assert result.summary["run"]["sessions"] == KILLS + 1
    assert outputs(out) == outputs(uninterrupted)


def test_a_full_disk_stops_the_run_and_resume_completes_it(
    data: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"

    def small_disk() -> None:  # root ignores permissions; a file-size limit fails for anyone
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (120_000, 120_000))

    argv = [sys.executable, "-m", "recursa", "-q", "eval", str(data), *RSA, "--out", str(out)]
    full = subprocess.run(argv, capture_output=True, text=True, timeout=300, preexec_fn=small_disk)
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk I/O error" in lines[0] and "Traceback" not in full.stderr
    kept = rows(out)
    assert 0 < kept < TOTAL
    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert session_rows(out)[0] == kept and sum(session_rows(out)) == TOTAL
    assert outputs(out) == outputs(uninterrupted)


WRITER = textwrap.dedent(
    """
    import sys
    from recursa.backends.base import Completion, GenerationRequest
    from recursa.runs.journal import Journal

    journal = Journal(sys.argv[1])
    journal.begin_session()
    start = journal.count()
    request = GenerationRequest([{"role": "user", "content": "q"}], 8)
    print("ready", flush=True)
    for i in range(start, start + 100000):
        text = f"row {i} " + "x" * (20000 + i % 7919)
        journal.put(f"p{i}", "generate", 1, 0, request, Completion(text))
    """
)


def test_a_kill_during_journal_writes_loses_no_committed_row(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "journal.sqlite"
    seen = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.4))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        journal = Journal(path)  # integrity check on open
        try:
            count = journal.count()
            assert count > seen  # rows committed by every session survive
            db = journal._db
            texts = db.execute("SELECT problem_id, text FROM completions").fetchall()
        finally:
            journal.close()
        # Exactly rows 0..count-1, each whole: a kill never leaves half a row.
        assert sorted(int(p[1:]) for p, _ in texts) == list(range(count))
        for pid, text in texts:
            i = int(pid[1:])
            assert text == f"row {i} " + "x" * (20000 + i % 7919)
        seen = count


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def zero_header(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(b"\0" * 100 + data[100:])


def garbage_pages(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:8192] + random.Random(0).randbytes(len(data) - 8192))


def garbage_file(path: Path) -> None:
    path.write_bytes(b"this is not a database " * 400)


@pytest.fixture(scope="module")
def finished(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    evaluate(str(data), out=out, n=N, k=K, t=T, seed=7, backend="mock")
    db = sqlite3.connect(out / "journal.sqlite")  # fold the WAL in, so damage hits the rows
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return out


@pytest.mark.parametrize("damage", [truncate, zero_header, garbage_pages, garbage_file])
def test_a_damaged_journal_stops_the_resume_with_one_sentence(
    damage: object, data: Path, finished: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    assert callable(damage)
    damage(out / "journal.sqlite")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RecursaError, match="is damaged"):
        Journal(out / "journal.sqlite")
    argv = [sys.executable, "-m", "recursa", "-q", "eval", str(data), *RSA]
    proc = subprocess.run(
        [*argv, "--out", str(out), "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is damaged" in lines[0] and "Traceback" not in proc.stderr
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # nothing was started over or overwritten
