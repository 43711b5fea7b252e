"""`stream: true`: server-sent events that keep the connection alive while RSA runs.

While the population is refined the stream carries only SSE comments (lines starting with
':'), which standard clients ignore: `: rsa-progress {...}` after every step (step, steps,
agreement, majority answer) and `: keep-alive` every `keepalive` seconds between them. Then
the selected candidate follows as standard `chat.completion.chunk` events and `data: [DONE]`.
A failure after the stream has begun (the status line is already 200) is sent as one
`data: {"error": {...}}` event, which the OpenAI clients raise as an APIError, then [DONE].
The Responses API (serve/responses.py) streams its own events through the same class.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from recursa.result import SolveResult, StepResult
from recursa.serve.disconnect import cancel_and_wait, wait_for_disconnect
from recursa.serve.errors import APIError
from recursa.serve.reply import ReplyMeta, completion_chunks
from recursa.tasks import Problem

log = logging.getLogger("recursa.serve")

StepSink = Callable[[Problem, StepResult], None]
RunRSA = Callable[[StepSink], Awaitable[SolveResult]]
#: The events of a finished run, or of a failed one.
Render = Callable[[SolveResult], list[bytes]]
RenderError = Callable[[APIError], list[bytes]]


def sse_data(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def sse_event(event: str, payload: dict[str, Any]) -> bytes:
    """A named event (`event: NAME`), as the Responses API streams them."""
    return f"event: {event}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def sse_comment(text: str) -> bytes:
    return f": {' '.join(text.splitlines())}\n\n".encode()


class RSAStream(Response):
    """An ASGI response that runs RSA and streams it as described in the module docstring.
    A client that disconnects cancels the run (and so its upstream requests)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        run: RunRSA,
        meta: ReplyMeta,
        *,
        steps: int,
        keepalive: float,
        include_usage: bool = False,
        on_done: Callable[[SolveResult], None] | None = None,
        logprobs: bool = False,
        render: Render | None = None,
        render_error: RenderError | None = None,
        opening: list[bytes] | None = None,
        closing: list[bytes] | None = None,
    ) -> None:
        # Like StreamingResponse: no body, so no Content-Length header.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.run = run
        self.meta = meta
        self.steps = steps
        self.keepalive = keepalive
        self.include_usage = include_usage
        self.on_done = on_done
        self.logprobs = logprobs
        self.render_result = render or self._chunks
        self.render_error = render_error or (lambda error: [sse_data(error.body())])
        self.opening = opening or []
        self.closing = [sse_data("[DONE]")] if closing is None else closing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )

        async def emit(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        progress: list[bytes] = []
        wake = asyncio.Event()

        def on_step(problem: Problem, step: StepResult) -> None:
            info = {
                "step": step.step,
                "steps": self.steps,
                "agreement": round(step.agreement, 4),
                "majority_answer": step.majority_answer,
            }
            progress.append(sse_comment(f"rsa-progress {json.dumps(info, ensure_ascii=False)}"))
            wake.set()

        work = asyncio.ensure_future(self.run(on_step))
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            for event in self.opening:
                await emit(event)
            await emit(sse_comment(f"rsa started: {self.steps} steps"))
            while not work.done():
                waiter = asyncio.ensure_future(wake.wait())
                done, _ = await asyncio.wait(
                    {work, watcher, waiter},
                    timeout=self.keepalive,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                await cancel_and_wait(waiter)
                wake.clear()
                if watcher.done():
                    log.info("streaming client disconnected; cancelling its upstream requests")
                    await cancel_and_wait(work)
                    return
                for line in progress:
                    await emit(line)
                progress.clear()
                if not done:
                    await emit(sse_comment("keep-alive"))
            for line in progress:
                await emit(line)
            for event in self._outcome(work) + self.closing:
                await emit(event)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await cancel_and_wait(work, watcher)

    def _chunks(self, result: SolveResult) -> list[bytes]:
        chunks = completion_chunks(self.meta, result, self.include_usage, self.logprobs)
        return [sse_data(c) for c in chunks]

    def _outcome(self, work: asyncio.Future[SolveResult]) -> list[bytes]:
        """The events of the answer, or of the error."""
        exc = work.exception()
        if exc is None:
            result = work.result()
            if self.on_done is not None:
                self.on_done(result)
            return self.render_result(result)
        if isinstance(exc, APIError):
            error = exc
        else:
            log.error("RSA failed while streaming", exc_info=exc)
            error = APIError(500, "internal error while running RSA", type="server_error")
        return self.render_error(error)
