"""A scripted OpenAI-compatible upstream on asyncio, in its own thread, for proxy tests.

Unlike tests/helpers/fake_server.py it watches each connection while a response is pending, so it
can tell that a client (the proxy) abandoned a request, and it counts requests in flight.
Every response closes its connection, so end-of-stream from the client while a request is
pending can only mean the request was abandoned.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Reply = tuple[int, dict[str, str], dict[str, Any]]
#: Awaited for the n-th chat request (0-based) with its JSON body.
Responder = Callable[[int, dict[str, Any]], Awaitable[Reply]]


@dataclass
class Stats:
    """What the upstream saw. Written on the upstream's thread, read by tests."""

    received: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    answered: int = 0
    abandoned: int = 0


class FakeUpstream:
    """Serves POST /v1/chat/completions through `responder` and GET /v1/models."""

    def __init__(self, responder: Responder, models: tuple[str, ...] = ("fake-model",)) -> None:
        self.responder = responder
        self.models = models
        self.stats = Stats()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.url = ""

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self.loop
        ).result(10)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            if method == "GET" and path.endswith("/models"):
                data = [{"id": m, "object": "model", "owned_by": "test"} for m in self.models]
                await self._send(writer, 200, {}, {"object": "list", "data": data})
            elif method == "POST" and path.endswith("/chat/completions"):
                await self._chat(reader, writer, headers, json.loads(raw or b"{}"))
            else:
                await self._send(writer, 404, {}, {"error": {"message": "not found"}})
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _chat(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
        body: dict[str, Any],
    ) -> None:
        stats = self.stats
        body["_auth"] = headers.get("authorization")
        index = len(stats.received)
        stats.received.append(body)
        stats.in_flight += 1
        stats.peak = max(stats.peak, stats.in_flight)
        reply = asyncio.ensure_future(self.responder(index, body))
        hangup = asyncio.ensure_future(reader.read(1))
        try:
            await asyncio.wait({reply, hangup}, return_when=asyncio.FIRST_COMPLETED)
            if not reply.done():
                stats.abandoned += 1
                return
            status, extra, payload = reply.result()
            await self._send(writer, status, extra, payload)
            stats.answered += 1
        finally:
            stats.in_flight -= 1
            for task in (reply, hangup):
                task.cancel()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
        payload: dict[str, Any],
    ) -> None:
        data = json.dumps(payload).encode()
        head = [f"HTTP/1.1 {status} X", "Content-Type: application/json"]
        head += [f"Content-Length: {len(data)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()


@contextmanager
def fake_upstream(responder: Responder, **kwargs: Any) -> Iterator[FakeUpstream]:
    server = FakeUpstream(responder, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def answer(text: str, prompt_tokens: int = 11, completion_tokens: int = 5) -> Reply:
    """A 200 chat completion with fixed token usage."""
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return 200, {}, body
