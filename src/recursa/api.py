"""The library entry points: `solve_async` and its thin sync wrapper `solve`."""

from __future__ import annotations

import asyncio
from typing import Any

from recursa.backends import Backend, Dispatcher, create_backend
from recursa.config import BackendConfig, RSAConfig, build_configs, merge_settings
from recursa.engine import Engine, GenerationCallback, StepCallback
from recursa.result import SolveResult
from recursa.tasks import Problem, Task


def make_configs(
    rsa: RSAConfig | None, backend: BackendConfig | None, settings: dict[str, Any]
) -> tuple[RSAConfig, BackendConfig]:
    """Merge config objects with flat keyword settings (keywords win)."""
    return build_configs(merge_settings([rsa, backend], settings))


async def solve_async(
    question: str,
    *,
    backend: Backend | str | None = None,
    rsa: RSAConfig | None = None,
    backend_config: BackendConfig | None = None,
    reference: Any = None,
    problem_id: str = "question",
    meta: dict[str, Any] | None = None,
    on_step: StepCallback | None = None,
    on_generation: GenerationCallback | None = None,
    **settings: Any,
) -> SolveResult:
    """Run RSA on one question. Settings are RSAConfig/BackendConfig fields by name
    (n, k, t, task, seed, temperature, max_tokens, model, base_url, ...) and backend options
    (mock_accuracy, n_ctx, ...). `backend` is a backend name ("llamacpp", "openai", "mock",
    a plugin's) or a ready Backend object, to reuse a loaded model. `task` is a task name or a
    `Task` object (registered or not)."""
    if isinstance(backend, str):
        settings = {**settings, "backend": backend}
    task = settings.get("task")
    task_object = task if isinstance(task, Task) else None
    if task_object is not None:
        settings = {k: v for k, v in settings.items() if k != "task"}
    cfg, bcfg = make_configs(rsa, backend_config, settings)
    if task_object is not None:  # its own name, registered or not
        cfg = cfg.model_copy(update={"task": task_object.name})
    owned = not isinstance(backend, Backend)
    model = backend if isinstance(backend, Backend) else create_backend(bcfg)
    try:
        dispatcher = Dispatcher.from_config(model, bcfg)
        engine = Engine(
            dispatcher,
            cfg,
            context_tokens=bcfg.context_tokens,
            on_step=on_step,
            on_generation=on_generation,
        )
        problem = Problem(problem_id, question, reference, cfg.task, dict(meta or {}))
        result = await engine.run(problem, task_object)
        result.usage["retries"] = dispatcher.usage.retries
        return result
    finally:
        if owned:
            await model.aclose()


def solve(question: str, **kwargs: Any) -> SolveResult:
    """Synchronous `solve_async` (same arguments, same result)."""
    return asyncio.run(solve_async(question, **kwargs))
