"""A fault-injecting OpenAI-compatible server on 127.0.0.1, in front of a scripted upstream.

The upstream is a function of the request body (so its outputs are deterministic per request:
the same seed and messages always get the same completion). A fault plan decides, for the
n-th attempt at a request (requests are told apart by their seed and messages), whether the
attempt gets the upstream's answer or one of the faults in `FAULTS`.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from recursa.backends.base import GenerationRequest
from recursa.backends.mock import MockBackend
from tests.fake_server import MODELS, chat_body, send_json

#: Transient faults: each must be retried, and the retry gets the upstream's answer.
RETRYABLE = (
    "429",
    "429-retry-after",
    "500",
    "502",
    "503",
    "reset",
    "hang",
    "malformed-json",
    "bad-utf8",
    "no-choices",
)
#: Answers that are accepted as they are (docs/RELIABILITY.md): usage is estimated, and an
#: empty completion is a candidate without an answer.
ACCEPTED = ("no-usage", "empty", "surrogates")
#: Answers that end the run at once: a wrong key, a completion far beyond max_tokens.
FATAL = ("401", "huge")
#: Errors whose body repeats the Authorization header the server received.
ECHO = ("500-echo", "400-echo")
FAULTS = RETRYABLE + ACCEPTED + FATAL + ECHO

Upstream = Callable[[dict[str, Any]], dict[str, Any]]
#: (request fingerprint, attempt number from 0) -> a fault name, or None for the real answer.
Plan = Callable[[str, int], str | None]


def fingerprint(body: dict[str, Any]) -> str:
    """Tells requests apart: what decides the upstream's answer (seed and messages)."""
    key = json.dumps([body.get("seed"), body.get("messages")], sort_keys=True)
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def fraction(fp: str, salt: str) -> float:
    """A number in [0, 1) fixed by the fingerprint (for deterministic fault plans)."""
    digest = hashlib.blake2b(f"{salt}/{fp}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def mixed_plan(share: float, kinds: tuple[str, ...] = RETRYABLE) -> Plan:
    """Faults `share` of the requests: the first attempt (and for a third of them the second
    too) gets a fault of a kind chosen by the fingerprint; later attempts succeed."""

    def plan(fp: str, attempt: int) -> str | None:
        if fraction(fp, "faulted") >= share:
            return None
        repeats = 2 if fraction(fp, "repeats") < 1 / 3 else 1
        if attempt >= repeats:
            return None
        pick = int(fraction(fp, f"kind{attempt}") * len(kinds))
        return kinds[pick]

    return plan


def always(kind: str | None) -> Plan:
    return lambda fp, attempt: kind


_SUM = re.compile(r"What is (\d+) \+ (\d+)\?")


class SumModel(MockBackend):
    """The mock's simulated model for "What is A + B?" questions, with A + B as the truth
    (an HTTP request carries no reference answer)."""

    def truth(self, request: GenerationRequest) -> str:
        match = _SUM.search(request.messages[-1]["content"])
        return str(int(match.group(1)) + int(match.group(2))) if match else "0"


def sum_upstream(accuracy: float = 0.4, quality: float = 0.7) -> Upstream:
    """A deterministic upstream: SumModel's completion for the request's seed and messages,
    with usage counted in words (as the mock backend counts)."""
    model = SumModel(accuracy=accuracy, quality=quality)

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        request = GenerationRequest(
            messages=body["messages"],
            max_tokens=int(body.get("max_tokens") or 64),
            temperature=float(body.get("temperature") or 0.0),
            seed=body.get("seed"),
        )
        text = model.simulate(request)
        return chat_body(
            text,
            prompt_tokens=model.count_tokens(request.prompt_text()),
            completion_tokens=model.count_tokens(text),
        )

    return answer


@dataclass
class Stats:
    """What the server did; written by handler threads under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: Counter[str] = field(default_factory=Counter)
    #: Fingerprints whose real answer was sent whole, in order.
    delivered: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    #: (fingerprint, time) of every attempt, to check back-off and Retry-After.
    timeline: list[tuple[str, float, str | None]] = field(default_factory=list)
    auth: set[str | None] = field(default_factory=set)


class FaultServer:
    """The server; `plan` may be replaced while it runs (e.g. to take it down and up)."""

    def __init__(
        self, upstream: Upstream, plan: Plan, hang_s: float = 30.0, retry_after: str = "1"
    ) -> None:
        self.upstream = upstream
        self.plan = plan
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.stats = Stats()
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.endswith("/models"):
                    send_json(self, 200, MODELS)
                else:
                    send_json(self, 404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fp = fingerprint(body)
                with server.stats.lock:
                    attempt = server.stats.attempts[fp]
                    server.stats.attempts[fp] += 1
                    fault = server.plan(fp, attempt)
                    server.stats.timeline.append((fp, time.monotonic(), fault))
                    server.stats.auth.add(self.headers.get("Authorization"))
                    if fault is not None:
                        server.stats.faults[fault] += 1
                server.respond(self, body, fp, fault)

        return Handler

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        payload: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def respond(
        self, h: BaseHTTPRequestHandler, body: dict[str, Any], fp: str, fault: str | None
    ) -> None:
        def error(status: int, message: str) -> bytes:
            return json.dumps({"error": {"message": message, "type": "fault"}}).encode()

        if fault == "hang":  # never answer; the client's timeout must fire
            self.stopping.wait(self.hang_s)
            h.close_connection = True
            return
        if fault in ("429", "429-retry-after"):
            extra = {"Retry-After": self.retry_after} if fault == "429-retry-after" else {}
            self._send(h, 429, error(429, "rate limited"), extra)
            return
        if fault in ("500", "502", "503"):
            self._send(h, int(fault), error(int(fault), f"injected {fault}"))
            return
        if fault in ECHO:
            status = int(fault[:3])
            said = f"invalid request with Authorization: {h.headers.get('Authorization')}"
            self._send(h, status, error(status, said))
            return
        if fault == "401":
            self._send(h, 401, error(401, f"bad key {h.headers.get('Authorization')}"))
            return
        if fault == "malformed-json":
            self._send(h, 200, b'{"choices": [{"message": {"content": "cut sh')
            return
        if fault == "bad-utf8":
            text = b"\xff\xfe not utf-8 \xc3"
            self._send(h, 200, b'{"choices": [{"message": {"content": "' + text + b'"}}]}')
            return
        if fault == "no-choices":
            self._send(h, 200, json.dumps({"id": "x", "object": "chat.completion"}).encode())
            return
        reply = self.upstream(body)
        if fault == "no-usage":
            reply.pop("usage", None)
        elif fault == "empty":
            reply["choices"][0]["message"]["content"] = ""
            reply["usage"]["completion_tokens"] = 0
        elif fault == "surrogates":  # lone surrogate escapes: valid JSON, invalid Unicode
            message = reply["choices"][0]["message"]
            message["content"] = "\ud800 broken \udfff " + message["content"]
        elif fault == "huge":
            reply["choices"][0]["message"]["content"] = "x" * (10 << 20)
        payload = json.dumps(reply).encode()
        if fault == "reset":  # half the body, then a TCP reset
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload[: len(payload) // 2])
            h.wfile.flush()
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
            return
        self._send(h, 200, payload)
        with self.stats.lock:
            self.stats.delivered.append(fp)


@contextmanager
def fault_server(upstream: Upstream, plan: Plan, **kwargs: Any) -> Iterator[FaultServer]:
    server = FaultServer(upstream, plan, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sum_dataset(path: Any, count: int, seed: int = 0) -> None:
    """A local benchmark file of `count` "What is A + B?" math problems."""
    import random

    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(count):
            a, b = rng.randrange(10, 90), rng.randrange(10, 90)
            row = {"id": f"sum-{i}", "question": f"What is {a} + {b}?", "answer": str(a + b)}
            fh.write(json.dumps(row) + "\n")
