"""Admission control: a bound on the tokens in flight, so a memory-bound engine does not thrash.

An engine such as vLLM admits a request when its prompt fits the KV cache and preempts (and
later recomputes) a running one when decoding runs out of blocks. Sending it more than its
cache can hold does not make it faster; `TokenGate` holds requests back in the client, in
arrival order, while the tokens the requests in flight may occupy (their prompt plus what
they may decode) would exceed a budget. A request larger than the whole budget still goes
when nothing else is in flight, so no request waits forever.

`Dispatcher` (backends/dispatch.py) uses it when `max_tokens_in_flight` is set; how a
request's decode is estimated is `in_flight_estimate`:

- `"max_tokens"`: prompt + max_tokens, the most the request can hold; with a budget no larger
  than the engine's KV cache, nothing is ever preempted;
- `"usage"`: prompt + the mean completion length the engine has reported so far (max_tokens
  until `USAGE_WARMUP` completions have come back), capped at max_tokens: closer to what a
  request holds on average, so more run at once, with some preemption when long ones meet.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Literal

InFlightEstimate = Literal["max_tokens", "usage"]
IN_FLIGHT_ESTIMATES: tuple[InFlightEstimate, ...] = ("max_tokens", "usage")

#: Completions reported before "usage" trusts their mean length.
USAGE_WARMUP = 16


def decode_estimate(
    estimate: InFlightEstimate, max_tokens: int, completions: int, completion_tokens: int
) -> int:
    """Tokens a request is expected to decode under `estimate` (see the module docstring)."""
    if estimate == "usage" and completions >= USAGE_WARMUP:
        return min(max_tokens, math.ceil(completion_tokens / completions))
    return max_tokens


class TokenGate:
    """First come, first served admission while the tokens in flight fit `budget`."""

    def __init__(self, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"a token budget must be at least 1, not {budget}")
        self.budget = budget
        self.in_flight = 0
        self.peak = 0
        self._queue: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _room(self, tokens: int) -> bool:
        return self.in_flight == 0 or self.in_flight + tokens <= self.budget

    def _take(self, tokens: int) -> None:
        self.in_flight += tokens
        self.peak = max(self.peak, self.in_flight)

    async def acquire(self, tokens: int) -> None:
        """Wait until `tokens` fit (behind every earlier waiter), then hold them."""
        if not self._queue and self._room(tokens):
            self._take(tokens)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((tokens, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted just before the cancel
                self.release(tokens)
            else:
                self._queue.remove((tokens, fut))
                self._grant()
            raise

    def release(self, tokens: int) -> None:
        self.in_flight -= tokens
        self._grant()

    def _grant(self) -> None:
        while self._queue:
            tokens, fut = self._queue[0]
            if fut.done():
                self._queue.popleft()
                continue
            if not self._room(tokens):
                return
            self._queue.popleft()
            self._take(tokens)
            fut.set_result(None)
