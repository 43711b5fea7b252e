"""The simulated engine's KV-cache model: exact small cases for its invariants (the pool is
never over capacity, preempted work is recomputed, shared prefix blocks are counted once) and
the memory-aware lower bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from recursa import Dispatcher, Engine, GenerationRequest, Problem, RSAConfig
from recursa.backends.kv_cache import (
    MEMORY_PRESETS,
    BlockPool,
    MemoryModel,
    blocks_over_decode,
    ceil_sum,
    layout,
    memory_preset,
)
from recursa.backends.simulated import CostModel, LengthModel, SimulatedEngine
from recursa.errors import BackendError
from recursa.virtual_clock import run_virtual

# Binary fractions, so every expected time below is exact in floating point.
A, B_PER_SEQ, C = 1.0, 0.5, 0.25


def engine(
    kv_tokens: int, priority: Callable[[GenerationRequest], int] | None = None
) -> SimulatedEngine:
    # sigma 0: every request wants 10,000 tokens, so max_tokens sets its length exactly.
    return SimulatedEngine(
        CostModel(4, A, B_PER_SEQ, C),
        LengthModel(median=10_000, sigma=0.0, cap=10_000, minimum=1),
        memory=MemoryModel(kv_tokens),
        priority=priority,
    )


def request(key: str, words: list[str], length: int, step: int = 1) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": " ".join(words)}],
        max_tokens=length,
        key=key,
        meta={"problem_id": key, "step": step},
    )


def unique_words(tag: str, n: int) -> list[str]:
    return [f"{tag}{i}" for i in range(n)]


async def at(delay: float, sim: SimulatedEngine, req: GenerationRequest) -> float:
    await asyncio.sleep(delay)
    await sim.generate(req)
    return asyncio.get_running_loop().time()


def test_layout_shares_exactly_the_blocks_whose_prefix_agrees() -> None:
    a = layout([(w, 1) for w in unique_words("x", 40)])
    b = layout([(w, 1) for w in unique_words("x", 20) + unique_words("y", 20)])
    assert [n for _, n in a] == [1, 1]  # 40 tokens: 2 full blocks, 8 tokens left over
    assert a[0] == b[0] and a[1] != b[1]  # tokens 0-15 agree, 16-31 do not
    quoted = layout([("intro", 1), ("\0p/1/0", 3000), ("end", 1)])
    # block 0: 1 intro token + 15 of the completion; then 186 whole blocks inside it; the
    # last 9 + 1 tokens (completion tail, "end") are the partial block
    assert [n for _, n in quoted] == [1, 186]
    assert sum(n for _, n in quoted) == 3002 // 16
    other = layout([("intro", 1), ("\0p/1/1", 3000), ("end", 1)])
    assert quoted[0] != other[0] and quoted[1] != other[1]


def test_block_sums_in_closed_form() -> None:
    for n in range(0, 70):
        assert ceil_sum(n) == sum(-(-m // 16) for m in range(1, n + 1))
    for prompt in (1, 15, 16, 17, 40):
        for tokens in (1, 16, 33):
            brute = sum(-(-(prompt + j - 1) // 16) for j in range(1, tokens + 1))
            assert blocks_over_decode(prompt, tokens) == brute


def test_pool_refuses_to_go_over_capacity() -> None:
    pool = BlockPool(MemoryModel(64))
    pool.acquire([(1, 2)], private=1)
    pool.acquire([(1, 2)], private=1)  # the shared run counts once
    assert (pool.used, pool.shared_blocks, pool.peak) == (4, 2, 4)
    with pytest.raises(AssertionError, match="over capacity"):
        pool.grow(1)
    pool = BlockPool(MemoryModel(64))
    pool.acquire([(1, 2)], private=1)
    pool.release([(1, 2)], private=1)
    assert pool.used == 0 and pool.cached_blocks([(1, 2)]) == 0


def test_preemption_frees_the_latest_sequence_and_recomputes_it() -> None:
    sim = engine(kv_tokens=64)  # 4 blocks

    async def main() -> list[float]:
        a = at(0, sim, request("a", unique_words("a", 16), 20))
        b = at(0, sim, request("b", unique_words("b", 16), 20))
        return list(await asyncio.gather(a, b))

    # Both prompts take 1 block: admitted at 0, first iteration prefill 32 * C + a + 2b = 10.
    # Tokens 2-17 need 2 blocks each (all 4): 16 iterations of 2.0, to t = 42. Token 18 needs
    # 3 blocks each: b (admitted last) is preempted; a decodes 18-20 alone (3 * 1.5, t = 46.5)
    # and frees its blocks; b rejoins, prefilling its prompt and 17 decoded tokens again
    # (33 * C = 8.25) and decodes 18-20: 8.25 + 3 * 1.5 later, t = 59.25.
    assert run_virtual(main()) == [46.5, 59.25]
    a, b = sim.trace["a"], sim.trace["b"]
    assert (a.preemptions, a.recomputed_tokens, a.prefill_tokens) == (0, 0, 16)
    assert (b.preemptions, b.recomputed_tokens, b.prefill_tokens) == (1, 33, 16 + 33)
    assert b.decode_s == 16 * 2.0 + 2.0 + 3 * 1.5
    stats = sim.kv_stats()
    assert (stats.peak_blocks, stats.capacity_blocks, stats.peak_share) == (4, 4, 1.0)
    assert stats.preempted_tokens == 33
    assert stats.computed_tokens == 16 + 16 + 33 + 40
    assert sim.pool is not None and sim.pool.used == 0  # everything released

    bound = sim.lower_bound()
    assert bound.prefill_s == 32 * C  # each distinct block once; no partial blocks
    # blocks held per emitted token: 1 + 16 * 2 + 3 * 3 = 42 per request; b 40 + a 42 * 2 / 4
    assert bound.memory_decode_s == B_PER_SEQ * 40 + A * 84 / 4 == 41.0
    assert bound.full_batch_decode_s == (A + B_PER_SEQ * 4) / 4 * 40 == 30.0
    assert bound.chain_decode_s == 38.5 and bound.bound_by == "memory"
    assert bound.seconds == 49.0 <= 59.25


def test_priority_preempts_the_lowest_priority_sequence() -> None:
    sim = engine(kv_tokens=64, priority=lambda r: -int(r.meta["step"]))

    async def main() -> list[float]:
        a = at(0, sim, request("a", unique_words("a", 16), 20, step=1))
        b = at(0, sim, request("b", unique_words("b", 16), 20, step=2))
        return list(await asyncio.gather(a, b))

    # same as above with the roles swapped: a (priority -1 > -2) is the one preempted
    assert run_virtual(main()) == [59.25, 46.5]
    assert sim.trace["a"].recomputed_tokens == 33 and sim.trace["b"].preemptions == 0


def test_a_request_joins_only_when_its_prompt_blocks_fit() -> None:
    sim = engine(kv_tokens=48)  # 3 blocks

    async def main() -> list[float]:
        a = at(0, sim, request("a", unique_words("a", 32), 2))  # 2 blocks
        b = at(0, sim, request("b", unique_words("b", 32), 2))  # 2 more do not fit
        return list(await asyncio.gather(a, b))

    # a: prefill 32 * C + 1.5, then one more iteration (token 2 needs ceil(33/16) = 3 blocks)
    # = 9.5 + 1.5 = 11; b waits for a's blocks: 11 + 8 + 1.5 + 1.5 = 22
    assert run_virtual(main()) == [11.0, 22.0]
    assert sim.trace["b"].started == 11.0 and sim.peak_batch == 1
    assert sim.kv_stats().preemptions == 0


def test_identical_prefix_blocks_are_stored_and_prefilled_once() -> None:
    sim = engine(kv_tokens=256)
    words = unique_words("w", 40)  # 2 full blocks + 8 tokens

    async def main() -> list[float]:
        return list(
            await asyncio.gather(
                at(0, sim, request("a", words, 4)), at(0, sim, request("b", words, 4))
            )
        )

    # b finds a's 2 full blocks: prefill (40 + 8) * C = 12, + a + 2b = 14, then 3 * 2.0
    assert run_virtual(main()) == [20.0, 20.0]
    a, b = sim.trace["a"], sim.trace["b"]
    assert (a.cached_tokens, a.prefill_tokens) == (0, 40)
    assert (b.cached_tokens, b.prefill_tokens) == (32, 8)
    stats = sim.kv_stats()
    # 2 shared blocks once + 1 private (the partial block, then up to 43 tokens) each
    assert stats.peak_blocks == 4
    assert stats.prefix_hit_rate == 32 / 80
    bound = sim.lower_bound()
    assert bound.prefill_s == (32 + 8 + 8) * C  # the shared blocks once, the tails twice
    # held per token: shared 2 blocks at 1/2 each + 1 private block, 4 tokens, 2 requests;
    # the 4 iterations of these one-step problems hold at most 2 * 2 of the 16 blocks, so
    # a * 4 * (1 - 4/16) = 3 of the empty pool is paid on top
    assert bound.early_s == A * 4 * (1 - 4 / 16) == 3.0
    assert bound.memory_decode_s == B_PER_SEQ * 8 + A * (2 * 4 * (1 + 1)) / 16 + 3.0 == 8.0
    assert bound.seconds == 12 + 8 <= 20.0  # this schedule is optimal: the bound is tight


def test_shared_blocks_are_freed_with_the_last_sequence_using_them() -> None:
    sim = engine(kv_tokens=256)
    words = unique_words("w", 40)

    async def main() -> list[float]:
        return list(
            await asyncio.gather(
                at(0, sim, request("a", words, 4)), at(100, sim, request("b", words, 4))
            )
        )

    run_virtual(main())
    assert sim.trace["b"].cached_tokens == 0  # a had finished: nothing left to share
    assert sim.pool is not None and sim.pool.used == 0


def test_whole_cached_prompt_still_prefills_one_token() -> None:
    sim = engine(kv_tokens=256)
    words = unique_words("w", 32)  # exactly 2 blocks

    async def main() -> None:
        await asyncio.gather(at(0, sim, request("a", words, 4)), at(0, sim, request("b", words, 4)))

    run_virtual(main())
    assert (sim.trace["b"].cached_tokens, sim.trace["b"].prefill_tokens) == (31, 1)


def test_a_request_the_empty_pool_cannot_hold_is_refused() -> None:
    sim = engine(kv_tokens=64)

    async def main() -> None:
        await sim.generate(request("a", unique_words("a", 40), 40))

    with pytest.raises(BackendError, match="cannot hold a 40-token prompt with max_tokens=40"):
        run_virtual(main())


def test_the_preset_is_the_issue_arithmetic() -> None:
    preset = MEMORY_PRESETS["qwen3-4b-h200"]
    assert preset.bytes_per_token == 36 * 8 * 128 * 2 * 2 == 147_456
    memory = memory_preset("qwen3-4b-h200")
    assert memory.kv_tokens == preset.kv_tokens == 806_336  # (0.9 * 141 GB - 8 GB) / 147,456
    assert memory.blocks == 50_396
    with pytest.raises(ValueError, match="unknown memory preset 'h100'"):
        memory_preset("h100")


def run_rsa(sync: bool, kv_tokens: int) -> tuple[float, SimulatedEngine]:
    sim = SimulatedEngine(
        CostModel(max_batch=16),
        LengthModel(median=300, cap=800),
        memory=MemoryModel(kv_tokens),
    )
    config = RSAConfig(n=4, k=2, t=3, seed=1, max_tokens=800, sync_steps=sync)
    eng = Engine(Dispatcher(sim), config)

    async def main() -> float:
        await eng.run_many([Problem(f"p{i}", f"question {i} " + "x " * 40) for i in range(4)])
        return asyncio.get_running_loop().time()

    return run_virtual(main()), sim


def test_rsa_under_memory_pressure_is_bounded_and_never_over_capacity() -> None:
    # ~3 aggregation sequences of ~1,000 tokens fit: the engine must preempt
    for sync in (False, True):
        wall, sim = run_rsa(sync, kv_tokens=3200)
        stats = sim.kv_stats()
        assert len(sim.trace) == 4 * 4 * 3
        assert all(t.finished == t.finished for t in sim.trace.values())  # none left (NaN)
        assert stats.peak_blocks <= stats.capacity_blocks == 200
        assert stats.preemptions > 0 and stats.preempted_tokens > 0
        assert 0 < stats.preempted_share < 1 and 0 < stats.prefix_hit_rate < 1
        # a preempted request prefilled again when it rejoined; no other request did
        for t in sim.trace.values():
            assert (t.recomputed_tokens > 0) == (t.preemptions > 0)
            assert t.prefill_tokens + t.cached_tokens >= t.prompt_tokens + t.recomputed_tokens
        bound = sim.lower_bound()
        assert bound.seconds <= wall + 1e-9
        assert bound.memory_decode_s > 0
        assert sim.pool is not None and sim.pool.used == 0


def test_a_watermark_keeps_room_for_growth_instead_of_preempting() -> None:
    def run(watermark: float) -> tuple[list[float], SimulatedEngine]:
        sim = SimulatedEngine(
            CostModel(4, A, B_PER_SEQ, C),
            LengthModel(median=10_000, sigma=0.0, cap=10_000, minimum=1),
            memory=MemoryModel(64),  # 4 blocks
            watermark=watermark,
        )

        async def main() -> list[float]:
            a = at(0, sim, request("a", unique_words("a", 32), 2))  # 2 blocks, then 3
            b = at(0, sim, request("b", unique_words("b", 16), 2))  # 1 block, then 2
            return list(await asyncio.gather(a, b))

        return run_virtual(main()), sim

    # No watermark: both join at 0 (3 blocks): 48 * C + a + 2b = 14. Token 2 needs 3 + 2
    # blocks: b is preempted, a decodes alone (15.5); b prefills its 16 + 1 tokens again
    # (4.25) and decodes its second token: 15.5 + 4.25 + 1.5 = 21.25.
    times, sim = run(0.0)
    assert times == [15.5, 21.25] and sim.trace["b"].preemptions == 1
    # Watermark 0.5 (2 blocks): a joins the empty batch; b would leave 1 < 2 blocks free, so
    # it waits for a (32 * C + 2 * 1.5 = 11), then joins the empty batch: 11 + 4 + 3 = 18.
    assert sim.watermark_blocks == 0
    times, sim = run(0.5)
    assert times == [11.0, 18.0] and sim.kv_stats().preemptions == 0
    assert sim.watermark_blocks == 2
    with pytest.raises(ValueError, match="watermark is a share"):
        SimulatedEngine(memory=MemoryModel(64), watermark=1.0)


def test_the_first_iterations_leave_a_pool_share_no_schedule_can_fill() -> None:
    sim = engine(kv_tokens=256)  # 16 blocks

    def step_request(key: str, step: int, length: int) -> GenerationRequest:
        words = unique_words(key, 16)  # exactly one full block, no partial block
        return GenerationRequest(
            messages=[{"role": "user", "content": " ".join(words)}],
            max_tokens=length,
            key=key,
            meta={"problem_id": "p", "step": step},
        )

    async def main() -> float:
        await sim.generate(step_request("s1", 1, 4))  # a problem's step 2 waits for step 1
        await sim.generate(step_request("s2", 2, 4))
        return asyncio.get_running_loop().time()

    # each request: prefill 16 * C = 4, then 4 iterations of a + b = 1.5
    wall = run_virtual(main())
    assert wall == 2 * (4 + 4 * 1.5)
    bound = sim.lower_bound()
    # L* = 4 (step 1's longest): in iterations 1-4 only s1 runs, holding at most
    # ceil((16 + 4 - 1) / 16) = 2 of the 16 blocks: a * 4 * (1 - 2/16) = 3.5 is paid on top
    assert bound.early_s == A * 4 * (1 - 2 / 16) == 3.5
    held = 2 * (1 + 2 + 2 + 2)  # blocks per emitted token, both requests
    assert bound.memory_decode_s == B_PER_SEQ * 8 + A * held / 16 + 3.5
    assert bound.memory_decode_s == 8.375 <= bound.chain_decode_s == 12.0  # the chain binds
    assert bound.seconds == 32 * C + 12.0 == wall  # and this run is optimal


def test_the_memory_terms_bound_every_schedule_of_a_workload() -> None:
    # The same workload under five schedules (pipelined FCFS, by step, by reversed step, with
    # a watermark, and the step barrier): the memory terms of the bound do not depend on the
    # schedule, and none of these achievable schedules is faster than the bound.
    def run(sync: bool, priority: Callable[[GenerationRequest], int] | None, mark: float):
        sim = SimulatedEngine(
            CostModel(max_batch=8),
            LengthModel(median=300, cap=800),
            memory=MemoryModel(3200),
            priority=priority,
            watermark=mark,
        )
        config = RSAConfig(n=4, k=2, t=3, seed=1, max_tokens=800, sync_steps=sync)
        eng = Engine(Dispatcher(sim), config)

        async def main() -> float:
            await eng.run_many([Problem(f"p{i}", f"question {i} " + "x " * 40) for i in range(4)])
            return asyncio.get_running_loop().time()

        return run_virtual(main()), sim.lower_bound(), sim

    def by_step(r: GenerationRequest) -> int:
        return int(r.meta["step"])

    runs = [
        run(False, None, 0.0),
        run(False, by_step, 0.0),
        run(False, lambda r: -by_step(r), 0.0),
        run(False, by_step, 0.05),
        run(True, by_step, 0.0),
    ]
    first = runs[0][1]
    assert first.early_s > 0
    for wall, bound, sim in runs:
        assert (bound.prefill_s, bound.memory_decode_s, bound.early_s) == (
            first.prefill_s,
            first.memory_decode_s,
            first.early_s,
        )
        assert bound.prefill_s + bound.memory_decode_s <= wall + 1e-9
        assert bound.seconds <= wall + 1e-9
        assert sim.pool is not None and sim.pool.peak <= sim.pool.capacity
