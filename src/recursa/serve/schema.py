"""The chat-completions request body, and the RSA settings one request runs with.

Settings are layered: the server's defaults (its command-line flags), then the request's
standard sampling fields (`temperature`, `top_p`, `max_tokens` or `max_completion_tokens`,
`seed`), then the request's `rsa` object, whose fields are RSAConfig's by name. Unknown `rsa`
fields, bad values and K > N are 400s naming the problem.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recursa.config import RSAConfig, validation_message
from recursa.serve.errors import APIError, bad_request
from recursa.serve.params import check_unsupported

#: RSAConfig fields a request's `rsa` object may set (the step barrier concerns many problems).
RSA_FIELDS: tuple[str, ...] = tuple(f for f in RSAConfig.model_fields if f != "sync_steps")

#: Fresh run seeds are drawn from [0, SEED_RANGE) (31 bits, as upstream seeds are).
SEED_RANGE = 2**31 - 1
#: The final selection for task `general` unless the server or the request names one: a
#: random member, since open answers have nothing extracted to vote on; for JSON replies a
#: vote on the parsed objects, which never picks a reply that is not JSON over one that is.
OPEN_SELECTION = "random"
JSON_TYPES = ("json_object", "json_schema")

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ContentPart(BaseModel):
    """One part of a multi-part message; only text parts are supported."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One chat message (extra fields such as `name` or `tool_calls` are accepted)."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text; non-text parts are a 400."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        pieces = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise bad_request(
                    f"message parts of type {part.type!r} are not supported; send text",
                    param="messages",
                )
            pieces.append(part.text)
        return "".join(pieces)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of a chat-completions body the proxy reads itself. Every other field is
    kept (`model_extra`) and sent with every upstream generation, or refused: see
    serve/params.py."""

    # Strict: JSON `true` is no N and "yes" is no boolean.
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
    function_call: Any = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    rsa: dict[str, Any] | None = None


def _pydantic_message(exc: ValidationError) -> tuple[str, str | None]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return (f"invalid field {loc}: {msg}" if loc else msg), (loc or None)


def parse_request(body: dict[str, Any]) -> ChatRequest:
    """Validate a body; a 400 names the first bad field."""
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        message, param = _pydantic_message(exc)
        raise bad_request(message, param=param) from exc
    if request.n not in (None, 1):
        raise bad_request("n must be 1: RSA answers with the one candidate it selects", param="n")
    check_unsupported(request.model_dump(exclude_none=True) | (request.model_extra or {}))
    return request


def rsa_config(
    defaults: RSAConfig,
    request: ChatRequest,
    max_generations: int,
    from_model: dict[str, int] | None = None,
) -> RSAConfig:
    """The settings for this request: defaults, N/K/T from the model name (`from_model`),
    standard fields, then the `rsa` object. Two defaults depend on the request: without a
    seed from the request or the server (`--seed`), every request draws a fresh one; with
    task `general` and no selection asked for, the final candidate is a random member
    (open questions have no extracted answer to vote on; see serve/open_task.py), or for a
    JSON `response_format` the majority of the parsed objects."""
    values: dict[str, Any] = defaults.model_dump()
    values.update(from_model or {})
    standard = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_completion_tokens
        if request.max_completion_tokens is not None
        else request.max_tokens,
        "seed": request.seed,
    }
    values.update({k: v for k, v in standard.items() if v is not None})
    overrides = request.rsa or {}
    unknown = sorted(set(overrides) - set(RSA_FIELDS))
    if unknown:
        names = ", ".join(repr(u) for u in unknown)
        raise APIError(
            400,
            f"unknown field{'s' if len(unknown) > 1 else ''} in rsa: {names} "
            f"(allowed: {', '.join(RSA_FIELDS)})",
            code="unknown_parameter",
            param=f"rsa.{unknown[0]}",
        )
    values.update(overrides)
    if request.seed is None and "seed" not in overrides and "seed" not in defaults.model_fields_set:
        values["seed"] = secrets.randbelow(SEED_RANGE)
    if (
        values.get("task") == "general"
        and "selection" not in overrides
        and "selection" not in defaults.model_fields_set
    ):
        wants_json = (request.response_format or {}).get("type") in JSON_TYPES
        values["selection"] = "majority" if wants_json else OPEN_SELECTION
    try:
        config = RSAConfig.model_validate(values, strict=True)
    except ValidationError as exc:
        loc = ".".join(str(p) for p in exc.errors()[0].get("loc", ()))
        field = loc.split(".")[0]
        if field in overrides:
            param = f"rsa.{field}"
        elif field in (from_model or {}) or (not field and set(from_model or {}) & {"n", "k"}):
            param = "model"
        else:
            param = field or "rsa"
        raise bad_request(validation_message(exc), param=param) from exc
    if config.n * config.t > max_generations:
        raise bad_request(
            f"N x T = {config.n} x {config.t} = {config.n * config.t} generations exceeds this "
            f"server's limit of {max_generations} per request",
            param="rsa",
        )
    return config
