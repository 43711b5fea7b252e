"""The simulated mock model: aggregation helps when its quality says so; outputs are seeded."""

from __future__ import annotations

import asyncio
import statistics

from recursa import Dispatcher, Engine, Problem, RSAConfig
from recursa.backends.mock import MockBackend


def mean_accuracy_by_step(quality: float, seed: int = 0) -> list[float]:
    problems = [
        Problem(f"p{i}", f"question {i}", answer=str(100 + i), task="math") for i in range(30)
    ]
    backend = MockBackend(accuracy=0.35, quality=quality)
    cfg = RSAConfig(n=8, k=3, t=5, task="math", seed=seed)
    results = asyncio.run(Engine(Dispatcher(backend), cfg).run_many(problems))
    by_step = []
    for t in range(5):
        by_step.append(
            statistics.mean(
                statistics.mean(c.answer == p.answer for c in r.steps[t].candidates)
                for r, p in zip(results, problems, strict=True)
            )
        )
    return by_step


def test_mean_accuracy_rises_over_steps_when_aggregation_helps() -> None:
    acc = mean_accuracy_by_step(quality=0.8)
    assert 0.2 < acc[0] < 0.5
    assert acc[-1] > acc[0] + 0.3
    assert acc[2] > acc[0]


def test_no_gain_without_aggregation_quality() -> None:
    for seed in range(3):
        acc = mean_accuracy_by_step(quality=0.0, seed=seed)
        # 240 samples a step: sd about 0.03; allow 4 sd per step, and no trend over steps
        assert all(abs(a - 0.35) < 0.125 for a in acc)
        assert abs(statistics.mean(acc) - 0.35) < 0.05


def test_outputs_are_deterministic_for_a_seed() -> None:
    assert mean_accuracy_by_step(0.6, seed=1) == mean_accuracy_by_step(0.6, seed=1)
    assert mean_accuracy_by_step(0.6, seed=1) != mean_accuracy_by_step(0.6, seed=2)


def test_filler_words_are_those_of_one_randrange_draw_each() -> None:
    """The simulated model's filler text is fixed by its seeded draws: the batched drawing
    gives the same words as drawing randrange(1000) once per word."""
    import random

    from recursa.backends.mock import _filler

    for seed in range(300):
        for count in (0, 1, 40, 120):
            rng = random.Random(seed)
            expected = " ".join(f"step{rng.randrange(1000)}" for _ in range(count))
            assert _filler(random.Random(seed), count) == expected
