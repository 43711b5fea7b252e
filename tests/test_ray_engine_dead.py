"""A vLLM engine that dies inside a Ray replica: the replica process exits, Ray restarts it,
and the dispatcher serves the lost request on the other replica (real Ray, local instance).

The replicas run the real vLLM backend on a small stand-in engine (vllm needs a GPU) whose
first request raises a class named `EngineDeadError`, as vLLM's V1 engine does when its core
process dies (vllm/v1/engine/exceptions.py). Classes defined in the test travel to the actor
processes by value.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from recursa.backends import Dispatcher, GenerationRequest
from recursa.config import BackendConfig


@pytest.mark.ray
def test_a_dead_engine_restarts_its_replica_and_the_request_is_served_elsewhere(
    ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from recursa.backends import ray as ray_backend
    from recursa.backends.ray_replica import Replica
    from recursa.backends.vllm import VLLMBackend

    marker = str(tmp_path / "an-engine-died")

    class EngineDeadError(Exception):
        pass

    class Words:
        def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
            return list(range(len(text.split())))

        def apply_chat_template(self, messages: Any, **_: Any) -> list[int]:
            return self.encode(" ".join(m["content"] for m in messages))

    class OnceDeadEngine:
        """Answers every request, except that the first request on the whole cluster finds
        the engine dead (the marker file makes it happen once, across restarts)."""

        tokenizer = Words()
        model_config = SimpleNamespace(max_model_len=1024)

        async def generate(
            self, prompt: Any, params: Any, request_id: str, priority: int = 0
        ) -> Any:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                raise EngineDeadError("EngineCore encountered an issue.")
            await asyncio.sleep(0.01)
            out = SimpleNamespace(text="so \\boxed{4}", token_ids=[1, 2], finish_reason="stop")
            yield SimpleNamespace(prompt_token_ids=prompt["prompt_token_ids"], outputs=[out])

    class VLLMReplica(Replica):
        def __init__(self, config: BackendConfig) -> None:
            super().__init__(config)
            self._backend = VLLMBackend(OnceDeadEngine(), dict, model="stand-in")

    monkeypatch.setattr(ray_backend, "Replica", VLLMReplica)

    async def go() -> tuple[list[Any], int, list[dict[str, Any]], bool]:
        backend = ray_backend.RayBackend(
            BackendConfig(backend="ray", engine="mock", replicas=2, replica_restarts=2)
        )
        try:
            dispatcher = Dispatcher(backend, max_retries=3, base_delay=0.0)
            requests = [
                GenerationRequest(
                    messages=[{"role": "user", "content": f"what is 2 + 2, take {i}"}],
                    max_tokens=8,
                    key=f"p/{i}",
                )
                for i in range(6)
            ]
            outs = await asyncio.gather(*(dispatcher.generate(r) for r in requests))
            stats = backend.stats()
            dead = next(s["replica"] for s in stats if s["failures"])
            back = await backend.wait_up(dead, timeout=120)
            return list(outs), dispatcher.usage.retries, stats, back
        finally:
            await backend.aclose()

    outs, retries, stats, back = asyncio.run(go())
    assert [o.text for o in outs] == ["so \\boxed{4}"] * 6  # nothing lost
    assert retries >= 1 and sum(s["failures"] for s in stats) >= 1
    assert sum(s["served"] for s in stats) == 6  # every completion arrived exactly once
    assert back, "Ray did not restart the replica whose engine died"
    assert Path(marker).exists()


@pytest.mark.ray
def test_a_replica_knows_it_runs_in_a_ray_actor(ray_local: Any) -> None:
    """engine_args' `under_ray` comes from the Ray runtime context of the actor process."""
    from recursa.backends.vllm import in_ray_actor

    class Probe:
        def inside(self) -> bool:
            from recursa.backends.vllm import in_ray_actor

            return in_ray_actor()

    actor = ray_local.remote(Probe).remote()
    assert ray_local.get(actor.inside.remote(), timeout=60) is True
    assert in_ray_actor() is False  # the driver
    ray_local.kill(actor)
