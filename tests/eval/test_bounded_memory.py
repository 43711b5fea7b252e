"""Long evaluations hold only what is in flight: the engine keeps the current population only,
answered requests are dropped, and per-problem records go to disk (in dataset order at the end)."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from pathlib import Path

import pytest

from recursa import Problem, RSAConfig, current_problem, evaluate
from recursa.backends import create_backend
from recursa.backends.base import Backend, Completion, GenerationRequest
from recursa.backends.mock import MockBackend
from recursa.config import BackendConfig
from recursa.result import StepResult
from recursa.runs import runner
from tests.helpers import mock_engine as mocks


def _math_problems(count: int) -> list[Problem]:
    return [Problem(f"p{i}", f"What is {i} + 1?", str(i + 1), "math") for i in range(count)]


def _released_steps(keep_history: bool) -> tuple[list[bool], int]:
    """Run one problem for 4 steps; report which steps' populations are still referenced once
    the run is over (besides the result), and how many steps the result holds."""
    refs: list[weakref.ref[StepResult]] = []

    def on_step(problem: Problem, step: StepResult) -> None:
        refs.append(weakref.ref(step))

    mock = mocks.mock_engine(
        None,
        RSAConfig(n=4, k=2, t=4, task="math", seed=0),
        keep_calls=False,
        engine={"on_step": on_step, "keep_history": keep_history},
    )
    result = mock.run(_math_problems(1)[0])
    gc.collect()
    return [r() is not None for r in refs], len(result.steps)


def test_without_history_only_the_last_population_stays_alive() -> None:
    alive, held = _released_steps(keep_history=False)
    assert alive == [False, False, False, True] and held == 1
    alive, held = _released_steps(keep_history=True)  # the contrast: history keeps them all
    assert alive == [True, True, True, True] and held == 4


def test_the_registered_mock_keeps_no_requests_but_counts_them() -> None:
    backend = create_backend(BackendConfig(backend="mock"))
    assert isinstance(backend, MockBackend)
    request = GenerationRequest(messages=[{"role": "user", "content": "2+2?"}], max_tokens=8)
    asyncio.run(backend.generate(request))
    asyncio.run(backend.generate(request))
    assert backend.calls == [] and backend.call_count == 2
    scripted = mocks.mock_backend(["a", "b", "c"], keep_calls=False)
    texts = [asyncio.run(scripted.generate(request)).text for _ in range(4)]
    assert texts == ["a", "b", "c", "a"]  # a script list still goes in call order


class _Watching(Backend):
    """Answers at once, and at every call counts the requests and completions it has made
    that something still references."""

    default_concurrency = 4

    def __init__(self) -> None:
        self.requests: list[weakref.ref[GenerationRequest]] = []
        self.completions: list[weakref.ref[Completion]] = []
        self.most_alive = 0

    async def generate(self, request: GenerationRequest) -> Completion:
        self.requests.append(weakref.ref(request))
        await asyncio.sleep(0)  # let the other requests in flight arrive
        alive = sum(r() is not None for r in self.requests)
        alive += sum(c() is not None for c in self.completions)
        self.most_alive = max(self.most_alive, alive)
        answer = request.meta.get("reference", "0")
        completion = Completion(f"So \\boxed{{{answer}}}", "stop", 10, 5)
        self.completions.append(weakref.ref(completion))
        return completion


def test_an_evaluation_holds_only_the_requests_and_completions_in_flight(tmp_path: Path) -> None:
    backend = _Watching()
    problems = _math_problems(24)
    gc.disable()  # only references count, not when the collector runs
    try:
        result = evaluate(problems, out=tmp_path / "run", backend=backend, n=4, k=2, t=5)
    finally:
        gc.enable()
    made = len(backend.requests)
    assert made == 24 * 4 * 5 == result.summary["metrics"]["generations"]
    # A window of max(2, ceil(4 x 4 / 4)) = 4 problems runs at once: at most 4 x 4 requests
    # can be alive (4 in flight at the backend), whatever the length of the run; answered
    # requests and completions are dropped.
    assert 1 < backend.most_alive <= 4 * 4 < made


class _SlowFirst(Backend):
    """Problem p0 answers slowly, so it finishes after the others."""

    default_concurrency = 8

    async def generate(self, request: GenerationRequest) -> Completion:
        await asyncio.sleep(0.05 if request.meta["problem_id"] == "p0" else 0)
        context = current_problem()  # the engine's problem, in this process (no meta needed)
        assert context is not None and context.reference is not None
        return Completion(f"\\boxed{{{context.reference}}}", "stop", 10, 5)


def test_problem_records_are_streamed_then_put_in_dataset_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problems = _math_problems(6)
    finished: list[str] = []
    original = runner.sort_records

    def spy(path: Path) -> None:
        # before the rewrite the file holds every record, in finishing order
        finished.extend(json.loads(line)["id"] for line in path.read_text().splitlines())
        original(path)

    monkeypatch.setattr(runner, "sort_records", spy)
    evaluate(problems, out=tmp_path / "run", backend=_SlowFirst(), n=2, k=2, t=2)
    assert finished[-1] == "p0" and sorted(finished) == [p.id for p in problems]
    lines = (tmp_path / "run" / "problems.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [p.id for p in problems]
    assert [r["index"] for r in records] == list(range(6))
    assert all(r["final"]["correct"] for r in records)
