"""`recursa view --serve`: the page on 127.0.0.1, rebuilt while a run is still going.

The server answers `/` with the page (the overview inline), `/lineage?run=R&i=I` with one
problem's lineage (built when asked), `/overview` with the overview's data and `/version`
with a signature of the run files (sizes and modification times of problems.jsonl, the
journal and its WAL, the summary). The page asks for `/version` every two seconds; when it
changed, it takes the new overview and re-draws in place, keeping what the reader had open
(the filter, the sort, the problem, the node).
The journal is only read (SQLite WAL: the running eval is never blocked).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from recursa.runs.rundir import JOURNAL, METRICS, PROBLEMS, SETTINGS, SUMMARY
from recursa.tasks import Problem
from recursa.view.overview import run_overview
from recursa.view.page import render_page, view_title
from recursa.view.runs import RunLineages, ViewRun, load_view_run

_WATCHED = (SETTINGS, PROBLEMS, METRICS, SUMMARY, JOURNAL, JOURNAL + "-wal")


class LiveView:
    """The page of some run directories, re-read when their files change. The served page
    holds the overview only; each problem's lineage is built when the page asks for it."""

    def __init__(self, run_dirs: Sequence[str | Path], problems: Sequence[Problem] | None = None):
        self.run_dirs = [Path(p) for p in run_dirs]
        self._given = problems
        self._problems: dict[Path, list[Problem]] = {}
        self._lock = threading.Lock()
        self._built_for: str | None = None
        self._runs: list[ViewRun] = []
        self._builders: list[RunLineages] = []
        self._overview: dict[str, Any] = {}

    def version(self) -> str:
        parts = []
        for run_dir in self.run_dirs:
            for name in _WATCHED:
                try:
                    st = (run_dir / name).stat()
                    parts.append(f"{st.st_size}.{st.st_mtime_ns}")
                except OSError:
                    parts.append("-")
        return ":".join(parts)

    def _current(self) -> None:
        """Re-read the runs when their files changed since the last read (under the lock)."""
        version = self.version()
        if version == self._built_for:
            return
        runs = []
        for path in self.run_dirs:
            given = self._given if self._given is not None else self._problems.get(path)
            run = load_view_run(path, given)
            if run.problems:  # load the benchmark once, not on every change
                self._problems[path] = list(run.problems.values())
            runs.append(run)
        for builder in self._builders:
            builder.close()
        self._runs = runs
        self._builders = [RunLineages(run) for run in runs]
        self._overview = {
            "title": view_title(runs),
            "runs": [run_overview(run, i) for i, run in enumerate(runs)],
            "version": version,
        }
        self._built_for = version

    def overview(self) -> dict[str, Any]:
        with self._lock:
            self._current()
            return self._overview

    def page(self) -> bytes:
        """The page (styles, scripts and the overview inline; lineages on request)."""
        with self._lock:
            self._current()
            ov = self._overview
            text = render_page(ov["title"], ov["runs"], [], live=True, version=ov["version"])
            return text.encode("utf-8")

    def lineage(self, run: int, index: int) -> dict[str, Any] | None:
        """One problem's lineage (None when there is no such run or problem)."""
        with self._lock:
            self._current()
            if not 0 <= run < len(self._runs) or not 0 <= index < len(self._runs[run].order):
                return None
            return self._builders[run].lineage(self._runs[run].order[index])

    def close(self) -> None:
        for builder in self._builders:
            builder.close()


def make_server(view: LiveView, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server for `view` on host:port (port 0: a free port; see `server_address`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            path = url.path
            try:
                if path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", view.page())
                elif path == "/version":
                    self._send(200, "text/plain; charset=utf-8", view.version().encode())
                elif path == "/overview":
                    self._json(view.overview())
                elif path == "/lineage":
                    query = parse_qs(url.query)
                    try:
                        run, index = int(query["run"][0]), int(query["i"][0])
                    except (KeyError, ValueError):
                        self._send(400, "text/plain; charset=utf-8", b"want ?run=R&i=I\n")
                        return
                    data = view.lineage(run, index)
                    if data is None:
                        self._send(404, "text/plain; charset=utf-8", b"no such problem\n")
                    else:
                        self._json(data)
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")
            except Exception as exc:  # the run's files in a state we cannot read yet
                self._send(500, "text/plain; charset=utf-8", f"recursa view: {exc}\n".encode())

        def _json(self, data: dict[str, Any]) -> None:
            body = json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
            self._send(200, "application/json", body)

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # quiet: the terminal shows the address, not every poll

    return ThreadingHTTPServer((host, port), Handler)


def serve(
    run_dirs: Sequence[str | Path],
    *,
    port: int = 0,
    problems: Sequence[Problem] | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the live page until interrupted; `ready` gets the address once listening."""
    view = LiveView(run_dirs, problems)
    view.page()  # fail now, with the error, rather than on the first request
    server = make_server(view, port)
    host, bound = server.server_address[:2]
    if ready is not None:
        ready(f"http://{host!s}:{bound}/")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        view.close()
