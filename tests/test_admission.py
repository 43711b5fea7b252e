"""Admission control: the dispatcher bounds the tokens in flight, first come, first served."""

from __future__ import annotations

import asyncio

import pytest

from recursa import Dispatcher, GenerationRequest
from recursa.backends.admission import USAGE_WARMUP, TokenGate, decode_estimate
from recursa.backends.kv_cache import MemoryModel
from recursa.backends.simulated import CostModel, LengthModel, SimulatedEngine
from recursa.config import BackendConfig, build_configs
from recursa.virtual_clock import run_virtual


def sim(memory: MemoryModel | None = None) -> SimulatedEngine:
    return SimulatedEngine(
        CostModel(16, 1.0, 0.5, 0.25),
        LengthModel(median=10_000, sigma=0.0, cap=10_000, minimum=1),
        memory=memory,
    )


def request(i: int, words: int = 10, max_tokens: int = 10) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": " ".join(f"r{i}w{j}" for j in range(words))}],
        max_tokens=max_tokens,
        key=f"r{i}",
        meta={"problem_id": f"r{i}", "step": 1},
    )


def test_tokens_in_flight_stay_under_the_budget_in_arrival_order() -> None:
    engine = sim()
    # each request holds 10 prompt + 10 max_tokens = 20 tokens: 2 fit a budget of 50
    dispatcher = Dispatcher(engine, max_tokens_in_flight=50)

    async def main() -> None:
        await asyncio.gather(*(dispatcher.generate(request(i)) for i in range(6)))

    run_virtual(main())
    assert dispatcher.tokens is not None
    assert dispatcher.tokens.peak == 40 and dispatcher.tokens.in_flight == 0
    assert engine.peak_batch == 2
    starts = [engine.trace[f"r{i}"].started for i in range(6)]
    assert starts == sorted(starts) and starts[0] == starts[1] < starts[2] == starts[3]
    assert dispatcher.usage.requests == 6


def test_without_a_budget_everything_goes_at_once() -> None:
    engine = sim()
    dispatcher = Dispatcher(engine)

    async def main() -> None:
        await asyncio.gather(*(dispatcher.generate(request(i)) for i in range(6)))

    run_virtual(main())
    assert dispatcher.tokens is None and engine.peak_batch == 6


def test_a_budget_of_the_pool_never_lets_the_engine_preempt() -> None:
    memory = MemoryModel(160)  # 10 blocks; each request may grow to 20 tokens = 2 blocks
    free, bounded = sim(memory), sim(memory)

    async def main(engine: SimulatedEngine, budget: int | None) -> None:
        d = Dispatcher(engine, max_tokens_in_flight=budget)
        await asyncio.gather(*(d.generate(request(i, words=15, max_tokens=17)) for i in range(8)))

    run_virtual(main(free, None))
    run_virtual(main(bounded, memory.kv_tokens))
    assert free.kv_stats().preemptions > 0
    assert bounded.kv_stats().preemptions == 0


def test_a_request_larger_than_the_budget_goes_alone() -> None:
    engine = sim()
    dispatcher = Dispatcher(engine, max_tokens_in_flight=15)

    async def main() -> None:
        await asyncio.gather(*(dispatcher.generate(request(i)) for i in range(3)))

    run_virtual(main())
    assert engine.peak_batch == 1 and dispatcher.usage.requests == 3


def test_usage_estimate_uses_the_mean_reported_completion_after_warmup() -> None:
    assert decode_estimate("max_tokens", 8192, 100, 100 * 3000) == 8192
    assert decode_estimate("usage", 8192, USAGE_WARMUP - 1, 10) == 8192
    assert decode_estimate("usage", 8192, USAGE_WARMUP, USAGE_WARMUP * 3000 + 1) == 3001
    assert decode_estimate("usage", 100, USAGE_WARMUP, USAGE_WARMUP * 3000) == 100


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    async def main() -> list[str]:
        gate = TokenGate(10)
        order: list[str] = []
        await gate.acquire(8)

        async def take(name: str, tokens: int) -> None:
            await gate.acquire(tokens)
            order.append(name)

        blocked = asyncio.ensure_future(take("blocked", 5))
        behind = asyncio.ensure_future(take("behind", 1))
        await asyncio.sleep(0)
        assert order == []  # "behind" would fit, but waits its turn
        blocked.cancel()
        await asyncio.sleep(0)
        await behind
        gate.release(8)
        gate.release(1)
        assert gate.in_flight == 0
        return order

    assert asyncio.run(main()) == ["behind"]
    with pytest.raises(ValueError, match="at least 1"):
        TokenGate(0)


def test_config_and_flags_reach_the_dispatcher() -> None:
    _, cfg = build_configs(
        {"backend": "mock", "max_tokens_in_flight": 800_000, "in_flight_estimate": "usage"}
    )
    d = Dispatcher.from_config(sim(), cfg)
    assert d.tokens is not None and d.tokens.budget == 800_000
    assert d.in_flight_estimate == "usage"
    assert Dispatcher.from_config(sim(), BackendConfig()).tokens is None
