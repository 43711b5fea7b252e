"""The task contract: prompts, answer format, extraction, equivalence and grading."""

from __future__ import annotations

import abc
import logging
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


log = logging.getLogger("recursa")

_SPACES = re.compile(r"\s+")


def normalize_text(answer: str) -> str:
    """Collapse whitespace and strip: the exact-match key for order-sensitive answers."""
    return _SPACES.sub(" ", answer).strip()


#: `Problem.meta` key of a prompt the row carries itself (verl rows, the paper's files): the
#: plain prompt is then that text, byte for byte, as the reference code sends it.
OWN_PROMPT = "prompt"

_THINK_TAG = re.compile(r"<(/?)think>", re.IGNORECASE)


def outside_think(text: str) -> str:
    """The text outside `<think>` blocks, where a final answer is read: closed blocks are
    removed, text before a stray closing tag (templates that omit the opening one) goes, and
    an unclosed `<think>` (a trace cut off by max tokens) hides everything after it, since a
    chain that never finished thinking gave no final answer."""
    if "think>" not in text and "THINK>" not in text.upper():
        return text
    out: list[str] = []
    pos, depth = 0, 0
    for tag in _THINK_TAG.finditer(text):
        if tag.group(1):  # </think>
            if depth == 0:
                out = []  # a stray closing tag: everything before it was reasoning
            depth = 0
            pos = tag.end()
        else:
            if depth == 0:
                out.append(text[pos : tag.start()])
            depth = 1
    if depth == 0:
        out.append(text[pos:])
    return "".join(out)


class Task(abc.ABC):
    """A task family. Graders are plain functions in each module; the class binds them."""

    name: str = "general"
    #: What the aggregation prompt calls the problem ("math problem", "multiple-choice
    #: problem", ...), as the reference code does per family.
    problem_kind: str = "problem"
    #: The answer format as the reference's aggregation prompt names it after "End with the
    #: final result in" / "end with the final answer in" (math: "\\boxed{}").
    format_hint: str = ""

    def problem_text(self, problem: Problem) -> str:
        """The problem as the model sees it, in plain and aggregation prompts alike."""
        return problem.question

    def plain_prompt(self, problem: Problem) -> str:
        """The user message for a fresh sample: the row's own prompt, byte for byte, when it
        carries one (`OWN_PROMPT`), else the problem and the family's answer instruction."""
        own = problem.meta.get(OWN_PROMPT)
        if isinstance(own, str) and own.strip():
            return own
        if isinstance(own, list):  # a prompt of several messages: its last user message
            users = [m for m in own if isinstance(m, dict) and m.get("role") == "user"]
            if users and isinstance(users[-1].get("content"), str):
                return str(users[-1]["content"])
        return f"{self.problem_text(problem)}\n\n{self.format_instruction(problem)}"

    def closing_instruction(self, problem: Problem) -> str:
        """What an aggregation prompt adds after its closing line (code: the I/O rules)."""
        return ""

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


def grading_failed(answer: str | None, exc: BaseException) -> Grade:
    """The verdict when a grader itself failed on a completion: that completion scores 0
    with the failure as its reason; nothing else is affected."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return Grade(0.0, answer, f"grading failed ({detail})", {"status": "grading_error"})


async def safe_grade(task: Task, problem: Problem, completion: str) -> Grade:
    """`task.grade_async`, total: a grader that raises gives that completion a failing
    grade with the reason (graders should never raise; this is the last net)."""
    try:
        return await task.grade_async(problem, completion)
    except Exception as exc:
        return grading_failed(None, exc)


async def safe_vote_keys(
    task: Task, problem: Problem, answers: Sequence[str | None]
) -> list[str | None] | None:
    """`task.vote_keys`, total: when computing the keys fails, the vote falls back to the
    answers' own keys (as for a task without vote keys) instead of ending the run."""
    try:
        return await task.vote_keys(problem, answers)
    except Exception as exc:
        log.warning("vote keys for problem %s failed (%s); voting on answers", problem.id, exc)
        return None
