"""Engine behaviours a plausible one-line bug would break, each checked directly: the subsets
(per slot and per step), early stop after exactly two agreeing steps, the sampling values and
the final selection that reach the backend."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from recursa import Dispatcher, Engine, GenerationRequest, Problem, RSAConfig
from recursa.backends.mock import MockBackend
from recursa.engine import draw_subset
from recursa.result import SolveResult
from recursa.selection import majority_vote, random_member


def run(cfg: RSAConfig, script: Callable[[GenerationRequest], str]) -> tuple[SolveResult, list]:
    backend = MockBackend(script=script)
    problem = Problem("p", "What is 6 times 7?", task=cfg.task)
    result = asyncio.run(Engine(Dispatcher(backend), cfg).run(problem))
    return result, backend.calls


# -- subsets ------------------------------------------------------------------------------


def test_a_subset_is_k_distinct_members_of_the_population() -> None:
    for slot in range(50):
        subset = draw_subset(3, "p", 2, slot, n=8, k=5)
        assert len(subset) == 5 and len(set(subset)) == 5
        assert all(0 <= i < 8 for i in subset)


def test_subsets_differ_across_slots_and_across_steps() -> None:
    by_slot = {tuple(draw_subset(0, "p", 2, s, n=16, k=4)) for s in range(16)}
    assert len(by_slot) >= 12  # 1,820 possible subsets: 16 slots nearly never collide
    by_step = {tuple(draw_subset(0, "p", t, 0, n=16, k=4)) for t in range(2, 18)}
    assert len(by_step) >= 12
    # The key fixes the draw: the same (seed, problem, step, slot) gives the same subset.
    assert draw_subset(0, "p", 3, 1, 16, 4) == draw_subset(0, "p", 3, 1, 16, 4)
    assert draw_subset(0, "p", 3, 1, 16, 4) != draw_subset(0, "q", 3, 1, 16, 4)


def test_every_member_is_drawn_about_equally_often() -> None:
    n, k, draws = 8, 3, 4000
    counts = Counter(i for s in range(draws) for i in draw_subset(1, "p", 2, s, n, k))
    assert set(counts) == set(range(n))
    expected = draws * k / n  # 1,500 each
    assert all(abs(c - expected) < 0.1 * expected for c in counts.values()), counts


def test_the_engine_aggregates_the_drawn_parents_at_every_step() -> None:
    """Each slot of each step is shown exactly the candidates its own subset names."""

    def script(req: GenerationRequest) -> str:
        return f"candidate {req.key} \\boxed{{1}}"

    cfg = RSAConfig(n=4, k=2, t=4, task="math", seed=7)
    result, calls = run(cfg, script)
    prompts = {r.key: r.messages[-1]["content"] for r in calls}
    parent_sets = []
    for step in result.steps[1:]:
        for cand in step.candidates:
            expected = draw_subset(7, "p", step.step, cand.slot, 4, 2)
            assert cand.parents == expected
            prompt = prompts[f"p/{step.step}/{cand.slot}"]
            for parent in expected:
                assert f"candidate p/{step.step - 1}/{parent} " in prompt
            parent_sets.append(tuple(cand.parents))
    assert len(set(parent_sets)) > 1


# -- early stop ---------------------------------------------------------------------------


def by_step(answers: dict[int, list[str]]) -> Callable[[GenerationRequest], str]:
    def script(req: GenerationRequest) -> str:
        step = min(int(req.key.split("/")[1]), max(answers))
        return f"so \\boxed{{{answers[step][int(req.key.split('/')[2])]}}}"

    return script


def test_early_stop_needs_two_agreeing_steps_not_one() -> None:
    """Step 1 is split, step 2 unanimous: one agreeing step is not enough, so step 3 runs and
    the problem stops there (steps 2 and 3 agree)."""
    cfg = RSAConfig(n=4, k=2, t=6, task="math", early_stop="unanimous")
    result, calls = run(cfg, by_step({1: ["7", "7", "1", "2"], 2: ["7"] * 4}))
    assert result.steps_run == 3
    assert len(calls) == 12 and result.generations_saved == 12


def test_early_stop_never_fires_on_the_first_step() -> None:
    cfg = RSAConfig(n=4, k=2, t=3, task="math", early_stop="unanimous")
    result, calls = run(cfg, by_step({1: ["7"] * 4}))
    assert result.steps_run == 2 and len(calls) == 8


# -- sampling and selection ---------------------------------------------------------------


def test_non_default_sampling_values_reach_every_request() -> None:
    cfg = RSAConfig(n=3, k=2, t=2, task="math", temperature=0.35, top_p=0.8, max_tokens=77)
    _, calls = run(cfg, lambda req: "\\boxed{1}")
    assert len(calls) == 6
    for req in calls:
        assert (req.temperature, req.top_p, req.max_tokens) == (0.35, 0.8, 77)
    seeds = {req.seed for req in calls}
    assert len(seeds) == 6  # one sampling seed per (step, slot)


def test_default_sampling_is_the_papers() -> None:
    _, calls = run(RSAConfig(n=2, k=2, t=1, task="math"), lambda req: "\\boxed{1}")
    assert {(r.temperature, r.top_p) for r in calls} in ({(1.0, None)}, {(1.0, 1.0)})


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_selection_is_the_seeded_random_member(seed: int) -> None:
    # Three of four candidates agree on 5, so a majority vote would always say 5.
    answers = {1: ["5", "5", "5", "9"]}
    cfg = RSAConfig(n=4, k=2, t=1, task="math", seed=seed, selection="random")
    result, _ = run(cfg, by_step(answers))
    final = result.steps[-1].candidates
    chosen = random_member(final, seed, "p")
    assert (result.selected_slot, result.answer) == (chosen.slot, chosen.answer)
    majority, _ = majority_vote(cfg_task(cfg), final, seed, "p")
    assert majority.answer == "5"


def test_random_selection_differs_from_majority_for_some_seed() -> None:
    picked = set()
    for seed in range(12):
        cfg = RSAConfig(n=4, k=2, t=1, task="math", seed=seed, selection="random")
        result, _ = run(cfg, by_step({1: ["5", "5", "5", "9"]}))
        picked.add(result.answer)
    assert picked == {"5", "9"}


def cfg_task(cfg: RSAConfig):  # type: ignore[no-untyped-def]
    from recursa.tasks import get_task

    return get_task(cfg.task)
