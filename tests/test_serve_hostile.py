"""`recursa serve` against hostile clients (the red team's second round): each attack on a
real server process, and what the server must do instead of what it did."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from recursa.cli import main
from tests.async_upstream import Reply, answer, fake_upstream
from tests.conftest import free_port

pytestmark = pytest.mark.reliability

SECRET = "s3cretPassw0rd"


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str, lines: list[str]) -> None:
        self.proc, self.url, self.lines = proc, url, lines

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    @property
    def port(self) -> int:
        return int(self.root.rsplit(":", 1)[1])

    def log(self) -> str:
        time.sleep(0.3)
        return "".join(self.lines)

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "recursa", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: list[str] = []
    started = threading.Event()
    assert proc.stderr is not None
    stderr = proc.stderr

    def pump() -> None:
        for line in stderr:
            lines.append(line)
            if "answers with RSA" in line:
                started.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert started.wait(120), "".join(lines)
        url = re.search(r"(http://\S+/v1) answers with RSA", "".join(lines)).group(1)  # type: ignore[union-attr]
        yield Server(proc, url, lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()


def dead_upstream(userinfo: str = "") -> str:
    return f"http://{userinfo}127.0.0.1:{free_port()}/v1"


def _recv_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return data + b"<open>"
    except ConnectionResetError:  # closed with unread input: a reset, possibly after data
        return data or b"<reset>"
    return data


def test_partial_requests_are_closed_and_connections_capped() -> None:
    with serving(
        "--upstream", dead_upstream(), "--read-timeout", "1", "--max-connections", "40"
    ) as server:
        socks = []
        for _ in range(60):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")
            socks.append(sock)
        # Before: every one stayed open for ever, and 1,100 made the server unreachable.
        answers = [_recv_all(s, 5) for s in socks]
        for s in socks:
            s.close()
        assert all(b"<open>" not in a for a in answers)
        assert sum(a.startswith(b"HTTP/1.1 408") for a in answers) == 40
        # One past the cap is answered 503 and closed at once (the client may see a reset).
        assert sum(a.startswith((b"HTTP/1.1 503", b"<reset>")) for a in answers) == 20
        # A body that trickles is cut off too.
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        )
        assert b"<open>" not in _recv_all(slow, 5)
        slow.close()
        assert httpx.get(server.root + "/health", timeout=10).status_code == 200
        log = server.log()
        # Log lines are rate limited: 60 refusals are not 60 lines.
        assert log.count("closed a connection that sent no whole request") <= 20
        assert log.count("refused a connection") <= 20


def _chat(server: Server, body: dict[str, Any] | bytes, **kw: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        server.url + "/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
        timeout=60,
        **kw,
    )


Q = b'{"messages": [{"role": "user", "content": "q"}]'


def test_costly_and_malformed_requests_are_400s_and_memory_stays_bounded() -> None:
    with serving("--upstream", dead_upstream(), "-n", "4", "-k", "2", "-t", "2") as server:
        base = server.rss_mb()
        question = "x" * (488 * 1024)
        cases = {
            "n-4096": {
                "messages": [{"role": "user", "content": question}],
                "rsa": {"n": 4096, "k": 2, "t": 1},
            },
            "max-tokens-1e15": {
                "messages": [{"role": "user", "content": "q"}],
                "max_tokens": 10**15,
            },
            "k-equals-n": {
                "messages": [{"role": "user", "content": "q"}],
                "rsa": {"n": 64, "k": 64, "t": 2},
            },
        }
        for name, body in cases.items():
            reply = _chat(server, body)
            assert reply.status_code == 400, (name, reply.text)
            assert (
                "limit" in reply.json()["error"]["message"]
                or "K = N" in reply.json()["error"]["message"]
            )
        raw = {
            "5000-digit-int": b'{"messages": [{"role": "user", "content": "q"}], "seed": '
            + b"9" * 5000
            + b"}",
            "infinity": Q + b', "temperature": Infinity}',
            "nan": Q + b', "temperature": NaN}',
            "1e999": Q + b', "temperature": 1e999}',
            "deep": b'{"messages": [{"role": "user", "content": "q"}], "x": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}",
        }
        for name, content in raw.items():
            reply = _chat(server, content)
            assert reply.status_code == 400, (name, reply.status_code, reply.text[:200])
            assert reply.json()["error"]["code"] == "invalid_json"
        # Before: 53 MB to 2 GB for the n=4096 request, and the memory stayed.
        assert server.rss_mb() - base < 150, (base, server.rss_mb())
        assert "Traceback" not in server.log()


def test_work_in_flight_is_capped_with_429_and_retry_after() -> None:
    release = threading.Event()

    async def slow(index: int, body: dict[str, Any]) -> Reply:
        while not release.is_set():
            await asyncio.sleep(0.05)
        return answer("\\boxed{1}")

    with (
        fake_upstream(slow) as upstream,
        serving(
            "--upstream",
            upstream.url,
            "-n",
            "2",
            "-k",
            "1",
            "-t",
            "1",
            "--max-inflight-generations",
            "3",
        ) as server,
    ):
        body = {"messages": [{"role": "user", "content": "q"}]}
        results: list[httpx.Response] = []
        first = threading.Thread(target=lambda: results.append(_chat(server, body)))
        first.start()
        deadline = time.monotonic() + 20
        while upstream.stats.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = _chat(server, body)
        assert busy.status_code == 429 and busy.headers["retry-after"] == "2"
        release.set()
        first.join(60)
        assert results[0].status_code == 200
        assert _chat(server, body).status_code == 200  # room again once it finished


def test_upstream_credentials_are_nowhere() -> None:
    upstream = dead_upstream(f"admin:{SECRET}@")
    with serving("--upstream", upstream, "--max-retries", "0") as server:
        health = httpx.get(server.root + "/health", timeout=10)
        assert health.status_code == 200 and SECRET not in health.text
        assert "[redacted]@127.0.0.1" in health.json()["upstream"]
        reply = _chat(server, {"messages": [{"role": "user", "content": "q"}]})
        assert reply.status_code == 502 and SECRET not in reply.text
        models = httpx.get(server.url + "/models", timeout=30)
        assert models.status_code == 502 and SECRET not in models.text
        log = server.log()
        assert "127.0.0.1" in log and SECRET not in log


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--api-key", ""], {}),
        (["--api-key", "   "], {}),
        ([], {"RECURSA_API_KEY": ""}),
        (["--host", "0.0.0.0"], {}),
    ],
    ids=["empty-flag", "whitespace-flag", "empty-variable", "no-key-off-loopback"],
)
def test_an_empty_key_refuses_to_start(
    args: list[str],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("RECURSA_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Before: --api-key "" started a server that let every client in.
    assert main(["serve", "--upstream", dead_upstream(), "--port", "0", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recursa: error:")
    assert "key" in err[0].lower()


def test_a_key_file_keeps_the_key_off_the_command_line(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("file-key-123456\n")
    with serving("--upstream", dead_upstream(), "--api-key-file", str(key_file)) as server:
        assert b"file-key" not in Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()
        unauthorised = httpx.get(server.url + "/models", timeout=30)
        assert unauthorised.status_code == 401
        models = httpx.get(
            server.url + "/models", headers={"Authorization": "Bearer file-key-123456"}, timeout=30
        )
        assert models.status_code == 502  # authenticated; the upstream is down


def test_solve_and_eval_read_the_key_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-a-file-42\n")

    async def reply(index: int, body: dict[str, Any]) -> Reply:
        return answer("The answer is \\boxed{5}.")

    with fake_upstream(reply) as upstream:
        args = ["-q", "solve", "What is 2 + 3?", "--task", "math", "--backend", "openai"]
        args += ["--base-url", upstream.url, "--api-key-file", str(key_file)]
        args += ["-n", "2", "-k", "1", "-t", "1", "--max-tokens", "16"]
        assert main(args) == 0
        assert {b["_auth"] for b in upstream.stats.received} == {"Bearer sk-from-a-file-42"}
    assert main(["-q", "solve", "q", "--api-key-file", str(tmp_path / "missing")]) == 2
    assert "cannot read the key file" in capsys.readouterr().err
