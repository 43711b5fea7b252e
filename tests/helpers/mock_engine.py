"""The mock backend behind the engine, as the tests' `mock_engine` fixture builds it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recursa import Dispatcher, Engine, Problem, RSAConfig, SolveResult
from recursa.backends.mock import MockBackend, Script


@dataclass
class MockRun:
    """A MockBackend, the Dispatcher over it and an Engine with one config."""

    backend: MockBackend
    dispatcher: Dispatcher
    engine: Engine

    def run(self, problem: Problem) -> SolveResult:
        return asyncio.run(self.engine.run(problem))

    def run_many(self, problems: Sequence[Problem]) -> list[SolveResult]:
        return asyncio.run(self.engine.run_many(problems))


def mock_backend(script: Script | None = None, **options: Any) -> MockBackend:
    """A MockBackend: scripted outputs, or the simulated model (accuracy, quality, words,
    latency, context_tokens, keep_calls)."""
    return MockBackend(script, **options)


def mock_engine(
    script: Script | None = None,
    config: RSAConfig | None = None,
    *,
    backend: MockBackend | None = None,
    concurrency: int | None = None,
    engine: dict[str, Any] | None = None,
    **options: Any,
) -> MockRun:
    """An engine over a mock: `script` or the simulated model's `options`, an RSAConfig
    (default N 4, K 2, T 2), the dispatcher's concurrency and Engine keywords (store,
    callbacks, context_tokens)."""
    model = backend if backend is not None else mock_backend(script, **options)
    dispatcher = Dispatcher(model, concurrency=concurrency)
    run = Engine(dispatcher, config or RSAConfig(n=4, k=2, t=2), **(engine or {}))
    return MockRun(model, dispatcher, run)
