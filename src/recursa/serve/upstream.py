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
from recursa.errors import BackendError, ContextOverflowError, RecursaError, UsageError
from recursa.result import SolveResult
from recursa.serve.errors import APIError, bad_request, upstream_failed
from recursa.serve.redact import redact_url
from recursa.tasks import Problem

log = logging.getLogger("recursa.serve")

MODELS_TIMEOUT = 30.0


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
            raise upstream_failed(
                f"the upstream server at {self.url} answered GET /models with HTTP "
                f"{response.status_code}"
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise upstream_failed(
                f"the upstream server at {self.url} sent a model list that is not JSON"
            ) from exc
        if not isinstance(data, dict):
            raise upstream_failed(f"the upstream server at {self.url} sent a malformed model list")
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

    async def solve(
        self, problem: Problem, config: RSAConfig, on_step: StepCallback | None = None
    ) -> SolveResult:
        """RSA on one problem through the shared dispatcher; failures become API errors."""
        await self.resolve_model()
        engine = Engine(
            self.dispatcher, config, context_tokens=self.config.context_tokens, on_step=on_step
        )
        try:
            return await engine.run(problem)
        except ContextOverflowError as exc:
            raise bad_request(str(exc), code="context_length_exceeded") from exc
        except BackendError as exc:
            raise upstream_failed(f"upstream failure: {exc}") from exc
        except UsageError as exc:
            raise bad_request(str(exc)) from exc
        except RecursaError as exc:
            raise APIError(500, str(exc), type="server_error") from exc

    async def aclose(self) -> None:
        await self._client.aclose()
        await self.backend.aclose()
