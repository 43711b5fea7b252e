"""Starts the real proxy (uvicorn on 127.0.0.1, a free port) in a thread for a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from recursa.config import BackendConfig, RSAConfig
from recursa.serve import ServeSettings, create_app
from tests.helpers.ports import free_port


@contextmanager
def running_proxy(
    upstream: str,
    rsa: dict[str, Any] | None = None,
    backend: dict[str, Any] | None = None,
    **settings: Any,
) -> Iterator[str]:
    """Yields the proxy's base URL (ending in /v1)."""
    app = create_app(
        ServeSettings(upstream=upstream, **settings),
        RSAConfig(**(rsa or {})),
        BackendConfig(backend="openai", **(backend or {})),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the proxy did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(30)
