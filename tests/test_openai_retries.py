"""The openai backend against local HTTP servers: retries, Retry-After, clear failures."""

from __future__ import annotations

from typing import Any

import pytest

from recursa import BackendError, solve
from tests.fake_server import chat_body, serve


def test_run_completes_through_429_with_retry_after_and_500() -> None:
    def responder(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if i == 0:
            return 429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}
        if i == 1:
            return 500, {}, {"error": {"message": "boom"}}
        return 200, {}, chat_body("so the answer is \\boxed{12}")

    with serve(responder) as (url, received):
        result = solve(
            "What is 3*4?",
            backend="openai",
            base_url=url,
            model="fake",
            api_key="sk-test",
            n=2,
            k=2,
            t=2,
            task="math",
            concurrency=1,
        )
    assert result.answer == "12"
    assert len(received) == 6  # 4 generations + 2 faulted attempts
    assert result.usage["prompt_tokens"] == 4 * 11
    assert result.usage["completion_tokens"] == 4 * 5
    assert result.usage["retries"] == 2
    # Retry-After was honoured: the retry came at least 1 s after the 429. The back-off
    # without it is at most 0.5 s before the first retry, so this cannot pass by jitter, and
    # a lower bound holds however loaded the machine is.
    first = received[0]
    retry = next(r for r in received[1:] if r["seed"] == first["seed"])
    assert retry["_at"] - first["_at"] >= 1.0
    assert received[0]["_auth"] == "Bearer sk-test"
    assert received[0]["model"] == "fake" and received[0]["temperature"] == 1.0


def test_a_server_that_always_fails_ends_with_one_clear_sentence() -> None:
    def responder(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        return 503, {}, {"error": {"message": "overloaded"}}

    with serve(responder) as (url, received), pytest.raises(BackendError) as info:
        solve("q", backend="openai", base_url=url, n=2, k=1, t=1, max_retries=2)
    message = str(info.value)
    assert url in message and "3 attempts" in message and "overloaded" in message
    assert len(received) >= 3


def test_a_wrong_api_key_is_not_retried() -> None:
    def responder(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        return 401, {}, {"error": {"message": "Incorrect API key"}}

    with serve(responder) as (url, received), pytest.raises(BackendError, match="API key"):
        solve("q", backend="openai", base_url=url, api_key="bad", n=1, k=1, t=1)
    assert len(received) == 1
