"""Headless Chromium (the Debian package) driven over the DevTools protocol, for page tests.

Chromium starts with `--remote-debugging-port=0` and prints the websocket address it chose;
this talks to one page target over that websocket (websocket-client): navigate, evaluate
JavaScript, real mouse events at an element's centre, screenshots as PNG bytes.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium_path() -> str | None:
    env = os.environ.get("RECURSA_CHROMIUM")
    if env:
        return env
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        import websocket  # websocket-client (the dev extra)

        path = chromium_path()
        if path is None:
            raise RuntimeError("no chromium on PATH")
        self._profile = tempfile.mkdtemp(prefix="recursa-chromium-")
        args = [
            path,
            "--headless=new",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={self._profile}",
            f"--window-size={width},{height}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ]
        # Chromium refuses its sandbox as root, and containers often lack the user
        # namespaces it needs otherwise; the pages loaded here are the tests' own.
        args.append("--no-sandbox")
        args.append("about:blank")
        # Chromium's log goes to a file: a pipe nobody reads would fill up and stall it.
        self._log = open(os.path.join(self._profile, "chromium.log"), "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._log)
        active = os.path.join(self._profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        endpoint = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with open(active) as fh:
                    lines = fh.read().split()
            except OSError:
                lines = []
            if len(lines) >= 2:
                endpoint = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
                break
            time.sleep(0.05)
        if endpoint is None:
            self._log.seek(0)
            tail = self._log.read()[-2000:]
            self.close()
            raise RuntimeError("chromium did not start: " + tail)
        port = int(endpoint.split(":")[2].split("/")[0])
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        target = next(p for p in pages if p.get("type") == "page")
        self.ws = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self._ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.errors: list[str] = []

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Runtime.exceptionThrown":
                details = msg["params"]["exceptionDetails"]
                self.errors.append(str(details.get("exception", {}).get("description", details)))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        out = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.eval(expression)
            except RuntimeError:  # the page is between documents (a reload)
                value = None
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {expression}")

    def open(
        self, url: str, ready: str = "document.body && document.body.dataset.ready === '1'"
    ) -> float:
        """Navigate and wait until `ready` is true; the seconds it took."""
        start = time.monotonic()
        self.send("Page.navigate", {"url": url})
        self.wait_for(ready, timeout=120)
        return time.monotonic() - start

    def _centre(self, selector: str) -> tuple[float, float]:
        box = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null;"
            " e.scrollIntoView({block: 'nearest'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        if box is None:
            raise LookupError(f"no element matches {selector}")
        return float(box[0]), float(box[1])

    def hover(self, selector: str) -> None:
        x, y = self._centre(selector)
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre."""
        x, y = self._centre(selector)
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    def screenshot(self, full_page: bool = False) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.eval(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)
