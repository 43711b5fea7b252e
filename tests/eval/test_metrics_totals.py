"""The metrics book keeps exact running totals: the same numbers as computed from every record,
bit-identical whatever order problems finish in, and token medians from histograms."""

from __future__ import annotations

import random
import statistics
from fractions import Fraction

import pytest

from recursa.runs.metrics import MetricsBook, Outcome, StepRecord, TokenCounts


def _record(
    step: int, correct: list[bool], tokens: list[int], majority: bool, arc: bool
) -> StepRecord:
    return StepRecord(
        step=step,
        answers=[],
        scores=[float(c) for c in correct],
        correct=correct,
        reasons=[],
        majority_answer=None,
        majority_correct=majority,
        agreement=0.5,
        prompt_tokens=[t * 3 for t in tokens],
        completion_tokens=tokens,
        extra={"pass_at_2": majority} if arc else {},
    )


def _outcomes(count: int, steps: int, seed: int) -> list[Outcome]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        ran = rng.randint(1, steps)  # early stop: fewer steps run
        n = rng.randint(1, 7)  # odd sizes make the per-problem means inexact in binary
        arc = rng.random() < 0.3  # a family with an extra metric (ARC's pass@2)
        records = [
            _record(
                t + 1,
                [rng.random() < 0.4 for _ in range(n)],
                [rng.randint(1, 60) for _ in range(n)],
                rng.random() < 0.5,
                arc,
            )
            for t in range(ran)
        ]
        verified = rng.choice([None, 1 / 3, 0.5, 2 / 7])
        metrics = {} if verified is None else {"verified_acc": verified}
        out.append(Outcome(records, rng.random() < 0.5, "verify", metrics))
    return out


def _book(outcomes: list[Outcome], order: list[int], steps: int) -> MetricsBook:
    book = MetricsBook(steps)
    for i in order:
        book.add(i, outcomes[i])
    return book


def test_totals_do_not_depend_on_the_order_problems_finish_in() -> None:
    outcomes = _outcomes(40, steps=4, seed=3)
    forward = _book(outcomes, list(range(40)), 4)
    shuffled = list(range(40))
    random.Random(9).shuffle(shuffled)
    other = _book(outcomes, shuffled, 4)
    assert forward.step_lines() == other.step_lines()  # bit-identical floats
    assert forward.final() == other.final()


def test_totals_equal_the_numbers_computed_from_every_record() -> None:
    outcomes = _outcomes(30, steps=3, seed=5)
    lines = _book(outcomes, list(range(30)), 3).step_lines()
    for t, line in enumerate(lines):
        # a problem that stopped early keeps its last population, without new tokens
        recs = [o.steps[min(t, len(o.steps) - 1)] for o in outcomes]
        ran = [o.steps[t] for o in outcomes if t < len(o.steps)]
        mean_acc = sum(Fraction(sum(r.correct), len(r.correct)) for r in recs) / len(recs)
        assert line["mean_acc"] == float(mean_acc)
        assert line["pass_at_n"] == pytest.approx(statistics.mean(any(r.correct) for r in recs))
        assert line["majority_acc"] == pytest.approx(
            statistics.mean(r.majority_correct for r in recs)
        )
        arc = [r for r in recs if "pass_at_2" in r.extra]
        assert line["pass_at_2"] == pytest.approx(
            statistics.mean(r.extra["pass_at_2"] for r in arc)
        )
        completion = [n for r in ran for n in r.completion_tokens]
        assert line["generations"] == len(completion)
        assert line["completion_tokens"] == sum(completion)
        assert line["completion_tokens_median"] == float(statistics.median(completion))
        assert line["prompt_tokens_mean"] == pytest.approx(
            statistics.mean(n for r in ran for n in r.prompt_tokens)
        )
    final = _book(outcomes, list(range(30)), 3).final()
    assert final["final_acc"] == pytest.approx(statistics.mean(o.final_correct for o in outcomes))
    verified = [o.selection_metrics["verified_acc"] for o in outcomes if o.selection_metrics]
    assert final["verified_acc"] == pytest.approx(statistics.mean(verified))
    everything = [n for o in outcomes for r in o.steps for n in r.completion_tokens]
    assert final["completion_tokens_median"] == float(statistics.median(everything))
    assert final["generations"] == len(everything)


@pytest.mark.parametrize("seed", range(5))
def test_histogram_median_is_the_median(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.randint(0, 9) for _ in range(rng.randint(1, 50))]
    counts = TokenCounts()
    counts.add(values[: len(values) // 2])
    counts.add(values[len(values) // 2 :])
    assert counts.median() == float(statistics.median(values))
    assert counts.mean() == pytest.approx(statistics.mean(values))
    assert TokenCounts().median() == 0.0
