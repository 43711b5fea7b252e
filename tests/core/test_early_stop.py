"""Consensus early stop: when it fires, what it saves, and how the CLI reports it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from recursa import GenerationRequest, Problem, RSAConfig, UsageError
from recursa.cli import main
from recursa.config import build_configs
from recursa.result import SolveResult
from tests.helpers import mock_engine as mocks
from tests.helpers.mock_engine import MockRun


def by_step(answers: dict[int, list[str]]) -> Callable[[GenerationRequest], str]:
    """Slot s of step t answers answers[t][s] (the last listed step repeats)."""

    def script(req: GenerationRequest) -> str:
        step = min(int(req.meta["step"]), max(answers))
        return f"so \\boxed{{{answers[step][int(req.meta['slot'])]}}}"

    return script


def solve(answers: dict[int, list[str]], rule: str | None, t: int = 6) -> tuple[SolveResult, int]:
    mock = mocks.mock_engine(
        by_step(answers), RSAConfig(n=4, k=2, t=t, task="math", early_stop=rule)
    )
    result = mock.run(Problem("p", "q", task="math"))
    return result, len(mock.backend.calls)


def test_agreement_must_be_on_the_same_answer_two_steps_running() -> None:
    result, calls = solve({1: ["5"] * 4, 2: ["7"] * 4}, "unanimous")
    assert result.steps_run == 3  # steps 1 and 2 are unanimous, but on different answers
    assert result.generations_saved == (6 - 3) * 4 and calls == 12
    assert result.answer == "7"


def test_agree_fraction_counts_the_largest_cluster() -> None:
    three_of_four = {1: ["7", "7", "7", "1"]}
    result, calls = solve(three_of_four, "agree:0.75")
    assert (result.steps_run, result.generations_saved, calls) == (2, 16, 8)
    result, _ = solve(three_of_four, "unanimous")
    assert (result.steps_run, result.generations_saved) == (6, 0)
    result, _ = solve({1: ["7", "7", "1", "2"]}, "agree:0.75")  # 2 of 4 is not enough
    assert result.steps_run == 6


def test_off_by_default_and_consensus_at_the_last_step_saves_nothing() -> None:
    assert RSAConfig().early_stop is None
    result, calls = solve({1: ["7"] * 4}, None)
    assert (result.steps_run, result.generations_saved, calls) == (6, 0, 24)
    result, calls = solve({1: ["1", "2", "3", "4"], 2: ["7"] * 4}, "unanimous", t=3)
    assert (result.steps_run, result.generations_saved, calls) == (3, 0, 12)


def test_no_extracted_answer_never_counts_as_agreement(
    mock_engine: Callable[..., MockRun],
) -> None:
    cfg = RSAConfig(n=4, k=2, t=4, task="math", early_stop="unanimous")
    mock = mock_engine(lambda r: "I am not sure.", cfg)
    result = mock.run(Problem("p", "q", task="math"))
    assert result.steps_run == 4 and len(mock.backend.calls) == 16


def test_a_fraction_that_could_tie_is_a_usage_error() -> None:
    for bad in ("agree:0.5", "agree:0.3", "agree:1.5", "agree:", "most"):
        with pytest.raises(UsageError, match=r"0\.5 < F <= 1"):
            build_configs({"early_stop": bad})
    assert build_configs({"early_stop": "agree:0.51"})[0].early_stop == "agree:0.51"


@pytest.mark.parametrize("sync_steps", [False, True])
def test_a_stopped_problem_leaves_the_others_running(
    sync_steps: bool, mock_engine: Callable[..., MockRun]
) -> None:
    def script(req: GenerationRequest) -> str:
        if req.meta["problem_id"] == "easy":
            return "\\boxed{7}"
        return f"\\boxed{{{req.meta['slot']}}}"  # never agrees

    cfg = RSAConfig(n=4, k=2, t=5, task="math", early_stop="unanimous", sync_steps=sync_steps)
    mock = mock_engine(script, cfg)
    backend = mock.backend
    easy, hard = mock.run_many(
        [Problem("easy", "a", task="math"), Problem("hard", "b", task="math")]
    )
    assert (easy.steps_run, easy.generations_saved) == (2, 12)
    assert (hard.steps_run, hard.generations_saved) == (5, 0)
    assert sum(r.meta["problem_id"] == "easy" for r in backend.calls) == 8
    assert sum(r.meta["problem_id"] == "hard" for r in backend.calls) == 20


def test_cli_reports_generations_saved(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["solve", "What is 2+2?", "--backend", "mock", "-n", "4", "-k", "2", "-t", "8"]
    args += ["--task", "math", "--mock-accuracy", "1.0", "--mock-quality", "1.0"]
    assert main(["-q", *args, "--early-stop", "unanimous"]) == 0
    out = capsys.readouterr().out
    assert "(8 generations," in out
    assert "stopped after step 2 of 8, 24 generations saved" in out
    assert main(["-q", *args, "--early-stop", "unanimous", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["generations_saved"], data["steps_run"], len(data["steps"])) == (24, 2, 2)
    assert main(["-q", *args]) == 0
    assert "early stop" not in capsys.readouterr().out
