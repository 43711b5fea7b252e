"""`recursa serve` as a user starts it: a real process, its address, its exit codes."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

import httpx
import pytest

from recursa.cli import main
from tests.async_upstream import Reply, answer, fake_upstream


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Starts `recursa serve` on a free port; returns the process and its base URL."""
    proc, url, _ = start_logged(*args, env=env)
    return proc, url


def start_logged(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str, queue.Queue[str]]:
    """`start`, and the queue of the server's later stderr lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "recursa", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stderr = proc.stderr
    threading.Thread(target=lambda: [lines.put(x) for x in stderr], daemon=True).start()
    while True:
        line = lines.get(timeout=120)
        found = re.search(r"(http://\S+/v1) answers with RSA", line)
        if found:
            return proc, found.group(1), lines


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_answers_on_localhost_and_stops_cleanly_on_ctrl_c() -> None:
    async def boxed(i: int, body: dict[str, Any]) -> Reply:
        return answer("\\boxed{5}")

    with fake_upstream(boxed) as up:
        proc, url = start(
            "--upstream",
            up.url,
            "-n",
            "2",
            "-k",
            "1",
            "-t",
            "2",
            "--task",
            "math",
            env={"RECURSA_API_KEY": "k1", "OPENAI_API_KEY": "upstream-key"},
        )
        try:
            assert url.startswith("http://127.0.0.1:")
            health = httpx.get(url.removesuffix("/v1") + "/health", timeout=30)
            assert health.json()["model"] == "fake-model"
            body = {"messages": [{"role": "user", "content": "2+3?"}]}
            assert httpx.post(f"{url}/chat/completions", json=body, timeout=60).status_code == 401
            reply = httpx.post(
                f"{url}/chat/completions",
                json=body,
                headers={"Authorization": "Bearer k1"},
                timeout=60,
            )
            assert reply.status_code == 200 and reply.json()["rsa"]["answer"] == "5"
            assert reply.json()["rsa"]["config"]["n"] == 2
            assert {r["_auth"] for r in up.stats.received} == {"Bearer upstream-key"}
        finally:
            code = stop(proc)
    assert code == 0


def test_a_busy_port_and_a_missing_upstream_are_one_sentence_errors() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "recursa",
                "serve",
                "--upstream",
                "http://127.0.0.1:9/v1",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"recursa: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    missing = subprocess.run(
        [sys.executable, "-m", "recursa", "serve"], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2 and "needs --upstream URL" in missing.stderr
    assert "Traceback" not in missing.stderr + run.stderr


def test_without_the_serve_extra_the_error_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    assert main(["serve", "--upstream", "http://127.0.0.1:9/v1", "--port", "0"]) == 2
    assert "pip install 'recursa[serve]'" in capsys.readouterr().err


def test_serve_help_lists_the_server_upstream_and_rsa_flags() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "recursa", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0
    for flag in ["--upstream", "--upstream-api-key", "--api-key", "--max-body-bytes", "-n N"]:
        assert flag in run.stdout
    assert "GGUF" not in run.stdout  # the upstream flags describe the proxy, not llama.cpp


def test_sigterm_stops_gracefully_with_exit_0_and_cors_origins_are_allowed() -> None:
    async def boxed(i: int, body: dict[str, Any]) -> Reply:
        return answer("\\boxed{5}")

    with fake_upstream(boxed) as up:
        proc, url, lines = start_logged(
            "--upstream",
            up.url,
            "--cors-origin",
            "https://a.test",
            "--cors-origin",
            "https://b.test",
        )
        try:
            preflight = httpx.options(
                f"{url}/chat/completions",
                headers={"Origin": "https://b.test", "Access-Control-Request-Method": "POST"},
                timeout=30,
            )
            assert preflight.headers["access-control-allow-origin"] == "https://b.test"
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    log = []
    while not lines.empty():
        log.append(lines.get())
    text = "".join(log)
    assert code == 0
    assert "recursa serve: stopped (SIGTERM)" in text and "Traceback" not in text
