"""Grading never raises for anything a program prints or returns: every comparison is total
(a hostile output is a wrong answer with its reason), and one completion's grading failure
never ends an evaluation (it is that completion's failure; the run finishes and resumes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recursa import evaluate
from recursa.backends.base import GenerationRequest
from recursa.backends.mock import MockBackend
from recursa.rl.rewards import compute_score
from recursa.sandbox import Execution, Sandbox, SandboxConfig, Status
from recursa.tasks import Problem, get_task
from recursa.tasks.code_grading import grade_code
from recursa.tasks.code_tests import CodeTest, _judge, normalised_output, stdout_matches
from tests.evalkit import read_jsonl
from tests.lcb_rows import FUNCTIONAL_CORRECT, STDIN_CORRECT, fenced, functional_row, stdin_row

pytestmark = pytest.mark.reliability

#: Outputs the red team printed or returned, and their relatives.
HOSTILE = [
    "sNaN",
    "-sNaN",
    "sNaN123",
    "NaN",
    "-Infinity",
    "Infinity 1",
    "1e999999999",
    "1e-999999999",
    "9" * 100_000,
    "[" * 100_000,
    "{" * 100_000,
    '{"a":' * 50_000,
    "[" * 100_000 + "]" * 100_000,
    "1" * 5_000,
    "\ud800",
    "\x00\x00",
    "",
]
EXPECTED = ["3", "3.0", "[0, 1]", '"x"', "NaN", "sNaN", "1" * 5_000, "[[1]]"]


def _run(stdout: str) -> Execution:
    return Execution(Status.OK, stdout, "")


def _assert_total(test: CodeTest, stdout: str) -> None:
    outcome = _judge(test, _run(stdout))
    assert outcome.status in (Status.OK, Status.WRONG_ANSWER)
    if outcome.status is Status.WRONG_ANSWER:
        assert outcome.message
    assert isinstance(normalised_output(test, stdout), str)


@pytest.mark.parametrize("kind", ["stdin", "functional"])
@pytest.mark.parametrize("expected", EXPECTED)
def test_hostile_outputs_are_wrong_answers_not_exceptions(kind: str, expected: str) -> None:
    test = CodeTest("", expected, kind)  # type: ignore[arg-type]
    for stdout in HOSTILE:
        _assert_total(test, stdout)
    # Before: Decimal('sNaN') == Decimal('3') raised decimal.InvalidOperation.
    assert stdout_matches("sNaN", "3") is False
    assert stdout_matches("1.0", "1.00") is True


TEXT = (
    st.text(max_size=200)
    | st.sampled_from(HOSTILE)
    | st.from_regex(r"-?s?NaN\d*|[\[{\"\]}:,0-9e.+-]{0,60}")
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stdout=TEXT, expected=TEXT, kind=st.sampled_from(["stdin", "functional"]))
@example(stdout="sNaN", expected="3", kind="stdin")
@example(stdout="[" * 100_000, expected="[1]", kind="functional")
def test_every_comparison_is_total_on_arbitrary_text(stdout: str, expected: str, kind: str) -> None:
    _assert_total(CodeTest("", expected, kind), stdout)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES, expected=JSON_VALUES, depth=st.integers(0, 3000))
def test_every_comparison_is_total_on_json_values(value: Any, expected: Any, depth: int) -> None:
    stdout = "[" * depth + json.dumps(value) + "]" * depth
    test = CodeTest("", json.dumps(expected), "functional")
    _assert_total(test, stdout)
    _assert_total(CodeTest("", json.dumps(expected), "stdin"), stdout)


def test_a_grader_that_raises_is_that_completions_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    task = get_task("math")
    assert compute_score("math", "\\boxed{2}", "2") == 1.0

    def broken(problem: Problem, completion: str) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(task, "grade", broken)
    # Before: the RecursionError reached verl's reward worker.
    assert compute_score("math", "\\boxed{2}", "2") == 0.0


# -- through the sandbox and through an evaluation ---------------------------------------

SNAN = "print('sNaN')\n"
DEEP_RESULT = """\
import os, sys
class Solution:
    def twoSum(self, nums, target):
        out = sys.modules['__main__']._result_out
        out.write('[' * 100000)
        out.flush()
        os._exit(0)
