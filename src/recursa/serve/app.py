"""The ASGI application: routes, error format, and the shared upstream's lifetime.

Routes: `POST /v1/chat/completions` (RSA), `GET /v1/models` (the upstream's list, proxied),
`GET /health` (no authentication, for load balancers and scripts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from recursa.config import BackendConfig, RSAConfig
from recursa.result import SolveResult
from recursa.serve.auth import require_bearer
from recursa.serve.body import read_json_object
from recursa.serve.conversation import problem_from_messages
from recursa.serve.disconnect import ClientGone, unless_disconnected
from recursa.serve.errors import APIError, api_error_handler
from recursa.serve.limits import Admission, Ticket, check_request
from recursa.serve.redact import redact_url, register_secrets
from recursa.serve.reply import ReplyMeta, completion_body
from recursa.serve.schema import ChatRequest, parse_request, rsa_config
from recursa.serve.settings import ServeSettings
from recursa.serve.streaming import RSAStream, StepSink
from recursa.serve.upstream import Upstream
from recursa.tasks import Problem

log = logging.getLogger("recursa.serve")

#: What a proxy answers when its client has gone (nginx's convention; nobody reads it).
CLIENT_CLOSED = 499


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method) in the OpenAI format."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return APIError(exc.status_code, message, code=code).response()


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    return APIError(500, "internal server error", type="server_error").response()


class Proxy:
    """The request handlers over one shared Upstream (created when the app starts)."""

    def __init__(self, settings: ServeSettings, rsa: RSAConfig, upstream: BackendConfig) -> None:
        self.settings = settings
        self.rsa_defaults = rsa
        self.upstream_config = upstream
        self.api_key = settings.api_key.get_secret_value() if settings.api_key else None
        self._upstream: Upstream | None = None
        self.admission = Admission(settings.max_inflight_generations, settings.max_inflight_bytes)

    @property
    def upstream(self) -> Upstream:
        if self._upstream is None:
            raise APIError(503, "the server is starting", type="server_error")
        return self._upstream

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._upstream = Upstream(self.upstream_config)
        app.state.upstream = self._upstream
        await self._upstream.resolve_model()
        try:
            yield
        finally:
            upstream, self._upstream = self._upstream, None
            await upstream.aclose()

    async def health(self, request: Request) -> JSONResponse:
        upstream = self.upstream
        return JSONResponse(
            {
                "status": "ok",
                "upstream": redact_url(upstream.url),
                "model": upstream.model,
                "in_flight": upstream.dispatcher.in_flight,
                "concurrency": upstream.dispatcher.concurrency,
            }
        )

    async def models(self, request: Request) -> JSONResponse:
        require_bearer(request, self.api_key)
        return JSONResponse(await self.upstream.list_models())

    async def chat_completions(self, request: Request) -> Response:
        require_bearer(request, self.api_key)
        body = await read_json_object(request, self.settings.max_body_bytes)
        chat = parse_request(body)
        config = rsa_config(self.rsa_defaults, chat, self.settings.max_generations)
        problem = problem_from_messages(chat.messages, config.task)
        prompt_bytes = len(problem.question.encode("utf-8", "replace"))
        cost = check_request(config, self.rsa_defaults, prompt_bytes, self.settings)
        upstream = self.upstream
        ticket = self.admission.admit(cost)
        try:
            return await self._answer(request, chat, config, problem, upstream, ticket)
        except BaseException:
            ticket.release()
            raise

    async def _answer(
        self,
        request: Request,
        chat: ChatRequest,
        config: RSAConfig,
        problem: Problem,
        upstream: Upstream,
        ticket: Ticket,
    ) -> Response:
        model = await upstream.resolve_model() or chat.model or "default"
        meta = ReplyMeta(model=model)
        started = time.monotonic()

        def done(result: SolveResult) -> None:
            log.info(
                "answered %s (N=%d K=%d T=%d, %d generations, %d s): %r",
                meta.id,
                config.n,
                config.k,
                config.t,
                result.usage.get("generations", 0),
                time.monotonic() - started,
                result.answer,
            )

        if chat.stream:

            async def run(on_step: StepSink) -> SolveResult:
                try:
                    return await upstream.solve(problem, config, on_step)
                finally:
                    ticket.release()

            return RSAStream(
                run,
                meta,
                steps=config.t,
                keepalive=self.settings.keepalive,
                include_usage=bool(chat.stream_options and chat.stream_options.include_usage),
                on_done=done,
            )
        try:
            result = await unless_disconnected(upstream.solve(problem, config), request.receive)
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED)
        finally:
            ticket.release()
        done(result)
        return JSONResponse(completion_body(meta, result))


def create_app(
    settings: ServeSettings,
    rsa: RSAConfig | None = None,
    upstream: BackendConfig | None = None,
) -> Starlette:
    """The proxy as an ASGI app. `rsa` holds the default RSA settings requests override;
    `upstream` the model name, concurrency limit, timeout, retries and context window used
    for the upstream (its URL and key come from `settings`)."""
    backend = (upstream or BackendConfig()).model_copy(
        update={
            "backend": "openai",
            "base_url": settings.upstream_url,
            "api_key": settings.upstream_api_key,
        }
    )
    register_secrets(settings)
    proxy = Proxy(settings, rsa or RSAConfig(), backend)
    return Starlette(
        routes=[
            Route("/health", proxy.health, methods=["GET"]),
            Route("/v1/models", proxy.models, methods=["GET"]),
            Route("/v1/chat/completions", proxy.chat_completions, methods=["POST"]),
        ],
        exception_handlers={
            APIError: api_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
        lifespan=proxy.lifespan,
    )
