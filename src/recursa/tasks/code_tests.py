"""One test of a code problem: how it is run in the sandbox and how its output is judged.

Two kinds, as in LiveCodeBench: `stdin` tests feed the input to the program and compare what
it prints; `functional` tests call a method of `class Solution` (or a top-level function)
named by the problem's `func_name`, with one JSON argument per line of the input, and
compare the returned value with the expected JSON value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from recursa.sandbox import Execution, Sandbox, Status

TestKind = Literal["stdin", "functional"]

#: The recursion limit programs run with: the reference harness raises it to 50000, so a
#: deep recursive solution (depth 5000 and more) passes there and must here.
RECURSION_LIMIT = 50000

#: Names a judge provides without an import (LeetCode's and LiveCodeBench's habit) and the
#: reference's recursion limit; run as a prelude, so the program's own line numbers and
#: `from __future__` imports are unaffected.
PRELUDE = f"""\
import bisect, collections, copy, functools, heapq, itertools, math, operator, random, re
import string, sys
sys.setrecursionlimit({RECURSION_LIMIT})
from bisect import *
from collections import *
from functools import *
from heapq import *
from itertools import *
from math import *
from typing import *
"""

#: Calls the solution for a functional test. The solution's own prints go to stderr; the
#: returned value, as JSON, is the only thing written to stdout.
DRIVER = """\
import json, os, sys
_args = [json.loads(line) for line in sys.stdin.read().splitlines() if line.strip()]
_result_out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
_namespace = {"__name__": "solution", "__builtins__": __builtins__}
exec(compile(_PRELUDE, "prelude", "exec"), _namespace)
with open("solution.py", encoding="utf-8") as _f:
    exec(compile(_f.read(), "solution.py", "exec"), _namespace)
_cls = _namespace.get("Solution")
_target = getattr(_cls(), _FUNC) if _cls is not None else _namespace[_FUNC]
_result = _target(*_args)
_result_out.write(json.dumps(_result, default=lambda o: f"<not JSON: {type(o).__name__}>"))
_result_out.flush()
"""


@dataclass(frozen=True)
class CodeTest:
    """An input and its expected output; `public` tests are the ones shown in the problem."""

    input: str
    output: str
    kind: TestKind = "stdin"
    public: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any], public: bool = False) -> CodeTest:
        kind = str(data.get("testtype") or data.get("kind") or "stdin")
        return cls(
            input=str(data.get("input", "")),
            output=str(data.get("output", "")),
            kind="functional" if kind == "functional" else "stdin",
            public=bool(data.get("public", public)),
        )


@dataclass(frozen=True)
class TestOutcome:
    """How one test went: `status` is OK only when the output matched."""

    status: Status
    message: str = ""
    #: The program's normalised output (None when it did not finish normally).
    output: str | None = None
    execution: Execution | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.status is Status.OK


def stripped_lines(text: str) -> list[str]:
    """Output as LiveCodeBench compares it: the whole text stripped, then each line."""
    return [line.strip() for line in text.strip().split("\n")]


#: Longest token read as a number: a longer one is compared as text only (a program may
#: print a million digits; the reference never does).
MAX_NUMBER_CHARS = 4096


def _decimals(line: str) -> list[Decimal] | None:
    """The line as finite decimal numbers, or None. Total: NaN, sNaN, infinities and
    over-long tokens are not numbers here (comparing a signalling NaN would raise)."""
    numbers = []
    for token in line.split():
        if len(token) > MAX_NUMBER_CHARS:
            return None
        try:
            number = Decimal(token)
        except (InvalidOperation, ValueError, ArithmeticError):
            return None
        if not number.is_finite():
            return None
        numbers.append(number)
    return numbers


def _same_numbers(a: list[Decimal], b: list[Decimal]) -> bool:
    try:
        return a == b
    except ArithmeticError:  # defensive: finite decimals compare without signalling
        return False


def stdout_matches(actual: str, expected: str) -> bool:
    """Line by line after stripping; a line that differs as text still matches when both
    are the same sequence of finite numbers (so `1.0` equals `1.00`). Never raises."""
    got, want = stripped_lines(actual), stripped_lines(expected)
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        if a == b:
            continue
        da, db = _decimals(a), _decimals(b)
        if da is None or db is None or not _same_numbers(da, db):
            return False
    return True


def _json(text: str) -> tuple[bool, Any]:
    """(True, value) for JSON text, else (False, None). Total: nesting past the recursion
    limit, integers past Python's digit limit and anything else json refuses are not JSON."""
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError, MemoryError):
        return False, None


def _json_equal(got: Any, want: Any) -> bool:
    try:
        return bool(got == want)
    except (RecursionError, ArithmeticError, MemoryError):
        return False


def _canonical(value: Any, fallback: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (ValueError, TypeError, RecursionError, MemoryError):
        return fallback


def _short(text: str, limit: int = 80) -> str:
    flat = text.strip().replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def normalised_output(test: CodeTest, stdout: str) -> str:
    """The output in a canonical form: equal forms mean equal answers (majority voting)."""
    if test.kind == "functional":
        ok, value = _json(stdout)
        return _canonical(value, stdout.strip()) if ok else stdout.strip()
    return "\n".join(stripped_lines(stdout))


def _judge(test: CodeTest, run: Execution) -> TestOutcome:
    """The verdict on one finished run. Total: whatever the program printed or returned,
    the answer is a test outcome (an output that cannot be compared is a wrong answer)."""
    if not run.ok:
        return TestOutcome(run.status, run.message, None, run)
    try:
        return _compare(test, run)
    except Exception as exc:  # every comparison is total; this is the last net
        message = f"the output could not be compared ({type(exc).__name__})"
        return TestOutcome(Status.WRONG_ANSWER, message, _short(run.stdout), run)


def _compare(test: CodeTest, run: Execution) -> TestOutcome:
    output = normalised_output(test, run.stdout)
    if test.kind == "functional":
        ok_got, got = _json(run.stdout)
        ok_want, want = _json(test.output)
        matched = ok_got and (
            _json_equal(got, want) if ok_want else run.stdout.strip() == test.output.strip()
        )
    else:
        matched = stdout_matches(run.stdout, test.output)
    if matched:
        return TestOutcome(Status.OK, "", output, run)
    message = f"expected {_short(test.output)!r}, got {_short(run.stdout)!r}"
    return TestOutcome(Status.WRONG_ANSWER, message, output, run)


async def run_test(
    sandbox: Sandbox, code: str, test: CodeTest, func_name: str | None = None
) -> TestOutcome:
    """Run `code` on one test in the sandbox and judge its output."""
    if test.kind == "functional":
        if not func_name:
            return TestOutcome(
                Status.SANDBOX_ERROR, "a functional test needs the problem's func_name"
            )
        driver = f"_PRELUDE = {PRELUDE!r}\n_FUNC = {func_name!r}\n{DRIVER}"
        run = await sandbox.run(driver, test.input, files={"solution.py": code})
    else:
        run = await sandbox.run(code, test.input, prelude=PRELUDE)
    return _judge(test, run)
