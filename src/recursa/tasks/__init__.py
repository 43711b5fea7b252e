"""Task families by name."""

from __future__ import annotations

from recursa.errors import UsageError
from recursa.tasks.arc import ArcTask
from recursa.tasks.base import Grade, Problem, Task
from recursa.tasks.code import CodeTask
from recursa.tasks.general import GeneralTask
from recursa.tasks.math import MathTask
from recursa.tasks.multiple_choice import MultipleChoiceTask
from recursa.tasks.reasoning_gym import ReasoningGymTask

__all__ = ["TASKS", "Grade", "Problem", "Task", "get_task"]

TASKS: dict[str, type[Task]] = {
    "general": GeneralTask,
    "math": MathTask,
    "rg": ReasoningGymTask,
    "mcq": MultipleChoiceTask,
    "code": CodeTask,
    "arc": ArcTask,
}

_INSTANCES: dict[str, Task] = {}


def get_task(name: str) -> Task:
    """The task family `name` (one shared instance each)."""
    if name not in _INSTANCES:
        cls = TASKS.get(name)
        if cls is None:
            raise UsageError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
        _INSTANCES[name] = cls()
    return _INSTANCES[name]
