"""The RSA loop on the mock backend: subsets, prompts, seeds, special cases."""

from __future__ import annotations

import asyncio
import re

import pytest

from recursa import Dispatcher, Engine, GenerationRequest, Problem, RSAConfig, UsageError, solve
from recursa.backends.mock import MockBackend
from recursa.config import build_configs
from recursa.engine import draw_subset
from recursa.prompts import AGGREGATE_INTRO, REFINE_INTRO


def unique_script(req: GenerationRequest) -> str:
    """A distinct, recognisable text per (problem, step, slot)."""
    return f"candidate <{req.key}> says \\boxed{{{req.meta['slot']}}}"


def run(config: RSAConfig, problems: list[Problem] | None = None) -> tuple[MockBackend, list]:
    backend = MockBackend(script=unique_script)
    engine = Engine(Dispatcher(backend), config)
    results = asyncio.run(engine.run_many(problems or [Problem("p0", "What is 6*7?", task="math")]))
    return backend, results


def test_subsets_are_k_distinct_members_and_prompts_hold_exactly_them() -> None:
    cfg = RSAConfig(n=5, k=3, t=3, task="math", seed=7)
    backend, results = run(cfg)
    steps = results[0].steps
    assert [s.step for s in steps] == [1, 2, 3]
    by_key = {r.key: r for r in backend.calls}
    for step in steps[1:]:
        previous = steps[step.step - 2].candidates
        for cand in step.candidates:
            assert len(cand.parents) == 3 and len(set(cand.parents)) == 3
            assert all(0 <= p < 5 for p in cand.parents)
            prompt = by_key[f"p0/{step.step}/{cand.slot}"].messages[-1]["content"]
            shown = re.findall(r"candidate <([^>]+)>", prompt)
            expected = [f"p0/{step.step - 1}/{p}" for p in cand.parents]
            assert shown == expected  # exactly those K texts, in subset order
            for p in cand.parents:
                assert previous[p].text in prompt


def test_same_seed_same_subsets_and_different_seed_differs() -> None:
    a = [draw_subset(3, "p", 2, s, 16, 4) for s in range(16)]
    b = [draw_subset(3, "p", 2, s, 16, 4) for s in range(16)]
    c = [draw_subset(4, "p", 2, s, 16, 4) for s in range(16)]
    assert a == b
    assert a != c
    cfg = RSAConfig(n=4, k=2, t=3, seed=11, task="math")
    _, r1 = run(cfg)
    _, r2 = run(cfg)
    assert [[c.parents for c in s.candidates] for s in r1[0].steps] == [
        [c.parents for c in s.candidates] for s in r2[0].steps
    ]


def test_k1_uses_refine_prompt_and_k2_the_aggregation_prompt() -> None:
    backend, _ = run(RSAConfig(n=3, k=1, t=2, task="math"))
    agg = [r for r in backend.calls if r.meta["step"] == 2]
    refine = REFINE_INTRO.format(kind="math problem", hint="\\boxed{}").split(".")[0]
    assert agg and all(refine in r.messages[0]["content"] for r in agg)
    assert all("Solution 1" not in r.messages[0]["content"] for r in agg)
    backend, _ = run(RSAConfig(n=3, k=2, t=2, task="math"))
    agg = [r for r in backend.calls if r.meta["step"] == 2]
    aggregate = AGGREGATE_INTRO.format(kind="math problem", hint="\\boxed{}").split(".")[0]
    assert all(aggregate in r.messages[0]["content"] for r in agg)
    assert all("Solution 2" in r.messages[0]["content"] for r in agg)


def test_t1_makes_no_aggregation_call() -> None:
    backend, results = run(RSAConfig(n=4, k=2, t=1, task="math"))
    assert len(backend.calls) == 4
    assert all(r.meta["step"] == 1 for r in backend.calls)
    assert all("candidate" not in r.messages[0]["content"] for r in backend.calls)
    assert len(results[0].steps) == 1


def test_k_greater_than_n_and_other_bad_settings_are_usage_errors() -> None:
    for bad in (
        {"n": 2, "k": 3},
        {"n": 0},
        {"k": 0},
        {"t": 0},
        {"temperature": -1},
        {"max_tokens": 0},
    ):
        with pytest.raises(UsageError):
            build_configs(bad)
    with pytest.raises(UsageError, match="cannot exceed"):
        build_configs({"n": 2, "k": 3})


def test_problems_run_without_a_step_barrier() -> None:
    """A fast problem finishes all its steps while a slow one is still at step 1."""
    order: list[str] = []

    class Slow(MockBackend):
        async def generate(self, request: GenerationRequest):  # type: ignore[no-untyped-def]
            if request.meta["problem_id"] == "slow":
                await asyncio.sleep(0.3)
            order.append(request.key)
            return await super().generate(request)

    backend = Slow(script=unique_script)
    engine = Engine(Dispatcher(backend), RSAConfig(n=2, k=2, t=3, task="math"))
    asyncio.run(
        engine.run_many([Problem("slow", "a", task="math"), Problem("fast", "b", task="math")])
    )
    first_slow = min(i for i, k in enumerate(order) if k.startswith("slow"))
    assert all(order.index(f"fast/3/{s}") < first_slow for s in range(2))

    order.clear()
    engine = Engine(
        Dispatcher(Slow(script=unique_script)),
        RSAConfig(n=2, k=2, t=3, task="math", sync_steps=True),
    )
    asyncio.run(
        engine.run_many([Problem("slow", "a", task="math"), Problem("fast", "b", task="math")])
    )
    assert order.index("fast/2/0") > order.index("slow/1/0")  # barrier: waits for slow step 1


def test_step_requests_go_out_together_bounded_by_concurrency() -> None:
    class Gauge(MockBackend):
        async def generate(self, request: GenerationRequest):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.01)
            return await super().generate(request)

    d = Dispatcher(Gauge(script=unique_script), concurrency=3)
    asyncio.run(
        Engine(d, RSAConfig(n=8, k=2, t=2, task="math")).run(Problem("p", "q", task="math"))
    )
    assert d.peak_in_flight == 3
    d = Dispatcher(Gauge(script=unique_script), concurrency=64)
    asyncio.run(
        Engine(d, RSAConfig(n=8, k=2, t=2, task="math")).run(Problem("p", "q", task="math"))
    )
    assert d.peak_in_flight == 8


def test_solve_sync_and_async_agree_and_are_deterministic() -> None:
    kw = dict(backend="mock", n=4, k=2, t=3, task="math", seed=5)
    a = solve("What is 2+2?", **kw).to_dict()
    b = solve("What is 2+2?", **kw).to_dict()
    assert a == b
    assert a["usage"]["generations"] == 12
    assert len(a["steps"]) == 3


def test_early_stop_saves_generations_when_population_agrees() -> None:
    backend = MockBackend(script=lambda r: "\\boxed{7}")
    cfg = RSAConfig(n=4, k=2, t=6, task="math", early_stop="unanimous")
    result = asyncio.run(Engine(Dispatcher(backend), cfg).run(Problem("p", "q", task="math")))
    assert result.steps_run == 2
    assert result.generations_saved == 16
    assert len(backend.calls) == 8
