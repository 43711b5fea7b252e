"""What an OpenAI-compatible server's error says: its message as one line, and the request
field it calls unknown (so the openai backend can rename or drop a field it added itself)."""

from __future__ import annotations

import re
from typing import Any

import httpx

_REJECTED = [
    re.compile(r"[Uu]nsupported parameter:?\s*'?([A-Za-z_]+)"),
    re.compile(r"[Uu]nrecognized request argument supplied:?\s*'?([A-Za-z_]+)"),
    re.compile(r"'([A-Za-z_]+)' is not supported"),
]
#: How pydantic (llama-cpp-python's server) words a rejected request.
VALIDATION = re.compile(r"\d+ validation errors?\b")
#: Error codes (OpenAI's `error.code`, pydantic's `detail[].type`) that mean "no such field".
_UNSUPPORTED_CODES = {"unsupported_parameter", "unknown_parameter", "extra_forbidden"}


def _pydantic_detail(detail: list[Any]) -> tuple[str, str | None]:
    """FastAPI's 422 `detail` list as one clause, and the field it calls unknown."""
    parts, unknown = [], None
    for item in detail[:3]:
        if not isinstance(item, dict):
            continue
        loc = [str(p) for p in item.get("loc", []) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {item.get('msg', 'invalid')}")
        if item.get("type") in _UNSUPPORTED_CODES and len(loc) == 1:
            unknown = unknown or loc[0]
    return "; ".join(parts) or "invalid request", unknown


def error_info(response: httpx.Response) -> tuple[str, str | None]:
    """The server's error message (one line, at most 300 characters) and the request field
    it says the server does not take, if it says so."""
    try:
        body = response.json()
    except ValueError:
        text = response.text[:300].strip() or response.reason_phrase
        return " ".join(text.split()), None
    unknown = None
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        message, unknown = _pydantic_detail(body["detail"])
    elif isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            message = str(err.get("message") or body.get("message") or body.get("detail") or err)
            param, code = err.get("param"), err.get("code")
            if isinstance(param, str) and code in _UNSUPPORTED_CODES:
                unknown = param
        else:
            message = str(body.get("message") or err)
    else:
        message = str(body)
    message = " ".join(message.split())
    # llama-cpp-python appends a traceback ('File "...", line N') to some messages.
    message = message.split(' File "', 1)[0].strip()[:300]
    if unknown is None:
        for pattern in _REJECTED:
            match = pattern.search(message)
            if match:
                unknown = match.group(1)
                break
    return message, unknown


def error_fields(response: httpx.Response) -> tuple[str | None, str | None, bool]:
    """`code` and `param` of an OpenAI-format error body, and whether the body is one."""
    try:
        body = response.json()
    except ValueError:
        return None, None, False
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, None, False
    code, param = err.get("code"), err.get("param")
    return (
        str(code) if isinstance(code, (str, int)) and code != "" else None,
        str(param) if isinstance(param, str) and param else None,
        True,
    )
