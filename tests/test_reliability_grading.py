"""Answer extraction and grading on arbitrary text, for every task family: never raises, never
hangs (adversarial math is time-bounded on the main thread and off it), and never runs the
answer as code (Reasoning Gym scorers that evaluate answers run guarded, in a helper
process)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recursa.result import Candidate
from recursa.selection import ranked_clusters
from recursa.tasks import TASKS, Grade, Problem, get_task, rg_worker
from recursa.tasks.expression_guard import UnsafeExpression, guarded_eval
from recursa.verification import parse_verdict

pytestmark = pytest.mark.reliability

#: Seconds any one extraction or grade may take. math-verify's own limits are 5 s per parse
#: and 5 s per comparison; everything else is linear and takes milliseconds.
BOUND_S = 30.0

ARC_GRID = "012\n340"
ARC_META = {
    "train": [{"input": [[0, 1], [2, 3]], "output": [[3, 2], [1, 0]]}],
    "test_input": [[1, 1], [0, 0]],
}


def rg_problem(name: str) -> Problem:
    import reasoning_gym

    entry = json.loads(json.dumps(reasoning_gym.create_dataset(name, size=1, seed=3)[0]))
    return Problem(
        f"{name}/0",
        entry["question"],
        entry["answer"],
        "rg",
        {"dataset_name": name, "entry": entry},
    )


PROBLEMS: dict[str, Problem] = {
    "general": Problem("g", "q", "Paris", "general"),
    "math": Problem("m", "q", "\\frac{1}{2}", "math"),
    "mcq": Problem("c", "q", "B", "mcq", {"options": ["1", "2", "3", "4"]}),
    "code": Problem("k", "q", None, "code"),
    "arc": Problem("a", "q", ARC_GRID, "arc", ARC_META),
}
#: Reasoning Gym datasets whose scorers evaluate the answer (eval or sympy), and a plain one.
RG_DATASETS = ("countdown", "n_queens", "polynomial_multiplication", "basic_arithmetic")

# Text built from the pieces answer formats are made of, so that examples reach the parsers.
PIECES = [
    "\\boxed{",
    "}",
    "{",
    "\\fbox{",
    "<answer>",
    "</answer>",
    "```python\n",
    "```",
    "\n",
    "Final answer:",
    "the answer is (",
    "B",
    ")",
    "\\frac{1}{2}",
    "0.5",
    "9^{9^{9}}",
    "^",
    "!",
    "__import__('os')",
    "exec(",
    "[",
    "]",
    "012\n340",
    "\\left(",
    "\\right)",
    "\\sqrt{",
    "True",
    "False",
    "\udcff",
    "\x00",
    "ü",
    " ",
]
texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=60).map("".join),
)


def bounded(fn: Callable[[], Any]) -> Any:
    started = time.monotonic()
    result = fn()
    assert time.monotonic() - started < BOUND_S
    return result


def check_grade(grade: Grade) -> None:
    assert isinstance(grade, Grade)
    assert 0.0 <= grade.score <= 1.0
    assert grade.score == 1.0 or grade.reason


SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("family", sorted(PROBLEMS))
@SETTINGS
@given(text=texts)
@example(text="\\boxed{" * 50_000)
@example(text="{" * 100_000 + "}" * 99_999)
@example(text="<answer>" * 50_000 + "</answer>")
@example(text="```python\n" * 20_000)
@example(text="Final answer: " * 20_000)
@example(text="the answer is (" * 20_000)
@example(text="x" * 1_000_000)
def test_extraction_and_grading_never_raise_or_hang(family: str, text: str) -> None:
    task = get_task(family)
    problem = PROBLEMS[family]
    answer = bounded(lambda: task.extract(text))
    assert answer is None or isinstance(answer, str)
    check_grade(bounded(lambda: task.grade(problem, text)))
    if answer is not None:
        assert bounded(lambda: task.equivalent(answer, answer)) is True  # reflexive
        bounded(lambda: task.key(answer))


def test_every_task_family_is_covered() -> None:
    assert set(PROBLEMS) | {"rg"} == set(TASKS)


@pytest.fixture(scope="module")
def rg_problems() -> dict[str, Problem]:
    return {name: rg_problem(name) for name in RG_DATASETS}


@pytest.mark.parametrize("name", RG_DATASETS)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=texts)
@example(text="<answer>" + "(" * 5000 + "</answer>")
@example(text="<answer>[" * 3000 + "</answer>")
def test_reasoning_gym_grading_never_raises(
    name: str, text: str, rg_problems: dict[str, Problem]
) -> None:
    problem = rg_problems[name]
    task = get_task("rg")
    for completion in (text, f"<answer>{text}</answer>"):
        check_grade(bounded(lambda c=completion: task.grade(problem, c)))  # type: ignore[misc]


@pytest.mark.parametrize("name", RG_DATASETS)
def test_reasoning_gym_scores_its_own_answers(name: str, rg_problems: dict[str, Problem]) -> None:
    problem = rg_problems[name]
    grade = get_task("rg").grade(problem, f"<answer>{problem.answer}</answer>")
    assert grade.score == 1.0, grade


CODE_ANSWERS = [
    "__import__('os').system('touch {marker}')",
    "__import__('pathlib').Path('{marker}').touch()",
    "exec(\"open('{marker}', 'w')\")",
    "eval(\"open('{marker}', 'w')\")",
    "open('{marker}', 'w')",
    "(lambda: open('{marker}', 'w'))()",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "x.__class__",
]


@pytest.mark.parametrize("name", ["countdown", "n_queens", "polynomial_multiplication"])
@pytest.mark.parametrize("template", CODE_ANSWERS)
def test_an_answer_is_never_run_as_code(
    name: str, template: str, rg_problems: dict[str, Problem], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    answer = template.format(marker=marker)
    grade = get_task("rg").grade(rg_problems[name], f"<answer>{answer}</answer>")
    check_grade(grade)
    assert grade.score < 1.0
    assert not marker.exists()


def test_a_scorer_that_runs_too_long_is_stopped(
    rg_problems: dict[str, Problem], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rg_worker, "DEADLINE_S", 2.0)
    monkeypatch.setattr(rg_worker.score_in_child, "__defaults__", (2.0,))
    problem = rg_problems["countdown"]
    started = time.monotonic()
    grade = get_task("rg").grade(problem, "<answer>9**9**9**9</answer>")
    assert time.monotonic() - started < BOUND_S
    assert grade.score == 0.0 and "did not finish within 2 s" in grade.reason
    # The helper is replaced: the next answer is scored as usual.
    assert get_task("rg").grade(problem, f"<answer>{problem.answer}</answer>").score == 1.0


@pytest.mark.parametrize(
    "source",
    ["__import__('os')", "open('x')", "().__class__", "[x for x in (1,)]", "lambda: 1", "f(1)"],
)
def test_guarded_eval_refuses_code(source: str) -> None:
    with pytest.raises(UnsafeExpression):
        guarded_eval(source)


def test_guarded_eval_reads_literals_and_arithmetic() -> None:
    assert guarded_eval("['a', 'b']") == ["a", "b"]
    assert guarded_eval("((0x1 + 0x2) << 3)") == 24
    assert guarded_eval("x + 1", {"x": 2}) == 3  # with a namespace: the real eval


# Adversarial math: parsing and comparison are time-bounded on the main thread (math-verify's
# signal-based limits) and off it (a helper process with a deadline).
ADVERSARIAL_MATH = [
    "\\boxed{9^{9^{9^{9}}}}",
    "\\boxed{(10^{10})!}",
    "\\boxed{" + "\\frac{" * 300 + "1" + "}{2}" * 300 + "}",
    "\\boxed{" + "\\sqrt{" * 500 + "2" + "}" * 500 + "}",
    "\\boxed{" + "(" * 400 + "1" + ")" * 400 + "}",
]


def _in_thread(fn: Callable[[], Any]) -> Any:
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    worker.join(BOUND_S * 2)
    assert not worker.is_alive(), "grading did not finish"
    return out[0]


@pytest.mark.parametrize("text", ADVERSARIAL_MATH, ids=range(len(ADVERSARIAL_MATH)))
def test_adversarial_math_is_time_bounded_on_and_off_the_main_thread(text: str) -> None:
    task, problem = get_task("math"), PROBLEMS["math"]
    check_grade(bounded(lambda: task.grade(problem, text)))
    check_grade(_in_thread(lambda: bounded(lambda: task.grade(problem, text))))


def test_huge_number_math_is_bounded_on_the_main_thread_without_signals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An alarm can be swallowed (it may land in a finaliser); here no alarm fires at all, as
    if every one were swallowed, and a power tower still ends: it goes to the helper."""
    import signal

    monkeypatch.setattr(signal, "alarm", lambda seconds: 0)
    problem = Problem("m", "q", "1", "math")
    grade = bounded(lambda: get_task("math").grade(problem, "\\boxed{9^{9^{9^{9}}}}"))
    assert grade.score == 0.0


def test_majority_vote_over_adversarial_answers_is_bounded() -> None:
    task = get_task("math")
    texts_ = ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{1}", "\\boxed{" + "{" * 2000 + "}"]
    population = [
        Candidate(step=1, slot=i, text=t, answer=task.extract(t)) for i, t in enumerate(texts_)
    ]
    clusters = bounded(lambda: ranked_clusters(task, population, 0, "p"))
    voters = [c for c in population if c.answer is not None]  # no answer: no vote
    assert sum(len(c.members) for c in clusters) == len(voters) == 2


@SETTINGS
@given(text=texts)
def test_verdict_parsing_never_raises(text: str) -> None:
    assert parse_verdict(text) in (True, False, None)
