"""`recursa view RUN_DIR [RUN_DIR ...]`: the population of runs as one HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from recursa.errors import UsageError

DEFAULT_PAGE = "recursa-view.html"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "view",
        help="see how populations evolve, in the browser",
        description="Write one self-contained HTML page (no network needed) showing runs of "
        "recursa eval: accuracy by step and by tokens, the settings, a sortable, filterable "
        "table of problems, and per problem the population's lineage (which candidates each "
        "one aggregated, answer clusters, grades, texts and the exact prompts). Several "
        "RUN_DIRs are compared side by side. --serve serves the page on 127.0.0.1 instead, "
        "refreshing while a run is still going.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="directories of recursa eval")
    p.add_argument(
        "--out",
        metavar="PAGE",
        default=None,
        help=f"the HTML file to write (default: RUN_DIR/{DEFAULT_PAGE} for one run, else "
        f"./{DEFAULT_PAGE})",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="serve the page on 127.0.0.1 and refresh it while the runs change (Ctrl-C stops)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=0,
        help="with --serve: the port (0 picks a free one and prints it)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from recursa.view import serve, write_view

    if args.port and not args.serve:
        raise UsageError("--port is for --serve; add --serve or drop --port")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a port number (0-65535)")
    if args.serve:
        if args.out:
            raise UsageError("--out writes a file and --serve serves the page; choose one")

        def ready(url: str) -> None:
            print(f"recursa view: serving {url} (Ctrl-C stops)", flush=True)

        try:
            serve(args.run_dirs, port=args.port, ready=ready)
        except OSError as exc:
            if args.port:
                raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc}") from exc
            raise
        return 0
    if args.out:
        out = Path(args.out)
    elif len(args.run_dirs) == 1:
        out = Path(args.run_dirs[0]) / DEFAULT_PAGE
    else:
        out = Path(DEFAULT_PAGE)
    path = write_view(args.run_dirs, out)
    print(f"wrote {path}", file=sys.stderr)
    print(path.resolve())
    return 0
