"""Think-block stripping and the context-window policy."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from recursa import GenerationRequest, Problem, RSAConfig
from recursa.context import TRUNCATION_MARKER, fit_candidates, strip_think
from recursa.errors import ContextOverflowError
from tests.helpers.mock_engine import MockRun


def words(text: str) -> int:
    return len(text.split())


def test_strip_think_removes_reasoning_blocks() -> None:
    assert strip_think("<think>long\nmusing</think>The answer is \\boxed{4}.") == (
        "The answer is \\boxed{4}."
    )
    assert strip_think("a <THINK>x</think> b <think>y</think> c") == "a  b  c"
    assert strip_think("hidden start</think>visible") == "visible"
    assert strip_think("<think>cut off trace") == "cut off trace"
    assert strip_think("no tags") == "no tags"


def test_candidates_that_fit_are_untouched() -> None:
    fitted = fit_candidates(["a b c", "d e"], 10, 1000, 100, words)
    assert fitted.candidates == ["a b c", "d e"] and fitted.truncated == 0
    assert fitted.max_tokens == 100


def test_long_candidates_keep_their_tail_behind_a_marker() -> None:
    long = " ".join(f"w{i}" for i in range(500)) + " FINAL"
    short = "short one"
    fitted = fit_candidates([long, short, long], 50, 400, 100, words)
    assert fitted.truncated == 2
    assert fitted.candidates[1] == short
    for c in (fitted.candidates[0], fitted.candidates[2]):
        assert c.startswith(TRUNCATION_MARKER) and c.endswith("FINAL")
    total = 50 + sum(words(c) for c in fitted.candidates)
    assert total <= 400 - 100
    assert fitted.max_tokens >= 1 and total + fitted.max_tokens <= 400


def test_a_problem_that_cannot_fit_is_a_clear_error() -> None:
    with pytest.raises(ContextOverflowError, match="no room"):
        fit_candidates(["a", "b"], 900, 1000, 500, words)


def test_engine_applies_policy_and_warns_once(
    caplog: pytest.LogCaptureFixture, mock_engine: Callable[..., MockRun]
) -> None:
    long = " ".join(["filler"] * 400) + " \\boxed{9}"

    def script(req: GenerationRequest) -> str:
        return long

    mock = mock_engine(
        script, RSAConfig(n=3, k=3, t=2, task="math", max_tokens=100), context_tokens=600
    )
    backend = mock.backend
    with caplog.at_level("WARNING", logger="recursa"):
        result = mock.run(Problem("p", "q", task="math"))
    agg = [r for r in backend.calls if r.meta["step"] == 2]
    assert all(r.messages[0]["content"].count(TRUNCATION_MARKER) == 3 for r in agg)
    assert all(words(r.messages[0]["content"]) <= 600 - 100 for r in agg)
    assert sum("context window" in m for m in caplog.messages) == 1
    assert result.answer == "9"


def test_think_blocks_are_stripped_before_aggregation_unless_kept(
    mock_engine: Callable[..., MockRun],
) -> None:
    def script(req: GenerationRequest) -> str:
        return "<think>SECRET REASONING</think> so \\boxed{1}"

    for keep, present in ((False, False), (True, True)):
        mock = mock_engine(script, RSAConfig(n=2, k=2, t=2, task="math", keep_think=keep))
        mock.run(Problem("p", "q", task="math"))
        backend = mock.backend
        agg = [r.messages[0]["content"] for r in backend.calls if r.meta["step"] == 2]
        assert all(("SECRET REASONING" in p) is present for p in agg)