"""
SANDBOX = {"test_timeout": 5.0, "memory_mb": 256, "max_parallel_tests": 2}


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox(SandboxConfig(**SANDBOX))  # type: ignore[arg-type]


def test_hostile_programs_grade_as_wrong_answers(box: Sandbox) -> None:
    tests = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    grade = grade_code(SNAN, tests, sandbox=box, extract=False)
    assert grade.score == 0.0 and grade.detail["status"] == "wrong_answer"
    assert "sNaN" in grade.reason
    functional = [{"input": "[2,7,11,15]\n9", "output": "[0, 1]", "testtype": "functional"}]
    grade = grade_code(DEEP_RESULT, functional, func_name="twoSum", sandbox=box, extract=False)
    assert grade.score == 0.0 and grade.detail["status"] == "wrong_answer", grade
    task = get_task("code")
    problem = Problem("p", "q", None, "code", {"public_tests": functional, "func_name": "twoSum"})
    task.configure_sandbox(SandboxConfig(**SANDBOX))  # type: ignore[arg-type]
    import asyncio

    keys = asyncio.run(task.vote_keys(problem, [DEEP_RESULT, FUNCTIONAL_CORRECT, None]))
    assert keys is not None and keys[0] != keys[1] and keys[2] is None


def _hostile_script(request: GenerationRequest) -> str:
    prompt = request.messages[-1]["content"]
    slot = int(request.meta["slot"])
    if "class Solution" in prompt:
        return fenced(DEEP_RESULT if slot == 0 else FUNCTIONAL_CORRECT)
    return fenced(SNAN if slot == 0 else STDIN_CORRECT)


def test_hostile_outputs_through_an_evaluation_end_in_a_finished_run(tmp_path: Path) -> None:
    rows = [stdin_row("s1"), functional_row("f1")]
    data = tmp_path / "lcb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    kwargs: dict[str, Any] = {"n": 2, "k": 1, "t": 1, "seed": 0, "sandbox": SANDBOX}
    result = evaluate(str(data), out=out, backend=MockBackend(script=_hostile_script), **kwargs)
    assert result.summary["problems"] == 2
    records = {r["id"]: r for r in read_jsonl(out / "problems.jsonl")}
    for pid in ("s1", "f1"):
        step = records[pid]["steps"][0]
        assert step["scores"] == [0.0, 1.0]
        assert "wrong answer" in step["reasons"][0]
    again = evaluate(
        str(data), out=out, resume=True, backend=MockBackend(script=_hostile_script), **kwargs
    )
    assert {k: v for k, v in again.summary.items() if k != "run"} == {
        k: v for k, v in result.summary.items() if k != "run"
    }
    assert again.summary["run"]["requested_this_session"] == 0


def test_a_grading_failure_is_that_completions_and_the_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [stdin_row("s1"), stdin_row("s2")]
    data = tmp_path / "lcb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    task = get_task("code")
    real = task.grade_async

    async def fragile(problem: Problem, completion: str) -> Any:
        if "sNaN" in completion:
            raise ArithmeticError("[<class 'decimal.InvalidOperation'>]")
        return await real(problem, completion)

    async def fragile_keys(problem: Problem, answers: Any) -> Any:
        if any(a and "sNaN" in a for a in answers):
            raise RecursionError("maximum recursion depth exceeded")
        return None

    monkeypatch.setattr(task, "grade_async", fragile)
    monkeypatch.setattr(task, "vote_keys", fragile_keys)
    kwargs: dict[str, Any] = {"n": 2, "k": 1, "t": 2, "seed": 0, "sandbox": SANDBOX}
    result = evaluate(str(data), out=out, backend=MockBackend(script=_hostile_script), **kwargs)
    assert result.summary["problems"] == 2
    for record in read_jsonl(out / "problems.jsonl"):
        first = record["steps"][0]
        assert first["scores"][1] == 1.0
        assert first["reasons"][0].startswith("grading failed (ArithmeticError")
    again = evaluate(
        str(data), out=out, resume=True, backend=MockBackend(script=_hostile_script), **kwargs
    )
    assert {k: v for k, v in again.summary.items() if k != "run"} == {
        k: v for k, v in result.summary.items() if k != "run"
    }
