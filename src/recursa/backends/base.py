"""The backend contract: one async call that turns a chat request into a completion."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recursa.errors import BackendError

Message = dict[str, str]


@dataclass(frozen=True)
class GenerationRequest:
    """One generation. `key` is stable across runs; `meta` never leaves the process."""

    messages: list[Message]
    max_tokens: int
    temperature: float = 1.0
    top_p: float | None = None
    seed: int | None = None
    #: "low" / "medium" / "high" for models that take a reasoning effort (gpt-oss); None
    #: sends none. Each backend passes it as its server or chat template expects.
    reasoning_effort: str | None = None
    key: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: Extra request-body fields for servers that take them (OpenAI-compatible: `stop`,
    #: `top_k`, `response_format`, `logprobs`, `model`, ...); other backends ignore them.
    params: Mapping[str, Any] = field(default_factory=dict)

    def prompt_text(self) -> str:
        return "\n".join(m["content"] for m in self.messages)


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one request."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: The server's token log-probabilities (OpenAI's `choices[0].logprobs`), when asked for.
    logprobs: dict[str, Any] | None = None


class RetryableError(Exception):
    """A failure worth retrying (rate limit, server error, timeout, dropped connection)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendDeadError(BackendError):
    """The engine behind a backend is gone for good in this process (vLLM's EngineDeadError):
    a run ends; a Ray replica exits so that Ray starts a fresh process."""


class Backend(abc.ABC):
    """A model that answers chat requests. Retries and concurrency live in `Dispatcher`."""

    #: How many requests this backend usefully takes at once.
    default_concurrency: int = 1

    @property
    def description(self) -> str:
        """Names the model or server in messages."""
        return type(self).__name__

    @property
    def context_tokens(self) -> int | None:
        """The context window in tokens, when known."""
        return None

    def count_tokens(self, text: str) -> int:
        """Tokens in `text`; backends without a tokenizer estimate (about 3 characters each)."""
        return len(text) // 3 + 1

    @property
    def counts_are_estimates(self) -> bool:
        """Whether `count_tokens` guesses (messages then say so) rather than tokenizes."""
        return type(self).count_tokens is Backend.count_tokens

    def details(self) -> dict[str, Any]:
        """What the backend learned or decided, for a run's record (--json)."""
        return {"description": self.description, "context_tokens": self.context_tokens}

    async def start(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Learn what the model needs before the first request (a server's model, context
        window, kind); called on the event loop that will use the backend, at most once
        effectively (implementations make repeated calls cheap)."""

    async def prepare_counts(self, texts: Sequence[str]) -> None:  # noqa: B027 - optional
        """Make `count_tokens` exact for `texts` (a server's tokenize endpoint is async, so
        callers ask for the texts they are about to count first). A no-op by default."""

    @abc.abstractmethod
    async def generate(self, request: GenerationRequest) -> Completion:
        """One completion; raise RetryableError for transient faults, BackendError otherwise."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections or models."""
