"""The page: one self-contained HTML file (styles, scripts and data inline; nothing fetched).

The overview (curves, settings, one small row per problem) is one JSON block parsed at load;
each problem's lineage (texts, grades, prompts) is its own JSON block, parsed only when the
problem is opened, so a run of thousands of problems opens as fast as its table. The charts
are drawn by uPlot (MIT, vendored under `vendor/` with its licence), inlined here.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from recursa.errors import UsageError
from recursa.tasks import Problem
from recursa.view.overview import run_overview
from recursa.view.runs import RunLineages, ViewRun, load_view_run

UPLOT_VERSION = "1.6.32"


def _asset(*parts: str) -> str:
    return resources.files("recursa.view").joinpath(*parts).read_text(encoding="utf-8")


def _json_block(element_id: str, data: Any) -> str:
    """A JSON data block that no text inside can end early (every `<` is escaped)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    text = text.replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{text}</script>\n'


def _script(code: str) -> str:
    return "<script>" + code.replace("</script", "<\\/script") + "</script>\n"


def render_page(
    title: str,
    runs: list[dict[str, Any]],
    lineages: Iterable[tuple[int, int, dict[str, Any]]],
    *,
    live: bool = False,
    version: str = "",
) -> str:
    """The HTML page from overview data (`runs`) and (run, index, lineage) triples."""
    overview = {"title": title, "runs": runs, "live": live, "version": version}
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{html.escape(title)}</title>\n",
        "<style>",
        _asset("vendor", "uPlot.min.css"),
        "\n",
        _asset("assets", "view.css"),
        "</style>\n</head><body>\n",
        '<header><h1 id="title"></h1><span id="live" hidden>live</span>',
        f'<span class="credit">recursa view · charts: uPlot {UPLOT_VERSION} (MIT)</span>',
        "</header>\n",
        "<main>\n",
        '<section id="overview"><div class="overview-row">',
        '<div><h2>Accuracy</h2><div id="accuracy-chart">',
        '<div id="chart-step"></div><div id="chart-tokens"></div></div></div>',
        '<div><h2>Settings</h2><table id="settings-table"></table><div id="raw-settings"></div>',
        "</div></div></section>\n",
        '<div class="split"><section id="problems"><h2>Problems</h2><div id="filters"></div>',
        '<input id="filter-text" type="search" placeholder="filter by id, answer or reference">',
        '<div id="pager"></div><table id="problem-table"></table></section>\n',
        '<section id="problem-view"><p class="note">Choose a problem in the table to see its '
        "population lineage.</p></section></div>\n",
        "</main>\n",
        _json_block("recursa-data", overview),
    ]
    for run_index, index, data in lineages:
        parts.append(_json_block(f"d{run_index}-{index}", data))
    parts.append(_script(_asset("vendor", "uPlot.iife.min.js")))
    parts.append(_script(_asset("assets", "view.js")))
    parts.append("</body></html>\n")
    return "".join(parts)


def _lineages(runs: list[ViewRun]) -> Iterable[tuple[int, int, dict[str, Any]]]:
    for r, run in enumerate(runs):
        builder = RunLineages(run)
        try:
            for i, pid in enumerate(run.order):
                yield r, i, builder.lineage(pid)
        finally:
            builder.close()


def view_title(runs: Sequence[ViewRun]) -> str:
    names = ", ".join(run.label for run in runs)
    return f"recursa view: {names}"


def build_view(
    run_dirs: Sequence[str | Path],
    *,
    problems: Sequence[Problem] | None = None,
    live: bool = False,
    version: str = "",
) -> str:
    """The page of one or more run directories (finished or running), as HTML text.
    `problems` gives the problems of runs that were evaluated on a list in code."""
    if not run_dirs:
        raise UsageError("give at least one run directory")
    runs = [load_view_run(path, problems) for path in run_dirs]
    overviews = [run_overview(run, i) for i, run in enumerate(runs)]
    return render_page(view_title(runs), overviews, _lineages(runs), live=live, version=version)


def write_view(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    problems: Sequence[Problem] | None = None,
) -> Path:
    """Write the page of `run_dirs` to `out` and return its path."""
    from recursa.runs.rundir import write_text_atomic

    path = Path(out)
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; name the HTML file to write")
    text = build_view(run_dirs, problems=problems)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return path
