"""The task contract: prompts, answer format, extraction, equivalence and grading."""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Problem:
    """One problem. `answer` is the reference (None when unknown, as in `recursa solve`)."""

    id: str
    question: str
    answer: Any = None
    task: str = "general"
    meta: dict[str, Any] = field(default_factory=dict)
    #: Chat messages sent before the question in every prompt (a conversation's system
    #: message and earlier turns, as `recursa serve` receives them); usually empty.
    history: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Grade:
    """A grader's verdict: never an exception; `reason` says why a score is 0. `detail`
    holds grader-specific facts (code: the first failing test and why)."""

    score: float
    answer: str | None
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.score >= 1.0


_SPACES = re.compile(r"\s+")


def normalize_text(answer: str) -> str:
    """Collapse whitespace and strip: the exact-match key for order-sensitive answers."""
    return _SPACES.sub(" ", answer).strip()


class Task(abc.ABC):
    """A task family. Graders are plain functions in each module; the class binds them."""

    name: str = "general"
    #: Short phrase for the answer format, used in prompts ("the final answer in \\boxed{}").
    answer_format: str = ""

    def problem_text(self, problem: Problem) -> str:
        """The problem as the model sees it, in plain and aggregation prompts alike."""
        return problem.question

    def plain_prompt(self, problem: Problem) -> str:
        """The user message for a fresh sample."""
        return f"{self.problem_text(problem)}\n\n{self.format_instruction(problem)}"

    @abc.abstractmethod
    def format_instruction(self, problem: Problem) -> str:
        """The sentence(s) telling the model how to give its final answer."""

    @abc.abstractmethod
    def extract(self, text: str) -> str | None:
        """The final answer in a completion (the last answer span), or None."""

    def key(self, answer: str) -> str:
        """A normal form: equal keys mean equivalent answers (fast path for voting)."""
        return normalize_text(answer)

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers count as the same in a majority vote."""
        return self.key(a) == self.key(b)

    @abc.abstractmethod
    def grade(self, problem: Problem, completion: str) -> Grade:
        """Score a completion against the problem's reference (1.0 correct, 0.0 not)."""

    async def grade_async(self, problem: Problem, completion: str) -> Grade:
        """`grade` for async callers; tasks whose grading does I/O (code runs tests in the
        sandbox) override it so an event loop is never blocked."""
        return self.grade(problem, completion)

    async def vote_keys(
        self, problem: Problem, answers: Sequence[str | None]
    ) -> list[str | None] | None:
        """Majority-vote keys computed from the problem (code: what each program outputs on
        the public tests' inputs), one per answer; equal keys vote together and None does
        not vote. None (the default) means: vote with `key`/`equivalent` on the answers."""
        return None


def no_reference(answer: str | None) -> Grade:
    return Grade(0.0, answer, "the problem has no reference answer")


def no_answer() -> Grade:
    return Grade(0.0, None, "no answer found in the completion")


def not_text(completion: object) -> Grade:
    return Grade(0.0, None, f"the completion is a {type(completion).__name__}, not text")
