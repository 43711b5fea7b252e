"""`stream: true` on the wire: comments while RSA runs, standard chunks, then [DONE]."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai

from tests.async_upstream import Reply, answer, fake_upstream
from tests.proxy_harness import running_proxy

QUESTION = [{"role": "user", "content": "What is 3*4?"}]


async def slow_12(i: int, body: dict[str, Any]) -> Reply:
    await asyncio.sleep(0.3)
    return answer(f"candidate {body['seed']}: three fours make twelve, so \\boxed{{12}}")


def test_the_stream_keeps_alive_reports_steps_then_sends_chunks_and_done() -> None:
    rsa = {"n": 2, "k": 2, "t": 3, "task": "math"}
    with fake_upstream(slow_12) as up, running_proxy(up.url, rsa=rsa, keepalive=0.1) as url:
        body = {"messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}}
        with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [line for line in response.iter_lines() if line]
    comments = [e for e in events if e.startswith(":")]
    data = [e.removeprefix("data: ") for e in events if e.startswith("data: ")]
    assert len(comments) + len(data) == len(events)  # nothing but comments and data
    progress = [json.loads(c.split(" ", 2)[2]) for c in comments if "rsa-progress" in c]
    assert [p["step"] for p in progress] == [1, 2, 3] and all(p["steps"] == 3 for p in progress)
    assert all(p["majority_answer"] == "12" and p["agreement"] == 1.0 for p in progress)
    assert ": keep-alive" in comments  # each step takes 0.3 s, the keep-alive period is 0.1 s
    last_comment = max(i for i, e in enumerate(events) if e.startswith(":"))
    first_data = min(i for i, e in enumerate(events) if e.startswith("data: "))
    assert last_comment < first_data  # comments only while RSA runs
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.startswith("candidate ") and text.endswith("\\boxed{12}")
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 6 * 11,
        "completion_tokens": 6 * 5,
        "total_tokens": 6 * 16,
    }
    assert chunks[-2]["rsa"]["answer"] == "12"


def test_the_openai_client_reads_the_same_stream_ignoring_the_comments() -> None:
    rsa = {"n": 2, "k": 1, "t": 2, "task": "math"}
    with fake_upstream(slow_12) as up, running_proxy(up.url, rsa=rsa, keepalive=0.1) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="rsa",
                messages=QUESTION,  # type: ignore[arg-type]
                stream=True,
                seed=3,
            )
        )
        plain = client.chat.completions.create(model="rsa", messages=QUESTION, seed=3)  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content  # same seed, same selected candidate
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)  # no usage chunk unless asked for
