"""Graders on the tricky cases: equivalent forms, nesting, echoed instructions, order, junk."""

from __future__ import annotations

import json
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recursa.result import Candidate
from recursa.selection import cluster_answers, top_answers
from recursa.tasks import TASKS, Problem, get_task
from recursa.tasks.arc import grade_arc, parse_grid
from recursa.tasks.code import extract_code
from recursa.tasks.math import extract_boxed, grade_math, math_equivalent
from recursa.tasks.math_worker import verify_in_child
from recursa.tasks.multiple_choice import grade_choice
from recursa.tasks.reasoning_gym import extract_tagged, grade_reasoning_gym

POWER_TOWER = "9^{9^{9^{9}}}"


# ---- math ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "boxed"),
    [("\\frac{1}{2}", "0.5"), ("0.5", "\\frac{1}{2}"), ("\\dfrac{1}{2}", "1/2"), ("42", "042")],
)
def test_math_equivalent_forms_score_one(reference: str, boxed: str) -> None:
    grade = grade_math(f"so the answer is \\boxed{{{boxed}}}.", reference)
    assert grade.score == 1.0, grade
    assert grade.answer == boxed


def test_math_wrong_value_scores_zero_with_reason() -> None:
    grade = grade_math("\\boxed{0.6}", "\\frac{1}{2}")
    assert grade.score == 0.0
    assert grade.answer == "0.6"
    assert "differs" in grade.reason


def test_boxed_nested_braces_and_last_box_wins() -> None:
    text = "first \\boxed{1} then \\boxed{\\frac{1}{2^{3}}} done"
    assert extract_boxed(text) == "\\frac{1}{2^{3}}"
    assert grade_math(text, "1/8").score == 1.0
    # an unclosed last box does not hide the earlier complete one; an empty box is no answer
    assert extract_boxed("\\boxed{5} and then \\boxed{6") == "5"
    assert extract_boxed("\\boxed{7} \\boxed{ }") == "7"
    # nested boxes: the innermost (last opened) complete box
    assert extract_boxed("\\boxed{\\boxed{9}}") == "9"


def test_extract_boxed_is_linear_on_many_unclosed_boxes() -> None:
    text = "\\boxed{" * 30_000 + "x"
    started = time.monotonic()
    assert extract_boxed(text) is None
    # a quadratic scan of this input takes minutes; the margin is generous for a busy CPU
    assert time.monotonic() - started < 10


def test_integers_compare_as_integers() -> None:
    assert math_equivalent("042", "42")
    assert not math_equivalent("41", "42")


def _in_thread(fn: object, *args: str) -> object:
    box: dict[str, object] = {}

    def target() -> None:
        box["value"] = fn(*args)  # type: ignore[operator]

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(180)
    assert not thread.is_alive(), "grading off the main thread hung"
    return box["value"]


def test_math_verify_off_the_main_thread_stays_correct() -> None:
    # math-verify's signal-based limits do not work off the main thread; the grader must still
    # find real equivalences there and must not hang on a power tower.
    assert _in_thread(math_equivalent, "\\frac{1}{2}", "0.5") is True
    assert _in_thread(math_equivalent, "\\frac{1}{2}", "0.6") is False
    assert _in_thread(math_equivalent, POWER_TOWER, "1") is False
    grade = _in_thread(grade_math, "\\boxed{\\frac{1}{2}}", "0.5")
    assert getattr(grade, "score", None) == 1.0


def test_math_verify_helper_is_killed_at_its_deadline_and_replaced() -> None:
    started = time.monotonic()
    assert verify_in_child(POWER_TOWER, "1", deadline_s=1.0) is None
    assert time.monotonic() - started < 60
    assert verify_in_child("\\frac{1}{2}", "0.5") is True


# ---- Reasoning Gym ------------------------------------------------------------------------


def test_echoed_instruction_is_not_the_answer() -> None:
    text = (
        "The task says to put the answer between <answer> and </answer> tags.\n"
        "Working... the moves are L R U.\n<answer>L R U</answer>"
    )
    assert extract_tagged(text) == "L R U"
    assert extract_tagged("<answer> and <answer>42</answer>") == "42"
    assert extract_tagged("<answer>1</answer> later <answer> </answer>") == "1"
    assert extract_tagged("<answer>never closed") is None


