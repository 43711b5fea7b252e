"""Grading code against its tests, and the output signatures that majority voting uses.

`grade_code` is a plain function (reusable as an RL reward): a completion passes when its
last fenced Python block passes every test, public and private. Tests run in the sandbox
in waves of `max_parallel_tests`; grading stops after the first wave with a failure and
reports the first failing test (its position, whether public or private, and why).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from recursa.errors import RecursaError
from recursa.sandbox import Sandbox, Status, run_blocking
from recursa.tasks.base import Grade, grading_failed, no_answer, not_text
from recursa.tasks.code_tests import CodeTest, TestOutcome, run_test

TestSpec = CodeTest | dict[str, Any]

_DEFAULT: Sandbox | None = None


def default_sandbox() -> Sandbox:
    """The shared sandbox used when a caller passes none (default limits)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Sandbox()
    return _DEFAULT


def as_tests(tests: Sequence[TestSpec]) -> list[CodeTest]:
    return [t if isinstance(t, CodeTest) else CodeTest.from_dict(t) for t in tests]


def _describe(index: int, total: int, test: CodeTest, outcome: TestOutcome) -> str:
    where = f"test {index + 1} of {total} ({'public' if test.public else 'private'})"
    label = outcome.status.value.replace("_", " ")
    return f"{where}: {label}" + (f": {outcome.message}" if outcome.message else "")


async def grade_code_async(
    completion: str,
    tests: Sequence[TestSpec],
    *,
    func_name: str | None = None,
    sandbox: Sandbox | None = None,
    extract: bool = True,
) -> Grade:
    """Score 1.0 when the completion's program passes every test, else 0.0; `detail`
    names the first failing test. Never raises. With `extract=False` the completion is
    the program itself."""
    from recursa.tasks.code import extract_code

    if not isinstance(completion, str):
        return not_text(completion)
    code = extract_code(completion) if extract else completion
    if code is None:
        return no_answer()
    cases = as_tests(tests)
    if not cases:
        return Grade(0.0, code, "the problem has no tests")
    box = sandbox or default_sandbox()
    wave = box.config.parallel_tests
    try:
        for start in range(0, len(cases), wave):
            batch = cases[start : start + wave]
            outcomes = await asyncio.gather(*(run_test(box, code, t, func_name) for t in batch))
            for offset, outcome in enumerate(outcomes):
                if not outcome.passed:
                    index = start + offset
                    test = cases[index]
                    reason = _describe(index, len(cases), test, outcome)
                    detail = {
                        "failed_test": index,
                        "public": test.public,
                        "status": outcome.status.value,
                        "message": outcome.message,
                        "passed": index,
                        "total": len(cases),
                    }
                    return Grade(0.0, code, reason, detail)
    except RecursaError as exc:
        return Grade(0.0, code, f"the code could not be run: {exc}")
    except Exception as exc:  # one completion's grading failure never ends an evaluation
        return grading_failed(code, exc)
    detail = {"passed": len(cases), "total": len(cases)}
    return Grade(1.0, code, "", detail)


def grade_code(
    completion: str,
    tests: Sequence[TestSpec],
    *,
    func_name: str | None = None,
    sandbox: Sandbox | None = None,
    extract: bool = True,
) -> Grade:
    """`grade_code_async` for sync callers (safe inside a running event loop too)."""
    return run_blocking(
        grade_code_async(completion, tests, func_name=func_name, sandbox=sandbox, extract=extract)
    )


async def output_signature(
    code: str,
    inputs: Sequence[CodeTest],
    *,
    func_name: str | None = None,
    sandbox: Sandbox | None = None,
) -> str | None:
    """What a program does on the given tests' inputs, as a short key: programs with equal
    keys printed (or returned) the same on every input, or failed the same way. None when
    it produced an output on none of them (it then casts no vote)."""
    box = sandbox or default_sandbox()
    try:
        outcomes = await asyncio.gather(*(run_test(box, code, t, func_name) for t in inputs))
    except Exception:  # a program that cannot be run (or judged) casts no vote
        return None
    results = [o.output if o.output is not None else f"<{o.status.value}>" for o in outcomes]
    if all(o.output is None for o in outcomes):
        return None
    digest = hashlib.sha256(json.dumps(results).encode()).hexdigest()[:16]
    return f"outputs:{digest}"


__all__ = ["Status", "as_tests", "grade_code", "grade_code_async", "output_signature"]
