"""Partial scores (Reasoning Gym scorers give 0 < score < 1 for near misses) are recorded as
they are and count as wrong in the exact metrics (mean_acc, pass@N, majority_acc)."""

from __future__ import annotations

import asyncio

import pytest

from recursa.result import Candidate, StepResult
from recursa.runs.metrics import MetricsBook, Outcome, grade_step
from recursa.tasks import Problem
from recursa.tasks.base import Grade, Task


class PartialTask(Task):
    """Scores an answer by how many of its characters match the reference's, in place."""

    name = "partial-test"

    def format_instruction(self, problem: Problem) -> str:
        return "Answer."

    def extract(self, text: str) -> str | None:
        return text.strip() or None

    def grade(self, problem: Problem, completion: str) -> Grade:
        ref, ans = str(problem.answer), completion.strip()
        same = sum(a == b for a, b in zip(ref, ans, strict=False))
        return Grade(same / max(len(ref), len(ans)), ans)


def step_of(texts: list[str]) -> StepResult:
    cands = [Candidate(step=1, slot=i, text=t, answer=t) for i, t in enumerate(texts)]
    return StepResult(step=1, candidates=cands, agreement=1.0, majority_answer=texts[0])


def test_partial_scores_are_recorded_and_count_as_wrong() -> None:
    task, problem = PartialTask(), Problem("p", "q", answer="abcd", task="rg")
    record = asyncio.run(grade_step(task, problem, step_of(["abcx", "abcx", "abxx"]), 0))
    assert record.scores == [0.75, 0.75, 0.5]
    assert record.correct == [False, False, False]
    assert record.majority_answer == "abcx" and record.majority_correct is False
    book = MetricsBook(1)
    book.add(0, Outcome(steps=[record], final_correct=False, is_arc=False))
    line = book.step_lines()[0]
    assert (line["mean_acc"], line["pass_at_n"], line["majority_acc"]) == (0.0, 0.0, 0.0)


def test_a_full_score_counts_once_among_partials() -> None:
    task, problem = PartialTask(), Problem("p", "q", answer="abcd", task="rg")
    record = asyncio.run(grade_step(task, problem, step_of(["abcd", "abcx", "abcx", "abcx"]), 0))
    assert record.correct == [True, False, False, False]
    book = MetricsBook(1)
    book.add(0, Outcome(steps=[record], final_correct=False, is_arc=False))
    line = book.step_lines()[0]
    assert line["mean_acc"] == pytest.approx(0.25)
    assert line["pass_at_n"] == 1.0 and line["majority_acc"] == 0.0


def test_a_real_reasoning_gym_near_miss_gets_a_partial_score() -> None:
    pytest.importorskip("reasoning_gym")
    from recursa.benchmarks import load_benchmark
    from recursa.tasks import get_task

    problem = load_benchmark("rg:futoshiki", size=1, seed=0).problems[0]
    task = get_task(problem.task)
    right = str(problem.answer)
    # Change one digit of the solved grid: a near miss the scorer gives partial credit.
    digits = [i for i, ch in enumerate(right) if ch.isdigit()]
    i = digits[0]
    wrong = right[:i] + ("1" if right[i] != "1" else "2") + right[i + 1 :]
    full = task.grade(problem, f"<answer>{right}</answer>")
    near = task.grade(problem, f"<answer>{wrong}</answer>")
    assert full.score == 1.0 and full.correct
    assert 0.0 < near.score < 1.0 and not near.correct
