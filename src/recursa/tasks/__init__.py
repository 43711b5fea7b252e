"""Task families by name: the `TASKS` registry (plugins: the `recursa.tasks` entry points).

A family is a `Task` subclass built with no arguments; `Task.configured(resources)` builds
one for a run that brings resources (the code sandbox's settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recursa.registry import Registry
from recursa.tasks.base import Grade, Problem, RowSkip, Task

__all__ = [
    "TASKS",
    "Grade",
    "Problem",
    "RowSkip",
    "Task",
    "TaskSet",
    "get_task",
    "task_metric_labels",
]


def _task_class(name: str, obj: object) -> type[Task]:
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise TypeError(f"task {name!r} must be a recursa.Task subclass, not {obj!r}")
    return obj


TASKS: Registry[type[Task]] = Registry("task", "recursa.tasks", check=_task_class)
TASKS.add("general", "recursa.tasks.general:GeneralTask")
TASKS.add("math", "recursa.tasks.math:MathTask")
TASKS.add("rg", "recursa.tasks.reasoning_gym:ReasoningGymTask")
TASKS.add("mcq", "recursa.tasks.multiple_choice:MultipleChoiceTask")
TASKS.add("code", "recursa.tasks.code:CodeTask")
TASKS.add("arc", "recursa.tasks.arc:ArcTask")

_INSTANCES: dict[str, Task] = {}


def task_metric_labels() -> dict[str, str]:
    """Report labels of the extra metrics the registered families declare (key -> label)."""
    labels: dict[str, str] = {}
    for name in TASKS.names():
        labels.update(TASKS.get(name).extra_metrics)
    return labels


def get_task(name: str) -> Task:
    """The task family `name` (one shared instance each, built with no arguments)."""
    if name not in _INSTANCES:
        _INSTANCES[name] = TASKS.get(name)()
    return _INSTANCES[name]


class TaskSet:
    """The task instances of one run, built on first use with the run's resources (so a
    run's sandbox settings never change another run's tasks)."""

    def __init__(self, resources: Mapping[str, Any] | None = None) -> None:
        self.resources: dict[str, Any] = dict(resources or {})
        self._tasks: dict[str, Task] = {}

    def __call__(self, name: str) -> Task:
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = TASKS.get(name).configured(self.resources)
        return task
