"""The proxy's error paths over real HTTP against a scripted upstream: 401, 400, 413, 502,
the OpenAI error format, key handling, and client disconnects cancelling upstream work."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai
import pytest

from tests.async_upstream import FakeUpstream, Reply, answer, fake_upstream
from tests.conftest import free_port
from tests.proxy_harness import running_proxy

pytestmark = pytest.mark.reliability

SMALL = {"n": 2, "k": 2, "t": 2, "task": "math"}
QUESTION = [{"role": "user", "content": "What is 3*4?"}]


async def boxed_12(i: int, body: dict[str, Any]) -> Reply:
    return answer("3*4 is \\boxed{12}")


async def hang(i: int, body: dict[str, Any]) -> Reply:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


LATER = [{"role": "user", "content": "What is 5*6?"}]


async def hang_then_answer(i: int, body: dict[str, Any]) -> Reply:
    """Hangs on QUESTION (the request whose client goes away); answers LATER."""
    if "5*6" in json.dumps(body["messages"]):
        return answer("5*6 is \\boxed{30}")
    return await hang(i, body)


def assert_nothing_more_sent_for_the_first_request(url: str, up: FakeUpstream) -> None:
    """A later request runs to completion through the same dispatcher. Its queue is first in,
    first out, so a slot of the abandoned request still waiting would be sent before the later
    request's: none may appear (an ordering check, not a wait of some length)."""
    ok = chat(url, {"messages": LATER})
    assert ok.status_code == 200, ok.text
    later = [json.dumps(r["messages"]) for r in up.stats.received[3:]]
    assert later and all("5*6" in m for m in later)


def assert_openai_error(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    for fragment in fragments:
        assert fragment in error["message"]
    return dict(error)


def chat(url: str, body: Any, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("timeout", 60)
    return httpx.post(f"{url}/chat/completions", json=body, **kwargs)


def test_api_key_is_required_and_never_forwarded_upstream() -> None:
    with (
        fake_upstream(boxed_12) as up,
        running_proxy(up.url, rsa=SMALL, api_key="proxy-secret", upstream_api_key="up-key") as url,
    ):
        body = {"messages": QUESTION}
        err = assert_openai_error(chat(url, body), 401, "missing API key")
        assert err["code"] == "invalid_api_key"
        wrong = chat(url, body, headers={"Authorization": "Bearer nope"})
        assert_openai_error(wrong, 401, "incorrect API key")
        assert_openai_error(httpx.get(f"{url}/models"), 401)
        assert up.stats.received == []  # nothing reached the upstream

        client = openai.OpenAI(base_url=url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="rsa", messages=QUESTION)  # type: ignore[arg-type]

        ok = chat(url, body, headers={"Authorization": "Bearer proxy-secret"})
        assert ok.status_code == 200 and ok.json()["rsa"]["answer"] == "12"
        models = httpx.get(f"{url}/models", headers={"Authorization": "Bearer proxy-secret"})
        assert [m["id"] for m in models.json()["data"]] == [
            "fake-model",
            "rsa/fake-model",
            "rsa-n2-k2-t2/fake-model",
        ]
        assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200
        assert len(up.stats.received) == 4
        assert {r["_auth"] for r in up.stats.received} == {"Bearer up-key"}


def test_bad_requests_are_400s_naming_the_problem() -> None:
    with fake_upstream(boxed_12) as up, running_proxy(up.url, rsa=SMALL) as url:
        raw = httpx.post(
            f"{url}/chat/completions",
            content=b'{"messages": [',
            headers={"Content-Type": "application/json"},
        )
        assert assert_openai_error(raw, 400, "not valid JSON")["code"] == "invalid_json"
        unknown = chat(url, {"messages": QUESTION, "rsa": {"n": 2, "population": 3}})
        err = assert_openai_error(unknown, 400, "'population'")
        assert err["param"] == "rsa.population"
        assert_openai_error(
            chat(url, {"messages": QUESTION, "rsa": {"n": 2, "k": 3}}),
            400,
            "K (3) cannot exceed the population size N (2)",
        )
        assert_openai_error(chat(url, {"messages": QUESTION, "rsa": {"t": 0}}), 400, "t=0")

        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="'bogus'"):
            client.chat.completions.create(
                model="rsa",
                messages=QUESTION,  # type: ignore[arg-type]
                extra_body={"rsa": {"bogus": 1}},
            )
        assert_openai_error(httpx.get(f"{url}/nowhere"), 404)
        assert up.stats.received == []


def test_bodies_over_the_limit_get_413() -> None:
    with (
        fake_upstream(boxed_12) as up,
        running_proxy(up.url, rsa=SMALL, max_body_bytes=4096) as url,
    ):
        big = [{"role": "user", "content": "x" * 10_000}]
        err = assert_openai_error(chat(url, {"messages": big}), 413, "4096 bytes")
        assert err["code"] == "request_too_large"
        chunked = httpx.post(
            f"{url}/chat/completions",
            content=iter([b'{"messages": [{"role": "user", "content": "', b"y" * 8000, b'"}]}']),
        )
        assert_openai_error(chunked, 413)
        assert chat(url, {"messages": QUESTION}).status_code == 200  # still serving
        assert len(up.stats.received) == 4


def test_upstream_failures_after_retries_are_502s_naming_the_upstream() -> None:
    async def overloaded(i: int, body: dict[str, Any]) -> Reply:
        return 503, {}, {"error": {"message": "overloaded"}}

    with (
        fake_upstream(overloaded) as up,
        running_proxy(up.url, rsa=SMALL, backend={"max_retries": 1}) as url,
    ):
        err = assert_openai_error(chat(url, {"messages": QUESTION}), 502, up.url, "overloaded")
        assert err["type"] == "upstream_error"
        assert len(up.stats.received) >= 2  # retried before giving up

        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="rsa", messages=QUESTION)  # type: ignore[arg-type]
        assert info.value.status_code == 502

        # Streaming: the 200 is sent before RSA runs, so the failure arrives as an error event.
        stream = client.chat.completions.create(
            model="rsa",
            messages=QUESTION,  # type: ignore[arg-type]
            stream=True,
        )
        with pytest.raises(openai.APIError, match="overloaded"):
            list(stream)


