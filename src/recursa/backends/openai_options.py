"""The openai backend's own settings: server kind, the max-tokens field, request parameters.

`BackendConfig` takes these fields in (one flag each, the same names in config files); they
live here, apart from the shared settings, so that they move with the backend.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: What kind of server answers: it decides which sampling parameters are sent (a real OpenAI
#: endpoint rejects top_k/min_p), where token counts and the context window come from.
ServerKind = Literal["auto", "vllm", "sglang", "llamacpp", "llama-cpp-python", "openai", "other"]
MaxTokensField = Literal["auto", "max_tokens", "max_completion_tokens"]

#: Request fields recursa itself sets; a request parameter may not override them.
RESERVED_PARAMS: dict[str, str] = {
    "model": "use --model",
    "messages": "recursa writes the messages",
    "stream": "recursa reads whole completions",
    "n": "recursa asks for one completion per request (the population is N requests)",
    "temperature": "use --temperature",
    "top_p": "use --top-p",
    "seed": "use --seed (every request gets its own seed from it)",
    "max_tokens": "use --max-tokens",
    "max_completion_tokens": "use --max-tokens (and --max-tokens-field to name the field)",
}


def parse_request_param(text: str) -> tuple[str, Any]:
    """`KEY=JSON` as (key, value); a value that is not JSON is taken as a string
    (`reasoning_effort=high`)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"a request parameter must look like KEY=JSON, not {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


class OpenAIOptions(BaseModel):
    """Settings only the openai backend reads."""

    model_config = ConfigDict(extra="forbid")

    server_kind: ServerKind = Field(
        "auto",
        description="openai: the server's kind, which decides the sampling parameters sent "
        "(top_k/min_p disabled on vllm, sglang, llamacpp, llama-cpp-python; never sent to "
        "openai or other) and where token counts come from (default: detected from "
        "/v1/models owned_by).",
    )
    max_tokens_field: MaxTokensField = Field(
        "auto",
        description="openai: the request field for the token limit (auto: "
        "max_completion_tokens for OpenAI, else max_tokens, switched when the server's 400 "
        "asks for the other).",
    )
    request_params: dict[str, Any] = Field(
        default_factory=dict,
        description="openai: an extra field sent with every request, KEY=JSON (a value "
        "that is not JSON is a string), e.g. top_k=20, "
        "reasoning_effort=high, chat_template_kwargs='{\"enable_thinking\": false}'.",
        json_schema_extra={"flag": "--request-param", "metavar": "KEY=JSON"},
    )

    @field_validator("request_params")
    @classmethod
    def _not_reserved(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not isinstance(key, str) or not key:
                raise ValueError("request parameter names must be non-empty strings")
            if key in RESERVED_PARAMS:
                raise ValueError(
                    f"the request parameter {key!r} is set by recursa ({RESERVED_PARAMS[key]})"
                )
        return value