def test_order_sensitive_answers_are_not_merged() -> None:
    task = get_task("rg")
    answers: list[str | None] = ["A B C", "C B A", "U R U'", "U' R U", "A  B C", None]
    clusters = cluster_answers(task, answers)
    groups = sorted(sorted(c.members) for c in clusters)
    assert groups == [[0, 4], [1], [2], [3]]


def test_reasoning_gym_scorer_grades_order() -> None:
    import reasoning_gym

    entry = reasoning_gym.create_dataset("sokoban", size=1, seed=5)[0]
    meta = {"dataset_name": "sokoban", "entry": json.loads(json.dumps(entry))}
    good = grade_reasoning_gym(f"<answer>{entry['answer']}</answer>", entry["answer"], meta)
    assert good.score == 1.0
    reversed_moves = entry["answer"][::-1]
    assert reversed_moves != entry["answer"]
    bad = grade_reasoning_gym(f"<answer>{reversed_moves}</answer>", entry["answer"], meta)
    assert bad.score < 1.0
    assert "sokoban scorer" in bad.reason


def test_reasoning_gym_entry_through_json_still_scores() -> None:
    # arc_agi's scorer compares with tuples; a JSON round trip turns them into lists
    import reasoning_gym

    entry = reasoning_gym.create_dataset("arc_agi", size=1, seed=0)[0]
    meta = {"dataset_name": "arc_agi", "entry": json.dumps(entry)}  # a JSON string, as in verl
    grade = grade_reasoning_gym(f"<answer>{entry['answer']}</answer>", None, meta)
    assert grade.score == 1.0, grade


def test_reasoning_gym_scorer_failure_is_a_zero_not_an_exception() -> None:
    meta = {"dataset_name": "no_such_dataset", "entry": {"answer": "1", "metadata": {}}}
    grade = grade_reasoning_gym("<answer>1</answer>", "1", meta)
    assert grade.score == 0.0
    assert "no_such_dataset scorer failed" in grade.reason


# ---- multiple choice, ARC, code -----------------------------------------------------------


def test_multiple_choice_forms() -> None:
    options = ["Paris", "Rome", "Madrid", "Berlin"]
    assert grade_choice("\\boxed{C}", "C", options).score == 1.0
    assert grade_choice("\\boxed{ C }", "C", options).score == 1.0
    # As strict as the reference (last box, verl's strip_string, equal to the letter):
    decorated = grade_choice("The answer is \\boxed{B: 4000 cal}", "B", options)
    assert (decorated.score, decorated.answer) == (0.0, "B:4000cal")
    assert grade_choice("\\boxed{\\text{(B)}}", "B", options).score == 0.0
    assert grade_choice("\\boxed{Madrid}", "C", options).score == 0.0
    assert grade_choice("The answer is B.", "B", options).answer is None
    assert grade_choice("\\boxed{b}", "B", options).score == 0.0
    assert grade_choice("\\boxed{A} then \\boxed{B}", "B", options).score == 1.0
    assert grade_choice("<think>\\boxed{B}</think> \\boxed{A}", "B", options).score == 0.0
    out_of_range = grade_choice("\\boxed{H}", "A", options)
    assert out_of_range.score == 0.0 and "no option H" in out_of_range.reason
    assert grade_choice("I am not sure", "A", options).reason


ARC_GOLD = "012\n340"


def test_arc_grid_exact_match() -> None:
    assert grade_arc(f"<answer>\n{ARC_GOLD}\n</answer>", ARC_GOLD).score == 1.0
    # separators between cells are tolerated, the grid must still be exact
    assert grade_arc("<answer>\n[0, 1, 2]\n[3, 4, 0]\n</answer>", ARC_GOLD).score == 1.0
    wrong = grade_arc("<answer>\n012\n341\n</answer>", ARC_GOLD)
    assert wrong.score == 0.0 and "1 of 6 cells differ" in wrong.reason
    shape = grade_arc("<answer>\n01\n34\n</answer>", ARC_GOLD)
    assert shape.score == 0.0 and "2x2" in shape.reason


