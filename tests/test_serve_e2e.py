"""The official openai client against the proxy, whose upstream is llama-cpp-python's
OpenAI-compatible server with the bundled SmolLM2-135M-Instruct."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.async_upstream import Reply, fake_upstream
from tests.proxy_harness import running_proxy

pytestmark = pytest.mark.e2e

RSA = {"n": 2, "k": 2, "t": 2, "task": "math"}
QUESTION = [{"role": "user", "content": "What is 7 + 5?"}]


def test_non_streaming_reply_and_its_usage_adds_up_the_upstream_calls(llama_server: str) -> None:
    """A transparent relay in front of the llama server records each upstream answer's usage."""
    seen: list[dict[str, Any]] = []
    relay = httpx.AsyncClient(base_url=llama_server, timeout=300)

    async def forward(i: int, body: dict[str, Any]) -> Reply:
        body = {k: v for k, v in body.items() if k != "_auth"}
        response = await relay.post("/chat/completions", json=body)
        data = response.json()
        seen.append(data["usage"])
        return response.status_code, {}, data

    with (
        fake_upstream(forward, models=("smollm2",)) as up,
        running_proxy(up.url, rsa={"task": "math"}, allow_k_equals_n=True) as url,
    ):
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
        reply = client.chat.completions.create(
            model="smollm2",
            messages=QUESTION,  # type: ignore[arg-type]
            max_tokens=32,
            seed=1,
            extra_body={"rsa": RSA},
        )
    assert reply.object == "chat.completion" and reply.model == "smollm2"
    assert isinstance(reply.choices[0].message.content, str) and reply.choices[0].message.content
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert len(seen) == 4 == len(up.stats.received)  # N x T upstream calls
    assert all(r["max_tokens"] <= 32 and r["model"] == "smollm2" for r in up.stats.received)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == sum(u["prompt_tokens"] for u in seen)
    assert reply.usage.completion_tokens == sum(u["completion_tokens"] for u in seen)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    rsa = (reply.model_extra or {})["rsa"]
    assert rsa["generations"] == 4 and [s["step"] for s in rsa["steps"]] == [1, 2]
    assert all(0 < s["agreement"] <= 1 for s in rsa["steps"])


def test_streaming_reply_ends_with_usage_and_lists_upstream_models(llama_server: str) -> None:
    with running_proxy(llama_server, keepalive=0.5, allow_k_equals_n=True) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
        assert [m.id for m in client.models.list()] == [
            "smollm2",
            "rsa/smollm2",
            "rsa-n16-k4-t10/smollm2",
        ]
        assert client.models.retrieve("rsa-n2-k2-t2/smollm2").id == "rsa-n2-k2-t2/smollm2"
        stream = client.chat.completions.create(
            model="smollm2",
            messages=QUESTION,  # type: ignore[arg-type]
            max_tokens=32,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"rsa": RSA},
        )
        chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == "smollm2" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason in ("stop", "length")
    rsa = (finish[0].model_extra or {})["rsa"]
    assert rsa["generations"] == 4 and len(rsa["steps"]) == 2
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 4 * 32
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
