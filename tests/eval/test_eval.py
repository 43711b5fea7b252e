"""`recursa.evaluate` on the mock backend: files, metrics against records, methods, refusals."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest

from recursa import GenerationRequest, UsageError, evaluate
from recursa.backends.mock import MockBackend
from recursa.config import BackendConfig
from recursa.errors import BackendError
from recursa.runs.journal import Journal
from tests.helpers.evalkit import outputs, read_jsonl, rg_problems

MOCK = {"backend": "mock", "mock_accuracy": 0.3, "mock_quality": 0.8}


def test_metrics_per_step_agree_with_the_problem_records(tmp_path: Path) -> None:
    problems = rg_problems(size=8)
    result = evaluate(problems, out=tmp_path / "run", n=4, k=2, t=3, seed=1, **MOCK)
    run = tmp_path / "run"
    for name in ("settings.json", "journal.sqlite", "metrics.jsonl", "problems.jsonl"):
        assert (run / name).is_file(), name
    lines = read_jsonl(run / "metrics.jsonl")
    records = read_jsonl(run / "problems.jsonl")
    assert [line["step"] for line in lines] == [1, 2, 3]
    assert [r["id"] for r in records] == [p.id for p in problems]
    for r, p in zip(records, problems, strict=True):
        assert [s["step"] for s in r["steps"]] == [1, 2, 3]
        for s in r["steps"]:
            assert len(s["answers"]) == len(s["scores"]) == 4
            # basic_arithmetic scores 1 exactly for the reference answer
            assert s["scores"] == [1.0 if a == p.answer else 0.0 for a in s["answers"]]
    for line in lines:
        steps = [r["steps"][line["step"] - 1] for r in records]
        correct = [[x >= 1.0 for x in s["scores"]] for s in steps]
        assert line["problems"] == 8 and line["generations"] == 32
        assert line["mean_acc"] == pytest.approx(statistics.mean(sum(c) / 4 for c in correct))
        assert line["pass_at_n"] == pytest.approx(statistics.mean(any(c) for c in correct))
        assert line["majority_acc"] == pytest.approx(
            statistics.mean(s["majority_correct"] for s in steps)
        )
        assert line["completion_tokens"] == sum(sum(s["completion_tokens"]) for s in steps)
        assert line["mean_acc"] <= line["pass_at_n"]
    assert [x["cumulative_tokens"] for x in lines] == sorted(x["cumulative_tokens"] for x in lines)
    assert 0.0 < lines[0]["mean_acc"] < 1.0
    assert lines[-1]["mean_acc"] > lines[0]["mean_acc"]  # aggregation helps (quality 0.8)
    final = result.summary["metrics"]
    assert final["mean_acc"] == lines[-1]["mean_acc"]
    assert final["final_acc"] == pytest.approx(
        statistics.mean(r["final"]["correct"] for r in records)
    )
    assert final["generations"] == 8 * 4 * 3
    assert result.summary["run"]["requested_this_session"] == 96
    assert json.loads((run / "summary.json").read_text())["metrics"] == final
    # Reasoning Gym: the paper's number (the raw score) leads the table.
    assert (
        "| step | mean score % (paper) | majority score % | mean acc % |"
        in (run / "report.md").read_text()
    )


def test_pipelined_and_step_barrier_schedules_give_identical_outputs(tmp_path: Path) -> None:
    problems = rg_problems(size=5)
    evaluate(problems, out=tmp_path / "a", n=4, k=2, t=3, **MOCK)
    evaluate(problems, out=tmp_path / "b", n=4, k=2, t=3, sync_steps=True, **MOCK)
    a, b = outputs(tmp_path / "a"), outputs(tmp_path / "b")
    assert a["metrics"] == b["metrics"] and a["problems"] == b["problems"]


def test_early_stopped_problems_keep_their_last_population(tmp_path: Path) -> None:
    problems = rg_problems(size=4)
    result = evaluate(
        problems,
        out=tmp_path / "run",
        n=4,
        k=2,
        t=5,
        early_stop="agree:0.75",
        backend="mock",
        mock_accuracy=0.5,
        mock_quality=1.0,
    )
    records = read_jsonl(tmp_path / "run" / "problems.jsonl")
    assert any(r["steps_run"] < 5 for r in records)
    assert len(result.steps) == 5
    assert all(len(r["steps"]) == r["steps_run"] for r in records)
    stopped = sum(r["steps_run"] < 5 for r in records)
    assert result.steps[-1]["generations"] == 4 * (len(records) - stopped)
    assert result.summary["metrics"]["generations"] == sum(r["steps_run"] * 4 for r in records)


@pytest.mark.parametrize(
    ("method", "nkt"),
    [
        ("rsa", (4, 2, 4)),
        ("majority", (16, 1, 1)),
        ("self-refine", (4, 1, 4)),
        ("single-aggregation", (8, 2, 2)),
        # judgements cost their tokens: 15 x (8192 + 10) <= 16 x 8192
        ("self-verify", (15, 1, 1)),
    ],
)
def test_a_budget_gives_every_method_the_same_generations(
    tmp_path: Path, method: str, nkt: tuple[int, int, int]
) -> None:
    problems = rg_problems(size=3)
    settings = {"n": 4} if method in ("rsa", "self-refine") else {}
    if method in ("rsa", "single-aggregation"):
        settings["k"] = 2
    result = evaluate(problems, out=tmp_path / method, method=method, budget=16, **settings, **MOCK)
    assert (result.summary["n"], result.summary["k"], result.summary["t"]) == nkt
    journal = Journal(tmp_path / method / "journal.sqlite")
    try:
        calls = 2 * 15 if method == "self-verify" else 16  # samples and judgements
        assert journal.count() == calls * 3  # every model call, judgements included
    finally:
        journal.close()


def test_settings_a_method_fixes_cannot_be_contradicted(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="T = 1"):
        evaluate(rg_problems(size=1), out=tmp_path / "x", method="majority", t=3, **MOCK)
    with pytest.raises(UsageError, match="multiple of 4"):
        evaluate(rg_problems(size=1), out=tmp_path / "y", n=4, budget=10, **MOCK)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_self_verify_picks_among_answers_judged_true(
    mock_backend: Callable[..., MockBackend], tmp_path: Path
) -> None:
    problems = rg_problems(size=3)
    truth = {p.id: str(p.answer) for p in problems}

    def script(request: GenerationRequest) -> str:
        pid, slot = request.meta["problem_id"], request.meta["slot"]
        if request.meta.get("phase") == "verify":
            return "True." if slot == 3 else "False, the sum is wrong."
        if slot == 3:  # the lone dissenter is right; the majority agrees on a wrong answer
            return f"<answer>{truth[pid]}</answer>"
        return "<answer>wrong</answer>" if slot > 0 else "<answer>also wrong</answer>"

    backend = mock_backend(script)
    result = evaluate(
        problems,
        out=tmp_path / "sv",
        method="self-verify",
        n=4,
        backend=backend,
        backend_config=BackendConfig(backend="mock"),
    )
    records = read_jsonl(tmp_path / "sv" / "problems.jsonl")
    for r in records:
        assert r["verify"]["verdicts"] == [False, False, False, True]
        assert r["final"]["slot"] == 3 and r["final"]["correct"]
        assert r["steps"][0]["majority_correct"] is False
    final = result.summary["metrics"]
    assert final["final_acc"] == 1.0 and final["verified_acc"] == 1.0
    assert final["majority_acc"] == 0.0
    assert len(backend.calls) == 3 * 4 * 2
    # A resume asks for nothing: samples and judgements are both journaled.
    again = mock_backend(script)
    evaluate(
        problems,
        out=tmp_path / "sv",
        resume=True,
        method="self-verify",
        n=4,
        backend=again,
        backend_config=BackendConfig(backend="mock"),
    )
    assert again.calls == []


def test_self_verify_falls_back_to_majority_when_nothing_is_judged_true(
    mock_backend: Callable[..., MockBackend], tmp_path: Path
) -> None:
    def script(request: GenerationRequest) -> str:
        if request.meta.get("phase") == "verify":
            return "False"
        return "<answer>7</answer>" if request.meta["slot"] < 3 else "<answer>8</answer>"

    problems = rg_problems(size=2)
    result = evaluate(
        problems,
        out=tmp_path / "sv",
        method="self-verify",
        n=4,
        backend=mock_backend(script),
        backend_config=BackendConfig(backend="mock"),
    )
    for r in read_jsonl(tmp_path / "sv" / "problems.jsonl"):
        assert r["verify"]["fallback_to_majority"] is True
        assert r["final"]["answer"] == "7"
    # The reference's self-verified score: 0 when no sample is judged True.
    assert result.summary["metrics"]["verified_acc"] == 0.0


def test_a_run_directory_is_never_overwritten_and_resumes_only_the_same_run(
    tmp_path: Path,
) -> None:
    problems = rg_problems(size=3)
    out = tmp_path / "run"
    evaluate(problems, out=out, n=4, k=2, t=2, **MOCK)
    first = outputs(out)
    with pytest.raises(UsageError, match="already holds a run"):
        evaluate(problems, out=out, n=4, k=2, t=2, **MOCK)
    with pytest.raises(UsageError, match=r"n=4.*n=8"):
        evaluate(problems, out=out, resume=True, n=8, k=2, t=2, **MOCK)
    with pytest.raises(UsageError, match="mock_quality"):
        evaluate(problems, out=out, resume=True, n=4, k=2, t=2, **{**MOCK, "mock_quality": 0.1})
    with pytest.raises(UsageError, match="problems differ"):
        evaluate(rg_problems(size=3, seed=9), out=out, resume=True, n=4, k=2, t=2, **MOCK)
    with pytest.raises(UsageError, match="no run to resume"):
        evaluate(problems, out=tmp_path / "empty", resume=True, **MOCK)
    # Speed settings may change; a finished run resumes to the same files and asks nothing.
    result = evaluate(problems, out=out, resume=True, n=4, k=2, t=2, mock_latency=0.01, **MOCK)
    assert result.summary["run"]["requested_this_session"] == 0
    assert result.summary["run"]["sessions"] == 2
    assert outputs(out) == first


def test_a_run_recorded_without_a_newer_setting_is_refused_naming_it(tmp_path: Path) -> None:
    """A run directory from an earlier recursa lacks settings added since: the resume is
    refused in one sentence that says so, rather than showing the setting as None."""
    problems = rg_problems(size=2)
    out = tmp_path / "run"
    evaluate(problems, out=out, n=2, k=2, t=1, **MOCK)
    journal = Journal(out / "journal.sqlite")  # the journal's copy of the settings rules
    recorded = json.loads(journal.get_meta("settings") or "{}")
    del recorded["rsa"]["think"]
    journal.set_meta("settings", json.dumps(recorded))
    journal.close()
    with pytest.raises(UsageError, match=r"made by a recursa without the setting think \(this"):
        evaluate(problems, out=out, resume=True, n=2, k=2, t=1, **MOCK)


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(
    mock_backend: Callable[..., MockBackend], tmp_path: Path
) -> None:
    problems = rg_problems(size=6)
    evaluate(problems, out=tmp_path / "whole", n=4, k=2, t=3, **MOCK)
    simulated = mock_backend(accuracy=0.3, quality=0.8)
    calls = 0

    def failing(request: GenerationRequest) -> str:
        nonlocal calls
        calls += 1
        if calls > 30:
            raise BackendError("the server went away")
        return simulated.simulate(request)

    mock_cfg = BackendConfig(backend="mock", mock_accuracy=0.3, mock_quality=0.8)
    with pytest.raises(BackendError):
        evaluate(
            problems,
            out=tmp_path / "cut",
            n=4,
            k=2,
            t=3,
            backend=mock_backend(failing),
            backend_config=mock_cfg,
        )
    journal = Journal(tmp_path / "cut" / "journal.sqlite")
    kept = journal.count()
    journal.close()
    assert 0 < kept <= 30
    again = mock_backend(accuracy=0.3, quality=0.8)
    result = evaluate(
        problems,
        out=tmp_path / "cut",
        resume=True,
        n=4,
        k=2,
        t=3,
        backend=again,
        backend_config=mock_cfg,
    )
    assert len(again.calls) == 6 * 4 * 3 - kept  # only what was missing
    assert len({c.key for c in again.calls}) == len(again.calls)
    assert result.summary["run"]["reused_from_journal"] == kept
    assert outputs(tmp_path / "cut") == outputs(tmp_path / "whole")


def test_a_damaged_journal_is_an_error_not_a_restart(tmp_path: Path) -> None:
    problems = rg_problems(size=2)
    out = tmp_path / "run"
    evaluate(problems, out=out, n=2, k=2, t=2, **MOCK)
    journal = out / "journal.sqlite"
    data = bytearray(journal.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # wreck the header's tail and the schema page
    journal.write_bytes(bytes(data))
    with pytest.raises(Exception, match="damaged") as info:
        evaluate(problems, out=out, resume=True, n=2, k=2, t=2, **MOCK)
    assert type(info.value).__name__ == "RecursaError"
    assert journal.read_bytes() == bytes(data)  # left as it was, for the user to inspect


def test_no_api_key_is_written_anywhere(tmp_path: Path) -> None:
    secret = "sk-test-0123456789abcdef"
    out = tmp_path / "run"
    evaluate(rg_problems(size=2), out=out, n=2, k=2, t=2, api_key=secret, **MOCK)
    for path in out.iterdir():
        assert secret.encode() not in path.read_bytes(), path.name


def test_a_run_directory_in_use_is_refused(tmp_path: Path) -> None:
    from recursa.errors import RecursaError
    from recursa.runs.rundir import RunDir

    problems = rg_problems(size=2)
    evaluate(problems, out=tmp_path / "run", n=2, k=2, t=2, **MOCK)
    holder = RunDir(tmp_path / "run")
    holder.lock()
    try:
        with pytest.raises(RecursaError, match="another recursa process"):
            evaluate(problems, out=tmp_path / "run", resume=True, n=2, k=2, t=2, **MOCK)
    finally:
        holder.unlock()
    evaluate(problems, out=tmp_path / "run", resume=True, n=2, k=2, t=2, **MOCK)


def test_arc_runs_report_pass_at_2_beside_pass_at_1(tmp_path: Path) -> None:
    result = evaluate("arc-agi-2", out=tmp_path / "arc", limit=3, n=4, k=2, t=2, **MOCK)
    records = read_jsonl(tmp_path / "arc" / "problems.jsonl")
    assert all(r["task"] == "arc" for r in records)
    for line in result.steps:
        assert line["majority_acc"] <= line["pass_at_2"] <= line["pass_at_n"]
    assert result.summary["metrics"]["pass_at_2"] == result.steps[-1]["pass_at_2"]
    assert "pass@2 %" in (tmp_path / "arc" / "report.md").read_text()
