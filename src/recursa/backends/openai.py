"""Any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp, OpenAI, ...).

What reaches the server (docs/BACKENDS.md): `model` (--model, else the one model the server
lists), `messages`, `temperature` and `top_p` (1.0 unless set) on every request, the token
limit as `max_tokens` or `max_completion_tokens`, the request's `seed`, top_k/min_p disabled
on servers that take them (recursa.backends.openai_server), then --request-param fields.
A 400 that names a field recursa added on its own (a default top_k, the seed, the other
max-tokens field) drops or renames that field for the rest of the run and resends; any
other refusal is one sentence with the status and the server's message.

Reasoning a server returns apart from the answer (`reasoning_content`, `reasoning`) becomes a
leading `<think>...</think>` block of the completion text, the representation every backend
shares; `content: null` is an empty completion (a candidate without an answer).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

from recursa.backends.base import (
    TEMPLATE_RESERVE,
    Backend,
    BackendSpec,
    Completion,
    GenerationRequest,
    RetryableError,
)
from recursa.backends.openai_errors import VALIDATION, error_fields, error_info
from recursa.backends.openai_options import OpenAIOptions
from recursa.backends.openai_server import (
    DISABLED_SAMPLING,
    ServerTokenizer,
    context_window,
    kind_of,
    list_models,
)
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


log = logging.getLogger("recursa")

#: Most entries kept in the token-count cache (texts counted by the server).
COUNT_CACHE_SIZE = 4096
#: Tokenize requests in flight at once.
TOKENIZE_CONCURRENCY = 8
#: Times one request is resent after the server refused a field recursa added on its own.
MAX_ADAPTATIONS = 4


def completion_text(message: dict[str, Any]) -> str:
    """The candidate's text: reasoning returned apart (`reasoning_content`, `reasoning`) as a
    leading `<think>...</think>` block, then the content (null or absent: nothing)."""
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    text = content if isinstance(content, str) else ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning.strip():
        think = f"<think>\n{reasoning.strip()}\n</think>"
        return f"{think}\n\n{text.lstrip()}" if text.strip() else think
    return text


def _count(value: object) -> int | None:
    """A token count from `usage`, or None when it is missing or not a count."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def redact(text: str, secret: str | None) -> str:
    """`text` without `secret` (a server may echo the key it was sent in an error body)."""
    return text.replace(secret, "[API key]") if secret else text


