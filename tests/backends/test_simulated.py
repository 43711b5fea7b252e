"""The simulated continuous-batching engine obeys its cost model, in exact virtual time."""

from __future__ import annotations

import asyncio

import pytest

from recursa import Dispatcher, Engine, GenerationRequest, Problem, RSAConfig
from recursa.backends.simulated import CostModel, LengthModel, SimulatedEngine
from recursa.virtual_clock import current_virtual_loop, run_virtual

# Binary fractions, so every expected time below is exact in floating point.
A, B_PER_SEQ, C = 1.0, 0.5, 0.25


def engine(max_batch: int) -> SimulatedEngine:
    # sigma 0: every request wants 10,000 tokens, so max_tokens sets its length exactly.
    return SimulatedEngine(
        CostModel(
            max_batch=max_batch, iteration_s=A, per_sequence_s=B_PER_SEQ, prefill_per_token_s=C
        ),
        LengthModel(median=10_000, sigma=0.0, cap=10_000, minimum=1),
    )


def request(key: str, prompt_words: int, length: int) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": " ".join(["w"] * prompt_words)}],
        max_tokens=length,
        key=key,
        meta={"problem_id": key, "step": 1},
    )


async def at(delay: float, sim: SimulatedEngine, req: GenerationRequest) -> float:
    """Submit `req` after `delay` virtual seconds; return the virtual time it was answered."""
    await asyncio.sleep(delay)
    await sim.generate(req)
    return asyncio.get_running_loop().time()


def test_virtual_clock_jumps_to_timers() -> None:
    async def main() -> tuple[float, bool]:
        await asyncio.sleep(3600)
        await asyncio.gather(asyncio.sleep(5), asyncio.sleep(2))
        return asyncio.get_running_loop().time(), current_virtual_loop() is not None

    assert run_virtual(main()) == (3605.0, True)


def test_one_request_costs_prefill_plus_its_iterations() -> None:
    sim = engine(4)

    async def main() -> float:
        done = await at(0, sim, request("a", 4, 3))
        return done

    # prefill 4 tokens * 0.25, then 3 iterations at a + b * 1
    assert run_virtual(main()) == 4 * C + 3 * (A + B_PER_SEQ) == 5.5
    t = sim.trace["a"]
    assert (t.started, t.finished, t.decode_s, t.own_prefill_s) == (0.0, 5.5, 4.5, 1.0)
    assert (t.prompt_tokens, t.completion_tokens) == (4, 3)
    assert sim.busy_batch_seconds == 5.5 and sim.iterations == 3


def test_batch_shares_iterations_and_shrinks_when_a_sequence_ends() -> None:
    sim = engine(2)

    async def main() -> list[float]:
        return list(
            await asyncio.gather(at(0, sim, request("a", 4, 3)), at(0, sim, request("b", 8, 5)))
        )

    # iteration 1: prefill 12 tokens (3.0) + a + 2b (2.0); iterations 2-3 at 2.0 -> a done at 9;
    # b alone: iterations 4-5 at a + b (1.5) -> done at 12
    assert run_virtual(main()) == [9.0, 12.0]
    assert sim.trace["a"].decode_s == 6.0
    assert sim.trace["b"].decode_s == 9.0
    assert sim.busy_batch_seconds == 2 * 9.0 + 1 * 3.0
    assert sim.peak_batch == 2


def test_full_batch_queues_first_come_first_served() -> None:
    sim = engine(1)

    async def main() -> list[float]:
        return list(
            await asyncio.gather(at(0, sim, request("a", 4, 2)), at(0, sim, request("b", 4, 2)))
        )

    assert run_virtual(main()) == [4.0, 8.0]  # b waits for a: starts at 4, 1 + 2 * 1.5 later
    assert sim.trace["b"].started == 4.0 and sim.trace["b"].submitted == 0.0


