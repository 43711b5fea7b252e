"""`recursa grade`: completions made elsewhere, graded with the evaluation graders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recursa.benchmarks import load_benchmark
from recursa.cli import main
from recursa.grading import grade_completions


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    path = tmp_path / "bench.jsonl"
    rows = [
        {"question": "Half of one?", "answer": "\\frac{1}{2}"},
        {"id": "big", "question": "Largest?", "options": ["1", "9", "3"], "answer": "B"},
        {"question": "6*7?", "answer": "42"},
        {"question": "a row with no answer"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


@pytest.fixture
def completions(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "completions.jsonl",
        [
            {"problem_id": "0", "completion": "It is \\boxed{0.5}."},
            {"problem_id": "big", "completion": "The answer is \\boxed{A}."},
            {"problem_id": 0, "completion": "no box at all"},
            {"problem_id": "3", "completion": "\\boxed{1}"},  # row 3 was skipped
            "{not json",
            {"problem_id": "big"},
        ],
    )


def test_grade_prints_one_line_per_result_and_a_summary(
    bench: Path, completions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-q", "grade", str(bench), "--completions", str(completions)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split("\t") == ["0", "1", '"0.5"']
    assert out[1].split("\t") == ["big", "0", '"A"', "wrong option"]
    assert out[2].split("\t")[:3] == ["0", "0", "(none)"]
    assert "no complete \\boxed" in out[2]
    summary = "\n".join(out[3:])
    assert "graded 3 completion(s) of 2 problem(s): mean score 0.333, 1 correct" in summary
    assert "unknown problem ids: 1: '3' (line 4)" in summary
    assert "bad lines: 2: line 5: not valid JSON" in summary
    assert "line 6: no completion text" in summary
    assert "problems without a completion: 1" in summary


def test_grade_json(bench: Path, completions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "grade", str(bench), "--completions", str(completions), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(r["problem_id"], r["score"]) for r in data["results"]] == [
        ("0", 1.0),
        ("big", 0.0),
        ("0", 0.0),
    ]
    assert data["summary"]["graded"] == 3
    assert data["summary"]["mean_score"] == pytest.approx(1 / 3)
    assert data["summary"]["unknown_ids"] == [{"line": 4, "problem_id": "3"}]
    assert [b["line"] for b in data["summary"]["bad_lines"]] == [5, 6]


def test_grade_reasoning_gym_uses_the_task_scorer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_benchmark("rg:maze,mini_sudoku", size=2, seed=3)
    lines: list[object] = [
        {"problem_id": p.id, "completion": f"Done. <answer>{p.meta['entry']['answer']}</answer>"}
        for p in data.problems
    ]
    lines.append({"problem_id": "maze/0", "completion": "<answer> and </answer>"})
    path = write_lines(tmp_path / "rg.jsonl", lines)
    args = ["-q", "grade", "rg:maze,mini_sudoku", "--size", "2", "--seed", "3"]
    assert main([*args, "--completions", str(path), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["score"] for r in results] == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert results[-1]["answer"] == "and"  # an echoed instruction alone is the only answer
    # the same completions graded against another seed's problems are (mostly) wrong
    assert main(["-q", "grade", "rg:maze,mini_sudoku", "--size", "2", "--seed", "4",
                 "--completions", str(path), "--json"]) == 0  # fmt: skip
    other = json.loads(capsys.readouterr().out)["results"]
    assert sum(r["score"] for r in other) < 4


def test_grade_arc_agi_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problem = load_benchmark("arc-agi-2", limit=1).problems[0]
    path = write_lines(
        tmp_path / "arc.jsonl",
        [
            {"problem_id": problem.id, "completion": f"<answer>\n{problem.answer}\n</answer>"},
            {"problem_id": problem.id, "completion": "<answer>\n0\n</answer>"},
        ],
    )
    assert main(["-q", "grade", "arc-agi-2", "--completions", str(path), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["score"] for r in results] == [1.0, 0.0]


def test_grade_errors_are_one_sentence(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["grade", str(bench), "--completions", str(tmp_path / "none.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["grade", "nonesuch", "--completions", str(bench)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown benchmark 'nonesuch'" in err[0]
    unknown_only = write_lines(tmp_path / "u.jsonl", [{"problem_id": "zz", "completion": "x"}])
    assert main(["-q", "grade", str(bench), "--completions", str(unknown_only)]) == 1
    assert "no completion could be graded" in capsys.readouterr().err


def test_grade_from_python(bench: Path) -> None:
    report = grade_completions(
        str(bench),
        [
            {"problem_id": "2", "completion": "\\boxed{42}"},
            {"problem_id": "2", "completion": "\\boxed{41}"},
        ],
    )
    assert [r.score for r in report.results] == [1.0, 0.0]
    assert report.mean_score == 0.5
    assert sorted(report.missing) == ["0", "big"]


def test_grade_command_line_and_stdin(bench: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "recursa.cli", "grade", str(bench), "--completions", "-"],
        input=json.dumps({"problem_id": "2", "completion": "\\boxed{42}"}) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == '2\t1\t"42"'
    assert "Traceback" not in proc.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "recursa.cli", "grade", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    assert "--completions" in help_text and "arc-agi-2" in help_text
