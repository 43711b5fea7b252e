"""The one shared layer for concurrency limits, retries, back-off and usage accounting.

It also decides what a completion may look like, for every backend alike: text that is not
valid Unicode (lone surrogates, which a JSON body can carry as escapes) has each bad code
point replaced by U+FFFD, so the journal and the run's files always hold valid UTF-8; a
completion longer than `MAX_CHARS_PER_TOKEN` characters per requested token (at least
`MIN_CHAR_LIMIT`) means the backend ignored max_tokens, and ends the run (BackendError).

With `max_tokens_in_flight` it also bounds the tokens the requests in flight may hold
(admission control for memory-bound engines; recursa.backends.admission). Off by default.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from recursa.backends.admission import InFlightEstimate, TokenGate, decode_estimate
from recursa.backends.base import Backend, Completion, GenerationRequest, RetryableError
from recursa.errors import BackendError

if TYPE_CHECKING:
    from recursa.config import BackendConfig

#: No tokenizer in use has tokens this long; more characters than this per requested token
#: means the backend ignored max_tokens.
MAX_CHARS_PER_TOKEN = 100
#: The limit never falls below this many characters (small max_tokens, chatty mocks).
MIN_CHAR_LIMIT = 1 << 16


def valid_unicode(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (valid pairs are joined)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


@dataclass
class Usage:
    """Token totals over every call made through a dispatcher."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    retries: int = 0

    def add(self, c: Completion) -> None:
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        self.requests += 1


class Dispatcher:
    """Sends requests to a backend with at most `concurrency` in flight, retrying transient
    faults with exponential back-off and full jitter, and honouring Retry-After; with
    `max_tokens_in_flight`, also at most that many tokens in flight (prompt plus the decode
    `in_flight_estimate` expects), first come, first served."""

    def __init__(
        self,
        backend: Backend,
        concurrency: int | None = None,
        max_retries: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_tokens_in_flight: int | None = None,
        in_flight_estimate: InFlightEstimate = "max_tokens",
    ) -> None:
        self.backend = backend
        self.concurrency = concurrency or backend.default_concurrency
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self._jitter = random.Random(0)
        self.usage = Usage()
        self.tokens = TokenGate(max_tokens_in_flight) if max_tokens_in_flight else None
        self.in_flight_estimate = in_flight_estimate
        self.in_flight = 0
        self.peak_in_flight = 0

    @classmethod
    def from_config(cls, backend: Backend, config: BackendConfig) -> Dispatcher:
        """A dispatcher with the concurrency, retry budget and back-off a config names."""
        return cls(
            backend,
            concurrency=config.concurrency,
            max_retries=config.max_retries,
            base_delay=config.retry_base_delay,
            max_delay=config.retry_max_delay,
            max_tokens_in_flight=config.max_tokens_in_flight,
            in_flight_estimate=config.in_flight_estimate,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay * 4)
        cap = min(self.max_delay, self.base_delay * (2**attempt))
        return self._jitter.uniform(0.0, cap)

    def _accept(self, request: GenerationRequest, completion: Completion) -> Completion:
        """The completion with valid Unicode text, or BackendError if it is impossibly long."""
        limit = max(MIN_CHAR_LIMIT, MAX_CHARS_PER_TOKEN * request.max_tokens)
        if len(completion.text) > limit:
            raise BackendError(
                f"{self.backend.description} sent a completion of {len(completion.text):,} "
                f"characters for max_tokens={request.max_tokens}, more than any tokenizer "
                "writes: it does not respect max_tokens"
            )
        text = valid_unicode(completion.text)
        return completion if text is completion.text else replace(completion, text=text)

    def _give_up(self, attempt: int, error: RetryableError) -> BackendError:
        tries = "1 attempt" if attempt == 0 else f"{attempt + 1} attempts"
        return BackendError(
            f"{self.backend.description} kept failing after {tries} (last error: {error})"
        )

    async def start(self) -> None:
        """The backend's `start()` (asking a server about itself), retried like a request."""
        attempt = 0
        while True:
            try:
                await self.backend.start()
                return
            except RetryableError as error:
                if attempt >= self.max_retries:
                    raise self._give_up(attempt, error) from error
                self.usage.retries += 1
                await self._sleep(self._delay(attempt, error.retry_after))
                attempt += 1

    def _tokens_held(self, request: GenerationRequest) -> int:
        """The tokens `request` may hold at the engine, for admission control."""
        prompt = self.backend.count_tokens(request.prompt_text())
        u = self.usage
        return prompt + decode_estimate(
            self.in_flight_estimate, request.max_tokens, u.requests, u.completion_tokens
        )

    async def generate(self, request: GenerationRequest) -> Completion:
        """A completion, or BackendError naming the backend once retries are spent."""
        attempt = 0
        while True:
            held = 0
            if self.tokens is not None:
                held = self._tokens_held(request)
                await self.tokens.acquire(held)
            try:
                async with self._semaphore:
                    self.in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                    try:
                        completion = await self.backend.generate(request)
                    except RetryableError as exc:
                        error: RetryableError | None = exc
                    else:
                        error = None
                    finally:
                        self.in_flight -= 1
            finally:
                if self.tokens is not None:
                    self.tokens.release(held)
            if error is None:
                completion = self._accept(request, completion)
                self.usage.add(completion)
                return completion
            if attempt >= self.max_retries:
                raise self._give_up(attempt, error) from error
            self.usage.retries += 1
            await self._sleep(self._delay(attempt, error.retry_after))
            attempt += 1
