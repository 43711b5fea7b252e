"""Per-step and final metrics of an evaluation, from graded populations.

A candidate is correct when its grade is 1 (`Grade.correct`; partial scores, which some
Reasoning Gym scorers give, are recorded but count as wrong). Per step, over problems:
- mean_acc (the paper's pass@1): mean correctness over the N members, averaged over problems;
- pass_at_n: share of problems with at least one correct member;
- majority_acc: the largest answer cluster (task equivalence, `selection.ranked_clusters`)
  graded through its first member;
- pass_at_2 (ARC problems only): either of the two largest clusters is correct;
- tokens: prompt and completion totals, means and medians per generation at that step.
A problem that stopped early (early stop) keeps its last population for the later steps.
Every mean is summed in problem order, so a resumed run gives bit-identical numbers.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field
from typing import Any

from recursa.result import StepResult
from recursa.selection import ranked_clusters
from recursa.tasks import Problem, Task


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
    prompt_tokens: list[int] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)

    def compact(self) -> StepRecord:
        """The numbers only (no answer texts), as the metrics keep them for every problem."""
        return StepRecord(
            self.step,
            [],
            [],
            self.correct,
            [],
            None,
            self.majority_correct,
            self.top2_correct,
            self.agreement,
            self.prompt_tokens,
            self.completion_tokens,
        )

    def carried(self, step: int) -> StepRecord:
        """This population standing in for a later step it did not run (no new tokens)."""
        return StepRecord(
            step,
            [],
            [],
            self.correct,
            [],
            None,
            self.majority_correct,
            self.top2_correct,
            self.agreement,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "answers": self.answers,
            "scores": self.scores,
            "reasons": self.reasons,
            "majority_answer": self.majority_answer,
            "majority_correct": self.majority_correct,
            "agreement": self.agreement,
            "completion_tokens": self.completion_tokens,
        }


async def grade_step(task: Task, problem: Problem, step: StepResult, seed: int) -> StepRecord:
    """Grade every member of a step's population and its majority answer. Grading is awaited
    (`grade_async`): code problems run their tests in the sandbox without blocking the loop."""
    grades = await asyncio.gather(*(task.grade_async(problem, c.text) for c in step.candidates))
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
    verify_prompt_tokens: int = 0
    verify_completion_tokens: int = 0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _token_stats(prefix: str, counts: list[int]) -> dict[str, Any]:
    return {
        f"{prefix}_tokens": sum(counts),
        f"{prefix}_tokens_mean": _mean([float(c) for c in counts]),
        f"{prefix}_tokens_median": float(statistics.median(counts)) if counts else 0.0,
    }


class MetricsBook:
    """Outcomes by problem index; lines per step and the final summary, in index order."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.outcomes: dict[int, Outcome] = {}

    def add(self, index: int, outcome: Outcome) -> None:
        records = [r.compact() for r in outcome.steps]
        while len(records) < self.steps:  # early stop: the last population stands
            records.append(records[-1].carried(len(records) + 1))
        outcome.steps = records
        self.outcomes[index] = outcome

    def _ordered(self) -> list[Outcome]:
        return [self.outcomes[i] for i in sorted(self.outcomes)]

    def step_lines(self) -> list[dict[str, Any]]:
        """One metrics line per step (metrics.jsonl)."""
        outcomes = self._ordered()
        lines, cumulative = [], 0
        for t in range(self.steps):
            recs = [o.steps[t] for o in outcomes]
            prompt = [n for r in recs for n in r.prompt_tokens]
            completion = [n for r in recs for n in r.completion_tokens]
            cumulative += sum(prompt) + sum(completion)
            line: dict[str, Any] = {
                "step": t + 1,
                "problems": len(recs),
                "mean_acc": _mean([_mean([float(c) for c in r.correct]) for r in recs]),
                "pass_at_n": _mean([float(any(r.correct)) for r in recs]),
                "majority_acc": _mean([float(r.majority_correct) for r in recs]),
            }
            arc = [r for r, o in zip(recs, outcomes, strict=True) if o.is_arc]
            if arc:
                line["pass_at_2"] = _mean([float(r.top2_correct) for r in arc])
            line["generations"] = len(completion)
            line.update(_token_stats("prompt", prompt))
            line.update(_token_stats("completion", completion))
            line["cumulative_tokens"] = cumulative
            lines.append(line)
        return lines

    def final(self) -> dict[str, Any]:
        """Final metrics: the last step's, the selected answers' accuracy, token totals."""
        outcomes = self._ordered()
        lines = self.step_lines()
        last = dict(lines[-1]) if lines else {}
        out: dict[str, Any] = {
            key: last[key]
            for key in ("mean_acc", "pass_at_n", "majority_acc", "pass_at_2")
            if key in last
        }
        out["final_acc"] = _mean([float(o.final_correct) for o in outcomes])
        verified = [o.verified_acc for o in outcomes if o.verified_acc is not None]
        if verified:
            out["verified_acc"] = _mean(verified)
        prompt = [n for o in outcomes for r in o.steps for n in r.prompt_tokens]
        completion = [n for o in outcomes for r in o.steps for n in r.completion_tokens]
        out["generations"] = len(completion)
        out.update(_token_stats("prompt", prompt))
        out.update(_token_stats("completion", completion))
        if verified:
            out["verify_prompt_tokens"] = sum(o.verify_prompt_tokens for o in outcomes)
            out["verify_completion_tokens"] = sum(o.verify_completion_tokens for o in outcomes)
        return out
