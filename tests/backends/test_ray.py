"""The ray backend: engine replicas as Ray actors, least-loaded routing, replicas that die.

Model-free: the replicas run the mock engine (deterministic per request) or the openai engine
against a scripted local server. Every Ray test shares one 2-CPU local instance (`ray_local`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest

from recursa import Dispatcher, Engine, Problem, RSAConfig, SolveResult, solve
from recursa.backends import Backend, Completion, GenerationRequest, RetryableError, create_backend
from recursa.backends.ray import RayBackend, Router, Slot, replica_gpus
from recursa.cli import main
from recursa.config import BackendConfig
from recursa.errors import UsageError
from tests.helpers.fake_server import chat_body, serve

PROBLEMS = [Problem(f"p{i}", f"What is {i} + {i}?", str(2 * i), "math") for i in range(6)]
RSA = RSAConfig(n=4, k=2, t=3, task="math", seed=5)
TOTAL = len(PROBLEMS) * RSA.n * RSA.t


class KeyStore:
    """A CompletionStore that counts how often each (problem, step, slot) is recorded."""

    def __init__(self) -> None:
        self.records: Counter[tuple[str, int, int]] = Counter()

    def lookup(self, problem_id: str, step: int, slot: int) -> Completion | None:
        return None

    def record(
        self,
        problem_id: str,
        step: int,
        slot: int,
        request: GenerationRequest,
        completion: Completion,
    ) -> None:
        self.records[(problem_id, step, slot)] += 1


def fingerprint(results: list[SolveResult]) -> list[Any]:
    """Everything a run decides: answers, every candidate and its parents, token usage."""
    return [
        (
            r.problem_id,
            r.answer,
            r.selected_slot,
            [
                [
                    (c.slot, c.text, c.answer, c.parents, c.prompt_tokens, c.completion_tokens)
                    for c in s.candidates
                ]
                for s in r.steps
            ],
            r.usage,
        )
        for r in results
    ]


async def run_engine(backend: Backend, **engine_kwargs: Any) -> tuple[list[SolveResult], int]:
    dispatcher = Dispatcher(backend)
    results = await Engine(dispatcher, RSA, **engine_kwargs).run_many(PROBLEMS)
    return results, dispatcher.usage.retries


def single_process(latency: float) -> list[SolveResult]:
    backend = create_backend(BackendConfig(backend="mock", mock_latency=latency))
    return asyncio.run(run_engine(backend))[0]


def ray_config(**kwargs: Any) -> BackendConfig:
    return BackendConfig(**{"backend": "ray", "engine": "mock", "replicas": 2, **kwargs})


# -- the router, without Ray --------------------------------------------------------------------
def test_router_picks_the_least_loaded_replica_and_breaks_ties_round_robin() -> None:
    router = Router([Slot(0), Slot(1), Slot(2)])
    picks = [router.choose() for _ in range(6)]
    assert [s.index for s in picks if s] == [0, 1, 2, 0, 1, 2]  # all idle: round-robin
    router.slots[0].in_flight, router.slots[1].in_flight, router.slots[2].in_flight = 3, 1, 2
    chosen = router.choose()
    assert chosen is not None and chosen.index == 1
    router.slots[1].in_flight = 3
    chosen = router.choose()
    assert chosen is not None and chosen.index == 2


def test_router_skips_replicas_that_are_down_and_avoids_the_one_a_request_failed_on() -> None:
    router = Router([Slot(0), Slot(1)])
    router.failed(router.slots[0], "p/1/0")
    assert all(getattr(router.choose("p/1/0"), "index", None) == 1 for _ in range(4))
    router.succeeded(router.slots[1], "p/1/0")
    assert {getattr(router.choose("p/1/0"), "index", None) for _ in range(4)} == {0, 1}
    router.slots[1].up = False
    assert getattr(router.choose("x"), "index", None) == 0
    router.failed(router.slots[0], "y")
    assert getattr(router.choose("y"), "index", None) == 0  # the only one up: still used
    router.slots[0].up = False
    assert router.choose("x") is None and not router.any_up()


def test_replica_gpus_default_to_what_one_engine_spans() -> None:
    assert replica_gpus(ray_config()) == 0.0  # mock
    assert replica_gpus(ray_config(engine="llamacpp")) == 0.0
    assert replica_gpus(ray_config(engine="vllm")) == 1.0
    assert replica_gpus(ray_config(engine="vllm", tensor_parallel_size=2)) == 2.0
    assert (
        replica_gpus(ray_config(engine="vllm", tensor_parallel_size=2, data_parallel_size=2)) == 4
    )
    assert replica_gpus(ray_config(engine="vllm", replica_gpus=0.5)) == 0.5


def test_missing_ray_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(UsageError, match=r"pip install 'recursa\[ray\]'"):
        create_backend(ray_config())


# -- a local Ray instance -----------------------------------------------------------------------
@pytest.mark.ray
def test_two_mock_replicas_match_the_single_process_run_and_share_the_work(
    ray_local: Any,
) -> None:
    expected = single_process(latency=0.01)

    async def go() -> tuple[list[SolveResult], RayBackend, list[int], list[Any]]:
        backend = RayBackend(ray_config(mock_latency=0.01))
        try:
            assert backend.default_concurrency == 2 * 64  # the replicas' concurrency, summed
            results, retries = await run_engine(backend)
            assert retries == 0
            actor_counts = [await s.actor.stats.remote() for s in backend.router.slots]
            return results, backend, actor_counts, backend.infos
        finally:
            await backend.aclose()

    results, backend, actor_counts, infos = asyncio.run(go())
    assert fingerprint(results) == fingerprint(expected)
    served = [s["served"] for s in backend.stats()]
    assert sum(served) == TOTAL
    assert min(served) >= TOTAL // 4, served  # least-loaded routing spreads the work
    assert actor_counts == served  # each replica process really answered its share
    pids = {info.pid for info in infos}
    assert len(pids) == 2 and os.getpid() not in pids


@pytest.mark.ray
def test_killing_a_replica_mid_run_loses_and_duplicates_nothing(ray_local: Any) -> None:
    expected = single_process(latency=0.05)
    store = KeyStore()

    async def go() -> tuple[list[SolveResult], int, RayBackend, bool, bool]:
        backend = RayBackend(ray_config(mock_latency=0.05, replica_restarts=2))
        killed = False
        done = 0

        def on_generation(problem: Problem, candidate: Any) -> None:
            nonlocal killed, done
            done += 1
            victim = backend.router.slots[0]
            if not killed and done >= TOTAL // 4 and victim.in_flight > 0:
                killed = True
                ray_local.kill(victim.actor, no_restart=False)

        try:
            results, retries = await run_engine(backend, store=store, on_generation=on_generation)
            back = await backend.wait_up(0, timeout=120)
            return results, retries, backend, killed, back
        finally:
            await backend.aclose()

    results, retries, backend, killed, back = asyncio.run(go())
    assert killed, "the replica was never busy when the test meant to kill it"
    stats = backend.stats()
    assert stats[0]["failures"] >= 1 and retries >= stats[0]["failures"]
    assert back, "Ray did not restart the killed replica"
    assert fingerprint(results) == fingerprint(expected)
    assert sum(store.records.values()) == TOTAL and set(store.records.values()) == {1}
    assert sum(s["served"] for s in stats) == TOTAL  # every completion arrived exactly once


@pytest.mark.ray
def test_a_replica_that_died_in_one_event_loop_comes_back_in_the_next(ray_local: Any) -> None:
    backend = RayBackend(ray_config(mock_latency=0.3))
    victim = backend.router.slots[0]

    def request(i: int) -> GenerationRequest:
        messages = [{"role": "user", "content": f"What is {i} + 1?"}]
        return GenerationRequest(messages=messages, max_tokens=8, seed=i, key=f"q/1/{i}")

    async def die() -> None:
        pending = asyncio.ensure_future(backend.generate(request(0)))  # round-robin: replica 0
        await asyncio.sleep(0.1)
        assert victim.in_flight == 1
        ray_local.kill(victim.actor, no_restart=False)
        with pytest.raises(RetryableError, match="Ray replica 0 died"):
            await pending

    async def serve_until_the_victim_answers() -> None:
        deadline = time.monotonic() + 90
        i = 1
        while victim.served == 0 and time.monotonic() < deadline:
            await asyncio.gather(backend.generate(request(i)), backend.generate(request(i + 1)))
            i += 2

    try:
        asyncio.run(die())  # the loop ends while Ray is still restarting the replica
        assert not victim.up
        asyncio.run(serve_until_the_victim_answers())
        assert victim.up and victim.served >= 1
    finally:
        asyncio.run(backend.aclose())


@pytest.mark.ray
def test_solve_and_the_cli_run_on_ray_like_on_one_process(
    ray_local: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings: dict[str, Any] = {"n": 4, "k": 2, "t": 2, "task": "math", "seed": 1}
    local = solve("What is 6*7?", backend="mock", reference="42", **settings)
    remote = solve(
        "What is 6*7?", backend="ray", engine="mock", replicas=2, reference="42", **settings
    )
    assert fingerprint([remote]) == fingerprint([local])

    flags = ["-n", "4", "-k", "2", "-t", "2", "--task", "math", "--seed", "1", "--json"]
    assert main(["solve", "What is 6*7?", "--backend", "mock", *flags]) == 0
    one = json.loads(capsys.readouterr().out)
    ray_flags = [
        "--backend",
        "ray",
        "--engine",
        "mock",
        "--replicas",
        "2",
        "--ray-address",
        "local",
    ]
    assert main(["solve", "What is 6*7?", *ray_flags, *flags]) == 0
    many = json.loads(capsys.readouterr().out)
    assert many["steps"] == one["steps"] and many["answer"] == one["answer"]
    assert many["config"]["replicas"] == 2 and many["config"]["engine"] == "mock"


@pytest.mark.ray
def test_engine_options_reach_the_replicas_and_transient_faults_are_retried(
    ray_local: Any,
) -> None:
    def responder(i: int, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if i == 0:
            return 503, {"Retry-After": "0"}, {"error": {"message": "warming up"}}
        return 200, {}, chat_body("so the answer is \\boxed{12}")

    with serve(responder) as (url, received):
        result = solve(
            "What is 3*4?",
            backend="ray",
            engine="openai",
            replicas=2,
            base_url=url,
            model="served-name",
            api_key="sk-ray",
            n=2,
            k=2,
            t=2,
            task="math",
        )
    assert result.answer == "12"
    assert len(received) == 4 + 1  # 4 generations and the one faulted attempt
    assert {b["model"] for b in received} == {"served-name"}
    assert {b["_auth"] for b in received} == {"Bearer sk-ray"}
    assert result.usage["retries"] == 1


@pytest.mark.ray
def test_replica_start_failures_are_one_clear_sentence(
    ray_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(UsageError, match=r"Ray replica 0 \(openai\): .*needs --base-url"):
        RayBackend(ray_config(engine="openai"))
    if importlib.util.find_spec("vllm") is None:  # a node without the engine's extra
        with pytest.raises(UsageError, match=r"Ray replica 0 \(vllm\): .*recursa\[vllm\]"):
            RayBackend(ray_config(engine="vllm", model="some/model", replica_gpus=0))
    with pytest.raises(UsageError, match=r"need 2 GPUs, but the Ray cluster has 0"):
        RayBackend(ray_config(replica_gpus=1))
    with pytest.raises(UsageError, match=r"need 6 CPUs, but the Ray cluster has 2"):
        RayBackend(ray_config(replicas=3, replica_cpus=2))


@pytest.mark.ray
@pytest.mark.e2e
def test_llamacpp_replicas_give_the_same_candidates_as_one_process(ray_local: Any) -> None:
    settings: dict[str, Any] = {
        "n": 2,
        "k": 2,
        "t": 2,
        "task": "math",
        "max_tokens": 16,
        "n_threads": 1,
        "n_ctx": 1024,
        "seed": 3,
    }
    local = solve("What is 2+3?", backend="llamacpp", **settings)
    remote = solve(
        "What is 2+3?",
        backend="ray",
        engine="llamacpp",
        replicas=2,
        replica_cpus=0.5,
        **settings,
    )
    assert fingerprint([remote]) == fingerprint([local])
    assert all(c.text.strip() for s in remote.steps for c in s.candidates)


def test_an_unreachable_cluster_fails_fast_with_one_sentence() -> None:
    pytest.importorskip("ray")
    from tests.helpers.ports import free_port

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    args = ["solve", "q", "--backend", "ray", "--engine", "mock", "-n", "2", "-k", "1", "-t", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "recursa.cli", *args, "--ray-address", address],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert f"could not reach the Ray cluster at {address}: Connection refused" in done.stderr
    assert "Traceback" not in done.stderr
