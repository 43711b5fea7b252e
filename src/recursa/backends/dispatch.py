"""The one shared layer for concurrency limits, retries, back-off and usage accounting."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from recursa.backends.base import Backend, Completion, GenerationRequest, RetryableError
from recursa.errors import BackendError


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
    faults with exponential back-off and full jitter, and honouring Retry-After."""

    def __init__(
        self,
        backend: Backend,
        concurrency: int | None = None,
        max_retries: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        self.in_flight = 0
        self.peak_in_flight = 0

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay * 4)
        cap = min(self.max_delay, self.base_delay * (2**attempt))
        return self._jitter.uniform(0.0, cap)

    async def generate(self, request: GenerationRequest) -> Completion:
        """A completion, or BackendError naming the backend once retries are spent."""
        attempt = 0
        while True:
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
            if error is None:
                self.usage.add(completion)
                return completion
            if attempt >= self.max_retries:
                raise BackendError(
                    f"{self.backend.description} kept failing after {attempt + 1} attempts "
                    f"(last error: {error})"
                ) from error
            self.usage.retries += 1
            await self._sleep(self._delay(attempt, error.retry_after))
            attempt += 1