def test_arc_malformed_and_echoed_answers() -> None:
    ragged = grade_arc("<answer>\n012\n34\n</answer>", ARC_GOLD)
    assert ragged.score == 0.0 and "different lengths" in ragged.reason
    words = grade_arc("<answer>the grid is blue</answer>", ARC_GOLD)
    assert words.score == 0.0 and "not a row of digits" in words.reason
    echoed = f"Put it in <answer></answer> tags.\n<answer>\n{ARC_GOLD}\n</answer>"
    assert grade_arc(echoed, ARC_GOLD).score == 1.0
    assert parse_grid("```\n01\n10\n```")[0] == [[0, 1], [1, 0]]


def test_code_extraction_is_last_python_block() -> None:
    text = "```python\nprint(1)\n```\n```bash\nls\n```\n```py\nprint(2)\n```\n```python\nunclosed"
    assert extract_code(text) == "print(2)\n"
    assert extract_code("no code here") is None


# ---- selection ------------------------------------------------------------------------------


def test_top_answers_gives_the_two_largest_clusters() -> None:
    answers = ["7", "7", "8", "8", "8", None, "9"]
    cands = [Candidate(step=1, slot=i, text=str(a), answer=a) for i, a in enumerate(answers)]
    top = top_answers(get_task("rg"), cands, seed=0, problem_id="p", k=2)
    assert [c.answer for c in top] == ["8", "7"]
    assert [c.answer for c in top_answers(get_task("rg"), cands, 0, "p", 10)] == ["8", "7", "9"]


# ---- malformed completions: every grader scores 0 and says why -----------------------------


def _problem(task: str) -> Problem:
    meta: dict[str, object] = {}
    answer: object = "4"
    if task == "mcq":
        answer, meta = "B", {"options": ["1", "4", "5"]}
    if task == "arc":
        answer = ARC_GOLD
    return Problem(id="p", question="q", answer=answer, task=task, meta=meta)


JUNK = [
    "",
    "<answer>",
    "</answer><answer>",
    "\\boxed{",
    "}}}{{{\\boxed{}",
    "```python\n",
    "\x00\udcff",
    "final answer:",
    "<answer>" * 1000,
    7,
    None,
    b"\\boxed{4}",
]


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("junk", JUNK, ids=range(len(JUNK)))
def test_malformed_completions_score_zero_with_a_reason(task: str, junk: object) -> None:
    grade = get_task(task).grade(_problem(task), junk)  # type: ignore[arg-type]
    assert grade.score == 0.0
    assert grade.reason


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("<>/answerboxd{}\\ 0123456789\n`")), max_size=80))
def test_graders_never_raise(text: str) -> None:
    for task in TASKS:
        grade = get_task(task).grade(_problem(task), text)
        assert 0.0 <= grade.score <= 1.0
        if grade.score == 0.0:
            assert grade.reason


# ---- the answer-format instructions through the engine ------------------------------------


def test_mock_aggregates_the_candidates_answers_not_the_format_text() -> None:
    # The aggregation prompt names the format ("<answer></answer> tags") before the
    # candidates; the simulated model must not glue that empty pair onto a candidate's answer.
    from recursa.backends.base import GenerationRequest
    from recursa.backends.mock import MockBackend
    from recursa.prompts import aggregation_messages

    problem = Problem(id="p", question="How many steps?", answer="5", task="rg")
    shown = ["I count <answer>9</answer>", "So <answer>8</answer>", "Then <answer>8</answer>"]
    one_each = ["I count <answer>9</answer>", "So <answer>8</answer>"]
    messages = aggregation_messages(get_task("rg"), problem, shown)
    request = GenerationRequest(messages=messages, max_tokens=64, seed=1, key="p/2/0")
    mock = MockBackend(accuracy=0.0, quality=1.0, words=3)
    text = mock.simulate(request)
    assert text.count("<answer>") == 1
    assert text.endswith("<answer>8</answer>")  # the commonest answer shown
    messages = aggregation_messages(get_task("rg"), problem, one_each)
    tie = mock.simulate(GenerationRequest(messages=messages, max_tokens=64, seed=1, key="k"))
    assert tie.count("<answer>") == 1
    assert tie.endswith("<answer>9</answer>")  # a tie goes to the first shown
