"""The proxy's API key guards every route and mode: a request without the key, or with a
wrong one, is a 401 and sends nothing upstream (a streaming route once skipped the check)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.async_upstream import Reply, answer, fake_upstream
from tests.proxy_harness import running_proxy

pytestmark = pytest.mark.reliability

SMALL = {"n": 2, "k": 2, "t": 2, "task": "math"}
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "What is 3*4?"}]}
#: (method, path, JSON body or None): every authenticated route, in every mode.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/chat/completions", CHAT),
    ("POST", "/chat/completions", {**CHAT, "stream": True}),
    ("GET", "/models", None),
    ("GET", "/models/fake-model", None),
    ("POST", "/responses", {"model": "fake-model", "input": "What is 3*4?"}),
    ("POST", "/responses", {"model": "fake-model", "input": "What is 3*4?", "stream": True}),
]


async def boxed_12(i: int, body: dict[str, Any]) -> Reply:
    return answer("3*4 is \\boxed{12}")


def call(url: str, method: str, path: str, body: Any, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.request(method, url + path, json=body, headers=headers, timeout=60)


@pytest.mark.parametrize("key", [None, "wrong", "proxy-secre", "proxy-secretX"])
def test_every_route_refuses_a_missing_or_wrong_key_and_sends_nothing(key: str | None) -> None:
    with (
        fake_upstream(boxed_12) as up,
        running_proxy(up.url, rsa=SMALL, api_key="proxy-secret") as url,
    ):
        for method, path, body in ROUTES:
            response = call(url, method, path, body, key)
            assert response.status_code == 401, (method, path, body, response.text)
            assert response.json()["error"]["code"] == "invalid_api_key"
        assert up.stats.received == []


def test_every_route_serves_the_right_key() -> None:
    with (
        fake_upstream(boxed_12) as up,
        running_proxy(up.url, rsa=SMALL, api_key="proxy-secret") as url,
    ):
        for method, path, body in ROUTES:
            response = call(url, method, path, body, "proxy-secret")
            assert response.status_code == 200, (method, path, response.text)
        assert len(up.stats.received) == 16  # four RSA requests x 4 generations


def test_sampling_settings_reach_the_upstream_body() -> None:
    with (
        fake_upstream(boxed_12) as up,
        running_proxy(up.url, rsa=SMALL) as url,
    ):
        body = {**CHAT, "temperature": 0.25, "top_p": 0.7, "max_tokens": 33}
        assert call(url, "POST", "/chat/completions", body, None).status_code == 200
        sent = up.stats.received
        assert len(sent) == 4
        for request in sent:
            assert request["temperature"] == 0.25 and request["top_p"] == 0.7
            assert request["max_tokens"] <= 33
