"""Request bodies: a size limit (413) and JSON parsing (400)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from recursa.serve import strict_json
from recursa.serve.errors import APIError, bad_request

#: Past the limit the rest of the body is still read and discarded, up to this much, so the
#: client (which writes its whole body before reading) sees the 413 instead of a reset
#: connection. A larger body ends with the connection closed.
DRAIN_CAP = 64 << 20


def _too_large(limit: int) -> APIError:
    return APIError(
        413,
        f"the request body exceeds this server's limit of {limit} bytes",
        code="request_too_large",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or a 413 once it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_CAP:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > DRAIN_CAP:
                break
            if size <= limit:
                chunks.append(chunk)
    except ClientDisconnect as exc:
        raise APIError(400, "the client closed the connection mid-body") from exc
    if size > limit:
        raise _too_large(limit)
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body parsed as a JSON object: 413 over the limit, 400 for anything not an object."""
    raw = await read_body(request, limit)
    if not raw.strip():
        raise bad_request("the request body is empty; send a JSON object", code="invalid_json")
    try:
        data = strict_json.loads(raw)
    except strict_json.MalformedJSON as exc:
        raise bad_request(f"the request body is refused: {exc}", code="invalid_json") from exc
    except UnicodeDecodeError as exc:
        raise bad_request("the request body is not UTF-8 text", code="invalid_json") from exc
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column "
            f"{exc.colno}",
            code="invalid_json",
        ) from exc
    if not isinstance(data, dict):
        raise bad_request(
            f"the request body must be a JSON object, not {type(data).__name__}",
            code="invalid_json",
        )
    return data
