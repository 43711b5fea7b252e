"""Self-verification verdicts: the last True/False decides, and an unreadable reply is never
counted as True (an audit once planted exactly that and no test noticed)."""

from __future__ import annotations

import pytest

from recursa.result import Candidate
from recursa.tasks import get_task
from recursa.verification import Verdict, choose_verified, parse_verdict, verified_score


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("True", True),
        ("False", False),
        ("true.", True),
        ("It looks False at first, but after checking: True", True),
        ("True? No. False", False),
        ("<think>maybe True</think> False", False),
        ("<think>False</think>", None),
        ("The answer is not correct.", None),
        ("yes", None),
        ("", None),
        ("I cannot tell.", None),
    ],
)
def test_the_last_true_or_false_outside_think_is_the_verdict(
    reply: str, verdict: bool | None
) -> None:
    assert parse_verdict(reply) is verdict


def candidates(answers: list[str]) -> list[Candidate]:
    return [
        Candidate(step=1, slot=i, text=f"\\boxed{{{a}}}", answer=a) for i, a in enumerate(answers)
    ]


def test_unreadable_verdicts_count_as_not_true() -> None:
    verdicts = [Verdict(0, None, "?"), Verdict(1, True, "True"), Verdict(2, None, "")]
    assert verified_score([1.0, 0.0, 1.0], verdicts) == 0.0  # only slot 1 was judged True
    chosen, fallback = choose_verified(
        get_task("math"), candidates(["5", "7", "5"]), verdicts, 0, "p"
    )
    assert (chosen.answer, fallback) == ("7", False)


def test_no_true_verdict_scores_zero_and_falls_back_to_the_majority() -> None:
    verdicts = [Verdict(0, None, "?"), Verdict(1, False, "False"), Verdict(2, None, "")]
    assert verified_score([1.0, 1.0, 1.0], verdicts) == 0.0
    chosen, fallback = choose_verified(
        get_task("math"), candidates(["5", "7", "5"]), verdicts, 0, "p"
    )
    assert (chosen.answer, fallback) == ("5", True)


def test_the_verified_score_is_the_mean_over_candidates_judged_true() -> None:
    verdicts = [Verdict(0, True, "True"), Verdict(1, True, "True"), Verdict(2, False, "False")]
    assert verified_score([1.0, 0.5, 1.0], verdicts) == 0.75