def test_an_unreachable_upstream_is_a_502_for_chat_and_models() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with running_proxy(dead, rsa=SMALL, backend={"max_retries": 0}) as url:
        assert_openai_error(chat(url, {"messages": QUESTION}), 502, dead)
        assert_openai_error(httpx.get(f"{url}/models"), 502, dead)
        health = httpx.get(url.removesuffix("/v1") + "/health").json()
        assert health["status"] == "ok" and health["upstream"] == dead


def wait_until_idle(up: FakeUpstream, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while up.stats.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_disconnected_client_cancels_its_upstream_requests() -> None:
    with (
        fake_upstream(hang_then_answer) as up,
        running_proxy(up.url, rsa={"n": 4, "k": 2, "t": 3}, backend={"concurrency": 3}) as url,
    ):

        async def ask_then_hang_up() -> None:
            async with httpx.AsyncClient(timeout=60) as client:
                call = asyncio.ensure_future(
                    client.post(f"{url}/chat/completions", json={"messages": QUESTION})
                )
                deadline = time.monotonic() + 20
                while up.stats.in_flight < 3 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert up.stats.in_flight == 3 and not call.done()
                call.cancel()  # closes the connection, as a client that gives up does
                with pytest.raises(asyncio.CancelledError):
                    await call

        asyncio.run(ask_then_hang_up())
        wait_until_idle(up)
        assert up.stats.in_flight == 0
        assert up.stats.abandoned == len(up.stats.received) == 3  # the limit's worth, all dropped
        health = httpx.get(url.removesuffix("/v1") + "/health").json()
        assert health["in_flight"] == 0
        assert_nothing_more_sent_for_the_first_request(url, up)  # the slots it waited for


def test_a_disconnected_streaming_client_cancels_its_upstream_requests() -> None:
    with (
        fake_upstream(hang_then_answer) as up,
        running_proxy(
            up.url, rsa={"n": 4, "k": 2, "t": 3}, backend={"concurrency": 3}, keepalive=0.1
        ) as url,
    ):
        with (
            httpx.Client(timeout=30) as client,
            client.stream(
                "POST", f"{url}/chat/completions", json={"messages": QUESTION, "stream": True}
            ) as response,
        ):
            assert response.status_code == 200
            lines = response.iter_lines()
            seen = [next(lines) for _ in range(4)]  # the start comment, then keep-alives
            assert seen[0].startswith(": rsa started") and ": keep-alive" in seen
            deadline = time.monotonic() + 20
            while up.stats.in_flight < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert up.stats.in_flight == 3
        wait_until_idle(up)
        assert up.stats.in_flight == 0 and up.stats.abandoned == 3
        assert_nothing_more_sent_for_the_first_request(url, up)
