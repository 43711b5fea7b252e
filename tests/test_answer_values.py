"""Answers with different values are never merged, in grading or in the majority vote:
signs, fractions and symbolic expressions (a sign-dropping comparison once passed every test)."""

from __future__ import annotations

import pytest

from recursa.result import Candidate
from recursa.selection import cluster_answers, majority_vote
from recursa.tasks import get_task
from recursa.tasks.math import grade_math, math_equivalent

DIFFERENT = [
    ("-3", "3"),
    ("3", "-3"),
    ("-0.5", "0.5"),
    ("\\frac{1}{2}", "\\frac{2}{1}"),
    ("\\frac{1}{2}", "-\\frac{1}{2}"),
    ("\\frac{3}{4}", "\\frac{4}{3}"),
    ("x+1", "x-1"),
    ("2\\sqrt{2}", "\\sqrt{2}"),
    ("10", "100"),
    ("-17", "17"),
]
SAME = [
    ("-3", "-3"),
    ("\\frac{1}{2}", "0.5"),
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("007", "7"),
    ("x + 1", "1+x"),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_values_are_not_equivalent_or_graded_right(a: str, b: str) -> None:
    assert math_equivalent(a, b) is False
    assert grade_math(f"so \\boxed{{{b}}}", a).score == 0.0


@pytest.mark.parametrize(("a", "b"), SAME)
def test_equal_values_are_equivalent_and_graded_right(a: str, b: str) -> None:
    assert math_equivalent(a, b) is True
    assert grade_math(f"so \\boxed{{{b}}}", a).score == 1.0


def test_the_vote_keeps_signed_answers_apart() -> None:
    task = get_task("math")
    clusters = cluster_answers(task, ["-3", "3", "3", "-3", "-3"])
    assert sorted((c.answer, c.members) for c in clusters) == [("-3", [0, 3, 4]), ("3", [1, 2])]
    candidates = [
        Candidate(step=1, slot=i, text=f"\\boxed{{{a}}}", answer=a)
        for i, a in enumerate(["3", "-3", "-3", "\\frac{1}{2}", "-3"])
    ]
    chosen, share = majority_vote(task, candidates, 0, "p")
    assert (chosen.answer, share) == ("-3", 0.6)
