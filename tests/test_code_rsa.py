"""RSA on a 3-problem local LiveCodeBench file with a scripted mock that writes code: the
library path that `recursa eval` drives (load, run, vote by outputs, grade in the sandbox)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from recursa.backends import Dispatcher
from recursa.backends.base import GenerationRequest
from recursa.backends.mock import MockBackend
from recursa.benchmarks.lcb import load_lcb_file
from recursa.config import RSAConfig
from recursa.engine import Engine
from recursa.sandbox import Sandbox, SandboxConfig
from recursa.tasks import get_task
from recursa.tasks.code import CodeTask
from tests.lcb_rows import (
    FUNCTIONAL_CORRECT,
    FUNCTIONAL_WRONG,
    STDIN_CORRECT,
    STDIN_WRONG,
    fenced,
    functional_row,
    stdin_row,
)

GOOD = "# approach: correct\n"


def _programs(functional: bool) -> tuple[str, list[str]]:
    if functional:
        return GOOD + FUNCTIONAL_CORRECT, [FUNCTIONAL_WRONG, "class Solution:\n    pass\n"]
    return GOOD + STDIN_CORRECT, [STDIN_WRONG, "print(int(input()) // 0)\n"]


def script(request: GenerationRequest) -> str:
    """Step 1: one slot in four is right. Aggregating: right iff a shown candidate is."""
    prompt = request.messages[-1]["content"]
    good, bad = _programs("class Solution" in prompt)
    step, slot = int(request.meta["step"]), int(request.meta["slot"])
    if step == 1:
        code = good if slot == 0 else bad[slot % 2]
    else:
        code = good if GOOD in prompt else bad[0]
    return fenced(code, f"Step {step}, slot {slot}: reasoning.")


@pytest.fixture
def lcb_file(tmp_path: Path) -> Path:
    rows = [
        stdin_row("p1", "2025-02-03T00:00:00"),
        functional_row("p2", "2025-03-04T00:00:00"),
        stdin_row("p3", "2025-04-05T00:00:00"),
    ]
    path = tmp_path / "lcb3.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rsa_on_a_local_lcb_file(lcb_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = load_lcb_file(lcb_file)
    assert [p.id for p in problems] == ["p1", "p2", "p3"]
    task = get_task("code")
    assert isinstance(task, CodeTask)
    sandbox = Sandbox(SandboxConfig(test_timeout=5.0, memory_mb=256, max_parallel_tests=2))
    monkeypatch.setattr(task, "_sandbox", sandbox)
    backend = MockBackend(script=script)
    engine = Engine(Dispatcher(backend), RSAConfig(n=4, k=3, t=3, task="code", seed=1))
    results = asyncio.run(engine.run_many(problems))

    selected_correct = []
    for problem, result in zip(problems, results, strict=True):
        assert [s.step for s in result.steps] == [1, 2, 3]
        graded = [[task.grade(problem, c.text) for c in s.candidates] for s in result.steps]
        correct = [[g.correct for g in step] for step in graded]
        assert correct[0] == [True, False, False, False]
        for t in (1, 2):  # an aggregate is right exactly when a candidate it saw was
            for cand, ok in zip(result.steps[t].candidates, correct[t], strict=True):
                assert ok == any(correct[t - 1][p] for p in cand.parents)
        # Voting clusters by what the programs print: the selected program belongs to the
        # largest cluster of equal output signatures.
        final = result.steps[-1].candidates
        keys = [c.vote_key for c in final]
        assert all(keys)
        chosen = final[result.selected_slot]
        assert keys.count(chosen.vote_key) == max(keys.count(k) for k in keys)
        verdict = task.grade(problem, result.text)
        assert verdict.correct == correct[-1][result.selected_slot]
        selected_correct.append(verdict.correct)
    assert any(selected_correct)

    # The code aggregation prompt: candidates (code with reasoning), then the problem's
    # own format instructions.
    aggregation = [r for r in backend.calls if r.meta["step"] == 2]
    stdin_prompt = next(r for r in aggregation if r.meta["problem_id"] == "p1")
    functional_prompt = next(r for r in aggregation if r.meta["problem_id"] == "p2")
    text = stdin_prompt.messages[-1]["content"]
    assert "---- Solution 1 ----" in text and "reasoning." in text
    assert text.rindex("Read the inputs from stdin") > text.rindex("Now write a single improved")
    text = functional_prompt.messages[-1]["content"]
    assert text.rindex("class Solution:\n    def twoSum") > text.rindex("Now write a single")
