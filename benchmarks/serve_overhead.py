"""What `recursa serve` adds on top of running the engine directly.

A local upstream answers every chat completion after a fixed latency. For several numbers of
simultaneous clients, the same RSA requests run (a) in process, through one shared
Dispatcher, and (b) through the proxy over HTTP with the OpenAI Python client. The table
prints wall time, requests per second and the proxy's extra time per request.

    .venv/bin/python benchmarks/serve_overhead.py [--latency 0.05] [--clients 1 8 32]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from typing import Any

import openai
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from recursa.backends.dispatch import Dispatcher
from recursa.backends.openai import OpenAIBackend
from recursa.config import BackendConfig, RSAConfig
from recursa.engine import Engine
from recursa.serve import ServeSettings, create_app
from recursa.tasks import Problem

N, K, T, LIMIT = 4, 2, 3, 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def upstream_app(latency: float) -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        await asyncio.sleep(latency)
        text = f"Working... so the answer is \\boxed{{{body.get('seed', 0) % 3}}}"
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "bench",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
            }
        )

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "bench", "object": "model"}]})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


class Running:
    """A uvicorn server in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


async def direct(upstream: str, clients: int) -> float:
    backend = OpenAIBackend(upstream, model="bench")
    dispatcher = Dispatcher(backend, concurrency=LIMIT)
    config = RSAConfig(n=N, k=K, t=T, task="math")
    start = time.perf_counter()
    await asyncio.gather(
        *[
            Engine(dispatcher, config).run(Problem(f"q{i}", f"question {i}", task="math"))
            for i in range(clients)
        ]
    )
    elapsed = time.perf_counter() - start
    await backend.aclose()
    return elapsed


async def proxied(proxy: str, clients: int) -> float:
    client = openai.AsyncOpenAI(base_url=proxy, api_key="x", max_retries=0, timeout=600)
    start = time.perf_counter()
    await asyncio.gather(
        *[
            client.chat.completions.create(
                model="bench", messages=[{"role": "user", "content": f"question {i}"}]
            )
            for i in range(clients)
        ]
    )
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="upstream seconds/request")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    rsa = RSAConfig(n=N, k=K, t=T, task="math")
    with Running(upstream_app(args.latency)) as upstream:
        proxy_app = create_app(
            ServeSettings(upstream=upstream),
            rsa,
            BackendConfig(backend="openai", concurrency=LIMIT),
        )
        with Running(proxy_app) as proxy:
            print(
                f"N={N} K={K} T={T}, upstream latency {args.latency * 1000:.0f} ms, "
                f"upstream concurrency limit {LIMIT}"
            )
            print(
                f"{'clients':>7} | {'direct s':>8} | {'proxy s':>8} | {'proxy req/s':>11} | "
                f"{'extra ms/request':>16}"
            )
            print("-" * 64)
            asyncio.run(direct(upstream, 2))  # warm-up: imports, first connections
            asyncio.run(proxied(proxy, 2))
            for clients in args.clients:
                d = asyncio.run(direct(upstream, clients))
                p = asyncio.run(proxied(proxy, clients))
                extra = (p - d) / clients * 1000
                print(
                    f"{clients:>7} | {d:>8.2f} | {p:>8.2f} | {clients / p:>11.1f} | {extra:>16.1f}"
                )


if __name__ == "__main__":
    main()
