"""`recursa serve` has the engine's final selections: a request's `rsa` object may ask for
self-verification (`"selection": "verify"`), judged by the upstream model itself."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from recursa.verification import VERIFY_QUESTION
from tests.helpers.async_upstream import Reply, answer, fake_upstream
from tests.helpers.proxy_harness import running_proxy


async def upstream(i: int, body: dict[str, Any]) -> Reply:
    prompt = body["messages"][-1]["content"]
    if VERIFY_QUESTION in prompt:  # a judgement: only the candidate answering 2 is right
        return answer("True" if "\\boxed{2}" in prompt else "False")
    return answer(f"sample {i}\n\\boxed{{{2 if i == 0 else 1}}}")


@pytest.mark.parametrize(("selection", "boxed"), [("majority", "1"), ("verify", "2")])
def test_a_request_can_ask_for_self_verification(selection: str, boxed: str) -> None:
    with (
        fake_upstream(upstream) as up,
        running_proxy(up.url, rsa={"n": 3, "k": 1, "t": 1, "task": "math"}) as url,
    ):
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=60)
        reply = client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "What is 1 + 1?"}],
            extra_body={"rsa": {"selection": selection}},
        )
    assert reply.choices[0].message.content.endswith(f"\\boxed{{{boxed}}}")
    judged = sum(VERIFY_QUESTION in r["messages"][-1]["content"] for r in up.stats.received)
    assert judged == (3 if selection == "verify" else 0)


def test_an_unknown_selection_gets_the_registrys_sentence() -> None:
    with (
        fake_upstream(upstream) as up,
        running_proxy(up.url, rsa={"n": 2, "k": 1, "t": 1, "task": "math"}) as url,
    ):
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=60)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="fake-model",
                messages=[{"role": "user", "content": "What is 1 + 1?"}],
                extra_body={"rsa": {"selection": "best"}},
            )
    assert "unknown selection 'best'; choose one of majority, random, verify" in str(caught.value)
