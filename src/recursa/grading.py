"""Grading completions made elsewhere, with exactly the graders evaluation uses.

Each completion names its problem by id (as `recursa eval` reports it; for a local file
without ids, the row index) and is graded by `get_task(problem.task).grade(problem, text)`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recursa.benchmarks import Dataset, load_benchmark
from recursa.errors import UsageError
from recursa.tasks import Grade, Problem, Task, get_task


def grade_problem(
    problem: Problem, completion: str, tasks: Callable[[str], Task] = get_task
) -> Grade:
    """The task's grader. Graders do not raise; if one ever does, that is a score of 0 with
    the error as the reason rather than a crash halfway through a file."""
    try:
        return tasks(problem.task).grade(problem, completion)
    except Exception as exc:
        return Grade(0.0, None, f"the {problem.task} grader failed: {type(exc).__name__}: {exc}")


@dataclass
class GradedCompletion:
    """One completion's verdict."""

    line: int
    problem_id: str
    task: str
    answer: str | None
    score: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GradeReport:
    """Every verdict, plus what could not be graded."""

    benchmark: str
    results: list[GradedCompletion] = field(default_factory=list)
    #: (line number, problem id) for ids the benchmark does not have.
    unknown_ids: list[tuple[int, str]] = field(default_factory=list)
    #: (line number, reason) for lines that are not a usable completion record.
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    #: Ids of the benchmark's problems that no completion named.
    missing: list[str] = field(default_factory=list)

    @property
    def graded(self) -> int:
        return len(self.results)

    @property
    def mean_score(self) -> float:
        return sum(r.score for r in self.results) / len(self.results) if self.results else 0.0

    @property
    def correct(self) -> int:
        return sum(1 for r in self.results if r.score >= 1.0)

    def summary(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "graded": self.graded,
            "problems_graded": len({r.problem_id for r in self.results}),
            "mean_score": self.mean_score,
            "correct": self.correct,
            "unknown_ids": [{"line": n, "problem_id": i} for n, i in self.unknown_ids],
            "bad_lines": [{"line": n, "reason": r} for n, r in self.bad_lines],
            "missing": len(self.missing),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results], "summary": self.summary()}


def parse_completion_line(text: str) -> tuple[str, str]:
    """(problem id, completion) from one JSON line; ValueError says what is wrong."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from exc
    if not isinstance(record, Mapping):
        raise ValueError(f"a JSON {type(record).__name__}, not an object")
    return completion_record(record)


def completion_record(record: Mapping[str, Any]) -> tuple[str, str]:
    """(problem id, completion) from a record; ValueError says what is missing."""
    pid = record.get("problem_id")
    if pid is None or isinstance(pid, (dict, list, bool)) or not str(pid).strip():
        raise ValueError("no problem_id")
    completion = record.get("completion")
    if not isinstance(completion, str):
        raise ValueError("no completion text" if completion is None else "completion is not text")
    return str(pid).strip(), completion


def read_completions(path: str | Path) -> list[tuple[int, str]]:
    """(line number, text) for the non-blank lines of a JSON-lines file ('-' is stdin)."""
    if str(path) == "-":
        text = sys.stdin.read()
    else:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"completions file {p} does not exist")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"completions file {p} is not UTF-8 text") from exc
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise UsageError(f"completions file {path} holds no completions")
    return lines


def grade_records(
    dataset: Dataset,
    records: Iterable[tuple[int, str | Mapping[str, Any]]],
    on_graded: Callable[[GradedCompletion | None], None] | None = None,
    tasks: Callable[[str], Task] = get_task,
) -> GradeReport:
    """Grade (line number, JSON line or record) pairs against the dataset's problems; `tasks`
    gives the task families (a `TaskSet` with a run's resources, e.g. sandbox settings)."""
    problems = dataset.by_id()
    report = GradeReport(benchmark=dataset.name)
    seen: set[str] = set()
    for line, record in records:
        try:
            if isinstance(record, str):
                pid, completion = parse_completion_line(record)
            else:
                pid, completion = completion_record(record)
        except ValueError as exc:
            report.bad_lines.append((line, str(exc)))
            if on_graded:
                on_graded(None)
            continue
        problem = problems.get(pid)
        if problem is None:
            report.unknown_ids.append((line, pid))
            if on_graded:
                on_graded(None)
            continue
        grade = grade_problem(problem, completion, tasks)
        result = GradedCompletion(line, pid, problem.task, grade.answer, grade.score, grade.reason)
        report.results.append(result)
        seen.add(pid)
        if on_graded:
            on_graded(result)
    report.missing = [p.id for p in dataset.problems if p.id not in seen]
    return report


def grade_completions(
    benchmark: str | Dataset,
    completions: str | Path | Iterable[Mapping[str, Any]],
    *,
    size: int | None = None,
    seed: int = 0,
    strict: bool = False,
) -> GradeReport:
    """Grade completions (a JSON-lines file, or records with `problem_id` and `completion`)
    against a benchmark (a name/file as for `load_benchmark`, or a loaded Dataset)."""
    dataset = (
        benchmark
        if isinstance(benchmark, Dataset)
        else load_benchmark(benchmark, size=size, seed=seed, strict=strict)
    )
    if isinstance(completions, (str, Path)):
        pairs: list[tuple[int, str | Mapping[str, Any]]] = list(read_completions(completions))
    else:
        pairs = list(enumerate(completions, 1))
    return grade_records(dataset, pairs)
