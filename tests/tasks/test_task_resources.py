"""Task families own their resources: a run's code sandbox settings reach that run's code
task at construction; the shared instance and other runs are untouched."""

from __future__ import annotations

from recursa.sandbox import SandboxConfig
from recursa.tasks import TaskSet, get_task
from recursa.tasks.code import CodeTask


def test_a_runs_sandbox_settings_stay_with_its_own_tasks() -> None:
    shared = get_task("code")
    assert isinstance(shared, CodeTask)
    before = shared.sandbox.config
    tasks = TaskSet({"sandbox": SandboxConfig(test_timeout=3.0, max_parallel_tests=2)})
    code = tasks("code")
    assert isinstance(code, CodeTask) and code is not shared and tasks("code") is code
    assert code.sandbox.config.test_timeout == 3.0 and code.sandbox.config.max_parallel_tests == 2
    other = TaskSet({"sandbox": {"test_timeout": 7.0}})("code")
    assert isinstance(other, CodeTask) and other.sandbox.config.test_timeout == 7.0
    assert get_task("code") is shared and shared.sandbox.config == before
    # families that need no resources ignore them
    assert type(tasks("math")) is type(get_task("math"))
