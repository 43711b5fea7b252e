"""Several clients at once share one limit on concurrent upstream requests."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai

from tests.async_upstream import Reply, answer, fake_upstream
from tests.proxy_harness import running_proxy

LIMIT = 3
CLIENTS = 8
N, K, T = 3, 2, 2


def test_eight_clients_complete_and_upstream_concurrency_stays_within_the_limit() -> None:
    async def slow(i: int, body: dict[str, Any]) -> Reply:
        await asyncio.sleep(0.1)
        return answer(f"work {i}\n\\boxed{{{i % 3}}}", prompt_tokens=7, completion_tokens=3)

    with (
        fake_upstream(slow) as up,
        running_proxy(
            up.url, rsa={"n": N, "k": K, "t": T, "task": "math"}, backend={"concurrency": LIMIT}
        ) as url,
    ):
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=120)

        def ask(i: int) -> Any:
            return client.chat.completions.create(
                model="rsa",
                messages=[{"role": "user", "content": f"question {i}"}],
                seed=i,
            )

        with ThreadPoolExecutor(CLIENTS) as pool:
            replies = list(pool.map(ask, range(CLIENTS)))

    assert len(replies) == CLIENTS
    for reply in replies:
        assert reply.choices[0].message.content.startswith("work ")
        assert reply.usage.prompt_tokens == N * T * 7
        assert reply.usage.completion_tokens == N * T * 3
    assert len(up.stats.received) == CLIENTS * N * T
    assert up.stats.answered == CLIENTS * N * T
    assert up.stats.peak <= LIMIT
    # 24 first-step requests arrive at once, so the limit is reached, not just respected.
    assert up.stats.peak == LIMIT
