"""Per-step and final metrics of an evaluation, from graded populations.

A candidate is correct when its grade is 1 (`Grade.correct`). Per step, over problems:
- mean_acc (the paper's pass@1): mean correctness over the N members, averaged over problems;
- mean_score: the same over the scorer's raw score (the reference's definition, which gives
  Reasoning Gym's partial credit; equal to mean_acc where scores are 0 or 1);
- pass_at_n: share of problems with at least one correct member (score 1, as the reference);
- majority_acc / majority_score: the largest answer cluster (task equivalence,
  `selection.ranked_clusters`) graded through its first member: correct, or its raw score;
- pass_at_2 (ARC problems only): either of the two largest clusters is correct;
- tokens: prompt and completion totals, means, medians and (completion) the 25th and 75th
  percentiles per generation at that step (numpy's default linear interpolation, as the
  reference reports q25/q75).
A problem that stopped early (early stop) keeps its last population for the later steps.
`MetricsBook` keeps running totals, not the records: memory does not grow with problems or
steps. The sums are exact (integers, fractions, token histograms), so the numbers do not
depend on the order problems finish in and a resumed run gives bit-identical numbers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from recursa.result import StepResult
from recursa.selection import ranked_clusters
from recursa.tasks import Problem, Task
from recursa.tasks.base import safe_grade


@dataclass
class StepRecord:
    """One problem's population at one step, graded."""

    step: int
    answers: list[str | None]
    scores: list[float]
    correct: list[bool]
    reasons: list[str]
    majority_answer: str | None
    majority_correct: bool
    top2_correct: bool
    agreement: float
    majority_score: float = 0.0
    prompt_tokens: list[int] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "answers": self.answers,
            "scores": self.scores,
            "reasons": self.reasons,
            "majority_answer": self.majority_answer,
            "majority_correct": self.majority_correct,
            "majority_score": self.majority_score,
            "agreement": self.agreement,
            "completion_tokens": self.completion_tokens,
        }


async def grade_step(task: Task, problem: Problem, step: StepResult, seed: int) -> StepRecord:
    """Grade every member of a step's population and its majority answer. Grading is awaited
    (`grade_async`): code problems run their tests in the sandbox without blocking the loop."""
    grades = await asyncio.gather(*(safe_grade(task, problem, c.text) for c in step.candidates))
    correct = [g.correct for g in grades]
    clusters = ranked_clusters(task, step.candidates, seed, problem.id)
    top = clusters[0]
    return StepRecord(
        step=step.step,
        answers=[c.answer for c in step.candidates],
        scores=[g.score for g in grades],
        correct=correct,
        reasons=[g.reason for g in grades],
        majority_answer=top.answer,
        majority_correct=correct[top.members[0]],
        top2_correct=any(correct[c.members[0]] for c in clusters[:2]),
        majority_score=grades[top.members[0]].score,
        agreement=len(top.members) / len(step.candidates),
        prompt_tokens=[c.prompt_tokens for c in step.candidates],
        completion_tokens=[c.completion_tokens for c in step.candidates],
    )


@dataclass
class Outcome:
    """What the metrics keep of one finished problem (small: no texts)."""

    steps: list[StepRecord]
    final_correct: bool
    is_arc: bool
    verified_acc: float | None = None
    verified_score: float | None = None
    is_rg: bool = False
    verify_prompt_tokens: int = 0
    verify_completion_tokens: int = 0


def _token_stats(prefix: str, counts: TokenCounts, quartiles: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        f"{prefix}_tokens": counts.total,
        f"{prefix}_tokens_mean": counts.mean(),
        f"{prefix}_tokens_median": counts.median(),
    }
    if quartiles:
        out[f"{prefix}_tokens_q25"] = counts.percentile(25)
        out[f"{prefix}_tokens_q75"] = counts.percentile(75)
    return out


