"""`recursa report`, and the metrics pieces that real benchmarks need (ARC pass@2, verdicts)."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from recursa import evaluate
from recursa.cli import main
from recursa.result import Candidate, StepResult
from recursa.runs.metrics import MetricsBook, Outcome, StepRecord, grade_step
from recursa.tasks import Problem, Task, get_task
from recursa.verification import parse_verdict
from tests.evalkit import rg_problems


def graded(task: Task, problem: Problem, answers: list[str]) -> StepRecord:
    return asyncio.run(grade_step(task, problem, _step(answers), 0))


MOCK = {"backend": "mock", "mock_accuracy": 0.3, "mock_quality": 0.8}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_prints_tables_and_writes_valid_pngs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problems = rg_problems(size=4)
    evaluate(problems, out=tmp_path / "rsa", n=4, k=2, t=3, **MOCK)
    evaluate(problems, out=tmp_path / "maj", method="majority", n=12, **MOCK)
    plots = tmp_path / "plots"
    code = main(["report", str(tmp_path / "rsa"), str(tmp_path / "maj"), "--out", str(plots)])
    assert code == 0
    out = capsys.readouterr().out
    assert "## rsa (rsa)" in out and "## maj (majority)" in out
    # Reasoning Gym: the paper's raw-score columns come first.
    header = (
        "| step | mean score % (paper) | majority score % | mean acc % | majority acc % | "
        "pass@N % | tokens | cumulative tokens |"
    )
    assert out.count(header) == 2
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3 + 1
    for name in ("accuracy_vs_step.png", "accuracy_vs_tokens.png"):
        width, height = png_size(plots / name)
        assert width > 300 and height > 200
        import matplotlib.image

        assert matplotlib.image.imread(plots / name).shape[:2] == (height, width)


def test_report_refuses_what_is_not_a_finished_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no recursa run" in capsys.readouterr().err


def _step(answers: list[str]) -> StepResult:
    cands = [Candidate(1, i, f"Final answer: {a}", a) for i, a in enumerate(answers)]
    return StepResult(1, cands)


def test_majority_and_top_two_clusters_are_graded_through_their_answers() -> None:
    problem = Problem("p", "q", answer="b", task="general")
    record = graded(get_task("general"), problem, ["a", "a", "a", "b", "b", "c"])
    assert record.correct == [False, False, False, True, True, False]
    assert record.majority_answer == "a" and not record.majority_correct
    assert record.top2_correct and record.agreement == 0.5


def test_pass_at_2_is_reported_for_arc_problems_only() -> None:
    problem = Problem("p", "q", answer="b", task="general")
    task = get_task("general")
    book = MetricsBook(steps=1)
    book.add(0, Outcome([graded(task, problem, ["a", "a", "b"])], False, True))
    book.add(1, Outcome([graded(task, problem, ["a", "a", "c"])], False, True))
    line = book.step_lines()[0]
    assert line["pass_at_2"] == 0.5 and line["majority_acc"] == 0.0
    assert line["mean_acc"] == pytest.approx((1 / 3) / 2)
    plain = MetricsBook(steps=1)
    plain.add(0, Outcome([graded(task, problem, ["a", "b"])], True, False))
    assert "pass_at_2" not in plain.step_lines()[0]


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("True", True),
        ("false.", False),
        ("<think>is it true? maybe</think>False", False),
        ("Yes, it is correct.", None),  # the reference reads only True/False
        ("The answer is not correct", None),  # so "not correct" is no True verdict
        ("True at first, but on reflection: False", False),  # the last one decides
        ("I cannot tell", None),
        ("", None),
    ],
)
def test_verdicts_follow_the_reference_rule(text: str, verdict: bool | None) -> None:
    assert parse_verdict(text) is verdict
