"""`POST /v1/responses` through the official openai client against a recording upstream: the
translation of a Responses request into upstream generations, the response object, its
stream of events, and the fields it refuses."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.async_upstream import Reply, answer, fake_upstream
from tests.proxy_harness import running_proxy

SMALL = {"n": 2, "k": 2, "t": 2}


async def reply_text(i: int, body: dict[str, Any]) -> Reply:
    if body.get("response_format"):
        return answer(json.dumps({"colour": "green"}))
    return answer(f"<think>weighing option {i}</think>Green is a colour ({i}).")


def test_a_response_runs_rsa_over_the_instructions_and_input() -> None:
    with fake_upstream(reply_text) as up, running_proxy(up.url, rsa=SMALL) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        response = client.responses.create(
            model="fake-model",
            instructions="Be brief.",
            input=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
                {"role": "user", "content": [{"type": "input_text", "text": "Name a colour."}]},
            ],
            max_output_tokens=40,
            temperature=0.5,
            reasoning={"effort": "low"},
            text={"verbosity": "low"},
            store=False,
        )
    assert response.status == "completed" and response.object == "response"
    assert response.output_text.startswith("Green is a colour")
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.usage is not None and response.usage.input_tokens == 4 * 11
    assert response.usage.output_tokens == 4 * 5
    sent = up.stats.received
    assert len(sent) == 4
    assert sent[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Name a colour."},
    ]
    for body in sent:
        assert (body["max_tokens"], body["temperature"]) == (40, 0.5)
        assert body["reasoning_effort"] == "low" and body["verbosity"] == "low"
        assert not {"input", "instructions", "store", "text", "reasoning"} & set(body)


def test_a_streamed_response_sends_the_standard_events() -> None:
    with fake_upstream(reply_text) as up, running_proxy(up.url, rsa=SMALL, keepalive=0.1) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        events = list(client.responses.create(model="rsa", input="Name a colour.", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.done" in kinds and "response.content_part.done" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert text == final.output_text and text.startswith("Green is a colour")


def test_a_json_schema_in_text_format_reaches_every_generation() -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}}
    with fake_upstream(reply_text) as up, running_proxy(up.url, rsa=SMALL) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        response = client.responses.create(
            model="rsa",
            input="A colour as JSON.",
            text={"format": {"type": "json_schema", "name": "c", "schema": schema}},
        )
    assert json.loads(response.output_text) == {"colour": "green"}
    expected = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    assert all(b["response_format"] == expected for b in up.stats.received)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"background": True}, "background"),
        ({"reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "1"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input[0].content[0]",
        ),
    ],
)
def test_what_the_proxy_cannot_do_is_a_400_naming_the_field(
    extra: dict[str, Any], param: str
) -> None:
    with fake_upstream(reply_text) as up, running_proxy(up.url, rsa=SMALL) as url:
        body = {"model": "rsa", "input": "hi", **extra}
        reply = httpx.post(f"{url}/responses", json=body, timeout=30)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param
    assert up.stats.received == []


def test_a_failure_while_streaming_is_an_error_event_then_response_failed() -> None:
    async def refuse(i: int, body: dict[str, Any]) -> Reply:
        return 400, {}, {"error": {"message": "no such stop", "code": "invalid_value"}}

    with fake_upstream(refuse) as up, running_proxy(up.url, rsa=SMALL) as url:
        body = {"model": "rsa", "input": "hi", "stream": True}
        with httpx.stream("POST", f"{url}/responses", json=body, timeout=30) as reply:
            lines = [line for line in reply.iter_lines() if line.startswith("event: ")]
    assert lines == [
        "event: response.created",
        "event: response.in_progress",
        "event: error",
        "event: response.failed",
    ]
