"""The backend contract: one async call that turns a chat request into a completion."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from recursa.config import BackendConfig

from recursa.errors import BackendError

Message = dict[str, str]

#: Tokens of a context window kept for what recursa does not count: the chat template's role
#: markers and default system prompt around the counted message contents (without it a prompt
#: fitted exactly is refused: prompt + template + max_tokens > window). Backends that can
#: render the template measure it instead (llama.cpp).
TEMPLATE_RESERVE = 64


@dataclass(frozen=True)
class GenerationRequest:
    """One generation. `key` is stable across runs. `meta` is for this process only (the
    dispatcher's and callbacks' bookkeeping: problem id, step, slot, phase): a backend that
    sends requests to another process or over a network sends none of it."""

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


class BackendOptions(BaseModel):
    """A backend's own settings, beside the shared ones of `BackendConfig`. Field names are
    global (they become flags, config-file keys and library keywords), so prefix them with
    the backend's name unless they are its well-known names (`n_ctx`, `max_model_len`)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: its factory (a `BackendConfig` in, a `Backend` out) and the
    model of its own options (None when it has none). A plugin may register a bare factory;
    the registry wraps it in a spec without options."""

    factory: Callable[[BackendConfig], Backend]
    options: type[BackendOptions] | None = None
    description: str = ""

    def __call__(self, config: BackendConfig) -> Backend:
        return self.factory(config)


@dataclass(frozen=True)
class ProblemContext:
    """The problem a generation belongs to, as far as a backend that *simulates* a model (the
    mock) needs it: set by the engine around each of its generations (`current_problem`),
    in this process only, never part of a request. Real backends ignore it. The ray backend
    hands it to its replica with the request, so a replica answers as this process would."""

    problem_id: str
    #: The reference answer as text, when the caller knows it (evaluations).
    reference: str | None = None
    #: What the generation is for: "generate" (the population) or a selection's phase
    #: ("verify": a self-verification judgement).
    phase: str = "generate"


_CURRENT: ContextVar[ProblemContext | None] = ContextVar("recursa_problem", default=None)


def current_problem() -> ProblemContext | None:
    """The problem of the generation being made in this task (None outside the engine)."""
    return _CURRENT.get()


@contextmanager
def problem_context(context: ProblemContext | None) -> Iterator[None]:
    """Make `context` the current problem for the generations awaited inside."""
    token = _CURRENT.set(context)
    try:
        yield
    finally:
        _CURRENT.reset(token)
