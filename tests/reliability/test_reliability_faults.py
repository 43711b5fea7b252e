"""Faults from the model server: every transient fault is retried, a run through 30% faulted
requests ends exactly like a fault-free one, and a spent retry budget stops the run with one
sentence that `--resume` later completes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recursa import BackendError, evaluate, solve
from tests.helpers.evalkit import outputs, read_jsonl
from tests.helpers.fault_server import (
    RETRYABLE,
    FaultServer,
    always,
    fault_server,
    mixed_plan,
    sum_dataset,
    sum_upstream,
)

pytestmark = pytest.mark.reliability

KEY = "sk-fault-test-0123456789"
PROBLEMS = 20
N, K, T = 4, 2, 3
GENERATIONS = PROBLEMS * N * T  # 240
SETTINGS: dict[str, Any] = {
    "n": N,
    "k": K,
    "t": T,
    "seed": 3,
    "max_tokens": 64,
    "model": "scripted",
    "concurrency": 8,
    # Long enough that a genuine answer on a loaded 2-core machine is not taken for a hang
    # (that would add a retry the tests do not expect), short enough for the hang faults.
    "timeout": 5.0,
    "retry_base_delay": 0.01,
    "retry_max_delay": 0.5,  # a Retry-After is honoured up to 4 x this
}
#: For runs without hang faults: no answer is ever slow enough to be retried as a timeout.
NO_HANG_TIMEOUT = 60.0
FLAGS = [
    *("-n", str(N), "-k", str(K), "-t", str(T), "--seed", "3", "--max-tokens", "64"),
    *("--model", "scripted", "--concurrency", "8", "--timeout", "5"),
    *("--retry-base-delay", "0.01", "--retry-max-delay", "0.5"),
]


def run_eval(server: FaultServer, data: Path, out: Path, **extra: Any) -> dict[str, Any]:
    result = evaluate(
        str(data),
        out=out,
        backend="openai",
        base_url=server.url,
        api_key=KEY,
        **{**SETTINGS, **extra},
    )
    return result.summary


def journal(run_dir: Path) -> dict[tuple[str, int, int], tuple[str, int, int]]:
    """(problem, step, slot) -> (text, prompt tokens, completion tokens), checking that no
    key appears twice."""
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        rows = db.execute(
            "SELECT problem_id, step, slot, text, prompt_tokens, completion_tokens "
            "FROM completions WHERE phase = 'generate'"
        ).fetchall()
    finally:
        db.close()
    out = {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}
    assert len(out) == len(rows)
    return out


def session_rows(run_dir: Path) -> list[int]:
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        rows = db.execute("SELECT session, COUNT(*) FROM completions GROUP BY session").fetchall()
    finally:
        db.close()
    return [n for _, n in sorted(rows)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sums.jsonl"
    sum_dataset(path, PROBLEMS)
    return path


@pytest.fixture(scope="module")
def clean(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fault-free run everything is compared with."""
    out = tmp_path_factory.mktemp("clean") / "run"
    with fault_server(sum_upstream(), always(None)) as server:
        summary = run_eval(server, data, out, timeout=NO_HANG_TIMEOUT)
    assert summary["run"]["retries_this_session"] == 0
    assert len(server.stats.delivered) == GENERATIONS
    return out


