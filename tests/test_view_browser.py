"""`recursa view` in a real browser: Debian's headless chromium loads pages made from real
mock runs and is driven over the DevTools protocol (tests/browser.py).

`make test` installs chromium when missing; where it is not installed these tests are skipped
and say why. RECURSA_VIEW_SCREENSHOT=PATH saves the README's screenshot from this browser.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recursa.engine import draw_subset
from recursa.tasks.arc import arc_problem
from recursa.view import write_view
from recursa.view.overview import problem_flags
from recursa.view.serve import LiveView, make_server
from tests.browser import Browser, chromium_path
from tests.viewkit import journal_hashes, mock_run, read_jsonl

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (make test installs Debian's chromium with apt-get; "
    "install it by hand with: apt-get install chromium)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser(width=1500, height=1000)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("viewb")
    return {
        "rsa": mock_run(root / "rsa", size=8),
        "majority": mock_run(root / "majority", method="majority", size=8),
        "root": root,
    }


def _open(browser: Browser, page: Path, fragment: str = "") -> None:
    browser.errors.clear()
    browser.open(page.resolve().as_uri() + fragment)
    browser.eval("window.scrollTo(0, 0)")


def _rows(browser: Browser) -> int:
    return int(browser.eval("+document.getElementById('row-count').dataset.rows"))


def test_lineage_nodes_hover_and_click(browser: Browser, runs: dict[str, Path]) -> None:
    run = runs["rsa"]
    page = write_view([run], runs["root"] / "rsa.html")
    _open(browser, page)
    records = read_jsonl(run / "problems.jsonl")
    journal = journal_hashes(run)
    record = records[2]
    pid = record["id"]
    browser.click(f'#problem-table tbody tr[data-problem="{pid}"]')
    browser.wait_for(
        f"document.getElementById('problem-view').dataset.problem === {json.dumps(pid)}"
    )
    nodes: list[dict[str, Any]] = browser.eval(
        f"Array.from(document.querySelectorAll('.node[data-problem={json.dumps(pid)}]'))"
        ".map(e => Object.assign({}, e.dataset))"
    )
    assert len(nodes) == sum(len(s["answers"]) for s in record["steps"]) == 12
    for node in nodes:
        step, slot = int(node["step"]), int(node["slot"])
        score = record["steps"][step - 1]["scores"][slot]
        assert node["correct"] == ("1" if score >= 1 else "0")
        parents = draw_subset(0, pid, step, slot, 4, 2) if step > 1 else []
        assert node["parents"] == ",".join(map(str, parents))
    # hovering a last-step node lights up exactly its ancestry
    target = f'.node[data-problem="{pid}"][data-step="3"][data-slot="1"]'
    browser.hover(target)
    lit = set(
        browser.eval(
            "Array.from(document.querySelectorAll('.node.anc'))"
            ".map(e => e.dataset.step + '.' + e.dataset.slot)"
        )
    )
    want, frontier = {(3, 1)}, [(3, 1)]
    while frontier:
        t, s = frontier.pop()
        if t > 1:
            for p in draw_subset(0, pid, t, s, 4, 2):
                if (t - 1, p) not in want:
                    want.add((t - 1, p))
                    frontier.append((t - 1, p))
    assert lit == {f"{t}.{s}" for t, s in want}
    # clicking shows the node's full text, answer, grade and the checked prompt
    browser.click(target)
    browser.wait_for("document.getElementById('node-detail').dataset.step === '3'")
    detail = browser.eval("document.getElementById('node-detail').innerText")
    row = journal[(pid, "generate", 3, 1)]
    assert row.text.splitlines()[0][:80] in detail
    assert str(record["steps"][2]["answers"][1]) in detail
    assert record["steps"][2]["reasons"][1] in detail or record["steps"][2]["scores"][1] >= 1
    assert "identical to the request the engine sent" in detail
    browser.click("#node-detail details.prompt-box > summary")
    prompt = browser.eval("document.querySelector('#node-detail .prompt-text').innerText")
    assert (
        "---- Solution 1 ----" in prompt and "Candidate solutions (may contain mistakes):" in prompt
    )
    assert browser.errors == []


def test_filters_and_sorting(browser: Browser, runs: dict[str, Path]) -> None:
    run = runs["rsa"]
    page = write_view([run], runs["root"] / "rsa-filters.html")
    _open(browser, page)
    records = read_jsonl(run / "problems.jsonl")
    flags = [problem_flags(r["steps"]) for r in records]
    assert _rows(browser) == len(records)
    browser.click("#filter-changed")
    assert _rows(browser) == sum(1 for c, _ in flags if c)
    shown = browser.eval(
        "Array.from(document.querySelectorAll('#problem-table tbody tr'))"
        ".map(e => e.dataset.problem)"
    )
    assert shown == [r["id"] for r, (c, _) in zip(records, flags, strict=True) if c]
    browser.click("#filter-herded")
    assert _rows(browser) == sum(1 for _, h in flags if h)
    browser.click("#filter-wrong")
    assert _rows(browser) == sum(1 for r in records if not r["final"]["correct"])
    browser.click("#filter-all")
    browser.click('#problem-table th[data-sort="id"]')
    browser.click('#problem-table th[data-sort="id"]')  # twice: descending
    first = browser.eval("document.querySelector('#problem-table tbody tr').dataset.problem")
    assert first == max(r["id"] for r in records)
    assert "sort=id%3Adesc" in browser.eval("location.hash")
    assert browser.errors == []


def test_compare_runs_and_screenshot(browser: Browser, runs: dict[str, Path]) -> None:
    from PIL import Image, ImageStat

    rsa, majority = runs["rsa"], runs["majority"]
    page = write_view([rsa, majority], runs["root"] / "compare.html")
    a = {r["id"]: r["final"]["correct"] for r in read_jsonl(rsa / "problems.jsonl")}
    b = {r["id"]: r["final"]["correct"] for r in read_jsonl(majority / "problems.jsonl")}
    pid = sorted(a)[1]
    _open(browser, page, f"#problem={pid}&node=0.3.0")
    browser.wait_for("document.getElementById('node-detail').dataset.step === '3'")
    assert browser.eval("document.querySelectorAll('#accuracy-chart canvas').length") >= 2
    assert browser.eval("document.querySelectorAll('.lineage').length") == 2
    assert (
        browser.eval(
            f'document.querySelectorAll(\'.node[data-run="1"][data-problem="{pid}"]\').length'
        )
        == 4
    )
    browser.click("#filter-disagree")
    assert _rows(browser) == sum(1 for k in a if a[k] != b[k])
    browser.click("#filter-all")
    browser.eval("window.scrollTo(0, 0)")
    browser.hover('.node[data-run="0"][data-step="3"][data-slot="0"]')
    assert browser.eval("document.querySelectorAll('.lineage-svg.hovering').length") == 1
    time.sleep(0.2)
    png = browser.screenshot()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (1500, 1000)
    spread = ImageStat.Stat(image).stddev
    assert min(spread) > 20, spread  # not blank: text, charts, coloured nodes
    assert len(image.resize((300, 200)).getcolors(maxcolors=60000) or []) > 50
    target = os.environ.get("RECURSA_VIEW_SCREENSHOT")
    if target:
        Path(target).write_bytes(png)
    assert browser.errors == []


def test_live_page_refreshes_in_the_browser(browser: Browser, runs: dict[str, Path]) -> None:
    src = runs["rsa"]
    live = runs["root"] / "live"
    live.mkdir()
    for name in ("settings.json", "journal.sqlite"):
        (live / name).write_bytes((src / name).read_bytes())
    lines = (src / "problems.jsonl").read_text().splitlines(keepends=True)
    (live / "problems.jsonl").write_text(lines[0])
    server = make_server(LiveView([live]), 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        host, port = server.server_address[:2]
        browser.errors.clear()
        pid = read_jsonl(src / "problems.jsonl")[2]["id"]
        browser.open(f"http://{host!s}:{port}/#filter=running&problem={pid}")
        status = "document.getElementById('settings-table').innerText"
        assert "running: 1 of 8" in browser.eval(status)
        assert _rows(browser) == 7
        # a running problem, fetched from the server: its candidates, not graded yet
        correct = f"Array.from(document.querySelectorAll('.node[data-problem=\"{pid}\"]'))"
        correct += ".map(e => e.dataset.correct)"
        assert browser.eval(correct) == [""] * 12
        with (live / "problems.jsonl").open("a") as fh:
            fh.write("".join(lines[1:4]))
        browser.wait_for(f"{status}.includes('running: 4 of 8')", timeout=30)
        assert _rows(browser) == 4  # the filter is kept
        browser.wait_for(f"{correct}.every(c => c !== '')", timeout=30)  # now graded
        assert browser.eval("document.getElementById('problem-view').dataset.problem") == pid
        assert browser.errors == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_arc_grids_and_solve_page(browser: Browser, runs: dict[str, Path]) -> None:
    import recursa

    problems = [
        arc_problem("arc0", [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
                    [[5, 6], [7, 8]], [[8, 7], [6, 5]])
    ]  # fmt: skip
    out = runs["root"] / "arc"
    recursa.evaluate(problems, out=out, backend="mock", n=2, k=2, t=2, max_tokens=32)
    page = write_view([out], runs["root"] / "arc.html", problems=problems)
    _open(browser, page)
    browser.wait_for("document.querySelectorAll('.arc-grid').length > 0")
    colours = browser.eval(
        "Array.from(document.querySelectorAll('.arc-examples .arc-grid td'))"
        ".map(td => getComputedStyle(td).backgroundColor)"
    )
    assert len(colours) == 16 and len(set(colours)) == 8  # 1-8, each its ARC colour
    assert browser.errors == []
