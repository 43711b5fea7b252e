"""Grading code problems in the LiveCodeBench schema, and majority voting by outputs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from recursa.backends.base import GenerationRequest
from recursa.benchmarks.lcb import load_lcb_file, problem_from_row
from recursa.config import RSAConfig
from recursa.sandbox import Sandbox, SandboxConfig, Status
from recursa.tasks.code import CodeTask, problem_tests
from recursa.tasks.code_grading import grade_code
from recursa.tasks.code_tests import CodeTest, stdout_matches
from tests.helpers.lcb_rows import (
    FUNCTIONAL_CORRECT,
    FUNCTIONAL_WRONG,
    STDIN_CORRECT,
    STDIN_WRONG,
    fenced,
    functional_row,
    stdin_row,
)
from tests.helpers.mock_engine import MockRun


@pytest.fixture(scope="module")
def task() -> CodeTask:
    return CodeTask(Sandbox(SandboxConfig(test_timeout=5.0, memory_mb=256)))


def _from_file(tmp_path: Path, rows: list[dict[str, object]]) -> list:  # type: ignore[type-arg]
    path = tmp_path / "lcb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_lcb_file(path)


def test_stdin_problem_correct_and_incorrect(task: CodeTask, tmp_path: Path) -> None:
    (problem,) = _from_file(tmp_path, [stdin_row()])
    assert [t.public for t in problem_tests(problem)] == [True, False, False]
    good = task.grade(problem, fenced(STDIN_CORRECT))
    assert good.correct and good.detail == {"passed": 3, "total": 3}
    bad = task.grade(problem, fenced(STDIN_WRONG))
    assert not bad.correct
    assert bad.detail["failed_test"] == 0 and bad.detail["public"] is True
    assert bad.detail["status"] == Status.WRONG_ANSWER.value
    assert "expected '3', got '-1'" in bad.reason


def test_functional_problem_correct_and_incorrect(task: CodeTask, tmp_path: Path) -> None:
    (problem,) = _from_file(tmp_path, [functional_row()])
    assert problem.meta["func_name"] == "twoSum"
    assert "class Solution" in task.plain_prompt(problem)
    good = task.grade(problem, fenced(FUNCTIONAL_CORRECT))
    assert good.correct, good.reason
    bad = task.grade(problem, fenced(FUNCTIONAL_WRONG))
    assert not bad.correct
    # [0, 1] happens to be right for the public test and the last private one.
    assert bad.detail["failed_test"] == 1 and bad.detail["public"] is False
    assert "private" in bad.reason and "expected '[1, 2]'" in bad.reason


def test_first_private_failure_is_reported(task: CodeTask) -> None:
    problem = problem_from_row(stdin_row())
    grade = task.grade(problem, fenced("print(3)"))
    assert not grade.correct
    assert grade.detail["failed_test"] == 1
    assert grade.reason.startswith("test 2 of 3 (private): wrong answer")


def test_runtime_error_names_the_last_traceback_line(task: CodeTask) -> None:
    problem = problem_from_row(stdin_row())
    grade = task.grade(problem, fenced("x = int(input().split()[5])\nprint(x)"))
    assert grade.detail["status"] == Status.RUNTIME_ERROR.value
    assert grade.detail["message"] == "IndexError: list index out of range"


def test_functional_solution_prints_do_not_disturb_the_result(task: CodeTask) -> None:
    problem = problem_from_row(functional_row())
    noisy = FUNCTIONAL_CORRECT.replace("seen = {}", "seen = {}\n        print('debug', nums)")
    assert task.grade(problem, fenced(noisy)).correct


def test_functional_top_level_function_and_json_values(task: CodeTask) -> None:
    tests = [CodeTest('[1, 2]\n{"a": 3}', '{"sum": 6, "pair": [1, 2]}', "functional")]
    code = "def f(xs, d):\n    return {'pair': tuple(xs), 'sum': sum(xs) + d['a']}\n"
    assert grade_code(code, tests, func_name="f", sandbox=task.sandbox, extract=False).correct
    wrong = "def f(xs, d):\n    return {1, 2}\n"
    grade = grade_code(wrong, tests, func_name="f", sandbox=task.sandbox, extract=False)
    assert not grade.correct and grade.detail["status"] == Status.WRONG_ANSWER.value


def test_no_code_block_is_no_answer(task: CodeTask) -> None:
    grade = task.grade(problem_from_row(stdin_row()), "I think the answer is 3.")
    assert not grade.correct and grade.answer is None


def test_grading_inside_a_running_loop(task: CodeTask) -> None:
    problem = problem_from_row(stdin_row())

    async def both() -> tuple[bool, bool]:
        direct = await task.grade_async(problem, fenced(STDIN_CORRECT))
        blocking = task.grade(problem, fenced(STDIN_CORRECT))
        return direct.correct, blocking.correct

    assert asyncio.run(both()) == (True, True)


@pytest.mark.parametrize(
    ("actual", "expected", "same"),
    [
        ("3\n", "3", True),
        ("  1 2  \r\n3\n\n", "1 2\n3", True),
        ("1.0 2.50\n", "1.00 2.5\n", True),
        ("1 2\n", "1 2\n3\n", False),
        ("abc\n", "abd\n", False),
        ("1e3\n", "1000\n", True),
        ("1 2\n", "1  2", True),
        ("12\n", "1 2\n", False),
    ],
)
def test_stdout_comparison(actual: str, expected: str, same: bool) -> None:
    assert stdout_matches(actual, expected) is same


def test_vote_keys_cluster_programs_by_behaviour(task: CodeTask) -> None:
    problem = problem_from_row(stdin_row())
    a_plus_b = STDIN_CORRECT
    b_plus_a = "x, y = input().split()\nprint(int(y) + int(x))\n"
    crash = "raise SystemExit(1)\n"
    answers = [a_plus_b, b_plus_a, STDIN_WRONG, None, crash]
    keys = asyncio.run(task.vote_keys(problem, answers))
    assert keys is not None
    assert keys[0] is not None and keys[0] == keys[1]
    assert keys[2] is not None and keys[2] != keys[0]
    assert keys[3] is None and keys[4] is None


def test_vote_keys_without_public_tests_fall_back_to_text(task: CodeTask) -> None:
    row = stdin_row()
    row["public_test_cases"] = "[]"
    assert asyncio.run(task.vote_keys(problem_from_row(row), [STDIN_CORRECT])) is None


def test_engine_majority_vote_uses_outputs(
    task: CodeTask, mock_engine: Callable[..., MockRun]
) -> None:
    """Two differently written correct programs outvote one wrong one; by text alone all
    three would be singletons."""
    problem = problem_from_row(stdin_row())
    programs = [
        fenced("print(sum(map(int, input().split())))"),
        fenced(STDIN_WRONG),
        fenced("a, b = input().split()\nprint(int(a) + int(b))"),
    ]

    def script(request: GenerationRequest) -> str:
        return programs[int(request.meta["slot"])]

    engine = mock_engine(script, RSAConfig(n=3, k=2, t=1, task="code")).engine
    result = asyncio.run(engine.run(problem, task))
    step = result.steps[-1]
    assert step.agreement == pytest.approx(2 / 3)
    assert result.selected_slot in (0, 2)
    assert task.grade(problem, result.text).correct


def test_same_program_on_same_tests_is_graded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    task = CodeTask(Sandbox(SandboxConfig(test_timeout=5.0, memory_mb=256)))
    runs = []
    real_run = task.sandbox.run

    async def counting(*args: object, **kwargs: object) -> object:
        runs.append(args)
        return await real_run(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(task.sandbox, "run", counting)
    problem = problem_from_row(stdin_row())
    first = task.grade(problem, fenced(STDIN_CORRECT, "one way of saying it"))
    count = len(runs)
    again = task.grade(problem, fenced(STDIN_CORRECT, "another way of saying it"))
    assert first == again and first.correct and count == 3 and len(runs) == count
    # Different tests under the same problem id are graded afresh.
    row = stdin_row()
    row["public_test_cases"] = json.dumps([{"input": "2 2\n", "output": "5\n"}])
    changed = task.grade(problem_from_row(row), fenced(STDIN_CORRECT))
    assert not changed.correct and len(runs) > count


def test_early_stop_compares_vote_keys(task: CodeTask, mock_engine: Callable[..., MockRun]) -> None:
    """Differently written programs that print the same count as one answer, so a
    unanimous population stops early even though no two texts are equal."""
    problem = problem_from_row(stdin_row())

    def script(request: GenerationRequest) -> str:
        step, slot = request.meta["step"], request.meta["slot"]
        return fenced(f"# step {step} slot {slot}\n{STDIN_CORRECT}")

    config = RSAConfig(n=2, k=2, t=5, task="code", early_stop="unanimous")
    engine = mock_engine(script, config).engine
    result = asyncio.run(engine.run(problem, task))
    assert result.steps_run == 2
    assert result.steps[-1].majority_key is not None
    assert result.steps[-1].majority_key == result.steps[0].majority_key
