"""`recursa eval` and `recursa grade` on a 3-problem local LiveCodeBench file: RSA with a
scripted code-writing mock, metrics per step from sandboxed grading, the date window, and
grading completions made elsewhere."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psutil
import pytest

from recursa import evaluate, evaluate_async
from recursa.backends.mock import MockBackend
from recursa.cli import main
from tests.evalkit import read_jsonl
from tests.lcb_rows import (
    FUNCTIONAL_CORRECT,
    STDIN_CORRECT,
    STDIN_WRONG,
    fenced,
    functional_row,
    stdin_row,
)
from tests.test_code_rsa import script

SANDBOX = ["--test-timeout", "5", "--memory-mb", "256", "--max-parallel-tests", "2"]


@pytest.fixture
def lcb3(tmp_path: Path) -> Path:
    rows = [
        stdin_row("p1", "2025-02-03T00:00:00"),
        functional_row("p2", "2025-03-04T00:00:00"),
        stdin_row("p3", "2025-04-05T00:00:00"),
    ]
    path = tmp_path / "lcb3.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_rsa_on_a_local_lcb_file(lcb3: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = evaluate(
        str(lcb3),
        out=run,
        backend=MockBackend(script=script),
        n=4,
        k=3,
        t=3,
        seed=1,
        sandbox={"test_timeout": 5, "memory_mb": 256, "max_parallel_tests": 2},
    )
    lines = read_jsonl(run / "metrics.jsonl")
    records = read_jsonl(run / "problems.jsonl")
    assert [r["id"] for r in records] == ["p1", "p2", "p3"]
    assert [line["step"] for line in lines] == [1, 2, 3]
    # Step 1: exactly one program in four passes every test, for every problem.
    assert lines[0]["mean_acc"] == pytest.approx(0.25)
    assert lines[0]["pass_at_n"] == pytest.approx(1.0)
    for r in records:
        first = r["steps"][0]
        assert first["scores"] == [1.0, 0.0, 0.0, 0.0]
        assert all(reason for reason in first["reasons"][1:])
    # Aggregation spreads the passing program (the script copies it when shown).
    assert lines[-1]["mean_acc"] > lines[0]["mean_acc"]
    assert result.summary["problems"] == 3
    settings = json.loads((run / "settings.json").read_text())
    assert settings["eval"]["sandbox"]["test_timeout"] == 5


def test_eval_cli_date_window_and_mock(
    lcb3: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-run"
    args = ["-q", "eval", str(lcb3), "--out", str(out), "--backend", "mock"]
    args += ["-n", "2", "-k", "2", "-t", "2", "--since", "2025-03-01", "--json", *SANDBOX]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["problems"] == 2
    records = read_jsonl(out / "problems.jsonl")
    assert [r["id"] for r in records] == ["p2", "p3"]
    # The simulated mock writes no code: every candidate is graded, and fails for that reason.
    assert all("no answer" in why for r in records for why in r["steps"][0]["reasons"])
    bad = [
        "-q",
        "eval",
        "rg:basic_arithmetic",
        "--out",
        str(tmp_path / "x"),
        "--since",
        "2025-01-01",
    ]
    assert main([*bad, "--backend", "mock"]) == 2
    assert "--since/--until apply to lcb-v6" in capsys.readouterr().err


def test_grade_cli_on_code_problems(
    lcb3: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    completions = tmp_path / "completions.jsonl"
    rows = [
        {"problem_id": "p1", "completion": fenced(STDIN_CORRECT)},
        {"problem_id": "p1", "completion": fenced(STDIN_WRONG)},
        {"problem_id": "p2", "completion": fenced(FUNCTIONAL_CORRECT)},
        {"problem_id": "p3", "completion": fenced("while True:\n    pass\n")},
        {"problem_id": "p3", "completion": "no code at all"},
    ]
    completions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["-q", "grade", str(lcb3), "--completions", str(completions), "--json"]
    assert main([*args, "--test-timeout", "1", "--memory-mb", "256"]) == 0
    data = json.loads(capsys.readouterr().out)
    scores = [(r["problem_id"], r["score"]) for r in data["results"]]
    assert scores == [("p1", 1.0), ("p1", 0.0), ("p2", 1.0), ("p3", 0.0), ("p3", 0.0)]
    reasons = [r["reason"] for r in data["results"]]
    assert reasons[1].startswith("test 1 of 3 (public): wrong answer")
    assert "timeout" in reasons[3] and "wall-clock limit of 1 s" in reasons[3]
    assert "no answer" in reasons[4]


def test_benchmark_format_lcb_reports_bad_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    broken = stdin_row("bad")
    del broken["public_test_cases"]
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(stdin_row("good")) + "\n" + json.dumps(broken) + "\n")
    completions = tmp_path / "c.jsonl"
    completions.write_text(json.dumps({"problem_id": "good", "completion": fenced(STDIN_CORRECT)}))
    args = [
        "-q",
        "grade",
        str(path),
        "--completions",
        str(completions),
        "--benchmark-format",
        "lcb",
    ]
    with caplog.at_level("WARNING", logger="recursa"):
        assert main(args) == 0
    warned = " ".join(caplog.messages)
    assert "skipped 1 row(s)" in warned and "public_test_cases" in warned
    assert main([*args, "--strict"]) == 2
    assert "public_test_cases" in capsys.readouterr().err


def test_grading_code_does_not_block_the_other_problems(tmp_path: Path) -> None:
    """Sandboxed tests run while the event loop keeps serving everything else."""
    # No public tests: majority voting then runs no program, so every program that runs is
    # grading's.
    rows = [{**stdin_row(f"p{i}"), "public_test_cases": "[]"} for i in range(3)]
    path = tmp_path / "slow.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    program = "import time\ntime.sleep(1.5)\na, b = map(int, input().split())\nprint(a + b)\n"

    async def run() -> int:
        """Heartbeat ticks that saw a program of this evaluation running. A loop blocked by
        grading cannot tick while a program runs, so it would see none: an ordering
        property, not a timing threshold that a loaded machine can break."""
        me = psutil.Process()
        before = {p.pid for p in me.children(recursive=True)}
        seen_running = 0
        done = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal seen_running
            while not done.is_set():
                await asyncio.sleep(0.01)
                new = [p for p in me.children(recursive=True) if p.pid not in before]
                seen_running += any(_is_running(p) for p in new)

        beat = asyncio.ensure_future(heartbeat())
        await evaluate_async(
            str(path),
            out=tmp_path / "run",
            backend=MockBackend(script=lambda r: fenced(program)),
            n=2,
            k=1,
            t=1,
            sandbox={"test_timeout": 10, "memory_mb": 256, "max_parallel_tests": 4},
        )
        done.set()
        await beat
        return seen_running

    # Each program sleeps 1.5 s; the loop kept running beside them.
    assert asyncio.run(run()) > 0


def _is_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_sandbox_settings_come_from_the_config_file_flat_or_nested(
    lcb3: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("backend: mock\nn: 2\nk: 1\nt: 1\ntest_timeout: 3\nsandbox:\n  memory_mb: 300\n")
    out = tmp_path / "run"
    args = ["-q", "eval", str(lcb3), "--out", str(out), "--config", str(cfg)]
    assert main([*args, "--max-parallel-tests", "1"]) == 0
    sandbox = json.loads((out / "settings.json").read_text())["eval"]["sandbox"]
    assert (sandbox["test_timeout"], sandbox["memory_mb"], sandbox["max_parallel_tests"]) == (
        3.0,
        300,
        1,
    )
