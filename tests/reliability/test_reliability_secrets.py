"""API keys never leave the process except in the Authorization header they are meant for:
not in logs, run directories (settings, journal, reports), error messages or printed output,
whether given with --api-key or OPENAI_API_KEY, and even when a server repeats the key in its
error bodies. The proxy never forwards a client's own key upstream."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from recursa import BackendError, UsageError, evaluate
from recursa.config import build_configs
from tests.helpers.async_upstream import Reply, answer, fake_upstream
from tests.helpers.fault_server import always, fault_server, sum_dataset, sum_upstream
from tests.helpers.proxy_harness import running_proxy

pytestmark = pytest.mark.reliability

KEY = "sk-secret-7f3a9c1e5b2d4068"
SMALL = ["-n", "2", "-k", "2", "-t", "2", "--max-tokens", "64", "--model", "scripted"]


def recursa(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recursa", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def files_holding(run_dir: Path, secret: str) -> list[str]:
    """Every file under the run directory (journal and its WAL included) holding the key."""
    found = []
    for path in run_dir.rglob("*"):
        if path.is_file() and secret.encode() in path.read_bytes():
            found.append(path.name)
    return found


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sums.jsonl"
    sum_dataset(path, 3)
    return path


@pytest.mark.parametrize("how", ["--api-key", "OPENAI_API_KEY"])
def test_a_run_leaves_the_key_nowhere(how: str, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with fault_server(sum_upstream(), always(None)) as server:
        args = ["eval", str(data), "--out", str(out), "--backend", "openai"]
        args += ["--base-url", server.url, *SMALL]
        if how == "--api-key":
            proc = recursa(*args, "--api-key", KEY)
        else:
            proc = recursa(*args, env={"OPENAI_API_KEY": KEY})
        report = recursa("report", str(out), "--out", str(tmp_path / "plots"))
    assert proc.returncode == 0, proc.stderr
    assert server.stats.auth == {f"Bearer {KEY}"}  # the key was used, where it belongs
    assert {p.name for p in out.iterdir()} >= {"settings.json", "journal.sqlite", "report.md"}
    assert files_holding(out, KEY) == []
    assert files_holding(tmp_path / "plots", KEY) == []
    for stream in (proc.stdout, proc.stderr, report.stdout, report.stderr):
        assert KEY not in stream


@pytest.mark.parametrize("how", ["--api-key", "OPENAI_API_KEY"])
@pytest.mark.parametrize("fault", ["500-echo", "400-echo", "401"])
def test_a_failing_server_that_repeats_the_key_gets_it_redacted(
    how: str, fault: str, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with fault_server(sum_upstream(), always(fault)) as server:
        args = ["-q", "eval", str(data), "--out", str(out), "--backend", "openai"]
        args += ["--base-url", server.url, *SMALL, "--max-retries", "1"]
        args += ["--retry-base-delay", "0"]
        if how == "--api-key":
            proc = recursa(*args, "--api-key", KEY)
        else:
            proc = recursa(*args, env={"OPENAI_API_KEY": KEY})
    assert proc.returncode == 1
    assert server.stats.auth == {f"Bearer {KEY}"}
    assert KEY not in proc.stderr and KEY not in proc.stdout
    if fault != "401":  # the server's own words are kept, the key is not
        assert "invalid request with Authorization: Bearer [API key]" in proc.stderr
    assert files_holding(out, KEY) == []


def test_solve_output_and_debug_logs_hold_no_key(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, data: Path
) -> None:
    with fault_server(sum_upstream(), always(None)) as server:
        proc = recursa(
            "solve",
            "What is 2 + 3?",
            "--task",
            "math",
            "--backend",
            "openai",
            "--base-url",
            server.url,
            "--api-key",
            KEY,
            *SMALL,
            "--json",
            "--show-population",
        )
        with caplog.at_level(logging.DEBUG):  # every library's debug logs, httpx's included
            evaluate(
                str(data),
                out=tmp_path / "run",
                backend="openai",
                base_url=server.url,
                api_key=KEY,
                n=2,
                k=2,
                t=2,
                max_tokens=64,
            )
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    assert '"api_key"' not in proc.stdout  # the printed config leaves the field out
    assert caplog.records and KEY not in caplog.text
    with (
        fault_server(sum_upstream(), always("500-echo")) as server,
        pytest.raises(BackendError) as info,
    ):
        evaluate(
            str(data),
            out=tmp_path / "failed",
            backend="openai",
            base_url=server.url,
            api_key=KEY,
            n=2,
            k=2,
            t=2,
            max_retries=0,
        )
    assert KEY not in str(info.value) and "[API key]" in str(info.value)


def test_an_invalid_key_setting_is_not_echoed() -> None:
    with pytest.raises(UsageError) as info:
        build_configs({"api_key": 7350912284})
    assert "7350912284" not in str(info.value) and "api_key" in str(info.value)


async def boxed_5(i: int, body: dict[str, Any]) -> Reply:
    return answer("so \\boxed{5}")


@pytest.mark.parametrize("proxy_key", [None, "proxy-secret"])
def test_the_proxy_never_forwards_the_clients_key(
    proxy_key: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no upstream key configured, the upstream sees no key at all: not the client's."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client_key = proxy_key or KEY
    with (
        fake_upstream(boxed_5) as up,
        running_proxy(
            up.url, rsa={"n": 2, "k": 1, "t": 2, "task": "math"}, api_key=proxy_key
        ) as url,
    ):
        reply = httpx.post(
            f"{url}/chat/completions",
            json={"messages": [{"role": "user", "content": "2+3?"}]},
            headers={"Authorization": f"Bearer {client_key}"},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        assert KEY not in reply.text and "proxy-secret" not in reply.text
    assert len(up.stats.received) == 4
    assert {r["_auth"] for r in up.stats.received} == {None}
    assert all(client_key not in str(r) for r in up.stats.received)