class OpenAIBackend(Backend):
    """Async HTTP client for /chat/completions; transient faults raise RetryableError.

    `start()` (awaited by the engine before the first request, on the loop that will use the
    client) asks the server for its models, kind, context window and tokenizer; `aclose()`
    must run on that same loop (keep-alive connections belong to it)."""

    default_concurrency = 16

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        context_tokens: int | None = None,
        *,
        server_kind: str = "auto",
        max_tokens_field: str = "auto",
        request_params: dict[str, Any] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UsageError(f"base URL {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._context_tokens = context_tokens
        self.context_source = "--context-tokens" if context_tokens else ""
        #: The window the server states (prompts are fitted to it less TEMPLATE_RESERVE).
        self.server_context_tokens: int | None = None
        self._secret = api_key or None
        self._kind_setting = server_kind
        self.kind = server_kind if server_kind != "auto" else "other"
        self._field_setting = max_tokens_field
        self.max_tokens_field = "max_tokens" if max_tokens_field == "auto" else max_tokens_field
        self._field_switched = False
        self.request_params = dict(request_params or {})
        #: Fields recursa adds on its own that this server refused (not sent again).
        self.dropped: set[str] = set()
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._tokenizer: ServerTokenizer | None = None
        self._tokenize_slots: asyncio.Semaphore | None = None
        self._counts: dict[str, int] = {}
        self._counted_chars = 0
        self._counted_tokens = 0
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = timeout
        self._client = self._new_client()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=httpx.Timeout(self._timeout)
        )

    def _http(self) -> httpx.AsyncClient:
        """The client for the running loop. Keep-alive connections belong to the loop that
        opened them: a backend reused under a new loop (one `recursa.solve` after another)
        gets a fresh client, and fresh locks."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                self._client = self._new_client()
                self._start_lock = None
                self._tokenize_slots = asyncio.Semaphore(TOKENIZE_CONCURRENCY)
            self._loop = loop
        return self._client

    @property
    def description(self) -> str:
        return f"the server at {self.base_url}"

    @property
    def context_tokens(self) -> int | None:
        if self._context_tokens is None and self.server_context_tokens:
            return max(self.server_context_tokens - TEMPLATE_RESERVE, 1)
        return self._context_tokens

    def details(self) -> dict[str, Any]:
        return {
            **super().details(),
            "model": self.model,
            "server_kind": self.kind,
            "context_source": self.context_source or None,
            "server_context_tokens": self.server_context_tokens,
            "token_counts": "estimated" if self.counts_are_estimates else "server tokenizer",
            "max_tokens_field": self.max_tokens_field,
            "not_sent": sorted(self.dropped),
        }

    # -- what the server says about itself ------------------------------------------------
    async def start(self) -> None:
        """Model, kind, context window and tokenizer from the server (once)."""
        if self._started:
            return
        self._http()  # bind to this loop first (it may reset the lock)
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                await self._discover()
                self._started = True

    async def _discover(self) -> None:
        facts = await list_models(self._http(), self.base_url)
        if self.model is None:
            ids = facts.ids
            if facts.entries is None and facts.transient:
                raise RetryableError(facts.problem)
            if facts.entries is None:
                message = (
                    f"{self.description} did not list its models ({facts.problem}); "
                    "name the model with --model"
                )
                if facts.status == 404 and not self.base_url.endswith("/v1"):
                    message += " (or is --base-url missing /v1?)"
                raise RequestRefusedError(
                    message,
                    status=facts.status or 502,
                    detail=facts.problem,
                    api_error=facts.api_error,
                )
            if not ids:
                raise BackendError(f"{self.description} lists no models (GET /models)")
            if len(ids) > 1:
                more = f" and {len(ids) - 20} more" if len(ids) > 20 else ""
                shown = ", ".join(ids[:20]) + more
                raise UsageError(
                    f"{self.description} serves {len(ids)} models ({shown}); "
                    "choose one with --model"
                )
            self.model = ids[0]
            log.info("model %s (the one %s lists)", self.model, self.description)
        entry = facts.entry(self.model)
        if self._kind_setting == "auto":
            self.kind = kind_of(entry, self.base_url)
            if facts.entries is None and self.kind == "other":
                log.warning(
                    "%s did not list its models (%s): its kind is unknown, so only "
                    "temperature and top_p are sent (set --server-kind to send top_k/min_p)",
                    self.description,
                    facts.problem,
                )
        if self._field_setting == "auto" and self.kind == "openai":
            self.max_tokens_field = "max_completion_tokens"
        if self._context_tokens is None:
            window, source = await context_window(self._http(), self.base_url, self.kind, entry)
            self.server_context_tokens, self.context_source = window, source
        self._tokenizer = ServerTokenizer(self._http, self.base_url, self.kind, self.model)
        self._tokenize_slots = asyncio.Semaphore(TOKENIZE_CONCURRENCY)

    # -- token counts ---------------------------------------------------------------------
    @property
    def counts_are_estimates(self) -> bool:
        return self._tokenizer is None or not self._tokenizer.available

    def count_tokens(self, text: str) -> int:
        """The server's count for a text `prepare_counts` saw; otherwise an estimate at the
        characters-per-token ratio seen so far (about 3 before any count)."""
        known = self._counts.get(text)
        if known is not None:
            return known
        if self._counted_tokens and not self.counts_are_estimates:
            return math.ceil(len(text) * self._counted_tokens / max(self._counted_chars, 1))
        return super().count_tokens(text)

    async def prepare_counts(self, texts: Sequence[str]) -> None:
        """Ask the server's tokenizer for the texts not counted yet (only when a context
        window makes counts matter)."""
        tokenizer = self._tokenizer
        if tokenizer is None or not tokenizer.available or self.context_tokens is None:
            return
        missing = list(dict.fromkeys(t for t in texts if t not in self._counts))
        if not missing:
            return
        slots = self._tokenize_slots
        assert slots is not None

        async def one(text: str) -> None:
            async with slots:
                n = await tokenizer.count(text)
            if n is not None:
                self._remember(text, n)

        await asyncio.gather(*(one(t) for t in missing))

    def _remember(self, text: str, tokens: int) -> None:
        if len(self._counts) >= COUNT_CACHE_SIZE:
            self._counts.pop(next(iter(self._counts)))
        self._counts[text] = tokens
        self._counted_chars += len(text)
        self._counted_tokens += tokens

    # -- one request ----------------------------------------------------------------------
    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model or "default",
            "messages": request.messages,
            "temperature": request.temperature,
            self.max_tokens_field: request.max_tokens,
        }
        # Sampling is stated, never left to the server's defaults (or the model's
        # generation_config): top_p 1.0 unless set; top_k/min_p disabled where they exist.
        if request.top_p is not None or "top_p" not in self.dropped:
            body["top_p"] = request.top_p if request.top_p is not None else 1.0
        if request.seed is not None and "seed" not in self.dropped:
            body["seed"] = request.seed
        for name, off in DISABLED_SAMPLING.get(self.kind, {}).items():
            if name not in self.dropped:
                body[name] = off
        if request.reasoning_effort:  # --reasoning-effort: OpenAI's and vLLM's field
            body["reasoning_effort"] = request.reasoning_effort
        body.update(self.request_params)  # --request-param: the run's own fields
        body.update(request.params)  # this request's own (recursa serve's clients)
        return body

    def _adapt(self, body: dict[str, Any], request: GenerationRequest, field: str | None) -> bool:
        """After a 400 naming `field`: rename or drop a field recursa added on its own, so
        the resent request can pass. False when the field is the user's (or none)."""
        if field is None or field in self.request_params or field in request.params:
            return False
        if field in ("max_tokens", "max_completion_tokens") and self._field_setting == "auto":
            if field != self.max_tokens_field:  # a request in flight meanwhile switched it
                return field in body
            if self._field_switched:  # once: a server refusing both is an error
                return False
            other = "max_completion_tokens" if field == "max_tokens" else "max_tokens"
            log.warning("%s refused %s: sending %s instead", self.description, field, other)
            self.max_tokens_field = other
            self._field_switched = True
            return True
        if field in self.dropped:  # dropped meanwhile by a request in flight
            return field in body
        ours = field in DISABLED_SAMPLING.get(self.kind, {}) or field == "seed"
        ours = ours or (field == "top_p" and request.top_p is None)
        if ours and field in body:
            log.warning("%s refused %s: not sending it again", self.description, field)
            self.dropped.add(field)
            return True
        return False

    def _detail(self, response: httpx.Response) -> str:
        return redact(error_info(response)[0], self._secret)

    async def generate(self, request: GenerationRequest) -> Completion:
        await self.start()
        attempt = 0
        while True:
            body = self._body(request)
            response = await self._post(body)
            if response.status_code in (400, 422) and attempt < MAX_ADAPTATIONS:
                attempt += 1
                if self._adapt(body, request, error_info(response)[1]):
                    continue
            return self._completion(request, response)

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            return await self._http().post("/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"request to {self.base_url} timed out") from exc
        except httpx.TransportError as exc:
            raise RetryableError(
                f"connection to {self.base_url} failed ({type(exc).__name__})"
            ) from exc

    def _completion(self, request: GenerationRequest, response: httpx.Response) -> Completion:
        status = response.status_code
        if status == 500 and VALIDATION.match(self._detail(response)):
            status = 400  # llama-cpp-python reports a request it rejects as a 500: not transient
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
            code, param, api_error = error_fields(response)
            raise RequestRefusedError(
                f"the server at {self.base_url} refused the request "
                f"(HTTP {response.status_code}): {detail}",
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
            message = choice.get("message") or {}
            text = completion_text(message)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise RetryableError(
                f"malformed response from {self.base_url}: no choices[0].message"
            ) from exc
        # An empty completion is a valid one (the model stopped at once, or `content` is
        # null): a candidate without an answer. A missing or malformed `usage` is estimated
        # from the text (docs/RELIABILITY.md).
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
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
        await self._http().aclose()


def from_config(config: BackendConfig) -> OpenAIBackend:
    base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise UsageError("the openai backend needs --base-url (or OPENAI_BASE_URL)")
    key = config.api_key.get_secret_value() if config.api_key else os.environ.get("OPENAI_API_KEY")
    options = config.options_for(OpenAIOptions)
    return OpenAIBackend(
        base_url,
        model=config.model,
        api_key=key,
        timeout=config.timeout,
        context_tokens=config.context_tokens,
        server_kind=options.server_kind,
        max_tokens_field=options.max_tokens_field,
        request_params=options.request_params,
    )


SPEC = BackendSpec(from_config, OpenAIOptions, "an OpenAI-compatible server (--base-url)")
