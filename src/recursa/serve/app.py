"""The ASGI application: routes, error format, and the shared upstream's lifetime.

Routes: `POST /v1/chat/completions` and `POST /v1/responses` (RSA), `GET /v1/models` (the
upstream's list, each model also spelled `rsa/MODEL` and `rsa-nN-kK-tT/MODEL`),
`GET /v1/models/{id}`, `GET /health` (no authentication, for load balancers and scripts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from recursa.config import BackendConfig, RSAConfig
from recursa.result import SolveResult
from recursa.serve.auth import require_bearer
from recursa.serve.body import read_json_object
from recursa.serve.disconnect import ClientGone, unless_disconnected
from recursa.serve.errors import APIError, api_error_handler
from recursa.serve.job import Job, prepare
from recursa.serve.limits import Admission, admit
from recursa.serve.models import model_entries, parse_model_name
from recursa.serve.redact import redact_url, register_secrets
from recursa.serve.reply import ReplyMeta, completion_body
from recursa.serve.responses import EventStream, ResponseMeta, chat_body, response_body
from recursa.serve.schema import ChatRequest, parse_request
from recursa.serve.settings import ServeSettings
from recursa.serve.streaming import RSAStream, StepSink
from recursa.serve.upstream import Upstream

log = logging.getLogger("recursa.serve")

#: What a proxy answers when its client has gone (nginx's convention; nobody reads it).
CLIENT_CLOSED = 499


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method) in the OpenAI format."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    response = APIError(exc.status_code, message, code=code).response()
    response.headers.update(exc.headers or {})  # Allow, on a 405
    return response


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
        return JSONResponse(model_entries(await self.upstream.list_models(), self.rsa_defaults))

    async def model(self, request: Request) -> JSONResponse:
        """One model by id, in any of its spellings (`rsa-n4-t2/MODEL` included)."""
        require_bearer(request, self.api_key)
        name = request.path_params["name"]
        listing = await self.upstream.list_models()
        upstream = parse_model_name(name).upstream or await self.upstream.resolve_model()
        for item in listing.get("data") or []:
            if isinstance(item, dict) and item.get("id") == upstream:
                return JSONResponse({**item, "id": name} if name != upstream else item)
        raise APIError(404, f"the model {name!r} does not exist", code="model_not_found")

    async def _prepare(self, chat: ChatRequest) -> Job:
        settings = self.settings
        job = await prepare(
            self.upstream,
            self.rsa_defaults,
            chat,
            settings.max_generations,
            settings.upstream_schema_format,
        )
        admit(job, chat, self.rsa_defaults, settings, self.admission)
        return job

    def _logger(self, id: str, job: Job) -> Callable[[SolveResult], None]:
        started = time.monotonic()
        config = job.config

        def done(result: SolveResult) -> None:
            log.info(
                "answered %s (N=%d K=%d T=%d, %d generations, %d s): %r",
                id,
                config.n,
                config.k,
                config.t,
                result.usage.get("generations", 0),
                time.monotonic() - started,
                result.answer,
            )

        return done

    async def _answer(self, request: Request, job: Job) -> SolveResult | None:
        """The run's result, or None when the client left first."""
        try:
            return await unless_disconnected(job.run(), request.receive)
        except ClientGone:
            return None

    async def chat_completions(self, request: Request) -> Response:
        require_bearer(request, self.api_key)
        body = await read_json_object(request, self.settings.max_body_bytes)
        chat = parse_request(body)
        job = await self._prepare(chat)
        meta = ReplyMeta(model=job.model)
        done = self._logger(meta.id, job)
        if chat.stream:

            def run(on_step: StepSink) -> Awaitable[SolveResult]:
                return job.run(on_step)

            return RSAStream(
                run,
                meta,
                steps=job.config.t,
                keepalive=self.settings.keepalive,
                include_usage=bool(chat.stream_options and chat.stream_options.include_usage),
                on_done=done,
                logprobs=job.logprobs,
            )
        result = await self._answer(request, job)
        if result is None:
            return Response(status_code=CLIENT_CLOSED)
        done(result)
        return JSONResponse(completion_body(meta, result, job.logprobs))

    async def responses(self, request: Request) -> Response:
        """The Responses API over the same run (serve/responses.py)."""
        require_bearer(request, self.api_key)
        body = await read_json_object(request, self.settings.max_body_bytes)
        chat = parse_request(chat_body(body))
        job = await self._prepare(chat)
        meta = ResponseMeta(model=job.model, request=body, logprobs=job.logprobs)
        done = self._logger(meta.id, job)
        if chat.stream:
            events = EventStream(meta)

            def run(on_step: StepSink) -> Awaitable[SolveResult]:
                return job.run(on_step)

            return RSAStream(
                run,
                ReplyMeta(model=job.model, id=meta.id),
                steps=job.config.t,
                keepalive=self.settings.keepalive,
                on_done=done,
                render=events.finished,
                render_error=events.failed,
                opening=events.opening(),
                closing=[],
            )
        result = await self._answer(request, job)
        if result is None:
            return Response(status_code=CLIENT_CLOSED)
        done(result)
        return JSONResponse(response_body(meta, result))


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
    middleware = []
    if settings.cors_origin:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origin),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["*"],
            )
        )
    return Starlette(
        routes=[
            Route("/health", proxy.health, methods=["GET"]),
            Route("/v1/models", proxy.models, methods=["GET"]),
            Route("/v1/models/{name:path}", proxy.model, methods=["GET"]),
            Route("/v1/chat/completions", proxy.chat_completions, methods=["POST"]),
            Route("/v1/responses", proxy.responses, methods=["POST"]),
        ],
        middleware=middleware,
        exception_handlers={
            APIError: api_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
        lifespan=proxy.lifespan,
    )
