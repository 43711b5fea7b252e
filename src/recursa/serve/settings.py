"""The proxy's own settings: where it listens, what it forwards to, and its request limits."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DEFAULT_MAX_BODY_BYTES = 1 << 20


class ServeSettings(BaseModel):
    """How `recursa serve` listens and which upstream server it improves with RSA."""

    model_config = ConfigDict(extra="forbid")

    upstream: str | None = Field(
        None,
        description="The upstream OpenAI-compatible server's base URL, e.g. "
        "http://127.0.0.1:8080/v1 (required).",
    )
    upstream_api_key: SecretStr | None = Field(
        None,
        description="Key sent to the upstream (default: the OPENAI_API_KEY variable); a "
        "client's own Authorization header is never forwarded.",
    )
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0: any free port).")
    api_key: SecretStr | None = Field(
        None,
        description="Bearer token clients must send (default: the RECURSA_API_KEY variable; "
        "unset: no authentication).",
    )
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES, ge=1024, description="Largest request body accepted, in bytes."
    )
    keepalive: float = Field(
        10.0, gt=0, description="Seconds between SSE keep-alive comments while RSA runs."
    )
    max_generations: int = Field(
        4096, ge=1, description="Most generations (N x T) one request may ask for."
    )
    # Limits against hostile clients (serve/limits.py, docs/SERVE.md "Limits").
    max_tokens_limit: int = Field(
        32768, ge=1, description="Largest max_tokens a request may ask for per generation."
    )
    allow_k_equals_n: bool = Field(
        False, description="Let a request ask for K = N (every aggregation sees everything)."
    )
    max_request_bytes: int = Field(
        64 << 20,
        ge=1024,
        description="Most prompt bytes one request's step may send upstream: "
        "N x (prompt + K x max_tokens x 4).",
    )
    max_inflight_generations: int = Field(
        16384,
        ge=1,
        description="Generations of all running requests together; past it a request gets 429.",
    )
    max_inflight_bytes: int = Field(
        256 << 20,
        ge=1024,
        description="Prompt bytes of all running requests together; past it a request gets 429.",
    )
    read_timeout: float = Field(
        10.0, gt=0, description="Seconds a client has to send a whole request (headers, body)."
    )
    keepalive_timeout: float = Field(
        5.0, gt=0, description="Seconds an idle kept-alive connection stays open."
    )
    max_connections: int = Field(
        256, ge=1, description="Open connections at once; one more is answered 503 and closed."
    )
    upstream_schema_format: Literal["json_schema", "json_object"] = Field(
        "json_schema",
        description="How a JSON schema (response_format json_schema) is sent upstream: "
        "'json_schema' as OpenAI, vLLM, SGLang and llama.cpp's server take it, or 'json_object' "
        "with a 'schema' field, the only form llama-cpp-python's server takes.",
    )
    cors_origin: list[str] = Field(
        default_factory=list,
        description="Origins whose browser pages may call the server (CORS; repeatable, '*' for "
        "any); default: none.",
    )

    @field_validator("upstream")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("the upstream URL must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("api_key", "upstream_api_key")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "the API key is empty or only whitespace; give a real key, or none at all "
                "(then clients are not authenticated, which only a loopback address allows)"
            )
        return value

    @model_validator(mode="after")
    def _upstream_given(self) -> ServeSettings:
        if self.upstream is None:
            raise ValueError(
                "recursa serve needs --upstream URL, the OpenAI-compatible server to improve"
            )
        return self

    @property
    def upstream_url(self) -> str:
        """The upstream base URL (validated present)."""
        assert self.upstream is not None
        return self.upstream
