"""Hostile and malformed input, table-driven: each case is one `recursa` process that must
end with exactly one line on stderr naming the problem, exit code 2 (the user must change the
command or the data) or 1 (a runtime failure), no traceback, and earlier results untouched.

"Not writable" for root: permissions do not stop root, so the unwritable run directory is a
path under a regular file, and the full disk is a file-size limit (RLIMIT_FSIZE) on the
process; both fail for root as for anyone.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from recursa import evaluate
from tests.helpers.fault_server import FaultServer, always, fault_server, sum_upstream
from tests.helpers.hostile_cases import CASES, KEY, MOCK, Case, Env, write_files

pytestmark = pytest.mark.reliability


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def completions(run_dir: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        return db.execute("SELECT * FROM completions ORDER BY problem_id, step, slot").fetchall()
    finally:
        db.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def unfinished_run(data: Path, out: Path, server: FaultServer) -> None:
    """A run stopped by its server after 20 completions (then the server rejects the key)."""
    server.plan = lambda fp, attempt: None if len(server.stats.delivered) < 20 else "401"
    with pytest.raises(Exception, match="API key"):
        evaluate(
            str(data),
            out=out,
            backend="openai",
            base_url=server.url,
            api_key=KEY,
            n=2,
            k=1,
            t=2,
            concurrency=1,
            max_retries=0,
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("hostile")
    write_files(base)
    # The finished run names its data by a relative path, so a case can change the data
    # behind the same name in its own working directory.
    prev = base / "prev-template"
    shutil.copy(base / "ok.jsonl", base / "data.jsonl")
    made = subprocess.run(
        [sys.executable, "-m", "recursa", "-q", "eval", "data.jsonl", "--out", str(prev), *MOCK],
        capture_output=True,
        text=True,
        cwd=base,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    with (
        fault_server(sum_upstream(), always(None)) as keyed,
        fault_server(sum_upstream(), always("huge")) as huge,
        fault_server(sum_upstream(), always("bad-utf8")) as bad_utf8,
    ):
        unfinished_run(base / "many.jsonl", base / "unfinished-template", keyed)
        with fault_server(sum_upstream(), always(None)) as doomed:
            unfinished_run(base / "many.jsonl", base / "gone-template", doomed)
        yield Env(
            base,
            base,
            prev,
            base / "unfinished-template",
            base / "gone-template",
            keyed.url,
            huge.url,
            bad_utf8.url,
            closed_port_url(),
        )


@pytest.fixture
def case_env(env: Env, tmp_path: Path) -> Env:
    """The module's files, with fresh copies of the runs a case may touch."""
    fresh = Env(
        env.dir,
        tmp_path,
        tmp_path / "prev",
        tmp_path / "unfinished",
        tmp_path / "gone",
        env.key_server,
        env.huge_server,
        env.utf8_server,
        closed_port_url(),
    )
    shutil.copytree(env.prev, fresh.prev)
    shutil.copy(env.dir / "data.jsonl", tmp_path / "data.jsonl")
    shutil.copytree(env.unfinished, fresh.unfinished)
    shutil.copytree(env.gone, fresh.gone)
    return fresh


def limit_file_size(size: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails (EFBIG) instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gets_one_sentence_and_an_exit_code(case: Case, case_env: Env) -> None:
    e = case_env
    if case.prepare is not None:
        case.prepare(e)
    before = {run: snapshot(run) for run in (e.prev, e.unfinished, e.gone)}
    journaled = {run: completions(run) for run in (e.unfinished, e.gone)}
    argv = case.argv(e)
    proc = subprocess.run(
        [sys.executable, "-m", "recursa", "-q", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=e.work,
        env={**os.environ, "OPENAI_API_KEY": KEY},
        preexec_fn=limit_file_size(case.fsize) if case.fsize else None,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == case.code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        ("recursa: error: ", "recursa eval: error: ", "recursa solve: error: ")
    )
    assert case.says in lines[0]
    assert KEY not in proc.stderr + proc.stdout
    # Earlier results are intact: the finished run is byte for byte the same, and the
    # unfinished runs keep every journaled completion.
    assert snapshot(e.prev) == before[e.prev]
    for run, rows_before in journaled.items():
        assert completions(run) == rows_before
    if case.code == 2 and "--resume" not in argv:
        new = e.work / "new-run"  # a refused command starts no run
        assert not (new / "settings.json").exists() and not (new / "journal.sqlite").exists()
