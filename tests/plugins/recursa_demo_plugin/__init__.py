"""A complete recursa plugin: one backend, one task family, one benchmark and one method,
registered through entry points only (see ../recursa_demo_plugin-0.1.0.dist-info and
docs/PLUGINS.md). The tests put this folder on sys.path; `pip install` of a package with the
same entry points does the same for users.

- backend `arith`: a "model" that adds the two numbers of an "a + b" question and answers in
  the plus task's format; `--arith-offset` (its own option) makes it wrong on purpose.
- task `plus`: the answer is the number after "ANSWER:", graded by exact match.
- benchmark `sums[:COUNT]`: COUNT addition problems (default 3), seeded by `--seed`.
- method `twice`: T = 2 with K = 1 (one refinement step); a budget sets N = B / 2.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field

import recursa

_SUM = re.compile(r"(-?\d+) \+ (-?\d+)")
_ANSWER = re.compile(r"ANSWER:\s*(-?\d+)")


class ArithOptions(recursa.BackendOptions):
    """The arith backend's own settings (flags --arith-offset, under its own --help heading)."""

    arith_offset: int = Field(0, description="Added to every sum (non-zero: wrong answers).")


class ArithBackend(recursa.Backend):
    """Answers "a + b" questions by adding; no model involved."""

    default_concurrency = 8

    def __init__(self, offset: int) -> None:
        self.offset = offset

    async def generate(self, request: recursa.GenerationRequest) -> recursa.Completion:
        prompt = request.messages[-1]["content"]
        found = _SUM.search(prompt)
        value = int(found.group(1)) + int(found.group(2)) + self.offset if found else 0
        text = f"Adding the two numbers.\nANSWER: {value}"
        return recursa.Completion(
            text=text,
            finish_reason="stop",
            prompt_tokens=self.count_tokens(prompt),
            completion_tokens=self.count_tokens(text),
        )


def make_arith(config: recursa.BackendConfig) -> ArithBackend:
    """The factory: a BackendConfig in, a Backend out."""
    return ArithBackend(config.options_for(ArithOptions).arith_offset)


ARITH = recursa.BackendSpec(make_arith, ArithOptions, "adds the numbers of a + b questions")


class PlusTask(recursa.Task):
    """Addition questions answered as "ANSWER: <number>"."""

    name = "plus"
    answer_format = "the number after ANSWER:"
    ability = "math"

    def format_instruction(self, problem: recursa.Problem) -> str:
        return "End your reply with a line 'ANSWER: <number>'."

    def extract(self, text: str) -> str | None:
        found = _ANSWER.findall(text)
        return found[-1] if found else None

    def grade(self, problem: recursa.Problem, completion: str) -> recursa.Grade:
        answer = self.extract(completion)
        if answer is None:
            return recursa.Grade(0.0, None, "no ANSWER: line")
        ok = answer == str(problem.answer).strip()
        return recursa.Grade(1.0 if ok else 0.0, answer, "" if ok else "wrong sum")


def load_sums(arg: str, *, seed: int = 0, **options: Any) -> Iterator[recursa.Problem]:
    """Addition problems: sums:COUNT (default 3)."""
    count = int(arg) if arg else 3
    rng = random.Random(seed)
    for i in range(count):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        yield recursa.Problem(f"sum-{i}", f"What is {a} + {b}?", str(a + b), "plus")


TWICE = recursa.Method("twice", "T=2, K=1: one refinement step", {"t": 2, "k": 1}, budget="n")
