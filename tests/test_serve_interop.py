"""Real clients against `recursa serve` in front of llama-cpp-python's real server with the
bundled SmolLM2-135M-Instruct: the openai SDK (sync, async, streaming, Responses API),
LiteLLM, simonw's `llm` CLI and inspect_ai (`openai-api/` and `openai/` providers). Settings
are small (N 2, T 2, a few tokens): these prove the wire formats, not answer quality."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.proxy_harness import running_proxy

pytestmark = [pytest.mark.interop, pytest.mark.e2e]

RSA = {"n": 2, "k": 2, "t": 2}
MODEL = "rsa-n2-k2-t2/smollm2"
QUESTION = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def proxy(llama_server: str) -> Any:
    with running_proxy(llama_server, rsa={**RSA, "max_tokens": 12}, keepalive=0.5) as url:
        yield url


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)


def test_openai_sdk_sync_and_async_chat_completions(proxy: str) -> None:
    reply = client(proxy).chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Answer in one word."}, *QUESTION],  # type: ignore[list-item]
        max_tokens=8,
        stop=["\n\n"],
        frequency_penalty=0.5,
        seed=3,
    )
    assert reply.model == MODEL and reply.choices[0].message.content
    assert (reply.model_extra or {})["rsa"]["generations"] == 4

    async def ask() -> str | None:
        async_client = openai.AsyncOpenAI(base_url=proxy, api_key="unused", max_retries=0)
        answers = await asyncio.gather(
            *[
                async_client.chat.completions.create(
                    model="rsa/smollm2",
                    messages=QUESTION,  # type: ignore[arg-type]
                    max_tokens=6,
                )
                for _ in range(2)
            ]
        )
        await async_client.close()
        return "".join(a.choices[0].message.content or "" for a in answers)

    assert asyncio.run(ask())


def test_openai_sdk_streaming_with_usage(proxy: str) -> None:
    chunks = list(
        client(proxy).chat.completions.create(
            model=MODEL,
            messages=QUESTION,  # type: ignore[arg-type]
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_openai_sdk_responses_api_plain_and_streamed(proxy: str) -> None:
    sdk = client(proxy)
    response = sdk.responses.create(
        model=MODEL, instructions="Be brief.", input="Name a colour.", max_output_tokens=8
    )
    assert response.object == "response" and response.output_text.strip()
    assert response.status in ("completed", "incomplete")
    events = list(sdk.responses.create(model=MODEL, input="Name a colour.", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type in ("response.completed", "response.incomplete")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text  # type: ignore[union-attr]


def test_json_mode_logprobs_and_context_overflow_against_the_real_server(proxy: str) -> None:
    sdk = client(proxy)
    reply = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour as a JSON object."}],
        max_tokens=40,
        response_format={"type": "json_object"},
        seed=1,
    )
    assert (reply.model_extra or {})["rsa"]["answer"] is not None  # a parsed object won
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
    with_logprobs = sdk.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=3,
        logprobs=True,  # type: ignore[arg-type]
    )
    choice = with_logprobs.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "word " * 5000}],
            max_tokens=4,
        )
    assert info.value.code == "context_length_exceeded"  # the server's 400, not a 502


def test_an_upstream_url_without_v1_gets_a_hint(llama_server: str) -> None:
    bare = llama_server.removesuffix("/v1")
    with running_proxy(bare, rsa=RSA, backend={"max_retries": 0}) as url:
        reply = httpx.post(
            f"{url}/chat/completions", json={"model": "rsa", "messages": QUESTION}, timeout=60
        )
    assert reply.status_code == 502
    assert (
        f"is --upstream missing /v1? OpenAI-compatible servers answer at {bare}/v1"
        in (reply.json()["error"]["message"])
    )


def test_litellm_completion_and_stream(proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    import litellm

    common: dict[str, Any] = {
        "model": f"openai/{MODEL}",
        "api_base": proxy,
        "api_key": "unused",
        "messages": QUESTION,
        "max_tokens": 6,
    }
    reply = litellm.completion(**common)
    assert reply.choices[0].message.content  # type: ignore[union-attr]
    stream = litellm.completion(**common, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream).strip()  # type: ignore[union-attr]


def run_llm(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    llm = Path(sys.executable).with_name("llm")
    return subprocess.run(
        [str(llm), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LLM_USER_PATH": str(home), "OPENAI_API_KEY": "unused"},
    )


def test_llm_cli_prompt_and_schema(llama_server: str, tmp_path: Path) -> None:
    # llama-cpp-python's server takes a JSON schema only as json_object + schema.
    with running_proxy(
        llama_server, rsa={**RSA, "max_tokens": 24}, upstream_schema_format="json_object"
    ) as url:
        (tmp_path / "extra-openai-models.yaml").write_text(
            f"- model_id: rsa-smol\n  model_name: {MODEL}\n  api_base: {url}\n"
            "  supports_schema: true\n"
        )
        plain = run_llm(tmp_path, "-m", "rsa-smol", "-o", "max_tokens", "6", "Name a colour.")
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.strip()
        schema = run_llm(tmp_path, "-m", "rsa-smol", "--schema", "colour str", "A colour, as JSON.")
        assert schema.returncode == 0, schema.stderr
    assert set(json.loads(schema.stdout)) == {"colour"}


def test_inspect_ai_openai_api_and_openai_responses_providers(
    proxy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    monkeypatch.setenv("RSAPROXY_API_KEY", "unused")
    monkeypatch.setenv("RSAPROXY_BASE_URL", proxy)
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    task = Task(
        dataset=[Sample(input="Name a colour.", target="blue")],
        solver=generate(),
        scorer=includes(),
    )
    for model, args in [
        (f"openai-api/rsaproxy/{MODEL}", {}),  # chat completions
        (f"openai/{MODEL}", {"responses_api": True}),  # the Responses API
    ]:
        [log] = inspect_eval(
            task,
            model=model,
            model_base_url=proxy,
            model_args=args,
            max_tokens=6,
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
        assert log.status == "success", (model, log.error)
        assert log.samples and log.samples[0].output.completion.strip(), model