def test_a_run_through_30_percent_faulted_requests_matches_the_fault_free_run(
    data: Path, clean: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with fault_server(sum_upstream(), mixed_plan(0.3)) as server:
        summary = run_eval(server, data, out)
    stats = server.stats
    faulted = {fp for fp, _, fault in stats.timeline if fault is not None}
    assert 0.25 <= len(faulted) / GENERATIONS <= 0.35  # 30% of the requests were faulted
    assert set(stats.faults) == set(RETRYABLE)  # every kind of transient fault occurred
    # Every generation was answered exactly once and is in the journal exactly once.
    assert len(stats.delivered) == len(set(stats.delivered)) == GENERATIONS
    assert journal(out) == journal(clean)
    assert summary["run"]["journaled"] == GENERATIONS
    assert summary["run"]["retries_this_session"] == sum(stats.faults.values())
    assert outputs(out) == outputs(clean)
    # Retry-After: 1 was honoured: the next attempt came at least a second later.
    after_429 = [(fp, t) for fp, t, fault in stats.timeline if fault == "429-retry-after"]
    assert after_429
    for fp, t in after_429:
        later = [u for f, u, _ in stats.timeline if f == fp and u > t]
        assert later and min(later) - t >= 0.9


@pytest.mark.parametrize("kind", RETRYABLE)
def test_each_transient_fault_is_retried(kind: str) -> None:
    with fault_server(sum_upstream(), lambda fp, attempt: kind if attempt == 0 else None) as s:
        result = solve(
            "What is 20 + 22?",
            backend="openai",
            base_url=s.url,
            task="math",
            n=1,
            k=1,
            t=1,
            timeout=1.0 if kind == "hang" else NO_HANG_TIMEOUT,
            retry_base_delay=0.0,
        )
    assert result.usage["retries"] == 1
    assert s.stats.faults[kind] == 1 and len(s.stats.delivered) == 1
    assert result.answer is not None


@pytest.mark.parametrize("kind", RETRYABLE)
def test_a_fault_that_persists_ends_with_one_sentence_naming_it(kind: str) -> None:
    messages = {
        "429": "HTTP 429",
        "429-retry-after": "HTTP 429",
        "500": "HTTP 500",
        "502": "HTTP 502",
        "503": "HTTP 503",
        "reset": "connection to http://127.0.0.1:",
        "hang": "timed out",
        "malformed-json": "malformed response",
        "bad-utf8": "malformed response",
        "no-choices": "no choices",
    }
    with (
        fault_server(sum_upstream(), always(kind), retry_after="0") as s,
        pytest.raises(BackendError) as info,
    ):
        solve(
            "What is 1 + 2?",
            backend="openai",
            base_url=s.url,
            n=1,
            k=1,
            t=1,
            timeout=0.5 if kind == "hang" else NO_HANG_TIMEOUT,
            max_retries=1,
            retry_base_delay=0.0,
        )
    message = str(info.value)
    assert s.url in message and "after 2 attempts" in message and messages[kind] in message
    assert "\n" not in message


def test_usage_missing_is_estimated_and_changes_no_accuracy(
    data: Path, clean: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with fault_server(sum_upstream(), always("no-usage")) as server:
        summary = run_eval(server, data, out, timeout=NO_HANG_TIMEOUT)
    assert summary["run"]["retries_this_session"] == 0  # accepted, not retried
    rows, reference = journal(out), journal(clean)
    assert rows.keys() == reference.keys()
    for key, (text, prompt_tokens, completion_tokens) in rows.items():
        assert text == reference[key][0]
        assert completion_tokens == len(text) // 3 + 1  # about three characters per token
        assert prompt_tokens > 0
    accuracy = ("mean_acc", "majority_acc", "pass_at_n", "final_acc")
    for mine, theirs in zip(
        read_jsonl(out / "metrics.jsonl"), read_jsonl(clean / "metrics.jsonl"), strict=True
    ):
        assert {k: mine.get(k) for k in accuracy} == {k: theirs.get(k) for k in accuracy}
        assert mine["completion_tokens"] != theirs["completion_tokens"]


def test_empty_completions_are_candidates_without_an_answer(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with fault_server(sum_upstream(), always("empty")) as server:
        summary = run_eval(server, data, out, limit=5, timeout=NO_HANG_TIMEOUT)
    assert summary["run"]["retries_this_session"] == 0
    assert sum(server.stats.attempts.values()) == 5 * N * T  # nothing asked twice
    assert {v[0] for v in journal(out).values()} == {""}
    for record in read_jsonl(out / "problems.jsonl"):
        for step in record["steps"]:
            assert step["answers"] == [None] * N
            assert step["reasons"] == ["no complete \\boxed{...} answer in the completion"] * N
    assert summary["metrics"]["mean_acc"] == 0.0


def test_invalid_unicode_in_a_completion_is_replaced_not_fatal(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with fault_server(sum_upstream(), always("surrogates")) as server:
        summary = run_eval(server, data, out, limit=2, timeout=NO_HANG_TIMEOUT)
    assert summary["run"]["retries_this_session"] == 0
    texts = [v[0] for v in journal(out).values()]
    assert len(texts) == 2 * N * T
    assert all(t.startswith("\ufffd broken \ufffd ") for t in texts)
    for path in out.iterdir():  # every file of the run is valid UTF-8
        if path.suffix in (".json", ".jsonl", ".md"):
            path.read_text(encoding="utf-8")
    assert summary["metrics"]["mean_acc"] > 0  # the answers after the bad code points count


def recursa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recursa", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_spent_retry_budget_stops_the_run_and_resume_completes_it(
    data: Path, clean: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    down_after = 100
    state = {"up": False}

    def plan(fp: str, attempt: int) -> str | None:
        if state["up"] or len(server.stats.delivered) < down_after:
            return None
        return "503"

    with fault_server(sum_upstream(), plan) as server:
        args = ["eval", str(data), "--out", str(out), "--backend", "openai"]
        args += ["--base-url", server.url, *FLAGS, "--max-retries", "2"]
        first = recursa(*args)
        assert first.returncode == 1, first.stderr
        lines = first.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in first.stderr
        assert lines[0].startswith("recursa: error: the server at " + server.url)
        assert "kept failing after 3 attempts" in lines[0] and "HTTP 503" in lines[0]
        kept = len(journal(out))
        assert down_after <= kept < GENERATIONS
        assert not (out / "summary.json").exists()

        state["up"] = True
        second = recursa(*args, "--resume")
        assert second.returncode == 0, second.stderr
    assert session_rows(out) == [kept, GENERATIONS - kept]
    assert journal(out) == journal(clean)
    assert outputs(out) == outputs(clean)
