"""Plugins by entry point: a package (tests/plugins, with its .dist-info) adds a backend, a
task family, a benchmark and a method with zero edits to recursa, usable everywhere a
built-in is (library, `recursa solve`, `recursa eval`, --help)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import recursa
from recursa.backends import BACKENDS
from recursa.benchmarks import BENCHMARKS, load_benchmark
from recursa.registry import Registry
from recursa.runs.methods import METHODS
from recursa.tasks import TASKS

PLUGINS = Path(__file__).parents[1] / "plugins"
SRC = Path(__file__).parents[2] / "src"
REGISTRIES: list[Registry[Any]] = [BACKENDS, TASKS, BENCHMARKS, METHODS]


@pytest.fixture
def plugin_installed() -> Iterator[None]:
    """The plugin package on sys.path, its entry points read; gone again afterwards."""
    sys.path.insert(0, str(PLUGINS))
    for registry in REGISTRIES:
        registry.reload_plugins()
    try:
        yield
    finally:
        sys.path.remove(str(PLUGINS))
        for registry, name in zip(REGISTRIES, ["arith", "plus", "sums", "twice"], strict=True):
            registry.remove(name)
        sys.modules.pop("recursa_demo_plugin", None)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(PLUGINS)])}
    return subprocess.run(
        [sys.executable, "-m", "recursa", "-q", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_every_plugin_name_is_registered(plugin_installed: None) -> None:
    assert "arith" in BACKENDS.names() and "plus" in TASKS.names()
    assert "sums" in BENCHMARKS.names() and "twice" in METHODS.names()
    assert BACKENDS.names()[:5] == ["llamacpp", "openai", "mock", "vllm", "ray"]


def test_library_solve_with_the_plugin_backend_and_task(plugin_installed: None) -> None:
    result = recursa.solve("What is 2 + 3?", backend="arith", task="plus", n=2, k=1, t=2)
    assert result.answer == "5" and result.usage["generations"] == 4
    wrong = recursa.solve(
        "What is 2 + 3?", backend="arith", task="plus", n=2, k=1, t=1, arith_offset=2
    )
    assert wrong.answer == "7"  # the backend's own option reached its factory


def test_library_takes_a_task_object_and_a_backend_object_that_are_not_registered() -> None:
    sys.path.insert(0, str(PLUGINS))
    try:
        from recursa_demo_plugin import ArithBackend, PlusTask
    finally:
        sys.path.remove(str(PLUGINS))
    assert "plus" not in TASKS
    result = recursa.solve(
        "What is 4 + 4?", task=PlusTask(), backend=ArithBackend(0), n=3, k=2, t=2
    )
    assert result.answer == "8" and result.config["task"] == "plus"
    with pytest.raises(recursa.UsageError, match="unknown task 'plus'"):
        recursa.solve("What is 4 + 4?", task="plus", backend=ArithBackend(0), n=1, k=1, t=1)


def test_evaluate_a_plugin_benchmark_with_a_plugin_method(
    plugin_installed: None, tmp_path: Path
) -> None:
    dataset = load_benchmark("sums:5", seed=1)
    assert [p.task for p in dataset.problems] == ["plus"] * 5
    assert len(load_benchmark("sums:5", limit=2).problems) == 2
    result = recursa.evaluate("sums:3", out=tmp_path / "run", backend="arith", method="twice", n=2)
    assert (result.summary["k"], result.summary["t"], result.summary["method"]) == (1, 2, "twice")
    assert result.summary["metrics"]["final_acc"] == 1.0
    assert result.summary["generations_per_problem"] == 4


def test_cli_solve_and_eval_with_the_plugin(tmp_path: Path) -> None:
    solved = cli(
        "solve",
        "What is 20 + 22?",
        "--backend",
        "arith",
        "--task",
        "plus",
        "-n",
        "2",
        "-k",
        "1",
        "-t",
        "2",
        cwd=tmp_path,
    )
    assert solved.returncode == 0, solved.stderr
    assert solved.stdout.splitlines()[0] == "Final answer: 42"
    run = cli(
        "eval",
        "sums:4",
        "--backend",
        "arith",
        "--method",
        "twice",
        "-n",
        "2",
        "--out",
        str(tmp_path / "ok"),
        "--json",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["benchmark"] == "sums:4" and summary["metrics"]["final_acc"] == 1.0
    wrong = cli(
        "eval",
        "sums:4",
        "--backend",
        "arith",
        "--arith-offset",
        "1",
        "--method",
        "twice",
        "-n",
        "2",
        "--out",
        str(tmp_path / "wrong"),
        "--json",
        cwd=tmp_path,
    )
    assert wrong.returncode == 0, wrong.stderr
    assert json.loads(wrong.stdout)["metrics"]["final_acc"] == 0.0
    budget = cli(
        "eval",
        "sums:2",
        "--backend",
        "arith",
        "--method",
        "twice",
        "--budget",
        "6",
        "--out",
        str(tmp_path / "budget"),
        "--json",
        cwd=tmp_path,
    )
    assert budget.returncode == 0, budget.stderr
    assert json.loads(budget.stdout)["n"] == 3  # the method's budget rule: N = B / 2


def test_cli_help_lists_plugin_names_from_the_registries(tmp_path: Path) -> None:
    solve = cli("solve", "--help", cwd=tmp_path)
    assert solve.returncode == 0
    text = " ".join(solve.stdout.split())
    assert "llamacpp, openai, mock, vllm, ray, arith" in text
    assert "general, math, rg, mcq, code, arc, plus" in text
    assert "arith backend settings: --arith-offset ARITH_OFFSET" in text
    evaluation = " ".join(cli("eval", "--help", cwd=tmp_path).stdout.split())
    assert "sums:ARG" in evaluation and "twice" in evaluation
    grade = " ".join(cli("grade", "--help", cwd=tmp_path).stdout.split())
    assert "sums:ARG: Addition problems: sums:COUNT (default 3)." in grade


def test_a_plugin_name_that_is_taken_is_ignored_with_a_warning(
    plugin_installed: None, caplog: pytest.LogCaptureFixture
) -> None:
    BACKENDS.remove("arith")
    BACKENDS.add("arith", "recursa.backends.mock:SPEC")
    try:
        BACKENDS.reload_plugins()
        assert "plugin 'arith'" in caplog.text and "taken" in caplog.text
        assert BACKENDS.get("arith").options is not None
        assert BACKENDS.get("arith").options.__name__ == "MockOptions"  # type: ignore[union-attr]
    finally:
        BACKENDS.remove("arith")
