"""The proxy's defences against hostile or careless clients (docs/SERVE.md, "Limits"):

- connections: uvicorn's h11 protocol with a deadline for reading each request (headers and
  body; a partial request is answered 408 and closed) and a cap on open connections (one
  past it is answered 503 and closed at once); idle keep-alive connections close after
  uvicorn's `timeout_keep_alive`;
- cost per request: N x T generations, the work bytes N x (prompt + K x max_tokens x 4),
  `max_tokens` itself, and K = N (only when the server allows it) are checked before any
  upstream request;
- work in flight: the generations and work bytes of all running requests together are
  capped; a request that does not fit is answered 429 with `Retry-After`;
- log lines: at most a burst per message template per window; the rest are counted and
  summarised, so a flood of bad connections cannot fill the disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from recursa.config import RSAConfig
from recursa.serve.errors import APIError, bad_request
from recursa.serve.redact import RedactingFilter

log = logging.getLogger("recursa.serve")

#: Bytes per token assumed when sizing aggregation prompts (text is ~3-4 bytes a token).
BYTES_PER_TOKEN = 4
_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "recursa", "recursa.serve", "")


# -- connections ---------------------------------------------------------------------------


def guarded_protocol(read_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a request read deadline and a connection cap."""

    class GuardedH11Protocol(H11Protocol):
        _read_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= max_connections:
                log.warning("refused a connection: %d connections are open", max_connections)
                transport.write(_raw_response(503, "too many connections; try again later"))
                transport.close()
                self.transport = transport
                self.refused = True
                return
            self.refused = False
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if getattr(self, "refused", False):
                return
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if getattr(self, "refused", False):
                return
            if self._read_timer is None and self.conn.their_state is h11.IDLE:
                self._arm()  # a new request on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE and self.conn.their_state is not (
                h11.SEND_BODY
            ):
                self._disarm()  # the whole request has arrived (or the connection ends)

        def _arm(self) -> None:
            self._disarm()
            self._read_timer = self.loop.call_later(read_timeout, self._read_timed_out)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if self.transport.is_closing():
                return
            state = self.conn.their_state
            if state is h11.IDLE and self.conn.our_state is h11.IDLE:
                log.warning("closed a connection that sent no whole request in %g s", read_timeout)
                self.transport.write(
                    _raw_response(408, f"the request was not received within {read_timeout:g} s")
                )
                self.transport.close()
            elif state is h11.SEND_BODY:
                log.warning("closed a connection whose body took over %g s", read_timeout)
                self.transport.close()

    return GuardedH11Protocol


def _raw_response(status: int, message: str) -> bytes:
    reason = {408: "Request Timeout", 503: "Service Unavailable"}[status]
    error = {"message": message, "type": "invalid_request_error", "code": None, "param": None}
    body = json.dumps({"error": error}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    return head + body


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """The uvicorn.Config keywords that put these limits in place."""
    return {
        "http": guarded_protocol(settings.read_timeout, settings.max_connections),
        "timeout_keep_alive": max(1, int(settings.keepalive_timeout)),
        # h11's default: a request line plus headers over 16 KiB is a 400.
        "h11_max_incomplete_event_size": 16 * 1024,
    }


# -- logs ----------------------------------------------------------------------------------


class RateLimitFilter(logging.Filter):
    """At most `burst` records per message template per `window` seconds; the rest are
    dropped and counted, and the next record let through says how many were."""

    def __init__(self, burst: int = 20, window: float = 10.0) -> None:
        super().__init__()
        self.burst, self.window = burst, window
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], list[float]] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 1000:  # bounded memory whatever the templates
                self._seen.clear()
            stamps = [t for t in self._seen.get(key, []) if now - t < self.window]
            if len(stamps) >= self.burst:
                self._dropped[key] = self._dropped.get(key, 0) + 1
                self._seen[key] = stamps
                return False
            stamps.append(now)
            self._seen[key] = stamps
            dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} similar lines suppressed)"
            record.args = None
        return True


_installed: list[logging.Handler] = []