class TokenCounts:
    """Token counts of many generations as a histogram (count -> generations): exact sums,
    means and medians in memory bounded by the number of distinct counts, not generations."""

    def __init__(self) -> None:
        self.histogram: Counter[int] = Counter()
        self.n = 0
        self.total = 0

    def add(self, counts: list[int]) -> None:
        self.histogram.update(counts)
        self.n += len(counts)
        self.total += sum(counts)

    def merge(self, other: TokenCounts) -> None:
        self.histogram.update(other.histogram)
        self.n += other.n
        self.total += other.total

    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def median(self) -> float:
        """As `statistics.median` over the expanded counts (the mean of the middle two when
        their number is even)."""
        if not self.n:
            return 0.0
        wanted = [(self.n - 1) // 2, self.n // 2]  # positions of the middle value(s)
        found: list[int] = []
        seen = 0
        for value in sorted(self.histogram):
            seen += self.histogram[value]
            while wanted and wanted[0] < seen:
                found.append(value)
                wanted.pop(0)
            if not wanted:
                break
        return float(found[0]) if found[0] == found[1] else (found[0] + found[1]) / 2

    def _value_at(self, position: int) -> int:
        """The value at a 0-based position of the sorted expanded counts."""
        seen = 0
        for value in sorted(self.histogram):
            seen += self.histogram[value]
            if position < seen:
                return value
        raise IndexError(position)

    def percentile(self, q: float) -> float:
        """As `numpy.percentile(counts, q)` with its default linear interpolation."""
        if not self.n:
            return 0.0
        position = Fraction(self.n - 1) * Fraction(q) / 100
        lo = int(position)
        low = self._value_at(lo)
        if position == lo:
            return float(low)
        high = self._value_at(lo + 1)
        return float(low + (high - low) * (position - lo))


class _StepTotals:
    """One step's sums over the problems added so far. Correctness sums are exact (integers
    and fractions), so the metrics do not depend on the order problems finish in."""

    def __init__(self) -> None:
        self.problems = 0
        self.mean_acc = Fraction(0)
        self.mean_score = Fraction(0)
        self.pass_at_n = 0
        self.majority = 0
        self.majority_score = Fraction(0)
        self.arc = 0
        self.top2 = 0
        self.prompt = TokenCounts()
        self.completion = TokenCounts()

    def add(self, record: StepRecord, is_arc: bool, ran: bool) -> None:
        self.problems += 1
        if record.correct:
            self.mean_acc += Fraction(sum(record.correct), len(record.correct))
            scores = sum((Fraction(s) for s in record.scores), Fraction(0))
            self.mean_score += scores / len(record.scores)
        self.pass_at_n += any(record.correct)
        self.majority += record.majority_correct
        self.majority_score += Fraction(record.majority_score)
        if is_arc:
            self.arc += 1
            self.top2 += record.top2_correct
        if ran:
            self.prompt.add(record.prompt_tokens)
            self.completion.add(record.completion_tokens)


def _share(part: Fraction | int, whole: int) -> float:
    return float(Fraction(part) / whole) if whole else 0.0


class MetricsBook:
    """Per-step and final metrics, kept as running totals: adding a problem folds its graded
    steps in, so memory does not grow with the number of problems or steps. The totals are
    exact, so equal inputs give bit-identical numbers whatever order problems arrive in."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self._totals = [_StepTotals() for _ in range(steps)]
        self.problems = 0
        self._final_correct = 0
        self._verified = Fraction(0)
        self._verified_score = Fraction(0)
        self._verified_n = 0
        self._rg = 0
        self._verify_prompt = 0
        self._verify_completion = 0

    def add(self, index: int, outcome: Outcome) -> None:
        """Fold in one finished problem (`index`, its place in the dataset, is not needed for
        the sums; it is kept in the signature for callers that track order)."""
        records = outcome.steps
        for t, totals in enumerate(self._totals):
            ran = t < len(records)
            # early stop: the last population stands for the steps not run (no new tokens)
            totals.add(records[t] if ran else records[-1], outcome.is_arc, ran)
        self.problems += 1
        self._final_correct += outcome.final_correct
        if outcome.verified_acc is not None:
            self._verified += Fraction(outcome.verified_acc)
            self._verified_score += Fraction(outcome.verified_score or 0.0)
            self._verified_n += 1
        self._rg += outcome.is_rg
        self._verify_prompt += outcome.verify_prompt_tokens
        self._verify_completion += outcome.verify_completion_tokens

    def step_lines(self) -> list[dict[str, Any]]:
        """One metrics line per step (metrics.jsonl)."""
        lines, cumulative = [], 0
        for t, s in enumerate(self._totals):
            cumulative += s.prompt.total + s.completion.total
            line: dict[str, Any] = {
                "step": t + 1,
                "problems": s.problems,
                "mean_acc": _share(s.mean_acc, s.problems),
                "mean_score": _share(s.mean_score, s.problems),
                "pass_at_n": _share(s.pass_at_n, s.problems),
                "majority_acc": _share(s.majority, s.problems),
                "majority_score": _share(s.majority_score, s.problems),
            }
            if s.arc:
                line["pass_at_2"] = _share(s.top2, s.arc)
            line["generations"] = s.completion.n
            line.update(_token_stats("prompt", s.prompt))
            line.update(_token_stats("completion", s.completion, quartiles=True))
            line["cumulative_tokens"] = cumulative
            lines.append(line)
        return lines

    def final(self) -> dict[str, Any]:
        """Final metrics: the last step's, the selected answers' accuracy, token totals."""
        lines = self.step_lines()
        last = dict(lines[-1]) if lines else {}
        out: dict[str, Any] = {
            key: last[key]
            for key in (
                "mean_acc",
                "mean_score",
                "pass_at_n",
                "majority_acc",
                "majority_score",
                "pass_at_2",
            )
            if key in last
        }
        # The paper's number for Reasoning Gym is the raw score; for every other family the
        # two agree (scores are 0 or 1).
        out["paper_metric"] = "mean_score" if self._rg else "mean_acc"
        out["final_acc"] = _share(self._final_correct, self.problems)
        if self._verified_n:
            out["verified_acc"] = _share(self._verified, self._verified_n)
            out["verified_score"] = _share(self._verified_score, self._verified_n)
        prompt, completion = TokenCounts(), TokenCounts()
        for s in self._totals:
            prompt.merge(s.prompt)
            completion.merge(s.completion)
        out["generations"] = completion.n
        out.update(_token_stats("prompt", prompt))
        out.update(_token_stats("completion", completion, quartiles=True))
        if self._verified_n:
            out["verify_prompt_tokens"] = self._verify_prompt
            out["verify_completion_tokens"] = self._verify_completion
        return out
