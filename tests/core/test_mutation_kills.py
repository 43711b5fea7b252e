"""Behaviour tests written against mutmut survivors and "no tests" mutants (docs/TESTING.md):
each asserts something a user would meet if the mutated line shipped."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from starlette.requests import Request

from recursa import Dispatcher, Engine, RSAConfig
from recursa.backends.base import Completion, GenerationRequest
from recursa.backends.dispatch import Usage, valid_unicode
from recursa.errors import RecursaError
from recursa.result import StepResult
from recursa.runs.journal import GENERATE, VERIFY, Journal, request_hash
from recursa.selection import cluster_keys
from recursa.serve.auth import require_bearer
from recursa.serve.errors import APIError
from recursa.tasks import get_task
from recursa.tasks.base import Problem
from recursa.tasks.math import math_reference_error
from recursa.tasks.multiple_choice import MultipleChoiceTask, grade_choice, reference_normal_form
from recursa.tasks.reasoning_gym import grade_reasoning_gym
from tests.helpers.mock_engine import mock_backend as build_mock_backend

KEY = "s3cret-key"


def _request(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "method": "POST", "path": "/v1/x", "headers": headers})


# -- serve/auth.py: require_bearer ------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        f"Basic {KEY}",  # the right key under another scheme
        f"Token {KEY}",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Bearer wrong",
        f"Bearer {KEY}x",
        f"{KEY}",
    ],
)
def test_bearer_refuses_anything_but_bearer_and_the_key(header: str | None) -> None:
    with pytest.raises(APIError) as info:
        require_bearer(_request(header), KEY)
    assert info.value.status == 401
    assert info.value.code == "invalid_api_key"


@pytest.mark.parametrize("header", [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER {KEY}"])
def test_bearer_accepts_the_key_with_any_case_of_scheme(header: str) -> None:
    require_bearer(_request(header), KEY)  # no exception


def test_bearer_without_a_server_key_checks_nothing() -> None:
    require_bearer(_request(None), None)
    require_bearer(_request("Basic whatever"), None)


def test_bearer_missing_and_wrong_key_say_different_things() -> None:
    with pytest.raises(APIError) as missing:
        require_bearer(_request(f"Basic {KEY}"), KEY)
    with pytest.raises(APIError) as wrong:
        require_bearer(_request("Bearer nope"), KEY)
    assert "missing API key" in str(missing.value)
    assert "incorrect API key" in str(wrong.value)


# -- runs/journal.py --------------------------------------------------------------------
def _req(text: str = "q", temperature: float = 0.7) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": text}],
        max_tokens=16,
        temperature=temperature,
        seed=3,
        key=f"k-{text}",
    )


def test_journal_round_trip_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    assert j.sessions() == 0
    s1 = j.begin_session()
    assert s1 == 1 and j.session == 1
    j.put("p1", GENERATE, 1, 0, _req("a"), Completion("one", "stop", 5, 7))
    j.put("p1", GENERATE, 1, 1, _req("b"), Completion("two", "length", 6, 8))
    j.put("p1", VERIFY, 1, 0, _req("c"), Completion("yes", "stop", 1, 2))
    assert (j.requested, j.requested_tokens) == (3, 17)
    assert j.count() == 3
    assert j.count(GENERATE) == 2
    assert j.count(VERIFY) == 1
    assert j.count(session=1) == 3 and j.count(GENERATE, session=2) == 0
    got = j.get("p1", GENERATE, 1, 1)
    assert got == Completion("two", "length", 6, 8)
    assert j.reused == 1
    assert j.get("p1", GENERATE, 2, 1) is None
    assert j.get("p1", VERIFY, 1, 1) is None
    assert j.get("p2", GENERATE, 1, 1) is None
    assert j.reused == 1  # misses are not reuses
    # The engine's store protocol is the generate phase unless a selection names another.
    assert j.lookup("p1", 1, 0) == Completion("one", "stop", 5, 7)
    assert j.lookup("p1", 1, 0, phase=VERIFY) == Completion("yes", "stop", 1, 2)
    assert j.lookup("p1", 1, 1, phase=VERIFY) is None
    j.record("p1", 2, 0, _req("d"), Completion("no", "stop", 1, 1), phase=VERIFY)
    j.record("p1", 2, 0, _req("e"), Completion("three", "stop", 1, 4))
    assert j.count(VERIFY) == 2 and j.count(GENERATE) == 3
    assert j.get("p1", VERIFY, 2, 0) == Completion("no", "stop", 1, 1)
    assert j.get("p1", GENERATE, 2, 0) == Completion("three", "stop", 1, 4)
    j.end_session()
    j.close()

    again = Journal(path)
    assert again.sessions() == 1
    assert again.get_meta("schema") == "1"
    assert again.requested == 0 and again.reused == 0
    assert again.begin_session() == 2
    again.put("p9", GENERATE, 1, 0, _req(), Completion("x", "stop", 1, 1))
    assert again.count(session=2) == 1 and again.count(session=1) == 5
    again.close()

    row = sqlite3.connect(path).execute(
        "SELECT request_key, request_seed, request_hash, max_tokens, temperature, session "
        "FROM completions WHERE problem_id = 'p1' AND phase = 'generate' AND slot = 1"
    )
    assert row.fetchone() == ("k-b", 3, request_hash(_req("b")), 16, 0.7, 1)


def test_journal_refuses_a_second_write_of_one_slot(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    j.put("p", GENERATE, 1, 0, _req(), Completion("a"))
    with pytest.raises(RecursaError, match="already holds generate step 1 slot 0"):
        j.put("p", GENERATE, 1, 0, _req(), Completion("b"))
    assert j.get("p", GENERATE, 1, 0) == Completion("a")
    assert j.requested == 1


def test_journal_meta(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    assert j.get_meta("config") is None
    j.set_meta("config", "a")
    j.set_meta("config", "b")
    assert j.get_meta("config") == "b"


def test_journal_wall_seconds_sums_sessions(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    j.begin_session()
    j.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM sessions")
    db.execute("INSERT INTO sessions (id, started, ended) VALUES (1, 100.0, 110.5)")
    # killed session: counts up to its last completion
    db.execute("INSERT INTO sessions (id, started, ended) VALUES (2, 200.0, NULL)")
    # killed before any completion: counts nothing
    db.execute("INSERT INTO sessions (id, started, ended) VALUES (3, 300.0, NULL)")
    for created in (203.0, 204.0):
        db.execute(
            "INSERT INTO completions VALUES ('p', 'generate', 1, ?, 't', 'stop', 0, 0, '', "
            "NULL, '', 1, 1.0, 2, ?)",
            (int(created), created),
        )
    db.close()
    assert Journal(path).wall_seconds() == pytest.approx(10.5 + 4.0)


def test_journal_damaged_or_foreign_file_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(RecursaError, match="is damaged"):
        Journal(bad)
    newer = tmp_path / "newer.sqlite"
    j = Journal(newer)
    j.set_meta("schema", "99")
    j.close()
    with pytest.raises(RecursaError, match="schema version 99"):
        Journal(newer)
    # An empty file is a fresh journal, not a damaged one.
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert Journal(empty).get_meta("schema") == "1"


def test_journal_in_unwritable_place_is_a_plain_failure(tmp_path: Path) -> None:
    with pytest.raises(RecursaError, match="cannot use the journal") as info:
        Journal(tmp_path / "no" / "such" / "dir" / "j.sqlite")
    assert "damaged" not in str(info.value)


def test_request_hash_covers_sampling() -> None:
    base = _req()
    assert request_hash(base) == request_hash(_req())
    assert request_hash(base) != request_hash(_req(temperature=0.8))
    assert request_hash(base) != request_hash(_req("other"))
    assert len(request_hash(base)) == 32


# -- selection.cluster_keys ---------------------------------------------------------------
def test_cluster_keys_groups_by_key_in_first_appearance_order() -> None:
    clusters = cluster_keys(["b", None, "a", "b", "a", "b"], ["B1", "x", "A1", "B2", "A2", "B3"])
    assert [(c.answer, c.members) for c in clusters] == [("B1", [0, 3, 5]), ("A1", [2, 4])]
    assert cluster_keys([None, None], ["x", "y"]) == []


# -- tasks/multiple_choice.py -------------------------------------------------------------
def test_grade_choice_verdicts() -> None:
    assert grade_choice("so \\boxed{B}", "B").score == 1.0
    assert grade_choice("so \\boxed{B}", " b ").score == 1.0  # reference letter normalised
    wrong = grade_choice("so \\boxed{C}", "B")
    assert (wrong.score, wrong.answer, wrong.reason) == (0.0, "C", "wrong option")
    assert grade_choice("The answer is B.", "B").answer is None
    assert grade_choice("\\boxed{B}", None).score == 0.0
    assert grade_choice("\\boxed{B}", "  ").reason == "the problem has no reference answer"
    long = grade_choice("\\boxed{B: 4000 cal}", "B")
    assert long.score == 0.0 and "option letter alone" in long.reason
    assert "option letter alone" in grade_choice("\\boxed{b}", "C").reason
    assert grade_choice("\\boxed{E}", "A", ["w", "x", "y"]).reason == "there is no option E"
    assert grade_choice("\\boxed{C}", "A", ["w", "x", "y"]).reason == "wrong option"
    assert grade_choice(None, "A").score == 0.0


def test_multiple_choice_task_renders_and_grades_options() -> None:
    task = MultipleChoiceTask()
    problem = Problem(id="q", question="Pick one.", answer="B", meta={"options": ["x", "y"]})
    assert task.problem_text(problem) == "Pick one.\n\nA) x\nB) y"
    assert task.problem_text(Problem(id="q", question="Bare.", answer="A")) == "Bare."
    assert "\\boxed{" in task.format_instruction(problem)
    assert task.extract("thus \\boxed{ B }") == "B"
    assert task.key(" B ") == "B"
    assert task.grade(problem, "\\boxed{B}").score == 1.0
    assert task.grade(problem, "\\boxed{C}").reason == "there is no option C"


# -- tasks/math.py: math_reference_error --------------------------------------------------
def test_math_reference_error() -> None:
    assert math_reference_error("42") is None
    assert math_reference_error("-3") is None
    assert math_reference_error("\\frac{1}{2}") is None
    assert math_reference_error("") == "the reference answer is empty"
    assert "unbalanced braces" in (math_reference_error("\\frac{1}{2") or "")
    assert "unbalanced braces" in (math_reference_error("}1{") or "")


# -- tasks/reasoning_gym.py: grade_reasoning_gym ------------------------------------------
def test_reasoning_gym_exact_match_without_an_entry() -> None:
    good = grade_reasoning_gym("<answer> Paris  France </answer>", " Paris France", {})
    assert (good.score, good.answer, good.reason) == (1.0, "Paris  France", "")
    assert grade_reasoning_gym("<answer>paris</answer>", "Paris", {}).score == 0.0
    bad = grade_reasoning_gym("<answer>Rome</answer>", "Paris", {})
    assert (bad.score, bad.answer, bad.reason) == (0.0, "Rome", "answer differs from the reference")
    none = grade_reasoning_gym("<answer>Rome</answer>", None, {})
    assert (none.score, none.answer) == (0.0, "Rome")
    assert none.reason == "the problem has no reference answer"
    # A name without an entry (or an entry without a name) is graded by exact match too.
    assert grade_reasoning_gym("<answer>1</answer>", "1", {"dataset_name": "sokoban"}).score == 1.0
    entry_only = {"entry": {"answer": "2", "metadata": {}}}
    assert grade_reasoning_gym("<answer>1</answer>", "1", entry_only).score == 1.0
    assert grade_reasoning_gym("<answer>1</answer>", "1", {"entry": "{not json"}).score == 1.0
    missing = grade_reasoning_gym("no tags", "1", {})
    assert (missing.score, missing.answer) == (0.0, None)
    odd = grade_reasoning_gym(7, "1", {})
    assert odd.score == 0.0 and "int" in odd.reason


def test_reasoning_gym_scorer_verdicts_keep_the_answer() -> None:
    import json

    import reasoning_gym

    entry = reasoning_gym.create_dataset("sokoban", size=1, seed=5)[0]
    meta = {"dataset_name": "sokoban", "entry": json.loads(json.dumps(entry))}
    good = grade_reasoning_gym(f"<answer>{entry['answer']}</answer>", None, meta)
    assert (good.score, good.answer, good.reason) == (1.0, entry["answer"], "")
    wrong = entry["answer"][::-1]
    bad = grade_reasoning_gym(f"<answer>{wrong}</answer>", None, meta)
    assert bad.answer == wrong and bad.score < 1.0
    assert bad.reason == f"sokoban scorer gave {bad.score:g}"
    meta_bad = {"dataset_name": "no_such_dataset", "entry": {"answer": "1", "metadata": {}}}
    failed = grade_reasoning_gym("<answer>1</answer>", "1", meta_bad)
    assert (failed.score, failed.answer) == (0.0, "1")


# -- engine.py: early stop on vote keys (code tasks) ---------------------------------------
def _stop_engine() -> Engine:
    cfg = RSAConfig(n=4, k=2, t=4, task="math", early_stop="unanimous")
    return Engine(Dispatcher(build_mock_backend()), cfg)


def _stepres(answer: str | None, key: str | None, agreement: float = 1.0) -> StepResult:
    return StepResult(
        step=1, candidates=[], agreement=agreement, majority_answer=answer, majority_key=key
    )


def test_early_stop_compares_vote_keys_when_both_steps_have_them() -> None:
    engine, task = _stop_engine(), get_task("math")
    # Same key, different-looking answers: agreed (code outputs equal on every test).
    assert engine._agreed(task, _stepres("1", "k"), _stepres("2", "k"))
    # Different keys, equal answers: not agreed.
    assert not engine._agreed(task, _stepres("5", "a"), _stepres("5", "b"))
    # A key on one side only: the answers decide.
    assert engine._agreed(task, _stepres("5", "a"), _stepres("5", None))
    assert engine._agreed(task, _stepres("5", None), _stepres("5", "a"))
    assert not engine._agreed(task, _stepres("5", None), _stepres("6", "a"))
    # No answer on either side: never agreed.
    assert not engine._agreed(task, _stepres(None, "k"), _stepres("5", "k"))
    assert not engine._agreed(task, _stepres("5", "k"), _stepres(None, "k"))
    assert not engine._agreed(task, _stepres("5", "k"), _stepres("5", "k", 0.75))
    assert not engine._agreed(task, None, _stepres("5", "k"))


# -- backends/dispatch.py: usage totals and text repair -------------------------------------
def test_usage_adds_up_every_completion() -> None:
    usage = Usage()
    usage.add(Completion("a", prompt_tokens=3, completion_tokens=5))
    usage.add(Completion("b", prompt_tokens=4, completion_tokens=6))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.requests) == (7, 11, 2)


def test_valid_unicode_replaces_lone_surrogates_and_joins_pairs() -> None:
    assert valid_unicode("ok \u00e9") == "ok \u00e9"
    assert valid_unicode("a\ud800b") == "a\ufffdb"
    assert valid_unicode("\ud83d\ude00") == "\U0001f600"


# -- engine.py: a journal replays a run exactly -------------------------------------------
def test_a_journaled_run_is_replayed_slot_for_slot(tmp_path: Path) -> None:
    cfg = RSAConfig(n=3, k=2, t=2, task="math", seed=4)
    problem = Problem("p7", "q", answer="5", task="math")
    first = Journal(tmp_path / "j.sqlite")
    first.begin_session()
    ran = asyncio.run(Engine(Dispatcher(build_mock_backend()), cfg, store=first).run(problem))
    assert first.count(GENERATE) == 6 and first.requested == 6
    rows = sqlite3.connect(tmp_path / "j.sqlite").execute(
        "SELECT problem_id, step, slot, text FROM completions ORDER BY step, slot"
    )
    texts = {(s, c.slot): c.text for s, st in enumerate(ran.steps, 1) for c in st.candidates}
    assert [(r[0], r[1], r[2]) for r in rows.fetchall()] == [
        ("p7", s, i) for s in (1, 2) for i in range(3)
    ]
    first.close()

    again = Journal(tmp_path / "j.sqlite")
    backend = build_mock_backend(lambda req: "never \\boxed{0}")
    replay = asyncio.run(Engine(Dispatcher(backend), cfg, store=again).run(problem))
    assert backend.calls == [] and again.reused == 6 and again.requested == 0
    assert {
        (s, c.slot): c.text for s, st in enumerate(replay.steps, 1) for c in st.candidates
    } == texts
    assert replay.answer == ran.answer and replay.problem_id == "p7"


def test_reference_normal_form_is_verls_strip_string_for_letters() -> None:
    assert reference_normal_form(" B\n") == "B"
    assert reference_normal_form("B\nC") == "BC"
    assert reference_normal_form("\\!B") == "B"
    assert reference_normal_form("\\$B") == "B"
    assert reference_normal_form("B \\text{ cal}") == "B"
    assert reference_normal_form("B\\text{cal}") == "B\\text{cal}"
    assert reference_normal_form("x = B") == "B"
    assert reference_normal_form("ab=B") == "B"
    assert reference_normal_form("ab = B") == "ab=B"  # "ab " is three characters
    assert reference_normal_form("abc = B") == "abc=B"
    assert reference_normal_form("a = b = B") == "a=b=B"
    assert reference_normal_form("B : 4000 cal") == "B:4000cal"


def test_choice_verdicts_keep_the_answer_and_name_the_problem() -> None:
    options = ["w", "x", "y"]
    assert grade_choice("\\boxed{B}", "B", options).answer == "B"
    assert grade_choice("\\boxed{E}", "A", options).answer == "E"
    assert grade_choice("\\boxed{B}", None).answer == "B"
    assert "option letter alone" in grade_choice("\\boxed{BB}", "A").reason
    assert "option letter alone" in grade_choice("\\boxed{1}", "A").reason
    assert grade_choice("no box", "A").reason == "no \\boxed{} answer found in the completion"


def test_choice_reference_is_its_first_letter_and_options_are_optional() -> None:
    assert grade_choice("\\boxed{B}", "B) Paris").score == 1.0
    task = MultipleChoiceTask()
    bare = Problem(id="q", question="Pick.", answer="C")
    assert task.grade(bare, "\\boxed{C}").score == 1.0
    assert task.grade(bare, "\\boxed{Z}").reason == "wrong option"  # no options: any letter
