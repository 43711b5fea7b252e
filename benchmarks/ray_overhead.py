"""What `--backend ray` adds per request, against the same engine in process.

The same RSA run (mock engine, fixed latency per request) goes (a) through the mock backend in
this process and (b) through 1 and 2 Ray replicas of it on a local Ray instance. With zero
latency the wall time is all overhead: Ray's actor calls and the serialisation of requests
and completions. With a model-like latency and bounded concurrency it should mostly hide.
The table prints wall time, requests per second and the extra milliseconds per request.

    .venv/bin/python benchmarks/ray_overhead.py [--latency 0 0.05] [--problems 8] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import ray

from recursa.backends import Backend, create_backend
from recursa.backends.dispatch import Dispatcher
from recursa.backends.ray import RayBackend
from recursa.config import BackendConfig, RSAConfig
from recursa.engine import Engine
from recursa.tasks import Problem

RSA = RSAConfig(n=8, k=4, t=3, task="math", seed=0)


async def timed_run(backend: Backend, problems: list[Problem], concurrency: int) -> float:
    engine = Engine(Dispatcher(backend, concurrency=concurrency), RSA)
    start = time.perf_counter()
    await engine.run_many(problems)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    problems = [Problem(f"p{i}", f"What is {i}+{i}?", str(2 * i), "math") for i in range(16)]
    problems = problems[: args.problems]
    requests = len(problems) * RSA.n * RSA.t
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    rows = []
    try:
        for latency in args.latency:
            local = create_backend(BackendConfig(backend="mock", mock_latency=latency))
            base = asyncio.run(timed_run(local, problems, args.concurrency))
            rows.append(("in process", "-", latency, base, base))
            for replicas in (1, 2):
                cfg = BackendConfig(
                    backend="ray", engine="mock", replicas=replicas, mock_latency=latency,
                    replica_cpus=1.0,
                )  # fmt: skip
                remote = RayBackend(cfg)
                try:
                    wall = asyncio.run(timed_run(remote, problems, args.concurrency))
                finally:
                    asyncio.run(remote.aclose())
                rows.append(("ray", str(replicas), latency, wall, base))
    finally:
        ray.shutdown()
    print(f"{requests} requests per run (N={RSA.n}, T={RSA.t}, {len(problems)} problems), "
          f"concurrency {args.concurrency}")  # fmt: skip
    print()
    print("| backend | replicas | latency s | wall s | requests/s | extra ms/request |")
    print("| --- | --- | --- | --- | --- | --- |")
    for backend, replicas, latency, wall, base in rows:
        extra = (wall - base) / requests * 1000 * args.concurrency
        print(
            f"| {backend} | {replicas} | {latency:g} | {wall:.2f} | {requests / wall:.0f} | "
            f"{extra:.2f} |"
        )
    print()
    print("extra ms/request: (wall - in-process wall) x concurrency / requests, i.e. the added")
    print("latency of one request when `concurrency` requests are in flight.")


if __name__ == "__main__":
    main()
