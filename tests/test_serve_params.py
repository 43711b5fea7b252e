"""What reaches the upstream for each request parameter, proved by an upstream that records
every request body: sampling fields on every generation, the conversation as messages, fresh
seeds, JSON formats, logprobs, model names, refusals, and upstream 4xx kept as 4xx."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.async_upstream import Reply, answer, fake_upstream
from tests.proxy_harness import running_proxy

SMALL = {"n": 2, "k": 2, "t": 2}
QUESTION = [{"role": "user", "content": "Name a colour."}]


async def blue(i: int, body: dict[str, Any]) -> Reply:
    return answer(f"Blue ({i}).")


def chat(url: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/chat/completions", json=body, timeout=60, **kwargs)


SAMPLING = {
    "stop": ["\n\n", "END"],
    "presence_penalty": 0.5,
    "frequency_penalty": 0.25,
    "logit_bias": {"1234": -100},
    "reasoning_effort": "low",
    "top_k": 40,
    "min_p": 0.05,
    "repetition_penalty": 1.1,
    "user": "alice",
    "chat_template_kwargs": {"enable_thinking": False},
    "metadata": {"run": "7"},
}


def test_every_sampling_parameter_reaches_every_upstream_generation() -> None:
    with fake_upstream(blue) as up, running_proxy(up.url, rsa=SMALL) as url:
        body = {
            "model": "fake-model",
            "messages": QUESTION,
            "temperature": 0.3,
            "top_p": 0.9,
            "max_tokens": 50,
            **SAMPLING,
        }
        reply = chat(url, body)
        assert reply.status_code == 200, reply.text
    sent = up.stats.received
    assert len(sent) == 4  # N x T
    for request in sent:
        for name, value in SAMPLING.items():
            assert request[name] == value, name
        assert request["model"] == "fake-model"
        assert (request["temperature"], request["top_p"], request["max_tokens"]) == (0.3, 0.9, 50)
        assert "rsa" not in request and "stream" not in request and "n" not in request
    assert len({r["seed"] for r in sent}) == 4  # one derived seed per generation


def test_the_conversation_reaches_the_upstream_as_messages_with_no_format_of_ours() -> None:
    conversation = [
        {"role": "system", "content": "You answer in French."},
        {"role": "developer", "content": "One word."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Name a colour."},
    ]
    with fake_upstream(blue) as up, running_proxy(up.url, rsa=SMALL) as url:
        assert chat(url, {"model": "rsa", "messages": conversation}).status_code == 200
    earlier = [
        {"role": "system", "content": "You answer in French."},
        {"role": "system", "content": "One word."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
    ]
    plain = [r["messages"] for r in up.stats.received[:2]]
    aggregation = [r["messages"] for r in up.stats.received[2:]]
    assert plain == [[*earlier, {"role": "user", "content": "Name a colour."}]] * 2
    for messages in aggregation:
        assert messages[:-1] == earlier and messages[-1]["role"] == "user"
        last = messages[-1]["content"]
        assert "Name a colour." in last and "Blue (0)." in last and "Blue (1)." in last
        assert "Final answer" not in last  # task general adds no answer format of its own


def test_unseeded_requests_draw_fresh_seeds_and_a_seed_makes_them_repeat() -> None:
    body = {"model": "rsa", "messages": QUESTION}
    with fake_upstream(blue) as up, running_proxy(up.url, rsa=SMALL) as url:
        first, second = chat(url, body).json(), chat(url, body).json()
        seeds = [r["seed"] for r in up.stats.received]
        assert set(seeds[:4]).isdisjoint(seeds[4:])
        assert first["rsa"]["config"]["seed"] != second["rsa"]["config"]["seed"]
        chat(url, {**body, "seed": 5}), chat(url, {**body, "seed": 5})
        seeded = [r["seed"] for r in up.stats.received[8:]]
        assert seeded[:4] == seeded[4:]
    with fake_upstream(blue) as up, running_proxy(up.url, rsa={**SMALL, "seed": 9}) as url:
        chat(url, body), chat(url, body)  # the server's --seed: deterministic
        seeds = [r["seed"] for r in up.stats.received]
        assert seeds[:4] == seeds[4:]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"n": 3}, "n"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"response_format": {"type": "json_object"}, "rsa": {"task": "math"}}, "response_format"),
    ],
)
def test_what_rsa_cannot_do_is_a_400_naming_the_parameter(
    extra: dict[str, Any], param: str
) -> None:
    with fake_upstream(blue) as up, running_proxy(up.url, rsa=SMALL) as url:
        reply = chat(url, {"model": "rsa", "messages": QUESTION, **extra})
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["param"] == param
        assert param.split(".")[0] in reply.json()["error"]["message"]
        assert up.stats.received == []


def test_no_effect_tool_fields_are_accepted_and_not_forwarded() -> None:
    with fake_upstream(blue) as up, running_proxy(up.url, rsa=SMALL) as url:
        body = {"model": "rsa", "messages": QUESTION, "tools": [], "tool_choice": "none"}
        reply = chat(url, {**body, "parallel_tool_calls": False})
        assert reply.status_code == 200, reply.text
    assert all(
        not {"tools", "tool_choice", "parallel_tool_calls"} & set(r) for r in up.stats.received
    )


SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}},
    "required": ["colour"],
}


async def json_colour(i: int, body: dict[str, Any]) -> Reply:
    return answer(json.dumps({"colour": "blue" if i % 2 else "red"}, indent=1))


def test_a_json_schema_reaches_every_generation_and_the_aggregation_asks_for_it() -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "colour", "schema": SCHEMA, "strict": True},
    }
    with fake_upstream(json_colour) as up, running_proxy(up.url, rsa=SMALL) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "Name a colour as JSON."}],
            response_format=response_format,  # type: ignore[arg-type]
        )
    content = reply.choices[0].message.content
    assert content is not None and set(json.loads(content)) == {"colour"}
    sent = up.stats.received
    assert all(r["response_format"] == response_format for r in sent)
    assert sent[0]["messages"] == [{"role": "user", "content": "Name a colour as JSON."}]
    for request in sent[2:]:
        prompt = request["messages"][-1]["content"]
        assert "JSON object" in prompt and json.dumps(SCHEMA) in prompt
    rsa = (reply.model_extra or {})["rsa"]
    assert rsa["answer"] in ('{"colour":"blue"}', '{"colour":"red"}')  # the parsed object


def test_json_object_mode_votes_on_the_parsed_object_and_never_picks_broken_json() -> None:
    async def spaced(i: int, body: dict[str, Any]) -> Reply:
        if i % 3 == 0:
            return answer('{"a": 1, "b"')  # cut off by max_tokens
        return answer('{"a": 1, "b": 2}' if i % 3 == 1 else '```json\n{"b":2,"a":1}\n```')

    with fake_upstream(spaced) as up, running_proxy(up.url) as url:
        reply = chat(
            url,
            {
                "model": "rsa-n3-k1-t2/fake-model",
                "messages": [{"role": "user", "content": "JSON please"}],
                "response_format": {"type": "json_object"},
            },
        ).json()
    assert reply["rsa"]["steps"][-1]["agreement"] == pytest.approx(2 / 3)
    assert reply["rsa"]["answer"] == '{"a":1,"b":2}'
    assert json.loads(reply["choices"][0]["message"]["content"].strip("`json\n")) == {
        "a": 1,
        "b": 2,
    }
    assert all(r["response_format"] == {"type": "json_object"} for r in up.stats.received)


def logprob_entries(text: str) -> dict[str, Any]:
    tokens = [text[i : i + 3] for i in range(0, len(text), 3)]
    return {
        "content": [
            {"token": t, "logprob": -0.5, "bytes": None, "top_logprobs": []} for t in tokens
        ]
    }


async def with_logprobs(i: int, body: dict[str, Any]) -> Reply:
    status, headers, reply = answer(f"candidate {i} says blue")
    if body.get("logprobs"):
        reply["choices"][0]["logprobs"] = logprob_entries(f"candidate {i} says blue")
    return status, headers, reply


def test_logprobs_are_the_selected_candidates_own() -> None:
    with fake_upstream(with_logprobs) as up, running_proxy(up.url, rsa=SMALL) as url:
        body = {"model": "rsa", "messages": QUESTION, "logprobs": True, "top_logprobs": 2}
        reply = chat(url, body).json()
        text = reply["choices"][0]["message"]["content"]
        tokens = [e["token"] for e in reply["choices"][0]["logprobs"]["content"]]
        assert "".join(tokens) == text
        assert all(r["logprobs"] is True and r["top_logprobs"] == 2 for r in up.stats.received)
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="rsa",
                messages=QUESTION,
                logprobs=True,
                stream=True,
                seed=1,  # type: ignore[arg-type]
            )
        )
        streamed = [
            e.token
            for c in chunks
            if c.choices and c.choices[0].logprobs
            for e in c.choices[0].logprobs.content or []
        ]
        assert "".join(streamed) == "".join(
            c.choices[0].delta.content or "" for c in chunks if c.choices
        )
        # Without logprobs from the upstream, asking for them is a 400, not a silent null.
        plain = chat(url, {"model": "rsa", "messages": QUESTION}).json()
        assert plain["choices"][0]["logprobs"] is None
    with fake_upstream(blue) as up, running_proxy(up.url, rsa=SMALL) as url:
        refused = chat(url, {"model": "rsa", "messages": QUESTION, "logprobs": True})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "logprobs"


def test_model_names_choose_the_upstream_model_and_set_n_k_t() -> None:
    with (
        fake_upstream(blue, models=("small", "big/model")) as up,
        running_proxy(up.url, rsa=SMALL) as url,
    ):
        listed = [m["id"] for m in httpx.get(f"{url}/models").json()["data"]]
        assert listed == [
            "small",
            "rsa/small",
            "rsa-n2-k2-t2/small",
            "big/model",
            "rsa/big/model",
            "rsa-n2-k2-t2/big/model",
        ]
        one = httpx.get(f"{url}/models/rsa-n3-k2-t1/big/model")
        assert one.status_code == 200 and one.json()["id"] == "rsa-n3-k2-t1/big/model"
        assert httpx.get(f"{url}/models/nope").status_code == 404

        reply = chat(url, {"model": "rsa-n3-k2-t2/big/model", "messages": QUESTION}).json()
        assert reply["model"] == "rsa-n3-k2-t2/big/model"
        assert (reply["rsa"]["config"]["n"], reply["rsa"]["config"]["k"]) == (3, 2)
        assert len(up.stats.received) == 6 and {r["model"] for r in up.stats.received} == {
            "big/model"
        }
        chat(url, {"model": "big/model", "messages": QUESTION})
        assert up.stats.received[-1]["model"] == "big/model"
        chat(url, {"model": "rsa-t1", "messages": QUESTION})  # the default model: the first
        assert up.stats.received[-1]["model"] == "small"

        missing = chat(url, {"model": "gpt-4o", "messages": QUESTION})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
        assert "small, big/model" in missing.json()["error"]["message"]
        bad = chat(url, {"model": "rsa-n2-k5/small", "messages": QUESTION})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "model"


def upstream_error(status: int, error: dict[str, Any]) -> Any:
    async def respond(i: int, body: dict[str, Any]) -> Reply:
        return status, {}, {"error": error}

    return respond


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (
            400,
            {"message": "too long", "code": "context_length_exceeded"},
            "context_length_exceeded",
        ),
        (
            400,
            {"message": "This model's maximum context length is 4096 tokens"},
            "context_length_exceeded",
        ),
        (422, {"message": "bad stop", "code": "invalid_value", "param": "stop"}, "invalid_value"),
        (
            404,
            {"message": "The model `x` does not exist.", "code": "model_not_found"},
            "model_not_found",
        ),
    ],
)
def test_upstream_4xx_stays_a_4xx_with_the_upstreams_code(
    status: int, error: dict[str, Any], code: str
) -> None:
    with (
        fake_upstream(upstream_error(status, error)) as up,
        running_proxy(up.url, rsa=SMALL) as url,
    ):
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="rsa", messages=QUESTION)  # type: ignore[arg-type]
    assert info.value.status_code == status
    assert info.value.code == code and error["message"] in info.value.message
    assert len(up.stats.received) == 2  # no retries of a 4xx: the N plain generations


def test_405_names_the_allowed_methods_and_cors_answers_the_configured_origin() -> None:
    with fake_upstream(blue) as up, running_proxy(up.url, cors_origin=["https://app.test"]) as url:
        wrong = httpx.get(f"{url}/chat/completions")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert wrong.json()["error"]["code"] == "method_not_allowed"
        preflight = httpx.options(
            f"{url}/chat/completions",
            headers={
                "Origin": "https://app.test",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.test"
        other = httpx.get(f"{url}/models", headers={"Origin": "https://evil.test"})
        assert "access-control-allow-origin" not in other.headers
    with fake_upstream(blue) as up, running_proxy(up.url) as url:
        plain = httpx.get(f"{url}/models", headers={"Origin": "https://app.test"})
        assert "access-control-allow-origin" not in plain.headers  # no CORS unless asked


def test_the_sdks_parse_gets_its_pydantic_model_back() -> None:
    from pydantic import BaseModel

    class Colour(BaseModel):
        colour: str

    with fake_upstream(json_colour) as up, running_proxy(up.url, rsa=SMALL) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        reply = client.chat.completions.parse(
            model="rsa",
            messages=[{"role": "user", "content": "A colour as JSON."}],
            response_format=Colour,
        )
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, Colour) and parsed.colour in ("red", "blue")
    sent = up.stats.received[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Colour"
