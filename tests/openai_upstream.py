"""A small OpenAI-compatible server run by uvicorn (HTTP/1.1, keep-alive) on a free port.

It speaks like the servers users run: connections stay open between requests (as vLLM's,
SGLang's and llama.cpp's do), `GET /v1/models` lists entries with `owned_by` (and
`max_model_len` where vLLM would), and a tokenize endpoint at the server's root can be turned
on under the path each server kind uses. It records every request body and which client
connection carried it, so tests can prove what reached the upstream.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import free_port
from tests.fake_server import chat_body

#: chat request body -> (HTTP status, JSON body)
Reply = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def boxed_four(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, chat_body("2 + 2 = 4, so the answer is \\boxed{4}.")


def word_count(text: str) -> int:
    """The fake tokenizer: one token per whitespace-separated word (far from 3 chars/token,
    so a test can tell a server count from recursa's estimate)."""
    return len(text.split())


@dataclass
class Upstream:
    """What the server serves and what it saw."""

    models: list[dict[str, Any]] = field(
        default_factory=lambda: [{"id": "fake-model", "owned_by": "vllm"}]
    )
    reply: Reply = boxed_four
    #: Path of the tokenize endpoint at the root ("/tokenize", "/extras/tokenize/count").
    tokenize: str | None = None
    #: Body of GET /props (llama.cpp), or None for a 404.
    props: dict[str, Any] | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    tokenized: list[str] = field(default_factory=list)
    #: client (host, port) of each chat request: fewer distinct ones than requests means
    #: connections were kept alive and reused.
    clients: list[tuple[str, int]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def models(request: Request) -> JSONResponse:
            return JSONResponse({"object": "list", "data": self.models})

        async def chat(request: Request) -> JSONResponse:
            body = json.loads(await request.body())
            self.received.append(body)
            client = request.client
            self.clients.append((client.host, client.port) if client else ("?", 0))
            status, payload = self.reply(body)
            return JSONResponse(payload, status_code=status)

        async def tokenize(request: Request) -> JSONResponse:
            body = json.loads(await request.body())
            text = body.get("prompt") or body.get("content") or body.get("input") or ""
            self.tokenized.append(text)
            n = word_count(text)
            if self.tokenize == "/tokenize" and "content" in body:  # llama.cpp: token ids
                return JSONResponse({"tokens": list(range(n))})
            return JSONResponse({"count": n, "tokens": list(range(n))})

        async def props(request: Request) -> JSONResponse:
            if self.props is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            return JSONResponse(self.props)

        routes = [
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/props", props, methods=["GET"]),
        ]
        if self.tokenize:
            routes.append(Route(self.tokenize, tokenize, methods=["POST"]))
        return Starlette(routes=routes)


@contextmanager
def running(upstream: Upstream) -> Iterator[Upstream]:
    """Serves `upstream` with uvicorn in a thread; yields it with `url` (ending in /v1)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            upstream.app(),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_keep_alive=30,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake upstream did not start")
        time.sleep(0.02)
    upstream.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield upstream
    finally:
        server.should_exit = True
        thread.join(timeout=10)
