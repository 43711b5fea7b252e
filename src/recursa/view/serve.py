"""`recursa view --serve`: the page on 127.0.0.1, rebuilt while a run is still going.

The server answers `/` with the page and `/version` with a signature of the run files (sizes
and modification times of problems.jsonl, the journal and its WAL, the summary). The page
asks for `/version` every two seconds and reloads itself when it changed, keeping what the
reader had open (the filter, the problem, the node: they live in the address's fragment).
The journal is only read (SQLite WAL: the running eval is never blocked).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from recursa.runs.rundir import JOURNAL, METRICS, PROBLEMS, SETTINGS, SUMMARY
from recursa.tasks import Problem
from recursa.view.overview import run_overview
from recursa.view.page import _lineages, render_page, view_title
from recursa.view.runs import load_view_run

_WATCHED = (SETTINGS, PROBLEMS, METRICS, SUMMARY, JOURNAL, JOURNAL + "-wal")


class LiveView:
    """The page of some run directories, rebuilt when their files change."""

    def __init__(self, run_dirs: Sequence[str | Path], problems: Sequence[Problem] | None = None):
        self.run_dirs = [Path(p) for p in run_dirs]
        self._given = problems
        self._problems: dict[Path, list[Problem]] = {}
        self._lock = threading.Lock()
        self._built_for: str | None = None
        self._page = b""

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

    def page(self) -> bytes:
        """The current page (rebuilt only when the files changed since the last one)."""
        with self._lock:
            version = self.version()
            if version != self._built_for:
                runs = []
                for path in self.run_dirs:
                    given = self._given if self._given is not None else self._problems.get(path)
                    run = load_view_run(path, given)
                    if run.problems:  # load the benchmark once, not on every change
                        self._problems[path] = list(run.problems.values())
                    runs.append(run)
                overviews = [run_overview(run, i) for i, run in enumerate(runs)]
                text = render_page(
                    view_title(runs), overviews, _lineages(runs), live=True, version=version
                )
                self._page, self._built_for = text.encode("utf-8"), version
            return self._page


def make_server(view: LiveView, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server for `view` on host:port (port 0: a free port; see `server_address`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", view.page())
                elif path == "/version":
                    self._send(200, "text/plain; charset=utf-8", view.version().encode())
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")
            except Exception as exc:  # the run's files in a state we cannot read yet
                self._send(500, "text/plain; charset=utf-8", f"recursa view: {exc}\n".encode())

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
