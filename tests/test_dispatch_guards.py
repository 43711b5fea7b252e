"""The shared dispatch layer and the context policy, checked against exact expectations:
which statuses are retried, the Retry-After cap, back-off growth, and the water-filled
allocation of the context budget."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recursa import Dispatcher, GenerationRequest
from recursa.backends.base import Backend, Completion, RetryableError
from recursa.backends.openai import OpenAIBackend
from recursa.context import TRUNCATION_MARKER, fit_candidates
from recursa.errors import BackendError

REPLY = {
    "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}


class StatusServer:
    """An HTTP/1.1 server answering the first `failures` requests with `status`, then 200."""

    def __init__(self, status: int, failures: int, headers: dict[str, str] | None = None):
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.requests += 1
                fail = outer.requests <= failures
                body = json.dumps(
                    {"error": {"message": f"status {status}"}} if fail else REPLY
                ).encode()
                self.send_response(status if fail else 200)
                for k, v in (headers or {}).items() if fail else ():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory() -> Iterator:
    servers: list[StatusServer] = []

    def make(status: int, failures: int, headers: dict[str, str] | None = None) -> StatusServer:
        servers.append(StatusServer(status, failures, headers))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def send(url: str, max_retries: int = 3) -> tuple[str | Exception, list[float]]:
    """One request through a dispatcher whose sleeps are recorded instead of slept."""
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    async def go() -> str | Exception:
        backend = OpenAIBackend(url, model="m")
        dispatcher = Dispatcher(backend, max_retries=max_retries, sleep=fake_sleep)
        try:
            req = GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            return (await dispatcher.generate(req)).text
        except BackendError as exc:
            return exc
        finally:
            await backend.aclose()

    return asyncio.run(go()), delays


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(server_factory, status: int) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(status, failures=10)
    result, delays = send(server.url)
    assert isinstance(result, BackendError) and f"HTTP {status}" in str(result)
    assert server.requests == 1 and delays == []


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(server_factory, status: int) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(status, failures=2)
    result, delays = send(server.url)
    assert result == "ok"
    assert server.requests == 3 and len(delays) == 2


def test_retry_after_is_honoured_up_to_four_times_the_cap(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(429, failures=1, headers={"Retry-After": "7"})
    _, delays = send(server.url)
    assert delays == [7.0]
    server = server_factory(503, failures=1, headers={"Retry-After": "100000"})
    _, delays = send(server.url)
    assert delays == [30.0 * 4]  # the default cap is 30 s


class Flaky(Backend):
    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, request: GenerationRequest) -> Completion:
        self.calls += 1
        raise RetryableError("down")


def test_back_off_is_jittered_below_a_doubling_cap_and_spends_exactly_the_budget() -> None:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    backend = Flaky()
    dispatcher = Dispatcher(backend, max_retries=6, base_delay=0.5, max_delay=4.0, sleep=fake_sleep)
    req = GenerationRequest(messages=[{"role": "user", "content": "x"}], max_tokens=1)
    with pytest.raises(BackendError, match="after 7 attempts"):
        asyncio.run(dispatcher.generate(req))
    assert backend.calls == 7 and len(delays) == 6
    caps = [min(4.0, 0.5 * 2**a) for a in range(6)]  # 0.5, 1, 2, 4, 4, 4
    assert all(0.0 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert max(delays) > 1.0  # the cap grows: not every delay stays under the base


# -- water-filling ------------------------------------------------------------------------


def words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def count(text: str) -> int:
    return len(text.split())


def test_water_filling_gives_short_candidates_all_and_splits_the_rest_equally() -> None:
    # context 1000, max_tokens 200 -> reserve 200; overhead 100 -> budget 700 for candidates.
    sizes = [50, 400, 600, 100]
    cands = [words(s, f"c{i}_") for i, s in enumerate(sizes)]
    fitted = fit_candidates(cands, 100, 1000, 200, count)
    # 50 and 100 fit whole; the other two share 700 - 150 = 550 equally: 275 each.
    assert fitted.candidates[0] == cands[0] and fitted.candidates[3] == cands[3]
    assert fitted.truncated == 2
    marker = count(TRUNCATION_MARKER)
    for i in (1, 2):
        kept = fitted.candidates[i]
        assert kept.startswith(TRUNCATION_MARKER)
        body = kept[len(TRUNCATION_MARKER) :].split()
        assert len(body) <= 275 and len(body) + marker >= 275 - 2
        assert body[-1] == f"c{i}_{sizes[i] - 1}"  # the end (the answer) is kept
    used = 100 + sum(count(c) for c in fitted.candidates)
    assert used <= 1000 - 200
    assert fitted.max_tokens == min(200, 1000 - used)


def test_candidates_that_fit_are_untouched_and_max_tokens_is_what_is_left() -> None:
    cands = [words(100), words(150)]
    fitted = fit_candidates(cands, 50, 1000, 900, count)
    assert fitted.candidates == cands and fitted.truncated == 0
    # reserve = min(900, 500) = 500, so 500 prompt tokens fit; 300 used, 700 left.
    assert fitted.max_tokens == 700
