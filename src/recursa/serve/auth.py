"""Client authentication: a bearer token compared in constant time."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from recursa.serve.errors import APIError


def require_bearer(request: Request, expected: str | None) -> None:
    """Raise a 401 unless the request carries `Authorization: Bearer <expected>`
    (no check when the server has no key)."""
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(
            401,
            "missing API key: send 'Authorization: Bearer <key>' with this server's --api-key",
            code="invalid_api_key",
        )
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise APIError(401, "incorrect API key for this server", code="invalid_api_key")
