"""`recursa report RUN_DIR [RUN_DIR ...]`: per-step tables and PNG plots comparing runs."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from recursa.runs.report import comparison_table, load_run, write_plots


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="tables and plots of finished runs",
        description="Print a Markdown table per run (per step: mean accuracy, majority "
        "accuracy, pass@N, tokens) and write accuracy_vs_step.png and accuracy_vs_tokens.png "
        "with one line per run. To see the populations themselves (lineages, texts, prompts), "
        "use 'recursa view RUN_DIR ...'.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="directories of recursa eval")
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="where to write the plots (default: the RUN_DIR when one is given, else "
        "./recursa-report)",
    )
    p.add_argument("--no-plots", action="store_true", help="print the tables only")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    runs = [load_run(path) for path in args.run_dirs]
    print(comparison_table(runs))
    hint = "recursa view " + " ".join(shlex.quote(str(p)) for p in args.run_dirs)
    print(f"see how the populations evolved, in the browser: {hint}", file=sys.stderr)
    if args.no_plots:
        return 0
    out = (
        Path(args.out) if args.out else (runs[0].path if len(runs) == 1 else Path("recursa-report"))
    )
    for path in write_plots(runs, out):
        print(f"wrote {path}", file=sys.stderr)
    return 0