def install_log_filters(burst: int = 20, window: float = 10.0) -> None:
    """Put the rate limit and the secret redaction on every handler the server logs to."""
    limit, redact = RateLimitFilter(burst, window), RedactingFilter()
    for name in _LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if handler not in _installed:
                handler.addFilter(redact)
                handler.addFilter(limit)
                _installed.append(handler)


# -- cost ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    generations: int
    work_bytes: int


def request_cost(config: RSAConfig, prompt_bytes: int) -> Cost:
    """What one request asks of the upstream: N x T generations, and the bytes of one
    step's prompts, N x (the prompt + K candidates of up to max_tokens each)."""
    aggregated = config.k * config.max_tokens * BYTES_PER_TOKEN if config.t > 1 else 0
    return Cost(config.n * config.t, config.n * (prompt_bytes + aggregated))


def check_request(config: RSAConfig, defaults: RSAConfig, prompt_bytes: int, settings: Any) -> Cost:
    """A 400 naming the limit when one request asks for more than this server allows."""
    if config.max_tokens > settings.max_tokens_limit:
        raise bad_request(
            f"max_tokens {config.max_tokens} exceeds this server's limit of "
            f"{settings.max_tokens_limit} per generation",
            param="max_tokens",
        )
    if (
        config.n > 1
        and config.k >= config.n
        and not settings.allow_k_equals_n
        and (config.k, config.n) != (defaults.k, defaults.n)
    ):
        raise bad_request(
            f"K = N = {config.n}: every aggregation prompt would hold the whole population; "
            "this server needs K < N (start it with --allow-k-equals-n to allow K = N)",
            param="rsa.k",
        )
    cost = request_cost(config, prompt_bytes)
    if cost.work_bytes > settings.max_request_bytes:
        raise bad_request(
            f"this request's prompts would total about {cost.work_bytes:,} bytes per step "
            f"(N = {config.n} x ({prompt_bytes:,} bytes of prompt + K = {config.k} x "
            f"max_tokens {config.max_tokens} x {BYTES_PER_TOKEN})), over this server's limit "
            f"of {settings.max_request_bytes:,}",
            param="rsa",
        )
    return cost


class Admission:
    """The global cap on work in flight: generations and work bytes of running requests."""

    def __init__(self, max_generations: int, max_bytes: int, retry_after: int = 2) -> None:
        self.max_generations, self.max_bytes = max_generations, max_bytes
        self.retry_after = retry_after
        self.generations = 0
        self.work_bytes = 0

    def admit(self, cost: Cost) -> Ticket:
        """Take room for a request, or answer 429 with Retry-After when there is none."""
        if self.generations and (
            self.generations + cost.generations > self.max_generations
            or self.work_bytes + cost.work_bytes > self.max_bytes
        ):
            raise APIError(
                429,
                f"the server is at its limit of work in flight ({self.generations} "
                f"generations running); retry after {self.retry_after} s",
                type="rate_limit_error",
                code="server_busy",
                headers={"Retry-After": str(self.retry_after)},
            )
        self.generations += cost.generations
        self.work_bytes += cost.work_bytes
        return Ticket(self, cost)


class Ticket:
    """Room held for one request; `release` (idempotent) gives it back."""

    def __init__(self, admission: Admission, cost: Cost) -> None:
        self._admission, self._cost, self._held = admission, cost, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission.generations -= self._cost.generations
            self._admission.work_bytes -= self._cost.work_bytes


def admit(job: Any, chat: Any, defaults: RSAConfig, settings: Any, admission: Admission) -> None:
    """Check a prepared job's cost (400) and take room for it (429); the room is given back
    when its run ends, or, for a run that never starts, when the job is dropped."""
    prompt_bytes = sum(len(m.text().encode("utf-8", "replace")) for m in chat.messages)
    ticket = admission.admit(check_request(job.config, defaults, prompt_bytes, settings))
    run = job.run
    weakref.finalize(job, ticket.release)

    async def releasing(on_step: Any = None) -> Any:
        try:
            return await run(on_step)
        finally:
            ticket.release()

    job.run = releasing
