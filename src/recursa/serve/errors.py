"""Errors in the OpenAI format: `{"error": {"message", "type", "code", "param"}}`."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from recursa.serve.redact import scrub

log = logging.getLogger("recursa.serve")


class APIError(Exception):
    """An error answer: HTTP status plus the OpenAI error object's fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = scrub(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        """The JSON body clients parse (OpenAI's error shape)."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }

    def response(self) -> JSONResponse:
        headers = dict(self.headers or {})
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(self.body(), status_code=self.status, headers=headers or None)


def bad_request(message: str, code: str = "invalid_value", param: str | None = None) -> APIError:
    """A 400 for something the client sent."""
    return APIError(400, message, code=code, param=param)


def upstream_failed(message: str) -> APIError:
    """A 502: the upstream server failed (after retries) or refused."""
    return APIError(502, message, type="upstream_error", code="upstream_failed")


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette handler for APIError."""
    assert isinstance(exc, APIError)
    if exc.status < 500:
        log.info("%s %s: %d %s", request.method, request.url.path, exc.status, exc.message)
    return exc.response()
