"""The upstream server: one OpenAIBackend behind ONE shared Dispatcher for every client, so
the limit on concurrent upstream requests holds across all requests at once."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from recursa.backends.dispatch import Dispatcher
from recursa.backends.openai import OpenAIBackend
from recursa.backends.openai import from_config as openai_backend
from recursa.config import BackendConfig, RSAConfig
from recursa.engine import Engine, StepCallback
from recursa.errors import (
    BackendError,
    ContextOverflowError,
    RecursaError,
    RequestRefusedError,
    UsageError,
)
from recursa.result import SolveResult
from recursa.serve.errors import APIError, bad_request, upstream_failed
from recursa.serve.models import upstream_ids
from recursa.serve.redact import redact_url
from recursa.tasks import Problem, Task

log = logging.getLogger("recursa.serve")

MODELS_TIMEOUT = 30.0
#: Words in an upstream's 400 that mean the prompt did not fit its context window
#: (llama.cpp, vLLM and SGLang say it without OpenAI's `context_length_exceeded` code).
_CONTEXT_WORDS = ("context length", "context window", "maximum context", "context_length")


def path_hint(url: str) -> str:
    """A hint for an upstream URL that lacks the /v1 its API lives under."""
    if url.rstrip("/").endswith("/v1"):
        return ""
    return f" (is --upstream missing /v1? OpenAI-compatible servers answer at {url}/v1)"


def refused(exc: RequestRefusedError, url: str) -> APIError:
    """An upstream's 4xx as the client's error: the same status, code and param. A 404 that
    is not an API's error body (a web server that does not know the path) is the proxy's
    misconfiguration, so a 502 with a hint."""
    if exc.status == 404 and not exc.api_error:
        return upstream_failed(f"upstream failure: {exc}{path_hint(url)}")
    code = exc.code
    if code is None and exc.status == 400 and any(w in exc.detail.lower() for w in _CONTEXT_WORDS):
        code = "context_length_exceeded"
    status = exc.status if 400 <= exc.status < 500 else 502
    return APIError(
        status,
        f"the upstream model refused the request (HTTP {exc.status}): {exc.detail}",
        type="invalid_request_error" if status < 500 else "upstream_error",
        code=code or ("upstream_failed" if status >= 500 else None),
        param=exc.param,
    )


class Upstream:
    """Runs RSA for requests against the upstream, and proxies its model list."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config.model_copy(update={"backend": "openai"})
        self.backend: OpenAIBackend = openai_backend(self.config)
        self.dispatcher = Dispatcher.from_config(self.backend, self.config)
        headers = {}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=self.backend.base_url, headers=headers, timeout=MODELS_TIMEOUT
        )
        #: The upstream's model ids, from its last model list (empty until one is read).
        self.known_models: list[str] = []

    @property
    def url(self) -> str:
        """The upstream's base URL as it may be shown (credentials redacted)."""
        return redact_url(self.backend.base_url)

    @property
    def model(self) -> str | None:
        """The model name sent upstream (from --model, or the upstream's first listed)."""
        return self.backend.model

    async def list_models(self) -> dict[str, Any]:
        """The upstream's GET /models body, or a 502 naming the upstream."""
        try:
            response = await self._client.get("/models")
        except httpx.HTTPError as exc:
            raise upstream_failed(
                f"the upstream server at {self.url} did not answer GET /models "
                f"({type(exc).__name__})"
            ) from exc
        if response.status_code != 200:
            hint = path_hint(self.url) if response.status_code == 404 else ""
            raise upstream_failed(
                f"the upstream server at {self.url} answered GET /models with HTTP "
                f"{response.status_code}{hint}"
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise upstream_failed(
                f"the upstream server at {self.url} sent a model list that is not JSON"
            ) from exc
        if not isinstance(data, dict):
            raise upstream_failed(f"the upstream server at {self.url} sent a malformed model list")
        self.known_models = upstream_ids(data)
        return data

    async def resolve_model(self) -> str | None:
        """Fill in the model name from the upstream's list when none was configured; an
        unreachable upstream leaves it unset (asked again on the next request)."""
        if self.backend.model is None:
            try:
                data = await self.list_models()
            except APIError as exc:
                log.warning("%s; the model name is not known yet", exc.message)
                return None
            models = data.get("data")
            if isinstance(models, list) and models and isinstance(models[0], dict):
                name = models[0].get("id")
                if isinstance(name, str) and name:
                    self.backend.model = name
                    log.info("upstream model: %s", name)
        return self.backend.model

    async def model_for(self, name: str | None) -> str:
        """The upstream model a request names (None: the default one), or a 404 when the
        upstream's list (read again once) does not have it."""
        if name is None:
            return await self.resolve_model() or "default"
        if name in self.known_models:
            return name
        try:
            await self.list_models()
        except APIError:
            return name  # the upstream cannot say: let it decide
        if not self.known_models or name in self.known_models:
            return name
        served = ", ".join(self.known_models)
        raise APIError(
            404,
            f"the model {name!r} is not served here; use one of {served} (each also as "
            f"rsa/MODEL, or rsa-n8-k3-t4/MODEL to set N, K and T)",
            code="model_not_found",
            param="model",
        )

    async def solve(
        self,
        problem: Problem,
        config: RSAConfig,
        on_step: StepCallback | None = None,
        *,
        task: Task | None = None,
        params: dict[str, Any] | None = None,
    ) -> SolveResult:
        """RSA on one problem through the shared dispatcher, `params` sent with every
        generation; failures become API errors."""
        await self.resolve_model()
        engine = Engine(
            self.dispatcher,
            config,
            context_tokens=self.config.context_tokens,
            on_step=on_step,
            request_params=params,
        )
        try:
            return await engine.run(problem, task)
        except ContextOverflowError as exc:
            raise bad_request(str(exc), code="context_length_exceeded") from exc
        except RequestRefusedError as exc:
            raise refused(exc, self.url) from exc
        except BackendError as exc:
            raise upstream_failed(f"upstream failure: {exc}") from exc
        except UsageError as exc:
            raise bad_request(str(exc)) from exc
        except RecursaError as exc:
            raise APIError(500, str(exc), type="server_error") from exc

    async def aclose(self) -> None:
        await self._client.aclose()
        await self.backend.aclose()