def test_arrival_mid_iteration_joins_at_the_next_boundary() -> None:
    sim = engine(2)

    async def main() -> list[float]:
        return list(
            await asyncio.gather(at(0, sim, request("a", 2, 4)), at(2.7, sim, request("b", 4, 1)))
        )

    # a alone: boundaries at 2.0 (prefill 0.5 + 1.5), 3.5, ...; b arrives at 2.7, joins at 3.5;
    # that iteration costs prefill 1.0 + a + 2b = 3.0 (b done at 6.5); a's last token alone: 8.0
    assert run_virtual(main()) == [8.0, 6.5]
    assert sim.trace["b"].started == 3.5
    assert sim.trace["a"].decode_s == 3 * 1.5 + 2.0


def test_idle_engine_starts_a_late_request_when_it_arrives() -> None:
    sim = engine(2)

    async def main() -> list[float]:
        return list(
            await asyncio.gather(at(0, sim, request("a", 0, 1)), at(20, sim, request("b", 0, 2)))
        )

    assert run_virtual(main()) == [1.5, 23.0]


def test_runs_only_in_virtual_time() -> None:
    with pytest.raises(RuntimeError, match="VirtualClockLoop"):
        asyncio.run(engine(1).generate(request("a", 1, 1)))


def test_lengths_are_a_function_of_seed_and_key() -> None:
    lengths = LengthModel()
    sample = [lengths.sample(0, f"p/1/{i}") for i in range(400)]
    assert sample == [lengths.sample(0, f"p/1/{i}") for i in range(400)]
    assert sample != [lengths.sample(1, f"p/1/{i}") for i in range(400)]
    assert all(lengths.minimum <= n <= lengths.cap for n in sample)
    assert 2400 < sorted(sample)[200] < 3600  # median 3000
    assert any(n == lengths.cap for n in sample)  # the tail reaches the cap


def run_rsa(sync: bool, problems: int, max_batch: int) -> tuple[float, SimulatedEngine]:
    sim = SimulatedEngine(CostModel(max_batch=max_batch), LengthModel(median=300, cap=800))
    eng = Engine(Dispatcher(sim), RSAConfig(n=4, k=2, t=3, seed=1, sync_steps=sync))

    async def main() -> float:
        await eng.run_many([Problem(f"p{i}", f"question {i}") for i in range(problems)])
        return asyncio.get_running_loop().time()

    return run_virtual(main()), sim


def test_one_problem_with_room_meets_the_lower_bound_exactly() -> None:
    wall, sim = run_rsa(sync=False, problems=1, max_batch=8)
    bound = sim.lower_bound()
    assert bound.chain_decode_s > bound.full_batch_decode_s
    assert wall == pytest.approx(bound.seconds, rel=1e-12)
    assert len(sim.trace) == 12


def test_rsa_workload_is_identical_under_both_schedules_and_bounded() -> None:
    wall_p, pipelined = run_rsa(sync=False, problems=6, max_batch=8)
    wall_s, barrier = run_rsa(sync=True, problems=6, max_batch=8)
    assert {k: (t.prompt_tokens, t.completion_tokens) for k, t in pipelined.trace.items()} == {
        k: (t.prompt_tokens, t.completion_tokens) for k, t in barrier.trace.items()
    }
    assert len(pipelined.trace) == 6 * 4 * 3
    assert pipelined.peak_batch == barrier.peak_batch == 8
    for wall, sim in ((wall_p, pipelined), (wall_s, barrier)):
        assert sim.lower_bound().seconds <= wall + 1e-9
        assert 0.0 < sim.utilisation(wall) <= 1.0
    # aggregation prompts quote K = 2 candidates: their prefill counts the declared lengths
    traces = list(pipelined.trace.values())
    for t in (t for t in traces if t.step == 2):
        parents = sorted(
            u.completion_tokens for u in traces if (u.problem, u.step) == (t.problem, 1)
        )
        assert t.prompt_tokens >= parents[0] + parents[1]
