"""Any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp, OpenAI, ...)."""

from __future__ import annotations

import os
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

from recursa.backends.base import Backend, Completion, GenerationRequest, RetryableError
from recursa.errors import BackendError, RequestRefusedError, UsageError

if TYPE_CHECKING:
    from recursa.config import BackendConfig

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import datetime as dt

        when = parsedate_to_datetime(value)
        return max(0.0, (when - dt.datetime.now(when.tzinfo)).total_seconds())
    except (TypeError, ValueError):
        return None


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err)[:200]
        return str(err)[:200]
    return str(body)[:200]


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None, bool]:
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


def _count(value: object) -> int | None:
    """A token count from `usage`, or None when it is missing or not a count."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def redact(text: str, secret: str | None) -> str:
    """`text` without `secret` (a server may echo the key it was sent in an error body)."""
    return text.replace(secret, "[API key]") if secret else text


class OpenAIBackend(Backend):
    """Async HTTP client for /chat/completions; transient faults raise RetryableError."""

    default_concurrency = 16

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        context_tokens: int | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UsageError(f"base URL {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._context_tokens = context_tokens
        self._secret = api_key or None
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout)
        )

    @property
    def description(self) -> str:
        return f"the server at {self.base_url}"

    @property
    def context_tokens(self) -> int | None:
        return self._context_tokens

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model or "default",
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.seed is not None:
            body["seed"] = request.seed
        body.update(request.params)
        return body

    def _detail(self, response: httpx.Response) -> str:
        return redact(_error_detail(response), self._secret)

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            response = await self._client.post("/chat/completions", json=self._body(request))
        except httpx.TimeoutException as exc:
            raise RetryableError(f"request to {self.base_url} timed out") from exc
        except httpx.TransportError as exc:
            raise RetryableError(
                f"connection to {self.base_url} failed ({type(exc).__name__})"
            ) from exc
        status = response.status_code
        if status in RETRY_STATUSES:
            raise RetryableError(
                f"HTTP {status} from {self.base_url}: {self._detail(response)}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status in (401, 403):
            raise BackendError(
                f"the server at {self.base_url} rejected the API key (HTTP {status})"
            )
        if status >= 400:
            detail = self._detail(response)
            code, param, api_error = _error_fields(response)
            raise RequestRefusedError(
                f"the server at {self.base_url} refused the request (HTTP {status}): {detail}",
                status=status,
                code=code,
                param=param,
                detail=detail,
                api_error=api_error,
            )
        try:
            data = response.json()
        except ValueError as exc:  # not JSON, or not UTF-8
            raise RetryableError(f"malformed response from {self.base_url}: not JSON") from exc
        try:
            choice = data["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise RetryableError(
                f"malformed response from {self.base_url}: no choices[0].message"
            ) from exc
        # An empty completion is a valid one (the model stopped at once); a missing or
        # malformed `usage` is estimated from the text (docs/RELIABILITY.md).
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        text = str(text)
        prompt_tokens = _count(usage.get("prompt_tokens"))
        completion_tokens = _count(usage.get("completion_tokens"))
        return Completion(
            text=text,
            finish_reason=str(choice.get("finish_reason") or "stop"),
            prompt_tokens=self.count_tokens(request.prompt_text())
            if prompt_tokens is None
            else prompt_tokens,
            completion_tokens=self.count_tokens(text)
            if completion_tokens is None
            else completion_tokens,
            logprobs=choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else None,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def from_config(config: BackendConfig) -> OpenAIBackend:
    base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise UsageError("the openai backend needs --base-url (or OPENAI_BASE_URL)")
    key = config.api_key.get_secret_value() if config.api_key else os.environ.get("OPENAI_API_KEY")
    return OpenAIBackend(
        base_url,
        model=config.model,
        api_key=key,
        timeout=config.timeout,
        context_tokens=config.context_tokens,
    )
